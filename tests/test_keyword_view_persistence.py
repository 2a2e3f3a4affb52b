"""The keyword view is saved on close and loaded on open instead of being rebuilt from
the log; whatever the file says, a search ranks as a rebuild from the log would."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from hivemem.memory import Memory

TURNS = [
    ("t1", "shall we move the offsite to lisbon", "s1"),
    ("t2", "yes, book it", "s1"),
    ("t3", "the zebra exhibit is closed", "s1"),
    ("t4", "then the aquarium", "s1"),
    ("t5", "and dinner after", "s1"),
    ("n1", "lisbon flights are cheap in may", None),
]
QUERIES = ["lisbon", "zebra", "book", "aquarium", "dinner", "giraffe", "offsite may"]


def _open(path: Path, **kw: object) -> Memory:
    return Memory.open(str(path), embedder=None, reaper_interval=None, **kw)  # type: ignore[arg-type]


def _fill(path: Path) -> None:
    with _open(path) as mem:
        for key, text, thread in TURNS:
            mem.put("chat", key, text, thread=thread)


def _ranks(mem: Memory) -> dict[str, list[tuple[str, float]]]:
    return {
        q: [(h.item.key, round(h.score, 9)) for h in mem.search(q, ["chat"], mode="keyword")]
        for q in QUERIES
    }


def _rebuilt(path: Path, tmp: Path) -> dict[str, list[tuple[str, float]]]:
    """The ranking of a copy of the store whose view is rebuilt from its log."""
    copy = tmp / "rebuilt"
    shutil.copytree(path, copy)
    (copy / "keywords.bin").unlink(missing_ok=True)
    with _open(copy) as mem:
        assert mem._core.events[("keyword_view_rebuild", "missing")] == 1
        return _ranks(mem)


def test_reopening_loads_the_saved_view_and_ranks_the_same(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _fill(store)
    assert (store / "keywords.bin").exists()
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_load", "saved")] == 1
        assert not any(name == "keyword_view_rebuild" for name, _ in mem._core.events)
        got = _ranks(mem)
        assert {"t2", "t3"} <= set(dict(got["lisbon"]))  # replies match by their context
        mem.delete("chat", "t3")  # the view changes after loading: saved again on close
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_load", "saved")] == 1
        assert mem.search("zebra", ["chat"], mode="keyword") == []
        assert _ranks(mem) == _rebuilt(store, tmp_path)


def test_a_stale_saved_view_is_caught_up_from_the_log(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _fill(store)
    old = (store / "keywords.bin").read_bytes()
    with _open(store) as mem:
        mem.delete("chat", "t3")  # its word must leave t4's and t5's context
        mem.put("chat", "t2", "no, not lisbon after all", thread="s1")  # keeps its place
        mem.put("chat", "g1", "the giraffe keeper", thread="s2")
        mem.put("chat", "t4", "then the aquarium", ttl=0.2, thread="s1")  # expires unseen
    (store / "keywords.bin").write_bytes(old)  # as after a crash: the view of before
    time.sleep(0.3)
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_load", "saved")] == 1
        got = _ranks(mem)
        assert got["zebra"] == [] and got["aquarium"] == []
        assert [k for k, _ in got["giraffe"]] == ["g1"]
        assert got == _rebuilt(store, tmp_path)


@pytest.mark.parametrize("damage", ["truncated", "flipped", "garbage"])
def test_an_unreadable_saved_view_is_rebuilt(tmp_path: Path, damage: str) -> None:
    store = tmp_path / "store"
    _fill(store)
    path = store / "keywords.bin"
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "flipped":
        data[-10] ^= 0xFF
    else:
        data = bytearray(b"not a keyword view at all")
    path.write_bytes(bytes(data))
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_verify_failed", "unreadable")] == 1
        assert mem._core.events[("keyword_view_rebuild", "unreadable")] == 1
        assert _ranks(mem) == _rebuilt(store, tmp_path)


def test_a_view_of_another_window_or_store_is_rebuilt(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _fill(store)
    with _open(store, thread_window=1) as mem:
        assert mem._core.events[("keyword_view_rebuild", "window_differs")] == 1
        lisbon = [h.item.key for h in mem.search("lisbon", ["chat"], mode="keyword")]
        assert "t2" in lisbon and "t3" not in lisbon  # one turn of context, not two
    other = tmp_path / "other"  # more revisions than the store: ahead of its log
    with _open(other, thread_window=1) as mem:
        for i in range(20):
            mem.put("chat", f"x{i}", f"other words {i}")
    shutil.copy(other / "keywords.bin", store / "keywords.bin")
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_verify_failed", "ahead_of_log")] == 1
        assert mem.search("other", ["chat"], mode="keyword") == []
    small = tmp_path / "small"  # fewer revisions, the same change ids: another log
    with _open(small, thread_window=1) as mem:
        mem.put("chat", "y", "unrelated words")
    shutil.copy(small / "keywords.bin", store / "keywords.bin")
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_verify_failed", "other_log")] == 1
        assert mem.search("unrelated", ["chat"], mode="keyword") == []
        assert _ranks(mem) == _rebuilt(store, tmp_path)


def test_a_view_saved_below_the_compacted_revision_is_rebuilt(tmp_path: Path) -> None:
    store = tmp_path / "store"
    _fill(store)
    old = (store / "keywords.bin").read_bytes()
    with _open(store) as mem:
        mem.delete("chat", "t3")
        mem.put("chat", "t6", "more words")
        mem.compact(mem.revision)
    (store / "keywords.bin").write_bytes(old)
    with _open(store) as mem:
        assert mem._core.events[("keyword_view_verify_failed", "behind_compaction")] == 1
        assert mem.search("zebra", ["chat"], mode="keyword") == []
        assert _ranks(mem) == _rebuilt(store, tmp_path)


def test_an_in_memory_store_writes_no_view(tmp_path: Path) -> None:
    with Memory.open(":memory:", embedder=None, reaper_interval=None) as mem:
        mem.put("chat", "k", "words", thread="s")
        assert mem._core.keyword_path is None
        assert mem._core.events[("keyword_view_rebuild", "not_persisted")] == 1
