"""``fleet``: a prompt dispatched here becomes a job for the worker fleet.

The provider itself only describes the job (tags, capability, urgency, the timeout it may
take) and hands it to the :data:`~core.providers.base.JobRunner` the engine injects, which
submits it to the queue and waits for a worker's result. This package never imports the
queue: without a runner (a process with no queue) every call fails with NO_WORKER.

.. code-block:: yaml

    fleet: {type: fleet, tags: "code,review", capability: code, timeout: 600000}
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field

from core.errors import NoWorker
from core.providers.base import (
    Completion,
    JobRequest,
    JobRunner,
    Provider,
    ProviderCall,
    ProviderConfig,
)

__all__ = ["FleetConfig", "FleetProvider"]


def _comma_list(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return [part.strip() for part in value.split(",") if part.strip()]


class FleetConfig(ProviderConfig):
    type: Literal["fleet"] = "fleet"
    tags: Annotated[list[str], BeforeValidator(_comma_list)] = Field(
        default_factory=list, description="Tags of every job (a list or one comma string).")
    capability: str | None = Field(default=None, description="Capability a worker must have.")
    urgency: Literal["low", "normal", "high"] = "normal"
    effort: Literal["trivial", "quick", "standard", "deep", "critical"] = "standard"


class FleetProvider(Provider):
    """Serves each call as a queue job; ``timeout`` bounds the wait for its result."""

    config_model = FleetConfig

    _runner: JobRunner | None = None

    def use_job_runner(self, runner: JobRunner) -> None:
        self._runner = runner

    def request(self, call: ProviderCall) -> JobRequest:
        """The job a call becomes: the last message is the prompt; the system prompt,
        earlier turns and options travel in the job's input."""
        cfg = self.config
        assert isinstance(cfg, FleetConfig)
        *earlier, last = call.messages
        extra: dict[str, Any] = {}
        system = call.system or cfg.system_prompt
        if system:
            extra["system"] = system
        if earlier:
            extra["messages"] = [m.model_dump() for m in earlier]
        options = {**cfg.options, **call.options}
        if options:
            extra["options"] = options
        return JobRequest(
            provider=self.name, prompt=last.content, timeout_s=cfg.timeout_s,
            input=extra or None, tags=tuple(cfg.tags),
            capability=cfg.capability, model=call.model or cfg.model,
            urgency=cfg.urgency, effort=cfg.effort,
        )

    async def complete(self, call: ProviderCall) -> Completion:
        if self._runner is None:
            raise NoWorker(f"provider '{self.name}' needs the job queue, which this "
                           "process does not run", provider=self.name)
        return await self._runner(self.request(call))

    async def ping(self) -> None:
        if self._runner is None:
            raise NoWorker(f"provider '{self.name}' is not connected to a job queue",
                           provider=self.name)
