"""How hybrid search fuses its two sides, and how wide the thread window is: by measurement.

On the LoCoMo development split (MiniLM vectors, the engine's own keyword index and
analysis), every question is scored against every turn of its conversation once per
side; then each fusion rule and window is evaluated on the same scores. Rules with a
constant are shown leave-one-conversation-out: the constant is chosen on four
conversations and scored on the fifth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from bench.common import step
from hivemem.memory.index.keyword import KeywordIndex
from hivemem.memory.text import analyze, query_terms

Scores = tuple[np.ndarray, np.ndarray]  # (bm25 per turn, 0 where no match; cosine per turn)
DEPTH = 50


def keyword_scores(texts: list[list[str]], queries: list[list[str]], window: int) -> list[Any]:
    """BM25 of every turn for every question, per conversation, with a thread window."""
    out = []
    for conv_texts, conv_queries in zip(texts, queries, strict=True):
        index = KeywordIndex()
        own = [analyze(t) for t in conv_texts]
        for i, doc in enumerate(own):
            for j in range(max(0, i - window), i):
                doc = doc + own[j]
            index.upsert(i, "c", doc)
        rows = np.zeros((len(conv_queries), len(conv_texts)))
        for qi, q in enumerate(conv_queries):
            ids, scores = index.score_all(query_terms(q), ["c"])
            rows[qi, ids] = scores
        out.append(rows)
    return out


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min() if len(x) else 0.0
    return (x - x.min()) / span if span > 0 else np.ones_like(x)


def _z(x: np.ndarray) -> np.ndarray:
    sd = x.std() if len(x) else 0.0
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _union(kw: np.ndarray, cos: np.ndarray) -> np.ndarray:
    top_kw = np.argsort(-kw, kind="stable")[:DEPTH]
    top_kw = top_kw[kw[top_kw] > 0]
    top_cos = np.argsort(-cos, kind="stable")[:DEPTH]
    return np.union1d(top_kw, top_cos)


def fuse_minmax_union(kw: np.ndarray, cos: np.ndarray, w: float = 0.5) -> np.ndarray:
    """Today's rule: min-max of the top-50 union, a turn the keyword side missed gets 0."""
    cand = _union(kw, cos)
    best_kw = np.argsort(-kw, kind="stable")[:DEPTH]
    top_kw = set(best_kw[kw[best_kw] > 0].tolist())
    kws = np.array([kw[i] if i in top_kw else np.nan for i in cand])
    kn = np.zeros(len(cand))
    present = ~np.isnan(kws)
    if present.any():
        kn[present] = _minmax(kws[present])
    score = np.full(len(cos), -np.inf)
    score[cand] = (1 - w) * _minmax(cos[cand]) + w * kn
    return score


def fuse_z_union(kw: np.ndarray, cos: np.ndarray, w: float = 0.5) -> np.ndarray:
    """z-scores over the top-50 union (keyword 0 where it did not match)."""
    cand = _union(kw, cos)
    score = np.full(len(cos), -np.inf)
    score[cand] = (1 - w) * _z(cos[cand]) + w * _z(kw[cand])
    return score


def fuse_z_namespace(kw: np.ndarray, cos: np.ndarray, w: float = 0.5) -> np.ndarray:
    """z-score of BM25 over every match and of cosine over every item of the namespace."""
    matched = kw > 0
    kz = np.zeros(len(kw))
    if matched.any():
        m = kw[matched]
        sd = m.std()
        kz[matched] = (m - m.mean()) / sd if sd > 0 else 0.0
        kz[~matched] = (0 - m.mean()) / sd if sd > 0 else 0.0
    return (1 - w) * _z(cos) + w * kz


def fuse_rrf(kw: np.ndarray, cos: np.ndarray, c: float = 60.0) -> np.ndarray:
    """Reciprocal-rank fusion with constant ``c``."""
    score = np.zeros(len(cos))
    for side in (kw, cos):
        order = np.argsort(-side, kind="stable")
        ranks = np.empty(len(side))
        ranks[order] = np.arange(1, len(side) + 1)
        contrib = 1.0 / (c + ranks)
        if side is kw:
            contrib[kw <= 0] = 0.0
        score += contrib
    return score


def fuse_z_namespace_all(kw: np.ndarray, cos: np.ndarray, w: float = 0.5) -> np.ndarray:
    """z-score of BM25 and cosine over every item of the namespace (no match = 0)."""
    return (1 - w) * _z(cos) + w * _z(kw)


RULES: dict[str, Callable[..., np.ndarray]] = {
    "minmax_top50_union": fuse_minmax_union,
    "zscore_top50_union": fuse_z_union,
    "zscore_namespace": fuse_z_namespace,
    "zscore_namespace_all": fuse_z_namespace_all,
    "rrf60": fuse_rrf,
}


def recall_of(ranked: list[list[np.ndarray]], evidence: list[list[list[int]]]) -> dict[str, float]:
    """Mean recall@5/@10 given per-question score vectors."""
    found = {5: 0.0, 10: 0.0}
    n = 0
    for conv_scores, conv_ev in zip(ranked, evidence, strict=True):
        for scores, ev in zip(conv_scores, conv_ev, strict=True):
            order = np.lexsort((np.arange(len(scores)), -scores))
            for k in found:
                top = [i for i in order[:k] if np.isfinite(scores[i]) and scores[i] > -np.inf]
                found[k] += len(set(top) & set(ev)) / len(ev)
            n += 1
    return {f"recall@{k}": v / n for k, v in found.items()}


def study(
    convs: list[Any], tvec: np.ndarray, qvec: np.ndarray, turn_text: Callable[..., str]
) -> dict[str, Any]:
    """Every rule and window on the same scores; leave-one-conversation-out choices."""
    step("fusion and window study on the LoCoMo development split")
    texts = [[turn_text(t) for t in c.turns] for c in convs]
    queries = [[q.question for q in c.questions] for c in convs]
    keys = [{t.dia_id: i for i, t in enumerate(c.turns)} for c in convs]
    evidence = [
        [[keys[ci][e] for e in q.evidence] for q in c.questions] for ci, c in enumerate(convs)
    ]
    cos: list[np.ndarray] = []
    to, qo = 0, 0
    for c in convs:
        tv = tvec[to : to + len(c.turns)]
        qv = qvec[qo : qo + len(c.questions)]
        cos.append(qv @ tv.T)
        to, qo = to + len(c.turns), qo + len(c.questions)
    out: dict[str, Any] = {"vector": recall_of([list(x) for x in cos], evidence), "windows": {}}
    per_window: dict[int, list[np.ndarray]] = {}
    for window in (0, 1, 2, 3):
        kw = keyword_scores(texts, queries, window)
        per_window[window] = kw
        res: dict[str, Any] = {
            "keyword": recall_of([[np.where(r > 0, r, -np.inf) for r in x] for x in kw], evidence)
        }
        for name, rule in RULES.items():
            fused = [
                [rule(k, c) for k, c in zip(kx, cx, strict=True)]
                for kx, cx in zip(kw, cos, strict=True)
            ]
            res[name] = recall_of(fused, evidence)
        out["windows"][window] = res
    out["loco_window"] = _loco_window(per_window, cos, evidence)
    return out


def _loco_window(
    per_window: dict[int, list[np.ndarray]], cos: list[np.ndarray], evidence: list[Any]
) -> dict[str, Any]:
    """Leave one conversation out: the window picked on the other four, scored on it."""
    n = len(cos)
    rule = fuse_z_namespace
    table = {
        w: [
            recall_of([[rule(k, c) for k, c in zip(kw[i], cos[i], strict=True)]], [evidence[i]])[
                "recall@10"
            ]
            for i in range(n)
        ]
        for w, kw in per_window.items()
    }
    picks, held = [], []
    for i in range(n):
        best = max(table, key=lambda w: np.mean([table[w][j] for j in range(n) if j != i]))
        picks.append(best)
        held.append(table[best][i])
    return {"picked": picks, "held_out_recall@10": float(np.mean(held)), "per_conversation": table}
