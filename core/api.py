"""The typed interface every edge talks to: the engine in this process, or a remote one.

:class:`~core.engine.Engine` satisfies these protocols structurally (mypy checks it, see
the assignment at the bottom of :mod:`core.engine`), and so does
:class:`~core.remote.RemoteEngine`, which maps each method onto the REST API. MCP tools and
CLI commands are typed against :class:`EngineAPI` only, so they run unchanged against either.

``principal`` arguments say who a local call acts as. A remote engine ignores them: there
the caller is the bearer token, and the server enforces that token's scopes and providers.
The queue's methods join these protocols together with its REST routes.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.audit import AuditEntry
from core.auth import TokenInfo
from core.dispatch import DispatchEvent, Fallback
from core.models import DispatchRecord, DispatchRequest, Page, ProviderStatus
from core.principal import LOCAL, Principal
from core.providers import TextDelta
from core.tasks.models import Run, Task, TaskPatch, TaskSpec

__all__ = [
    "AuditAPI",
    "DispatchEvent",
    "EngineAPI",
    "Fallback",
    "HealthInfo",
    "OnPinged",
    "TasksAPI",
    "TextDelta",
    "TokensAPI",
]

OnPinged = Callable[[ProviderStatus], Awaitable[None]]
"""Called as each provider's ping completes (``ping_all``)."""


@dataclass(frozen=True)
class HealthInfo:
    """What ``GET /api/health`` reports."""

    status: str
    version: str
    uptime_s: float
    providers: dict[str, int]
    """Provider counts by status: healthy, degraded, down (and unknown, locally)."""


class TasksAPI(Protocol):
    """Scheduled tasks and their runs (``engine.tasks``); a task is named by id or name."""

    async def create(self, spec: TaskSpec, *, principal: Principal = LOCAL) -> Task: ...

    async def list(self) -> builtins.list[Task]: ...

    async def get(self, task_id: str) -> Task: ...

    async def update(self, task_id: str, patch: TaskPatch, *,
                     principal: Principal = LOCAL) -> Task: ...

    async def delete(self, task_id: str, *, principal: Principal = LOCAL) -> None: ...

    async def set_enabled(self, task_id: str, enabled: bool, *,
                          principal: Principal = LOCAL) -> Task: ...

    async def run(self, task_id: str, *, principal: Principal = LOCAL) -> Run:
        """Start a run now; returns at once with the run ``running`` (or ``skipped``)."""
        ...

    async def wait_run(self, run_id: str, timeout_s: float) -> Run:
        """The run once finished, or as it is when ``timeout_s`` runs out."""
        ...

    async def wait_settled(self, run_id: str, timeout_s: float) -> Run:
        """Like :meth:`wait_run`, and also until its webhook delivery has ended."""
        ...

    async def results(self, task_id: str, *, limit: int = 20,
                      offset: int = 0) -> Page[Run]: ...

    async def latest(self, task_id: str) -> Run: ...

    async def get_run(self, task_id: str, run_id: str) -> Run: ...


class TokensAPI(Protocol):
    """API tokens (``engine.tokens``). The raw value exists only in ``mint``'s return."""

    async def mint(self, name: str, scopes: Iterable[str],
                   providers: Iterable[str] | None = None) -> tuple[TokenInfo, str]: ...

    async def list(self, include_revoked: bool = False) -> builtins.list[TokenInfo]: ...

    async def get(self, token_id: str) -> TokenInfo: ...

    async def revoke(self, token_id: str) -> TokenInfo: ...


class AuditAPI(Protocol):
    """Reading the audit log (``engine.audit``); entries are written by the engine itself."""

    async def query(
        self, *, actor: str | None = None, target: str | None = None,
        action: str | None = None, since: datetime | None = None,
        until: datetime | None = None, limit: int = 50, offset: int = 0,
    ) -> Page[AuditEntry]: ...


class EngineAPI(Protocol):
    """Dispatch, history, providers and health, with tasks, tokens and audit attached."""

    @property
    def tasks(self) -> TasksAPI: ...

    @property
    def tokens(self) -> TokensAPI: ...

    @property
    def audit(self) -> AuditAPI: ...

    @property
    def in_process(self) -> bool:
        """Whether background work (a task run, a dispatch past its wait) runs in this
        process and so ends with it; False for a remote engine."""
        ...

    async def dispatch(self, req: DispatchRequest, *, wait_s: float | None = None,
                       principal: Principal = LOCAL) -> DispatchRecord:
        """Serve ``req`` (raising its error). With ``wait_s``, a ``running`` record if it
        takes longer; it goes on and lands in history under that id."""
        ...

    def dispatch_stream(self, req: DispatchRequest, *, principal: Principal = LOCAL
                        ) -> AsyncIterator[DispatchEvent]:
        """:class:`TextDelta` s, :class:`Fallback` notices, then the final record."""
        ...

    async def wait_dispatch(self, dispatch_id: str, timeout_s: float) -> DispatchRecord:
        """The dispatch once finished (raising its error if it failed), or its ``running``
        record when ``timeout_s`` runs out."""
        ...

    async def get_dispatch(self, dispatch_id: str) -> DispatchRecord: ...

    async def history(self, *, limit: int = 20, offset: int = 0, provider: str | None = None,
                      status: str | None = None) -> Page[DispatchRecord]: ...

    async def resolve_provider(self, name: str | None) -> tuple[str, bool]:
        """The provider a request naming ``name`` goes to first, and whether it is the
        default; NOT_FOUND for an unknown name."""
        ...

    async def list_providers(self) -> builtins.list[ProviderStatus]: ...

    async def ping_provider(self, name: str) -> ProviderStatus: ...

    async def ping_all(self, on_done: OnPinged | None = None) -> builtins.list[ProviderStatus]:
        """Ping every provider concurrently."""
        ...

    async def health_info(self) -> HealthInfo: ...

    async def aclose(self) -> None:
        """Release what the engine holds (the store; a remote engine's connections)."""
        ...
