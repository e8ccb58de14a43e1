"""``modelreins_recruit``: turn the calling session into a worker, in three pasteable steps.

:func:`recruit` registers (or re-uses, by name) a worker named after the caller's workspace
and host, tagged with what the caller asked for plus what the workspace shows, puts a fresh
worker token behind a single-use enrollment code (:mod:`channel.enrollment`) and returns a
:class:`Recruitment`: the ``claude mcp add`` command that installs ``modelreins channel``
with that code, the restart line that loads it as a channel, and the equivalent VS Code
``.vscode/mcp.json`` block. The raw token appears nowhere in it.

Against the embedded engine the channel runs on the same ``$MODELREINS_HOME`` (``--home``
is added when it is not the default); against a server the command carries ``--url`` and
the channel enrolls over HTTP.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import anyio
from pydantic import Field

from channel.enrollment import ENROLLMENT_KIND, ENROLLMENT_TTL_S
from channel.workspace import normalize_name, worker_name, workspace_tags
from core.api import FleetAPI
from core.audit import AuditLog
from core.auth import TokenService
from core.clock import Clock
from core.config import home_dir
from core.errors import Conflict, NotFound, ValidationFailed, field_error
from core.models import UtcDatetime, WireModel
from core.principal import Principal
from core.queue import QueueService, normalize_tags
from core.queue.models import WORKER_NAME
from core.views import ViewService

__all__ = [
    "CHANNEL_SERVER_NAME",
    "MAX_CAPACITY",
    "ApiFleet",
    "EngineFleet",
    "Enlisted",
    "Fleet",
    "RecruitRequest",
    "Recruitment",
    "channel_argv",
    "modelreins_command",
    "recruit",
    "render",
]

CHANNEL_SERVER_NAME = "modelreins-channel"
"""The MCP server name the channel is installed under in Claude Code and VS Code."""
MAX_CAPACITY = 32


@dataclass(frozen=True)
class RecruitRequest:
    """What the caller asked for; everything is optional."""

    name: str | None = None
    tags: Sequence[str] = ()
    provider: str | None = None
    capacity: int = 1


@dataclass(frozen=True)
class Enlisted:
    """A worker identity ready to enroll: its name and the code for its token."""

    worker: str
    code: str = field(repr=False)
    expires_at: datetime
    valid_for_s: float
    reused: bool


class Fleet(Protocol):
    """Where workers are registered and their enrollment codes made."""

    async def enlist(self, name: str, tags: Sequence[str], description: str,
                     ttl_s: float) -> Enlisted:
        """Register ``name`` (or re-use the live worker of that name), mint a worker token
        and put it behind a single-use ``enrollment`` view; the view's nonce is the code."""
        ...


class EngineFleet:
    """:class:`Fleet` on the engine in this process, acting as ``actor`` (an admin)."""

    def __init__(self, queue: QueueService, tokens: TokenService, views: ViewService,
                 audit: AuditLog, clock: Clock, actor: Principal) -> None:
        self.queue = queue
        self.tokens = tokens
        self.views = views
        self.audit = audit
        self.clock = clock
        self.actor = actor

    async def enlist(self, name: str, tags: Sequence[str], description: str,
                     ttl_s: float) -> Enlisted:
        self.actor.require("admin")
        try:
            worker = await self.queue.workers.get(name)
            reused = worker.status != "revoked"
        except NotFound:
            reused = False
        if not reused:
            worker = await self.queue.workers.register(name, description, (), tags,
                                                       actor=self.actor)
        info, raw = await self.tokens.mint(name, (), kind="worker", worker_id=worker.id)
        await self.audit.record(self.actor.actor, "token.create", info.id, {
            "name": info.name, "kind": info.kind, "prefix": info.prefix,
            "workerId": worker.id, "via": "modelreins_recruit"})
        code = await self.views.create(raw, name=name, kind=ENROLLMENT_KIND, ttl_s=ttl_s)
        return Enlisted(worker=name, code=code, reused=reused, valid_for_s=ttl_s,
                        expires_at=self.clock.now() + timedelta(seconds=ttl_s))


class ApiFleet:
    """:class:`Fleet` through the engine interface (a remote server's REST API): the
    server registers the worker and puts its token behind one of its own one-time views,
    whose nonce is the code. The API mints tokens only for new workers, so an existing
    live name cannot be re-used here (CONFLICT says so), and the code lives as long as
    the server's view TTL."""

    def __init__(self, fleet: FleetAPI, actor: Principal, base_url: str, clock: Clock,
                 view_ttl_s: float) -> None:
        self.fleet = fleet
        self.actor = actor
        self.base_url = base_url
        self.clock = clock
        self.view_ttl_s = view_ttl_s

    async def enlist(self, name: str, tags: Sequence[str], description: str,
                     ttl_s: float) -> Enlisted:
        try:
            registered = await self.fleet.register(name, description, (), tags,
                                                   actor=self.actor,
                                                   view_base_url=self.base_url)
        except Conflict as exc:
            raise Conflict(f"a worker named '{name}' is already registered on the server; "
                           "recruit under another name (name=...) or revoke that worker "
                           "first") from exc
        view_url = registered.view_url or ""
        if "/view/" not in view_url:
            raise ValidationFailed("the server registered the worker but returned no "
                                   "one-time view link for its token")
        now = self.clock.now()
        expires = now + timedelta(seconds=self.view_ttl_s)
        return Enlisted(worker=registered.worker.name, code=view_url.rsplit("/view/", 1)[1],
                        expires_at=expires, valid_for_s=(expires - now).total_seconds(),
                        reused=False)


class Recruitment(WireModel):
    """What ``modelreins_recruit`` returns (its text is :func:`render`)."""

    worker: str
    reused: bool = Field(description="True when a live worker of that name already existed.")
    tags: list[str]
    provider: str | None = None
    capacity: int = 1
    workspace: str | None = Field(default=None, description="The root the name came from.")
    server_name: str = CHANNEL_SERVER_NAME
    url: str | None = Field(default=None, description="The server the channel talks to; "
                            "null: the same ModelReins home, in-process.")
    command: list[str] = Field(description="The channel server's command line.")
    install: str = Field(description="The `claude mcp add` command to run.")
    restart: str = Field(description="How to restart Claude Code with the channel loaded.")
    vscode: dict[str, Any] = Field(description="The `.vscode/mcp.json` block.")
    expires_at: UtcDatetime = Field(description="The enrollment code works once, until then.")
    valid_for_s: int = Field(description="How long the code was valid when made.")


def modelreins_command() -> str:
    """How a client should start ``modelreins``: the bare name when it is on ``PATH`` as
    this very installation, else the absolute path of this installation's script."""
    script = Path(sys.executable).parent / "modelreins"
    found = shutil.which("modelreins")
    if found is not None and (not script.exists() or Path(found).resolve() == script.resolve()):
        return "modelreins"
    return str(script) if script.exists() else "modelreins"


def channel_argv(code: str, worker: str, *, url: str | None, home: Path | None,
                 tags: Sequence[str], provider: str | None, capacity: int) -> list[str]:
    """``modelreins channel …`` as an argument vector."""
    # "--enroll=CODE", one word: a URL-safe code may start with "-", which argparse would
    # otherwise take for an option.
    argv = [modelreins_command(), "channel", f"--enroll={code}", "--name", worker]
    if url is not None:
        argv += ["--url", url]
    if home is not None:
        argv += ["--home", str(home)]
    if tags:
        argv += ["--tags", ",".join(tags)]
    if provider is not None:
        argv += ["--provider", provider]
    if capacity != 1:
        argv += ["--capacity", str(capacity)]
    return argv


def _check(request: RecruitRequest) -> tuple[str | None, list[str]]:
    if isinstance(request.capacity, bool) or not 1 <= request.capacity <= MAX_CAPACITY:
        raise field_error("capacity", f"must be between 1 and {MAX_CAPACITY}")
    name = None
    if request.name is not None:
        name = normalize_name(request.name)
        if not WORKER_NAME.fullmatch(name):
            raise field_error("name", "needs 1-64 characters of a-z, 0-9, '.', '_' or '-'")
    try:
        tags = normalize_tags(list(request.tags))
    except ValueError as exc:
        raise field_error("tags", str(exc)) from exc
    return name, tags


def _named_home(home: Path | None) -> Path | None:
    """``home`` as the channel must be told it: None for the default home."""
    if home is None or home.resolve() == home_dir({}).resolve():
        return None
    return home.resolve()


async def recruit(
    fleet: Fleet, request: RecruitRequest, *, root: Path | None, url: str | None,
    home: Path | None = None, hostname: str | None = None,
    ttl_s: float = ENROLLMENT_TTL_S,
) -> Recruitment:
    """Enlist a worker for the session whose workspace is ``root`` and say how to run it.

    ``url`` is the server the channel should talk to (None: in-process on ``home``, which
    is named in the command only when it is not the default home).
    """
    name, tags = _check(request)
    name = name or worker_name(root, hostname)
    # The scan is bounded, but it is disk I/O: keep it off the event loop.
    tags = normalize_tags([*tags, *await anyio.to_thread.run_sync(workspace_tags, root)])
    where = str(root) if root is not None else "no workspace root"
    enlisted = await fleet.enlist(name, tags, f"Claude Code session ({where})", ttl_s)
    argv = channel_argv(enlisted.code, enlisted.worker, url=url,
                        home=_named_home(home) if url is None else None, tags=tags,
                        provider=request.provider, capacity=request.capacity)
    return Recruitment(
        worker=enlisted.worker, reused=enlisted.reused, tags=tags, provider=request.provider,
        capacity=request.capacity, workspace=str(root) if root is not None else None,
        url=url, command=argv,
        install=shlex.join(["claude", "mcp", "add", CHANNEL_SERVER_NAME, "--", *argv]),
        restart=shlex.join(["claude", "--dangerously-load-development-channels",
                            f"server:{CHANNEL_SERVER_NAME}"]),
        vscode={"servers": {CHANNEL_SERVER_NAME: {
            "type": "stdio", "command": argv[0], "args": argv[1:]}}},
        expires_at=enlisted.expires_at, valid_for_s=round(enlisted.valid_for_s),
    )


def render(r: Recruitment) -> str:
    """The recruitment as instructions a person can follow (and paste from)."""
    minutes = max(1, round(r.valid_for_s / 60))
    state = "re-using the existing worker" if r.reused else "registered a new worker"
    where = f"server {r.url}" if r.url else "this ModelReins home (in-process)"
    tags = ", ".join(r.tags) or "none"
    return "\n".join([
        f"Recruited this session as worker '{r.worker}' ({state}; tags: {tags}; "
        f"capacity {r.capacity}; jobs from {where}).",
        f"The enrollment code below works once, within about {minutes} min; it is not a "
        "token: on first start the channel exchanges it and keeps the token (0600).",
        "",
        "1. Install the channel (run in a terminal, in this project):",
        "",
        f"   {r.install}",
        "",
        "2. Restart Claude Code with the channel loaded:",
        "",
        f"   {r.restart}",
        "",
        "   Jobs routed to this worker then arrive as <channel source=\"" + r.server_name
        + "\"> messages; answer each with mr_job_complete(job_id, result, status).",
        "",
        "VS Code: add this to .vscode/mcp.json instead of step 1:",
        "",
        json.dumps(r.vscode, indent=2),
    ])
