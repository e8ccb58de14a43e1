"""The OpenAPI 3.1 document, generated from the endpoint table and its pydantic models.

Nothing here is written by hand: request bodies use the schema of the model the body is
validated with, success responses the schema of the model they are serialized from, query
parameters the fields of the query model, and every error status the §5
:class:`~mcp_server.rest.errors.ErrorBody`. All schemas live under
``#/components/schemas``; bearer auth is the global security requirement, lifted on the
public rows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from mcp_server.rest.endpoint import Endpoint
from mcp_server.rest.errors import ErrorBody

__all__ = ["REF", "SECURITY_SCHEME", "build_document", "error_statuses"]

REF = "#/components/schemas/{model}"
SECURITY_SCHEME = "bearerAuth"
_PATH_PARAM = re.compile(r"{(\w+)}")
_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})

ModelKey = tuple[type[BaseModel], JsonSchemaMode]
Refs = Mapping[tuple[Any, JsonSchemaMode], dict[str, Any]]


def error_statuses(endpoint: Endpoint) -> list[int]:
    """Every error status ``endpoint`` may answer, each with the §5 body."""
    statuses = {400, 500, *endpoint.errors}
    if endpoint.scope is not None or endpoint.needs_token:
        statuses |= {401, 403}
    if _PATH_PARAM.search(endpoint.path):
        statuses.add(404)
    if endpoint.body is not None or endpoint.method in _WITH_BODY:
        statuses |= {413, 415}
    return sorted(statuses)


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without pydantic's ``null`` branch: an absent parameter
    is how a query string says "none"."""
    options = schema.get("anyOf")
    rest = {k: v for k, v in schema.items() if k not in ("anyOf", "default")
            or (k == "default" and v is not None)}
    if isinstance(options, list):
        kept = [o for o in options if o != {"type": "null"}]
        if len(kept) == 1:
            return {**rest, **kept[0]}
        return {**rest, "anyOf": kept}
    return rest


def _parameters(endpoint: Endpoint, components: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(endpoint.path)
    ]
    if endpoint.query is None:
        return params
    schema = endpoint.query.model_json_schema(ref_template=REF, mode="validation")
    components.update(schema.get("$defs", {}))
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "schema": _not_null(prop)}
        if "description" in prop:
            param["description"] = prop["description"]
        params.append(param)
    return params


def _error_response(status: int, media: Sequence[str]) -> dict[str, Any]:
    content: dict[str, Any] = {
        "application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    content |= {m: {"schema": {"type": "string"}} for m in media}
    response: dict[str, Any] = {"description": HTTPStatus(status).phrase, "content": content}
    if status == 429:
        response["headers"] = {"Retry-After": {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 0}}}
    if status == 405:
        response["headers"] = {"Allow": {"schema": {"type": "string"}}}
    return response


def _event_schema(endpoint: Endpoint, refs: Refs) -> dict[str, Any]:
    """One Server-Sent Event of the stream (OpenAPI 3.1 reads a ``text/event-stream`` schema
    as describing each event): its name, and its data as JSON of the event's model."""
    return {"oneOf": [
        {"type": "object", "required": ["event", "data"], "properties": {
            "event": {"const": name},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": refs[(model, "serialization")]},
        }}
        for name, model in endpoint.events
    ]}


def _operation(endpoint: Endpoint, refs: Refs,
               components: dict[str, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag] if endpoint.tag else [],
        "parameters": _parameters(endpoint, components),
    }
    if endpoint.description:
        operation["description"] = endpoint.description
    if endpoint.body is not None:
        operation["requestBody"] = {"required": not endpoint.empty_body, "content": {
            endpoint.body_media: {"schema": refs[(endpoint.body, "validation")]}}}
    success: dict[str, Any] = {"description": HTTPStatus(endpoint.status).phrase}
    content: dict[str, Any] = {}
    if endpoint.response is not None:
        content["application/json"] = {"schema": refs[(endpoint.response, "serialization")]}
    if endpoint.events:
        content["text/event-stream"] = {"schema": _event_schema(endpoint, refs)}
    for media in endpoint.media:
        content[media] = {"schema": {"type": "string"}}
    if content:
        success["content"] = content
    responses = {str(endpoint.status): success}
    for status in endpoint.more_statuses:
        responses[str(status)] = {**success, "description": HTTPStatus(status).phrase}
    responses |= {str(s): _error_response(s, endpoint.error_media)
                  for s in error_statuses(endpoint)}
    operation["responses"] = responses
    if endpoint.scope is None and not endpoint.needs_token:
        operation["security"] = []
    elif endpoint.scope is not None:
        operation["x-scope"] = endpoint.scope
    return operation


def _model_keys(endpoints: Iterable[Endpoint]) -> list[ModelKey]:
    keys: dict[ModelKey, None] = {(ErrorBody, "serialization"): None}
    for endpoint in endpoints:
        if endpoint.body is not None:
            keys[(endpoint.body, "validation")] = None
        if endpoint.response is not None:
            keys[(endpoint.response, "serialization")] = None
        for _, model in endpoint.events:
            keys[(model, "serialization")] = None
    return list(keys)


def build_document(endpoints: Sequence[Endpoint], *, title: str, version: str,
                   description: str = "") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``endpoints``."""
    refs, defs = models_json_schema(_model_keys(endpoints), ref_template=REF)
    components: dict[str, Any] = dict(defs.get("$defs", {}))
    paths: dict[str, dict[str, Any]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = \
            _operation(endpoint, refs, components)
    tags = sorted({e.tag for e in endpoints if e.tag})
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "tags": [{"name": t} for t in tags],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(components.items())),
            "securitySchemes": {SECURITY_SCHEME: {
                "type": "http", "scheme": "bearer",
                "description": "An API token (`mr_…`): `Authorization: Bearer <token>`.",
            }},
        },
        "security": [{SECURITY_SCHEME: []}],
    }
