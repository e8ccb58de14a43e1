"""A client of a ModelReins server that is an :class:`~core.api.EngineAPI`.

``async with RemoteEngine.open(url, token) as engine:`` gives an object the CLI and the MCP
tools use exactly as they use the local engine; every method maps onto one REST route
(DESIGN §6). Failures come back as the same :mod:`core.errors` classes the engine raises,
rebuilt from the §5 error body by its ``code``; failures to reach the server at all are
:class:`~core.errors.Unavailable` with the reason (see :mod:`core.remote.wire`).

``principal`` arguments are accepted and ignored: the caller is the bearer token, and the
server holds it to its own scopes and providers. Work that outlives a call (a task run, a
dispatch past its wait) runs on the server, so ``in_process`` is False. A dispatch with a
wait budget uses ``POST /api/dispatch?waitS=``; runs and background dispatches are polled.
"""

from __future__ import annotations

import builtins
import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
from anyio.abc import TaskGroup

from core.api import DispatchEvent, EngineAPI, HealthInfo, OnPinged
from core.dispatch import Fallback
from core.engine import NODELAY
from core.errors import ModelReinsError, NotFound, Unavailable, error_from_wire, field_error
from core.models import DispatchRecord, DispatchRequest, Page, ProviderStatus, WireModel
from core.principal import LOCAL, Principal
from core.providers import TextDelta
from core.remote.queue import RemoteFleet, RemoteQueue
from core.remote.services import RemoteAudit, RemoteTasks, RemoteTokens
from core.remote.wire import Wire, part, poll
from core.sse import sse_events

__all__ = ["DEFAULT_TIMEOUT_S", "DISPATCH_TIMEOUT_S", "RemoteEngine"]

DEFAULT_TIMEOUT_S = 30.0
"""How long an ordinary call may take before it fails as UNAVAILABLE."""
DISPATCH_TIMEOUT_S = 600.0
"""How long a dispatch may take (providers with fallbacks can be slow; a stream may be
silent until its CLI provider prints)."""


class _Delta(WireModel):
    text: str


class _Fallback(WireModel):
    from_provider: str
    to_provider: str
    code: str


class _Failed(WireModel):
    error: dict[str, Any]


def _stream_event(name: str, data: Any, wire: Wire) -> DispatchEvent | ModelReinsError | None:
    """One SSE event of ``POST /api/dispatch`` (``stream: true``) as the engine's event, or
    the error it carries; None for an event this client does not know (skipped)."""
    if name == "delta":
        return TextDelta(wire.model(_Delta, data).text)
    if name == "fallback":
        fell = wire.model(_Fallback, data)
        return Fallback(fell.from_provider, fell.to_provider, fell.code)
    if name == "dispatch":
        return wire.model(DispatchRecord, data)
    if name == "error":
        return error_from_wire(wire.model(_Failed, data).error)
    return None


def _new_client() -> httpx2.AsyncClient:
    # TCP_NODELAY as the engine's own client has it (see core.engine.NODELAY); like that
    # client it connects directly (an explicit transport leaves proxy variables unused).
    transport = httpx2.AsyncHTTPTransport(socket_options=NODELAY)
    return httpx2.AsyncClient(transport=transport, follow_redirects=False)


class RemoteEngine:
    """The engine of a ModelReins server, reached over its REST API (see the module doc)."""

    in_process = False

    def __init__(self, base_url: str, token: str | None, *,
                 http: httpx2.AsyncClient | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 dispatch_timeout_s: float = DISPATCH_TIMEOUT_S) -> None:
        self._owns_http = http is None
        self._wire = Wire(base_url, token, http or _new_client(), timeout_s)
        self.dispatch_timeout_s = dispatch_timeout_s
        self.tasks = RemoteTasks(self._wire)
        self.tokens = RemoteTokens(self._wire)
        self.audit = RemoteAudit(self._wire)
        self.queue = RemoteQueue(self._wire)
        self.fleet = RemoteFleet(self._wire, self.queue.workers)

    @property
    def base_url(self) -> str:
        return self._wire.base_url

    @classmethod
    @asynccontextmanager
    async def open(cls, base_url: str, token: str | None, *,
                   http: httpx2.AsyncClient | None = None,
                   timeout_s: float = DEFAULT_TIMEOUT_S) -> AsyncIterator[RemoteEngine]:
        """A client of the server at ``base_url``, closed when the block ends. Opening does
        not contact the server: the first call does (and fails with UNAVAILABLE if it is
        not there)."""
        engine = cls(base_url, token, http=http, timeout_s=timeout_s)
        try:
            yield engine
        finally:
            await engine.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._wire.http.aclose()

    # -- dispatch -------------------------------------------------------------------------

    async def dispatch(self, req: DispatchRequest, *, wait_s: float | None = None,
                       principal: Principal = LOCAL) -> DispatchRecord:
        body = req.model_copy(update={"stream": False}).wire()
        params = {"waitS": wait_s} if wait_s is not None else None
        budget = self.dispatch_timeout_s if wait_s is None else wait_s + self._wire.timeout_s
        data = await self._wire.call("POST", "/api/dispatch", body=body, params=params,
                                     timeout_s=budget)
        return self._wire.model(DispatchRecord, data)

    async def dispatch_stream(self, req: DispatchRequest, *, principal: Principal = LOCAL
                              ) -> AsyncIterator[DispatchEvent]:
        body = req.model_copy(update={"stream": True}).wire()
        async with self._wire.stream("POST", "/api/dispatch", body=body,
                                     timeout_s=self.dispatch_timeout_s) as lines:
            async for sse in sse_events(lines):
                try:
                    data = json.loads(sse.data)
                except ValueError:
                    raise Unavailable(f"{self.base_url} sent a malformed '{sse.event}' "
                                      "event") from None
                event = _stream_event(sse.event, data, self._wire)
                if isinstance(event, ModelReinsError):
                    raise event
                if event is None:
                    continue
                yield event
                if isinstance(event, DispatchRecord):
                    return
        raise Unavailable(f"the stream from {self.base_url} ended without a final record")

    async def wait_dispatch(self, dispatch_id: str, timeout_s: float) -> DispatchRecord:
        record = await poll(lambda: self.get_dispatch(dispatch_id),
                            lambda r: r.status != "running", timeout_s)
        if record.status == "error" and record.error is not None:
            raise error_from_wire(record.error.wire())
        return record

    async def get_dispatch(self, dispatch_id: str, *, principal: Principal = LOCAL
                           ) -> DispatchRecord:
        data = await self._wire.get(f"/api/dispatches/{part(dispatch_id)}")
        return self._wire.model(DispatchRecord, data)

    async def history(self, *, limit: int = 20, offset: int = 0, provider: str | None = None,
                      status: str | None = None, principal: Principal = LOCAL
                      ) -> Page[DispatchRecord]:
        data = await self._wire.get("/api/dispatches", limit=limit, offset=offset,
                                    provider=provider, status=status)
        return self._wire.page(DispatchRecord, data)

    # -- providers ------------------------------------------------------------------------

    async def resolve_provider(self, name: str | None) -> tuple[str, bool]:
        providers = await self.list_providers()
        if name is not None:
            chosen = next((p for p in providers if p.name == name), None)
            if chosen is None:
                known = ", ".join(p.name for p in providers) or "none configured"
                raise NotFound(f"unknown provider '{name}' (known: {known})")
            return chosen.name, chosen.default
        default = next((p for p in providers if p.default), None)
        if default is None:
            raise field_error("provider", "no provider given and no default provider configured")
        return default.name, True

    async def list_providers(self) -> builtins.list[ProviderStatus]:
        return self._wire.models(ProviderStatus, await self._wire.get("/api/providers"))

    async def ping_provider(self, name: str) -> ProviderStatus:
        data = await self._wire.call("POST", f"/api/providers/{part(name)}/ping")
        return self._wire.model(ProviderStatus, data)

    async def ping_all(self, on_done: OnPinged | None = None) -> builtins.list[ProviderStatus]:
        names = [p.name for p in await self.list_providers()]
        results: dict[str, ProviderStatus] = {}
        failures: builtins.list[ModelReinsError] = []

        async def one(name: str, tg: TaskGroup) -> None:
            try:
                results[name] = await self.ping_provider(name)
            except ModelReinsError as exc:
                # The first failure (unreachable, token rejected) ends them all, raised
                # as itself rather than inside an ExceptionGroup.
                failures.append(exc)
                tg.cancel_scope.cancel()
                return
            if on_done:
                await on_done(results[name])

        async with anyio.create_task_group() as tg:
            for name in names:
                tg.start_soon(one, name, tg)
        if failures:
            raise failures[0]
        return [results[n] for n in names]

    async def health_info(self) -> HealthInfo:
        data = await self._wire.get("/api/health")
        try:
            providers = {str(k): int(v) for k, v in dict(data["providers"]).items()}
            uptime = float(data["uptime"])
            if not math.isfinite(uptime):
                raise ValueError(uptime)
            return HealthInfo(status=str(data["status"]), version=str(data["version"]),
                              uptime_s=uptime, providers=providers)
        except (KeyError, TypeError, ValueError) as exc:
            raise self._wire.unlike("unexpected /api/health") from exc


def _satisfies_api(engine: RemoteEngine) -> EngineAPI:
    return engine  # mypy proves here that the client implements the edges' interface
