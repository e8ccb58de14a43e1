"""Reusable fakes for tests and benchmarks: loopback upstreams speaking real provider APIs."""

from __future__ import annotations

from tests.fakes.upstreams import (
    MODES,
    Api,
    FakeUpstream,
    Mode,
    RecordedRequest,
    fake_anthropic,
    fake_ollama,
    fake_openai,
    fake_upstream,
    fake_upstream_in_thread,
)

__all__ = [
    "MODES",
    "Api",
    "FakeUpstream",
    "Mode",
    "RecordedRequest",
    "fake_anthropic",
    "fake_ollama",
    "fake_openai",
    "fake_upstream",
    "fake_upstream_in_thread",
]
