"""HTTP to one ModelReins server, with every failure translated once, at this edge.

A transport failure becomes :class:`~core.errors.Unavailable` naming the reason (connection
refused, host not found, timed out); a §5 error body becomes the :mod:`core.errors` class of
its ``code``; an answer that is not what a ModelReins server says (another server, a proxy's
error page, a body that does not fit the model) is UNAVAILABLE too, saying so.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import httpx2
from pydantic import BaseModel, TypeAdapter, ValidationError

from core.errors import ModelReinsError, Unauthorized, Unavailable, error_from_wire
from core.models import Page

__all__ = ["CONNECT_TIMEOUT_S", "PAGE_MAX", "Wire", "part", "poll", "reason"]

CONNECT_TIMEOUT_S = 5.0
PAGE_MAX = 500
"""The largest page the API serves."""
POLL_FIRST_S = 0.1
POLL_MAX_S = 1.0

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def reason(exc: BaseException) -> str:
    """Why a connection failed, in a few words, from the innermost cause that says so."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, OSError) and type(current).__name__ == "gaierror":
            return f"host not found ({current.strerror or current})"
        if isinstance(current, TimeoutError | httpx2.TimeoutException):
            return "timed out"
        current = current.__cause__ or current.__context__
    return str(exc) or type(exc).__name__


def part(value: str) -> str:
    """``value`` as one path segment (task names may hold spaces or slashes)."""
    return quote(value, safe="")


async def poll(fetch: Callable[[], Awaitable[T]], done: Callable[[T], bool],
               timeout_s: float) -> T:
    """``fetch()`` until ``done`` or ``timeout_s`` passes, backing off to one poll a second:
    the REST API has no push for runs and background dispatches."""
    deadline = anyio.current_time() + timeout_s
    interval = POLL_FIRST_S
    while True:
        state = await fetch()
        remaining = deadline - anyio.current_time()
        if done(state) or remaining <= 0:
            return state
        await anyio.sleep(min(interval, remaining))
        interval = min(interval * 2, POLL_MAX_S)


class Wire:
    """Requests to the server at ``base_url``, sending ``token``, decoding the answers."""

    def __init__(self, base_url: str, token: str | None, http: httpx2.AsyncClient,
                 timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.http = http
        self.timeout_s = timeout_s

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _timeout(self, seconds: float | None) -> httpx2.Timeout:
        total = self.timeout_s if seconds is None else seconds
        return httpx2.Timeout(total, connect=min(CONNECT_TIMEOUT_S, total))

    def unlike(self, what: str) -> Unavailable:
        """The error for an answer no ModelReins server would give."""
        return Unavailable(f"{self.base_url} does not answer like a ModelReins server ({what})")

    @contextmanager
    def _translated(self, method: str, path: str, timeout_s: float) -> Iterator[None]:
        try:
            yield
        except httpx2.ConnectTimeout as exc:
            raise Unavailable(f"cannot reach ModelReins at {self.base_url}: connection "
                              "timed out") from exc
        except httpx2.ConnectError as exc:
            raise Unavailable(f"cannot reach ModelReins at {self.base_url}: "
                              f"{reason(exc)}") from exc
        except httpx2.TimeoutException as exc:
            raise Unavailable(f"ModelReins at {self.base_url} did not answer {method} {path} "
                              f"within {timeout_s:g} s") from exc
        except httpx2.HTTPError as exc:
            raise Unavailable(f"lost the connection to ModelReins at {self.base_url} "
                              f"({method} {path}): {reason(exc)}") from exc

    def failure(self, response: httpx2.Response, body: bytes) -> ModelReinsError:
        """The error a non-2xx answer stands for."""
        try:
            error = json.loads(body)["error"]
            if not isinstance(error, dict) or not isinstance(error.get("code"), str):
                raise TypeError(error)
        except (ValueError, KeyError, TypeError):
            request = response.request
            return self.unlike(f"HTTP {response.status_code} for {request.method} "
                               f"{request.url.path}")
        exc = error_from_wire(error)
        if isinstance(exc, Unauthorized):
            if not self.token:
                return Unauthorized(f"{self.base_url} needs a token: set MODELREINS_TOKEN or "
                                    f"run `modelreins config set token …` ({exc.message})")
            return Unauthorized(f"the server rejected the token ({exc.message})")
        return exc

    def _decode(self, response: httpx2.Response) -> Any:
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            request = response.request
            raise self.unlike(f"a non-JSON body for {request.method} "
                              f"{request.url.path}") from None

    async def call(self, method: str, path: str, *, body: Any = None,
                   params: Mapping[str, Any] | None = None,
                   timeout_s: float | None = None) -> Any:
        """``method path`` → the decoded JSON answer (None when empty); raises the mapped
        error. Parameters that are None are left out."""
        timeout = self._timeout(timeout_s)
        query = {k: v for k, v in (params or {}).items() if v is not None}
        with self._translated(method, path, timeout.read or 0):
            response = await self.http.request(
                method, self.base_url + path, json=body, params=query,
                headers=self._headers(), timeout=timeout)
        if not response.is_success:
            raise self.failure(response, response.content)
        return self._decode(response)

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    @asynccontextmanager
    async def stream(self, method: str, path: str, *, body: Any,
                     timeout_s: float) -> AsyncIterator[AsyncIterator[str]]:
        """The lines of a streamed answer (SSE); a non-2xx answer raises its error."""
        timeout = self._timeout(timeout_s)
        with self._translated(method, path, timeout_s):
            async with self.http.stream(method, self.base_url + path, json=body,
                                        headers=self._headers("text/event-stream"),
                                        timeout=timeout) as response:
                if not response.is_success:
                    raise self.failure(response, await response.aread())
                yield response.aiter_lines()

    def model(self, model: type[M], data: Any) -> M:
        """``data`` as ``model``, or UNAVAILABLE: the server answered something else."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise Unavailable(
                f"{self.base_url} answered with an unexpected {model.__name__}: "
                f"{exc.error_count()} problem(s), e.g. {exc.errors()[0]['msg']}") from exc

    def models(self, model: type[M], data: Any) -> list[M]:
        if not isinstance(data, list):
            raise Unavailable(f"{self.base_url} answered with an unexpected listing")
        return [self.model(model, item) for item in data]

    def page(self, model: type[M], data: Any) -> Page[M]:
        try:
            return TypeAdapter(Page[model]).validate_python(data)  # type: ignore[valid-type]
        except ValidationError as exc:
            raise Unavailable(f"{self.base_url} answered with an unexpected page of "
                              f"{model.__name__}") from exc

    async def every_page(self, path: str, model: type[M], **params: Any) -> list[M]:
        """Every item of a paginated listing, fetched a full page at a time."""
        items: list[M] = []
        while True:
            data = await self.get(path, limit=PAGE_MAX, offset=len(items), **params)
            page = self.page(model, data)
            items += page.items
            if not page.items or len(items) >= page.total:
                return items
