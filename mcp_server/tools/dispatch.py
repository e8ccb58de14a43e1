"""Dispatch tools: ``mr_dispatch``, ``mr_providers``, ``mr_history``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from core.clock import iso
from core.models import DispatchRecord, DispatchRequest, Page, ProviderStatus, WireModel
from mcp_server.tools.base import MAX_WAIT_S, Call, ToolGroup

__all__ = ["DEFAULT_WAIT_S", "TOOLS", "ProviderList"]

DEFAULT_WAIT_S = 25.0

TOOLS = ToolGroup()


class ProviderList(WireModel):
    """Every configured provider with its current health."""

    providers: list[ProviderStatus]


def render_record(record: DispatchRecord) -> str:
    """A dispatch as a model or person reads it: the answer, then one line of facts."""
    if record.status == "running":
        return (f"Dispatch {record.id} is still running on {record.provider}. "
                f'Poll it with mr_history(id="{record.id}").')
    if record.status == "error" and record.error is not None:
        head = f"{record.error.code}: {record.error.message}"
    else:
        head = record.text
    usage = record.usage
    facts = (f"[{record.status} · {record.provider or '-'} · {record.model or '-'} · "
             f"{usage.input_tokens}→{usage.output_tokens} tokens · {record.latency_ms} ms · "
             f"{record.id}]")
    if record.truncated:
        facts += " [output truncated at the provider's cap]"
    return f"{head}\n\n{facts}"


def render_providers(listing: ProviderList) -> str:
    lines = []
    for p in listing.providers:
        role = ",".join(r for r, on in (("default", p.default), ("fallback", p.fallback)) if on)
        line = f"{p.name} ({p.type}, model {p.model or '-'}): {p.status}"
        line += f" [{role}]" if role else ""
        if p.last_check:
            line += f", checked {iso(p.last_check)}"
        if p.last_error:
            line += f", last error: {p.last_error}"
        lines.append(line)
    return "\n".join(lines) or "No providers configured."


def render_history(page: Page[DispatchRecord]) -> str:
    if len(page.items) == 1 and page.total == 1:
        return render_record(page.items[0])
    lines = [f"{page.total} dispatches (showing {len(page.items)} from {page.offset})"]
    for r in page.items:
        code = f" {r.error.code}" if r.error else ""
        prompt = " ".join(r.prompt.split())[:60]
        lines.append(f"{iso(r.created_at)} {r.id} {r.status}{code} {r.provider or '-'} "
                     f"{r.latency_ms} ms: {prompt}")
    return "\n".join(lines)


@TOOLS.tool(title="Dispatch a prompt", render=render_record, open_world=True)
async def mr_dispatch(
    call: Call,
    prompt: Annotated[str, Field(min_length=1, description="The prompt to send.")],
    provider: Annotated[str | None, Field(
        min_length=1, description="Provider name (see mr_providers); the default if omitted.",
    )] = None,
    model: Annotated[str | None, Field(
        min_length=1, description="Model override for this call.")] = None,
    system: Annotated[str | None, Field(description="System prompt override.")] = None,
    options: Annotated[dict[str, Any] | None, Field(
        description="Provider-specific options, e.g. {\"temperature\": 0.2}.")] = None,
    wait_s: Annotated[float, Field(
        ge=0, le=MAX_WAIT_S,
        description="Seconds to wait for the answer. Past it the dispatch goes on and this "
                    "returns its record with status 'running'; poll with mr_history(id=…).",
    )] = DEFAULT_WAIT_S,
) -> DispatchRecord:
    """Send a prompt to a model provider (with fallback) and return the dispatch record:
    the answer text, provider, model, token usage and latency."""
    request = DispatchRequest(prompt=prompt, provider=provider, model=model, system=system,
                              options=options or {})
    started: DispatchRecord | None = None

    async def poll(seconds: float) -> DispatchRecord:
        nonlocal started
        if started is None:
            started = await call.engine.dispatch(request, wait_s=seconds,
                                                 principal=call.principal)
            return started
        return await call.engine.wait_dispatch(started.id, seconds)

    return await call.wait(poll, _finished, budget_s=wait_s, label="dispatching")


def _finished(record: DispatchRecord) -> bool:
    return record.status != "running"


@TOOLS.tool(title="List providers", render=render_providers, read_only=True, idempotent=True)
async def mr_providers(call: Call) -> ProviderList:
    """List the configured providers with their type, model, role (default, fallback) and
    health (healthy, degraded, down, unknown)."""
    return ProviderList(providers=await call.engine.list_providers())


@TOOLS.tool(title="Dispatch history", render=render_history, read_only=True, idempotent=True)
async def mr_history(
    call: Call,
    limit: Annotated[int, Field(ge=1, le=100, description="How many dispatches.")] = 20,
    offset: Annotated[int, Field(ge=0, description="How many of the newest to skip.")] = 0,
    provider: Annotated[str | None, Field(
        min_length=1, description="Only dispatches served by this provider.")] = None,
    status: Annotated[Literal["success", "error"] | None, Field(
        description="Only dispatches that ended this way.")] = None,
    id: Annotated[str | None, Field(
        pattern=r"^dsp_[0-9A-Za-z]+$",
        description="One dispatch by id (use it to poll a 'running' dispatch); other "
                    "filters are ignored.",
    )] = None,
) -> Page[DispatchRecord]:
    """Recent dispatches, newest first, or one dispatch by id. A token restricted to some
    providers sees only the dispatches those providers served."""
    if id is not None:
        record = await call.engine.get_dispatch(id, principal=call.principal)
        return Page[DispatchRecord](items=[record], total=1, limit=1, offset=0)
    return await call.engine.history(limit=limit, offset=offset, provider=provider,
                                     status=status, principal=call.principal)
