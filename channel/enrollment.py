"""Enrollment: a single-use code becomes a worker token, stored once, 0600.

``modelreins_recruit`` never shows a token. It puts the worker's fresh token behind a
one-time view of kind ``enrollment`` with a short TTL; the view's nonce *is* the
enrollment code printed in the ``claude mcp add`` command. On its first start
``modelreins channel`` exchanges the code — in-process through ``engine.views.take``, or
remotely with ``GET {url}/view/{code}`` and ``Accept: application/json`` — and stores the
token at ``$MODELREINS_HOME/channel/<worker>.token`` (created 0600, never wider).

Later starts run the same command with the same, now spent, code: the stored credential
remembers which code it came from (a hash, never the code) and is used without asking the
server again. A different code (the session was recruited again) is exchanged for a new
token; if that code is already spent too, the stored token of the same worker still serves.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx2

from core.errors import (
    Forbidden,
    Gone,
    Unavailable,
    ValidationFailed,
    error_from_wire,
)
from core.views import ViewedSecret

__all__ = [
    "ACCEPTED_KINDS",
    "CREDENTIALS_DIR",
    "ENROLLMENT_KIND",
    "ENROLLMENT_TTL_S",
    "CodeExchange",
    "Credential",
    "CredentialStore",
    "EnrollmentFailed",
    "HttpExchange",
    "code_digest",
    "enroll",
]

ENROLLMENT_KIND = "enrollment"
"""The ``kind`` of the one-time view an enrollment code opens."""
ACCEPTED_KINDS = (ENROLLMENT_KIND, "worker")
"""View kinds that carry a worker token: ``worker`` views are what a server makes when it
registers a worker through its API (the remote recruit path)."""
ENROLLMENT_TTL_S = 600.0
"""How long an enrollment code can be used: long enough to paste and restart."""
CREDENTIALS_DIR = "channel"

log = logging.getLogger("modelreins.channel")


class EnrollmentFailed(Gone):
    """The code cannot be exchanged and no stored credential can stand in for it."""


def code_digest(code: str) -> str:
    """How a stored credential remembers its code (the code itself is never stored)."""
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Credential:
    """A worker's token, as stored."""

    worker: str
    token: str
    code_sha256: str
    url: str | None = None

    def __repr__(self) -> str:
        return f"Credential(worker={self.worker!r}, url={self.url!r})"


class CredentialStore:
    """``<home>/channel/<worker>.token`` files: JSON, mode 0600, replaced atomically."""

    def __init__(self, home: Path) -> None:
        self.directory = home / CREDENTIALS_DIR

    def path(self, worker: str) -> Path:
        return self.directory / f"{worker}.token"

    def load(self, worker: str) -> Credential | None:
        try:
            data = json.loads(self.path(worker).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable credential %s: %s", self.path(worker), exc)
            return None
        if not isinstance(data, dict) or not isinstance(data.get("token"), str):
            return None
        url = data.get("url")
        return Credential(worker=worker, token=data["token"],
                          code_sha256=str(data.get("code_sha256", "")),
                          url=url if isinstance(url, str) else None)

    def save(self, credential: Credential) -> Path:
        """Write the credential; the file is 0600 from the moment it exists."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.path(credential.worker)
        body = json.dumps({"worker": credential.worker, "token": credential.token,
                           "code_sha256": credential.code_sha256, "url": credential.url})
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(body + "\n")
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target


class CodeExchange(Protocol):
    """Takes a one-time view: :class:`core.views.ViewService` in-process, or
    :class:`HttpExchange` against a server."""

    async def take(self, nonce: str) -> ViewedSecret: ...


class HttpExchange:
    """``GET {url}/view/{code}`` with ``Accept: application/json``."""

    def __init__(self, base_url: str, http: httpx2.AsyncClient) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = http

    async def take(self, nonce: str) -> ViewedSecret:
        try:
            response = await self.http.get(f"{self.base_url}/view/{nonce}",
                                           headers={"Accept": "application/json"})
        except httpx2.TransportError as exc:
            raise Unavailable(f"cannot reach ModelReins at {self.base_url} to enroll: "
                              f"{exc or type(exc).__name__}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code == 200 and isinstance(body, dict):
            return ViewedSecret.model_validate(body)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            raise error_from_wire(error)
        if response.status_code == 410:
            raise Gone("the enrollment code was already used or has expired")
        raise Unavailable(f"{self.base_url}/view/… answered HTTP {response.status_code}; "
                          "is it a ModelReins server?")


async def enroll(code: str, worker: str, exchange: CodeExchange, store: CredentialStore, *,
                 url: str | None = None) -> Credential:
    """The credential for ``worker``: the stored one if it came from ``code``, else
    ``code`` exchanged (and stored), else — the code being spent — the stored one.

    Raises :class:`EnrollmentFailed` when the code is spent or expired and nothing is
    stored, and FORBIDDEN when the code opens something other than this worker's token.
    """
    digest = code_digest(code)
    stored = store.load(worker)
    if stored is not None and stored.code_sha256 == digest:
        return stored
    try:
        viewed = await exchange.take(code)
    except Gone as exc:
        # Another start of the same command may have won the exchange a moment ago.
        stored = store.load(worker) or stored
        if stored is not None:
            log.warning("enrollment code already used or expired; using the stored token "
                        "of worker '%s'", worker)
            return stored
        raise EnrollmentFailed(
            f"the enrollment code for worker '{worker}' was already used or has expired, "
            "and no token is stored for it; run modelreins_recruit again for a fresh "
            "command") from exc
    if viewed.kind not in ACCEPTED_KINDS or viewed.name != worker:
        raise Forbidden(f"that code is not an enrollment for worker '{worker}' "
                        f"(it opened a {viewed.kind!r} view for {viewed.name!r})")
    if not viewed.token:
        raise ValidationFailed("the enrollment answer carried no token")
    credential = Credential(worker=worker, token=viewed.token, code_sha256=digest, url=url)
    store.save(credential)
    return credential
