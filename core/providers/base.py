"""The one interface every provider type implements.

A provider turns a :class:`ProviderCall` into text, either whole (:meth:`Provider.complete`)
or as a stream of :class:`TextDelta` followed by exactly one :class:`StreamEnd`
(:meth:`Provider.stream`). Failures are raised as :mod:`core.errors` exceptions, already
classified (RATE_LIMITED, PROVIDER_ERROR, PROVIDER_TIMEOUT); nothing else leaks out.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from core.http_client import HttpClient
from core.models import Message, Usage

__all__ = [
    "Completion",
    "JobRequest",
    "JobRunner",
    "Provider",
    "ProviderCall",
    "ProviderConfig",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
]


class ProviderConfig(BaseModel):
    """Keys every provider accepts. Types subclass this with their own keys.

    Unknown keys are rejected (``extra="forbid"``) so a typo is an error, not a silent no-op.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    type: str
    default: bool = False
    fallback: bool = False
    timeout: int = Field(default=120_000, gt=0, description="Milliseconds.")
    model: str | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    system_prompt: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @property
    def timeout_s(self) -> float:
        return self.timeout / 1000

    def secret_fields(self) -> tuple[str, ...]:
        """Python names of fields whose values must never be shown."""
        return ()


@dataclass(frozen=True)
class ProviderCall:
    """One request to a provider, with per-call overrides already merged over config."""

    messages: list[Message]
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Completion:
    text: str
    model: str | None
    usage: Usage
    truncated: bool = False


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class StreamEnd:
    """The last event of every stream: what the upstream reported at the end."""

    model: str | None
    usage: Usage
    truncated: bool = False


StreamEvent = TextDelta | StreamEnd


@dataclass(frozen=True)
class JobRequest:
    """A provider call to be served as a job by the worker fleet (the ``fleet`` type).

    Providers never touch the queue: the engine hands a :data:`JobRunner` to every provider
    (:meth:`Provider.use_job_runner`) and the ones that serve through the fleet call it."""

    provider: str
    prompt: str
    timeout_s: float
    """How long the caller waits for the result; also the job's lease."""
    input: Mapping[str, Any] | None = None
    """The rest of the call (system prompt, earlier messages, options), if any."""
    tags: tuple[str, ...] = ()
    capability: str | None = None
    model: str | None = None
    urgency: str = "normal"
    effort: str = "standard"


JobRunner = Callable[[JobRequest], Awaitable[Completion]]
"""Submits a :class:`JobRequest` to the queue and returns the worker's result."""


class Provider(ABC):
    """Base class of provider types; register subclasses in :mod:`core.providers`."""

    config_model: ClassVar[type[ProviderConfig]] = ProviderConfig

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient) -> None:
        self.name = name
        self.config = config
        self.http = http

    @abstractmethod
    async def complete(self, call: ProviderCall) -> Completion:
        """Answer the call in one piece."""

    async def stream(self, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
        """Answer as deltas then one :class:`StreamEnd`. Default: one delta of the whole text."""
        done = await self.complete(call)
        if done.text:
            yield TextDelta(done.text)
        yield StreamEnd(model=done.model, usage=done.usage, truncated=done.truncated)

    @abstractmethod
    async def ping(self) -> None:
        """A cheap live check; raises a classified error when the provider is unusable."""

    def use_job_runner(self, runner: JobRunner) -> None:  # noqa: B027 - optional hook
        """Called by the engine with its job runner; types that serve calls through the
        worker fleet keep it, the others ignore it."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release anything the provider holds beyond the shared HTTP client."""
