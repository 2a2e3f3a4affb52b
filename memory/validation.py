"""Input checks shared by every entry point; each failure names the offending field."""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from hivemem.memory.errors import InvalidInput, PayloadTooLarge

__all__ = [
    "check_namespace",
    "check_prefix",
    "check_key",
    "dump_value",
    "check_metadata",
    "check_vector",
    "check_ttl",
    "in_scope",
    "MERGE_MODES",
]

_SEGMENT = re.compile(r"[a-z0-9_.\-]{1,64}")
_KEY_BAD = re.compile(r"[/\x00-\x1f\x7f]")
_META_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
MAX_DEPTH = 16
MAX_KEY = 512
MERGE_MODES = ("replace", "patch", "three_way")


_VALID_NAMESPACES: dict[str, None] = {}  # recently accepted names: skip re-checking them


def check_namespace(ns: Any, field: str = "namespace") -> str:
    """A ``/``-separated path of 1–16 segments of ``[a-z0-9_.-]{1,64}``."""
    if ns.__class__ is str and ns in _VALID_NAMESPACES:
        return ns
    if not isinstance(ns, str) or not ns:
        raise InvalidInput(field, "must be a non-empty string")
    parts = ns.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidInput(field, f"deeper than {MAX_DEPTH} segments")
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise InvalidInput(
                field,
                f"segment {part!r} must be 1-64 of lowercase letters, digits, '-', '_', '.'",
            )
    if len(_VALID_NAMESPACES) > 4096:
        _VALID_NAMESPACES.clear()
    _VALID_NAMESPACES[ns] = None
    return ns


def check_prefix(prefix: Any, field: str = "prefix") -> str:
    """A namespace prefix; ``""`` (or ``"/"``) means every namespace."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise InvalidInput(field, "must be a string")
    prefix = prefix.strip("/")
    return check_namespace(prefix, field) if prefix else ""


def in_scope(namespace: str, prefix: str) -> bool:
    """True if ``namespace`` is ``prefix`` or lies below it (segment-wise)."""
    return (
        not prefix
        or namespace == prefix
        or (namespace.startswith(prefix) and namespace[len(prefix)] == "/")
    )


def check_key(key: Any, field: str = "key") -> str:
    """1–512 characters, no ``/`` and no control characters, not ``.`` or ``..``."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(field, "must be a non-empty string")
    if len(key) > MAX_KEY:
        raise InvalidInput(field, f"longer than {MAX_KEY} characters")
    if _KEY_BAD.search(key) or key in (".", ".."):
        raise InvalidInput(field, "must not contain '/' or control characters, nor be '.' or '..'")
    return key


def dump_value(value: Any, max_bytes: int, field: str = "value") -> str:
    """Serialise ``value`` as strict JSON, enforcing the size limit."""
    try:
        raw = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, f"is not JSON: {exc}") from exc
    if len(raw) > max_bytes and len(raw.encode()) > max_bytes:
        raise PayloadTooLarge(field, f"larger than the limit of {max_bytes} bytes")
    return raw


def check_metadata(meta: Any, field: str = "metadata") -> dict[str, Any]:
    """A flat object: names of ``[A-Za-z_][A-Za-z0-9_-]*``, values scalars or scalar lists."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InvalidInput(field, "must be an object")
    for name, val in meta.items():
        if not isinstance(name, str) or not _META_KEY.fullmatch(name):
            raise InvalidInput(f"{field}.{name}", "name must match [A-Za-z_][A-Za-z0-9_-]{0,63}")
        vals = val if isinstance(val, list) else [val]
        for v in vals:
            if not (v is None or isinstance(v, str | int | float | bool)):
                raise InvalidInput(f"{field}.{name}", "must be a scalar or a list of scalars")
            if isinstance(v, float) and not math.isfinite(v):
                raise InvalidInput(f"{field}.{name}", "must be a finite number")
    return meta


def check_vector(vector: Any, dim: int | None, field: str = "vector") -> np.ndarray:
    """A 1-d sequence of finite numbers of the store's dimension, as float32."""
    if isinstance(vector, str | bytes | dict) or vector is None:
        raise InvalidInput(field, "must be a non-empty list of numbers")
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(field, "must be a list of numbers") from exc
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInput(field, "must be a non-empty list of numbers")
    if not np.isfinite(arr).all():
        raise InvalidInput(field, "must contain finite numbers only")
    if dim is not None and arr.size != dim:
        raise InvalidInput(field, f"has {arr.size} dimensions, the store uses {dim}")
    return arr


def check_ttl(ttl: Any, field: str = "ttl") -> float | None:
    """Seconds to live: a positive finite number, or None."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise InvalidInput(field, "must be a number of seconds")
    if ttl <= 0:
        raise InvalidInput(field, "must be positive")
    return float(ttl)
