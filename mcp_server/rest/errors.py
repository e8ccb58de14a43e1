"""Every REST failure as the §5 body ``{"error": {code, message, provider?, retryAfter?,
details?}}``, mapped once, app-wide, by Starlette exception handlers.

* a :class:`~core.errors.ModelReinsError` (raised by the engine or by request parsing)
  keeps its code and status; with ``retryAfter`` it also carries a ``Retry-After`` header;
* Starlette's own 404 (no route) and 405 (wrong method, with ``Allow``) get the same body;
* anything else is a bug: 500 with a generic ``INTERNAL`` body. The traceback never reaches
  the client; Starlette re-raises after answering, so the server logs it.

Problems of the request itself all carry ``VALIDATION_ERROR``, including an oversized body
(HTTP 413) and a body that is not JSON (HTTP 415), so clients can branch on the code alone.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import Field, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from core.errors import (
    Conflict,
    Forbidden,
    Gone,
    ModelReinsError,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)
from core.models import WireModel

__all__ = [
    "EXCEPTION_HANDLERS",
    "ApiError",
    "BodyTooLarge",
    "ErrorBody",
    "MethodNotAllowed",
    "UnsupportedMediaType",
    "error_json",
    "invalid",
]


class ApiError(WireModel):
    """The inner object of every error body (DESIGN §5)."""

    code: str = Field(description="VALIDATION_ERROR, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, "
                                  "CONFLICT, GONE, RATE_LIMITED, PROVIDER_ERROR, NO_WORKER, "
                                  "PROVIDER_TIMEOUT, METHOD_NOT_ALLOWED or INTERNAL.")
    message: str
    provider: str | None = Field(default=None, description="The provider that failed.")
    retry_after: float | None = Field(default=None, description="Seconds to wait (429).")
    details: list[dict[str, Any]] | dict[str, Any] | None = Field(
        default=None, description="VALIDATION_ERROR: one {path, problem} per problem.")


class ErrorBody(WireModel):
    """What every failed request answers."""

    error: ApiError


class BodyTooLarge(ValidationFailed):
    """The request body exceeds ``server.maxBodyBytes``."""

    http_status = 413


class UnsupportedMediaType(ValidationFailed):
    """A request body that is not declared ``application/json``."""

    http_status = 415


class MethodNotAllowed(ModelReinsError):
    """The path exists, the method does not (the ``Allow`` header lists those that do)."""

    code = "METHOD_NOT_ALLOWED"
    http_status = 405


_PROBLEM_TEXT = {
    "extra_forbidden": "unknown field",
    "missing": "required",
}


def _path(loc: tuple[int | str, ...], root: str) -> str:
    return ".".join(str(p) for p in loc) or root


def invalid(exc: ValidationError, what: str) -> ValidationFailed:
    """A pydantic failure as VALIDATION_ERROR: every field path and problem in ``details``,
    unknown fields named in the message. ``what`` is ``body`` or ``query``."""
    root = f"({what})"
    details: list[dict[str, Any]] = []
    unknown: list[str] = []
    for err in exc.errors(include_url=False, include_input=False):
        path = _path(err["loc"], root)
        if err["type"] == "json_invalid":
            problem = f"malformed JSON: {err.get('ctx', {}).get('error', err['msg'])}"
        else:
            problem = _PROBLEM_TEXT.get(err["type"], err["msg"])
        if err["type"] == "extra_forbidden":
            unknown.append(path)
        details.append({"path": path, "problem": problem})
    parts = [f"unknown field{'s' if len(unknown) > 1 else ''} " + ", ".join(
        f"'{u}'" for u in unknown)] if unknown else []
    parts += [d["problem"] if d["path"] == root else f"{d['path']}: {d['problem']}"
              for d in details if d["path"] not in unknown]
    return ValidationFailed(f"invalid {what}: " + "; ".join(parts), details=details)


def error_json(exc: ModelReinsError, headers: Mapping[str, str] | None = None
               ) -> JSONResponse:
    """The §5 response for ``exc``; a ``retryAfter`` becomes a ``Retry-After`` header too."""
    merged = dict(headers or {})
    if exc.retry_after is not None:
        merged["Retry-After"] = str(max(0, math.ceil(exc.retry_after)))
    return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status, headers=merged)


_BY_STATUS: dict[int, type[ModelReinsError]] = {
    400: ValidationFailed, 401: Unauthorized, 403: Forbidden, 404: NotFound,
    405: MethodNotAllowed, 409: Conflict, 410: Gone, 413: BodyTooLarge,
    415: UnsupportedMediaType, 429: RateLimited,
}


async def _on_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, ModelReinsError)
    return error_json(exc)


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    where = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        mapped: ModelReinsError = NotFound(f"no such endpoint: {where}")
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        mapped = MethodNotAllowed(f"method not allowed: {where} (allowed: {allowed})")
    else:
        mapped = _BY_STATUS.get(exc.status_code, ModelReinsError)(exc.detail)
        if mapped.http_status != exc.status_code:
            body = {"error": {"code": mapped.code, "message": exc.detail}}
            return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
    return error_json(mapped, exc.headers)


async def _on_crash(_: Request, exc: Exception) -> Response:
    # Deliberately generic: what went wrong is for the server log (Starlette re-raises the
    # exception after this response, and the server logs it with its traceback).
    return error_json(ModelReinsError(
        "internal error: the request failed unexpectedly; the server log has the details"))


EXCEPTION_HANDLERS: dict[Any, ExceptionHandler] = {
    ModelReinsError: _on_error,
    HTTPException: _on_http,
    Exception: _on_crash,
}
"""Starlette ``exception_handlers`` for the whole app."""
