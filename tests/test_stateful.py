"""Random put / CAS / delete / txn / compact / reopen sequences against a plain model.

After every step the engine must agree with the model, and the vector index must hold
exactly the log's live items (no stale, no missing vectors).
"""

from __future__ import annotations

import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hivemem.memory import Compacted, Conflict, Memory, NotFound
from tests.embedders import HashEmbedder

NAMESPACES = st.sampled_from(["a", "a/b", "c"])
KEYS = st.sampled_from(["k1", "k2", "k3"])
WORDS = st.lists(
    st.sampled_from(["red", "green", "blue", "fast", "slow", "cat"]), min_size=1, max_size=4
).map(" ".join)


class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = tempfile.mkdtemp(prefix="hivemem-stateful-")
        self.mem = self._open()
        self.revision = 0
        self.compacted = 0
        # (ns, key) -> list of (revision, version, value or None for a tombstone)
        self.history: dict[tuple[str, str], list[tuple[int, int, str | None]]] = {}

    def _open(self) -> Memory:
        return Memory.open(
            self.dir, embedder=HashEmbedder(16), durability="off", reaper_interval=None
        )

    def _current(self, k: tuple[str, str]) -> tuple[int, str | None]:
        versions = self.history.get(k)
        if not versions:
            return 0, None
        _, version, value = versions[-1]
        return version, value

    def _record(self, k: tuple[str, str], value: str | None) -> None:
        version, _ = self._current(k)
        self.history.setdefault(k, []).append((self.revision, version + 1, value))

    @rule(ns=NAMESPACES, key=KEYS, value=WORDS)
    def put(self, ns: str, key: str, value: str) -> None:
        item = self.mem.put(ns, key, value)
        self.revision += 1
        self._record((ns, key), value)
        assert (item.revision, item.version) == (self.revision, self._current((ns, key))[0])

    @rule(ns=NAMESPACES, key=KEYS, value=WORDS, guess=st.integers(0, 6))
    def cas(self, ns: str, key: str, value: str, guess: int) -> None:
        version, current = self._current((ns, key))
        live_version = version if current is not None else 0
        try:
            self.mem.put(ns, key, value, if_version=guess)
        except Conflict as exc:
            assert guess != live_version
            assert (exc.current.version if exc.current else 0) == live_version
            return
        assert guess == live_version
        self.revision += 1
        self._record((ns, key), value)

    @rule(ns=NAMESPACES, key=KEYS)
    def delete(self, ns: str, key: str) -> None:
        _, current = self._current((ns, key))
        try:
            self.mem.delete(ns, key)
        except NotFound:
            assert current is None
            return
        assert current is not None
        self.revision += 1
        self._record((ns, key), None)

    @rule(writes=st.lists(st.tuples(NAMESPACES, KEYS, WORDS), min_size=1, max_size=4))
    def txn(self, writes: list[tuple[str, str, str]]) -> None:
        ops = [{"op": "put", "namespace": ns, "key": k, "value": v} for ns, k, v in writes]
        result = self.mem.txn(success=ops)
        self.revision += 1
        assert result.revision == self.revision
        for ns, k, v in writes:
            self._record((ns, k), v)

    @precondition(lambda self: self.revision > self.compacted)
    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        target = data.draw(st.integers(self.compacted + 1, self.revision))
        self.mem.compact(target)
        self.compacted = target
        for k, versions in self.history.items():
            older = [v for v in versions if v[0] < target]
            newer = [v for v in versions if v[0] >= target]
            self.history[k] = older[-1:] + newer

    @rule()
    def reopen(self) -> None:
        self.mem.close()
        self.mem = self._open()

    @rule()
    def checkpoint(self) -> None:
        self.mem.checkpoint()

    @rule()
    def crash_and_reopen(self) -> None:
        """Close without persisting the index: reopening must catch up from the log."""
        core = self.mem._core
        core.index.save = lambda: None  # type: ignore[method-assign]
        self.mem.close()
        self.mem = self._open()

    @invariant()
    def agrees_with_model(self) -> None:
        assert self.mem.revision == self.revision
        for ns in ("a", "a/b", "c"):
            for key in ("k1", "k2", "k3"):
                version, value = self._current((ns, key))
                if value is None:
                    try:
                        self.mem.get(ns, key)
                        raise AssertionError(f"{ns}/{key} should be absent")
                    except NotFound:
                        pass
                else:
                    item = self.mem.get(ns, key)
                    assert (item.value, item.version) == (value, version)
                if (ns, key) in self.history:
                    got = [
                        (i.revision, i.version, None if i.deleted else i.value)
                        for i in self.mem.history(ns, key)
                    ]
                    assert got == self.history[(ns, key)]

    @invariant()
    def old_revisions_are_compacted_or_readable(self) -> None:
        if self.compacted > 1:
            try:
                self.mem.get("a", "k1", at_revision=self.compacted - 1)
                raise AssertionError("read below the compaction point succeeded")
            except Compacted as exc:
                assert exc.compacted_revision == self.compacted

    @invariant()
    def index_holds_exactly_the_live_items(self) -> None:
        core = self.mem._core
        live = {cid for cid, _, _ in core.log.live_vectors()}
        assert core.index.ids() == live
        assert core.index.applied_revision == self.revision

    def teardown(self) -> None:
        self.mem.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LogMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLogAgainstModel = LogMachine.TestCase
