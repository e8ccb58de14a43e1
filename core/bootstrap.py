"""First run: create ``$MODELREINS_HOME`` and a generated config that fits this machine.

Detection looks at API keys in the environment, ``claude`` on PATH, and Ollama / LM Studio on
loopback. ``echo`` is always present, labelled as a smoke-test provider, and is the default
only when nothing real was found.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

from core.config import config_path

__all__ = ["Detected", "detect", "ensure_home", "render_config"]

Probe = Callable[[str], Any]
"""GET a loopback URL and return the parsed JSON, or None when nothing answers."""


@dataclass(frozen=True)
class Detected:
    name: str
    block: dict[str, Any]
    why: str


def http_probe(url: str) -> Any:
    try:
        response = httpx2.get(url, timeout=0.3)
        return response.json() if response.status_code == 200 else None
    except (httpx2.HTTPError, ValueError):
        return None


_KEYED = (
    ("ANTHROPIC_API_KEY", "claude",
     {"type": "anthropic", "model": "claude-sonnet-4-6", "maxTokens": 8192}),
    ("OPENAI_API_KEY", "openai",
     {"type": "openai-compat", "baseUrl": "https://api.openai.com/v1", "model": "gpt-4o-mini"}),
    ("OPENROUTER_API_KEY", "openrouter",
     {"type": "openai-compat", "baseUrl": "https://openrouter.ai/api/v1",
      "model": "openrouter/auto"}),
    ("ONEMINAI_API_KEY", "1minai",
     {"type": "openai-compat", "baseUrl": "https://api.1min.ai/v1", "authHeader": "API-KEY",
      "model": "gpt-4o"}),
)


def _first_model(payload: Any, list_key: str, id_key: str) -> str | None:
    items = payload.get(list_key) if isinstance(payload, dict) else None
    if isinstance(items, list) and items and isinstance(items[0], dict):
        value = items[0].get(id_key)
        return value if isinstance(value, str) else None
    return None


def detect(
    env: Mapping[str, str] | None = None,
    which: Callable[[str], str | None] = shutil.which,
    probe: Probe = http_probe,
) -> list[Detected]:
    """What this machine offers, most preferred first."""
    env = os.environ if env is None else env
    found: list[Detected] = []
    for var, name, block in _KEYED:
        if env.get(var):
            found.append(Detected(name, {**block, "apiKey": f"${{{var}}}"}, f"{var} is set"))
    if which("claude"):
        found.append(Detected(
            "local-claude-code",
            {"type": "cli", "command": "claude --print", "timeout": 300_000},
            "`claude` is on PATH",
        ))
    tags = probe("http://127.0.0.1:11434/api/tags")
    if tags is not None:
        ollama: dict[str, Any] = {"type": "ollama", "baseUrl": "http://127.0.0.1:11434"}
        model = _first_model(tags, "models", "name")
        if model:
            ollama["model"] = model
        found.append(Detected("ollama", ollama, "Ollama answers on 127.0.0.1:11434"))
    models = probe("http://127.0.0.1:1234/v1/models")
    if models is not None:
        lmstudio: dict[str, Any] = {"type": "openai-compat", "baseUrl": "http://127.0.0.1:1234/v1",
                                    "apiKey": "lm-studio"}
        model = _first_model(models, "data", "id")
        if model:
            lmstudio["model"] = model
        found.append(Detected("lmstudio", lmstudio, "LM Studio answers on 127.0.0.1:1234"))
    return found


def render_config(found: list[Detected]) -> str:
    """The YAML text of a generated config, with a comment saying why each provider is there."""
    lines = [
        "# ModelReins configuration (generated). Timeouts are milliseconds.",
        "# ${VAR} is replaced from the environment; ${VAR:-fallback} gives a default.",
        "server: {host: 127.0.0.1, port: 8484, auth: token}",
        "providers:",
    ]
    for i, item in enumerate(found):
        block = {**item.block, "default": True} if i == 0 else item.block
        lines.append(f"  # detected: {item.why}")
        lines.append("  " + _flow(item.name, block))
    lines.append("  # echo answers with its own input: a smoke-test provider, not a model.")
    echo: dict[str, Any] = {"type": "echo"}
    if not found:
        echo["default"] = True
    lines.append("  " + _flow("echo", echo))
    lines.append("webhooks: {allowPrivate: false}")
    return "\n".join(lines) + "\n"


def _flow(name: str, block: dict[str, Any]) -> str:
    text = yaml.safe_dump({name: block}, default_flow_style=True, sort_keys=False, width=10_000)
    return text.strip().removeprefix("{").removesuffix("}")


def ensure_home(home: Path, *, generate: Callable[[], str] | None = None) -> bool:
    """Create ``home`` (0700) and a generated config if there is none. True if created."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    path = config_path(home)
    if path.exists():
        return False
    text = generate() if generate else render_config(detect())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return True
