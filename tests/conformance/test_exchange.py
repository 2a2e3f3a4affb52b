"""Export and import carry leases, claims and proposals, over every log backend."""

from __future__ import annotations

import json

from hivemem.memory import Memory, Proposal


def test_export_and_import_carry_leases_claims_and_proposals(mem: Memory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    lease = mem.lease(ttl=60)
    mem.put("team/presence", "a1", {"up": True}, lease=lease.id)
    for i in range(3):
        mem.put("team/tasks", f"t{i}", {"n": i})
    held = mem.claim("team/tasks", ttl=60)
    done = mem.claim("team/tasks")
    assert held is not None and done is not None
    mem.complete(done.token)
    mem.grant("intern", "team", "propose")
    proposal = mem.as_principal("intern").put("team/tasks", "t2", {"n": 2, "note": "x"})
    assert isinstance(proposal, Proposal)

    records = [json.loads(json.dumps(r)) for r in mem.export("team")]
    kinds = [r.get("kind", "item") for r in records]
    assert kinds.count("lease") == 2 and kinds.count("proposal") == 1

    target = Memory.open(str(tmp_path / "target"), embedder=None, reaper_interval=None)
    try:
        target.import_items(records)
        item = target.get("team/presence", "a1")
        assert item.lease == lease.id and target.get_lease(lease.id).items == 1
        assert 50 < target.get_lease(lease.id).remaining <= 60  # what was left, not renewed
        tasks = target.list("team/tasks").items
        states = {i.key: i.claim.state if i.claim else None for i in tasks}
        assert states == {"t0": "claimed", "t1": "done", "t2": None}
        moved = target.get("team/tasks", "t0").claim
        assert moved is not None and moved.lease == held.lease and moved.holder == mem.principal
        again = target.proposals("team")
        assert [(p.id, p.author, p.base_version) for p in again] == [
            (proposal.id, "intern", proposal.base_version)
        ]
        target.approve(proposal.id)
        assert target.get("team/tasks", "t2").value == {"n": 2, "note": "x"}
        target.revoke_lease(lease.id)
        assert target.list("team/presence").items == []
    finally:
        target.close()
