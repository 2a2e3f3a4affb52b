"""``HivememEmbedding``: a hivemem ``Embedder`` as a LlamaIndex embed model."""

from __future__ import annotations

from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from hivemem.memory.embed import Embedder

__all__ = ["HivememEmbedding"]


class HivememEmbedding(BaseEmbedding):
    """LlamaIndex embeddings computed by a hivemem ``Embedder`` in this process.

    ``HivememEmbedding(MiniLMEmbedder())`` gives the vectors hivemem itself would store,
    without any model download (the model ships with hivemem).
    """

    _embedder: Any = PrivateAttr()

    def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._embedder = embedder

    @classmethod
    def class_name(cls) -> str:
        return "HivememEmbedding"

    def _embed(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._embedder.embed(list(texts))]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._embed([query])[0]

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._embed([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self._embed(texts)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)
