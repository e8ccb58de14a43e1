"""Who is calling, and what they may do: the contract every edge enforces.

A :class:`Principal` comes from a bearer token (HTTP edges) or is :data:`LOCAL` (the stdio
MCP server and the local CLI, which act with the rights of whoever owns the home). Scopes
are checked per tool and per route; ``admin`` implies every scope.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from core.errors import Forbidden

__all__ = ["LOCAL", "SCOPES", "Principal", "PrincipalKind"]

SCOPES: dict[str, str] = {
    "dispatch": "send prompts, list providers, read dispatch history",
    "tasks:read": "list scheduled tasks and read their results",
    "tasks:write": "create, change, delete and run scheduled tasks",
    "jobs:read": "list and inspect queue jobs, workers and routing explanations",
    "jobs:write": "submit, update, cancel and retry queue jobs",
    "jobs:approve": "approve or reject held jobs",
    "admin": "everything, including tokens, workers and the audit log",
}

PrincipalKind = Literal["local", "user", "worker"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    name: str
    kind: PrincipalKind
    scopes: frozenset[str] = field(default_factory=frozenset)
    providers: frozenset[str] | None = None
    """Providers this caller may dispatch to; ``None`` means any."""
    token_id: str | None = None
    worker_id: str | None = None

    @property
    def actor(self) -> str:
        """How audit entries name this caller: the token's name or ``worker:NAME``."""
        return f"worker:{self.name}" if self.kind == "worker" else self.name

    def has(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def require(self, scope: str) -> None:
        if not self.has(scope):
            raise Forbidden(f"this token lacks the '{scope}' scope")

    def require_provider(self, provider: str) -> None:
        if self.providers is not None and provider not in self.providers:
            allowed = ", ".join(sorted(self.providers)) or "none"
            raise Forbidden(
                f"this token may not use provider '{provider}' (allowed: {allowed})",
                provider=provider,
            )


LOCAL = Principal(name="local", kind="local", scopes=frozenset({"admin"}))
"""The owner of the home: stdio MCP and the local CLI."""
