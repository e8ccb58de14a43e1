"""``modelreins mcp``: the MCP tools over stdio (``claude mcp add modelreins -- modelreins mcp``).

stdout carries the protocol and nothing else: logs go to stderr, and while serving the SDK
points fd 1 at stderr so stray output (a provider's child process) cannot corrupt the stream.
Every call acts as the local owner of the home. The scheduler runs here too; its leader lease
keeps several such processes on one home from firing a run twice.
"""

from __future__ import annotations

import argparse
import signal

import anyio

from mcp_server.cli.common import add_home_arg, open_engine
from mcp_server.runtime import start_scheduler
from mcp_server.server import build_server

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = subparsers.add_parser(
        "mcp", help="serve the MCP tools over stdio (for Claude Code and other MCP clients)")
    add_home_arg(mcp)
    mcp.set_defaults(handler=cmd_mcp)


async def cmd_mcp(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine, anyio.create_task_group() as tg:
        await start_scheduler(engine)
        tg.start_soon(_stop_on_signal, tg.cancel_scope)
        await build_server(lambda: engine).run_stdio_async()
        tg.cancel_scope.cancel()
    return 0


async def _stop_on_signal(scope: anyio.CancelScope) -> None:
    """SIGTERM/SIGINT end the server cleanly: in-flight calls are cancelled, the store closed."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            scope.cancel()
            return
