"""``modelreins mcp``: the MCP tools over stdio (``claude mcp add modelreins -- modelreins mcp``).

stdout carries the protocol and nothing else: logs go to stderr, and while serving the SDK
points fd 1 at stderr so stray output (a provider's child process) cannot corrupt the stream.
Every call acts as the local owner of the home. The scheduler runs here too; its leader lease
keeps several such processes on one home from firing a run twice. So does the queue's
maintenance loop (lease expiry, routing): its steps are conditional updates, safe to run
in several processes at once.

In remote mode (``MODELREINS_URL``, or ``modelreins config set url``) the same tools call
the server's REST API instead: the server's scheduler runs the tasks, and each call is held
to the configured token's scopes and providers by the server.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal

import anyio

from core.api import EngineAPI
from core.engine import Engine
from mcp_server.cli.common import add_home_arg, open_engine

__all__ = ["STOP_GRACE_S", "register"]

STOP_GRACE_S = 3.0
"""How long a signalled server may take to unwind before it exits anyway."""

log = logging.getLogger("modelreins.mcp")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    mcp = subparsers.add_parser(
        "mcp", help="serve the MCP tools over stdio (for Claude Code and other MCP clients)")
    add_home_arg(mcp)
    mcp.set_defaults(handler=cmd_mcp)


async def cmd_mcp(args: argparse.Namespace) -> int:
    # Imported here: the MCP SDK is the heaviest import, and every other command would pay
    # for it at start-up.
    from mcp_server.server import build_server

    async with open_engine(args) as engine, anyio.create_task_group() as tg:
        if isinstance(engine, Engine):
            engine.start_scheduler()
            engine.start_maintenance()
        serving = anyio.CancelScope()
        tg.start_soon(_stop_on_signal, serving, engine)
        with serving:
            await build_server(lambda: engine).run_stdio_async()
        tg.cancel_scope.cancel()
    return 0


async def _stop_on_signal(serving: anyio.CancelScope, engine: EngineAPI) -> None:
    """SIGTERM/SIGINT cancel in-flight calls and end the server; the store is closed.

    The SDK reads stdin on a worker thread that only returns with a line or EOF. A client
    normally closes stdin before signalling; if it did not, the transport cannot unwind, so
    after a grace period the store is closed here and the process exits.
    """
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            break
    serving.cancel()
    await anyio.sleep(STOP_GRACE_S)
    log.warning("stdin is still open %.0f s after the stop signal; exiting", STOP_GRACE_S)
    await engine.aclose()
    os._exit(0)
