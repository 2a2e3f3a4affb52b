"""Administration: maintenance, principals, grants and API keys, export and import."""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from hivemem.memory.acl import ADMIN
from hivemem.memory.errors import Conflict, InvalidInput
from hivemem.memory.exchange import Importer, lease_records
from hivemem.memory.models import (
    ApiKeyCreated,
    ApiKeyInfo,
    Compare,
    Grant,
    Proposal,
    TxnResult,
)
from hivemem.memory.rows import row_to_item
from hivemem.memory.validation import (
    INT64_MAX,
    check_int,
    check_prefix,
)
from hivemem.memory.views import Core

if TYPE_CHECKING:
    from hivemem.memory.engine import Memory


class AdminMixin:
    """The ``Memory`` methods that administer the store: maintenance, access, exchange."""

    if TYPE_CHECKING:
        _core: Core
        principal: str
        _superuser: bool

        def _require(self, namespace: str, permission: str) -> None: ...
        def _scopes(self, prefixes: Sequence[str] | str | None, field: str) -> list[str]: ...
        def _require_admin(self, prefix: str) -> None: ...
        def as_principal(self, name: str) -> Memory: ...
        def _run(
            self,
            compare: list[Compare | dict[str, Any]],
            success: list[Any],
            failure: list[Any],
            field: str | None,
            claims: dict[tuple[str, str], str] | None = None,
            places: dict[int, int] | None = None,
        ) -> TxnResult: ...
        def proposals(
            self, prefix: str = "", status: str | None = "pending", limit: int = 100
        ) -> builtins.list[Proposal]: ...

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
        count, imported = 0, Importer(cast("Memory", self))
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
