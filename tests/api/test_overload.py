"""Load shedding: beyond the write limit a write is a prompt 503 with Retry-After,
nothing is written, reads go on, and the clients send a shed write again."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hivemem.api.app import create_app
from hivemem.api.cli import build_parser, server_settings
from hivemem.api.settings import Settings
from hivemem.api.shedding import BURST, WriteGate, is_shed_route
from hivemem.memory import Memory
from hivemem.memory.client import AsyncClient, Client
from hivemem.memory.errors import Overloaded
from tests.api.helpers import ADMIN_KEY, bearer, live_server
from tests.embedders import HashEmbedder

H = bearer(ADMIN_KEY)


@pytest.fixture
def small() -> Iterator[tuple[FastAPI, Memory]]:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    app = create_app(Settings(admin_key=ADMIN_KEY, max_inflight_writes=2), memory=mem)
    yield app, mem
    mem.close()


def fill(gate: WriteGate) -> None:
    """Take every place of the gate, as writes in flight would."""
    while gate.enter():
        pass
    gate.shed -= 1  # the probe that found it full was not a request


def test_a_write_beyond_the_limit_is_503_with_retry_after_and_writes_nothing(
    small: tuple[FastAPI, Memory],
) -> None:
    app, mem = small
    fill(app.state.write_gate)
    with TestClient(app) as c:
        r = c.put("/v1/items/team/a", headers=H, json={"value": 1, "text": "hello"})
        assert r.status_code == 503
        assert r.headers["Retry-After"] == "1"
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert body["type"] == "/problems/overloaded" and body["retry_after"] == 1
        taken = app.state.write_gate.in_flight
        assert body["title"] == "Overloaded" and f"{taken} writes are in flight" in body["detail"]
        assert mem.status()["revision"] == 0
        for method, path, payload in [
            ("POST", "/v1/batch", {"items": [{"namespace": "team", "key": "b", "value": 1}]}),
            ("POST", "/v1/txn", {"success": []}),
            ("DELETE", "/v1/items/team/a", None),
            ("PATCH", "/v1/items/team/a", [{"op": "add", "path": "/x", "value": 1}]),
        ]:
            assert c.request(method, path, headers=H, json=payload).status_code == 503, path
        # reads and the admin control plane are not shed
        assert c.get("/v1/items", headers=H).status_code == 200
        assert c.post("/v1/search", headers=H, json={"query": "hello"}).status_code == 200
        assert (
            c.put(
                "/v1/grants",
                headers=H,
                json={"principal": "p", "prefix": "x", "permission": "read"},
            ).status_code
            == 200
        )
        metrics = c.get("/metrics").text
    assert "hivemem_writes_shed_total 5" in metrics
    assert "hivemem_writes_in_flight_limit 2" in metrics
    assert "hivemem_write_latency_average_seconds 0" in metrics
    assert mem.status()["revision"] == 0


def test_writes_go_through_again_once_a_place_is_free(small: tuple[FastAPI, Memory]) -> None:
    app, mem = small
    gate = app.state.write_gate
    fill(gate)
    taken = gate.in_flight
    with TestClient(app) as c:
        assert c.put("/v1/items/team/a", headers=H, json={"value": 1}).status_code == 503
        gate.leave()
        assert c.put("/v1/items/team/a", headers=H, json={"value": 1}).status_code == 200
        assert gate.in_flight == taken - 1  # the finished write gave its place back
    assert mem.get("team", "a").value == 1


def test_the_shed_503_keeps_the_connection(small: tuple[FastAPI, Memory]) -> None:
    app, _ = small
    fill(app.state.write_gate)
    with live_server(app) as url, httpx.Client(base_url=url, headers=H) as http:
        ports = set()
        for _ in range(3):
            r = http.put("/v1/items/team/a", json={"value": "x" * 10_000})
            assert r.status_code == 503
            ports.add(r.extensions["network_stream"].get_extra_info("socket").getsockname()[1])
        assert len(ports) == 1


def test_every_write_route_documents_the_503_and_reads_do_not(
    small: tuple[FastAPI, Memory],
) -> None:
    app, _ = small
    doc = app.openapi()
    shed = 0
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if is_shed_route(method.upper(), path):
                shed += 1
                response = op["responses"]["503"]
                assert "Retry-After" in response["headers"], (method, path)
                assert "application/problem+json" in response["content"]
            elif method == "get" and path.startswith("/v1/items"):
                assert "503" not in op["responses"], (method, path)
    assert shed >= 15
    assert not is_shed_route("POST", "/v1/search") and is_shed_route("POST", "/v1/import")


def test_the_limit_comes_from_the_flag_or_the_environment() -> None:
    args = build_parser().parse_args(["serve", "--max-inflight-writes", "7"])
    assert server_settings(args, {}, {}).max_inflight_writes == 7
    args = build_parser().parse_args(["serve"])
    env = {"HIVEMEM_MAX_INFLIGHT_WRITES": "9"}
    assert server_settings(args, env, {}).max_inflight_writes == 9
    assert server_settings(args, {}, {}).max_inflight_writes == Settings().max_inflight_writes


def test_beyond_the_limit_writes_run_while_they_finish_quickly_up_to_burst_times_it() -> None:
    gate = WriteGate(2, latency=0.1)
    assert gate.ceiling == 2 * BURST
    assert all(gate.enter() for _ in range(gate.ceiling))  # no slow write seen yet
    assert not gate.enter() and gate.shed == 1  # never beyond the ceiling
    for _ in range(gate.ceiling):
        gate.leave(0.01)  # writes finishing in 10 ms keep the burst places open
    assert gate.in_flight == 0 and gate.average < 0.1
    assert all(gate.enter() for _ in range(gate.ceiling))


def test_while_writes_are_slow_only_the_limit_runs() -> None:
    gate = WriteGate(2, latency=0.1)
    for _ in range(200):  # writes taking 0.5 s: the moving average climbs past 0.1 s
        assert gate.enter()
        gate.leave(0.5)
    assert gate.average >= 0.1
    assert gate.enter() and gate.enter()  # the limit itself is always open
    assert not gate.enter() and gate.shed == 1
    gate.leave(0.001)
    gate.leave(0.001)
    for _ in range(200):  # fast writes bring the average down and the burst back
        assert gate.enter()
        gate.leave(0.001)
    assert gate.average < 0.1
    assert all(gate.enter() for _ in range(3))


def test_the_shed_latency_comes_from_the_environment(small: tuple[FastAPI, Memory]) -> None:
    settings = Settings.from_env({"HIVEMEM_SHED_LATENCY": "0.25"})
    assert settings.shed_latency == 0.25
    assert Settings().shed_latency == 0.15
    app, _ = small
    assert app.state.write_gate.latency == 0.15


def test_zero_means_no_limit() -> None:
    gate = WriteGate(0)
    assert all(gate.enter() for _ in range(10_000)) and gate.shed == 0


def _release_after(gate: WriteGate, seconds: float) -> threading.Thread:
    def release() -> None:
        time.sleep(seconds)
        gate.leave()

    thread = threading.Thread(target=release)
    thread.start()
    return thread


def test_the_client_sends_a_shed_plain_put_again_after_retry_after(
    small: tuple[FastAPI, Memory],
) -> None:
    app, mem = small
    gate = app.state.write_gate
    fill(gate)
    with live_server(app) as url, Client(url, ADMIN_KEY) as client:
        releaser = _release_after(gate, 0.3)
        started = time.monotonic()
        item = client.put("team", "a", {"n": 1})  # no if_version: retried only because shed
        waited = time.monotonic() - started
        releaser.join()
    assert item.version == 1 and mem.get("team", "a").value == {"n": 1}
    assert gate.shed >= 1 and waited >= 1.0  # it waited the Retry-After second
    assert len(mem.history("team", "a")) == 1  # sent again, written once


def test_the_client_raises_overloaded_when_the_retries_run_out(
    small: tuple[FastAPI, Memory],
) -> None:
    app, mem = small
    fill(app.state.write_gate)
    with live_server(app) as url:
        with Client(url, ADMIN_KEY, retries=0) as client, pytest.raises(Overloaded) as info:
            client.put("team", "a", 1)
        assert info.value.retry_after == 1 and info.value.status == 503

        async def run() -> None:
            async with AsyncClient(url, ADMIN_KEY, retries=1) as aclient:
                await aclient.put_many([{"namespace": "team", "key": "b", "value": 1}])

        with pytest.raises(Overloaded):
            asyncio.run(run())
    assert app.state.write_gate.shed == 3  # one, then two (a first try and one retry)
    assert mem.status()["revision"] == 0


def test_a_shed_latency_of_zero_makes_the_limit_fixed() -> None:
    gate = WriteGate(2, latency=0.0)
    assert gate.enter() and gate.enter()
    assert not gate.enter() and gate.in_flight == 2 and gate.shed == 1
