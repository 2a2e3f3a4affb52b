"""Retrieval figures: LoCoMo quality with and without threads, the query encoders, search
at a revision, recall under a budget, and keyword/hybrid search at 100,000 items.

Every latency is measured interleaved with its baseline in the same process (see
``bench/common.interleaved``); the machine's load average is recorded beside it, since
the development machine is shared.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
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
from hivemem.memory.embed import MiniLMEmbedder, default_embedder
from hivemem.memory.embed_onnx import OnnxMiniLMEmbedder
from hivemem.memory.index.faiss import FaissIndex, HnswParams
from hivemem.memory.text import analyze

Result = dict[str, Any]
DIM = 384
MODES = ("vector", "keyword", "hybrid")


def load() -> float:
    """The one-minute load average (the machine is shared: read figures beside it)."""
    return round(os.getloadavg()[0], 2)


def _ms(samples: list[float], p: float = 50) -> float:
    return pct(samples, p) * 1e3


# -- the LoCoMo development split -------------------------------------------------------


def _locomo() -> tuple[list[Any], np.ndarray, np.ndarray, list[tuple[int, Any]]]:
    convs = load_conversations()
    questions = [(ci, q) for ci, c in enumerate(convs) for q in c.questions]
    embedder = default_embedder()
    texts = [turn_text(t) for c in convs for t in c.turns]
    tvec = cached_embeddings("locomo-turns", texts, embedder.embed)
    qvec = cached_embeddings("locomo-questions", [q.question for _, q in questions], embedder.embed)
    return convs, tvec, qvec, questions


def _locomo_store(
    convs: list[Any], tvec: np.ndarray, threads: bool, embedder: Any = None, name: str = "lo"
) -> tuple[Memory, str]:
    """One namespace per conversation, one item per turn with its (torch) vector; with
    ``threads`` each session of a conversation is one thread."""
    path = fresh_dir(name)
    mem = Memory.open(path, embedder=embedder, durability="off", reaper_interval=None)
    offset = 0
    for c in convs:
        mem.put_many(
            [
                {
                    "namespace": c.namespace,
                    "key": t.dia_id,
                    "value": turn_text(t),
                    "vector": tvec[offset + j].tolist(),
                    "thread": f"session-{t.session}" if threads else None,
                }
                for j, t in enumerate(c.turns)
            ]
        )
        offset += len(c.turns)
    return mem, path


def _quality(
    mem: Memory, convs: list[Any], questions: list[tuple[int, Any]], qvec: np.ndarray, mode: str
) -> dict[str, float]:
    found = {5: 0.0, 10: 0.0}
    for i, (ci, q) in enumerate(questions):
        hits = mem.search(
            q.question,
            vector=qvec[i] if mode != "keyword" else None,
            mode=mode,
            k=10,
            namespaces=[convs[ci].namespace],
        )
        keys = [h.item.key for h in hits]
        for k in found:
            found[k] += len(set(keys[:k]) & set(q.evidence)) / len(q.evidence)
    return {f"recall@{k}": v / len(questions) for k, v in found.items()}


def locomo_quality() -> Result:
    """recall@5/@10 per mode, each session a thread and without threads; ONNX queries."""
    step("LoCoMo development split: recall by mode, with and without threads")
    convs, tvec, qvec, questions = _locomo()
    onnx = OnnxMiniLMEmbedder()
    texts = [q.question for _, q in questions]
    qvec_onnx = np.vstack([onnx.embed(texts[i : i + 64]) for i in range(0, len(texts), 64)])
    out: Result = {"turns": int(len(tvec)), "queries": len(questions), "load": load()}
    for label, threads in (("threads", True), ("no_threads", False)):
        mem, path = _locomo_store(convs, tvec, threads, name=label)
        progress = Progress(f"recall, {label}", len(MODES) + 2)
        res: Result = {}
        for mode in MODES:
            res[mode] = _quality(mem, convs, questions, qvec, mode)
            progress.advance()
        if threads:  # the same store, query vectors from the int8 ONNX encoder
            for mode in ("vector", "hybrid"):
                res[f"{mode}_onnx"] = _quality(mem, convs, questions, qvec_onnx, mode)
                progress.advance()
        else:
            progress.advance(2)
        out[label] = res
        mem.close()
        shutil.rmtree(path, ignore_errors=True)
    out["vector_window"] = _vector_window(convs, questions, qvec)
    return out


def _vector_window(
    convs: list[Any], questions: list[tuple[int, Any]], qvec: np.ndarray, window: int = 2
) -> Result:
    """Issue 10 asks whether the thread window should apply to the vector side too:
    each turn embedded together with the ``window`` turns before it in its session (the
    keyword document's text), stored as the turn's vector, in the threaded store."""
    step("LoCoMo: the thread window on the vector side")
    texts: list[str] = []
    for c in convs:
        for j, t in enumerate(c.turns):
            before = [u for u in c.turns[max(0, j - window) : j] if u.session == t.session]
            texts.append("\n".join(turn_text(u) for u in [*before, t]))
    wvec = cached_embeddings(f"locomo-turns-window{window}", texts, default_embedder().embed)
    mem, path = _locomo_store(convs, wvec, True, name="vector-window")
    res = {mode: _quality(mem, convs, questions, qvec, mode) for mode in ("vector", "hybrid")}
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return {"window": window, **res}


def encoders(n: int = 300) -> Result:
    """Text-query embedding p50, torch vs int8 ONNX (one thread each), and a whole text
    hybrid search at LoCoMo scale through each."""
    step("query encoders: torch vs int8 ONNX, and text hybrid search at LoCoMo scale")
    convs, tvec, _, questions = _locomo()
    torch_enc = MiniLMEmbedder(small_batch=0)  # the reference path, always torch
    onnx_enc = OnnxMiniLMEmbedder()
    texts = [q.question for _, q in questions]
    torch_enc.embed(["warm up"])
    onnx_enc.embed(["warm up"])
    out: Result = {"load_before": load()}
    t = interleaved(
        {
            "torch": lambda i: torch_enc.embed([texts[i % len(texts)]]),
            "onnx": lambda i: onnx_enc.embed([texts[i % len(texts)]]),
        },
        n,
        label="single-query embeddings",
    )
    out.update({f"{k}_embed_p50_ms": _ms(v) for k, v in t.items()})
    out.update({f"{k}_embed_p99_ms": _ms(v, 99) for k, v in t.items()})
    # The default embedder sends single queries to ONNX; a torch-only store beside it.
    fast, path_a = _locomo_store(convs, tvec, True, embedder=default_embedder(), name="enc-a")
    slow, path_b = _locomo_store(convs, tvec, True, embedder=torch_enc, name="enc-b")
    fast.search("warm up", namespaces=[convs[0].namespace])

    def search(mem: Memory) -> Any:
        return lambda i: mem.search(
            questions[i % len(questions)][1].question,
            namespaces=[convs[questions[i % len(questions)][0]].namespace],
            mode="hybrid",
            k=10,
        )

    t = interleaved(
        {"hybrid_onnx": search(fast), "hybrid_torch": search(slow)},
        len(questions),
        label="text hybrid searches",
    )
    out.update({f"{k}_p50_ms": _ms(v) for k, v in t.items()})
    out.update({f"{k}_p99_ms": _ms(v, 99) for k, v in t.items()})
    out["queries"] = len(questions)
    out["load_after"] = load()
    for mem, path in ((fast, path_a), (slow, path_b)):
        mem.close()
        shutil.rmtree(path, ignore_errors=True)
    return out


def budget_recall(budget: int = 1500) -> Result:
    """``recall`` with a token budget vs the hybrid search it starts from (same k)."""
    step(f"recall under a {budget}-token budget vs its hybrid search, LoCoMo with threads")
    convs, tvec, qvec, questions = _locomo()
    mem, path = _locomo_store(convs, tvec, True, name="budget")
    mem.recall("warm up", namespaces=[convs[0].namespace], vector=qvec[0])  # load the tokenizer
    used: list[int] = []
    truncated = [0]

    def recall(i: int) -> None:
        ci, q = questions[i]
        r = mem.recall(
            q.question, namespaces=[convs[ci].namespace], budget_tokens=budget, vector=qvec[i]
        )
        used.append(r.tokens)
        truncated[0] += r.truncated

    def search(i: int) -> None:
        ci, q = questions[i]
        mem.search(q.question, vector=qvec[i], namespaces=[convs[ci].namespace], k=20)

    t = interleaved({"search": search, "recall": recall}, len(questions), label="recalls")
    out: Result = {
        "budget_tokens": budget,
        "k": 20,
        "queries": len(questions),
        "search_p50_ms": _ms(t["search"]),
        "recall_p50_ms": _ms(t["recall"]),
        "recall_p99_ms": _ms(t["recall"], 99),
        "tokens_p50": float(np.median(used)),
        "truncated_share": truncated[0] / len(questions),
        "load": load(),
    }
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return out


# -- large stores ---------------------------------------------------------------------


def _big_store(
    n: int, texts: list[str], exact: bool, name: str
) -> tuple[Memory, str, np.ndarray, float]:
    """``n`` items in one namespace: LoCoMo turn texts in turn, threads of 20 turns,
    clustered vectors; returns (store, path, vectors, ingest items/s)."""
    vectors = clustered_vectors(n, DIM, seed=11)
    path = fresh_dir(name)
    index = (
        FaissIndex(f"{path}/vectors.faiss", hnsw=HnswParams(threshold=10**12)) if exact else None
    )
    mem = Memory.open(path, embedder=None, durability="normal", reaper_interval=None, index=index)
    progress = Progress(f"ingest {n:,}", n)
    start = time.perf_counter()
    for lo in range(0, n, 5000):
        hi = min(n, lo + 5000)
        mem.put_many(
            [
                {
                    "namespace": "bench/kw",
                    "key": f"i{i}",
                    "value": i,
                    "text": texts[i % len(texts)],
                    "vector": vectors[i],
                    "thread": f"s{i // 20}",
                }
                for i in range(lo, hi)
            ]
        )
        progress.advance(hi - lo)
    return mem, path, vectors, n / (time.perf_counter() - start)


def _common_terms(texts: list[str], top: int = 6) -> list[str]:
    """The words (not stop words) in the most turns, as typed (the analyser's input)."""
    df: Counter[str] = Counter()
    raw: dict[str, str] = {}
    for t in texts:
        for word in {w.strip(".,!?:;[]()'\"").lower() for w in t.split()}:
            terms = analyze(word).terms
            if len(terms) == 1:
                term = next(iter(terms))
                if term not in raw:
                    raw[term] = word
                df[term] += 1
    # the same turn counts once per term
    return [raw[t] for t, _ in df.most_common(top)]


def keyword_scale(n: int = 100_000, nq: int = 200) -> Result:
    """Keyword and hybrid p50 at ``n`` items with supplied query vectors, for LoCoMo
    questions and for the same questions with the corpus's most common words added;
    vector mode and bare FAISS flat in the same rounds; the keyword view's rebuild and
    the store's open time."""
    step(f"keyword and hybrid search at {n:,} items (threads of 20 turns)")
    convs = load_conversations()
    texts = [turn_text(t) for c in convs for t in c.turns]
    questions = [q.question for c in convs for q in c.questions]
    mem, path, vectors, rate = _big_store(n, texts, exact=False, name="kw")
    t0 = time.perf_counter()
    getattr(
        mem._core.index, "settle", lambda: True
    )()  # the HNSW graph of the embedded default, built in background
    settle = time.perf_counter() - t0
    common = _common_terms(texts)
    commons = [f"{q} {' '.join(common[i % 3 : i % 3 + 3])}" for i, q in enumerate(questions)]
    qv = clustered_vectors(nq, DIM, seed=12)
    bare = faiss.IndexFlatIP(DIM)
    bare.add(vectors)

    def run(mode: str, qs: list[str]) -> Any:
        return lambda i: mem.search(
            qs[i % len(qs)],
            vector=qv[i % nq] if mode != "keyword" else None,
            namespaces=["bench"],
            mode=mode,
            k=10,
        )

    out: Result = {
        "items": n,
        "ingest_per_s": rate,
        "graph_settle_s": settle,
        "common_words": common,
        "load_before": load(),
    }
    t = interleaved(
        {
            "bare_faiss_flat": lambda i: bare.search(qv[i % nq : i % nq + 1], 10),
            "vector": run("vector", questions),
            "keyword": run("keyword", questions),
            "hybrid": run("hybrid", questions),
            "keyword_common": run("keyword", commons),
            "hybrid_common": run("hybrid", commons),
        },
        nq,
        label=f"queries at {n:,}",
    )
    out.update({f"{k}_p50_ms": _ms(v) for k, v in t.items()})
    out.update({f"{k}_p99_ms": _ms(v, 99) for k, v in t.items()})
    out["load_after"] = load()
    core = mem._core
    t0 = time.perf_counter()
    core.rebuild_keywords()
    out["keyword_rebuild_s"] = time.perf_counter() - t0
    mem.close()
    t0 = time.perf_counter()
    mem = Memory.open(path, embedder=None, durability="normal", reaper_interval=None)
    out["open_s"] = time.perf_counter() - t0
    out["open_load"] = load()
    t0 = time.perf_counter()
    mem._core.keywords.load(f"{path}/keywords.bin")  # what the open did, again
    out["keyword_load_s"] = time.perf_counter() - t0
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return out


def at_revision(sizes: tuple[int, ...] = (10_000, 100_000)) -> Result:
    """Search at a revision vs the current search, exact index on both sides."""
    convs = load_conversations()
    texts = [turn_text(t) for c in convs for t in c.turns]
    questions = [q.question for c in convs for q in c.questions]
    return {"points": [_at_revision_point(n, texts, questions) for n in sizes]}


def _at_revision_point(n: int, texts: list[str], questions: list[str]) -> Result:
    step(f"search at a revision at {n:,} items vs current search")
    mem, path, _, _ = _big_store(n, texts, exact=True, name=f"rev{n}")
    at = mem.revision
    # After R: 1% of the items overwritten and 0.1% deleted, so R's state is not today's.
    mem.put_many(
        [
            {"namespace": "bench/kw", "key": f"i{j}", "value": -j, "text": "changed later"}
            for j in range(0, n, 100)
        ]
    )
    for j in range(50, n, 1000):
        mem.delete("bench/kw", f"i{j}")
    qv = clustered_vectors(100, DIM, seed=13)
    nq = 100 if n <= 10_000 else 20

    def run(mode: str, revision: int | None) -> Any:
        return lambda i: mem.search(
            questions[i % len(questions)],
            vector=qv[i % 100],
            namespaces=["bench"],
            mode=mode,
            k=10,
            at_revision=revision,
        )

    before = load()
    t = interleaved(
        {
            "vector": run("vector", None),
            "vector_at": run("vector", at),
            "hybrid": run("hybrid", None),
            "hybrid_at": run("hybrid", at),
        },
        nq,
        rounds=min(10, nq),
        label=f"at-revision queries at {n:,}",
    )
    point: Result = {"items": n, "queries": nq, "load_before": before, "load_after": load()}
    point.update({f"{k}_p50_ms": _ms(v) for k, v in t.items()})
    mem.close()
    shutil.rmtree(path, ignore_errors=True)
    return point


# -- RESULTS.md ------------------------------------------------------------------------


def _mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report_quality(r: Result) -> list[str]:
    lines = [
        f"## LoCoMo development split: retrieval quality (MiniLM, {r['turns']:,} turns, "
        f"{r['queries']:,} questions)",
        "",
        "Each conversation one namespace, each session of it one thread (the keyword "
        "document of a turn is its text and that of the two live turns before it); "
        "supplied torch vectors for the turns and the questions.",
        "",
        "| mode | recall@5, threads | recall@10, threads | recall@5, no threads "
        "| recall@10, no threads |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    th, no = r["threads"], r["no_threads"]
    for mode in MODES:
        lines.append(
            f"| {mode} | {th[mode]['recall@5']:.3f} | {th[mode]['recall@10']:.3f} | "
            f"{no[mode]['recall@5']:.3f} | {no[mode]['recall@10']:.3f} |"
        )
    for mode in ("vector", "hybrid"):
        got = th[f"{mode}_onnx"]
        lines.append(
            f"| {mode}, int8 ONNX query vectors | {got['recall@5']:.3f} | "
            f"{got['recall@10']:.3f} | | |"
        )
    gap = max(abs(th[f"{m}_onnx"]["recall@10"] - th[m]["recall@10"]) for m in ("vector", "hybrid"))
    return lines + [
        "",
        f"ONNX and torch query vectors rank the split the same (recall@10 within 0.005): "
        f"largest gap {gap:.3f}, {_mark(gap <= 0.005)}.",
        "",
        *_report_vector_window(r),
    ]


def _report_vector_window(r: Result) -> list[str]:
    vw = r.get("vector_window")
    if not vw:
        return []
    th = r["threads"]
    return [
        f"The thread window on the vector side: each turn embedded together with the "
        f"{vw['window']} turns before it in its session gives vector recall@10 "
        f"{vw['vector']['recall@10']:.3f} (turn alone {th['vector']['recall@10']:.3f}) and "
        f"hybrid {vw['hybrid']['recall@10']:.3f} (turn alone {th['hybrid']['recall@10']:.3f}); "
        + (
            "it helps hybrid search, but a turn's vector would then change whenever a "
            "neighbour does, so vectors stay per turn."
            if vw["hybrid"]["recall@10"] > th["hybrid"]["recall@10"] + 0.005
            else "it lifts vector mode alone but not hybrid search (the default), where the "
            "keyword side already carries the context, so vectors stay per turn (and never "
            "change when a neighbour does)."
            if vw["vector"]["recall@10"] > th["vector"]["recall@10"] + 0.005
            else "it does not help, so vectors stay per turn."
        ),
        "",
    ]


def report_encoders(r: Result) -> list[str]:
    return [
        "## Query encoders (one thread each)",
        "",
        f"Load average {r['load_before']} before, {r['load_after']} after (2 cores, shared).",
        "",
        "| measure | torch | int8 ONNX | goal |",
        "| --- | ---: | ---: | --- |",
        f"| text-query embedding p50 / p99 | {r['torch_embed_p50_ms']:.1f} / "
        f"{r['torch_embed_p99_ms']:.1f} ms | {r['onnx_embed_p50_ms']:.1f} / "
        f"{r['onnx_embed_p99_ms']:.1f} ms | ONNX p50 <= 5 ms: "
        f"{_mark(r['onnx_embed_p50_ms'] <= 5)} |",
        f"| text hybrid search at LoCoMo scale, p50 / p99 ({r['queries']:,} scoped questions,"
        f" threads) | {r['hybrid_torch_p50_ms']:.1f} / {r['hybrid_torch_p99_ms']:.1f} ms | "
        f"{r['hybrid_onnx_p50_ms']:.1f} / {r['hybrid_onnx_p99_ms']:.1f} ms | ONNX p50 <= 8 ms:"
        f" {_mark(r['hybrid_onnx_p50_ms'] <= 8)} |",
        "",
        "The default embedder sends single queries (batches under 8) to the int8 ONNX "
        "export and batches to torch.",
        "",
    ]


def report_budget(r: Result) -> list[str]:
    return [
        f"## Recall under a {r['budget_tokens']:,}-token budget (LoCoMo, threads)",
        "",
        f"`recall` of the top {r['k']} hybrid hits (supplied query vectors) p50 "
        f"{r['recall_p50_ms']:.2f} ms (p99 {r['recall_p99_ms']:.2f} ms) against the hybrid "
        f"search it starts from, {r['search_p50_ms']:.2f} ms, in the same rounds "
        f"({r['recall_p50_ms'] / r['search_p50_ms']:.2f}x); median context "
        f"{r['tokens_p50']:.0f} tokens, {r['truncated_share']:.0%} of recalls truncated. "
        f"Load average {r['load']}.",
        "",
    ]


def report_keyword(r: Result) -> list[str]:
    n = r["items"]
    ok_kw = max(r["keyword_p50_ms"], r["keyword_common_p50_ms"]) <= 5
    ok_hy = max(r["hybrid_p50_ms"], r["hybrid_common_p50_ms"]) <= 10
    return [
        f"## Keyword and hybrid search at {n:,} items (supplied query vectors)",
        "",
        f"One namespace of LoCoMo turn texts in turn, threads of 20 turns, clustered "
        f"vectors, the embedded default (HNSW past 10,000 vectors, graph settled after "
        f"{r['graph_settle_s']:.0f} s); ingest {r['ingest_per_s']:,.0f} items/s. "
        "Questions: the LoCoMo questions; common words: the same questions with three of "
        f"the corpus's most frequent words added ({', '.join(r['common_words'][:5])}). Load "
        f"average {r['load_before']} before, {r['load_after']} after.",
        "",
        "| query | keyword p50 / p99 | hybrid p50 / p99 |",
        "| --- | ---: | ---: |",
        f"| questions | {r['keyword_p50_ms']:.2f} / {r['keyword_p99_ms']:.2f} ms | "
        f"{r['hybrid_p50_ms']:.2f} / {r['hybrid_p99_ms']:.2f} ms |",
        f"| with common words | {r['keyword_common_p50_ms']:.2f} / "
        f"{r['keyword_common_p99_ms']:.2f} ms | {r['hybrid_common_p50_ms']:.2f} / "
        f"{r['hybrid_common_p99_ms']:.2f} ms |",
        "",
        f"In the same rounds: vector mode {r['vector_p50_ms']:.2f} ms, bare FAISS flat "
        f"{r['bare_faiss_flat_p50_ms']:.2f} ms (p50).",
        "",
        f"Goals at {n:,}: keyword p50 <= 5 ms: {_mark(ok_kw)}; hybrid p50 <= 10 ms: "
        f"{_mark(ok_hy)}.",
        "",
        f"Opening the {n:,}-item store: {r['open_s']:.1f} s (load average {r['open_load']}),"
        " the keyword view loaded from the file it was saved to on close"
        + (f" ({r['keyword_load_s']:.1f} s of it)" if "keyword_load_s" in r else "")
        + f"; rebuilding the view from the log instead takes {r['keyword_rebuild_s']:.1f} s "
        "(measured alone on the open store), which is what an open after a crash costs.",
        "",
    ]


def report_at_revision(r: Result) -> list[str]:
    lines = [
        "## Search at a revision vs current search",
        "",
        "Items as in the keyword section (threads of 20 turns); after revision R, 1% of "
        "the items were overwritten and 0.1% deleted. Both sides exact (the current search "
        "with the exact index; at a revision the engine reads R's state from the log, "
        "ranks cosine over every vector in scope and builds BM25 over R's texts, with R's "
        "document statistics and thread context, for the call).",
        "",
        "| items | vector p50: current / at R | hybrid p50: current / at R | queries | "
        "load average |",
        "| ---: | ---: | ---: | ---: | --- |",
    ]
    for p in r["points"]:
        lines.append(
            f"| {p['items']:,} | {p['vector_p50_ms']:.2f} / {p['vector_at_p50_ms']:.1f} ms | "
            f"{p['hybrid_p50_ms']:.2f} / {p['hybrid_at_p50_ms']:.1f} ms | {p['queries']} | "
            f"{p['load_before']} -> {p['load_after']} |"
        )
    return lines + [""]
