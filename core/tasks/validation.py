"""Checking a task's fields before it is stored: every problem at once, each naming its field.

Problems are raised together as one VALIDATION_ERROR whose ``details`` list each
``{"path", "problem"}`` (wire spellings: ``webhookFormat``, ``context.readFile``), the shape
config errors have, so whoever fixes a task sees everything wrong with it in one go.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ValidationFailed
from core.tasks.context import ensure_allowed
from core.tasks.cron import validate_schedule, validate_timezone
from core.tasks.models import TaskPatch, TaskSpec
from core.tasks.targets import WebhookPolicy, check_target, validate_webhook_url

__all__ = ["ALL_FIELDS", "ID_PREFIX", "NAME_MAX", "Rules", "apply_patch", "invalid", "validate"]

ALL_FIELDS = frozenset(TaskSpec.model_fields)
"""Every creation field, by Python name."""

ID_PREFIX = "task_"
NAME_MAX = 200
_NOT_NULL = frozenset({"name", "schedule", "prompt", "enabled"})
_RESET_ON_NULL: dict[str, Any] = {"webhook_format": "json", "timezone": "UTC"}

Problem = dict[str, str]


@dataclass(frozen=True)
class Rules:
    """What a task is checked against: the engine's providers and the config."""

    providers: Collection[str]
    default_provider: str | None
    read_paths: Sequence[str]
    policy: WebhookPolicy


def _path(field: str) -> str:
    return TaskSpec.model_fields[field].alias or field


def invalid(problems: list[Problem]) -> ValidationFailed:
    """One VALIDATION_ERROR listing ``problems``."""
    message = "; ".join(f"{p['path']}: {p['problem']}" for p in problems)
    return ValidationFailed(message, details=problems)


def apply_patch(current: TaskSpec, patch: TaskPatch) -> tuple[TaskSpec, frozenset[str]]:
    """The spec with ``patch`` applied, and the fields whose value it changed.

    An explicit null clears an optional field or resets a defaulted one; a null for a
    required field (name, schedule, prompt, enabled) is a problem.
    """
    problems: list[Problem] = []
    changes: dict[str, Any] = {}
    for field in sorted(patch.model_fields_set):
        value = getattr(patch, field)
        if value is None and field in _NOT_NULL:
            problems.append({"path": _path(field), "problem": "cannot be null"})
        else:
            changes[field] = _RESET_ON_NULL.get(field) if value is None else value
    if problems:
        raise invalid(problems)
    changed = frozenset(f for f, v in changes.items() if getattr(current, f) != v)
    return current.model_copy(update=changes), changed


def _name_problem(name: str) -> str | None:
    if not name:
        return "must not be empty"
    if len(name) > NAME_MAX:
        return f"at most {NAME_MAX} characters, got {len(name)}"
    if not name.isprintable():
        return "must not contain control characters or line breaks"
    if name.startswith(ID_PREFIX):
        return f"must not start with '{ID_PREFIX}' (that prefix is for task ids)"
    return None


def _provider_problem(provider: str | None, rules: Rules) -> str | None:
    if provider is None:
        if rules.default_provider is None:
            return "no provider given and no default provider configured"
        return None
    if provider not in rules.providers:
        known = ", ".join(sorted(rules.providers)) or "none configured"
        return f"unknown provider '{provider}' (known: {known})"
    return None


def _problems_of(exc: ValidationFailed) -> list[Problem]:
    details = exc.details if isinstance(exc.details, list) else None
    return details or [{"path": "(task)", "problem": exc.message}]


def _simple_problems(spec: TaskSpec, rules: Rules) -> dict[str, str | None]:
    blank = "must not be empty"
    return {
        "name": _name_problem(spec.name),
        "prompt": None if spec.prompt.strip() else blank,
        "provider": _provider_problem(spec.provider, rules),
        "model": blank if spec.model is not None and not spec.model.strip() else None,
    }


def _collect(problems: list[Problem], check: Callable[[], object]) -> None:
    try:
        check()
    except ValidationFailed as exc:
        problems.extend(_problems_of(exc))


async def _no_lookup(host: str, port: int) -> Sequence[str]:
    raise OSError("names are checked when delivering")


async def _webhook_problems(url: str, policy: WebhookPolicy) -> list[Problem]:
    problems: list[Problem] = []
    _collect(problems, lambda: validate_webhook_url(url))
    if problems:
        return problems
    # Literal addresses (and localhost) can be judged now; names only resolve at delivery.
    try:
        await check_target(url, policy, resolver=_no_lookup)
    except ValidationFailed as exc:
        problems.extend(_problems_of(exc))
    except OSError:
        pass
    return problems


def _context_problems(path: str, read_paths: Sequence[str]) -> list[Problem]:
    problem = None
    if not path.strip():
        problem = "must not be empty"
    elif not Path(path).expanduser().is_absolute():
        # Relative to what? The server's working directory is nothing a task should rely on.
        problem = f"{path} must be an absolute path (or start with ~)"
    if problem is not None:
        return [{"path": "context.readFile", "problem": problem}]
    problems: list[Problem] = []
    _collect(problems, lambda: ensure_allowed(path, read_paths))
    return problems


def _normalized(spec: TaskSpec) -> TaskSpec:
    return spec.model_copy(update={
        "name": spec.name.strip(),
        "schedule": " ".join(spec.schedule.split()),
        "timezone": spec.timezone.strip(),
        "webhook": spec.webhook.strip() if spec.webhook is not None else None,
    })


async def validate(
    spec: TaskSpec, rules: Rules, fields: Collection[str] = ALL_FIELDS
) -> TaskSpec:
    """``spec`` normalized (name and URL trimmed, schedule spacing collapsed), after checking
    ``fields`` of it; raises VALIDATION_ERROR listing every problem found."""
    spec = _normalized(spec)
    problems: list[Problem] = []
    for field, problem in _simple_problems(spec, rules).items():
        if problem is not None and field in fields:
            problems.append({"path": _path(field), "problem": problem})
    if "schedule" in fields:
        _collect(problems, lambda: validate_schedule(spec.schedule))
    if "timezone" in fields:
        _collect(problems, lambda: validate_timezone(spec.timezone))
    if "webhook" in fields and spec.webhook is not None:
        problems.extend(await _webhook_problems(spec.webhook, rules.policy))
    if "context" in fields and spec.context is not None:
        problems.extend(_context_problems(spec.context.read_file, rules.read_paths))
    if problems:
        raise invalid(problems)
    return spec
