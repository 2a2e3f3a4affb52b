"""SIGKILL a writer at random points: every acknowledged write survives, no gaps,
and the vector index holds exactly the log's live items after reopening."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hivemem.memory import Memory
from tests.embedders import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import sys, random
sys.path.insert(0, {root!r})
from hivemem.memory import Memory
from tests.embedders import HashEmbedder
mem = Memory.open({path!r}, embedder=HashEmbedder(), reaper_interval=None, save_interval=0.05)
rng = random.Random()
words = "alpha bravo charlie delta echo foxtrot golf hotel".split()
n = 0
print("ready", flush=True)
while True:
    n += 1
    key = "k%d" % rng.randrange(40)
    if rng.random() < 0.1:
        try:
            mem.delete("crash/ns", key)
            print("del", key, mem.revision, flush=True)
        except Exception:
            pass
        continue
    text = " ".join(rng.choice(words) for _ in range(4))
    if rng.random() < 0.2:
        items = mem.put_many([{{"namespace": "crash/ns", "key": "b%d" % i, "value": text}}
                              for i in range(rng.randrange(1, 20))])
        print("ack", items[0].key, items[0].revision, items[0].version, flush=True)
    else:
        item = mem.put("crash/ns", key, text)
        print("ack", key, item.revision, item.version, flush=True)
    if n % 7 == 0:
        mem.checkpoint()
"""


@pytest.mark.slow
def test_sigkill_at_random_points_loses_no_acknowledged_write(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = str(tmp_path / "store")
    rng = random.Random(1234)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    acked: list[tuple[str, int, int]] = []
    for _round in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER.format(root=str(ROOT), path=path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + rng.uniform(0.05, 0.6)
        while time.monotonic() < deadline:
            line = proc.stdout.readline().split()
            if line and line[0] == "ack":
                acked.append((line[1], int(line[2]), int(line[3])))
        proc.send_signal(signal.SIGKILL)
        for line in proc.stdout.read().splitlines():  # acks flushed before the kill
            parts = line.split()
            if parts and parts[0] == "ack":
                acked.append((parts[1], int(parts[2]), int(parts[3])))
        proc.wait()

        mem = Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)
        try:
            core = mem._core
            revisions = sorted({r.revision for r in core.log.changes_since(0, 10**9)})
            assert revisions == list(range(1, mem.revision + 1)), "revisions have a gap"
            histories: dict[str, set[tuple[int, int]]] = {}
            for key, revision, version in acked:
                if key not in histories:
                    histories[key] = {(i.revision, i.version) for i in mem.history("crash/ns", key)}
                assert (revision, version) in histories[key], f"acknowledged {key}@{revision} lost"
            live = {cid for cid, _, _ in core.log.live_vectors()}
            assert core.index.ids() == live
            assert core.index.applied_revision == mem.revision
        finally:
            core.index.save = lambda: None  # type: ignore[method-assign]  # leave the crash state
            mem.close()
    assert len(acked) > 20
