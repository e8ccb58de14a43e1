"""``echo``: answers with its input. For smoke tests and demos, never a real answer."""

from __future__ import annotations

from typing import Literal

from core.models import Usage
from core.providers.base import Completion, Provider, ProviderCall, ProviderConfig

__all__ = ["EchoConfig", "EchoProvider"]


class EchoConfig(ProviderConfig):
    type: Literal["echo"] = "echo"


class EchoProvider(Provider):
    config_model = EchoConfig

    async def complete(self, call: ProviderCall) -> Completion:
        text = call.messages[-1].content if call.messages else ""
        words = sum(len(m.content.split()) for m in call.messages)
        return Completion(
            text=text,
            model=call.model or "echo",
            usage=Usage(input_tokens=words, output_tokens=len(text.split())),
        )

    async def ping(self) -> None:
        return None
