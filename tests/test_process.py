from __future__ import annotations

import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from core.errors import ProviderError, ProviderTimeout, ValidationFailed
from core.process import STDERR_TAIL_BYTES, ProcessResult, run_process, split_command
from tests.fakes_cli import (
    ARGV_TO_FILE,
    CAT,
    EXIT_EARLY,
    FAIL,
    FLOOD,
    GATED,
    HANG,
    LEAVE_ORPHAN,
    PRINT_CWD,
    PRINT_ENV,
    Gate,
    is_running,
    kill_listed,
    make_cli,
    pwned_files,
    read_pids,
    wait_dead,
)

MiB = 1024 * 1024
SHELLISH = "run $(touch PWNED) `id` ; rm -rf / | x && y > out 2>&1"


@pytest.fixture
def pid_file(tmp_path: Path) -> Iterator[Path]:
    """Where a HANG or LEAVE_ORPHAN fake lists its pids; what still runs is killed afterwards."""
    path = tmp_path / "pids"
    yield path
    kill_listed(path)


async def run(argv: list[str | Path], **kw: Any) -> ProcessResult:
    """run_process with roomy defaults; tests override what they are about."""
    options: dict[str, Any] = {"timeout_s": 10.0, "max_output_bytes": MiB, **kw}
    return await run_process([str(a) for a in argv], **options)


async def assert_group_gone(pid_file: Path) -> None:
    pid, grandchild = read_pids(pid_file)
    # The leader is ours and already reaped; the grandchild is init's to reap.
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    await wait_dead(grandchild)
    assert not is_running(grandchild)


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("claude --print", ["claude", "--print"]),
        ("  a   'b c'  \"d e\"  ", ["a", "b c", "d e"]),
        # No quotes, so splitting on whitespace is the expected answer: nothing is expanded.
        (SHELLISH, SHELLISH.split()),
        ("echo 'it''s' # not a comment", ["echo", "its", "#", "not", "a", "comment"]),
        (["a b", "$HOME"], ["a b", "$HOME"]),
        (("tuple", ""), ["tuple", ""]),
    ],
)
def test_split_command_splits_like_a_shell_and_expands_nothing(
    command: str | list[str], argv: list[str]
) -> None:
    assert split_command(command) == argv


@pytest.mark.parametrize("command", ["", "   ", [], [""], "unbalanced 'quote", "trailing\\"])
def test_split_command_rejects_empty_and_unsplittable_commands(command: str | list[str]) -> None:
    with pytest.raises(ValidationFailed) as caught:
        split_command(command)
    assert caught.value.message.startswith("command: ")


async def test_stdin_reaches_the_command_and_stdout_comes_back_byte_for_byte(
    tmp_path: Path,
) -> None:
    data = bytes(range(256)) * 1000 + "ünïcødé\n$(x)".encode()
    result = await run([make_cli(tmp_path, "cat", CAT)], stdin=data)
    assert result.exit_code == 0
    assert result.stdout == data
    assert result.truncated is False
    assert result.stderr_tail == ""
    assert result.duration_s > 0


async def test_empty_stdin_is_an_immediate_eof(tmp_path: Path) -> None:
    result = await run([make_cli(tmp_path, "cat", CAT)])
    assert (result.exit_code, result.stdout) == (0, b"")


async def test_a_non_zero_exit_is_a_result_with_the_stderr_tail(tmp_path: Path) -> None:
    result = await run([make_cli(tmp_path, "fail", FAIL), "7"], stdin=b"question")
    assert result.exit_code == 7
    assert result.stdout == b"partial answer"
    assert result.stderr_tail.endswith("boom: something broke\n")
    assert len(result.stderr_tail) == STDERR_TAIL_BYTES


async def test_a_timeout_kills_the_whole_process_group(tmp_path: Path, pid_file: Path) -> None:
    with pytest.raises(ProviderTimeout) as caught:
        await run([make_cli(tmp_path, "hang", HANG), pid_file], timeout_s=0.5)
    assert "timed out after 0.5 s and was killed" in caught.value.message
    await assert_group_gone(pid_file)


async def test_a_group_that_ignores_sigterm_gets_sigkill_after_the_grace(
    tmp_path: Path, pid_file: Path
) -> None:
    with pytest.raises(ProviderTimeout):
        await run(
            [make_cli(tmp_path, "hang", HANG), pid_file, "--ignore-term"],
            timeout_s=0.5,
            kill_grace_s=0.1,
        )
    await assert_group_gone(pid_file)


async def test_caller_cancellation_kills_the_whole_process_group(
    tmp_path: Path, pid_file: Path
) -> None:
    seen = bytearray()
    with anyio.CancelScope() as scope:

        async def cancel_when_ready(chunk: bytes) -> None:
            seen.extend(chunk)
            if b"ready" in seen:
                scope.cancel()

        await run(
            [make_cli(tmp_path, "hang", HANG), pid_file],
            on_output=cancel_when_ready,
        )
    assert scope.cancelled_caught
    await assert_group_gone(pid_file)


async def test_on_output_sees_chunks_while_the_command_still_runs(tmp_path: Path) -> None:
    seen: list[bytes] = []
    with Gate(tmp_path / "gate") as gate:

        async def on_output(chunk: bytes) -> None:
            seen.append(chunk)
            if chunk == b"first":
                # The command is blocked on the gate: this chunk cannot be from after its exit.
                gate.open()

        cli = make_cli(tmp_path, "gated", GATED)
        result = await run([cli, gate.path, b"first".hex(), b"second".hex()], on_output=on_output)
    assert seen == [b"first", b"second"]
    assert result.stdout == b"firstsecond"


async def test_an_error_raised_by_on_output_propagates_as_itself_and_kills_the_group(
    tmp_path: Path,
    pid_file: Path,
) -> None:

    async def refuse(chunk: bytes) -> None:
        raise LookupError("consumer gave up")

    with pytest.raises(LookupError, match="consumer gave up"):
        await run([make_cli(tmp_path, "hang", HANG), pid_file], on_output=refuse)
    await assert_group_gone(pid_file)


async def test_output_past_the_cap_is_drained_and_reported_truncated_in_bounded_memory(
    tmp_path: Path,
) -> None:
    seen = 0

    async def count(chunk: bytes) -> None:
        nonlocal seen
        seen += len(chunk)

    tracemalloc.start()
    try:
        result = await run(
            [make_cli(tmp_path, "flood", FLOOD), 50 * MiB],
            max_output_bytes=MiB,
            on_output=count,
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0
    assert result.truncated is True
    assert result.stdout == b"x" * MiB
    assert seen == MiB
    # 50 MiB went through; what we held is the 1 MiB kept plus pipe-sized buffers.
    assert peak < 8 * MiB


async def test_output_exactly_at_the_cap_is_not_truncated(tmp_path: Path) -> None:
    result = await run([make_cli(tmp_path, "cat", CAT)], stdin=b"12345", max_output_bytes=5)
    assert (result.stdout, result.truncated) == (b"12345", False)


async def test_a_command_that_exits_without_reading_stdin_is_not_an_error(tmp_path: Path) -> None:
    # Far more than a pipe buffer, so writing it would block and then break.
    result = await run([make_cli(tmp_path, "early", EXIT_EARLY)], stdin=b"y" * (8 * MiB))
    assert (result.exit_code, result.stdout) == (0, b"bye")


async def test_leftovers_of_a_command_that_exited_are_killed_and_do_not_stall_the_result(
    tmp_path: Path,
    pid_file: Path,
) -> None:
    # The orphan holds stdout open: without the group kill this would end in a timeout.
    result = await run([make_cli(tmp_path, "orphan", LEAVE_ORPHAN), pid_file], timeout_s=10)
    assert (result.exit_code, result.stdout) == (0, b"done")
    await assert_group_gone(pid_file)


async def test_env_is_the_whole_environment_of_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MR_AMBIENT", "ambient")
    cli = make_cli(tmp_path, "env", PRINT_ENV)
    given = await run([cli, "MR_GIVEN", "MR_AMBIENT"], env={"MR_GIVEN": "given"})
    inherited = await run([cli, "MR_GIVEN", "MR_AMBIENT"], env=None)
    assert given.stdout.decode() == "MR_GIVEN=given\nMR_AMBIENT=<unset>\n"
    assert inherited.stdout.decode() == "MR_GIVEN=<unset>\nMR_AMBIENT=ambient\n"


async def test_cwd_is_the_working_directory_of_the_command(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = await run([make_cli(tmp_path, "pwd", PRINT_CWD)], cwd=workdir)
    assert result.stdout.decode() == str(workdir)


async def test_arguments_are_passed_literally_never_through_a_shell(tmp_path: Path) -> None:
    args = ["$(touch PWNED)", "`touch PWNED`", "; touch PWNED", "| touch PWNED && x", "> PWNED"]
    out = tmp_path / "argv.json"
    cli = make_cli(tmp_path, "argv", ARGV_TO_FILE)
    result = await run([cli, out, *args], cwd=tmp_path)
    assert result.exit_code == 0
    assert out.read_text() == json.dumps(args)
    assert pwned_files(tmp_path) == []


@pytest.mark.parametrize("argv0", ["/nonexistent/dir/tool", "no-such-command-modelreins"])
async def test_a_missing_executable_is_a_command_not_found_error(argv0: str) -> None:
    with pytest.raises(ProviderError) as caught:
        await run([argv0])
    assert caught.value.message == f"command not found: {argv0}"


async def test_a_file_that_is_not_executable_is_a_command_not_found_error(tmp_path: Path) -> None:
    script = make_cli(tmp_path, "plain", CAT)
    script.chmod(0o644)
    with pytest.raises(ProviderError) as caught:
        await run([script])
    assert caught.value.message == f"command not found: {script} (not executable)"


async def test_a_missing_working_directory_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(ProviderError) as caught:
        await run([make_cli(tmp_path, "cat", CAT)], cwd=tmp_path / "gone")
    assert caught.value.message.startswith(f"working directory not usable: {tmp_path / 'gone'}")


async def test_an_empty_argv_is_a_validation_error() -> None:
    with pytest.raises(ValidationFailed):
        await run([])
