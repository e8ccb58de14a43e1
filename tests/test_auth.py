from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.auth import PREFIX_LEN, TokenService, hash_token, new_token
from core.clock import FakeClock
from core.errors import NotFound, Unauthorized, ValidationFailed
from core.store import SqliteStore, open_sqlite
from core.store.base import TokenRow
from core.store.tokens import SqliteTokens

USER_SCOPES = ["dispatch", "jobs:read"]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = open_sqlite(tmp_path / "auth.db")
    yield opened
    opened.db.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tokens(store: SqliteStore, clock: FakeClock) -> TokenService:
    return TokenService(store.tokens, clock)


def on_disk(path: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())


async def test_mint_returns_the_raw_token_once_and_info_without_secrets(
    tokens: TokenService,
) -> None:
    info, raw = await tokens.mint("ci", USER_SCOPES, ["echo"])
    assert re.fullmatch(r"mr_[0-9A-Za-z]{43}", raw)
    assert info.prefix == raw[:PREFIX_LEN]
    assert info.id.startswith("tok_")
    wire = info.wire()
    assert set(wire) == {"id", "prefix", "name", "scopes", "providers", "kind", "workerId",
                         "createdAt", "lastUsedAt", "revokedAt"}
    assert raw not in str(wire)
    assert hash_token(raw) not in str(wire)
    assert wire["createdAt"] == "2026-01-01T00:00:00.000Z"
    assert await tokens.get(info.id) == info


async def test_new_tokens_are_distinct() -> None:
    assert len({new_token() for _ in range(100)}) == 100


async def test_authenticate_gives_the_user_principal(tokens: TokenService) -> None:
    info, raw = await tokens.mint(" ci bot ", USER_SCOPES, ["echo", "claude", "echo"])
    principal = await tokens.authenticate(raw)
    assert principal.kind == "user"
    assert principal.name == "ci bot" == principal.actor
    assert principal.token_id == info.id
    assert principal.scopes == frozenset(USER_SCOPES)
    assert principal.providers == frozenset({"echo", "claude"})
    assert principal.worker_id is None
    assert principal.has("jobs:read")
    assert not principal.has("tasks:write")


async def test_worker_token_principal_acts_as_the_worker(tokens: TokenService) -> None:
    info, raw = await tokens.mint("laptop", [], kind="worker", worker_id="wkr_1")
    principal = await tokens.authenticate(raw)
    assert (principal.kind, principal.name, principal.worker_id) == ("worker", "laptop", "wkr_1")
    assert principal.actor == "worker:laptop"
    assert principal.providers is None
    assert principal.scopes == frozenset()
    assert info.kind == "worker"
    assert info.worker_id == "wkr_1"


@pytest.mark.parametrize(
    ("presented", "message"),
    [
        (None, "missing bearer token"),
        ("", "missing bearer token"),
        ("mr_short", "malformed token"),
        ("Bearer mr_" + "a" * 43, "malformed token"),
        ("mr_" + "a" * 42 + "!", "malformed token"),
        ("mr_" + "a" * 43, "invalid token"),
    ],
)
async def test_authenticate_rejects_without_echoing_the_token(
    tokens: TokenService, presented: str | None, message: str
) -> None:
    await tokens.mint("ci", USER_SCOPES)
    with pytest.raises(Unauthorized) as caught:
        await tokens.authenticate(presented)
    assert caught.value.message == message
    assert caught.value.http_status == 401


async def test_revoke_takes_effect_at_once_even_when_cached(
    tokens: TokenService, clock: FakeClock
) -> None:
    info, raw = await tokens.mint("ci", USER_SCOPES)
    await tokens.authenticate(raw)
    revoked = await tokens.revoke(info.id)
    assert revoked.revoked_at == clock.now()
    with pytest.raises(Unauthorized, match="token revoked"):
        await tokens.authenticate(raw)


async def test_revoke_elsewhere_takes_effect_within_a_second(
    store: SqliteStore, clock: FakeClock
) -> None:
    here, other_process = TokenService(store.tokens, clock), TokenService(store.tokens, clock)
    info, raw = await here.mint("ci", USER_SCOPES)
    await here.authenticate(raw)
    await other_process.revoke(info.id)
    clock.advance(1.0)
    with pytest.raises(Unauthorized, match="token revoked"):
        await here.authenticate(raw)


class CountingTokens(SqliteTokens):
    lookups = 0

    async def by_hash(self, token_hash: str) -> TokenRow | None:
        self.lookups += 1
        return await super().by_hash(token_hash)


async def test_positive_lookups_are_cached_for_under_a_second(
    store: SqliteStore, clock: FakeClock
) -> None:
    repo = CountingTokens(store.db)
    tokens = TokenService(repo, clock)
    _, raw = await tokens.mint("ci", USER_SCOPES)
    for _ in range(5):
        await tokens.authenticate(raw)
    assert repo.lookups == 1
    clock.advance(1.0)
    await tokens.authenticate(raw)
    assert repo.lookups == 2


async def test_revoke_is_idempotent_and_unknown_is_not_found(
    tokens: TokenService, clock: FakeClock
) -> None:
    info, _ = await tokens.mint("ci", USER_SCOPES)
    first = await tokens.revoke(info.id)
    clock.advance(60)
    assert await tokens.revoke(info.id) == first
    with pytest.raises(NotFound):
        await tokens.revoke("tok_nope")
    with pytest.raises(NotFound) as caught:
        await tokens.get("mr_" + "b" * 43)
    assert "b" * 10 not in caught.value.message


async def test_last_used_is_written_at_most_once_a_minute(
    store: SqliteStore, tokens: TokenService, clock: FakeClock
) -> None:
    info, raw = await tokens.mint("ci", USER_SCOPES)
    assert info.last_used_at is None
    start = clock.now()
    await tokens.authenticate(raw)
    assert (await tokens.get(info.id)).last_used_at == start

    writes = store.db.conn.total_changes
    for _ in range(30):
        clock.advance(1.9)
        await tokens.authenticate(raw)
    assert store.db.conn.total_changes == writes
    assert (await tokens.get(info.id)).last_used_at == start

    clock.advance(3)
    await tokens.authenticate(raw)
    assert (await tokens.get(info.id)).last_used_at == clock.now()
    assert store.db.conn.total_changes == writes + 1


async def test_scopes_are_validated_and_the_bad_one_named(tokens: TokenService) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await tokens.mint("ci", ["dispatch", "jobs:destroy"])
    assert caught.value.code == "VALIDATION_ERROR"
    assert "'jobs:destroy'" in caught.value.message
    assert caught.value.details == [{"path": "scopes[1]", "problem": caught.value.message
                                     .removeprefix("scopes[1]: ")}]
    assert await tokens.list() == []


@pytest.mark.parametrize(
    ("kwargs", "path"),
    [
        ({"name": "  ", "scopes": ["dispatch"]}, "name"),
        ({"name": "a\nb", "scopes": ["dispatch"]}, "name"),
        ({"name": "ci", "scopes": []}, "scopes"),
        ({"name": "ci", "scopes": "dispatch"}, "scopes"),
        ({"name": "ci", "scopes": ["dispatch"], "providers": [""]}, "providers[0]"),
        ({"name": "w", "scopes": [], "kind": "worker"}, "workerId"),
        ({"name": "ci", "scopes": ["dispatch"], "worker_id": "wkr_1"}, "workerId"),
        ({"name": "ci", "scopes": ["dispatch"], "kind": "robot"}, "kind"),
    ],
)
async def test_minting_input_is_validated(
    tokens: TokenService, kwargs: dict[str, object], path: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        await tokens.mint(**kwargs)  # type: ignore[arg-type]
    assert [d["path"] for d in caught.value.details or []] == [path]  # type: ignore[index]


async def test_scopes_are_deduplicated_in_canonical_order(tokens: TokenService) -> None:
    info, _ = await tokens.mint("ci", ["admin", "dispatch", "dispatch"])
    assert info.scopes == ["dispatch", "admin"]


async def test_list_hides_revoked_unless_asked_and_is_newest_first(
    tokens: TokenService, clock: FakeClock
) -> None:
    old, _ = await tokens.mint("old", USER_SCOPES)
    clock.advance(1)
    new, _ = await tokens.mint("new", USER_SCOPES)
    assert [t.id for t in await tokens.list()] == [new.id, old.id]
    await tokens.revoke(old.id)
    assert [t.id for t in await tokens.list()] == [new.id]
    assert [t.name for t in await tokens.list(include_revoked=True)] == ["new", "old"]


async def test_has_admin_needs_an_unrevoked_admin_token(tokens: TokenService) -> None:
    assert not await tokens.has_admin()
    await tokens.mint("user", USER_SCOPES)
    assert not await tokens.has_admin()
    admin, _ = await tokens.mint("root", ["admin"])
    assert await tokens.has_admin()
    await tokens.revoke(admin.id)
    assert not await tokens.has_admin()


async def test_only_the_hash_is_at_rest(
    tmp_path: Path, store: SqliteStore, tokens: TokenService
) -> None:
    _, raw = await tokens.mint("ci", USER_SCOPES)
    await tokens.authenticate(raw)
    data = on_disk(tmp_path / "auth.db")
    assert hash_token(raw).encode() in data
    assert raw.encode() not in data
    assert raw[PREFIX_LEN:].encode() not in data
