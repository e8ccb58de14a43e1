"""The two ways ``modelreins worker`` serves a job: spawn a command, or ask a provider.

:class:`CommandExecutor` runs the configured command (``claude --print`` by default) once per
job through :func:`core.process.run_process`: no shell, the prompt on stdin, its own fresh
working directory, its process group killed at the job's timeout, stdout capped.

:class:`ProviderExecutor` answers from a provider configured in the local home
(``--provider NAME``), bounded by the same timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from channel.client import Job
from channel.jobs import Outcome, job_id, job_text
from core.bootstrap import ensure_home
from core.config import config_path, load_settings
from core.errors import ModelReinsError, NotFound, ProviderError, ProviderTimeout
from core.http_client import HttpClient
from core.models import Message
from core.process import DEFAULT_KILL_GRACE_S, ProcessResult, run_process, split_command
from core.providers import Provider, ProviderCall, provider_class

__all__ = [
    "CHILD_ENV_DROPPED",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "CommandExecutor",
    "ProviderExecutor",
    "command_outcome",
    "open_provider_executor",
    "provider_call",
]

DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
CHILD_ENV_DROPPED = ("MODELREINS_TOKEN",)
"""Never handed to a job's process: an agent told to skip permissions must not be able to
act as the worker (claim, close, heartbeat) with its token."""


@dataclass(frozen=True)
class CommandExecutor:
    """Spawn ``argv`` per job in a fresh directory under ``workdir`` (removed afterwards
    unless ``keep``). The child inherits ``env`` (default: ours) minus
    :data:`CHILD_ENV_DROPPED`, plus ``MODELREINS_JOB_ID`` and ``MODELREINS_WORKER``."""

    argv: Sequence[str]
    workdir: Path
    worker: str
    keep: bool = False
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    env: Mapping[str, str] | None = None
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    kept: list[Path] = field(default_factory=list, compare=False)
    """Directories left behind by ``keep``, newest last (for logs and tests)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "argv", split_command(self.argv))

    async def __call__(self, job: Job, timeout_s: float) -> Outcome:
        directory = self._fresh_dir(job)
        try:
            result = await run_process(
                self.argv, stdin=job_text(job).encode(), env=self._child_env(job),
                cwd=directory, timeout_s=timeout_s, max_output_bytes=self.max_output_bytes,
                kill_grace_s=self.kill_grace_s)
        except ProviderTimeout as exc:
            tail = _details_text(exc.details, "stderrTail")
            return Outcome.failed(
                f"timed out after {timeout_s:g} s; the command's process group was killed"
                + (f"\n{tail}" if tail else ""))
        except ProviderError as exc:
            return Outcome.failed(f"could not run {self.argv[0]!r}: {exc.message}")
        finally:
            await self._done_with(directory)
        return command_outcome(result, self.max_output_bytes)

    def _fresh_dir(self, job: Job) -> Path:
        self.workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"job-{job_id(job)}-", dir=self.workdir))

    async def _done_with(self, directory: Path) -> None:
        if self.keep:
            self.kept.append(directory)
            return
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(shutil.rmtree, directory, True)

    def _child_env(self, job: Job) -> dict[str, str]:
        base = os.environ if self.env is None else self.env
        env = {k: v for k, v in base.items() if k not in CHILD_ENV_DROPPED}
        env["MODELREINS_JOB_ID"] = str(job_id(job))
        env["MODELREINS_WORKER"] = self.worker
        return env


def command_outcome(result: ProcessResult, max_output_bytes: int) -> Outcome:
    """A finished command as a job outcome: stdout when it exits 0 (noting a truncation),
    else ``exit code N`` and the tail of stderr."""
    if result.exit_code != 0:
        code = f"exit code {result.exit_code}"
        if result.exit_code < 0:
            code += f" (killed by {_signal_name(-result.exit_code)})"
        return Outcome.failed(f"{code}\n{result.stderr_tail}".rstrip("\n"))
    text = result.stdout.decode("utf-8", errors="replace")
    if result.truncated:
        text += (f"\n\n[output truncated: the command printed more than {max_output_bytes} "
                 "bytes; the rest was discarded]")
    return Outcome.done(text)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _details_text(details: Any, key: str) -> str:
    value = details.get(key) if isinstance(details, dict) else None
    return value.strip() if isinstance(value, str) else ""


@dataclass(frozen=True)
class ProviderExecutor:
    """Answer each job with ``provider``. A job submitted through a ``fleet`` provider
    carries the rest of its call (``system``, earlier ``messages``, ``options``) in its
    input, and gets it back here; any other input is appended to the prompt as JSON."""

    provider: Provider

    async def __call__(self, job: Job, timeout_s: float) -> Outcome:
        call = provider_call(job)
        name = self.provider.name
        try:
            with anyio.fail_after(timeout_s):
                completion = await self.provider.complete(call)
        except TimeoutError:
            return Outcome.failed(f"timed out after {timeout_s:g} s waiting for provider "
                                  f"'{name}'")
        except ModelReinsError as exc:
            return Outcome.failed(f"provider '{name}' failed: {exc}")
        text = completion.text
        if completion.truncated:
            text += "\n\n[output truncated: the provider stopped at its token limit]"
        return Outcome.done(text)


def provider_call(job: Job) -> ProviderCall:
    """The provider call a job stands for."""
    model = job.get("model") if isinstance(job.get("model"), str) else None
    data = job.get("input")
    prompt = job.get("prompt") if isinstance(job.get("prompt"), str) else ""
    if isinstance(data, dict) and data and set(data) <= {"system", "messages", "options"}:
        try:
            earlier = [Message.model_validate(m) for m in data.get("messages") or []]
        except ValueError:
            earlier = None
        system, options = data.get("system"), data.get("options") or {}
        if earlier is not None and isinstance(system, str | None) and isinstance(options, dict):
            return ProviderCall(messages=[*earlier, Message(role="user", content=str(prompt))],
                                system=system, model=model, options=options)
    return ProviderCall(messages=[Message(role="user", content=job_text(job))], model=model)


@asynccontextmanager
async def open_provider_executor(name: str, home: Path) -> AsyncIterator[ProviderExecutor]:
    """The provider ``name`` configured in ``home``, ready to serve jobs until the block ends.

    NOT_FOUND names the configured providers when ``name`` is not one of them."""
    ensure_home(home)
    settings = load_settings(home)
    config = settings.providers.get(name)
    if config is None:
        known = ", ".join(sorted(settings.providers)) or "none"
        raise NotFound(f"no provider '{name}' in {config_path(home)} (configured: {known})")
    async with HttpClient() as http:
        provider = provider_class(config.type)(name, config, http)
        try:
            yield ProviderExecutor(provider)
        finally:
            await provider.aclose()
