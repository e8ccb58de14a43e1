"""The REST edge's machinery: the endpoint table, request parsing, error mapping, OpenAPI.

Route modules (:mod:`mcp_server.routes`) declare their endpoints with
:class:`~mcp_server.rest.endpoint.Endpoint`; everything else here is shared by all of them.
This package imports nothing at package level, so :mod:`mcp_server.app` can import its error
handlers while route modules import the app.
"""

from __future__ import annotations

__all__: list[str] = []
