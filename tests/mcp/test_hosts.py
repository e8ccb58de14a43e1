"""What the HTTP server answers: the Host names it accepts and the paths that need a token."""

from __future__ import annotations

import pytest

from mcp_server.app import Contribution, path_policy
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


def test_path_policy_protects_prefixes_except_public_ones() -> None:
    policy = path_policy([Contribution(protected=("/mcp", "/api")),
                          Contribution(public=("/api/health",))])
    assert [policy(p) for p in ("/mcp", "/mcp/sse", "/mcp/messages/", "/api/tasks",
                                "/api/health", "/mcpx", "/", "/view/abc")] == [
        True, True, True, True, False, False, False, False]
