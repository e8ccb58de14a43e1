"""MCP tools, one module per family, each a :class:`~mcp_server.tools.base.ToolGroup`.

``TOOL_MODULES`` is the registry: every module listed exposes ``TOOLS``. Servers pick the
families they expose (the main server all of them; the channel server a subset).
"""

from __future__ import annotations

import importlib

from mcp_server.tools.base import TOOL_SCOPES, ToolGroup

__all__ = ["TOOL_MODULES", "TOOL_SCOPES", "tool_groups"]

TOOL_MODULES = [
    "mcp_server.tools.dispatch",
    "mcp_server.tools.tasks",
    "mcp_server.tools.queue",
    "mcp_server.tools.recruit",
]


def tool_groups(modules: list[str] | None = None) -> list[ToolGroup]:
    """The tool groups of ``modules`` (default: every registered family)."""
    groups = []
    for name in TOOL_MODULES if modules is None else modules:
        group = importlib.import_module(name).TOOLS
        if not isinstance(group, ToolGroup):
            raise TypeError(f"{name}.TOOLS is not a ToolGroup")
        groups.append(group)
    return groups
