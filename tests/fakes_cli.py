"""Fake CLI executables for tests that spawn commands: small Python scripts run by this venv.

``make_cli(tmp_path, "name", BODY)`` writes an executable script; the bodies below are the
usual behaviours (cat, uppercase, fail, hang with a grandchild, flood…). Scripts take their
variable parts (a pid file, a gate) as arguments, so one body serves every test.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from contextlib import suppress
from pathlib import Path
from types import TracebackType

import anyio

__all__ = [
    "ARGV_TO_FILE",
    "CAT",
    "CAT_TO_FILE",
    "EXIT_EARLY",
    "FAIL",
    "FLOOD",
    "GATED",
    "HANG",
    "LEAVE_ORPHAN",
    "PRINT_CWD",
    "PRINT_ENV",
    "UPPER",
    "Gate",
    "is_running",
    "kill_listed",
    "make_cli",
    "pwned_files",
    "read_pids",
    "wait_dead",
]

CAT = """
import sys
sys.stdout.buffer.write(sys.stdin.buffer.read())
"""

UPPER = """
import sys
sys.stdout.write(sys.stdin.read().upper())
"""

CAT_TO_FILE = """
import sys
data = sys.stdin.buffer.read()
with open(sys.argv[1], "wb") as f:
    f.write(data)
sys.stdout.buffer.write(data)
"""
"""cat that also keeps the exact bytes it read in the file named by argv[1]."""

ARGV_TO_FILE = """
import json, sys
with open(sys.argv[1], "w") as f:
    json.dump(sys.argv[2:], f)
"""
"""Records its arguments (after argv[1], the file) as JSON."""

FAIL = """
import sys
sys.stdin.read()
sys.stdout.write("partial answer")
sys.stdout.flush()
sys.stderr.write("x" * 10000 + "\\nboom: something broke\\n")
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
"""
"""Prints a partial answer, 10 KB of stderr ending in "boom: something broke", exits 3."""

EXIT_EARLY = """
import sys
sys.stdout.write("bye")
"""
"""Exits at once without reading stdin."""

PRINT_ENV = """
import os, sys
for name in sys.argv[1:]:
    print(f"{name}={os.environ.get(name, '<unset>')}")
"""

PRINT_CWD = """
import os
print(os.getcwd(), end="")
"""

FLOOD = """
import sys
total, block = int(sys.argv[1]), b"x" * 65536
for _ in range(total // len(block)):
    sys.stdout.buffer.write(block)
"""
"""Writes argv[1] bytes of "x" to stdout."""

HANG = """
import os, signal, sys, time
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = os.fork()
if child == 0:
    time.sleep(3600)
    os._exit(0)
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as f:
    f.write(f"{os.getpid()} {child}")
os.replace(tmp, sys.argv[1])
print("ready", flush=True)
time.sleep(3600)
"""
"""Forks a sleeping grandchild (which inherits stdout), writes "<pid> <grandchild pid>" to
argv[1], prints "ready", sleeps. ``--ignore-term``: both ignore SIGTERM."""

LEAVE_ORPHAN = """
import os, sys, time
child = os.fork()
if child == 0:
    time.sleep(3600)
    os._exit(0)
with open(sys.argv[1], "w") as f:
    f.write(f"{os.getpid()} {child}")
print("done", end="")
"""
"""Exits 0 at once, leaving a sleeping grandchild that still holds stdout."""

GATED = """
import sys
out = sys.stdout.buffer
out.write(bytes.fromhex(sys.argv[2]))
out.flush()
with open(sys.argv[1], "rb") as gate:
    gate.read(2)
out.write(bytes.fromhex(sys.argv[3]))
"""
"""Writes hex argv[2], waits for the :class:`Gate` at argv[1] to open, writes hex argv[3]."""


def make_cli(tmp_path: Path, name: str, body: str) -> Path:
    """An executable script ``tmp_path/name`` running ``body`` with this interpreter."""
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n{textwrap.dedent(body).lstrip()}", encoding="utf-8")
    path.chmod(0o755)
    return path


class Gate:
    """A named pipe a fake blocks on until the test opens it: a cross-process event.

    The test holds the pipe open read-write from the start, so the fake's open never waits
    for a writer and :meth:`open` never blocks.
    """

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.path = path
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)

    def open(self) -> None:
        os.write(self._fd, b"go")

    def __enter__(self) -> Gate:
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        os.close(self._fd)


def pwned_files(root: Path) -> list[Path]:
    """Files named ``PWNED*`` under ``root``: what a shell running an injected prompt leaves."""
    return sorted(root.rglob("PWNED*"))


def read_pids(path: Path) -> tuple[int, int]:
    """The ``(pid, grandchild pid)`` a HANG or LEAVE_ORPHAN fake wrote."""
    pid, grandchild = path.read_text().split()
    return int(pid), int(grandchild)


def kill_listed(pid_file: Path) -> None:
    """SIGKILL whatever listed in ``pid_file`` still runs, so a failing test leaks no process."""
    if not pid_file.exists():
        return
    for pid in read_pids(pid_file):
        if is_running(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def is_running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie (dead, waiting for its parent to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def wait_dead(pid: int, timeout_s: float = 5.0) -> None:
    """Wait, on a pidfd (no polling), until ``pid`` has exited; SIGKILL it and fail if it won't.

    An orphaned grandchild is reaped by PID 1, whenever PID 1 gets to it (seconds, in some
    containers): until then ``os.kill(pid, 0)`` still succeeds on its zombie. So "dead" here
    means exited; pair with :func:`is_running`, which counts a zombie as not running.
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        with anyio.fail_after(timeout_s):
            await anyio.wait_readable(fd)
    except TimeoutError:
        os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"process {pid} still running after {timeout_s} s") from None
    finally:
        os.close(fd)
