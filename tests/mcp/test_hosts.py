"""Which Host names the HTTP server answers to (pure functions, table-driven)."""

from __future__ import annotations

import pytest

from mcp_server.hosts import allowed_names, host_name


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8484", "127.0.0.1"),
        ("LocalHost:80", "localhost"),
        ("localhost", "localhost"),
        ("[::1]:8484", "[::1]"),
        ("[::1]", "[::1]"),
        ("::1", "[::1]"),
        ("example.com", "example.com"),
        ("", ""),
    ],
)
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


@pytest.mark.parametrize(
    ("host", "public_url", "expected"),
    [
        ("127.0.0.1", None, {"127.0.0.1", "localhost", "[::1]"}),
        ("::1", None, {"127.0.0.1", "localhost", "[::1]"}),
        ("10.0.0.5", None, {"127.0.0.1", "localhost", "[::1]", "10.0.0.5"}),
        ("127.0.0.1", "https://Reins.Example.com/base", {"127.0.0.1", "localhost", "[::1]",
                                                         "reins.example.com"}),
        ("0.0.0.0", None, None),
        ("::", "https://reins.example.com", None),
    ],
)
def test_allowed_names(host: str, public_url: str | None, expected: set[str] | None) -> None:
    names = allowed_names(host, public_url)
    assert names == (frozenset(expected) if expected is not None else None)
