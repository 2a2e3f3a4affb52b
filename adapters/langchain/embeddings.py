"""``HivememEmbeddings``: a hivemem ``Embedder`` as LangChain ``Embeddings``."""

from __future__ import annotations

from langchain_core.embeddings import Embeddings

from hivemem.memory.embed import Embedder

__all__ = ["HivememEmbeddings"]


class HivememEmbeddings(Embeddings):
    """LangChain ``Embeddings`` computed by a hivemem ``Embedder`` in this process.

    ``HivememVectorStore(mem, "docs", HivememEmbeddings(MiniLMEmbedder()))`` stores the
    same vectors hivemem would compute, and enables max marginal relevance search.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text."""
        if not texts:
            return []
        return [[float(x) for x in row] for row in self.embedder.embed(list(texts))]

    def embed_query(self, text: str) -> list[float]:
        """The vector of one query."""
        return self.embed_documents([text])[0]
