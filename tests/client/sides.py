"""The two sides of a congruence test: the embedded engine and a client of a live server.

A scenario is a function ``scenario(side, rec)``; ``rec(fn, *args, **kwargs)`` calls
``fn`` and records what happened (a normalised result, or the error class and its key
attributes). Running one scenario on both sides must record the same outcomes.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from pydantic import BaseModel

from hivemem.memory import Memory
from hivemem.memory.client import AsyncClient, Client
from hivemem.memory.errors import Conflict, HivememError

TIMESTAMPS = frozenset(
    {"created_at", "updated_at", "expires_at", "time", "revoked_at", "reviewed_at"}
)
RANDOM_IDS = frozenset({"lease"})  # lease ids are random: compare whether they are set


def normalize(value: Any) -> Any:
    """JSON-ready, with timestamps reduced to whether they are set."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, dict):
        return {
            k: (v is not None if k in TIMESTAMPS or k in RANDOM_IDS else normalize(v))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [normalize(v) for v in value]
    return value


def error_outcome(err: HivememError) -> tuple[Any, ...]:
    """The error's class and key attributes (not its wording)."""
    attrs: dict[str, Any] = {}
    for name in ("field", "compacted_revision", "resume_revision"):
        if hasattr(err, name):
            attrs[name] = getattr(err, name)
    if isinstance(err, Conflict):
        attrs["current"] = normalize(err.current)
        attrs["conflicts"] = normalize(err.conflicts)
        attrs["item"] = (err.namespace, err.key)
    return ("raised", type(err).__name__, attrs)


class Recorder:
    """Calls operations and keeps their outcomes."""

    def __init__(self) -> None:
        self.outcomes: list[tuple[Any, ...]] = []

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except HivememError as err:
            self.outcomes.append(error_outcome(err))
            return None
        self.outcomes.append(("ok", normalize(result)))
        return result

    def errors(self) -> list[str]:
        return [o[1] for o in self.outcomes if o[0] == "raised"]


def take(stream: Any, n: int) -> list[Any]:
    """The first ``n`` changes of a watch, then close it."""
    try:
        return list(itertools.islice(stream, n))
    finally:
        stream.close()


class EmbeddedSide:
    """``Memory`` seen as ``admin`` (a principal granted admin on everything)."""

    name = "embedded"

    def __init__(self, root: Memory) -> None:
        self.root = root
        root.grant("admin", "", "admin")
        self.mem: Any = root.as_principal("admin")

    def as_principal(self, name: str) -> Any:
        return self.root.as_principal(name)

    def close(self) -> None:
        self.root.close()


class RemoteSide:
    """A ``Client`` of a live server, with the admin key."""

    name = "remote"

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.mem: Any = Client(url, admin_key)
        self._others: list[Client] = []

    def as_principal(self, name: str) -> Any:
        key = self.mem.create_key(name)
        other = Client(self.url, key.secret)
        self._others.append(other)
        return other

    def close(self) -> None:
        for c in [self.mem, *self._others]:
            c.close()


class AsyncRemoteSide:
    """An ``AsyncClient`` driven through a blocking facade, so scenarios run unchanged."""

    name = "async-remote"

    def __init__(self, url: str, admin_key: str) -> None:
        self.url = url
        self.loop = asyncio.new_event_loop()
        self._clients = [AsyncClient(url, admin_key)]
        self.mem: Any = Blocking(self._clients[0], self.loop)

    def as_principal(self, name: str) -> Any:
        key = self.mem.create_key(name)
        self._clients.append(AsyncClient(self.url, key.secret))
        return Blocking(self._clients[-1], self.loop)

    def close(self) -> None:
        for c in self._clients:
            self.loop.run_until_complete(c.close())
        self.loop.close()


class Blocking:
    """Runs every awaitable an async object returns to completion on ``loop``."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def _resolve(self, value: Any) -> Any:
        if inspect.isawaitable(value):
            return self._loop.run_until_complete(value)
        if hasattr(value, "__anext__"):
            return BlockingIterator(value, self._loop)
        return value

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._target, name)
        if callable(attr) and not hasattr(attr, "__anext__"):
            return lambda *a, **kw: self._resolve(attr(*a, **kw))
        return self._resolve(attr)


class BlockingIterator:
    """A blocking iterator over an async one (``close`` closes it too)."""

    def __init__(self, target: Any, loop: asyncio.AbstractEventLoop) -> None:
        self._target = target
        self._loop = loop

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            return self._loop.run_until_complete(self._target.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        closer = getattr(self._target, "close", None) or self._target.aclose
        self._loop.run_until_complete(closer())
