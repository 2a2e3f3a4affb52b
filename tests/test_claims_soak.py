"""Worker threads over HTTP claiming tasks, killed or stalled at random: every task is
completed once, with its completing claim's result, and every stale-token write is
refused. Reduced counts here; ``python -m bench.claims_soak`` runs 32 workers over
10,000 tasks (``make soak``)."""

from __future__ import annotations

import pytest

from bench.claims_soak import run
from hivemem.memory import Memory
from tests.client.conftest import ADMIN_KEY, LiveServer
from tests.embedders import HashEmbedder


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_workers_killed_or_stalled_at_random_never_break_the_claims(tmp_path) -> None:  # type: ignore[no-untyped-def]
    memory = Memory.open(str(tmp_path), embedder=HashEmbedder(), reaper_interval=0.1)
    server = LiveServer(memory).start()
    try:
        report = run(
            lambda: server.client(ADMIN_KEY, timeout=30),
            workers=8,
            tasks=300,
            ttl=0.4,
            p_kill=0.05,
            p_stall=0.05,
        )
    finally:
        server.stop()
        memory.close()
    assert report.errors == []
    assert report.kills > 0 and report.stalls > 0  # the faults really happened
    assert report.completed == 300 and report.not_done == 0
    assert report.duplicate_completions == 0 and report.wrong_results == 0
    assert report.stale_writes_accepted == 0
    assert report.stale_writes_refused == 2 * report.stalls
