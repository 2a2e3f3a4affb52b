"""search(at_revision=R) ranks exactly what a fresh store holding the state at R ranks."""

from __future__ import annotations

import pytest

from hivemem.memory import Memory
from hivemem.memory.errors import InvalidInput
from tests.embedders import HashEmbedder

WORDS = "puppy park deploy friday freeze lunch noon sister june kitten zebra river".split()


def _text(i: int) -> str:
    return " ".join(WORDS[(i * j + i) % len(WORDS)] for j in range(1, 4 + i % 3))


def _populate(mem: Memory) -> int:
    """Writes, overwrites, deletes and expiries around a revision R; returns R."""
    for i in range(24):
        thread = f"s{i % 3}" if i % 4 else None
        mem.put(f"ns/{i % 2}", f"k{i}", _text(i), thread=thread, metadata={"n": i})
    mem.delete("ns/0", "k4")
    mem.put("ns/1", "k5", "river zebra overwritten", thread="s2", metadata={"n": 5})
    mem.put("ns/0", "short", "puppy lives briefly", ttl=1000, thread="s0")
    at = mem.revision
    # everything below happens after R and must not show at R
    mem.delete("ns/1", "k7")
    mem.put("ns/0", "k2", "zebra zebra zebra", thread="s2")
    mem.put("ns/1", "k9", "moved away", thread="s1")
    mem.put("ns/0", "late", "puppy park deploy", thread="s0")
    return at


def _fresh_copy(mem: Memory, at: int, path: str) -> Memory:
    """A new store loaded with exactly the items visible at ``at``, in thread order."""
    live = [h for h in mem.list("ns", limit=1000).items]
    keys = {(i.namespace, i.key) for i in live} | {("ns/1", "k7")}
    state = []
    for ns, key in keys:
        try:
            state.append(mem.get(ns, key, at_revision=at))
        except Exception:  # absent at R
            continue
    fresh = Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)
    state.sort(key=lambda i: (i.thread_pos or 0, i.revision))
    for item in state:
        fresh.put(
            item.namespace,
            item.key,
            item.value,
            text=item.text,
            metadata=item.metadata,
            thread=item.thread,
        )
    return fresh


@pytest.mark.parametrize("mode", ["keyword", "vector", "hybrid"])
@pytest.mark.parametrize(
    "options",
    [{}, {"filter": {"n": {"$gte": 6}}}, {"thread": "s2"}, {"namespaces": ["ns/1"]}],
    ids=["all", "filter", "thread", "scope"],
)
def test_search_at_a_revision_equals_a_fresh_store_of_that_state(
    mem: Memory, tmp_path, mode: str, options: dict
) -> None:  # type: ignore[no-untyped-def]
    at = _populate(mem)
    fresh = _fresh_copy(mem, at, str(tmp_path / "fresh"))
    try:
        options = {"namespaces": ["ns"], **options}
        for query in ("puppy park", "zebra", "deploy friday freeze", "river"):
            # k above the item count: ties may order by change id, which differ
            then = mem.search(query, mode=mode, k=100, at_revision=at, **options)
            now = fresh.search(query, mode=mode, k=100, **options)
            assert {h.item.key: round(h.score, 5) for h in then} == {
                h.item.key: round(h.score, 5) for h in now
            }, query
            assert [h.score for h in then] == sorted((h.score for h in then), reverse=True)
            assert all(h.item.revision <= at for h in then)
    finally:
        fresh.close()


def test_search_at_a_revision_never_shows_what_came_later(mem: Memory) -> None:
    at = _populate(mem)

    def keys(query: str, **kw) -> set[str]:  # type: ignore[no-untyped-def]
        found = mem.search(query, namespaces=["ns"], k=50, mode="keyword", **kw)
        return {h.item.key for h in found}

    assert "k7" in keys(_text(7), at_revision=at)  # deleted after R
    assert "k7" not in keys(_text(7))
    assert "moved" not in {
        h.item.text for h in mem.search("moved", namespaces=["ns"], at_revision=at)
    }
    later = {
        h.item.key
        for h in mem.search(
            "puppy park deploy", namespaces=["ns"], k=50, mode="keyword", at_revision=at
        )
    }
    assert "late" not in later
    now = {
        h.item.key for h in mem.search("puppy park deploy", namespaces=["ns"], k=50, mode="keyword")
    }
    assert "late" in now


def test_search_at_a_future_revision_is_invalid(mem: Memory) -> None:
    mem.put("ns", "a", "x")
    with pytest.raises(InvalidInput) as err:
        mem.search("x", namespaces=["ns"], at_revision=mem.revision + 1)
    assert err.value.field == "at_revision"
