"""The channel's worker client (the SDK's wire layer) against the real server: both sides of
the §7 protocol agree, including the long-poll extension and a clean sign-off."""

from __future__ import annotations

import anyio

from channel import WorkerClient
from tests.fleet.conftest import Fleet


async def test_the_sdk_client_serves_a_job_end_to_end(fleet: Fleet) -> None:
    registration = await fleet.register("w1", tags="code")
    token = (await fleet.take_view(registration["viewUrl"])).json()["token"]
    async with WorkerClient(fleet.url, token, "w1") as client:
        beat = await client.heartbeat(tags=" Code ,review")
        assert beat["tags"] == ["code", "review"]
        job = await fleet.submit(tags="code")
        with anyio.fail_after(10):
            (listed,) = await client.inbox(wait_s=5)
        assert listed["id"] == job["id"]
        claimed = await client.claim(job["id"])
        assert claimed is not None and claimed["status"] == "running"
        closed = await client.close(job["id"], "via the sdk")
        assert closed["status"] == "done"
        assert (await client.close(job["id"], "via the sdk"))["result"] == "via the sdk"
        reviewed = await client.review(type="note", title="t", content="c", job_id=job["id"])
        assert reviewed["ok"] is True
        uploaded = await client.upload_artifact(b"bytes", "a.bin", job_id=job["id"])
        assert uploaded["size_bytes"] == 5
        second = await fleet.submit(tags="code")
        await client.sign_off()
    async with fleet.client("reader") as reader:
        after = (await reader.get(f"/api/jobs/{second['id']}")).json()
    assert after["assignedTo"] is None
