from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from core.errors import ValidationFailed
from core.tasks.webhooks import (
    WebhookOutcome,
    WebhookPolicy,
    backoff,
    build_payload,
    check_target,
    deliver,
    is_public_address,
    validate_webhook_url,
)
from tests.support.loopback import serve

PAYLOAD = {"task": {"id": "task_1", "name": "Nightly"}, "run": {"id": "run_1"}, "text": "hi"}
LOOPBACK_OK = WebhookPolicy(allow_private=True)


@dataclass
class Received:
    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class Receiver:
    """A webhook target that records requests and answers with queued statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    hang: bool = False
    release: anyio.Event = field(default_factory=anyio.Event)
    received: list[Received] = field(default_factory=list)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/hook", self.hook, methods=["POST"]),
                Route("/redirect", self.redirect, methods=["POST"]),
            ]
        )

    async def hook(self, request: Request) -> Response:
        self._record(request, await request.json())
        if self.hang:
            await self.release.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        return JSONResponse({"ok": status < 400}, status_code=status)

    async def redirect(self, request: Request) -> Response:
        self._record(request, await request.json())
        return RedirectResponse("/hook", status_code=307)

    def _record(self, request: Request, body: Any) -> None:
        self.received.append(Received(request.url.path, body, dict(request.headers)))


@dataclass
class Sleeps:
    """An injected sleep that records what it was asked to wait instead of waiting."""

    durations: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.durations.append(seconds)


@asynccontextmanager
async def running(receiver: Receiver) -> AsyncIterator[tuple[str, httpx2.AsyncClient]]:
    async with serve(receiver.app()) as url, httpx2.AsyncClient(trust_env=False) as http:
        yield url, http


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError(f"test resolver: no DNS for {host}")


def fake_dns(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"test resolver: unknown host {host}")
        return table[host]

    return resolve


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


RESOLVER = fake_dns(
    {
        "internal.example": ["10.1.2.3"],
        "mixed.example": ["93.184.216.34", "192.168.0.1"],
        "metadata.example": ["169.254.169.254"],
        "mapped.example": ["::ffff:127.0.0.1"],
        "public.example": ["93.184.216.34"],
        "v6.example": ["2606:4700:4700::1111"],
        # A resolver lying about names that must never reach it.
        "localhost": ["93.184.216.34"],
        "api.localhost": ["93.184.216.34"],
        "127.1": ["93.184.216.34"],
    }
)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://localhost:8080/hook",
        "http://LOCALHOST./hook",
        "http://api.localhost/",
        "http://10.0.0.5/",
        "http://172.16.3.4/",
        "http://192.168.1.10/",
        "http://100.64.0.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0:8484/",
        "http://127.1/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1/",
        "http://224.0.0.1/",
        "http://[::1]/",
        "http://[::]/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:a9fe:a9fe]/",
        "http://[fe80::1]/",
        "http://[fd00::1]/",
        "http://[ff02::1]/",
        "http://internal.example/",
        "http://mixed.example/",
        "http://metadata.example/",
        "http://mapped.example/",
    ],
)
async def test_non_public_targets_are_refused(url: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await check_target(url, WebhookPolicy(), resolver=RESOLVER)
    [detail] = caught.value.details or []
    assert detail["path"] == "webhook"
    assert "is not a public address" in detail["problem"]


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("ftp://example.com/", "scheme must be http or https, not 'ftp'"),
        ("file:///etc/passwd", "scheme must be http or https, not 'file'"),
        ("javascript:alert(1)", "scheme must be http or https, not 'javascript'"),
        ("example.com/hook", "scheme must be http or https, not ''"),
        ("http:///hook", "URL has no host"),
        ("https://", "URL has no host"),
        ("http://example.com:99999/", "not a valid URL: Port out of range 0-65535"),
    ],
)
async def test_malformed_targets_are_refused(url: str, problem: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        validate_webhook_url(url)
    assert caught.value.details == [{"path": "webhook", "problem": problem}]
    with pytest.raises(ValidationFailed):
        await check_target(url, WebhookPolicy(allow_private=True), resolver=no_dns)


@pytest.mark.parametrize(
    ("url", "policy"),
    [
        ("https://public.example/hook", WebhookPolicy()),
        ("http://v6.example:8080/", WebhookPolicy()),
        ("https://93.184.216.34/", WebhookPolicy()),
        ("http://[2606:4700:4700::1111]/", WebhookPolicy()),
        ("http://internal.example/", WebhookPolicy(allow=["10.0.0.0/8"])),
        ("http://hooks.corp/", WebhookPolicy(allow=["hooks.corp"])),
        ("http://HOOKS.corp./", WebhookPolicy(allow=["hooks.corp"])),
        ("http://127.0.0.1:9000/", WebhookPolicy(allow_private=True)),
        ("http://[::1]/", WebhookPolicy(allow=["::1"])),
    ],
)
async def test_public_or_allowed_targets_pass(url: str, policy: WebhookPolicy) -> None:
    await check_target(url, policy, resolver=RESOLVER)


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://127.0.0.2/", ["127.0.0.1"]),
        ("http://10.0.0.1/", ["192.168.0.0/16"]),
        ("http://mixed.example/", ["public.example"]),
        ("http://[::1]/", ["127.0.0.0/8"]),
    ],
)
async def test_allow_list_is_exact(url: str, allow: list[str]) -> None:
    with pytest.raises(ValidationFailed):
        await check_target(url, WebhookPolicy(allow=allow), resolver=RESOLVER)


def test_validate_webhook_url_returns_the_url() -> None:
    assert validate_webhook_url("https://hooks.slack.com/services/T/B/X") == (
        "https://hooks.slack.com/services/T/B/X"
    )


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("93.184.216.34", True),
        ("2606:4700:4700::1111", True),
        ("::ffff:8.8.8.8", True),
        ("2002:808:808::1", True),
        ("127.0.0.1", False),
        ("127.255.255.254", False),
        ("10.0.0.1", False),
        ("172.16.0.1", False),
        ("172.31.255.255", False),
        ("192.168.0.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("192.0.2.1", False),
        ("198.18.0.1", False),
        ("224.0.0.1", False),
        ("239.255.255.250", False),
        ("240.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("fd12:3456::1", False),
        ("fec0::1", False),
        ("ff02::1", False),
        ("ff0e::1", False),
        ("2001:db8::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::ffff:169.254.169.254", False),
        ("::127.0.0.1", False),
        ("2002:7f00:1::1", False),
        ("2002:a00:1::1", False),
        ("64:ff9b::7f00:1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


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
