"""Channel events: a claimed job as the ``notifications/claude/channel`` a session reads.

Claude Code shows an event to the model as ``<channel source="…" job_id="42" …>content
</channel>``: ``content`` is the text, each ``meta`` entry an attribute. Meta keys must be
identifiers (letters, digits, underscore) and values strings; :func:`check_meta` enforces
that before anything is sent, so a malformed event is a bug here, never a dropped message
on the other side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from channel.client import Job
from channel.jobs import job_id, job_text, job_timeout

__all__ = [
    "CHANNEL_METHOD",
    "META_KEY",
    "channel_event",
    "check_meta",
    "job_content",
    "job_meta",
]

CHANNEL_METHOD = "notifications/claude/channel"
META_KEY = re.compile(r"[A-Za-z0-9_]+")


def check_meta(meta: Mapping[str, Any]) -> dict[str, str]:
    """``meta`` as a channel event carries it; ValueError names the first bad key or value."""
    for key, value in meta.items():
        if not isinstance(key, str) or not META_KEY.fullmatch(key):
            raise ValueError(f"channel meta key {key!r} must be letters, digits and "
                             "underscores only")
        if not isinstance(value, str):
            raise ValueError(f"channel meta value of {key!r} must be a string, "
                             f"not {type(value).__name__}")
    return dict(meta)


def job_meta(job: Job) -> dict[str, str]:
    """The attributes of a job's event: id, tags, timeout, and routing hints it carries."""
    meta = {"job_id": str(job_id(job)),
            "tags": ",".join(str(t) for t in job.get("tags") or []),
            "timeout_s": f"{job_timeout(job):g}"}
    for key in ("effort", "urgency", "capability", "provider", "model"):
        value = job.get(key)
        if isinstance(value, str) and value:
            meta[key] = value
    return check_meta(meta)


def job_content(job: Job) -> str:
    """What the model reads: the job's prompt (and input), then how to answer it."""
    ident = job_id(job)
    tags = ", ".join(str(t) for t in job.get("tags") or []) or "none"
    minutes = job_timeout(job) / 60
    return (
        f"ModelReins job {ident} (tags: {tags}; answer within {minutes:g} min).\n\n"
        f"{job_text(job).rstrip()}\n\n"
        f"When finished, call mr_job_complete(job_id={ident}, result=<your answer>, "
        'status="done"). Use status="failed" if it cannot be done, or "escalated" if a '
        "human must decide."
    )


def channel_event(job: Job) -> dict[str, Any]:
    """The params of the ``notifications/claude/channel`` for a claimed job."""
    return {"content": job_content(job), "meta": job_meta(job)}
