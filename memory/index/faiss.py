"""FAISS vector index (the embedded default): exact inner product, one partition per namespace.

Partitions make namespace scoping exact and cheap: a scoped search touches only the
namespaces in scope, so a small namespace is never starved by a large neighbour. The
index is persisted as one file (header, per-partition FAISS blobs, SHA-256 checksum)
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

__all__ = ["FaissIndex"]

_MAGIC = b"HIVEMEM-FAISS-1\n"


def _ids(ids: list[int]) -> faiss.IDSelector:
    """A selector of ids for ``remove_ids`` (its stub does not admit a plain id array)."""
    return faiss.IDSelectorBatch(np.asarray(ids, dtype=np.int64))


class FaissIndex:
    """``IndexIDMap2(IndexFlatIP)`` per namespace, ids are change ids."""

    def __init__(self, path: str | None = None, dim: int | None = None) -> None:
        self.path = path
        self.dim = dim
        self.applied_revision = 0
        self._parts: dict[str, faiss.Index] = {}
        self._names: list[str] = []  # sorted partition names, for prefix scoping
        self._where: dict[int, str] = {}  # id -> namespace
        self._lock = threading.RLock()
        self._save_lock = threading.Lock()
        self._threads = threading.local()

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
    def _part(self, namespace: str) -> faiss.Index:
        part = self._parts.get(namespace)
        if part is None:
            assert self.dim is not None
            part = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
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
            for ns, ids in by_ns.items():
                self._parts[ns].remove_ids(_ids(ids))
            grouped: dict[str, tuple[list[int], list[np.ndarray]]] = {}
            for i, ns, vec in adds:
                if self.dim is None:
                    self.dim = int(vec.shape[-1])
                if i in self._where:  # re-applied after a crash: replace, never duplicate
                    self._parts[self._where[i]].remove_ids(_ids([i]))
                self._where[i] = ns
                ids, vecs = grouped.setdefault(ns, ([], []))
                ids.append(i)
                vecs.append(vec)
            for ns, (ids, vecs) in grouped.items():
                matrix = np.ascontiguousarray(np.vstack(vecs), dtype=np.float32)
                self._part(ns).add_with_ids(matrix, np.asarray(ids, dtype=np.int64))
            self.applied_revision = max(self.applied_revision, revision)

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
            names = self._in_scope(scopes)
            params = None
            if allowed is not None:
                if not allowed:
                    return []
                params = faiss.SearchParameters(
                    sel=faiss.IDSelectorBatch(np.fromiter(allowed, dtype=np.int64))  # type: ignore[call-arg]
                )
            results: list[tuple[float, int]] = []
            for name in names:
                part = self._parts[name]
                if part.ntotal == 0:
                    continue
                kk = min(k, part.ntotal)
                scores, ids = part.search(q, kk, params=params)
                results.extend(
                    (float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0
                )
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
                    out[i] = float(self._parts[ns].reconstruct(int(i)) @ q)
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

    # -- persistence ---------------------------------------------------------------
    def save(self) -> None:
        """Persist atomically. Only the in-memory copy holds the lock; hashing, writing
        and fsync happen outside it, so searches and writers are not held up."""
        if self.path is None:
            return
        with self._save_lock:
            with self._lock:
                names = list(self._names)
                blobs = [faiss.serialize_index(self._parts[n]).tobytes() for n in names]
                revision, dim = self.applied_revision, self.dim
            body = b"".join(blobs)
            header = json.dumps(
                {
                    "revision": revision,
                    "dim": dim,
                    "partitions": [[n, len(b)] for n, b in zip(names, blobs, strict=True)],
                    "sha256": hashlib.sha256(body).hexdigest(),
                }
            ).encode()
            tmp = f"{self.path}.tmp"
            with open(tmp, "wb") as fh:
                fh.write(_MAGIC + struct.pack("<Q", len(header)) + header)
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dirfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
            try:
                os.fsync(dirfd)
            finally:
                os.close(dirfd)

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
            parts: dict[str, faiss.Index] = {}
            where: dict[int, str] = {}
            offset = 0
            for name, length in header["partitions"]:
                blob = np.frombuffer(body[offset : offset + length], dtype=np.uint8)
                offset += length
                part = faiss.deserialize_index(blob)
                parts[name] = part
                for i in faiss.vector_to_array(part.id_map):  # type: ignore[attr-defined]
                    where[int(i)] = name
        except (OSError, ValueError, KeyError, RuntimeError, struct.error):
            return False
        with self._lock:
            self._parts = parts
            self._names = sorted(parts)
            self._where = where
            self.dim = header["dim"]
            self.applied_revision = int(header["revision"])
        return True
