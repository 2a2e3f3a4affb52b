"""Key-value ``BaseStore`` implementations over one hivemem namespace."""

from __future__ import annotations

import base64
from abc import abstractmethod
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any, Generic, TypeVar

from langchain_core.stores import BaseStore

from hivemem.adapters._common import (
    Target,
    decode_key,
    delete_present,
    encode_key,
    get_many,
    list_all,
    to_thread,
)
from hivemem.memory.models import Item

__all__ = ["HivememByteStore", "HivememJSONStore"]

V = TypeVar("V")


class _KVStore(BaseStore[str, V], Generic[V]):
    """One item per key in ``namespace``; values are never embedded or indexed."""

    def __init__(self, memory: Target, namespace: str) -> None:
        self.memory = memory
        self.namespace = namespace

    @abstractmethod
    def _encode(self, value: V) -> Any:
        """The item value stored for ``value`` (each concrete store says how)."""

    @abstractmethod
    def _decode(self, item: Item) -> V:
        """The store's value read back from ``item``."""

    def mget(self, keys: Sequence[str]) -> list[V | None]:
        """The values of ``keys`` (None where absent), read in one snapshot."""
        items = get_many(self.memory, [(self.namespace, encode_key(k)) for k in keys])
        return [self._decode(item) if item is not None else None for item in items]

    def mset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Set every pair in one revision."""
        ops = [
            # text "" keeps values out of the embedder and the keyword index
            {
                "namespace": self.namespace,
                "key": encode_key(k),
                "value": self._encode(v),
                "text": "",
            }
            for k, v in key_value_pairs
        ]
        if ops:
            self.memory.put_many(ops)

    def mdelete(self, keys: Sequence[str]) -> None:
        """Delete ``keys``; absent ones are ignored."""
        delete_present(self.memory, [(self.namespace, encode_key(k)) for k in keys])

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        """Every key (starting with ``prefix``), in hivemem's key order."""
        for item in list_all(self.memory, self.namespace):
            key = decode_key(item.key)
            if prefix is None or key.startswith(prefix):
                yield key

    async def amget(self, keys: Sequence[str]) -> list[V | None]:
        """Async twin of ``mget``."""
        return await to_thread(self.mget, list(keys))

    async def amset(self, key_value_pairs: Sequence[tuple[str, V]]) -> None:
        """Async twin of ``mset``."""
        await to_thread(self.mset, list(key_value_pairs))

    async def amdelete(self, keys: Sequence[str]) -> None:
        """Async twin of ``mdelete``."""
        await to_thread(self.mdelete, list(keys))

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        """Async twin of ``yield_keys`` (pages are fetched in a worker thread)."""
        keys = await to_thread(lambda: list(self.yield_keys(prefix=prefix)))
        for key in keys:
            yield key


class HivememByteStore(_KVStore[bytes]):
    """``BaseStore[str, bytes]``: values stored as ``{"base64": ...}`` items."""

    def _encode(self, value: bytes) -> Any:
        return {"base64": base64.b64encode(value).decode()}

    def _decode(self, item: Item) -> bytes:
        return base64.b64decode(item.value["base64"])


class HivememJSONStore(_KVStore[Any]):
    """``BaseStore[str, Any]`` for JSON values, stored as the item's value itself."""

    def _encode(self, value: Any) -> Any:
        return value

    def _decode(self, item: Item) -> Any:
        return item.value
