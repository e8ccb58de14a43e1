"""API tokens: mint, authenticate, list, revoke.

A raw token is ``mr_`` followed by 43 base62 characters (256 bits from :mod:`secrets`). It
is handed to its owner once, at minting, and never stored: the store keeps its SHA-256 and
a short display prefix. Authentication hashes the presented value and looks the hash up.

Worker tokens are minted here too (``kind="worker"``, named after the worker, carrying its
``worker_id``); the principal they produce acts as ``worker:NAME``.
"""

from __future__ import annotations

import builtins
import hashlib
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field

from core.clock import Clock, to_ms
from core.errors import NotFound, Unauthorized, ValidationFailed
from core.ids import new_id
from core.models import UtcDatetime, WireModel
from core.principal import SCOPES, Principal
from core.store.base import TokenRepo, TokenRow

__all__ = [
    "DEFAULT_SCOPES",
    "PREFIX_LEN",
    "TOKEN_PREFIX",
    "TokenInfo",
    "TokenKind",
    "TokenService",
    "hash_token",
    "new_token",
]

TOKEN_PREFIX = "mr_"  # noqa: S105 - the public marker every token starts with
PREFIX_LEN = 10
"""How much of a raw token is kept for display (``mr_`` and 7 characters, ~41 bits)."""
DEFAULT_SCOPES: tuple[str, ...] = ("dispatch", "tasks:read", "tasks:write", "jobs:read",
                                   "jobs:write")
"""What a user token gets when its creator names no scopes."""

TokenKind = Literal["user", "worker"]

_ALPHABET = string.ascii_letters + string.digits
_BODY_LEN = 43  # 62**43 > 2**256
_TOKEN_RE = re.compile(rf"{TOKEN_PREFIX}[0-9A-Za-z]{{{_BODY_LEN}}}")
_NAME_MAX = 100
_CACHE_MAX = 4096


class TokenInfo(WireModel):
    """A token as listed and returned: never its raw value, never its hash."""

    id: str = Field(description="`tok_<ulid>`.")
    prefix: str = Field(description="The first characters of the raw token, to recognise it.")
    name: str
    scopes: list[str]
    providers: list[str] | None = Field(
        default=None, description="Providers this token may dispatch to; null means any.")
    kind: TokenKind
    worker_id: str | None = None
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None

    @classmethod
    def of(cls, row: TokenRow) -> TokenInfo:
        return cls(
            id=row.id, prefix=row.prefix, name=row.name, scopes=list(row.scopes),
            providers=list(row.providers) if row.providers is not None else None,
            kind=_kind(row.kind), worker_id=row.worker_id, created_at=row.created_at,
            last_used_at=row.last_used_at, revoked_at=row.revoked_at,
        )


def new_token() -> str:
    """A fresh raw token: ``mr_`` + 43 base62 characters from :mod:`secrets`."""
    return TOKEN_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(_BODY_LEN))


def hash_token(raw: str) -> str:
    """The SHA-256 hex digest a token is stored and looked up by."""
    # A raw token is 256 random bits, so there is nothing to brute-force: a fast unsalted
    # hash is as strong as a slow KDF here, and keeps authentication to one cheap lookup.
    # (Timing of the indexed lookup leaks nothing useful: the caller cannot steer the hash.)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def _kind(value: str) -> TokenKind:
    return "worker" if value == "worker" else "user"


def _shown(token_id: str) -> str:
    """A token id fit for an error message, even if someone pasted a raw token instead."""
    return token_id[:PREFIX_LEN] + "…" if token_id.startswith(TOKEN_PREFIX) else token_id


def _principal(row: TokenRow) -> Principal:
    return Principal(
        name=row.name,
        kind=_kind(row.kind),
        scopes=frozenset(row.scopes),
        providers=frozenset(row.providers) if row.providers is not None else None,
        token_id=row.id,
        worker_id=row.worker_id,
    )


class _Minting:
    """Validated minting input; every problem is collected, then raised together."""

    def __init__(self, name: str, scopes: Iterable[str], providers: Iterable[str] | None,
                 kind: str, worker_id: str | None) -> None:
        self.problems: list[dict[str, Any]] = []
        self.name = name.strip()
        self.kind = _kind(kind)
        self.worker_id = worker_id
        self._check_name()
        self.scopes = self._check_scopes(scopes)
        self.providers = self._check_providers(providers)
        self._check_kind(kind)
        if self.problems:
            message = "; ".join(f"{p['path']}: {p['problem']}" for p in self.problems)
            raise ValidationFailed(message, details=self.problems)

    def _problem(self, path: str, problem: str) -> None:
        self.problems.append({"path": path, "problem": problem})

    def _check_name(self) -> None:
        if not self.name:
            self._problem("name", "must not be empty")
        elif len(self.name) > _NAME_MAX or not self.name.isprintable():
            self._problem("name", f"must be printable and at most {_NAME_MAX} characters")

    def _check_scopes(self, scopes: Iterable[str]) -> tuple[str, ...]:
        if isinstance(scopes, str):
            self._problem("scopes", "must be a list of scopes, not one string")
            return ()
        given = list(scopes)
        for i, scope in enumerate(given):
            if scope not in SCOPES:
                self._problem(f"scopes[{i}]", f"unknown scope '{scope}' "
                              f"(valid: {', '.join(SCOPES)})")
        if not given and self.kind == "user":
            self._problem("scopes", "a user token needs at least one scope")
        return tuple(s for s in SCOPES if s in given)

    def _check_providers(self, providers: Iterable[str] | None) -> tuple[str, ...] | None:
        if providers is None:
            return None
        if isinstance(providers, str):
            self._problem("providers", "must be a list of provider names, not one string")
            return None
        given = list(providers)
        for i, provider in enumerate(given):
            if not provider.strip():
                self._problem(f"providers[{i}]", "must not be empty")
        return tuple(sorted({p.strip() for p in given}))

    def _check_kind(self, kind: str) -> None:
        if kind not in ("user", "worker"):
            self._problem("kind", "must be 'user' or 'worker'")
        elif kind == "worker" and not self.worker_id:
            self._problem("workerId", "a worker token needs the worker's id")
        elif kind == "user" and self.worker_id is not None:
            self._problem("workerId", "only worker tokens carry a worker id")


class TokenService:
    """Mints, checks and revokes API tokens over a :class:`TokenRepo`.

    Positive lookups are cached in memory for ``cache_ttl_s`` (≤ 1 s): a revoke through
    this service takes effect at once, one through another process within that time.
    ``last_used_at`` is written at most once per ``touch_interval_s`` per token.
    """

    def __init__(self, repo: TokenRepo, clock: Clock, *, touch_interval_s: float = 60.0,
                 cache_ttl_s: float = 1.0) -> None:
        if not 0 <= cache_ttl_s <= 1:
            raise ValueError("cache_ttl_s must be between 0 and 1 second")
        self.repo = repo
        self.clock = clock
        self._touch_interval = timedelta(seconds=touch_interval_s)
        self._cache_ttl = timedelta(seconds=cache_ttl_s)
        self._cache: dict[str, tuple[TokenRow, datetime]] = {}

    async def mint(
        self,
        name: str,
        scopes: Iterable[str],
        providers: Iterable[str] | None = None,
        *,
        kind: TokenKind = "user",
        worker_id: str | None = None,
    ) -> tuple[TokenInfo, str]:
        """A new token and its raw value. The raw value exists only in this return value:
        show it to its owner once (or put it behind a one-time view) and drop it."""
        spec = _Minting(name, scopes, providers, kind, worker_id)
        raw = new_token()
        now = to_ms(self.clock.now())
        row = TokenRow(
            id=new_id("tok"), hash=hash_token(raw),
            prefix=raw[:PREFIX_LEN], name=spec.name, scopes=spec.scopes,
            providers=spec.providers, kind=spec.kind, worker_id=spec.worker_id,
            created_at=now,
        )
        await self.repo.add(row)
        return TokenInfo.of(row), raw

    async def authenticate(self, raw: str | None) -> Principal:
        """The principal a raw bearer token stands for; :class:`Unauthorized` if missing,
        malformed, unknown or revoked. Messages never contain the presented value."""
        if not raw:
            raise Unauthorized("missing bearer token")
        if not _TOKEN_RE.fullmatch(raw):
            raise Unauthorized("malformed token")
        digest = hash_token(raw)
        row = await self._lookup(digest)
        if row is None:
            raise Unauthorized("invalid token")
        if row.revoked_at is not None:
            raise Unauthorized("token revoked")
        await self._touch(row)
        return _principal(row)

    async def list(self, include_revoked: bool = False) -> builtins.list[TokenInfo]:
        """Tokens, newest first."""
        return [TokenInfo.of(r) for r in await self.repo.all(include_revoked=include_revoked)]

    async def get(self, token_id: str) -> TokenInfo:
        row = await self.repo.get(token_id)
        if row is None:
            raise NotFound(f"no token '{_shown(token_id)}'")
        return TokenInfo.of(row)

    async def revoke(self, token_id: str) -> TokenInfo:
        """Revoke at once; revoking a revoked token returns it unchanged."""
        row = await self.repo.revoke(token_id, to_ms(self.clock.now()))
        if row is None:
            raise NotFound(f"no token '{_shown(token_id)}'")
        self._cache.pop(row.hash, None)
        return TokenInfo.of(row)

    async def has_admin(self) -> bool:
        """Whether some unrevoked token carries the ``admin`` scope."""
        return await self.repo.has_admin()

    async def _lookup(self, digest: str) -> TokenRow | None:
        now = self.clock.now()
        hit = self._cache.get(digest)
        if hit is not None and timedelta(0) <= now - hit[1] < self._cache_ttl:
            return hit[0]
        row = await self.repo.by_hash(digest)
        if row is None or not self._cache_ttl:
            self._cache.pop(digest, None)
            return row
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[digest] = (row, now)
        return row

    async def _touch(self, row: TokenRow) -> None:
        now = to_ms(self.clock.now())
        stale_at = now - self._touch_interval
        if row.last_used_at is not None and row.last_used_at > stale_at:
            return
        await self.repo.touch(row.id, now, stale_at=stale_at)
        hit = self._cache.get(row.hash)
        if hit is not None:
            # Whether this process wrote it or another just did, it is fresh now.
            self._cache[row.hash] = (replace(row, last_used_at=now), hit[1])
