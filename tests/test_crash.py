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

from hivemem.memory import Memory, NotFound
from tests.embedders import HashEmbedder

ROOT = Path(__file__).resolve().parents[1]

WRITER = """
import sys, random
sys.path.insert(0, {root!r})
from hivemem.memory import Conflict, Memory, NotFound
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


LEASE_WRITER = """
import sys, time
sys.path.insert(0, {root!r})
from hivemem.memory import Conflict, Memory, NotFound
from tests.embedders import HashEmbedder
mem = Memory.open({path!r}, embedder=HashEmbedder(), reaper_interval=None)
lease = mem.lease(ttl={ttl!r})
for i in range(5):
    mem.put("crash/presence", "a%d" % i, "agent %d is here" % i, lease=lease.id)
mem.put("crash/tasks", "t", {{"n": 1}})
claim = mem.claim("crash/tasks", lease=lease.id)
print("lease", lease.id, lease.expires_at.timestamp(), claim.token, flush=True)
while True:
    time.sleep(0.05)
    renewed = mem.keepalive(lease.id)
    print("ka", renewed.expires_at.timestamp(), flush=True)
"""


@pytest.mark.slow
def test_sigkill_never_extends_a_lease_and_an_overdue_one_expires_on_restart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path, ttl = str(tmp_path / "store"), 1.0
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", LEASE_WRITER.format(root=str(ROOT), path=path, ttl=ttl)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    _, lease_id, deadline, token = proc.stdout.readline().split()
    acked = float(deadline)
    stop = time.monotonic() + random.uniform(0.3, 0.6)
    while time.monotonic() < stop:
        acked = float(proc.stdout.readline().split()[1])
    proc.send_signal(signal.SIGKILL)
    killed = time.time()
    for line in proc.stdout.read().splitlines():
        acked = max(acked, float(line.split()[1]))
    proc.wait()

    # Restarted within the ttl: the remaining time is honoured, not renewed by the restart.
    mem = Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)
    try:
        rec = mem._core.log.lease(lease_id)
        assert rec is not None and rec.ended_revision is None
        assert acked - 1e-3 <= rec.deadline <= killed + ttl  # (acked went through datetime)
        if time.time() < rec.deadline - 0.1:
            assert len(mem.list("crash/presence").items) == 5
            mem.put("crash/out", "t", "still mine", fence=token)  # the claim survived
        time.sleep(max(0.0, rec.deadline - time.time()) + 0.05)
        assert mem.list("crash/presence").items == []  # gone at the deadline, unreaped
    finally:
        mem.close()

    # Restarted after the deadline: the first reaper pass expires it, nothing revives it.
    mem = Memory.open(path, embedder=HashEmbedder(), reaper_interval=None)
    try:
        with pytest.raises(NotFound):
            mem.keepalive(lease_id)
        rec = mem._core.log.lease(lease_id)
        assert rec is not None and rec.ended_revision == mem.revision
        expired = [
            (c.op, c.reason)
            for c in mem.watch("crash", since=0).iter(timeout=0.05)
            if c.op != "put"
        ]
        assert expired == [("expire", "lease")] * 5
    finally:
        mem.close()
