"""Shared CLI plumbing: the engine a command talks to, running a handler, mapping errors to
one line and an exit code."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import anyio

from core.api import EngineAPI
from core.config import home_dir
from core.connection import connection_settings
from core.engine import Engine
from core.errors import ModelReinsError
from core.remote import RemoteEngine

__all__ = ["EXIT_ERROR", "EXIT_USAGE", "Handler", "home_from", "open_engine", "out", "run_command"]

EXIT_ERROR = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], Awaitable[int]]


def home_from(args: argparse.Namespace) -> Path:
    return Path(args.home).expanduser() if getattr(args, "home", None) else home_dir()


@asynccontextmanager
async def open_engine(args: argparse.Namespace) -> AsyncIterator[EngineAPI]:
    """The engine a command talks to: the server named by ``MODELREINS_URL`` or saved with
    ``modelreins config set url`` (see :mod:`core.connection`), else the local home."""
    home = home_from(args)
    remote = connection_settings(home)
    if remote is not None:
        async with RemoteEngine.open(remote.url, remote.token) as client:
            yield client
        return
    async with Engine.open(home) as engine:
        yield engine


def out(text: str = "", *, stream: TextIO | None = None, end: str = "\n") -> None:
    target = stream or sys.stdout
    target.write(text + end)
    target.flush()


def _configure_logging() -> None:
    level = os.environ.get("MODELREINS_LOG", "WARNING").upper()
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def run_command(handler: Handler, args: argparse.Namespace) -> int:
    """Run an async handler; every expected failure becomes one line on stderr."""
    _configure_logging()

    async def runner() -> int:
        return await handler(args)

    try:
        return anyio.run(runner)
    except ModelReinsError as exc:
        details = _details(exc)
        headline = f"{len(details)} problems:" if details else exc.message
        out(f"error: {exc.code}: {headline}", stream=sys.stderr)
        for detail in details:
            out(f"  - {detail}", stream=sys.stderr)
        return EXIT_USAGE if exc.code == "VALIDATION_ERROR" else EXIT_ERROR
    except KeyboardInterrupt:
        out("interrupted", stream=sys.stderr)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR


def _details(exc: ModelReinsError) -> list[str]:
    if not isinstance(exc.details, list) or len(exc.details) < 2:
        return []
    return [f"{d.get('path')}: {d.get('problem')}" for d in exc.details if isinstance(d, dict)]


def add_home_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home", help="ModelReins home (default $MODELREINS_HOME or ~/.modelreins)")


def print_json(data: Any) -> None:
    import json

    out(json.dumps(data, indent=2, ensure_ascii=False))
