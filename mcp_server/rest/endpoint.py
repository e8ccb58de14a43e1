"""The endpoint table: one row per REST operation, from which both the Starlette routes and
the OpenAPI document are built.

A row names the method and path, the handler, the scope a caller needs (``None``: public),
the models the request is validated with (body, query) and the success response is
serialized from, and the statuses it may answer. The handler is a thin translation onto
the engine: it gets an :class:`ApiCall` (validated input, the caller, the engine) and
returns a pydantic model (sent as JSON with the row's status), ``None`` (204), or a
ready :class:`~starlette.responses.Response` (SSE, HTML). It raises
:class:`~core.errors.ModelReinsError` s; mapping them to responses happens once, app-wide
(:mod:`mcp_server.rest.errors`).

Scopes are checked here for every row, before the body is read; bearer authentication
itself happens earlier, in :class:`~mcp_server.auth.BearerAuth`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from core.config import ServerConfig
from core.engine import Engine
from core.errors import Unauthorized
from core.principal import SCOPES, Principal
from mcp_server.app import AppContext, Contribution
from mcp_server.auth import PrincipalUser
from mcp_server.rest.parsing import parse_body, parse_query

__all__ = [
    "API_PREFIX",
    "JSON",
    "ApiCall",
    "ApiRoute",
    "Endpoint",
    "Handler",
    "contribution",
]

API_PREFIX = "/api"
JSON = "application/json"

M = TypeVar("M", bound=BaseModel)

Handler = Callable[["ApiCall"], Awaitable[BaseModel | Response | None]]


@dataclass(frozen=True)
class Endpoint:
    """One REST operation: its row in the table."""

    method: str
    path: str
    handler: Handler
    scope: str | None
    """The scope a caller needs (see :data:`core.principal.SCOPES`); None: public."""
    response: type[BaseModel] | None = None
    """The success body's model; None for an empty (204) answer."""
    status: int = 200
    more_statuses: tuple[int, ...] = ()
    """Other success statuses, with the same body (202: a dispatch still running)."""
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    errors: tuple[int, ...] = ()
    """Statuses beyond the ones every endpoint of its kind may answer (see
    :func:`mcp_server.rest.openapi.error_statuses`)."""
    media: tuple[str, ...] = ()
    """Other media types of the success answer, documented as strings (``text/html``)."""
    error_media: tuple[str, ...] = ()
    """Other media types error answers may come in (the view's HTML 410 page)."""
    head: bool = True
    """Whether a GET row answers HEAD too. Off where a GET has an effect (one-time views)."""
    tag: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    """Headers of the success answer when the handler returns a model."""
    events: tuple[tuple[str, type[BaseModel]], ...] = ()
    """For a success answer that may be ``text/event-stream``: each event name with the model
    of its (JSON) data."""
    needs_token: bool = False
    """With ``scope=None``: a caller must still authenticate (worker-protocol rows, whose
    worker tokens carry no scope); the handler decides what the caller may do."""
    empty_body: bool = False
    """An empty body stands for ``{}`` (the worker protocol, DESIGN §7)."""
    body_media: str = JSON
    """How the body comes. JSON is validated as ``body`` before the handler runs; any
    other media (``multipart/form-data``) is left unread for the handler to stream, and
    ``body`` only documents its fields."""

    def __post_init__(self) -> None:
        if self.scope is not None and self.scope not in SCOPES:
            raise ValueError(f"{self.method} {self.path}: unknown scope '{self.scope}'")

    @property
    def operation_id(self) -> str:
        return self.handler.__name__.strip("_")

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        return doc.split("\n\n", 1)[0].replace("\n", " ")

    @property
    def description(self) -> str:
        doc = inspect.getdoc(self.handler) or ""
        return doc.partition("\n\n")[2]


@dataclass(frozen=True)
class ApiCall:
    """One request as a handler sees it: validated input, the caller, the engine."""

    request: Request
    engine: Engine
    config: ServerConfig
    body: BaseModel | None = None
    query: BaseModel | None = None
    caller: Principal | None = None

    @property
    def principal(self) -> Principal:
        if self.caller is None:
            raise Unauthorized("no authenticated caller on this request")
        return self.caller

    def path(self, name: str) -> str:
        return str(self.request.path_params[name])

    def body_as(self, model: type[M]) -> M:
        assert isinstance(self.body, model), f"the body is not a {model.__name__}"
        return self.body

    def query_as(self, model: type[M]) -> M:
        assert isinstance(self.query, model), f"the query is not a {model.__name__}"
        return self.query

    def base_url(self) -> str:
        """The URL clients reach this server by: ``server.publicUrl``, else this request's."""
        return (self.config.public_url or str(self.request.base_url)).rstrip("/")


def _principal(request: Request) -> Principal | None:
    user = request.scope.get("user")
    return user.principal if isinstance(user, PrincipalUser) else None


def _render(endpoint: Endpoint, result: BaseModel | Response | None) -> Response:
    if isinstance(result, Response):
        return result
    headers = dict(endpoint.headers)
    if result is None:
        return Response(status_code=204, headers=headers)
    return Response(result.model_dump_json(by_alias=True), status_code=endpoint.status,
                    headers=headers, media_type="application/json")


def _empty_query(model: type[BaseModel] | None) -> tuple[bool, BaseModel | None]:
    """What an empty query string parses to, when it can be computed once and shared (the
    model is frozen and accepts no parameters): ``(True, value)``; else ``(False, None)``."""
    if model is None:
        return True, None
    if not model.model_config.get("frozen"):
        return False, None
    try:
        return True, model.model_validate({})
    except ValidationError:
        return False, None


@dataclass
class _Runner:
    endpoint: Endpoint
    ctx: AppContext

    def __post_init__(self) -> None:
        self.shared_empty, self.empty_query = _empty_query(self.endpoint.query)

    async def __call__(self, request: Request) -> Response:
        endpoint = self.endpoint
        caller = _principal(request)
        if endpoint.scope is not None or endpoint.needs_token:
            if caller is None:
                raise Unauthorized("no authenticated caller on this request")
            if endpoint.scope is not None:
                caller.require(endpoint.scope)
        if self.shared_empty and not request.scope.get("query_string"):
            query = self.empty_query
        else:
            query = parse_query(request.query_params, endpoint.query)
        body = None
        if endpoint.body_media == JSON:
            body = await parse_body(request, endpoint.body, self.ctx.config.max_body_bytes,
                                    empty_is_object=endpoint.empty_body)
        call = ApiCall(request, self.ctx.engine(), self.ctx.config, body, query, caller)
        return _render(endpoint, await endpoint.handler(call))


class ApiRoute(Route):
    """Every method of one path: one Starlette route, so a wrong method is 405 with an
    ``Allow`` header naming all the right ones."""

    def __init__(self, path: str, endpoints: Sequence[Endpoint], ctx: AppContext) -> None:
        self.endpoints = list(endpoints)
        runners = {e.method: _Runner(e, ctx) for e in self.endpoints}
        if any(e.method == "GET" and e.head for e in self.endpoints):
            runners["HEAD"] = runners["GET"]

        async def dispatch(request: Request) -> Response:
            return await runners[request.method](request)

        dispatch.__name__ = "_".join(e.operation_id for e in self.endpoints)
        super().__init__(path, dispatch, methods=list(runners))
        assert self.methods is not None
        # Route adds HEAD to every GET; keep it only where the table asked for it.
        self.methods &= set(runners)


@dataclass(frozen=True)
class _Grouped:
    paths: dict[str, list[Endpoint]] = field(default_factory=dict)

    def add(self, endpoint: Endpoint) -> None:
        self.paths.setdefault(endpoint.path, []).append(endpoint)


def contribution(ctx: AppContext, endpoints: Sequence[Endpoint], *,
                 protected: tuple[str, ...] = (), **extra: Any) -> Contribution:
    """A route module's :class:`~mcp_server.app.Contribution` from its table rows: one
    :class:`ApiRoute` per path, in table order; ``/api`` (and any ``protected`` prefix
    outside it) needs a token except on public rows."""
    grouped = _Grouped()
    for endpoint in endpoints:
        grouped.add(endpoint)
    routes: list[BaseRoute] = [ApiRoute(path, rows, ctx) for path, rows in grouped.paths.items()]
    public = tuple(e.path for e in endpoints if e.scope is None and not e.needs_token
                   and e.path.startswith(API_PREFIX + "/"))
    return Contribution(routes=routes, protected=(API_PREFIX, *protected), public=public,
                        **extra)
