"""The Python SDK: a worker in ten lines.

.. code-block:: python

    from channel import Worker

    def handle_job(job):
        return f"triaged: {job['prompt'][:40]}"

    Worker(name="my-triager").run(handler=handle_job)

The worker heartbeats every 5 s (also while a handler runs), long-polls its inbox, claims
each job assigned to its name and calls the handler with the job (a dict: ``id``,
``prompt``, ``input``, ``tags``, ``timeout_s``…). The handler's return value closes the job
``done``; an exception fails it with the traceback as its result. A handler is a plain
function (run in a thread of its own, so it may block) or a coroutine function. The job's
``timeout_s`` bounds it: an async handler is cancelled then; a sync one is abandoned to
finish in its thread (Python cannot kill a thread) while the job is failed as timed out.
Those threads are daemons, so a handler stuck for good never keeps the process alive once
the worker has stopped.

The server and token come from the arguments, else ``MODELREINS_URL`` /
``MODELREINS_TOKEN``, else ``modelreins config set url|token``; tags from the argument,
else ``MODELREINS_WORKER_TAGS``. It rides on the same client and runner as
``modelreins worker``.
"""

from __future__ import annotations

import inspect
import os
import threading
import traceback
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any

import anyio

from channel.client import Job, WorkerClient
from channel.jobs import Outcome
from channel.runner import Runner, RunnerConfig
from channel.worker import resolve_server, run_until_signalled
from core.config import home_dir

__all__ = ["Handler", "HandlerExecutor", "Worker"]

Handler = Callable[[Job], Any] | Callable[[Job], Awaitable[Any]]
"""``handler(job) -> result``, plain or async."""


class HandlerExecutor:
    """Serves jobs with a handler function (see the module doc)."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)

    async def __call__(self, job: Job, timeout_s: float) -> Outcome:
        try:
            with anyio.fail_after(timeout_s):
                if self.is_async:
                    result = await self.handler(job)
                else:
                    result = await _in_daemon_thread(partial(self.handler, job),
                                                     f"job-{job.get('id')}")
        except TimeoutError:
            return Outcome.failed(f"timed out after {timeout_s:g} s: the handler did not "
                                  "return in time")
        except Exception:
            return Outcome.failed(traceback.format_exc())
        return Outcome.done("" if result is None else result)


async def _in_daemon_thread(call: Callable[[], Any], name: str) -> Any:
    """``call()`` in a new daemon thread; cancelling the wait abandons the thread.

    Not ``anyio.to_thread``: its pool threads are joined at interpreter exit, so one stuck
    handler would keep a stopped worker's process alive."""
    finished = anyio.Event()
    token = anyio.lowlevel.current_token()
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # handed to the awaiting task
            outcome["error"] = exc
        finally:
            with suppress(RuntimeError):  # the loop is gone: nobody waits any more
                anyio.from_thread.run_sync(finished.set, token=token)

    threading.Thread(target=target, name=name, daemon=True).start()
    await finished.wait()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


class Worker:
    """A silicon worker served by a Python function."""

    def __init__(
        self, name: str, url: str | None = None, token: str | None = None,
        tags: str | Sequence[str] | None = None, capacity: int = 1, *,
        heartbeat_s: float = 5.0, grace_s: float = 20.0,
    ) -> None:
        self.name = name
        self.url, self.token = resolve_server(url, token, home_dir())
        if tags is None:
            tags = os.environ.get("MODELREINS_WORKER_TAGS") or None
        self.tags = tags if tags is None or isinstance(tags, str) else ",".join(tags)
        self.config = RunnerConfig(capacity=capacity, tags=self.tags, heartbeat_s=heartbeat_s,
                                   grace_s=grace_s, details={"mode": "sdk"})
        self._runner: Runner | None = None
        self._stop_requested: bool | None = None

    def run(self, handler: Handler) -> None:
        """Serve jobs with ``handler`` until SIGTERM or Ctrl-C (blocking)."""
        anyio.run(self._serve, handler, True)

    async def serve(self, handler: Handler) -> None:
        """Serve jobs with ``handler`` until :meth:`stop` (for code already in a loop)."""
        await self._serve(handler, False)

    def stop(self, *, force: bool = False) -> None:
        """Stop serving: no more claims; running handlers finish (``force``: are cancelled)."""
        if self._runner is not None:
            self._runner.stop(force=force)
        else:
            self._stop_requested = force or bool(self._stop_requested)

    async def _serve(self, handler: Handler, signals: bool) -> None:
        async with WorkerClient(self.url, self.token, self.name) as client:
            runner = self._runner = Runner(client, HandlerExecutor(handler), self.config)
            if self._stop_requested is not None:
                runner.stop(force=self._stop_requested)
            try:
                if signals:
                    await run_until_signalled(runner)
                else:
                    await runner.run()
            finally:
                self._runner = None
