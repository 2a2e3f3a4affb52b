"""Fixtures for the adapter tests: every adapter runs over an embedded store and over a
real server on 127.0.0.1 (one per session and kind of store, shared by all tests, each
test in namespaces of its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hivemem.memory import Memory
from hivemem.memory.client import Client
from tests.client.conftest import ADMIN_KEY, LiveServer
from tests.embedders import HashEmbedder

SIDES = ["embedded", "remote"]


class Side:
    """One way to reach a store: the store itself and a target the adapters use."""

    def __init__(self, root: Memory, url: str | None) -> None:
        self.root = root
        self.url = url
        self._clients: list[Client] = []

    @property
    def remote(self) -> bool:
        return self.url is not None

    def target(self, principal: str | None = None) -> Any:
        """The store as ``principal`` sees it (admin when None): a Memory or a Client."""
        if self.url is None:
            return self.root if principal is None else self.root.as_principal(principal)
        key = ADMIN_KEY if principal is None else self.root.create_key(principal).secret
        client = Client(self.url, key)
        self._clients.append(client)
        return client

    def close(self) -> None:
        for c in self._clients:
            c.close()
        self._clients.clear()


def _store(embedder: Any) -> Memory:
    return Memory.open(":memory:", embedder=embedder, durability="normal", reaper_interval=None)


@pytest.fixture(scope="session")
def plain_store() -> Iterator[Memory]:
    """A store without an embedder (vectors are supplied), shared by the session."""
    mem = _store(None)
    yield mem
    mem.close()


@pytest.fixture(scope="session")
def hash_store() -> Iterator[Memory]:
    """A store with the word-hashing test embedder, shared by the session."""
    mem = _store(HashEmbedder())
    yield mem
    mem.close()


@pytest.fixture(scope="session")
def plain_server(plain_store: Memory) -> Iterator[LiveServer]:
    server = LiveServer(plain_store).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def hash_server(hash_store: Memory) -> Iterator[LiveServer]:
    server = LiveServer(hash_store).start()
    yield server
    server.stop()


def _side(request: pytest.FixtureRequest, kind: str) -> Iterator[Side]:
    store: Memory = request.getfixturevalue(f"{kind}_store")
    url = request.getfixturevalue(f"{kind}_server").url if request.param == "remote" else None
    side = Side(store, url)
    yield side
    side.close()


@pytest.fixture(params=SIDES)
def plain_side(request: pytest.FixtureRequest) -> Iterator[Side]:
    """The embedder-less store, embedded and through a server."""
    yield from _side(request, "plain")


@pytest.fixture(params=SIDES)
def hash_side(request: pytest.FixtureRequest) -> Iterator[Side]:
    """The hashing-embedder store, embedded and through a server."""
    yield from _side(request, "hash")


@pytest.fixture
def ns() -> str:
    """A namespace no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"
