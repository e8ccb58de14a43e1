"""What the ModelReins MCP edge costs per call, next to the bare SDK, in one run.

For stdio and for Streamable HTTP, each server in its own process and the official client
here (classic ``initialize`` handshake, one call at a time):

* bare:          a bare ``MCPServer`` with a one-line tool (``ping() -> "pong"``)
* bare record:   for reference, a one-line tool on that server returning a stored dispatch
                 record under the same output schema as ``mr_dispatch``: what the SDK alone
                 spends on that result (the client validates every structured result
                 against the tool's output schema, field by field); the step from it to
                 ``mr_dispatch`` is ModelReins's own code
* mr_providers:  ``modelreins mcp`` / ``modelreins serve`` (bearer token auth on HTTP)
* mr_dispatch:   the same, dispatching to the built-in ``echo`` provider (history recorded
                 in the home's SQLite file)

They are called round-robin, one call each per round, so a busy machine slows them
alike and the ratios stay meaningful.

Prints p50 and p99 of each and the ratio to bare. Target: within 1.3× of the bare SDK.

    python bench/mcp_roundtrip.py [--n 500]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from bench.common import ROOT, latencies, pct
from core.engine import Engine
from core.models import DispatchRequest

MODELREINS = str(Path(sys.executable).parent / "modelreins")
CONFIG = """\
server: {host: 127.0.0.1, port: 8484, auth: token}
providers:
  echo: {type: echo, default: true}
"""
BARE = """
import sys
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare", log_level="WARNING")


@server.tool()
async def ping() -> str:
    return "pong"


"""
BARE_RECORD = """
import sys
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.tools import Tool

from core.models import DispatchRecord
from mcp_server.tools.schema import compact_schema

RECORD = DispatchRecord.model_validate_json(sys.argv[2])


async def record() -> DispatchRecord:
    return RECORD


# Published under mr_dispatch's output schema (the SDK's own would cost its client more).
stored = Tool.from_function(record)
stored.fn_metadata.output_schema = compact_schema(stored.fn_metadata.output_schema)
server = MCPServer("bare", log_level="WARNING", tools=[stored])
"""
SERVE = """
if sys.argv[1] == "stdio":
    server.run("stdio")
else:
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings
    from tests.support.loopback import bound_socket

    sock = bound_socket()
    host, port = sock.getsockname()[:2]
    security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
    app = server.streamable_http_app(transport_security=security)
    print(f"http://{host}:{port}", flush=True)
    config = uvicorn.Config(app, log_level="error", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])
"""
READY = re.compile(r"serving (http://\S+)/mcp ")
TOKEN = re.compile(r"export MODELREINS_TOKEN=(mr_[0-9A-Za-z]+)")

Call = Callable[[], Awaitable[object]]


@contextmanager
def fresh_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir(mode=0o700)
        (home / "config.yaml").write_text(CONFIG, encoding="utf-8")
        yield home


def bare_argv(transport: str, record: str | None = None) -> list[str]:
    """A bare server: the ``ping`` one, or with ``record`` (JSON) the ``record`` one."""
    if record is None:
        return [sys.executable, "-c", BARE + SERVE, transport]
    return [sys.executable, "-c", BARE_RECORD + SERVE, transport, record]


@contextmanager
def bare_http(argv: list[str]) -> Iterator[tuple[str, dict[str, str]]]:
    proc = subprocess.Popen(argv, cwd=ROOT, text=True, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip(), {}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def modelreins_http(home: Path) -> Iterator[tuple[str, dict[str, str]]]:
    proc = subprocess.Popen([MODELREINS, "serve", "--port", "0"], text=True,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            env={**os.environ, "MODELREINS_HOME": str(home)})
    try:
        assert proc.stderr is not None
        seen = ""
        while not (ready := READY.search(seen)):
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError(f"modelreins serve did not start:\n{seen}")
            seen += line
        token = TOKEN.search(seen)
        assert token is not None
        yield ready.group(1), {"Authorization": f"Bearer {token.group(1)}"}
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@asynccontextmanager
async def http_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    async with httpx2.AsyncClient(headers=headers, trust_env=False, timeout=30) as http, \
            Client(streamable_http_client(f"{url}/mcp", http_client=http),
                   mode="legacy") as client:
        yield client


def stdio_client(argv: list[str], env: dict[str, str]) -> Client:
    command, *args = argv
    params = StdioServerParameters(command=command, args=args, cwd=str(ROOT), env=env)
    return Client(params, mode="legacy")


async def interleaved(targets: dict[str, Call], n: int, warmup: int = 50
                      ) -> dict[str, list[float]]:
    """``n`` rounds calling every target once (order rotating), so load from anything else
    on the machine hits all of them alike; seconds per call."""
    names = list(targets)
    for name in names:
        result = await targets[name]()
        if getattr(result, "is_error", False):
            raise RuntimeError(f"{name} failed: {result}")
        for _ in range(warmup):
            await targets[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        for name in names[i % len(names):] + names[:i % len(names)]:
            t0 = time.perf_counter()
            await targets[name]()
            samples[name].append(time.perf_counter() - t0)
    return samples


def targets(bare: Client, stored: Client, ours: Client) -> dict[str, Call]:
    return {
        "bare ping": lambda: bare.call_tool("ping", {}),
        "bare record": lambda: stored.call_tool("record", {}),
        "mr_providers": lambda: ours.call_tool("mr_providers", {}),
        "mr_dispatch": lambda: ours.call_tool("mr_dispatch", {"prompt": "benchmark me"}),
    }


def report(transport: str, samples: dict[str, list[float]]) -> None:
    bare = samples.pop("bare ping")
    b50, b99 = pct(bare, 50), pct(bare, 99)
    print(f"\n{transport}")
    print(f"  {'bare ping':<14} p50 {b50 * 1000:7.3f} ms   p99 {b99 * 1000:7.3f} ms")
    for name, values in samples.items():
        p50, p99 = pct(values, 50), pct(values, 99)
        print(f"  {name:<14} p50 {p50 * 1000:7.3f} ms   p99 {p99 * 1000:7.3f} ms   "
              f"ratio p50 {p50 / b50:4.2f}×  p99 {p99 / b99:4.2f}×")
    ours, floor = pct(samples["mr_dispatch"], 50), pct(samples["bare record"], 50)
    print(f"  mr_dispatch over bare record (ModelReins's own code): "
          f"p50 +{(ours - floor) * 1000:.3f} ms, {ours / floor:4.2f}×")


async def run(n: int) -> None:
    print(f"{n} sequential calls of each (after 50 warm-up calls), interleaved round by round; "
          "classic handshake")
    with fresh_home() as home:
        async with Engine.open(home) as engine:
            request = DispatchRequest(prompt="benchmark me")
            record = (await engine.dispatch(request, wait_s=25)).model_dump_json(by_alias=True)
            alone = await latencies(lambda: engine.dispatch(request, wait_s=25), n)

    env = {"PYTHONPATH": str(ROOT)}
    with fresh_home() as home:
        async with stdio_client(bare_argv("stdio"), env) as bare, \
                stdio_client(bare_argv("stdio", record), env) as stored, \
                stdio_client([MODELREINS, "mcp"], {"MODELREINS_HOME": str(home)}) as ours:
            report("stdio", await interleaved(targets(bare, stored, ours), n))

    with fresh_home() as home, bare_http(bare_argv("http")) as (bare_url, bare_headers), \
            bare_http(bare_argv("http", record)) as (stored_url, _), \
            modelreins_http(home) as (url, headers):
        async with http_client(bare_url, bare_headers) as bare, \
                http_client(stored_url, bare_headers) as stored, \
                http_client(url, headers) as ours:
            report("Streamable HTTP (bearer token auth for modelreins)",
                   await interleaved(targets(bare, stored, ours), n))

    print(f"\nfor reference, engine.dispatch(echo, wait_s=25) in-process, no MCP: "
          f"p50 {pct(alone, 50) * 1000:.3f} ms  p99 {pct(alone, 99) * 1000:.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="calls per measurement")
    anyio.run(run, parser.parse_args().n)


if __name__ == "__main__":
    main()
