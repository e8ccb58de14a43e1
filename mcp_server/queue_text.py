"""Plain-text views of queue objects, shared by the MCP tools and the CLI.

Kept free of the MCP SDK so that importing it (every CLI start) stays cheap.
"""

from __future__ import annotations

from core.clock import iso
from core.fleet import WorkerList
from core.models import Page
from core.queue import Job, RouteExplanation
from core.queue.models import TERMINAL

__all__ = ["render_explanation", "render_job", "render_jobs", "render_workers"]


def render_job(job: Job) -> str:
    where = f" → {job.assigned_to}" if job.assigned_to else ""
    lines = [f"Job {job.id}: {job.status}{where} (tags {','.join(job.tags) or '-'}, "
             f"urgency {job.urgency}, attempts {job.attempts}/{job.max_attempts}, "
             f"tier {job.risk_tier})"]
    if job.status == "awaiting_approval":
        lines.append(f"  held for a human: approve with mr_job_approve(job_id={job.id})")
    elif job.status not in TERMINAL:
        lines.append(f"  not finished: poll with mr_job_status(job_id={job.id})")
    if job.result is not None:
        lines.append(f"  result: {job.result}")
    if job.error:
        lines.append(f"  error: {job.error}")
    lines.append(f"  prompt: {' '.join(job.prompt.split())[:120]}")
    return "\n".join(lines)


def render_jobs(page: Page[Job]) -> str:
    lines = [f"{page.total} jobs (showing {len(page.items)} from {page.offset})"]
    for j in page.items:
        prompt = " ".join(j.prompt.split())[:60]
        lines.append(f"{j.id} {j.status} {j.assigned_to or '-'} [{','.join(j.tags)}] "
                     f"{iso(j.created_at)}: {prompt}")
    return "\n".join(lines)


def render_workers(listing: WorkerList) -> str:
    lines = []
    for w in listing.workers:
        rate = w.record.success_rate
        caps = ",".join(f"{c.name}:{c.risk_tier}" for c in w.capabilities) or "-"
        lines.append(
            f"{w.name} ({w.id}): {w.status}, load {w.load.running}+{w.load.assigned}/"
            f"{w.load.capacity}, tags {','.join(w.tags) or '-'}, capabilities {caps}, "
            f"30d {w.record.done_30d} done / {w.record.failed_30d} failed"
            + (f" ({rate:.0%})" if rate is not None else ""))
    return "\n".join(lines) or "No workers registered."


def render_explanation(exp: RouteExplanation) -> str:
    head = (f"Job tags {','.join(exp.job_tags) or '-'}, urgency {exp.urgency}, capability "
            f"{exp.capability or '-'}, provider {exp.provider or '-'} (tier {exp.risk_tier}): ")
    if exp.needs_approval:
        head += "held for a human's approval"
        head += f" (then {exp.chosen})" if exp.chosen else ""
    else:
        head += f"goes to {exp.chosen}" if exp.chosen else "no eligible worker"
    lines = [head]
    for c in exp.candidates:
        s = c.score
        pens = ", ".join(f"{k} -{v:g}" for k, v in s.penalties.items()) or "none"
        state = "eligible" if c.eligible else "not eligible: " + "; ".join(c.reasons)
        lines.append(f"  {c.worker}: {state}; total {s.total:.3f} = 0.5·{s.tag_overlap:.3f} "
                     f"+ 0.3·{s.track_record:.3f} + 0.2·(1 − {s.load:.3f}) − penalties "
                     f"({pens})")
    return "\n".join(lines)
