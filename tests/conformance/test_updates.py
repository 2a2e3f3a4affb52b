"""Atomic updates (``Memory.update``) on every log backend: applied inside the commit."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hivemem.memory import Conflict, InvalidInput, Memory, NotFound, PermissionDenied
from hivemem.memory.models import PatchTestFailure

pytestmark = pytest.mark.timeout(60)
INC = [{"op": "increment", "path": "/n"}]


def test_update_creates_a_missing_item_from_an_empty_object(mem: Memory) -> None:
    item = mem.update("team/c", "counter", INC)
    assert (item.value, item.version, item.revision) == ({"n": 1}, 1, mem.revision)
    item = mem.update("team/c", "counter", [{"op": "increment", "path": "/n", "value": 41}])
    assert (item.value, item.version) == ({"n": 42}, 2)
    assert mem.get("team/c", "counter").value == {"n": 42}


def test_update_without_create_needs_the_item(mem: Memory) -> None:
    with pytest.raises(NotFound):
        mem.update("team/c", "missing", INC, create=False)
    assert mem.revision == 0


def test_update_after_a_delete_starts_again_and_numbering_goes_on(mem: Memory) -> None:
    mem.put("ns", "k", {"n": 5})
    mem.delete("ns", "k")
    item = mem.update("ns", "k", INC)
    assert (item.value, item.version) == ({"n": 1}, 3)


def test_update_keeps_text_metadata_vector_and_expiry(mem: Memory) -> None:
    first = mem.put("ns", "k", {"n": 1}, text="deploy friday", metadata={"kind": "plan"}, ttl=600)
    vec_before = mem.search("deploy friday", namespaces=["ns"], mode="vector")
    item = mem.update("ns", "k", INC)
    assert (item.text, item.metadata, item.expires_at) == (
        "deploy friday",
        {"kind": "plan"},
        first.expires_at,
    )
    hits = mem.search("deploy friday", namespaces=["ns"], mode="vector")
    assert [h.item.version for h in hits] == [2]
    assert hits[0].score == pytest.approx(vec_before[0].score, abs=1e-6)
    assert mem.search("deploy", namespaces=["ns"], mode="keyword")[0].item.version == 2


def test_update_with_new_text_and_metadata_replaces_them(mem: Memory) -> None:
    mem.put("ns", "k", {"n": 1}, text="deploy friday", metadata={"kind": "plan"})
    item = mem.update("ns", "k", INC, text="lunch on monday", metadata={"kind": "food"})
    assert (item.text, item.metadata) == ("lunch on monday", {"kind": "food"})
    assert mem.search("deploy", namespaces=["ns"], mode="keyword") == []
    assert mem.search("lunch", namespaces=["ns"], mode="keyword")[0].item.key == "k"
    assert mem.list("ns", filter={"kind": "food"}).items[0].value == {"n": 2}


def test_if_version_makes_an_update_compare_and_swap(mem: Memory) -> None:
    mem.update("ns", "k", INC)
    with pytest.raises(Conflict) as err:
        mem.update("ns", "k", INC, if_version=5)
    assert err.value.current is not None and err.value.current.version == 1
    assert mem.update("ns", "k", INC, if_version=1).value == {"n": 2}
    assert mem.update("ns", "new", INC, if_version=0).version == 1


def test_a_failed_test_writes_nothing_and_reports_the_path(mem: Memory) -> None:
    mem.put("ns", "plan", {"owner": "ops", "step": 1})
    before = mem.revision
    with pytest.raises(Conflict) as err:
        mem.update(
            "ns",
            "plan",
            [
                {"op": "test", "path": "/owner", "value": "dev"},
                {"op": "replace", "path": "/step", "value": 2},
            ],
        )
    assert err.value.conflicts == [PatchTestFailure(path="/owner", expected="dev", actual="ops")]
    assert err.value.current is not None and err.value.current.value["step"] == 1
    assert mem.revision == before and mem.get("ns", "plan").version == 1


def test_bad_paths_and_type_mismatches_name_the_op_and_write_nothing(mem: Memory) -> None:
    mem.put("ns", "k", {"n": "text", "list": [1]})
    before = mem.revision
    for ops, field in (
        ([{"op": "increment", "path": "/n"}], "ops[0].path"),
        ([{"op": "increment", "path": "/m"}, {"op": "remove", "path": "/zzz"}], "ops[1].path"),
        ([{"op": "append", "path": "/n", "value": 1}], "ops[0].path"),
        ([{"op": "nope", "path": "/n"}], "ops[0].op"),
        ({"op": "increment"}, "ops"),
    ):
        with pytest.raises(InvalidInput) as err:
            mem.update("ns", "k", ops)  # type: ignore[arg-type]
        assert err.value.field == field
    assert mem.revision == before


def test_the_updated_value_obeys_the_value_size_limit() -> None:
    small = Memory.open(":memory:", embedder=None, max_value_bytes=64, reaper_interval=None)
    try:
        for _ in range(3):
            small.update("ns", "log", [{"op": "append", "path": "/l", "value": "x" * 15}])
        with pytest.raises(InvalidInput) as err:
            small.update("ns", "log", [{"op": "append", "path": "/l", "value": "x" * 15}])
        assert err.value.field == "ops"
        assert small.get("ns", "log").version == 3
    finally:
        small.close()


def test_history_and_watch_carry_the_operations(mem: Memory) -> None:
    mem.put("ns", "k", {"n": 1})
    ops = [
        {"op": "increment", "path": "/n", "value": 2},
        {"op": "append", "path": "/log", "value": "a"},
    ]
    mem.update("ns", "k", ops)
    sub = mem.watch(["ns"], since=0)
    stream = iter(sub)
    changes = [next(stream) for _ in range(2)]
    sub.close()
    assert changes[0].ops is None
    assert changes[1].ops == ops and changes[1].item is not None
    assert changes[1].item.value == {"n": 3, "log": ["a"]}
    assert [i.value for i in mem.history("ns", "k")] == [{"n": 1}, {"n": 3, "log": ["a"]}]


def test_updates_in_batches_and_txns_see_each_other(mem: Memory) -> None:
    items = mem.put_many(
        [
            {"op": "update", "namespace": "ns", "key": "k", "ops": INC},
            {"op": "update", "namespace": "ns", "key": "k", "ops": INC},
            {"namespace": "ns", "key": "other", "value": 1},
        ]
    )
    assert [i.value for i in items] == [{"n": 1}, {"n": 2}, 1]
    assert len({i.revision for i in items}) == 1
    res = mem.txn(
        compare=[{"namespace": "ns", "key": "k", "target": "version", "value": 2}],
        success=[
            {"op": "update", "namespace": "ns", "key": "k", "ops": INC},
            {"op": "get", "namespace": "ns", "key": "k"},
        ],
    )
    assert res.succeeded and res.results[0].op == "update"
    assert res.results[1].item is not None and res.results[1].item.value == {"n": 3}
    with pytest.raises(InvalidInput) as err:
        mem.txn(
            success=[
                {
                    "op": "update",
                    "namespace": "ns",
                    "key": "k",
                    "ops": [{"op": "remove", "path": "/x"}],
                }
            ]
        )
    assert err.value.field == "success[0].ops[0].path"
    with pytest.raises(InvalidInput) as err:
        mem.put_many(
            [{"op": "update", "namespace": "ns", "key": "k", "ops": INC, "merge": "patch"}]
        )
    assert err.value.field == "ops[0].merge"


def test_concurrent_updates_of_one_key_lose_nothing(mem: Memory) -> None:
    threads, per = 8, 25

    def work(i: int) -> None:
        for _ in range(per):
            mem.update(
                "hot",
                "counter",
                [
                    {"op": "increment", "path": "/n"},
                    {"op": "add_to_set", "path": "/workers", "value": i},
                ],
            )

    pool = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    item = mem.get("hot", "counter")
    assert item.value["n"] == threads * per
    assert sorted(item.value["workers"]) == list(range(threads))
    assert item.version == threads * per


def test_update_needs_write_permission(mem: Memory) -> None:
    mem.put("team", "k", {"n": 1})
    mem.grant("reader", "team", "read")
    with pytest.raises(PermissionDenied):
        mem.as_principal("reader").update("team", "k", INC)
    mem.grant("writer", "team", "write")
    assert mem.as_principal("writer").update("team", "k", INC).author == "writer"


def test_an_expired_item_is_updated_as_missing(mem: Memory) -> None:
    mem.put("ns", "k", {"n": 10}, ttl=0.01)
    time.sleep(0.05)
    item = mem.update("ns", "k", INC)
    assert item.value == {"n": 1} and item.expires_at is None
    assert [i.deleted for i in mem.history("ns", "k")] == [False, True, False]


def test_update_with_a_new_vector_replaces_the_embedding(mem: Memory) -> None:
    dim = mem._core.dim
    assert dim is not None
    mem.put("ns", "k", {"n": 1}, text="alpha")
    vec = np.zeros(dim, dtype=np.float32)
    vec[3] = 1.0
    mem.update("ns", "k", INC, vector=vec.tolist())
    hit = mem.search(vector=vec.tolist(), namespaces=["ns"], mode="vector", k=1)[0]
    assert hit.item.version == 2 and hit.score == pytest.approx(1.0, abs=1e-5)


def test_ttl_restarts_the_expiry_and_an_empty_patch_keeps_the_value(mem: Memory) -> None:
    first = mem.put("ns", "k", {"n": 1}, ttl=30)
    item = mem.update("ns", "k", [], ttl=600)
    assert item.value == {"n": 1} and item.version == 2
    assert item.expires_at is not None and first.expires_at is not None
    assert (item.expires_at - first.expires_at).total_seconds() > 500
    lease = mem.lease(ttl=60)
    mem.put("ns", "leased", {"n": 1}, lease=lease.id)
    with pytest.raises(InvalidInput) as err:
        mem.update("ns", "leased", INC, ttl=5)
    assert err.value.field == "ttl"
    with pytest.raises(InvalidInput) as err:
        mem.update("ns", "k", INC, ttl=-1)
    assert err.value.field == "ttl"


def test_an_update_keeps_the_lease_and_the_task_state(mem: Memory) -> None:
    lease = mem.lease(ttl=60)
    mem.put("agents", "planner", {"beats": 0}, lease=lease.id)
    mem.update("agents", "planner", INC)
    mem.revoke_lease(lease.id)
    with pytest.raises(NotFound):
        mem.get("agents", "planner")  # still attached: it ended with its lease
    mem.put("jobs", "t1", {"todo": 1})
    claim = mem.claim("jobs", "t1", ttl=60)
    item = mem.update(
        "jobs", "t1", [{"op": "add", "path": "/progress", "value": 0.5}], fence=claim.token
    )
    assert item.claim is not None and item.claim.state == "claimed"


def test_an_update_with_a_stale_fence_is_refused(mem: Memory) -> None:
    mem.put("jobs", "t1", {"todo": 1})
    first = mem.claim("jobs", "t1", ttl=60)
    mem.release(first.token)
    mem.claim("jobs", "t1", ttl=60)
    before = mem.revision
    with pytest.raises(Conflict):
        mem.update("jobs", "t1", INC, fence=first.token)
    assert mem.revision == before


def test_metadata_ops_keep_filterable_metadata_in_step_with_the_value(mem: Memory) -> None:
    mem.put("ns", "task", {"attempts": 1}, metadata={"attempts": 1, "kind": "job"})
    inc = [{"op": "increment", "path": "/attempts"}]
    item = mem.update("ns", "task", inc, metadata_ops=inc)
    assert item.value == {"attempts": 2} and item.metadata == {"attempts": 2, "kind": "job"}
    assert [i.key for i in mem.list("ns", filter={"attempts": {"$gte": 2}}).items] == ["task"]
    before = mem.revision
    for bad, field in (
        ([{"op": "add", "path": "/nested", "value": {"a": 1}}], "metadata_ops.nested"),
        ([{"op": "add", "path": "", "value": [1]}], "metadata_ops"),
    ):
        with pytest.raises(InvalidInput) as err:
            mem.update("ns", "task", inc, metadata_ops=bad)
        assert err.value.field.startswith(field)
    with pytest.raises(InvalidInput) as err:
        mem.update("ns", "task", inc, metadata={"a": 1}, metadata_ops=inc)
    assert err.value.field == "metadata_ops"
    assert mem.revision == before
