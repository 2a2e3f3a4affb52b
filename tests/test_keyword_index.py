"""The BM25 index scores exactly as the formula says, whatever path a query takes
(common words through the cached normalisation, rare ones directly, dead slots, filters)."""

from __future__ import annotations

import math
import random

import pytest

from hivemem.memory.index.keyword import K1, B, KeywordIndex
from hivemem.memory.text import analyze, query_terms

WORDS = ["deploy", "friday", "pizza", "lisbon", "zebra", "coffee", "review", "plan"]


def _docs(n: int, seed: int) -> dict[int, str]:
    rng = random.Random(seed)
    # "common" is in every document, "unicorn" in 2% (a query of it alone takes the
    # direct path), the others in between, with repeats
    return {
        i: " ".join(
            ["common"] + rng.choices(WORDS, k=rng.randint(1, 8)) + ["unicorn"] * (i % 50 == 0)
        )
        for i in range(1, n + 1)
    }


def _reference(docs: dict[int, str], query: str, allowed: set[int] | None) -> dict[int, float]:
    analysed = {i: analyze(t) for i, t in docs.items()}
    n = len(analysed)
    avgdl = sum(a.length for a in analysed.values()) / n
    out: dict[int, float] = {}
    for term in query_terms(query):
        df = sum(1 for a in analysed.values() if term in a.terms)
        idf = math.log((n - df + 0.5) / (df + 0.5))
        idf = idf if idf > 0 else 1e-6
        for i, a in analysed.items():
            tf = a.terms.get(term, 0)
            if tf and (allowed is None or i in allowed):
                norm = K1 * (1 - B + B * a.length / avgdl)
                out[i] = out.get(i, 0.0) + idf * tf * (K1 + 1) / (tf + norm)
    return out


@pytest.mark.parametrize("removed", [0, 40])
@pytest.mark.parametrize(
    "query", ["common", "zebra", "unicorn", "common deploy friday", "lisbon pizza unicorn"]
)
@pytest.mark.parametrize("filtered", [False, True])
def test_scores_are_bm25_on_every_path(removed: int, query: str, filtered: bool) -> None:
    docs = _docs(300, seed=7)
    index = KeywordIndex()
    for i, text in docs.items():
        index.upsert(i, "ns", analyze(text))
    for i in range(1, removed + 1):  # dead slots, below the compaction threshold
        index.remove(i)
        del docs[i]
    allowed = {i for i in docs if i % 3 == 0} if filtered else None
    ids, scores = index.score_all(query_terms(query), ["ns"], allowed)
    got = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    want = _reference(docs, query, allowed)
    assert got.keys() == want.keys()
    for i, score in want.items():
        assert got[i] == pytest.approx(score, rel=1e-5)
    # the same query twice (the cached normalisation) and after a write (a new one)
    again = dict(zip(*map(list, index.score_all(query_terms(query), ["ns"], allowed)), strict=True))
    assert again == got
    index.upsert(10_000, "ns", analyze("common zebra zebra"))
    docs[10_000] = "common zebra zebra"
    if allowed is not None:
        allowed.add(10_000)
    ids, scores = index.score_all(query_terms(query), ["ns"], allowed)
    after = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    want = _reference(docs, query, allowed)
    assert after.keys() == want.keys()
    assert all(after[i] == pytest.approx(s, rel=1e-5) for i, s in want.items())
