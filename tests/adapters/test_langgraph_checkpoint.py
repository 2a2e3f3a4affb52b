"""``HivememSaver`` passes langgraph-checkpoint-conformance with every capability,
embedded and through a server; plus what the suite does not cover."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

pytest.importorskip("langgraph.checkpoint.conformance")

from langgraph.checkpoint.conformance import checkpointer_test, validate  # noqa: E402
from langgraph.checkpoint.conformance.capabilities import ALL_CAPABILITIES  # noqa: E402
from langgraph.checkpoint.conformance.test_utils import (  # noqa: E402
    generate_checkpoint,
    generate_config,
    generate_metadata,
)

from hivemem.adapters.langgraph import HivememSaver  # noqa: E402
from hivemem.memory.errors import PermissionDenied  # noqa: E402
from tests.adapters.conftest import Side  # noqa: E402


async def test_conformance_every_capability(plain_side: Side) -> None:
    @checkpointer_test(name=f"HivememSaver-{uuid.uuid4().hex[:6]}")
    async def saver() -> AsyncIterator[HivememSaver]:
        yield HivememSaver(plain_side.target(), root=f"cp{uuid.uuid4().hex[:10]}")

    report = await validate(saver)
    failures = {cap: r.failures for cap, r in report.results.items() if not r.passed}
    assert failures == {}
    assert {cap for cap, r in report.results.items() if r.detected} == {
        c.value for c in ALL_CAPABILITIES
    }
    assert sum(r.tests_passed for r in report.results.values()) >= 78


def test_sync_methods_and_long_names(plain_side: Side, ns: str) -> None:
    s = HivememSaver(plain_side.target(), root=ns)
    thread = "Thread with a very long name " * 4
    config = generate_config(thread, checkpoint_ns="parent:" + "x" * 80)
    cp = generate_checkpoint(channel_values={"msg": "hi"}, channel_versions={"msg": 1})
    stored = s.put(config, cp, generate_metadata(source="input", step=0), {"msg": 1})
    s.put_writes(stored, [("msg", "pending")], "task-1")
    tup = s.get_tuple(generate_config(thread, checkpoint_ns="parent:" + "x" * 80))
    assert tup is not None and tup.checkpoint["channel_values"] == {"msg": "hi"}
    assert tup.pending_writes == [("task-1", "msg", "pending")]
    assert [t.config for t in s.list(None)] == [stored]
    s.delete_thread(thread)
    assert s.get_tuple(config) is None


def test_read_only_key_reads_state_and_refuses_to_write(plain_side: Side, ns: str) -> None:
    writer = HivememSaver(plain_side.target(), root=ns)
    stored = writer.put(generate_config("t"), generate_checkpoint(), generate_metadata(), {})
    plain_side.root.grant("cp-reader", ns, "read")
    reader = HivememSaver(plain_side.target("cp-reader"), root=ns)
    assert reader.get_tuple(stored) is not None
    with pytest.raises(PermissionDenied) as err:
        reader.put(generate_config("t"), generate_checkpoint(), generate_metadata(), {})
    assert isinstance(err.value, PermissionError)
