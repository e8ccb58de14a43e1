"""``openai-compat``: any server speaking OpenAI's ``POST /chat/completions`` (LM Studio, vLLM,
OpenRouter, 1minAI…), whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.models import Usage
from core.providers.base import Completion, ProviderCall, StreamEnd, StreamEvent, TextDelta
from core.providers.http import (
    ApiKey,
    HttpConfig,
    HttpProvider,
    Resolved,
    collect,
    sse_data,
)

__all__ = ["OpenAICompatConfig", "OpenAICompatProvider"]

_STRUCTURAL = frozenset({"model", "messages", "stream", "stream_options"})


class OpenAICompatConfig(HttpConfig):
    type: Literal["openai-compat"] = "openai-compat"
    api_key: ApiKey | None = Field(default=None, repr=False)
    auth_header: str | None = None
    stream: bool = False

    @model_validator(mode="after")
    def _header_needs_key(self) -> OpenAICompatConfig:
        if self.auth_header is not None and self.api_key is None:
            raise ValueError("authHeader is set but apiKey is missing")
        return self

    def secret_fields(self) -> tuple[str, ...]:
        return ("api_key",)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Usage(_Lenient):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    def usage(self) -> Usage:
        return Usage(
            input_tokens=self.prompt_tokens or 0, output_tokens=self.completion_tokens or 0
        )


class _Content(_Lenient):
    content: str | None = None


class _Choice(_Lenient):
    message: _Content | None = None
    delta: _Content | None = None
    finish_reason: str | None = None


class _Answer(_Lenient):
    model: str | None = None
    choices: list[_Choice] = []
    usage: _Usage | None = None
    error: Any = None


class OpenAICompatProvider(HttpProvider):
    """Talks to ``{baseUrl}/chat/completions`` with a bearer key or a custom key header."""

    config_model = OpenAICompatConfig
    config: OpenAICompatConfig

    def auth_headers(self) -> dict[str, str]:
        key = self.config.api_key
        if key is None:
            return {}
        if self.config.auth_header:
            return {self.config.auth_header: key}
        return {"authorization": f"Bearer {key}"}

    def body(self, r: Resolved, *, stream: bool) -> dict[str, Any]:
        """The request body; options add API keys but never replace the structural ones."""
        body: dict[str, Any] = {"model": r.model}
        if r.max_tokens is not None:
            body["max_tokens"] = r.max_tokens
        body.update((k, v) for k, v in r.options.items() if k not in _STRUCTURAL)
        body["messages"] = r.chat_messages()
        body["stream"] = stream
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    async def complete(self, call: ProviderCall) -> Completion:
        if self.config.stream:
            # Some servers (and slow local models) only behave well when streamed.
            return await collect(self.stream(call))
        r = self.resolve(call)
        answer = await self.post_json("/chat/completions", self.body(r, stream=False), _Answer)
        if answer.error is not None:
            raise self.inband_error(answer.error)
        choice = answer.choices[0] if answer.choices else None
        if choice is None or choice.message is None:
            raise self.bad_payload("no choices[0].message in the answer")
        return Completion(
            text=choice.message.content or "",
            model=answer.model or r.model,
            usage=answer.usage.usage() if answer.usage else Usage(),
            truncated=choice.finish_reason == "length",
        )

    async def stream(self, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
        r = self.resolve(call)
        model, usage, finish, done = r.model, Usage(), None, False
        async with self.open_stream("/chat/completions", self.body(r, stream=True)) as lines:
            async for line in lines:
                data = sse_data(line)
                if data is None:
                    continue
                if data == "[DONE]":
                    done = True
                    break
                chunk = self.parse(_Answer, data)
                if chunk.error is not None:
                    raise self.inband_error(chunk.error)
                model = chunk.model or model
                if chunk.usage is not None:
                    usage = chunk.usage.usage()
                for choice in chunk.choices[:1]:
                    finish = choice.finish_reason or finish
                    if choice.delta is not None and choice.delta.content:
                        yield TextDelta(choice.delta.content)
            # A server that omits [DONE] but said why it finished has still finished cleanly.
            if not done and finish is None:
                raise self.bad_payload("stream ended before [DONE]")
        yield StreamEnd(model=model, usage=usage, truncated=finish == "length")

    async def ping(self) -> None:
        await self.get_ok("/models")
