"""The calling session's workspace root, asked of the client itself.

A client that declared the ``roots`` capability (Claude Code does) is asked for its roots
with ``roots/list`` on the tool call's own channel, under a short deadline; the first local
``file://`` root is the workspace. Otherwise — no roots capability, a 2026-era connection
(which cannot carry server-to-client requests), an error or no answer in time — the server's
own working directory stands in.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from pydantic import ValidationError

from channel.workspace import root_from_uris

__all__ = ["ROOTS_TIMEOUT_S", "workspace_root"]

ROOTS_TIMEOUT_S = 5.0

log = logging.getLogger("modelreins.channel")


async def _client_roots(ctx: Context[Any, Any]) -> list[str]:
    request = ctx.request_context
    capabilities = request.session.client_capabilities
    if capabilities is None or capabilities.roots is None:
        return []
    try:
        result = await request.session.send_request(
            types.ListRootsRequest(), types.ListRootsResult,
            request_read_timeout_seconds=ROOTS_TIMEOUT_S,
            metadata=ServerMessageMetadata(related_request_id=request.request_id))
    except (MCPError, ValidationError) as exc:
        log.info("roots/list failed (%s); using the working directory", exc)
        return []
    return [str(root.uri) for root in result.roots]


async def workspace_root(ctx: Context[Any, Any]) -> Path:
    """The client's first local root, else this process's working directory."""
    return root_from_uris(await _client_roots(ctx)) or Path.cwd()
