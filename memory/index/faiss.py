"""FAISS vector index (the embedded default): one partition per namespace, exact while a
namespace is small, HNSW once it grows past a threshold.

Partitions make namespace scoping exact and cheap: a scoped search touches only the
namespaces in scope, so a small namespace is never starved by a large neighbour. Each
partition (``partition.py``) takes new vectors into an exact buffer at once; a
background *maintainer* thread builds its HNSW graph when it passes the threshold,
moves buffered vectors into the graph, and rebuilds the graph when deletes and
overwrites have tombstoned too much of it. A search never waits for the maintainer,
and never returns a tombstoned id.

The index is persisted as one file (header, per-partition blobs, SHA-256 checksum)
written to a temporary file, fsynced and renamed into place.
"""

from __future__ import annotations

import bisect
import hashlib
import heapq
import json
import os
import struct
import threading
from collections.abc import Collection, Sequence

import faiss
import numpy as np

from hivemem.memory.files import write_view_file
from hivemem.memory.index.partition import HnswParams, Partition

__all__ = ["FaissIndex", "HnswParams"]

_MAGIC = b"HIVEMEM-FAISS-2\n"
_FIELDS = ("buffer", "graph", "labels", "alive")


class FaissIndex:
    """Per-namespace partitions of exact buffers and HNSW graphs; ids are change ids."""

    def __init__(
        self,
        path: str | None = None,
        dim: int | None = None,
        hnsw: HnswParams | None = None,
        *,
        background: bool = True,
        build_threads: int | None = None,
    ) -> None:
        self.path = path
        self.dim = dim
        self.params = hnsw or HnswParams()
        self.applied_revision = 0
        self.build_threads = build_threads or min(2, os.cpu_count() or 1)
        self._parts: dict[str, Partition] = {}
        self._names: list[str] = []  # sorted partition names, for prefix scoping
        self._where: dict[int, str] = {}  # id -> namespace
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._maint_lock = threading.Lock()  # one maintenance step at a time
        self._threads = threading.local()
        self._background = background
        self._wake = threading.Event()
        self._stopping = False
        self._maintainer: threading.Thread | None = None
        self._generation = 0  # bumped by reset: a graph built before it is dropped

    def _one_thread(self) -> None:
        """Run FAISS on one OpenMP thread from the calling thread.

        OpenMP's thread count is per calling thread, and callers come from pools (the
        server's, the reaper). One thread is faster for single queries on a busy
        machine (FACTS.md), and idle OpenMP workers spin, burning the other core.
        """
        if not getattr(self._threads, "single", False):
            faiss.omp_set_num_threads(1)
            self._threads.single = True

    # -- updates -------------------------------------------------------------------
    def _part(self, namespace: str) -> Partition:
        part = self._parts.get(namespace)
        if part is None:
            assert self.dim is not None
            part = Partition(self.dim)
            self._parts[namespace] = part
            bisect.insort(self._names, namespace)
        return part

    def apply(
        self,
        revision: int,
        adds: Sequence[tuple[int, str, np.ndarray]],
        removes: Collection[int],
    ) -> None:
        self._one_thread()
        with self._lock:
            by_ns: dict[str, list[int]] = {}
            for i in removes:
                ns = self._where.pop(i, None)
                if ns is not None:
                    by_ns.setdefault(ns, []).append(i)
            for i, _, _ in adds:  # re-applied after a crash: replace, never duplicate
                ns = self._where.pop(i, None)
                if ns is not None:
                    by_ns.setdefault(ns, []).append(i)
            for ns, ids in by_ns.items():
                self._parts[ns].remove(ids)
            grouped: dict[str, tuple[list[int], list[np.ndarray]]] = {}
            for i, ns, vec in adds:
                if self.dim is None:
                    self.dim = int(vec.shape[-1])
                self._where[i] = ns
                ids, vecs = grouped.setdefault(ns, ([], []))
                ids.append(i)
                vecs.append(vec)
            for ns, (ids, vecs) in grouped.items():
                self._part(ns).add(ids, vecs)
            self.applied_revision = max(self.applied_revision, revision)
            touched = [self._parts[ns] for ns in {*by_ns, *grouped}]
            work = any(self._needs_work(p) for p in touched)
        if work:
            self._kick()

    # -- background maintenance ------------------------------------------------------
    def _needs_work(self, part: Partition, force: bool = True) -> bool:
        return part.needs_graph(self.params) or part.needs_absorb(self.params, force)

    def _kick(self) -> None:
        if not self._background:
            self.settle()
            return
        if self._maintainer is None or not self._maintainer.is_alive():
            with self._lock:
                if self._stopping:
                    return
                if self._maintainer is None or not self._maintainer.is_alive():
                    self._maintainer = threading.Thread(
                        target=self._maintain_loop, name="hivemem-hnsw", daemon=True
                    )
                    self._maintainer.start()
        self._wake.set()

    def _maintain_loop(self) -> None:
        while not self._stopping:
            try:
                worked = self.maintain_step()
            except Exception:  # a failed build leaves the exact buffer serving searches
                worked = False
            if not worked:
                # buffered vectors wait for writes to pause: look again soon
                self._wake.wait(self.params.quiet if self._pending() else 5.0)
                self._wake.clear()

    def _pending(self) -> bool:
        with self._lock:
            return any(self._needs_work(p) for p in self._parts.values())

    def maintain_step(self, force: bool = False) -> bool:
        """Do one unit of graph work (build, absorb a chunk); False if none was due.

        Without ``force`` a namespace still being written to keeps a small buffer.
        """
        with self._maint_lock:
            with self._lock:
                todo = [(n, p) for n, p in self._parts.items() if self._needs_work(p, force)]
                if not todo:
                    return False
                name, part = max(todo, key=lambda np_: len(np_[1]))
                generation = self._generation
                rebuild = part.needs_graph(self.params)
                if rebuild:
                    ids, vectors = part.snapshot()
                else:
                    faiss.omp_set_num_threads(self.build_threads)
                    try:
                        part.absorb(self.params.absorb_chunk)
                    finally:
                        faiss.omp_set_num_threads(1)
                    return True
            faiss.omp_set_num_threads(self.build_threads)
            try:
                graph = Partition.build_graph(vectors, self.params, lambda: self._stopping)
            finally:
                faiss.omp_set_num_threads(1)
            with self._lock:
                if graph is None or generation != self._generation:
                    part.removed_while_building = None
                    return graph is not None
                if self._parts.get(name) is part:
                    part.install(graph, ids)
            return True

    def settle(self, timeout: float | None = None) -> bool:
        """Finish due graph work in the calling thread (tests, benchmarks, bulk loads).

        Returns False if ``timeout`` seconds passed with work still due.
        """
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.maintain_step(force=True):
            if deadline is not None and time.monotonic() > deadline:
                return False
        return True

    def graph_stats(self) -> dict[str, int]:
        """Counts for status and benchmarks: vectors in graphs, buffered, tombstoned."""
        with self._lock:
            parts = list(self._parts.values())
            return {
                "partitions": len(parts),
                "graphs": sum(1 for p in parts if p.graph is not None),
                "in_graphs": sum(len(p.pos) for p in parts),
                "buffered": sum(len(p.buffered) for p in parts),
                "tombstones": sum(p.dead for p in parts),
            }

    # -- search --------------------------------------------------------------------
    def _in_scope(self, scopes: Sequence[str]) -> list[str]:
        if any(s == "" for s in scopes):
            return list(self._names)
        found: dict[str, None] = {}
        for s in scopes:
            if s in self._parts:
                found[s] = None
            lo = bisect.bisect_left(self._names, s + "/")
            hi = bisect.bisect_left(self._names, s + "0")
            for name in self._names[lo:hi]:
                found[name] = None
        return list(found)

    def search(
        self,
        query: np.ndarray,
        scopes: Sequence[str],
        k: int,
        allowed: Collection[int] | None = None,
    ) -> list[tuple[int, float]]:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
        self._one_thread()
        with self._lock:
            if self.dim is None or q.shape[1] != self.dim:
                return []
            if allowed is not None and not allowed:
                return []
            names = [n for n in self._in_scope(scopes) if len(self._parts[n])]
            if allowed is not None and len(names) > 1:
                allowed = set(allowed)  # each partition looks up only the ids it holds
            results: list[tuple[float, int]] = []
            for name in names:
                part = self._parts[name]
                results += part.search(q, min(k, len(part)), self.params, allowed)
        best = heapq.nlargest(k, results) if len(names) > 1 else results[:k]
        return [(i, s) for s, i in best]

    def score(self, query: np.ndarray, ids: Collection[int]) -> dict[int, float]:
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        self._one_thread()
        out: dict[int, float] = {}
        with self._lock:
            for i in ids:
                ns = self._where.get(i)
                if ns is not None:
                    vec = self._parts[ns].vector(i)
                    if vec is not None:
                        out[i] = float(vec @ q)
        return out

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._where)

    def __len__(self) -> int:
        return len(self._where)

    def reset(self) -> None:
        with self._lock:
            self._parts.clear()
            self._names.clear()
            self._where.clear()
            self.applied_revision = 0
            self._generation += 1

    def close(self) -> None:
        """Stop the maintainer (a build in progress stops at its next chunk)."""
        self._stopping = True
        self._wake.set()
        thread = self._maintainer
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)

    # -- persistence ---------------------------------------------------------------
    def save(self) -> None:
        """Persist atomically. Only the in-memory copy holds the lock; hashing, writing
        and fsync happen outside it, so searches and writers are not held up."""
        if self.path is None:
            return
        with self._save_lock:
            with self._lock:
                names = list(self._names)
                entries, blobs = [], []
                for name in names:
                    part = self._parts[name]
                    pieces = [
                        faiss.serialize_index(part.buffer).tobytes(),
                        b"" if part.graph is None else faiss.serialize_index(part.graph).tobytes(),
                        part.labels.tobytes(),
                        part.alive.tobytes(),
                    ]
                    entries.append([name, part.dead, *map(len, pieces)])
                    blobs += pieces
                revision, dim = self.applied_revision, self.dim
            body = b"".join(blobs)
            header = json.dumps(
                {
                    "revision": revision,
                    "dim": dim,
                    "partitions": entries,
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            ).encode()
            write_view_file(self.path, _MAGIC, header, body)

    def load(self) -> bool:
        if self.path is None or not os.path.exists(self.path):
            return False
        self._one_thread()
        try:
            with open(self.path, "rb") as fh:
                data = fh.read()
            if not data.startswith(_MAGIC):
                return False
            pos = len(_MAGIC)
            (hlen,) = struct.unpack_from("<Q", data, pos)
            pos += 8
            header = json.loads(data[pos : pos + hlen])
            body = memoryview(data)[pos + hlen :]
            if hashlib.sha256(body).hexdigest() != header["sha256"]:
                return False
            parts, where = self._parse(header, body)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, struct.error):
            return False
        with self._lock:
            self._parts = parts
            self._names = sorted(parts)
            self._where = where
            self.dim = header["dim"]
            self.applied_revision = int(header["revision"])
            self._generation += 1
            work = any(self._needs_work(p) for p in parts.values())
        if work:
            self._kick()
        return True

    @staticmethod
    def _parse(header: dict, body: memoryview) -> tuple[dict[str, Partition], dict[int, str]]:  # type: ignore[type-arg]
        parts: dict[str, Partition] = {}
        where: dict[int, str] = {}
        offset = 0
        for name, dead, *lengths in header["partitions"]:
            pieces = []
            for length in lengths:
                pieces.append(np.frombuffer(body[offset : offset + length], dtype=np.uint8))
                offset += length
            part = Partition(int(header["dim"]))
            part.buffer = faiss.deserialize_index(pieces[0])  # type: ignore[assignment]
            part.buffered = set(faiss.vector_to_array(part.buffer.id_map).tolist())
            if len(pieces[1]):
                part.graph = faiss.deserialize_index(pieces[1])  # type: ignore[assignment]
                part.labels = pieces[2].view(np.int64).copy()
                part.alive = pieces[3].copy()
                bits = np.unpackbits(part.alive, bitorder="little")[: len(part.labels)]
                live = np.flatnonzero(bits)
                part.pos = dict(zip(part.labels[live].tolist(), live.tolist(), strict=True))
                part.dead = int(dead)
            parts[name] = part
            for i in [*part.pos, *part.buffered]:
                where[i] = name
        return parts, where
