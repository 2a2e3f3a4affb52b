"""Fixtures for the REST tests: an in-memory store, the app over it, and API keys."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, live_server
from tests.embedders import HashEmbedder


def _no_server_errors(response: httpx.Response) -> None:
    # A 500 is always a bug; 503 (not ready, lagged) is a designed answer.
    assert response.status_code < 500 or response.status_code == 503, response.text


def make_client(app: FastAPI) -> TestClient:
    """A TestClient that fails the test on any 500."""
    client = TestClient(app)
    client.event_hooks["response"].append(_no_server_errors)
    return client


@pytest.fixture
def store() -> Iterator[Memory]:
    """A throwaway store with the word-hashing test embedder."""
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    yield mem
    mem.close()


@pytest.fixture
def settings() -> Settings:
    return Settings(admin_key=ADMIN_KEY, heartbeat=0.2)


@pytest.fixture
def app(store: Memory, settings: Settings) -> FastAPI:
    return create_app(settings, memory=store)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with make_client(app) as c:
        yield c


@dataclass
class Keys:
    """API keys of the test principals (see the ``keys`` fixture)."""

    admin: str
    reader: str
    writer: str
    nsadmin: str
    revoked: str
    other: str
    bad: str = "hm_0123456789abcdef_notarealkeynotarealkeynotarealkey"


@pytest.fixture
def keys(store: Memory, app: FastAPI) -> Keys:
    """reader, writer, nsadmin: read, write, admin on ``own``; ``other``: write on ``other``."""
    store.grant("reader", "own", "read")
    store.grant("writer", "own", "write")
    store.grant("nsadmin", "own", "admin")
    store.grant("stranger", "other", "write")
    revoked = store.create_key("writer")
    store.revoke_key(revoked.id)
    return Keys(
        admin=ADMIN_KEY,
        reader=store.create_key("reader").secret,
        writer=store.create_key("writer").secret,
        nsadmin=store.create_key("nsadmin").secret,
        revoked=revoked.secret,
        other=store.create_key("stranger").secret,
    )


@pytest.fixture
def live_url(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a loopback port (for streaming and exact URLs)."""
    with live_server(app) as url:
        yield url
