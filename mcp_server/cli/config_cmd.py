"""``modelreins config init | show | validate``."""

from __future__ import annotations

import argparse

import yaml

from core.bootstrap import detect, ensure_home, render_config
from core.config import config_path, load_settings, masked
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


async def cmd_show(args: argparse.Namespace) -> int:
    shown = masked(load_settings(home_from(args)))
    if args.json:
        print_json(shown)
    else:
        out(yaml.safe_dump(shown, sort_keys=False, allow_unicode=True).rstrip())
    return 0


async def cmd_validate(args: argparse.Namespace) -> int:
    home = home_from(args)
    settings = load_settings(home)
    default = settings.default_provider or "none"
    out(f"✓ {config_path(home)} is valid: {len(settings.providers)} providers "
        f"(default: {default})")
    return 0
