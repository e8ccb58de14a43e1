"""Output schemas that are cheap to check.

Clients validate every structured tool result against the tool's output schema; the Python
SDK does it with ``jsonschema``, where following ``$ref``s and trying ``anyOf`` branches cost
most of the time. pydantic emits both for every nested model and every optional field.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compact_schema"]

_DEFS = "#/$defs/"
_ANNOTATIONS = ("title", "default")


def compact_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The same constraints, cheaper to check: ``$ref``s into ``$defs`` inlined, a nullable
    ``anyOf [X, null]`` written as ``type: [X, "null"]``, generated titles and defaults
    dropped. Clients validate every structured result against the output schema (the Python
    SDK with ``jsonschema``, where ``$ref`` and ``anyOf`` dominate the cost)."""
    defs = schema.get("$defs", {})

    def walk(node: Any, stack: tuple[str, ...], in_properties: bool = False) -> Any:
        if isinstance(node, list):
            return [walk(item, stack) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS) and len(node) == 1:
            name = ref.removeprefix(_DEFS)
            if name in stack:
                raise ValueError(f"recursive schema through {name}; cannot inline")
            return walk(defs[name], (*stack, name))
        out = {key: walk(value, stack, in_properties=key == "properties")
               for key, value in node.items()
               if key != "$defs" and (in_properties or key not in _ANNOTATIONS)}
        return _nullable(out)

    return dict(walk(schema, ()))


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    branches = node.get("anyOf")
    if not (isinstance(branches, list) and len(branches) == 2 and {"type": "null"} in branches):
        return node
    other = next(b for b in branches if b != {"type": "null"})
    if not isinstance(other.get("type"), str) or {"anyOf", "oneOf", "allOf", "$ref"} & set(other):
        return node
    merged = {**other, "type": [other["type"], "null"]}
    if "enum" in merged:
        merged["enum"] = [*merged["enum"], None]
    return {**merged, **{k: v for k, v in node.items() if k != "anyOf"}}
