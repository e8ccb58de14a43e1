"""``modelreins token create | list | revoke``: API tokens, managed by the owner of the home.

The CLI acts as the local owner, so ``create`` prints the raw token itself (once) instead
of a one-time view link. Mutations are audited with the actor ``local``. Against a remote
server (``MODELREINS_URL``) the commands need an admin token; the server audits them under
that token's name, and ``create`` fetches the raw value from its one-time view.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from core.api import EngineAPI
from core.auth import DEFAULT_SCOPES, TokenInfo
from core.clock import iso
from core.engine import Engine
from core.principal import LOCAL, SCOPES
from mcp_server.cli.common import add_home_arg, open_engine, out, print_json

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    token = subparsers.add_parser("token", help="create, list and revoke API tokens")
    verbs = token.add_subparsers(dest="verb", metavar="VERB", required=True)

    create = verbs.add_parser("create", help="mint a token; the raw value is shown once")
    create.add_argument("name", help="what the token is for; audit entries name it")
    create.add_argument(
        "--scope", action="append", metavar="SCOPE",
        help=f"grant a scope; repeat or comma-separate (default: {', '.join(DEFAULT_SCOPES)}; "
             f"valid: {', '.join(SCOPES)})")
    create.add_argument("--admin", action="store_true", help="grant the admin scope (everything)")
    create.add_argument("--provider", action="append", metavar="PROVIDER",
                        help="only allow this provider; repeatable (default: any provider)")
    create.add_argument("--json", action="store_true", help="print the token record as JSON")
    add_home_arg(create)
    create.set_defaults(handler=cmd_create)

    listing = verbs.add_parser("list", help="list tokens (never their values)")
    listing.add_argument("--all", action="store_true", help="include revoked tokens")
    listing.add_argument("--json", action="store_true", help="JSON output")
    add_home_arg(listing)
    listing.set_defaults(handler=cmd_list)

    revoke = verbs.add_parser("revoke", help="revoke a token at once")
    revoke.add_argument("id", help="the token id (tok_…)")
    add_home_arg(revoke)
    revoke.set_defaults(handler=cmd_revoke)


def _split(values: Sequence[str] | None) -> list[str]:
    return [part.strip() for value in values or () for part in value.split(",") if part.strip()]


def _scopes(args: argparse.Namespace) -> list[str]:
    scopes = _split(args.scope) or ([] if args.admin else list(DEFAULT_SCOPES))
    return [*scopes, "admin"] if args.admin else scopes


def _providers_text(info: TokenInfo) -> str:
    return ",".join(info.providers) if info.providers is not None else "any"


async def _audit(engine: EngineAPI, action: str, target: str, details: dict[str, Any]) -> None:
    """Audit a change made in this process; a server audits the calls it serves itself."""
    if isinstance(engine, Engine):
        await engine.audit.record(LOCAL.actor, action, target, details)


async def cmd_create(args: argparse.Namespace) -> int:
    providers = _split(args.provider) or None
    async with open_engine(args) as engine:
        info, raw = await engine.tokens.mint(args.name, _scopes(args), providers)
        await _audit(engine, "token.create", info.id, {
            "name": info.name, "kind": info.kind, "prefix": info.prefix,
            "scopes": info.scopes, "providers": info.providers,
        })
        configured = {p.name for p in await engine.list_providers()}
        unknown = sorted(set(info.providers or ()) - configured)
    for name in unknown:
        out(f"warning: provider '{name}' is not configured; the token may use it once it is",
            stream=sys.stderr)
    if args.json:
        print_json({**info.wire(), "token": raw})
        return 0
    out(f"Created token {info.id} '{info.name}'")
    out(f"  scopes:    {', '.join(info.scopes)}")
    out(f"  providers: {_providers_text(info)}")
    out()
    out(raw)
    out()
    out("This is the only time the token is shown; it will not be shown again. "
        "Copy it now: only its hash is stored.")
    return 0


def _row(info: TokenInfo) -> list[str]:
    return [
        info.id, info.prefix + "…", info.name, ",".join(info.scopes) or "-",
        _providers_text(info), iso(info.last_used_at) if info.last_used_at else "never",
        iso(info.revoked_at) if info.revoked_at else "-",
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


async def cmd_list(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        tokens = await engine.tokens.list(include_revoked=args.all)
    if args.json:
        print_json([t.wire() for t in tokens])
        return 0
    if not tokens:
        out("no tokens (create one with `modelreins token create NAME`)")
        return 0
    header = ["ID", "PREFIX", "NAME", "SCOPES", "PROVIDERS", "LAST USED", "REVOKED"]
    for line in _table(header, [_row(t) for t in tokens]):
        out(line)
    return 0


async def cmd_revoke(args: argparse.Namespace) -> int:
    async with open_engine(args) as engine:
        before = await engine.tokens.get(args.id)
        info = await engine.tokens.revoke(args.id)
        if before.revoked_at is None:
            await _audit(engine, "token.revoke", info.id,
                         {"name": info.name, "prefix": info.prefix})
    if before.revoked_at is not None and info.revoked_at is not None:
        out(f"token {info.id} '{info.name}' was already revoked at {iso(info.revoked_at)}")
    else:
        out(f"revoked token {info.id} '{info.name}'")
    return 0
