"""``modelreins channel``: this Claude Code session becomes a ModelReins worker.

Installed by the command ``modelreins_recruit`` prints::

    claude mcp add modelreins-channel -- modelreins channel --enroll=CODE --name WORKER

The first start exchanges the single-use code for the worker's token (stored 0600 under
the home); later starts reuse it. A code that is spent or expired with no stored token is
an error on stderr and a non-zero exit, which the MCP client shows as a failed server.

Ending: stdin EOF (the client closed the session) or SIGTERM/SIGINT sign the worker off —
its unclaimed jobs go back to the queue — and the process exits. As in ``modelreins mcp``,
the SDK reads stdin on a thread that only returns with a line or EOF, so when a signal or a
fatal worker error (revoked token) comes while stdin stays open, the process exits on its
own after a short grace period.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

import anyio

from channel.recruit import MAX_CAPACITY
from channel.workspace import normalize_name
from core.connection import normalize_url
from core.queue import normalize_tags
from mcp_server.cli.common import EXIT_ERROR, add_home_arg, home_from, out

if TYPE_CHECKING:
    from channel.run import Channel

__all__ = ["STOP_GRACE_S", "register"]

STOP_GRACE_S = 3.0

log = logging.getLogger("modelreins.channel")


def _capacity(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_CAPACITY:
        raise argparse.ArgumentTypeError(f"capacity is 1-{MAX_CAPACITY}")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "channel", help="serve a Claude Code channel over stdio: the session becomes a worker "
        "(use the command modelreins_recruit prints)")
    parser.add_argument("--enroll", metavar="CODE", required=True,
                        help="single-use enrollment code from modelreins_recruit")
    parser.add_argument("--name", required=True, help="the worker this session serves as")
    parser.add_argument("--url", help="ModelReins server (default: this home, in-process)")
    parser.add_argument("--tags", help="comma-separated tags to announce")
    parser.add_argument("--provider", help="provider name to announce")
    parser.add_argument("--capacity", type=_capacity, default=1, help="jobs at once (1)")
    parser.add_argument("--push", choices=("auto", "always", "never"), default="auto",
                        help="push jobs as channel events: auto (to clients that show them), "
                        "always, never (pull with mr_job_next)")
    add_home_arg(parser)
    parser.set_defaults(handler=cmd_channel)


async def cmd_channel(args: argparse.Namespace) -> int:
    from channel.run import ChannelOptions, open_channel  # the MCP SDK: load it only here

    options = ChannelOptions(
        code=args.enroll, worker=normalize_name(args.name), home=home_from(args),
        url=normalize_url(args.url) if args.url else None,
        tags=normalize_tags(args.tags) if args.tags else None,
        provider=args.provider, capacity=args.capacity, push=args.push)
    async with open_channel(options) as channel, anyio.create_task_group() as tg:
        serving = anyio.CancelScope()
        tg.start_soon(_supervise, serving, channel)
        with serving:
            await channel.server.serve_stdio()
        tg.cancel_scope.cancel()
        failure = channel.server.failure
    if failure is not None:
        raise failure
    return 0


async def _supervise(serving: anyio.CancelScope, channel: Channel) -> None:
    """On a stop signal or a fatal worker error: sign off, stop serving, and if stdin keeps
    the transport from unwinding, exit after :data:`STOP_GRACE_S`."""
    code = 0
    async with anyio.create_task_group() as tg:

        async def on_signal() -> None:
            with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    break
            tg.cancel_scope.cancel()

        tg.start_soon(on_signal)
        await channel.server.stopped.wait()
        failure = channel.server.failure
        if failure is not None:
            out(f"error: {failure.code}: {failure.message}", stream=sys.stderr)
            code = EXIT_ERROR
        tg.cancel_scope.cancel()
    await channel.sign_off()
    serving.cancel()
    await anyio.sleep(STOP_GRACE_S)
    log.warning("stdin is still open %.0f s after stopping; exiting", STOP_GRACE_S)
    await channel.aclose()
    os._exit(code)
