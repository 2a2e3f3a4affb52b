"""Vector indexes: derived views of the log, rebuilt or caught up from it."""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlsplit

from hivemem.memory.errors import InvalidInput
from hivemem.memory.index.base import VectorIndex

__all__ = ["VectorIndex", "open_index"]

_HNSW_OPTIONS = {
    "hnsw_threshold": "threshold",
    "hnsw_m": "m",
    "ef_construction": "ef_construction",
    "ef_search": "ef_search",
}


def open_index(url: str | None, data_dir: str) -> VectorIndex:
    """Open a vector index by URL (``HIVEMEM_INDEX_URL``).

    - unset or ``faiss://``: FAISS in ``data_dir/vectors.faiss`` (``faiss:///path/file``
      elsewhere); ``?hnsw_threshold=N&ef_search=N&ef_construction=N&hnsw_m=N`` tune it;
    - ``qdrant://host:6333/collection`` (``qdrants://`` for TLS, ``?api_key=``): a Qdrant
      server or cluster, shared by replicas;
    - ``qdrant+edge:///path`` (``qdrant+edge://`` alone: ``data_dir/qdrant-edge``):
      Qdrant's engine in this process (one process per directory).
    """
    parts = urlsplit(url or "faiss://")
    options = dict(parse_qsl(parts.query))
    if parts.scheme == "faiss":
        from hivemem.memory.index.faiss import FaissIndex, HnswParams

        known = {_HNSW_OPTIONS[k]: _number(k, v) for k, v in options.items() if k in _HNSW_OPTIONS}
        _reject_unknown(options, _HNSW_OPTIONS)
        path = parts.path or os.path.join(data_dir, "vectors.faiss")
        return FaissIndex(path, hnsw=HnswParams(**known))
    if parts.scheme in ("qdrant", "qdrants"):
        from hivemem.memory.index.qdrant import QdrantIndex

        _reject_unknown(options, {"api_key": ""})
        scheme = "https" if parts.scheme == "qdrants" else "http"
        collection = parts.path.strip("/") or "hivemem"
        kwargs = {"api_key": options["api_key"]} if "api_key" in options else {}
        return QdrantIndex.connect(f"{scheme}://{parts.netloc}", collection, **kwargs)
    if parts.scheme == "qdrant+edge":
        from hivemem.memory.index.qdrant_edge import QdrantEdgeIndex

        _reject_unknown(options, {})
        return QdrantEdgeIndex(parts.path or os.path.join(data_dir, "qdrant-edge"))
    raise InvalidInput("index_url", f"unknown scheme in {url!r}")


def _number(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError as exc:
        raise InvalidInput("index_url", f"{name}={raw!r} is not an integer") from exc


def _reject_unknown(options: dict[str, str], known: dict[str, str]) -> None:
    extra = sorted(set(options) - set(known))
    if extra:
        raise InvalidInput("index_url", f"unknown option {extra[0]!r}")
