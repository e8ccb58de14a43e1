"""How HTTP providers fail: upstream statuses classified, transport errors translated once,
secrets scrubbed from every message.

The rule: an adapter never lets an ``httpx2`` exception, a JSON error or an upstream status
escape. Each becomes a :mod:`core.errors` exception that names the provider and never contains a
configured secret. ``classify`` and ``parse_retry_after`` are pure (the clock is passed in).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2

from core.errors import ModelReinsError, ProviderError, ProviderTimeout, RateLimited

__all__ = [
    "bad_payload",
    "classify",
    "host_of",
    "inband_error",
    "map_transport_errors",
    "parse_retry_after",
    "scrub",
    "upstream_message",
]

MESSAGE_LIMIT = 300
"""Longest upstream error text quoted in one of our messages."""

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
    headers: Mapping[str, str] | Sequence[tuple[str, str]],
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


def bad_payload(provider_name: str, problem: str) -> ProviderError:
    """The error for a 2xx answer we cannot use (bad JSON, missing fields, broken stream)."""
    return ProviderError(f"bad upstream payload: {problem}", provider=provider_name)


def inband_error(provider_name: str, error: Any, secrets: Iterable[str] = ()) -> ProviderError:
    """The error for an ``error`` member inside a 2xx answer or a stream line (retriable)."""
    text = upstream_message(json.dumps({"error": error}, default=str)) or "unspecified error"
    message = f"upstream reported an error: {scrub(text, secrets)}"
    return ProviderError(message, provider=provider_name)


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


def host_of(base_url: str) -> str:
    """``host:port`` of a URL: what error messages may name (never credentials or paths)."""
    url = httpx2.URL(base_url)
    return f"{url.host}:{url.port}" if url.port else url.host


@contextmanager
def map_transport_errors(
    provider_name: str,
    base_url: str,
    secrets: Iterable[str] = (),
    *,
    timeout_s: float | None = None,
    host: str | None = None,
) -> Iterator[None]:
    """Translate ``httpx2`` exceptions raised inside the block, once, at the edge.

    Timeouts of any phase → PROVIDER_TIMEOUT; connect failures, dropped connections and
    protocol errors → retriable PROVIDER_ERROR naming the host (never credentials or paths).
    Errors of our own tree pass through with secrets scrubbed from their message.
    """
    secrets = tuple(secrets)
    host = host or host_of(base_url)
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


