"""The vector index is a view of the log: a lost, stale or corrupt index file is
detected on open and caught up or rebuilt from the vectors stored in the log."""

from __future__ import annotations

import os
import shutil

import pytest

from hivemem.memory import Memory
from tests.embedders import HashEmbedder


def open_store(path: str) -> Memory:
    return Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)


def fill(mem: Memory) -> None:
    mem.put_many(
        [{"namespace": "ns", "key": f"k{i}", "value": f"item number {i}"} for i in range(30)]
    )
    mem.delete("ns", "k3")
    mem.put("ns", "k4", "replaced text")


def assert_index_matches_log(mem: Memory) -> None:
    core = mem._core
    assert core.index.ids() == {cid for cid, _, _ in core.log.live_vectors()}
    assert core.index.applied_revision == mem.revision
    hits = mem.search("replaced text", namespaces=["ns"], mode="vector", k=1)
    assert hits[0].item.key == "k4"


@pytest.mark.parametrize("damage", ["missing", "truncated", "bit-flip", "garbage"])
def test_a_damaged_index_file_is_rebuilt_from_the_log(tmp_path, damage: str) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "store")
    mem = open_store(path)
    fill(mem)
    mem.close()
    index_file = os.path.join(path, "vectors.faiss")
    data = open(index_file, "rb").read()
    if damage == "missing":
        os.remove(index_file)
    elif damage == "truncated":
        open(index_file, "wb").write(data[: len(data) // 2])
    elif damage == "bit-flip":
        flipped = bytearray(data)
        flipped[-10] ^= 0xFF
        open(index_file, "wb").write(bytes(flipped))
    else:
        open(index_file, "wb").write(b"not an index at all")
    mem = open_store(path)
    try:
        assert_index_matches_log(mem)
    finally:
        mem.close()


def test_a_stale_index_file_catches_up_from_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "store")
    mem = open_store(path)
    mem.put("ns", "early", "before the checkpoint")
    mem.checkpoint()
    stale = open(os.path.join(path, "vectors.faiss"), "rb").read()
    fill(mem)
    mem.close()
    open(os.path.join(path, "vectors.faiss"), "wb").write(stale)  # as after a crash
    mem = open_store(path)
    try:
        assert_index_matches_log(mem)
    finally:
        mem.close()


def test_an_index_from_another_store_is_not_trusted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    mem = open_store(a)
    fill(mem)
    mem.close()
    other = open_store(b)
    other.put("ns", "lonely", "a single item")
    other.close()
    shutil.copy(os.path.join(a, "vectors.faiss"), os.path.join(b, "vectors.faiss"))
    other = open_store(b)
    try:
        core = other._core
        assert core.index.ids() == {cid for cid, _, _ in core.log.live_vectors()}
    finally:
        other.close()
