"""The engine over FAISS with HNSW graphs (a low threshold, so small namespaces get one):
search never returns what the log says is gone, filters still find k, and the graph is a
view of the log like the exact index (persisted, verified, caught up on open)."""

from __future__ import annotations

import numpy as np
import pytest

from hivemem.memory import Memory
from hivemem.memory.index import open_index
from hivemem.memory.index.faiss import FaissIndex, HnswParams

DIM = 32
PARAMS = HnswParams(threshold=50, absorb_chunk=16, exact_filter=4)


def vectors(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def open_store(path: str) -> Memory:
    index = FaissIndex(f"{path}/vectors.faiss", hnsw=PARAMS)
    return Memory.open(path, embedder=None, index=index, reaper_interval=None)


def fill(mem: Memory, vecs: np.ndarray, ns: str = "team") -> None:
    mem.put_many(
        [
            {
                "namespace": ns,
                "key": f"k{i}",
                "value": i,
                "metadata": {"group": i % 25},
                "vector": v.tolist(),
            }
            for i, v in enumerate(vecs)
        ]
    )


def settle(mem: Memory) -> None:
    index = mem._core.index
    assert isinstance(index, FaissIndex)
    index.settle()


def test_the_namespace_switches_to_a_graph_past_the_threshold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open_store(str(tmp_path)) as mem:
        fill(mem, vectors(30), ns="small")
        fill(mem, vectors(200, 1), ns="big")
        settle(mem)
        stats = mem._core.index.graph_stats()  # type: ignore[attr-defined]
        assert stats["graphs"] == 1 and stats["in_graphs"] == 200
        v = vectors(200, 1)
        hits = mem.search(vector=v[17].tolist(), namespaces=["big"], mode="vector", k=3)
        assert hits[0].item.key == "k17"


def test_overwritten_and_deleted_items_never_come_back_from_the_graph(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open_store(str(tmp_path)) as mem:
        v = vectors(150)
        fill(mem, v)
        settle(mem)
        for i in range(0, 60, 2):
            mem.delete("team", f"k{i}")
        current = {f"k{i}": v[i] for i in range(60, 150)}
        for i in range(1, 60, 2):  # overwrite with a vector far from the old one
            mem.put("team", f"k{i}", "moved", vector=(-v[i]).tolist())
            current[f"k{i}"] = -v[i]
        for i in range(60):
            hits = mem.search(vector=v[i].tolist(), namespaces=["team"], mode="vector", k=5)
            for h in hits:  # every score is that of the item's current vector
                assert h.score == pytest.approx(float(current[h.item.key] @ v[i]), abs=1e-4)
        settle(mem)  # tombstones past the limit: the graph is rebuilt from live vectors
        stats = mem._core.index.graph_stats()  # type: ignore[attr-defined]
        assert stats["tombstones"] < 0.2 * stats["in_graphs"] + 1
        hit = mem.search(vector=(-v[1]).tolist(), namespaces=["team"], mode="vector", k=1)[0]
        assert (hit.item.key, hit.item.value) == ("k1", "moved")


def test_a_selective_metadata_filter_returns_k_matching_hits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with open_store(str(tmp_path)) as mem:
        v = vectors(500)
        fill(mem, v)
        settle(mem)
        for q in vectors(5, 9):
            hits = mem.search(
                vector=q.tolist(), namespaces=["team"], mode="vector", k=10, filter={"group": 3}
            )
            assert len(hits) == 10
            assert {h.item.metadata["group"] for h in hits} == {3}
            allowed = [i for i in range(500) if i % 25 == 3]
            best = sorted(allowed, key=lambda i: -float(v[i] @ q))[:10]
            assert [h.item.key for h in hits] == [f"k{i}" for i in best]


def test_the_graph_is_saved_and_caught_up_from_the_log_on_open(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path)
    v = vectors(120)
    mem = open_store(path)
    fill(mem, v)
    settle(mem)
    mem.checkpoint()
    mem.delete("team", "k5")  # after the save: the file misses these
    mem.put("team", "late", 1, vector=v[6].tolist())
    mem._core.log.close()  # a crash: no save on close
    again = open_store(path)
    try:
        index = again._core.index
        assert index.applied_revision == again.revision
        assert index.graph_stats()["graphs"] == 1  # type: ignore[attr-defined]
        keys = [
            h.item.key
            for h in again.search(vector=v[5].tolist(), namespaces=["team"], mode="vector", k=3)
        ]
        assert "k5" not in keys
        top = again.search(vector=v[6].tolist(), namespaces=["team"], mode="vector", k=2)
        assert {h.item.key for h in top} == {"k6", "late"}
    finally:
        again.close()


def test_index_urls_choose_and_tune_the_backend(tmp_path) -> None:  # type: ignore[no-untyped-def]
    index = open_index("faiss://?hnsw_threshold=7&ef_search=40", str(tmp_path))
    assert isinstance(index, FaissIndex)
    assert (index.params.threshold, index.params.ef_search) == (7, 40)
    assert index.path == str(tmp_path / "vectors.faiss")
    from hivemem.memory.errors import InvalidInput

    with pytest.raises(InvalidInput, match="index_url"):
        open_index("faiss://?nope=1", str(tmp_path))
    with pytest.raises(InvalidInput, match="index_url"):
        open_index("pinecone://x", str(tmp_path))
