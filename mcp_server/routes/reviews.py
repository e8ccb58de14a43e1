"""``GET /api/reviews`` (admin): what workers queued for a human (``POST /review``)."""

from __future__ import annotations

from pydantic import Field

from core.models import Page
from core.reviews import Review
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.paging import Paging

__all__ = ["ENDPOINTS", "ReviewQuery", "contribute"]


class ReviewQuery(Paging):
    status: str | None = Field(default=None, description="open, done or dismissed.")


async def list_reviews(call: ApiCall) -> Page[Review]:
    """List review items, newest first"""
    q = call.query_as(ReviewQuery)
    return await call.engine.reviews.list(status=q.status, limit=q.limit, offset=q.offset)


ENDPOINTS = [
    Endpoint("GET", "/api/reviews", list_reviews, "admin", Page[Review], query=ReviewQuery,
             tag="workers"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
