from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.auth import new_token
from core.clock import FakeClock
from core.errors import Gone, ValidationFailed
from core.store import SqliteStore, open_sqlite
from core.views import TOMBSTONE_KEEP, ViewService

TTL_S = 900


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "views.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    opened = open_sqlite(db_path)
    yield opened
    opened.db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def views(store: SqliteStore, clock: FakeClock) -> ViewService:
    return ViewService(store.views, clock, ttl_s=TTL_S)


def file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


def assert_absent(db_path: Path, secret: str) -> None:
    """Neither the database file nor its WAL holds any copy of ``secret``."""
    assert secret.encode() not in file_bytes(db_path)
    assert secret.encode() not in file_bytes(Path(f"{db_path}-wal"))


def assert_present(db_path: Path, secret: str) -> None:
    """The check above can see a stored secret (so its passing means something)."""
    combined = file_bytes(db_path) + file_bytes(Path(f"{db_path}-wal"))
    assert secret.encode() in combined


async def test_first_take_returns_the_secret_and_erases_it_from_disk(
    views: ViewService, db_path: Path
) -> None:
    raw = new_token()
    nonce = await views.create(raw, name="ci", kind="user")
    assert len(nonce) >= 43
    assert_present(db_path, raw)
    viewed = await views.take(nonce)
    assert viewed.wire() == {"token": raw, "name": "ci", "kind": "user"}
    assert_absent(db_path, raw)


async def test_second_take_is_gone_already_viewed(views: ViewService, db_path: Path) -> None:
    raw = new_token()
    nonce = await views.create(raw, name="ci", kind="user")
    await views.take(nonce)
    with pytest.raises(Gone) as caught:
        await views.take(nonce)
    assert caught.value.http_status == 410
    assert caught.value.message == "already viewed"
    assert_absent(db_path, raw)


async def test_expired_take_is_gone_and_the_secret_erased(
    views: ViewService, clock: FakeClock, db_path: Path
) -> None:
    raw = new_token()
    nonce = await views.create(raw, name="laptop", kind="worker")
    clock.advance(TTL_S)
    with pytest.raises(Gone, match="expired"):
        await views.take(nonce)
    assert_absent(db_path, raw)
    with pytest.raises(Gone, match="expired"):
        await views.take(nonce)


async def test_take_just_before_expiry_works(views: ViewService, clock: FakeClock) -> None:
    nonce = await views.create("s3cret-value", name="ci", kind="user")
    clock.advance(TTL_S - 0.001)
    assert (await views.take(nonce)).token == "s3cret-value"


async def test_per_view_ttl_overrides_the_default(views: ViewService, clock: FakeClock) -> None:
    nonce = await views.create("enrollment-code-1", name="w", kind="enrollment", ttl_s=60)
    clock.advance(60)
    with pytest.raises(Gone, match="expired"):
        await views.take(nonce)


@pytest.mark.parametrize("nonce", ["", "short", "x" * 43, "../../etc/passwd", "é" * 43])
async def test_unknown_or_malformed_nonce_is_gone(views: ViewService, nonce: str) -> None:
    with pytest.raises(Gone, match="no such link"):
        await views.take(nonce)


async def test_sweep_erases_only_expired_secrets(
    views: ViewService, clock: FakeClock, db_path: Path
) -> None:
    short, long = new_token(), new_token()
    await views.create(short, name="a", kind="user", ttl_s=60)
    long_nonce = await views.create(long, name="b", kind="user")
    clock.advance(61)
    assert await views.sweep() == 1
    assert await views.sweep() == 0
    assert_absent(db_path, short)
    assert_present(db_path, long)
    assert (await views.take(long_nonce)).token == long
    assert_absent(db_path, long)


async def test_create_sweeps_expired_views_opportunistically(
    views: ViewService, clock: FakeClock, db_path: Path
) -> None:
    old = new_token()
    await views.create(old, name="a", kind="user")
    clock.advance(TTL_S + 1)
    await views.create(new_token(), name="b", kind="user")
    assert_absent(db_path, old)


async def test_many_erased_secrets_leave_no_bytes_in_checkpointed_pages(
    views: ViewService, store: SqliteStore, db_path: Path
) -> None:
    # Secrets sharing pages with live rows: without secure_delete, freed cell space keeps
    # some of them in the database file after the checkpoint.
    secrets = [new_token() for _ in range(40)]
    nonces = [await views.create(s, name=f"t{i}", kind="user") for i, s in enumerate(secrets)]
    store.db.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for secret in secrets:
        assert secret.encode() in file_bytes(db_path)
    taken = list(range(0, 40, 3))
    for i in taken:
        await views.take(nonces[i])
    for i, secret in enumerate(secrets):
        if i in taken:
            assert_absent(db_path, secret)
        else:
            assert_present(db_path, secret)


async def test_tombstones_are_purged_after_the_keep_period(
    views: ViewService, store: SqliteStore, clock: FakeClock
) -> None:
    nonce = await views.create("value-1", name="a", kind="user")
    await views.take(nonce)
    clock.advance(TTL_S + TOMBSTONE_KEEP.total_seconds() + 1)
    await views.sweep()
    assert store.db.conn.execute("SELECT COUNT(*) FROM views").fetchone()[0] == 0
    with pytest.raises(Gone, match="no such link"):
        await views.take(nonce)


async def test_empty_secret_is_refused(views: ViewService) -> None:
    with pytest.raises(ValidationFailed, match="secret"):
        await views.create("", name="a", kind="user")


def test_database_file_is_private(store: SqliteStore, db_path: Path) -> None:
    assert stat.S_IMODE(db_path.stat().st_mode) == 0o600
