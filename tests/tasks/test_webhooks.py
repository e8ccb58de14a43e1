from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
import pytest

from core.errors import ValidationFailed
from core.tasks.targets import WebhookPolicy
from core.tasks.webhooks import WebhookOutcome, backoff, build_payload, deliver
from tests.support.loopback import serve
from tests.tasks.fakes import Receiver, Sleeps, fake_dns, no_dns

PAYLOAD = {"task": {"id": "task_1", "name": "Nightly"}, "run": {"id": "run_1"}, "text": "hi"}
LOOPBACK_OK = WebhookPolicy(allow_private=True)


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[tuple[str, httpx2.AsyncClient]]:
    async with serve(receiver.app()) as url, httpx2.AsyncClient(trust_env=False) as http:
        yield url, http


async def test_delivers_json_on_first_attempt() -> None:
    receiver, sleeps = Receiver(), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, LOOPBACK_OK, sleep=sleeps)
    assert outcome == WebhookOutcome(status="delivered", attempts=1, http_status=200)
    assert [r.body for r in receiver.received] == [PAYLOAD]
    assert receiver.received[0].headers["content-type"] == "application/json"
    assert sleeps.durations == []


async def test_retries_a_500_after_backoff_then_delivers() -> None:
    receiver, sleeps = Receiver(statuses=[500]), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, LOOPBACK_OK, sleep=sleeps)
    assert outcome.status == "delivered"
    assert outcome.attempts == 2
    assert sleeps.durations == [backoff(1)]
    assert len(receiver.received) == 2


async def test_does_not_retry_a_400() -> None:
    receiver, sleeps = Receiver(statuses=[400]), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, LOOPBACK_OK, sleep=sleeps)
    assert outcome == WebhookOutcome(
        status="failed", attempts=1, last_error="HTTP 400", http_status=400
    )
    assert sleeps.durations == []


async def test_gives_up_after_three_retries_of_500() -> None:
    receiver, sleeps = Receiver(statuses=[500] * 10), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, LOOPBACK_OK, sleep=sleeps)
    assert outcome == WebhookOutcome(
        status="failed", attempts=4, last_error="HTTP 500", http_status=500
    )
    assert sleeps.durations == [backoff(1), backoff(2), backoff(3)]
    assert len(receiver.received) == 4


async def test_retries_count_is_configurable() -> None:
    receiver, sleeps = Receiver(statuses=[503] * 10), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, LOOPBACK_OK, retries=0, sleep=sleeps)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 503)
    assert sleeps.durations == []


async def test_connection_refused_is_retried_then_fails() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = Sleeps()
    async with httpx2.AsyncClient(trust_env=False) as http:
        outcome = await deliver(
            http, f"http://127.0.0.1:{port}/hook", PAYLOAD, LOOPBACK_OK, sleep=sleeps
        )
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 4, None)
    assert outcome.last_error is not None
    assert outcome.last_error.startswith("connection failed")
    assert sleeps.durations == [backoff(1), backoff(2), backoff(3)]


async def test_a_target_that_never_answers_times_out_and_is_retried() -> None:
    receiver, sleeps = Receiver(hang=True), Sleeps()
    async with running(receiver) as (url, http):
        try:
            outcome = await deliver(
                http, f"{url}/hook", PAYLOAD, LOOPBACK_OK, timeout_s=0.2, retries=1, sleep=sleeps
            )
        finally:
            receiver.release.set()
    assert outcome == WebhookOutcome(status="failed", attempts=2, last_error="timed out after 0.2s")
    assert sleeps.durations == [backoff(1)]


async def test_redirects_are_not_followed() -> None:
    receiver, sleeps = Receiver(), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/redirect", PAYLOAD, LOOPBACK_OK, sleep=sleeps)
    assert (outcome.status, outcome.attempts, outcome.http_status) == ("failed", 1, 307)
    assert [r.path for r in receiver.received] == ["/redirect"]


@pytest.mark.parametrize(
    "resolver",
    [no_dns, fake_dns({"hooks.invalid": []}), fake_dns({"hooks.invalid": ["not-an-ip"]})],
    ids=["error", "no-answers", "garbage-answer"],
)
async def test_unresolvable_host_is_retried_then_fails(resolver: Any) -> None:
    sleeps = Sleeps()
    async with httpx2.AsyncClient(trust_env=False) as http:
        outcome = await deliver(
            http,
            "https://hooks.invalid/x",
            PAYLOAD,
            WebhookPolicy(),
            sleep=sleeps,
            resolver=resolver,
        )
    assert (outcome.status, outcome.attempts) == ("failed", 4)
    assert outcome.last_error is not None
    assert outcome.last_error.startswith("could not resolve host")
    assert sleeps.durations == [backoff(1), backoff(2), backoff(3)]


async def test_slack_format_body() -> None:
    receiver = Receiver()
    payload = build_payload("task_1", "Nightly", {"id": "run_1"}, "all good", "slack")
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", payload, LOOPBACK_OK, sleep=Sleeps())
    assert outcome.status == "delivered"
    assert receiver.received[0].body == {"text": "*Nightly*: all good"}


async def test_loopback_target_is_refused_without_any_attempt() -> None:
    receiver, sleeps = Receiver(), Sleeps()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, WebhookPolicy(), sleep=sleeps)
    assert outcome.status == "refused"
    assert outcome.attempts == 0
    assert outcome.last_error is not None
    assert "is not a public address" in outcome.last_error
    assert receiver.received == []
    assert sleeps.durations == []


@pytest.mark.parametrize("allow", [["127.0.0.1"], ["127.0.0.0/8"]])
async def test_loopback_address_in_allow_list_is_delivered(allow: list[str]) -> None:
    receiver = Receiver()
    async with running(receiver) as (url, http):
        outcome = await deliver(http, f"{url}/hook", PAYLOAD, WebhookPolicy(allow=allow))
    assert outcome.status == "delivered"


async def test_allowed_hostname_is_delivered() -> None:
    receiver = Receiver()
    async with running(receiver) as (url, http):
        hook = url.replace("127.0.0.1", "localhost") + "/hook"
        outcome = await deliver(http, hook, PAYLOAD, WebhookPolicy(allow=["LocalHost"]))
    assert outcome.status == "delivered"


async def test_request_goes_to_the_vetted_address_with_the_original_host_header() -> None:
    receiver = Receiver()
    resolver = fake_dns({"hooks.corp.test": ["127.0.0.1"]})
    policy = WebhookPolicy(allow=["127.0.0.0/8"])
    async with running(receiver) as (url, http):
        port = httpx2.URL(url).port
        hook = f"http://hooks.corp.test:{port}/hook"
        outcome = await deliver(http, hook, PAYLOAD, policy, resolver=resolver)
    assert outcome.status == "delivered"
    assert receiver.received[0].headers["host"] == f"hooks.corp.test:{port}"


def test_outcome_is_camel_case_on_the_wire() -> None:
    outcome = WebhookOutcome(status="failed", attempts=4, last_error="HTTP 500", http_status=500)
    assert outcome.wire() == {
        "status": "failed",
        "attempts": 4,
        "lastError": "HTTP 500",
        "httpStatus": 500,
    }


@pytest.mark.parametrize(
    ("attempt", "kwargs", "seconds"),
    [
        (1, {}, 1.0),
        (2, {}, 2.0),
        (3, {}, 4.0),
        (5, {}, 16.0),
        (6, {}, 30.0),
        (10_000, {}, 30.0),
        (1, {"base": 0.5}, 0.5),
        (3, {"base": 0.5, "factor": 3.0}, 4.5),
        (5, {"cap": 10.0}, 10.0),
        (4, {"factor": 1.0}, 1.0),
    ],
)
def test_backoff(attempt: int, kwargs: dict[str, float], seconds: float) -> None:
    assert backoff(attempt, **kwargs) == seconds


def test_backoff_counts_attempts_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        backoff(0)


def test_json_payload_shape() -> None:
    run = {"id": "run_1", "status": "success"}
    assert build_payload("task_1", "Nightly", run, "done", "json") == {
        "task": {"id": "task_1", "name": "Nightly"},
        "run": run,
        "text": "done",
    }


def test_slack_payload_escapes_control_sequences() -> None:
    payload = build_payload("task_1", "A<B", {}, "ping <!channel> & co", "slack")
    assert payload == {"text": "*A&lt;B*: ping &lt;!channel&gt; &amp; co"}


def test_unknown_payload_format_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed) as caught:
        build_payload("task_1", "Nightly", {}, "done", "xml")  # type: ignore[arg-type]
    assert caught.value.details == [
        {"path": "webhookFormat", "problem": "unknown format 'xml' (expected json or slack)"}
    ]
