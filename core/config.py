"""Configuration: ``$MODELREINS_HOME/config.yaml`` loaded, substituted, validated.

Every problem is reported with the exact path (``providers.claude.maxTokens``) and what is
wrong with it, all problems at once, as one VALIDATION_ERROR whose ``details`` list them.
Provider blocks are validated by the config model their type registers, so this module
never branches on a provider's type.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError
from pydantic.alias_generators import to_camel

from core.errors import ValidationFailed
from core.providers import PROVIDER_TYPES, ProviderConfig, provider_class

__all__ = [
    "WILDCARD_HOSTS",
    "QueueConfig",
    "ServerConfig",
    "Settings",
    "TasksConfig",
    "WebhooksConfig",
    "config_path",
    "home_dir",
    "load_settings",
    "masked",
    "parse_settings",
]

CONFIG_FILE = "config.yaml"

WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]")
"""``server.host`` values that mean "every interface"."""


class Section(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ServerConfig(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=8484, ge=0, le=65535)
    auth: Literal["token", "none"] = "token"
    max_body_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    public_url: str | None = None
    view_ttl_s: int = Field(default=900, gt=0, description="One-time view links expire after.")


class WebhooksConfig(Section):
    allow_private: bool = False
    allow: list[str] = Field(default_factory=list)
    timeout_s: float = Field(default=10.0, gt=0)


class TasksConfig(Section):
    read_paths: list[str] = Field(default_factory=list)
    read_max_bytes: int = Field(default=64 * 1024, gt=0)
    catchup_grace_s: int = Field(default=3600, ge=0)
    lease_s: int = Field(default=15, gt=0, description="Scheduler leader lease.")


class QueueConfig(Section):
    presence_window_s: int = Field(default=30, gt=0)
    default_timeout_s: int = Field(default=1800, gt=0)
    max_attempts: int = Field(default=3, gt=0)
    artifact_max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)


class _Root(Section):
    server: ServerConfig = Field(default_factory=ServerConfig)
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    tasks: TasksConfig = Field(default_factory=TasksConfig)
    queue: QueueConfig = Field(default_factory=QueueConfig)


@dataclass(frozen=True)
class Settings:
    """The validated configuration the engine runs on."""

    server: ServerConfig = field(default_factory=ServerConfig)
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    home: Path | None = None

    @property
    def default_provider(self) -> str | None:
        return next((n for n, p in self.providers.items() if p.default), None)

    @property
    def fallback_providers(self) -> list[str]:
        return [n for n, p in self.providers.items() if p.fallback]


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    raw = env.get("MODELREINS_HOME") or str(Path.home() / ".modelreins")
    return Path(raw).expanduser()


def config_path(home: Path) -> Path:
    return home / CONFIG_FILE


# --- ${VAR} substitution -------------------------------------------------------------

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(node: Any, path: str, env: Mapping[str, str], errors: list[dict[str, str]]) -> Any:
    if isinstance(node, dict):
        return {k: _substitute(v, f"{path}.{k}" if path else str(k), env, errors) for k, v in
                node.items()}
    if isinstance(node, list):
        return [_substitute(v, f"{path}[{i}]", env, errors) for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        errors.append({"path": path, "problem": _unset_problem(name, path)})
        return ""

    return _VAR.sub(replace, node)


def _unset_problem(name: str, path: str) -> str:
    parts = path.split(".")
    where = f" (provider '{parts[1]}')" if len(parts) > 1 and parts[0] == "providers" else ""
    return f"environment variable {name} is not set{where}"


# --- validation ----------------------------------------------------------------------


def _field_names(model: type[BaseModel]) -> list[str]:
    names: list[str] = []
    for name, info in model.model_fields.items():
        names.append(info.alias or name)
    return names


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.5)
    return f"; did you mean '{close[0]}'?" if close else ""


def _pydantic_problems(
    exc: PydanticValidationError, prefix: str, model: type[BaseModel]
) -> list[dict[str, str]]:
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            hint = _suggest(loc[-1], _field_names(owner)) if owner else ""
            problem = f"unknown key '{loc[-1]}'{hint}"
        else:
            problem = err["msg"]
        problems.append({"path": path, "problem": problem})
    return problems


def _model_at(model: type[BaseModel], loc: list[str]) -> type[BaseModel] | None:
    current: type[BaseModel] = model
    for part in loc:
        match = next(
            (f for n, f in current.model_fields.items() if part in (n, f.alias)), None
        )
        annotation = match.annotation if match else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        current = annotation
    return current


def _validate_provider(
    name: str, raw: Any, problems: list[dict[str, str]]
) -> ProviderConfig | None:
    path = f"providers.{name}"
    if not isinstance(raw, dict):
        problems.append({"path": path, "problem": "must be a mapping of provider settings"})
        return None
    type_name = raw.get("type")
    if not isinstance(type_name, str) or not type_name:
        known = ", ".join(sorted(PROVIDER_TYPES))
        problems.append({"path": f"{path}.type", "problem": f"required; one of: {known}"})
        return None
    if type_name not in PROVIDER_TYPES:
        hint = _suggest(type_name, sorted(PROVIDER_TYPES))
        known = ", ".join(sorted(PROVIDER_TYPES))
        problems.append({
            "path": f"{path}.type",
            "problem": f"unknown provider type '{type_name}'{hint} (known: {known})",
        })
        return None
    model = provider_class(type_name).config_model
    try:
        return model.model_validate(raw)
    except PydanticValidationError as exc:
        problems.extend(_pydantic_problems(exc, path, model))
        return None


def parse_settings(
    data: Any, *, env: Mapping[str, str] | None = None, home: Path | None = None
) -> Settings:
    """Validate a parsed config document; raises VALIDATION_ERROR listing every problem."""
    env = os.environ if env is None else env
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _invalid([{"path": "(root)", "problem": "the config must be a YAML mapping"}])
    problems: list[dict[str, str]] = []
    data = _substitute(data, "", env, problems)
    try:
        root = _Root.model_validate(data)
    except PydanticValidationError as exc:
        raise _invalid(_without_follow_ons(problems + _pydantic_problems(exc, "", _Root))
                       ) from exc
    providers: dict[str, ProviderConfig] = {}
    for name, raw in root.providers.items():
        cfg = _validate_provider(name, raw, problems)
        if cfg is not None:
            providers[name] = cfg
    defaults = [n for n, p in providers.items() if p.default]
    if len(defaults) > 1:
        problems.append({
            "path": "providers",
            "problem": f"more than one default provider: {', '.join(defaults)} (keep one)",
        })
    if root.server.auth == "none" and not _is_loopback_host(root.server.host):
        problems.append({
            "path": "server.auth",
            "problem": f"'none' is only allowed when bound to loopback, not {root.server.host}",
        })
    if problems:
        raise _invalid(_without_follow_ons(problems))
    return Settings(
        server=root.server,
        providers=providers,
        webhooks=root.webhooks,
        tasks=root.tasks,
        queue=root.queue,
        home=home,
    )


def _without_follow_ons(problems: list[dict[str, str]]) -> list[dict[str, str]]:
    """An unset ``${VAR}`` leaves an empty value that may then fail validation too; report
    only the root cause for that path."""
    unset = {p["path"] for p in problems if "environment variable" in p["problem"]}
    return [p for p in problems
            if p["path"] not in unset or "environment variable" in p["problem"]]


def _is_loopback_host(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def _invalid(problems: list[dict[str, str]]) -> ValidationFailed:
    lines = "; ".join(f"{p['path']}: {p['problem']}" for p in problems)
    return ValidationFailed(f"invalid config: {lines}", details=problems)


def load_settings(home: Path, *, env: Mapping[str, str] | None = None) -> Settings:
    """Load ``home/config.yaml`` (it must exist; see :func:`core.bootstrap.ensure_home`)."""
    path = config_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ValidationFailed(
            f"no config at {path}; run `modelreins config init`",
            details=[{"path": str(path), "problem": "missing"}],
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = f"not valid YAML{where}: {getattr(exc, 'problem', None) or exc}"
        raise ValidationFailed(
            f"invalid config: {path}: {problem}", details=[{"path": str(path), "problem": problem}]
        ) from exc
    return parse_settings(data, env=env, home=home)


# --- display -------------------------------------------------------------------------

_SECRET_KEY = re.compile(r"key|token|secret|password|authorization", re.IGNORECASE)


def _mask_value(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask_value(v) for k, v in value.items()}
    if isinstance(value, str) and value:
        return "****" + value[-4:] if len(value) >= 12 else "****"
    return value


def _mask_tree(node: Any, secret_keys: frozenset[str] = frozenset()) -> Any:
    if isinstance(node, dict):
        return {
            k: _mask_value(v) if k in secret_keys or _SECRET_KEY.search(str(k))
            else _mask_tree(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_mask_tree(v) for v in node]
    return node


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as a plain dict, with every secret masked."""
    providers: dict[str, Any] = {}
    for name, cfg in settings.providers.items():
        fields = type(cfg).model_fields
        secret_keys = frozenset(fields[f].alias or f for f in cfg.secret_fields())
        dumped = cfg.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        providers[name] = {"type": cfg.type, **_mask_tree(dumped, secret_keys)}
    return {
        "server": settings.server.model_dump(by_alias=True, mode="json"),
        "providers": providers,
        "webhooks": settings.webhooks.model_dump(by_alias=True, mode="json"),
        "tasks": settings.tasks.model_dump(by_alias=True, mode="json"),
        "queue": settings.queue.model_dump(by_alias=True, mode="json"),
    }
