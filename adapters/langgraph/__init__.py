"""LangGraph adapters (``pip install 'hivemem[langgraph]'``).

- ``HivememStore``: a ``BaseStore`` (long-term memory) with ``index``, TTL and a
  compare-and-swap extension (``put_if`` / ``VersionedItem.version``);
- ``HivememSaver``: a ``BaseCheckpointSaver`` keeping thread state in hivemem's log.

Each works over an embedded ``Memory`` or a ``Client``.
"""

from __future__ import annotations

from hivemem.adapters.langgraph.checkpoint import HivememSaver
from hivemem.adapters.langgraph.store import HivememStore, VersionedItem

__all__ = ["HivememStore", "VersionedItem", "HivememSaver"]
