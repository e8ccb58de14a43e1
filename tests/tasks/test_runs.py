"""What a run does after it starts: context, dispatch, storage, webhook delivery."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from core.errors import ProviderError
from core.tasks.models import RunWebhook
from core.tasks.service import TaskService
from core.tasks.webhooks import backoff
from tests.support.loopback import serve
from tests.support.scripted import ScriptedProvider, Step
from tests.tasks.builders import OpenEngine, spec, task_settings
from tests.tasks.fakes import Receiver, Sleeps, fake_dns


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def hook(receiver: Receiver) -> AsyncIterator[str]:
    """The receiver's URL on a loopback port."""
    async with serve(receiver.app()) as url:
        yield f"{url}/hook"


async def settled(service: TaskService, task_id: str) -> RunWebhook:
    run = await service.wait_settled((await service.run(task_id)).run_id, 10)
    assert run.status == "success"
    assert run.webhook is not None
    return run.webhook


async def test_webhook_gets_the_json_result_and_the_outcome_is_stored(
    service: TaskService, receiver: Receiver, hook: str, sleeps: Sleeps
) -> None:
    task = await service.create(spec(webhook=hook))
    webhook = await settled(service, task.id)
    assert webhook == RunWebhook(status="delivered", attempts=1, http_status=200)
    [got] = receiver.received
    run = await service.latest(task.id)
    assert got.body["task"] == {"id": task.id, "name": "nightly"}
    assert got.body["text"] == "ok"
    assert got.body["run"]["runId"] == run.run_id
    assert got.body["run"]["status"] == "success"
    assert "text" not in got.body["run"]
    assert run.webhook == webhook
    assert sleeps.durations == []


async def test_webhook_is_retried_after_a_500(
    service: TaskService, receiver: Receiver, hook: str, sleeps: Sleeps
) -> None:
    receiver.statuses = [500]
    task = await service.create(spec(webhook=hook))
    webhook = await settled(service, task.id)
    assert webhook == RunWebhook(status="delivered", attempts=2, http_status=200)
    assert len(receiver.received) == 2
    assert sleeps.durations == [backoff(1)]


async def test_webhook_is_not_retried_after_a_400(
    service: TaskService, receiver: Receiver, hook: str, sleeps: Sleeps
) -> None:
    receiver.statuses = [400]
    task = await service.create(spec(webhook=hook))
    webhook = await settled(service, task.id)
    assert webhook == RunWebhook(status="failed", attempts=1, last_error="HTTP 400",
                                 http_status=400)
    assert len(receiver.received) == 1
    assert sleeps.durations == []
    stored = await service.latest(task.id)
    assert (stored.status, stored.webhook) == ("success", webhook)


async def test_slack_format_sends_text_only(
    service: TaskService, receiver: Receiver, hook: str
) -> None:
    task = await service.create(spec(webhook=hook, webhookFormat="slack"))
    await settled(service, task.id)
    assert [r.body for r in receiver.received] == [{"text": "*nightly*: ok"}]


async def test_an_error_run_is_delivered_too(
    service: TaskService, receiver: Receiver, hook: str,
    providers: dict[str, ScriptedProvider],
) -> None:
    providers["main"].steps = [Step(error=ProviderError("HTTP 400", retriable=False))]
    task = await service.create(spec(webhook=hook))
    run = await service.wait_settled((await service.run(task.id)).run_id, 10)
    assert run.status == "error"
    assert run.webhook is not None
    assert run.webhook.status == "delivered"
    [got] = receiver.received
    assert got.body["text"] == "error: PROVIDER_ERROR: HTTP 400"
    assert got.body["run"]["error"]["code"] == "PROVIDER_ERROR"


async def test_result_is_stored_before_the_webhook_finishes(
    service: TaskService, receiver: Receiver, hook: str
) -> None:
    receiver.hang = True
    task = await service.create(spec(webhook=hook))
    run = await service.wait_run((await service.run(task.id)).run_id, 10)
    assert (run.status, run.text) == ("success", "ok")
    assert run.webhook == RunWebhook(status="pending")
    receiver.release.set()
    done = await service.wait_settled(run.run_id, 10)
    assert done.webhook is not None
    assert done.webhook.status == "delivered"


async def test_private_target_is_refused_and_recorded(
    open_engine: OpenEngine, tmp_path: Path, receiver: Receiver, hook: str
) -> None:
    # The name passes at create (no DNS then) but resolves to loopback at delivery.
    port = hook.split(":")[2].split("/")[0]
    settings = task_settings(tmp_path, webhooks={"allowPrivate": False})
    resolver = fake_dns({"hooks.example": ["127.0.0.1"]})
    async with open_engine(settings, resolver=resolver) as engine:
        task = await engine.tasks.create(spec(webhook=f"http://hooks.example:{port}/hook"))
        webhook = await settled(engine.tasks, task.id)
    assert webhook.status == "refused"
    assert webhook.attempts == 0
    assert webhook.last_error == (
        "webhook: hooks.example (127.0.0.1) is not a public address; allow it with "
        "webhooks.allowPrivate or webhooks.allow")
    assert receiver.received == []


async def test_read_file_tail_is_appended_to_the_prompt(
    service: TaskService, providers: dict[str, ScriptedProvider], tmp_path: Path
) -> None:
    notes = tmp_path / "ctx" / "notes.md"
    notes.write_text("line one\nline two\n")
    task = await service.create(spec(context={"readFile": str(notes)}))
    run = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert run.status == "success"
    prompt = providers["main"].calls[0].messages[-1].content
    assert prompt == (f"summarize the day\n\n--- context: {notes} (last 18 bytes) ---\n"
                      "line one\nline two\n\n--- end context ---")


async def test_missing_read_file_makes_an_error_run(
    service: TaskService, providers: dict[str, ScriptedProvider], tmp_path: Path
) -> None:
    missing = tmp_path / "ctx" / "later.md"
    task = await service.create(spec(context={"readFile": str(missing)}))
    run = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert run.status == "error"
    assert run.error is not None
    assert (run.error.code, run.error.message) == (
        "VALIDATION_ERROR", f"context.readFile: {missing} does not exist")
    assert run.dispatch_id is None
    assert providers["main"].calls == []


async def test_symlink_escaping_the_read_paths_makes_an_error_run(
    service: TaskService, providers: dict[str, ScriptedProvider], tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("api key")
    link = tmp_path / "ctx" / "notes.md"
    task = await service.create(spec(context={"readFile": str(link)}))
    os.symlink(secret, link)  # planted after the task was created
    run = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert run.status == "error"
    assert run.error is not None
    assert run.error.message == (
        f"context.readFile: {link} is outside the allowed read paths")
    assert providers["main"].calls == []


async def test_shutdown_closes_a_running_run_as_interrupted(
    open_engine: OpenEngine, providers: dict[str, ScriptedProvider]
) -> None:
    providers["main"].steps = [Step(gate=anyio.Event())]
    async with open_engine() as engine:
        task = await engine.tasks.create(spec())
        run = await engine.tasks.run(task.id)
        await anyio.wait_all_tasks_blocked()
    async with open_engine() as engine:
        stored = await engine.tasks.get_run(task.id, run.run_id)
        assert stored.status == "error"
        assert stored.error is not None
        assert stored.error.message == (
            "interrupted: the engine shut down before the run finished")
        assert (await engine.tasks.wait_run((await engine.tasks.run(task.id)).run_id,
                                            5)).status == "success"


async def test_a_run_in_another_process_can_be_read_and_waited_for(
    open_engine: OpenEngine, providers: dict[str, ScriptedProvider]
) -> None:
    gate = anyio.Event()
    providers["main"].steps = [Step(gate=gate)]
    async with open_engine() as one, open_engine() as two:
        task = await one.tasks.create(spec())
        run = await one.tasks.run(task.id)
        assert (await two.tasks.wait_run(run.run_id, 0)).status == "running"
        skipped = await two.tasks.run(task.name)  # the running one lives in `one`
        assert skipped.status == "skipped"
        gate.set()
        await one.tasks.wait_run(run.run_id, 5)
        assert (await two.tasks.wait_run(run.run_id, 5)).status == "success"
