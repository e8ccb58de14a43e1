"""``modelreins channel``: a stdio MCP server that is a Claude Code *channel*.

It declares the experimental capability ``claude/channel``, heartbeats as its worker, and
pushes every job it claims as a ``notifications/claude/channel`` event; the session answers
with ``mr_job_complete``. Clients without channel support pull with ``mr_job_next``.

Why the classic handshake only: a client reads a server's experimental capabilities from
the ``initialize`` result. The SDK's default loop also serves the stateless 2026-07-28 era,
and answers a client that probes it first (``server/discover``) with a discover result that
carries no experimental capabilities — such a client adopts the new era and never learns
this server is a channel. So this server runs the handshake-era loop and refuses the probe
(and any request carrying the 2026 envelope) with METHOD_NOT_FOUND, the answer that makes
a probing client fall back to ``initialize``, where ``claude/channel`` is declared.

Events are pushed only to a client that can show them: one that declares ``claude/channel``
(as an experimental capability or an extension) or identifies as Claude Code, which
surfaces them when started with ``--dangerously-load-development-channels``. Any other
client gets pull mode: nothing is claimed until it calls ``mr_job_next``. Pushing starts
:data:`SETTLE_S` after the handshake, so the brief connections of health checks (``claude
mcp list``) never claim a job.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import mcp_types as types
from mcp.server.connection import Connection
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.runner import serve_connection
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.exceptions import MCPError
from mcp.shared.jsonrpc_dispatcher import JSONRPCDispatcher
from mcp.shared.message import SessionMessage
from mcp.shared.transport_context import TransportContext
from pydantic import Field

from channel.client import Job
from channel.events import CHANNEL_METHOD, channel_event, job_content
from channel.intake import FATAL, Intake
from channel.recruit import CHANNEL_SERVER_NAME, Recruitment, RecruitRequest, render
from channel.roots import workspace_root
from core import __version__
from core.errors import ModelReinsError

__all__ = [
    "CHANNEL_CAPABILITY",
    "INSTRUCTIONS",
    "SETTLE_S",
    "ChannelServer",
    "PushPolicy",
    "Recruiter",
    "classic_only",
    "error_result",
    "wants_push",
]

CHANNEL_CAPABILITY = "claude/channel"
SETTLE_S = 3.0
"""How long a client must stay connected before jobs are pushed to it. ``claude mcp list``
and ``claude mcp get`` connect every server for a health check and drop it within a
second: a job pushed then would be claimed and lost until its lease ran out. A session
also registers its channel handler only after the handshake."""
PROTOCOL_VERSION_META = "io.modelcontextprotocol/protocolVersion"

PushPolicy = Literal["auto", "always", "never"]
Recruiter = Callable[[RecruitRequest, Path], Awaitable[Recruitment]]
"""Recruits for a workspace root (the channel's own engine, when it has one)."""

INSTRUCTIONS = """\
This server makes this session a ModelReins worker. Jobs routed to the worker arrive as \
channel events: <channel source="modelreins-channel" job_id="42" tags="code,review" \
timeout_s="1800" ...> holding the job's prompt (and its input) followed by how to answer. \
Treat each as a task from the ModelReins queue: do the work, then call \
mr_job_complete(job_id=42, result="<your full answer>", status="done") — status "failed" \
if it cannot be done, "escalated" if a human must decide. The result is what the job's \
submitter receives, so put the complete answer in it. Each job is answered exactly once. \
If no channel events arrive (a client without channel support), call mr_job_next() to \
take the next job assigned to this worker; it returns nothing when none is waiting. \
modelreins_recruit prints the command that turns another Claude Code session into a worker."""

log = logging.getLogger("modelreins.channel")


def error_result(exc: ModelReinsError) -> types.CallToolResult:
    """A tool result for an engine error: ``isError`` and the §5 code in text and structure."""
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=str(exc))],
        structured_content={"error": exc.to_dict()}, is_error=True)


def _result(text: str, data: dict[str, Any]) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)],
                                structured_content=data)


def _enveloped(params: Mapping[str, Any] | None) -> bool:
    meta = (params or {}).get("_meta")
    return isinstance(meta, Mapping) and PROTOCOL_VERSION_META in meta


async def classic_only(ctx: ServerRequestContext[Any, Any], call_next: CallNext
                       ) -> HandlerResult:
    """Middleware: refuse the 2026-era probe and enveloped requests with METHOD_NOT_FOUND,
    so a probing client falls back to the ``initialize`` handshake."""
    if ctx.request_id is not None and (ctx.method == "server/discover"
                                       or _enveloped(ctx.params)):
        raise MCPError(code=types.METHOD_NOT_FOUND,
                       message="this channel server speaks the initialize handshake only; "
                       "send initialize", data=ctx.method)
    return await call_next(ctx)


def _first(group: BaseExceptionGroup[ModelReinsError]) -> ModelReinsError:
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else first


def wants_push(params: types.InitializeRequestParams | None) -> bool:
    """Whether a client surfaces channel events (see the module doc)."""
    if params is None:
        return False
    caps = params.capabilities
    if CHANNEL_CAPABILITY in (caps.experimental or {}) or \
            CHANNEL_CAPABILITY in (caps.extensions or {}):
        return True
    return params.client_info.name == "claude-code"


class ChannelServer:
    """The channel MCP server for one worker's :class:`~channel.intake.Intake`."""

    def __init__(self, intake: Intake, *, recruiter: Recruiter | None = None,
                 push: PushPolicy = "auto", settle_s: float = SETTLE_S,
                 name: str = CHANNEL_SERVER_NAME) -> None:
        self.intake = intake
        self.recruiter = recruiter
        self.push = push
        self.settle_s = settle_s
        self.pushing = False
        self.mode_chosen = anyio.Event()
        """Set once the client is initialized and push or pull mode is decided."""
        self.failure: ModelReinsError | None = None
        """The error that stopped the worker (a revoked token, a deleted worker)."""
        self.stopped = anyio.Event()
        self.mcp: MCPServer = MCPServer(
            name, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING",
            middleware=[classic_only])
        hints = types.ToolAnnotations
        for tool, title, tool_hints in (
            (self.mr_job_complete, "Complete a job",
             hints(idempotent_hint=True, open_world_hint=False)),
            (self.mr_job_next, "Take the next job", hints(open_world_hint=False)),
            (self.modelreins_recruit, "Recruit a session as a worker",
             hints(open_world_hint=False)),
        ):
            self.mcp.add_tool(tool, name=tool.__name__, title=title, annotations=tool_hints,
                              description=inspect.cleandoc(tool.__doc__ or ""))

    async def mr_job_complete(
        self,
        job_id: Annotated[int, Field(description="The job_id of the channel event.")],
        result: Annotated[str, Field(description="Your complete answer: what the job's "
                                     "submitter receives.")],
        status: Annotated[Literal["done", "failed", "escalated"], Field(
            description="done; failed when it cannot be done; escalated when a human "
            "must decide.")] = "done",
    ) -> types.CallToolResult:
        """Answer a ModelReins job this session received: records the result once and
        frees the slot for the next job."""
        try:
            job = await self.intake.complete(job_id, result, status)
        except ModelReinsError as exc:
            return error_result(exc)
        return _result(f"Job {job_id} closed as {status}; its result went to the queue.",
                       {"job_id": job_id, "status": job.get("status", status)})

    async def mr_job_next(self) -> types.CallToolResult:
        """Take the next job assigned to this worker (for clients without channel events):
        returns its prompt and how to answer, or says none is waiting."""
        try:
            job = await self.intake.next()
        except ModelReinsError as exc:
            return error_result(exc)
        if job is None:
            return _result("No job is waiting for this worker.", {"job": None})
        return _result(job_content(job), {"job": job})

    async def modelreins_recruit(
        self,
        ctx: Context,
        name: Annotated[str | None, Field(description="Worker name (default: workspace "
                                          "directory and host).")] = None,
        tags: Annotated[list[str] | None, Field(description="Tags to add to those the "
                                                "workspace shows.")] = None,
        provider: Annotated[str | None, Field(description="Provider the worker "
                                              "speaks, if jobs should name it.")] = None,
        capacity: Annotated[int, Field(ge=1, le=32, description="Jobs at once.")] = 1,
    ) -> types.CallToolResult:
        """Make another Claude Code session a ModelReins worker: returns the `claude mcp
        add` command (with a single-use enrollment code, never a token), the restart line
        and the VS Code .vscode/mcp.json block."""
        if self.recruiter is None:
            return error_result(ModelReinsError(
                "this channel talks to a server as a worker and cannot register others; "
                "call modelreins_recruit on the main ModelReins MCP server"))
        request = RecruitRequest(name=name, tags=tags or [], provider=provider,
                                 capacity=capacity)
        try:
            recruitment = await self.recruiter(request, await workspace_root(ctx))
        except ModelReinsError as exc:
            return error_result(exc)
        return _result(render(recruitment), recruitment.wire())

    async def serve(self, read_stream: ReadStream[SessionMessage | Exception],
                    write_stream: WriteStream[SessionMessage]) -> None:
        """Serve one client over a stream pair until it leaves (the caller signs off)."""
        lowlevel = self.mcp._lowlevel_server  # the SDK's own Client reaches in the same way
        options = lowlevel.create_initialization_options(
            experimental_capabilities={CHANNEL_CAPABILITY: {}})
        dispatcher: JSONRPCDispatcher[TransportContext] = JSONRPCDispatcher(
            read_stream, write_stream, inline_methods=frozenset({"initialize"}))
        connection = Connection.for_loop(dispatcher)
        try:
            async with lowlevel.lifespan(lowlevel) as state, anyio.create_task_group() as tg:
                tg.start_soon(self._work, connection)
                await serve_connection(lowlevel, dispatcher, connection=connection,
                                       lifespan_state=state, init_options=options)
                tg.cancel_scope.cancel()
        finally:
            await write_stream.aclose()

    async def serve_stdio(self) -> None:
        async with stdio_server() as (read_stream, write_stream):
            await self.serve(read_stream, write_stream)

    async def _work(self, connection: Connection) -> None:
        """Run the worker; an error no retry can fix stops it (see :attr:`stopped`): the
        client keeps its session, the caller decides how to end the process."""
        try:
            await self._feed(connection)
        except* FATAL as group:
            self.failure = _first(group)
            log.error("the worker stopped: %s", self.failure)
            self.stopped.set()

    async def _feed(self, connection: Connection) -> None:
        """Heartbeat from the start; once the client is initialized, push if it can see
        channel events."""
        await self.intake.try_heartbeat()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self.intake.heartbeats)
            await connection.initialized.wait()
            self.pushing = self.push == "always" or (
                self.push == "auto" and wants_push(connection.client_params))
            log.info("client initialized; %s mode", "push" if self.pushing else "pull")
            self.mode_chosen.set()
            if self.pushing:
                await anyio.sleep(self.settle_s)

                async def push(job: Job) -> None:
                    await connection.notify(CHANNEL_METHOD, channel_event(job))

                tg.start_soon(self.intake.run, push)
