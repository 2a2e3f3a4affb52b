"""Shared fixtures: one ``log`` fixture parametrised over every StateLog backend.

PostgreSQL is used when ``HIVEMEM_TEST_POSTGRES`` (a URL) is set or a server answers on
127.0.0.1:5432; a backend that is absent is skipped with the reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bench.common import local_postgres_url as _postgres_url
from hivemem.memory import Memory
from hivemem.memory.log.base import StateLog
from tests.embedders import HashEmbedder

BACKENDS = ["sqlite", "postgres"]


def make_log(backend: str, tmp_path) -> StateLog:  # type: ignore[no-untyped-def]
    """A fresh, empty log of ``backend``; skips when the backend is unavailable."""
    if backend == "sqlite":
        from hivemem.memory.log.sqlite import SQLiteLog

        return SQLiteLog(str(tmp_path / f"log-{uuid.uuid4().hex[:6]}.db"), durability="off")
    url = _postgres_url()
    if url is None:
        pytest.skip("no PostgreSQL server (set HIVEMEM_TEST_POSTGRES)")
    try:
        from hivemem.memory.log.postgres import PostgresLog
    except ImportError as exc:
        pytest.skip(f"PostgreSQL log backend not available: {exc}")
    return PostgresLog(url, schema=f"t_{uuid.uuid4().hex[:10]}", fresh=True)


@pytest.fixture(params=BACKENDS)
def log(request, tmp_path) -> Iterator[StateLog]:  # type: ignore[no-untyped-def]
    """A fresh log of each backend."""
    lg = make_log(request.param, tmp_path)
    yield lg
    lg.close()
    if request.param == "postgres":
        lg.drop()  # type: ignore[attr-defined]


@pytest.fixture
def embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def mem(log, tmp_path, embedder) -> Iterator[Memory]:  # type: ignore[no-untyped-def]
    """An engine over each backend, with the hashing test embedder and no reaper thread."""
    m = Memory.open(str(tmp_path / "data"), embedder=embedder, log=log, reaper_interval=None)
    yield m
    m.close()


@pytest.fixture
def sqlite_mem(tmp_path, embedder) -> Iterator[Memory]:  # type: ignore[no-untyped-def]
    """An embedded store on SQLite in a temporary data directory."""
    m = Memory.open(str(tmp_path / "data"), embedder=embedder, reaper_interval=None)
    yield m
    m.close()


class Clock:
    """Moves ``time.time`` forward on demand, so expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """A wall clock under the test's control (every module reads ``time.time()``)."""
    import time

    real, c = time.time, Clock()
    monkeypatch.setattr(time, "time", lambda: real() + c.offset)
    return c
