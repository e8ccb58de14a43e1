"""``modelreins serve`` stopping while workers long-poll."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import anyio
import httpx2
import pytest

from mcp_server.cli.serve_cmd import GRACEFUL_SHUTDOWN_S
from tests.mcp.processes import make_home, serve_process

pytestmark = pytest.mark.slow


async def test_a_signal_answers_long_polls_at_once_instead_of_waiting_them_out(
    tmp_path: Path,
) -> None:
    async with serve_process(make_home(tmp_path / "home")) as served:
        headers = {"Authorization": f"Bearer {served.token}"}
        async with httpx2.AsyncClient(base_url=served.url, headers=headers,
                                      trust_env=False, timeout=60) as admin:
            made = await admin.post("/api/v1/workers/register",
                                    json={"name": "w1", "capabilities": [{"name": "code"}]})
            assert made.status_code == 201, made.text
            answers: list[httpx2.Response] = []

            async def poll() -> None:
                answers.append(await admin.get("/my-jobs", params={"worker": "w1",
                                                                   "wait": 30}))

            async with anyio.create_task_group() as tg:
                tg.start_soon(poll)
                await anyio.sleep(0.5)  # the poll reaches the server (nothing to watch here)
                started = time.monotonic()
                served.process.send_signal(signal.SIGTERM)
                with anyio.fail_after(20):
                    code = await served.process.wait()
            stopped_after = time.monotonic() - started
    assert code == 0
    (answer,) = answers
    assert (answer.status_code, answer.json()) == (200, {"jobs": []})
    assert stopped_after < GRACEFUL_SHUTDOWN_S / 2
