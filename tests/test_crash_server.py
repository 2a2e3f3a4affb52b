"""SIGKILL the real ``hivemem serve`` process under four HTTP writers (CAS increments,
batches, transactions, plain puts), restart it, and count: every acknowledged write is
in its item's history, the CAS counter lost no increment, the log has no revision gap.

``make test`` kills it 5 times on SQLite; ``make soak`` 50 times on SQLite and on the
PostgreSQL log (bench/soak.py). The harness is bench/crash.py.
"""

from __future__ import annotations

import pytest

from bench import crash

pytestmark = pytest.mark.slow


def test_sigkilled_server_loses_no_acknowledged_write() -> None:
    result = crash.run(kills=5, backend="sqlite", window=(0.5, 1.2))
    print(result)
    assert result["acknowledged"] > 50, result
    assert result["lost"] == 0, result["first_lost"]
    assert result["revision_gaps"] == 0, result["first_gaps"]
    assert result["cas_acknowledged"] > 0
    assert result["cas_lost_updates"] == 0 and result["cas_version_gaps"] == 0, result
    # every acknowledged increment is counted; at most one in flight per kill also landed
    assert 0 <= result["cas_final"] - result["cas_acknowledged"] <= result["kills"], result
    assert result["unexpected_errors"] == [], result["unexpected_errors"]
