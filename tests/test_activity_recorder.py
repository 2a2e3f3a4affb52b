"""The in-process recorder of conflicts and lagged watchers stays bounded in memory."""

from __future__ import annotations

from hivemem.memory.activity import ActivityRecorder


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_events_in_one_cell_add_up_per_namespace_and_principal() -> None:
    clock = Clock()
    rec = ActivityRecorder(cell=10, clock=clock)
    rec.conflict("team", "planner")
    rec.conflict("team", "planner")
    rec.lagged(["team", "ops", "team"], "watcher")  # each watched prefix once
    clock.now += 10
    rec.conflict("team", "critic")
    assert sorted(rec.counts(0)) == [
        (1_000_000.0, "ops", "watcher", 0, 1),
        (1_000_000.0, "team", "planner", 2, 0),
        (1_000_000.0, "team", "watcher", 0, 1),
        (1_000_010.0, "team", "critic", 1, 0),
    ]
    assert rec.counts(1_000_010.0) == [(1_000_010.0, "team", "critic", 1, 0)]
    assert len(rec.counts(1_000_009.0)) == 4  # a cell overlapping the start counts whole
    assert rec.size == 4


def test_cells_older_than_the_retention_are_forgotten() -> None:
    clock = Clock()
    rec = ActivityRecorder(cell=10, retain=60, clock=clock)
    rec.conflict("team", "planner")
    clock.now += 75  # the first cell ended 65 s ago
    rec.conflict("team", "planner")
    assert [c[0] for c in rec.counts(0)] == [1_000_070.0]
    assert rec.size == 1


def test_a_flood_of_names_never_holds_more_than_max_cells() -> None:
    clock = Clock()
    rec = ActivityRecorder(cell=10, max_cells=100, clock=clock)
    for step in range(50):
        for i in range(7):
            rec.conflict(f"ns-{step}-{i}", f"agent-{i}")
        clock.now += 10
        assert rec.size <= 100
    # the newest cells are the ones kept: the oldest went first
    kept = {c[0] for c in rec.counts(0)}
    assert max(kept) == clock.now - 10
    assert min(kept) > 1_000_000.0
    assert rec.dropped == 0


def test_events_that_cannot_fit_in_the_newest_cell_are_counted_as_dropped() -> None:
    rec = ActivityRecorder(cell=10, max_cells=5, clock=Clock())
    for i in range(8):
        rec.conflict(f"ns-{i}", "agent")
    rec.conflict("ns-0", "agent")  # an existing cell still counts
    assert rec.size == 5
    assert rec.dropped == 3
    assert ("ns-0", 2) in {(c[1], c[3]) for c in rec.counts(0)}
