"""Run an external command safely: no shell, bounded output, the whole process group killed.

:func:`run_process` is how ModelReins spawns programs: the ``cli`` provider and the headless
worker's per-job ``claude --print`` both go through it. It promises:

- ``argv`` is executed directly, never through a shell, so ``$(…)``, backticks, ``;`` or ``>``
  in an argument or on stdin are plain bytes.
- The child leads its own session and process group. On timeout, or when the caller is
  cancelled, the whole group gets SIGTERM, ``kill_grace_s`` to exit, then SIGKILL: grandchildren
  die with it. When the command exits on its own, whatever it left running in its group is
  SIGKILLed, because a job's processes must not outlive it (and an orphan holding our pipes
  would stall us). A descendant that starts its own session escapes any group kill.
- stdout is kept up to ``max_output_bytes`` and drained and discarded beyond, so the child never
  blocks on a full pipe; ``truncated`` reports that the cap was hit. stderr is drained at the
  same time and only its tail (:data:`STDERR_TAIL_BYTES`) kept.
- stdin is written, then closed. A child that exits without reading it is not an error.
- Failures are :mod:`core.errors` types: :class:`~core.errors.ProviderTimeout`,
  :class:`~core.errors.ProviderError` (``command not found: …``),
  :class:`~core.errors.ValidationFailed` (an empty command).
"""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import anyio
from anyio.abc import ByteReceiveStream, ByteSendStream, Process

from core.errors import ProviderError, ProviderTimeout, field_error

__all__ = [
    "DEFAULT_KILL_GRACE_S",
    "STDERR_TAIL_BYTES",
    "OutputCallback",
    "ProcessResult",
    "run_process",
    "split_command",
]

STDERR_TAIL_BYTES = 4096
"""How much of the end of stderr is kept for error messages."""

DEFAULT_KILL_GRACE_S = 2.0
"""Time between SIGTERM and SIGKILL when a process group is stopped."""

OutputCallback = Callable[[bytes], Awaitable[None]]
"""Receives each stdout chunk (within the cap) as it arrives."""


@dataclass(frozen=True)
class ProcessResult:
    """How a command ended and what it printed."""

    exit_code: int
    """The exit status; ``-N`` when the command was killed by signal ``N`` (as in subprocess)."""
    stdout: bytes
    """At most ``max_output_bytes`` of stdout."""
    truncated: bool
    """True when stdout went past ``max_output_bytes`` and the rest was discarded."""
    stderr_tail: str
    """The last :data:`STDERR_TAIL_BYTES` of stderr, decoded as UTF-8 with replacement."""
    duration_s: float


def split_command(command: str | Sequence[str]) -> list[str]:
    """``command`` as an argv list: a string is split like a POSIX shell would, nothing expanded.

    Raises :class:`~core.errors.ValidationFailed` for an empty command or unbalanced quotes.
    """
    if isinstance(command, str):
        try:
            argv = shlex.split(command)
        except ValueError as exc:
            raise field_error("command", f"cannot be split: {exc}") from exc
    else:
        argv = list(command)
    if not argv or not argv[0]:
        raise field_error("command", "is empty")
    return argv


async def run_process(
    argv: Sequence[str],
    *,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout_s: float,
    max_output_bytes: int,
    on_output: OutputCallback | None = None,
    kill_grace_s: float = DEFAULT_KILL_GRACE_S,
) -> ProcessResult:
    """Run ``argv`` to completion with ``stdin`` as its input, within ``timeout_s`` seconds.

    ``argv`` goes through :func:`split_command` (a string is split, an empty one refused).
    ``env`` is the child's whole environment (``None``: inherit ours); ``cwd`` its working
    directory. ``on_output`` is awaited with each stdout chunk within the cap as it arrives;
    an exception it raises stops the command and propagates as itself. ``kill_grace_s`` is
    the time between SIGTERM and SIGKILL when the group is stopped. A non-zero exit is a
    result, not an error: callers decide what it means.

    Raises :class:`~core.errors.ProviderTimeout` after killing the process group when the
    deadline passes, and :class:`~core.errors.ProviderError` when the command cannot be started.
    """
    argv = split_command(argv)
    started = anyio.current_time()
    with anyio.CancelScope(shield=True):
        # A cancellation landing between fork and getting the handle would orphan the child.
        proc = await _spawn(argv, env, cwd)
    stdout = _Capped(max_output_bytes, on_output)
    stderr = _Tail(STDERR_TAIL_BYTES)
    async with proc:
        try:
            with anyio.move_on_after(timeout_s) as deadline, _lone_error_unwrapped():
                await _communicate(proc, stdin, stdout, stderr)
        finally:
            with anyio.CancelScope(shield=True):
                await _stop_group(proc, kill_grace_s)
    if deadline.cancelled_caught:
        raise ProviderTimeout(
            f"command {argv[0]!r} timed out after {timeout_s:g} s and was killed",
            details={"timeoutS": timeout_s, "stderrTail": stderr.text()},
        )
    assert proc.returncode is not None  # _stop_group waited for it
    return ProcessResult(
        exit_code=proc.returncode,
        stdout=bytes(stdout.data),
        truncated=stdout.truncated,
        stderr_tail=stderr.text(),
        duration_s=anyio.current_time() - started,
    )


async def _spawn(
    argv: list[str], env: Mapping[str, str] | None, cwd: str | os.PathLike[str] | None
) -> Process:
    directory = None if cwd is None else os.fspath(cwd)
    try:
        return await anyio.open_process(argv, env=env, cwd=directory, start_new_session=True)
    except OSError as exc:
        # subprocess names the directory, as given, in the exception when chdir failed.
        if directory is not None and exc.filename == directory:
            raise ProviderError(
                f"working directory not usable: {exc.filename} ({exc.strerror})"
            ) from exc
        if isinstance(exc, FileNotFoundError | NotADirectoryError):
            raise ProviderError(f"command not found: {argv[0]}") from exc
        if isinstance(exc, PermissionError):
            raise ProviderError(f"command not found: {argv[0]} (not executable)") from exc
        raise ProviderError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc


async def _communicate(proc: Process, data: bytes, stdout: _Capped, stderr: _Tail) -> None:
    # open_process pipes all three by default.
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_feed, proc.stdin, data)
        tg.start_soon(stderr.drain, proc.stderr)
        tg.start_soon(_kill_leftovers, proc)
        async for chunk in proc.stdout:
            await stdout.add(chunk)


async def _feed(sink: ByteSendStream, data: bytes) -> None:
    try:
        if data:
            await sink.send(data)
        await sink.aclose()
    except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        # The child may exit or close stdin without reading it all; that is its business.
        pass


async def _kill_leftovers(proc: Process) -> None:
    await proc.wait()
    # The leader is gone; anything left in its group is an orphan that may hold our pipes open.
    _signal_group(proc.pid, signal.SIGKILL)


async def _stop_group(proc: Process, grace_s: float) -> None:
    if proc.returncode is None:
        _signal_group(proc.pid, signal.SIGTERM)
        with anyio.move_on_after(grace_s):
            await proc.wait()
    _signal_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        # Cannot happen to a session leader, but a leader outside its group must not hang us.
        with suppress(ProcessLookupError):
            proc.kill()
    await proc.wait()


def _signal_group(pgid: int, signum: int) -> None:
    # Nobody left in the group, or only members that changed user: nothing we may kill.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


@contextmanager
def _lone_error_unwrapped() -> Iterator[None]:
    """Re-raise a task group's single error as itself, so callers catch what was raised."""
    try:
        yield
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


@dataclass
class _Capped:
    """stdout up to ``limit`` bytes; past that, chunks are counted as truncation and dropped."""

    limit: int
    on_output: OutputCallback | None
    data: bytearray = field(default_factory=bytearray)
    truncated: bool = False

    async def add(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        if chunk:
            self.data += chunk
            if self.on_output is not None:
                await self.on_output(chunk)


@dataclass
class _Tail:
    """The last ``size`` bytes of a stream."""

    size: int
    data: bytearray = field(default_factory=bytearray)
    cut: bool = False

    async def drain(self, source: ByteReceiveStream) -> None:
        async for chunk in source:
            self.data += chunk
            if len(self.data) > self.size:
                del self.data[: -self.size]
                self.cut = True

    def text(self) -> str:
        start = 0
        if self.cut:
            # Cutting at a byte count can split a character: drop its orphaned continuation bytes.
            while start < min(3, len(self.data)) and self.data[start] & 0xC0 == 0x80:
                start += 1
        return self.data[start:].decode("utf-8", errors="replace")
