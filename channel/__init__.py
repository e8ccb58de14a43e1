"""The worker edge: the worker client (§7), the headless runner, the Python SDK.

``from channel import Worker`` is the SDK; :class:`WorkerClient` speaks the wire protocol
for anything else that serves jobs.
"""

from __future__ import annotations

from channel.client import WorkerClient
from channel.sdk import Worker

__all__ = ["Worker", "WorkerClient"]
