"""What every tool shares, written once: the scope table, the caller, error mapping, progress.

A tool *body* is a thin async function ``body(call, **arguments) -> OutputModel``. The
:class:`ToolGroup` decorator records it; :func:`adapt` turns it into the SDK tool: the
published signature is the body's minus ``call``, and the wrapper

1. resolves the caller's :class:`~core.principal.Principal` and checks the scope the
   :data:`TOOL_SCOPES` table requires (FORBIDDEN otherwise),
2. runs the body with a :class:`Call` (engine, principal, MCP context),
3. renders the returned model as readable text next to its structured content, and
4. maps every :class:`~core.errors.ModelReinsError` to a tool result with ``isError`` and the
   §5 code in both the text and ``structuredContent.error``.

Arguments that do not match the input schema never reach a body: :class:`ReinsTool` turns them
into a JSON-RPC ``INVALID_PARAMS`` error.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, ValidationError

from core.api import EngineAPI
from core.errors import ModelReinsError, ValidationFailed
from core.principal import Principal
from mcp_server.tools.schema import compact_schema

__all__ = [
    "MAX_WAIT_S",
    "PROGRESS_INTERVAL_S",
    "TOOL_SCOPES",
    "Call",
    "EngineSource",
    "PrincipalSource",
    "ReinsTool",
    "ToolGroup",
    "ToolSpec",
    "adapt",
    "error_result",
    "validation_problems",
]

TOOL_SCOPES: dict[str, str] = {
    "mr_dispatch": "dispatch",
    "mr_providers": "dispatch",
    "mr_history": "dispatch",
    "mr_task_list": "tasks:read",
    "mr_task_result": "tasks:read",
    "mr_task_create": "tasks:write",
    "mr_task_update": "tasks:write",
    "mr_task_delete": "tasks:write",
    "mr_task_run": "tasks:write",
    "mr_job_submit": "jobs:write",
    "mr_job_status": "jobs:read",
    "mr_job_list": "jobs:read",
    "mr_job_cancel": "jobs:write",
    "mr_job_approve": "jobs:approve",
    "mr_workers": "jobs:read",
    "mr_explain": "jobs:read",
    "modelreins_recruit": "admin",
}
"""The scope each tool requires of its caller; a tool missing here cannot be built."""

MAX_WAIT_S = 45.0
"""Upper bound of every wait budget: many clients cut a tool call at 60 s."""

PROGRESS_INTERVAL_S = 1.0

EngineSource = Callable[[], EngineAPI]
"""Returns the engine a call runs on: the local one, or a remote client of a server."""

PrincipalSource = Callable[[Context], Principal]
"""Who is calling, from the request context; raises Unauthorized when nobody is."""

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One tool invocation as a body sees it."""

    engine: EngineAPI
    principal: Principal
    ctx: Context

    def provided(self) -> frozenset[str]:
        """The argument names the caller actually sent (an explicit ``null`` included)."""
        params = self.ctx.request_context.params or {}
        arguments = params.get("arguments") or {}
        return frozenset(arguments) if isinstance(arguments, Mapping) else frozenset()

    async def wait(
        self, poll: Callable[[float], Awaitable[T]], finished: Callable[[T], bool], *,
        budget_s: float, label: str,
    ) -> T:
        """Wait up to ``budget_s`` for long work, reporting progress about once a second.

        ``poll(seconds)`` waits at most that long and returns the work's current state; it
        is called until ``finished(state)`` or the budget is spent, and the last state is
        returned. Between polls a progress notification goes out (a no-op unless the
        client asked for progress). No extra task is spawned, so a fast call costs nothing.
        """
        started = anyio.current_time()
        while True:
            remaining = budget_s - (anyio.current_time() - started)
            state = await poll(max(0.0, min(PROGRESS_INTERVAL_S, remaining)))
            elapsed = anyio.current_time() - started
            if finished(state) or elapsed >= budget_s:
                return state
            await self.ctx.report_progress(
                round(elapsed, 1), budget_s,
                f"{label}: {elapsed:.0f} s (waiting up to {budget_s:.0f} s)")


Render = Callable[[Any], str]


@dataclass(frozen=True)
class ToolSpec:
    """A tool body with what the SDK needs to publish it."""

    body: Callable[..., Awaitable[BaseModel]]
    render: Render
    title: str
    annotations: ToolAnnotations

    @property
    def name(self) -> str:
        return self.body.__name__


@dataclass
class ToolGroup:
    """The tools of one family, in declaration order."""

    specs: list[ToolSpec] = field(default_factory=list)

    def tool(
        self, *, title: str, render: Render, read_only: bool = False,
        destructive: bool = False, idempotent: bool = False, open_world: bool = False,
    ) -> Callable[[Callable[..., Awaitable[M]]], Callable[..., Awaitable[M]]]:
        """Register the decorated body; its docstring is the tool's description."""

        def decorate(body: Callable[..., Awaitable[M]]) -> Callable[..., Awaitable[M]]:
            hints = ToolAnnotations(
                title=title, read_only_hint=read_only, destructive_hint=destructive,
                idempotent_hint=idempotent, open_world_hint=open_world)
            self.specs.append(ToolSpec(body, render, title, hints))
            return body

        return decorate


def validation_problems(exc: ValidationError) -> list[dict[str, str]]:
    """pydantic errors as §5 ``details``: ``[{"path", "problem"}]``."""
    return [
        {"path": ".".join(str(p) for p in err["loc"]) or "(arguments)", "problem": err["msg"]}
        for err in exc.errors(include_url=False)
    ]


def error_result(exc: ModelReinsError) -> CallToolResult:
    """The tool result for an engine error: ``isError``, the code in text and structure."""
    lines = [str(exc)]
    if exc.retry_after is not None:
        lines[0] += f" (retry after {exc.retry_after:g} s)"
    if isinstance(exc.details, list):
        lines += [f"  - {d.get('path')}: {d.get('problem')}" for d in exc.details
                  if isinstance(d, dict)]
    return CallToolResult(
        content=[TextContent(type="text", text="\n".join(lines))],
        structured_content={"error": exc.to_dict()},
        is_error=True,
    )


def _success(model: BaseModel, render: Render) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=render(model))],
        structured_content=model.model_dump(mode="json", by_alias=True),
    )


def adapt(spec: ToolSpec, engine: EngineSource, principal_of: PrincipalSource) -> ReinsTool:
    """The SDK tool for ``spec``: scope check, error mapping and rendering around the body."""
    scope = TOOL_SCOPES[spec.name]
    body = spec.body

    @functools.wraps(body)
    async def run(ctx: Context, **arguments: Any) -> CallToolResult:
        try:
            principal = principal_of(ctx)
            principal.require(scope)
            model = await body(Call(engine(), principal, ctx), **arguments)
        except ModelReinsError as exc:
            return error_result(exc)
        except ValidationError as exc:
            return error_result(ValidationFailed(
                f"invalid input: {exc.error_count()} problem(s)", details=validation_problems(exc)))
        return _success(model, spec.render)

    signature = inspect.signature(body, eval_str=True)
    params = [p for name, p in signature.parameters.items() if name != "call"]
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context))
    published = signature.replace(parameters=params)
    run.__signature__ = published  # type: ignore[attr-defined]
    run.__annotations__ = {p.name: p.annotation for p in params}
    run.__annotations__["return"] = published.return_annotation
    del run.__wrapped__
    tool = ReinsTool.from_function(
        run, name=spec.name, title=spec.title, annotations=spec.annotations,
        description=inspect.cleandoc(body.__doc__ or ""))
    assert isinstance(tool, ReinsTool)
    if tool.fn_metadata.output_schema is not None:
        tool.fn_metadata.output_schema = compact_schema(tool.fn_metadata.output_schema)
    return tool


class ReinsTool(Tool):
    """An SDK tool whose argument errors are protocol errors (``INVALID_PARAMS``), not results.

    Its function (see :func:`adapt`) already returns the finished :class:`CallToolResult`,
    its structured content dumped from a validated output model, so the SDK's result
    conversion (which would validate that content against the same model again) is skipped.
    """

    async def run(self, arguments: dict[str, Any], context: Any,
                  convert_result: bool = False) -> Any:
        try:
            return await super().run(arguments, context, convert_result=False)
        except ToolError as exc:
            # Bodies never raise ToolError: one caused by a ValidationError is the SDK
            # rejecting the arguments against the input schema.
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise
            problems = validation_problems(cause)
            summary = "; ".join(f"{p['path']}: {p['problem']}" for p in problems)
            raise MCPError(
                code=INVALID_PARAMS,
                message=f"invalid arguments for {self.name}: {summary}",
                data={"code": "VALIDATION_ERROR", "details": problems},
            ) from exc

