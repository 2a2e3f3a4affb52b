"""Engine behaviour (versions, conflicts, TTL, search, watch, permissions, bad input),
run over every log backend through the ``mem`` fixture."""

from __future__ import annotations

import asyncio
import time

import pytest

from hivemem.memory import (
    Compacted,
    Conflict,
    InvalidInput,
    Lagged,
    Memory,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
)

# -- versions and history ------------------------------------------------------------


def test_namespaces_lists_live_counts_in_byte_order(mem: Memory) -> None:
    for ns, n in (("team/a", 2), ("team/a/x", 1), ("team-b", 1), ("teammates", 1)):
        for i in range(n):
            mem.put(ns, f"k{i}", i)
    mem.put("team/gone", "k", 1)
    mem.delete("team/gone", "k")
    mem.put("team/ttl", "k", 1, ttl=0.01)
    time.sleep(0.05)
    page = mem.namespaces()
    assert [(n.namespace, n.items) for n in page.namespaces] == [
        ("team-b", 1),
        ("team/a", 2),
        ("team/a/x", 1),
        ("teammates", 1),
    ]
    assert page.cursor is None
    assert [(n.namespace, n.items) for n in mem.namespaces("team").namespaces] == [
        ("team/a", 2),
        ("team/a/x", 1),
    ]
    cut = mem.namespaces("", depth=1).namespaces
    assert [(n.namespace, n.items) for n in cut] == [("team", 3), ("team-b", 1), ("teammates", 1)]


def test_namespaces_paginates_with_a_cursor(mem: Memory) -> None:
    for i in range(5):
        mem.put(f"ns{i}", "k", i)
    seen, cursor = [], None
    while True:
        page = mem.namespaces(limit=2, cursor=cursor)
        seen += [n.namespace for n in page.namespaces]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == [f"ns{i}" for i in range(5)]


def test_namespaces_never_lists_or_counts_what_the_caller_cannot_read(mem: Memory) -> None:
    mem.put("team/a", "k", 1)
    mem.put("team/b", "k", 1)
    mem.put("team/b", "j", 1)
    mem.put("secret", "k", 1)
    mem.grant("agent", "team/a", "read")
    agent = mem.as_principal("agent")
    assert [(n.namespace, n.items) for n in agent.namespaces().namespaces] == [("team/a", 1)]
    assert [(n.namespace, n.items) for n in agent.namespaces(depth=1).namespaces] == [("team", 1)]
    assert agent.namespaces("secret").namespaces == []
    assert mem.as_principal("stranger").namespaces().namespaces == []


def test_namespaces_rejects_bad_arguments_naming_them(mem: Memory) -> None:
    for kwargs, field in (
        ({"depth": 0}, "depth"),
        ({"depth": True}, "depth"),
        ({"limit": 0}, "limit"),
        ({"cursor": "???"}, "cursor"),
        ({"prefix": "Bad"}, "prefix"),
    ):
        with pytest.raises(InvalidInput) as err:
            mem.namespaces(**kwargs)
        assert err.value.field == field


def test_put_returns_the_version_it_wrote(mem: Memory) -> None:
    first = mem.put("team/notes", "plan", {"step": 1}, text="deploy friday")
    second = mem.put("team/notes", "plan", {"step": 2})
    assert (first.version, second.version) == (1, 2)
    assert second.revision == mem.revision == 2
    assert second.created_at == first.created_at and second.author == "admin"


def test_get_at_revision_sees_the_version_of_that_time(mem: Memory) -> None:
    mem.put("ns", "k", "one")
    mem.put("ns", "other", "x")
    mem.put("ns", "k", "two")
    assert mem.get("ns", "k", at_revision=2).value == "one"
    assert mem.get("ns", "k").value == "two"
    with pytest.raises(NotFound):
        mem.get("ns", "other", at_revision=1)


def test_get_at_a_future_revision_is_invalid(mem: Memory) -> None:
    mem.put("ns", "k", 1)
    with pytest.raises(InvalidInput) as err:
        mem.get("ns", "k", at_revision=99)
    assert err.value.field == "at_revision"


def test_delete_leaves_a_tombstone_and_numbering_goes_on(mem: Memory) -> None:
    mem.put("ns", "k", 1)
    tomb = mem.delete("ns", "k")
    assert tomb.deleted and tomb.version == 2
    with pytest.raises(NotFound):
        mem.get("ns", "k")
    again = mem.put("ns", "k", 3, if_version=0)
    assert again.version == 3
    assert [(i.version, i.deleted) for i in mem.history("ns", "k")] == [
        (1, False),
        (2, True),
        (3, False),
    ]


def test_deleting_a_missing_item_is_not_found(mem: Memory) -> None:
    with pytest.raises(NotFound):
        mem.delete("ns", "nope")


def test_compaction_makes_older_reads_and_watches_explicit_errors(mem: Memory) -> None:
    for i in range(4):
        mem.put("ns", "k", i)
    assert mem.compact(3) == 3
    with pytest.raises(Compacted) as err:
        mem.get("ns", "k", at_revision=2)
    assert err.value.compacted_revision == 3
    assert mem.get("ns", "k", at_revision=3).value == 2
    with pytest.raises(Compacted):
        mem.watch(["ns"], since=1)
    assert [c.revision for c in mem.watch(["ns"], since=2).iter(timeout=0.1)] == [3, 4]


# -- conflicts -------------------------------------------------------------------------


def test_cas_mismatch_raises_conflict_with_the_current_item(mem: Memory) -> None:
    mem.put("ns", "k", {"a": 1})
    mem.put("ns", "k", {"a": 2})
    with pytest.raises(Conflict) as err:
        mem.put("ns", "k", {"a": 3}, if_version=1)
    assert err.value.current.version == 2 and err.value.current.value == {"a": 2}
    assert mem.get("ns", "k").value == {"a": 2}


def test_if_version_zero_means_must_not_exist(mem: Memory) -> None:
    assert mem.put("ns", "k", 1, if_version=0).version == 1
    with pytest.raises(Conflict):
        mem.put("ns", "k", 2, if_version=0)


def test_merge_patch_applies_against_the_current_value(mem: Memory) -> None:
    mem.put("ns", "k", {"a": 1, "b": {"c": 1, "d": 2}}, metadata={"kind": "x"})
    out = mem.put("ns", "k", {"b": {"c": None, "e": 3}, "f": 4}, merge="patch")
    assert out.value == {"a": 1, "b": {"d": 2, "e": 3}, "f": 4}
    assert out.metadata == {"kind": "x"}


def test_three_way_merges_disjoint_changes(mem: Memory) -> None:
    mem.put("ns", "k", {"title": "t", "owner": "ann", "n": 1})
    mem.put("ns", "k", {"title": "t", "owner": "bob", "n": 1})  # someone else
    merged = mem.put(
        "ns", "k", {"title": "T2", "owner": "ann", "n": 1}, merge="three_way", base_version=1
    )
    assert merged.value == {"title": "T2", "owner": "bob", "n": 1}


def test_three_way_lists_every_conflicting_path(mem: Memory) -> None:
    mem.put("ns", "k", {"a": 1, "b": {"c": 1}, "d": 1})
    mem.put("ns", "k", {"a": 2, "b": {"c": 2}, "d": 1})
    with pytest.raises(Conflict) as err:
        mem.put("ns", "k", {"a": 3, "b": {"c": 3}, "d": 5}, merge="three_way", base_version=1)
    found = {(c.path, c.base, c.ours, c.theirs) for c in err.value.conflicts}
    assert found == {("/a", 1, 3, 2), ("/b/c", 1, 3, 2)}
    assert mem.get("ns", "k").version == 2


def test_three_way_on_conflict_chooses_a_side(mem: Memory) -> None:
    mem.put("ns", "k", {"a": 1, "d": 1})
    mem.put("ns", "k", {"a": 2, "d": 1})
    ours = mem.put(
        "ns", "k", {"a": 3, "d": 5}, merge="three_way", base_version=1, on_conflict="ours"
    )
    assert ours.value == {"a": 3, "d": 5}
    theirs = mem.put(
        "ns", "k", {"a": 9, "d": 5}, merge="three_way", base_version=2, on_conflict="theirs"
    )
    assert theirs.value == {"a": 3, "d": 5}


def test_txn_runs_success_ops_in_one_revision_when_compares_hold(mem: Memory) -> None:
    mem.put("ns", "a", 1)
    before = mem.revision
    result = mem.txn(
        compare=[{"namespace": "ns", "key": "a", "target": "version", "op": "==", "value": 1}],
        success=[
            {"op": "put", "namespace": "ns", "key": "a", "value": 2},
            {"op": "put", "namespace": "ns", "key": "b", "value": 2},
            {"op": "get", "namespace": "ns", "key": "a"},
        ],
        failure=[{"op": "put", "namespace": "ns", "key": "failed", "value": 1}],
    )
    assert result.succeeded and result.revision == before + 1
    assert {r.item.revision for r in result.results} == {before + 1}
    assert result.results[2].item.value == 2


def test_txn_runs_failure_ops_when_a_compare_fails(mem: Memory) -> None:
    mem.put("ns", "a", {"x": 1})
    result = mem.txn(
        compare=[
            {"namespace": "ns", "key": "a", "target": "value", "value": {"x": 2}},
            {"namespace": "ns", "key": "zz", "target": "exists", "value": False},
        ],
        success=[{"op": "delete", "namespace": "ns", "key": "a"}],
        failure=[{"op": "put", "namespace": "ns", "key": "failed", "value": True}],
    )
    assert not result.succeeded
    assert mem.get("ns", "failed").value is True and mem.get("ns", "a").version == 1


def test_txn_is_all_or_nothing(mem: Memory) -> None:
    mem.put("ns", "a", 1)
    before = mem.revision
    with pytest.raises(Conflict):
        mem.txn(
            success=[
                {"op": "put", "namespace": "ns", "key": "b", "value": 1},
                {"op": "put", "namespace": "ns", "key": "a", "value": 2, "if_version": 7},
            ]
        )
    assert mem.revision == before
    with pytest.raises(NotFound):
        mem.get("ns", "b")


def test_put_many_is_one_revision(mem: Memory) -> None:
    items = mem.put_many([{"namespace": "ns", "key": f"k{i}", "value": i} for i in range(20)])
    assert {i.revision for i in items} == {1} and len(items) == 20


# -- TTL -------------------------------------------------------------------------------


def test_expired_items_vanish_and_an_expire_change_is_logged(mem: Memory) -> None:
    mem.put("ns", "short", "gone soon", ttl=0.2)
    mem.put("ns", "long", "stays", ttl=60)
    watch = mem.watch(["ns"], since=mem.revision)
    time.sleep(0.3)
    with pytest.raises(NotFound):
        mem.get("ns", "short")
    assert [i.key for i in mem.list("ns").items] == ["long"]
    assert [h.item.key for h in mem.search("gone soon", namespaces=["ns"])] == ["long"][:0] or all(
        h.item.key != "short" for h in mem.search("gone soon", namespaces=["ns"])
    )
    assert mem.expire_due() == 1
    changes = list(watch.iter(timeout=0.2))
    assert [(c.op, c.key) for c in changes] == [("expire", "short")]


def test_writing_over_an_expired_item_logs_its_expiry_first(mem: Memory) -> None:
    mem.put("ns", "k", 1, ttl=0.05)
    time.sleep(0.1)
    item = mem.put("ns", "k", 2, if_version=0)
    assert item.version == 3
    assert [i.deleted for i in mem.history("ns", "k")] == [False, True, False]


# -- search ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["vector", "keyword", "hybrid"])
def test_search_finds_items_in_scope_only(mem: Memory, mode: str) -> None:
    mem.put("team/a", "deploy", "deploy the service on friday", metadata={"kind": "plan"})
    mem.put("team/b", "lunch", "lunch at noon with the team", metadata={"kind": "note"})
    mem.put("teammates", "deploy2", "deploy the service on friday", metadata={"kind": "plan"})
    hits = mem.search("deploy service friday", namespaces=["team"], mode=mode)
    assert hits and hits[0].item.key == "deploy"
    assert all(h.item.namespace.startswith("team/") for h in hits)
    filtered = mem.search(
        "deploy service friday", namespaces=["team"], mode=mode, filter={"kind": "note"}
    )
    assert [h.item.key for h in filtered] in (["lunch"], [])
    assert all(h.item.metadata["kind"] == "note" for h in filtered)


def test_search_never_returns_overwritten_or_deleted_versions(mem: Memory) -> None:
    mem.put("ns", "k", "alpha bravo charlie")
    mem.put("ns", "k", "delta echo foxtrot")
    mem.put("ns", "gone", "alpha bravo charlie")
    mem.delete("ns", "gone")
    for mode in ("vector", "keyword", "hybrid"):
        hits = mem.search("alpha bravo charlie", namespaces=["ns"], mode=mode)
        assert all(h.item.value != "alpha bravo charlie" for h in hits), mode


def test_search_with_a_supplied_vector(mem: Memory) -> None:
    mem.put("ns", "x", {"n": 1}, vector=[1.0] + [0.0] * 63)
    mem.put("ns", "y", {"n": 2}, vector=[0.0, 1.0] + [0.0] * 62)
    hits = mem.search(vector=[0.9, 0.1] + [0.0] * 62, namespaces=["ns"], mode="vector", k=1)
    assert hits[0].item.key == "x" and hits[0].score == pytest.approx(0.9938, abs=1e-3)


# -- watch -----------------------------------------------------------------------------


def test_watch_replays_then_streams_live_in_order(mem: Memory) -> None:
    mem.put("ns", "a", 1)
    mem.txn(
        success=[
            {"op": "put", "namespace": "ns", "key": "b", "value": 1},
            {"op": "put", "namespace": "ns", "key": "c", "value": 1},
        ]
    )
    sub = mem.watch(["ns"], since=0)
    it = sub.iter(timeout=0.5)
    got = [next(it) for _ in range(3)]
    mem.put("ns", "d", 1)
    mem.put("elsewhere", "e", 1)
    got.append(next(it))
    assert [(c.revision, c.key) for c in got] == [(1, "a"), (2, "b"), (2, "c"), (3, "d")]
    sub.close()


def test_a_slow_watcher_is_cut_off_with_where_to_resume(tmp_path, embedder) -> None:  # type: ignore[no-untyped-def]
    m = Memory.open(str(tmp_path), embedder=embedder, watch_queue=5, reaper_interval=None)
    try:
        sub = m.watch(["ns"], since=0)
        it = sub.iter(timeout=0.2)
        m.put("ns", "k", 0)
        first = next(it)
        for i in range(20):
            m.put("ns", "k", i + 1)
        with pytest.raises(Lagged) as err:
            list(it)
        assert err.value.resume_revision == first.revision
        resumed = [c.revision for c in m.watch(["ns"], since=err.value.resume_revision).iter(0.2)]
        assert resumed == list(range(2, 22))
    finally:
        m.close()


def test_async_watch_delivers_changes(mem: Memory) -> None:
    async def main() -> list[int]:
        out = []
        agen = mem.awatch(["ns"], since=0)
        mem.put("ns", "a", 1)
        mem.put("ns", "b", 1)
        async for change in agen:
            out.append(change.revision)
            if len(out) == 2:
                break
        return out

    assert asyncio.run(asyncio.wait_for(main(), 5)) == [1, 2]


# -- permissions -----------------------------------------------------------------------


def test_a_principal_sees_only_what_it_may_read(mem: Memory) -> None:
    mem.put("team/a", "k", "secret plan for team a")
    mem.put("team/b", "k", "secret plan for team b")
    mem.grant("ann", "team/a", "write")
    ann = mem.as_principal("ann")
    assert ann.get("team/a", "k").value == "secret plan for team a"
    with pytest.raises(NotFound) as hidden:
        ann.get("team/b", "k")
    with pytest.raises(NotFound) as missing:
        ann.get("team/a", "nope")
    assert str(hidden.value) == str(missing.value)
    with pytest.raises(NotFound):
        ann.history("team/b", "k")
    assert [i.namespace for i in ann.list("team").items] == ["team/a"]
    for mode in ("vector", "keyword", "hybrid"):
        hits = ann.search("secret plan", namespaces=["team"], mode=mode)
        assert {h.item.namespace for h in hits} == {"team/a"}
    events = [c.namespace for c in ann.watch(["team"], since=0).iter(timeout=0.1)]
    assert events == ["team/a"]


def test_write_needs_write_and_admin_needs_admin(mem: Memory) -> None:
    mem.grant("reader", "team", "read")
    mem.grant("boss", "team", "admin")
    reader, boss = mem.as_principal("reader"), mem.as_principal("boss")
    mem.put("team", "k", 1)
    with pytest.raises(PermissionDenied):
        reader.put("team", "k", 2)
    with pytest.raises(PermissionDenied):
        reader.delete("team", "k")
    with pytest.raises(PermissionDenied):
        reader.grant("reader", "team", "write")
    boss.grant("reader", "team/sub", "write")
    assert reader.put("team/sub", "x", 1).author == "reader"
    with pytest.raises(PermissionDenied):
        boss.grant("boss", "", "admin")
    with pytest.raises(PermissionDenied):
        boss.compact(1)
    assert mem.get("team", "k").version == 1


def test_nobody_is_granted_anything_by_default(mem: Memory) -> None:
    mem.put("ns", "k", 1)
    stranger = mem.as_principal("stranger")
    assert stranger.list("").items == []
    assert stranger.search("k", mode="keyword") == []
    with pytest.raises(PermissionDenied):
        stranger.put("ns", "x", 1)


# -- bad input -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda m: m.put("Bad", "k", 1), "namespace"),
        (lambda m: m.put("a//b", "k", 1), "namespace"),
        (lambda m: m.put("ns", "a/b", 1), "key"),
        (lambda m: m.put("ns", "", 1), "key"),
        (lambda m: m.put("ns", "k", {1, 2}), "value"),
        (lambda m: m.put("ns", "k", float("nan")), "value"),
        (lambda m: m.put("ns", "k", 1, merge="smash"), "merge"),
        (lambda m: m.put("ns", "k", {}, merge="three_way"), "base_version"),
        (lambda m: m.put("ns", "k", 1, metadata={"a": {"b": 1}}), "metadata.a"),
        (lambda m: m.put("ns", "k", 1, ttl=-1), "ttl"),
        (lambda m: m.put("ns", "k", 1, vector=[1.0, 2.0]), "vector"),
        (lambda m: m.put("ns", "k", 1, on_conflict="mine"), "on_conflict"),
        (lambda m: m.search("q", filter={"a": {"$regex": "x"}}), "filter.a.$regex"),
        (lambda m: m.search("q", mode="fuzzy"), "mode"),
        (lambda m: m.search("q", k=0), "k"),
        (lambda m: m.list("ns", limit=5000), "limit"),
        (lambda m: m.list("ns", cursor="!!"), "cursor"),
        (lambda m: m.txn(success=[{"op": "nuke", "namespace": "ns", "key": "k"}]), "success[0].op"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(mem: Memory, call, field: str) -> None:  # type: ignore[no-untyped-def]
    before = mem.revision
    with pytest.raises(InvalidInput) as err:
        call(mem)
    assert err.value.field == field
    assert mem.revision == before


def test_a_value_over_the_size_limit_is_rejected(tmp_path, embedder) -> None:  # type: ignore[no-untyped-def]
    m = Memory.open(str(tmp_path), embedder=embedder, max_value_bytes=1000, reaper_interval=None)
    try:
        with pytest.raises(PayloadTooLarge) as err:
            m.put("ns", "k", "x" * 2000)
        assert err.value.field == "value" and m.revision == 0
    finally:
        m.close()


def test_principals_lists_every_holder_of_a_grant_or_key(mem: Memory) -> None:
    mem.grant("ann", "team", "read")
    mem.create_key("bob")
    assert {"ann", "bob"} <= set(mem.principals())
    with pytest.raises(PermissionDenied):
        mem.as_principal("ann").principals()


def test_warm_up_loads_the_embedder_before_any_write(mem: Memory, embedder) -> None:  # type: ignore[no-untyped-def]
    before = embedder.calls
    mem.warm_up()
    assert embedder.calls == before + 1
