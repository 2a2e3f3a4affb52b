"""Atomic updates: RFC 6902 JSON Patch plus counters, bounded logs and sets, pure functions.

``parse_ops`` checks the shape of a list of operations before anything is committed;
``apply_ops`` applies them, in order, to a copy of the current value inside the write
transaction, so concurrent updates of one key never conflict with each other. Each
failure names ``ops[i].path`` (or ``.from``, ``.value``); a failed ``test`` is a
``Conflict`` listing the path with the expected and the actual value.

Operations (``path`` and ``from`` are RFC 6901 JSON Pointers; ``""`` is the whole value):

- ``add``, ``remove``, ``replace``, ``move``, ``copy``, ``test``: as RFC 6902.
- ``increment`` ``{"path", "value": 1}``: adds a number. Integers stay exact within
  signed 64 bits (beyond is ``InvalidInput``); a float on either side gives a float. A
  missing path (or a null whole value) starts from 0.
- ``append`` ``{"path", "value", "max_len": null}``: appends one element to an array,
  created if missing; ``max_len`` keeps only the newest elements (a bounded log).
- ``add_to_set`` / ``remove_from_set`` ``{"path", "value"}``: the array as a set: add the
  element unless an equal one is there (creating the array if missing), or remove every
  equal element (a missing path is left missing).

``increment``, ``append`` and ``add_to_set`` create missing parent objects on the way
(as MongoDB's ``$inc`` does); the RFC 6902 operations never do.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

from hivemem.memory.errors import Conflict, InvalidInput
from hivemem.memory.validation import MAX_JSON_DEPTH, check_text

__all__ = [
    "PatchOp",
    "STANDARD_OPS",
    "EXTENSION_OPS",
    "MAX_OPS",
    "parse_ops",
    "apply_ops",
    "json_equal",
]

STANDARD_OPS = ("add", "remove", "replace", "move", "copy", "test")
EXTENSION_OPS = ("increment", "append", "add_to_set", "remove_from_set")
MAX_OPS = 1000
MAX_POINTER = 4096  # characters of a JSON Pointer
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_MISSING: Any = object()

_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # op: (required fields besides op and path, optional fields)
    "add": (frozenset({"value"}), frozenset()),
    "remove": (frozenset(), frozenset()),
    "replace": (frozenset({"value"}), frozenset()),
    "move": (frozenset({"from"}), frozenset()),
    "copy": (frozenset({"from"}), frozenset()),
    "test": (frozenset({"value"}), frozenset()),
    "increment": (frozenset(), frozenset({"value"})),
    "append": (frozenset({"value"}), frozenset({"max_len"})),
    "add_to_set": (frozenset({"value"}), frozenset()),
    "remove_from_set": (frozenset({"value"}), frozenset()),
}


@dataclass(frozen=True, slots=True)
class PatchOp:
    """One validated operation; ``where`` is its field name (``ops[2]``)."""

    op: str
    path: tuple[str, ...]
    where: str
    value: Any = None
    source: tuple[str, ...] | None = None
    max_len: int | None = None

    @property
    def pointer(self) -> str:
        return _pointer(self.path)


def _pointer(tokens: tuple[str, ...]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _parse_pointer(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, str):
        raise InvalidInput(field, "must be a JSON Pointer string ('' or '/a/b')")
    if raw == "":
        return ()
    check_text(raw, field, max_chars=MAX_POINTER)
    if not raw.startswith("/"):
        raise InvalidInput(field, "a JSON Pointer must be '' or start with '/'")
    tokens = []
    if raw.count("/") > MAX_JSON_DEPTH:
        raise InvalidInput(field, f"points deeper than {MAX_JSON_DEPTH} levels")
    for token in raw[1:].split("/"):
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise InvalidInput(field, "'~' must be escaped as '~0' ('/' as '~1')")
        tokens.append(token.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def _check_number(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput(field, "must be a number")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(field, "must be a finite number")
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidInput(field, "must be within signed 64 bits")


def parse_ops(raw: Any, field: str = "ops", *, standard_only: bool = False) -> list[PatchOp]:
    """Check the shape of an operation list (values are checked by the caller's limits)."""
    if not isinstance(raw, list):
        raise InvalidInput(field, "must be a list of operations")
    if len(raw) > MAX_OPS:
        raise InvalidInput(field, f"more than {MAX_OPS} operations")
    allowed = STANDARD_OPS if standard_only else STANDARD_OPS + EXTENSION_OPS
    return [_parse_op(op, f"{field}[{i}]", allowed) for i, op in enumerate(raw)]


def _parse_op(raw: Any, where: str, allowed: tuple[str, ...]) -> PatchOp:
    if not isinstance(raw, dict):
        raise InvalidInput(where, "must be an operation object")
    name = raw.get("op")
    if name not in allowed:
        raise InvalidInput(f"{where}.op", f"must be one of {', '.join(allowed)}")
    required, optional = _FIELDS[name]
    for key in raw:
        if key not in required | optional | {"op", "path"}:
            raise InvalidInput(f"{where}.{key}", f"is not a field of '{name}'")
    if "path" not in raw:
        raise InvalidInput(f"{where}.path", "is required")
    for key in required:
        if key not in raw:
            raise InvalidInput(f"{where}.{key}", f"is required by '{name}'")
    path = _parse_pointer(raw["path"], f"{where}.path")
    source = _parse_pointer(raw["from"], f"{where}.from") if "from" in raw else None
    if name == "move" and source is not None and path[: len(source)] == source and path != source:
        raise InvalidInput(f"{where}.from", "cannot move a value into one of its own children")
    value = raw.get("value", 1 if name == "increment" else None)
    if name == "increment":
        _check_number(value, f"{where}.value")
    max_len = raw.get("max_len")
    if max_len is not None and (
        isinstance(max_len, bool) or not isinstance(max_len, int) or not 1 <= max_len <= 10**6
    ):
        raise InvalidInput(f"{where}.max_len", "must be an integer from 1 to 1000000")
    if name == "remove" and path == ():
        raise InvalidInput(f"{where}.path", "'remove' cannot take the whole value")
    return PatchOp(name, path, where, value, source, max_len)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, ``true`` never equal to ``1``, deep for containers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def apply_ops(doc: Any, ops: list[PatchOp]) -> Any:
    """The value after applying ``ops`` in order to ``doc``, which is changed in place
    (pass a fresh copy: the engine decodes the stored JSON for each update)."""
    for op in ops:
        doc = _APPLY[op.op](doc, op)
    return doc


# -- navigation ------------------------------------------------------------------------


def _index(container: list[Any], token: str, op: PatchOp, *, append: bool = False) -> int:
    if append and token == "-":
        return len(container)
    if not token.isdigit() or (token != "0" and token.startswith("0")):
        raise InvalidInput(f"{op.where}.path", f"{token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not append):
        raise InvalidInput(f"{op.where}.path", f"index {i} is out of range")
    return i


def _child(node: Any, token: str, op: PatchOp) -> Any:
    if isinstance(node, dict):
        return node.get(token, _MISSING)
    if isinstance(node, list):
        if token == "-" or not token.isdigit() or (token != "0" and token.startswith("0")):
            return _MISSING
        i = int(token)
        return node[i] if i < len(node) else _MISSING
    return _MISSING


def _get(doc: Any, path: tuple[str, ...], op: PatchOp) -> Any:
    node = doc
    for token in path:
        node = _child(node, token, op)
        if node is _MISSING:
            return _MISSING
    return node


def _parent(doc: Any, path: tuple[str, ...], op: PatchOp, *, create: bool = False) -> Any:
    """The container holding ``path``'s last token (making missing objects if ``create``)."""
    node = doc
    for depth, token in enumerate(path[:-1]):
        nxt = _child(node, token, op)
        if nxt is _MISSING:
            if not (create and isinstance(node, dict)):
                where = _pointer(path[: depth + 1])
                raise InvalidInput(f"{op.where}.path", f"{where} does not exist")
            nxt = node[token] = {}
        node = nxt
    if not isinstance(node, dict | list):
        raise InvalidInput(
            f"{op.where}.path", f"{_pointer(path[:-1]) or 'the value'} is not a container"
        )
    return node


def _set(doc: Any, path: tuple[str, ...], value: Any, op: PatchOp, *, create: bool) -> Any:
    """Replace (or add at an object key) the value at ``path``; returns the new document."""
    if not path:
        return value
    parent = _parent(doc, path, op, create=create)
    if isinstance(parent, dict):
        parent[path[-1]] = value
    else:
        parent[_index(parent, path[-1], op)] = value
    return doc


# -- the operations ----------------------------------------------------------------------


def _add(doc: Any, op: PatchOp) -> Any:
    return _insert(doc, op.path, copy.deepcopy(op.value), op)


def _insert(doc: Any, path: tuple[str, ...], value: Any, op: PatchOp) -> Any:
    if not path:
        return value
    parent = _parent(doc, path, op)
    if isinstance(parent, dict):
        parent[path[-1]] = value
    else:
        parent.insert(_index(parent, path[-1], op, append=True), value)
    return doc


def _remove(doc: Any, op: PatchOp, path: tuple[str, ...] | None = None) -> Any:
    path = op.path if path is None else path
    parent = _parent(doc, path, op)
    if _child(parent, path[-1], op) is _MISSING:
        raise InvalidInput(f"{op.where}.path", f"{_pointer(path)} does not exist")
    if isinstance(parent, dict):
        del parent[path[-1]]
    else:
        del parent[_index(parent, path[-1], op)]
    return doc


def _replace(doc: Any, op: PatchOp) -> Any:
    if op.path and _get(doc, op.path, op) is _MISSING:
        raise InvalidInput(f"{op.where}.path", f"{op.pointer} does not exist")
    return _set(doc, op.path, copy.deepcopy(op.value), op, create=False)


def _taken(doc: Any, op: PatchOp) -> Any:
    assert op.source is not None
    value = _get(doc, op.source, op)
    if value is _MISSING:
        raise InvalidInput(f"{op.where}.from", f"{_pointer(op.source)} does not exist")
    return value


def _move(doc: Any, op: PatchOp) -> Any:
    value = _taken(doc, op)
    if op.source == op.path:
        return doc
    assert op.source is not None
    doc = _remove(doc, op, op.source) if op.source else doc
    return _insert(doc, op.path, value, op)


def _copy(doc: Any, op: PatchOp) -> Any:
    return _insert(doc, op.path, copy.deepcopy(_taken(doc, op)), op)


def _test(doc: Any, op: PatchOp) -> Any:
    actual = _get(doc, op.path, op)
    if actual is _MISSING or not json_equal(actual, op.value):
        from hivemem.memory.models import PatchTestFailure

        failure = PatchTestFailure(
            path=op.pointer,
            expected=op.value,
            actual=None if actual is _MISSING else actual,
            absent=actual is _MISSING,
        )
        raise Conflict(f"test failed at {op.pointer or '/'}", conflicts=[failure])
    return doc


def _increment(doc: Any, op: PatchOp) -> Any:
    current = _get(doc, op.path, op) if op.path else doc
    if current is _MISSING or (not op.path and doc is None):
        current = 0
    if isinstance(current, bool) or not isinstance(current, int | float):
        raise InvalidInput(f"{op.where}.path", f"{op.pointer or 'the value'} is not a number")
    total = current + op.value
    if isinstance(total, int) and not INT64_MIN <= total <= INT64_MAX:
        raise InvalidInput(f"{op.where}.path", "the sum overflows signed 64 bits")
    if isinstance(total, float) and not math.isfinite(total):
        raise InvalidInput(f"{op.where}.path", "the sum is not a finite number")
    return _set(doc, op.path, total, op, create=True)


def _array_at(doc: Any, op: PatchOp, *, create: bool) -> tuple[Any, list[Any] | None]:
    """The array at ``op.path`` (created when missing and ``create``), and the document."""
    current = _get(doc, op.path, op) if op.path else doc
    if current is _MISSING or (not op.path and doc is None):
        if not create:
            return doc, None
        current = []
        doc = _set(doc, op.path, current, op, create=True)
    if not isinstance(current, list):
        raise InvalidInput(f"{op.where}.path", f"{op.pointer or 'the value'} is not an array")
    return doc, current


def _append(doc: Any, op: PatchOp) -> Any:
    doc, array = _array_at(doc, op, create=True)
    assert array is not None
    array.append(copy.deepcopy(op.value))
    if op.max_len is not None and len(array) > op.max_len:
        del array[: len(array) - op.max_len]
    return doc


def _add_to_set(doc: Any, op: PatchOp) -> Any:
    doc, array = _array_at(doc, op, create=True)
    assert array is not None
    if not any(json_equal(x, op.value) for x in array):
        array.append(copy.deepcopy(op.value))
    return doc


def _remove_from_set(doc: Any, op: PatchOp) -> Any:
    doc, array = _array_at(doc, op, create=False)
    if array is not None:
        array[:] = [x for x in array if not json_equal(x, op.value)]
    return doc


_APPLY = {
    "add": _add,
    "remove": _remove,
    "replace": _replace,
    "move": _move,
    "copy": _copy,
    "test": _test,
    "increment": _increment,
    "append": _append,
    "add_to_set": _add_to_set,
    "remove_from_set": _remove_from_set,
}
