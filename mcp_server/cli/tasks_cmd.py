"""``modelreins tasks …`` (scheduled tasks and their results) and ``modelreins scheduler``.

Wherever a task id is taken, its name works too: the task service resolves either. A run
started on the local home executes in this process, so ``tasks run`` stays until the run
(and its webhook) is done, even when it prints only the run id; against a remote server
the run executes there and ``tasks run`` returns once it has printed. ``scheduler`` always
runs on the local home (a server runs its own).
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, TypeAlias

import anyio

from core.api import EngineAPI
from core.clock import iso
from core.engine import Engine
from core.tasks.models import Run, Task, TaskContext, TaskPatch, TaskSpec
from mcp_server.cli.common import (
    EXIT_ERROR,
    add_home_arg,
    home_from,
    open_engine,
    out,
    print_json,
)

__all__ = ["register"]

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
REF = "task id or name"
NOTHING = "-"


def register(subparsers: SubParsers) -> None:
    tasks = subparsers.add_parser("tasks", help="scheduled prompts and their results")
    verbs = tasks.add_subparsers(dest="verb", metavar="VERB", required=True)
    _register_create(verbs)
    _register_update(verbs)
    for name, help_text, handler in (
        ("list", "all tasks with their next and last run", cmd_list),
        ("show", "one task", cmd_show),
        ("delete", "delete a task and all its runs", cmd_delete),
        ("enable", "enable a task (its next run is computed from now)", cmd_enable),
        ("disable", "disable a task (it runs only when asked to)", cmd_disable),
    ):
        verb = verbs.add_parser(name, help=help_text)
        if name != "list":
            verb.add_argument("task", help=REF)
        _common(verb, handler)
    _register_run(verbs)
    _register_results(verbs)

    scheduler = subparsers.add_parser(
        "scheduler", help="run the task scheduler in the foreground (Ctrl-C stops)")
    add_home_arg(scheduler)
    scheduler.set_defaults(handler=cmd_scheduler)


def _common(parser: argparse.ArgumentParser, handler: Any) -> None:
    parser.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(parser)
    parser.set_defaults(handler=handler)


def _field_flags(parser: argparse.ArgumentParser, *, clearing: bool) -> None:
    clear = " ('' clears it)" if clearing else ""
    parser.add_argument("--provider", "-p", help=f"provider (default provider if unset){clear}")
    parser.add_argument("--model", "-m", help=f"model override{clear}")
    parser.add_argument("--webhook", metavar="URL", help=f"POST each result here{clear}")
    parser.add_argument("--webhook-format", choices=["json", "slack"], help="webhook body")
    parser.add_argument("--timezone", metavar="TZ", help="IANA timezone of the schedule (UTC)")
    parser.add_argument("--read-file", metavar="PATH",
                        help=f"append this file's tail to the prompt at each run{clear}")


def _register_create(verbs: SubParsers) -> None:
    create = verbs.add_parser("create", help="create a task")
    create.add_argument("name", help="unique name")
    create.add_argument("--schedule", "-s", required=True,
                        help='cron, e.g. "0 9 * * 1-5", or @hourly/@daily/@weekly/@monthly')
    create.add_argument("--prompt", required=True, help="the prompt; '-' reads stdin")
    _field_flags(create, clearing=False)
    create.add_argument("--disabled", action="store_true", help="create it disabled")
    _common(create, cmd_create)


def _register_update(verbs: SubParsers) -> None:
    update = verbs.add_parser("update", help="change a task (from its next run on)")
    update.add_argument("task", help=REF)
    update.add_argument("--name", help="rename")
    update.add_argument("--schedule", "-s", help="new schedule")
    update.add_argument("--prompt", help="new prompt; '-' reads stdin")
    _field_flags(update, clearing=True)
    state = update.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_const", const=True)
    state.add_argument("--disabled", dest="enabled", action="store_const", const=False)
    _common(update, cmd_update)


def _register_run(verbs: SubParsers) -> None:
    run = verbs.add_parser("run", help="run a task now, whatever its schedule")
    run.add_argument("task", help=REF)
    run.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                     help="print the result if it is done within this long (default: 0)")
    _common(run, cmd_run)


def _register_results(verbs: SubParsers) -> None:
    results = verbs.add_parser("results", help="a task's runs, newest first")
    results.add_argument("task", help=REF)
    results.add_argument("--limit", type=int, default=20)
    results.add_argument("--offset", type=int, default=0)
    which = results.add_mutually_exclusive_group()
    which.add_argument("--latest", action="store_true", help="only the newest run, in full")
    which.add_argument("--run", metavar="RUN_ID", help="one run, in full")
    _common(results, cmd_results)


def _prompt(value: str | None) -> str | None:
    return sys.stdin.read() if value == "-" else value


def _spec(args: argparse.Namespace) -> TaskSpec:
    fields: dict[str, Any] = {
        "provider": args.provider, "model": args.model, "webhook": args.webhook,
        "webhook_format": args.webhook_format, "timezone": args.timezone,
        "context": TaskContext(read_file=args.read_file) if args.read_file else None,
    }
    return TaskSpec(name=args.name, schedule=args.schedule, prompt=_prompt(args.prompt) or "",
                    enabled=not args.disabled, **{k: v for k, v in fields.items() if v})


def _patch(args: argparse.Namespace) -> TaskPatch:
    given: dict[str, Any] = {
        "name": args.name, "schedule": args.schedule, "prompt": _prompt(args.prompt),
        "provider": args.provider, "model": args.model, "webhook": args.webhook,
        "webhook_format": args.webhook_format, "timezone": args.timezone,
        "enabled": args.enabled,
    }
    if args.read_file is not None:
        given["context"] = TaskContext(read_file=args.read_file) if args.read_file else ""
    # An empty string given for an optional field clears it (null on the wire).
    return TaskPatch.model_validate(
        {k: (v if v != "" else None) for k, v in given.items() if v is not None})


def _when(moment: Any) -> str:
    return iso(moment) if moment is not None else NOTHING


def _print_task(task: Task) -> None:
    rows = [
        ("id", task.id), ("name", task.name),
        ("schedule", f"{task.schedule} ({task.timezone})"),
        ("enabled", "yes" if task.enabled else "no"),
        ("provider", task.provider or "(default)"), ("model", task.model or "(provider's)"),
        ("webhook", f"{task.webhook} ({task.webhook_format})" if task.webhook else NOTHING),
        ("read file", task.context.read_file if task.context else NOTHING),
        ("next run", _when(task.next_run_at)), ("last run", _when(task.last_run_at)),
        ("last status", task.last_status or NOTHING),
        ("created", iso(task.created_at)), ("updated", iso(task.updated_at)),
    ]
    for label, value in rows:
        out(f"{label + ':':<13} {value}")
    out("prompt:")
    out("  " + task.prompt.replace("\n", "\n  "))


def _table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


async def _show_task(args: argparse.Namespace, task: Task) -> int:
    if args.json:
        print_json(task.wire())
    else:
        _print_task(task)
    return 0


async def cmd_create(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        task = await engine.tasks.create(_spec(args))
    if args.json:
        print_json(task.wire())
        return 0
    out(f"Created task {task.id} '{task.name}'; next run: {_when(task.next_run_at)}")
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        tasks = await engine.tasks.list()
    if args.json:
        print_json([t.wire() for t in tasks])
        return 0
    if not tasks:
        out("no tasks (create one with `modelreins tasks create NAME --schedule … --prompt …`)")
        return 0
    header = ["NAME", "SCHEDULE", "ENABLED", "NEXT RUN", "LAST RUN", "LAST STATUS", "ID"]
    rows = [[t.name, t.schedule + ("" if t.timezone == "UTC" else f" ({t.timezone})"),
             "yes" if t.enabled else "no", _when(t.next_run_at), _when(t.last_run_at),
             t.last_status or NOTHING, t.id] for t in tasks]
    _table(header, rows)
    return 0


async def cmd_show(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        task = await engine.tasks.get(args.task)
    return await _show_task(args, task)


async def cmd_update(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        task = await engine.tasks.update(args.task, _patch(args))
    return await _show_task(args, task)


async def cmd_delete(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        task = await engine.tasks.get(args.task)
        await engine.tasks.delete(task.id)
    if args.json:
        print_json({"deleted": task.id})
    else:
        out(f"deleted task {task.id} '{task.name}' and its runs")
    return 0


async def _set_enabled(args: argparse.Namespace, enabled: bool) -> int:
    async with open_engine(args) as engine:
        task = await engine.tasks.set_enabled(args.task, enabled)
    if args.json:
        print_json(task.wire())
    else:
        state = f"enabled; next run: {_when(task.next_run_at)}" if enabled else "disabled"
        out(f"task '{task.name}' {state}")
    return 0


async def cmd_enable(args: argparse.Namespace) -> int:
    return await _set_enabled(args, True)


async def cmd_disable(args: argparse.Namespace) -> int:
    return await _set_enabled(args, False)


def _print_run(run: Run) -> None:
    """The run's text on stdout; what it was, on stderr (as ``dispatch`` does)."""
    if run.status == "success":
        out(run.text, end="" if run.text.endswith("\n") else "\n")
    elif run.error is not None:
        out(f"{run.status}: {run.error.code}: {run.error.message}", stream=sys.stderr)
    hook = f" · webhook {run.webhook.status}" if run.webhook else ""
    out(f"[{run.run_id} · {run.trigger} · {run.status} · {run.provider or NOTHING} · "
        f"{run.latency_ms} ms{hook}]", stream=sys.stderr)


async def _wait_quietly(engine: EngineAPI, run: Run) -> Run:
    if not engine.in_process:
        return run
    if not run.finished or (run.webhook and run.webhook.status == "pending"):
        out(f"{run.run_id} runs in this process; waiting for it to finish (Ctrl-C abandons "
            "it)", stream=sys.stderr)
    return await engine.tasks.wait_settled(run.run_id, float("inf"))


async def cmd_run(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        started = await engine.tasks.run(args.task)
        run = await engine.tasks.wait_run(started.run_id, max(0.0, args.wait))
        shown = run.finished and args.wait > 0
        if args.json:
            print_json(run.wire() if shown else {"runId": run.run_id})
        elif shown:
            _print_run(run)
        else:
            out(run.run_id)
        if run.status == "skipped" and run.error is not None and not shown:
            out(run.error.message, stream=sys.stderr)
        run = await _wait_quietly(engine, run)
    return 0 if not shown or run.status == "success" else EXIT_ERROR


def _run_row(run: Run) -> list[str]:
    text = " ".join((run.text or (run.error.message if run.error else "")).split())
    return [run.run_id, iso(run.started_at), run.trigger, run.status, f"{run.latency_ms} ms",
            run.webhook.status if run.webhook else NOTHING, text[:50]]


async def cmd_results(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        if args.latest or args.run:
            run = await (engine.tasks.latest(args.task) if args.latest
                         else engine.tasks.get_run(args.task, args.run))
            if args.json:
                print_json(run.wire())
            else:
                _print_run(run)
            return 0
        page = await engine.tasks.results(args.task, limit=args.limit, offset=args.offset)
    if args.json:
        print_json(page.wire())
        return 0
    out(f"{page.total} runs (showing {len(page.items)} from {page.offset})")
    if page.items:
        header = ["RUN", "STARTED", "TRIGGER", "STATUS", "LATENCY", "WEBHOOK", "TEXT"]
        _table(header, [_run_row(r) for r in page.items])
    return 0


async def cmd_scheduler(args: argparse.Namespace) -> int:
    async def on_fire(task: Task, run: Run) -> None:
        out(f"{iso(run.started_at)}  {run.trigger:<8}  {run.status:<7}  {run.run_id}  "
            f"{task.name}")

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with Engine.open(home_from(args)) as engine:
            tasks = await engine.tasks.list()
            scheduler = engine.start_scheduler(on_fire=on_fire)
            enabled = sum(t.enabled for t in tasks)
            out(f"scheduler {scheduler.holder} started: {len(tasks)} tasks, {enabled} enabled; "
                "Ctrl-C stops", stream=sys.stderr)
            async for _ in signals:
                break
    out("scheduler stopped", stream=sys.stderr)
    return 0
