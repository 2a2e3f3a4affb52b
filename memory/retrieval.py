"""Ranking for ``Memory.search``: over the live views, or over the state at a revision.

A current search ranks with the views (the vector index and the keyword index), then
the engine re-checks every hit against the log. A search ``at_revision=R`` reads the
versions visible at R from the log and ranks them exactly: cosine over every vector in
scope (never the approximate index) and BM25 over a keyword index built for the call
from the texts at R, with R's document statistics for the namespaces searched and R's
thread context. Both paths fuse the two sides with the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hivemem.memory.index.keyword import KeywordIndex, top_k
from hivemem.memory.log.base import Row
from hivemem.memory.search import FUSION_DEPTH, Cond, fuse
from hivemem.memory.text import query_terms
from hivemem.memory.threads import window_docs

if TYPE_CHECKING:
    from hivemem.memory.views import Core

__all__ = ["rank_current", "rank_at"]

Ranked = list[tuple[int, float]]


def _depth(mode: str, k: int) -> int:
    return k if mode == "vector" else max(k, FUSION_DEPTH)


def rank_current(
    core: Core,
    query: str | None,
    qvec: np.ndarray | None,
    scopes: list[str],
    conds: list[Cond],
    k: int,
    mode: str,
    thread: str | None,
    now: float,
) -> Ranked:
    """Change ids ranked over the live views (the caller re-checks them against the log)."""
    core.sync()
    depth = _depth(mode, k)
    allowed = None
    if conds or thread is not None:
        allowed = set(core.filtered_ids(scopes, conds, now, thread))
    vec_hits: Ranked = []
    if qvec is not None:
        vec_hits = core.index.search(qvec, scopes, depth + 8, allowed)
    kw_hits: Ranked = []
    if mode != "vector" and query:
        view = core.keywords
        with view.lock:  # one consistent state of every thread's context
            view.expire(now)
            kw_hits = view.index.search(query_terms(query), scopes, depth, allowed)
    if mode == "vector":
        return vec_hits
    if mode == "keyword":
        return kw_hits
    cosines = dict(vec_hits[:depth])
    missing = [i for i, _ in kw_hits if i not in cosines]
    if qvec is not None and missing:
        cosines.update(core.index.score(qvec, missing))
    return fuse(cosines, kw_hits, depth)


def rank_at(
    core: Core,
    revision: int,
    query: str | None,
    qvec: np.ndarray | None,
    scopes: list[str],
    conds: list[Cond],
    k: int,
    mode: str,
    thread: str | None,
) -> list[tuple[Row, float]]:
    """The versions visible at ``revision``, ranked exactly, best first."""
    log = core.log
    rows = log.state_at(revision, scopes, [], None, vectors=qvec is not None)
    if conds or thread is not None:
        allowed = {r.id for r in log.state_at(revision, scopes, conds, thread)}
    else:
        allowed = {r.id for r in rows}
    by_id = {r.id: r for r in rows}
    depth = _depth(mode, k)
    vec_hits: Ranked = []
    cos: dict[int, float] = {}
    if qvec is not None:
        cos = _cosines(rows, allowed, qvec)
        vec_hits = top_k(
            np.fromiter(cos.keys(), dtype=np.int64, count=len(cos)),
            np.fromiter(cos.values(), dtype=np.float64, count=len(cos)),
            depth,
        )
    kw_hits: Ranked = []
    if mode != "vector" and query:
        index = _index_at(rows, core.keywords.window)
        kw_hits = index.search(query_terms(query), scopes, depth, allowed)
    if mode == "vector":
        ranked = vec_hits
    elif mode == "keyword":
        ranked = kw_hits
    else:
        cosines = dict(vec_hits)
        cosines.update((i, cos[i]) for i, _ in kw_hits if i in cos)
        ranked = fuse(cosines, kw_hits, depth)
    return [(by_id[i], s) for i, s in ranked[:k]]


def _cosines(rows: Sequence[Row], allowed: set[int], qvec: np.ndarray) -> dict[int, float]:
    """Exact cosine of the query to every allowed row that has a vector."""
    chosen = [r for r in rows if r.vector is not None and r.id in allowed]
    if not chosen:
        return {}
    matrix = np.frombuffer(b"".join(r.vector for r in chosen if r.vector), dtype=np.float32)
    matrix = matrix.reshape(len(chosen), -1)
    if matrix.shape[1] != qvec.shape[0]:
        return {}
    scores = matrix @ np.asarray(qvec, dtype=np.float32)
    return {r.id: float(s) for r, s in zip(chosen, scores.tolist(), strict=True)}


def _index_at(rows: Sequence[Row], window: int) -> KeywordIndex:
    """A keyword index of exactly these rows, with their thread context among them."""
    index = KeywordIndex()
    threads: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        if not r.text:
            continue
        if r.thread is None:
            index.upsert(r.id, r.namespace, window_docs([(r.id, r.text)], 0)[0])
        else:
            threads.setdefault((r.namespace, r.thread), []).append(r)
    for (ns, _), members in threads.items():
        members.sort(key=lambda r: (r.thread_pos if r.thread_pos is not None else r.id, r.id))
        docs = window_docs([(r.id, r.text or "") for r in members], window)
        for r, doc in zip(members, docs, strict=True):
            index.upsert(r.id, ns, doc)
    return index
