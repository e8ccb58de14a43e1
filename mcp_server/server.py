"""The main MCP server: every ``mr_*`` tool on one :class:`MCPServer`, for any transport."""

from __future__ import annotations

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.tools import Tool

from core import __version__
from core.principal import LOCAL, Principal
from mcp_server.tools import tool_groups
from mcp_server.tools.base import EngineSource, PrincipalSource, adapt

__all__ = ["INSTRUCTIONS", "SERVER_NAME", "build_server", "local_principal"]

SERVER_NAME = "modelreins"

INSTRUCTIONS = """\
ModelReins dispatches prompts to configured model providers (with fallback) and runs \
scheduled prompt tasks. mr_providers lists providers; mr_dispatch sends a prompt and waits \
up to wait_s seconds: if the answer takes longer it returns status 'running' with an id to \
poll via mr_history(id=...). mr_task_* create, list, run and inspect scheduled tasks; \
mr_task_run returns a runId to poll with mr_task_result when the run outlasts its wait. \
mr_job_submit queues work for the worker fleet (the router picks the worker; \
mr_explain shows why), mr_job_status / mr_job_list follow it, mr_job_cancel stops it, \
mr_job_approve decides on jobs held for a human; mr_workers lists the fleet. A provider of \
type fleet sends mr_dispatch prompts to the fleet as jobs. \
modelreins_recruit turns a Claude Code session into a queue worker: it returns a command \
to paste (with a single-use enrollment code) and a restart line. \
Errors carry a code (NOT_FOUND, VALIDATION_ERROR, FORBIDDEN, RATE_LIMITED, PROVIDER_ERROR, \
PROVIDER_TIMEOUT, NO_WORKER, ...) in the text and in structuredContent.error."""


def local_principal(_: Context) -> Principal:
    """Every call acts as the owner of the home (stdio: whoever started the process)."""
    return LOCAL


def build_server(
    engine: EngineSource,
    *,
    principal_of: PrincipalSource = local_principal,
    modules: list[str] | None = None,
    name: str = SERVER_NAME,
) -> MCPServer:
    """An MCP server exposing the tool families in ``modules`` (default: all).

    ``engine`` is called per tool call, so the server can be built before the engine opens
    (the HTTP app opens it in its lifespan). ``principal_of`` says who is calling: the local
    owner on stdio, the bearer token's principal over HTTP.
    """
    tools: list[Tool] = [adapt(spec, engine, principal_of)
             for group in tool_groups(modules) for spec in group.specs]
    return MCPServer(name, version=__version__, instructions=INSTRUCTIONS, tools=tools,
                     log_level="WARNING")
