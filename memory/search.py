"""Pure retrieval logic: metadata filters and fusion of ranked hit lists."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hivemem.memory.errors import InvalidInput
from hivemem.memory.validation import MAX_FILTER_FIELDS, MAX_FILTER_VALUES, check_scalar

__all__ = [
    "Cond",
    "parse_filter",
    "matches",
    "keyword_terms",
    "fuse",
    "FUSION_DEPTH",
    "STOPWORDS",
]

OPERATORS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")


@dataclass(frozen=True, slots=True)
class Cond:
    """One condition on one metadata field."""

    field: str
    op: str
    operand: Any


def _check_operand(field: str, op: str, operand: Any) -> Any:
    where = f"filter.{field}.{op}"
    if op in ("$in", "$nin"):
        if not isinstance(operand, list):
            raise InvalidInput(where, "must be a list of scalars")
        if len(operand) > MAX_FILTER_VALUES:
            raise InvalidInput(where, f"more than {MAX_FILTER_VALUES} values")
        for i, v in enumerate(operand):
            if isinstance(v, dict | list):
                raise InvalidInput(f"{where}[{i}]", "must be a scalar")
            check_scalar(v, f"{where}[{i}]")
    elif op == "$exists":
        if not isinstance(operand, bool):
            raise InvalidInput(where, "must be true or false")
    elif op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(operand, bool) or not isinstance(operand, int | float | str):
            raise InvalidInput(where, "must be a number or a string")
        check_scalar(operand, where)
    elif isinstance(operand, dict | list):
        raise InvalidInput(where, "must be a scalar")
    else:
        check_scalar(operand, where)
    return operand


def parse_filter(flt: Any) -> list[Cond]:
    """Validate a filter (``{field: value}`` or ``{field: {"$op": operand}}``), ANDed.

    At most ``MAX_FILTER_FIELDS`` fields and ``MAX_FILTER_VALUES`` list values in all,
    so no filter can outgrow what the backends compile into one query.
    """
    if flt is None:
        return []
    if not isinstance(flt, dict):
        raise InvalidInput("filter", "must be an object")
    if len(flt) > MAX_FILTER_FIELDS:
        raise InvalidInput("filter", f"more than {MAX_FILTER_FIELDS} fields")
    conds: list[Cond] = []
    values = 0
    for field, spec in flt.items():
        if not isinstance(field, str) or not _FIELD.fullmatch(field):
            name = field if isinstance(field, str) and field.isascii() else repr(field)
            raise InvalidInput(f"filter.{name[:64]}", "is not a valid metadata field name")
        if isinstance(spec, dict):
            if not spec:
                raise InvalidInput(f"filter.{field}", "has no operator")
            for op, operand in spec.items():
                if op not in OPERATORS:
                    shown = op if isinstance(op, str) and op.isascii() else repr(op)
                    raise InvalidInput(
                        f"filter.{field}.{shown[:64]}",
                        f"unknown operator; use one of {', '.join(OPERATORS)}",
                    )
                conds.append(Cond(field, op, _check_operand(field, op, operand)))
                if op in ("$in", "$nin"):
                    values += len(operand)
                    if values > MAX_FILTER_VALUES:
                        raise InvalidInput(
                            f"filter.{field}.{op}",
                            f"the filter holds more than {MAX_FILTER_VALUES} list values",
                        )
        else:
            conds.append(Cond(field, "$eq", _check_operand(field, "$eq", spec)))
    return conds


def _same(a: Any, b: Any) -> bool:
    """JSON equality with SQL's type strictness: true is not 1, 1 is 1.0."""
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _ordered(value: Any, op: str, operand: Any) -> bool:
    if isinstance(operand, str):
        if not isinstance(value, str):
            return False
    elif isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if op == "$gt":
        return bool(value > operand)
    if op == "$gte":
        return bool(value >= operand)
    if op == "$lt":
        return bool(value < operand)
    return bool(value <= operand)


def matches(conds: Sequence[Cond], metadata: Mapping[str, Any]) -> bool:
    """Whether ``metadata`` passes every condition, exactly as the backends' SQL decides:
    a list field passes when any element does, a missing field passes only ``$ne``,
    ``$nin`` and ``$exists: false``."""
    for cond in conds:
        present = cond.field in metadata
        if cond.op == "$exists":
            if present != cond.operand:
                return False
            continue
        raw = metadata.get(cond.field)
        values = raw if isinstance(raw, list) else ([raw] if present else [])
        if cond.op in ("$eq", "$ne"):
            hit = any(_same(v, cond.operand) for v in values)
            ok = hit if cond.op == "$eq" else not hit
        elif cond.op in ("$in", "$nin"):
            hit = any(_same(v, o) for v in values for o in cond.operand)
            ok = hit if cond.op == "$in" else not hit
        else:
            ok = any(_ordered(v, cond.op, cond.operand) for v in values)
        if not ok:
            return False
    return True


# English function words that carry no topic; dropping them keeps BM25 on content terms.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been
    before being below between both but by can could did do does doing down during each
    few for from further had has have having he her here hers herself him himself his how
    i if in into is it its itself just me more most my myself no nor not now of off on
    once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with
    would you your yours yourself yourselves s t ll d re ve m also ever kind likely
    might""".split()
)
_WORD = re.compile(r"[\w']+", re.UNICODE)


def keyword_terms(query: str) -> list[str]:
    """The content words of a query, lower-cased, stop words dropped, order kept."""
    seen: dict[str, None] = {}
    for word in _WORD.findall(query.lower()):
        word = word.strip("'")
        if word.endswith("'s"):
            word = word[:-2]
        if word and word not in STOPWORDS:
            seen.setdefault(word, None)
    return list(seen)


#: How many candidates each side contributes to hybrid fusion.
FUSION_DEPTH = 50


def fuse(
    cosines: Mapping[int, float],
    keyword_hits: Sequence[tuple[int, float]],
    k: int,
    keyword_weight: float = 0.5,
) -> list[tuple[int, float]]:
    """Hybrid score: an equal-weight blend of min-max normalised cosine and BM25.

    ``cosines`` holds the exact cosine of every candidate (the union of the vector and
    keyword top lists); ``keyword_hits`` are ``(id, score)`` with higher better. A
    candidate the keyword side did not return gets 0 for that side. Measured on LoCoMo
    (bench/RESULTS.md), this beats both parts and plain reciprocal-rank fusion.
    """

    def normalised(scores: Mapping[int, float]) -> dict[int, float]:
        if not scores:
            return {}
        lo, hi = min(scores.values()), max(scores.values())
        span = hi - lo
        if span <= 0 or not math.isfinite(span):
            return dict.fromkeys(scores, 1.0)
        return {i: (s - lo) / span for i, s in scores.items()}

    vec = normalised(cosines)
    kw = normalised(dict(keyword_hits))
    combined = {
        i: (1 - keyword_weight) * vec.get(i, 0.0) + keyword_weight * kw.get(i, 0.0)
        for i in vec.keys() | kw.keys()
    }
    return sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
