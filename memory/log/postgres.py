"""PostgreSQL state log (scale-out): any number of replicas share one schema.

The tables mirror the SQLite backend: ``revisions``, ``changes`` (every version and
tombstone, metadata as JSONB, the vector as BYTEA, the thread and its place), ``items``
(the newest change of each key: the current state) and the ACL tables. Each replica
keeps its own keyword index as a view of the log, as it keeps its vector index.
Namespaces and keys use ``COLLATE "C"`` so ordering and the scope range trick compare
bytewise, as SQLite does.

A commit takes a transaction-scoped advisory lock on the schema, so revisions and change
ids are assigned gap-free across every process; ``NOTIFY hivemem_<schema>`` carries the
revision and the committing process's origin tag as a wake-up only (readers always read
the log; ``listen`` skips a process's own commits). Reads use a small pool of
autocommit connections; writes go through one connection per process under a lock.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import fields
from operator import attrgetter
from typing import Any, TypeVar

import psycopg
import psycopg_pool

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
from hivemem.memory.log.postgres_acl import PostgresACL
from hivemem.memory.log.postgres_filters import filter_sql
from hivemem.memory.log.postgres_leases import PostgresLeases
from hivemem.memory.log.postgres_listen import PostgresListen
from hivemem.memory.log.postgres_schema import (
    _CHUNK,
    _EXPIRED_VERSION,
    _ITEM_JOIN,
    _ITEM_OP,
    _LIVE,
    _LOCK_COMMIT,
    _ROW_COLS,
    _SCHEMA,
    _WHO,
    migrate,
)
from hivemem.memory.log.postgres_view import _rows, _WriteView
from hivemem.memory.search import parse_filter

__all__ = ["PostgresLog", "filter_sql"]

T = TypeVar("T")

_ROW_TUPLE = attrgetter(*(f.name for f in fields(Row)))
_PENDING = attrgetter(
    "op", "namespace", "key", "version", "prev_version", "value", "text", "metadata", "vector"
)


class PostgresLog(PostgresLeases, PostgresListen, PostgresACL):
    """The scale-out state log in one PostgreSQL schema."""

    def __init__(
        self,
        url: str,
        schema: str = "hivemem",
        fresh: bool = False,
        durability: str = "full",
        pool_size: int = 8,
        connect_timeout: float = 10.0,
        **_: Any,
    ) -> None:
        if durability not in ("full", "normal", "off"):
            raise InvalidInput("durability", "must be 'full', 'normal' or 'off'")
        if not isinstance(schema, str) or not _SCHEMA.fullmatch(schema):
            raise InvalidInput("schema", "must match [a-z_][a-z0-9_]{0,62}")
        self.url = url
        self.schema = schema
        self.channel = f"hivemem_{schema}"
        self._sync = durability == "full"
        self._kwargs: dict[str, Any] = {
            "autocommit": True,
            "options": f"-c search_path={schema}",
            "connect_timeout": max(1, int(connect_timeout)),
        }
        self._wlock = threading.RLock()
        self._local = threading.local()
        self._closed = False
        self._w: psycopg.Connection[Any] | None = None
        self._listener: threading.Thread | None = None
        self._origin = uuid.uuid4().hex[:12]  # names this process's commits in NOTIFYs
        self._listen_con: psycopg.Connection[Any] | None = None
        #: times the listening connection was (re)established (tests, metrics)
        self.listen_connects = 0
        try:
            self._migrate(fresh)
        except BaseException:
            self.close()
            raise
        self._pool = psycopg_pool.ConnectionPool(
            url,
            kwargs=self._kwargs,
            min_size=1,
            max_size=max(1, pool_size),
            timeout=connect_timeout,
            open=False,
            name=f"hivemem-{schema}",
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as exc:
            self.close()
            raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc

    # -- connections ---------------------------------------------------------------
    def _guard(self, fn: Callable[[], T]) -> T:
        """Run ``fn``, turning connection failures into ``Unavailable``."""
        if self._closed:
            raise Unavailable("the store is closed")
        try:
            return fn()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc
        except psycopg_pool.PoolTimeout as exc:
            raise Unavailable(f"no PostgreSQL connection available: {exc}") from exc

    def _writer(self) -> psycopg.Connection[Any]:
        """The process's write connection (call under ``_wlock``), reconnected if broken."""
        if self._closed:
            raise Unavailable("the store is closed")
        if self._w is None or self._w.closed or self._w.broken:
            try:
                con = psycopg.connect(self.url, **self._kwargs)
            except psycopg.OperationalError as exc:
                raise Unavailable(f"cannot connect to PostgreSQL: {exc}") from exc
            if not self._sync:
                con.execute("SET synchronous_commit = off")
            self._w = con
        return self._w

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one read query on a pooled autocommit connection; all rows."""

        def run() -> list[tuple[Any, ...]]:
            for attempt in (1, 2):  # a pooled connection the server dropped: retry once
                broken = False
                try:
                    with self._pool.connection() as con:
                        try:
                            return con.execute(sql, params).fetchall()
                        except psycopg.OperationalError:
                            broken = con.broken
                            raise
                except psycopg.OperationalError:
                    if attempt == 2 or not broken:
                        raise
            raise AssertionError("unreachable")

        return self._guard(run)

    def _write(self, fn: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run ``fn`` on the write connection under the process write lock."""
        with self._wlock:
            return self._guard(lambda: fn(self._writer()))

    def _migrate(self, fresh: bool) -> None:
        self._write(lambda con: migrate(con, self.schema, fresh))

    # -- writing -------------------------------------------------------------------
    def commit(self, author: str, plan: Plan) -> tuple[int, list[Row], Any]:
        def run(con: psycopg.Connection[Any]) -> tuple[int, list[Row], Any]:
            with con.transaction() as tx:
                self._lock(con)
                head = con.execute("SELECT COALESCE(MAX(revision), 0) FROM revisions").fetchone()
                view = _WriteView(con, int(head[0]) + 1, time.time())  # type: ignore[index]
                pending, result = plan(view)
                if not pending:
                    raise psycopg.Rollback(tx)
                try:
                    rows = self._append(con, view, author, pending)
                except psycopg.DataError as exc:
                    raise InvalidInput("value", f"cannot be stored: {exc}") from exc
                payload = f"{view.revision} {self._origin}"  # who committed: skip our own
                con.execute("SELECT pg_notify(%s, %s)", (self.channel, payload))
            if not pending:
                return view.revision - 1, [], result
            return view.revision, rows, result

        return self._write(run)

    def commit_group(
        self, batch: Sequence[tuple[str, Plan]]
    ) -> list[tuple[int, list[Row], Any] | BaseException]:
        def run(con: psycopg.Connection[Any]) -> list[tuple[int, list[Row], Any] | BaseException]:
            outcomes: list[tuple[int, list[Row], Any] | BaseException] = []
            with con.transaction():
                self._lock(con)
                r = con.execute("SELECT COALESCE(MAX(revision), 0) FROM revisions").fetchone()
                head = first = int(r[0])  # type: ignore[index]
                for author, plan in batch:
                    try:
                        with con.transaction():  # a savepoint: a failing plan rolls back alone
                            view = _WriteView(con, head + 1, time.time())
                            pending, result = plan(view)
                            try:
                                rows = self._append(con, view, author, pending) if pending else []
                            except psycopg.DataError as exc:
                                raise InvalidInput("value", f"cannot be stored: {exc}") from exc
                    except Exception as exc:
                        outcomes.append(exc)
                        continue
                    head += 1 if rows else 0
                    outcomes.append((head, rows, result))
                if head > first:
                    con.execute("SELECT pg_notify(%s, %s)", (self.channel, str(head)))
            return outcomes

        return self._write(run)

    def _lock(self, con: psycopg.Connection[Any]) -> None:
        """Serialise writers across processes until the transaction ends."""
        con.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_LOCK_COMMIT, self.schema))

    def _append(
        self,
        con: psycopg.Connection[Any],
        view: _WriteView,
        author: str,
        pending: list[PendingChange],
    ) -> list[Row]:
        revision, now = view.revision, view.now
        r = con.execute("SELECT COALESCE(MAX(id), 0) FROM changes").fetchone()
        next_id = int(r[0]) + 1  # type: ignore[index]
        rows: list[Row] = []
        final: dict[tuple[str, str], Row] = {}
        for offset, p in enumerate(pending):
            created = p.created_at or now
            row = Row(next_id + offset, revision, *_PENDING(p), author, created, now, p.expires_at)  # type: ignore[call-arg]
            row.lease, row.claim, row.info = p.lease, p.claim, p.info
            row.ops = p.ops
            if p.thread is not None:
                row.thread = p.thread
                row.thread_pos = p.thread_pos if p.thread_pos is not None else row.id
            rows.append(row)
            if p.op in ITEM_OPS:
                final[(p.namespace, p.key)] = row
        with con.cursor() as cur:
            cur.executemany(
                "INSERT INTO changes VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, "
                "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [_ROW_TUPLE(r) for r in rows],
            )
        self._apply_leases(con, [r for r in rows if r.op == "lease"])
        deadlines = self._deadlines(con, {r.lease for r in final.values() if r.lease})
        items = [
            (
                r.namespace,
                r.key,
                r.id,
                r.version,
                r.revision,
                r.live,
                deadlines[r.lease] if r.lease and r.live else r.expires_at,
                *item_columns(r),
            )
            for r in final.values()
        ]
        if items:
            con.execute(
                "INSERT INTO items SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], "
                "%s::bigint[], %s::bigint[], %s::boolean[], %s::float8[], %s::text[], "
                "%s::text[], %s::float8[]) "
                "ON CONFLICT (namespace, key) DO UPDATE SET change_id = excluded.change_id, "
                "version = excluded.version, revision = excluded.revision, live = excluded.live, "
                "expires_at = excluded.expires_at, lease = excluded.lease, "
                "claim_lease = excluded.claim_lease, queue_at = excluded.queue_at",
                [list(column) for column in zip(*items, strict=True)],
            )
        con.execute(
            "INSERT INTO revisions VALUES (%s, %s, %s, %s)", (revision, author, now, len(rows))
        )
        return rows

    # -- reading -------------------------------------------------------------------
    def head(self) -> int:
        return int(self._read("SELECT COALESCE(MAX(revision), 0) FROM revisions")[0][0])

    def compacted_revision(self) -> int:
        value = self.meta("compacted_revision")
        return int(value) if value else 0

    def get(self, namespace: str, key: str, at_revision: int | None, now: float) -> Row | None:
        if at_revision is None:
            found = self._read(
                f"SELECT {_ROW_COLS} FROM {_ITEM_JOIN} "
                f"WHERE i.namespace = %s AND i.key = %s AND {_LIVE}",
                (namespace, key, now),
            )
        else:
            found = self._read(
                f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = %s AND key = %s "
                "AND revision <= %s ORDER BY revision DESC, id DESC LIMIT 1",
                (namespace, key, at_revision),
            )
        row = Row(*found[0]) if found else None
        return row if row is not None and row.live else None

    def history(self, namespace: str, key: str) -> list[Row]:
        return _rows(
            self._read(
                f"SELECT {_ROW_COLS} FROM changes c WHERE namespace = %s AND key = %s ORDER BY id",
                (namespace, key),
            )
        )

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
            where += " AND (i.namespace, i.key) > (%s, %s)"
            params += list(after)
        return _rows(
            self._read(
                f"SELECT {_ROW_COLS} FROM {_ITEM_JOIN} "
                f"WHERE {where} ORDER BY i.namespace, i.key LIMIT %s",
                [*params, limit],
            )
        )

    def namespace_counts(self, scopes: Sequence[str], now: float) -> list[tuple[str, int]]:
        if not scopes:
            return []
        scope, params = scope_sql(scopes, mark="%s")
        rows = self._read(
            f"SELECT i.namespace, COUNT(*) FROM items i WHERE {_LIVE} AND {scope} "
            "GROUP BY i.namespace ORDER BY i.namespace",
            [now, *params],
        )
        return [(ns, int(n)) for ns, n in rows]

    def change_counts(self, scopes: Sequence[str], since: float, width: float) -> list[ChangeCount]:
        if not scopes:
            return []

        def time_from(revision: int) -> float | None:
            r = self._read(
                "SELECT time FROM revisions WHERE revision >= %s ORDER BY revision LIMIT 1",
                (revision,),
            )
            return float(r[0][0]) if r else None

        first = first_revision_at(since, self.head(), time_from)
        scope, params = scope_sql(scopes, "c.namespace", mark="%s")
        rows = self._read(
            f"SELECT FLOOR(c.updated_at / %s)::BIGINT AS b, c.namespace, {_WHO} AS who, c.op, "
            f"COUNT(*) FROM changes c {_EXPIRED_VERSION} "
            f"WHERE c.revision >= %s AND c.updated_at >= %s AND {scope} AND {_ITEM_OP} "
            "GROUP BY b, c.namespace, who, c.op",
            [width, first, since, *params],
        )
        return [(int(b), ns, who, op, int(n)) for b, ns, who, op, n in rows]

    def _where(self, scopes: Sequence[str], flt: Any, now: float) -> tuple[str, list[Any]]:
        conds = flt if isinstance(flt, list) else parse_filter(flt)
        scope, sp = scope_sql(scopes, mark="%s")
        fsql, fp = filter_sql(conds)
        return f"{_LIVE} AND {scope} AND {fsql}", [now, *sp, *fp]

    def rows_by_id(self, ids: Iterable[int]) -> dict[int, Row]:
        ids = list(ids)
        out: dict[int, Row] = {}
        for start in range(0, len(ids), _CHUNK):
            found = self._read(
                f"SELECT {_ROW_COLS} FROM changes c WHERE id = ANY(%s::bigint[])",
                (ids[start : start + _CHUNK],),
            )
            out.update((r[0], Row(*r)) for r in found)
        return out

    def current_rows(self, ids: Iterable[int], now: float) -> dict[int, Row]:
        ids = list(ids)
        out: dict[int, Row] = {}
        cols = _ROW_COLS.replace("c.vector", "NULL::bytea")  # hits never need the vector
        for start in range(0, len(ids), _CHUNK):
            found = self._read(
                f"SELECT {cols} FROM {_ITEM_JOIN} "
                f"WHERE i.change_id = ANY(%s::bigint[]) AND {_LIVE}",
                (ids[start : start + _CHUNK], now),
            )
            out.update((r[0], Row(*r)) for r in found)
        return out

    def filtered_ids(
        self, scopes: Sequence[str], flt: Any, now: float, thread: str | None = None
    ) -> list[int]:
        if not scopes:
            return []
        where, params = self._where(scopes, flt, now)
        if thread is not None:
            where += " AND c.thread = %s"
            params.append(thread)
        found = self._read(f"SELECT i.change_id FROM {_ITEM_JOIN} WHERE {where}", params)
        return [r[0] for r in found]

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
        found = self._read("SELECT time FROM revisions WHERE revision = %s", (revision,))
        if not found:
            return []
        scope, sp = scope_sql(scopes, mark="%s")
        conds = flt if isinstance(flt, list) else parse_filter(flt)
        fsql, fp = filter_sql(conds)
        cols = _ROW_COLS if vectors else _ROW_COLS.replace("c.vector", "NULL::bytea")
        visible = "c.op = 'put' AND (c.expires_at IS NULL OR c.expires_at > %s)"
        extra, ep = (" AND c.thread = %s", [thread]) if thread is not None else ("", [])
        when = found[0][0]
        # Keys untouched since the revision are read from the current state; only those
        # written after it need a look into their history.
        return _rows(
            self._read(
                f"SELECT {cols} FROM {_ITEM_JOIN} "
                f"WHERE i.revision <= %s AND {scope} AND {visible} AND {fsql}{extra} "
                f"UNION ALL SELECT {cols} FROM items i JOIN LATERAL (SELECT * FROM changes h "
                "WHERE h.namespace = i.namespace AND h.key = i.key AND h.revision <= %s "
                "ORDER BY h.id DESC LIMIT 1) c ON TRUE "
                f"WHERE i.revision > %s AND {scope} AND {visible} AND {fsql}{extra}",
                [revision, *sp, when, *fp, *ep, revision, revision, *sp, when, *fp, *ep],
            )
        )

    def changes_since(self, revision: int, limit: int) -> list[Row]:
        last = self._read(
            "SELECT MAX(revision) FROM (SELECT revision FROM revisions WHERE revision > %s "
            "ORDER BY revision LIMIT %s) AS page",
            (revision, limit),
        )[0][0]
        if last is None:
            return []
        return _rows(
            self._read(
                f"SELECT {_ROW_COLS} FROM changes c WHERE revision > %s AND revision <= %s "
                "ORDER BY id",
                (revision, last),
            )
        )

    def live_vectors(self) -> Iterator[tuple[int, str, bytes]]:
        after = 0
        while True:  # pages by id, so no connection is held between yields
            page = self._read(
                "SELECT c.id, c.namespace, c.vector FROM items i "
                "JOIN changes c ON c.id = i.change_id WHERE i.live AND c.vector IS NOT NULL "
                "AND c.id > %s ORDER BY c.id LIMIT %s",
                (after, _CHUNK),
            )
            for cid, ns, vector in page:
                yield cid, ns, bytes(vector)
            if len(page) < _CHUNK:
                return
            after = page[-1][0]

    def live_metadata(self) -> Iterator[tuple[int, str | None]]:
        after = 0
        while True:  # pages by id, so no connection is held between yields
            page = self._read(
                "SELECT c.id, c.metadata::text FROM items i JOIN changes c ON c.id = i.change_id "
                "WHERE i.live AND c.id > %s ORDER BY c.id LIMIT %s",
                (after, _CHUNK * 10),
            )
            yield from ((int(cid), meta) for cid, meta in page)
            if len(page) < _CHUNK * 10:
                return
            after = page[-1][0]

    def expired(self, now: float, limit: int) -> list[tuple[str, str]]:
        found = self._read(
            "SELECT namespace, key FROM items WHERE live AND expires_at IS NOT NULL "
            "AND expires_at <= %s AND lease IS NULL LIMIT %s",
            (now, limit),
        )
        return [(ns, key) for ns, key in found]

    def compact(self, revision: int) -> int:
        def run(con: psycopg.Connection[Any]) -> int:
            with con.transaction() as tx:
                self._lock(con)
                current = self._meta(con, "compacted_revision")
                if current is not None and int(current) >= revision:
                    raise psycopg.Rollback(tx)
                # Keep, per key, the newest change below the compaction point: reads at
                # any revision >= it still see the right version, and numbering goes on.
                con.execute(
                    "DELETE FROM changes c WHERE c.revision < %s AND EXISTS (SELECT 1 FROM "
                    "changes n WHERE n.namespace = c.namespace AND n.key = c.key "
                    "AND n.revision < %s AND n.id > c.id)",
                    (revision, revision),
                )
                self._set_meta(con, "compacted_revision", str(revision))
            return int(current) if current is not None and int(current) >= revision else revision

        return self._write(run)

    # -- settings ------------------------------------------------------------------
    @staticmethod
    def _meta(con: psycopg.Connection[Any], name: str) -> str | None:
        r = con.execute("SELECT value FROM meta WHERE name = %s", (name,)).fetchone()
        return r[0] if r else None

    @staticmethod
    def _set_meta(con: psycopg.Connection[Any], name: str, value: str) -> None:
        con.execute(
            "INSERT INTO meta VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    def meta(self, name: str) -> str | None:
        found = self._read("SELECT value FROM meta WHERE name = %s", (name,))
        return found[0][0] if found else None

    def set_meta(self, name: str, value: str) -> None:
        self._write(lambda con: self._set_meta(con, name, value))

    def external_change(self) -> bool:
        # The head moves when any process commits (this one included); each thread
        # remembers what it last saw. Spurious True is fine: the engine compares revisions.
        head = self.head()
        changed = head != getattr(self._local, "head", None)
        self._local.head = head
        return changed

    # -- principals, grants, keys ----------------------------------------------------
    def acl(self) -> PostgresLog:
        return self

    # -- lifecycle -----------------------------------------------------------------
    def close(self) -> None:
        with self._wlock:
            if self._closed:
                return
            self._closed = True
            pool = getattr(self, "_pool", None)
            if pool is not None:
                pool.close()
            listener = self._listener
            if listener is not None and listener is not threading.current_thread():
                listener.join(timeout=2)
            if self._w is not None:
                self._w.close()

    def drop(self) -> None:
        """Remove the schema and everything in it (tests, teardown); closes the log."""
        self.close()
        try:
            with psycopg.connect(self.url, autocommit=True) as con:
                con.execute(f"DROP SCHEMA IF EXISTS {self.schema} CASCADE")
        except psycopg.OperationalError as exc:
            raise Unavailable(f"PostgreSQL unavailable: {exc}") from exc
