"""PostgreSQL leases: keeping the ``leases`` table level with the log, reading it, and
keep-alives (a mixin of ``PostgresLog``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from hivemem.memory.log.base import LeaseRecord, Row
from hivemem.memory.log.postgres_schema import _LEASE_COLS, _LIVE, _ROW_COLS
from hivemem.memory.log.postgres_view import _rows

T = TypeVar("T")


class PostgresLeases:
    """The lease tables of ``PostgresLog``."""

    if TYPE_CHECKING:

        def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

        def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T: ...

    # -- the leases table, inside a commit -------------------------------------------
    @staticmethod
    def _apply_leases(con: psycopg.Connection[Any], rows: list[Row]) -> None:
        """Keep the ``leases`` table level with the lease entries of the log."""
        for r in rows:
            info = json.loads(r.info or "{}")
            if info.get("event") == "grant":
                con.execute(
                    "INSERT INTO leases VALUES (%s, %s, %s, %s, %s, NULL)",
                    (r.key, r.author, info["ttl"], info["deadline"], r.revision),
                )
            else:
                con.execute(
                    "UPDATE leases SET ended_revision = %s WHERE id = %s", (r.revision, r.key)
                )

    @staticmethod
    def _deadlines(con: psycopg.Connection[Any], ids: set[str | None]) -> dict[str | None, float]:
        """Leased items live until their lease's deadline: the items table's expiry."""
        out: dict[str | None, float] = {}
        for lease_id in ids:
            r = con.execute(
                "SELECT deadline, ended_revision FROM leases WHERE id = %s", (lease_id,)
            ).fetchone()
            out[lease_id] = 0.0 if r is None or r[1] is not None else float(r[0])
        return out

    # -- leases ----------------------------------------------------------------------
    def proposal_rows(self) -> list[Row]:
        return _rows(
            self._read(
                f"SELECT {_ROW_COLS} FROM changes c WHERE c.id IN (SELECT MAX(id) FROM changes "
                "WHERE namespace = '' AND op IN ('propose', 'review') GROUP BY key) ORDER BY c.id"
            )
        )

    def due_leases(self, now: float, limit: int) -> list[str]:
        found = self._read(
            "SELECT id FROM leases WHERE ended_revision IS NULL AND deadline <= %s "
            "ORDER BY deadline LIMIT %s",
            (now, limit),
        )
        return [r[0] for r in found]

    def lease(self, lease_id: str) -> LeaseRecord | None:
        found = self._read(f"SELECT {_LEASE_COLS} FROM leases WHERE id = %s", (lease_id,))
        return LeaseRecord(*found[0]) if found else None

    def lease_item_count(self, lease_id: str, now: float) -> int:
        found = self._read(
            f"SELECT COUNT(*) FROM items i WHERE i.lease = %s AND {_LIVE}", (lease_id, now)
        )
        return int(found[0][0])

    def keepalive(self, lease_id: str, now: float) -> LeaseRecord | None:
        def run(con: psycopg.Connection[Any]) -> LeaseRecord | None:
            with con.transaction():
                r = con.execute(
                    "UPDATE leases SET deadline = %s + ttl WHERE id = %s "
                    f"AND ended_revision IS NULL AND deadline > %s RETURNING {_LEASE_COLS}",
                    (now, lease_id, now),
                ).fetchone()
                if r is not None:
                    con.execute(
                        "UPDATE items SET expires_at = %s WHERE lease = %s AND live",
                        (r[3], lease_id),
                    )
            return LeaseRecord(*r) if r else None

        return self._write(run)
