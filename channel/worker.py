"""``modelreins worker``: the headless worker (DESIGN.md §11).

It heartbeats, long-polls its inbox and serves each assigned job by spawning a command
(default ``claude --print``) with the prompt on stdin in a fresh per-job directory
(:class:`~channel.executors.CommandExecutor`), or from a provider configured in the local
home (``--provider``, :class:`~channel.executors.ProviderExecutor`). The loop itself is
:class:`~channel.runner.Runner`; this module composes it from :class:`WorkerOptions` and
runs it until SIGTERM or SIGINT.

Signals: the first SIGTERM/SIGINT stops claiming and gives running jobs ``grace_s`` to
finish and be closed; a second one (or the grace running out) kills them without closing
them, so the queue retries them elsewhere once their leases lapse. The process then exits 0.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskStatus

from channel.client import WorkerClient
from channel.executors import (
    DEFAULT_MAX_OUTPUT_BYTES,
    CommandExecutor,
    open_provider_executor,
)
from channel.jobs import Executor
from channel.runner import Runner, RunnerConfig, unwrap_group
from channel.workspace import host_label
from core.connection import connection_settings, normalize_url, saved_token, saved_url
from core.errors import ValidationFailed, field_error
from core.process import split_command

__all__ = [
    "DEFAULT_COMMAND",
    "WORK_DIR",
    "WorkerOptions",
    "default_worker_name",
    "resolve_server",
    "run_until_signalled",
    "serve_worker",
]

log = logging.getLogger("modelreins.worker")

DEFAULT_COMMAND = "claude --print"
WORK_DIR = "work"
"""Per-job directories are made under ``$MODELREINS_HOME/work`` unless ``--workdir`` says."""


@dataclass(frozen=True)
class WorkerOptions:
    """Everything ``modelreins worker`` is told on its command line, resolved."""

    url: str
    token: str | None
    name: str
    home: Path
    tags: str | None = None
    capacity: int = 1
    command: str = DEFAULT_COMMAND
    provider: str | None = None
    """Serve from this configured provider instead of spawning ``command``."""
    workdir: Path | None = None
    keep: bool = False
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    heartbeat_s: float = 5.0
    grace_s: float = 20.0

    @property
    def job_root(self) -> Path:
        return self.workdir or self.home / WORK_DIR


def default_worker_name() -> str:
    """This machine's host name in the worker-name alphabet."""
    return host_label()


def resolve_server(
    url: str | None, token: str | None, home: Path, env: Mapping[str, str] | None = None
) -> tuple[str, str | None]:
    """The server and token a worker uses: ``--url``/``--token`` first, else
    ``MODELREINS_URL``/``MODELREINS_TOKEN``, else ``modelreins config set url|token``.

    A saved token goes only to the saved URL (see :mod:`core.connection`)."""
    env = os.environ if env is None else env
    if url:
        chosen = normalize_url(url)
        if token is None:
            token = env.get("MODELREINS_TOKEN") or None
        if token is None and (saved := saved_url(home)) and normalize_url(saved) == chosen:
            token = saved_token(home)
        return chosen, token
    connection = connection_settings(home, env)
    if connection is None:
        raise ValidationFailed(
            "no server to work for: pass --url, set MODELREINS_URL, or run "
            "`modelreins config set url URL`",
            details=[{"path": "url", "problem": "missing"}])
    return connection.url, token or connection.token


async def serve_worker(options: WorkerOptions) -> None:
    """Run a headless worker until SIGTERM/SIGINT (or a fatal error, raised)."""
    async with AsyncExitStack() as stack:
        executor, details = await _executor(options, stack)
        client = await stack.enter_async_context(
            WorkerClient(options.url, options.token, options.name))
        runner = Runner(client, executor, RunnerConfig(
            capacity=options.capacity, tags=options.tags, provider=options.provider,
            details=details, heartbeat_s=options.heartbeat_s, grace_s=options.grace_s))
        what = f"provider '{options.provider}'" if options.provider else f"`{options.command}`"
        log.info("worker '%s' serving jobs from %s with %s (capacity %d)",
                 options.name, options.url, what, options.capacity)
        await run_until_signalled(runner)


async def _executor(options: WorkerOptions, stack: AsyncExitStack
                    ) -> tuple[Executor, dict[str, Any]]:
    if options.provider is not None:
        executor = await stack.enter_async_context(
            open_provider_executor(options.provider, options.home))
        return executor, {"mode": "provider", "provider": options.provider}
    argv = split_command(options.command)
    if shutil.which(argv[0]) is None:
        # Refused up front: a worker that claims jobs only to fail them all is a black hole.
        raise field_error("exec", f"command not found: {argv[0]} (install it, or pass "
                                  "--exec COMMAND or --provider NAME)")
    command = CommandExecutor(argv, options.job_root, options.name, keep=options.keep,
                              max_output_bytes=options.max_output_bytes)
    return command, {"mode": "exec", "command": os.path.basename(argv[0])}


async def run_until_signalled(
    runner: Runner, signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)
) -> None:
    """``runner.run()``, with the first of ``signals`` stopping it gracefully and a second
    one forcing it. Must run in the main thread (signal handlers live there)."""
    with unwrap_group():
        async with anyio.create_task_group() as tg:
            await tg.start(_relay_signals, runner, signals)
            await runner.run()
            tg.cancel_scope.cancel()


async def _relay_signals(runner: Runner, signals: tuple[signal.Signals, ...],
                         *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    with anyio.open_signal_receiver(*signals) as received:
        task_status.started()
        count = 0
        async for signum in received:
            count += 1
            if count == 1:
                log.warning("%s: stopping; running jobs may finish (send it again to stop "
                            "at once)", signal.Signals(signum).name)
                runner.stop()
            else:
                log.warning("%s again: stopping now", signal.Signals(signum).name)
                runner.stop(force=True)
