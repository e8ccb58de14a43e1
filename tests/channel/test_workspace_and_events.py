"""Pure parts of recruiting and pushing: names, workspace tags, roots, channel events."""

from __future__ import annotations

from pathlib import Path

import pytest

from channel.events import CHANNEL_METHOD, channel_event, check_meta, job_meta
from channel.workspace import (
    host_label,
    normalize_name,
    root_from_uris,
    worker_name,
    workspace_tags,
)


@pytest.mark.parametrize(("root", "host", "expected"), [
    ("/home/ana/api-server", "devbox.local", "api-server-devbox"),
    ("/srv/My Project (v2)", "Build-01", "my-project-v2-build-01"),
    ("/", "devbox", "devbox"),
    (None, "devbox", "devbox"),
    ("/x/" + "a" * 80, "devbox", "a" * 57 + "-devbox"),
    ("/x/ünïcode", "h", "n-code-h"),
    ("/x/---", "", "host"),
])
def test_worker_names_come_from_the_workspace_and_the_host(
    root: str | None, host: str, expected: str,
) -> None:
    name = worker_name(Path(root) if root is not None else None, host)
    assert name == expected
    assert len(name) <= 64


@pytest.mark.parametrize(("text", "expected"), [
    ("Shop API", "shop-api"), ("a__b..c", "a__b..c"), ("--x--", "x"), ("", "")])
def test_normalize_name(text: str, expected: str) -> None:
    assert normalize_name(text) == expected


def test_host_label_is_the_first_dns_label() -> None:
    assert host_label("CI-Runner.example.com") == "ci-runner"


@pytest.mark.parametrize(("uris", "expected"), [
    (["file:///home/ana/shop"], "/home/ana/shop"),
    (["https://example.com/x", "file:///srv/My%20Project"], "/srv/My Project"),
    (["file://otherhost/srv/x"], None),
    ([], None),
])
def test_the_first_local_root_is_the_workspace(uris: list[str], expected: str | None) -> None:
    root = root_from_uris(uris)
    assert (str(root) if root else None) == expected


def _tree(root: Path, files: list[str]) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
    return root


@pytest.mark.parametrize(("files", "expected"), [
    (["pyproject.toml", "src/app/main.py"], ["code", "python"]),
    (["package.json", "tsconfig.json", "src/a.ts", "src/b.tsx"],
     ["code", "typescript", "javascript"]),
    (["Cargo.toml", "src/main.rs"], ["code", "rust"]),
    (["go.mod", "main.go", "tools/gen.py"], ["code", "go", "python"]),
    (["README.md", "notes.txt"], []),
    (["node_modules/x/index.js", ".venv/lib/y.py", "README.md"], []),
])
def test_workspace_tags_come_from_markers_and_extensions(
    tmp_path: Path, files: list[str], expected: list[str],
) -> None:
    assert workspace_tags(_tree(tmp_path / "ws", files)) == expected


def test_the_scan_is_bounded_in_depth_and_entries(tmp_path: Path) -> None:
    root = _tree(tmp_path / "ws", ["a/b/c/deep.rs", *[f"f{i}.txt" for i in range(50)],
                                   "z.py"])
    assert workspace_tags(root) == ["code", "python"]
    assert workspace_tags(root, max_entries=10) == []
    assert workspace_tags(root, max_depth=3) == ["code", "python", "rust"]


def test_no_root_and_a_missing_root_have_no_tags(tmp_path: Path) -> None:
    assert workspace_tags(None) == []
    assert workspace_tags(tmp_path / "missing") == []


JOB = {"id": 42, "prompt": "Review the diff", "tags": ["code", "review"], "timeout_s": 900,
       "effort": "deep", "urgency": "high", "capability": None, "input": {"pr": 7}}


def test_a_job_event_carries_the_prompt_and_how_to_answer() -> None:
    event = channel_event(JOB)
    assert set(event) == {"content", "meta"}
    content = event["content"]
    assert content.startswith("ModelReins job 42 (tags: code, review; answer within 15 min)")
    assert "Review the diff" in content
    assert '"pr": 7' in content
    assert "mr_job_complete(job_id=42, result=<your answer>, status=\"done\")" in content
    assert event["meta"] == {"job_id": "42", "tags": "code,review", "timeout_s": "900",
                             "effort": "deep", "urgency": "high"}
    assert CHANNEL_METHOD == "notifications/claude/channel"


def test_meta_values_are_strings_even_without_tags_or_timeout() -> None:
    meta = job_meta({"id": 7, "prompt": "x"})
    assert meta == {"job_id": "7", "tags": "", "timeout_s": "1800"}
    assert all(isinstance(v, str) for v in meta.values())


@pytest.mark.parametrize("key", ["job-id", "job id", "tags.list", "", "é", "a/b"])
def test_meta_keys_other_than_letters_digits_and_underscore_are_refused(key: str) -> None:
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        check_meta({key: "x"})


def test_meta_values_must_be_strings() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        check_meta({"job_id": 42})
    assert check_meta({"Job_ID_2": "42"}) == {"Job_ID_2": "42"}
