"""The ``modelreins`` command line: the composition root for local and remote use.

Each command group lives in its own module exposing ``register(subparsers)``; the list
below is the registry. Errors print one line to stderr and exit non-zero.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from core import __version__

__all__ = ["main"]

COMMAND_MODULES = [
    "mcp_server.cli.config_cmd",
    "mcp_server.cli.dispatch_cmd",
    "mcp_server.cli.token_cmd",
    "mcp_server.cli.tasks_cmd",
    "mcp_server.cli.jobs_cmd",
    "mcp_server.cli.workers_cmd",
    "mcp_server.cli.mcp_cmd",
    "mcp_server.cli.channel_cmd",
    "mcp_server.cli.serve_cmd",
    "mcp_server.cli.ping_cmd",
    "mcp_server.cli.worker_cmd",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelreins",
        description="MCP-native model dispatch: providers, scheduled tasks, a worker fleet.",
    )
    parser.add_argument("--version", action="version", version=f"modelreins {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from mcp_server.cli.common import run_command

    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return run_command(handler, args)


if __name__ == "__main__":
    sys.exit(main())
