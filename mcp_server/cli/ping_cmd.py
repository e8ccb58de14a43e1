"""``modelreins ping``: is the configured ModelReins server there, and does it take the token?

On success it prints what ``GET /api/health`` and ``GET /api/providers`` say; otherwise one
line with the reason (connection refused, timed out, token rejected, not a ModelReins
server) and exit status 1. Providers count as *active* unless they are ``down``: healthy,
degraded, and unknown (not used or checked since the server started) all take dispatches.

With no remote server configured there is nothing to ping: it says so and exits 1, so
``modelreins ping && …`` never passes by accident on a machine that would run locally.
"""

from __future__ import annotations

import argparse
import sys

from core.api import HealthInfo
from core.connection import connection_settings
from core.errors import Forbidden, ModelReinsError
from core.models import ProviderStatus
from core.remote import RemoteEngine
from mcp_server.cli.common import EXIT_ERROR, add_home_arg, home_from, out

__all__ = ["format_uptime", "register"]

DEFAULT_TIMEOUT_S = 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ping = subparsers.add_parser(
        "ping", help="check the remote ModelReins server (MODELREINS_URL or config set url)")
    ping.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="SECONDS",
                      help=f"give up after this long (default {DEFAULT_TIMEOUT_S:g})")
    add_home_arg(ping)
    ping.set_defaults(handler=cmd_ping)


def format_uptime(seconds: float) -> str:
    """``4d 12h 7m``; under a minute, ``42s``."""
    minutes, secs = divmod(int(max(0.0, seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if not (days or hours or minutes):
        return f"{secs}s"
    parts = [(days, "d"), (hours, "h"), (minutes, "m")]
    first = next(i for i, (n, _) in enumerate(parts) if n)
    return " ".join(f"{n}{unit}" for n, unit in parts[first:])


def _providers_line(health: HealthInfo, listed: list[ProviderStatus] | None) -> str:
    if listed is not None:
        down = sum(p.status == "down" for p in listed)
        active = len(listed) - down
    else:  # the token may not list providers; the public counts leave out "unknown"
        down = health.providers.get("down", 0)
        active = sum(n for status, n in health.providers.items() if status != "down")
    return f"{active} active" + (f", {down} down" if down else "")


async def cmd_ping(args: argparse.Namespace) -> int:
    home = home_from(args)
    remote = connection_settings(home)
    if remote is None:
        out("✗ no remote ModelReins configured (set MODELREINS_URL or run `modelreins config "
            f"set url URL`); commands use the local home {home}", stream=sys.stderr)
        return EXIT_ERROR
    async with RemoteEngine.open(remote.url, remote.token, timeout_s=args.timeout) as engine:
        try:
            health = await engine.health_info()
            try:
                listed: list[ProviderStatus] | None = await engine.list_providers()
            except Forbidden:
                listed = None
        except ModelReinsError as exc:
            out(f"✗ {exc.message}", stream=sys.stderr)
            return EXIT_ERROR
    out(f"✓ connected to ModelReins at {remote.url}")
    out(f"  version  : {health.version}")
    out(f"  providers: {_providers_line(health, listed)}")
    out(f"  uptime   : {format_uptime(health.uptime_s)}")
    return 0
