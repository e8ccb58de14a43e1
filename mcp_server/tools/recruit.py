"""``modelreins_recruit`` on the main server: the calling session becomes a worker.

The logic is :func:`channel.recruit.recruit`; this module decides where the channel will
find its jobs, from how the call arrived:

- in-process engine over stdio (``modelreins mcp``): the same home, no URL;
- in-process engine over HTTP (``modelreins serve``): the server's URL (``publicUrl``, else
  the address the call came in on), since the session may run on another machine;
- a remote engine (``MODELREINS_URL``): that server, through its REST API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field

from channel.recruit import (
    MAX_CAPACITY,
    ApiFleet,
    EngineFleet,
    Fleet,
    Recruitment,
    RecruitRequest,
    recruit,
    render,
)
from channel.roots import workspace_root
from core.clock import SystemClock
from core.engine import Engine
from mcp_server.tools.base import Call, ToolGroup

__all__ = ["TOOLS", "call_url"]

TOOLS = ToolGroup()

REMOTE_VIEW_TTL_S = 900.0
"""What a remote server's view links are assumed to live when it does not say."""


def call_url(call: Call, engine: Engine) -> str | None:
    """The base URL the call reached this server at; None over stdio."""
    request = call.ctx.request_context.request
    base = getattr(request, "base_url", None)
    if base is None:
        return None
    return (engine.settings.server.public_url or str(base)).rstrip("/")


def _where(call: Call) -> tuple[Fleet, str | None, Path | None]:
    engine = call.engine
    if isinstance(engine, Engine):
        fleet = EngineFleet(engine.queue, engine.tokens, engine.views, engine.audit,
                            engine.clock, call.principal)
        return fleet, call_url(call, engine), engine.settings.home
    base_url = getattr(engine, "base_url", None)  # a remote engine: its server
    if isinstance(base_url, str):
        return (ApiFleet(engine.fleet, call.principal, base_url, SystemClock(),
                         REMOTE_VIEW_TTL_S), base_url, None)
    raise TypeError(f"cannot recruit through a {type(engine).__name__}")


@TOOLS.tool(title="Recruit this session as a worker", render=render, open_world=True)
async def modelreins_recruit(
    call: Call,
    name: Annotated[str | None, Field(
        description="Worker name (default: the workspace directory and the host, e.g. "
                    "'api-server-devbox').")] = None,
    tags: Annotated[list[str] | None, Field(
        description="Tags to announce, on top of those the workspace shows (languages).",
    )] = None,
    provider: Annotated[str | None, Field(
        description="A provider name the worker speaks, for jobs that ask for one.")] = None,
    capacity: Annotated[int, Field(ge=1, le=MAX_CAPACITY,
                                   description="Jobs the session takes at once.")] = 1,
) -> Recruitment:
    """Turn a Claude Code session into a ModelReins worker. Registers (or re-uses) a worker
    named after the caller's workspace and host, and returns the `claude mcp add` command
    that installs the channel (with a single-use enrollment code valid for minutes, never
    a token), the restart line that loads it, and the VS Code .vscode/mcp.json block."""
    fleet, url, home = _where(call)
    request = RecruitRequest(name=name, tags=tags or [], provider=provider,
                             capacity=capacity)
    return await recruit(fleet, request, root=await workspace_root(call.ctx), url=url,
                         home=home)
