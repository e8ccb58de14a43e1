from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from core.dispatch import Fallback
from core.engine import Engine, open_memory_store
from core.errors import (
    Forbidden,
    ModelReinsError,
    NotFound,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    ValidationFailed,
)
from core.models import DispatchRecord, DispatchRequest, Message
from core.principal import Principal
from core.providers import TextDelta
from tests.support.scripted import ScriptedProvider, Step, settings_for


@pytest.fixture
def providers() -> dict[str, ScriptedProvider]:
    return {name: ScriptedProvider(name) for name in ("main", "backup", "spare", "other")}


@pytest.fixture
async def engine(providers: dict[str, ScriptedProvider], tmp_path: Path) -> AsyncIterator[Engine]:
    settings = settings_for(main="default", backup="fallback", spare="fallback", other="")
    async with Engine.open(tmp_path, settings=settings, store=open_memory_store()) as eng:
        eng.providers.clear()
        eng.providers.update(providers)
        yield eng


def req(prompt: str = "hi", **kw: object) -> DispatchRequest:
    return DispatchRequest(prompt=prompt, **kw)  # type: ignore[arg-type]


async def test_default_provider_answers_and_history_records(engine: Engine) -> None:
    record = await engine.dispatch(req("hello"))
    assert (record.status, record.provider, record.text) == ("success", "main", "ok")
    assert [a.provider for a in record.attempts] == ["main"]
    assert record.id.startswith("dsp_")
    stored = await engine.get_dispatch(record.id)
    assert stored == record


@pytest.mark.parametrize(
    "error",
    [
        RateLimited("slow down", retry_after=7),
        ProviderError("HTTP 500"),
        ProviderTimeout("no answer"),
        ProviderError("connection refused"),
    ],
    ids=["429", "5xx", "timeout", "connection"],
)
async def test_retriable_failure_falls_back_in_config_order(
    engine: Engine, providers: dict[str, ScriptedProvider], error: ModelReinsError
) -> None:
    providers["main"].steps = [Step(error=error)]
    record = await engine.dispatch(req())
    assert record.provider == "backup"
    assert [(a.provider, a.code) for a in record.attempts] == [("main", error.code),
                                                               ("backup", None)]


async def test_whole_chain_failing_raises_last_error_and_records_it(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    for name in ("main", "backup"):
        providers[name].steps = [Step(error=ProviderError(f"{name} down"))]
    providers["spare"].steps = [Step(error=RateLimited("spare busy", retry_after=3))]
    with pytest.raises(RateLimited) as info:
        await engine.dispatch(req())
    assert info.value.provider == "spare"
    page = await engine.history(status="error")
    assert page.total == 1
    [failed] = page.items
    assert failed.error is not None and failed.error.code == "RATE_LIMITED"
    assert failed.error.retry_after == 3
    assert [a.provider for a in failed.attempts] == ["main", "backup", "spare"]


async def test_upstream_4xx_is_not_retried(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    providers["main"].steps = [Step(error=ProviderError("bad request", retriable=False))]
    with pytest.raises(ProviderError):
        await engine.dispatch(req())
    assert providers["backup"].calls == []


async def test_named_provider_then_fallbacks_skip_itself(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    providers["backup"].steps = [Step(error=ProviderError("x"))]
    record = await engine.dispatch(req(provider="backup"))
    assert [a.provider for a in record.attempts] == ["backup", "spare"]


async def test_non_fallback_provider_named_explicitly(engine: Engine) -> None:
    record = await engine.dispatch(req(provider="other"))
    assert record.provider == "other"


async def test_unknown_provider_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound, match="unknown provider 'nope'"):
        await engine.dispatch(req(provider="nope"))


async def test_no_default_and_no_provider_is_validation_error(tmp_path: Path) -> None:
    async with Engine.open(tmp_path, settings=settings_for(a=""), store=open_memory_store()) as e:
        with pytest.raises(ValidationFailed, match="no default provider"):
            await e.dispatch(req())


async def test_empty_prompt_is_validation_error(engine: Engine) -> None:
    with pytest.raises(ValidationFailed, match="prompt"):
        await engine.dispatch(DispatchRequest())


async def test_multi_turn_and_overrides_reach_the_provider(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    history = [Message(role="user", content="2+2?"), Message(role="assistant", content="4")]
    await engine.dispatch(DispatchRequest(messages=history, prompt="and 3+3?", model="m1",
                                          system="terse", options={"temperature": 0.1}))
    [call] = providers["main"].calls
    assert [m.content for m in call.messages] == ["2+2?", "4", "and 3+3?"]
    assert (call.model, call.system, dict(call.options)) == ("m1", "terse", {"temperature": 0.1})


async def test_provider_restricted_principal(engine: Engine,
                                             providers: dict[str, ScriptedProvider]) -> None:
    only_backup = Principal(name="t", kind="user", scopes=frozenset({"dispatch"}),
                            providers=frozenset({"backup"}))
    with pytest.raises(Forbidden):
        await engine.dispatch(req(), principal=only_backup)
    providers["backup"].steps = [Step(error=ProviderError("down"))]
    with pytest.raises(ProviderError):
        await engine.dispatch(req(provider="backup"), principal=only_backup)
    assert providers["spare"].calls == [], "fallback must not leave the allowed providers"


async def collect(engine: Engine, request: DispatchRequest) -> list[object]:
    return [event async for event in engine.dispatch_stream(request)]


async def test_stream_yields_deltas_then_record(engine: Engine,
                                                providers: dict[str, ScriptedProvider]) -> None:
    providers["main"].steps = [Step(deltas=["a", "b", "c"])]
    events = await collect(engine, req())
    assert events[:3] == [TextDelta("a"), TextDelta("b"), TextDelta("c")]
    record = events[3]
    assert isinstance(record, DispatchRecord) and record.text == "abc"


async def test_stream_falls_back_before_first_byte(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    providers["main"].steps = [Step(deltas=[], error=ProviderTimeout("no first byte"))]
    providers["backup"].steps = [Step(deltas=["fine"])]
    events = await collect(engine, req())
    assert events[0] == Fallback("main", "backup", "PROVIDER_TIMEOUT")
    assert events[1] == TextDelta("fine")
    assert isinstance(events[2], DispatchRecord) and events[2].provider == "backup"


async def test_stream_failing_mid_way_raises_and_records_partial(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    providers["main"].steps = [Step(deltas=["par", "tial"], error=ProviderError("dropped"))]
    seen: list[object] = []
    with pytest.raises(ProviderError, match="dropped"):
        async for event in engine.dispatch_stream(req()):
            seen.append(event)
    assert seen == [TextDelta("par"), TextDelta("tial")]
    assert providers["backup"].calls == [], "no fallback after bytes were sent"
    [failed] = (await engine.history(status="error")).items
    assert failed.text == "partial"


async def start_held(engine: Engine, providers: dict[str, ScriptedProvider]
                     ) -> tuple[anyio.Event, DispatchRecord]:
    """A dispatch to ``main`` that answers "late" once the returned gate is set, started
    with no wait: the gate and the record it returned at once."""
    gate = anyio.Event()
    providers["main"].steps = [Step(deltas=["late"], gate=gate)]
    return gate, await engine.dispatch(req(), wait_s=0)


async def test_wait_budget_returns_running_then_history_has_result(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    gate, running = await start_held(engine, providers)
    assert running.status == "running"
    assert (await engine.get_dispatch(running.id)).status == "running"
    gate.set()
    with anyio.fail_after(5):
        while (await engine.get_dispatch(running.id)).status == "running":
            await anyio.lowlevel.checkpoint()
    done = await engine.get_dispatch(running.id)
    assert (done.status, done.text) == ("success", "late")


async def test_wait_budget_returns_result_when_fast(engine: Engine) -> None:
    record = await engine.dispatch(req(), wait_s=5)
    assert record.status == "success"


async def test_wait_budget_checks_the_request_at_once_and_keeps_its_restrictions(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    only_backup = Principal(name="t", kind="user", scopes=frozenset({"dispatch"}),
                            providers=frozenset({"backup"}))
    with pytest.raises(Forbidden):
        await engine.dispatch(req(), wait_s=5, principal=only_backup)
    with pytest.raises(NotFound):
        await engine.dispatch(req(provider="nope"), wait_s=5)
    with pytest.raises(ValidationFailed):
        await engine.dispatch(DispatchRequest(), wait_s=5)
    assert (await engine.history()).total == 0, "nothing started, nothing recorded"
    providers["backup"].steps = [Step(error=ProviderError("down"))]
    with pytest.raises(ProviderError):
        await engine.dispatch(req(provider="backup"), wait_s=5, principal=only_backup)
    assert providers["spare"].calls == [], "the background run keeps to the allowed providers"
    [failed] = (await engine.history()).items
    assert (failed.status, failed.provider) == ("error", "backup")


async def test_waiter_cancelled_leaves_the_dispatch_running(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    gate, running = await start_held(engine, providers)
    with anyio.move_on_after(0) as waiting:
        await engine.wait_dispatch(running.id, 30)
    assert waiting.cancelled_caught
    gate.set()
    with anyio.fail_after(5):
        done = await engine.wait_dispatch(running.id, 30)
    assert (done.status, done.text) == ("success", "late")


async def test_a_bug_outside_the_providers_is_internal_and_the_engine_keeps_serving(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded = engine.store.dispatches.add

    async def broken(record: DispatchRecord) -> None:
        monkeypatch.setattr(engine.store.dispatches, "add", recorded)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(engine.store.dispatches, "add", broken)
    with pytest.raises(ModelReinsError) as caught:
        await engine.dispatch(req(), wait_s=5)
    assert caught.value.code == "INTERNAL"
    assert "disk on fire" not in str(caught.value)
    assert (await engine.dispatch(req(), wait_s=5)).status == "success"


async def test_closing_the_engine_cancels_its_background_dispatches(tmp_path: Path) -> None:
    stalled = ScriptedProvider("main")
    stalled.steps = [Step(deltas=["never"], gate=anyio.Event())]
    with anyio.fail_after(5):
        async with Engine.open(tmp_path, settings=settings_for(main="default"),
                               store=open_memory_store()) as eng:
            eng.providers.clear()
            eng.providers.update(main=stalled)
            running = await eng.dispatch(req(), wait_s=0)
            task = eng._inflight[running.id].task
            assert task is not None and not task.done()
    assert task.cancelled()
    assert not eng._inflight


async def test_closing_the_engine_releases_whoever_waits_on_a_dispatch(tmp_path: Path) -> None:
    stalled = ScriptedProvider("main")
    stalled.steps = [Step(deltas=["never"], gate=anyio.Event())] * 2
    seen: list[str] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg, \
                Engine.open(tmp_path, settings=settings_for(main="default"),
                            store=open_memory_store()) as eng:
            eng.providers.clear()
            eng.providers.update(main=stalled)
            waited = eng.start_dispatch(req())

            async def wait() -> None:
                seen.append((await waited.wait(30)).status)

            tg.start_soon(wait)
            await anyio.wait_all_tasks_blocked()
            # Closing at once: this one is cancelled before its task ever ran.
            unstarted = eng.start_dispatch(req())
        assert seen == ["running"]
        assert (await unstarted.wait(30)).status == "running"


async def test_unexpected_provider_bug_becomes_provider_error(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    providers["main"].steps = [Step(error=None, deltas=[])]

    async def broken(call: object) -> object:
        raise KeyError("oops")

    providers["main"].complete = broken  # type: ignore[method-assign,assignment]
    record = await engine.dispatch(req())
    assert record.attempts[0].code == "PROVIDER_ERROR"
    assert record.provider == "backup"


async def test_history_filters_and_pages(engine: Engine,
                                         providers: dict[str, ScriptedProvider]) -> None:
    for i in range(5):
        await engine.dispatch(req(f"p{i}"))
    await engine.dispatch(req("o", provider="other"))
    page = await engine.history(limit=2, offset=1)
    assert page.total == 6 and [r.prompt for r in page.items] == ["p4", "p3"]
    assert (await engine.history(provider="other")).total == 1


async def test_provider_status_from_outcomes_and_ping(
    engine: Engine, providers: dict[str, ScriptedProvider]
) -> None:
    statuses = {s.name: s.status for s in await engine.list_providers()}
    assert statuses["main"] == "unknown"
    await engine.dispatch(req())
    providers["other"].ping_error = ProviderError("nope", provider="other")
    pinged = await engine.ping_provider("other")
    assert (pinged.status, pinged.last_error) == ("down", "PROVIDER_ERROR: nope")
    statuses = {s.name: s.status for s in await engine.list_providers()}
    assert statuses["main"] == "healthy"
