"""Qdrant vector index (scale-out): one collection on a Qdrant server or cluster.

Every point is one live change: its id is the change id, its payload the namespace and
``scopes``, the namespace with every ancestor prefix (``team``, ``team/notes``), so
that a prefix-scoped search is one indexed keyword match; every search filters on it.
Replicas over one PostgreSQL log can share the collection: applying a change is an
idempotent upsert or delete by change id, so two replicas applying the same revision
converge. The applied revision is recorded in a one-point side collection
(``<collection>_hivemem``) on every save, after the points it covers were written with
``wait=True``: a restart catches up from it, re-applying at worst what was applied.

``QdrantIndex.connect(url)`` talks to a server (``qdrant://host:6333`` in
``HIVEMEM_INDEX_URL``); ``QdrantIndex.local(path)`` uses qdrant-client's local mode,
an exact in-process stand-in with the same client API, which the conformance suite
runs because no Qdrant server runs on the build machines.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from hivemem.memory.errors import Unavailable

__all__ = ["QdrantIndex", "scopes_of"]

_META_ID = 1
_BATCH = 512


def scopes_of(namespace: str) -> list[str]:
    """The namespace and each of its ancestor prefixes: what a scoped search matches."""
    parts = namespace.split("/")
    return ["/".join(parts[: n + 1]) for n in range(len(parts))]


class QdrantIndex:
    """The VectorIndex protocol over one Qdrant collection (through qdrant-client)."""

    def __init__(self, client: Any, collection: str = "hivemem") -> None:
        from qdrant_client import models

        self._m = models
        self.client = client
        self.collection = collection
        self.meta_collection = f"{collection}_hivemem"
        self.dim: int | None = None
        self.applied_revision = 0
        self._lock = threading.Lock()
        self._ready = False

    @classmethod
    def connect(cls, url: str, collection: str = "hivemem", **options: Any) -> QdrantIndex:
        """A Qdrant server or cluster at ``url`` (``http://host:6333``)."""
        from qdrant_client import QdrantClient

        return cls(QdrantClient(url=url, **options), collection)

    @classmethod
    def local(cls, path: str = ":memory:", collection: str = "hivemem") -> QdrantIndex:
        """qdrant-client's local mode (exact, in process): the client API without a server."""
        from qdrant_client import QdrantClient

        client = QdrantClient(":memory:") if path == ":memory:" else QdrantClient(path=path)
        return cls(client, collection)

    # -- the collection ------------------------------------------------------------
    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the client, turning transport failures into ``Unavailable``."""
        try:
            return fn(*args, **kwargs)
        except (ConnectionError, TimeoutError, OSError) as exc:
            raise Unavailable(f"Qdrant unavailable: {exc}") from exc
        except Exception as exc:
            if type(exc).__name__ in ("ResponseHandlingException", "UnexpectedResponse"):
                raise Unavailable(f"Qdrant error: {exc}") from exc
            raise

    def _ensure(self, dim: int) -> None:
        """Create the collection (and its payload indexes) for ``dim`` if it is absent."""
        if self._ready:
            return
        m = self._m
        if not self._call(self.client.collection_exists, self.collection):
            self._call(
                self.client.create_collection,
                self.collection,
                vectors_config=m.VectorParams(size=dim, distance=m.Distance.DOT),
            )
            for field in ("namespace", "scopes"):
                with warnings.catch_warnings():  # local mode: "no effect", as it is exact
                    warnings.simplefilter("ignore", UserWarning)
                    self._call(
                        self.client.create_payload_index,
                        self.collection,
                        field_name=field,
                        field_schema=m.PayloadSchemaType.KEYWORD,
                    )
        self.dim = dim
        self._ready = True

    def _scope_filter(self, scopes: Sequence[str], allowed: Collection[int] | None) -> Any:
        m = self._m
        must: list[Any] = []
        if not any(s == "" for s in scopes):
            must.append(m.FieldCondition(key="scopes", match=m.MatchAny(any=list(scopes))))
        else:  # every point has a namespace; the filter still names the field
            must.append(m.IsEmptyCondition(is_empty=m.PayloadField(key="namespace")))
            return m.Filter(
                must_not=must,
                must=[m.HasIdCondition(has_id=list(allowed))] if allowed is not None else None,
            )
        if allowed is not None:
            must.append(m.HasIdCondition(has_id=list(allowed)))
        return m.Filter(must=must)

    # -- updates -------------------------------------------------------------------
    def apply(
        self,
        revision: int,
        adds: Sequence[tuple[int, str, np.ndarray]],
        removes: Collection[int],
    ) -> None:
        m = self._m
        with self._lock:
            if adds:
                self._ensure(int(adds[0][2].shape[-1]))
            if removes and self._ready:
                ids = list(removes)
                for start in range(0, len(ids), _BATCH * 4):
                    self._call(
                        self.client.delete,
                        self.collection,
                        points_selector=m.PointIdsList(points=ids[start : start + _BATCH * 4]),
                        wait=True,
                    )
            for start in range(0, len(adds), _BATCH):
                points = [
                    m.PointStruct(
                        id=int(i),
                        vector=np.asarray(v, dtype=np.float32).tolist(),
                        payload={"namespace": ns, "scopes": scopes_of(ns)},
                    )
                    for i, ns, v in adds[start : start + _BATCH]
                ]
                self._call(self.client.upsert, self.collection, points=points, wait=True)
            self.applied_revision = max(self.applied_revision, revision)

    # -- reads ---------------------------------------------------------------------
    def search(
        self,
        query: np.ndarray,
        scopes: Sequence[str],
        k: int,
        allowed: Collection[int] | None = None,
    ) -> list[tuple[int, float]]:
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        if not self._ready or q.shape[0] != self.dim or not scopes:
            return []
        if allowed is not None and not allowed:
            return []
        found = self._call(
            self.client.query_points,
            self.collection,
            query=q.tolist(),
            query_filter=self._scope_filter(scopes, allowed),
            limit=k,
            with_payload=False,
        )
        return [(int(p.id), float(p.score)) for p in found.points]

    def score(self, query: np.ndarray, ids: Collection[int]) -> dict[int, float]:
        if not self._ready or not ids:
            return {}
        q = np.asarray(query, dtype=np.float32).reshape(-1)
        points = self._call(
            self.client.retrieve,
            self.collection,
            ids=[int(i) for i in ids],
            with_vectors=True,
            with_payload=False,
        )
        return {int(p.id): float(np.asarray(p.vector, dtype=np.float32) @ q) for p in points}

    def ids(self) -> set[int]:
        if not self._ready:
            return set()
        out: set[int] = set()
        offset = None
        while True:
            points, offset = self._call(
                self.client.scroll,
                self.collection,
                limit=10_000,
                offset=offset,
                with_payload=False,
                with_vectors=False,
            )
            out.update(int(p.id) for p in points)
            if offset is None:
                return out

    def __len__(self) -> int:
        if not self._ready:
            return 0
        return int(self._call(self.client.count, self.collection, exact=True).count)

    def reset(self) -> None:
        with self._lock:
            for name in (self.collection, self.meta_collection):
                if self._call(self.client.collection_exists, name):
                    self._call(self.client.delete_collection, name)
            self._ready = False
            self.dim = None
            self.applied_revision = 0

    # -- the applied revision ------------------------------------------------------
    def save(self) -> None:
        """Record the applied revision (every point it covers was written with wait)."""
        m = self._m
        with self._lock:
            if not self._ready:
                return
            if not self._call(self.client.collection_exists, self.meta_collection):
                self._call(
                    self.client.create_collection,
                    self.meta_collection,
                    vectors_config=m.VectorParams(size=1, distance=m.Distance.DOT),
                )
            payload = {"applied_revision": self.applied_revision, "dim": self.dim}
            point = m.PointStruct(id=_META_ID, vector=[1.0], payload=payload)
            self._call(self.client.upsert, self.meta_collection, points=[point], wait=True)

    def load(self) -> bool:
        with self._lock:
            if not self._call(self.client.collection_exists, self.collection):
                return False
            if not self._call(self.client.collection_exists, self.meta_collection):
                return False
            found = self._call(self.client.retrieve, self.meta_collection, ids=[_META_ID])
            if not found or not found[0].payload:
                return False
            self.applied_revision = int(found[0].payload["applied_revision"])
            self.dim = int(found[0].payload["dim"])
            self._ready = True
            return True

    def close(self) -> None:
        """Close the client's connections."""
        self._call(self.client.close)
