"""Leases (etcd's model) over every log backend: grant and end are revisions, keepalives
are not; attached items live only while their lease does and expire together."""

from __future__ import annotations

import time

import pytest

from hivemem.memory import InvalidInput, Memory, NotFound
from tests.conftest import Clock


def _changes(mem: Memory, since: int) -> list[tuple[int, str, str, str | None]]:
    with mem.watch("", since) as sub:
        return [(c.revision, c.op, c.key, c.reason) for c in sub.iter(timeout=0.05)]


def test_granting_a_lease_takes_a_revision_and_keepalive_does_not(mem: Memory) -> None:
    before = mem.revision
    lease = mem.lease(ttl=5)
    assert mem.revision == before + 1 == lease.revision
    assert lease.alive and lease.ttl == 5 and 4.5 < lease.remaining <= 5
    time.sleep(0.05)
    renewed = mem.keepalive(lease.id)
    assert mem.revision == before + 1
    assert renewed.expires_at > lease.expires_at
    assert mem.get_lease(lease.id).expires_at == renewed.expires_at  # durable


def test_revoking_expires_every_attached_item_in_one_revision(mem: Memory) -> None:
    lease = mem.lease(ttl=30)
    mem.put("team/presence", "a1", {"up": True}, lease=lease.id)
    mem.put("team/ctx", "a1", "working notes about the deploy", lease=lease.id)
    mem.put("team/ctx", "keep", "not attached")
    assert mem.get("team/ctx", "a1").lease == lease.id
    assert mem.get_lease(lease.id).items == 2
    start = mem.revision
    mem.revoke_lease(lease.id)
    assert mem.revision == start + 1
    changes = _changes(mem, start)
    assert sorted(changes) == [
        (start + 1, "expire", "a1", "lease"),
        (start + 1, "expire", "a1", "lease"),
    ]
    with pytest.raises(NotFound):
        mem.get("team/presence", "a1")
    assert [i.key for i in mem.list("team").items] == ["keep"]
    hits = mem.search("working notes deploy", namespaces=["team"])
    assert [h.item.key for h in hits] == ["keep"]
    with pytest.raises(NotFound):
        mem.get_lease(lease.id)
    with pytest.raises(NotFound):
        mem.revoke_lease(lease.id)


def test_attached_items_vanish_at_the_deadline_and_the_reaper_expires_them(
    mem: Memory, clock: Clock
) -> None:
    lease = mem.lease(ttl=5)
    mem.put("team/p", "a", 1, lease=lease.id)
    mem.put("team/p", "b", 2, lease=lease.id)
    clock.advance(6)
    with pytest.raises(NotFound):  # gone at once, before any reaper runs
        mem.get("team/p", "a")
    assert mem.list("team").items == []
    start = mem.revision
    assert mem._core.end_due_leases() == 1
    assert _changes(mem, start) == [
        (start + 1, "expire", "a", "lease"),
        (start + 1, "expire", "b", "lease"),
    ]
    assert mem._core.end_due_leases() == 0


def test_a_lease_past_its_deadline_is_never_revived(mem: Memory, clock: Clock) -> None:
    lease = mem.lease(ttl=5)
    mem.put("team/p", "a", 1, lease=lease.id)
    clock.advance(6)
    with pytest.raises(NotFound):
        mem.keepalive(lease.id)
    with pytest.raises(NotFound):
        mem.get("team/p", "a")
    with pytest.raises(NotFound):  # and it is ended in the log, not left dangling
        mem.get_lease(lease.id)
    assert mem._core.end_due_leases() == 0


def test_keepalives_keep_attached_items_alive(mem: Memory, clock: Clock) -> None:
    lease = mem.lease(ttl=5)
    mem.put("team/p", "a", 1, lease=lease.id)
    for _ in range(4):
        clock.advance(3)
        mem.keepalive(lease.id)
    assert mem.get("team/p", "a").value == 1
    assert mem._core.end_due_leases() == 0


def test_a_put_without_lease_detaches_the_item(mem: Memory) -> None:
    lease = mem.lease(ttl=30)
    mem.put("team/p", "a", 1, lease=lease.id)
    assert mem.put("team/p", "a", 2).lease is None
    mem.revoke_lease(lease.id)
    assert mem.get("team/p", "a").value == 2


def test_a_write_to_an_item_of_a_dead_lease_ends_the_whole_lease_first(
    mem: Memory, clock: Clock
) -> None:
    lease = mem.lease(ttl=5)
    mem.put("team/p", "a", 1, lease=lease.id)
    mem.put("team/p", "b", 1, lease=lease.id)
    clock.advance(6)
    start = mem.revision
    item = mem.put("team/p", "a", 2)
    assert item.version == 3  # 1 put, 2 expire, 3 this put
    assert _changes(mem, start) == [
        (start + 1, "expire", "a", "lease"),
        (start + 1, "expire", "b", "lease"),
        (start + 1, "put", "a", None),
    ]
    with pytest.raises(NotFound):
        mem.get_lease(lease.id)


def test_lease_and_ttl_are_exclusive_and_lease_ids_are_checked(mem: Memory) -> None:
    lease = mem.lease(ttl=5)
    with pytest.raises(InvalidInput) as err:
        mem.put("team/p", "a", 1, lease=lease.id, ttl=5)
    assert err.value.field == "lease"
    for bad in ("nope", 7, "0" * 17):
        with pytest.raises(InvalidInput) as err:
            mem.put("team/p", "a", 1, lease=bad)  # type: ignore[arg-type]
        assert err.value.field == "lease"
    with pytest.raises(NotFound):
        mem.put("team/p", "a", 1, lease="0123456789abcdef")
    for ttl, field in ((0, "ttl"), (-1, "ttl"), ("x", "ttl"), (1e10, "ttl")):
        with pytest.raises(InvalidInput) as err:
            mem.lease(ttl=ttl)  # type: ignore[arg-type]
        assert err.value.field == field
    with pytest.raises(InvalidInput) as err:
        mem.keepalive("../x")
    assert err.value.field == "lease_id"
    assert mem.revision == lease.revision  # nothing was written


def test_writing_with_an_ended_lease_is_refused_and_writes_nothing(mem: Memory) -> None:
    lease = mem.lease(ttl=5)
    mem.revoke_lease(lease.id)
    head = mem.revision
    with pytest.raises(NotFound):
        mem.put("team/p", "a", 1, lease=lease.id)
    with pytest.raises(NotFound):
        mem.put_many([{"namespace": "team/p", "key": "b", "value": 1, "lease": lease.id}])
    assert mem.revision == head


def test_another_principals_lease_looks_missing(mem: Memory) -> None:
    mem.grant("a1", "team", "write")
    mem.grant("a2", "team", "write")
    a1, a2 = mem.as_principal("a1"), mem.as_principal("a2")
    lease = a1.lease(ttl=30)
    assert lease.holder == "a1"
    a1.put("team/p", "x", 1, lease=lease.id)
    for call in (a2.keepalive, a2.revoke_lease, a2.get_lease):
        with pytest.raises(NotFound):
            call(lease.id)
    with pytest.raises(NotFound):
        a2.put("team/p", "y", 1, lease=lease.id)
    assert a1.get_lease(lease.id).items == 1
    mem.revoke_lease(lease.id)  # the store's opener may end any lease
    with pytest.raises(NotFound):
        a1.get("team/p", "x")


def test_ttl_expiries_carry_reason_ttl(mem: Memory, clock: Clock) -> None:
    mem.put("team/p", "t", 1, ttl=5)
    clock.advance(6)
    start = mem.revision
    assert mem.expire_due() == 1
    assert _changes(mem, start) == [(start + 1, "expire", "t", "ttl")]
