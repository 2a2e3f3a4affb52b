"""Memory: the single path every operation takes.

validate → authorize → embed (outside the write transaction) → commit to the log →
update the vector index → notify watchers. The log is the truth; the vector index and
watch streams are views of it that catch up or rebuild from it.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel

from hivemem.memory import merge as merging
from hivemem.memory.acl import ACL, check_principal
from hivemem.memory.embed import Embedder, default_embedder
from hivemem.memory.errors import Compacted, Conflict, InvalidInput, NotFound, PermissionDenied
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.log.base import PendingChange, Row, StateLog, WriteView
from hivemem.memory.models import (
    ApiKeyCreated,
    ApiKeyInfo,
    Change,
    Compare,
    DeleteOp,
    GetOp,
    Grant,
    Hit,
    Item,
    ListPage,
    OpResult,
    PutOp,
    TxnResult,
    ts_to_datetime,
)
from hivemem.memory.search import FUSION_DEPTH, fuse, parse_filter
from hivemem.memory.validation import (
    MERGE_MODES,
    check_key,
    check_metadata,
    check_namespace,
    check_prefix,
    check_ttl,
    check_vector,
    dump_value,
    in_scope,
)
from hivemem.memory.watch import Subscription, WatchHub

__all__ = ["Memory", "SYSTEM_PRINCIPAL"]

SYSTEM_PRINCIPAL = "hivemem"  # author of expire changes
_M = TypeVar("_M", bound=BaseModel)
_MISSING = object()
_IMMUTABLE = (str, int, float, bool, type(None))


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def row_to_item(row: Row, value: Any = _MISSING) -> Item:
    """Build the public item of one stored row (already valid: no re-validation).

    ``value``, when given, is the Python value the row's JSON was made from, saving a
    decode; only immutable values are passed this way, so nothing is shared.
    """
    if value is _MISSING:
        value = json.loads(row.value) if row.value is not None else None
    meta = row.metadata
    return _build(
        Item,
        namespace=row.namespace,
        key=row.key,
        value=value,
        text=row.text,
        metadata=json.loads(meta) if meta and meta != "{}" else {},
        version=row.version,
        revision=row.revision,
        author=row.author,
        created_at=_dt(row.created_at),
        updated_at=_dt(row.updated_at),
        expires_at=_dt(row.expires_at) if row.expires_at is not None else None,
        deleted=not row.live,
    )


def row_to_change(row: Row) -> Change:
    """Build the public change of one stored row."""
    return _build(
        Change,
        revision=row.revision,
        op=row.op,
        namespace=row.namespace,
        key=row.key,
        version=row.version,
        prev_version=row.prev_version,
        item=row_to_item(row) if row.live else None,
        author=row.author,
        time=ts_to_datetime(row.updated_at),
    )


def _build(cls: type[_M], **values: Any) -> _M:
    """Instantiate a model from values known to be valid and complete.

    ``model_construct`` re-derives defaults and the fields set on every call; rows from
    the log already carry every field, and this path runs once per returned item.
    """
    obj: _M = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


@dataclass
class _Put:
    """A validated put, ready for the write transaction."""

    namespace: str
    key: str
    value: Any
    value_json: str
    text: str | None
    metadata: str | None
    if_version: int | None
    merge: str
    base_version: int | None
    on_conflict: str | None
    ttl: float | None
    vector: bytes | None


@dataclass
class _Delete:
    namespace: str
    key: str
    if_version: int | None


@dataclass
class _Get:
    namespace: str
    key: str


class _Core:
    """State shared by every principal view of one store."""

    def __init__(
        self,
        log: StateLog,
        index: VectorIndex,
        embedder: Embedder | None,
        *,
        max_value_bytes: int,
        reaper_interval: float | None,
        watch_queue: int,
        save_interval: float,
        cleanup_dir: str | None,
    ) -> None:
        self.log = log
        self.index = index
        self.embedder = embedder
        self.max_value_bytes = max_value_bytes
        self.acl = ACL(log.acl())
        self.write_lock = threading.RLock()
        self.cleanup_dir = cleanup_dir
        self.save_interval = save_interval
        self.closed = False
        stored = log.meta("vector_dim")
        self.dim: int | None = int(stored) if stored else None
        if embedder is not None:
            if self.dim is not None and self.dim != embedder.dim:
                raise InvalidInput(
                    "embedder", f"has {embedder.dim} dimensions; the store holds {self.dim}"
                )
            self.dim = embedder.dim
        self.hub = WatchHub(log, max_pending=watch_queue)
        self._saved_revision = -1
        self._last_save = time.monotonic()
        self.open_index()
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        if reaper_interval:
            self._reaper = threading.Thread(
                target=self._reap_loop, args=(reaper_interval,), name="hivemem-reaper", daemon=True
            )
            self._reaper.start()

    # -- the vector index as a view of the log ---------------------------------------
    def open_index(self) -> None:
        """Load the persisted index, verify it, catch it up from the log or rebuild it."""
        with self.write_lock:
            loaded = self.index.load()
            if loaded and self.dim is not None and self.index.dim not in (None, self.dim):
                loaded = False
            applied = self.index.applied_revision
            if (
                not loaded
                or applied < self.log.compacted_revision()
                or applied > self.log.head()  # not this store's index
            ):
                self.rebuild_index()
            else:
                self.catch_up()
                if self.index.ids() != {cid for cid, _, _ in self.log.live_vectors()}:
                    self.rebuild_index()
            self._saved_revision = self.index.applied_revision if loaded else -1

    def rebuild_index(self) -> None:
        with self.write_lock:
            self.index.reset()
            head = self.log.head()
            batch: list[tuple[int, str, np.ndarray]] = []
            for change_id, ns, blob in self.log.live_vectors():
                batch.append((change_id, ns, np.frombuffer(blob, dtype=np.float32)))
                if len(batch) >= 10_000:
                    self.index.apply(0, batch, ())
                    batch = []
            self.index.apply(head, batch, ())
            self.catch_up()

    def catch_up(self) -> None:
        """Apply log revisions the index (and the watch hub) have not seen."""
        with self.write_lock:
            start = min(self.index.applied_revision, self.hub.last_revision)
            while True:
                rows = self.log.changes_since(start, 512)
                if not rows:
                    return
                last = rows[-1].revision
                if last > self.index.applied_revision:
                    fresh = [r for r in rows if r.revision > self.index.applied_revision]
                    self._reindex_keys({(r.namespace, r.key) for r in fresh}, last)
                for revision, group in _by_revision(rows):
                    self.hub.publish(revision, group)
                start = last

    def _reindex_keys(self, keys: set[tuple[str, str]], revision: int) -> None:
        removes: list[int] = []
        adds: list[tuple[int, str, np.ndarray]] = []
        for ns, key in keys:
            history = self.log.history(ns, key)
            removes += [r.id for r in history]
            top = history[-1] if history else None
            if top is not None and top.live and top.vector is not None:
                adds.append((top.id, ns, np.frombuffer(top.vector, dtype=np.float32)))
        self.index.apply(revision, adds, removes)

    def sync(self) -> None:
        """Catch up with commits made by other processes sharing the store."""
        if self.log.external_change() and self.log.head() > self.index.applied_revision:
            self.catch_up()

    def after_commit(self, revision: int, rows: list[Row], replaced: list[int]) -> None:
        """Update views in commit order (called under the write lock)."""
        if revision > self.hub.last_revision + 1 or revision > self.index.applied_revision + 1:
            self.catch_up()  # another process committed in between
            return
        adds = [
            (r.id, r.namespace, np.frombuffer(r.vector, dtype=np.float32))
            for r in _final_rows(rows)
            if r.live and r.vector is not None
        ]
        removes = replaced + [r.id for r in rows if not (r.live and r.vector is not None)]
        self.index.apply(revision, adds, removes)
        self.hub.publish(revision, rows)

    def save_index(self, force: bool = False) -> None:
        """Persist the vector index; writers wait only for its in-memory copy."""
        revision = self.index.applied_revision
        if force or revision != self._saved_revision:
            self.index.save()
            self._saved_revision = revision
            self._last_save = time.monotonic()

    # -- TTL -----------------------------------------------------------------------
    def expire_due(self) -> int:
        """Commit an ``expire`` change for every item whose TTL has passed."""
        due = self.log.expired(time.time(), 1000)
        if not due:
            return 0

        def plan(view: WriteView) -> tuple[list[PendingChange], Any]:
            latest = view.latest(due)
            out = []
            for k in due:
                row = latest.get(k)
                if row and row.live and row.expires_at is not None and row.expires_at <= view.now:
                    out.append(PendingChange("expire", k[0], k[1], row.version + 1, row.version))
            return out, [latest[(p.namespace, p.key)].id for p in out]

        with self.write_lock:
            revision, rows, replaced = self.log.commit(SYSTEM_PRINCIPAL, plan)
            if rows:
                self.after_commit(revision, rows, replaced)
        return len(rows)

    def _reap_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.sync()
                self.expire_due()
                if time.monotonic() - self._last_save > self.save_interval:
                    self.save_index()
            except Exception:  # the reaper must outlive transient errors (busy, closed)
                if self.closed:
                    return

    def close(self) -> None:
        if self.closed:
            return
        self._stop.set()
        if self._reaper is not None:
            self._reaper.join(timeout=5)
        with self.write_lock:
            self.closed = True
            self.hub.close()
            self.save_index()
            self.log.close()
        if self.cleanup_dir:
            shutil.rmtree(self.cleanup_dir, ignore_errors=True)


def _by_revision(rows: list[Row]) -> Iterator[tuple[int, list[Row]]]:
    group: list[Row] = []
    for row in rows:
        if group and group[0].revision != row.revision:
            yield group[0].revision, group
            group = []
        group.append(row)
    if group:
        yield group[0].revision, group


def _final_rows(rows: list[Row]) -> list[Row]:
    final: dict[tuple[str, str], Row] = {}
    for r in rows:
        final[(r.namespace, r.key)] = r
    return list(final.values())


class Memory:
    """A versioned, conflict-safe shared memory, seen as one principal.

    ``Memory.open(path)`` returns the opener's view (admin on everything);
    ``as_principal(name)`` returns the same store seen through that principal's grants.
    """

    def __init__(self, core: _Core, principal: str, superuser: bool) -> None:
        self._core = core
        self.principal = principal
        self._superuser = superuser

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(
        cls,
        path: str = ":memory:",
        *,
        embedder: Embedder | str | None = "default",
        durability: str = "full",
        max_value_bytes: int = 1 << 20,
        reaper_interval: float | None = 1.0,
        watch_queue: int = 1024,
        save_interval: float = 60.0,
        log: StateLog | None = None,
        index: VectorIndex | None = None,
        principal: str = "admin",
    ) -> Memory:
        """Open (or create) a store in the data directory ``path``.

        ``":memory:"`` gives a throwaway store. ``durability="full"`` survives power loss;
        ``"normal"`` survives a process crash and is much faster. ``embedder=None``
        stores only supplied vectors.
        """
        from hivemem.memory.index.faiss import FaissIndex
        from hivemem.memory.log.sqlite import SQLiteLog

        cleanup = None
        if path == ":memory:":
            cleanup = path = tempfile.mkdtemp(prefix="hivemem-")
            if durability == "full":
                durability = "off"
        if embedder == "default":
            embedder = default_embedder()
        elif isinstance(embedder, str):
            raise InvalidInput("embedder", "must be 'default', None or an Embedder")
        if not isinstance(max_value_bytes, int) or max_value_bytes < 1:
            raise InvalidInput("max_value_bytes", "must be a positive integer")
        os.makedirs(path, exist_ok=True)
        if log is None:
            log = SQLiteLog(os.path.join(path, "log.db"), durability=durability)
        if index is None:
            index = FaissIndex(os.path.join(path, "vectors.faiss"))
        core = _Core(
            log,
            index,
            embedder,
            max_value_bytes=max_value_bytes,
            reaper_interval=reaper_interval,
            watch_queue=watch_queue,
            save_interval=save_interval,
            cleanup_dir=cleanup,
        )
        return cls(core, check_principal(principal), superuser=True)

    def as_principal(self, name: str) -> Memory:
        """The same store, seen through ``name``'s grants."""
        return Memory(self._core, check_principal(name), superuser=False)

    def close(self) -> None:
        """Persist the index and close the store (every view of it)."""
        self._core.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def revision(self) -> int:
        """The latest committed revision."""
        return self._core.log.head()

    @property
    def compacted_revision(self) -> int:
        """History below this revision is gone (0 if never compacted)."""
        return self._core.log.compacted_revision()

    # -- permissions ---------------------------------------------------------------
    def _require(self, namespace: str, permission: str) -> None:
        if not self._superuser:
            self._core.acl.require(self.principal, namespace, permission)

    def _scopes(self, prefixes: Sequence[str] | str | None, field: str) -> list[str]:
        single = prefixes is None or isinstance(prefixes, str)
        if prefixes is None:
            prefixes = [""]
        elif isinstance(prefixes, str):
            prefixes = [prefixes]
        elif not isinstance(prefixes, list | tuple):
            raise InvalidInput(field, "must be a list of namespace prefixes")
        scopes: list[str] = []
        for i, p in enumerate(prefixes):
            prefix = check_prefix(p, field if single else f"{field}[{i}]")
            if self._superuser:
                scopes.append(prefix)
            else:
                scopes += self._core.acl.readable_scopes(self.principal, prefix)
        return list(dict.fromkeys(scopes))

    def _require_admin(self, prefix: str) -> None:
        if not self._superuser and self._core.acl.level(self.principal, prefix) < 3:
            where = repr(prefix) if prefix else "the whole store"
            raise PermissionDenied(f"{self.principal!r} is not admin of {where}")

    # -- validation ----------------------------------------------------------------
    def _prepare_put(self, op: dict[str, Any], field: str) -> _Put:
        get = op.get
        ns = check_namespace(get("namespace"), f"{field}namespace")
        key = check_key(get("key"), f"{field}key")
        value, merge = get("value"), get("merge", "replace")
        if merge not in MERGE_MODES:
            raise InvalidInput(f"{field}merge", f"must be one of {', '.join(MERGE_MODES)}")
        base_version, on_conflict = get("base_version"), get("on_conflict")
        if merge == "three_way" and base_version is None:
            raise InvalidInput(f"{field}base_version", "is required with merge='three_way'")
        if on_conflict not in (None, "ours", "theirs"):
            raise InvalidInput(f"{field}on_conflict", "must be 'ours', 'theirs' or null")
        if_version = get("if_version")
        _check_version(if_version, f"{field}if_version")
        _check_version(base_version, f"{field}base_version")
        if merge == "patch" and not isinstance(value, dict):
            raise InvalidInput(f"{field}value", "a merge patch must be an object")
        value_json = dump_value(value, self._core.max_value_bytes, f"{field}value")
        text = get("text")
        if text is not None and not isinstance(text, str):
            raise InvalidInput(f"{field}text", "must be a string")
        if text is None and merge == "replace" and isinstance(value, str):
            text = value
        metadata = get("metadata")
        meta_json: str | None = None
        if metadata:
            check_metadata(metadata, f"{field}metadata")
            meta_json = json.dumps(metadata, separators=(",", ":"))
        elif metadata is not None or merge == "replace":
            check_metadata(metadata, f"{field}metadata")
            meta_json = "{}"
        vector = None
        if get("vector") is not None:
            vec = check_vector(get("vector"), self._core.dim, f"{field}vector")
            norm = float(np.sqrt(np.dot(vec, vec)))
            if norm == 0:
                raise InvalidInput(f"{field}vector", "must not be all zeros")
            vector = (vec if abs(norm - 1.0) < 1e-6 else vec / norm).astype(np.float32).tobytes()
        return _Put(
            ns,
            key,
            value,
            value_json,
            text,
            meta_json,
            if_version,
            merge,
            base_version,
            on_conflict,
            check_ttl(get("ttl"), f"{field}ttl"),
            vector,
        )

    def _prepare(
        self, ops: Sequence[PutOp | DeleteOp | GetOp | dict[str, Any]], field: str
    ) -> list[_Put | _Delete | _Get]:
        out: list[_Put | _Delete | _Get] = []
        for i, raw in enumerate(ops):
            where = f"{field}[{i}]."
            op = _op_fields(raw, where)
            kind = op.get("op", "put")
            if kind == "put":
                put = self._prepare_put(op, where)
                self._require(put.namespace, "write")
                out.append(put)
                continue
            ns = check_namespace(op.get("namespace"), f"{where}namespace")
            key = check_key(op.get("key"), f"{where}key")
            if kind == "delete":
                _check_version(op.get("if_version"), f"{where}if_version")
                self._require(ns, "write")
                out.append(_Delete(ns, key, op.get("if_version")))
            else:
                self._require(ns, "read")
                out.append(_Get(ns, key))
        return out

    def _embed_missing(self, puts: list[_Put]) -> None:
        """Embed, in one batch and outside the write transaction, puts without vectors."""
        todo = [p for p in puts if p.vector is None and p.text]
        if not todo or self._core.embedder is None:
            return
        vectors = self._core.embedder.embed([p.text for p in todo])  # type: ignore[misc]
        for p, vec in zip(todo, vectors, strict=True):
            p.vector = np.asarray(vec, dtype=np.float32).tobytes()
        if self._core.dim is None:
            self._core.dim = int(vectors.shape[1])

    # -- writes --------------------------------------------------------------------
    def put(
        self,
        namespace: str,
        key: str,
        value: Any,
        *,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        if_version: int | None = None,
        merge: str = "replace",
        base_version: int | None = None,
        on_conflict: str | None = None,
        ttl: float | None = None,
        vector: Sequence[float] | None = None,
    ) -> Item:
        """Write one item and return the version written (see DESIGN.md for options)."""
        op = {
            "namespace": namespace,
            "key": key,
            "value": value,
            "text": text,
            "metadata": metadata,
            "if_version": if_version,
            "merge": merge,
            "base_version": base_version,
            "on_conflict": on_conflict,
            "ttl": ttl,
            "vector": vector,
        }
        result = self._run([], [op], [], field="")
        item = result.results[0].item
        assert item is not None
        return item

    def put_many(self, ops: Sequence[PutOp | dict[str, Any]]) -> list[Item]:
        """Write many items in one transaction (one revision), all or nothing."""
        result = self._run([], list(ops), [], field="ops")
        return [r.item for r in result.results if r.item is not None]

    def delete(self, namespace: str, key: str, if_version: int | None = None) -> Item:
        """Delete an item, leaving a tombstone in history; returns the tombstone."""
        op = {"op": "delete", "namespace": namespace, "key": key, "if_version": if_version}
        result = self._run([], [op], [], field="")
        item = result.results[0].item
        assert item is not None
        return item

    def txn(
        self,
        compare: Sequence[Compare | dict[str, Any]] = (),
        success: Sequence[PutOp | DeleteOp | GetOp | dict[str, Any]] = (),
        failure: Sequence[PutOp | DeleteOp | GetOp | dict[str, Any]] = (),
    ) -> TxnResult:
        """If every compare holds run ``success``, else ``failure``: one revision, atomic."""
        return self._run(list(compare), list(success), list(failure), field=None)

    def _run(
        self,
        compare: list[Compare | dict[str, Any]],
        success: list[Any],
        failure: list[Any],
        field: str | None,
    ) -> TxnResult:
        try:
            return self._run_checked(compare, success, failure, field)
        except InvalidInput as exc:
            if field == "" and exc.field.startswith("ops[0]."):
                exc.field = exc.field[len("ops[0].") :]
                exc.detail = exc.detail[len("ops[0].") :]
                exc.args = (exc.detail,)
            raise

    def _run_checked(
        self,
        compare: list[Compare | dict[str, Any]],
        success: list[Any],
        failure: list[Any],
        field: str | None,
    ) -> TxnResult:
        ops_ok = self._prepare(success, "ops" if field == "" else (field or "success"))
        ops_fail = self._prepare(failure, "failure")
        compares = [_coerce_compare(c, f"compare[{i}].") for i, c in enumerate(compare)]
        for i, c in enumerate(compares):
            check_namespace(c.namespace, f"compare[{i}].namespace")
            check_key(c.key, f"compare[{i}].key")
            self._require(c.namespace, "read")
        self._embed_missing([p for p in (*ops_ok, *ops_fail) if isinstance(p, _Put)])
        core = self._core
        plan = _TxnPlan(compares, ops_ok, ops_fail)
        with core.write_lock:
            revision, rows, (succeeded, results, replaced) = core.log.commit(self.principal, plan)
            if rows:
                if core.dim is not None and core.log.meta("vector_dim") is None:
                    core.log.set_meta("vector_dim", str(core.dim))
                core.after_commit(revision, rows, replaced)
        written = {(r.namespace, r.key, r.version): r for r in rows}
        sources = {(p.namespace, p.key): p for p in ops_ok if isinstance(p, _Put)}
        for res in results:
            row = written.get((res.namespace, res.key, res.version))
            if row is None:
                continue
            src = sources.get((res.namespace, res.key)) if res.op == "put" else None
            if src is not None and src.merge == "replace" and isinstance(src.value, _IMMUTABLE):
                res.item = row_to_item(row, src.value)
            else:
                res.item = row_to_item(row)
        return TxnResult(succeeded=succeeded, revision=revision, results=results)

    # -- reads ---------------------------------------------------------------------
    def get(self, namespace: str, key: str, at_revision: int | None = None) -> Item:
        """The current item, or the version visible at ``at_revision``."""
        check_namespace(namespace)
        check_key(key)
        self._require(namespace, "read")
        if at_revision is not None:
            self._check_revision(at_revision, "at_revision")
        row = self._core.log.get(namespace, key, at_revision, time.time())
        if row is None:
            raise NotFound("no such item")
        return row_to_item(row)

    def _check_revision(self, revision: Any, field: str) -> None:
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
            raise InvalidInput(field, "must be a non-negative integer")
        head = self._core.log.head()
        if revision > head:
            raise InvalidInput(field, f"is ahead of the latest revision {head}")
        compacted = self._core.log.compacted_revision()
        if revision < compacted:
            raise Compacted(compacted)

    def history(self, namespace: str, key: str) -> list[Item]:
        """Every version of an item still in history, oldest first (tombstones too)."""
        check_namespace(namespace)
        check_key(key)
        self._require(namespace, "read")
        rows = self._core.log.history(namespace, key)
        if not rows:
            raise NotFound("no such item")
        return [row_to_item(r) for r in rows]

    def list(
        self,
        prefix: str = "",
        filter: dict[str, Any] | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ListPage:
        """Live items under a namespace prefix, ordered by (namespace, key), paginated."""
        scopes = self._scopes(prefix, "prefix")
        conds = parse_filter(filter)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit", "must be an integer from 1 to 1000")
        after = _decode_cursor(cursor) if cursor else None
        rows = self._core.log.list_items(scopes, conds, limit + 1, after, time.time())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].namespace, rows[-1].key) if more else None
        return ListPage(items=[row_to_item(r) for r in rows], cursor=next_cursor)

    def search(
        self,
        query: str | None = None,
        namespaces: Sequence[str] | str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        vector: Sequence[float] | None = None,
    ) -> builtins.list[Hit]:
        """Top-k items by ``vector``, ``keyword`` or ``hybrid`` relevance, best first."""
        if mode not in ("vector", "keyword", "hybrid"):
            raise InvalidInput("mode", "must be 'vector', 'keyword' or 'hybrid'")
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= 1000:
            raise InvalidInput("k", "must be an integer from 1 to 1000")
        if query is not None and not isinstance(query, str):
            raise InvalidInput("query", "must be a string")
        if mode == "keyword" and not query:
            raise InvalidInput("query", "keyword search needs a query text")
        if query is None and vector is None:
            raise InvalidInput("query", "give a query text or a vector")
        scopes = self._scopes(namespaces, "namespaces")
        conds = parse_filter(filter)
        core = self._core
        qvec = None
        if mode != "keyword":
            if vector is not None:
                qvec = check_vector(vector, core.dim)
                norm = float(np.linalg.norm(qvec))
                if norm == 0:
                    raise InvalidInput("vector", "must not be all zeros")
                qvec = qvec / norm
            elif core.embedder is not None and query:
                qvec = core.embedder.embed([query])[0]
            elif mode == "vector":
                raise InvalidInput("vector", "this store has no embedder: supply a vector")
        if not scopes:
            return []
        core.sync()
        now = time.time()
        depth = k if mode == "vector" else max(k, FUSION_DEPTH)
        vec_hits: builtins.list[tuple[int, float]] = []
        if qvec is not None:
            allowed = core.log.filtered_ids(scopes, conds, now) if conds else None
            vec_hits = core.index.search(qvec, scopes, depth + 8, allowed)
        kw_hits: builtins.list[tuple[int, float]] = []
        if mode != "vector" and query:
            kw_hits = core.log.keyword_search(query, scopes, conds, depth, now)
        if mode == "vector":
            ranked = vec_hits
        elif mode == "keyword":
            ranked = kw_hits
        else:
            cosines = dict(vec_hits[:depth])
            missing = [i for i, _ in kw_hits if i not in cosines]
            if qvec is not None and missing:
                cosines.update(core.index.score(qvec, missing))
            ranked = fuse(cosines, kw_hits, depth)
        return self._hydrate(ranked, scopes, k, now)

    def _hydrate(
        self,
        ranked: builtins.list[tuple[int, float]],
        scopes: builtins.list[str],
        k: int,
        now: float,
    ) -> builtins.list[Hit]:
        """Re-check every hit against the log and the caller's scopes before returning it."""
        log = self._core.log
        hits: builtins.list[Hit] = []
        start, step = 0, k + 8  # most candidates survive: fetch a few more than k
        while start < len(ranked) and len(hits) < k:
            chunk = ranked[start : start + step]
            rows = log.current_rows([i for i, _ in chunk], now)
            for i, score in chunk:
                row = rows.get(i)
                if row is None or not any(in_scope(row.namespace, s) for s in scopes):
                    continue
                hits.append(_build(Hit, item=row_to_item(row), score=float(score)))
                if len(hits) == k:
                    break
            start += step
        return hits

    # -- watch ---------------------------------------------------------------------
    def watch(self, namespaces: Sequence[str] | str | None = None, since: int = 0) -> Subscription:
        """Changes under the prefixes with revision > ``since``: replayed, then live.

        Iterate it (``for change in sub``) or ``async for``; close it when done.
        """
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidInput("since", "must be a non-negative integer")
        scopes = self._scopes(namespaces, "namespaces")
        return self._core.hub.subscribe(scopes, since, row_to_change)

    def awatch(
        self, namespaces: Sequence[str] | str | None = None, since: int = 0
    ) -> AsyncIterator[Change]:
        """The async iterator of ``watch``."""
        return self.watch(namespaces, since).__aiter__()

    # -- maintenance ---------------------------------------------------------------
    def compact(self, revision: int) -> int:
        """Drop history below ``revision``; reads and watches below it raise Compacted."""
        self._require_admin("")
        if isinstance(revision, bool) or not isinstance(revision, int) or revision < 1:
            raise InvalidInput("revision", "must be a positive integer")
        head = self._core.log.head()
        if revision > head:
            raise InvalidInput("revision", f"is ahead of the latest revision {head}")
        return self._core.log.compact(revision)

    def expire_due(self) -> int:
        """Expire now every item whose TTL has passed (the reaper does this every second)."""
        return self._core.expire_due()

    def warm_up(self) -> None:
        """Load the embedding model now rather than on the first write or query."""
        if self._core.embedder is not None:
            self._core.embedder.embed(["warm up"])

    def checkpoint(self) -> None:
        """Persist the vector index now (it is also saved periodically and on close)."""
        self._core.save_index(force=True)

    def rebuild_index(self) -> None:
        """Rebuild the vector index from the vectors stored in the log."""
        self._require_admin("")
        self._core.rebuild_index()

    def status(self) -> dict[str, Any]:
        """Revisions of the log and its views, and counts."""
        core = self._core
        return {
            "revision": core.log.head(),
            "index_revision": core.index.applied_revision,
            "watch_revision": core.hub.last_revision,
            "compacted_revision": core.log.compacted_revision(),
            "vectors": len(core.index),
            "subscribers": core.hub.subscribers,
            "dim": core.dim,
        }

    # -- principals, grants, keys --------------------------------------------------
    def grant(self, principal: str, prefix: str, permission: str) -> Grant:
        """Give ``principal`` ``permission`` on every namespace under ``prefix``."""
        prefix = check_prefix(prefix)
        self._require_admin(prefix)
        self._core.acl.set_grant(principal, prefix, permission)
        return Grant(principal=principal, prefix=prefix, permission=permission)  # type: ignore[arg-type]

    def revoke(self, principal: str, prefix: str) -> None:
        """Remove ``principal``'s grant on ``prefix``."""
        prefix = check_prefix(prefix)
        self._require_admin(prefix)
        self._core.acl.set_grant(principal, prefix, None)

    def grants(self, principal: str | None = None) -> builtins.list[Grant]:
        """Grants visible to the caller: all for a root admin, else those it administers."""
        every = self._core.acl.grants(principal)
        if self._superuser:
            return every
        acl = self._core.acl
        return [
            g
            for g in every
            if g.principal == self.principal or acl.level(self.principal, g.prefix) >= 3
        ]

    def principals(self) -> builtins.list[str]:
        """Every principal that holds a grant or a key (admin of the whole store only)."""
        self._require_admin("")
        return self._core.log.acl().acl_principals()  # type: ignore[no-any-return]

    def create_key(self, principal: str) -> ApiKeyCreated:
        """A new API key for ``principal``; the secret is returned only this once."""
        self._require_admin("")
        return self._core.acl.create_key(principal)

    def revoke_key(self, key_id: str) -> None:
        """Revoke an API key; every process sharing the store honours it within a second."""
        self._require_admin("")
        self._core.acl.revoke_key(key_id)

    def keys(self, principal: str | None = None) -> builtins.list[ApiKeyInfo]:
        """API keys (never their secrets)."""
        if principal != self.principal:
            self._require_admin("")
        return self._core.acl.keys(principal)

    def import_key(self, principal: str, secret: str) -> str:
        """Register an API key chosen by the operator; returns its id."""
        self._require_admin("")
        return self._core.acl.import_key(principal, secret)

    def authenticate(self, secret: str | None) -> Memory:
        """The view of the principal holding API key ``secret``."""
        return self.as_principal(self._core.acl.authenticate(secret))

    # -- export / import -------------------------------------------------------------
    def export(
        self, prefix: str = "", *, vectors: bool = True, batch: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Current items under ``prefix`` as JSON-ready records (with vectors)."""
        scopes = self._scopes(prefix, "prefix")
        after = None
        while True:
            rows = self._core.log.list_items(scopes, [], batch, after, time.time())
            for row in rows:
                record = row_to_item(row).model_dump(mode="json")
                if vectors and row.vector is not None:
                    record["vector"] = np.frombuffer(row.vector, dtype=np.float32).tolist()
                yield record
            if len(rows) < batch:
                return
            after = (rows[-1].namespace, rows[-1].key)

    def import_items(self, records: Iterable[dict[str, Any]], batch: int = 500) -> int:
        """Write exported records back (one revision per batch); returns the count."""
        count = 0
        chunk: builtins.list[dict[str, Any]] = []
        for n, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InvalidInput(f"records[{n}]", "must be an object")
            fields = ("namespace", "key", "value", "text", "metadata", "vector")
            chunk.append({f: rec[f] for f in fields if f in rec})
            if len(chunk) >= batch:
                count += self._import_chunk(chunk, n + 1 - len(chunk))
                chunk = []
        if chunk:
            count += self._import_chunk(chunk, count)
        return count

    def _import_chunk(self, chunk: builtins.list[dict[str, Any]], first: int) -> int:
        try:
            return len(self._run([], chunk, [], field="records").results)
        except InvalidInput as exc:
            match = re.match(r"records\[(\d+)\]", exc.field)
            if match:  # name the record by its place in the whole import
                where = f"records[{first + int(match.group(1))}]"
                exc.field = where + exc.field[match.end() :]
                exc.detail = f"{exc.field}: {exc.detail.split(': ', 1)[-1]}"
                exc.args = (exc.detail,)
            raise


def _check_version(value: Any, field: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise InvalidInput(field, "must be a non-negative integer")


_OP_FIELDS: dict[str, frozenset[str]] = {
    "put": frozenset(PutOp.model_fields),
    "delete": frozenset(DeleteOp.model_fields),
    "get": frozenset(GetOp.model_fields),
}


def _op_fields(raw: Any, where: str) -> dict[str, Any]:
    """The fields of an op given as a model or a plain dict; values are checked later."""
    if isinstance(raw, PutOp | DeleteOp | GetOp):
        return raw.__dict__
    if not isinstance(raw, dict):
        raise InvalidInput(where.rstrip("."), "must be an operation object")
    allowed = _OP_FIELDS.get(raw.get("op", "put"))
    if allowed is None:
        raise InvalidInput(f"{where}op", "must be 'put', 'delete' or 'get'")
    for name in raw:
        if name not in allowed:
            raise InvalidInput(f"{where}{name}", "is not a field of this operation")
    return raw


def _coerce_compare(raw: Any, where: str) -> Compare:
    if isinstance(raw, Compare):
        return raw
    return _validate(Compare, raw, where)  # type: ignore[no-any-return]


def _validate(model: Any, raw: Any, where: str) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InvalidInput(f"{where}{loc}".rstrip("."), err["msg"]) from None


def _encode_cursor(namespace: str, key: str) -> str:
    raw = json.dumps([namespace, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: Any) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        ns, key = json.loads(raw)
        return str(ns), str(key)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("cursor", "is not a cursor returned by list") from exc


_CMP = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class _TxnPlan:
    """Decides, inside the write transaction, what a txn appends."""

    def __init__(
        self,
        compares: list[Compare],
        success: list[_Put | _Delete | _Get],
        failure: list[_Put | _Delete | _Get],
    ) -> None:
        self.compares = compares
        self.success = success
        self.failure = failure

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        keys = [(c.namespace, c.key) for c in self.compares]
        keys += [(o.namespace, o.key) for o in (*self.success, *self.failure)]
        self.view = view
        self.latest: dict[tuple[str, str], Row] = dict(view.latest(keys))
        self.pending: list[PendingChange] = []
        self.staged: dict[tuple[str, str], PendingChange] = {}
        succeeded = all(self._holds(c) for c in self.compares)
        results = [self._apply(op) for op in (self.success if succeeded else self.failure)]
        replaced = [self.latest[k].id for k in self.staged if k in self.latest]
        return self.pending, (succeeded, results, replaced)

    # what the txn sees: its own staged writes over the stored state
    def _current(self, k: tuple[str, str]) -> tuple[int, Any]:
        """(latest version number incl. tombstones, live row/pending or None)."""
        staged = self.staged.get(k)
        if staged is not None:
            return staged.version, (staged if staged.op == "put" else None)
        row = self.latest.get(k)
        if row is None:
            return 0, None
        if not row.live:
            return row.version, None
        if row.expires_at is not None and row.expires_at <= self.view.now:
            # expired but not yet reaped: log the expiry first, then treat as absent
            expire = PendingChange("expire", k[0], k[1], row.version + 1, row.version)
            self.pending.append(expire)
            self.staged[k] = expire
            return expire.version, None
        return row.version, row

    def _item(self, k: tuple[str, str], cur: Any) -> Item | None:
        if cur is None:
            return None
        if isinstance(cur, Row):
            return row_to_item(cur)
        return Item(
            namespace=k[0],
            key=k[1],
            value=json.loads(cur.value) if cur.value else None,
            text=cur.text,
            metadata=json.loads(cur.metadata) if cur.metadata else {},
            version=cur.version,
            revision=self.view.revision,
            author="",
            created_at=_dt(cur.created_at or self.view.now),
            updated_at=_dt(self.view.now),
            expires_at=ts_to_datetime(cur.expires_at),
        )

    def _holds(self, c: Compare) -> bool:
        k = (c.namespace, c.key)
        version, cur = self._current(k)
        if c.target == "exists":
            actual: Any = cur is not None
        elif c.target == "version":
            actual = version if cur is not None else 0
        else:
            actual = json.loads(cur.value) if cur is not None and cur.value else None
        try:
            return bool(_CMP[c.op](actual, c.value))
        except TypeError:
            return False

    def _apply(self, op: _Put | _Delete | _Get) -> OpResult:
        k = (op.namespace, op.key)
        version, cur = self._current(k)
        live_version = version if cur is not None else 0
        if isinstance(op, _Get):
            item = self._item(k, cur)
            return OpResult(
                op="get",
                namespace=k[0],
                key=k[1],
                item=item,
                version=item.version if item else None,
            )
        if op.if_version is not None and op.if_version != live_version:
            raise Conflict(
                f"expected version {op.if_version}, found {live_version}",
                current=self._item(k, cur),
            )
        if isinstance(op, _Delete):
            if cur is None:
                raise NotFound("no such item")
            change = PendingChange("delete", k[0], k[1], version + 1, version)
            self._stage(k, change)
            item = Item(
                namespace=k[0],
                key=k[1],
                version=version + 1,
                revision=self.view.revision,
                author="",
                deleted=True,
                created_at=_dt(self.view.now),
                updated_at=_dt(self.view.now),
            )
            return OpResult(op="delete", namespace=k[0], key=k[1], item=item, version=version + 1)
        return self._put(op, k, version, cur)

    def _put(self, op: _Put, k: tuple[str, str], version: int, cur: Any) -> OpResult:
        value_json, text, meta, vector = op.value_json, op.text, op.metadata, op.vector
        if op.merge != "replace":
            old_value = json.loads(cur.value) if cur is not None and cur.value else None
            if op.merge == "patch":
                merged = merging.merge_patch(old_value if cur is not None else {}, op.value)
            else:
                merged = self._three_way(op, k, cur, old_value)
            value_json = json.dumps(merged, ensure_ascii=False, separators=(",", ":"))
            if cur is not None:
                text = text if text is not None else cur.text
                meta = meta if meta is not None else cur.metadata
                if vector is None and op.text is None:
                    vector = cur.vector
            meta = meta if meta is not None else "{}"
        created = cur.created_at if cur is not None else 0.0
        expires = self.view.now + op.ttl if op.ttl is not None else None
        change = PendingChange(
            "put",
            k[0],
            k[1],
            version + 1,
            version if version else None,
            value_json,
            text,
            meta,
            vector,
            created,
            expires,
        )
        self._stage(k, change)
        return _build(OpResult, op="put", namespace=k[0], key=k[1], item=None, version=version + 1)

    def _three_way(self, op: _Put, k: tuple[str, str], cur: Any, theirs: Any) -> Any:
        assert op.base_version is not None
        base_row = self.view.version_row(k[0], k[1], op.base_version)
        if base_row is None or not base_row.live:
            raise Conflict(
                f"base_version {op.base_version} is not in history",
                current=self._item(k, cur),
            )
        base = json.loads(base_row.value) if base_row.value else None
        current = theirs if cur is not None else None
        merged, conflicts = merging.three_way(base, op.value, current, op.on_conflict)
        if conflicts and op.on_conflict is None:
            raise Conflict(
                f"{len(conflicts)} conflicting path(s) in three-way merge",
                current=self._item(k, cur),
                conflicts=conflicts,
            )
        return merged

    def _stage(self, k: tuple[str, str], change: PendingChange) -> None:
        self.pending.append(change)
        self.staged[k] = change
