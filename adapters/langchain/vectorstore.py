"""``HivememVectorStore``: a LangChain ``VectorStore`` over one hivemem namespace."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_core.vectorstores.utils import maximal_marginal_relevance

from hivemem.adapters._common import (
    Target,
    decode_key,
    delete_present,
    encode_key,
    get_many,
    list_all,
    mirror_metadata,
    to_thread,
)
from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Hit, Item

__all__ = ["HivememVectorStore"]

_MODES = ("vector", "hybrid", "keyword")


def _document(item: Item) -> Document:
    value = item.value if isinstance(item.value, dict) else {}
    text = value.get("page_content", item.text or "")
    metadata = value.get("metadata", item.metadata)
    return Document(id=decode_key(item.key), page_content=text, metadata=dict(metadata))


class HivememVectorStore(VectorStore):
    """Documents as items of one hivemem namespace, searched by hivemem's engine.

    Each document is one item: its id is the key, ``{"page_content", "metadata"}`` the
    value (lossless), the text what hivemem indexes, and the top-level scalar metadata
    fields are copied into the item's metadata so hivemem's filters apply
    (``filter={"year": {"$gte": 2020}}``). Searches cover the namespace and those below
    it; ``mode`` (``"vector"``, ``"hybrid"`` or ``"keyword"``, per store or per call)
    picks hivemem's retrieval mode. With ``embedding`` given, vectors are computed here
    and supplied; otherwise hivemem embeds with its own model.
    """

    def __init__(
        self,
        memory: Target,
        namespace: str,
        embedding: Embeddings | None = None,
        *,
        mode: str = "vector",
    ) -> None:
        if mode not in _MODES:
            raise InvalidInput("mode", "must be 'vector', 'hybrid' or 'keyword'")
        self.memory = memory
        self.namespace = namespace
        self.embedding = embedding
        self.mode = mode

    @property
    def embeddings(self) -> Embeddings | None:
        """The LangChain embeddings in use (None: hivemem's own model)."""
        return self.embedding

    # -- writes --------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Write one item per text (an existing id is overwritten); returns the ids."""
        texts = list(texts)
        metas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        if len(metas) != len(texts):
            raise InvalidInput("metadatas", "must have one entry per text")
        given = list(ids) if ids is not None else [None] * len(texts)
        if len(given) != len(texts):
            raise InvalidInput("ids", "must have one entry per text")
        keys = [i if i else str(uuid.uuid4()) for i in given]
        vectors = self.embedding.embed_documents(texts) if self.embedding else None
        ops = []
        for n, (text, meta, key) in enumerate(zip(texts, metas, keys, strict=True)):
            ops.append(
                {
                    "namespace": self.namespace,
                    "key": encode_key(key),
                    "value": {"page_content": text, "metadata": meta},
                    "text": text,
                    "metadata": mirror_metadata(meta),
                    "vector": list(vectors[n]) if vectors is not None else None,
                }
            )
        if ops:
            self.memory.put_many(ops)
        return keys

    async def aadd_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Async twin of ``add_texts``."""
        return await to_thread(self.add_texts, list(texts), metadatas, ids=ids, **kwargs)

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Delete the documents with these ids (missing ones are ignored); None: all."""
        if ids is None:
            keys = [item.key for item in list_all(self.memory, self.namespace)]
        else:
            keys = [encode_key(i) for i in ids]
        for start in range(0, len(keys), 500):
            delete_present(self.memory, [(self.namespace, k) for k in keys[start : start + 500]])
        return True

    async def adelete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        """Async twin of ``delete``."""
        return await to_thread(self.delete, ids, **kwargs)

    # -- reads ---------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The documents with these ids, in the order asked (missing ones left out)."""
        items = get_many(self.memory, [(self.namespace, encode_key(i)) for i in ids])
        return [_document(item) for item in items if item is not None]

    async def aget_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """Async twin of ``get_by_ids``."""
        return await to_thread(self.get_by_ids, list(ids))

    def _hits(
        self,
        query: str | None,
        k: int,
        *,
        vector: Sequence[float] | None = None,
        filter: dict[str, Any] | None = None,
        mode: str | None = None,
        **kwargs: Any,
    ) -> list[Hit]:
        mode = mode or self.mode
        if mode not in _MODES:
            raise InvalidInput("mode", "must be 'vector', 'hybrid' or 'keyword'")
        if vector is None and self.embedding is not None and query and mode != "keyword":
            vector = self.embedding.embed_query(query)
        return self.memory.search(
            query,
            namespaces=[self.namespace],
            k=k,
            mode=mode,
            filter=filter,
            vector=list(vector) if vector is not None else None,
        )

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """The ``k`` documents most relevant to ``query`` (``filter=``, ``mode=``)."""
        return [_document(h.item) for h in self._hits(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with hivemem's score (cosine in vector mode; higher is better)."""
        return [(_document(h.item), h.score) for h in self._hits(query, k, **kwargs)]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """The ``k`` documents nearest to a query vector."""
        kwargs.setdefault("mode", "vector")
        return [_document(h.item) for h in self._hits(None, k, vector=embedding, **kwargs)]

    def _select_relevance_score_fn(self) -> Any:
        # Vector scores are cosines in [-1, 1]; hybrid and keyword scores are already
        # normalised to [0, 1] by the engine.
        # float32 cosines may exceed 1 by an ulp: clamp.
        if self.mode == "vector":
            return lambda score: min(1.0, max(0.0, (score + 1.0) / 2.0))
        return lambda score: min(1.0, max(0.0, score))

    def max_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Fetch ``fetch_k`` candidates from hivemem, keep ``k`` relevant yet diverse."""
        vector = self._query_vector(query)
        return self.max_marginal_relevance_search_by_vector(
            vector, k, fetch_k, lambda_mult, query=query, **kwargs
        )

    def max_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """MMR over the candidates nearest to a query vector."""
        query = kwargs.pop("query", None)
        kwargs.setdefault("mode", "vector")
        hits = self._hits(query, fetch_k, vector=embedding, **kwargs)
        if not hits:
            return []
        docs = [_document(h.item) for h in hits]
        vectors = self._query_embedder().embed_documents([d.page_content for d in docs])
        chosen = maximal_marginal_relevance(
            np.asarray(embedding, dtype=np.float32), vectors, lambda_mult=lambda_mult, k=k
        )
        return [docs[i] for i in chosen]

    def _query_embedder(self) -> Embeddings:
        if self.embedding is None:
            raise InvalidInput(
                "embedding",
                "max marginal relevance compares candidates by their vectors, which "
                "hivemem does not return: give the store a LangChain Embeddings",
            )
        return self.embedding

    def _query_vector(self, query: str) -> list[float]:
        return self._query_embedder().embed_query(query)

    # async twins of the searches: the blocking calls in a worker thread
    async def asimilarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        """Async twin of ``similarity_search``."""
        return await to_thread(self.similarity_search, query, k, **kwargs)

    async def asimilarity_search_with_score(
        self, *args: Any, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Async twin of ``similarity_search_with_score``."""
        return await to_thread(self.similarity_search_with_score, *args, **kwargs)

    async def asimilarity_search_by_vector(
        self, embedding: list[float], k: int = 4, **kwargs: Any
    ) -> list[Document]:
        """Async twin of ``similarity_search_by_vector``."""
        return await to_thread(self.similarity_search_by_vector, embedding, k, **kwargs)

    async def amax_marginal_relevance_search(
        self,
        query: str,
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Async twin of ``max_marginal_relevance_search``."""
        return await to_thread(
            self.max_marginal_relevance_search, query, k, fetch_k, lambda_mult, **kwargs
        )

    async def amax_marginal_relevance_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        fetch_k: int = 20,
        lambda_mult: float = 0.5,
        **kwargs: Any,
    ) -> list[Document]:
        """Async twin of ``max_marginal_relevance_search_by_vector``."""
        return await to_thread(
            self.max_marginal_relevance_search_by_vector,
            embedding,
            k,
            fetch_k,
            lambda_mult,
            **kwargs,
        )

    # -- construction ----------------------------------------------------------------
    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        memory: Target | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> HivememVectorStore:
        """A store over ``memory`` and ``namespace`` holding ``texts``."""
        if memory is None or namespace is None:
            raise InvalidInput("memory", "from_texts needs memory= and namespace=")
        store = cls(memory, namespace, embedding, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
