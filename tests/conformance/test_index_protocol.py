"""The VectorIndex protocol, written once and run against every backend.

Backends: FAISS exact (every namespace below the HNSW threshold), FAISS with HNSW graphs
(a threshold low enough that the small namespaces here get one), Qdrant through
qdrant-client's local mode (the server path's client API), and Qdrant's own engine in
process (qdrant-edge). Expected results are computed with numpy, never by the index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from hivemem.memory.index.base import VectorIndex

DIM = 16


@dataclass
class Backend:
    name: str
    open: Callable[[], VectorIndex]  # opens (or reopens) the index on the same storage
    persistent: bool
    approximate: bool


def _faiss(tmp_path: Any, threshold: int) -> Callable[[], VectorIndex]:
    from hivemem.memory.index.faiss import FaissIndex, HnswParams

    params = HnswParams(threshold=threshold, absorb_chunk=32, exact_filter=8)
    return lambda: FaissIndex(str(tmp_path / "vectors.faiss"), hnsw=params)


def _qdrant_local(tmp_path: Any) -> Callable[[], VectorIndex]:
    from hivemem.memory.index.qdrant import QdrantIndex

    return lambda: QdrantIndex.local(str(tmp_path / "qdrant-local"), collection="t")


def _qdrant_edge(tmp_path: Any) -> Callable[[], VectorIndex]:
    pytest.importorskip("qdrant_edge", reason="qdrant-edge-py is not installed")
    from hivemem.memory.index.qdrant_edge import QdrantEdgeIndex

    return lambda: QdrantEdgeIndex(str(tmp_path / "edge"), optimize_every=64)


BACKENDS = ["faiss", "faiss-hnsw", "qdrant-local", "qdrant-edge"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Any) -> Backend:
    name = request.param
    if name == "faiss":
        return Backend(name, _faiss(tmp_path, 1_000_000), True, False)
    if name == "faiss-hnsw":
        return Backend(name, _faiss(tmp_path, 40), True, True)
    if name == "qdrant-local":
        return Backend(name, _qdrant_local(tmp_path), True, False)
    return Backend(name, _qdrant_edge(tmp_path), True, True)


@pytest.fixture
def index(backend: Backend) -> Iterator[VectorIndex]:
    idx = backend.open()
    yield idx
    idx.close()


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def settle(index: VectorIndex) -> None:
    """Let background graph work finish (a no-op for backends without any)."""
    fn = getattr(index, "settle", None)
    if fn is not None:
        fn()


def fill(index: VectorIndex, vectors: np.ndarray, ns: str = "team", first: int = 1) -> list[int]:
    ids = list(range(first, first + len(vectors)))
    index.apply(first + len(vectors), [(i, ns, v) for i, v in zip(ids, vectors, strict=True)], ())
    return ids


def exact_top(vectors: dict[int, np.ndarray], q: np.ndarray, k: int) -> list[int]:
    ids = list(vectors)
    scores = np.vstack([vectors[i] for i in ids]) @ q
    return [ids[j] for j in np.argsort(-scores)[:k]]


def test_search_returns_the_nearest_vectors_best_first(index: VectorIndex) -> None:
    rng = np.random.default_rng(1)
    vecs = unit(rng, 120)
    ids = fill(index, vecs)
    settle(index)
    q = vecs[7]
    hits = index.search(q, ["team"], 5)
    assert hits[0][0] == ids[7]
    assert hits[0][1] == pytest.approx(1.0, abs=1e-4)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert len(hits) == 5


def test_search_is_scoped_to_namespace_prefixes(index: VectorIndex) -> None:
    rng = np.random.default_rng(2)
    vecs = unit(rng, 3)
    index.apply(
        3,
        [(1, "team", vecs[0]), (2, "team/sub", vecs[0]), (3, "teams", vecs[0])],
        (),
    )
    assert {i for i, _ in index.search(vecs[0], ["team"], 10)} == {1, 2}
    assert {i for i, _ in index.search(vecs[0], ["team/sub"], 10)} == {2}
    assert {i for i, _ in index.search(vecs[0], [""], 10)} == {1, 2, 3}
    assert index.search(vecs[0], ["other"], 10) == []


def test_removed_and_overwritten_vectors_are_never_returned(index: VectorIndex) -> None:
    rng = np.random.default_rng(3)
    vecs = unit(rng, 100)
    ids = fill(index, vecs)
    settle(index)
    gone = ids[:30]
    replaced = {ids[40]: 500}  # an overwrite: the old change id out, the new one in
    index.apply(200, [(500, "team", vecs[40])], [*gone, *replaced])
    for q in vecs[:45]:
        found = {i for i, _ in index.search(q, ["team"], 10)}
        assert not found & {*gone, ids[40]}
    assert index.search(vecs[40], ["team"], 1)[0][0] == 500
    settle(index)
    assert index.search(vecs[40], ["team"], 1)[0][0] == 500
    assert not {i for i, _ in index.search(vecs[0], ["team"], 10)} & set(gone)


def test_many_deletes_leave_exact_results_among_the_rest(index: VectorIndex) -> None:
    rng = np.random.default_rng(4)
    vecs = unit(rng, 150)
    ids = fill(index, vecs)
    settle(index)
    index.apply(300, [], ids[:100])  # two thirds tombstoned: the graph is rebuilt
    settle(index)
    live = dict(zip(ids[100:], vecs[100:], strict=True))
    for q in unit(rng, 10):
        hits = index.search(q, ["team"], 5)
        assert [i for i, _ in hits] == exact_top(live, q, 5)
    assert index.ids() == set(ids[100:])
    assert len(index) == 50


def test_a_selective_filter_still_returns_k_hits_from_the_allowed_set(
    index: VectorIndex,
) -> None:
    rng = np.random.default_rng(5)
    vecs = unit(rng, 400)
    ids = fill(index, vecs)
    settle(index)
    allowed = set(ids[::40])  # 10 of 400
    wide = set(ids[::2])
    for q in unit(rng, 5):
        hits = index.search(q, ["team"], 10, allowed)
        assert {i for i, _ in hits} == allowed
        wide_hits = [i for i, _ in index.search(q, ["team"], 10, wide)]
        assert len(wide_hits) == 10 and set(wide_hits) <= wide
    assert index.search(vecs[0], ["team"], 10, set()) == []


def test_approximate_search_keeps_recall_against_exact(backend: Backend) -> None:
    if not backend.approximate:
        pytest.skip(f"{backend.name} is exact")
    index = backend.open()
    try:
        rng = np.random.default_rng(6)
        centres = unit(rng, 8)
        pick = rng.integers(0, 8, 600)
        vecs = centres[pick] + 0.4 * unit(rng, 600)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        ids = fill(index, vecs.astype(np.float32))
        settle(index)
        truth = dict(zip(ids, vecs, strict=True))
        overlap = []
        for q in vecs[:40]:
            got = {i for i, _ in index.search(q, ["team"], 10)}
            overlap.append(len(got & set(exact_top(truth, q, 10))) / 10)
        assert float(np.mean(overlap)) >= 0.9
    finally:
        index.close()


def test_applying_a_revision_twice_never_duplicates(index: VectorIndex) -> None:
    rng = np.random.default_rng(7)
    vecs = unit(rng, 20)
    fill(index, vecs)
    fill(index, vecs)  # the same changes again, as after a crash before the save
    settle(index)
    assert len(index) == 20
    hits = index.search(vecs[3], ["team"], 20)
    assert len({i for i, _ in hits}) == len(hits) == 20
    assert index.applied_revision == 21


def test_applied_revision_only_moves_forward(index: VectorIndex) -> None:
    rng = np.random.default_rng(8)
    v = unit(rng, 2)
    index.apply(5, [(1, "a", v[0])], ())
    index.apply(3, [(2, "a", v[1])], ())
    assert index.applied_revision == 5


def test_score_is_the_exact_similarity_of_held_ids(index: VectorIndex) -> None:
    rng = np.random.default_rng(9)
    vecs = unit(rng, 60)
    ids = fill(index, vecs)
    settle(index)
    q = unit(rng, 1)[0]
    scores = index.score(q, [ids[0], ids[59], 9999])
    assert set(scores) == {ids[0], ids[59]}
    assert scores[ids[0]] == pytest.approx(float(vecs[0] @ q), abs=1e-4)
    assert scores[ids[59]] == pytest.approx(float(vecs[59] @ q), abs=1e-4)


def test_a_query_of_another_dimension_finds_nothing(index: VectorIndex) -> None:
    rng = np.random.default_rng(10)
    fill(index, unit(rng, 5))
    assert index.search(np.ones(DIM + 1, dtype=np.float32), ["team"], 3) == []


def test_reset_drops_everything(index: VectorIndex) -> None:
    rng = np.random.default_rng(11)
    fill(index, unit(rng, 50))
    index.reset()
    assert len(index) == 0 and index.ids() == set() and index.applied_revision == 0
    assert index.search(unit(rng, 1)[0], [""], 5) == []
    fill(index, unit(rng, 3), first=100)
    assert index.ids() == {100, 101, 102}


def test_a_saved_index_reopens_with_the_same_contents(backend: Backend) -> None:
    rng = np.random.default_rng(12)
    vecs = unit(rng, 90)
    index = backend.open()
    ids = fill(index, vecs)
    settle(index)
    index.apply(95, [(900, "team/b", vecs[0])], ids[:10])
    before = [index.search(q, ["team"], 5) for q in vecs[:20]]
    index.save()
    index.close()
    again = backend.open()
    try:
        assert again.load()
        assert again.applied_revision == 95
        assert again.ids() == {*ids[10:], 900}
        after = [again.search(q, ["team"], 5) for q in vecs[:20]]
        assert [[i for i, _ in h] for h in after] == [[i for i, _ in h] for h in before]
    finally:
        again.close()
