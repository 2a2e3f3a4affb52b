"""The metadata postings (equality filters for vector search) return exactly the ids the
log's own filter returns, on every backend, through writes, overwrites and deletes."""

from __future__ import annotations

import random
import time

from hivemem.memory import Memory
from hivemem.memory.search import parse_filter

POOL = [0, 1, 1.0, 2, 2.5, True, False, None, "1", "a", "b", "", 10**18 + 1, 10**18]


def value(rng: random.Random) -> object:
    roll = rng.random()
    if roll < 0.25:  # objects are refused by validation: lists are the only containers
        return [rng.choice(POOL) for _ in range(rng.randrange(0, 3))]
    return rng.choice(POOL)


def filters(rng: random.Random) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for _ in range(60):
        flt: dict[str, object] = {}
        for field in rng.sample(["f", "g", "h"], rng.randrange(1, 3)):
            if rng.random() < 0.5:
                flt[field] = rng.choice(POOL)
            else:
                flt[field] = {"$in": rng.sample(POOL, rng.randrange(0, 3))}
        out.append(flt)
    return out


def test_postings_match_the_logs_filter_exactly(mem: Memory) -> None:
    rng = random.Random(7)
    core = mem._core
    for round_ in range(3):
        ops = []
        for i in range(120):
            meta = {f: value(rng) for f in ("f", "g", "h") if rng.random() < 0.8}
            ops.append({"namespace": "t", "key": f"k{i}", "value": f"item {i}", "metadata": meta})
        mem.put_many(ops)
        for i in rng.sample(range(120), 20):
            mem.delete("t", f"k{i}")
        for flt in filters(rng):
            conds = parse_filter(flt)
            expected = set(core.log.filtered_ids(["t"], conds, time.time()))
            got = set(core.filtered_ids(["t"], conds, time.time()))
            assert got == expected, (round_, flt)
    assert core.postings is not None  # the postings answered (and were kept up to date)


def test_a_filtered_vector_search_uses_the_postings_and_stays_exact(mem: Memory) -> None:
    mem.put_many(
        [
            {"namespace": "t", "key": f"k{i}", "value": f"note {i}", "metadata": {"b": i % 10}}
            for i in range(200)
        ]
    )
    hits = mem.search("note 7", mode="vector", k=30, filter={"b": 7})
    assert len(hits) == 20 and {h.item.metadata["b"] for h in hits} == {7}
    mem.put("t", "k7", "note 7", metadata={"b": 8})  # moved out of the filter
    hits = mem.search("note 7", mode="vector", k=30, filter={"b": 7})
    assert "k7" not in {h.item.key for h in hits} and len(hits) == 19
