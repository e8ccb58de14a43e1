"""``modelreins workers …``, ``modelreins jobs …`` and ``modelreins explain`` on a local home."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mcp_server.cli import main

RAW = re.compile(r"mr_[0-9A-Za-z]{43}")
VIEW = re.compile(r"http://127\.0\.0\.1:8484/view/[A-Za-z0-9_-]{43}")


@pytest.fixture
def cli_home(home: Path) -> Path:
    (home / "config.yaml").write_text("providers:\n  echo: {type: echo, default: true}\n")
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_register_prints_a_one_time_link_by_default(cli_home: Path,
                                                    capsys: pytest.CaptureFixture[str]
                                                    ) -> None:
    code, out, _ = run(capsys, "workers", "register", "w1", "--capability",
                       "code:audit,deploy:approve", "--tags", "Code, review")
    assert code == 0
    assert "Registered worker w1 (wkr_" in out
    assert "capabilities: code:audit, deploy:approve" in out
    assert "tags:         code, review" in out
    assert VIEW.search(out)
    assert not RAW.search(out)


def test_register_show_token_prints_the_token_once(cli_home: Path,
                                                   capsys: pytest.CaptureFixture[str]
                                                   ) -> None:
    code, out, _ = run(capsys, "workers", "register", "w1", "--show-token")
    assert code == 0
    assert len(RAW.findall(out)) == 1
    assert not VIEW.search(out)
    code, out, _ = run(capsys, "workers", "list", "--json")
    (worker,) = json.loads(out)
    assert (worker["name"], worker["capabilities"]) == ("w1", [])


def test_register_refuses_an_unknown_tier(cli_home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["workers", "register", "w1", "--capability", "code:yolo"])
    assert "unknown risk tier 'yolo'" in capsys.readouterr().err


def test_workers_show_pause_resume_revoke(cli_home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "workers", "register", "w1", "--capability", "code")
    code, out, _ = run(capsys, "workers", "pause", "w1")
    assert code == 0 and "w1 (wkr_" in out and ": paused" in out
    code, out, _ = run(capsys, "workers", "resume", "w1", "--json")
    assert json.loads(out)["status"] == "offline"
    code, out, _ = run(capsys, "workers", "revoke", "w1")
    assert ": revoked" in out
    code, _, err = run(capsys, "workers", "pause", "w1")
    assert code == 1 and "CONFLICT" in err
    code, _, err = run(capsys, "workers", "show", "ghost")
    assert code == 1 and "NOT_FOUND" in err


def test_jobs_submit_list_show_cancel_retry(cli_home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "jobs", "submit", "fix the bug", "--tags", "code",
                       "--urgency", "high", "--effort", "quick", "--capability", "code",
                       "--json")
    assert code == 0
    job = json.loads(out)
    assert (job["status"], job["urgency"], job["effort"], job["capability"]) == (
        "pending", "high", "quick", "code")
    code, out, _ = run(capsys, "jobs", "list")
    assert f"{job['id']} pending - [code]" in out
    code, out, _ = run(capsys, "jobs", "show", str(job["id"]))
    assert f"Job {job['id']}: pending" in out
    code, out, _ = run(capsys, "jobs", "cancel", str(job["id"]), "--reason", "dup")
    assert f"Job {job['id']}: cancelled" in out
    code, out, _ = run(capsys, "jobs", "retry", str(job["id"]), "--json")
    assert json.loads(out)["status"] == "pending"
    code, _, err = run(capsys, "jobs", "show", "999")
    assert code == 1 and "NOT_FOUND" in err
    code, _, err = run(capsys, "jobs", "submit", "x", "--input", "{nope")
    assert code == 2 and "input" in err


def test_jobs_approve_and_reject(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, "workers", "register", "w1", "--capability", "deploy:approve")
    held = [json.loads(run(capsys, "jobs", "submit", "ship", "--capability", "deploy",
                           "--json")[1]) for _ in range(2)]
    assert {j["status"] for j in held} == {"awaiting_approval"}
    code, out, _ = run(capsys, "jobs", "approve", str(held[0]["id"]), "--json")
    assert code == 0
    assert (json.loads(out)["status"], json.loads(out)["approvedBy"]) == ("pending", "local")
    code, out, _ = run(capsys, "jobs", "reject", str(held[1]["id"]), "--reason", "no")
    assert code == 0
    assert f"Job {held[1]['id']}: cancelled" in out


def test_explain_prints_every_candidate_and_the_numbers(
    cli_home: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    run(capsys, "workers", "register", "w1", "--capability", "code", "--tags", "code")
    code, out, _ = run(capsys, "explain", "--tags", "code,review")
    assert code == 0
    assert "no eligible worker" in out
    assert "w1: not eligible: offline" in out
    assert "0.5·0.500" in out
    code, out, _ = run(capsys, "explain", "--tags", "code", "--json")
    assert json.loads(out)["candidates"][0]["score"]["tagOverlap"] == 1.0
