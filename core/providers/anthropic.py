"""``anthropic``: the Anthropic Messages API (``POST /v1/messages``), whole or streamed."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import ModelReinsError
from core.models import Usage
from core.providers.base import Completion, ProviderCall, StreamEnd, StreamEvent, TextDelta
from core.providers.failures import classify
from core.providers.http import ApiKey, HttpConfig, HttpProvider, Resolved, sse_data

__all__ = ["AnthropicConfig", "AnthropicProvider"]

DEFAULT_MAX_TOKENS = 4096
"""The Messages API requires ``max_tokens``; used when neither call nor config sets one."""

_STRUCTURAL = frozenset({"model", "messages", "system", "stream"})

# Error types of in-stream ``error`` events, as the HTTP status the same failure has outside
# a stream, so both go through one classification.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "overloaded_error": 529,
}


class AnthropicConfig(HttpConfig):
    type: Literal["anthropic"] = "anthropic"
    base_url: str = "https://api.anthropic.com"
    api_key: ApiKey = Field(repr=False)
    anthropic_version: str = "2023-06-01"

    def secret_fields(self) -> tuple[str, ...]:
        return ("api_key",)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Usage(_Lenient):
    input_tokens: int | None = None
    output_tokens: int | None = None


class _Block(_Lenient):
    type: str
    text: str | None = None


class _Message(_Lenient):
    type: str | None = None
    error: dict[str, Any] | None = None
    model: str | None = None
    content: list[_Block] = []
    stop_reason: str | None = None
    usage: _Usage = _Usage()


class _Delta(_Lenient):
    type: str | None = None
    text: str | None = None
    stop_reason: str | None = None


class _Event(_Lenient):
    type: str
    message: _Message | None = None
    delta: _Delta | None = None
    usage: _Usage | None = None
    error: dict[str, Any] | None = None


class AnthropicProvider(HttpProvider):
    """Talks to ``{baseUrl}/v1/messages`` with ``x-api-key`` and ``anthropic-version``."""

    config_model = AnthropicConfig
    config: AnthropicConfig

    def auth_headers(self) -> dict[str, str]:
        return {
            "x-api-key": self.config.api_key,
            "anthropic-version": self.config.anthropic_version,
        }

    def body(self, r: Resolved, *, stream: bool) -> dict[str, Any]:
        """The request body; options add API keys but never replace the structural ones."""
        body: dict[str, Any] = {"model": r.model, "max_tokens": r.max_tokens or DEFAULT_MAX_TOKENS}
        body.update((k, v) for k, v in r.options.items() if k not in _STRUCTURAL)
        body["messages"] = [{"role": m.role, "content": m.content} for m in r.messages]
        if r.system:
            body["system"] = r.system
        if stream:
            body["stream"] = True
        return body

    async def complete(self, call: ProviderCall) -> Completion:
        r = self.resolve(call)
        answer = await self.post_json("/v1/messages", self.body(r, stream=False), _Message)
        if answer.type == "error":
            raise self._error_event(answer.error or {})
        return Completion(
            text="".join(b.text or "" for b in answer.content if b.type == "text"),
            model=answer.model or r.model,
            usage=Usage(
                input_tokens=answer.usage.input_tokens or 0,
                output_tokens=answer.usage.output_tokens or 0,
            ),
            truncated=answer.stop_reason == "max_tokens",
        )

    async def stream(self, call: ProviderCall) -> AsyncGenerator[StreamEvent, None]:
        r = self.resolve(call)
        model, usage, stop_reason, finished = r.model, Usage(), None, False
        async with self.open_stream("/v1/messages", self.body(r, stream=True)) as lines:
            async for line in lines:
                # Every event repeats its name as the JSON "type": the data lines suffice.
                data = sse_data(line)
                if data is None:
                    continue
                event = self.parse(_Event, data)
                if event.type == "content_block_delta" and event.delta is not None:
                    if event.delta.type == "text_delta" and event.delta.text:
                        yield TextDelta(event.delta.text)
                elif event.type == "message_start" and event.message is not None:
                    model = event.message.model or model
                    usage.input_tokens = event.message.usage.input_tokens or 0
                    usage.output_tokens = event.message.usage.output_tokens or 0
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason if event.delta else stop_reason
                    if event.usage is not None:
                        usage.output_tokens = event.usage.output_tokens or usage.output_tokens
                elif event.type == "message_stop":
                    finished = True
                    break
                elif event.type == "error":
                    raise self._error_event(event.error or {})
            if not finished:
                raise self.bad_payload("stream ended before message_stop")
        yield StreamEnd(model=model, usage=usage, truncated=stop_reason == "max_tokens")

    def _error_event(self, error: dict[str, Any]) -> ModelReinsError:
        """An error the API reported inside a 200 answer, classified like its HTTP twin."""
        kind = str(error.get("type", "error"))
        return classify(
            self.name,
            _ERROR_STATUS.get(kind, 500),
            {},
            json.dumps({"error": error}),
            secrets=self.secrets,
            label=f"{kind} inside a 200 answer",
        )

    async def ping(self) -> None:
        await self.get_ok("/v1/models")
