"""The remote engine: a ModelReins server's REST API as an :class:`~core.api.EngineAPI`.

:mod:`core.remote.wire` talks HTTP and translates failures; :mod:`core.remote.services`
holds ``engine.tasks``, ``engine.tokens`` and ``engine.audit``; :mod:`core.remote.queue`
``engine.queue`` and ``engine.fleet``; :mod:`core.remote.engine` the engine itself
(dispatch, streaming, history, providers, health).
"""

from __future__ import annotations

from core.remote.engine import DEFAULT_TIMEOUT_S, DISPATCH_TIMEOUT_S, RemoteEngine
from core.remote.services import RemoteAudit, RemoteTasks, RemoteTokens

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DISPATCH_TIMEOUT_S",
    "RemoteAudit",
    "RemoteEngine",
    "RemoteTasks",
    "RemoteTokens",
]
