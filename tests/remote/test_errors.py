"""Errors through the REST API come back as the classes the engine raises; failures to reach
the server at all are UNAVAILABLE with the reason, in one line."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

import core.errors as errors_module
from core.errors import (
    Conflict,
    Forbidden,
    Gone,
    ModelReinsError,
    NotFound,
    NoWorker,
    ProviderError,
    ProviderTimeout,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    error_class,
    error_from_wire,
)
from core.models import DispatchRequest
from core.remote import RemoteEngine
from mcp_server.rest.errors import EXCEPTION_HANDLERS
from tests.rest.conftest import Api
from tests.support.loopback import bound_socket, serve

DESIGN_CODES: dict[str, tuple[type[ModelReinsError], int]] = {
    "VALIDATION_ERROR": (ValidationFailed, 400),
    "UNAUTHORIZED": (Unauthorized, 401),
    "FORBIDDEN": (Forbidden, 403),
    "NOT_FOUND": (NotFound, 404),
    "CONFLICT": (Conflict, 409),
    "GONE": (Gone, 410),
    "RATE_LIMITED": (RateLimited, 429),
    "PROVIDER_ERROR": (ProviderError, 502),
    "NO_WORKER": (NoWorker, 503),
    "PROVIDER_TIMEOUT": (ProviderTimeout, 504),
}
"""DESIGN §5's table."""


def _tree() -> list[type[ModelReinsError]]:
    return [cls for cls in vars(errors_module).values()
            if isinstance(cls, type) and issubclass(cls, ModelReinsError)]


def test_every_error_class_is_found_by_its_code() -> None:
    classes = _tree()
    assert len({cls.code for cls in classes}) == len(classes), "two classes share a code"
    for cls in classes:
        assert error_class(cls.code) is cls


@pytest.mark.parametrize("code", list(DESIGN_CODES))
def test_the_design_codes_map_to_their_classes(code: str) -> None:
    cls, status = DESIGN_CODES[code]
    assert (error_class(code), cls.http_status) == (cls, status)


def test_a_wire_error_keeps_every_field() -> None:
    exc = error_from_wire({"code": "RATE_LIMITED", "message": "slow", "provider": "p",
                           "retryAfter": 3, "details": {"limit": 5}})
    assert isinstance(exc, RateLimited)
    assert (exc.message, exc.provider, exc.retry_after, exc.details) == (
        "slow", "p", 3.0, {"limit": 5})
    assert exc.to_dict() == {"code": "RATE_LIMITED", "message": "slow", "provider": "p",
                             "retryAfter": 3.0, "details": {"limit": 5}}


def test_an_unknown_code_keeps_it_in_the_message() -> None:
    exc = error_from_wire({"code": "TEAPOT", "message": "short and stout"})
    assert type(exc) is ModelReinsError
    assert exc.message == "TEAPOT: short and stout"


def _failing_app(exc: ModelReinsError) -> Starlette:
    """An app that answers every call with ``exc``, through the server's own handlers."""

    async def fail(_: Request) -> Response:
        raise exc

    return Starlette(routes=[Route("/api/{path:path}", fail, methods=["GET", "POST"])],
                     exception_handlers=EXCEPTION_HANDLERS)


def _example(cls: type[ModelReinsError]) -> ModelReinsError:
    extra: dict[str, Any] = {
        ValidationFailed: {"details": [{"path": "prompt", "problem": "required"}]},
        RateLimited: {"retry_after": 12, "provider": "main"},
        ProviderError: {"provider": "main"},
        ProviderTimeout: {"provider": "main"},
    }.get(cls, {})
    return cls(f"an example {cls.code}", **extra)


@pytest.mark.parametrize("code", list(DESIGN_CODES))
async def test_each_design_code_round_trips_through_http(code: str) -> None:
    sent = _example(DESIGN_CODES[code][0])
    async with serve(_failing_app(sent)) as url, RemoteEngine.open(url, "mr_x") as remote:
        with pytest.raises(ModelReinsError) as raised:
            await remote.list_providers()
    got = raised.value
    assert type(got) is type(sent)
    assert (got.provider, got.retry_after, got.details) == (
        sent.provider, sent.retry_after, sent.details)
    if code == "UNAUTHORIZED":
        assert got.message == f"the server rejected the token ({sent.message})"
    else:
        assert got.message == sent.message


async def test_real_server_errors_keep_their_class(api: Api) -> None:
    async with RemoteEngine.open(api.url, api.reader) as reader:
        with pytest.raises(Forbidden, match="lacks the 'dispatch' scope"):
            await reader.list_providers()
    async with RemoteEngine.open(api.url, api.other) as other:
        with pytest.raises(Forbidden, match="may not use provider 'main'"):
            await other.dispatch(DispatchRequest(prompt="x"))


async def test_a_rejected_token_says_so(api: Api) -> None:
    async with RemoteEngine.open(api.url, "mr_" + "x" * 43) as remote:
        with pytest.raises(Unauthorized) as raised:
            await remote.list_providers()
    assert raised.value.message == "the server rejected the token (invalid token)"
    async with RemoteEngine.open(api.url, api.revoked) as remote:
        with pytest.raises(Unauthorized, match=r"rejected the token \(token revoked\)"):
            await remote.history()


async def test_no_token_says_how_to_set_one(api: Api) -> None:
    async with RemoteEngine.open(api.url, None) as remote:
        with pytest.raises(Unauthorized, match="needs a token: set MODELREINS_TOKEN"):
            await remote.tasks.list()
        assert (await remote.health_info()).status == "ok", "health needs no token"


@contextmanager
def closed_port() -> Iterator[str]:
    """A loopback URL nothing listens on."""
    sock = bound_socket()
    url = "http://{}:{}".format(*sock.getsockname()[:2])
    sock.close()
    yield url


async def test_a_closed_port_is_connection_refused() -> None:
    with closed_port() as url:
        async with RemoteEngine.open(url, "mr_x") as remote:
            with pytest.raises(Unavailable) as raised:
                await remote.list_providers()
    assert raised.value.message == f"cannot reach ModelReins at {url}: connection refused"
    assert str(raised.value) == f"UNAVAILABLE: cannot reach ModelReins at {url}: " \
                                "connection refused"


async def test_a_server_that_never_answers_times_out() -> None:
    # Listening but never accepting: the kernel completes the handshake and queues the
    # request, and no answer ever comes.
    sock = bound_socket()
    url = "http://{}:{}".format(*sock.getsockname()[:2])
    try:
        async with RemoteEngine.open(url, "mr_x", timeout_s=0.2) as remote:
            with pytest.raises(Unavailable) as raised:
                await remote.health_info()
    finally:
        sock.close()
    assert raised.value.message == (
        f"ModelReins at {url} did not answer GET /api/health within 0.2 s")


async def test_a_host_that_does_not_resolve_says_so() -> None:
    async with RemoteEngine.open("http://modelreins.invalid", "mr_x") as remote:
        with pytest.raises(Unavailable, match=r"cannot reach .*: host not found"):
            await remote.health_info()


def _stranger() -> Starlette:
    async def page(_: Request) -> Response:
        return PlainTextResponse("<html>hello</html>", status_code=404)

    async def odd_health(_: Request) -> Response:
        return JSONResponse({"hello": "world"})

    return Starlette(routes=[Route("/api/health", odd_health),
                             Route("/api/{path:path}", page, methods=["GET", "POST"])])


async def test_something_else_is_not_a_modelreins_server() -> None:
    async with serve(_stranger()) as url, RemoteEngine.open(url, "mr_x") as remote:
        with pytest.raises(Unavailable) as raised:
            await remote.list_providers()
        assert raised.value.message == (f"{url} does not answer like a ModelReins server "
                                        "(HTTP 404 for GET /api/providers)")
        with pytest.raises(Unavailable, match="unexpected /api/health"):
            await remote.health_info()


def test_unavailable_has_its_own_code() -> None:
    assert (Unavailable.code, Unavailable.http_status) == ("UNAVAILABLE", 503)
    assert Unavailable.code not in DESIGN_CODES
