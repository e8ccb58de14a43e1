"""Dispatch: pick the provider, fall back on retriable failures, record every outcome.

The chain is the chosen provider (the named one, else the default) followed by the
``fallback: true`` providers in config order. A retriable failure (429, 5xx, timeout,
connection) moves to the next; anything else ends the dispatch. A stream may only fall
back before its first delta: after that, a failure ends it with an error, never a silent
truncation.

Every finished dispatch, success or error, is recorded twice, both through the store's
write-behind (no synchronous write on the request path): in history, and in the audit log
as ``dispatch`` by the caller's actor, with the provider and status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, NamedTuple

from core.audit import AuditLog
from core.clock import Clock, to_ms
from core.config import Settings
from core.errors import (
    Forbidden,
    ModelReinsError,
    NotFound,
    ProviderError,
    ValidationFailed,
    field_error,
)
from core.health import HealthTracker
from core.ids import new_id
from core.models import Attempt, DispatchRecord, DispatchRequest, ErrorInfo, Message, Usage
from core.providers import Completion, Provider, ProviderCall, StreamEnd, TextDelta
from core.store import Store

__all__ = ["DispatchEvent", "Dispatcher", "Fallback", "Plan"]

log = logging.getLogger("modelreins.dispatch")


class Plan(NamedTuple):
    """A request checked and resolved (:meth:`Dispatcher.plan`), ready to serve."""

    call: ProviderCall
    prompt: str
    """The text recorded as the dispatch's prompt: the last user message."""
    chain: tuple[str, ...]
    """The providers to try, in order: the chosen one, then the fallbacks."""


@dataclass(frozen=True)
class Fallback:
    """A stream event: ``from_provider`` failed before its first byte; trying ``to_provider``."""

    from_provider: str
    to_provider: str
    code: str


DispatchEvent = TextDelta | Fallback | DispatchRecord


def _error_info(exc: ModelReinsError) -> ErrorInfo:
    return ErrorInfo(code=exc.code, message=exc.message, provider=exc.provider,
                     retry_after=exc.retry_after)


def _as_error(name: str, exc: Exception) -> ModelReinsError:
    if isinstance(exc, ModelReinsError):
        if exc.provider is None and not isinstance(exc, ValidationFailed):
            exc.provider = name
        return exc
    log.exception("provider %s failed unexpectedly", name)
    return ProviderError(f"provider '{name}' failed unexpectedly: {type(exc).__name__}",
                         provider=name)


def _ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        providers: Mapping[str, Provider],
        store: Store,
        health: HealthTracker,
        clock: Clock,
        *,
        audit: AuditLog | None = None,
    ) -> None:
        self.settings = settings
        self.providers = providers
        self.store = store
        self.health = health
        self.clock = clock
        self.audit = audit

    def resolve(self, requested: str | None) -> str:
        """The provider a request goes to first."""
        if requested is not None:
            if requested not in self.providers:
                known = ", ".join(self.providers) or "none configured"
                raise NotFound(f"unknown provider '{requested}' (known: {known})")
            return requested
        default = self.settings.default_provider
        if default is None:
            raise field_error("provider", "no provider given and no default provider configured")
        return default

    def chain(self, requested: str | None, allowed: frozenset[str] | None = None) -> list[str]:
        """The chosen provider, then the fallbacks; a restricted caller never leaves
        ``allowed``, not even by falling back."""
        first = self.resolve(requested)
        if allowed is not None and first not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            raise Forbidden(f"this token may not use provider '{first}' (allowed: {names})",
                            provider=first)
        fallbacks = self.settings.fallback_providers
        return [first, *(n for n in fallbacks if n != first and (allowed is None or n in allowed))]

    @staticmethod
    def call_for(req: DispatchRequest) -> tuple[ProviderCall, str]:
        """The provider call and the text recorded as the prompt."""
        messages = list(req.messages or [])
        if req.prompt is not None:
            messages.append(Message(role="user", content=req.prompt))
        if not messages:
            raise field_error("prompt", "required (or a non-empty messages list)")
        if messages[-1].role != "user":
            raise field_error("messages", "the last message must have role 'user'")
        call = ProviderCall(messages=messages, system=req.system, model=req.model,
                            options=dict(req.options))
        return call, messages[-1].content

    def plan(self, req: DispatchRequest, allowed: frozenset[str] | None = None) -> Plan:
        """``req`` checked and resolved once (validation errors raise here): what to send,
        what to record, and the providers to try in order."""
        call, prompt = self.call_for(req)
        return Plan(call, prompt, tuple(self.chain(req.provider, allowed)))

    def _record(self, dispatch_id: str, prompt: str, **fields: Any) -> DispatchRecord:
        return DispatchRecord(id=dispatch_id, prompt=prompt, created_at=to_ms(self.clock.now()),
                              **fields)

    async def _finish(self, record: DispatchRecord, actor: str) -> DispatchRecord:
        await self.store.dispatches.add(record)
        if self.audit is not None:
            await self.audit.record(actor, "dispatch", record.id,
                                    {"provider": record.provider, "status": record.status})
        return record

    def _note(self, name: str, exc: ModelReinsError | None) -> None:
        self.health.record(name, ok=exc is None, error=None if exc is None else str(exc))

    async def dispatch(
        self, req: DispatchRequest, *, dispatch_id: str | None = None,
        allowed: frozenset[str] | None = None, actor: str = "local",
    ) -> DispatchRecord:
        """Serve ``req`` in one piece; raises the last failure after recording it."""
        return await self.run(self.plan(req, allowed), dispatch_id or new_id("dsp"), actor)

    async def run(self, plan: Plan, dispatch_id: str, actor: str) -> DispatchRecord:
        """Serve a planned request under ``dispatch_id``; raises the last failure after
        recording it."""
        call, prompt, chain = plan
        attempts: list[Attempt] = []
        started = time.perf_counter()
        for i, name in enumerate(chain):
            t0 = time.perf_counter()
            try:
                done: Completion = await self.providers[name].complete(call)
            except Exception as raw:
                exc = _as_error(name, raw)
                attempts.append(Attempt(provider=name, code=exc.code, latency_ms=_ms(t0)))
                self._note(name, exc)
                if exc.retriable and i + 1 < len(chain):
                    continue
                await self._finish(self._record(
                    dispatch_id, prompt, status="error", provider=name, attempts=attempts,
                    latency_ms=_ms(started), error=_error_info(exc)), actor)
                if exc is raw:
                    raise
                raise exc from raw
            attempts.append(Attempt(provider=name, latency_ms=_ms(t0)))
            self._note(name, None)
            return await self._finish(self._record(
                dispatch_id, prompt, status="success", text=done.text, provider=name,
                model=done.model, usage=done.usage, latency_ms=_ms(started), attempts=attempts,
                truncated=done.truncated), actor)
        raise AssertionError("unreachable: the chain is never empty")

    async def stream(
        self, req: DispatchRequest, *, dispatch_id: str | None = None,
        allowed: frozenset[str] | None = None, actor: str = "local",
    ) -> AsyncGenerator[DispatchEvent, None]:
        """Deltas as they come, :class:`Fallback` notices, and finally the stored record."""
        call, prompt, chain = self.plan(req, allowed)
        dispatch_id = dispatch_id or new_id("dsp")
        attempts: list[Attempt] = []
        started = time.perf_counter()
        for i, name in enumerate(chain):
            t0 = time.perf_counter()
            parts: list[str] = []
            end: StreamEnd | None = None
            try:
                # aclosing: if our consumer stops early, the provider's stream (and e.g. the
                # CLI process behind it) is closed here, in this task, not by the GC later.
                async with aclosing(self.providers[name].stream(call)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            parts.append(event.text)
                            yield event
                        else:
                            end = event
                if end is None:
                    raise ProviderError("stream ended without a final event", provider=name)
            except Exception as raw:
                exc = _as_error(name, raw)
                attempts.append(Attempt(provider=name, code=exc.code, latency_ms=_ms(t0)))
                self._note(name, exc)
                if not parts and exc.retriable and i + 1 < len(chain):
                    yield Fallback(name, chain[i + 1], exc.code)
                    continue
                await self._finish(self._record(
                    dispatch_id, prompt, status="error", text="".join(parts), provider=name,
                    attempts=attempts, latency_ms=_ms(started), error=_error_info(exc)), actor)
                if exc is raw:
                    raise
                raise exc from raw
            attempts.append(Attempt(provider=name, latency_ms=_ms(t0)))
            self._note(name, None)
            yield await self._finish(self._record(
                dispatch_id, prompt, status="success", text="".join(parts), provider=name,
                model=end.model, usage=end.usage or Usage(), latency_ms=_ms(started),
                attempts=attempts, truncated=end.truncated), actor)
            return
