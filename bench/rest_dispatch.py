"""What ``POST /api/dispatch`` adds on top of calling the upstream directly.

A canned OpenAI-compatible upstream (:mod:`bench.fast_upstream`, cheap enough that the
numbers are about us, not the fake) runs in its own process; ``modelreins serve`` runs as a
real subprocess (one process, token auth on, history and audit recorded in SQLite) on a
temporary ``MODELREINS_HOME`` whose default provider is that upstream, with an admin token
minted by ``modelreins token create … --admin``. The same prompt is sent (a) straight to
the upstream and (b) through the REST facade, by the same client: :mod:`bench.fast_client`,
not httpx2, whose ~1 ms of CPU per request would leave the server too little of this
2-core machine to measure it at concurrency 32.

Prints the added latency (p50, p99) at concurrency 1, requests/s at concurrency 8 and 32
with their ratio to direct, and the server's resident memory (VmRSS) idle and after the
load. Targets: ≤ 2 ms added p50 at c=1, ≥ 1,000 req/s at c=32, ≤ 100 MB idle, < 10 MB
growth over 20,000 dispatches.

    python bench/rest_dispatch.py [--n 2000] [--nc 6000] [--total 20000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio
import yaml

from bench.common import ROOT, fast_upstream_process, latencies, pct, summary_ms, throughput
from bench.fast_client import FastClient
from bench.fast_upstream import REPLY

PROMPT = "Say something short about foxes."
CLI = [sys.executable, "-m", "mcp_server.cli"]


def write_home(home: Path, upstream: str) -> None:
    config = {
        "server": {"host": "127.0.0.1", "port": 0, "auth": "token"},
        "providers": {"up": {"type": "openai-compat", "baseUrl": upstream + "/v1",
                             "apiKey": "k", "model": "bench", "default": True}},
    }
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MODELREINS_URL", "MODELREINS_TOKEN")}
    return {**env, "MODELREINS_HOME": str(home), "PYTHONPATH": str(ROOT)}


def mint_admin(home: Path) -> str:
    done = subprocess.run([*CLI, "token", "create", "bench", "--admin", "--json"], cwd=ROOT,
                          env=env_for(home), capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"token create failed: {done.stderr}")
    return str(json.loads(done.stdout)["token"])


@contextmanager
def serve(home: Path) -> Iterator[tuple[str, int]]:
    """``modelreins serve`` on a free port; yields its base URL and pid."""
    proc = subprocess.Popen([*CLI, "serve", "--port", "0"], cwd=ROOT, env=env_for(home),
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = re.search(r"serving (http://\S+?)/mcp ", line)
            if found:
                break
        else:
            raise RuntimeError("modelreins serve did not start")
        # Keep draining its stderr, or a chatty server would block on a full pipe.
        threading.Thread(target=proc.stderr.read, daemon=True).start()
        yield found.group(1), proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def cpu_s(pid: int) -> float:
    """User + system CPU seconds the process has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    """User + system CPU seconds this process (the load generator) has used."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1)) / 1024


async def run(upstream: str, server: str, pid: int, token: str, args: argparse.Namespace
              ) -> None:
    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}],
            "stream": False}
    headers = {"authorization": f"Bearer {token}"}
    async with FastClient(upstream) as up, FastClient(server) as api:
        to_upstream = up.json_request("/v1/chat/completions", body, {"authorization": "Bearer k"})
        to_api = api.json_request("/api/dispatch", {"prompt": PROMPT}, headers)

        async def direct() -> object:
            status, data = await up.send(to_upstream)
            assert status == 200, data
            return json.loads(data)

        async def rest() -> object:
            status, data = await api.send(to_api)
            assert status == 200, data
            return json.loads(data)

        # The whole path works, our openai-compat provider included, before it is timed.
        answer = await rest()
        assert isinstance(answer, dict), answer
        assert answer["text"] == REPLY, answer
        await latencies(rest, 199, warmup=0)
        idle = rss_mb(pid)
        sent = 200
        # Interleave rounds so drift on a noisy machine hits both sides alike.
        d1: list[float] = []
        r1: list[float] = []
        for _ in range(4):
            d1 += await latencies(direct, args.n // 4)
            r1 += await latencies(rest, args.n // 4)
            sent += args.n // 4 + 50
        rates: dict[int, tuple[float, float]] = {}
        rest_cpu = client_cpu = 0.0
        for concurrency in (8, 32):
            d = r = 0.0
            for _ in range(2):
                d += await throughput(direct, args.nc // 2, concurrency) / 2
                before, ours = cpu_s(pid), own_cpu_s()
                r += await throughput(rest, args.nc // 2, concurrency) / 2
                rest_cpu += cpu_s(pid) - before
                client_cpu += own_cpu_s() - ours
                sent += args.nc // 2
            rates[concurrency] = (d, r)
        if sent < args.total:
            await throughput(rest, args.total - sent, 32)
            sent = args.total
        after = rss_mb(pid)
        status, data = await api.send(api.encode("GET", "/api/dispatches?limit=1",
                                                 headers=headers))
        assert status == 200, data
        recorded = json.loads(data)["total"]

    added = (pct(r1, 50) - pct(d1, 50)) * 1000
    print(f"REST dispatch overhead — {args.n} sequential requests each, {args.nc} per "
          "concurrency level, modelreins serve as a subprocess (auth on, history on)")
    print(f"  direct upstream      c=1: {summary_ms(d1)}")
    print(f"  POST /api/dispatch   c=1: {summary_ms(r1)}")
    print(f"  added p50: {added:.3f} ms (target ≤ 2)   "
          f"added p99: {(pct(r1, 99) - pct(d1, 99)) * 1000:.3f} ms")
    for concurrency, (d, r) in rates.items():
        target = "   (target ≥ 1000)" if concurrency == 32 else ""
        print(f"  c={concurrency:<2}  direct {d:7.0f} req/s   REST {r:7.0f} req/s   "
              f"ratio {r / d:.2f}{target}")
    per = rest_cpu / (2 * args.nc) * 1000
    print(f"  server CPU per dispatch under load: {per:.2f} ms "
          f"(one core's ceiling: {1000 / per:.0f} req/s); load generator: "
          f"{client_cpu / (2 * args.nc) * 1000:.2f} ms per request")
    print(f"  server RSS idle: {idle:.1f} MB (target ≤ 100)   after {sent} dispatches: "
          f"{after:.1f} MB   growth {after - idle:+.1f} MB (target < 10)")
    print(f"  dispatches recorded in history: {recorded}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="sequential requests per side")
    parser.add_argument("--nc", type=int, default=6000,
                        help="requests per side at each concurrency level")
    parser.add_argument("--total", type=int, default=20000,
                        help="dispatches through the server before the last RSS reading")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, fast_upstream_process() as upstream:
        home = Path(tmp) / "home"
        write_home(home, upstream)
        token = mint_admin(home)
        with serve(home) as (server, pid):
            anyio.run(run, upstream, server, pid, token, args)


if __name__ == "__main__":
    main()
