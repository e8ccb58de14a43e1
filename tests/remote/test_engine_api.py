"""The local engine and a remote client of it behave alike through :class:`EngineAPI`.

Each test runs twice (fixture ``either``): on the server's own engine, then through
:class:`~core.remote.RemoteEngine` over the real REST app on loopback.
"""

from __future__ import annotations

import anyio
import pytest

from core import __version__
from core.api import EngineAPI
from core.dispatch import Fallback
from core.errors import (
    Conflict,
    NotFound,
    ProviderError,
    RateLimited,
    ValidationFailed,
)
from core.models import DispatchRecord, DispatchRequest, ProviderStatus
from core.providers import TextDelta
from core.tasks.models import TaskPatch, TaskSpec
from tests.support.scripted import ScriptedProvider, Step


async def test_dispatch_returns_the_record(either: EngineAPI) -> None:
    record = await either.dispatch(DispatchRequest(prompt="hi"))
    assert (record.status, record.text, record.provider) == ("success", "ok", "main")
    assert record.id.startswith("dsp_")
    assert record.usage.output_tokens == 2
    assert await either.get_dispatch(record.id) == record


async def test_dispatch_errors_raise_their_class(
    either: EngineAPI, scripted: dict[str, ScriptedProvider],
) -> None:
    scripted["other"].steps.append(Step(error=RateLimited("busy")))
    scripted["backup"].steps.append(Step(error=RateLimited("slow down", retry_after=7)))
    with pytest.raises(RateLimited) as raised:
        await either.dispatch(DispatchRequest(prompt="x", provider="other"))
    assert (raised.value.message, raised.value.retry_after) == ("slow down", 7)
    assert raised.value.provider == "backup"
    with pytest.raises(NotFound, match="unknown provider 'nope'"):
        await either.dispatch(DispatchRequest(prompt="x", provider="nope"))


async def test_stream_yields_deltas_fallback_then_the_record(
    either: EngineAPI, scripted: dict[str, ScriptedProvider],
) -> None:
    scripted["main"].steps.append(Step(deltas=[], error=ProviderError("down")))
    scripted["backup"].steps.append(Step(deltas=["one ", "two"]))
    events = [e async for e in either.dispatch_stream(DispatchRequest(prompt="x"))]
    assert events[0] == Fallback("main", "backup", "PROVIDER_ERROR")
    assert events[1:3] == [TextDelta("one "), TextDelta("two")]
    final = events[3]
    assert isinstance(final, DispatchRecord) and len(events) == 4
    assert (final.text, final.provider, final.status) == ("one two", "backup", "success")
    assert [a.provider for a in final.attempts] == ["main", "backup"]


async def test_a_failure_mid_stream_raises_after_the_deltas(
    either: EngineAPI, scripted: dict[str, ScriptedProvider],
) -> None:
    scripted["main"].steps.append(Step(deltas=["par"], error=ProviderError("cut off")))
    seen: list[object] = []
    with pytest.raises(ProviderError, match="cut off") as raised:
        async for event in either.dispatch_stream(DispatchRequest(prompt="x")):
            seen.append(event)
    assert seen == [TextDelta("par")]
    assert raised.value.provider == "main"


async def test_a_stream_that_cannot_start_raises_before_any_event(either: EngineAPI) -> None:
    with pytest.raises(ValidationFailed):
        async for _ in either.dispatch_stream(DispatchRequest()):
            pass


async def test_a_slow_dispatch_returns_running_then_finishes(
    either: EngineAPI, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["main"].steps.append(Step(deltas=["late"], gate=gate))
    running = await either.dispatch(DispatchRequest(prompt="slow"), wait_s=0)
    assert (running.status, running.provider) == ("running", "main")
    assert (await either.wait_dispatch(running.id, 0)).status == "running"
    assert (await either.get_dispatch(running.id)).status == "running"
    gate.set()
    with anyio.fail_after(10):
        done = await either.wait_dispatch(running.id, 10)
    assert (done.id, done.status, done.text) == (running.id, "success", "late")


async def test_waiting_on_a_failed_dispatch_raises_its_error(
    either: EngineAPI, scripted: dict[str, ScriptedProvider],
) -> None:
    gate = anyio.Event()
    scripted["other"].steps.append(Step(error=ProviderError("bad", retriable=False), gate=gate))
    running = await either.dispatch(DispatchRequest(prompt="x", provider="other"), wait_s=0)
    gate.set()
    with anyio.fail_after(10), pytest.raises(ProviderError, match="bad"):
        await either.wait_dispatch(running.id, 10)


async def test_history_pages_and_filters(either: EngineAPI) -> None:
    for prompt in ("a", "b", "c"):
        await either.dispatch(DispatchRequest(prompt=prompt))
    await either.dispatch(DispatchRequest(prompt="o", provider="other"))
    page = await either.history(limit=2)
    assert (page.total, page.limit, page.offset) == (4, 2, 0)
    assert [r.prompt for r in page.items] == ["o", "c"]
    other = await either.history(provider="other")
    assert [r.prompt for r in other.items] == ["o"]
    with pytest.raises(NotFound):
        await either.get_dispatch("dsp_01NOTTHERE")


async def test_providers_resolve_and_ping(
    either: EngineAPI, scripted: dict[str, ScriptedProvider],
) -> None:
    listed = await either.list_providers()
    assert [p.name for p in listed] == ["main", "backup", "other"]
    assert listed[0].default and listed[1].fallback
    assert await either.resolve_provider(None) == ("main", True)
    assert await either.resolve_provider("other") == ("other", False)
    with pytest.raises(NotFound, match=r"unknown provider 'nope' \(known: main, backup, other\)"):
        await either.resolve_provider("nope")
    scripted["other"].ping_error = ProviderError("unreachable")
    assert (await either.ping_provider("main")).status == "healthy"
    done: list[ProviderStatus] = []

    async def on_done(status: ProviderStatus) -> None:
        done.append(status)

    pinged = await either.ping_all(on_done)
    assert [(p.name, p.status) for p in pinged] == [
        ("main", "healthy"), ("backup", "healthy"), ("other", "down")]
    assert sorted(p.name for p in done) == ["backup", "main", "other"]
    assert "unreachable" in (pinged[2].last_error or "")
    with pytest.raises(NotFound):
        await either.ping_provider("nope")


async def test_health_reports_version_and_counts(either: EngineAPI) -> None:
    await either.ping_provider("main")
    health = await either.health_info()
    assert (health.status, health.version) == ("ok", __version__)
    assert health.providers["healthy"] == 1 and health.providers["down"] == 0
    assert health.uptime_s >= 0


async def test_tasks_round_trip(either: EngineAPI) -> None:
    tasks = either.tasks
    spec = TaskSpec(name="nightly", schedule="0 9 * * *", prompt="report", provider="other")
    created = await tasks.create(spec)
    assert created.id.startswith("task_") and created.next_run_at is not None
    assert await tasks.get("nightly") == created
    assert [t.name for t in await tasks.list()] == ["nightly"]
    changed = await tasks.update(created.id, TaskPatch(prompt="new", provider=None))
    assert (changed.prompt, changed.provider) == ("new", None)
    disabled = await tasks.set_enabled("nightly", False)
    assert (disabled.enabled, disabled.next_run_at) == (False, None)
    with pytest.raises(Conflict):
        await tasks.create(spec)
    with pytest.raises(ValidationFailed) as raised:
        await tasks.create(TaskSpec(name="bad", schedule="61 * * * *", prompt="x"))
    assert isinstance(raised.value.details, list) and raised.value.details[0]["path"]
    await tasks.delete("nightly")
    with pytest.raises(NotFound):
        await tasks.get(created.id)


async def test_a_task_runs_and_its_results_are_read_back(either: EngineAPI) -> None:
    tasks = either.tasks
    task = await tasks.create(TaskSpec(name="now", schedule="@daily", prompt="go"))
    started = await tasks.run("now")
    assert started.task_id == task.id and started.trigger == "manual"
    with anyio.fail_after(10):
        run = await tasks.wait_run(started.run_id, 10)
        settled = await tasks.wait_settled(started.run_id, 10)
    assert (run.status, run.text, run.provider) == ("success", "ok", "main")
    assert settled.run_id == run.run_id
    assert await tasks.latest("now") == run
    assert await tasks.get_run(task.id, run.run_id) == run
    page = await tasks.results("now", limit=5)
    assert (page.total, [r.run_id for r in page.items]) == (1, [run.run_id])
    assert run.dispatch_id is not None
    assert (await either.get_dispatch(run.dispatch_id)).text == "ok"
    with pytest.raises(NotFound):
        await tasks.get_run("now", "run_01NOTTHERE")
