"""``--provider NAME``: jobs answered by a provider configured in the local home."""

from __future__ import annotations

from pathlib import Path

import pytest

from channel.executors import ProviderExecutor, open_provider_executor, provider_call
from core.errors import NotFound, RateLimited
from core.models import Message
from tests.support.scripted import ScriptedProvider, Step
from tests.worker.conftest import running_worker
from tests.worker.fake_server import FakeServer


async def test_jobs_are_answered_by_the_configured_provider(fake: FakeServer, home: Path
                                                            ) -> None:
    job = fake.assign("repeat after me")
    async with open_provider_executor("echo", home) as executor, \
            running_worker(fake.url, executor):
        await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result) == ("done", "repeat after me")


async def test_an_unknown_provider_is_refused_naming_the_configured_ones(home: Path) -> None:
    with pytest.raises(NotFound, match=r"no provider 'nope'.*configured: .*echo"):
        async with open_provider_executor("nope", home):
            pass


async def test_a_provider_failure_fails_the_job_with_its_error(fake: FakeServer) -> None:
    provider = ScriptedProvider("flaky", [Step(error=RateLimited("slow down"))])
    job = fake.assign("hi")
    async with running_worker(fake.url, ProviderExecutor(provider)):
        await fake.until(lambda: fake.closed(job))
    assert (job.status, job.result) == ("failed",
                                        "provider 'flaky' failed: RATE_LIMITED: slow down")


def test_a_job_from_a_fleet_dispatch_becomes_the_same_provider_call() -> None:
    call = provider_call({
        "id": 1, "prompt": "and now?", "model": "m1",
        "input": {"system": "be brief", "options": {"temperature": 0},
                  "messages": [{"role": "user", "content": "hi"},
                               {"role": "assistant", "content": "hello"}]},
    })
    assert call.messages == [Message(role="user", content="hi"),
                             Message(role="assistant", content="hello"),
                             Message(role="user", content="and now?")]
    assert (call.system, call.model, dict(call.options)) == ("be brief", "m1",
                                                             {"temperature": 0})


def test_any_other_input_is_appended_to_the_prompt() -> None:
    call = provider_call({"id": 1, "prompt": "sum", "input": {"values": [1, 2]}})
    assert call.messages == [Message(role="user",
                                     content='sum\n\nInput:\n{\n  "values": [\n    1,\n    2\n'
                                             '  ]\n}\n')]
    assert call.system is None
