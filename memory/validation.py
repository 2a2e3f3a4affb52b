"""The one validation layer: every check an input passes before anything is committed.

The library (``Memory``) and the wire (``api/``) call the same checkers, and every
failure is an ``InvalidInput`` (or ``PayloadTooLarge``) naming the offending field.
The limits are in one table, ``LIMITS``, which the README and the OpenAPI document
quote; new fields should use these checkers rather than writing their own:

- ``check_int(value, field, lo, hi)``: a strict integer (never a bool, a float or a
  string) within ``[lo, hi]``, by default the signed 64-bit range. Use it for anything
  hivemem stores or compares itself (versions, revisions, fences, counts, limits).
- ``check_text(value, field)``: a ``str`` that is valid Unicode (no lone surrogate).
- ``dump_json(value, field)``: a JSON value that can be stored and rendered back:
  strict JSON (no NaN or infinity), valid Unicode, at most
  ``MAX_JSON_DEPTH`` deep; returns its canonical text.
- ``json_text_depth`` / ``check_body_json``: the depth of JSON *text*, found without
  parsing it (so a parser's own recursion limit is never the first to fail).
- ``check_namespace``, ``check_prefix``, ``check_key``, ``check_metadata``,
  ``check_vector``, ``check_ttl``, ``check_scalar``, ``check_scopes``.
"""

from __future__ import annotations

import json
import math
import numbers
import operator
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from hivemem.memory.errors import InvalidInput, PayloadTooLarge

__all__ = [
    "INT64_MIN",
    "INT64_MAX",
    "MAX_JSON_DEPTH",
    "MAX_BODY_DEPTH",
    "MAX_TTL",
    "MAX_KEY",
    "MAX_DEPTH",
    "MAX_SEGMENT",
    "MAX_PAGE",
    "MAX_SCOPES",
    "MAX_QUERY_CHARS",
    "MAX_FILTER_FIELDS",
    "MAX_FILTER_VALUES",
    "LIMITS",
    "limits_markdown",
    "check_int",
    "check_text",
    "check_scalar",
    "dump_json",
    "json_text_depth",
    "check_body_json",
    "check_namespace",
    "check_prefix",
    "check_scopes",
    "check_key",
    "dump_value",
    "check_metadata",
    "check_vector",
    "check_ttl",
    "unit_vector",
    "in_scope",
    "MERGE_MODES",
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
#: Containers nested in a stored JSON value (values, metadata, filters, compare values).
MAX_JSON_DEPTH = 64
#: A request body may wrap a value in a few more levels (``{"success": [{"value": …}]}``).
MAX_BODY_DEPTH = MAX_JSON_DEPTH + 4
#: 100 Julian years: every expiry stays a representable date.
MAX_TTL = 3_155_760_000
MAX_DEPTH = 16
MAX_SEGMENT = 64
MAX_KEY = 512
MAX_PAGE = 1000
MAX_SCOPES = 100
MAX_QUERY_CHARS = 16_384
MAX_FILTER_FIELDS = 32
MAX_FILTER_VALUES = 1000
MERGE_MODES = ("replace", "patch", "three_way")

#: The documented limits: (what, limit, where it applies). README and OpenAPI quote it.
LIMITS: tuple[tuple[str, str, str], ...] = (
    (
        "integers hivemem stores or compares",
        f"JSON integers (never booleans, strings or fractions) from {INT64_MIN} to {INT64_MAX}",
        "versions, revisions, `since`, `k`, `limit`, `depth`, metadata integers, "
        "filter and compare operands (numbers inside `value` stay plain JSON numbers)",
    ),
    ("`ttl`", f"a number of seconds, > 0 and <= {MAX_TTL} (100 years)", "put, batch, txn"),
    (
        "JSON nesting",
        f"{MAX_JSON_DEPTH} levels of arrays/objects",
        "`value`, `metadata`, filters, compare values",
    ),
    (
        "request body nesting",
        f"{MAX_BODY_DEPTH} levels (malformed, non-UTF-8 or deeper bodies: 422 naming `body`)",
        "every JSON or NDJSON body, `?filter=`",
    ),
    (
        "strings",
        "valid Unicode: no lone surrogates (`\\ud800`)",
        "text, query, keys, metadata, values, import records",
    ),
    (
        "URL paths and query strings",
        "valid UTF-8 after percent-decoding (`%FF` is a 422, never U+FFFD); the key of an "
        "item path holds no `%2F` and the path ends in the key",
        "every route",
    ),
    (
        "namespace",
        f"1-{MAX_DEPTH} `/`-separated segments of 1-{MAX_SEGMENT} of `[a-z0-9_.-]`, "
        "no segment `.` or `..`",
        "writes; reads, lists and deletes still accept items stored under `.`/`..` "
        "segments by earlier releases",
    ),
    (
        "key, thread name",
        f"1-{MAX_KEY} characters, no `/` or control characters, not `.` or `..`",
        "items; `thread` on writes, search, recall and watch",
    ),
    (
        "metadata",
        "a flat object: names `[A-Za-z_][A-Za-z0-9_-]{0,63}`, values scalars or lists of scalars",
        "put",
    ),
    (
        "filter",
        f"at most {MAX_FILTER_FIELDS} fields; `$in`/`$nin` operands at most "
        f"{MAX_FILTER_VALUES} values in all",
        "list, search",
    ),
    ("namespace prefixes per request", f"at most {MAX_SCOPES}", "search, watch"),
    ("query text", f"at most {MAX_QUERY_CHARS} characters", "search"),
    ("`k`, `limit`", f"1-{MAX_PAGE}", "search, list, namespaces"),
    (
        "vector",
        "finite numbers (not booleans), not all zero, exactly the store's dimension",
        "writes and queries; the first vector of a store without an embedder fixes it",
    ),
)


def limits_markdown() -> str:
    """The limits table as Markdown (the README's copy is checked against this)."""
    rows = ["| input | limit | applies to |", "| --- | --- | --- |"]
    rows += [f"| {what} | {limit} | {where} |" for what, limit, where in LIMITS]
    return "\n".join(rows)


# -- scalars -------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def check_int(
    value: Any, field: str, lo: int = INT64_MIN, hi: int = INT64_MAX, what: str = "an integer"
) -> int:
    """A strict integer in ``[lo, hi]``: never a bool, a float or a numeric string."""
    if not _is_int(value):
        raise InvalidInput(field, f"must be {what} from {lo} to {hi}")
    number = operator.index(value)
    if not lo <= number <= hi:
        raise InvalidInput(field, f"must be {what} from {lo} to {hi}")
    return number


def check_text(value: Any, field: str, max_chars: int | None = None) -> str:
    """A ``str`` of valid Unicode (a lone surrogate cannot be stored or sent)."""
    if not isinstance(value, str):
        raise InvalidInput(field, "must be a string")
    if max_chars is not None and len(value) > max_chars:
        raise InvalidInput(field, f"longer than {max_chars} characters")
    if not _valid_unicode(value):
        raise InvalidInput(field, "is not valid Unicode (it holds a lone surrogate)")
    return value


def _valid_unicode(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_scalar(value: Any, field: str) -> Any:
    """A JSON scalar hivemem compares: null, a bool, an int64, a finite float, a string."""
    if value is None or isinstance(value, bool):
        return value
    if _is_int(value):
        return check_int(value, field)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(field, "must be a finite number")
        return value
    if isinstance(value, str):
        return check_text(value, field)
    raise InvalidInput(field, "must be a scalar (string, number, boolean or null)")


# -- JSON values ---------------------------------------------------------------------

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_STRING_B = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_NOT_BRACKET_B = re.compile(rb"[^\[\]{}]+")
_DELTA = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def json_text_depth(text: str | bytes, limit: int = MAX_BODY_DEPTH) -> int:
    """How deeply arrays and objects nest in JSON text, without parsing it.

    Exact for well-formed JSON; returns early (a value ``<= limit``) when the text
    cannot nest deeper than ``limit`` at all. Strings are removed first (they may hold
    brackets); what remains is counted in C (a regex and a numpy cumulative sum).
    """
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= limit:
            return 0
        brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).encode()
    else:
        if text.count(b"[") + text.count(b"{") <= limit:
            return 0
        brackets = _NOT_BRACKET_B.sub(b"", _STRING_B.sub(b"", text))
    if not brackets:
        return 0
    steps = np.frombuffer(brackets.translate(_DELTA), dtype=np.int8)
    return int(np.cumsum(steps, dtype=np.int64).max())


def check_body_json(body: bytes, field: str = "body", limit: int = MAX_BODY_DEPTH) -> None:
    """Raw JSON (or NDJSON) text: UTF-8, and nested no deeper than ``limit``."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInput(field, f"is not UTF-8 (byte {exc.start})") from None
    if json_text_depth(body, limit) > limit:
        raise InvalidInput(field, f"nests deeper than {limit} levels")


def dump_json(value: Any, field: str, max_bytes: int | None = None) -> str:
    """The canonical JSON text of a value that can be stored and read back.

    Rejected, naming the innermost offending path: NaN and infinities, objects that
    are not JSON, lone surrogates, nesting deeper than
    ``MAX_JSON_DEPTH``; and (``PayloadTooLarge``) text over ``max_bytes`` UTF-8 bytes.
    """
    try:
        raw = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except RecursionError:
        raise InvalidInput(field, f"nests deeper than {MAX_JSON_DEPTH} levels") from None
    except (TypeError, ValueError) as exc:
        raise _json_problem(value, field, str(exc)) from None
    if not raw.isascii():
        try:
            size = len(raw.encode("utf-8"))
        except UnicodeEncodeError:
            raise _json_problem(value, field, "lone surrogate") from None
    else:
        size = len(raw)
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(field, f"larger than the limit of {max_bytes} bytes")
    if json_text_depth(raw, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise _json_problem(value, field, "too deep")
    return raw


def _name(key: Any) -> str:
    text = key if isinstance(key, str) else repr(key)
    if len(text) > 64 or not _valid_unicode(text) or not text.isprintable():
        return repr(text[:64]).encode("ascii", "backslashreplace").decode()
    return text


def _depths(value: Any, field: str) -> Iterator[tuple[str, Any, int]]:
    stack: list[tuple[str, Any, int]] = [(field, value, 0)]
    while stack:
        here, node, depth = stack.pop()
        yield here, node, depth
        if depth > MAX_JSON_DEPTH:
            continue
        if isinstance(node, dict):
            stack.extend((f"{here}.{_name(k)}", v, depth + 1) for k, v in node.items())
        elif isinstance(node, list | tuple):
            stack.extend((f"{here}[{i}]", v, depth + 1) for i, v in enumerate(node))


def _json_problem(value: Any, field: str, reason: str) -> InvalidInput:
    """Find the innermost part of ``value`` that makes it unstorable, and name it."""
    for path, node, depth in _depths(value, field):
        if depth > MAX_JSON_DEPTH:  # the whole value is at fault, not its innermost part
            return InvalidInput(field, f"nests deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            for k in node:
                if not isinstance(k, str):
                    return InvalidInput(path, f"object key {_name(k)} must be a string")
                if not _valid_unicode(k):
                    return InvalidInput(path, "object key is not valid Unicode (lone surrogate)")
        elif isinstance(node, str):
            if not _valid_unicode(node):
                return InvalidInput(path, "is not valid Unicode (it holds a lone surrogate)")
        elif isinstance(node, float):
            if not math.isfinite(node):
                return InvalidInput(path, "must be a finite number (JSON has no NaN or Infinity)")
        elif not (node is None or isinstance(node, bool | int | list | tuple)):
            return InvalidInput(path, f"{type(node).__name__} is not JSON")
    return InvalidInput(field, f"is not JSON: {reason}")


def dump_value(value: Any, max_bytes: int, field: str = "value") -> str:
    """A stored ``value``: ``dump_json`` with the store's size limit."""
    return dump_json(value, field, max_bytes)


# -- names ---------------------------------------------------------------------------

_SEGMENT = re.compile(r"[a-z0-9_.\-]{1,64}")
_KEY_BAD = re.compile(r"[/\x00-\x1f\x7f]")
_META_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
_DOTS = (".", "..")

_VALID_NAMESPACES: dict[str, None] = {}  # recently accepted names: skip re-checking them


def check_namespace(ns: Any, field: str = "namespace", *, stored: bool = False) -> str:
    """A ``/``-separated path of 1–16 segments of ``[a-z0-9_.-]{1,64}``, none ``.``/``..``.

    ``stored=True`` (reads, lists and deletes) also accepts ``.`` and ``..`` segments,
    which earlier releases let writers create: what was stored stays reachable.
    """
    if ns.__class__ is str and ns in _VALID_NAMESPACES:
        return ns
    if not isinstance(ns, str) or not ns:
        raise InvalidInput(field, "must be a non-empty string")
    parts = ns.split("/")
    if len(parts) > MAX_DEPTH:
        raise InvalidInput(field, f"deeper than {MAX_DEPTH} segments")
    dotted = False
    for part in parts:
        if not _SEGMENT.fullmatch(part):
            raise InvalidInput(
                field,
                f"segment {_name(part)!r} must be 1-64 of lowercase letters, digits, '-', '_', '.'",
            )
        dotted = dotted or part in _DOTS
    if dotted:
        if not stored:
            raise InvalidInput(field, "segments '.' and '..' are not allowed")
        return ns
    if len(_VALID_NAMESPACES) > 4096:
        _VALID_NAMESPACES.clear()
    _VALID_NAMESPACES[ns] = None
    return ns


def check_prefix(prefix: Any, field: str = "prefix", *, stored: bool = False) -> str:
    """A namespace prefix; ``""`` (or ``"/"``) means every namespace."""
    if prefix is None:
        return ""
    if not isinstance(prefix, str):
        raise InvalidInput(field, "must be a string")
    prefix = prefix.strip("/")
    return check_namespace(prefix, field, stored=stored) if prefix else ""


def check_scopes(prefixes: Any, field: str) -> list[str]:
    """A list of at most ``MAX_SCOPES`` namespace prefixes (reads: dot segments allowed)."""
    if not isinstance(prefixes, list | tuple):
        raise InvalidInput(field, "must be a list of namespace prefixes")
    if len(prefixes) > MAX_SCOPES:
        raise InvalidInput(field, f"more than {MAX_SCOPES} prefixes")
    return [check_prefix(p, f"{field}[{i}]", stored=True) for i, p in enumerate(prefixes)]


def in_scope(namespace: str, prefix: str) -> bool:
    """True if ``namespace`` is ``prefix`` or lies below it (segment-wise)."""
    return (
        not prefix
        or namespace == prefix
        or (namespace.startswith(prefix) and namespace[len(prefix)] == "/")
    )


def check_key(key: Any, field: str = "key") -> str:
    """1–512 characters of valid Unicode, no ``/`` or control characters, not ``.``/``..``."""
    if not isinstance(key, str) or not key:
        raise InvalidInput(field, "must be a non-empty string")
    if len(key) > MAX_KEY:
        raise InvalidInput(field, f"longer than {MAX_KEY} characters")
    if _KEY_BAD.search(key) or key in _DOTS:
        raise InvalidInput(field, "must not contain '/' or control characters, nor be '.' or '..'")
    if not _valid_unicode(key):
        raise InvalidInput(field, "is not valid Unicode (it holds a lone surrogate)")
    return key


# -- item fields ---------------------------------------------------------------------


def check_metadata(meta: Any, field: str = "metadata") -> dict[str, Any]:
    """A flat object: names of ``[A-Za-z_][A-Za-z0-9_-]*``, values scalars or scalar lists."""
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise InvalidInput(field, "must be an object")
    for name, val in meta.items():
        if not isinstance(name, str) or not _META_KEY.fullmatch(name):
            raise InvalidInput(
                f"{field}.{_name(name)}", "name must match [A-Za-z_][A-Za-z0-9_-]{0,63}"
            )
        where = f"{field}.{name}"
        if isinstance(val, list):
            for i, v in enumerate(val):
                if isinstance(v, dict | list):
                    raise InvalidInput(f"{where}[{i}]", "must be a scalar (lists hold scalars)")
                check_scalar(v, f"{where}[{i}]")
        elif isinstance(val, dict | tuple):
            raise InvalidInput(where, "must be a scalar or a list of scalars")
        else:
            check_scalar(val, where)
    return meta


_PLAIN_NUMBERS: frozenset[type] = frozenset({float, int})


def check_vector(vector: Any, dim: int | None, field: str = "vector") -> np.ndarray:
    """Finite numbers (never booleans or strings) of the store's dimension, as float32."""
    if isinstance(vector, np.ndarray):
        if vector.dtype.kind not in "fiu":
            raise InvalidInput(field, "must be a list of numbers")
        arr = vector.astype(np.float32)
    elif isinstance(vector, list | tuple):
        # Fast path: plain floats and ints (``type(True)`` is bool, not int); anything
        # else is checked element by element to name the first offender.
        if not set(map(type, vector)) <= _PLAIN_NUMBERS:
            for i, x in enumerate(vector):
                if isinstance(x, bool | np.bool_) or not isinstance(x, numbers.Real):
                    raise InvalidInput(f"{field}[{i}]", "must be a number")
        try:
            with np.errstate(over="ignore"):
                arr = np.asarray(vector, dtype=np.float32)
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidInput(field, "must be a list of numbers") from exc
    else:
        raise InvalidInput(field, "must be a non-empty list of numbers")
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidInput(field, "must be a non-empty list of numbers")
    if not np.isfinite(arr).all():
        raise InvalidInput(field, "must contain finite 32-bit numbers only")
    if dim is not None and arr.size != dim:
        raise InvalidInput(field, f"has {arr.size} dimensions, the store uses {dim}")
    if not arr.any():
        raise InvalidInput(field, "must not be all zeros")
    return arr


def unit_vector(arr: np.ndarray) -> np.ndarray:
    """``arr`` scaled to length 1, computed in float64 so large entries cannot overflow."""
    wide = arr.astype(np.float64)
    norm = float(np.sqrt(np.dot(wide, wide)))
    if abs(norm - 1.0) < 1e-6:
        return arr.astype(np.float32)
    return (wide / norm).astype(np.float32)


def check_ttl(ttl: Any, field: str = "ttl") -> float | None:
    """Seconds to live: a number (not a bool or a string), > 0 and <= ``MAX_TTL``; or None."""
    if ttl is None:
        return None
    if isinstance(ttl, bool | np.bool_) or not isinstance(ttl, numbers.Real):
        raise InvalidInput(field, f"must be a number of seconds, > 0 and <= {MAX_TTL}")
    if isinstance(ttl, numbers.Integral) and not 0 < operator.index(ttl) <= MAX_TTL:
        raise InvalidInput(field, f"must be a number of seconds, > 0 and <= {MAX_TTL}")
    seconds = float(ttl)
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_TTL:
        raise InvalidInput(field, f"must be a number of seconds, > 0 and <= {MAX_TTL}")
    return seconds
