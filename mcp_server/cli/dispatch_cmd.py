"""``modelreins dispatch | providers | history``."""

from __future__ import annotations

import argparse
import sys

from core.clock import iso
from core.dispatch import Fallback
from core.models import DispatchRecord, DispatchRequest, ProviderStatus
from core.providers import TextDelta
from mcp_server.cli.common import add_home_arg, open_engine, out, print_json

__all__ = ["register"]

RULE = "─" * 40


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dispatch = subparsers.add_parser("dispatch", help="send a prompt and stream the answer")
    dispatch.add_argument("prompt", help="the prompt; '-' reads it from stdin")
    dispatch.add_argument("--provider", "-p", help="provider name (default provider if omitted)")
    dispatch.add_argument("--model", "-m", help="model override")
    dispatch.add_argument("--system", "-s", help="system prompt override")
    dispatch.add_argument("--no-stream", action="store_true", help="print the answer at the end")
    dispatch.add_argument("--json", action="store_true", help="print the dispatch record as JSON")
    add_home_arg(dispatch)
    dispatch.set_defaults(handler=cmd_dispatch)

    providers = subparsers.add_parser("providers", help="list providers and their status")
    providers.add_argument("--ping", action="store_true", help="check each provider live")
    providers.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(providers)
    providers.set_defaults(handler=cmd_providers)

    history = subparsers.add_parser("history", help="recent dispatches, newest first")
    history.add_argument("--limit", type=int, default=20)
    history.add_argument("--offset", type=int, default=0)
    history.add_argument("--provider")
    history.add_argument("--status", choices=["success", "error"])
    history.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(history)
    history.set_defaults(handler=cmd_history)


def _request(args: argparse.Namespace) -> DispatchRequest:
    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    return DispatchRequest(prompt=prompt, provider=args.provider, model=args.model,
                           system=args.system)


async def cmd_dispatch(args: argparse.Namespace) -> int:
    req = _request(args)
    async with open_engine(args) as engine:
        if args.json:
            print_json((await engine.dispatch(req)).wire())
            return 0
        name, is_default = await engine.resolve_provider(req.provider)
        out(f"Dispatching to provider: {name}{' (default)' if is_default else ''}")
        out(RULE)
        if args.no_stream:
            _print_footer(await engine.dispatch(req), text=True)
            return 0
        async for event in engine.dispatch_stream(req):
            if isinstance(event, TextDelta):
                out(event.text, end="")
            elif isinstance(event, Fallback):
                out(f"[{event.from_provider} failed ({event.code}); "
                    f"falling back to {event.to_provider}]", stream=sys.stderr)
            else:
                _print_footer(event, text=False)
    return 0


def _print_footer(record: DispatchRecord, *, text: bool) -> None:
    if text:
        out(record.text, end="")
    if not record.text.endswith("\n"):
        out()
    if record.truncated:
        out("[output truncated at the provider's output cap]", stream=sys.stderr)
    usage = record.usage
    out(f"[{record.provider} · {record.model or '-'} · {usage.input_tokens}→"
        f"{usage.output_tokens} tokens · {record.latency_ms} ms · {record.id}]", stream=sys.stderr)


def _status_line(p: ProviderStatus) -> str:
    marks = ",".join(m for m, on in (("default", p.default), ("fallback", p.fallback)) if on)
    check = iso(p.last_check) if p.last_check else "-"
    line = f"{p.name:<20} {p.type:<14} {p.status:<9} {p.model or '-':<28} {marks:<16} {check}"
    return f"{line}\n{'':<20} last error: {p.last_error}" if p.last_error else line


async def cmd_providers(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        statuses = await (engine.ping_all() if args.ping else engine.list_providers())
    if args.json:
        print_json([s.wire() for s in statuses])
        return 0
    out(f"{'NAME':<20} {'TYPE':<14} {'STATUS':<9} {'MODEL':<28} {'ROLE':<16} LAST CHECK")
    for status in statuses:
        out(_status_line(status))
    return 0 if not args.ping or all(s.status != "down" for s in statuses) else 1


async def cmd_history(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        page = await engine.history(limit=args.limit, offset=args.offset,
                                    provider=args.provider, status=args.status)
    if args.json:
        print_json(page.wire())
        return 0
    out(f"{page.total} dispatches (showing {len(page.items)} from {page.offset})")
    for rec in page.items:
        code = rec.error.code if rec.error else ""
        prompt = " ".join(rec.prompt.split())[:50]
        out(f"{iso(rec.created_at)}  {rec.id}  {rec.status:<7} {rec.provider or '-':<16} "
            f"{rec.latency_ms:>6} ms  {code:<16} {prompt}")
    return 0
