from __future__ import annotations

import os
from pathlib import Path

import pytest

from core.errors import ValidationFailed
from core.tasks.context import read_context, with_context


@pytest.fixture
def allowed(tmp_path: Path) -> Path:
    path = tmp_path / "notes"
    path.mkdir()
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "secrets"
    path.mkdir()
    (path / "key.txt").write_text("hunter2\n")
    return path


def problem_of(caught: pytest.ExceptionInfo[ValidationFailed]) -> str:
    [detail] = caught.value.details or []
    assert detail["path"] == "context.readFile"
    return str(detail["problem"])


def test_reads_a_small_file_whole(allowed: Path) -> None:
    (allowed / "log.txt").write_text("first\nsecond\n")
    assert read_context(str(allowed / "log.txt"), [str(allowed)]) == "first\nsecond\n"


def test_long_file_gives_its_tail_from_a_line_boundary(allowed: Path) -> None:
    lines = [f"line {n:04d}\n" for n in range(1000)]  # 10 bytes each
    (allowed / "log.txt").write_text("".join(lines))
    tail = read_context(str(allowed / "log.txt"), [str(allowed)], max_bytes=105)
    assert tail == "".join(lines[-10:])


def test_tail_without_line_breaks_is_cut_at_max_bytes(allowed: Path) -> None:
    (allowed / "blob.txt").write_text("x" * 500)
    assert read_context(str(allowed / "blob.txt"), [str(allowed)], max_bytes=64) == "x" * 64


def test_tail_does_not_open_on_half_a_character(allowed: Path) -> None:
    (allowed / "accents.txt").write_text("é" * 100)  # two bytes each, no line breaks
    tail = read_context(str(allowed / "accents.txt"), [str(allowed)], max_bytes=11)
    assert tail == "é" * 5


def test_invalid_utf8_is_replaced(allowed: Path) -> None:
    (allowed / "bin.txt").write_bytes(b"ok \xff\n")
    assert read_context(str(allowed / "bin.txt"), [str(allowed)]) == "ok \ufffd\n"


def test_any_of_several_allowed_dirs(allowed: Path, outside: Path) -> None:
    assert read_context(str(outside / "key.txt"), [str(allowed), str(outside)]) == "hunter2\n"


def test_file_outside_allowed_dirs_is_refused(allowed: Path, outside: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_context(str(outside / "key.txt"), [str(allowed)])
    assert "outside the allowed read paths" in problem_of(caught)


def test_dotdot_escape_is_refused(allowed: Path, outside: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_context(f"{allowed}/../secrets/key.txt", [str(allowed)])
    assert "outside the allowed read paths" in problem_of(caught)


def test_sibling_with_common_prefix_is_refused(tmp_path: Path, allowed: Path) -> None:
    sibling = tmp_path / "notes-private"
    sibling.mkdir()
    (sibling / "diary.txt").write_text("dear diary\n")
    with pytest.raises(ValidationFailed, match="outside the allowed read paths"):
        read_context(str(sibling / "diary.txt"), [str(allowed)])


def test_symlink_inside_pointing_outside_is_refused(allowed: Path, outside: Path) -> None:
    (allowed / "innocent.txt").symlink_to(outside / "key.txt")
    with pytest.raises(ValidationFailed) as caught:
        read_context(str(allowed / "innocent.txt"), [str(allowed)])
    assert "outside the allowed read paths" in problem_of(caught)


def test_symlinked_subdir_pointing_outside_is_refused(allowed: Path, outside: Path) -> None:
    (allowed / "shared").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ValidationFailed, match="outside the allowed read paths"):
        read_context(str(allowed / "shared" / "key.txt"), [str(allowed)])


def test_allowed_dir_that_is_a_symlink_works(tmp_path: Path, allowed: Path) -> None:
    (allowed / "log.txt").write_text("hello\n")
    link = tmp_path / "notes-link"
    link.symlink_to(allowed, target_is_directory=True)
    assert read_context(str(link / "log.txt"), [str(link)]) == "hello\n"
    assert read_context(str(allowed / "log.txt"), [str(link)]) == "hello\n"


def test_missing_file_is_a_clear_error(allowed: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        read_context(str(allowed / "nope.txt"), [str(allowed)])
    assert problem_of(caught) == f"{allowed / 'nope.txt'} does not exist"


def test_missing_file_outside_says_outside_not_missing(allowed: Path, outside: Path) -> None:
    with pytest.raises(ValidationFailed, match="outside the allowed read paths"):
        read_context(str(outside / "nope.txt"), [str(allowed)])


def test_directory_is_refused(allowed: Path) -> None:
    (allowed / "sub").mkdir()
    with pytest.raises(ValidationFailed) as caught:
        read_context(str(allowed / "sub"), [str(allowed)])
    assert problem_of(caught) == f"{allowed / 'sub'} is a directory"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX named pipes")
def test_fifo_is_refused_without_blocking(allowed: Path) -> None:
    os.mkfifo(allowed / "pipe")
    with pytest.raises(ValidationFailed) as caught:
        read_context(str(allowed / "pipe"), [str(allowed)])
    assert problem_of(caught) == f"{allowed / 'pipe'} is not a regular file"


def test_no_allowed_dirs_refuses_everything(allowed: Path) -> None:
    (allowed / "log.txt").write_text("hello\n")
    with pytest.raises(ValidationFailed, match="outside the allowed read paths"):
        read_context(str(allowed / "log.txt"), [])


def test_with_context_appends_under_a_delimiter() -> None:
    assert with_context("Summarize.", "/var/log/app.log", "é ok\n") == (
        "Summarize.\n\n"
        "--- context: /var/log/app.log (last 6 bytes) ---\n"
        "é ok\n\n"
        "--- end context ---"
    )
