from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import anyio
import anyio.to_thread

from core.config import parse_settings
from core.engine import Engine
from core.models import DispatchRequest
from core.store import open_sqlite
from core.store.write_behind import MAX_QUEUED, WriteBehind


async def test_rows_queued_before_shutdown_are_written(tmp_path: Path) -> None:
    settings = parse_settings({"providers": {"e": {"type": "echo", "default": True}}}, env={})
    async with Engine.open(tmp_path, settings=settings) as engine:
        ids = [(await engine.dispatch(DispatchRequest(prompt=f"p{i}"))).id for i in range(50)]
        # Readable at once in-process, before any commit.
        assert (await engine.get_dispatch(ids[0])).prompt == "p0"
    store = open_sqlite(tmp_path / "modelreins.db")
    try:
        _, total = await store.dispatches.page(limit=1, offset=0)
        assert total == 50
    finally:
        await store.close()


async def test_drain_waits_for_commit_and_batches_rows() -> None:
    batches: list[list[int]] = []
    gate = anyio.Event()

    def write(rows: Sequence[int]) -> None:
        batches.append(list(rows))

    writes = WriteBehind(write)
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        for i in range(5):
            writes.submit(i)
        await writes.drain()
        assert [row for batch in batches for row in batch] == [0, 1, 2, 3, 4]
        assert len(batches) == 1, "rows queued together commit together"
        gate.set()
        tg.cancel_scope.cancel()


async def test_put_past_the_bound_waits_for_the_commit_and_nothing_is_lost() -> None:
    batches: list[list[int]] = []
    # Gathering for an hour: only a full queue (or a reader) makes the writer commit.
    writes = WriteBehind(lambda rows: batches.append(list(rows)), gather_s=3600, max_queued=3)
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        for i in range(3):
            await writes.put(i)
        await anyio.wait_all_tasks_blocked()
        assert batches == [], "up to the bound, put returns at once and rows gather"
        with anyio.fail_after(5):
            await writes.put(3)  # one past the bound: returns once all four are committed
        assert batches == [[0, 1, 2, 3]]
        await writes.put(4)
        await anyio.wait_all_tasks_blocked()
        assert batches == [[0, 1, 2, 3]], "under the bound again: no wait, no commit"
        tg.cancel_scope.cancel()
    writes.close()
    assert batches == [[0, 1, 2, 3], [4]]


async def test_a_saturating_burst_keeps_the_history_queue_bounded(tmp_path: Path) -> None:
    settings = parse_settings({"providers": {"e": {"type": "echo", "default": True}}}, env={})
    peak = 0
    async with Engine.open(tmp_path, settings=settings) as engine:
        queued = engine.store.dispatches.writes

        async def burst() -> None:
            nonlocal peak
            for _ in range(400):
                await engine.dispatch(DispatchRequest(prompt="p"))
                peak = max(peak, queued.queued)

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                for _ in range(8):
                    tg.start_soon(burst)
    # Two rows per dispatch (history and audit): 6,400 without the bound.
    assert peak <= MAX_QUEUED + 8 * 2
    store = open_sqlite(tmp_path / "modelreins.db")
    try:
        assert (await store.dispatches.page(limit=1, offset=0))[1] == 3200
    finally:
        await store.close()


async def test_cancelled_writer_still_writes_the_batch_it_took() -> None:
    written: list[int] = []
    writes = WriteBehind(lambda rows: written.extend(rows))
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        writes.submit(1)
        tg.cancel_scope.cancel()
    writes.close()
    assert written == [1]


def test_without_a_running_writer_submit_writes_at_once() -> None:
    written: list[int] = []
    WriteBehind(lambda rows: written.extend(rows)).submit(7)
    assert written == [7]


async def test_rows_submitted_apart_gather_into_one_commit_and_drain_cuts_the_wait() -> None:
    batches: list[list[int]] = []
    # A window far longer than the test may take: only drain() can end it in time.
    writes = WriteBehind(lambda rows: batches.append(list(rows)), gather_s=3600)
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        writes.submit(1)
        await anyio.wait_all_tasks_blocked()  # the writer is awake, gathering
        writes.submit(2)
        with anyio.fail_after(5):
            await writes.drain()
        assert batches == [[1, 2]]
        tg.cancel_scope.cancel()


async def test_gathered_rows_commit_without_a_reader() -> None:
    written = anyio.Event()
    writes = WriteBehind(lambda rows: None, lambda rows: written.set(), gather_s=0.01)
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        writes.submit(1)
        with anyio.fail_after(5):
            await written.wait()
        tg.cancel_scope.cancel()


async def test_a_reader_arriving_during_a_commit_gets_the_rows_queued_meanwhile_at_once() -> None:
    batches: list[list[int]] = []
    writing, release = threading.Event(), threading.Event()

    def write(rows: Sequence[int]) -> None:
        writing.set()
        release.wait(5)
        batches.append(list(rows))

    writes = WriteBehind(write, gather_s=3600)
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        writes.submit(1)
        tg.start_soon(writes.drain)  # ends the first gathering: [1] goes to the thread
        assert await anyio.to_thread.run_sync(writing.wait, 5)
        writes.submit(2)
        release.set()
        with anyio.fail_after(5):
            await writes.drain()  # no second hour-long gathering for [2]
        assert batches == [[1], [2]]
        tg.cancel_scope.cancel()


async def test_rows_keep_committing_while_they_come_and_after_a_quiet_spell() -> None:
    batches: list[list[int]] = []
    committed = [anyio.Event() for _ in range(3)]

    def written(rows: Sequence[int]) -> None:
        batches.append(list(rows))
        committed[len(batches) - 1].set()

    writes = WriteBehind(lambda rows: None, written, gather_s=0.001)
    async with anyio.create_task_group() as tg:
        await tg.start(writes.run)
        with anyio.fail_after(5):
            writes.submit(1)
            await committed[0].wait()
            writes.submit(2)  # while the writer still gathers on its own clock
            await committed[1].wait()
            await anyio.sleep(0.05)  # many empty gatherings: the writer goes back to sleep
            writes.submit(3)  # so this row has to wake it
            await committed[2].wait()
        assert batches == [[1], [2], [3]]
        tg.cancel_scope.cancel()
