"""Semantic and metadata subscriptions over every log backend: only matching changes,
with their score; deletes and expiries of what matched; watch guarantees kept."""

from __future__ import annotations

import time

import numpy as np
import pytest

from hivemem.memory import InvalidInput, Memory


def _vec(*hot: int, dim: int = 8) -> list[float]:
    v = np.zeros(dim, dtype=np.float32)
    for i in hot:
        v[i] = 1.0
    return list(v / np.linalg.norm(v))


@pytest.fixture
def vmem(log, tmp_path):  # type: ignore[no-untyped-def]
    """A store of supplied 8-d vectors (no embedder)."""
    m = Memory.open(str(tmp_path / "v"), embedder=None, log=log, reaper_interval=None)
    yield m
    m.close()


def test_only_matching_changes_are_delivered_with_their_score(vmem: Memory) -> None:
    vmem.put("team/notes", "deploy", "x", vector=_vec(0))
    vmem.put("team/notes", "lunch", "x", vector=_vec(5))
    vmem.put("team/notes", "close", "x", vector=_vec(0, 1))  # cosine 0.707
    with vmem.watch("team", 0, vector=_vec(0), threshold=0.5) as sub:
        got = [(c.key, round(c.score or 0, 3)) for c in sub.iter(timeout=0.05)]
    assert got == [("deploy", 1.0), ("close", 0.707)]


def test_a_live_semantic_watch_skips_others_and_keeps_transactions_whole(vmem: Memory) -> None:
    with vmem.watch("team", vmem.revision, vector=_vec(2), threshold=0.9) as sub:
        vmem.put("team/a", "miss", 1, vector=_vec(3))
        vmem.put_many(
            [
                {"namespace": "team/a", "key": "hit1", "value": 1, "vector": _vec(2)},
                {"namespace": "team/a", "key": "other", "value": 1, "vector": _vec(4)},
                {"namespace": "team/a", "key": "hit2", "value": 1, "vector": _vec(2)},
            ]
        )
        changes = list(sub.iter(timeout=0.1))
    assert [c.key for c in changes] == ["hit1", "hit2"]
    assert len({c.revision for c in changes}) == 1


def test_deletes_and_expiries_of_what_matched_are_delivered(vmem: Memory) -> None:
    vmem.put("team/n", "hit", 1, vector=_vec(1), metadata={"kind": "incident"})
    vmem.put("team/n", "miss", 1, vector=_vec(1), metadata={"kind": "chat"})
    vmem.put("team/n", "gone", 1, vector=_vec(1), metadata={"kind": "incident"}, ttl=0.05)
    start = vmem.revision
    vmem.delete("team/n", "hit")
    vmem.delete("team/n", "miss")
    time.sleep(0.1)
    vmem.expire_due()
    flt = {"kind": "incident"}
    with vmem.watch("team", 0, filter=flt) as sub:  # seen from the start
        seen = [(c.op, c.key) for c in sub.iter(timeout=0.05)]
    assert seen == [("put", "hit"), ("put", "gone"), ("delete", "hit"), ("expire", "gone")]
    with vmem.watch("team", start, filter=flt, vector=_vec(1)) as sub:  # resumed after puts
        resumed = [(c.op, c.key, c.score) for c in sub.iter(timeout=0.05)]
    assert resumed == [("delete", "hit", 1.0), ("expire", "gone", 1.0)]


def test_an_item_that_stops_matching_is_not_delivered(vmem: Memory) -> None:
    with vmem.watch("team", 0, filter={"kind": "incident"}) as sub:
        vmem.put("team/n", "k", 1, metadata={"kind": "incident"})
        vmem.put("team/n", "k", 2, metadata={"kind": "chat"})
        vmem.delete("team/n", "k")  # its last version did not match
        changes = [(c.op, c.item.value if c.item else None) for c in sub.iter(timeout=0.1)]
    assert changes == [("put", 1)]


def test_resuming_a_semantic_watch_continues_without_gaps_or_duplicates(vmem: Memory) -> None:
    for i in range(6):
        vmem.put("team/n", f"k{i}", i, vector=_vec(i % 2))
    with vmem.watch("team", 0, vector=_vec(0), threshold=0.9) as sub:
        stream = iter(sub)
        first = [next(stream), next(stream)]
    with vmem.watch("team", first[-1].revision, vector=_vec(0), threshold=0.9) as sub:
        rest = list(sub.iter(timeout=0.05))
    assert [c.key for c in first + rest] == ["k0", "k2", "k4"]


def test_text_queries_use_the_embedder(mem: Memory) -> None:
    mem.put("team/n", "a", "deploy incident on the payments service")
    mem.put("team/n", "b", "lunch menu for friday")
    with mem.watch("team", 0, query="deploy incident payments", threshold=0.5) as sub:
        keys = [c.key for c in sub.iter(timeout=0.05)]
    assert keys == ["a"]


def test_subscription_arguments_are_checked(vmem: Memory) -> None:
    vmem.put("team/n", "a", 1, vector=_vec(0))
    for kwargs, field in (
        ({"threshold": 2}, "threshold"),
        ({"threshold": 0.5}, "threshold"),  # without a query
        ({"vector": [0.0] * 8}, "vector"),
        ({"vector": [1.0] * 3}, "vector"),
        ({"query": "x", "vector": _vec(0)}, "vector"),
        ({"query": "deploy"}, "query"),  # no embedder
        ({"filter": {"k": {"$nope": 1}}}, "filter.k.$nope"),
    ):
        with pytest.raises(InvalidInput) as err:
            vmem.watch("team", 0, **kwargs)  # type: ignore[arg-type]
        assert err.value.field == field
