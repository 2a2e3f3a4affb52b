"""Schemathesis hooks for tests/api/test_schema_fuzz.py (loaded via SCHEMATHESIS_HOOKS).

``filter_query`` drops queries that are only "negative" before serialisation (see there).

``POST /v1/import`` takes NDJSON, which schemathesis cannot serialise by itself: the
generated value (a string, as the schema says) goes as its UTF-8 bytes, and anything
else as one JSON line, so invalid records reach the server as well.
"""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx: Any, value: Any) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes):
        return value
    return json.dumps(value).encode() + b"\n"


def _admits_text(schema: Any) -> bool:
    """True when a query value sent as text could be valid here: a string, or an array
    of strings (form style: one value on the wire is a one-element array)."""
    if not isinstance(schema, dict):
        return False
    if any(_admits_text(s) for s in schema.get("anyOf", []) + schema.get("oneOf", [])):
        return True
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind]
    if "string" in kinds:
        return True
    return "array" in kinds and _admits_text(schema.get("items", {}))


@schemathesis.hook
def filter_query(ctx: Any, query: Any) -> bool:
    """Drop "negative" queries that are not: a number or boolean for a parameter that
    takes text goes on the wire as text (``namespaces=-2.3e-21``), which is a valid
    value, so accepting it is right (a namespace may well be ``2024``)."""
    if not query or ctx.operation is None:
        return True
    schemas = {p.name: p.definition.get("schema", {}) for p in ctx.operation.query}
    for name, value in query.items():
        if isinstance(value, int | float) and _admits_text(schemas.get(name)):  # bool too
            return False
    return True
