"""``modelreins worker``: serve queue jobs from this machine (see :mod:`channel.worker`)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from channel.executors import DEFAULT_MAX_OUTPUT_BYTES
from channel.worker import (
    DEFAULT_COMMAND,
    WorkerOptions,
    default_worker_name,
    resolve_server,
    serve_worker,
)
from mcp_server.cli.common import add_home_arg, home_from

__all__ = ["register"]


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = subparsers.add_parser(
        "worker", help="serve queue jobs: spawn a command (or ask a provider) per job",
        description="Heartbeat, take the jobs assigned to this worker and run each with the "
                    "prompt on stdin in a fresh directory. SIGTERM/SIGINT stop it: running "
                    "jobs may finish within --grace; a second signal stops at once.")
    worker.add_argument("--name", help="worker name (default: this host's name)")
    worker.add_argument("--tags", default=os.environ.get("MODELREINS_WORKER_TAGS"),
                        help="comma-separated tags (default: $MODELREINS_WORKER_TAGS)")
    worker.add_argument("--capacity", type=_positive_int, default=1,
                        help="jobs run at once (default: 1)")
    how = worker.add_mutually_exclusive_group()
    how.add_argument("--exec", dest="command", default=DEFAULT_COMMAND, metavar="COMMAND",
                     help=f"command run per job, prompt on stdin (default: {DEFAULT_COMMAND})")
    how.add_argument("--provider", metavar="NAME",
                     help="answer jobs with this provider from the local config instead")
    worker.add_argument("--workdir", type=Path, metavar="DIR",
                        help="where per-job directories are made (default: "
                             "$MODELREINS_HOME/work)")
    worker.add_argument("--keep", action="store_true",
                        help="keep each job's directory instead of removing it")
    worker.add_argument("--max-output", type=_positive_int, default=DEFAULT_MAX_OUTPUT_BYTES,
                        metavar="BYTES", help="stdout kept per job; the rest is discarded "
                                              "and the result says so (default: 1 MiB)")
    worker.add_argument("--grace", type=_positive_float, default=20.0, metavar="S",
                        help="seconds running jobs get to finish after SIGTERM (default: 20)")
    worker.add_argument("--heartbeat", type=_positive_float, default=5.0, metavar="S",
                        help="seconds between heartbeats (default: 5)")
    worker.add_argument("--url", help="server (default: $MODELREINS_URL or the saved url)")
    worker.add_argument("--token", help="this worker's token (default: $MODELREINS_TOKEN or "
                                        "the saved token)")
    add_home_arg(worker)
    worker.set_defaults(handler=cmd_worker)


async def cmd_worker(args: argparse.Namespace) -> int:
    home = home_from(args)
    url, token = resolve_server(args.url, args.token, home)
    if not os.environ.get("MODELREINS_LOG"):
        # A long-running worker reports what it does; other commands stay quiet.
        logging.getLogger("modelreins.worker").setLevel(logging.INFO)
    await serve_worker(WorkerOptions(
        url=url, token=token, name=args.name or default_worker_name(), home=home,
        tags=args.tags, capacity=args.capacity, command=args.command, provider=args.provider,
        workdir=args.workdir, keep=args.keep, max_output_bytes=args.max_output,
        heartbeat_s=args.heartbeat, grace_s=args.grace))
    return 0
