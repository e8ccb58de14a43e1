"""``modelreins workers register | list | show | pause | resume | revoke``: the fleet.

``register`` mints the worker's token. By default it prints a one-time link that shows the
token once (``/view/…`` on the server; a local home's link is served by ``modelreins
serve`` at the configured address). The owner of a local home may see the token anyway, so
``--show-token`` prints it directly instead. Against a remote server the link comes from
the server; ``--show-token`` takes the view at once and prints the token.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

from core.api import EngineAPI
from core.clock import iso
from core.engine import Engine
from core.fleet import RegisteredWorker, WorkerList
from core.principal import LOCAL
from core.queue import Worker
from core.queue.models import TIER_ORDER
from mcp_server.cli.common import add_home_arg, open_engine, out, print_json
from mcp_server.cli.serve_cmd import base_url
from mcp_server.queue_text import render_workers

__all__ = ["parse_capability", "register"]

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def parse_capability(text: str) -> list[dict[str, Any]]:
    """``code``, ``code:audit`` or ``code:auto,deploy:approve`` → capability dicts."""
    caps = []
    for part in text.split(","):
        name, _, tier = part.strip().partition(":")
        if not name:
            continue
        if tier and tier not in TIER_ORDER:
            raise argparse.ArgumentTypeError(
                f"unknown risk tier '{tier}' (one of {', '.join(TIER_ORDER)})")
        caps.append({"name": name, "risk_tier": tier or "auto"})
    return caps


def register(subparsers: SubParsers) -> None:
    workers = subparsers.add_parser("workers", help="register and manage fleet workers")
    verbs = workers.add_subparsers(dest="verb", metavar="VERB", required=True)

    reg = verbs.add_parser("register", help="register a worker and mint its token")
    reg.add_argument("name", help="the worker's name (a-z 0-9 . _ -); it heartbeats as this")
    reg.add_argument("--capability", action="append", type=parse_capability, default=[],
                     metavar="NAME[:TIER]",
                     help="a capability with its risk tier (auto, audit, approve, session; "
                          "default auto); repeat or comma-separate")
    reg.add_argument("--tags", help="comma-separated tags (code,review)")
    reg.add_argument("--description", default="", help="what the worker is")
    reg.add_argument("--show-token", action="store_true",
                     help="print the token itself instead of a one-time link to it")
    reg.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(reg)
    reg.set_defaults(handler=cmd_register)

    listing = verbs.add_parser("list", help="every worker with status, load and record")
    listing.add_argument("--all", action="store_true", help="include revoked workers")
    listing.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(listing)
    listing.set_defaults(handler=cmd_list)

    for name, (help_text, _) in VERBS.items():
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument("worker", help="worker name or id (wkr_…)")
        verb.add_argument("--json", action="store_true", help="JSON output")
        add_home_arg(verb)
        verb.set_defaults(handler=cmd_one)


def _view_base(engine: EngineAPI) -> str:
    if isinstance(engine, Engine):
        server = engine.settings.server
        return base_url(server, server.port)
    return ""  # a remote server links to itself


def _print_registered(done: RegisteredWorker, ttl_s: int | None) -> None:
    w = done.worker
    out(f"Registered worker {w.name} ({w.id})")
    out(f"  capabilities: {', '.join(f'{c.name}:{c.risk_tier}' for c in w.capabilities) or '-'}")
    out(f"  tags:         {', '.join(w.tags) or '-'}")
    out(f"  token:        {done.token_info.id} ({done.token_info.prefix}…)")
    out()
    if done.token is not None:
        out(done.token)
        out()
        out("This is the only time the token is shown; only its hash is stored. The worker "
            "authenticates with it: Authorization: Bearer <token>.")
        return
    valid = f" within {ttl_s // 60} minutes" if ttl_s else ""
    out("One-time link to the worker's token (it shows the token once; open it"
        f"{valid}):")
    out(f"  {done.view_url}")


async def cmd_register(args: argparse.Namespace) -> int:
    caps = [c for group in args.capability for c in group]
    async with open_engine(args) as engine:
        view = None if args.show_token else _view_base(engine)
        done = await engine.fleet.register(args.name, args.description, caps, args.tags,
                                           actor=LOCAL, view_base_url=view)
        ttl = engine.settings.server.view_ttl_s if isinstance(engine, Engine) else None
    if args.json:
        print_json({"worker": done.worker.wire(), "token": done.token_info.wire(),
                    "viewUrl": done.view_url, **({"rawToken": done.token}
                                                 if done.token else {})})
        return 0
    _print_registered(done, ttl)
    return 0


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        workers = await engine.queue.workers.list(include_revoked=args.all)
    if args.json:
        print_json([w.wire() for w in workers])
    else:
        out(render_workers(WorkerList(workers=workers)))
    return 0


OneWorker = Callable[[EngineAPI, str], Awaitable[Worker]]

VERBS: dict[str, tuple[str, OneWorker]] = {
    "show": ("one worker: presence, load, capabilities, 30-day record",
             lambda e, w: e.queue.workers.get(w)),
    "pause": ("stop routing to it (its unclaimed jobs go back to the queue)",
              lambda e, w: e.queue.workers.pause(w, actor=LOCAL)),
    "resume": ("route to it again", lambda e, w: e.queue.workers.resume(w, actor=LOCAL)),
    "revoke": ("retire it for good; its tokens stop working at once",
               lambda e, w: e.fleet.revoke(w, actor=LOCAL)),
}


async def cmd_one(args: argparse.Namespace) -> int:
    """``show``, ``pause``, ``resume``, ``revoke``: act on one worker, then show it."""
    async with open_engine(args) as engine:
        worker = await VERBS[args.verb][1](engine, args.worker)
    if args.json:
        print_json(worker.wire())
        return 0
    out(render_workers(WorkerList(workers=[worker])))
    p = worker.presence
    out(f"  presence: {p.status or 'never seen'}"
        + (f", last seen {iso(p.last_seen)}" if p.last_seen else "")
        + (f", provider {p.provider}" if p.provider else ""))
    return 0
