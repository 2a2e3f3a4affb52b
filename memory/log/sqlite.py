"""SQLite state log (the embedded default): WAL, one writer, ``BEGIN IMMEDIATE``.

Tables: ``revisions`` (one row per committed transaction), ``changes`` (every version
and tombstone, with its vector and thread), ``items`` (the newest change of each key:
the current state) and the ACL tables. ``items`` is a derived view, maintained in the
same transaction as the log, so it never disagrees with it. The keyword index is a
view kept by the engine (``memory/threads.py``), like the vector index.
"""

from __future__ import annotations

import json
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
    LeaseRecord,
    PendingChange,
    Plan,
    Row,
    first_revision_at,
    item_columns,
    scope_sql,
)
from hivemem.memory.search import Cond, parse_filter

__all__ = ["SQLiteLog"]

TOKENIZER = "porter unicode61 remove_diacritics 2"

MIGRATIONS: list[str] = [
    # 1: the log, the current state, the keyword index, the ACL
    f"""
    CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE revisions (
        revision INTEGER PRIMARY KEY, author TEXT NOT NULL, time REAL NOT NULL,
        changes INTEGER NOT NULL);
    CREATE TABLE changes (
        id INTEGER PRIMARY KEY, revision INTEGER NOT NULL, op TEXT NOT NULL,
        namespace TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL,
        prev_version INTEGER, value TEXT, text TEXT, metadata TEXT, vector BLOB,
        author TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL,
        expires_at REAL);
    CREATE INDEX changes_key ON changes (namespace, key, revision);
    CREATE INDEX changes_revision ON changes (revision);
    CREATE TABLE items (
        namespace TEXT NOT NULL, key TEXT NOT NULL, change_id INTEGER NOT NULL,
        version INTEGER NOT NULL, revision INTEGER NOT NULL, live INTEGER NOT NULL,
        expires_at REAL, PRIMARY KEY (namespace, key)) WITHOUT ROWID;
    CREATE UNIQUE INDEX items_change ON items (change_id);
    CREATE INDEX items_expiry ON items (expires_at) WHERE live = 1 AND expires_at IS NOT NULL;
    CREATE VIRTUAL TABLE fts USING fts5 (
        text, content='changes', content_rowid='id', tokenize='{TOKENIZER}');
    CREATE TABLE principals (name TEXT PRIMARY KEY, created_at REAL NOT NULL);
    CREATE TABLE grants (
        principal TEXT NOT NULL, prefix TEXT NOT NULL, permission TEXT NOT NULL,
        PRIMARY KEY (principal, prefix));
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY, principal TEXT NOT NULL, hash TEXT NOT NULL,
        created_at REAL NOT NULL, revoked_at REAL);
    """,
    # 2: coordination: leases, task claims, and the log's coordination entries
    """
    ALTER TABLE changes ADD COLUMN lease TEXT;
    ALTER TABLE changes ADD COLUMN claim TEXT;
    ALTER TABLE changes ADD COLUMN info TEXT;
    ALTER TABLE items ADD COLUMN lease TEXT;
    ALTER TABLE items ADD COLUMN claim_lease TEXT;
    ALTER TABLE items ADD COLUMN queue_at REAL;
    CREATE INDEX items_lease ON items (lease) WHERE lease IS NOT NULL;
    CREATE INDEX items_claim_lease ON items (claim_lease) WHERE claim_lease IS NOT NULL;
    CREATE INDEX items_queue ON items (namespace, queue_at) WHERE queue_at IS NOT NULL;
    CREATE TABLE leases (
        id TEXT PRIMARY KEY, holder TEXT NOT NULL, ttl REAL NOT NULL, deadline REAL NOT NULL,
        revision INTEGER NOT NULL, ended_revision INTEGER);
    CREATE INDEX leases_due ON leases (deadline) WHERE ended_revision IS NULL;
    """,
    # 3: the operations of an update, delivered with its change
    "ALTER TABLE changes ADD COLUMN ops TEXT",
    # 4: threads; the keyword index leaves the write transaction for an engine view
    """
    ALTER TABLE changes ADD COLUMN thread TEXT;
    ALTER TABLE changes ADD COLUMN thread_pos INTEGER;
    DROP TABLE fts;
    """,
]

_ROW_COLS = (
    "c.id, c.revision, c.op, c.namespace, c.key, c.version, c.prev_version, c.value, "
    "c.text, c.metadata, c.vector, c.author, c.created_at, c.updated_at, c.expires_at, "
    "c.lease, c.claim, c.info, c.ops, c.thread, c.thread_pos"
)
_LEASE_COLS = "id, holder, ttl, deadline, revision, ended_revision"
_LIVE = "i.live = 1 AND (i.expires_at IS NULL OR i.expires_at > ?)"
# An expire is committed by the reaper: count it for the writer of the version it ended.
_EXPIRED_VERSION = (
    "LEFT JOIN changes p ON c.op = 'expire' AND p.namespace = c.namespace "
    "AND p.key = c.key AND p.version = c.prev_version"
)
_WHO = "CASE WHEN c.op = 'expire' THEN COALESCE(p.author, c.author) ELSE c.author END"
_ITEM_OP = "c.op IN (" + ", ".join(f"'{op}'" for op in sorted(ITEM_OPS)) + ")"


def _place(p: PendingChange, own_id: int) -> int | None:
    """A threaded change's place: the one it keeps, or its own id (a new place)."""
    if p.thread is None:
        return None
    return p.thread_pos if p.thread_pos is not None else own_id


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


class _WriteView:
    """Reads inside the write transaction; remembers what it read."""

    def __init__(self, con: sqlite3.Connection, revision: int, now: float) -> None:
        self.con = con
        self.revision = revision
        self.now = now
        self._latest: dict[tuple[str, str], Row | None] = {}

    def latest(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Row]:
        missing = list(dict.fromkeys(k for k in keys if k not in self._latest))
        for start in range(0, len(missing), 300):
            chunk = missing[start : start + 300]
            for k in chunk:
                self._latest[k] = None
            marks = ",".join("(?,?)" for _ in chunk)
            flat = [x for k in chunk for x in k]
            # CROSS JOIN makes SQLite drive from the key list and seek the primary key;
            # an IN (VALUES ...) here scans the whole items table for every chunk.
            sql = (
                f"WITH k (ns, key) AS (VALUES {marks}) SELECT {_ROW_COLS} FROM k "
                "CROSS JOIN items i ON i.namespace = k.ns AND i.key = k.key "
                "JOIN changes c ON c.id = i.change_id"
            )
            for r in self.con.execute(sql, flat):
                row = Row(*r)
                self._latest[(row.namespace, row.key)] = row
        return {k: r for k in keys if (r := self._latest[k]) is not None}

    def version_row(self, namespace: str, key: str, version: int) -> Row | None:
        r = self.con.execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = ? AND key = ? AND version = ?",
            (namespace, key, version),
        ).fetchone()
        return Row(*r) if r else None

    def leases(self, ids: Sequence[str]) -> dict[str, LeaseRecord]:
        out: dict[str, LeaseRecord] = {}
        for lease_id in dict.fromkeys(ids):
            r = self.con.execute(
                f"SELECT {_LEASE_COLS} FROM leases WHERE id = ?", (lease_id,)
            ).fetchone()
            if r:
                out[lease_id] = LeaseRecord(*r)
        return out

    def lease_items(self, lease_id: str) -> list[Row]:
        cur = self.con.execute(
            f"SELECT {_ROW_COLS} FROM items i JOIN changes c ON c.id = i.change_id "
            "WHERE i.live = 1 AND (i.lease = ? OR i.claim_lease = ?) ORDER BY c.id",
            (lease_id, lease_id),
        )
        return [Row(*r) for r in cur]

    def claimable(self, namespace: str, flt: Any, limit: int) -> list[Row]:
        fsql, fp = filter_sql(flt)
        cur = self.con.execute(
            f"SELECT {_ROW_COLS} FROM items i JOIN changes c ON c.id = i.change_id "
            "WHERE i.namespace = ? AND i.queue_at IS NOT NULL "
            f"AND (i.expires_at IS NULL OR i.expires_at > ?) AND {fsql} "
            "ORDER BY i.queue_at, i.key LIMIT ?",
            [namespace, self.now, *fp, limit],
        )
        return [Row(*r) for r in cur]

    def stale_claims(self, namespace: str, limit: int) -> list[str]:
        cur = self.con.execute(
            "SELECT DISTINCT l.id FROM items i JOIN leases l ON l.id = i.claim_lease "
            "WHERE i.namespace = ? AND l.ended_revision IS NULL AND l.deadline <= ? LIMIT ?",
            (namespace, self.now, limit),
        )
        return [r[0] for r in cur]


class SQLiteLog:
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
            self._w.execute("BEGIN IMMEDIATE")
            try:
                have = self._w.execute("PRAGMA user_version").fetchone()[0]
                for number, script in enumerate(MIGRATIONS[have:], start=have + 1):
                    for stmt in script.split(";"):
                        if stmt.strip():
                            self._w.execute(stmt)
                    self._w.execute(f"PRAGMA user_version = {number}")
                self._w.execute("COMMIT")
            except BaseException:
                self._w.execute("ROLLBACK")
                raise

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

    @staticmethod
    def _apply_leases(con: sqlite3.Connection, rows: list[Row]) -> None:
        """Keep the ``leases`` table level with the lease entries of the log."""
        for r in rows:
            info = json.loads(r.info or "{}")
            if info.get("event") == "grant":
                con.execute(
                    "INSERT INTO leases VALUES (?, ?, ?, ?, ?, NULL)",
                    (r.key, r.author, info["ttl"], info["deadline"], r.revision),
                )
            else:
                con.execute(
                    "UPDATE leases SET ended_revision = ? WHERE id = ?", (r.revision, r.key)
                )

    @staticmethod
    def _deadlines(con: sqlite3.Connection, ids: set[str | None]) -> dict[str | None, float]:
        """Leased items live until their lease's deadline: the items table's expiry."""
        out: dict[str | None, float] = {}
        for lease_id in ids:
            r = con.execute(
                "SELECT deadline, ended_revision FROM leases WHERE id = ?", (lease_id,)
            ).fetchone()
            out[lease_id] = 0.0 if r is None or r[1] is not None else float(r[0])
        return out

    # -- leases ----------------------------------------------------------------------
    def proposal_rows(self) -> list[Row]:
        cur = self._r().execute(
            f"SELECT {_ROW_COLS} FROM changes c WHERE c.id IN (SELECT MAX(id) FROM changes "
            "WHERE namespace = '' AND op IN ('propose', 'review') GROUP BY key) ORDER BY c.id"
        )
        return [Row(*r) for r in cur]

    def due_leases(self, now: float, limit: int) -> list[str]:
        cur = self._r().execute(
            "SELECT id FROM leases WHERE ended_revision IS NULL AND deadline <= ? "
            "ORDER BY deadline LIMIT ?",
            (now, limit),
        )
        return [r[0] for r in cur]

    def lease(self, lease_id: str) -> LeaseRecord | None:
        r = (
            self._r()
            .execute(f"SELECT {_LEASE_COLS} FROM leases WHERE id = ?", (lease_id,))
            .fetchone()
        )
        return LeaseRecord(*r) if r else None

    def lease_item_count(self, lease_id: str, now: float) -> int:
        r = (
            self._r()
            .execute(f"SELECT COUNT(*) FROM items i WHERE i.lease = ? AND {_LIVE}", (lease_id, now))
            .fetchone()
        )
        return int(r[0])

    def keepalive(self, lease_id: str, now: float) -> LeaseRecord | None:
        with self._wlock:
            if self._closed:
                raise Unavailable("the store is closed")
            con = self._w
            con.execute("BEGIN IMMEDIATE")
            try:
                r = con.execute(
                    "UPDATE leases SET deadline = ? + ttl WHERE id = ? AND ended_revision IS NULL "
                    f"AND deadline > ? RETURNING {_LEASE_COLS}",
                    (now, lease_id, now),
                ).fetchone()
                if r is not None:
                    con.execute(
                        "UPDATE items SET expires_at = ? WHERE lease = ? AND live = 1",
                        (r[3], lease_id),
                    )
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return LeaseRecord(*r) if r else None

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

    def acl_grants(self) -> list[tuple[str, str, str]]:
        return list(self._r().execute("SELECT principal, prefix, permission FROM grants"))

    def acl_set_grant(self, principal: str, prefix: str, permission: str | None) -> None:
        with self._wlock:
            con = self._w
            con.execute("INSERT OR IGNORE INTO principals VALUES (?, ?)", (principal, time.time()))
            if permission is None:
                con.execute(
                    "DELETE FROM grants WHERE principal = ? AND prefix = ?", (principal, prefix)
                )
            else:
                con.execute(
                    "INSERT INTO grants VALUES (?, ?, ?) ON CONFLICT (principal, prefix) "
                    "DO UPDATE SET permission = excluded.permission",
                    (principal, prefix, permission),
                )

    def acl_principals(self) -> list[str]:
        return [r[0] for r in self._r().execute("SELECT name FROM principals ORDER BY name")]

    def acl_add_principal(self, principal: str) -> None:
        with self._wlock:
            self._w.execute(
                "INSERT OR IGNORE INTO principals VALUES (?, ?)", (principal, time.time())
            )

    def acl_add_key(self, key_id: str, principal: str, digest: str) -> float:
        now = time.time()
        with self._wlock:
            self._w.execute("INSERT OR IGNORE INTO principals VALUES (?, ?)", (principal, now))
            self._w.execute(
                "INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)", (key_id, principal, digest, now)
            )
        return now

    def acl_revoke_key(self, key_id: str) -> bool:
        with self._wlock:
            cur = self._w.execute(
                "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (time.time(), key_id),
            )
        return cur.rowcount > 0

    def acl_keys(self) -> list[tuple[str, str, str, float, float | None]]:
        return list(
            self._r().execute(
                "SELECT id, principal, hash, created_at, revoked_at FROM api_keys "
                "ORDER BY created_at"
            )
        )

    def acl_key(self, key_id: str) -> tuple[str, str, str, float, float | None] | None:
        r = (
            self._r()
            .execute(
                "SELECT id, principal, hash, created_at, revoked_at FROM api_keys WHERE id = ?",
                (key_id,),
            )
            .fetchone()
        )
        return tuple(r) if r else None

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
