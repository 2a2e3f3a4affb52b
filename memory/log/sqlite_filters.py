"""SQLite metadata filters: parsed filter conditions compiled to SQL over a JSON column
(``json_each``/``json_type``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hivemem.memory.search import Cond


def _value_pred(operand: Any) -> tuple[str, list[Any]]:
    if operand is None:
        return "type = 'null'", []
    if isinstance(operand, bool):
        return ("type = 'true'" if operand else "type = 'false'"), []
    if isinstance(operand, int | float):
        return "(type IN ('integer', 'real') AND value = ?)", [operand]
    return "(type = 'text' AND value = ?)", [operand]


def _in_pred(operands: Sequence[Any]) -> tuple[str, list[Any]]:
    """Membership in a list of scalars as at most five terms, whatever its length
    (one OR per value would outgrow SQLite's expression depth of 1000)."""
    preds: list[str] = []
    if any(v is None for v in operands):
        preds.append("type = 'null'")
    if any(v is True for v in operands):
        preds.append("type = 'true'")
    if any(v is False for v in operands):
        preds.append("type = 'false'")
    nums = [v for v in operands if isinstance(v, int | float) and not isinstance(v, bool)]
    texts = [v for v in operands if isinstance(v, str)]
    if nums:
        preds.append(f"(type IN ('integer', 'real') AND value IN ({','.join('?' * len(nums))}))")
    if texts:
        preds.append(f"(type = 'text' AND value IN ({','.join('?' * len(texts))}))")
    return "(" + (" OR ".join(preds) or "0") + ")", [*nums, *texts]


def filter_sql(conds: Sequence[Cond], column: str = "c.metadata") -> tuple[str, list[Any]]:
    """Compile parsed filter conditions to SQL over a JSON metadata column."""
    clauses, params = [], []
    for cond in conds:
        path = f'$."{cond.field}"'
        each = f"EXISTS (SELECT 1 FROM json_each({column}, '{path}') WHERE "
        if cond.op in ("$eq", "$ne"):
            pred, p = _value_pred(cond.operand)
            clause = each + pred + ")"
            clauses.append(clause if cond.op == "$eq" else f"NOT {clause}")
            params += p
        elif cond.op in ("$in", "$nin"):
            pred, p = _in_pred(cond.operand)
            clause = each + pred + ")"
            clauses.append(clause if cond.op == "$in" else f"NOT {clause}")
            params += p
        elif cond.op == "$exists":
            test = "IS NOT NULL" if cond.operand else "IS NULL"
            clauses.append(f"json_type({column}, '{path}') {test}")
        else:
            sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
            kind = (
                "type = 'text'"
                if isinstance(cond.operand, str)
                else ("type IN ('integer', 'real')")
            )
            clauses.append(each + f"{kind} AND value {sql_op} ?)")
            params.append(cond.operand)
    return (" AND ".join(clauses) or "1"), params
