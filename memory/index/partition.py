"""One namespace's vectors in the FAISS index: exact below a size, HNSW above it.

A partition holds an exact *buffer* (``IndexIDMap2(IndexFlatIP)``, where every new vector
lands) and, once it has grown past the threshold, an HNSW *graph*
(``IndexHNSWFlat``) built and extended by the index's background maintainer. A search
merges the two, so a vector is searchable the moment its commit is applied.

HNSW cannot remove a vector. A delete or an overwrite clears the vector's bit in the
``alive`` bitmap (a tombstone); every graph search passes that bitmap as its selector,
so a tombstoned id is never returned. The maintainer rebuilds the graph from the live
vectors when tombstones pass a fraction of it.

A metadata filter arrives as the set of allowed change ids. When few are allowed the
search is exact over just those vectors (cheaper than walking the graph, and it always
finds k); otherwise the graph is searched with the filter in the selector and a wider
beam, and an exact pass runs if the graph still found fewer than k.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import faiss
import numpy as np

__all__ = ["HnswParams", "Partition"]


@dataclass(frozen=True)
class HnswParams:
    """When and how a partition uses a graph (see README, "Vector index")."""

    #: vectors in a namespace above which it gets an HNSW graph (below: exact search)
    threshold: int = 10_000
    m: int = 32
    ef_construction: int = 80
    #: beam width at 100,000 vectors; it grows with the square root of the graph's size
    ef_search: int = 96
    #: graph rebuilt when this fraction of its positions is tombstoned
    max_dead: float = 0.2
    #: buffered vectors moved into the graph per step (a step holds the index lock)
    absorb_chunk: int = 256
    #: while writes keep arriving, the buffer is absorbed only past this size (each
    #: absorb step holds writers up; a larger buffer is rebuilt off the lock instead)
    max_buffer: int = 20_000
    #: seconds without writes to a namespace before its buffer is absorbed
    quiet: float = 0.25
    #: a filtered search allowing at most this many vectors is exact
    exact_filter: int = 20_000


def _as_matrix(vectors: Sequence[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(np.vstack(list(vectors)), dtype=np.float32)


def _selector(ids: Collection[int]) -> faiss.IDSelector:
    return faiss.IDSelectorBatch(np.fromiter(ids, dtype=np.int64, count=len(ids)))


class Partition:
    """An exact buffer plus an optional HNSW graph with a tombstone bitmap.

    Not thread-safe: the owning index holds its lock around every call except
    :meth:`build_graph`, which touches nothing shared.
    """

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.buffer = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self.graph: faiss.IndexHNSWFlat | None = None
        self.labels = np.empty(0, dtype=np.int64)  # graph position -> change id
        self.alive = np.empty(0, dtype=np.uint8)  # bit per graph position
        self.pos: dict[int, int] = {}  # change id -> graph position, live ones only
        self.buffered: set[int] = set()  # change ids in the buffer
        self.dead = 0
        self.removed_while_building: set[int] | None = None
        self.last_add = 0.0

    # -- size ----------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.buffer.ntotal) + len(self.pos)

    @property
    def graph_size(self) -> int:
        return 0 if self.graph is None else int(self.graph.ntotal)

    def __contains__(self, change_id: int) -> bool:
        return change_id in self.pos or change_id in self.buffered

    def needs_graph(self, params: HnswParams) -> bool:
        """Whether the maintainer should (re)build this partition's graph."""
        if self.graph is None:
            return len(self) >= params.threshold
        too_dead = self.dead > params.max_dead * self.graph_size
        outgrown = self.buffer.ntotal > max(self.graph_size, params.absorb_chunk)
        return too_dead or outgrown

    def needs_absorb(self, params: HnswParams, force: bool = False) -> bool:
        """Whether buffered vectors should move into the graph (now, unless writes are
        still arriving and the buffer is small: then the maintainer waits)."""
        if self.graph is None or self.buffer.ntotal < min(64, params.absorb_chunk):
            return False
        quiet = time.monotonic() - self.last_add >= params.quiet
        return force or quiet or self.buffer.ntotal >= params.max_buffer

    # -- updates -------------------------------------------------------------------
    def add(self, ids: list[int], vectors: list[np.ndarray]) -> None:
        self.buffer.add_with_ids(_as_matrix(vectors), np.asarray(ids, dtype=np.int64))
        self.buffered.update(ids)
        self.last_add = time.monotonic()

    def remove(self, ids: Collection[int]) -> None:
        in_buffer = []
        for i in ids:
            p = self.pos.pop(i, None)
            if p is None:
                if i in self.buffered:
                    self.buffered.discard(i)
                    in_buffer.append(i)
                continue
            self.alive[p >> 3] &= np.uint8(0xFF ^ (1 << (p & 7)))
            self.dead += 1
        if in_buffer:
            self.buffer.remove_ids(_selector(in_buffer))
        if self.removed_while_building is not None:
            self.removed_while_building.update(ids)

    # -- the graph -----------------------------------------------------------------
    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, vectors)`` of every live vector, to build a graph from."""
        self.removed_while_building = set()
        ids = [np.fromiter(self.pos, dtype=np.int64, count=len(self.pos))]
        if self.pos:
            positions = np.fromiter(self.pos.values(), dtype=np.int64, count=len(self.pos))
            vecs = [self._graph_vectors()[positions]]
        else:
            vecs = [np.empty((0, self.dim), dtype=np.float32)]
        if self.buffer.ntotal:
            ids.append(faiss.vector_to_array(self.buffer.id_map).astype(np.int64))
            vecs.append(np.asarray(self.buffer.index.reconstruct_n(0, self.buffer.ntotal)))
        return np.concatenate(ids), np.ascontiguousarray(np.vstack(vecs), dtype=np.float32)

    @staticmethod
    def build_graph(
        vectors: np.ndarray, params: HnswParams, stop: Callable[[], bool]
    ) -> faiss.IndexHNSWFlat | None:
        """A new graph over ``vectors`` (runs outside the index lock); None if stopped.

        Added in chunks so that closing the store interrupts a long build.
        """
        graph = faiss.IndexHNSWFlat(vectors.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = params.ef_construction
        for start in range(0, len(vectors), 20_000):
            if stop():
                return None
            graph.add(vectors[start : start + 20_000])
        return graph

    def install(self, graph: faiss.IndexHNSWFlat, ids: np.ndarray) -> None:
        """Swap in a graph built from :meth:`snapshot` (``ids`` in position order).

        Vectors removed while it was built are tombstoned in it; buffered vectors it now
        holds leave the buffer; vectors added meanwhile stay buffered.
        """
        removed = self.removed_while_building or set()
        self.removed_while_building = None
        n = len(ids)
        self.graph = graph
        self.labels = ids
        self.alive = np.full((n + 7) >> 3, 0xFF, dtype=np.uint8)
        self.pos = dict(zip(ids.tolist(), range(n), strict=True))
        self.dead = 0
        if n & 7:
            self.alive[-1] = (1 << (n & 7)) - 1
        in_buffer = [i for i in self.pos if i in self.buffered]
        if in_buffer:
            self.buffered.difference_update(in_buffer)
            self.buffer.remove_ids(_selector(in_buffer))
        gone = [i for i in removed if i in self.pos]
        self.remove(gone)

    def absorb(self, limit: int) -> int:
        """Move up to ``limit`` buffered vectors into the graph; returns how many."""
        if self.graph is None or not self.buffer.ntotal:
            return 0
        n = min(limit, int(self.buffer.ntotal))
        ids = faiss.vector_to_array(self.buffer.id_map)[:n].astype(np.int64)
        vecs = np.asarray(self.buffer.index.reconstruct_n(0, n))
        start = self.graph_size
        self.graph.add(np.ascontiguousarray(vecs, dtype=np.float32))
        self.labels = np.concatenate([self.labels, ids])
        need = (start + n + 7) >> 3
        if need > len(self.alive):
            self.alive = np.concatenate(
                [self.alive, np.zeros(need - len(self.alive), dtype=np.uint8)]
            )
        for offset, i in enumerate(ids.tolist()):
            p = start + offset
            self.alive[p >> 3] |= np.uint8(1 << (p & 7))
            self.pos[i] = p
        moved = ids.tolist()
        self.buffered.difference_update(moved)
        self.buffer.remove_ids(_selector(moved))
        return n

    def _graph_vectors(self) -> np.ndarray:
        """A view of the graph's stored vectors (valid until the graph grows)."""
        assert self.graph is not None
        storage = faiss.downcast_index(self.graph.storage)
        n = int(storage.ntotal)
        flat = faiss.rev_swig_ptr(storage.get_xb(), n * self.dim)  # type: ignore[attr-defined]
        return np.asarray(flat).reshape(n, self.dim)

    # -- reads ---------------------------------------------------------------------
    def vector(self, change_id: int) -> np.ndarray | None:
        p = self.pos.get(change_id)
        if p is not None:
            return np.asarray(self._graph_vectors()[p])
        if change_id in self.buffered:
            return np.asarray(self.buffer.reconstruct(int(change_id)))
        return None

    def ids(self) -> list[int]:
        return [*self.pos, *self.buffered]

    def search(
        self,
        q: np.ndarray,
        k: int,
        params: HnswParams,
        allowed: Collection[int] | None,
    ) -> list[tuple[float, int]]:
        """Top-k ``(score, change id)`` here, among ``allowed`` when given."""
        out = self._search_buffer(q, k, allowed)
        if self.graph is not None and self.pos:
            out += self._search_graph(q, k, params, allowed)
        out.sort(reverse=True)
        return out[:k]

    def _search_buffer(
        self, q: np.ndarray, k: int, allowed: Collection[int] | None
    ) -> list[tuple[float, int]]:
        n = int(self.buffer.ntotal)
        if not n:
            return []
        sp = None
        if allowed is not None:
            here = [i for i in allowed if i in self.buffered] if len(allowed) > n else allowed
            if not here:
                return []
            sp = faiss.SearchParameters(sel=_selector(here))  # type: ignore[call-arg]
        scores, ids = self.buffer.search(q, min(k, n), params=sp)
        return [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]

    def _search_graph(
        self,
        q: np.ndarray,
        k: int,
        params: HnswParams,
        allowed: Collection[int] | None,
    ) -> list[tuple[float, int]]:
        assert self.graph is not None
        bitmap = self.alive
        want = min(k, len(self.pos))
        # The beam grows with the square root of the graph: efSearch at 100,000 vectors,
        # about 3x that at 1,000,000 (192 there gave recall@10 0.931 against exact).
        ef = max(k, params.ef_search, int(params.ef_search * (len(self.pos) / 100_000) ** 0.5))
        if allowed is not None:
            positions = [p for i in allowed if (p := self.pos.get(i)) is not None]
            if len(positions) <= params.exact_filter:
                return self._exact(q, k, positions)
            bitmap = np.zeros_like(self.alive)
            arr = np.asarray(positions, dtype=np.int64)
            np.bitwise_or.at(bitmap, arr >> 3, (1 << (arr & 7)).astype(np.uint8))
            want = min(k, len(positions))
            # a selective filter hides most of what the beam meets: widen it
            ef = min(4096, max(ef, int(ef * len(self.pos) / max(1, len(positions)))))
        selector = faiss.IDSelectorBitmap(bitmap)  # type: ignore[arg-type,call-arg]
        sp = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)  # type: ignore[attr-defined]
        scores, found = self.graph.search(q, k, params=sp)
        out = [
            (float(s), int(self.labels[p]))
            for s, p in zip(scores[0], found[0], strict=True)
            if p >= 0
        ]
        if len(out) < want and allowed is not None:
            return self._exact(q, k, positions)
        return out

    def _exact(self, q: np.ndarray, k: int, positions: list[int]) -> list[tuple[float, int]]:
        if not positions:
            return []
        arr = np.asarray(positions, dtype=np.int64)
        scores = self._graph_vectors()[arr] @ q[0]
        top = np.argsort(-scores)[:k] if len(arr) > k else np.argsort(-scores)
        return [(float(scores[j]), int(self.labels[arr[j]])) for j in top]
