"""Group commit: concurrent writers share durable commits and keep their own revisions."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hivemem.memory import Conflict, InvalidInput, Memory
from hivemem.memory.log.base import Row

pytestmark = pytest.mark.timeout(120)


def test_concurrent_blind_writes_share_commits_and_keep_their_own_revisions(
    sqlite_mem: Memory,
) -> None:
    mem = sqlite_mem
    groups = _count_groups(mem)
    results: dict[int, list[tuple[int, int]]] = {}

    def work(i: int) -> None:
        results[i] = []
        for j in range(40):
            item = mem.update("hot", "c", [{"op": "increment", "path": "/n"}])
            results[i].append((item.revision, item.value["n"]))
            mem.put("cold", f"w{i}-{j}", j)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    revisions = sorted(r for rs in results.values() for r, _ in rs)
    assert len(set(revisions)) == len(revisions) == 320  # each caller its own revision
    assert mem.get("hot", "c").value == {"n": 320}
    # every caller saw the value its own revision wrote
    for rs in results.values():
        for revision, n in rs:
            assert mem.get("hot", "c", at_revision=revision).value == {"n": n}
    assert mem.revision == 640
    assert [c.revision for c in _changes(mem)] == list(range(1, 641))
    assert groups and max(groups) > 1  # some commits really were shared


def _count_groups(mem: Memory) -> list[int]:
    """The size of every shared commit from now on (wraps the log's commit_group)."""
    log = mem._core.log
    groups: list[int] = []
    real = log.commit_group

    def counting(batch: Any) -> Any:
        groups.append(len(batch))
        return real(batch)

    log.commit_group = counting  # type: ignore[method-assign]
    return groups


def _changes(mem: Memory) -> list[Any]:
    sub = mem.watch([""], since=0)
    stream = iter(sub)
    out = [next(stream) for _ in range(mem.revision)]
    sub.close()
    return out


def test_a_failing_write_in_a_shared_commit_fails_alone(sqlite_mem: Memory) -> None:
    mem = sqlite_mem
    mem.put("ns", "k", {"n": 1})
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []
    done: list[Row | Any] = []

    def good() -> None:
        barrier.wait()
        done.append(mem.update("ns", "k", [{"op": "increment", "path": "/n"}]))

    def bad() -> None:
        barrier.wait()
        try:
            mem.update("ns", "k", [{"op": "test", "path": "/n", "value": -1}])
        except Conflict as exc:
            errors.append(exc)

    threads = [threading.Thread(target=good) for _ in range(4)]
    threads += [threading.Thread(target=bad) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 2 and len(done) == 4
    assert mem.get("ns", "k").value == {"n": 5}
    assert sorted(i.revision for i in done) == [2, 3, 4, 5] and mem.revision == 5


def test_compare_and_swap_writes_do_not_wait_in_a_shared_commit(sqlite_mem: Memory) -> None:
    plan_sizes: list[int] = []
    log = sqlite_mem._core.log
    real = log.commit_group
    log.commit_group = lambda batch: plan_sizes.append(len(batch)) or real(batch)  # type: ignore[method-assign]

    def cas(i: int) -> None:
        for _ in range(30):
            while True:
                cur = sqlite_mem.get("ns", "c") if sqlite_mem.revision else None
                try:
                    sqlite_mem.put(
                        "ns",
                        "c",
                        (cur.value if cur else 0) + 1,
                        if_version=cur.version if cur else 0,
                    )
                    break
                except Conflict:
                    pass

    threads = [threading.Thread(target=cas, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sqlite_mem.get("ns", "c").value == 120
    assert plan_sizes == []  # every CAS committed alone


def test_an_embedder_less_store_without_vectors_shares_commits_too(tmp_path: Any) -> None:
    """Only a plan carrying the first vector must commit alone; plain values never fix the
    store's dimension, so they share commits even before any vector was stored."""
    mem = Memory.open(str(tmp_path / "bare"), embedder=None, reaper_interval=None)
    groups = _count_groups(mem)
    barrier = threading.Barrier(8)

    def work() -> None:
        barrier.wait()
        for _ in range(40):
            mem.update("hot", "c", [{"op": "increment", "path": "/n"}])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert mem.get("hot", "c").value == {"n": 320}
    assert groups and max(groups) > 1
    # the first vector still fixes the dimension, and a wrong-sized one is refused after it
    mem.put("v", "a", {"x": 1}, vector=[1.0, 0.0, 0.0])
    with pytest.raises(InvalidInput):
        mem.put("v", "b", {"x": 2}, vector=[1.0, 0.0])
    mem.close()


def test_a_leader_returns_after_its_own_commit_and_hands_the_lead_on(sqlite_mem: Memory) -> None:
    """The first writer commits alone; the writers that queued meanwhile share the next
    commit, led by the first of them, and the first writer does not wait for it."""
    mem = sqlite_mem
    log = mem._core.log
    real_one, real_group = log.commit, log.commit_group
    sizes: list[int] = []
    in_commit = threading.Event()

    def slow_one(author: str, plan: Any) -> Any:
        sizes.append(1)
        in_commit.set()
        time.sleep(0.3)
        return real_one(author, plan)

    def slow_group(batch: Any) -> Any:
        sizes.append(len(batch))
        time.sleep(0.3)
        return real_group(batch)

    log.commit, log.commit_group = slow_one, slow_group  # type: ignore[method-assign]
    took: dict[str, float] = {}

    def write(name: str) -> None:
        t0 = time.monotonic()
        mem.update("hot", "c", [{"op": "increment", "path": "/n"}])
        took[name] = time.monotonic() - t0

    first = threading.Thread(target=write, args=("first",))
    first.start()
    assert in_commit.wait(5)
    others = [threading.Thread(target=write, args=(f"w{i}",)) for i in range(5)]
    for t in others:
        t.start()
    time.sleep(0.1)  # all five are queued behind the first commit
    first.join()
    for t in others:
        t.join()
    log.commit, log.commit_group = real_one, real_group  # type: ignore[method-assign]
    assert sizes == [1, 5]
    assert took["first"] < 0.5  # one commit, not also the next batch it could have led
    assert all(took[f"w{i}"] >= 0.4 for i in range(5))  # they waited for both commits
    assert mem.get("hot", "c").value == {"n": 6} and mem.revision == 6
