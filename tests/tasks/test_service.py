from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

from core.clock import FakeClock
from core.engine import Engine
from core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from core.principal import Principal
from core.tasks.models import TaskPatch, TaskSpec
from core.tasks.service import TaskService
from tests.support.scripted import ScriptedProvider, Step
from tests.tasks.builders import START, spec

RESTRICTED = Principal(name="ci-bot", kind="user", scopes=frozenset({"tasks:write"}),
                       providers=frozenset({"other"}))


async def test_create_returns_the_task_with_its_next_run(service: TaskService) -> None:
    task = await service.create(spec(provider="other", model="m1", webhookFormat="slack"))
    assert task.id.startswith("task_")
    assert (task.name, task.schedule, task.provider, task.model) == (
        "nightly", "0 9 * * 1-5", "other", "m1")
    assert (task.enabled, task.webhook_format, task.timezone) == (True, "slack", "UTC")
    assert task.created_at == task.updated_at == START
    assert task.next_run_at == datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    assert (task.last_run_at, task.last_status) == (None, None)
    assert await service.get(task.id) == task


async def test_wire_shape_is_camel_case(service: TaskService, tmp_path: Path) -> None:
    notes = str(tmp_path / "ctx" / "notes.md")
    task = await service.create(spec(context={"readFile": notes}, enabled=False))
    wire = task.wire()
    assert list(wire) == [
        "id", "name", "schedule", "prompt", "provider", "model", "enabled", "webhook",
        "webhookFormat", "timezone", "context", "createdAt", "updatedAt", "nextRunAt",
        "lastRunAt", "lastStatus",
    ]
    assert wire["context"] == {"readFile": notes}
    assert wire["createdAt"] == "2026-03-02T08:00:00.000Z"
    assert wire["nextRunAt"] is None


async def test_schedule_is_evaluated_in_the_task_timezone(service: TaskService) -> None:
    task = await service.create(spec(schedule="30 9 * * *", timezone="America/New_York"))
    # 09:30 in New York on 2 March 2026 (EST, UTC-5) is 14:30 UTC.
    assert task.next_run_at == datetime(2026, 3, 2, 14, 30, tzinfo=UTC)


async def test_disabled_task_has_no_next_run(service: TaskService) -> None:
    task = await service.create(spec(enabled=False))
    assert task.next_run_at is None


async def test_name_is_trimmed_and_resolves_like_an_id(service: TaskService) -> None:
    task = await service.create(spec("  weekly report "))
    assert task.name == "weekly report"
    assert await service.get("weekly report") == task
    assert (await service.results("weekly report")).total == 0


async def test_unknown_task_is_not_found(service: TaskService) -> None:
    with pytest.raises(NotFound, match="no task 'ghost'"):
        await service.get("ghost")


async def test_list_is_by_name_with_last_run(service: TaskService) -> None:
    for name in ("b", "a", "c"):
        await service.create(spec(name))
    run = await service.run("c")
    await service.wait_run(run.run_id, 5)
    tasks = await service.list()
    assert [t.name for t in tasks] == ["a", "b", "c"]
    assert [(t.last_status, t.last_run_at) for t in tasks] == [
        (None, None), (None, None), ("success", START)]


@pytest.mark.parametrize(
    ("fields", "path", "problem"),
    [
        ({"name": "  "}, "name", "must not be empty"),
        ({"name": "task_01ABC"}, "name",
         "must not start with 'task_' (that prefix is for task ids)"),
        ({"name": "two\nlines"}, "name", "must not contain control characters or line breaks"),
        ({"name": "x" * 201}, "name", "at most 200 characters, got 201"),
        ({"prompt": " "}, "prompt", "must not be empty"),
        ({"schedule": "0 25 * * *"}, "schedule", "hour: 25 is out of range 0–23"),
        ({"schedule": "* * * *"}, "schedule",
         "expected 5 fields (minute hour day-of-month month day-of-week), got 4"),
        ({"schedule": "0 0 30 2 *"}, "schedule",
         "day-of-month: 30 never occurs in the selected month(s) 2"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown IANA timezone 'Mars/Olympus'"),
        ({"provider": "nope"}, "provider", "unknown provider 'nope' (known: backup, main, other)"),
        ({"model": ""}, "model", "must not be empty"),
        ({"webhook": "ftp://example.com/x"}, "webhook",
         "scheme must be http or https, not 'ftp'"),
        ({"context": {"readFile": "/etc/passwd"}}, "context.readFile",
         "/etc/passwd is outside the allowed read paths"),
        ({"context": {"readFile": ""}}, "context.readFile", "must not be empty"),
        ({"context": {"readFile": "notes.md"}}, "context.readFile",
         "notes.md must be an absolute path (or start with ~)"),
    ],
)
async def test_invalid_field_is_named_with_its_problem(
    service: TaskService, fields: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await service.create(spec(**fields))
    assert caught.value.details == [{"path": path, "problem": problem}]
    assert caught.value.message == f"{path}: {problem}"
    assert await service.list() == []


async def test_every_problem_is_reported_at_once(service: TaskService) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await service.create(spec("", schedule="61 * * * *", timezone="Nowhere/City",
                                  provider="nope"))
    assert [d["path"] for d in caught.value.details or []] == [
        "name", "provider", "schedule", "timezone"]


async def test_private_webhook_address_is_refused_at_create(engine: Engine,
                                                             service: TaskService) -> None:
    guarded = TaskService(engine.store, engine, service.clock, _no_private(service),
                          engine.http)
    with pytest.raises(ValidationFailed) as caught:
        await guarded.create(spec(webhook="http://127.0.0.1:9/hook"))
    [detail] = caught.value.details or []
    assert detail["path"] == "webhook"
    assert "127.0.0.1 is not a public address" in detail["problem"]


def _no_private(service: TaskService) -> Any:
    from dataclasses import replace

    webhooks = service.settings.webhooks.model_copy(update={"allow_private": False})
    return replace(service.settings, webhooks=webhooks)


async def test_duplicate_name_is_a_conflict_on_name(service: TaskService) -> None:
    await service.create(spec("daily"))
    with pytest.raises(Conflict) as caught:
        await service.create(spec("daily", schedule="@hourly"))
    assert caught.value.details == [
        {"path": "name", "problem": "a task named 'daily' already exists"}]
    other = await service.create(spec("other"))
    with pytest.raises(Conflict):
        await service.update(other.id, TaskPatch(name="daily"))


async def test_restricted_caller_cannot_use_other_providers(service: TaskService) -> None:
    with pytest.raises(Forbidden):
        await service.create(spec(), principal=RESTRICTED)
    task = await service.create(spec(provider="other"), principal=RESTRICTED)
    assert task.provider == "other"
    with pytest.raises(Forbidden):
        await service.update(task.id, TaskPatch(provider="main"), principal=RESTRICTED)


async def test_update_recomputes_next_run_and_bumps_updated_at(
    service: TaskService, clock: FakeClock
) -> None:
    task = await service.create(spec(schedule="0 9 * * *"))
    clock.advance(60)
    changed = await service.update(task.id, TaskPatch(schedule="0 12 * * *",
                                                      prompt="new prompt"))
    assert changed.next_run_at == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    assert (changed.prompt, changed.created_at) == ("new prompt", START)
    assert changed.updated_at == START + timedelta(seconds=60)
    assert await service.get(task.id) == changed
    in_tokyo = await service.update(task.id, TaskPatch(timezone="Asia/Tokyo"))
    # 12:00 in Tokyo (UTC+9) is 03:00 UTC; 08:01 UTC has passed it, so tomorrow's.
    assert in_tokyo.next_run_at == datetime(2026, 3, 3, 3, 0, tzinfo=UTC)


async def test_update_keeps_next_run_when_schedule_is_untouched(
    service: TaskService, clock: FakeClock
) -> None:
    task = await service.create(spec(schedule="0 8 * * *"))
    clock.advance(3 * 86400)  # overdue: the scheduler has not fired it yet
    changed = await service.update(task.id, TaskPatch(prompt="different"))
    assert changed.next_run_at == task.next_run_at


async def test_patch_null_clears_optional_fields_and_resets_defaults(
    service: TaskService, tmp_path: Path
) -> None:
    task = await service.create(spec(provider="other", model="m", webhook="http://h.test/x",
                                     webhookFormat="slack", timezone="Europe/Paris",
                                     context={"readFile": str(tmp_path / "ctx" / "x")}))
    patch = TaskPatch.model_validate({"provider": None, "model": None, "webhook": None,
                                      "webhookFormat": None, "timezone": None,
                                      "context": None})
    cleared = await service.update(task.name, patch)
    assert (cleared.provider, cleared.model, cleared.webhook, cleared.context) == (
        None, None, None, None)
    assert (cleared.webhook_format, cleared.timezone) == ("json", "UTC")


async def test_patch_null_for_a_required_field_is_refused(service: TaskService) -> None:
    task = await service.create(spec())
    with pytest.raises(ValidationFailed) as caught:
        await service.update(task.id, TaskPatch.model_validate({"prompt": None,
                                                                 "schedule": None}))
    assert caught.value.details == [
        {"path": "prompt", "problem": "cannot be null"},
        {"path": "schedule", "problem": "cannot be null"},
    ]


async def test_update_validates_the_fields_it_changes(service: TaskService) -> None:
    task = await service.create(spec())
    with pytest.raises(ValidationFailed) as caught:
        await service.update(task.id, TaskPatch(schedule="*/0 * * * *"))
    assert caught.value.details == [
        {"path": "schedule", "problem": "minute: step must be at least 1"}]
    assert await service.get(task.id) == task


async def test_empty_patch_changes_nothing(service: TaskService, clock: FakeClock) -> None:
    task = await service.create(spec())
    clock.advance(5)
    assert await service.update(task.id, TaskPatch(prompt=task.prompt)) == task


async def test_enable_and_disable(service: TaskService, clock: FakeClock) -> None:
    task = await service.create(spec(schedule="0 * * * *"))
    disabled = await service.set_enabled(task.id, False)
    assert (disabled.enabled, disabled.next_run_at) == (False, None)
    clock.advance(2 * 3600)
    enabled = await service.set_enabled(task.name, True)
    assert enabled.enabled
    assert enabled.next_run_at == datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    assert await service.set_enabled(task.id, True) == enabled


async def test_delete_removes_the_task_and_its_runs(service: TaskService) -> None:
    task = await service.create(spec())
    run = await service.run(task.id)
    await service.wait_run(run.run_id, 5)
    await service.delete(task.name)
    with pytest.raises(NotFound):
        await service.get(task.id)
    with pytest.raises(NotFound):
        await service.wait_run(run.run_id, 0)
    assert await service.store.runs.page(task.id, limit=10, offset=0) == ([], 0)
    with pytest.raises(NotFound):
        await service.delete(task.id)


async def test_run_now_returns_a_running_run_at_once(
    service: TaskService, providers: dict[str, ScriptedProvider]
) -> None:
    gate = anyio.Event()
    providers["main"].steps = [Step(deltas=["done"], gate=gate)]
    task = await service.create(spec(enabled=False))
    run = await service.run(task.id)
    assert run.run_id.startswith("run_")
    assert (run.status, run.trigger, run.task_id, run.started_at) == (
        "running", "manual", task.id, START)
    assert (await service.wait_run(run.run_id, 0)).status == "running"
    assert (await service.get(task.id)).last_status == "running"
    gate.set()
    finished = await service.wait_run(run.run_id, 5)
    assert (finished.status, finished.text, finished.provider) == ("success", "done", "main")
    assert (finished.usage.input_tokens, finished.usage.output_tokens) == (1, 2)
    assert finished.finished_at == START
    assert finished.dispatch_id is not None


async def test_run_goes_through_the_dispatcher_with_fallback_and_history(
    engine: Engine, service: TaskService, providers: dict[str, ScriptedProvider]
) -> None:
    from core.errors import ProviderError

    providers["main"].steps = [Step(error=ProviderError("HTTP 503"))]
    task = await service.create(spec(model="big"))
    run = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert (run.status, run.provider) == ("success", "backup")
    assert providers["backup"].calls[0].model == "big"
    assert run.dispatch_id is not None
    record = await engine.get_dispatch(run.dispatch_id)
    assert [a.provider for a in record.attempts] == ["main", "backup"]
    assert record.prompt == "summarize the day"


async def test_failed_dispatch_makes_an_error_run_with_its_dispatch(
    engine: Engine, service: TaskService, providers: dict[str, ScriptedProvider]
) -> None:
    from core.errors import ProviderError

    providers["other"].steps = [Step(error=ProviderError("HTTP 401", retriable=False))]
    task = await service.create(spec(provider="other"))
    run = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert run.status == "error"
    assert run.error is not None
    assert (run.error.code, run.error.message, run.error.provider) == (
        "PROVIDER_ERROR", "HTTP 401", "other")
    assert run.dispatch_id is not None
    assert (await engine.get_dispatch(run.dispatch_id)).status == "error"


async def test_manual_run_keeps_the_callers_provider_restriction(
    service: TaskService,
) -> None:
    task = await service.create(spec())
    with pytest.raises(Forbidden):
        await service.run(task.id, principal=RESTRICTED)


async def test_overlapping_run_is_recorded_skipped_with_the_reason(
    service: TaskService, providers: dict[str, ScriptedProvider]
) -> None:
    gate = anyio.Event()
    providers["main"].steps = [Step(gate=gate)]
    task = await service.create(spec())
    first = await service.run(task.id)
    second = await service.run(task.id)
    assert second.status == "skipped"
    assert second.error is not None
    assert second.error.code == "CONFLICT"
    assert second.error.message == (
        f"skipped: run {first.run_id} of this task is still running "
        "(started 2026-03-02T08:00:00.000Z)")
    assert second.finished_at == second.started_at
    gate.set()
    assert (await service.wait_run(first.run_id, 5)).status == "success"
    assert len(providers["main"].calls) == 1
    third = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert third.status == "success"


async def test_a_run_left_running_by_a_dead_process_stops_blocking(
    service: TaskService, clock: FakeClock
) -> None:
    task = await service.create(spec())
    orphan = (await service.run(task.id)).model_copy(
        update={"run_id": "run_orphan", "status": "running"})
    await service.store.runs.add(orphan)
    assert (await service.run(task.id)).status == "skipped"
    clock.advance(2 * 3600)
    fresh = await service.wait_run((await service.run(task.id)).run_id, 5)
    assert fresh.status == "success"
    abandoned = await service.get_run(task.id, "run_orphan")
    assert abandoned.status == "error"
    assert abandoned.error is not None
    assert abandoned.error.message.startswith("abandoned:")


async def test_results_are_paged_newest_first(service: TaskService, clock: FakeClock) -> None:
    task = await service.create(spec())
    ids = []
    for _ in range(5):
        run = await service.wait_run((await service.run(task.id)).run_id, 5)
        ids.append(run.run_id)
        clock.advance(60)
    page = await service.results(task.name, limit=2, offset=1)
    assert (page.total, page.limit, page.offset) == (5, 2, 1)
    assert [r.run_id for r in page.items] == [ids[3], ids[2]]
    assert [r.run_id for r in (await service.results(task.id)).items] == ids[::-1]
    assert (await service.latest(task.id)).run_id == ids[-1]
    assert (await service.get_run(task.name, ids[0])).started_at == START
    assert (await service.get(task.id)).last_run_at == START + timedelta(seconds=240)


@pytest.mark.parametrize(("limit", "offset", "path"), [(0, 0, "limit"), (501, 0, "limit"),
                                                       (10, -1, "offset")])
async def test_results_paging_bounds(service: TaskService, limit: int, offset: int,
                                     path: str) -> None:
    task = await service.create(spec())
    with pytest.raises(ValidationFailed) as caught:
        await service.results(task.id, limit=limit, offset=offset)
    assert [d["path"] for d in caught.value.details or []] == [path]


async def test_latest_without_runs_and_foreign_run_are_not_found(
    service: TaskService,
) -> None:
    a = await service.create(spec("a"))
    b = await service.create(spec("b"))
    with pytest.raises(NotFound, match="task 'a' has not run yet"):
        await service.latest(a.id)
    run = await service.wait_run((await service.run(b.id)).run_id, 5)
    with pytest.raises(NotFound):
        await service.get_run(a.id, run.run_id)
    with pytest.raises(NotFound):
        await service.get_run(b.id, "run_nope")


async def test_changes_are_audited_with_the_actor(engine: Engine, service: TaskService) -> None:
    task = await service.create(spec(provider="other"), principal=RESTRICTED)
    await service.update(task.id, TaskPatch(prompt="p2"))
    await service.set_enabled(task.id, False)
    run = await service.run(task.id)
    await service.wait_run(run.run_id, 5)
    await service.delete(task.id)
    page = await engine.audit.query(target=task.id)
    entries = [(e.actor, e.action, e.details) for e in reversed(page.items)]
    assert entries == [
        ("ci-bot", "task.create", {"name": "nightly"}),
        ("local", "task.update", {"name": "nightly", "fields": ["prompt"]}),
        ("local", "task.disable", {"name": "nightly"}),
        ("local", "task.run", {"name": "nightly", "runId": run.run_id, "status": "running"}),
        ("local", "task.delete", {"name": "nightly"}),
    ]


async def test_every_change_sets_the_change_event(service: TaskService) -> None:
    seen = []
    for change in ("create", "update", "disable", "delete"):
        event = service.changes()
        if change == "create":
            task = await service.create(spec())
        elif change == "update":
            await service.update(task.id, TaskPatch(prompt="x"))
        elif change == "disable":
            await service.set_enabled(task.id, False)
        else:
            await service.delete(task.id)
        seen.append(event.is_set())
        assert not service.changes().is_set()
    assert seen == [True, True, True, True]


def test_spec_accepts_both_spellings() -> None:
    camel = TaskSpec.model_validate({"name": "n", "schedule": "@daily", "prompt": "p",
                                     "webhookFormat": "slack"})
    snake = TaskSpec(name="n", schedule="@daily", prompt="p", webhook_format="slack")
    assert camel == snake
