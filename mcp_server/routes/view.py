"""``GET /view/{nonce}``: the one-time view of a freshly minted token.

The first GET shows the raw token — an HTML page for a browser, or ``{"token", "name",
"kind"}`` when the request prefers ``application/json`` — and erases it; every later GET,
an expired link and an unknown one answer 410 GONE, in the same two forms. Nothing here is
cached (``Cache-Control: no-store``) or logged; the link's nonce is in the URL, and so in
access logs, but the token never is. HEAD is refused (405) so that a link checker cannot
burn the view.
"""

from __future__ import annotations

import html

from starlette.responses import HTMLResponse, Response

from core.errors import Gone
from core.views import ViewedSecret
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.errors import error_json

__all__ = ["ENDPOINTS", "HEADERS", "contribute", "prefers_json"]

HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem}}
code{{display:block;padding:1rem;background:#f3f3f3;word-break:break-all;font-size:1.1rem}}</style>
</head><body><h1>{title}</h1>{body}</body></html>
"""


def _quality(accept: str, media: str) -> float:
    kind = media.split("/")[0]
    best = 0.0
    for item in accept.split(","):
        name, *params = [p.strip() for p in item.split(";")]
        if name.lower() not in (media, f"{kind}/*", "*/*"):
            continue
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        best = max(best, q)
    return best


def prefers_json(accept: str | None) -> bool:
    """Whether an ``Accept`` header ranks ``application/json`` above ``text/html`` (a tie,
    as with ``*/*`` or no header, goes to the page)."""
    if not accept:
        return False
    return _quality(accept, "application/json") > _quality(accept, "text/html")


def _shown(secret: ViewedSecret) -> str:
    return (f"<p>The {html.escape(secret.kind)} token <strong>{html.escape(secret.name)}"
            "</strong>:</p>"
            f"<code>{html.escape(secret.token)}</code>"
            "<p>This page shows it once and never again: copy it now. Only its hash is "
            "stored.</p>")


def _gone(exc: Gone) -> str:
    return (f"<p>This link no longer shows a token: {html.escape(exc.message)}.</p>"
            "<p>A token is shown once, within a short time of being created. If it was "
            "lost, revoke it and create another.</p>")


async def view(call: ApiCall) -> Response:
    """Show a new token once

    The first request shows the raw token (HTML, or JSON with `Accept: application/json`)
    and erases it; later requests, expired and unknown links answer 410 GONE. Needs no
    token: the link itself is the credential."""
    as_json = prefers_json(call.request.headers.get("accept"))
    try:
        secret = await call.engine.views.take(call.path("nonce"))
    except Gone as exc:
        if as_json:
            return error_json(exc, HEADERS)
        return HTMLResponse(_PAGE.format(title="Link expired", body=_gone(exc)),
                            status_code=410, headers=HEADERS)
    if as_json:
        return Response(secret.model_dump_json(), headers=HEADERS,
                        media_type="application/json")
    return HTMLResponse(_PAGE.format(title="Your ModelReins token", body=_shown(secret)),
                        headers=HEADERS)


ENDPOINTS = [
    Endpoint("GET", "/view/{nonce}", view, None, ViewedSecret, errors=(410,),
             media=("text/html",), error_media=("text/html",), head=False, tag="tokens"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS)
