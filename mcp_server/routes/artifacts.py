"""``POST /artifacts/upload`` (worker protocol) and ``GET /s/{slug}``: files workers
produce, stored under ``$MODELREINS_HOME/artifacts/`` (0600) and served to authorized
readers — worker tokens and tokens with ``jobs:read``. Uploads are size-limited by
``queue.artifactMaxBytes`` while they stream (413 the moment they pass it); expired
artifacts are not served."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from starlette.responses import FileResponse, Response

from core.artifacts import Artifact
from core.clock import from_iso
from core.errors import PayloadTooLarge, field_error
from core.principal import Principal
from mcp_server.app import AppContext, Contribution
from mcp_server.rest.endpoint import ApiCall, Endpoint, contribution
from mcp_server.rest.multipart import FIELD_LIMIT, read_multipart

__all__ = ["ENDPOINTS", "INLINE_TYPES", "UploadForm", "contribute"]

INLINE_TYPES = frozenset({"text/plain", "application/json", "application/pdf", "image/png",
                          "image/jpeg", "image/gif", "image/webp"})
"""Shown in the browser; anything else (HTML, SVG…) downloads, so an upload can never run
script on this server's origin."""


class UploadForm(BaseModel):
    """The multipart fields of an upload."""

    file: bytes = Field(description="The file.")
    job_id: int | None = Field(default=None, description="The job it belongs to.")
    review_id: str | None = Field(default=None, description="The review it belongs to.")
    filename: str | None = Field(default=None, description="Overrides the part's filename.")
    expires_at: datetime | None = Field(default=None, description="ISO 8601; not served "
                                                                  "after, then deleted.")


def _may(principal: Principal, scope: str) -> None:
    if principal.kind != "worker":
        principal.require(scope)


def _int(fields: dict[str, str], name: str) -> int | None:
    raw = fields.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise field_error(name, "must be an integer")
    return int(raw)


def _moment(fields: dict[str, str], name: str) -> datetime | None:
    raw = fields.get(name, "").strip()
    if not raw:
        return None
    try:
        return from_iso(raw)
    except ValueError as exc:
        raise field_error(name, "must be an ISO 8601 date-time") from exc


async def upload(call: ApiCall) -> Artifact:
    """Upload an artifact (worker protocol)

    `multipart/form-data`: `file`, and optionally `job_id`, `review_id`, `filename`,
    `expires_at`. Answers `{slug, url: "/s/<slug>", content_type, size_bytes}`. Larger than
    `queue.artifactMaxBytes`: 413."""
    principal = call.principal
    _may(principal, "jobs:write")
    artifacts = call.engine.artifacts
    declared = call.request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > artifacts.max_bytes + FIELD_LIMIT + 4096:
        raise PayloadTooLarge(f"artifact exceeds {artifacts.max_bytes} bytes")
    with artifacts.begin() as sink:
        form = await read_multipart(call.request, lambda _part: sink)
        if form.file is None:
            raise field_error("file", "required (a file part named 'file')")
        fields = form.fields
        return await artifacts.commit(
            sink, filename=fields.get("filename") or form.file.filename,
            content_type=form.file.content_type, job_id=_int(fields, "job_id"),
            review_id=fields.get("review_id") or None,
            expires_at=_moment(fields, "expires_at"), created_by=principal.actor)


async def serve(call: ApiCall) -> Response:
    """Download an artifact

    For worker tokens and tokens with `jobs:read`. Unknown or expired: 404."""
    _may(call.principal, "jobs:read")
    stored = await call.engine.artifacts.get(call.path("slug"))
    art = stored.artifact
    disposition = "inline" if art.content_type in INLINE_TYPES else "attachment"
    return FileResponse(
        stored.path, media_type=art.content_type, filename=art.filename or art.slug,
        content_disposition_type=disposition,
        headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-cache",
                 "Content-Security-Policy": "sandbox; default-src 'none'"})


ENDPOINTS = [
    Endpoint("POST", "/artifacts/upload", upload, None, Artifact, body=UploadForm,
             body_media="multipart/form-data", needs_token=True, errors=(413,),
             tag="worker protocol"),
    Endpoint("GET", "/s/{slug}", serve, None, None, media=("application/octet-stream",),
             needs_token=True, tag="worker protocol"),
]


def contribute(ctx: AppContext) -> Contribution:
    return contribution(ctx, ENDPOINTS, protected=("/artifacts", "/s"))
