"""``modelreins config init | show | validate | set | unset``.

``set url`` / ``set token`` save the remote server the CLI and ``modelreins mcp`` talk to
(:mod:`core.connection`); the token goes to a file only its owner can read.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import yaml

from core.bootstrap import detect, ensure_home, render_config
from core.config import config_path, load_settings, masked
from core.connection import (
    TOKEN_FILE,
    Connection,
    connection_settings,
    forget,
    mask_token,
    save_token,
    save_url,
)
from mcp_server.cli.common import add_home_arg, home_from, out, print_json

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    config = subparsers.add_parser("config", help="create, show and check the configuration")
    verbs = config.add_subparsers(dest="verb", metavar="VERB", required=True)

    init = verbs.add_parser("init", help="create $MODELREINS_HOME with a generated config")
    init.add_argument("--force", action="store_true", help="replace an existing config")
    add_home_arg(init)
    init.set_defaults(handler=cmd_init)

    show = verbs.add_parser("show", help="print the effective config with secrets masked")
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")
    add_home_arg(show)
    show.set_defaults(handler=cmd_show)

    validate = verbs.add_parser("validate", help="check the config and report every problem")
    add_home_arg(validate)
    validate.set_defaults(handler=cmd_validate)

    setter = verbs.add_parser("set", help="save the remote server (url) or its token")
    setter.add_argument("key", choices=["url", "token"])
    setter.add_argument("value", help="the server's base URL, or the token ('-' reads stdin)")
    add_home_arg(setter)
    setter.set_defaults(handler=cmd_set)

    unset = verbs.add_parser("unset", help="forget the saved remote server (url) or token")
    unset.add_argument("key", choices=["url", "token"])
    add_home_arg(unset)
    unset.set_defaults(handler=cmd_unset)


async def cmd_init(args: argparse.Namespace) -> int:
    home = home_from(args)
    path = config_path(home)
    if args.force and path.exists():
        path.unlink()
    found = detect()
    created = ensure_home(home, generate=lambda: render_config(found))
    if not created:
        out(f"config already exists at {path} (use --force to regenerate)")
        return 0
    out(f"created {path}")
    for item in found:
        out(f"  + {item.name:<20} {item.why}")
    out(f"  + {'echo':<20} built in (answers with its input; for smoke tests)")
    if not found:
        out("no model provider detected; echo is the default until you add one")
    return 0


def _remote(remote: Connection | None) -> dict[str, Any] | None:
    if remote is None:
        return None
    source = "MODELREINS_URL" if remote.source == "environment" else "config set url"
    return {"url": remote.url, "token": mask_token(remote.token), "source": source}


async def cmd_show(args: argparse.Namespace) -> int:
    home = home_from(args)
    remote = connection_settings(home)
    # A home that only points at a server needs no config of its own.
    local = masked(load_settings(home)) if remote is None or config_path(home).exists() else {}
    if args.json:
        print_json({"remote": _remote(remote), **local})
        return 0
    if remote is None:
        out("# remote: none; commands use this home's engine")
    else:
        out("# remote mode: commands and `modelreins mcp` talk to this server")
        out(yaml.safe_dump({"remote": _remote(remote)}, sort_keys=False,
                           allow_unicode=True).rstrip())
    if local:
        out(yaml.safe_dump(local, sort_keys=False, allow_unicode=True).rstrip())
    return 0


async def cmd_set(args: argparse.Namespace) -> int:
    home = home_from(args)
    if args.key == "url":
        url = save_url(home, args.value)
        out(f"remote server: {url} (commands and `modelreins mcp` now talk to it)")
        return 0
    value = sys.stdin.readline() if args.value == "-" else args.value
    save_token(home, value)
    out(f"token {mask_token(value.strip())} saved to {home / TOKEN_FILE} (readable only by you)")
    return 0


async def cmd_unset(args: argparse.Namespace) -> int:
    home = home_from(args)
    if not forget(home, args.key):
        out(f"no {args.key} was saved")
    elif args.key == "url":
        out("remote server forgotten; commands use this home's engine again")
    else:
        out("saved token removed")
    return 0


async def cmd_validate(args: argparse.Namespace) -> int:
    home = home_from(args)
    settings = load_settings(home)
    default = settings.default_provider or "none"
    out(f"✓ {config_path(home)} is valid: {len(settings.providers)} providers "
        f"(default: {default})")
    return 0
