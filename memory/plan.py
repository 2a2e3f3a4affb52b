"""The transaction plan: what a put, delete or txn appends, decided inside the commit.

The engine hands ``TxnPlan`` to ``StateLog.commit``; the backend runs it inside its
write transaction, where it reads the current rows, checks compares and versions,
merges, and returns the changes to append. Every write takes this one path.
"""

from __future__ import annotations

import json
from typing import Any

from hivemem.memory import merge as merging
from hivemem.memory.errors import Conflict, InvalidInput, NotFound
from hivemem.memory.log.base import LeaseRecord, PendingChange, Row, WriteView
from hivemem.memory.models import Compare, Item, OpResult, ts_to_datetime
from hivemem.memory.ops import (
    Prepared,
    PreparedDelete,
    PreparedGet,
    PreparedPut,
    PreparedUpdate,
)
from hivemem.memory.patch import apply_ops
from hivemem.memory.rows import build_model, dt, row_to_item
from hivemem.memory.validation import check_metadata, dump_json, dump_value

__all__ = ["TxnPlan"]

_TTL = json.dumps({"reason": "ttl"})
_CMP = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class TxnPlan:
    """Decides, inside the write transaction, what a txn appends."""

    def __init__(
        self,
        compares: list[Compare],
        success: list[Prepared],
        failure: list[Prepared],
        max_value_bytes: int | None = None,
    ) -> None:
        self.compares = compares
        self.success = success
        self.failure = failure
        self.max_value_bytes = max_value_bytes

    @property
    def blind(self) -> bool:
        """True if no outcome depends on a precondition (no compare, if_version, fence or
        three-way merge): such plans may share a commit with others (group commit)."""
        if self.compares:
            return False
        return all(
            getattr(op, "if_version", None) is None
            and getattr(op, "fence", None) is None
            and getattr(op, "merge", "") != "three_way"
            for op in self.success
        )

    def __call__(self, view: WriteView) -> tuple[list[PendingChange], Any]:
        keys = [(c.namespace, c.key) for c in self.compares]
        keys += [(o.namespace, o.key) for o in (*self.success, *self.failure)]
        self.begin(view, keys)
        succeeded = all(self._holds(c) for c in self.compares)
        results = [self._apply(op) for op in (self.success if succeeded else self.failure)]
        return self.pending, (succeeded, results, self.replaced())

    def begin(self, view: WriteView, keys: list[tuple[str, str]] | None = None) -> None:
        """Start planning inside the write transaction ``view``."""
        self.view = view
        self.latest: dict[tuple[str, str], Row] = dict(view.latest(keys or []))
        self.pending: list[PendingChange] = []
        self.staged: dict[tuple[str, str], PendingChange] = {}
        self.ended_leases: set[str] = set()
        self._read: set[tuple[str, str]] = set(keys or [])
        self._leases: dict[str, LeaseRecord | None] = {}

    def replaced(self) -> list[int]:
        """Change ids of stored versions this plan supersedes (the index drops them)."""
        return [self.latest[k].id for k in self.staged if k in self.latest]

    def lease_record(self, lease_id: str) -> LeaseRecord | None:
        """A lease as this transaction sees it (read once per transaction)."""
        if lease_id not in self._leases:
            self._leases[lease_id] = self.view.leases([lease_id]).get(lease_id)
        return self._leases[lease_id]

    def lease_alive(self, lease_id: str) -> bool:
        rec = self.lease_record(lease_id)
        return rec is not None and lease_id not in self.ended_leases and rec.alive(self.view.now)

    # what the txn sees: its own staged writes over the stored state
    def _current(self, k: tuple[str, str]) -> tuple[int, Any]:
        """(latest version number incl. tombstones, live row/pending or None)."""
        staged = self.staged.get(k)
        if staged is not None:
            return staged.version, (staged if staged.op == "put" else None)
        if k not in self.latest and k not in self._read:
            self._read.add(k)  # a key not named by the ops (a fencing token's task)
            self.latest.update(self.view.latest([k]))
        row = self.latest.get(k)
        if row is None:
            return 0, None
        if not row.live:
            return row.version, None
        if row.expires_at is not None and row.expires_at <= self.view.now:
            # expired but not yet reaped: log the expiry first, then treat as absent
            expire = PendingChange(
                "expire",
                k[0],
                k[1],
                row.version + 1,
                row.version,
                info=_TTL,
                thread=row.thread,
                thread_pos=row.thread_pos,
            )
            self.pending.append(expire)
            self.staged[k] = expire
            return expire.version, None
        if row.lease is not None and not self.lease_alive(row.lease):
            # its lease ended unreaped: end it now, every attached item in this revision
            from hivemem.memory.leases import end_lease

            end_lease(self, row.lease, "expired")
            return self._current(k)
        if row.claim is not None:
            claim = json.loads(row.claim)
            if claim.get("state") == "claimed" and not self.lease_alive(claim["lease"]):
                from hivemem.memory.leases import end_lease

                end_lease(self, claim["lease"], "expired")  # the task is given back first
                return self._current(k)
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
            thread=cur.thread,
            thread_pos=cur.thread_pos,
            version=cur.version,
            revision=self.view.revision,
            author="",
            created_at=dt(cur.created_at or self.view.now),
            updated_at=dt(self.view.now),
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

    def _apply(self, op: Prepared) -> OpResult:
        k = (op.namespace, op.key)
        version, cur = self._current(k)
        live_version = version if cur is not None else 0
        if isinstance(op, PreparedGet):
            item = self._item(k, cur)
            return OpResult(
                op="get",
                namespace=k[0],
                key=k[1],
                item=item,
                version=item.version if item else None,
            )
        if op.fence is not None:
            from hivemem.memory.claims import check_fence

            check_fence(self, op.fence)
            version, cur = self._current(k)
            live_version = version if cur is not None else 0
        if op.if_version is not None and op.if_version != live_version:
            raise Conflict(
                f"expected version {op.if_version}, found {live_version}",
                current=self._item(k, cur),
                namespace=k[0],
                key=k[1],
            )
        if isinstance(op, PreparedDelete):
            if cur is None:
                raise NotFound("no such item")
            # a tombstone names the thread it leaves, so thread watchers hear of it
            change = PendingChange(
                "delete",
                k[0],
                k[1],
                version + 1,
                version,
                thread=cur.thread,
                thread_pos=cur.thread_pos,
            )
            self._stage(k, change)
            item = Item(
                namespace=k[0],
                key=k[1],
                version=version + 1,
                revision=self.view.revision,
                author="",
                deleted=True,
                created_at=dt(self.view.now),
                updated_at=dt(self.view.now),
            )
            return OpResult(op="delete", namespace=k[0], key=k[1], item=item, version=version + 1)
        if isinstance(op, PreparedUpdate):
            return self._update(op, k, version, cur)
        return self._put(op, k, version, cur)

    def _update(self, op: PreparedUpdate, k: tuple[str, str], version: int, cur: Any) -> OpResult:
        """Apply the operations to the current value (``{}`` for a missing item)."""
        if cur is None and not op.create:
            raise NotFound("no such item")
        doc = (json.loads(cur.value) if cur.value else None) if cur is not None else {}
        try:
            new = apply_ops(doc, op.ops)
        except Conflict as exc:  # a failed test: name the item, carry its current state
            exc.current, exc.namespace, exc.key = self._item(k, cur), k[0], k[1]
            raise
        # The result is what the item will hold: the same limits as a put's value.
        value_json = dump_value(new, op.max_value_bytes, f"{op.field}ops")
        keep = cur is not None
        text = op.text if op.text is not None else (cur.text if keep else None)
        meta = op.metadata if op.metadata is not None else (cur.metadata if keep else "{}")
        if op.metadata_ops is not None:
            meta = self._patched_metadata(op, meta)
        expires = cur.expires_at if keep else None
        if op.ttl is not None:
            if keep and cur.lease is not None:
                raise InvalidInput(f"{op.field}ttl", "the item lives with a lease, not a ttl")
            expires = self.view.now + op.ttl
        vector = op.vector
        if vector is None and op.text is None and keep:
            vector = cur.vector  # the text did not change, nor does its embedding
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
            cur.created_at if keep else 0.0,
            expires,
            # An update changes the value only: the lease and the task state stay.
            lease=cur.lease if keep else None,
            claim=cur.claim if keep else None,
            ops=op.ops_json,
            thread=cur.thread if keep else None,  # and so does its place in a thread
            thread_pos=cur.thread_pos if keep else None,
        )
        self._stage(k, change)
        return build_model(
            OpResult, op="update", namespace=k[0], key=k[1], item=None, version=version + 1
        )

    @staticmethod
    def _patched_metadata(op: PreparedUpdate, meta: str | None) -> str:
        """The item's metadata after ``metadata_ops``: still a flat object of scalars."""
        assert op.metadata_ops is not None
        where = f"{op.field}metadata_ops"
        patched = apply_ops(json.loads(meta) if meta else {}, op.metadata_ops)
        if not isinstance(patched, dict):
            raise InvalidInput(where, "must leave the metadata an object")
        check_metadata(patched, where)
        return dump_json(patched, where, op.max_value_bytes)

    def _put(self, op: PreparedPut, k: tuple[str, str], version: int, cur: Any) -> OpResult:
        value_json, text, meta, vector = op.value_json, op.text, op.metadata, op.vector
        thread = op.thread
        if op.merge != "replace":
            if thread is None and cur is not None:
                thread = cur.thread
            old_value = json.loads(cur.value) if cur is not None and cur.value else None
            if op.merge == "patch":
                merged = merging.merge_patch(old_value if cur is not None else {}, op.value)
            else:
                merged = self._three_way(op, k, cur, old_value)
            # a merge can grow the value: the result passes the same checks as a put
            value_json = dump_json(merged, f"{op.field}value", self.max_value_bytes)
            if cur is not None:
                text = text if text is not None else cur.text
                meta = meta if meta is not None else cur.metadata
                if vector is None and op.text is None:
                    vector = cur.vector
            meta = meta if meta is not None else "{}"
        created = cur.created_at if cur is not None else 0.0
        expires = self.view.now + op.ttl if op.ttl is not None else None
        if op.lease is not None and not self.lease_alive(op.lease):
            raise NotFound(f"no lease {op.lease!r} (it may have ended)")
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
            lease=op.lease,
            # task state outlives new values (an import restores an exported one)
            claim=op.claim_json if op.claim_json is not None else (cur.claim if cur else None),
            thread=thread,
            thread_pos=_place(op, thread, cur),
        )
        self._stage(k, change)
        return build_model(
            OpResult, op="put", namespace=k[0], key=k[1], item=None, version=version + 1
        )

    def _three_way(self, op: PreparedPut, k: tuple[str, str], cur: Any, theirs: Any) -> Any:
        assert op.base_version is not None
        base_row = self.view.version_row(k[0], k[1], op.base_version)
        if base_row is None or not base_row.live:
            raise Conflict(
                f"base_version {op.base_version} is not in history",
                current=self._item(k, cur),
                namespace=k[0],
                key=k[1],
            )
        base = json.loads(base_row.value) if base_row.value else None
        current = theirs if cur is not None else None
        merged, conflicts = merging.three_way(base, op.value, current, op.on_conflict)
        if conflicts and op.on_conflict is None:
            raise Conflict(
                f"{len(conflicts)} conflicting path(s) in three-way merge",
                current=self._item(k, cur),
                namespace=k[0],
                key=k[1],
                conflicts=conflicts,
            )
        return merged

    def stage(self, k: tuple[str, str], change: PendingChange) -> None:
        """Append ``change`` to the transaction; later reads of ``k`` see it."""
        self.pending.append(change)
        self.staged[k] = change

    _stage = stage


def _place(op: PreparedPut, thread: str | None, cur: Any) -> int | None:
    """An item's place in its thread: an overwrite in the same thread keeps it; a first
    write there (or after a delete) takes a new one, unless an import carries it."""
    if thread is None:
        return None
    if cur is not None and cur.thread == thread and cur.thread_pos is not None:
        return int(cur.thread_pos)
    return op.thread_pos
