"""Propose and review over every log backend: a proposer's writes wait in a queue seen
only by writers and their author; approval applies them against their base version."""

from __future__ import annotations

import pytest

from hivemem.memory import Conflict, InvalidInput, Memory, NotFound, PermissionDenied, Proposal


@pytest.fixture
def team(mem: Memory):  # type: ignore[no-untyped-def]
    mem.grant("intern", "team", "propose")
    mem.grant("lead", "team", "write")
    mem.grant("reader", "team", "read")
    mem.grant("stranger", "elsewhere", "write")
    return {n: mem.as_principal(n) for n in ("intern", "lead", "reader", "stranger")}


def test_a_proposers_put_becomes_a_pending_proposal_and_changes_nothing(mem, team) -> None:  # type: ignore[no-untyped-def]
    mem.put("team/plan", "launch", {"date": "mon"})
    before = mem.revision
    p = team["intern"].put("team/plan", "launch", {"date": "tue"})
    assert isinstance(p, Proposal)
    assert p.status == "pending" and p.base_version == 1 and p.author == "intern"
    assert mem.revision == before + 1 == p.revision  # in the log
    assert mem.get("team/plan", "launch").value == {"date": "mon"}
    assert [i.version for i in mem.history("team/plan", "launch")] == [1]
    assert team["intern"].get("team/plan", "launch").value == {"date": "mon"}  # may read
    with pytest.raises(PermissionDenied):  # but not write in any other way
        team["intern"].put_many([{"namespace": "team/plan", "key": "x", "value": 1}])
    with pytest.raises(PermissionDenied):
        team["intern"].claim("team/plan")


def test_proposals_are_visible_to_writers_and_their_author_only(mem, team) -> None:  # type: ignore[no-untyped-def]
    p = team["intern"].put("team/plan", "new", {"a": 1})
    assert [x.id for x in team["lead"].proposals("team")] == [p.id]
    assert [x.id for x in team["intern"].proposals()] == [p.id]
    assert team["reader"].proposals() == [] and team["stranger"].proposals() == []
    for who in ("reader", "stranger"):
        with pytest.raises(NotFound):
            team[who].get_proposal(p.id)
    assert team["lead"].get_proposal(p.id).value == {"a": 1}
    seen = {
        who: [
            (c.op, c.proposal.id if c.proposal else None) for c in m.watch("", 0).iter(timeout=0.05)
        ]
        for who, m in team.items()
    }
    assert seen["lead"] == [("propose", p.id)] and seen["intern"] == [("propose", p.id)]
    assert seen["reader"] == [] and seen["stranger"] == []


def test_approval_merges_objects_against_the_base_and_records_the_review(mem, team) -> None:  # type: ignore[no-untyped-def]
    mem.put("team/plan", "launch", {"date": "mon", "owner": "a"})
    p = team["intern"].put("team/plan", "launch", {"date": "tue", "owner": "a"})
    mem.put("team/plan", "launch", {"date": "mon", "owner": "b"})  # a disjoint change
    with pytest.raises(PermissionDenied):
        team["intern"].approve(p.id)
    done = team["lead"].approve(p.id, "fine by me")
    assert done.status == "approved" and done.reviewed_by == "lead" and done.reason == "fine by me"
    assert done.reviewed_at is not None and done.result_version == 3
    assert mem.get("team/plan", "launch").value == {"date": "tue", "owner": "b"}
    with pytest.raises(Conflict):  # reviewed once
        team["lead"].reject(p.id, "too late")
    assert team["lead"].proposals(status=None)[0].status == "approved"


def test_a_conflicting_approval_is_reported_and_leaves_the_proposal_pending(mem, team) -> None:  # type: ignore[no-untyped-def]
    mem.put("team/plan", "n", 1)
    p = team["intern"].put("team/plan", "n", 2)  # not an object: a CAS on version 1
    mem.put("team/plan", "n", 3)
    with pytest.raises(Conflict) as err:
        team["lead"].approve(p.id)
    assert err.value.current is not None and err.value.current.value == 3
    assert team["lead"].get_proposal(p.id).status == "pending"
    rejected = team["lead"].reject(p.id, "superseded")
    assert rejected.status == "rejected" and rejected.reason == "superseded"
    assert mem.get("team/plan", "n").value == 3


def test_a_proposed_delete_and_its_approval(mem, team) -> None:  # type: ignore[no-untyped-def]
    mem.put("team/plan", "old", 1)
    p = team["intern"].delete("team/plan", "old")
    assert isinstance(p, Proposal) and p.op == "delete"
    mem.get("team/plan", "old")
    team["lead"].approve(p.id)
    with pytest.raises(NotFound):
        mem.get("team/plan", "old")


def test_pending_proposals_expire_after_the_store_setting(log, tmp_path, embedder, clock) -> None:  # type: ignore[no-untyped-def]
    mem = Memory.open(
        str(tmp_path / "p"), embedder=embedder, log=log, reaper_interval=None, proposal_ttl=60
    )
    try:
        mem.grant("intern", "team", "propose")
        p = mem.as_principal("intern").put("team/plan", "x", 1)
        clock.advance(61)
        assert mem.get_proposal(p.id).status == "expired"  # at once
        with pytest.raises(Conflict):
            mem.approve(p.id)
        assert mem._core.expire_proposals() == 1
        assert mem.proposals(status="expired")[0].reviewed_by == "hivemem"
        assert mem._core.expire_proposals() == 0
    finally:
        mem.close()


def test_proposal_arguments_are_checked(mem, team) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as err:
        team["intern"].put("team/plan", "x", 1, metadata={"bad key": 1})
    assert err.value.field == "metadata.bad key"
    lease = mem.lease(5)
    with pytest.raises(InvalidInput) as err:
        team["intern"].put("team/plan", "x", 1, lease=lease.id)
    assert err.value.field == "lease"
    with pytest.raises(InvalidInput) as err:
        mem.proposals(status="maybe")
    assert err.value.field == "status"
    with pytest.raises(InvalidInput) as err:
        mem.get_proposal("nope")
    assert err.value.field == "proposal_id"
