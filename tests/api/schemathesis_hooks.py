"""Schemathesis hooks for tests/api/test_schema_fuzz.py (loaded via SCHEMATHESIS_HOOKS).

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
