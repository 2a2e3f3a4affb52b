"""The StateLog protocol, written once and run against every backend."""

from __future__ import annotations

import json
import time

import pytest

from hivemem.memory.log.base import PendingChange, StateLog, WriteView


def put_plan(*items: tuple[str, str, object], text: str | None = None, meta=None):  # type: ignore[no-untyped-def]
    """A plan that writes each (namespace, key, value) as the next version."""

    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        latest = view.latest([(ns, k) for ns, k, _ in items])
        out = []
        for ns, k, v in items:
            prev = latest.get((ns, k))
            version = (prev.version if prev else 0) + 1
            out.append(
                PendingChange(
                    "put",
                    ns,
                    k,
                    version,
                    prev.version if prev else None,
                    json.dumps(v),
                    text if text is not None else (v if isinstance(v, str) else None),
                    json.dumps(meta or {}),
                )
            )
        return out, None

    return plan


def delete_plan(ns: str, key: str):  # type: ignore[no-untyped-def]
    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        prev = view.latest([(ns, key)])[(ns, key)]
        return [PendingChange("delete", ns, key, prev.version + 1, prev.version)], None

    return plan


def test_each_commit_takes_the_next_revision_without_gaps(log: StateLog) -> None:
    revisions = [log.commit("a", put_plan(("ns", f"k{i}", i)))[0] for i in range(5)]
    assert revisions == [1, 2, 3, 4, 5]
    assert log.head() == 5


def test_a_failed_plan_consumes_no_revision_and_writes_nothing(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "k", 1)))

    def boom(view: WriteView):  # type: ignore[no-untyped-def]
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        log.commit("a", boom)
    assert log.head() == 1
    assert log.commit("a", put_plan(("ns", "k", 2)))[0] == 2


def test_an_empty_plan_consumes_no_revision(log: StateLog) -> None:
    rev, rows, result = log.commit("a", lambda view: ([], "read-only"))
    assert (rev, rows, result) == (0, [], "read-only")


def test_one_transaction_is_one_revision_for_many_items(log: StateLog) -> None:
    rev, rows, _ = log.commit("a", put_plan(("ns", "a", 1), ("ns", "b", 2), ("other", "c", 3)))
    assert rev == 1 and {r.revision for r in rows} == {1}
    assert [r.key for r in log.changes_since(0, 10)] == ["a", "b", "c"]


def test_read_at_revision_ignores_later_writes(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "k", "one")))
    log.commit("a", put_plan(("ns", "k", "two")))
    now = time.time()
    assert json.loads(log.get("ns", "k", 1, now).value) == "one"  # type: ignore[union-attr]
    assert json.loads(log.get("ns", "k", None, now).value) == "two"  # type: ignore[union-attr]


def test_delete_leaves_a_tombstone_and_hides_the_item(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "k", 1)))
    log.commit("b", delete_plan("ns", "k"))
    assert log.get("ns", "k", None, time.time()) is None
    assert log.get("ns", "k", 1, time.time()) is not None
    ops = [(r.op, r.version, r.author) for r in log.history("ns", "k")]
    assert ops == [("put", 1, "a"), ("delete", 2, "b")]


def test_changes_since_returns_whole_revisions_in_order(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "a", 1), ("ns", "b", 1)))
    log.commit("a", put_plan(("ns", "c", 1)))
    log.commit("a", put_plan(("ns", "d", 1), ("ns", "e", 1), ("ns", "f", 1)))
    page = log.changes_since(0, 2)
    assert [r.revision for r in page] == [1, 1, 2]
    rest = log.changes_since(2, 10)
    assert [r.key for r in rest] == ["d", "e", "f"]
    assert log.changes_since(3, 10) == []


def test_scopes_are_segment_prefixes_not_string_prefixes(log: StateLog) -> None:
    log.commit("a", put_plan(("team", "a", 1), ("team/x", "b", 1), ("teammates", "c", 1)))
    keys = [r.key for r in log.list_items(["team"], None, 10, None, time.time())]
    assert keys == ["a", "b"]
    assert len(log.list_items([""], None, 10, None, time.time())) == 3
    assert log.list_items([], None, 10, None, time.time()) == []


def test_list_pages_after_a_key_in_order(log: StateLog) -> None:
    log.commit("a", put_plan(*[("ns", f"k{i:02d}", i) for i in range(7)]))
    first = log.list_items(["ns"], None, 3, None, time.time())
    second = log.list_items(["ns"], None, 3, ("ns", first[-1].key), time.time())
    assert [r.key for r in first + second] == [f"k{i:02d}" for i in range(6)]


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        ({"kind": "plan"}, {"a"}),
        ({"kind": {"$ne": "plan"}}, {"b", "c"}),
        ({"n": {"$gte": 2}}, {"b", "c"}),
        ({"n": {"$lt": 2}}, {"a"}),
        ({"kind": {"$in": ["plan", "note"]}}, {"a", "b"}),
        ({"kind": {"$nin": ["plan"]}}, {"b", "c"}),
        ({"tags": "x"}, {"a", "c"}),
        ({"tags": {"$in": ["y"]}}, {"c"}),
        ({"done": True}, {"b"}),
        ({"done": {"$exists": False}}, {"a", "c"}),
        ({"kind": "plan", "n": 1}, {"a"}),
        ({"n": {"$gt": "a"}}, set()),
    ],
)
def test_metadata_filters(log: StateLog, flt: dict, expected: set[str]) -> None:
    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        rows = [
            ("a", {"kind": "plan", "n": 1, "tags": ["x"]}),
            ("b", {"kind": "note", "n": 2, "done": True}),
            ("c", {"kind": "todo", "n": 3.5, "tags": ["x", "y"]}),
        ]
        return [
            PendingChange("put", "ns", k, 1, None, "1", f"text {k}", json.dumps(m)) for k, m in rows
        ], None

    log.commit("a", plan)
    got = {r.key for r in log.list_items(["ns"], flt, 10, None, time.time())}
    assert got == expected


def test_state_at_returns_the_versions_visible_at_that_revision(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "a", "first"), ("ns", "b", "bee")))  # 1
    log.commit("a", put_plan(("ns", "a", "second")))  # 2
    log.commit("a", delete_plan("ns", "b"))  # 3
    log.commit("a", put_plan(("other", "c", "sea")))  # 4

    def seen(revision: int, scopes: list[str]) -> dict[str, str | None]:
        return {r.key: r.text for r in log.state_at(revision, scopes, None)}

    assert seen(1, ["ns"]) == {"a": "first", "b": "bee"}
    assert seen(2, ["ns"]) == {"a": "second", "b": "bee"}
    assert seen(3, [""]) == {"a": "second"}
    assert seen(4, [""]) == {"a": "second", "c": "sea"}
    assert seen(0, [""]) == {}
    assert all(r.vector is None for r in log.state_at(4, [""], None))


def test_state_at_hides_items_expired_at_that_revision(log: StateLog) -> None:
    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        return [
            PendingChange("put", "ns", "gone", 1, None, "1", "t", "{}", expires_at=view.now - 1),
            PendingChange("put", "ns", "kept", 1, None, "1", "t", "{}", expires_at=view.now + 60),
        ], None

    revision, _, _ = log.commit("a", plan)
    assert [r.key for r in log.state_at(revision, ["ns"], None)] == ["kept"]


def test_a_threaded_change_takes_its_own_id_as_place_unless_it_keeps_one(log: StateLog) -> None:
    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        return [
            PendingChange("put", "ns", "a", 1, None, "1", "x", "{}", thread="t"),
            PendingChange("put", "ns", "b", 1, None, "1", "y", "{}", thread="t", thread_pos=7),
            PendingChange("put", "ns", "c", 1, None, "1", "z", "{}"),
        ], None

    _, rows, _ = log.commit("a", plan)
    by_key = {r.key: r for r in rows}
    assert by_key["a"].thread_pos == by_key["a"].id
    assert (by_key["b"].thread, by_key["b"].thread_pos) == ("t", 7)
    assert (by_key["c"].thread, by_key["c"].thread_pos) == (None, None)
    stored = {r.key: (r.thread, r.thread_pos) for r in log.history("ns", "a")}
    assert stored == {"a": ("t", by_key["a"].id)}
    assert set(log.filtered_ids(["ns"], None, time.time(), thread="t")) == {
        by_key["a"].id,
        by_key["b"].id,
    }


def test_compaction_keeps_what_reads_at_or_above_it_need(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "k", 1)))  # 1
    log.commit("a", put_plan(("ns", "other", 1)))  # 2
    log.commit("a", put_plan(("ns", "k", 2)))  # 3
    log.commit("a", put_plan(("ns", "k", 3)))  # 4
    assert log.compact(4) == 4
    assert log.compacted_revision() == 4
    now = time.time()
    assert json.loads(log.get("ns", "k", 4, now).value) == 3  # type: ignore[union-attr]
    assert json.loads(log.get("ns", "other", 4, now).value) == 1  # type: ignore[union-attr]
    assert [r.version for r in log.history("ns", "k")] == [2, 3]
    # numbering goes on after compaction
    rev, rows, _ = log.commit("a", put_plan(("ns", "k", 4)))
    assert rows[0].version == 4


def test_expired_lists_live_items_past_their_ttl(log: StateLog) -> None:
    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        return [
            PendingChange("put", "ns", "old", 1, None, "1", None, "{}", expires_at=view.now - 1),
            PendingChange("put", "ns", "new", 1, None, "1", None, "{}", expires_at=view.now + 60),
        ], None

    log.commit("a", plan)
    assert log.expired(time.time(), 10) == [("ns", "old")]
    assert log.get("ns", "old", None, time.time()) is None


def test_vectors_are_stored_with_the_item(log: StateLog) -> None:
    blob = bytes(range(16))

    def plan(view: WriteView):  # type: ignore[no-untyped-def]
        return [PendingChange("put", "ns", "v", 1, None, "1", "t", "{}", blob)], None

    _, rows, _ = log.commit("a", plan)
    assert list(log.live_vectors()) == [(rows[0].id, "ns", blob)]


def test_acl_tables_round_trip(log: StateLog) -> None:
    acl = log.acl()
    acl.acl_set_grant("bob", "team", "write")
    assert ("bob", "team", "write") in acl.acl_grants()
    acl.acl_set_grant("bob", "team", None)
    assert acl.acl_grants() == []
    acl.acl_add_key("k1", "bob", "digest")
    assert acl.acl_key("k1")[1:3] == ("bob", "digest")
    assert acl.acl_revoke_key("k1") is True
    assert acl.acl_key("k1")[4] is not None


# -- group commit ----------------------------------------------------------------------


def test_a_group_gives_each_plan_its_own_revision_in_order(log: StateLog) -> None:
    log.commit("a", put_plan(("ns", "k", 0)))
    outcomes = log.commit_group(
        [("a", put_plan(("ns", "k", 1))), ("b", put_plan(("ns", "k", 2), ("ns", "j", 2)))]
    )
    assert [(o[0], [r.version for r in o[1]]) for o in outcomes] == [(2, [2]), (3, [3, 1])]
    assert [r.author for r in log.changes_since(1, 10)] == ["a", "b", "b"]
    assert log.head() == 3 and json.loads(log.get("ns", "k", None, time.time()).value) == 2


def test_a_failing_plan_in_a_group_rolls_back_alone(log: StateLog) -> None:
    def half_then_fail(view: WriteView):  # type: ignore[no-untyped-def]
        view.latest([("ns", "k")])
        raise ValueError("this plan fails")

    def nothing(view: WriteView):  # type: ignore[no-untyped-def]
        return [], "read only"

    outcomes = log.commit_group(
        [
            ("a", put_plan(("ns", "k", 1))),
            ("a", half_then_fail),
            ("a", nothing),
            ("a", put_plan(("ns", "k", 2))),
        ]
    )
    assert isinstance(outcomes[1], ValueError)
    assert outcomes[2] == (1, [], "read only")
    assert outcomes[0][0] == 1 and outcomes[3][0] == 2  # type: ignore[index]
    assert log.head() == 2
    assert [r.version for r in log.history("ns", "k")] == [1, 2]
