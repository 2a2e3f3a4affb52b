"""``Memory.activity``: writes and expiries from the log, conflicts and lagged watchers
recorded in the process, grouped per namespace and author, scoped by grants; run over
every log backend."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from hivemem.memory import Activity, Conflict, InvalidInput, Lagged, Memory
from hivemem.memory.log.base import StateLog
from tests.embedders import HashEmbedder


def totals(report: Activity, group: str) -> dict[str, dict[str, int]]:
    """``{name: {metric: total}}`` of one group of a report."""
    metrics = ("writes", "conflicts", "expiries", "lagged")
    return {s.name: {m: sum(getattr(s, m)) for m in metrics} for s in getattr(report, group)}


def test_writes_and_expiries_are_counted_per_namespace_and_author(mem: Memory) -> None:
    mem.grant("planner", "team", "write")
    mem.grant("critic", "team", "write")
    planner, critic = mem.as_principal("planner"), mem.as_principal("critic")
    planner.put("team/notes", "a", 1)
    planner.put("team/notes", "a", 2)
    critic.put("team/notes", "b", 1)
    critic.delete("team/notes", "b")
    planner.put("team/tasks", "t", 1, ttl=0.01)
    time.sleep(0.05)
    assert mem.expire_due() == 1
    report = mem.activity(window=600)
    assert totals(report, "namespaces") == {
        "team/notes": {"writes": 4, "conflicts": 0, "expiries": 0, "lagged": 0},
        "team/tasks": {"writes": 1, "conflicts": 0, "expiries": 1, "lagged": 0},
    }
    # an expiry counts for whoever wrote the version that ran out, not for the reaper
    assert totals(report, "authors") == {
        "planner": {"writes": 3, "conflicts": 0, "expiries": 1, "lagged": 0},
        "critic": {"writes": 2, "conflicts": 0, "expiries": 0, "lagged": 0},
    }
    assert sum(report.total.writes) == 5 and sum(report.total.expiries) == 1


def test_buckets_cover_the_window_and_hold_each_write_once(mem: Memory) -> None:
    for i in range(7):
        mem.put("team", f"k{i}", i)
    report = mem.activity(window=600, bucket=60)
    assert report.bucket == 60
    start = report.start.timestamp()
    assert start % 60 == 0
    assert start <= report.end.timestamp() - 600 < start + 60
    assert report.end.timestamp() < start + 60 * len(report.total.writes)
    assert len(report.total.writes) in (11, 12)
    assert sum(report.total.writes) == 7
    # the default bucket gives about 60 of them over any window
    assert len(mem.activity(window=3600).total.writes) in (61, 62)


def test_a_refused_write_counts_as_a_conflict_for_its_writer(mem: Memory) -> None:
    mem.grant("planner", "team", "write")
    planner = mem.as_principal("planner")
    planner.put("team/locks", "deploy", "planner", if_version=0)
    with pytest.raises(Conflict) as err:
        planner.put("team/locks", "deploy", "again", if_version=0)
    assert (err.value.namespace, err.value.key) == ("team/locks", "deploy")
    with pytest.raises(Conflict):
        planner.put_many(
            [
                {"namespace": "team/other", "key": "x", "value": 1},
                {"namespace": "team/locks", "key": "deploy", "value": 2, "if_version": 7},
            ]
        )
    planner.put("team/doc", "d", {"a": 1})
    planner.put("team/doc", "d", {"a": 2})
    with pytest.raises(Conflict):  # overlapping three-way merge
        planner.put("team/doc", "d", {"a": 3}, merge="three_way", base_version=1)
    report = mem.activity(window=600)
    assert totals(report, "namespaces")["team/locks"]["conflicts"] == 2
    assert totals(report, "namespaces")["team/doc"]["conflicts"] == 1
    assert "team/other" not in totals(report, "namespaces")  # the refused batch wrote nothing
    assert totals(report, "authors")["planner"] == {
        "writes": 3,
        "conflicts": 3,
        "expiries": 0,
        "lagged": 0,
    }


def test_a_watcher_cut_off_for_lagging_is_counted_on_what_it_watched(
    log: StateLog, tmp_path: Path
) -> None:
    mem = Memory.open(
        str(tmp_path / "lag"),
        embedder=HashEmbedder(),
        log=log,
        reaper_interval=None,
        watch_queue=2,
    )
    try:
        mem.grant("slow", "team", "read")
        sub = mem.as_principal("slow").watch("team")
        assert list(sub.iter(timeout=0.05)) == []  # caught up: live now
        for i in range(4):
            mem.put("team/notes", f"k{i}", i)
        with pytest.raises(Lagged):
            list(sub.iter(timeout=0.05))
        sub.close()
        report = mem.activity(window=600)
        assert totals(report, "namespaces")["team"]["lagged"] == 1
        assert totals(report, "authors")["slow"]["lagged"] == 1
        assert sum(report.total.lagged) == 1
    finally:
        mem.close()


def test_only_readable_namespaces_and_the_authors_active_in_them_are_shown(
    mem: Memory,
) -> None:
    mem.grant("agent", "team/a", "write")
    mem.grant("spy", "secret", "write")
    mem.grant("viewer", "team/a", "read")
    agent, spy = mem.as_principal("agent"), mem.as_principal("spy")
    agent.put("team/a", "k", 1)
    spy.put("secret", "k", 1)
    with pytest.raises(Conflict):
        spy.put("secret", "k", 2, if_version=0)
    view = mem.as_principal("viewer").activity(window=600)
    assert list(totals(view, "namespaces")) == ["team/a"]
    assert list(totals(view, "authors")) == ["agent"]
    assert sum(view.total.writes) == 1 and sum(view.total.conflicts) == 0
    assert mem.as_principal("viewer").activity("secret", window=600).namespaces == []
    nobody = mem.as_principal("nobody").activity(window=600)
    assert nobody.namespaces == [] and nobody.authors == [] and sum(nobody.total.writes) == 0
    assert {"team/a", "secret"} == set(totals(mem.activity(window=600), "namespaces"))


def test_namespaces_group_by_depth_and_the_limit_keeps_the_busiest(mem: Memory) -> None:
    for ns, n in (("team/a", 3), ("team/b", 1), ("team/b/x", 2), ("ops", 1)):
        for i in range(n):
            mem.put(ns, f"k{i}", i)
    cut = totals(mem.activity(window=600, depth=1), "namespaces")
    assert {k: v["writes"] for k, v in cut.items()} == {"team": 6, "ops": 1}
    top = mem.activity(window=600, limit=2)
    assert [s.name for s in top.namespaces] == ["team/a", "team/b/x"]
    assert top.more_namespaces == 2
    assert sum(top.total.writes) == 7  # the total covers what the limit left out
    assert mem.activity("team/b", window=600).more_namespaces == 0


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"window": 59}, "window"),
        ({"window": 86401}, "window"),
        ({"window": True}, "window"),
        ({"bucket": 15}, "bucket"),
        ({"bucket": 0}, "bucket"),
        ({"window": 86400, "bucket": 10}, "bucket"),
        ({"depth": 0}, "depth"),
        ({"limit": 101}, "limit"),
        ({"prefix": "Bad Prefix"}, "prefix"),
    ],
)
def test_bad_arguments_are_refused_naming_them(
    mem: Memory, kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        mem.activity(**kwargs)
    assert err.value.field == field


def test_lease_entries_are_not_writes_and_items_ending_with_a_lease_are_expiries(
    mem: Memory,
) -> None:
    mem.grant("agent", "team", "write")
    agent = mem.as_principal("agent")
    lease = agent.lease(ttl=30)
    agent.put("team/presence", "agent", {"status": "up"}, lease=lease.id)
    agent.revoke_lease(lease.id)
    report = mem.activity(window=600)
    assert totals(report, "namespaces") == {
        "team/presence": {"writes": 1, "conflicts": 0, "expiries": 1, "lagged": 0}
    }
    assert totals(report, "authors") == {
        "agent": {"writes": 1, "conflicts": 0, "expiries": 1, "lagged": 0}
    }


def test_claim_collisions_and_stale_fencing_tokens_count_as_conflicts(mem: Memory) -> None:
    mem.grant("a1", "team", "write")
    mem.grant("a2", "team", "write")
    a1, a2 = mem.as_principal("a1"), mem.as_principal("a2")
    mem.put("team/tasks", "t1", {"n": 1})
    got = a1.claim("team/tasks", "t1", ttl=30)
    assert got is not None
    with pytest.raises(Conflict) as err:  # a2 collides with a1's claim
        a2.claim("team/tasks", "t1")
    assert (err.value.namespace, err.value.key) == ("team/tasks", "t1")
    a1.complete(got.token, {"n": 1, "done": True})
    with pytest.raises(Conflict):  # a stale token: the claim is over
        a1.complete(got.token, {"again": True})
    report = mem.activity(window=600)
    assert totals(report, "namespaces")["team/tasks"]["conflicts"] == 2
    authors = totals(report, "authors")
    assert authors["a1"]["conflicts"] == 1 and authors["a2"]["conflicts"] == 1
