"""A real uvicorn server on 127.0.0.1 (in a thread, on a free port) over an in-memory
store with the hashing test embedder, plus a TCP proxy that can cut connections."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import uvicorn

from hivemem.api.app import create_app
from hivemem.api.settings import Settings
from hivemem.memory import Memory
from hivemem.memory.client import Client
from tests.embedders import HashEmbedder

ADMIN_KEY = "test-admin-key-0123456789"


def open_memory(**options: Any) -> Memory:
    """A throwaway store like the server's: the test embedder, no reaper thread."""
    options.setdefault("reaper_interval", None)
    return Memory.open(":memory:", embedder=HashEmbedder(), **options)


def free_socket() -> socket.socket:
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP
    # (with proto 0 every keep-alive request waits ~40 ms for a delayed ACK).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class LiveServer:
    """``create_app`` over ``memory``, served by uvicorn in a background thread."""

    def __init__(self, memory: Memory, **settings: Any) -> None:
        self.memory = memory
        self.settings = Settings(admin_key=ADMIN_KEY, **settings)
        self.app = create_app(self.settings, memory=memory)
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def client(self, api_key: str | None = ADMIN_KEY, **options: Any) -> Client:
        return Client(self.url, api_key, **options)


@pytest.fixture
def make_server() -> Iterator[Callable[..., LiveServer]]:
    """Start servers over fresh stores (``memory=`` or store options); stops them after."""
    started: list[LiveServer] = []

    def make(memory: Memory | None = None, **options: Any) -> LiveServer:
        settings = {k: options.pop(k) for k in ("heartbeat",) if k in options}
        server = LiveServer(memory or open_memory(**options), **settings).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()
        server.memory.close()


@pytest.fixture
def server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server()


@pytest.fixture
def client(server: LiveServer) -> Iterator[Client]:
    with server.client() as c:
        yield c


class TcpProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut()`` drops every open connection."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sock = free_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.sock.accept()
            except OSError:
                return
            up = socket.create_connection(("127.0.0.1", self.target_port))
            for s in (down, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns += [down, up]
                self.accepted += 1
            threading.Thread(target=self._pipe, args=(down, up), daemon=True).start()
            threading.Thread(target=self._pipe, args=(up, down), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def close(self) -> None:
        self.sock.close()
        self.cut()


@pytest.fixture
def make_proxy() -> Iterator[Callable[[int], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def make(port: int) -> TcpProxy:
        proxies.append(TcpProxy(port))
        return proxies[-1]

    yield make
    for p in proxies:
        p.close()
