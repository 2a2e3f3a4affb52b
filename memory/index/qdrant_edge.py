"""Qdrant's own engine in process (``qdrant+edge:///path``, qdrant-edge-py).

The same layout as the server backend (``qdrant.py``): one shard, change ids as point
ids, ``namespace`` and ``scopes`` as indexed keyword payload, every search filtered on
``scopes``. The shard writes every update to its WAL before applying it; the applied
revision is written beside it (``hivemem-index.json``: temporary file, fsync, rename)
after a flush, so a restart catches up from a revision whose changes are all on disk.

Qdrant Edge never builds its HNSW graph by itself: ``optimize()`` does, blocking. A
maintainer thread calls it once ``optimize_every`` changes have arrived since the last
build; until then the new points are searched exactly. Only one process may open a
shard (a second open fails with WouldBlock), which is why the embedded default, shared
by several processes on one data directory, stays on FAISS.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from hivemem.memory.errors import Unavailable
from hivemem.memory.index.qdrant import scopes_of

__all__ = ["QdrantEdgeIndex"]

_VECTOR = "v"
_META = "hivemem-index.json"
_BATCH = 1024


class QdrantEdgeIndex:
    """The VectorIndex protocol over one Qdrant Edge shard in ``path``."""

    def __init__(
        self,
        path: str,
        *,
        m: int = 32,
        ef_construct: int = 128,
        ef_search: int = 96,
        optimize_every: int = 10_000,
    ) -> None:
        import qdrant_edge

        self._q = qdrant_edge
        self.path = path
        self.m, self.ef_construct, self.ef_search = m, ef_construct, ef_search
        self.optimize_every = optimize_every
        self.dim: int | None = None
        self.applied_revision = 0
        self._shard: Any = None
        self._lock = threading.RLock()
        self._pending = 0  # changes since the last optimize
        self._wake = threading.Event()
        self._stopping = False
        self._maintainer: threading.Thread | None = None
        os.makedirs(path, exist_ok=True)

    # -- the shard -----------------------------------------------------------------
    def _shard_dir(self) -> str:
        return os.path.join(self.path, "shard")

    def _open(self, dim: int | None) -> Any:
        """The open shard: loaded if on disk, else created for ``dim`` (None: don't)."""
        if self._shard is not None:
            return self._shard
        q = self._q
        where = self._shard_dir()
        try:
            if os.path.exists(os.path.join(where, "edge_config.json")):
                self._shard = q.EdgeShard.load(where)
            elif dim is not None:
                os.makedirs(where, exist_ok=True)
                hnsw = q.HnswIndexConfig(
                    m=self.m, ef_construct=self.ef_construct, full_scan_threshold=10_000
                )
                config = q.EdgeConfig(
                    vectors={_VECTOR: q.EdgeVectorParams(size=dim, distance=q.Distance.Dot)},
                    hnsw_config=hnsw,
                )
                self._shard = q.EdgeShard.create(where, config)
                for field in ("namespace", "scopes"):
                    self._shard.update(
                        q.UpdateOperation.create_field_index(field, q.PayloadSchemaType.Keyword)
                    )
        except Exception as exc:  # qdrant-edge raises plain Exception (WouldBlock, ...)
            raise Unavailable(f"cannot open the Qdrant Edge shard in {where}: {exc}") from exc
        if self._shard is not None and self.dim is None:
            self.dim = dim
        return self._shard

    def _filter(self, scopes: Sequence[str], allowed: Collection[int] | None) -> Any:
        q = self._q
        must: list[Any] = []
        must_not: list[Any] = []
        if any(s == "" for s in scopes):
            must_not.append(q.IsEmptyCondition(key="namespace"))
        else:
            must.append(q.FieldCondition(key="scopes", match=q.MatchAny(any=list(scopes))))
        if allowed is not None:
            must.append(q.HasIdCondition(point_ids=set(allowed)))
        return q.Filter(must=must or None, must_not=must_not or None)

    # -- updates -------------------------------------------------------------------
    def apply(
        self,
        revision: int,
        adds: Sequence[tuple[int, str, np.ndarray]],
        removes: Collection[int],
    ) -> None:
        q = self._q
        with self._lock:
            if adds and self.dim is None:
                self.dim = int(adds[0][2].shape[-1])
            shard = self._open(self.dim if adds else None)
            if shard is not None and removes:
                shard.update(q.UpdateOperation.delete_points([int(i) for i in removes]))
            for start in range(0, len(adds), _BATCH):
                points = [
                    q.Point(
                        id=int(i),
                        vector={_VECTOR: np.asarray(v, dtype=np.float32).tolist()},
                        payload={"namespace": ns, "scopes": scopes_of(ns)},
                    )
                    for i, ns, v in adds[start : start + _BATCH]
                ]
                shard.update(q.UpdateOperation.upsert_points(points))
            self.applied_revision = max(self.applied_revision, revision)
            self._pending += len(adds) + len(removes)
            due = self._pending >= self.optimize_every
        if due:
            self._kick()

    # -- background optimisation ---------------------------------------------------
    def _kick(self) -> None:
        with self._lock:
            if self._stopping:
                return
            if self._maintainer is None or not self._maintainer.is_alive():
                self._maintainer = threading.Thread(
                    target=self._maintain_loop, name="hivemem-qdrant-edge", daemon=True
                )
                self._maintainer.start()
        self._wake.set()

    def _maintain_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(5.0)
            self._wake.clear()
            if self._pending >= self.optimize_every and not self._stopping:
                try:
                    self.settle()
                except Unavailable:
                    pass  # closed meanwhile; exact search keeps serving

    def settle(self, timeout: float | None = None) -> bool:
        """Build the HNSW graph over what arrived since the last build (blocking)."""
        shard = self._shard
        if shard is None or self._pending == 0:
            return True
        self._pending = 0
        try:
            shard.optimize()
        except Exception as exc:
            raise Unavailable(f"Qdrant Edge optimize failed: {exc}") from exc
        return True

    # -- reads ---------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        scopes: Sequence[str],
        k: int,
        allowed: Collection[int] | None = None,
    ) -> list[tuple[int, float]]:
        q = self._q
        vec = np.asarray(query, dtype=np.float32).reshape(-1)
        shard = self._shard
        if shard is None or vec.shape[0] != self.dim or not scopes:
            return []
        if allowed is not None and not allowed:
            return []
        found = shard.query(
            q.QueryRequest(
                limit=k,
                query=q.Query.Nearest(vec.tolist(), using=_VECTOR),
                filter=self._filter(scopes, allowed),
                params=q.SearchParams(hnsw_ef=max(self.ef_search, k)),
            )
        )
        return [(int(p.id), float(p.score)) for p in found]

    def score(self, query: np.ndarray, ids: Collection[int]) -> dict[int, float]:
        shard = self._shard
        if shard is None or not ids:
            return {}
        vec = np.asarray(query, dtype=np.float32).reshape(-1)
        records = shard.retrieve([int(i) for i in ids], with_payload=False, with_vector=True)
        return {
            int(r.id): float(np.asarray(r.vector[_VECTOR], dtype=np.float32) @ vec) for r in records
        }

    def ids(self) -> set[int]:
        shard = self._shard
        if shard is None:
            return set()
        q = self._q
        out: set[int] = set()
        offset = None
        while True:
            records, offset = shard.scroll(
                q.ScrollRequest(offset=offset, limit=10_000, with_payload=False)
            )
            out.update(int(r.id) for r in records)
            if offset is None:
                return out

    def __len__(self) -> int:
        shard = self._shard
        return 0 if shard is None else int(shard.count(self._q.CountRequest(exact=True)))

    def reset(self) -> None:
        import shutil

        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None
            shutil.rmtree(self._shard_dir(), ignore_errors=True)
            meta = os.path.join(self.path, _META)
            if os.path.exists(meta):
                os.remove(meta)
            self.dim = None
            self.applied_revision = 0
            self._pending = 0

    # -- persistence ---------------------------------------------------------------
    def save(self) -> None:
        """Flush the shard, then record the revision it holds (atomically)."""
        with self._lock:
            if self._shard is None:
                return
            self._shard.flush()
            body = json.dumps({"revision": self.applied_revision, "dim": self.dim}).encode()
        target = os.path.join(self.path, _META)
        tmp = target + ".tmp"
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def load(self) -> bool:
        meta = os.path.join(self.path, _META)
        try:
            with open(meta, "rb") as fh:
                header = json.load(fh)
            revision, dim = int(header["revision"]), header["dim"]
        except (OSError, ValueError, KeyError, TypeError):
            return False
        with self._lock:
            self.dim = None if dim is None else int(dim)
            if self._open(None) is None:
                return False
            self.applied_revision = revision
        return True

    def close(self) -> None:
        """Stop the maintainer and close the shard (it is flushed by ``save``)."""
        self._stopping = True
        self._wake.set()
        thread = self._maintainer
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=60)
        with self._lock:
            if self._shard is not None:
                self._shard.close()
                self._shard = None
