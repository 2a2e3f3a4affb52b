"""Metadata postings: a derived view that answers equality filters without a log scan.

The log evaluates any filter by reading every live item's metadata, which is a scan: at
100,000 items a selective filter costs more than the vector search it narrows. For the
filters searches need most (``{field: value}``, ``$eq``, ``$in``) this view keeps, for
every live item, ``(field, value) -> change ids`` in memory. It is built from the log on
the first such search and then maintained with the other views (in commit order), so it
holds exactly the ids the log would return, before the expiry check that every hit gets
when it is hydrated.

Matching follows the log's SQL: a field holding an array (or object) matches when any
element equals the operand; equality is type-strict (``true`` is not ``1``; ``1`` is
``1.0``); ``null`` matches a stored ``null``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from hivemem.memory.search import Cond

__all__ = ["MetadataPostings", "indexable"]

Term = tuple[str, str, Any]  # (field, kind, value)


def _kind(value: Any) -> tuple[str, Any] | None:
    """The type-strict key of a scalar (None for non-scalars)."""
    if value is None:
        return ("z", None)
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)  # 1 and 1.0 are one key, as in SQL; large ints stay exact
    if isinstance(value, str):
        return ("s", value)
    return None


def _terms(metadata: str | None) -> set[Term]:
    """Every (field, scalar) a stored metadata object matches on."""
    if not metadata:
        return set()
    try:
        obj = json.loads(metadata)
    except ValueError:
        return set()
    if not isinstance(obj, dict):
        return set()
    out: set[Term] = set()
    for field, value in obj.items():
        elements = (
            value
            if isinstance(value, list)
            else (list(value.values()) if isinstance(value, dict) else [value])
        )
        for element in elements:
            key = _kind(element)
            if key is not None:
                out.add((field, *key))
    return out


def indexable(conds: Sequence[Cond]) -> bool:
    """Whether the postings can answer the filter exactly (only ``$eq`` and ``$in``)."""
    return bool(conds) and all(c.op in ("$eq", "$in") for c in conds)


class MetadataPostings:
    """``(field, value) -> change ids`` for every live item."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[Term, set[int]] = {}
        self._terms: dict[int, set[Term]] = {}  # change id -> its terms (to remove it)

    def __len__(self) -> int:
        return len(self._terms)

    def apply(self, adds: Iterable[tuple[int, str | None]], removes: Collection[int]) -> None:
        """Remove ``removes``, add ``(change id, metadata JSON)``; idempotent."""
        with self._lock:
            for i in removes:
                for term in self._terms.pop(i, ()):
                    ids = self._ids.get(term)
                    if ids is not None:
                        ids.discard(i)
                        if not ids:
                            del self._ids[term]
            for i, metadata in adds:
                terms = _terms(metadata)
                self._terms[i] = terms
                for term in terms:
                    self._ids.setdefault(term, set()).add(i)

    def matching(self, conds: Sequence[Cond]) -> set[int]:
        """The ids matching every condition (``indexable(conds)`` must hold)."""
        with self._lock:
            result: set[int] | None = None
            for cond in sorted(conds, key=lambda c: c.op != "$eq"):
                operands = cond.operand if cond.op == "$in" else [cond.operand]
                here: set[int] = set()
                for operand in operands:
                    key = _kind(operand)
                    if key is not None:
                        here |= self._ids.get((cond.field, *key), set())
                result = here if result is None else result & here
                if not result:
                    return set()
            return set() if result is None else set(result)
