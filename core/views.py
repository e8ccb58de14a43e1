"""One-time views of a secret: a link that shows a raw token once, then never again.

Minting a token over HTTP (or registering a worker) must not put the raw value in a
response that lands in logs or chat transcripts, so the edge stores it here and returns
``/view/<nonce>``. The first :meth:`ViewService.take` returns the secret and erases it in
the same transaction; the row stays as a tombstone so later takes can say why they fail.
Expired secrets are erased by :meth:`ViewService.sweep`, which also runs on every
create and take.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import timedelta

from core.clock import Clock, to_ms
from core.errors import Gone, field_error
from core.models import WireModel
from core.store.base import ViewRepo, ViewRow

__all__ = ["TOMBSTONE_KEEP", "ViewService", "ViewedSecret"]

TOMBSTONE_KEEP = timedelta(days=30)
"""How long after expiry a tombstone is kept before the row is deleted."""

_NONCE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


class ViewedSecret(WireModel):
    """What a one-time view shows: ``{"token", "name", "kind"}`` on the wire."""

    token: str
    name: str
    kind: str


def _nonce_hash(nonce: str) -> str:
    # The table is keyed by the nonce's hash, so reading the database does not hand out
    # live links (the secret column of a live view is, unavoidably, the secret itself).
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


class ViewService:
    """Stores secrets behind single-use nonces that expire after ``ttl_s`` seconds.

    Every failed take is :class:`Gone` (HTTP 410), including an unknown nonce: the view
    page then has one failure answer whether the link was used, expired, purged after
    :data:`TOMBSTONE_KEEP` or never existed, and a prober learns nothing from 404 vs 410
    (not that 256-bit nonces can be guessed). The message says which case it was.
    """

    def __init__(self, repo: ViewRepo, clock: Clock, ttl_s: float) -> None:
        if ttl_s <= 0:
            raise ValueError("ttl_s must be positive")
        self.repo = repo
        self.clock = clock
        self.ttl = timedelta(seconds=ttl_s)

    async def create(self, secret: str, *, name: str, kind: str,
                     ttl_s: float | None = None) -> str:
        """Store ``secret`` for one view; returns the nonce (43 urlsafe characters, 256
        bits) to build the link from. ``ttl_s`` overrides the service default."""
        if not secret:
            raise field_error("secret", "must not be empty")
        if ttl_s is not None and ttl_s <= 0:
            raise field_error("ttlS", "must be positive")
        await self.sweep()
        nonce = secrets.token_urlsafe(32)
        now = to_ms(self.clock.now())
        ttl = self.ttl if ttl_s is None else timedelta(seconds=ttl_s)
        await self.repo.add(ViewRow(
            nonce_hash=_nonce_hash(nonce), name=name, kind=kind, secret=secret,
            created_at=now, expires_at=to_ms(now + ttl),
        ))
        return nonce

    async def take(self, nonce: str) -> ViewedSecret:
        """The secret, exactly once. Afterwards, or once expired: :class:`Gone`."""
        await self.sweep()
        if not _NONCE_RE.fullmatch(nonce):
            raise Gone("no such link, or it is no longer available")
        row = await self.repo.take(_nonce_hash(nonce), to_ms(self.clock.now()))
        if row is None:
            raise Gone("no such link, or it is no longer available")
        if row.secret is None:
            raise Gone("already viewed" if row.viewed_at is not None else "expired")
        return ViewedSecret(token=row.secret, name=row.name, kind=row.kind)

    async def sweep(self) -> int:
        """Erase the secrets of expired views; returns how many were erased."""
        now = to_ms(self.clock.now())
        return await self.repo.sweep(now, purge_before=now - TOMBSTONE_KEEP)
