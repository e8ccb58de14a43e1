"""Background work an edge process runs next to its surface: the task scheduler."""

from __future__ import annotations

import inspect
import logging

from core.engine import Engine

__all__ = ["start_scheduler"]

log = logging.getLogger("modelreins.runtime")


async def start_scheduler(engine: Engine) -> bool:
    """Start the engine's scheduler loop in its task group; False if this engine has none.

    Safe in every process that shares a store: the scheduler's leader lease lets exactly one
    of them fire due runs.
    """
    start = getattr(engine, "start_scheduler", None)
    if start is None:
        log.info("this engine has no scheduler; scheduled tasks will not fire here")
        return False
    started = start()
    if inspect.isawaitable(started):
        await started
    return True
