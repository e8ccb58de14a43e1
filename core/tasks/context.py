"""``context.readFile``: the tail of a local file appended to a task's prompt.

Only files inside the configured read paths (``tasks.readPaths``) may be read. Paths are
compared after resolving symlinks and ``..``, so neither a link inside an allowed directory
nor a ``../`` can reach outside it; an allowed directory that is itself a symlink is fine.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from core.errors import ValidationFailed, field_error

__all__ = ["CONTEXT_PATH", "ensure_allowed", "read_context", "with_context"]

CONTEXT_PATH = "context.readFile"
"""The field path VALIDATION_ERRORs from this module carry."""

# O_NOFOLLOW: a final component swapped for a symlink after the check is not followed.
# O_NONBLOCK: a FIFO planted at the path cannot hang the open.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _resolve(path: str) -> Path | None:
    """``path`` with ``~``, symlinks and ``..`` resolved; None for a symlink loop."""
    try:
        return Path(path).expanduser().resolve(strict=False)
    except (OSError, RuntimeError):
        return None


def _inside(target: Path, allowed_dirs: Sequence[str]) -> bool:
    roots = (_resolve(root) for root in allowed_dirs)
    return any(root is not None and target.is_relative_to(root) for root in roots)


def _error(problem: str) -> ValidationFailed:
    return field_error(CONTEXT_PATH, problem)


def _confined(path: str, allowed_dirs: Sequence[str]) -> Path:
    target = _resolve(path)
    if target is None or not _inside(target, allowed_dirs):
        raise _error(f"{path} is outside the allowed read paths")
    return target


def ensure_allowed(path: str, allowed_dirs: Sequence[str]) -> None:
    """VALIDATION_ERROR (path ``context.readFile``) unless ``path`` resolves inside one of
    ``allowed_dirs``. Says nothing about whether the file exists: it may not yet."""
    _confined(path, allowed_dirs)


def read_context(path: str, allowed_dirs: Sequence[str], max_bytes: int = 64 * 1024) -> str:
    """The last ``max_bytes`` of the file at ``path``, decoded as UTF-8 (errors replaced).

    When the file is longer than ``max_bytes`` the text starts after the first line break
    of the tail, so it does not open mid-line (unless the tail holds no line break).
    Raises VALIDATION_ERROR (path ``context.readFile``) when the resolved path is outside
    every resolved ``allowed_dirs``, or is missing, not a regular file or unreadable.
    Blocking file I/O: call it from a worker thread in async code.
    """
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be positive, got {max_bytes}")
    # Containment first, so nothing is revealed about files outside the allowed paths.
    target = _confined(path, allowed_dirs)
    try:
        fd = os.open(target, _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise _error(f"{path} does not exist") from exc
    except OSError as exc:
        raise _error(f"{path} cannot be read: {exc.strerror}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            raise _error(f"{path} is {kind}")
        truncated = info.st_size > max_bytes
        if truncated:
            os.lseek(fd, info.st_size - max_bytes, os.SEEK_SET)
        data = _read_up_to(fd, max_bytes)
    except OSError as exc:
        raise _error(f"{path} cannot be read: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return _tail_text(data, truncated)


def _read_up_to(fd: int, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _tail_text(data: bytes, truncated: bool) -> str:
    if truncated:
        newline = data.find(b"\n")
        if 0 <= newline < len(data) - 1:
            data = data[newline + 1 :]
        else:
            # No line to align to: at least do not open on half a UTF-8 character.
            data = data.lstrip(bytes(range(0x80, 0xC0)))
    return data.decode("utf-8", errors="replace")


def with_context(prompt: str, path: str, tail: str) -> str:
    """``prompt`` with ``tail`` appended under a delimiter naming the file and its size."""
    size = len(tail.encode("utf-8"))
    return f"{prompt}\n\n--- context: {path} (last {size} bytes) ---\n{tail}\n--- end context ---"
