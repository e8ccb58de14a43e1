"""The typed interface every edge talks to: the engine in this process, or a remote one.

:class:`~core.engine.Engine` satisfies these protocols structurally (mypy checks it, see
the assignment at the bottom of :mod:`core.engine`), and so does
:class:`~core.remote.RemoteEngine`, which maps each method onto the REST API. MCP tools and
CLI commands are typed against :class:`EngineAPI` only, so they run unchanged against either.

``principal`` arguments say who a local call acts as. A remote engine ignores them: there
the caller is the bearer token, and the server enforces that token's scopes and providers.
The queue (``engine.queue``: jobs, workers, routing explanations) and the fleet
(``engine.fleet``: worker identities with their tokens, route-now dispatch) are typed here
too; their ``actor`` arguments are the local equivalent of ``principal``.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from core.audit import AuditEntry
from core.auth import TokenInfo
from core.dispatch import DispatchEvent, Fallback
from core.fleet import Dispatched, RegisteredWorker
from core.models import DispatchRecord, DispatchRequest, Page, ProviderStatus
from core.principal import LOCAL, Principal
from core.providers import TextDelta
from core.queue import Job, JobPatch, JobSpec, RouteExplanation, Worker
from core.queue.models import Urgency
from core.queue.workers import CapabilityInput
from core.tasks.models import Run, Task, TaskPatch, TaskSpec

__all__ = [
    "AuditAPI",
    "DispatchEvent",
    "EngineAPI",
    "Fallback",
    "FleetAPI",
    "HealthInfo",
    "JobsAPI",
    "OnPinged",
    "QueueAPI",
    "TasksAPI",
    "TextDelta",
    "TokensAPI",
    "WorkersAPI",
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


class JobsAPI(Protocol):
    """Queue jobs for callers and humans (``engine.queue.jobs``)."""

    async def submit(self, spec: JobSpec, *, actor: Principal) -> Job: ...

    async def get(self, job_id: int) -> Job: ...

    async def list(
        self, *, status: str | None = None, tags: str | Sequence[str] | None = None,
        assigned_to: str | None = None, limit: int = 20, offset: int = 0,
    ) -> Page[Job]: ...

    async def update(self, job_id: int, patch: JobPatch, *, actor: Principal) -> Job: ...

    async def cancel(self, job_id: int, *, actor: Principal, reason: str | None = None
                     ) -> Job: ...

    async def retry(self, job_id: int, *, actor: Principal) -> Job: ...

    async def approve(self, job_id: int, *, actor: Principal) -> Job: ...

    async def reject(self, job_id: int, *, actor: Principal, reason: str | None = None
                     ) -> Job: ...

    async def wait_for(self, job_id: int, timeout_s: float) -> Job:
        """The job once terminal, or as it is when ``timeout_s`` runs out."""
        ...


class WorkersAPI(Protocol):
    """The fleet as callers see it (``engine.queue.workers``); registering and revoking,
    which involve tokens, are on :class:`FleetAPI`."""

    async def list(self, *, include_revoked: bool = True) -> builtins.list[Worker]: ...

    async def get(self, id_or_name: str) -> Worker: ...

    async def pause(self, id_or_name: str, *, actor: Principal) -> Worker: ...

    async def resume(self, id_or_name: str, *, actor: Principal) -> Worker: ...


class QueueAPI(Protocol):
    """``engine.queue``: jobs, workers and the router's reasoning."""

    @property
    def jobs(self) -> JobsAPI: ...

    @property
    def workers(self) -> WorkersAPI: ...

    async def explain(
        self, job_tags: str | Sequence[str] | None = None, urgency: Urgency = "normal",
        capability: str | None = None, provider: str | None = None,
    ) -> RouteExplanation: ...

    async def explain_job(self, job_id: int) -> RouteExplanation: ...


class FleetAPI(Protocol):
    """``engine.fleet``: worker identities with their tokens, and route-now dispatch."""

    async def register(
        self, name: str, description: str = "", capabilities: Sequence[CapabilityInput] = (),
        tags: str | Sequence[str] | None = None, *, actor: Principal,
        view_base_url: str | None = None,
    ) -> RegisteredWorker:
        """Admin: a new worker and its token — the raw value (to show once), or with
        ``view_base_url`` a one-time view link to it (a remote engine uses the server's
        own URL for the link and only checks whether one is wanted)."""
        ...

    async def revoke(self, id_or_name: str, *, actor: Principal) -> Worker:
        """Admin: retire the worker and revoke its tokens at once."""
        ...

    async def dispatch(self, spec: JobSpec, *, actor: Principal) -> Dispatched:
        """Create a job and route it now; NO_WORKER (the job cancelled) if nobody can."""
        ...


class EngineAPI(Protocol):
    """Dispatch, history, providers and health, with tasks, tokens and audit attached."""

    @property
    def tasks(self) -> TasksAPI: ...

    @property
    def tokens(self) -> TokensAPI: ...

    @property
    def audit(self) -> AuditAPI: ...

    @property
    def queue(self) -> QueueAPI: ...

    @property
    def fleet(self) -> FleetAPI: ...

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

    async def get_dispatch(self, dispatch_id: str, *, principal: Principal = LOCAL
                           ) -> DispatchRecord:
        """One dispatch; NOT_FOUND also when ``principal`` may not use its provider."""
        ...

    async def history(self, *, limit: int = 20, offset: int = 0, provider: str | None = None,
                      status: str | None = None, principal: Principal = LOCAL
                      ) -> Page[DispatchRecord]:
        """Newest first, showing ``principal`` only dispatches of providers it may use."""
        ...

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
