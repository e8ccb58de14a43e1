"""Turning a request's query string and body into the endpoint's pydantic models.

Bodies are JSON objects declared ``Content-Type: application/json`` (or ``…+json``):
another type is 415, malformed JSON, a wrong type or an unknown field is 400, and a body
over ``server.maxBodyBytes`` is 413 — checked against ``Content-Length`` before reading and
counted while reading, so a chunked body cannot get past it either. All of them carry the
code ``VALIDATION_ERROR``. An endpoint without a body model accepts an empty body or ``{}``.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams
from starlette.requests import Request

from core.errors import ValidationFailed, field_error
from mcp_server.rest.errors import BodyTooLarge, UnsupportedMediaType, invalid

__all__ = ["is_json", "parse_body", "parse_query", "read_body"]

M = TypeVar("M", bound=BaseModel)

_NO_BODY = (b"", b"{}")


def is_json(content_type: str | None) -> bool:
    """``application/json`` or an ``application/…+json`` type, any parameters."""
    mime = (content_type or "").partition(";")[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/")
                                          and mime.endswith("+json"))


def _too_large(limit: int) -> BodyTooLarge:
    return BodyTooLarge(f"request body too large: the limit is {limit} bytes",
                        details=[{"path": "(body)", "problem": f"larger than {limit} bytes"}])


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) past ``limit`` bytes without buffering the excess."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise field_error("Content-Length", "not a byte count")
        if int(declared) > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, model: type[M] | None, limit: int, *,
                     empty_is_object: bool = False) -> M | None:
    """The body validated as ``model``; for ``model=None``, checks that there is none.
    With ``empty_is_object`` an empty body (any Content-Type) is validated as ``{}``."""
    raw = await read_body(request, limit)
    content_type = request.headers.get("content-type")
    if empty_is_object and model is not None and not raw.strip():
        raw, content_type = b"{}", "application/json"
    if model is None:
        if raw.strip() in _NO_BODY:
            return None
        if not is_json(content_type):
            raise UnsupportedMediaType(
                "this endpoint takes no request body",
                details=[{"path": "(body)", "problem": "must be empty"}])
        raise field_error("(body)", "this endpoint takes no request body (or only {})")
    if not raw:
        raise field_error("(body)", "a JSON object is required")
    if not is_json(content_type):
        shown = content_type or "none"
        raise UnsupportedMediaType(
            f"request body must be application/json, not {shown}",
            details=[{"path": "Content-Type", "problem": f"'{shown}' is not application/json"}])
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise invalid(exc, "body") from exc


def parse_query(params: QueryParams, model: type[M] | None) -> M | None:
    """The query string validated as ``model`` (unknown or repeated parameters are errors);
    for ``model=None``, checks that there is none."""
    repeated = sorted({k for k, _ in params.multi_items() if len(params.getlist(k)) > 1})
    if repeated:
        raise ValidationFailed(
            "query parameters given more than once: " + ", ".join(repeated),
            details=[{"path": k, "problem": "given more than once"} for k in repeated])
    if model is None:
        if params:
            names = ", ".join(sorted(params))
            raise ValidationFailed(f"this endpoint takes no query parameters (got {names})",
                                   details=[{"path": k, "problem": "unknown parameter"}
                                            for k in sorted(params)])
        return None
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        raise invalid(exc, "query") from exc
