"""Task claims with fencing tokens over every log backend: atomic claims, expiry through
the claim's lease, stale tokens refused on every kind of write, attempts and dead tasks."""

from __future__ import annotations

import pytest

from hivemem.memory import Conflict, InvalidInput, Memory, NotFound, PermissionDenied
from tests.conftest import Clock


def _tasks(mem: Memory, n: int, ns: str = "team/tasks") -> None:
    for i in range(n):
        mem.put(ns, f"t{i}", {"n": i}, metadata={"kind": "build" if i % 2 else "test"})


def test_claim_takes_the_oldest_open_task_and_records_it_in_the_item(mem: Memory) -> None:
    _tasks(mem, 3)
    before = mem.revision
    first = mem.claim("team/tasks", ttl=30)
    assert first is not None and first.item.key == "t0"
    assert mem.revision == before + 1  # the claim and its lease: one revision
    claim = mem.get("team/tasks", "t0").claim
    assert claim is not None and claim.state == "claimed" and claim.attempts == 1
    assert claim.holder == mem.principal and claim.revision == before + 1
    assert claim.lease == first.lease and mem.get_lease(first.lease).alive
    assert mem.get("team/tasks", "t0").value == {"n": 0}  # the value is untouched
    second = mem.claim("team/tasks")
    assert second is not None and second.item.key == "t1"
    assert mem.claim("team/tasks", filter={"kind": "build"}) is None  # t1 is taken
    third = mem.claim("team/tasks", filter={"kind": "test"})
    assert third is not None and third.item.key == "t2"
    head = mem.revision
    assert mem.claim("team/tasks") is None
    assert mem.revision == head  # nothing to claim: nothing written


def test_claiming_a_given_task(mem: Memory) -> None:
    _tasks(mem, 2)
    got = mem.claim("team/tasks", "t1")
    assert got is not None and got.item.key == "t1"
    with pytest.raises(Conflict) as err:
        mem.claim("team/tasks", "t1")
    assert err.value.current is not None and err.value.current.claim.state == "claimed"
    with pytest.raises(NotFound):
        mem.claim("team/tasks", "missing")


def test_complete_marks_done_once_and_ends_the_claims_own_lease(mem: Memory) -> None:
    _tasks(mem, 1)
    got = mem.claim("team/tasks", ttl=30)
    assert got is not None
    done = mem.complete(got.token, {"n": 0, "result": "ok"})
    assert done.claim is not None and done.claim.state == "done"
    assert done.value == {"n": 0, "result": "ok"}
    with pytest.raises(NotFound):
        mem.get_lease(got.lease)
    with pytest.raises(Conflict):  # no result is accepted twice
        mem.complete(got.token, {"result": "again"})
    assert mem.get("team/tasks", "t0").value == {"n": 0, "result": "ok"}
    assert mem.claim("team/tasks") is None


def test_an_expired_claim_reopens_the_task_and_its_token_goes_stale(
    mem: Memory, clock: Clock
) -> None:
    _tasks(mem, 1)
    stalled = mem.claim("team/tasks", ttl=5)
    assert stalled is not None
    mem.put("team/results", "t0", "partial", fence=stalled.token)  # while it holds
    clock.advance(6)
    with pytest.raises(Conflict):  # lost to expiry, even before anyone re-claims
        mem.put("team/results", "t0", "late", fence=stalled.token)
    again = mem.claim("team/tasks")
    assert again is not None and again.item.key == "t0"
    assert again.item.claim is not None and again.item.claim.attempts == 2
    for write in (
        lambda: mem.put("team/results", "t0", "stale", fence=stalled.token),
        lambda: mem.delete("team/results", "t0", fence=stalled.token),
        lambda: mem.put_many(
            [{"namespace": "team/results", "key": "t0", "value": 1, "fence": stalled.token}]
        ),
        lambda: mem.txn(
            success=[
                {"op": "delete", "namespace": "team/results", "key": "t0", "fence": stalled.token}
            ]
        ),
        lambda: mem.complete(stalled.token),
        lambda: mem.release(stalled.token),
    ):
        with pytest.raises(Conflict):
            write()
    assert mem.get("team/results", "t0").value == "partial"
    mem.put("team/results", "t0", "fresh", fence=again.token)
    assert mem.complete(again.token).claim.state == "done"  # type: ignore[union-attr]


def test_the_reaper_reopens_tasks_when_the_claims_lease_ends(mem: Memory, clock: Clock) -> None:
    _tasks(mem, 2)
    lease = mem.lease(ttl=5)
    a = mem.claim("team/tasks", lease=lease.id)
    b = mem.claim("team/tasks", lease=lease.id)
    assert a is not None and b is not None and a.lease == b.lease == lease.id
    clock.advance(6)
    start = mem.revision
    assert mem._core.end_due_leases() == 1
    assert mem.revision == start + 1  # both tasks reopen in the revision ending the lease
    with mem.watch("team/tasks", start) as sub:
        changes = list(sub.iter(timeout=0.05))
    assert [(c.key, c.item.claim.state, c.reason) for c in changes] == [  # type: ignore[union-attr]
        ("t0", "open", "lease"),
        ("t1", "open", "lease"),
    ]


def test_release_gives_the_task_back_and_max_attempts_makes_it_dead(mem: Memory) -> None:
    _tasks(mem, 1)
    for attempt in (1, 2):
        got = mem.claim("team/tasks", max_attempts=2)
        assert got is not None and got.item.claim.attempts == attempt  # type: ignore[union-attr]
        released = mem.release(got.token)
    assert released.claim is not None and released.claim.state == "dead"
    assert mem.claim("team/tasks") is None
    with pytest.raises(Conflict):
        mem.claim("team/tasks", "t0")


def test_a_put_keeps_the_tasks_claim_state(mem: Memory) -> None:
    _tasks(mem, 1)
    got = mem.claim("team/tasks")
    assert got is not None
    item = mem.put("team/tasks", "t0", {"n": 0, "progress": 0.5}, fence=got.token)
    assert item.claim is not None and item.claim.state == "claimed"
    assert mem.complete(got.token).claim.state == "done"  # type: ignore[union-attr]


def test_claiming_needs_write_and_fencing_needs_read_on_the_task(mem: Memory) -> None:
    _tasks(mem, 1)
    mem.grant("reader", "team", "read")
    with pytest.raises(PermissionDenied):
        mem.as_principal("reader").claim("team/tasks")
    got = mem.claim("team/tasks")
    assert got is not None
    mem.grant("outsider", "other", "write")
    with pytest.raises(NotFound):
        mem.as_principal("outsider").put("other/x", "k", 1, fence=got.token)
    with pytest.raises(PermissionDenied):
        mem.as_principal("reader").complete(got.token)


def test_claim_arguments_are_checked(mem: Memory) -> None:
    lease = mem.lease(ttl=5)
    for kwargs, field in (
        ({"ttl": 0}, "ttl"),
        ({"lease": "x"}, "lease"),
        ({"lease": lease.id, "ttl": 5}, "lease"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"filter": {"n": {"$bad": 1}}}, "filter.n.$bad"),
    ):
        with pytest.raises(InvalidInput) as err:
            mem.claim("team/tasks", **kwargs)  # type: ignore[arg-type]
        assert err.value.field == field
    for bad in ("nope", "hmf1.!!", 5):
        with pytest.raises(InvalidInput) as err:
            mem.put("team/x", "k", 1, fence=bad)  # type: ignore[arg-type]
        assert err.value.field == "fence"
        with pytest.raises(InvalidInput):
            mem.complete(bad)  # type: ignore[arg-type]
