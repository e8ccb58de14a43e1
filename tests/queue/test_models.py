"""Tag normalization and the validation of what callers submit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationFailed
from core.queue.context import job_model
from core.queue.models import Job, JobPatch, JobSpec, normalize_tags, parse_model
from core.store.queue import AttemptRow, JobRow
from tests.queue.conftest import START


@pytest.mark.parametrize(("raw", "tags"), [
    (None, []),
    ("", []),
    (" Code, REVIEW ,code", ["code", "review"]),
    ("a,,b, ,a", ["a", "b"]),
    (["Py", "py ", " GO"], ["py", "go"]),
    ((), []),
])
def test_tags_are_lowercased_trimmed_deduplicated_in_order(raw: Any, tags: list[str]) -> None:
    assert normalize_tags(raw) == tags


@given(st.lists(st.text(alphabet="abcXYZ ,", max_size=6), max_size=8))
def test_normalizing_twice_changes_nothing(raw: list[str]) -> None:
    once = normalize_tags(raw)
    assert normalize_tags(once) == once
    assert normalize_tags(",".join(raw)) == normalize_tags(",".join(once))
    assert len(set(once)) == len(once)
    assert all(t and t == t.strip().lower() and "," not in t for t in once)


def test_a_spec_accepts_tags_as_one_comma_string() -> None:
    spec = parse_model(JobSpec, {"prompt": "hi", "tags": " Code, REVIEW ,code"})
    assert spec.tags == ["code", "review"]
    assert (spec.effort, spec.urgency) == ("standard", "normal")


@pytest.mark.parametrize(("body", "path"), [
    ({}, "prompt"),
    ({"prompt": "   "}, "prompt"),
    ({"prompt": "x", "urgency": "asap"}, "urgency"),
    ({"prompt": "x", "effort": "huge"}, "effort"),
    ({"prompt": "x", "timeoutS": 0}, "timeoutS"),
    ({"prompt": "x", "capability": "Not Valid!"}, "capability"),
    ({"prompt": "x", "surprise": 1}, "surprise"),
])
def test_an_invalid_spec_is_a_validation_error_naming_the_field(body: dict[str, Any], path: str
                                                               ) -> None:
    with pytest.raises(ValidationFailed) as caught:
        parse_model(JobSpec, body)
    assert isinstance(caught.value.details, list)
    assert caught.value.details[0]["path"] == path


def test_a_patch_normalizes_tags_and_leaves_the_rest_unset() -> None:
    patch = parse_model(JobPatch, {"tags": "B,a"})
    assert patch.model_dump(exclude_none=True) == {"tags": ["b", "a"]}


def test_jobs_are_camel_case_on_rest_and_snake_case_for_workers() -> None:
    job = Job.model_validate({
        "id": 7, "prompt": "p", "status": "pending", "assigned_to": "w1", "max_attempts": 3,
        "timeout_s": 60, "created_by": "alice", "created_at": "2026-03-01T12:00:00Z",
        "updated_at": "2026-03-01T12:00:00Z",
    })
    assert job.wire()["assignedTo"] == "w1"
    assert job.worker_wire()["assigned_to"] == "w1"
    assert job.worker_wire()["created_at"] == "2026-03-01T12:00:00.000Z"


@pytest.mark.parametrize("body", [{"prompt": "x", "tags": [1, 2]}, {"prompt": "x", "tags": 5}])
def test_tags_that_are_not_strings_are_a_validation_error(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationFailed):
        parse_model(JobSpec, body)


_ROW = JobRow(
    id=7, prompt="p", input={"k": [1, "two"]}, tags=("code", "ops"), capability="code",
    provider=None, model="m", effort="deep", urgency="high", priority=2, status="done",
    risk_tier="audit", assigned_to="w1", assigned_at=START, attempts=2, max_attempts=3,
    timeout_s=60, lease_expires_at=None, result="ok", error=None, approved_by="alice",
    created_by="alice", created_at=START, updated_at=START + timedelta(seconds=1),
    history=(
        AttemptRow(7, 1, "w2", "wkr_2", START, START, "lost", "lease expired"),
        AttemptRow(7, 2, "w1", "wkr_1", START, START + timedelta(seconds=1), "done"),
    ),
)


def test_a_job_built_from_a_stored_row_is_the_job_validation_would_build() -> None:
    job = job_model(_ROW)
    validated = Job.model_validate(job.model_dump())
    assert job == validated
    assert job.model_fields_set == validated.model_fields_set
    assert job.wire() == validated.wire()
    assert job.worker_wire() == validated.worker_wire()
    assert job.model_dump_json() == validated.model_dump_json()
