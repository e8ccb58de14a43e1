"""``modelreins jobs submit | list | show | cancel | retry | approve | reject`` and
``modelreins explain``: the queue from the command line, acting as the owner of the home
(or as the configured token against a remote server)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from core.api import EngineAPI
from core.errors import field_error
from core.principal import LOCAL
from core.queue import Job, JobSpec
from core.queue.models import JOB_STATUSES
from mcp_server.cli.common import add_home_arg, open_engine, out, print_json
from mcp_server.queue_text import render_explanation, render_job, render_jobs

__all__ = ["register"]

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

URGENCIES = ("low", "normal", "high")
EFFORTS = ("trivial", "quick", "standard", "deep", "critical")

OneJob = Callable[[EngineAPI, argparse.Namespace], Awaitable[Job]]


def _reason(args: argparse.Namespace) -> str | None:
    return getattr(args, "reason", None)


VERBS: dict[str, tuple[str, OneJob]] = {
    "show": ("one job: state, worker, attempts, result",
             lambda e, a: e.queue.jobs.wait_for(a.job, a.wait) if a.wait
             else e.queue.jobs.get(a.job)),
    "cancel": ("cancel a job that has not finished",
               lambda e, a: e.queue.jobs.cancel(a.job, actor=LOCAL, reason=_reason(a))),
    "retry": ("send a failed, escalated or cancelled job round again",
              lambda e, a: e.queue.jobs.retry(a.job, actor=LOCAL)),
    "approve": ("approve a job held for approval",
                lambda e, a: e.queue.jobs.approve(a.job, actor=LOCAL)),
    "reject": ("reject a held job (it ends cancelled)",
               lambda e, a: e.queue.jobs.reject(a.job, actor=LOCAL, reason=_reason(a))),
}


def register(subparsers: SubParsers) -> None:
    jobs = subparsers.add_parser("jobs", help="the job queue: submit, inspect, decide")
    verbs = jobs.add_subparsers(dest="verb", metavar="VERB", required=True)

    submit = verbs.add_parser("submit", help="queue a job for the worker fleet")
    submit.add_argument("prompt", help="what the worker should do")
    submit.add_argument("--tags", help="comma-separated tags (code,review)")
    submit.add_argument("--urgency", choices=URGENCIES, default="normal")
    submit.add_argument("--effort", choices=EFFORTS, default="standard")
    submit.add_argument("--capability", help="a capability the worker must have")
    submit.add_argument("--provider", help="only workers serving this provider")
    submit.add_argument("--model", help="a model hint for the worker")
    submit.add_argument("--input", help="JSON input for the worker")
    submit.add_argument("--timeout", type=int, metavar="S",
                        help="lease seconds (default: queue.defaultTimeoutS)")
    submit.add_argument("--wait", type=float, default=0, metavar="S",
                        help="wait up to S seconds for the result")
    _common(submit, cmd_submit)

    listing = verbs.add_parser("list", help="jobs, newest first")
    listing.add_argument("--status", choices=JOB_STATUSES)
    listing.add_argument("--tags", help="only jobs carrying all of these (comma-separated)")
    listing.add_argument("--worker", help="only jobs assigned to this worker")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--offset", type=int, default=0)
    _common(listing, cmd_list)

    for name, (help_text, _) in VERBS.items():
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("job", type=int, help="the job id")
        if name == "show":
            verb.add_argument("--wait", type=float, default=0, metavar="S",
                              help="wait up to S seconds for it to finish")
        if name in ("cancel", "reject"):
            verb.add_argument("--reason", help="why, for the record")
        _common(verb, cmd_one)

    explain = subparsers.add_parser(
        "explain", help="where a job would go now, and why (the router's numbers)")
    explain.add_argument("--tags", help="the job's tags (comma-separated)")
    explain.add_argument("--urgency", choices=URGENCIES, default="normal")
    explain.add_argument("--capability", help="required capability")
    explain.add_argument("--provider", help="required provider")
    explain.add_argument("--job", type=int, help="explain an existing job instead")
    _common(explain, cmd_explain)


def _common(parser: argparse.ArgumentParser,
            handler: Callable[[argparse.Namespace], Awaitable[int]]) -> None:
    parser.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(parser)
    parser.set_defaults(handler=handler)


def _input(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise field_error("input", f"not JSON: {exc}") from exc


def _print_job(job: Job, as_json: bool) -> None:
    print_json(job.wire()) if as_json else out(render_job(job))


async def cmd_submit(args: argparse.Namespace) -> int:
    spec = JobSpec.model_validate({
        "prompt": args.prompt, "tags": args.tags, "urgency": args.urgency,
        "effort": args.effort, "capability": args.capability, "provider": args.provider,
        "model": args.model, "input": _input(args.input), "timeout_s": args.timeout})
    async with open_engine(args) as engine:
        job = await engine.queue.jobs.submit(spec, actor=LOCAL)
        if args.wait > 0:
            job = await engine.queue.jobs.wait_for(job.id, args.wait)
    _print_job(job, args.json)
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        page = await engine.queue.jobs.list(status=args.status, tags=args.tags,
                                            assigned_to=args.worker, limit=args.limit,
                                            offset=args.offset)
    print_json(page.wire()) if args.json else out(render_jobs(page))
    return 0


async def cmd_one(args: argparse.Namespace) -> int:
    """``show``, ``cancel``, ``retry``, ``approve``, ``reject``: act on one job, show it."""
    async with open_engine(args) as engine:
        job = await VERBS[args.verb][1](engine, args)
    _print_job(job, args.json)
    return 0


async def cmd_explain(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        queue = engine.queue
        exp = (await queue.explain_job(args.job) if args.job is not None
               else await queue.explain(args.tags, args.urgency, args.capability,
                                        args.provider))
    print_json(exp.wire()) if args.json else out(render_explanation(exp))
    return 0
