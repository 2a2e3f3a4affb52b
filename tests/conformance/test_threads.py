"""Threads: keyword context from the turns before an item, exact as the thread changes.

Run on every log backend; the keyword index is the engine's view of the log, so each
case also holds after a restart (the view rebuilt from the log) and after compaction.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from hivemem.memory import Memory
from hivemem.memory.errors import Compacted, InvalidInput
from hivemem.memory.log.base import StateLog
from tests.conftest import make_log
from tests.embedders import HashEmbedder

TURNS = [
    ("t1", "We adopted a puppy named Biscuit last week"),
    ("t2", "That is wonderful news"),
    ("t3", "Thanks, he loves running in the park"),
    ("t4", "My sister is visiting in June"),
]


class Store:
    """A store over one backend that can be closed and opened again on the same data."""

    def __init__(self, backend: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
        self.backend = backend
        self.path = str(tmp_path / "data")
        self.first: StateLog = make_log(backend, tmp_path)
        self.mem = self._open(self.first)

    def _open(self, log: StateLog) -> Memory:
        return Memory.open(self.path, embedder=HashEmbedder(), log=log, reaper_interval=None)

    def reopen(self) -> Memory:
        self.mem.close()
        if self.backend == "sqlite":
            from hivemem.memory.log.sqlite import SQLiteLog

            log: StateLog = SQLiteLog(self.first.path, durability="off")  # type: ignore[attr-defined]
        else:
            from hivemem.memory.log.postgres import PostgresLog

            log = PostgresLog(self.first.url, schema=self.first.schema)  # type: ignore[attr-defined]
        self.mem = self._open(log)
        return self.mem


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> Iterator[Store]:  # type: ignore[no-untyped-def]
    s = Store(request.param, tmp_path)
    yield s
    s.mem.close()
    if request.param == "postgres":
        s.first.drop()  # type: ignore[attr-defined]


def keyword(mem: Memory, query: str, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    return [h.item.key for h in mem.search(query, namespaces=["chat"], mode="keyword", **kw)]


def converse(mem: Memory, thread: str = "s1") -> None:
    for key, text in TURNS:
        mem.put("chat", key, text, thread=thread)


def test_a_turn_matches_on_the_words_of_the_two_live_turns_before_it(store: Store) -> None:
    converse(store.mem)
    assert sorted(keyword(store.mem, "puppy")) == ["t1", "t2", "t3"]
    assert keyword(store.mem, "sister") == ["t4"]
    hit = store.mem.search("puppy", namespaces=["chat"], mode="keyword")[0]
    assert hit.item.key == "t1" and hit.item.text == TURNS[0][1]  # returned as itself


def test_a_word_only_a_deleted_turn_had_no_longer_matches_its_neighbours(store: Store) -> None:
    converse(store.mem)
    store.mem.delete("chat", "t1")
    assert keyword(store.mem, "biscuit") == []
    assert keyword(store.mem, "biscuit") == [] == keyword(store.reopen(), "biscuit")


def test_the_window_slides_over_live_turns_when_one_is_deleted(store: Store) -> None:
    converse(store.mem)
    assert "t4" not in keyword(store.mem, "puppy")
    store.mem.delete("chat", "t2")
    assert sorted(keyword(store.mem, "puppy")) == ["t1", "t3", "t4"]
    assert sorted(keyword(store.reopen(), "puppy")) == ["t1", "t3", "t4"]


def test_an_overwrite_keeps_its_place_and_takes_its_old_words_away(store: Store) -> None:
    converse(store.mem)
    place = store.mem.get("chat", "t1").thread_pos
    store.mem.put("chat", "t1", "We adopted a kitten", thread="s1")
    assert store.mem.get("chat", "t1").thread_pos == place
    assert keyword(store.mem, "biscuit") == []
    assert sorted(keyword(store.mem, "kitten")) == ["t1", "t2", "t3"]
    assert sorted(keyword(store.reopen(), "kitten")) == ["t1", "t2", "t3"]


def test_an_expired_turn_leaves_its_neighbours_before_the_reaper_runs(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.mem.put("chat", "t0", "a secret password zebra", thread="s1", ttl=60)
    converse(store.mem)
    assert sorted(keyword(store.mem, "zebra")) == ["t0", "t1", "t2"]
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + 61)  # the TTL has passed
    assert keyword(store.mem, "zebra") == []
    store.mem.expire_due()
    assert keyword(store.mem, "zebra") == []
    assert keyword(store.reopen(), "zebra") == []


def test_moving_a_turn_to_another_thread_moves_its_context(store: Store) -> None:
    converse(store.mem)
    store.mem.put("chat", "t1", TURNS[0][1], thread="s2")
    assert keyword(store.mem, "puppy") == ["t1"]
    store.mem.put("chat", "t5", "so cute", thread="s2")
    assert sorted(keyword(store.mem, "puppy")) == ["t1", "t5"]


def test_compaction_keeps_the_context_and_forbids_searching_below_it(store: Store) -> None:
    converse(store.mem)
    store.mem.delete("chat", "t2")
    head = store.mem.revision
    store.mem.compact(head)
    assert sorted(keyword(store.mem, "puppy")) == ["t1", "t3", "t4"]
    assert sorted(keyword(store.reopen(), "puppy")) == ["t1", "t3", "t4"]
    with pytest.raises(Compacted):
        store.mem.search("puppy", namespaces=["chat"], mode="keyword", at_revision=head - 1)


def test_thread_filters_search_and_watch(store: Store) -> None:
    converse(store.mem)
    store.mem.put("chat", "other", "a puppy of my own", thread="s9")
    assert keyword(store.mem, "puppy", thread="s9") == ["other"]
    found = store.mem.search("puppy", namespaces=["chat"], mode="vector", thread="s1")
    assert {h.item.key for h in found} <= {"t1", "t2", "t3", "t4"}
    store.mem.delete("chat", "t4")
    with store.mem.watch(["chat"], since=0, thread="s1") as sub:
        seen = [(c.op, c.key) for c in sub.iter(timeout=0.2)]
    assert seen == [("put", k) for k, _ in TURNS] + [("delete", "t4")]


def test_thread_names_follow_the_key_rules(store: Store) -> None:
    with pytest.raises(InvalidInput) as err:
        store.mem.put("chat", "k", "x", thread="a/b")
    assert err.value.field == "thread"
    with pytest.raises(InvalidInput):
        store.mem.search("x", namespaces=["chat"], thread="")


def test_export_and_import_carry_threads_in_conversation_order(store: Store, tmp_path) -> None:  # type: ignore[no-untyped-def]
    for key, text in reversed(TURNS):  # keys in reverse order of their places
        store.mem.put("chat", "z" + key, text, thread="s1")
    records = list(store.mem.export("chat"))
    assert {r["thread"] for r in records} == {"s1"}
    other = Memory.open(str(tmp_path / "copy"), embedder=HashEmbedder(), reaper_interval=None)
    try:
        other.import_items(records)
        for q in ("puppy", "sister", "park"):
            assert sorted(keyword(other, q)) == sorted(keyword(store.mem, q))
    finally:
        other.close()


def test_threaded_writes_committed_in_one_group_index_as_if_committed_one_by_one(
    store: Store,
) -> None:
    mem = store.mem
    converse(mem)
    mem.put("chat", "t7", {"n": 1}, text="a walk by the river", thread="s1")
    core = mem._core
    groups: list[int] = []
    real = core.log.commit_group

    def counting(batch):  # type: ignore[no-untyped-def]
        groups.append(len(batch))
        return real(batch)

    core.log.commit_group = counting  # type: ignore[method-assign]
    writes = [
        lambda: mem.put("chat", "t5", "the vet said Biscuit needs a walnut free diet", thread="s1"),
        lambda: mem.delete("chat", "t2"),
        lambda: mem.put("chat", "t3", "he loves chasing a frisbee", thread="s1"),
        lambda: mem.put("chat", "t6", {"n": 1}, text="my sister brings her parrot", thread="s1"),
        lambda: mem.put("chat", "t4", "my sister is visiting in July", thread="s2"),
        lambda: mem.update("chat", "t7", [{"op": "increment", "path": "/n"}]),
    ]
    errors: list[BaseException] = []

    def run(write):  # type: ignore[no-untyped-def]
        try:
            write()
        except BaseException as exc:
            errors.append(exc)

    # Hold the write lock so every writer queues, then let them commit as one group.
    with core.write_lock:
        workers = [threading.Thread(target=run, args=(w,)) for w in writes]
        for w in workers:
            w.start()
        deadline = time.monotonic() + 10
        while len(core.committer._queue) < len(writes) - 1 and time.monotonic() < deadline:
            time.sleep(0.01)
    for w in workers:
        w.join()
    assert errors == []
    assert groups and max(groups) >= 2  # several revisions in one database transaction
    t7 = mem.get("chat", "t7")
    assert t7.value == {"n": 2} and t7.thread == "s1"  # an update keeps the item's thread
    words = {w for _, t in TURNS for w in t.lower().split()}
    words |= {"walnut", "frisbee", "parrot", "river", "july"}
    head = mem.revision

    def ranked(m: Memory, word: str, **kw) -> list[tuple[str, float]]:  # type: ignore[no-untyped-def]
        found = m.search(word, namespaces=["chat"], mode="keyword", **kw)
        return [(h.item.key, round(h.score, 9)) for h in found]

    # The view after the group equals the exact index of the state at its head, and
    # the view rebuilt from the log after a restart.
    now = {w: ranked(mem, w) for w in sorted(words)}
    assert now == {w: ranked(mem, w, at_revision=head) for w in sorted(words)}
    assert now["walnut"] and now["wonderful"] == []
    again = store.reopen()
    assert now == {w: ranked(again, w) for w in sorted(words)}


def test_claims_and_lease_expiry_keep_the_thread(store: Store) -> None:
    mem = store.mem
    lease = mem.lease(ttl=30)
    mem.put("chat", "t1", "a task about the puppy", thread="s1", lease=lease.id)
    mem.put("jobs", "j1", {"todo": 1}, text="walk the puppy", thread="w")
    claim = mem.claim("jobs", "j1", ttl=30)
    assert claim is not None and claim.item.thread == "w"
    assert mem.get("jobs", "j1").thread == "w"
    mem.revoke_lease(lease.id)
    with mem.watch(["chat"], since=0, thread="s1") as sub:
        seen = [(c.op, c.key) for c in sub.iter(timeout=0.2)]
    assert seen == [("put", "t1"), ("expire", "t1")]


def test_an_approved_proposal_lands_in_its_thread(store: Store) -> None:
    mem = store.mem
    converse(mem)
    mem.grant("intern", "chat", "propose")
    proposal = mem.as_principal("intern").put("chat", "t5", "the puppy chewed a shoe", thread="s1")
    assert proposal.thread == "s1"  # type: ignore[union-attr]
    mem.approve(proposal.id)  # type: ignore[union-attr]
    t5 = mem.get("chat", "t5")
    assert t5.thread == "s1" and t5.thread_pos > mem.get("chat", "t4").thread_pos  # type: ignore[operator]
    assert "t5" in keyword(mem, "sister")  # t4 is in its window
