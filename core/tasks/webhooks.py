"""Delivering a task run's result to its webhook: the payload, retries with backoff, the POST.

Targets are vetted by :mod:`core.tasks.targets` before every attempt, and the request goes
to the vetted address itself (``Host`` header and TLS SNI keep the name), so a DNS answer
that changes between the check and the connect cannot steer it inside. Redirects are never
followed, and the response body is never read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx2

from core.errors import ValidationFailed, field_error
from core.models import WireModel
from core.tasks.targets import IPAddress, Resolver, WebhookPolicy, resolve_host, vetted_address

__all__ = [
    "PAYLOAD_FORMATS",
    "Sleep",
    "WebhookFormat",
    "WebhookOutcome",
    "backoff",
    "build_payload",
    "deliver",
]

WebhookFormat = Literal["json", "slack"]

Sleep = Callable[[float], Awaitable[None]]

_USER_AGENT = "ModelReins-Webhook/1"


class WebhookOutcome(WireModel):
    """What became of one delivery, as stored on the run."""

    status: Literal["delivered", "failed", "refused"]
    attempts: int
    last_error: str | None = None
    http_status: int | None = None


def _json_payload(task_id: str, task_name: str, run: dict[str, Any], text: str) -> dict[str, Any]:
    return {"task": {"id": task_id, "name": task_name}, "run": run, "text": text}


def _slack_escape(text: str) -> str:
    # Slack reads <…> as links and mentions (<!channel>); model output must not ping people.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_payload(task_id: str, task_name: str, run: dict[str, Any], text: str) -> dict[str, Any]:
    return {"text": f"*{_slack_escape(task_name)}*: {_slack_escape(text)}"}


PAYLOAD_FORMATS: dict[str, Callable[[str, str, dict[str, Any], str], dict[str, Any]]] = {
    "json": _json_payload,
    "slack": _slack_payload,
}
"""Payload builders by ``webhookFormat``."""


def build_payload(
    task_id: str, task_name: str, run: dict[str, Any], text: str, fmt: WebhookFormat = "json"
) -> dict[str, Any]:
    """The webhook body: JSON ``{task: {id, name}, run, text}`` or Slack ``{text}``.

    Slack text is ``*name*: text`` with ``& < >`` escaped as Slack requires.
    """
    builder = PAYLOAD_FORMATS.get(fmt)
    if builder is None:
        raise field_error("webhookFormat", f"unknown format '{fmt}' (expected json or slack)")
    return builder(task_id, task_name, run, text)


def backoff(attempt: int, base: float = 1.0, factor: float = 2.0, cap: float = 30.0) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``base·factor^(n-1)``,
    at most ``cap``."""
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    try:
        return min(cap, base * factor ** (attempt - 1))
    except OverflowError:
        return cap


@dataclass(frozen=True)
class _Try:
    """One attempt's result: ``retry`` says whether another attempt could help."""

    delivered: bool
    retry: bool
    error: str | None = None
    http_status: int | None = None


def _pinned_request(
    http: httpx2.AsyncClient,
    url: str,
    payload: dict[str, Any],
    address: IPAddress | None,
    timeout_s: float,
) -> httpx2.Request:
    try:
        target = httpx2.URL(url.strip())
    except httpx2.InvalidURL as exc:
        raise field_error("webhook", f"not a valid URL: {exc}") from exc
    headers = {"User-Agent": _USER_AGENT}
    extensions: dict[str, Any] = {}
    if address is not None:
        headers["Host"] = target.netloc.decode("ascii")
        extensions["sni_hostname"] = target.raw_host.decode("ascii")
        target = target.copy_with(host=str(address))
    return http.build_request(
        "POST", target, json=payload, headers=headers, timeout=timeout_s, extensions=extensions
    )


async def _attempt(http: httpx2.AsyncClient, request: httpx2.Request, timeout_s: float) -> _Try:
    timed_out = _Try(False, True, f"timed out after {timeout_s:g}s")
    # httpx's timeout is per read; this bounds the whole attempt against a trickling target.
    with anyio.move_on_after(timeout_s):
        try:
            response = await http.send(request, stream=True, follow_redirects=False)
        except httpx2.TimeoutException:
            return timed_out
        except httpx2.TransportError as exc:
            return _Try(False, True, f"connection failed ({type(exc).__name__}): {exc}")
        # The body is of no interest, and reading it would let the target stall us.
        await response.aclose()
        return _classify(response.status_code)
    return timed_out


def _classify(status: int) -> _Try:
    if 200 <= status < 300:
        return _Try(True, False, None, status)
    if 300 <= status < 400:
        return _Try(False, False, f"HTTP {status}: redirect not followed", status)
    return _Try(False, status >= 500, f"HTTP {status}", status)


async def deliver(
    http: httpx2.AsyncClient,
    url: str,
    payload: dict[str, Any],
    policy: WebhookPolicy,
    *,
    timeout_s: float = 10.0,
    retries: int = 3,
    sleep: Sleep = anyio.sleep,
    resolver: Resolver = resolve_host,
) -> WebhookOutcome:
    """POST ``payload`` to ``url``; never raises for a delivery failure.

    Up to ``retries`` more attempts, ``backoff(n)`` seconds after failed attempt ``n``, on
    5xx, timeouts (``timeout_s`` bounds each whole attempt), connection and DNS errors;
    none after a 4xx or a 3xx (redirects are not followed). A target the policy refuses
    gives ``status="refused"`` with the attempts made so far (0 when refused up front).
    """
    if retries < 0:
        raise ValueError(f"retries must be >= 0, got {retries}")
    last = _Try(False, True)
    attempt = 0
    for attempt in range(1, retries + 2):
        if attempt > 1:
            await sleep(backoff(attempt - 1))
        try:
            address = await vetted_address(url, policy, resolver)
            request = _pinned_request(http, url, payload, address, timeout_s)
        except ValidationFailed as exc:
            return WebhookOutcome(status="refused", attempts=attempt - 1, last_error=exc.message)
        except OSError as exc:
            last = _Try(False, True, f"could not resolve host: {exc}")
        else:
            last = await _attempt(http, request, timeout_s)
        if last.delivered:
            return WebhookOutcome(
                status="delivered", attempts=attempt, http_status=last.http_status
            )
        if not last.retry:
            break
    return WebhookOutcome(
        status="failed", attempts=attempt, last_error=last.error, http_status=last.http_status
    )
