"""A worker-protocol client written only from DESIGN §7: plain HTTP with httpx2, no import
from the server, the queue or any other ModelReins code — what an existing worker SDK does.
"""

from __future__ import annotations

from typing import Any

import httpx2


class ProtocolWorker:
    """One worker speaking §7 with its own token."""

    def __init__(self, base_url: str, name: str, token: str) -> None:
        self.name = name
        self.http = httpx2.AsyncClient(
            base_url=base_url, trust_env=False, timeout=60,
            headers={"Authorization": f"Bearer {token}"})  # json= adds the Content-Type

    async def aclose(self) -> None:
        await self.http.aclose()

    async def heartbeat(self, *, instance: str | None = None, status: str = "active",
                        tags: str | None = None, capacity: int | None = None,
                        details: dict[str, Any] | None = None) -> httpx2.Response:
        body: dict[str, Any] = {"instance": instance or self.name, "status": status,
                                "details": details, "tags": tags, "worker_type": "silicon"}
        if capacity is not None:
            body["capacity"] = capacity
        return await self.http.put("/presence", json=body)

    async def inbox(self, *, worker: str | None = None, wait: float | None = None
                    ) -> httpx2.Response:
        params: dict[str, Any] = {"worker": worker or self.name, "status": "pending"}
        if wait is not None:
            params["wait"] = wait
        return await self.http.get("/my-jobs", params=params)

    async def jobs(self, *, wait: float | None = None) -> list[dict[str, Any]]:
        response = await self.inbox(wait=wait)
        assert response.status_code == 200, response.text
        jobs: list[dict[str, Any]] = response.json()["jobs"]
        return jobs

    async def claim(self, job_id: int, *, worker: str | None = None) -> httpx2.Response:
        return await self.http.post(f"/jobs/{job_id}/claim",
                                    json={"worker": worker or self.name})

    async def close(self, job_id: int, result: Any, status: str = "done") -> httpx2.Response:
        return await self.http.post(f"/jobs/{job_id}/close",
                                    json={"result": result, "status": status})

    async def review(self, **fields: Any) -> httpx2.Response:
        return await self.http.post("/review", json={"created_by": f"worker:{self.name}",
                                                     **fields})

    async def upload(self, content: bytes, *, filename: str = "out.txt",
                     content_type: str = "text/plain", **fields: str) -> httpx2.Response:
        return await self.http.post(
            "/artifacts/upload", files={"file": (filename, content, content_type)},
            data=fields)

    async def serve_once(self, answer: Any = None, *, wait: float = 20) -> dict[str, Any]:
        """Long-poll the inbox, claim the first job, close it with ``answer`` (default:
        the prompt upper-cased); the closed job."""
        while True:
            for job in await self.jobs(wait=wait):
                claimed = await self.claim(job["id"])
                if claimed.status_code != 200:
                    continue
                result = job["prompt"].upper() if answer is None else answer
                closed = await self.close(job["id"], result)
                assert closed.status_code == 200, closed.text
                done: dict[str, Any] = closed.json()
                return done
