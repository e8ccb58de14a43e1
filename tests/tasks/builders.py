"""Builders shared by task tests: settings, specs, the start instant."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.config import Settings, parse_settings
from core.engine import Engine
from core.tasks.models import TaskSpec

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
"""A Monday, 08:00 UTC."""

OpenEngine = Callable[..., AbstractAsyncContextManager[Engine]]
"""``open_engine(settings=None, **service_options)``: another engine on the test's file."""


def task_settings(tmp_path: Path, **tasks: Any) -> Settings:
    """Providers main (default), backup (fallback) and other; ``webhooks`` may be given,
    else private targets are allowed; ``tasks.readPaths`` is ``tmp_path/ctx``."""
    providers = {
        "main": {"type": "echo", "default": True},
        "backup": {"type": "echo", "fallback": True},
        "other": {"type": "echo"},
    }
    webhooks = tasks.pop("webhooks", {"allowPrivate": True})
    config = {"providers": providers, "webhooks": webhooks,
              "tasks": {"readPaths": [str(tmp_path / "ctx")], **tasks}}
    return parse_settings(config, env={})


def spec(name: str = "nightly", **fields: Any) -> TaskSpec:
    fields.setdefault("schedule", "0 9 * * 1-5")
    fields.setdefault("prompt", "summarize the day")
    return TaskSpec(name=name, **fields)
