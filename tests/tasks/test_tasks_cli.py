from __future__ import annotations

import json
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.clock import iso
from core.engine import DB_FILE
from mcp_server.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_home(home: Path) -> Path:
    (home / "config.yaml").write_text(
        "providers:\n  echo: {type: echo, default: true}\n  other: {type: echo}\n")
    return home


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def create(capsys: pytest.CaptureFixture[str], name: str = "nightly", *extra: str
           ) -> dict[str, object]:
    code, out, err = run(capsys, "tasks", "create", name, "--schedule", "0 9 * * 1-5",
                         "--prompt", "hello tasks", "--json", *extra)
    assert code == 0, err
    task: dict[str, object] = json.loads(out)
    return task


def test_create_list_and_show(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = create(capsys, "nightly", "--timezone", "Europe/Paris", "--provider", "other")
    assert (task["name"], task["timezone"], task["provider"]) == (
        "nightly", "Europe/Paris", "other")
    code, out, _ = run(capsys, "tasks", "list")
    assert code == 0
    header, row = out.splitlines()
    assert header.split() == ["NAME", "SCHEDULE", "ENABLED", "NEXT", "RUN", "LAST", "RUN",
                              "LAST", "STATUS", "ID"]
    assert row.startswith("nightly  0 9 * * 1-5 (Europe/Paris)  yes")
    assert row.split()[-3:] == ["-", "-", task["id"]]
    code, out, _ = run(capsys, "tasks", "show", "nightly")
    assert code == 0
    assert f"id:           {task['id']}" in out.splitlines()
    assert "  hello tasks" in out.splitlines()
    code, out, _ = run(capsys, "tasks", "list", "--json")
    assert [t["id"] for t in json.loads(out)] == [task["id"]]


def test_create_reports_every_invalid_field(cli_home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "tasks", "create", "x", "--schedule", "0 24 * * *",
                         "--prompt", "p", "--timezone", "Mars/Base")
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "error: VALIDATION_ERROR: 2 problems:",
        "  - schedule: hour: 24 is out of range 0–23",
        "  - timezone: unknown IANA timezone 'Mars/Base'",
    ]
    create(capsys, "dup")
    code, _, err = run(capsys, "tasks", "create", "dup", "--schedule", "@daily", "--prompt", "p")
    assert (code, err.strip()) == (1, "error: CONFLICT: name: a task named 'dup' already exists")


def test_unknown_task_is_one_line(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "tasks", "show", "ghost")
    assert (code, err.strip()) == (1, "error: NOT_FOUND: no task 'ghost'")


def test_run_with_wait_prints_the_result(cli_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys)
    code, out, err = run(capsys, "tasks", "run", "nightly", "--wait", "10")
    assert code == 0
    assert out == "hello tasks\n"
    assert "manual · success · echo" in err


def test_run_without_wait_prints_the_run_id(cli_home: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    task = create(capsys)
    code, out, _ = run(capsys, "tasks", "run", str(task["id"]))
    assert code == 0
    run_id = out.strip()
    assert run_id.startswith("run_")
    code, out, _ = run(capsys, "tasks", "results", "nightly", "--run", run_id, "--json")
    assert json.loads(out)["status"] == "success"


def test_results_table_latest_and_paging(cli_home: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys)
    ids = []
    for _ in range(3):
        ids.append(run(capsys, "tasks", "run", "nightly")[1].strip())
    code, out, _ = run(capsys, "tasks", "results", "nightly", "--limit", "2")
    lines = out.splitlines()
    assert lines[0] == "3 runs (showing 2 from 0)"
    assert lines[1].split()[:4] == ["RUN", "STARTED", "TRIGGER", "STATUS"]
    assert [line.split()[0] for line in lines[2:]] == [ids[2], ids[1]]
    assert lines[2].split()[2:4] == ["manual", "success"]
    code, out, err = run(capsys, "tasks", "results", "nightly", "--latest")
    assert out == "hello tasks\n"
    assert ids[2] in err
    code, out, _ = run(capsys, "tasks", "results", "nightly", "--offset", "2", "--json")
    assert code == 0
    assert [r["runId"] for r in json.loads(out)["items"]] == [ids[0]]


def test_update_changes_and_clears_fields(cli_home: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys, "nightly", "--provider", "other", "--model", "m")
    code, out, _ = run(capsys, "tasks", "update", "nightly", "--provider", "", "--name",
                       "daily", "--schedule", "@daily", "--disabled", "--json")
    assert code == 0
    task = json.loads(out)
    assert (task["name"], task["schedule"], task["provider"], task["model"]) == (
        "daily", "@daily", None, "m")
    assert (task["enabled"], task["nextRunAt"]) == (False, None)


def test_enable_disable_and_delete(cli_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    create(capsys)
    code, out, _ = run(capsys, "tasks", "disable", "nightly")
    assert (code, out.strip()) == (0, "task 'nightly' disabled")
    code, out, _ = run(capsys, "tasks", "enable", "nightly")
    assert out.startswith("task 'nightly' enabled; next run: ")
    code, out, _ = run(capsys, "tasks", "delete", "nightly")
    assert code == 0 and out.startswith("deleted task task_")
    assert run(capsys, "tasks", "list")[1].startswith("no tasks")


def _overdue(home: Path, name: str) -> None:
    """Put the task's next run a few seconds in the past, as after a short downtime."""
    past = iso(datetime.now(UTC) - timedelta(seconds=5))
    with sqlite3.connect(home / DB_FILE) as conn:
        conn.execute("UPDATE tasks SET next_run_at = ? WHERE name = ?", (past, name))
    conn.close()


@pytest.mark.slow
def test_scheduler_prints_fired_runs_and_stops_cleanly_on_ctrl_c(
    cli_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    create(capsys)
    _overdue(cli_home, "nightly")
    env = {**os.environ, "MODELREINS_HOME": str(cli_home), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "mcp_server.cli", "scheduler"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                              daemon=True)
    reader.start()
    try:
        fired = lines.get(timeout=30).split()
        assert fired[1:3] == ["schedule", "running"]
        assert fired[3].startswith("run_") and fired[4] == "nightly"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert err.splitlines()[-1] == "scheduler stopped"
    with sqlite3.connect(cli_home / DB_FILE) as conn:
        assert conn.execute("SELECT COUNT(*) FROM scheduler_lease").fetchone() == (0,)
    conn.close()
