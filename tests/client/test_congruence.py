"""The embedded engine and the HTTP clients give the same results and the same errors.

Each scenario runs on a fresh embedded ``Memory`` and on a fresh live server through
``Client`` and ``AsyncClient``; the recorded outcomes (results without timestamps, or
error classes with their key attributes) must be equal.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hivemem.memory.errors import Conflict
from hivemem.memory.models import Compare, DeleteOp, GetOp, PutOp
from tests.client.conftest import ADMIN_KEY, LiveServer, open_memory
from tests.client.sides import (
    AsyncRemoteSide,
    EmbeddedSide,
    Recorder,
    RemoteSide,
    normalize,
    take,
)

pytestmark = pytest.mark.timeout(30)

Scenario = Callable[[Any, Recorder], None]
SCENARIOS: dict[str, Scenario] = {}


def scenario(fn: Scenario) -> Scenario:
    SCENARIOS[fn.__name__] = fn
    return fn


# -- scenarios -----------------------------------------------------------------------


@scenario
def put_then_get_returns_the_written_version(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/notes", "plan", {"step": 1}, text="Deploy on Friday", metadata={"k": "a"})
    rec(m.put, "team/notes", "plan", {"step": 2})
    rec(m.put, "team/notes", "plain", "a string value is its own text")
    rec(m.put, "team/notes", "odd key: ?#%&+ é", [1, None, True, 2.5])
    rec(m.get, "team/notes", "plan")
    rec(m.get, "team/notes", "plan", at_revision=1)
    rec(m.get, "team/notes", "plan", at_revision=0)
    rec(m.get, "team/notes", "odd key: ?#%&+ é")
    rec(m.get, "team/notes", "missing")
    rec(m.get, "team/notes", "plan", at_revision=99)
    rec(lambda: m.revision)
    rec(lambda: m.compacted_revision)
    rec(lambda: m.principal)
    rec(m.put, "team/notes", "ttl", {"x": 1}, ttl=60)


@scenario
def compare_and_swap_conflicts_carry_the_current_item(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/cas", "a", {"n": 1}, if_version=0)
    rec(m.put, "team/cas", "a", {"n": 2}, if_version=0)
    rec(m.put, "team/cas", "a", {"n": 2}, if_version=1)
    rec(m.put, "team/cas", "a", {"n": 3}, if_version=1)
    rec(m.delete, "team/cas", "a", if_version=7)
    rec(m.delete, "team/cas", "a", if_version=2)
    rec(m.put, "team/cas", "a", {"n": 4}, if_version=0)
    assert rec.errors() == ["Conflict", "Conflict", "Conflict"]


@scenario
def merge_patch_and_three_way_merge(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/doc", "d", {"title": "x", "tags": ["a"], "n": 1, "meta": {"o": 1}})
    rec(m.put, "team/doc", "d", {"meta": {"o": None, "p": 2}}, merge="patch")
    rec(m.put, "team/doc", "new", {"a": {"b": 1}}, merge="patch")
    rec(m.put, "team/doc", "d", {"title": "theirs", "tags": ["a"], "n": 1, "meta": {"p": 2}})
    # ours, based on version 2: a disjoint change merges
    rec(
        m.put,
        "team/doc",
        "d",
        {"title": "x", "tags": ["a"], "n": 5, "meta": {"p": 2}},
        merge="three_way",
        base_version=2,
    )
    # an overlapping change is a conflict listing each path
    ours = {"title": "ours", "tags": ["b"], "n": 1, "meta": {"p": 2}}
    rec(m.put, "team/doc", "d", ours, merge="three_way", base_version=2)
    rec(m.put, "team/doc", "d", ours, merge="three_way", base_version=2, on_conflict="ours")
    rec(m.put, "team/doc", "d", ours, merge="three_way", base_version=2, on_conflict="theirs")
    rec(m.put, "team/doc", "d", ours, merge="three_way")
    rec(m.put, "team/doc", "d", ours, merge="three_way", base_version=99)
    rec(m.put, "team/doc", "d", [1], merge="patch")
    rec(m.history, "team/doc", "d")
    assert rec.errors() == ["Conflict", "InvalidInput", "Conflict", "InvalidInput"]


@scenario
def updates_apply_inside_the_commit(side: Any, rec: Recorder) -> None:
    m = side.mem
    inc = [{"op": "increment", "path": "/n"}]
    rec(m.update, "team/c", "counter", inc)
    rec(
        m.update,
        "team/c",
        "counter",
        [*inc, {"op": "append", "path": "/log", "value": "a", "max_len": 2}],
    )
    rec(m.update, "team/c", "counter", inc, if_version=2)
    rec(m.update, "team/c", "counter", inc, if_version=1)
    rec(m.update, "team/c", "counter", [{"op": "test", "path": "/n", "value": 0}])
    rec(m.update, "team/c", "missing", inc, create=False)
    rec(m.update, "team/c", "counter", [{"op": "remove", "path": "/nope"}])
    rec(m.update, "team/c", "counter", [{"op": "increment", "path": "/log"}])
    rec(m.update, "team/c", "counter", [{"op": "bogus", "path": ""}])
    rec(m.update, "team/c", "counter", inc, text="a counter", metadata={"kind": "tally"})
    rec(m.put_many, [{"op": "update", "namespace": "team/c", "key": "counter", "ops": inc}] * 2)
    rec(m.history, "team/c", "counter")
    assert rec.errors() == ["Conflict", "Conflict", "NotFound"] + ["InvalidInput"] * 3


@scenario
def delete_leaves_a_tombstone_in_history(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/notes", "gone", "v1")
    rec(m.put, "team/notes", "gone", "v2")
    rec(m.delete, "team/notes", "gone")
    rec(m.get, "team/notes", "gone")
    rec(m.delete, "team/notes", "gone")
    rec(m.history, "team/notes", "gone")
    rec(m.get, "team/notes", "gone", at_revision=2)
    rec(m.put, "team/notes", "gone", "v4")
    rec(m.history, "team/notes", "gone")
    rec(m.history, "team/notes", "never")
    assert rec.errors() == ["NotFound", "NotFound", "NotFound"]


@scenario
def list_paginates_and_filters(side: Any, rec: Recorder) -> None:
    m = side.mem
    for i in range(7):
        ns = "team/a" if i % 2 else "team/b"
        rec(m.put, ns, f"k{i}", {"i": i}, metadata={"priority": i % 3, "kind": "note"})
    rec(m.put, "other", "x", 1, metadata={"priority": 2})
    cursor = None
    for _ in range(5):
        page = rec(m.list, "team", limit=3, cursor=cursor)
        cursor = page.cursor
        if cursor is None:
            break
    rec(m.list, "", filter={"priority": {"$gte": 2}})
    rec(m.list, "team", {"kind": "note", "priority": {"$in": [0, 1]}}, 2)
    rec(m.list)
    rec(m.list, "team/a", filter={"priority": {"$regex": "x"}})
    rec(m.list, "team", limit=0)
    rec(m.list, "team", cursor="not-a-cursor")
    rec(m.list, "Bad Prefix")
    assert rec.errors() == ["InvalidInput"] * 4


@scenario
def namespaces_are_counted_cut_and_paginated(side: Any, rec: Recorder) -> None:
    m = side.mem
    for ns, n in (("team/a", 3), ("team/a/x", 1), ("team/b", 2), ("teammates", 1), ("z", 1)):
        for i in range(n):
            rec(m.put, ns, f"k{i}", i)
    rec(m.delete, "team/b", "k0")
    rec(m.namespaces)
    rec(m.namespaces, "team")
    rec(m.namespaces, "team", depth=1)
    rec(m.namespaces, "", depth=2)
    page = rec(m.namespaces, "", limit=2)
    rec(m.namespaces, "", limit=2, cursor=page.cursor)
    m.grant("reader", "team/a", "read")
    rec(side.as_principal("reader").namespaces)
    rec(side.as_principal("reader").namespaces, "", depth=1)
    rec(side.as_principal("nobody").namespaces)
    rec(m.namespaces, "team", depth=0)
    rec(m.namespaces, "team", limit=1001)
    rec(m.namespaces, "team", cursor="not-a-cursor")
    rec(m.namespaces, "Bad Prefix")
    assert rec.errors() == ["InvalidInput"] * 4


def activity_totals(report: Any) -> Any:
    """Per-series totals of an activity report (bucket edges depend on the clock)."""
    metrics = ("writes", "conflicts", "expiries", "lagged")
    return {
        group: [(s.name, *(sum(getattr(s, m)) for m in metrics)) for s in getattr(report, group)]
        for group in ("namespaces", "authors")
    } | {"bucket": report.bucket, "more": (report.more_namespaces, report.more_authors)}


@scenario
def activity_counts_writes_and_conflicts_in_readable_namespaces(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/a", "k", 1)
    rec(m.put, "team/a", "k", 2, if_version=0)
    rec(m.put, "team/b/deep", "k", 1)
    rec(m.delete, "team/b/deep", "k")
    rec(m.put, "other", "k", 1)
    rec(lambda: activity_totals(m.activity(window=600)))
    rec(lambda: activity_totals(m.activity("team", window=600, depth=2, limit=1)))
    m.grant("reader", "team/a", "read")
    rec(lambda: activity_totals(side.as_principal("reader").activity(window=900, bucket=30)))
    rec(m.activity, window=30)
    rec(m.activity, bucket=25)
    assert rec.errors() == ["Conflict", "InvalidInput", "InvalidInput"]


@scenario
def search_in_every_mode_with_filters(side: Any, rec: Recorder) -> None:
    m = side.mem
    docs = [
        ("team/ops", "deploy", "deploy the service on friday", {"kind": "plan", "p": 2}),
        ("team/ops", "rollback", "rollback the deploy if errors rise", {"kind": "plan", "p": 1}),
        ("team/dev", "lunch", "team lunch on friday at noon", {"kind": "social", "p": 0}),
        ("other/x", "deploy2", "deploy elsewhere on friday", {"kind": "plan", "p": 3}),
    ]
    for ns, key, text, meta in docs:
        rec(m.put, ns, key, {"key": key}, text=text, metadata=meta)
    for mode in ("hybrid", "vector", "keyword"):
        rec(m.search, "deploy on friday", mode=mode)
        rec(m.search, "deploy on friday", namespaces=["team"], k=2, mode=mode)
        rec(m.search, "friday", namespaces="team", mode=mode, filter={"kind": "plan"})
        rec(m.search, "deploy", mode=mode, filter={"p": {"$gte": 2}})
    rec(m.search, None, vector=[1.0] + [0.0] * 63, mode="vector", k=2)
    rec(m.search, "deploy", k=0)
    rec(m.search, "deploy", mode="fuzzy")
    rec(m.search, None, mode="keyword")
    rec(m.search)
    rec(m.search, "x", vector=[1.0, 2.0], mode="vector")
    rec(m.search, "x", filter={"p": {"$bogus": 1}})
    assert rec.errors() == ["InvalidInput"] * 6


@scenario
def threads_search_at_revision_and_recall_agree(side: Any, rec: Recorder) -> None:
    m = side.mem
    turns = ["we adopted a puppy", "what breed is it", "a beagle named biscuit", "lunch at noon"]
    for i, text in enumerate(turns):
        rec(m.put, "team/chat", f"t{i}", text, thread="s1")
    at = m.revision
    rec(m.delete, "team/chat", "t0")
    for mode in ("hybrid", "keyword"):
        rec(m.search, "puppy", namespaces=["team"], mode=mode, thread="s1")
        rec(m.search, "puppy", namespaces=["team"], mode=mode, at_revision=at)
    rec(m.recall, "puppy beagle", ["team"], budget_tokens=40)
    rec(m.recall, "puppy", ["team"], budget_tokens=40, at_revision=at, thread="s1")
    rec(m.search, "puppy", thread="a/b")
    rec(m.search, "puppy", at_revision=at + 5)
    rec(m.recall, "puppy", budget_tokens=0)
    assert rec.errors() == ["InvalidInput"] * 3


@scenario
def txn_runs_success_or_failure_in_one_revision(side: Any, rec: Recorder) -> None:
    m = side.mem
    claim = [Compare(namespace="team/tasks", key="t1", target="exists", value=False)]
    take_it = [PutOp(namespace="team/tasks", key="t1", value={"owner": "a1"})]
    look = [GetOp(namespace="team/tasks", key="t1")]
    rec(m.txn, claim, take_it, look)
    rec(m.txn, claim, take_it, look)
    rec(
        m.txn,
        [{"namespace": "team/tasks", "key": "t1", "target": "version", "op": ">=", "value": 1}],
        [
            {"op": "put", "namespace": "team/tasks", "key": "t2", "value": 2},
            {"op": "delete", "namespace": "team/tasks", "key": "t1"},
            DeleteOp(namespace="team/tasks", key="t2"),
        ],
    )
    rec(m.txn, [], [{"op": "put", "namespace": "team/tasks", "key": "t3", "value": 1}])
    rec(m.txn, [{"namespace": "Bad", "key": "t1"}], take_it)
    rec(m.txn, success=[{"op": "put", "namespace": "team/tasks", "key": "t3", "if_version": 5}])
    rec(m.txn, success=[{"op": "frobnicate", "namespace": "team/tasks", "key": "t3"}])
    rec(m.get, "team/tasks", "t3")
    rec(lambda: m.revision)
    assert rec.errors() == ["InvalidInput", "Conflict", "InvalidInput"]


@scenario
def put_many_is_all_or_nothing(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(
        m.put_many,
        [
            PutOp(namespace="team/b", key="one", value=1, text="first"),
            {"namespace": "team/b", "key": "two", "value": 2, "metadata": {"x": 1}},
        ],
    )
    rec(
        m.put_many,
        [{"namespace": "team/b", "key": "three", "value": 3}, {"namespace": "B", "key": "k"}],
    )
    rec(m.put_many, [{"namespace": "team/b", "key": "one", "value": 9, "if_version": 3}])
    rec(m.list, "team/b")
    rec(lambda: m.revision)
    assert rec.errors() == ["InvalidInput", "Conflict"]


@scenario
def compact_makes_old_revisions_an_explicit_error(side: Any, rec: Recorder) -> None:
    m = side.mem
    for i in range(5):
        rec(m.put, "team/c", "k", {"i": i})
    rec(m.compact, 4)
    rec(lambda: m.compacted_revision)
    rec(m.get, "team/c", "k", at_revision=2)
    rec(m.get, "team/c", "k", at_revision=4)
    rec(m.history, "team/c", "k")
    rec(lambda: take(m.watch(["team"], since=0), 1))
    rec(lambda: take(m.watch(["team"], since=3), 2))
    rec(m.compact, 99)
    rec(m.compact, 0)
    assert rec.errors() == ["Compacted", "Compacted", "InvalidInput", "InvalidInput"]


@scenario
def watch_replays_whole_revisions_in_order(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/w", "a", 1)
    rec(m.put, "other/w", "b", 2)
    rec(m.put_many, [{"namespace": "team/w", "key": f"m{i}", "value": i} for i in range(3)])
    rec(m.delete, "team/w", "a")
    rec(m.txn, [], [{"op": "put", "namespace": "team/x", "key": "t", "value": 1}])
    rec(lambda: take(m.watch(["team"]), 6))
    rec(lambda: take(m.watch(None, since=2), 5))
    rec(lambda: take(m.watch("team/x"), 1))
    rec(lambda: take(m.watch(["team/w", "other"], since=1), 5))
    rec(lambda: m.watch(["team"], since=-1))
    rec(lambda: m.watch(["Team"]))
    assert rec.errors() == ["InvalidInput", "InvalidInput"]


@scenario
def grants_decide_what_a_principal_sees_and_changes(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/notes", "n", "team note")
    rec(m.put, "secret/x", "s", "secret note")
    rec(m.grant, "reader", "team", "read")
    rec(m.grant, "writer", "team/notes", "write")
    rec(m.grant, "lead", "team", "admin")
    reader, writer, lead = (side.as_principal(p) for p in ("reader", "writer", "lead"))
    rec(lambda: reader.principal)
    rec(reader.get, "team/notes", "n")
    rec(reader.get, "secret/x", "s")
    rec(reader.history, "secret/x", "s")
    rec(reader.put, "team/notes", "n", "overwrite")
    rec(reader.put, "secret/x", "s", "overwrite")
    rec(reader.list)
    rec(reader.search, "note", mode="keyword")
    rec(lambda: take(reader.watch(None), 1))
    rec(reader.grant, "reader", "team", "admin")
    rec(reader.compact, 1)
    rec(reader.create_key, "reader")
    rec(writer.put, "team/notes", "w", "by writer")
    rec(writer.put, "team/other", "w", "by writer")
    rec(writer.delete, "team/notes", "n")
    rec(lead.grant, "reader", "team/sub", "write")
    rec(lead.grant, "reader", "secret", "read")
    rec(lead.grants)
    rec(m.grants, "reader")
    rec(m.grants)
    rec(m.revoke, "reader", "team")
    rec(reader.get, "team/notes", "w")
    rec(m.grant, "reader", "team", "superuser")
    assert rec.errors() == [
        "NotFound",
        "NotFound",
        "PermissionDenied",
        "PermissionDenied",
        "PermissionDenied",
        "PermissionDenied",
        "PermissionDenied",
        "PermissionDenied",
        "PermissionDenied",
        "NotFound",
        "InvalidInput",
    ]


def _lease_view(lease: Any) -> Any:
    """A lease without what differs by run (its random id, the clock)."""
    if lease is None:
        return None
    return {k: lease.model_dump()[k] for k in ("ttl", "holder", "revision", "alive", "items")}


@scenario
def leases_grant_renew_attach_and_revoke(side: Any, rec: Recorder) -> None:
    m = side.mem
    lease = m.lease(ttl=30)
    rec(lambda: _lease_view(lease))
    rec(lambda: _lease_view(m.keepalive(lease.id)))
    rec(lambda: m.put("team/p", "a", {"up": True}, lease=lease.id).lease == lease.id)
    rec(lambda: _lease_view(m.get_lease(lease.id)))
    rec(m.put, "team/p", "b", 1, lease=lease.id, ttl=5)
    rec(m.put, "team/p", "c", 1, lease="0123456789abcdef")
    rec(m.keepalive, "nope")
    rec(m.lease, ttl=0)
    rec(m.revoke_lease, lease.id)
    rec(m.get, "team/p", "a")
    rec(m.keepalive, lease.id)
    rec(m.get_lease, lease.id)
    rec(lambda: [(c.op, c.key, c.reason) for c in take(m.watch("team", since=0), 2)])
    other = side.as_principal("agent")
    rec(other.get_lease, lease.id)


def _conflict_state(fn: Any, *args: Any) -> Any:
    """The claim state a Conflict carries (its lease id differs by run)."""
    try:
        fn(*args)
    except Conflict as err:
        return ("Conflict", err.current.claim.state if err.current else None)
    return "no conflict"


def _token_free(claim: Any) -> Any:
    """A claim without what differs by run (token revision is equal; the lease id is not)."""
    if claim is None:
        return None
    item = normalize(claim.item)
    item["claim"]["lease"] = item["claim"]["lease"] is not None
    return {"token": claim.token, "item": item}


@scenario
def claims_fence_complete_and_release(side: Any, rec: Recorder) -> None:
    m = side.mem
    for i in range(3):
        rec(m.put, "team/tasks", f"t{i}", {"n": i}, metadata={"kind": "a" if i else "b"})
    first = m.claim("team/tasks", ttl=30)
    rec(lambda: _token_free(first))
    rec(lambda: _token_free(m.claim("team/tasks", filter={"kind": "a"}, max_attempts=2)))
    rec(m.claim, "team/tasks", filter={"kind": "b"})
    rec(lambda: _conflict_state(m.claim, "team/tasks", "t1"))
    rec(m.claim, "team/tasks", "nope")
    rec(m.claim, "team/tasks", ttl=0)
    rec(m.put, "team/out", "r", "result", fence=first.token)
    rec(m.delete, "team/out", "r", fence="hmf1.bad")
    done = m.complete(first.token, {"n": 0, "ok": True})
    rec(lambda: (done.value, done.claim.state if done.claim else None))
    rec(lambda: _conflict_state(m.complete, first.token))
    rec(m.put, "team/out", "r", "late", fence=first.token)
    rec(
        m.txn,
        success=[
            {"op": "put", "namespace": "team/out", "key": "r", "value": 1, "fence": first.token}
        ],
    )
    third = m.claim("team/tasks")
    rec(lambda: third.item.key if third else None)
    rec(lambda: m.release(third.token).claim.state if third else None)


@scenario
def semantic_and_filtered_watches_deliver_only_matches(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/n", "a", "deploy incident on payments", metadata={"kind": "incident"})
    rec(m.put, "team/n", "b", "lunch menu for friday", metadata={"kind": "chat"})
    rec(m.put, "team/n", "c", "payments deploy rolled back", metadata={"kind": "chat"})
    rec(m.delete, "team/n", "a")

    def seen(**options: Any) -> Any:
        got = take(m.watch("team", since=0, **options), 3)
        return [(c.op, c.key, None if c.score is None else round(c.score, 4)) for c in got]

    rec(seen, query="payments deploy incident", threshold=0.3)
    rec(lambda: [(c.op, c.key) for c in take(m.watch("team", 0, filter={"kind": "incident"}), 2)])
    rec(m.watch, "team", 0, threshold=5, query="x")
    rec(m.watch, "team", 0, filter={"kind": {"$bad": 1}})


def _proposal_view(p: Any) -> Any:
    """A proposal without its random id."""
    if p is None:
        return None
    out = normalize(p)
    out["id"] = out["id"] is not None
    return out


@scenario
def proposals_wait_for_review(side: Any, rec: Recorder) -> None:
    m = side.mem
    m.grant("intern", "team", "propose")
    m.grant("lead", "team", "write")
    m.grant("reader", "team", "read")
    intern, lead = side.as_principal("intern"), side.as_principal("lead")
    reader = side.as_principal("reader")
    rec(m.put, "team/plan", "launch", {"date": "mon", "owner": "a"})
    p = intern.put("team/plan", "launch", {"date": "tue", "owner": "a"})
    rec(lambda: _proposal_view(p))
    rec(m.get, "team/plan", "launch")
    rec(lambda: [_proposal_view(x) for x in lead.proposals("team")])
    rec(lambda: reader.proposals())
    rec(reader.get_proposal, p.id)
    rec(intern.approve, p.id)
    rec(m.put, "team/plan", "launch", {"date": "mon", "owner": "b"})
    rec(lambda: _proposal_view(lead.approve(p.id, "ok")))
    rec(m.get, "team/plan", "launch")
    rec(lambda: _conflict_state(lead.reject, p.id, "late"))
    d = intern.delete("team/plan", "launch")
    rec(lambda: _proposal_view(lead.reject(d.id, "keep it")))
    rec(
        lambda: [
            (c.op, c.proposal.status if c.proposal else None)
            for c in take(lead.watch("team", since=0), 7)
        ]
    )
    rec(intern.put, "team/plan", "x", 1, metadata={"bad key": 1})
    rec(m.proposals, status="maybe")


@scenario
def invalid_input_names_the_field(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "Team Notes", "k", 1)
    rec(m.put, "", "k", 1)
    rec(m.put, "team", "a/b", 1)
    rec(m.put, "team", "..", 1)
    rec(m.put, "team", "k", 1, metadata={"bad key": 1})
    rec(m.put, "team", "k", 1, metadata={"nested": {"a": 1}})
    rec(m.put, "team", "k", 1, merge="bogus")
    rec(m.put, "team", "k", 1, on_conflict="mine")
    rec(m.put, "team", "k", 1, ttl=-1)
    rec(m.put, "team", "k", 1, if_version=-1)
    rec(m.put, "team", "k", 1, vector=[0.0] * 64)
    rec(m.put, "team", "k", 1, vector=[1.0, 2.0])
    rec(m.put, "team", "k", float("nan"))
    rec(m.get, "team", "")
    rec(m.get, "team", "k", at_revision=-1)
    rec(m.delete, "team//x", "k")
    rec(m.history, "team", "a/b")
    rec(m.grant, "bad principal!", "team", "read")
    rec(m.create_key, "bad principal!")
    assert len(rec.errors()) == 19


@scenario
def import_writes_exported_records_back(side: Any, rec: Recorder) -> None:
    m = side.mem
    rec(m.put, "team/e", "a", {"v": 1}, text="alpha", metadata={"m": 1})
    rec(m.put, "team/e", "b", "beta")
    rec(m.put, "team/f", "c", [3])
    records = rec(lambda: list(m.export("team")))
    rec(lambda: list(m.export("team/e", vectors=False)))
    for r in records:
        r["namespace"] = r["namespace"].replace("team", "copy", 1)
    rec(m.import_items, records)
    rec(m.import_items, records, batch=1)
    rec(m.list, "copy")
    rec(m.search, "alpha", namespaces=["copy"], mode="vector", k=1)
    rec(m.import_items, [{"namespace": "copy", "key": "x", "value": 1}, "nope"])
    assert rec.errors() == ["InvalidInput"]


# -- running them --------------------------------------------------------------------

REMOTES = {"sync": RemoteSide, "async": AsyncRemoteSide}


@pytest.fixture(params=sorted(REMOTES))
def remote_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sides(
    remote_kind: str, make_server: Callable[..., LiveServer]
) -> Iterator[tuple[EmbeddedSide, Any]]:
    embedded = EmbeddedSide(open_memory())
    remote = REMOTES[remote_kind](make_server().url, ADMIN_KEY)
    yield embedded, remote
    remote.close()
    embedded.close()


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_client_matches_embedded(name: str, sides: tuple[EmbeddedSide, Any]) -> None:
    embedded, remote = sides
    expected, actual = Recorder(), Recorder()
    SCENARIOS[name](embedded, expected)
    SCENARIOS[name](remote, actual)
    assert len(actual.outcomes) == len(expected.outcomes)
    for n, (want, got) in enumerate(zip(expected.outcomes, actual.outcomes, strict=True)):
        assert got == want, f"step {n} of {name} differs"
