"""What a runner does with a claimed job: the :class:`Executor` seam and its :class:`Outcome`.

An executor turns one job into an outcome and never raises for the job's own failures (a
non-zero exit, a timeout, a handler's exception): those are ``failed`` outcomes. It is
cancelled when the worker must stop at once, and must leave nothing running behind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from channel.client import Job

__all__ = ["DEFAULT_JOB_TIMEOUT_S", "Executor", "Outcome", "job_id", "job_text", "job_timeout"]

DEFAULT_JOB_TIMEOUT_S = 1800.0
"""For a job that carries no ``timeout_s`` (the queue's own default)."""


@dataclass(frozen=True)
class Outcome:
    """How a job ended, as it is closed on the server."""

    status: Literal["done", "failed"]
    result: Any
    """Text for commands and providers; any JSON value an SDK handler returned."""

    @classmethod
    def done(cls, result: Any) -> Outcome:
        return cls("done", result)

    @classmethod
    def failed(cls, result: str) -> Outcome:
        return cls("failed", result)


class Executor(Protocol):
    """Runs one claimed job within ``timeout_s`` seconds."""

    async def __call__(self, job: Job, timeout_s: float) -> Outcome: ...


def job_id(job: Job) -> int:
    value = job["id"]
    assert isinstance(value, int)
    return value


def job_timeout(job: Job, default: float = DEFAULT_JOB_TIMEOUT_S) -> float:
    """The job's ``timeout_s`` (its lease length), or ``default`` when it has none."""
    value = job.get("timeout_s")
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return default


def job_text(job: Job) -> str:
    """What an agent reads: the prompt exactly as submitted, then the job's ``input`` (if
    any) as indented JSON under an ``Input:`` line."""
    prompt = job.get("prompt")
    text = prompt if isinstance(prompt, str) else ""
    data: Any = job.get("input")
    if data is None:
        return text
    return f"{text}\n\nInput:\n{json.dumps(data, indent=2, ensure_ascii=False)}\n"
