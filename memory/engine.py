"""Memory: the public facade, and the single path every operation takes.

validate (``ops``) → authorize → embed (outside the write transaction) → commit the
plan (``plan``) to the log → update the views (``views``) → notify watchers. The log
is the truth; the vector index and watch streams are views of it that catch up or
rebuild from it.

This module holds opening, permissions and writes; ``Memory`` inherits its reads
(``reading``), coordination (``coordination``) and administration (``administration``)
from mixins.
"""

from __future__ import annotations

import builtins
import os
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from hivemem.memory.acl import ADMIN, check_principal
from hivemem.memory.administration import AdminMixin
from hivemem.memory.coordination import CoordinationMixin
from hivemem.memory.embed import Embedder, default_embedder
from hivemem.memory.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.log.base import LeaseRecord, PendingChange, Row, StateLog, WriteView
from hivemem.memory.models import (
    Compare,
    DeleteOp,
    GetOp,
    Item,
    Proposal,
    PutOp,
    TxnResult,
    UpdateOp,
)
from hivemem.memory.ops import (
    Prepared,
    PreparedPut,
    PreparedUpdate,
    coerce_compare,
    prepare_ops,
)
from hivemem.memory.plan import TxnPlan
from hivemem.memory.proposals import DEFAULT_PROPOSAL_TTL
from hivemem.memory.reading import ReadsMixin
from hivemem.memory.rows import row_to_item
from hivemem.memory.validation import (
    INT64_MAX,
    check_int,
    check_prefix,
    check_scopes,
    check_ttl,
)
from hivemem.memory.views import SYSTEM_PRINCIPAL, Core

__all__ = ["Memory", "SYSTEM_PRINCIPAL"]

_IMMUTABLE = (str, int, float, bool, type(None))

#: Seconds a read with ``min_revision`` waits for a revision this store has not seen.
MIN_REVISION_WAIT = 5.0


class Memory(ReadsMixin, CoordinationMixin, AdminMixin):
    """A versioned, conflict-safe shared memory, seen as one principal.

    ``Memory.open(path)`` returns the opener's view (admin on everything);
    ``as_principal(name)`` returns the same store seen through that principal's grants.
    """

    def __init__(self, core: Core, principal: str, superuser: bool) -> None:
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
        proposal_ttl: float = DEFAULT_PROPOSAL_TTL,
        thread_window: int | None = None,
    ) -> Memory:
        """Open (or create) a store in the data directory ``path``.

        ``":memory:"`` gives a throwaway store. ``durability="full"`` survives power loss;
        ``"normal"`` survives a process crash and is much faster. ``embedder=None``
        stores only supplied vectors. ``thread_window`` (a store setting, default 2):
        how many live items before a threaded item join its keyword document.
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
        core = Core(
            log,
            index,
            embedder,
            max_value_bytes=max_value_bytes,
            reaper_interval=reaper_interval,
            watch_queue=watch_queue,
            save_interval=save_interval,
            cleanup_dir=cleanup,
            thread_window=thread_window,
            keyword_path=None if cleanup else os.path.join(path, "keywords.bin"),
        )
        ttl = check_ttl(proposal_ttl, "proposal_ttl")
        core.proposal_ttl = ttl if ttl is not None else DEFAULT_PROPOSAL_TTL
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
        if prefixes is None or isinstance(prefixes, str):
            checked = [check_prefix(prefixes, field, stored=True)]
        else:
            checked = check_scopes(prefixes, field)
        scopes: list[str] = []
        for prefix in checked:
            if self._superuser:
                scopes.append(prefix)
            else:
                scopes += self._core.acl.readable_scopes(self.principal, prefix)
        return list(dict.fromkeys(scopes))

    def _require_admin(self, prefix: str) -> None:
        if not self._superuser and self._core.acl.level(self.principal, prefix) < ADMIN:
            where = repr(prefix) if prefix else "the whole store"
            raise PermissionDenied(f"{self.principal!r} is not admin of {where}")

    def _prepare(self, ops: Sequence[Any], field: str) -> builtins.list[Prepared]:
        core = self._core
        prepared = prepare_ops(
            ops, field, max_value_bytes=core.max_value_bytes, dim=core.dim, require=self._require
        )
        for p in prepared:
            if isinstance(p, PreparedPut) and p.lease is not None:
                self._own_lease(p.lease)  # whether it still lives is checked in the commit
        return prepared

    def _own_lease(self, lease_id: str) -> LeaseRecord:
        """The caller's lease ``lease_id``; another principal's looks like a missing one."""
        rec = self._core.log.lease(lease_id)
        if rec is None or not (self._superuser or rec.holder == self.principal):
            raise NotFound(f"no lease {lease_id!r}")
        return rec

    def _await(self, min_revision: Any, *, views: bool) -> None:
        if min_revision is None:
            return
        check_int(min_revision, "min_revision", 0, INT64_MAX, "a revision")
        self._core.await_revision(min_revision, views=views, timeout=MIN_REVISION_WAIT)

    def _embed_missing(self, puts: list[PreparedPut | PreparedUpdate]) -> None:
        """Embed, in one batch and outside the write transaction, new texts without vectors."""
        todo = [p for p in puts if p.vector is None and p.text]
        embedder = self._core.write_embedder
        if not todo or embedder is None:
            return
        vectors = embedder.embed([p.text for p in todo])  # type: ignore[misc]
        for p, vec in zip(todo, vectors, strict=True):
            p.vector = np.asarray(vec, dtype=np.float32).tobytes()

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
        lease: str | None = None,
        fence: str | None = None,
        thread: str | None = None,
    ) -> Item | Proposal:
        """Write one item and return the version written (see DESIGN.md for options).

        For a principal with ``propose`` (not ``write``) on the namespace the write is
        not applied: it becomes a pending ``Proposal``, which is returned.

        ``lease=id`` attaches the item to a lease: it lives only while the lease does. A
        later put without ``lease`` detaches it (as in etcd); ``lease`` and ``ttl`` are
        exclusive. ``fence=token`` commits only while that claim is current (else
        ``Conflict``). ``thread`` puts the item in a conversation of its namespace, after
        the items already there; an overwrite in the same thread keeps its place.
        """
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
            "lease": lease,
            "fence": fence,
            "thread": thread,
        }
        if self._proposes(namespace):
            return self._propose(op)
        result = self._run([], [op], [], field="")
        item = result.results[0].item
        assert item is not None
        return item

    def update(
        self,
        namespace: str,
        key: str,
        ops: Sequence[dict[str, Any]],
        *,
        if_version: int | None = None,
        create: bool = True,
        text: str | None = None,
        metadata: dict[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        fence: str | None = None,
        ttl: float | None = None,
        metadata_ops: Sequence[dict[str, Any]] | None = None,
    ) -> Item:
        """Apply operations to the current value inside the write transaction, atomically.

        JSON Patch (``add remove replace move copy test``) plus ``increment``, ``append``
        (with ``max_len``), ``add_to_set`` and ``remove_from_set`` (see ``memory.patch``);
        concurrent updates never conflict with each other. A missing item starts from
        ``{}`` when ``create``. The item's text, metadata and vector stay as they are
        unless given (so do its lease and task state); ``ttl`` restarts its expiry at now +
        ``ttl`` (not for an item on a lease). ``metadata_ops`` are operations of the same
        kinds applied to the item's metadata in the same commit (the result must still
        be valid metadata), for metadata that mirrors the value. ``fence=token`` commits only while
        that claim is current. A failed ``test`` raises ``Conflict``; a bad path or a type
        mismatch raises ``InvalidInput`` naming ``ops[i].path``; nothing is written.
        """
        op = {
            "op": "update",
            "namespace": namespace,
            "key": key,
            "ops": list(ops) if isinstance(ops, list | tuple) else ops,
            "if_version": if_version,
            "create": create,
            "text": text,
            "metadata": metadata,
            "vector": vector,
            "fence": fence,
            "ttl": ttl,
            "metadata_ops": list(metadata_ops) if metadata_ops is not None else None,
        }
        result = self._run([], [op], [], field="")
        item = result.results[0].item
        assert item is not None
        return item

    def put_many(self, ops: Sequence[PutOp | UpdateOp | dict[str, Any]]) -> list[Item]:
        """Write many items in one transaction (one revision), all or nothing."""
        result = self._run([], list(ops), [], field="ops")
        return [r.item for r in result.results if r.item is not None]

    def delete(
        self,
        namespace: str,
        key: str,
        if_version: int | None = None,
        *,
        fence: str | None = None,
    ) -> Item | Proposal:
        """Delete an item, leaving a tombstone in history; returns the tombstone
        (a pending ``Proposal`` for a principal with only ``propose`` here)."""
        op = {
            "op": "delete",
            "namespace": namespace,
            "key": key,
            "if_version": if_version,
            "fence": fence,
        }
        if self._proposes(namespace):
            return self._propose(op)
        result = self._run([], [op], [], field="")
        item = result.results[0].item
        assert item is not None
        return item

    def txn(
        self,
        compare: Sequence[Compare | dict[str, Any]] = (),
        success: Sequence[PutOp | UpdateOp | DeleteOp | GetOp | dict[str, Any]] = (),
        failure: Sequence[PutOp | UpdateOp | DeleteOp | GetOp | dict[str, Any]] = (),
    ) -> TxnResult:
        """If every compare holds run ``success``, else ``failure``: one revision, atomic."""
        return self._run(list(compare), list(success), list(failure), field=None)

    def _run(
        self,
        compare: list[Compare | dict[str, Any]],
        success: list[Any],
        failure: list[Any],
        field: str | None,
        claims: dict[tuple[str, str], str] | None = None,
        places: dict[int, int] | None = None,
    ) -> TxnResult:
        try:
            return self._run_checked(compare, success, failure, field, claims, places)
        except Conflict as exc:  # refused writes never reach the log: count them here
            self._core.count_conflict(exc, self.principal)
            raise
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
        claims: dict[tuple[str, str], str] | None = None,
        places: dict[int, int] | None = None,
    ) -> TxnResult:
        for name, ops in (("success", success), ("failure", failure), ("compare", compare)):
            if not isinstance(ops, list | tuple):
                raise InvalidInput(name, "must be a list")
        ops_ok = self._prepare(success, "ops" if field == "" else (field or "success"))
        for p in ops_ok:
            if claims and isinstance(p, PreparedPut):
                p.claim_json = claims.get((p.namespace, p.key))
        for i, place in (places or {}).items():  # an import keeps each record's place
            op = ops_ok[i]
            if isinstance(op, PreparedPut) and op.thread is not None:
                op.thread_pos = place
        ops_fail = self._prepare(failure, "failure")
        compares = [coerce_compare(c, f"compare[{i}].") for i, c in enumerate(compare)]
        for c in compares:
            self._require(c.namespace, "read")
        puts = [p for p in (*ops_ok, *ops_fail) if isinstance(p, PreparedPut | PreparedUpdate)]
        self._embed_missing(puts)
        core = self._core
        plan = TxnPlan(compares, ops_ok, ops_fail, core.max_value_bytes)
        fixed = False

        def guarded(view: WriteView) -> tuple[builtins.list[PendingChange], Any]:
            nonlocal fixed
            fixed = core.fix_dim(puts)  # under the write lock: two first writers cannot disagree
            try:
                return plan(view)
            except BaseException:
                if fixed:
                    core.dim = None
                raise

        def on_commit(revision: int, rows: builtins.list[Row], result: Any) -> None:
            if rows:
                if fixed and any(r.vector is not None for r in rows):
                    core.log.set_meta("vector_dim", str(core.dim))
                core.after_commit(revision, rows, result[2])

        # The first vector of an embedder-less store fixes its dimension: that commit
        # goes alone, so a failure can undo the fix. Plans without vectors never fix it.
        vectors = any(getattr(p, "vector", None) is not None for p in puts)
        share = plan.blind and (core.dim is not None or not vectors)
        try:
            revision, rows, (succeeded, results, _) = core.committer.commit(
                self.principal, guarded, on_commit, share=share
            )
        except BaseException:
            if fixed:
                core.dim = None
            raise
        written = {(r.namespace, r.key, r.version): r for r in rows}
        sources = {(p.namespace, p.key): p for p in ops_ok if isinstance(p, PreparedPut)}
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
