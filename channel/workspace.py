"""What a workspace says about the worker it becomes: a name and tags, cheaply.

A recruited session is named after its workspace root and the host (``api-server-devbox``),
and tagged with the languages the workspace shows: marker files (``pyproject.toml``,
``package.json``, ``Cargo.toml``, ``go.mod`` …) and source file extensions, found by a
bounded breadth-first scan (a few levels, a few thousand entries, heavy directories such
as ``node_modules`` skipped), so recruiting never stalls on a huge tree.
"""

from __future__ import annotations

import os
import re
import socket
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

__all__ = [
    "EXTENSIONS",
    "MARKERS",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_LANGUAGE_TAGS",
    "host_label",
    "normalize_name",
    "root_from_uris",
    "worker_name",
    "workspace_tags",
]

MAX_DEPTH = 2
"""Directories below the root that are looked into (the root itself is depth 0)."""
MAX_ENTRIES = 4000
"""Directory entries read in all, at most."""
MAX_LANGUAGE_TAGS = 5
NAME_MAX = 64
HOST_MAX = 24

MARKERS: dict[str, str] = {
    "pyproject.toml": "python", "setup.py": "python", "setup.cfg": "python",
    "requirements.txt": "python", "Pipfile": "python",
    "package.json": "javascript", "tsconfig.json": "typescript", "deno.json": "typescript",
    "Cargo.toml": "rust", "go.mod": "go",
    "pom.xml": "java", "build.gradle": "java", "build.gradle.kts": "kotlin",
    "Gemfile": "ruby", "composer.json": "php", "mix.exs": "elixir",
    "Package.swift": "swift", "CMakeLists.txt": "cpp", "pubspec.yaml": "dart",
}
"""File names that declare a language outright (each counts as much as many sources)."""

EXTENSIONS: dict[str, str] = {
    ".py": "python", ".pyi": "python",
    ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascript",
    ".ts": "typescript", ".tsx": "typescript", ".mts": "typescript",
    ".rs": "rust", ".go": "go", ".java": "java", ".kt": "kotlin", ".kts": "kotlin",
    ".rb": "ruby", ".php": "php", ".cs": "csharp", ".swift": "swift", ".scala": "scala",
    ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp", ".cxx": "cpp",
    ".ex": "elixir", ".exs": "elixir", ".dart": "dart", ".lua": "lua", ".sh": "shell",
    ".sql": "sql", ".tf": "terraform",
}

SKIPPED_DIRS = frozenset({
    "node_modules", "venv", "env", "target", "build", "dist", "out", "vendor",
    "__pycache__", "site-packages", "bower_components", "coverage",
})
MARKER_WEIGHT = 25

_INVALID = re.compile(r"[^a-z0-9._-]+")


def normalize_name(text: str) -> str:
    """``text`` in the worker-name alphabet: lowercase ``[a-z0-9._-]``, runs of anything
    else as one ``-``, no separators at either end."""
    return _INVALID.sub("-", text.lower()).strip("-._")


def host_label(hostname: str | None = None) -> str:
    """This machine's short name (the first DNS label), normalized; ``host`` if empty."""
    raw = (hostname if hostname is not None else socket.gethostname()).split(".")[0]
    return normalize_name(raw)[:HOST_MAX].strip("-._") or "host"


def worker_name(root: Path | None, hostname: str | None = None) -> str:
    """``<dir>-<host>`` for a workspace root, within the 64-character name limit; just
    the host for no root (or one with no usable name)."""
    host = host_label(hostname)
    base = normalize_name(root.name) if root is not None else ""
    if not base:
        return host
    base = base[:NAME_MAX - len(host) - 1].strip("-._")
    return f"{base}-{host}" if base else host


def root_from_uris(uris: Iterable[str]) -> Path | None:
    """The first local directory among MCP root URIs (``file://…``); None if none is."""
    for uri in uris:
        parts = urlsplit(uri)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            continue
        path = Path(unquote(parts.path))
        if path.is_absolute():
            return path
    return None


def _scan(root: Path, max_depth: int, max_entries: int) -> Counter[str]:
    """Language evidence under ``root``: marker files weigh :data:`MARKER_WEIGHT`, each
    source file 1. Breadth-first, so a cut-off loses the deepest entries first."""
    counts: Counter[str] = Counter()
    frontier: list[tuple[Path, int]] = [(root, 0)]
    seen = 0
    while frontier and seen < max_entries:
        directory, depth = frontier.pop(0)
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries:
                        break
                    _count(entry, counts)
                    if (depth < max_depth and not entry.name.startswith(".")
                            and entry.name not in SKIPPED_DIRS
                            and entry.is_dir(follow_symlinks=False)):
                        frontier.append((Path(entry.path), depth + 1))
        except OSError:
            continue
    return counts


def _count(entry: os.DirEntry[str], counts: Counter[str]) -> None:
    if entry.name in MARKERS:
        counts[MARKERS[entry.name]] += MARKER_WEIGHT
        return
    language = EXTENSIONS.get(os.path.splitext(entry.name)[1].lower())
    if language is not None:
        counts[language] += 1


def workspace_tags(root: Path | None, *, max_depth: int = MAX_DEPTH,
                   max_entries: int = MAX_ENTRIES) -> list[str]:
    """``code`` and the workspace's main languages (most evidence first), or ``[]`` when
    it shows none (or there is no root)."""
    if root is None or not root.is_dir():
        return []
    counts = _scan(root, max_depth, max_entries)
    ranked: Sequence[str] = [lang for lang, _ in
                             sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return ["code", *ranked[:MAX_LANGUAGE_TAGS]] if ranked else []
