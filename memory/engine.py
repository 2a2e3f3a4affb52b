"""Memory: the public facade, and the single path every operation takes.

validate (``ops``) → authorize → embed (outside the write transaction) → commit the
plan (``plan``) to the log → update the views (``views``) → notify watchers. The log
is the truth; the vector index and watch streams are views of it that catch up or
rebuild from it.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import json
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from hivemem.memory.acl import ADMIN, LEVELS, check_principal
from hivemem.memory.activity import build_activity, check_activity_args
from hivemem.memory.claims import (
    DEFAULT_CLAIM_TTL,
    ClaimPlan,
    CompletePlan,
    ReleasePlan,
    make_token,
    parse_token,
)
from hivemem.memory.embed import Embedder, default_embedder
from hivemem.memory.errors import Compacted, Conflict, InvalidInput, NotFound, PermissionDenied
from hivemem.memory.exchange import Importer, lease_records
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.leases import EndPlan, GrantPlan, check_lease_id, check_lease_ttl, lease_model
from hivemem.memory.log.base import LeaseRecord, PendingChange, Row, StateLog, WriteView
from hivemem.memory.models import (
    Activity,
    ApiKeyCreated,
    ApiKeyInfo,
    Change,
    Claim,
    Compare,
    DeleteOp,
    GetOp,
    Grant,
    Hit,
    Item,
    Lease,
    ListPage,
    NamespaceInfo,
    NamespacePage,
    Proposal,
    PutOp,
    Recall,
    TxnResult,
    UpdateOp,
)
from hivemem.memory.ops import (
    Prepared,
    PreparedDelete,
    PreparedPut,
    PreparedUpdate,
    coerce_compare,
    prepare_ops,
)
from hivemem.memory.plan import TxnPlan
from hivemem.memory.proposals import (
    DEFAULT_PROPOSAL_TTL,
    PROPOSAL_OPS,
    ProposePlan,
    ReviewPlan,
    proposal_of,
)
from hivemem.memory.recall import default_counter, pack
from hivemem.memory.retrieval import rank_at, rank_current
from hivemem.memory.rows import build_model, row_to_change, row_to_item
from hivemem.memory.search import parse_filter
from hivemem.memory.subscriptions import DEFAULT_THRESHOLD, Matcher, check_threshold
from hivemem.memory.validation import (
    INT64_MAX,
    MAX_PAGE,
    MAX_QUERY_CHARS,
    check_int,
    check_key,
    check_namespace,
    check_prefix,
    check_scopes,
    check_text,
    check_ttl,
    check_vector,
    dump_value,
    in_scope,
    json_text_depth,
    unit_vector,
)
from hivemem.memory.views import SYSTEM_PRINCIPAL, Core
from hivemem.memory.watch import Subscription

__all__ = ["Memory", "SYSTEM_PRINCIPAL"]

_IMMUTABLE = (str, int, float, bool, type(None))

#: Seconds a read with ``min_revision`` waits for a revision this store has not seen.
MIN_REVISION_WAIT = 5.0


class Memory:
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

    # -- proposals -------------------------------------------------------------------
    def _proposes(self, namespace: Any) -> bool:
        """True if the caller may propose but not write in ``namespace``."""
        if self._superuser or not isinstance(namespace, str):
            return False
        return self._core.acl.level(self.principal, namespace) == LEVELS["propose"]

    def _propose(self, op: dict[str, Any]) -> Proposal:
        for name in ("lease", "fence"):
            if op.get(name) is not None:
                raise InvalidInput(name, "a proposal cannot carry one")
        core = self._core

        def require(namespace: str, permission: str) -> None:
            self._require(namespace, "propose" if permission == "write" else permission)

        try:
            (prepared,) = prepare_ops(
                [op], "ops", max_value_bytes=core.max_value_bytes, dim=core.dim, require=require
            )
        except InvalidInput as exc:
            exc.field = exc.field.removeprefix("ops[0].")
            exc.detail = exc.detail.removeprefix("ops[0].")
            exc.args = (exc.detail,)
            raise
        if isinstance(prepared, PreparedPut):
            self._embed_missing([prepared])
        assert isinstance(prepared, PreparedPut | PreparedDelete)
        plan = ProposePlan(prepared, self.principal, self._core.proposal_ttl)
        _, _, proposal = self._core.commit(self.principal, plan)
        return proposal  # type: ignore[no-any-return]

    def _can_review(self, namespace: str) -> bool:
        return self._superuser or self._core.acl.level(self.principal, namespace) >= LEVELS["write"]

    def _sees(self, proposal: Proposal) -> bool:
        return proposal.author == self.principal or self._can_review(proposal.namespace)

    def proposals(
        self, prefix: str = "", status: str | None = "pending", limit: int = 100
    ) -> builtins.list[Proposal]:
        """Proposals under ``prefix`` the caller may see (a writer of their namespace,
        or their author), oldest first; ``status=None`` lists every status."""
        check_prefix(prefix)
        if status not in (None, "pending", "approved", "rejected", "expired"):
            raise InvalidInput("status", "must be pending, approved, rejected, expired or null")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise InvalidInput("limit", "must be an integer from 1 to 1000")
        scope, now = check_prefix(prefix), time.time()
        out: builtins.list[Proposal] = []
        for row in self._core.log.proposal_rows():
            p = _current_status(proposal_of(row), now)
            if in_scope(p.namespace, scope) and (status is None or p.status == status):
                if self._sees(p):
                    out.append(p)
                    if len(out) == limit:
                        break
        return out

    def get_proposal(self, proposal_id: str) -> Proposal:
        """One proposal the caller may see (NotFound for everyone else)."""
        rows = self._core.log.history("", check_lease_id(proposal_id, "proposal_id"))
        rows = [r for r in rows if r.op in PROPOSAL_OPS]
        if not rows or not self._sees(proposal_of(rows[-1])):
            raise NotFound(f"no proposal {proposal_id!r}")
        return _current_status(proposal_of(rows[-1]), time.time())

    def approve(self, proposal_id: str, reason: str | None = None) -> Proposal:
        """Apply a pending proposal (a three-way merge against its base for objects, a
        compare-and-swap on its base version otherwise); conflicts raise as for writes."""
        return self._review(proposal_id, "approved", reason)

    def reject(self, proposal_id: str, reason: str | None = None) -> Proposal:
        """Reject a pending proposal, recording why."""
        return self._review(proposal_id, "rejected", reason)

    def _review(self, proposal_id: str, decision: str, reason: str | None) -> Proposal:
        proposal = self.get_proposal(proposal_id)
        if not self._can_review(proposal.namespace):
            raise PermissionDenied(f"{self.principal!r} may not review in {proposal.namespace!r}")
        if reason is not None and (not isinstance(reason, str) or len(reason) > 4096):
            raise InvalidInput("reason", "must be a string of at most 4096 characters")
        plan = ReviewPlan(proposal_id, decision, self.principal, reason)
        _, _, reviewed = self._core.commit(self.principal, plan)
        return reviewed  # type: ignore[no-any-return]

    # -- leases --------------------------------------------------------------------
    def lease(self, ttl: float = 10) -> Lease:
        """Grant a lease of ``ttl`` seconds (a revision); renew it with ``keepalive``."""
        ttl = check_lease_ttl(ttl)
        _, _, rec = self._core.commit(self.principal, GrantPlan(ttl))
        rec.holder = self.principal
        return lease_model(rec, time.time())

    def keepalive(self, lease_id: str) -> Lease:
        """Renew a lease for its ``ttl`` from now (durable, no revision).

        A lease that has ended, or whose deadline has passed, is not revived: NotFound.
        """
        check_lease_id(lease_id, "lease_id")
        self._own_lease(lease_id)
        now = time.time()
        rec = self._core.log.keepalive(lease_id, now)
        if rec is None:
            with contextlib.suppress(NotFound):  # past its deadline: end it now
                self._core.commit(SYSTEM_PRINCIPAL, EndPlan(lease_id, "expired", True))
            raise NotFound(f"no lease {lease_id!r} (it has ended)")
        return lease_model(rec, now, self._core.log.lease_item_count(lease_id, now))

    def revoke_lease(self, lease_id: str) -> None:
        """End a lease now (a revision): every item attached to it expires in it."""
        check_lease_id(lease_id, "lease_id")
        self._own_lease(lease_id)
        self._core.commit(self.principal, EndPlan(lease_id, "revoked"))

    def get_lease(self, lease_id: str) -> Lease:
        """A lease: its ttl, deadline, time remaining and attached item count."""
        check_lease_id(lease_id, "lease_id")
        rec = self._own_lease(lease_id)
        now = time.time()
        if not rec.alive(now):
            raise NotFound(f"no lease {lease_id!r} (it has ended)")
        return lease_model(rec, now, self._core.log.lease_item_count(lease_id, now))

    # -- task claims ---------------------------------------------------------------
    def claim(
        self,
        namespace: str,
        key: str | None = None,
        *,
        lease: str | None = None,
        ttl: float | None = None,
        filter: dict[str, Any] | None = None,
        max_attempts: int | None = None,
    ) -> Claim | None:
        """Claim task ``key``, or the oldest open task of ``namespace`` matching ``filter``.

        Returns the ``Claim`` (the item and its fencing token), or None when no task is
        open. The claim lives under ``lease`` (yours), or under a lease of ``ttl`` seconds
        (default 30) granted for it; renew with ``keepalive(claim.lease)``. Once a task
        has been claimed ``max_attempts`` times without completing, it goes ``dead``.
        """
        ns = check_namespace(namespace)
        if key is not None:
            check_key(key)
        self._require(ns, "write")
        if lease is not None:
            check_lease_id(lease)
            if ttl is not None:
                raise InvalidInput("lease", "a claim has a lease or a ttl, not both")
            self._own_lease(lease)
        seconds = check_lease_ttl(ttl) if ttl is not None else DEFAULT_CLAIM_TTL
        if max_attempts is not None and (
            isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1
        ):
            raise InvalidInput("max_attempts", "must be a positive integer")
        plan = ClaimPlan(
            self.principal, ns, key, lease, seconds, parse_filter(filter), max_attempts
        )
        revision, rows, payload = self._core.commit(self.principal, plan)
        if payload is None:
            return None
        k, version, lease_id = payload
        item = self._written(rows, k, version)
        return Claim(token=make_token(k[0], k[1], revision), item=item, lease=lease_id)

    def complete(self, token: str, value: Any = None) -> Item:
        """Mark the claimed task done (with ``value`` as its new value, if given).

        Refused with ``Conflict`` unless the token's claim is still current.
        """
        fence = self._fenced(token)
        value_json = None
        if value is not None:
            value_json = dump_value(value, self._core.max_value_bytes)
        _, rows, (k, version) = self._core.commit(self.principal, CompletePlan(fence, value_json))
        return self._written(rows, k, version)

    def release(self, token: str) -> Item:
        """Give the claimed task back: open again (or dead once out of attempts)."""
        fence = self._fenced(token)
        _, rows, (k, version) = self._core.commit(self.principal, ReleasePlan(fence))
        return self._written(rows, k, version)

    def _fenced(self, token: str) -> tuple[str, str, int]:
        fence = parse_token(token)
        self._require(fence[0], "write")
        return fence

    @staticmethod
    def _written(rows: builtins.list[Row], k: tuple[str, str], version: int) -> Item:
        for row in rows:
            if (row.namespace, row.key, row.version) == (*k, version):
                return row_to_item(row)
        raise AssertionError("the plan wrote no such version")  # pragma: no cover

    # -- reads ---------------------------------------------------------------------
    def get(
        self,
        namespace: str,
        key: str,
        at_revision: int | None = None,
        min_revision: int | None = None,
    ) -> Item:
        """The current item, or the version visible at ``at_revision``.

        ``min_revision`` (on every read and search): first wait, bounded, until this
        store has applied that revision, so a write made through another replica is seen.
        """
        check_namespace(namespace, stored=True)
        check_key(key)
        self._require(namespace, "read")
        self._await(min_revision, views=False)
        if at_revision is not None:
            self._check_revision(at_revision, "at_revision")
        row = self._core.log.get(namespace, key, at_revision, time.time())
        if row is None:
            raise NotFound("no such item")
        return row_to_item(row)

    def _await(self, min_revision: Any, *, views: bool) -> None:
        if min_revision is None:
            return
        check_int(min_revision, "min_revision", 0, INT64_MAX, "a revision")
        self._core.await_revision(min_revision, views=views, timeout=MIN_REVISION_WAIT)

    def _check_revision(self, revision: Any, field: str) -> None:
        check_int(revision, field, 0, INT64_MAX, "a revision")
        head = self._core.log.head()
        if revision > head:
            raise InvalidInput(field, f"is ahead of the latest revision {head}")
        compacted = self._core.log.compacted_revision()
        if revision < compacted:
            raise Compacted(compacted)

    def history(self, namespace: str, key: str, min_revision: int | None = None) -> list[Item]:
        """Every version of an item still in history, oldest first (tombstones too)."""
        check_namespace(namespace, stored=True)
        check_key(key)
        self._require(namespace, "read")
        self._await(min_revision, views=False)
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
        min_revision: int | None = None,
    ) -> ListPage:
        """Live items under a namespace prefix, ordered by (namespace, key), paginated."""
        scopes = self._scopes(prefix, "prefix")
        self._await(min_revision, views=False)
        conds = parse_filter(filter)
        check_int(limit, "limit", 1, MAX_PAGE)
        after = _decode_cursor(cursor) if cursor else None
        rows = self._core.log.list_items(scopes, conds, limit + 1, after, time.time())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _encode_cursor(rows[-1].namespace, rows[-1].key) if more else None
        return ListPage(items=[row_to_item(r) for r in rows], cursor=next_cursor)

    def namespaces(
        self,
        prefix: str = "",
        depth: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
        min_revision: int | None = None,
    ) -> NamespacePage:
        """Namespaces under ``prefix`` holding live items the caller may read, with counts.

        ``depth`` cuts every namespace to its first ``depth`` segments (counted from
        the root, as LangGraph's ``max_depth``) and sums the counts beneath; ``None``
        lists each namespace that holds items. Byte order, paginated by ``cursor``. A
        namespace the caller may not read is neither listed nor counted.
        """
        scopes = self._scopes(prefix, "prefix")
        self._await(min_revision, views=False)
        if depth is not None:
            check_int(depth, "depth", 1, 16)
        check_int(limit, "limit", 1, MAX_PAGE)
        after = _decode_namespace_cursor(cursor) if cursor else None
        counts: dict[str, int] = {}
        for ns, n in self._core.log.namespace_counts(scopes, time.time()):
            name = "/".join(ns.split("/")[:depth]) if depth is not None else ns
            counts[name] = counts.get(name, 0) + n
        names = sorted(n for n in counts if after is None or n > after)
        page = names[:limit]
        more = len(names) > limit
        return NamespacePage(
            namespaces=[NamespaceInfo(namespace=n, items=counts[n]) for n in page],
            cursor=_encode_namespace_cursor(page[-1]) if more else None,
        )

    def search(
        self,
        query: str | None = None,
        namespaces: Sequence[str] | str | None = None,
        k: int = 10,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        vector: Sequence[float] | None = None,
        thread: str | None = None,
        at_revision: int | None = None,
        min_revision: int | None = None,
    ) -> builtins.list[Hit]:
        """Top-k items by ``vector``, ``keyword`` or ``hybrid`` relevance, best first.

        ``thread`` keeps only the items of that thread; ``at_revision`` ranks the
        versions visible at that revision, exactly (see ``memory/retrieval.py``).
        """
        if mode not in ("vector", "keyword", "hybrid"):
            raise InvalidInput("mode", "must be 'vector', 'keyword' or 'hybrid'")
        check_int(k, "k", 1, MAX_PAGE)
        if query is not None:
            check_text(query, "query", MAX_QUERY_CHARS)
        if mode == "keyword" and not query:
            raise InvalidInput("query", "keyword search needs a query text")
        if query is None and vector is None:
            raise InvalidInput("query", "give a query text or a vector")
        scopes = self._scopes(namespaces, "namespaces")
        conds = parse_filter(filter)
        if thread is not None:
            check_key(thread, "thread")
        if at_revision is not None:
            self._check_revision(at_revision, "at_revision")
        core = self._core
        given = unit_vector(check_vector(vector, core.dim)) if vector is not None else None
        qvec = None
        if mode != "keyword":
            if given is not None:
                qvec = given
            elif core.embedder is not None and query:
                qvec = core.embedder.embed([query])[0]
            elif mode == "vector":
                raise InvalidInput("vector", "this store has no embedder: supply a vector")
        if not scopes:
            return []
        if at_revision is not None:
            found = rank_at(core, at_revision, query, qvec, scopes, conds, k, mode, thread)
            return [build_model(Hit, item=row_to_item(r), score=float(s)) for r, s in found]
        self._await(min_revision, views=True)
        now = time.time()
        ranked = rank_current(core, query, qvec, scopes, conds, k, mode, thread, now)
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
                hits.append(build_model(Hit, item=row_to_item(row), score=float(score)))
                if len(hits) == k:
                    break
            start += step
        return hits

    def recall(
        self,
        query: str | None = None,
        namespaces: Sequence[str] | str | None = None,
        budget_tokens: int = 1500,
        *,
        k: int = 20,
        mode: str = "hybrid",
        filter: dict[str, Any] | None = None,
        thread: str | None = None,
        at_revision: int | None = None,
        vector: Sequence[float] | None = None,
        count_tokens: Callable[[str], int] | None = None,
    ) -> Recall:
        """The best of the top-``k`` hits that fit ``budget_tokens``, as one context.

        Near-duplicates are dropped, items grouped by thread in conversation order, each
        cited (see ``memory/recall.py``). Tokens are the embedding model's own unless
        ``count_tokens`` is given.
        """
        if (
            isinstance(budget_tokens, bool)
            or not isinstance(budget_tokens, int)
            or not 1 <= budget_tokens <= 1_000_000
        ):
            raise InvalidInput("budget_tokens", "must be an integer from 1 to 1000000")
        if count_tokens is not None and not callable(count_tokens):
            raise InvalidInput("count_tokens", "must be a function of a string")
        hits = self.search(
            query,
            namespaces,
            k=k,
            mode=mode,
            filter=filter,
            vector=vector,
            thread=thread,
            at_revision=at_revision,
        )
        vectors: dict[tuple[str, str, int], np.ndarray] = {}
        for hit in hits:
            it = hit.item
            row = self._core.log.get(it.namespace, it.key, it.revision, time.time())
            if row is not None and row.vector is not None:
                vectors[(it.namespace, it.key, it.version)] = np.frombuffer(
                    row.vector, dtype=np.float32
                )
        return pack(hits, vectors, budget_tokens, count_tokens or default_counter())

    # -- watch ---------------------------------------------------------------------
    def watch(
        self,
        namespaces: Sequence[str] | str | None = None,
        since: int = 0,
        *,
        thread: str | None = None,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,
    ) -> Subscription:
        """Changes under the prefixes with revision > ``since``: replayed, then live.

        ``thread`` keeps only changes of items in that thread (a delete or expiry is
        delivered when the item it removes was in the thread). With ``query`` (or
        ``vector``) and/or ``filter`` only the changes whose item matches are delivered,
        with the cosine similarity in ``score`` (``threshold`` defaults to
        ``DEFAULT_THRESHOLD``); deletes and expiries of an item whose last version
        matched come too. Iterate it (``for change in sub``) or ``async for``; close it
        when done.
        """
        check_int(since, "since", 0, INT64_MAX, "a revision")
        scopes = self._scopes(namespaces, "namespaces")
        if thread is not None:
            check_key(thread, "thread")
        matcher = self._matcher(query, vector, threshold, filter)
        sub = self._core.hub.subscribe(scopes, since, row_to_change, matcher, thread=thread)
        sub.owner = self.principal
        if matcher is None and thread is None:  # proposals reach plain watches only
            sub.sees_entry = lambda row: self._sees(proposal_of(row))
        return sub

    def _matcher(
        self,
        query: str | None,
        vector: Sequence[float] | None,
        threshold: float | None,
        filter: dict[str, Any] | None,
    ) -> Matcher | None:
        conds = parse_filter(filter)
        if query is not None and not isinstance(query, str):
            raise InvalidInput("query", "must be a string")
        if query is not None and vector is not None:
            raise InvalidInput("vector", "give a query text or a vector, not both")
        if threshold is not None:
            threshold = check_threshold(threshold)
            if query is None and vector is None:
                raise InvalidInput("threshold", "needs a query or a vector")
        qvec = None
        if vector is not None:
            qvec = check_vector(vector, self._core.dim or self._core.index.dim)
            norm = float(np.linalg.norm(qvec))
            if norm == 0:
                raise InvalidInput("vector", "must not be all zeros")
            qvec = qvec / norm
        elif query:
            if self._core.embedder is None:
                raise InvalidInput("query", "this store has no embedder: supply a vector")
            qvec = np.asarray(self._core.embedder.embed([query])[0], dtype=np.float32)
        elif query is not None:
            raise InvalidInput("query", "must not be empty")
        if qvec is None and not conds:
            return None
        limit = DEFAULT_THRESHOLD if threshold is None else threshold
        return Matcher(self._core.log, conds, qvec, limit)

    def awatch(
        self,
        namespaces: Sequence[str] | str | None = None,
        since: int = 0,
        *,
        thread: str | None = None,
        query: str | None = None,
        vector: Sequence[float] | None = None,
        threshold: float | None = None,
        filter: dict[str, Any] | None = None,
    ) -> AsyncIterator[Change]:
        """The async iterator of ``watch``."""
        return self.watch(
            namespaces,
            since,
            thread=thread,
            query=query,
            vector=vector,
            threshold=threshold,
            filter=filter,
        ).__aiter__()

    # -- activity ------------------------------------------------------------------
    def activity(
        self,
        prefix: str = "",
        window: int = 3600,
        bucket: int | None = None,
        depth: int | None = None,
        limit: int = 20,
    ) -> Activity:
        """Writes, conflicts, expiries and lagged watchers over the last ``window``
        seconds, per namespace (cut to ``depth``) and per author, in buckets of
        ``bucket`` seconds (default: about 60 buckets), in readable namespaces only.

        Writes and expiries come from the log; conflicts and lagged watchers are
        recorded by this process since it opened the store (``memory.activity``).
        """
        scopes = self._scopes(prefix, "prefix")
        window, bucket, depth, limit = check_activity_args(window, bucket, depth, limit)
        now = time.time()
        start = float((now - window) // bucket * bucket)
        core = self._core
        counts = core.log.change_counts(scopes, start, float(bucket)) if scopes else []
        rec = core.activity
        return build_activity(
            counts,
            rec.counts(start),
            scopes,
            now=now,
            window=window,
            bucket=bucket,
            depth=depth,
            limit=limit,
            recorded_since=rec.started,
            dropped=rec.dropped,
        )

    # -- maintenance ---------------------------------------------------------------
    def compact(self, revision: int) -> int:
        """Drop history below ``revision``; reads and watches below it raise Compacted."""
        self._require_admin("")
        check_int(revision, "revision", 1, INT64_MAX, "a revision")
        head = self._core.log.head()
        if revision > head:
            raise InvalidInput("revision", f"is ahead of the latest revision {head}")
        return self._core.log.compact(revision)

    def expire_due(self) -> int:
        """Expire now every item whose TTL has passed (the reaper does this every second)."""
        return self._core.expire_due()

    def warm_up(self) -> None:
        """Load the embedding model now rather than on the first write or query."""
        embedder = self._core.embedder
        if embedder is not None:
            warm = getattr(embedder, "warm_up", None)
            if callable(warm):
                warm()
            else:
                embedder.embed(["warm up"])

    def checkpoint(self) -> None:
        """Persist the vector index now (it is also saved periodically and on close)."""
        self._core.save_index(force=True)

    def rebuild_index(self) -> None:
        """Rebuild the vector index from the vectors stored in the log."""
        self._require_admin("")
        self._core.rebuild_index("requested")

    def ready(self) -> bool:
        """Whether the embedding model has loaded (always, for a store without one).

        ``warm_up`` loads it; until then the first text write or query waits for it.
        """
        embedder = self._core.embedder
        return embedder is None or bool(getattr(embedder, "loaded", True))

    def write_embedding(self) -> tuple[int, int]:
        """Model calls made for writes, and texts embedded in them, since open.

        Writes from concurrent callers share calls (``memory/embed_batch.py``), so under
        load the second number grows faster than the first.
        """
        batcher = self._core.write_embedder
        return (0, 0) if batcher is None else (batcher.calls, batcher.texts)

    def index_events(self) -> dict[tuple[str, str], int]:
        """How often each view fault happened since open, by ``(event, reason)``.

        Events: ``index_verify_failed``, ``index_rebuild``, ``index_catch_up`` and
        ``index_skip_vector``; each is also logged as one logfmt line on the
        ``hivemem.index`` logger (``event=index_rebuild reason=ids_differ …``).
        """
        return dict(self._core.events)

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
        with self._core.write_lock:
            self._keep_an_admin(principal, prefix, permission)
            self._core.acl.set_grant(principal, prefix, permission)
        return Grant(principal=principal, prefix=prefix, permission=permission)  # type: ignore[arg-type]

    def revoke(self, principal: str, prefix: str) -> None:
        """Remove ``principal``'s grant on ``prefix``."""
        prefix = check_prefix(prefix)
        self._require_admin(prefix)
        with self._core.write_lock:
            self._keep_an_admin(principal, prefix, None)
            self._core.acl.set_grant(principal, prefix, None)

    def _keep_an_admin(self, principal: str, prefix: str, permission: str | None) -> None:
        """Refuse to remove or downgrade the last admin of the whole store."""
        if prefix != "" or permission == "admin":
            return
        acl = self._core.acl
        acl.invalidate()  # decide on the stored grants, not a cached copy
        admins = {g.principal for g in acl.grants() if g.prefix == "" and g.permission == "admin"}
        if admins == {principal}:
            raise Conflict(
                f"{principal!r} is the last admin of the whole store: grant another "
                "principal admin on '' first"
            )

    def grants(self, principal: str | None = None) -> builtins.list[Grant]:
        """Grants visible to the caller: all for a root admin, else those it administers."""
        every = self._core.acl.grants(principal)
        if self._superuser:
            return every
        acl = self._core.acl
        return [
            g
            for g in every
            if g.principal == self.principal or acl.level(self.principal, g.prefix) >= ADMIN
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
        """Current items under ``prefix`` as JSON-ready records (with vectors), with
        their claim state; before its first item, each living lease they are attached
        to or claimed under (``"kind": "lease"``); then the pending proposals the caller
        may see (``"kind": "proposal"``)."""
        scopes = self._scopes(prefix, "prefix")
        after, leases = None, set[str]()
        while True:
            rows = self._core.log.list_items(scopes, [], batch, after, time.time())
            for row in rows:
                record = row_to_item(row).model_dump(mode="json")
                yield from lease_records(self._core.log, record, leases)
                if vectors and row.vector is not None:
                    record["vector"] = np.frombuffer(row.vector, dtype=np.float32).tolist()
                yield record
            if len(rows) < batch:
                break
            after = (rows[-1].namespace, rows[-1].key)
        for proposal in self.proposals(prefix, status="pending", limit=1000):
            yield {"kind": "proposal", **proposal.model_dump(mode="json")}

    def import_items(self, records: Iterable[dict[str, Any]], batch: int = 500) -> int:
        """Write exported records back (one revision per batch); returns the count.

        Lease records grant a lease for what was left of it (held by the importer;
        the same id when it is free), items keep their lease and claim state, and
        proposal records are proposed again in their author's name.
        """
        count, imported = 0, Importer(self)
        chunk: builtins.list[dict[str, Any]] = []
        for n, rec in enumerate(records):
            if not isinstance(rec, dict):
                raise InvalidInput(f"records[{n}]", "must be an object")
            if rec.get("kind", "item") != "item":
                if chunk:
                    count += self._import_chunk(chunk, n - len(chunk), imported.claims)
                    chunk = []
                count += imported.entry(rec, f"records[{n}]")
                continue
            op = imported.item(rec, f"records[{n}]")
            if op is not None:
                chunk.append(op)
            if len(chunk) >= batch:
                count += self._import_chunk(chunk, n + 1 - len(chunk), imported.claims)
                chunk = []
        if chunk:
            count += self._import_chunk(chunk, count, imported.claims)
        return count

    def _import_chunk(
        self,
        chunk: builtins.list[dict[str, Any]],
        first: int,
        claims: dict[tuple[str, str], str] | None = None,
    ) -> int:
        places = {i: op.pop("_place") for i, op in enumerate(chunk) if "_place" in op}
        try:
            return len(
                self._run([], chunk, [], field="records", claims=claims, places=places).results
            )
        except InvalidInput as exc:
            match = re.match(r"records\[(\d+)\]", exc.field)
            if match:  # name the record by its place in the whole import
                where = f"records[{first + int(match.group(1))}]"
                exc.field = where + exc.field[match.end() :]
                exc.detail = f"{exc.field}: {exc.detail.split(': ', 1)[-1]}"
                exc.args = (exc.detail,)
            raise


def _encode_cursor(namespace: str, key: str) -> str:
    raw = json.dumps([namespace, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _encode_namespace_cursor(namespace: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(namespace).encode()).decode().rstrip("=")


def _cursor_json(cursor: Any, what: str) -> Any:
    """The JSON inside a cursor; anything that is not one of ours is a 422 naming it."""
    problem = InvalidInput("cursor", f"is not a cursor returned by {what}")
    if not isinstance(cursor, str) or len(cursor) > 4096 or not cursor.isascii():
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if json_text_depth(raw, 2) > 2:
            raise problem
        return json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        raise problem from None


def _decode_namespace_cursor(cursor: Any) -> str:
    name = _cursor_json(cursor, "namespaces")
    if not isinstance(name, str):
        raise InvalidInput("cursor", "is not a cursor returned by namespaces")
    return check_text(name, "cursor")


def _decode_cursor(cursor: Any) -> tuple[str, str]:
    pair = _cursor_json(cursor, "list")
    if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)):
        raise InvalidInput("cursor", "is not a cursor returned by list")
    return check_text(pair[0], "cursor"), check_text(pair[1], "cursor")


def _current_status(proposal: Proposal, now: float) -> Proposal:
    """A pending proposal past its expiry reads as expired before the reaper logs it."""
    if proposal.status == "pending" and proposal.expires_at.timestamp() <= now:
        return proposal.model_copy(update={"status": "expired"})
    return proposal
