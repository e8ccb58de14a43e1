"""Query models shared by listings: ``limit`` and ``offset``, validated like any input."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_OFFSET", "Paging", "QueryModel", "window"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000
"""Past any real listing, and inside what a SQLite integer holds."""

T = TypeVar("T")


class QueryModel(BaseModel):
    """Base of query-string models: camelCase names, unknown parameters refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid",
                              frozen=True)


class Paging(QueryModel):
    """``limit`` (1–500, default 20) and ``offset`` (0–10⁹) of a paginated listing."""

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT,
                       description="How many items, at most.")
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET, description="How many items to skip.")


def window(items: Sequence[T], paging: Paging) -> tuple[list[T], int]:
    """The slice of an in-memory listing that ``paging`` asks for, and the total."""
    return list(items[paging.offset: paging.offset + paging.limit]), len(items)
