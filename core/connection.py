"""Which ModelReins an edge talks to: the local home, or a remote server.

Remote mode is on when a server URL is known, from (first match wins):

1. ``MODELREINS_URL`` in the environment, with ``MODELREINS_TOKEN`` as its token;
2. the URL saved by ``modelreins config set url`` in ``$MODELREINS_HOME/remote.yaml``,
   with ``MODELREINS_TOKEN`` if set, else the token saved by ``modelreins config set token``
   in ``$MODELREINS_HOME/token``.

A saved token only ever goes to the saved URL: a URL from the environment with no token in
the environment is used without one, so pointing a shell at another server never sends it
the saved credential. The token file is created with mode 0600 (never widened, not even for
an instant) and replaced atomically.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml

from core.auth import PREFIX_LEN
from core.config import home_dir
from core.errors import ValidationFailed, field_error

__all__ = [
    "REMOTE_FILE",
    "TOKEN_FILE",
    "Connection",
    "connection_settings",
    "forget",
    "mask_token",
    "normalize_url",
    "save_token",
    "save_url",
    "saved_token",
    "saved_url",
]

REMOTE_FILE = "remote.yaml"
TOKEN_FILE = "token"  # noqa: S105 - a file name, not a secret
URL_ENV = "MODELREINS_URL"
TOKEN_ENV = "MODELREINS_TOKEN"  # noqa: S105 - an environment variable's name

_TOKEN_SHAPE = re.compile(r"mr_[0-9A-Za-z]+")

Source = Literal["environment", "config"]


@dataclass(frozen=True)
class Connection:
    """A remote server to talk to, and where that choice came from."""

    url: str
    token: str | None
    source: Source
    """``environment`` (MODELREINS_URL) or ``config`` (``modelreins config set url``)."""

    def __repr__(self) -> str:
        return f"Connection(url={self.url!r}, token={mask_token(self.token)!r}, " \
               f"source={self.source!r})"


def normalize_url(raw: str, *, path: str = "url") -> str:
    """``raw`` as a base URL (http or https, a host, no query), without a trailing slash;
    ``path`` names where it came from in the error."""
    text = raw.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        raise field_error(path, f"'{raw}' is not a valid URL ({exc})") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise field_error(path, f"'{raw}' is not an http:// or https:// URL with a host")
    if parts.query or parts.fragment:
        raise field_error(path, "must not carry a query or fragment")
    return text.rstrip("/")


def mask_token(token: str | None) -> str:
    """A token as it may be shown: its display prefix only, as ``token list`` shows it."""
    if not token:
        return "(none)"
    return token[:PREFIX_LEN] + "…" if len(token) > 2 * PREFIX_LEN else "…"


def _check_token(token: str) -> str:
    token = token.strip()
    if not _TOKEN_SHAPE.fullmatch(token):
        raise ValidationFailed(
            "token: a ModelReins token looks like mr_ followed by letters and digits",
            details=[{"path": "token", "problem": "not a ModelReins token (mr_…)"}])
    return token


def saved_url(home: Path) -> str | None:
    """The URL saved in ``home``, if any."""
    path = home / REMOTE_FILE
    if not path.is_file():
        return None
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    url = data.get("url") if isinstance(data, dict) else None
    return str(url) if url else None


def saved_token(home: Path) -> str | None:
    """The token saved in ``home``, if any."""
    path = home / TOKEN_FILE
    if not path.is_file():
        return None
    return path.read_text(encoding="utf-8").strip() or None


def connection_settings(home: Path | None = None,
                        env: Mapping[str, str] | None = None) -> Connection | None:
    """The remote server to use, or None for the local engine (see the module doc)."""
    env = os.environ if env is None else env
    home = home or home_dir(env)
    token_env = env.get(TOKEN_ENV) or None
    if from_env := env.get(URL_ENV, "").strip():
        return Connection(normalize_url(from_env, path=URL_ENV), token_env, "environment")
    if saved := saved_url(home):
        return Connection(normalize_url(saved, path=str(home / REMOTE_FILE)),
                          token_env or saved_token(home), "config")
    return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` as a file only its owner can read, atomically: the data
    goes to a new 0600 file (``mkstemp``) that then replaces ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _ensure_home(home: Path) -> None:
    home.mkdir(mode=0o700, parents=True, exist_ok=True)


def save_url(home: Path, url: str) -> str:
    """Save ``url`` as the remote server of ``home``; returns it normalized."""
    url = normalize_url(url)
    _ensure_home(home)
    (home / REMOTE_FILE).write_text(yaml.safe_dump({"url": url}), encoding="utf-8")
    return url


def save_token(home: Path, token: str) -> None:
    """Save ``token`` in ``home``'s token file (mode 0600)."""
    token = _check_token(token)
    _ensure_home(home)
    _write_private(home / TOKEN_FILE, token + "\n")


def forget(home: Path, what: Literal["url", "token"]) -> bool:
    """Remove the saved URL or token; whether there was one."""
    path = home / (REMOTE_FILE if what == "url" else TOKEN_FILE)
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True
