"""PostgreSQL metadata filters: parsed filter conditions compiled to SQL over a JSONB
column, element-wise like SQLite's ``json_each``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hivemem.memory.search import Cond


def _value_pred(operand: Any) -> tuple[str, list[Any]]:
    """A type-strict equality test on the JSONB element ``e``."""
    if operand is None:
        return "jsonb_typeof(e) = 'null'", []
    if isinstance(operand, bool):
        return ("e = 'true'::jsonb" if operand else "e = 'false'::jsonb"), []
    if isinstance(operand, int | float):
        return "(jsonb_typeof(e) = 'number' AND e = to_jsonb(%s::numeric))", [operand]
    return "(jsonb_typeof(e) = 'string' AND e #>> '{}' = %s)", [operand]


def filter_sql(conds: Sequence[Cond], column: str = "c.metadata") -> tuple[str, list[Any]]:
    """Compile parsed filter conditions to SQL over a JSONB metadata column.

    Like SQLite's ``json_each``, a field's value is tested element-wise when it is an
    array (or object), and as itself when it is a scalar.
    """
    clauses, params = [], []
    for cond in conds:
        x = f"({column} -> %s::text)"
        each = (
            f"EXISTS (SELECT 1 FROM (SELECT {x} AS x) AS f, LATERAL jsonb_array_elements("
            "CASE WHEN f.x IS NULL THEN NULL WHEN jsonb_typeof(f.x) = 'array' THEN f.x "
            "WHEN jsonb_typeof(f.x) = 'object' THEN (SELECT jsonb_agg(o.value) "
            "FROM jsonb_each(f.x) AS o) ELSE jsonb_build_array(f.x) END) AS el (e) WHERE "
        )
        field = [cond.field]
        if cond.op in ("$eq", "$ne"):
            pred, p = _value_pred(cond.operand)
            clause = each + pred + ")"
            clauses.append(clause if cond.op == "$eq" else f"NOT {clause}")
            params += field + p
        elif cond.op in ("$in", "$nin"):
            preds = [_value_pred(v) for v in cond.operand] or [("FALSE", [])]
            clause = each + " OR ".join(p for p, _ in preds) + ")"
            clauses.append(clause if cond.op == "$in" else f"NOT {clause}")
            params += field
            for _, p in preds:
                params += p
        elif cond.op == "$exists":
            test = "IS NOT NULL" if cond.operand else "IS NULL"
            clauses.append(f"{x} {test}")
            params.append(cond.field)
        else:
            sql_op = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}[cond.op]
            if isinstance(cond.operand, str):
                test = f"jsonb_typeof(e) = 'string' AND (e #>> '{{}}') COLLATE \"C\" {sql_op} %s"
            else:
                test = f"jsonb_typeof(e) = 'number' AND e {sql_op} to_jsonb(%s::numeric)"
            clauses.append(each + test + ")")
            params += [*field, cond.operand]
    return (" AND ".join(clauses) or "TRUE"), params
