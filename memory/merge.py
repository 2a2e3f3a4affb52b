"""Pure JSON merge functions: RFC 7396 merge patch and a git-like three-way merge."""

from __future__ import annotations

from copy import deepcopy
from typing import Any, Final, Literal

from hivemem.memory.models import MergeConflict

__all__ = ["merge_patch", "three_way", "json_pointer"]

Side = Literal["base", "ours", "theirs"]
_SIDES: Final[tuple[Side, ...]] = ("base", "ours", "theirs")
_RESOLUTIONS: Final = (None, "ours", "theirs")


class _Absent:
    """Marker for a field that does not exist on one side (distinct from JSON null)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<absent>"


_ABSENT: Final = _Absent()


def json_pointer(parts: list[str]) -> str:
    """RFC 6901 JSON Pointer for a list of object keys ("" is the whole document)."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7396 JSON Merge Patch, returning a new value (inputs untouched)."""
    return _apply_patch(deepcopy(target), patch)


def _apply_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 algorithm on a target we own (may be modified in place)."""
    if not isinstance(patch, dict):
        return deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _apply_patch(target.get(key), value)
    return target


def three_way(
    base: Any, ours: Any, theirs: Any, on_conflict: str | None = None
) -> tuple[Any, list[MergeConflict]]:
    """Merge ours (caller) and theirs (stored) against base; return (merged, conflicts)."""
    if on_conflict not in _RESOLUTIONS:
        raise ValueError(f"on_conflict must be None, 'ours' or 'theirs', not {on_conflict!r}")
    conflicts: list[MergeConflict] = []
    merged = _merge(base, ours, theirs, [], on_conflict, conflicts)
    return merged, conflicts


def _merge(
    base: Any,
    ours: Any,
    theirs: Any,
    parts: list[str],
    pick: str | None,
    conflicts: list[MergeConflict],
) -> Any:
    """Merge one position; returns _ABSENT when the field should not exist."""
    if _same(ours, theirs) or _same(ours, base):
        return _copy(theirs)
    if _same(theirs, base):
        return _copy(ours)
    if isinstance(base, dict) and isinstance(ours, dict) and isinstance(theirs, dict):
        out: dict[str, Any] = {}
        for key in [*theirs, *(k for k in ours if k not in theirs)]:
            value = _merge(
                base.get(key, _ABSENT),
                ours.get(key, _ABSENT),
                theirs.get(key, _ABSENT),
                [*parts, key],
                pick,
                conflicts,
            )
            if value is not _ABSENT:
                out[key] = value
        return out
    values = dict(zip(_SIDES, (base, ours, theirs), strict=True))
    conflicts.append(
        MergeConflict(
            path=json_pointer(parts),
            **{side: None if v is _ABSENT else deepcopy(v) for side, v in values.items()},
            absent=[side for side, v in values.items() if v is _ABSENT],
        )
    )
    return _copy(ours if pick == "ours" else theirs)


def _copy(value: Any) -> Any:
    """Deep copy, keeping the absent marker as the singleton."""
    return value if value is _ABSENT else deepcopy(value)


def _same(a: Any, b: Any) -> bool:
    """JSON equality: like ==, but booleans never equal numbers and absent equals only absent."""
    if a is b:
        return True
    if a is _ABSENT or b is _ABSENT:
        return False
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same(value, b[key]) for key, value in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(b, dict | list):
        return False
    return bool(a == b)
