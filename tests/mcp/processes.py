"""``modelreins`` as a subprocess: the console script, a home's config, a live ``serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
from anyio.abc import ByteReceiveStream, Process
from anyio.streams.text import TextReceiveStream

__all__ = ["CONFIG", "MODELREINS", "Served", "make_home", "serve_process"]

MODELREINS = str(Path(sys.executable).parent / "modelreins")
CONFIG = """\
server: {host: 127.0.0.1, port: 8484, auth: token}
providers:
  echo: {type: echo, default: true}
  spare: {type: echo}
"""


def make_home(path: Path) -> Path:
    """A home at ``path`` with :data:`CONFIG` (two echo providers, token auth)."""
    path.mkdir(mode=0o700)
    (path / "config.yaml").write_text(CONFIG, encoding="utf-8")
    return path


READY = re.compile(r"serving (http://\S+)/mcp ")
TOKEN = re.compile(r"export MODELREINS_TOKEN=(mr_[0-9A-Za-z]+)")


@dataclass
class Served:
    process: Process
    url: str
    lines: list[str] = field(default_factory=list)
    """stderr up to the ready line."""

    @property
    def token(self) -> str | None:
        found = TOKEN.search("\n".join(self.lines))
        return found.group(1) if found else None


async def _lines(stream: ByteReceiveStream) -> AsyncIterator[str]:
    buffer = ""
    async for chunk in TextReceiveStream(stream):
        buffer += chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            yield line


@asynccontextmanager
async def serve_process(home: Path, *args: str) -> AsyncIterator[Served]:
    """``modelreins serve --port 0`` on ``home``, once it says it is serving."""
    env = {**os.environ, "MODELREINS_HOME": str(home)}
    async with await anyio.open_process([MODELREINS, "serve", "--port", "0", *args], env=env,
                                        stdout=subprocess.DEVNULL) as process:
        assert process.stderr is not None
        lines: list[str] = []
        url = None
        stderr = _lines(process.stderr)
        with anyio.fail_after(30):
            async for line in stderr:
                lines.append(line)
                if ready := READY.search(line):
                    url = ready.group(1)
                    break
        assert url, "\n".join(lines)
        served = Served(process, url, lines)
        async with anyio.create_task_group() as tg:
            async def drain() -> None:
                async for line in stderr:
                    served.lines.append(line)

            tg.start_soon(drain)
            try:
                yield served
            finally:
                if process.returncode is None:
                    process.terminate()
                with anyio.fail_after(20):
                    await process.wait()
