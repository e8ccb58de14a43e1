"""Properties every row of the endpoint table has: who may call it, how it refuses bad
input, what an unknown id answers. Parametrized over the table itself, so a new row is
covered the moment it exists."""

from __future__ import annotations

import httpx2
import pytest

from mcp_server.rest.endpoint import Endpoint
from tests.rest.conftest import ENDPOINTS, PROTECTED, Api, concrete, endpoint_id, error_of

ROWS = [pytest.param(e, id=endpoint_id(e)) for e in ENDPOINTS]
PROTECTED_ROWS = [pytest.param(e, id=endpoint_id(e)) for e in PROTECTED]
WITH_PARAMS = [pytest.param(e, id=endpoint_id(e)) for e in PROTECTED if "{" in e.path]

LACKS = {"dispatch": "reader", "tasks:read": "other", "tasks:write": "reader",
         "admin": "user"}
"""For each scope, a caller without it."""


async def send(api: Api, endpoint: Endpoint, token: str | None, path: str | None = None,
               **kwargs: object) -> httpx2.Response:
    async with api.client(token) as client:
        return await client.request(endpoint.method, path or concrete(endpoint.path),
                                    **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("endpoint", PROTECTED_ROWS)
@pytest.mark.parametrize(("who", "message"), [
    pytest.param("", "missing bearer token", id="missing"),
    pytest.param("mr_" + "x" * 43, "invalid token", id="invalid"),
    pytest.param("revoked", "token revoked", id="revoked"),
])
async def test_every_protected_route_refuses_a_caller_without_a_valid_token(
    api: Api, endpoint: Endpoint, who: str, message: str,
) -> None:
    token = api.revoked if who == "revoked" else who
    response = await send(api, endpoint, token, json={})
    assert error_of(response, 401, "UNAUTHORIZED")["message"] == message
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("endpoint", PROTECTED_ROWS)
async def test_every_protected_route_refuses_a_token_without_its_scope(
    api: Api, endpoint: Endpoint,
) -> None:
    assert endpoint.scope is not None
    response = await send(api, endpoint, getattr(api, LACKS[endpoint.scope]), json={})
    error = error_of(response, 403, "FORBIDDEN")
    assert f"'{endpoint.scope}'" in error["message"]


@pytest.mark.parametrize("endpoint", ROWS)
async def test_every_route_refuses_an_unknown_query_parameter(
    api: Api, endpoint: Endpoint,
) -> None:
    response = await send(api, endpoint, api.admin, params={"bogus": "1"})
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert {"path": "bogus", "problem": "unknown field" if endpoint.query else
            "unknown parameter"} in error["details"]


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=endpoint_id(e)) for e in ENDPOINTS
                                      if e.query is not None])
@pytest.mark.parametrize(("param", "value"), [("limit", "0"), ("limit", "501"),
                                              ("limit", "ten"), ("offset", "-1")])
async def test_every_listing_refuses_bad_paging(
    api: Api, endpoint: Endpoint, param: str, value: str,
) -> None:
    response = await send(api, endpoint, api.admin, params={param: value})
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert [d["path"] for d in error["details"]] == [param]


@pytest.mark.parametrize("endpoint", [pytest.param(e, id=endpoint_id(e)) for e in ENDPOINTS
                                      if e.body is not None])
async def test_every_body_is_validated_against_its_model(api: Api, endpoint: Endpoint
                                                         ) -> None:
    response = await send(api, endpoint, api.admin, json={"surely": "unknown"})
    error = error_of(response, 400, "VALIDATION_ERROR")
    assert {"path": "surely", "problem": "unknown field"} in error["details"]
    assert "unknown field 'surely'" in error["message"]


@pytest.mark.parametrize("endpoint", WITH_PARAMS)
async def test_every_route_with_an_id_answers_404_for_an_unknown_one(
    api: Api, endpoint: Endpoint,
) -> None:
    response = await send(api, endpoint, api.admin, json={})
    error_of(response, 404, "NOT_FOUND")
