"""PostgreSQL reads inside the write transaction: the view a commit's plan is checked
against."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from hivemem.memory.log.base import LeaseRecord, Row
from hivemem.memory.log.postgres_filters import filter_sql
from hivemem.memory.log.postgres_schema import _CHUNK, _ITEM_JOIN, _LEASE_COLS, _ROW_COLS


def _rows(cur: Iterable[Sequence[Any]]) -> list[Row]:
    return [Row(*r) for r in cur]


class _WriteView:
    """Reads inside the write transaction; remembers what it read."""

    def __init__(self, con: psycopg.Connection[Any], revision: int, now: float) -> None:
        self.con = con
        self.revision = revision
        self.now = now
        self._latest: dict[tuple[str, str], Row | None] = {}

    def latest(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        missing = list(dict.fromkeys(k for k in keys if k not in self._latest))
        for start in range(0, len(missing), _CHUNK):
            chunk = missing[start : start + _CHUNK]
            for k in chunk:
                self._latest[k] = None
            cur = self.con.execute(
                f"SELECT {_ROW_COLS} FROM unnest(%s::text[], %s::text[]) AS k (ns, key) "
                "JOIN items i ON i.namespace = k.ns AND i.key = k.key "
                "JOIN changes c ON c.id = i.change_id",
                ([k[0] for k in chunk], [k[1] for k in chunk]),
            )
            for row in _rows(cur):
                self._latest[(row.namespace, row.key)] = row
        return {k: r for k in keys if (r := self._latest[k]) is not None}

    def version_row(self, namespace: str, key: str, version: int) -> Row | None:
        r = self.con.execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = %s AND key = %s AND version = %s",
            (namespace, key, version),
        ).fetchone()
        return Row(*r) if r else None

    def leases(self, ids: Sequence[str]) -> dict[str, LeaseRecord]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        cur = self.con.execute(
            f"SELECT {_LEASE_COLS} FROM leases WHERE id = ANY(%s::text[])", (wanted,)
        )
        return {r[0]: LeaseRecord(*r) for r in cur}

    def lease_items(self, lease_id: str) -> list[Row]:
        return _rows(
            self.con.execute(
                f"SELECT {_ROW_COLS} FROM {_ITEM_JOIN} "
                "WHERE i.live AND (i.lease = %s OR i.claim_lease = %s) ORDER BY c.id",
                (lease_id, lease_id),
            )
        )

    def claimable(self, namespace: str, flt: Any, limit: int) -> list[Row]:
        fsql, fp = filter_sql(flt)
        return _rows(
            self.con.execute(
                f"SELECT {_ROW_COLS} FROM {_ITEM_JOIN} "
                "WHERE i.namespace = %s AND i.queue_at IS NOT NULL "
                f"AND (i.expires_at IS NULL OR i.expires_at > %s) AND {fsql} "
                "ORDER BY i.queue_at, i.key LIMIT %s",
                [namespace, self.now, *fp, limit],
            )
        )

    def stale_claims(self, namespace: str, limit: int) -> list[str]:
        cur = self.con.execute(
            "SELECT DISTINCT l.id FROM items i JOIN leases l ON l.id = i.claim_lease "
            "WHERE i.namespace = %s AND l.ended_revision IS NULL AND l.deadline <= %s LIMIT %s",
            (namespace, self.now, limit),
        )
        return [r[0] for r in cur]
