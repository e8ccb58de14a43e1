"""Small helpers shared by the provider adapter tests."""

from __future__ import annotations

import socket
import traceback
from collections.abc import AsyncGenerator, Iterator
from contextlib import aclosing, contextmanager
from typing import Any, cast

import anyio

from core.errors import ModelReinsError
from core.models import Message
from core.providers.base import Provider, ProviderCall, StreamEnd, StreamEvent, TextDelta

KEY = "sk-test-SECRET-0123456789"
"""The API key every test config uses; no error text may ever contain it."""


def ask(
    prompt: str = "hello there",
    *,
    model: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    options: dict[str, Any] | None = None,
) -> ProviderCall:
    return ProviderCall(
        messages=[Message(role="user", content=prompt)],
        model=model,
        system=system,
        max_tokens=max_tokens,
        options=options or {},
    )


def events_of(provider: Provider, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
    # Adapters implement stream() as async generators; the interface only promises an iterator.
    return cast(AsyncGenerator[StreamEvent, None], provider.stream(call))


async def drain(provider: Provider, call: ProviderCall) -> tuple[list[str], StreamEnd]:
    """Every delta of a stream, and its final event (asserting there is exactly one, last)."""
    deltas: list[str] = []
    end: StreamEnd | None = None
    with anyio.fail_after(10):
        async with aclosing(events_of(provider, call)) as events:
            async for event in events:
                assert end is None, "an event after StreamEnd"
                if isinstance(event, TextDelta):
                    deltas.append(event.text)
                else:
                    end = event
    assert end is not None, "the stream ended without StreamEnd"
    return deltas, end


async def failure(
    provider: Provider, call: ProviderCall, *, streaming: bool
) -> tuple[list[str], ModelReinsError]:
    """The deltas seen before the call failed, and the error it raised."""
    deltas: list[str] = []
    with anyio.fail_after(10):
        try:
            if streaming:
                async with aclosing(events_of(provider, call)) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            deltas.append(event.text)
            else:
                await provider.complete(call)
        except ModelReinsError as exc:
            return deltas, exc
    raise AssertionError("the call succeeded")


def assert_no_secret(error: BaseException, secret: str = KEY) -> None:
    """Neither the error nor its traceback as printed (causes included) mentions ``secret``."""
    assert secret not in repr(error)
    assert secret not in "".join(traceback.format_exception(error))


@contextmanager
def refused_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening: connecting is refused at once."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
