"""Clients of a live ``serve``: the official SDK over Streamable HTTP and over SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx2
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

__all__ = ["over_sse", "over_streamable"]


@asynccontextmanager
async def over_streamable(base: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, trust_env=False) as http, \
            Client(streamable_http_client(f"{base}/mcp", http_client=http)) as client:
        yield client


@asynccontextmanager
async def over_sse(base: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with Client(sse_client(f"{base}/mcp/sse", headers=headers), mode="legacy") as client:
        yield client
