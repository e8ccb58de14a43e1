"""Provider types as a registry: type name → implementing class, imported on first use.

Nothing outside this package branches on a provider's type; callers look the class up here.
"""

from __future__ import annotations

import importlib

from core.providers.base import (
    Completion,
    JobRequest,
    JobRunner,
    Provider,
    ProviderCall,
    ProviderConfig,
    StreamEnd,
    StreamEvent,
    TextDelta,
)

__all__ = [
    "PROVIDER_TYPES",
    "Completion",
    "JobRequest",
    "JobRunner",
    "Provider",
    "ProviderCall",
    "ProviderConfig",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "provider_class",
]

PROVIDER_TYPES: dict[str, str] = {
    "anthropic": "core.providers.anthropic:AnthropicProvider",
    "openai-compat": "core.providers.openai_compat:OpenAICompatProvider",
    "ollama": "core.providers.ollama:OllamaProvider",
    "cli": "core.providers.cli:CliProvider",
    "echo": "core.providers.echo:EchoProvider",
    "fleet": "core.providers.fleet:FleetProvider",
}


def provider_class(type_name: str) -> type[Provider]:
    """The class registered for ``type_name``; KeyError if there is none."""
    module_name, _, attr = PROVIDER_TYPES[type_name].partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise TypeError(f"{PROVIDER_TYPES[type_name]} is not a Provider")
    return cls
