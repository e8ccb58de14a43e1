"""``GET /api/audit`` (admin): who did what to which target, newest first."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from core.audit import AuditEntry
from core.models import Page
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.paging import Paging

__all__ = ["ENDPOINTS", "AuditQuery", "contribute"]


class AuditQuery(Paging):
    actor: str | None = Field(default=None, description="A token's name, `worker:NAME`, "
                                                        "`local`, `scheduler`, …")
    target: str | None = Field(default=None, description="An id: `dsp_…`, `task_…`, `tok_…`…")
    action: str | None = Field(default=None, description="`dispatch`, `task.create`, "
                                                         "`token.revoke`, …")
    since: AwareDatetime | None = Field(default=None, description="From this instant, "
                                                                  "inclusive.")
    until: AwareDatetime | None = Field(default=None, description="Before this instant.")


async def audit(call: ApiCall) -> Page[AuditEntry]:
    """Read the audit log

    Every mutating call — dispatches, task and token changes, queue and worker events —
    by whom (`actor`), on what (`target`), newest first; all filters combine."""
    q = call.query_as(AuditQuery)
    return await call.engine.audit.query(actor=q.actor, target=q.target, action=q.action,
                                         since=q.since, until=q.until, limit=q.limit,
                                         offset=q.offset)


ENDPOINTS = [
    Endpoint("GET", "/api/audit", audit, "admin", Page[AuditEntry], query=AuditQuery,
             tag="audit"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
