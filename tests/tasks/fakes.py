"""In-process fakes for task tests: DNS answers, a webhook receiver, sleeps that never sleep.

Nothing here waits on the wall clock: sleeps either record what they were asked or park
until the test lets them go, and the scheduler's clock is a :class:`FakeClock`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.abc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from core.clock import FakeClock
from core.tasks.targets import Resolver


async def no_dns(host: str, port: int) -> Sequence[str]:
    raise OSError(f"test resolver: no DNS for {host}")


def fake_dns(table: dict[str, list[str]]) -> Resolver:
    """A resolver answering from ``table``; unknown names fail as DNS would."""

    async def resolve(host: str, port: int) -> Sequence[str]:
        if host not in table:
            raise OSError(f"test resolver: unknown host {host}")
        return table[host]

    return resolve


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


class ParkedSleeper:
    """The scheduler's sleep, driven by the test.

    Each call records the seconds asked and parks until the test calls :meth:`release`
    (which first moves the fake clock on) or the scheduler's wake event is set. The test
    learns that the scheduler has parked by awaiting :meth:`parked`.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.asked: list[float] = []
        self.woken_early = 0
        self._parked = anyio.Event()
        self._go = anyio.Event()

    async def __call__(self, seconds: float, wake: anyio.Event) -> None:
        self.asked.append(seconds)
        self._go = go = anyio.Event()
        self._parked.set()
        async with anyio.create_task_group() as tg:
            for event in (go, wake):
                tg.start_soon(self._first, event, tg)
        if not go.is_set():
            self.woken_early += 1

    @staticmethod
    async def _first(event: anyio.Event, tg: anyio.abc.TaskGroup) -> None:
        await event.wait()
        tg.cancel_scope.cancel()

    async def parked(self) -> float:
        """Wait until the scheduler sleeps again; the seconds it asked for."""
        with anyio.fail_after(5):
            await self._parked.wait()
        self._parked = anyio.Event()
        return self.asked[-1]

    def release(self, advance: float | None = None) -> None:
        """Move the clock on by ``advance`` (default: what was asked) and wake the sleeper."""
        self.clock.advance(self.asked[-1] if advance is None else advance)
        self._go.set()
