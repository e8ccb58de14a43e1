"""Compacted output schemas accept and reject exactly what pydantic's originals do."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
from jsonschema.validators import validator_for
from pydantic import BaseModel, TypeAdapter

from core.clock import utcnow
from core.models import DispatchRecord, WireModel
from mcp_server.server import build_server
from mcp_server.tools.schema import compact_schema


class Nullables(WireModel):
    color: Literal["red", "blue"] | None = None
    count: int | None = None
    nested: DispatchRecord | None = None


RECORD = DispatchRecord(id="dsp_1", status="error", prompt="p", created_at=utcnow(),
                        attempts=[{"provider": "a", "code": "X", "latencyMs": 3}],
                        error={"code": "X", "message": "m"}).wire()


def verdict(schema: dict[str, Any], instance: Any) -> bool:
    return validator_for(schema)(schema).is_valid(instance)


@pytest.mark.parametrize(
    ("model", "instance"),
    [
        (DispatchRecord, RECORD),
        (DispatchRecord, {**RECORD, "status": "bogus"}),
        (DispatchRecord, {**RECORD, "provider": 5}),
        (DispatchRecord, {**RECORD, "provider": None}),
        (DispatchRecord, {**RECORD, "error": None}),
        (DispatchRecord, {**RECORD, "error": {"code": 1, "message": "m"}}),
        (DispatchRecord, {**RECORD, "surprise": True}),
        (DispatchRecord, {**RECORD, "attempts": [{"provider": "a"}]}),
        (Nullables, {"color": None, "count": None, "nested": None}),
        (Nullables, {"color": "red", "count": 3, "nested": RECORD}),
        (Nullables, {"color": "green"}),
        (Nullables, {"count": "3"}),
        (Nullables, {"nested": {"id": "x"}}),
    ],
)
def test_compact_schema_keeps_every_verdict(model: type[BaseModel], instance: Any) -> None:
    original = TypeAdapter(model).json_schema()
    assert verdict(compact_schema(original), instance) == verdict(original, instance)


async def test_published_output_schemas_have_no_refs_or_nullable_unions() -> None:
    for tool in await build_server(lambda: None).list_tools():  # type: ignore[arg-type, return-value]
        text = json.dumps(tool.output_schema)
        assert "$ref" not in text and '{"type": "null"}' not in text, tool.name
        assert '"title"' not in text, tool.name
