from __future__ import annotations

import sqlite3
from pathlib import Path

from core.store.checkpoint import Checkpointer


def _wal(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


async def test_an_interval_without_writes_skips_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db"
    loop_conn, writer = _wal(path), _wal(path)
    loop_conn.execute("CREATE TABLE t (x)")
    checkpointer = Checkpointer(_wal(path), [loop_conn, writer])
    ran: list[int] = []
    checkpoint = checkpointer.checkpoint

    def counted() -> None:
        ran.append(1)
        checkpoint()

    checkpointer.checkpoint = counted  # type: ignore[method-assign]
    try:
        assert await checkpointer.step(), "the first interval always checkpoints"
        assert not await checkpointer.step()
        writer.execute("INSERT INTO t VALUES (1)")
        assert await checkpointer.step(), "a write on any of the connections counts"
        assert not await checkpointer.step()
        loop_conn.execute("UPDATE t SET x = 2")
        assert await checkpointer.step()
        assert len(ran) == 3
    finally:
        for conn in (loop_conn, writer, checkpointer.conn):
            conn.close()
