"""Server settings, read from ``HIVEMEM_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

__all__ = ["Settings"]

_PREFIX = "HIVEMEM_"


@dataclass(frozen=True)
class Settings:
    """Everything the REST server needs to start.

    Each field is read from ``HIVEMEM_<FIELD>`` (``HIVEMEM_DATA_DIR``,
    ``HIVEMEM_ADMIN_KEY``, …) by :meth:`from_env`.
    """

    data_dir: str = "./data"
    host: str = "127.0.0.1"
    port: int = 8080
    admin_key: str | None = None
    durability: str = "full"
    max_body_bytes: int = 16 * 1024 * 1024
    heartbeat: float = 15.0
    watch_queue: int = 1024
    #: ``postgresql://…``: share one log between API replicas (each keeps its own
    #: vector index in ``data_dir``, caught up from the log). Unset: SQLite in data_dir.
    log_url: str | None = None
    #: Seconds a proposal waits for review before it expires (7 days).
    proposal_ttl: float = 7 * 86400.0
    #: Serve the MCP server at ``/mcp`` (when the ``mcp`` extra is installed).
    mcp: bool = True
    #: ``faiss://`` (default, in data_dir), ``qdrant://host:6333`` (a Qdrant server that
    #: replicas share) or ``qdrant+edge:///path`` (Qdrant's engine in process).
    index_url: str | None = None
    #: Write requests one process always runs at once; beyond them (up to 4x) a write
    #: runs only while writes finish within ``shed_latency`` on average, else it is
    #: answered 503 with ``Retry-After`` straight away (0: no limit). See
    #: ``api/shedding.py``.
    max_inflight_writes: int = 16
    #: Seconds: the average write latency under which writes beyond the limit still run.
    shed_latency: float = 0.15
    #: The ``Retry-After`` (seconds) of a shed write.
    shed_retry_after: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``env`` (default ``os.environ``); ``overrides`` win over both."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(_PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw, cls.__dataclass_fields__[f.name].default)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed."""
        return replace(self, **changes)


def _parse(name: str, raw: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{_PREFIX}{name.upper()}={raw!r} is not a number") from exc
    return raw
