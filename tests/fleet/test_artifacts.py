"""Artifacts: uploaded by workers (multipart, streamed, size-limited), stored 0600 under the
home, served at ``/s/<slug>`` to authorized readers, gone once expired."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

from core.clock import iso
from tests.fleet.conftest import ARTIFACT_MAX, Fleet, error_of


def stored_files(fleet: Fleet) -> list[Path]:
    root = fleet.engine.artifacts.root
    return sorted(root.iterdir()) if root.exists() else []


async def test_upload_then_serve_to_authorized_readers(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    job = await fleet.submit()
    response = await worker.upload(b"hello artifact", filename="notes.txt",
                                   job_id=str(job["id"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["url"] == f"/s/{body['slug']}"
    assert (body["content_type"], body["size_bytes"]) == ("text/plain", 14)
    assert body["job_id"] == job["id"]
    (path,) = stored_files(fleet)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.parent == fleet.engine.home / "artifacts"
    served = await worker.http.get(body["url"])
    assert served.status_code == 200
    assert served.content == b"hello artifact"
    assert served.headers["content-type"].startswith("text/plain")
    assert served.headers["x-content-type-options"] == "nosniff"
    async with fleet.client("reader") as reader:
        assert (await reader.get(body["url"])).content == b"hello artifact"
    async with fleet.client("nobody") as nobody:
        error_of(await nobody.get(body["url"]), 403, "FORBIDDEN")
    async with fleet.client(None) as anonymous:
        error_of(await anonymous.get(body["url"]), 401, "UNAUTHORIZED")


async def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    at_limit = await worker.upload(b"x" * ARTIFACT_MAX)
    assert at_limit.status_code == 200, at_limit.text
    over = await worker.upload(b"x" * (ARTIFACT_MAX + 1))
    error_of(over, 413, "PAYLOAD_TOO_LARGE")
    assert len(stored_files(fleet)) == 1


async def test_a_script_type_downloads_instead_of_rendering(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    body = (await worker.upload(b"<script>alert(1)</script>", filename="x.html",
                                content_type="text/html")).json()
    served = await worker.http.get(body["url"])
    assert served.headers["content-disposition"].startswith("attachment")
    assert "sandbox" in served.headers["content-security-policy"]


async def test_an_expired_artifact_is_gone(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    expires = iso(fleet.clock.now() + timedelta(seconds=60))
    body = (await worker.upload(b"short-lived", expires_at=expires)).json()
    assert (await worker.http.get(body["url"])).status_code == 200
    fleet.clock.advance(61)
    error_of(await worker.http.get(body["url"]), 404, "NOT_FOUND")
    assert await fleet.engine.artifacts.sweep() == 1
    assert stored_files(fleet) == []


async def test_upload_input_errors(fleet: Fleet) -> None:
    worker = await fleet.enroll("w1")
    error_of(await worker.http.post("/artifacts/upload", json={"file": "x"}), 415)
    no_file = await worker.http.post("/artifacts/upload", data={"job_id": "1"},
                                     files={"other": ("a.txt", b"a", "text/plain")})
    error_of(no_file, 400, "VALIDATION_ERROR")
    bad_id = await worker.upload(b"a", job_id="seven")
    error_of(bad_id, 400, "VALIDATION_ERROR")
    bad_date = await worker.upload(b"a", expires_at="tomorrow")
    error_of(bad_date, 400, "VALIDATION_ERROR")
    assert stored_files(fleet) == []
    async with fleet.client("reader") as reader:
        upload = await reader.post("/artifacts/upload",
                                   files={"file": ("a.txt", b"a", "text/plain")})
    error_of(upload, 403, "FORBIDDEN")
    error_of(await worker.http.get("/s/unknown"), 404, "NOT_FOUND")
