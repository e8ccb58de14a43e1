"""The intake loop against a scripted backend: transient failures back off and recover,
fatal ones stop it, pull and push share the capacity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from channel.backend import PresenceStatus
from channel.backoff import Backoff
from channel.client import Job
from channel.intake import Intake
from core.errors import Conflict, Unauthorized, Unavailable
from core.queue.models import CloseStatus


@dataclass
class ScriptedBackend:
    """A worker backend whose inbox answers come from a script; errors are raised."""

    inbox_script: list[list[Job] | Exception] = field(default_factory=list)
    heartbeat_errors: list[Exception] = field(default_factory=list)
    taken: set[int] = field(default_factory=set)
    beats: list[PresenceStatus] = field(default_factory=list)
    closed: dict[int, tuple[str, str]] = field(default_factory=dict)
    exhausted: anyio.Event = field(default_factory=anyio.Event)

    @property
    def name(self) -> str:
        return "w"

    async def heartbeat(self, status: PresenceStatus, *, tags: list[str] | None,
                        provider: str | None, capacity: int) -> None:
        if self.heartbeat_errors:
            raise self.heartbeat_errors.pop(0)
        self.beats.append(status)

    async def inbox(self, wait_s: float) -> list[Job]:
        if not self.inbox_script:
            self.exhausted.set()
            await anyio.sleep_forever()
        answer = self.inbox_script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return [j for j in answer if j["id"] not in self.taken]

    async def claim(self, job_id: int) -> Job | None:
        if job_id in self.taken:
            return None
        self.taken.add(job_id)
        return {"id": job_id, "status": "running"}

    async def close(self, job_id: int, result: str, status: CloseStatus) -> dict[str, Any]:
        if job_id not in self.taken:
            raise Conflict(f"job {job_id} is not held")
        self.closed[job_id] = (result, status)
        return {"id": job_id, "status": status}

    async def sign_off(self) -> None:
        return None


def job(ident: int) -> Job:
    return {"id": ident, "prompt": f"job {ident}", "tags": []}


NO_WAIT = Backoff(base=0.0, cap=0.0)


async def run_until_exhausted(intake: Intake, backend: ScriptedBackend) -> list[Job]:
    pushed: list[Job] = []

    async def push(claimed: Job) -> None:
        pushed.append(claimed)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake.run, push)
            await backend.exhausted.wait()
            tg.cancel_scope.cancel()
    return pushed


async def test_transient_failures_back_off_and_the_loop_recovers() -> None:
    backend = ScriptedBackend(inbox_script=[Unavailable("down"), Unavailable("still down"),
                                            [job(1)]],
                              heartbeat_errors=[Unavailable("down")])
    intake = Intake(backend, capacity=2, backoff=NO_WAIT)
    pushed = await run_until_exhausted(intake, backend)
    assert [p["id"] for p in pushed] == [1]
    assert pushed[0]["prompt"] == "job 1" and pushed[0]["status"] == "running"
    assert set(intake.held) == {1}


async def test_a_rejected_token_stops_the_loop() -> None:
    backend = ScriptedBackend(inbox_script=[Unauthorized("token rejected")])
    intake = Intake(backend, backoff=NO_WAIT)
    with pytest.raises(ExceptionGroup) as caught, anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake.run, _ignore)
    assert caught.group_contains(Unauthorized)


async def test_only_capacity_jobs_are_claimed_and_completion_makes_room() -> None:
    backend = ScriptedBackend(inbox_script=[[job(1), job(2), job(3)], [job(2), job(3)]])
    intake = Intake(backend, capacity=1, backoff=NO_WAIT)
    send, receive = anyio.create_memory_object_stream[Job](10)

    with anyio.fail_after(5), send, receive:
        async with anyio.create_task_group() as tg:
            tg.start_soon(intake.run, send.send)
            assert (await receive.receive())["id"] == 1
            assert backend.taken == {1}
            assert intake.presence() == "busy"
            await intake.complete(1, "done one", "done")
            assert (await receive.receive())["id"] == 2
            assert backend.taken == {1, 2}
            tg.cancel_scope.cancel()
    assert backend.closed == {1: ("done one", "done")}


async def test_pull_is_refused_at_capacity_and_a_failed_close_still_frees_the_slot() -> None:
    backend = ScriptedBackend(inbox_script=[[job(5)], [job(6)]])
    intake = Intake(backend, capacity=1)
    assert intake.presence() == "idle"
    pulled = await intake.next()
    assert pulled is not None and pulled["id"] == 5
    with pytest.raises(Conflict, match="complete job"):
        await intake.next()
    backend.taken.discard(5)
    with pytest.raises(Conflict):
        await intake.complete(5, "late", "done")
    assert intake.room == 1
    again = await intake.next()
    assert again is not None and again["id"] == 6


async def _ignore(_: Job) -> None:
    return None
