"""SQLite state log (the embedded default): WAL, one writer, ``BEGIN IMMEDIATE``.

Tables: ``revisions`` (one row per committed transaction), ``changes`` (every version
and tombstone, with its vector and thread), ``items`` (the newest change of each key:
the current state) and the ACL tables. ``items`` is a derived view, maintained in the
same transaction as the log, so it never disagrees with it. The keyword index is a
view kept by the engine (``memory/threads.py``), like the vector index.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from hivemem.memory.errors import InvalidInput, Unavailable
from hivemem.memory.log.base import (
    ITEM_OPS,
    ChangeCount,
    PendingChange,
    Plan,
    Row,
    first_revision_at,
    item_columns,
    scope_sql,
)
from hivemem.memory.log.sqlite_acl import SQLiteACL
from hivemem.memory.log.sqlite_filters import filter_sql
from hivemem.memory.log.sqlite_leases import SQLiteLeases
from hivemem.memory.log.sqlite_schema import (
    _EXPIRED_VERSION,
    _ITEM_OP,
    _LIVE,
    _ROW_COLS,
    _WHO,
    migrate,
)
from hivemem.memory.log.sqlite_view import _WriteView
from hivemem.memory.search import parse_filter

__all__ = ["SQLiteLog"]


def _place(p: PendingChange, own_id: int) -> int | None:
    """A threaded change's place: the one it keeps, or its own id (a new place)."""
    if p.thread is None:
        return None
    return p.thread_pos if p.thread_pos is not None else own_id


class SQLiteLog(SQLiteLeases, SQLiteACL):
    """The embedded state log in one SQLite file."""

    def __init__(self, path: str, durability: str = "full", busy_timeout: float = 30.0) -> None:
        if durability not in ("full", "normal", "off"):
            raise InvalidInput("durability", "must be 'full', 'normal' or 'off'")
        self.path = path
        self._sync = durability.upper()
        self._busy = busy_timeout
        self._wlock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self._w = self._connect()
        self._migrate()

    # -- connections ---------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, timeout=self._busy
            )
        except sqlite3.Error as exc:
            raise Unavailable(f"cannot open {self.path}: {exc}") from exc
        con.execute("PRAGMA journal_mode = WAL")
        con.execute(f"PRAGMA synchronous = {self._sync}")
        con.execute("PRAGMA foreign_keys = OFF")
        con.execute("PRAGMA cache_size = -65536")
        return con

    def _r(self) -> sqlite3.Connection:
        if self._closed:
            raise Unavailable("the store is closed")
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            con.execute("PRAGMA query_only = 1")
            self._local.con = con
            with self._wlock:
                self._readers.append(con)
        return con

    def _migrate(self) -> None:
        with self._wlock:
            migrate(self._w)

    # -- writing -------------------------------------------------------------------
    def commit(self, author: str, plan: Plan) -> tuple[int, list[Row], Any]:
        with self._wlock:
            if self._closed:
                raise Unavailable("the store is closed")
            con = self._w
            con.execute("BEGIN IMMEDIATE")
            try:
                head = con.execute("SELECT COALESCE(MAX(revision), 0) FROM revisions").fetchone()[0]
                view = _WriteView(con, head + 1, time.time())
                pending, result = plan(view)
                if not pending:
                    con.execute("ROLLBACK")
                    return head, [], result
                rows = self._append(con, view, author, pending)
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            return view.revision, rows, result

    def commit_group(
        self, batch: Sequence[tuple[str, Plan]]
    ) -> list[tuple[int, list[Row], Any] | BaseException]:
        with self._wlock:
            if self._closed:
                raise Unavailable("the store is closed")
            con = self._w
            con.execute("BEGIN IMMEDIATE")
            outcomes: list[tuple[int, list[Row], Any] | BaseException] = []
            try:
                head = con.execute("SELECT COALESCE(MAX(revision), 0) FROM revisions").fetchone()[0]
                for author, plan in batch:
                    con.execute("SAVEPOINT plan")
                    try:
                        view = _WriteView(con, head + 1, time.time())
                        pending, result = plan(view)
                        rows = self._append(con, view, author, pending) if pending else []
                    except Exception as exc:
                        con.execute("ROLLBACK TO plan")
                        con.execute("RELEASE plan")
                        outcomes.append(exc)
                        continue
                    con.execute("RELEASE plan")
                    head += 1 if rows else 0
                    outcomes.append((head, rows, result))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
            return outcomes

    def _append(
        self, con: sqlite3.Connection, view: _WriteView, author: str, pending: list[PendingChange]
    ) -> list[Row]:
        revision, now = view.revision, view.now
        next_id = con.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()[0] + 1
        rows: list[Row] = []
        final: dict[tuple[str, str], Row] = {}
        for offset, p in enumerate(pending):
            row = Row(
                next_id + offset,
                revision,
                p.op,
                p.namespace,
                p.key,
                p.version,
                p.prev_version,
                p.value,
                p.text,
                p.metadata,
                p.vector,
                author,
                p.created_at or now,
                now,
                p.expires_at,
            )
            row.lease, row.claim, row.info, row.ops = p.lease, p.claim, p.info, p.ops
            row.thread, row.thread_pos = p.thread, _place(p, next_id + offset)
            rows.append(row)
            if p.op in ITEM_OPS:
                final[(p.namespace, p.key)] = row
        con.executemany(
            "INSERT INTO changes VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    r.id,
                    r.revision,
                    r.op,
                    r.namespace,
                    r.key,
                    r.version,
                    r.prev_version,
                    r.value,
                    r.text,
                    r.metadata,
                    r.vector,
                    r.author,
                    r.created_at,
                    r.updated_at,
                    r.expires_at,
                    r.lease,
                    r.claim,
                    r.info,
                    r.ops,
                    r.thread,
                    r.thread_pos,
                )
                for r in rows
            ],
        )
        self._apply_leases(con, [r for r in rows if r.op == "lease"])
        deadlines = self._deadlines(con, {r.lease for r in final.values() if r.lease})
        con.executemany(
            "INSERT INTO items VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT (namespace, key) DO UPDATE "
            "SET change_id = excluded.change_id, version = excluded.version, "
            "revision = excluded.revision, live = excluded.live, expires_at = excluded.expires_at, "
            "lease = excluded.lease, claim_lease = excluded.claim_lease, "
            "queue_at = excluded.queue_at",
            [
                (
                    r.namespace,
                    r.key,
                    r.id,
                    r.version,
                    r.revision,
                    int(r.live),
                    deadlines[r.lease] if r.lease and r.live else r.expires_at,
                    *item_columns(r),
                )
                for r in final.values()
            ],
        )
        con.execute("INSERT INTO revisions VALUES (?, ?, ?, ?)", (revision, author, now, len(rows)))
        return rows

    # -- reading -------------------------------------------------------------------
    def head(self) -> int:
        return int(
            self._r().execute("SELECT COALESCE(MAX(revision), 0) FROM revisions").fetchone()[0]
        )

    def compacted_revision(self) -> int:
        value = self.meta("compacted_revision")
        return int(value) if value else 0

    def get(self, namespace: str, key: str, at_revision: int | None, now: float) -> Row | None:
        con = self._r()
        if at_revision is None:
            r = con.execute(
                f"SELECT {_ROW_COLS} FROM items i JOIN changes c ON c.id = i.change_id "
                f"WHERE i.namespace = ? AND i.key = ? AND {_LIVE}",
                (namespace, key, now),
            ).fetchone()
        else:
            r = con.execute(
                f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = ? AND key = ? "
                "AND revision <= ? ORDER BY revision DESC, id DESC LIMIT 1",
                (namespace, key, at_revision),
            ).fetchone()
        row = Row(*r) if r else None
        return row if row is not None and row.live else None

    def history(self, namespace: str, key: str) -> list[Row]:
        cur = self._r().execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = ? AND key = ? ORDER BY id",
            (namespace, key),
        )
        return [Row(*r) for r in cur]

    def list_items(
        self,
        scopes: Sequence[str],
        flt: Any,
        limit: int,
        after: tuple[str, str] | None,
        now: float,
    ) -> list[Row]:
        if not scopes:
            return []
        where, params = self._where(scopes, flt, now)
        if after is not None:
            where += " AND (i.namespace, i.key) > (?, ?)"
            params += list(after)
        cur = self._r().execute(
            f"SELECT {_ROW_COLS} FROM items i JOIN changes c ON c.id = i.change_id "
            f"WHERE {where} ORDER BY i.namespace, i.key LIMIT ?",
            [*params, limit],
        )
        return [Row(*r) for r in cur]

    def namespace_counts(self, scopes: Sequence[str], now: float) -> list[tuple[str, int]]:
        if not scopes:
            return []
        scope, params = scope_sql(scopes)
        cur = self._r().execute(
            f"SELECT i.namespace, COUNT(*) FROM items i WHERE {_LIVE} AND {scope} "
            "GROUP BY i.namespace ORDER BY i.namespace",
            [now, *params],
        )
        return [(ns, int(n)) for ns, n in cur]

    def change_counts(self, scopes: Sequence[str], since: float, width: float) -> list[ChangeCount]:
        if not scopes:
            return []
        con = self._r()

        def time_from(revision: int) -> float | None:
            r = con.execute(
                "SELECT time FROM revisions WHERE revision >= ? ORDER BY revision LIMIT 1",
                (revision,),
            ).fetchone()
            return None if r is None else float(r[0])

        first = first_revision_at(since, self.head(), time_from)
        scope, params = scope_sql(scopes, "c.namespace")
        cur = con.execute(
            f"SELECT CAST(c.updated_at / ? AS INTEGER) AS b, c.namespace, {_WHO} AS who, c.op, "
            f"COUNT(*) FROM changes c {_EXPIRED_VERSION} "
            f"WHERE c.revision >= ? AND c.updated_at >= ? AND {scope} AND {_ITEM_OP} "
            "GROUP BY b, c.namespace, who, c.op",
            [width, first, since, *params],
        )
        return [(int(b), ns, who, op, int(n)) for b, ns, who, op, n in cur]

    def _where(self, scopes: Sequence[str], flt: Any, now: float) -> tuple[str, list[Any]]:
        conds = flt if isinstance(flt, list) else parse_filter(flt)
        scope, sp = scope_sql(scopes)
        fsql, fp = filter_sql(conds)
        return f"{_LIVE} AND {scope} AND {fsql}", [now, *sp, *fp]

    def rows_by_id(self, ids: Iterable[int]) -> dict[int, Row]:
        ids = list(ids)
        out: dict[int, Row] = {}
        con = self._r()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for r in con.execute(f"SELECT {_ROW_COLS} FROM changes c WHERE id IN ({marks})", chunk):
                out[r[0]] = Row(*r)
        return out

    def current_rows(self, ids: Iterable[int], now: float) -> dict[int, Row]:
        ids = list(ids)
        out: dict[int, Row] = {}
        con = self._r()
        cols = _ROW_COLS.replace("c.vector", "NULL")  # hits never need the vector
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            cur = con.execute(
                f"SELECT {cols} FROM items i JOIN changes c ON c.id = i.change_id "
                f"WHERE i.change_id IN ({marks}) AND {_LIVE}",
                [*chunk, now],
            )
            for r in cur:
                out[r[0]] = Row(*r)
        return out

    def filtered_ids(
        self, scopes: Sequence[str], flt: Any, now: float, thread: str | None = None
    ) -> list[int]:
        if not scopes:
            return []
        where, params = self._where(scopes, flt, now)
        if thread is not None:
            where += " AND c.thread = ?"
            params.append(thread)
        cur = self._r().execute(
            f"SELECT i.change_id FROM items i JOIN changes c ON c.id = i.change_id WHERE {where}",
            params,
        )
        return [r[0] for r in cur]

    def state_at(
        self,
        revision: int,
        scopes: Sequence[str],
        flt: Any,
        thread: str | None = None,
        vectors: bool = False,
    ) -> list[Row]:
        if not scopes:
            return []
        con = self._r()
        found = con.execute("SELECT time FROM revisions WHERE revision = ?", (revision,)).fetchone()
        if found is None:
            return []
        scope, sp = scope_sql(scopes)
        conds = flt if isinstance(flt, list) else parse_filter(flt)
        fsql, fp = filter_sql(conds)
        cols = _ROW_COLS if vectors else _ROW_COLS.replace("c.vector", "NULL")
        visible = "c.op = 'put' AND (c.expires_at IS NULL OR c.expires_at > ?)"
        extra, ep = (" AND c.thread = ?", [thread]) if thread is not None else ("", [])
        # Keys untouched since the revision are read from the current state; only those
        # written after it need a look into their history.
        cur = con.execute(
            f"SELECT {cols} FROM items i JOIN changes c ON c.id = i.change_id "
            f"WHERE i.revision <= ? AND {scope} AND {visible} AND {fsql}{extra} "
            f"UNION ALL SELECT {cols} FROM items i CROSS JOIN changes c ON c.id = ("
            "SELECT MAX(h.id) FROM changes h WHERE h.namespace = i.namespace "
            "AND h.key = i.key AND h.revision <= ?) "
            f"WHERE i.revision > ? AND {scope} AND {visible} AND {fsql}{extra}",
            [revision, *sp, found[0], *fp, *ep, revision, revision, *sp, found[0], *fp, *ep],
        )
        return [Row(*r) for r in cur]

    def changes_since(self, revision: int, limit: int) -> list[Row]:
        con = self._r()
        last = con.execute(
            "SELECT MAX(revision) FROM (SELECT revision FROM revisions WHERE revision > ? "
            "ORDER BY revision LIMIT ?)",
            (revision, limit),
        ).fetchone()[0]
        if last is None:
            return []
        cur = con.execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE revision > ? AND revision <= ? ORDER BY id",
            (revision, last),
        )
        return [Row(*r) for r in cur]

    def live_vectors(self) -> Iterator[tuple[int, str, bytes]]:
        cur = self._r().execute(
            "SELECT c.id, c.namespace, c.vector FROM items i JOIN changes c ON c.id = i.change_id "
            "WHERE i.live = 1 AND c.vector IS NOT NULL ORDER BY c.id"
        )
        yield from cur

    def live_metadata(self) -> Iterator[tuple[int, str | None]]:
        cur = self._r().execute(
            "SELECT c.id, c.metadata FROM items i JOIN changes c ON c.id = i.change_id "
            "WHERE i.live = 1"
        )
        yield from cur

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        cur = self._r().execute(
            "SELECT namespace, key FROM items WHERE live = 1 AND expires_at IS NOT NULL "
            "AND expires_at <= ? AND lease IS NULL LIMIT ?",
            (now, limit),
        )
        return [(ns, key) for ns, key in cur]

    def compact(self, revision: int) -> int:
        with self._wlock:
            con = self._w
            con.execute("BEGIN IMMEDIATE")
            try:
                current = self._meta(con, "compacted_revision")
                if current is not None and int(current) >= revision:
                    con.execute("ROLLBACK")
                    return int(current)
                # Keep, per key, the newest change below the compaction point: reads at
                # any revision >= it still see the right version, and numbering goes on.
                con.execute(
                    "DELETE FROM changes WHERE revision < ? AND id NOT IN "
                    "(SELECT MAX(id) FROM changes WHERE revision < ? GROUP BY namespace, key)",
                    (revision, revision),
                )
                self._set_meta(con, "compacted_revision", str(revision))
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return revision

    # -- settings ------------------------------------------------------------------
    @staticmethod
    def _meta(con: sqlite3.Connection, name: str) -> str | None:
        r = con.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return r[0] if r else None

    @staticmethod
    def _set_meta(con: sqlite3.Connection, name: str, value: str) -> None:
        con.execute(
            "INSERT INTO meta VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def meta(self, name: str) -> str | None:
        return self._meta(self._r(), name)

    def set_meta(self, name: str, value: str) -> None:
        with self._wlock:
            self._set_meta(self._w, name, value)

    def external_change(self) -> bool:
        # data_version moves when any other connection commits (our writer included);
        # each thread asks its own reader, so no lock is shared with writers.
        version = self._r().execute("PRAGMA data_version").fetchone()[0]
        changed = version != getattr(self._local, "data_version", None)
        self._local.data_version = version
        return bool(changed)

    def listen(self, wake: Callable[[int | None], None]) -> bool:
        """SQLite has no cross-process notification: the engine polls ``data_version``."""
        return False

    # -- principals, grants, keys ----------------------------------------------------
    def acl(self) -> SQLiteLog:
        return self

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with self._wlock:
            if self._closed:
                return
            self._closed = True
            for con in self._readers:
                try:
                    con.close()
                except sqlite3.Error:
                    pass
            self._w.close()
