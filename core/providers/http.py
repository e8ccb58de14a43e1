"""What every HTTP provider adapter shares: failure classification, transport error mapping,
secret scrubbing, call resolution, and a small base class that wires them together.

The rule this module enforces: an adapter never lets an ``httpx2`` exception, a JSON error or an
upstream status escape. Each is translated once, here, into a :mod:`core.errors` exception that
names the provider and never contains a configured secret.
"""

from __future__ import annotations

import json
import math
import re
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Annotated, Any, TypeVar

import anyio
import httpx2
from pydantic import BaseModel, StringConstraints, ValidationError, field_validator

from core.errors import (
    ModelReinsError,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    field_error,
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

__all__ = [
    "ApiKey",
    "HttpConfig",
    "HttpProvider",
    "Resolved",
    "bad_payload",
    "classify",
    "collect",
    "encode",
    "inband_error",
    "map_transport_errors",
    "parse_payload",
    "parse_retry_after",
    "resolve",
    "scrub",
    "sse_data",
    "upstream_message",
]

M = TypeVar("M", bound=BaseModel)

DRAIN_S = 1.0
"""How long a finished stream may take to reach the end of its body before it is dropped."""

MESSAGE_LIMIT = 300
"""Longest upstream error text quoted in one of our messages."""

ApiKey = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
"""A credential, surrounding whitespace (a pasted newline) dropped. Declare fields of this type
with ``Field(repr=False)`` so a logged config never shows it."""


def _spellings(secret: str) -> list[str]:
    # Error texts often quote a value through repr() (h11 prints b'…' header values), which
    # escapes control characters: scrub those spellings too.
    escaped = {secret, repr(secret)[1:-1], repr(secret.encode("utf-8", "replace"))[2:-1]}
    return sorted(escaped, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            for spelling in _spellings(secret):
                text = text.replace(spelling, "***")
    return text


def _shorten(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def upstream_message(body: bytes | str) -> str | None:
    """The error text an upstream put in its body, whitespace-collapsed and truncated.

    Understands ``{"error": {"message"}}`` (Anthropic, OpenAI), ``{"error": "…"}`` (Ollama),
    ``{"message"}`` and ``{"detail"}``; otherwise the plain text, unless it is an HTML page.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text)
    except ValueError:
        stripped = text.strip()
        return _shorten(stripped) if stripped and not stripped.startswith("<") else None
    if isinstance(data, list) and data:
        data = data[0]
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if isinstance(error, dict):
        error = error.get("message")
    for candidate in (error, data.get("message"), data.get("detail")):
        if isinstance(candidate, str) and candidate.strip():
            return _shorten(candidate)
    return None


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP-date.

    A date in the past means "now" (0); anything unparsable means "not said" (None).
    """
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        # An HTTP-date has whole-second precision: round up so a caller never retries early.
        return float(max(0, math.ceil((when - now).total_seconds())))
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _retry_after(headers: httpx2.Headers, now: datetime) -> float | None:
    # OpenAI-style servers add a millisecond variant; it is the more precise of the two.
    ms = parse_retry_after(headers.get("retry-after-ms"), now)
    if ms is not None:
        return ms / 1000
    return parse_retry_after(headers.get("retry-after"), now)


def classify(
    provider_name: str,
    status: int,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    now: datetime | None = None,
    secrets: Iterable[str] = (),
    label: str | None = None,
) -> ModelReinsError:
    """The error for a non-2xx upstream answer. Pure: ``now`` and ``secrets`` are injected.

    429 → RATE_LIMITED (with ``retry_after``); 401/403 → a non-retriable PROVIDER_ERROR that
    says the credentials were rejected and quotes nothing; 408 → PROVIDER_TIMEOUT; other 4xx →
    non-retriable PROVIDER_ERROR quoting the upstream's message; 5xx → retriable PROVIDER_ERROR.
    ``label`` names the failure in messages instead of ``HTTP <status>`` (for in-stream errors
    classified as the status they would have had).
    """
    secrets = tuple(secrets)
    what = label or f"HTTP {status}"
    hdrs = httpx2.Headers(headers)
    retry_after = _retry_after(hdrs, now or datetime.now(UTC))
    quoted = upstream_message(body)
    detail = f": {scrub(quoted, secrets)}" if quoted else ""
    if status == 429:
        wait = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return RateLimited(
            f"rate limited by upstream ({what}){wait}{detail}",
            provider=provider_name,
            retry_after=retry_after,
        )
    if status in (401, 403):
        # The body is not quoted: some upstreams echo part of the key they refused.
        return ProviderError(
            f"upstream rejected the credentials ({what}); check the provider's apiKey",
            provider=provider_name,
            retriable=False,
        )
    if status == 408:
        return ProviderTimeout(f"upstream timed out ({what}){detail}", provider=provider_name)
    if 400 <= status < 500:
        return ProviderError(
            f"upstream refused the request ({what}){detail}",
            provider=provider_name,
            retriable=False,
        )
    if status >= 500:
        return ProviderError(
            f"upstream server error ({what}){detail}",
            provider=provider_name,
            retry_after=retry_after,
        )
    return ProviderError(
        f"unexpected upstream status ({what})", provider=provider_name, retriable=False
    )


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


def bad_payload(provider_name: str, problem: str) -> ProviderError:
    """The error for a 2xx answer we cannot use (bad JSON, missing fields, broken stream)."""
    return ProviderError(f"bad upstream payload: {problem}", provider=provider_name)


def inband_error(provider_name: str, error: Any, secrets: Iterable[str] = ()) -> ProviderError:
    """The error for an ``error`` member inside a 2xx answer or a stream line (retriable)."""
    text = upstream_message(json.dumps({"error": error}, default=str)) or "unspecified error"
    message = f"upstream reported an error: {scrub(text, secrets)}"
    return ProviderError(message, provider=provider_name)


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


def _describe(exc: httpx2.HTTPError) -> str:
    text = str(exc)
    return f": {text}" if text else ""


def _chain_leaks(exc: BaseException, secrets: tuple[str, ...]) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if scrub(str(current), secrets) != str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


def _translate(
    exc: httpx2.HTTPError, provider: str, host: str, timeout_s: float | None
) -> ModelReinsError:
    within = f" within {timeout_s:g} s" if timeout_s is not None else ""
    if isinstance(exc, httpx2.ConnectTimeout):
        return ProviderTimeout(f"could not connect to {host}{within}", provider=provider)
    if isinstance(exc, httpx2.PoolTimeout):
        return ProviderTimeout(f"no free connection to {host}{within}", provider=provider)
    if isinstance(exc, httpx2.TimeoutException):
        # ReadTimeout covers both "no first byte" and "stream stalled between chunks".
        return ProviderTimeout(f"{host} stopped answering{within}", provider=provider)
    if isinstance(exc, httpx2.ConnectError):
        return ProviderError(
            f"cannot connect to {host} (connection refused or host unreachable){_describe(exc)}",
            provider=provider,
        )
    if isinstance(exc, httpx2.DecodingError):
        return bad_payload(provider, f"undecodable body from {host}{_describe(exc)}")
    if isinstance(exc, httpx2.LocalProtocolError | httpx2.UnsupportedProtocol):
        # Our own request is malformed (bad baseUrl, bad header value): retrying cannot help.
        return ProviderError(
            f"cannot send the request to {host}{_describe(exc)}", provider=provider, retriable=False
        )
    return ProviderError(
        f"connection to {host} failed mid-response{_describe(exc)}", provider=provider
    )


@contextmanager
def map_transport_errors(
    provider_name: str,
    base_url: str,
    secrets: Iterable[str] = (),
    *,
    timeout_s: float | None = None,
) -> Iterator[None]:
    """Translate ``httpx2`` exceptions raised inside the block, once, at the edge.

    Timeouts of any phase → PROVIDER_TIMEOUT; connect failures, dropped connections and
    protocol errors → retriable PROVIDER_ERROR naming the host (never credentials or paths).
    Errors of our own tree pass through with secrets scrubbed from their message.
    """
    secrets = tuple(secrets)
    url = httpx2.URL(base_url)
    host = f"{url.host}:{url.port}" if url.port else url.host
    try:
        yield
    except httpx2.HTTPError as exc:
        error = _translate(exc, provider_name, host, timeout_s)
        error.message = scrub(error.message, secrets)
        error.args = (error.message,)
        if _chain_leaks(exc, secrets):
            # The cause would print a header value, i.e. possibly the key: drop the chain.
            raise error from None
        raise error from exc
    except ModelReinsError as exc:
        clean = scrub(exc.message, secrets)
        if clean != exc.message:
            exc.message = clean
            exc.args = (clean,)
        raise


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

    def __init__(self, name: str, config: ProviderConfig, http: httpx2.AsyncClient) -> None:
        if not isinstance(config, self.config_model) or not isinstance(config, HttpConfig):
            raise TypeError(f"{type(self).__name__} needs a {self.config_model.__name__}")
        super().__init__(name, config, http)
        self.secrets = tuple(
            value for field in config.secret_fields() if (value := getattr(config, field))
        )
        self.timeout = httpx2.Timeout(config.timeout_s)
        self.headers = {"content-type": "application/json", **self.auth_headers()}

    @abstractmethod
    def auth_headers(self) -> dict[str, str]:
        """Headers that authenticate every request (may be empty)."""

    def url(self, path: str) -> str:
        return self.config.base_url + path

    def resolve(self, call: ProviderCall) -> Resolved:
        return resolve(self.name, self.config, call)

    def errors(self) -> AbstractContextManager[None]:
        """The transport-error mapping bound to this provider."""
        return map_transport_errors(
            self.name, self.config.base_url, self.secrets, timeout_s=self.config.timeout_s
        )

    def fail(self, response: httpx2.Response) -> ModelReinsError:
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
            response = await self.http.post(
                self.url(path), content=encode(body), headers=self.headers, timeout=self.timeout
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
                "POST",
                self.url(path),
                content=encode(body),
                headers=self.headers,
                timeout=self.timeout,
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
            response = await self.http.get(
                self.url(path), headers=self.headers, timeout=self.timeout
            )
            if not response.is_success:
                raise self.fail(response)
