"""What the engine adds on top of a bare HTTP client, against the same loopback upstream
(:mod:`bench.fast_upstream`, in its own process, cheap enough not to be the bottleneck).

(a) the provider's request straight through an ``httpx2.AsyncClient``; (b) the same prompt
through ``engine.dispatch`` with history recorded in a SQLite file (WAL). Prints p50/p99 at
concurrency 1, requests/s at concurrency 32, and the ratios.

Targets: ≤ 0.5 ms added p50 at concurrency 1; ≥ 70 % of direct throughput at concurrency 32.

    python bench/dispatch_overhead.py [--n 2000] [--n32 4000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anyio

from bench.common import fast_upstream_process, latencies, pct, summary_ms, throughput
from bench.fast_upstream import REPLY
from core.config import parse_settings
from core.engine import Engine
from core.http_client import HttpClient, Target
from core.models import DispatchRequest

PROMPT = "Say something short about foxes."


async def run(url: str, n: int, n32: int) -> None:
    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}], "stream": False}
    settings = parse_settings({"providers": {"up": {
        "type": "openai-compat", "baseUrl": url + "/v1", "apiKey": "k", "model": "bench",
        "default": True}}}, env={})
    with tempfile.TemporaryDirectory() as tmp:
        # The direct client gets the same transport settings the engine uses, so the
        # comparison isolates what the engine itself adds.
        async with HttpClient() as client, \
                Engine.open(Path(tmp), settings=settings) as engine:
            target = Target.parse(url + "/v1/chat/completions")
            headers = [("content-type", "application/json"), ("authorization", "Bearer k")]

            async def direct() -> object:
                r = await client.request("POST", target, headers, json.dumps(body).encode())
                return json.loads(r.content)

            request = DispatchRequest(prompt=PROMPT)
            # Our openai-compat provider reads the canned answer, before anything is timed.
            first = await engine.dispatch(request)
            assert first.text == REPLY, first

            async def engine_call() -> object:
                return await engine.dispatch(request)

            # Interleave rounds so drift on a noisy machine hits both sides alike.
            d1: list[float] = []
            e1: list[float] = []
            for _ in range(4):
                d1 += await latencies(direct, n // 4)
                e1 += await latencies(engine_call, n // 4)
            d32 = e32 = 0.0
            for _ in range(2):
                d32 += await throughput(direct, n32 // 2, 32) / 2
                e32 += await throughput(engine_call, n32 // 2, 32) / 2
            total = (await engine.history(limit=1)).total

    added = (pct(e1, 50) - pct(d1, 50)) * 1000
    print(f"dispatch overhead — {n} sequential requests each, {n32} at concurrency 32")
    print(f"  direct client  c=1: {summary_ms(d1)}")
    print(f"  engine.dispatch c=1: {summary_ms(e1)}")
    print(f"  added p50: {added:.3f} ms (target ≤ 0.5)   "
          f"added p99: {(pct(e1, 99) - pct(d1, 99)) * 1000:.3f} ms   "
          f"p50 ratio: {pct(e1, 50) / pct(d1, 50):.2f}×")
    print(f"  direct client  c=32: {d32:8.0f} req/s")
    print(f"  engine.dispatch c=32: {e32:8.0f} req/s")
    print(f"  throughput kept: {e32 / d32 * 100:.0f} % (target ≥ 70 %)   "
          f"history rows recorded: {total}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--n32", type=int, default=4000)
    args = parser.parse_args()
    with fast_upstream_process() as url:
        anyio.run(run, url, args.n, args.n32)


if __name__ == "__main__":
    main()
