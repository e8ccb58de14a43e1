"""What every HTTP provider adapter shares: call resolution, body encoding and parsing, and a
small base class wiring requests to one timeout and one error mapping
(:mod:`core.providers.failures`)."""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import anyio
import httpx2
from pydantic import BaseModel, StringConstraints, ValidationError, field_validator

from core.errors import (
    ModelReinsError,
    ProviderError,
    field_error,
)
from core.http_client import (
    Headers,
    HttpClient,
    Response,
    StreamedResponse,
    Target,
    encode_headers,
)
from core.models import Message
from core.providers.base import (
    Completion,
    Provider,
    ProviderCall,
    ProviderConfig,
    StreamEnd,
    StreamEvent,
    TextDelta,
)
from core.providers.failures import (
    bad_payload,
    classify,
    host_of,
    inband_error,
    map_transport_errors,
)

__all__ = [
    "ApiKey",
    "HttpConfig",
    "HttpProvider",
    "Resolved",
    "collect",
    "encode",
    "parse_payload",
    "resolve",
    "sse_data",
]

M = TypeVar("M", bound=BaseModel)

DRAIN_S = 1.0
"""How long a finished stream may take to reach the end of its body before it is dropped."""

ApiKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
"""A credential, surrounding whitespace (a pasted newline) dropped. Declare fields of this type
with ``Field(repr=False)`` so a logged config never shows it."""


def encode(body: Mapping[str, Any]) -> bytes:
    """A request body as JSON bytes; VALIDATION_ERROR naming ``options`` if it cannot be.

    Only options come from users unchecked, so a value JSON cannot carry (a YAML date, NaN)
    is theirs: it is reported as their mistake, not as an upstream failure.
    """
    try:
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise field_error("options", f"not representable as JSON: {exc}") from exc
    return text.encode()


def parse_payload(model: type[M], data: bytes | str, provider_name: str) -> M:
    """Validate an upstream JSON document against the shape we rely on."""
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "(document)"
        raise bad_payload(provider_name, f"{where}: {first['msg']}") from exc


def sse_data(line: str) -> str | None:
    """The payload of an SSE ``data:`` line; None for other lines (event names, comments)
    and for empty data."""
    if not line.startswith("data:"):
        return None
    return line[5:].strip() or None


@dataclass(frozen=True)
class Resolved:
    """A call with the provider's config defaults filled in (the call's values win)."""

    model: str
    messages: list[Message]
    system: str | None
    max_tokens: int | None
    options: dict[str, Any]

    def chat_messages(self) -> list[dict[str, str]]:
        """OpenAI/Ollama shape: the system prompt first, as a message with role ``system``."""
        head = [{"role": "system", "content": self.system}] if self.system else []
        return head + [{"role": m.role, "content": m.content} for m in self.messages]


def resolve(provider_name: str, config: ProviderConfig, call: ProviderCall) -> Resolved:
    """Merge the caller's overrides over the provider's config; VALIDATION_ERROR without a model.

    The dispatcher passes only what the caller said; this is the one place where each
    provider's ``model``, ``systemPrompt``, ``maxTokens`` and ``options`` fill the gaps.
    """
    model = call.model or config.model
    if not model:
        raise field_error(
            "model", f"no model given and provider '{provider_name}' has no default model"
        )
    return Resolved(
        model=model,
        messages=list(call.messages),
        system=call.system if call.system is not None else config.system_prompt,
        max_tokens=call.max_tokens if call.max_tokens is not None else config.max_tokens,
        options={**config.options, **call.options},
    )


async def collect(events: AsyncIterator[StreamEvent]) -> Completion:
    """Assemble a stream into one :class:`Completion`, consuming it to its natural end."""
    parts: list[str] = []
    end: StreamEnd | None = None
    async for event in events:
        if isinstance(event, TextDelta):
            parts.append(event.text)
        else:
            end = event
    if end is None:
        raise ProviderError("stream ended without its final event")
    return Completion("".join(parts), end.model, end.usage, end.truncated)


async def _drain(lines: AsyncIterator[str]) -> None:
    # Reading past the final event to the end of the body lets the connection return to the
    # pool (no new TLS handshake per stream). A server that keeps it open or breaks it after
    # its final event costs only that connection: the answer is already complete.
    with anyio.move_on_after(DRAIN_S):
        try:
            async for _ in lines:
                pass
        except httpx2.HTTPError:
            pass


class HttpConfig(ProviderConfig):
    """Keys shared by providers reached over HTTP."""

    base_url: str

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not re.match(r"https?://[^/\s]+", value):
            raise ValueError("must be an http:// or https:// URL")
        return value


class HttpProvider(Provider):
    """Base of JSON-over-HTTP adapters: requests go through one timeout, one error mapping.

    Subclasses say how to authenticate (:meth:`auth_headers`) and how to shape bodies and
    read answers; they call :meth:`post_json`, :meth:`open_stream` and :meth:`get_ok`.
    """

    config: HttpConfig

    def __init__(self, name: str, config: ProviderConfig, http: HttpClient) -> None:
        if not isinstance(config, self.config_model) or not isinstance(config, HttpConfig):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}")
        super().__init__(name, config, http)
        self.secrets = tuple(
            value for field in config.secret_fields() if (value := getattr(config, field))
        )
        self.timeout = config.timeout_s
        self.host = host_of(config.base_url)
        # Encoded once: a header value that cannot be sent fails each call (classified).
        self.headers: Headers = [("content-type", "application/json"),
                                 *self.auth_headers().items()]
        with suppress(httpx2.LocalProtocolError):
            self.headers = encode_headers(self.headers)
        self._urls: dict[str, Target] = {}

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request (may be empty)."""

    def url(self, path: str) -> Target:
        # Parsed once per path.
        url = self._urls.get(path)
        if url is None:
            url = self._urls[path] = Target.parse(self.config.base_url + path)
        return url

    def resolve(self, call: ProviderCall) -> Resolved:
        return resolve(self.name, self.config, call)

    def errors(self) -> AbstractContextManager[None]:
        """The transport-error mapping bound to this provider."""
        return map_transport_errors(
            self.name, self.config.base_url, self.secrets, timeout_s=self.config.timeout_s,
            host=self.host,
        )

    def fail(self, response: Response | StreamedResponse) -> ModelReinsError:
        """The classified error for a non-2xx response whose body has been read."""
        return classify(
            self.name,
            response.status_code,
            response.headers,
            response.content,
            secrets=self.secrets,
        )

    def bad_payload(self, problem: str) -> ProviderError:
        return bad_payload(self.name, problem)

    def inband_error(self, error: Any) -> ProviderError:
        return inband_error(self.name, error, self.secrets)

    def parse(self, model: type[M], data: bytes | str) -> M:
        return parse_payload(model, data, self.name)

    async def post_json(self, path: str, body: Mapping[str, Any], model: type[M]) -> M:
        """POST ``body`` and validate the 2xx answer against ``model``."""
        with self.errors():
            response = await self.http.request(
                "POST", self.url(path), self.headers, encode(body), timeout=self.timeout
            )
            if not response.is_success:
                raise self.fail(response)
            return self.parse(model, response.content)

    @asynccontextmanager
    async def open_stream(
        self, path: str, body: Mapping[str, Any]
    ) -> AsyncIterator[AsyncIterator[str]]:
        """POST ``body`` and yield the answer's lines; the connection is released on exit.

        Failures while the caller iterates (a stall, a dropped connection) surface from its
        ``async with`` block already classified.
        """
        with self.errors():
            async with self.http.stream(
                "POST", self.url(path), self.headers, encode(body), timeout=self.timeout
            ) as response:
                if not response.is_success:
                    await response.aread()
                    raise self.fail(response)
                lines = response.aiter_lines()
                yield lines
                await _drain(lines)

    async def get_ok(self, path: str) -> None:
        """GET ``path``; any non-2xx or transport failure raises classified."""
        with self.errors():
            response = await self.http.request(
                "GET", self.url(path), self.headers, timeout=self.timeout
            )
            if not response.is_success:
                raise self.fail(response)
