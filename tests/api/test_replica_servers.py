"""Two real server processes over one PostgreSQL log, reached the way a deployment
reaches them: through the HTTP client, with requests spread across both replicas."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hivemem import Client
from hivemem.memory.errors import Conflict
from tests.api.helpers import ADMIN_KEY
from tests.conftest import _postgres_url

ROOT = Path(__file__).resolve().parents[2]

SERVER = """
import sys
sys.path.insert(0, {root!r})
import uvicorn
from hivemem.api import Settings, create_app
from hivemem.api.app import open_memory
from tests.embedders import HashEmbedder

settings = Settings(data_dir={data!r}, log_url={log_url!r}, admin_key={key!r},
                    durability="normal")
memory = open_memory(settings, embedder=HashEmbedder())
uvicorn.run(create_app(settings, memory=memory), host="127.0.0.1", port={port},
            log_level="warning")
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(data: str, log_url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    code = SERVER.format(root=str(ROOT), data=data, log_url=log_url, key=ADMIN_KEY, port=port)
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ})
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the replica did not start")
        time.sleep(0.1)


class RoundRobin(httpx.BaseTransport):
    """A load balancer in the client: each request goes to the next replica."""

    def __init__(self, ports: list[int]) -> None:
        self.ports = ports
        self.n = 0
        self.inner = httpx.HTTPTransport()
        self.lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            port = self.ports[self.n % len(self.ports)]
            self.n += 1
        request.url = request.url.copy_with(host="127.0.0.1", port=port)
        return self.inner.handle_request(request)


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[list[int]]:  # type: ignore[no-untyped-def]
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server (set HIVEMEM_TEST_POSTGRES)")
    schema = f"s_{uuid.uuid4().hex[:10]}"
    log_url = f"{url}?schema={schema}"
    base = tmp_path_factory.mktemp("replicas")
    procs: list[subprocess.Popen[bytes]] = []
    ports: list[int] = []
    try:
        for name in ("a", "b"):  # one after the other: the first bootstraps the admin key
            proc, port = _start(str(base / name), log_url)
            procs.append(proc)
            ports.append(port)
        yield ports
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        from hivemem.memory.log.postgres import PostgresLog

        PostgresLog(url, schema=schema).drop()


def balanced(ports: list[int]) -> Client:
    return Client("http://replicas", api_key=ADMIN_KEY, transport=RoundRobin(ports))


def test_a_client_reads_its_own_writes_on_either_replica(servers: list[int]) -> None:
    with balanced(servers) as client:
        for i in range(20):  # each write and the reads after it land on different replicas
            item = client.put("ryw/notes", f"n{i}", f"note number {i} about kites")
            assert client.written_revision == item.revision
            assert client.get("ryw/notes", f"n{i}").revision == item.revision
            hits = client.search(f"note number {i} about kites", namespaces=["ryw"], mode="vector")
            assert hits[0].item.key == f"n{i}"
            assert hits[0].item.revision == item.revision


def test_eight_clients_racing_compare_and_swap_across_both_lose_no_update(
    servers: list[int],
) -> None:
    rounds = 6
    with balanced(servers) as setup:
        setup.put("cas/counter", "c", 0)
    conflicts = [0]
    lock = threading.Lock()

    def worker(n: int) -> None:
        with balanced(servers[n % 2 :] + servers[: n % 2]) as client:
            done = 0
            while done < rounds:
                current = client.get("cas/counter", "c")
                try:
                    client.put("cas/counter", "c", current.value + 1, if_version=current.version)
                    done += 1
                except Conflict:
                    with lock:
                        conflicts[0] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with balanced(servers) as client:
        final = client.get("cas/counter", "c")
        assert final.value == 8 * rounds
        versions = [i.version for i in client.history("cas/counter", "c")]
    assert versions == list(range(1, 8 * rounds + 2))
    assert conflicts[0] > 0  # they did race


def test_a_watch_on_b_sees_a_writes_in_order_once_each(servers: list[int]) -> None:
    a, b = servers
    with (
        Client(f"http://127.0.0.1:{a}", api_key=ADMIN_KEY) as ca,
        Client(f"http://127.0.0.1:{b}", api_key=ADMIN_KEY) as cb,
    ):
        since = ca.revision
        stream = cb.watch(["order"], since=since)
        got: list[tuple[int, str]] = []

        def read() -> None:
            for change in stream:
                got.append((change.revision, change.key))
                if len(got) == 30:
                    return

        reader = threading.Thread(target=read)
        reader.start()
        written = [ca.put("order/x", f"k{i}", i).revision for i in range(30)]
        reader.join(timeout=20)
        stream.close()
    assert got == [(r, f"k{i}") for i, r in enumerate(written)]
