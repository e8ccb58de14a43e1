"""Shared benchmark helpers: an upstream in its own process, percentiles, load loops."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

UPSTREAM_SCRIPT = """
import sys, uvicorn
from tests.fakes.upstreams import FakeUpstream
from tests.support.loopback import bound_socket
up = FakeUpstream(sys.argv[1], reply="The quick brown fox jumps over the lazy dog.", record=False)
sock = bound_socket()
host, port = sock.getsockname()[:2]
print(f"http://{host}:{port}", flush=True)
uvicorn.Server(uvicorn.Config(up.app(), log_level="error", access_log=False)).run(sockets=[sock])
"""


@contextmanager
def _serving(argv: list[str]) -> Iterator[str]:
    """Run ``argv`` (a server that prints its root URL first) until the block ends."""
    proc = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url:
            raise RuntimeError("upstream process did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def upstream_process(api: str = "openai") -> AbstractContextManager[str]:
    """The switchable Starlette fake upstream (``tests.fakes.upstreams``) served by a
    separate process (so it doesn't share our CPU time slice or GIL); yields its root URL."""
    return _serving([sys.executable, "-c", UPSTREAM_SCRIPT, api])


def fast_upstream_process() -> AbstractContextManager[str]:
    """The canned OpenAI-compatible upstream of :mod:`bench.fast_upstream` in its own
    process; yields its root URL. Benchmarks use this one: it costs a fraction of the
    Starlette fake's CPU per request, so throughput numbers measure us, not the fake."""
    return _serving([sys.executable, "-m", "bench.fast_upstream"])


def pct(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary_ms(samples: list[float]) -> str:
    return (f"p50 {pct(samples, 50) * 1000:7.3f} ms  p99 {pct(samples, 99) * 1000:7.3f} ms  "
            f"mean {statistics.fmean(samples) * 1000:7.3f} ms")


async def latencies(call: Callable[[], Awaitable[object]], n: int, warmup: int = 50
                    ) -> list[float]:
    """Sequential calls (concurrency 1); seconds per call."""
    for _ in range(warmup):
        await call()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await call()
        out.append(time.perf_counter() - t0)
    return out


async def throughput(call: Callable[[], Awaitable[object]], n: int, concurrency: int) -> float:
    """Requests per second with ``concurrency`` callers sharing ``n`` calls."""
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call()

    t0 = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    return n / (time.perf_counter() - t0)
