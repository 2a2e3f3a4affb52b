"""The clients' public surface: the same methods and arguments as ``Memory``, twins alike."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from hivemem.memory import Memory
from hivemem.memory import client as client_package
from hivemem.memory.client import AsyncClient, AsyncWatchStream, Client

MIRRORED = [
    "put",
    "update",
    "put_many",
    "get",
    "delete",
    "history",
    "list",
    "namespaces",
    "activity",
    "search",
    "recall",
    "txn",
    "watch",
    "lease",
    "keepalive",
    "revoke_lease",
    "get_lease",
    "claim",
    "complete",
    "release",
    "proposals",
    "get_proposal",
    "approve",
    "reject",
    "compact",
    "grant",
    "revoke",
    "grants",
    "create_key",
    "revoke_key",
    "keys",
    "export",
    "import_items",
    "close",
]
PROPERTIES = ["revision", "compacted_revision", "principal"]
#: Arguments of ``Memory`` a remote client has no use for, with the reason.
ENGINE_ONLY = {
    ("export", "batch"): "the server pages the export itself",
    ("recall", "count_tokens"): "a Python function cannot cross the wire",
}


def shape(fn: Any, skip: str = "") -> list[tuple[str, Any, Any]]:
    params = inspect.signature(fn).parameters.values()
    return [
        (p.name, p.kind, p.default)
        for p in params
        if p.name != "self" and (skip, p.name) not in ENGINE_ONLY
    ]


@pytest.mark.parametrize("name", MIRRORED)
def test_client_methods_take_the_arguments_of_memory(name: str) -> None:
    assert shape(getattr(Client, name)) == shape(getattr(Memory, name), skip=name)


@pytest.mark.parametrize("name", [*MIRRORED, "__init__"])
def test_async_client_mirrors_client(name: str) -> None:
    assert shape(getattr(AsyncClient, name)) == shape(getattr(Client, name))


@pytest.mark.parametrize("name", MIRRORED)
def test_async_client_methods_are_awaitable_or_async_iterators(name: str) -> None:
    fn = getattr(AsyncClient, name)
    if name == "watch":  # returns the stream at once; iterating it is what awaits
        assert not inspect.iscoroutinefunction(fn)
        assert hasattr(AsyncWatchStream, "__anext__") and hasattr(AsyncWatchStream, "close")
    elif name == "export":
        assert inspect.isasyncgenfunction(fn)
    else:
        assert inspect.iscoroutinefunction(fn)


@pytest.mark.parametrize("name", PROPERTIES)
def test_both_clients_expose_the_properties_of_memory(name: str) -> None:
    assert isinstance(getattr(Client, name), property)
    assert isinstance(getattr(AsyncClient, name), property)


def test_constructor_arguments() -> None:
    assert [n for n, *_ in shape(Client.__init__)] == [
        "base_url",
        "api_key",
        "timeout",
        "transport",
        "http_client",
        "retries",
    ]


def test_exported_members() -> None:
    assert sorted(client_package.__all__) == sorted(
        ["Client", "AsyncClient", "WatchStream", "AsyncWatchStream"]
    )
    for name in client_package.__all__:
        assert getattr(client_package, name).__module__.startswith("hivemem.memory.client.")
