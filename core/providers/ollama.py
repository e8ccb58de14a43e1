"""``ollama``: Ollama's native chat API (``POST /api/chat``), whole or streamed as NDJSON."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from core.models import Usage
from core.providers.base import Completion, ProviderCall, StreamEnd, StreamEvent, TextDelta
from core.providers.http import HttpConfig, HttpProvider, Resolved

__all__ = ["OllamaConfig", "OllamaProvider"]


class OllamaConfig(HttpConfig):
    type: Literal["ollama"] = "ollama"
    base_url: str = "http://127.0.0.1:11434"


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Message(_Lenient):
    content: str | None = None


class _Line(_Lenient):
    """One answer: the whole reply, or one NDJSON line of a stream."""

    model: str | None = None
    message: _Message | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: Any = None

    def usage(self) -> Usage:
        return Usage(input_tokens=self.prompt_eval_count or 0, output_tokens=self.eval_count or 0)


class OllamaProvider(HttpProvider):
    """Talks to ``{baseUrl}/api/chat``; ``options`` (num_ctx, num_gpu…) pass through."""

    config_model = OllamaConfig
    config: OllamaConfig

    def auth_headers(self) -> dict[str, str]:
        return {}

    def body(self, r: Resolved, *, stream: bool) -> dict[str, Any]:
        """The request body; ``maxTokens`` becomes ``options.num_predict`` unless that is set."""
        options = dict(r.options)
        if r.max_tokens is not None:
            options.setdefault("num_predict", r.max_tokens)
        body: dict[str, Any] = {"model": r.model, "messages": r.chat_messages(), "stream": stream}
        if options:
            body["options"] = options
        return body

    async def complete(self, call: ProviderCall) -> Completion:
        r = self.resolve(call)
        answer = await self.post_json("/api/chat", self.body(r, stream=False), _Line)
        if answer.error is not None:
            raise self.inband_error(answer.error)
        if answer.message is None:
            raise self.bad_payload("no message in the answer")
        return Completion(
            text=answer.message.content or "",
            model=answer.model or r.model,
            usage=answer.usage(),
            truncated=answer.done_reason == "length",
        )

    async def stream(self, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
        r = self.resolve(call)
        last: _Line | None = None
        async with self.open_stream("/api/chat", self.body(r, stream=True)) as lines:
            async for line in lines:
                if not line.strip():
                    continue
                chunk = self.parse(_Line, line)
                if chunk.error is not None:
                    raise self.inband_error(chunk.error)
                if chunk.message is not None and chunk.message.content:
                    yield TextDelta(chunk.message.content)
                if chunk.done:
                    last = chunk
                    break
            if last is None:
                raise self.bad_payload("stream ended before the line with done: true")
        yield StreamEnd(
            model=last.model or r.model, usage=last.usage(), truncated=last.done_reason == "length"
        )

    async def ping(self) -> None:
        await self.get_ok("/api/tags")
