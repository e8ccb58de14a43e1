"""A provider whose behaviour a test scripts call by call (an in-process fake, no patching)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Literal

import anyio

from core.config import Settings, parse_settings
from core.errors import ModelReinsError
from core.models import Usage
from core.providers import (
    Completion,
    Provider,
    ProviderCall,
    ProviderConfig,
    StreamEnd,
    StreamEvent,
    TextDelta,
)


class ScriptedConfig(ProviderConfig):
    type: Literal["scripted"] = "scripted"


@dataclass
class Step:
    """One call's behaviour: deltas to emit, then an error to raise (or success)."""

    deltas: list[str] = field(default_factory=lambda: ["ok"])
    error: ModelReinsError | None = None
    gate: anyio.Event | None = None


class ScriptedProvider(Provider):
    config_model = ScriptedConfig

    def __init__(self, name: str, steps: list[Step] | None = None) -> None:
        super().__init__(name, ScriptedConfig(), http=None)  # type: ignore[arg-type]
        self.steps = list(steps or [])
        self.calls: list[ProviderCall] = []
        self.ping_error: ModelReinsError | None = None

    def _next(self, call: ProviderCall) -> Step:
        self.calls.append(call)
        return self.steps.pop(0) if self.steps else Step()

    async def complete(self, call: ProviderCall) -> Completion:
        step = self._next(call)
        if step.gate is not None:
            await step.gate.wait()
        if step.error is not None:
            raise step.error
        text = "".join(step.deltas)
        return Completion(text=text, model=f"{self.name}-model", usage=Usage(input_tokens=1,
                                                                            output_tokens=2))

    async def stream(self, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
        step = self._next(call)
        for delta in step.deltas:
            yield TextDelta(delta)
        if step.error is not None:
            raise step.error
        yield StreamEnd(model=f"{self.name}-model", usage=Usage(input_tokens=1, output_tokens=2))

    async def ping(self) -> None:
        if self.ping_error is not None:
            raise self.ping_error


def settings_for(**roles: str) -> Settings:
    """Settings naming providers and their role: ``a="default", b="fallback", c=""``."""
    providers = {
        name: {"type": "echo", "default": role == "default", "fallback": role == "fallback"}
        for name, role in roles.items()
    }
    return parse_settings({"providers": providers}, env={})
