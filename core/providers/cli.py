"""``cli``: any command as a provider, the prompt on its stdin and the answer on its stdout.

The command (a string, split like a POSIX shell would split it, or an argv list) runs directly,
never through a shell, in its own process group, through :func:`core.process.run_process`.

What the command reads on stdin, as UTF-8:

- for a single user message, exactly its content, byte for byte;
- otherwise a plain transcript, turns separated by a blank line:
  ``User: …\\n\\nAssistant: …\\n\\nUser: …``;
- a system prompt (the call's, else the config's ``systemPrompt``), if any, comes first,
  followed by a blank line.

What comes back: stdout, decoded as UTF-8 (undecodable bytes replaced), is the answer, as is.
A non-zero exit is PROVIDER_ERROR carrying the exit code and the tail of stderr; passing
``timeout`` (ms) is PROVIDER_TIMEOUT, with the whole process group killed; stdout past
``maxOutputBytes`` is discarded and the answer marked truncated. ``env`` is merged over the
server's environment for the child; its values count as secrets (masked when the config is
shown, scrubbed from error messages). ``workdir`` is the child's working directory.
"""

from __future__ import annotations

import codecs
import math
import os
import shutil
import signal
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Literal

import anyio
from pydantic import Field, field_validator

from core.errors import ModelReinsError, ProviderError, ValidationFailed
from core.http_client import HttpClient
from core.models import Message, Usage
from core.process import OutputCallback, ProcessResult, run_process, split_command
from core.providers.base import (
    Completion,
    Provider,
    ProviderCall,
    ProviderConfig,
    StreamEnd,
    StreamEvent,
    TextDelta,
)

__all__ = ["DEFAULT_MAX_OUTPUT_BYTES", "CliConfig", "CliProvider", "render_prompt"]

DEFAULT_MAX_OUTPUT_BYTES = 10 * 1024 * 1024

# Shorter env values ("1", "true") are not credentials, and scrubbing them would garble messages.
_MIN_SECRET_LEN = 8


class CliConfig(ProviderConfig):
    type: Literal["cli"] = "cli"
    command: str | list[str] = Field(
        description="The command: a string split like a POSIX shell would (never run by one), "
        "or an argv list."
    )
    workdir: Path | None = Field(default=None, description="The command's working directory.")
    env: dict[str, str] = Field(
        default_factory=dict,
        repr=False,
        description="Variables set for the command, over the server's environment. Secrets.",
    )
    max_output_bytes: int = Field(
        default=DEFAULT_MAX_OUTPUT_BYTES, gt=0, description="stdout past this is discarded."
    )

    @field_validator("command")
    @classmethod
    def _splittable(cls, value: str | list[str]) -> str | list[str]:
        try:
            split_command(value)
        except ValidationFailed as exc:
            raise ValueError(exc.message) from exc
        return value

    @field_validator("workdir")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @property
    def argv(self) -> list[str]:
        return split_command(self.command)

    def secret_fields(self) -> tuple[str, ...]:
        return ("env",)


def render_prompt(messages: list[Message], system: str | None) -> str:
    """The text a CLI reads on stdin for this conversation (see the module docstring)."""
    if len(messages) == 1 and messages[0].role == "user":
        body = messages[0].content
    else:
        body = "\n\n".join(
            f"{'User' if m.role == 'user' else 'Assistant'}: {m.content}" for m in messages
        )
    return f"{system}\n\n{body}" if system else body


class CliProvider(Provider):
    """Runs the configured command once per call."""

    config_model = CliConfig
    config: CliConfig

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient) -> None:
        if not isinstance(config, CliConfig):
            raise TypeError(f"{type(self).__name__} needs a {CliConfig.__name__}")
        super().__init__(name, config, http)
        self.argv = config.argv

    async def complete(self, call: ProviderCall) -> Completion:
        prompt = self._prompt(call)
        result = await self._run(prompt)
        if result.exit_code != 0:
            raise self._exit_error(result)
        text = _decoder().decode(result.stdout, final=not result.truncated)
        return Completion(
            text=text,
            model=self._model(call),
            usage=_approximate_usage(prompt, text),
            truncated=result.truncated,
        )

    async def stream(self, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
        """Deltas as stdout arrives, then :class:`StreamEnd`; a failure is raised after them.

        Close the iterator when stopping early (``contextlib.aclosing``): that kills the command.
        """
        prompt = self._prompt(call)
        # Incremental, so a character split across two reads is not mangled.
        decoder = _decoder()
        # Unbounded buffer, bounded anyway by maxOutputBytes: a slow consumer must not eat into
        # the command's timeout by stalling its stdout.
        send, receive = anyio.create_memory_object_stream[str](math.inf)
        outcome: list[ProcessResult | ModelReinsError] = []

        async def forward(chunk: bytes) -> None:
            if text := decoder.decode(chunk):
                send.send_nowait(text)

        async def produce() -> None:
            with send:
                try:
                    outcome.append(await self._run(prompt, forward))
                except ModelReinsError as exc:
                    outcome.append(exc)

        pieces: list[str] = []
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(produce)
                with receive:
                    async for text in receive:
                        pieces.append(text)
                        yield TextDelta(text)
        except BaseExceptionGroup as group:
            # A task group wraps even a lone GeneratorExit (the consumer closed us early).
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        result = outcome[0]
        if isinstance(result, ModelReinsError):
            raise result
        if rest := decoder.decode(b"", final=not result.truncated):
            pieces.append(rest)
            yield TextDelta(rest)
        if result.exit_code != 0:
            raise self._exit_error(result)
        yield StreamEnd(
            model=self._model(call),
            usage=_approximate_usage(prompt, "".join(pieces)),
            truncated=result.truncated,
        )

    async def ping(self) -> None:
        """The working directory exists and the executable resolves; nothing is run."""
        workdir = self.config.workdir
        if workdir is not None and not workdir.is_dir():
            raise ProviderError(
                f"working directory not found: {workdir}", retriable=False, provider=self.name
            )
        if _resolve(self.argv[0], self._env(), workdir) is None:
            raise ProviderError(
                f"command not found: {self.argv[0]}", retriable=False, provider=self.name
            )

    def _prompt(self, call: ProviderCall) -> str:
        return render_prompt(call.messages, call.system or self.config.system_prompt)

    def _model(self, call: ProviderCall) -> str:
        return call.model or self.config.model or Path(self.argv[0]).name

    def _env(self) -> dict[str, str]:
        # Read at call time, so the child sees the server's environment as it is now.
        return {**os.environ, **self.config.env}

    async def _run(self, prompt: str, on_output: OutputCallback | None = None) -> ProcessResult:
        try:
            return await run_process(
                self.argv,
                # A lone surrogate (legal in JSON, not in UTF-8) must not crash the call.
                stdin=prompt.encode("utf-8", errors="replace"),
                env=self._env(),
                cwd=self.config.workdir,
                timeout_s=self.config.timeout_s,
                max_output_bytes=self.config.max_output_bytes,
                on_output=on_output,
            )
        except ModelReinsError as exc:
            # run_process is provider-neutral: the name is ours to add, the secrets ours to hide.
            exc.provider = self.name
            exc.message = self._scrub(exc.message)
            if isinstance(exc.details, dict) and isinstance(exc.details.get("stderrTail"), str):
                exc.details["stderrTail"] = self._scrub(exc.details["stderrTail"])
            raise

    def _scrub(self, text: str) -> str:
        for secret in self.config.env.values():
            if len(secret) >= _MIN_SECRET_LEN:
                text = text.replace(secret, "***")
        return text

    def _exit_error(self, result: ProcessResult) -> ProviderError:
        code = result.exit_code
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with code {code}"
        tail = self._scrub(result.stderr_tail)
        detail = f": {tail.strip()}" if tail.strip() else " (stderr was empty)"
        return ProviderError(
            f"command {self.argv[0]!r} {how}{detail}",
            retriable=True,
            provider=self.name,
            details={"exitCode": code, "stderrTail": tail},
        )


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _approximate_usage(prompt: str, answer: str) -> Usage:
    # A CLI reports no token counts: whitespace-separated words stand in, roughly.
    return Usage(input_tokens=len(prompt.split()), output_tokens=len(answer.split()))


def _resolve(argv0: str, env: dict[str, str], workdir: Path | None) -> str | None:
    """Where the executable is, found the way the child's exec would find it."""
    if os.sep in argv0:
        # A relative path is taken from the child's working directory, as subprocess does.
        path = (workdir or Path()) / argv0
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    return shutil.which(argv0, path=os.pathsep.join(os.get_exec_path(env)))


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
