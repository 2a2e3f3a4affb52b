"""Concurrent read-then-CAS increments: no lost update, no version acknowledged twice."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from hivemem.memory import Conflict, Memory
from tests.embedders import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]


def increment(mem: Memory, times: int, acked: list[int]) -> int:
    """Read-then-CAS ``times`` attempts; returns how many succeeded."""
    ok = 0
    for _ in range(times):
        item = mem.get("counters", "hits")
        try:
            written = mem.put("counters", "hits", item.value + 1, if_version=item.version)
        except Conflict:
            continue
        acked.append(written.version)
        ok += 1
    return ok


def test_eight_threads_of_cas_increments_lose_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mem = Memory.open(str(tmp_path), embedder=HashEmbedder(), reaper_interval=None)
    try:
        mem.put("counters", "hits", 0)
        acked: list[int] = []
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(increment(mem, 200, acked)))
            for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        successes = sum(results)
        assert successes > 0
        final = mem.get("counters", "hits")
        assert final.value == successes
        assert len(acked) == len(set(acked)) == successes
        assert final.version == 1 + successes
        revisions = [i.revision for i in mem.history("counters", "hits")]
        assert revisions == sorted(revisions) and len(set(revisions)) == len(revisions)
    finally:
        mem.close()


CHILD = """
import sys
sys.path.insert(0, {root!r})
from hivemem.memory import Conflict, Memory
from tests.embedders import HashEmbedder
from tests.test_concurrency import increment
mem = Memory.open({path!r}, embedder=HashEmbedder(), reaper_interval=None)
acked = []
ok = increment(mem, 150, acked)
print(ok, *acked)
mem.close()
"""


def test_two_processes_of_cas_increments_lose_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "shared")
    mem = Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)
    mem.put("counters", "hits", 0)
    mem.close()
    code = CHILD.format(root=str(ROOT), path=path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    successes = sum(int(out[0]) for out in outputs)
    acked = [int(v) for out in outputs for v in out[1:]]
    assert len(acked) == len(set(acked)) == successes
    mem = Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)
    try:
        assert mem.get("counters", "hits").value == successes
    finally:
        mem.close()


def test_a_second_opener_finds_the_first_ones_writes_in_search(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Two openers of one data directory (as two processes would be): each one's
    vector index catches up from the log before it searches."""
    a = Memory.open(str(tmp_path), embedder=HashEmbedder(), reaper_interval=None)
    b = Memory.open(str(tmp_path), embedder=HashEmbedder(), reaper_interval=None)
    try:
        a.put("ns", "x", "alpha bravo charlie")
        for mode in ("vector", "keyword", "hybrid"):
            assert [h.item.key for h in b.search("alpha bravo", namespaces=["ns"], mode=mode)] == [
                "x"
            ]
        a.put("ns", "x", "delta echo")
        a.delete("ns", "x")
        b.put("ns", "y", "alpha bravo charlie")
        for mem in (a, b):
            hits = mem.search("alpha bravo charlie", namespaces=["ns"], mode="vector")
            assert [h.item.key for h in hits] == ["y"]
            core = mem._core
            assert core.index.ids() == {cid for cid, _, _ in core.log.live_vectors()}
        changes = [(c.revision, c.op) for c in b.watch(["ns"], since=0).iter(timeout=0.2)]
        assert changes == [(1, "put"), (2, "put"), (3, "delete"), (4, "put")]
    finally:
        a.close()
        b.close()
