"""Engine benchmarks: each figure is a ratio against a baseline run in the same process."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from typing import Any

import faiss
import numpy as np

from bench.common import (
    Progress,
    cached_embeddings,
    clustered_vectors,
    fresh_dir,
    interleaved,
    pct,
    step,
)
from bench.locomo import load_conversations, turn_text
from hivemem.memory import Memory
from hivemem.memory.embed import default_embedder
from hivemem.memory.index.faiss import FaissIndex, HnswParams

Result = dict[str, Any]
DIM = 384


def _ingest(
    mem: Memory,
    namespace: str,
    vectors: np.ndarray,
    texts: list[str] | None,
    batch: int = 5000,
    label: str = "ingest",
) -> float:
    progress = Progress(label, len(vectors))
    start = time.perf_counter()
    for lo in range(0, len(vectors), batch):
        hi = min(len(vectors), lo + batch)
        mem.put_many(
            [
                {
                    "namespace": namespace,
                    "key": f"i{i}",
                    "value": i,
                    "text": texts[i % len(texts)] if texts else None,
                    "vector": vectors[i],
                }
                for i in range(lo, hi)
            ]
        )
        progress.advance(hi - lo)
    return len(vectors) / (time.perf_counter() - start)


def search_scaling(sizes: list[int], texts: list[str], queries_text: list[str]) -> Result:
    """Vector search p50 vs bare FAISS on the same vectors, at several item counts."""
    out: Result = {"points": []}
    for n in sizes:
        point = _search_point(n, texts, queries_text)
        if "text_p50_ms" in point:
            out["at_100k"] = point
        out["points"].append(point)
    return out


def _search_point(n: int, texts: list[str], queries_text: list[str]) -> Result:
    step(f"search scaling: {n:,} items with supplied vectors")
    vectors = clustered_vectors(n, DIM, seed=1)
    queries = clustered_vectors(200, DIM, seed=2)
    nq = 200 if n <= 100_000 else 40
    path = fresh_dir(f"search{n}")
    # Exact against exact: the approximate index has its own section (bench/ann.py).
    exact = FaissIndex(f"{path}/vectors.faiss", hnsw=HnswParams(threshold=10**12))
    mem = Memory.open(path, embedder=None, durability="normal", reaper_interval=None, index=exact)
    with_text = n == 100_000
    rate = _ingest(mem, "bench/vectors", vectors, texts if with_text else None)
    bare = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
    bare.add_with_ids(vectors, np.arange(n, dtype=np.int64))
    times = interleaved(
        {
            "bare": lambda i: bare.search(queries[i % 200 : i % 200 + 1], 10),
            "hivemem": lambda i: mem.search(
                vector=queries[i % 200], namespaces=["bench"], mode="vector", k=10
            ),
        },
        nq,
        label=f"vector queries at {n:,}",
    )
    point: Result = {
        "items": n,
        "ingest_per_s": rate,
        "bare_p50_ms": pct(times["bare"], 50) * 1e3,
        "hivemem_p50_ms": pct(times["hivemem"], 50) * 1e3,
        "hivemem_p99_ms": pct(times["hivemem"], 99) * 1e3,
    }
    point["ratio"] = point["hivemem_p50_ms"] / point["bare_p50_ms"]
    if with_text:
        embedder = default_embedder()
        mem._core.embedder = embedder  # text queries go through the real model
        embedder.embed(["warm up"])

        def query(mode: str):  # type: ignore[no-untyped-def]
            return lambda i: mem.search(
                queries_text[i % len(queries_text)], namespaces=["bench"], mode=mode, k=10
            )

        t = interleaved(
            {"text": query("vector"), "hybrid": query("hybrid"), "keyword": query("keyword")},
            100,
            label="text queries at 100,000",
        )
        point.update({f"{k}_p50_ms": pct(v, 50) * 1e3 for k, v in t.items()})
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return point


def _locomo() -> tuple[list[Any], np.ndarray, np.ndarray, list[tuple[int, str, list[str]]]]:
    convs = load_conversations()
    turns = [(c, t) for c in convs for t in c.turns]
    questions = [(ci, q.question, q.evidence) for ci, c in enumerate(convs) for q in c.questions]
    embedder = default_embedder()
    tvec = cached_embeddings("locomo-turns", [turn_text(t) for _, t in turns], embedder.embed)
    qvec = cached_embeddings("locomo-questions", [q for _, q, _ in questions], embedder.embed)
    return convs, tvec, qvec, questions


def locomo_alternatives() -> Result:
    """The FACTS.md LoCoMo work with supplied vectors: ingest rate and scoped query p50."""
    step("LoCoMo with supplied MiniLM vectors: hivemem vs bare FAISS / FTS5 / LangGraph")
    convs, tvec, qvec, questions = _locomo()
    items = []
    offset = 0
    for c in convs:
        for j, t in enumerate(c.turns):
            items.append((c.namespace, t.dia_id, turn_text(t), tvec[offset + j]))
        offset += len(c.turns)
    out: Result = {"turns": len(items), "queries": len(questions)}

    path = fresh_dir("locomo")
    mem = Memory.open(path, embedder=None, reaper_interval=None)  # default durability: full
    start = time.perf_counter()
    for c in convs:
        mem.put_many(
            [
                {"namespace": ns, "key": key, "value": text, "vector": vec}
                for ns, key, text, vec in items
                if ns == c.namespace
            ]
        )
    out["hivemem_ingest_per_s"] = len(items) / (time.perf_counter() - start)

    start = time.perf_counter()
    bare: dict[str, Any] = {}
    for i, (ns, _, _, vec) in enumerate(items):
        bare.setdefault(ns, ([], []))
        bare[ns][0].append(i)
        bare[ns][1].append(vec)
    flat = {}
    for ns, (ids, vecs) in bare.items():
        idx = faiss.IndexIDMap2(faiss.IndexFlatIP(DIM))
        idx.add_with_ids(np.vstack(vecs), np.asarray(ids, dtype=np.int64))
        flat[ns] = idx
    out["faiss_ingest_per_s"] = len(items) / (time.perf_counter() - start)

    fts = sqlite3.connect(":memory:")
    fts.execute("CREATE VIRTUAL TABLE t USING fts5(ns UNINDEXED, text)")
    start = time.perf_counter()
    fts.executemany("INSERT INTO t VALUES (?, ?)", [(ns, text) for ns, _, text, _ in items])
    fts.commit()
    out["fts5_ingest_per_s"] = len(items) / (time.perf_counter() - start)

    _QUERY_VECTORS.update({q: qvec[i].tolist() for i, (_, q, _) in enumerate(questions)})
    lg = _langgraph_store(items)
    if lg is not None:
        out["langgraph_ingest_per_s"] = lg[1]

    namespaces = [c.namespace for c in convs]

    def fts_query(i: int) -> Any:
        ci, q, _ = questions[i]
        terms = " OR ".join('"' + w.replace('"', "") + '"' for w in q.split() if w.strip('"'))
        return fts.execute(
            "SELECT rowid FROM t WHERE t MATCH ? AND ns = ? ORDER BY rank LIMIT 10",
            (terms, namespaces[ci]),
        ).fetchall()

    subjects = {
        "faiss": lambda i: flat[namespaces[questions[i][0]]].search(qvec[i : i + 1], 10),
        "fts5": fts_query,
        "hivemem_vector": lambda i: mem.search(
            vector=qvec[i], mode="vector", k=10, namespaces=[namespaces[questions[i][0]]]
        ),
        "hivemem_hybrid": lambda i: mem.search(
            questions[i][1],
            vector=qvec[i],
            mode="hybrid",
            k=10,
            namespaces=[namespaces[questions[i][0]]],
        ),
    }
    if lg is not None:
        store = lg[0]
        subjects["langgraph"] = lambda i: store.search(
            ("locomo", namespaces[questions[i][0]].split("/")[1]), query=questions[i][1], limit=10
        )
    times = interleaved(subjects, len(questions), label="LoCoMo queries")
    for name, samples in times.items():
        out[f"{name}_p50_ms"] = pct(samples, 50) * 1e3
        out[f"{name}_p99_ms"] = pct(samples, 99) * 1e3
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return out


def _langgraph_store(items: list[tuple[str, str, str, np.ndarray]]) -> tuple[Any, float] | None:
    """LangGraph's InMemoryStore with an index fed the same vectors (if installed)."""
    try:
        from langchain_core.embeddings import Embeddings
        from langgraph.store.memory import InMemoryStore
    except ImportError:
        return None
    lookup = {text: vec.tolist() for _, _, text, vec in items}

    class Supplied(Embeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [lookup.get(t) or [0.0] * DIM for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return _QUERY_VECTORS.get(text) or [0.0] * DIM

    store = InMemoryStore(index={"dims": DIM, "embed": Supplied(), "fields": ["text"]})
    start = time.perf_counter()
    for ns, key, text, _ in items:
        store.put(("locomo", ns.split("/")[1]), key, {"text": text})
    return store, len(items) / (time.perf_counter() - start)


_QUERY_VECTORS: dict[str, list[float]] = {}


def put_batch(batches: int = 20, size: int = 1000) -> Result:
    """put_many of 1,000 items with supplied vectors vs bare executemany of the same rows."""
    step("batched put (1,000 per transaction) vs bare SQLite executemany")
    convs = load_conversations()
    texts = [turn_text(t) for c in convs for t in c.turns]
    vectors = clustered_vectors(batches * size, DIM, seed=3)
    rows = [
        (
            "bench/batch",
            f"k{i}",
            json.dumps(texts[i % len(texts)]),
            texts[i % len(texts)],
            "{}",
            vectors[i].tobytes(),
        )
        for i in range(batches * size)
    ]
    path = fresh_dir("batch")
    mem = Memory.open(path, embedder=None, reaper_interval=None)
    raw = sqlite3.connect(f"{path}/bare.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode = WAL")
    raw.execute("PRAGMA synchronous = FULL")
    raw.execute(
        "CREATE TABLE items (namespace TEXT, key TEXT, value TEXT, text TEXT, "
        "metadata TEXT, vector BLOB, PRIMARY KEY (namespace, key))"
    )
    raw.execute("CREATE VIRTUAL TABLE fts USING fts5(text)")

    def bare(b: int) -> None:
        chunk = rows[b * size : (b + 1) * size]
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?)", chunk)
        raw.execute("COMMIT")

    def bare_fts(b: int) -> None:
        chunk = rows[b * size : (b + 1) * size]
        raw.execute("BEGIN IMMEDIATE")
        raw.executemany("INSERT OR REPLACE INTO items VALUES (?,?,?,?,?,?)", chunk)
        raw.executemany("INSERT INTO fts (text) VALUES (?)", [(r[3],) for r in chunk])
        raw.execute("COMMIT")

    from hivemem.memory.log.sqlite import SQLiteLog

    schema = SQLiteLog(f"{path}/schema.db")  # hivemem's own tables, written by hand
    same = schema._w

    def bare_schema(b: int) -> None:
        chunk = rows[b * size : (b + 1) * size]
        now = time.time()
        base = b * size + 1
        same.execute("BEGIN IMMEDIATE")
        same.executemany(
            "INSERT INTO changes VALUES (?,?,'put',?,?,1,NULL,?,?,?,?,'bench',?,?,NULL,"
            "NULL,NULL,NULL,NULL,NULL,NULL)",
            [(base + i, b + 1, *r, now, now) for i, r in enumerate(chunk)],
        )
        same.executemany(
            "INSERT INTO items VALUES (?,?,?,1,?,1,NULL,NULL,NULL,NULL)",
            [(r[0], r[1], base + i, b + 1) for i, r in enumerate(chunk)],
        )
        same.execute("INSERT INTO revisions VALUES (?, 'bench', ?, ?)", (b + 1, now, size))
        same.execute("COMMIT")

    def hive(b: int) -> None:
        lo = b * size
        mem.put_many(
            [
                {
                    "namespace": "bench/batch",
                    "key": f"k{i}",
                    "value": texts[i % len(texts)],
                    "vector": vectors[i],
                }
                for i in range(lo, lo + size)
            ]
        )

    plain = Memory.open(f"{path}/plain", embedder=None, reaper_interval=None)

    def hive_no_text(b: int) -> None:  # the same items with int values: no keyword work
        lo = b * size
        plain.put_many(
            [
                {"namespace": "bench/batch", "key": f"k{i}", "value": i, "vector": vectors[i]}
                for i in range(lo, lo + size)
            ]
        )

    times = interleaved(
        {
            "bare": bare,
            "bare_fts": bare_fts,
            "bare_schema": bare_schema,
            "hivemem": hive,
            "hivemem_no_text": hive_no_text,
        },
        batches,
        rounds=batches,
        label="batches",
    )
    out = {name: size / pct(samples, 50) for name, samples in times.items()}
    result: Result = {f"{k}_items_per_s": v for k, v in out.items()}
    result["ratio_vs_bare"] = out["hivemem"] / out["bare"]
    result["ratio_vs_bare_with_fts"] = out["hivemem"] / out["bare_fts"]
    result["ratio_vs_bare_schema"] = out["hivemem"] / out["bare_schema"]
    result["keyword_view_share"] = 1 - out["hivemem"] / out["hivemem_no_text"]
    result["load"] = round(os.getloadavg()[0], 2)
    schema.close()
    plain.close()
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return result


def ingest_with_model(batches: int = 8, size: int = 64) -> Result:
    """put_many that embeds with the model vs the model alone, same texts and batch size."""
    step("ingest with the model vs the model's own throughput (batch 64)")
    convs = load_conversations()
    texts = [turn_text(t) for c in convs for t in c.turns]
    embedder = default_embedder()
    embedder.embed(texts[:size])  # load and warm up
    path = fresh_dir("model")
    mem = Memory.open(path, embedder=embedder, reaper_interval=None)

    def model(b: int) -> None:
        embedder.embed(texts[b * size : (b + 1) * size])

    def hive(b: int) -> None:
        mem.put_many(
            [
                {"namespace": "bench/model", "key": f"k{b}-{j}", "value": t}
                for j, t in enumerate(texts[b * size : (b + 1) * size])
            ]
        )

    times = interleaved(
        {"model": model, "hivemem": hive}, batches, rounds=batches, label="batches of 64"
    )
    rates = {k: size / float(np.median(v)) for k, v in times.items()}
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return {
        "model_per_s": rates["model"],
        "hivemem_per_s": rates["hivemem"],
        "ratio": rates["hivemem"] / rates["model"],
    }


def put_latency(n: int = 400) -> Result:
    """Single-put latency at the default durability (full) and with the fast option."""
    step("single put latency: durability full vs normal")
    vectors = clustered_vectors(n, DIM, seed=4)
    out: Result = {}
    for durability in ("full", "normal"):
        path = fresh_dir(durability)
        mem = Memory.open(path, embedder=None, durability=durability, reaper_interval=None)
        samples = []
        progress = Progress(f"puts ({durability})", n)
        for i in range(n):
            t0 = time.perf_counter()
            mem.put(
                "bench/latency",
                f"k{i % 50}",
                {"n": i},
                text=f"note number {i}",
                vector=vectors[i].tolist(),
            )
            samples.append(time.perf_counter() - t0)
            progress.advance()
        out[durability] = {"p50_ms": pct(samples, 50) * 1e3, "p99_ms": pct(samples, 99) * 1e3}
        mem.close()
        shutil.rmtree(path, ignore_errors=True)
    return out
