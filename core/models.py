"""Wire models shared by the engine and every edge.

Field names are snake_case in Python and camelCase on the wire (``latency_ms`` ↔
``latencyMs``), except where the wire contract itself is snake_case (token usage).
Instants serialize as ISO 8601 UTC with ``Z``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from core.clock import iso

__all__ = [
    "Attempt",
    "DispatchRecord",
    "DispatchRequest",
    "ErrorInfo",
    "Message",
    "Page",
    "ProviderStatus",
    "Usage",
    "UtcDatetime",
    "WireModel",
]

UtcDatetime = Annotated[datetime, PlainSerializer(iso, return_type=str, when_used="json")]
"""A timezone-aware instant, ``2026-11-21T17:07:26.123Z`` on the wire."""


class WireModel(BaseModel):
    """Base for models that cross a boundary: camelCase aliases, both spellings accepted."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def wire(self) -> dict[str, Any]:
        """The JSON-ready dict as it goes on the wire."""
        return self.model_dump(mode="json", by_alias=True)


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"] = Field(description="Who said it.")
    content: str = Field(description="The message text.")


class ErrorInfo(WireModel):
    """An error as recorded on a dispatch, run or job (the inner object of §5's body)."""

    code: str
    message: str
    provider: str | None = None
    retry_after: float | None = None


class Attempt(WireModel):
    """One provider tried while serving a dispatch."""

    provider: str
    code: str | None = Field(default=None, description="Error code when this attempt failed.")
    latency_ms: int


class DispatchRequest(WireModel):
    """What a caller asks the dispatcher to do."""

    prompt: str | None = Field(default=None, description="The user prompt.")
    messages: list[Message] | None = Field(
        default=None, description="A multi-turn conversation; the prompt, if given, is appended."
    )
    provider: str | None = Field(default=None, description="Provider name; default if omitted.")
    model: str | None = Field(default=None, description="Model override for this call.")
    system: str | None = Field(default=None, description="System prompt override.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Provider-specific options (temperature, num_ctx…)."
    )
    stream: bool = Field(default=False, description="Stream text deltas (REST: as SSE).")


class DispatchRecord(WireModel):
    """A dispatch as stored in history and returned to callers."""

    id: str
    status: Literal["running", "success", "error"]
    prompt: str
    text: str = ""
    provider: str | None = None
    model: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_ms: int = 0
    created_at: UtcDatetime
    attempts: list[Attempt] = Field(default_factory=list)
    error: ErrorInfo | None = None
    truncated: bool = Field(default=False, description="Output hit a size cap and was cut.")


ProviderHealth = Literal["healthy", "degraded", "down", "unknown"]


class ProviderStatus(WireModel):
    name: str
    type: str
    default: bool
    fallback: bool
    model: str | None
    status: ProviderHealth
    last_check: UtcDatetime | None = None
    last_error: str | None = None


T = TypeVar("T")


class Page(WireModel, Generic[T]):
    """One page of a listing, newest first."""

    items: list[T]
    total: int
    limit: int
    offset: int
