"""Approximate vector search in the embedded default (``--only ann``, ``make bench-large``).

hivemem with FAISS HNSW partitions, and with Qdrant Edge as its index, against the same
HNSW index built bare (same parameters, same vectors) and against exact search, in one
run. Vectors are mixtures of real MiniLM embeddings of LoCoMo turns plus noise (uniform
random vectors would misstate HNSW); queries are real question embeddings.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from typing import Any

import faiss
import numpy as np

from bench.common import Progress, fresh_dir, interleaved, pct, step
from hivemem.memory import Memory
from hivemem.memory.index.base import VectorIndex
from hivemem.memory.index.faiss import FaissIndex, HnswParams
from hivemem.memory.search import parse_filter

Result = dict[str, Any]
BUCKETS = 100  # metadata "bucket" = i % 100: a filter on one bucket allows 1% of items


def mixture_vectors(base: np.ndarray, n: int, seed: int, noise: float = 0.35) -> np.ndarray:
    """Unit vectors, each a random blend of two real embeddings plus Gaussian noise."""
    rng = np.random.default_rng(seed)
    dim = base.shape[1]
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(n, start + 100_000) - start
        a = base[rng.integers(0, len(base), m)]
        b = base[rng.integers(0, len(base), m)]
        w = rng.uniform(0.3, 0.7, (m, 1)).astype(np.float32)
        block = w * a + (1 - w) * b
        block += (noise / np.sqrt(dim)) * rng.standard_normal((m, dim)).astype(np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def real_embeddings() -> tuple[np.ndarray, np.ndarray]:
    """MiniLM embeddings of the LoCoMo turns (the mixture's base) and 200 questions."""
    from bench.common import cached_embeddings
    from bench.locomo import load_conversations, turn_text
    from hivemem.memory.embed import default_embedder

    convs = load_conversations()
    turns = [turn_text(t) for c in convs for t in c.turns]
    questions = [q.question for c in convs for q in c.questions]
    model: list[Any] = []

    def embed(texts: list[str]) -> np.ndarray:
        if not model:
            model.append(default_embedder())
        return model[0].embed(texts)  # type: ignore[no-any-return]

    base = cached_embeddings("locomo-turns", turns, embed)
    queries = cached_embeddings("locomo-questions", questions, embed)
    return base, np.ascontiguousarray(queries[::5][:200], dtype=np.float32)


def loaded_rss_mb(path: str) -> float:
    """Memory the saved index takes once loaded, measured in a fresh process."""
    code = (
        "import sys; from bench.ann import rss_mb; "
        "from hivemem.memory.index.faiss import FaissIndex; "
        "i = FaissIndex(sys.argv[1], background=False); before = rss_mb(); "
        "assert i.load(); print(rss_mb() - before)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, path],
        capture_output=True,
        text=True,
        check=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    return float(done.stdout.strip().splitlines()[-1])


def rss_mb() -> float:
    """Resident set size of this process now (MiB)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _ingest(mem: Memory, vectors: np.ndarray, batch: int = 5000) -> float:
    progress = Progress("ingest", len(vectors))
    start = time.perf_counter()
    for lo in range(0, len(vectors), batch):
        hi = min(len(vectors), lo + batch)
        mem.put_many(
            [
                {
                    "namespace": "bench/ann",
                    "key": f"i{i}",
                    "value": i,
                    "metadata": {"bucket": i % BUCKETS},
                    "vector": vectors[i],
                }
                for i in range(lo, hi)
            ]
        )
        progress.advance(hi - lo)
    return len(vectors) / (time.perf_counter() - start)


def _recall(got: list[list[int]], truth: np.ndarray) -> float:
    pairs = zip(got, truth, strict=True)
    return float(np.mean([len(set(g) & set(t.tolist())) / len(t) for g, t in pairs]))


def _keys(hits: list[Any]) -> list[int]:
    return [int(h.item.key[1:]) for h in hits]


def point(n: int, base: np.ndarray, queries: np.ndarray, params: HnswParams, edge: bool) -> Result:
    """One size: ingest, graph build, query latency and recall, filtered queries."""
    step(f"ann: {n:,} items, HNSW M={params.m} efC={params.ef_construction}")
    vectors = mixture_vectors(base, n, seed=n)
    nq = len(queries)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    faiss.omp_set_num_threads(2)
    _, truth = exact.search(queries, 10)
    bucket_ids = np.arange(7, n, BUCKETS)
    _, ftruth_local = faiss.knn(queries, vectors[bucket_ids], 10, metric=faiss.METRIC_INNER_PRODUCT)
    ftruth = bucket_ids[ftruth_local]

    t0 = time.perf_counter()
    bare = faiss.IndexHNSWFlat(vectors.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
    bare.hnsw.efConstruction = params.ef_construction
    bare.add(vectors)
    bare_build = time.perf_counter() - t0
    bare.hnsw.efSearch = params.ef_search
    faiss.omp_set_num_threads(1)

    out: Result = {"items": n, "bare_build_s": bare_build}
    path = fresh_dir(f"ann{n}")
    index = FaissIndex(f"{path}/vectors.faiss", hnsw=params)
    mem = Memory.open(
        path,
        embedder=None,
        durability="normal",
        reaper_interval=None,
        index=index,
        save_interval=1e9,
    )
    out["ingest_per_s"] = _ingest(mem, vectors)
    t0 = time.perf_counter()
    index.settle()
    out["graph_settle_s"] = time.perf_counter() - t0
    mem.checkpoint()
    out["index_file_mb"] = os.path.getsize(f"{path}/vectors.faiss") / 2**20
    out["rss_mb"] = loaded_rss_mb(f"{path}/vectors.faiss")
    out["rss_mb_per_million"] = out["rss_mb"] * 1e6 / n
    out.update(_queries(mem, bare, exact, queries, truth, ftruth, nq))
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    if edge:
        out["edge"] = _edge_point(vectors, queries, truth, ftruth, params)
    return out


def _queries(
    mem: Memory,
    bare: faiss.Index,
    exact: faiss.Index,
    queries: np.ndarray,
    truth: np.ndarray,
    ftruth: np.ndarray,
    nq: int,
) -> Result:
    got: dict[str, list[list[int]]] = {"hive": [], "filtered": [], "index_filtered": []}
    core = mem._core
    allowed = set(core.log.filtered_ids(["bench"], parse_filter({"bucket": 7}), time.time()))
    key_of = {r.id: int(r.key[1:]) for r in core.log.current_rows(allowed, time.time()).values()}

    def hive(i: int) -> None:
        got["hive"].append(
            _keys(mem.search(vector=queries[i], namespaces=["bench"], mode="vector", k=10))
        )

    def index_filtered(i: int) -> None:
        hits = core.index.search(queries[i], ["bench"], 10, allowed)
        got["index_filtered"].append([key_of[cid] for cid, _ in hits])

    def filtered(i: int) -> None:
        hits = mem.search(
            vector=queries[i], namespaces=["bench"], mode="vector", k=10, filter={"bucket": 7}
        )
        got["filtered"].append(_keys(hits))

    bare_ids: list[list[int]] = []

    def bare_q(i: int) -> None:
        bare_ids.append(bare.search(queries[i : i + 1], 10)[1][0].tolist())

    times = interleaved(
        {
            "bare_hnsw": bare_q,
            "exact": lambda i: exact.search(queries[i : i + 1], 10),
            "hivemem": hive,
            "index_filtered": index_filtered,
            "filtered": filtered,
        },
        nq,
        label="ann queries",
    )
    return {
        "bare_hnsw_p50_ms": pct(times["bare_hnsw"], 50) * 1e3,
        "exact_p50_ms": pct(times["exact"], 50) * 1e3,
        "hivemem_p50_ms": pct(times["hivemem"], 50) * 1e3,
        "hivemem_p99_ms": pct(times["hivemem"], 99) * 1e3,
        "index_filtered_p50_ms": pct(times["index_filtered"], 50) * 1e3,
        "filtered_p50_ms": pct(times["filtered"], 50) * 1e3,
        "bare_hnsw_recall": _recall(bare_ids, truth),
        "hivemem_recall": _recall(got["hive"], truth),
        "index_filtered_recall": _recall(got["index_filtered"], ftruth),
        "filtered_recall": _recall(got["filtered"], ftruth),
    }


def _edge_point(
    vectors: np.ndarray,
    queries: np.ndarray,
    truth: np.ndarray,
    ftruth: np.ndarray,
    params: HnswParams,
) -> Result:
    """The same work with Qdrant Edge as hivemem's index (in process, one opener)."""
    from hivemem.memory.index.qdrant_edge import QdrantEdgeIndex

    step(f"ann: Qdrant Edge at {len(vectors):,} items")
    path = fresh_dir("edge")
    index: VectorIndex = QdrantEdgeIndex(
        f"{path}/edge",
        m=params.m,
        ef_construct=params.ef_construction,
        ef_search=params.ef_search,
        optimize_every=10**12,
    )
    mem = Memory.open(
        path,
        embedder=None,
        durability="normal",
        reaper_interval=None,
        index=index,
        save_interval=1e9,
    )
    out: Result = {"ingest_per_s": _ingest(mem, vectors)}
    t0 = time.perf_counter()
    index.settle()  # type: ignore[attr-defined]
    out["optimize_s"] = time.perf_counter() - t0
    got: dict[str, list[list[int]]] = {"v": [], "f": []}
    core = mem._core
    allowed = set(core.log.filtered_ids(["bench"], parse_filter({"bucket": 7}), time.time()))
    key_of = {r.id: int(r.key[1:]) for r in core.log.current_rows(allowed, time.time()).values()}

    def vector(i: int) -> None:
        hits = mem.search(vector=queries[i], namespaces=["bench"], mode="vector", k=10)
        got["v"].append(_keys(hits))

    def index_filtered(i: int) -> None:
        hits = index.search(queries[i], ["bench"], 10, allowed)
        got["f"].append([key_of[cid] for cid, _ in hits])

    times = interleaved({"v": vector, "f": index_filtered}, len(queries), label="edge queries")
    out.update(
        {
            "p50_ms": pct(times["v"], 50) * 1e3,
            "index_filtered_p50_ms": pct(times["f"], 50) * 1e3,
            "recall": _recall(got["v"], truth),
            "index_filtered_recall": _recall(got["f"], ftruth),
        }
    )
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return out


def run(sizes: list[int], base: np.ndarray, queries: np.ndarray, edge_at: int = 100_000) -> Result:
    """Every size in ``sizes`` (Qdrant Edge measured at ``edge_at`` only)."""
    params = HnswParams()
    return {
        "params": {
            "threshold": params.threshold,
            "m": params.m,
            "ef_construction": params.ef_construction,
            "ef_search": params.ef_search,
        },
        "points": [point(n, base, queries, params, edge=n == edge_at) for n in sizes],
    }
