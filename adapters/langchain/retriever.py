"""``HivememRecallRetriever``: hivemem's recall as a LangChain retriever."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.callbacks import (
    AsyncCallbackManagerForRetrieverRun,
    CallbackManagerForRetrieverRun,
)
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from hivemem.adapters._common import Target, to_thread
from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Recall, RecallItem

__all__ = ["HivememRecallRetriever", "recall_documents"]

# What a call may override with ``retriever.invoke(query, k=3, thread="s1")``.
_CALL_OPTIONS = frozenset(
    {"k", "budget_tokens", "mode", "filter", "thread", "at_revision", "namespaces"}
)


def recall_documents(recall: Recall) -> list[Document]:
    """The items of a ``Recall`` as Documents, in context order, each with its citation.

    ``metadata`` holds the citation (``namespace``, ``key``, ``version``,
    ``revision``, ``author``, ``thread``), the hit's ``score``, the ``tokens`` its entry
    took in the context, and the item's own metadata under ``item_metadata``.
    """
    return [_document(entry) for entry in recall.items]


def _document(entry: RecallItem) -> Document:
    item, cite = entry.item, entry.citation
    body = item.text if item.text else json.dumps(item.value, ensure_ascii=False)
    return Document(
        id=f"{cite.namespace}/{cite.key}",
        page_content=body,
        metadata={
            "namespace": cite.namespace,
            "key": cite.key,
            "version": cite.version,
            "revision": cite.revision,
            "author": cite.author,
            "thread": cite.thread,
            "score": entry.score,
            "tokens": entry.tokens,
            "item_metadata": dict(item.metadata),
        },
    )


class HivememRecallRetriever(BaseRetriever):
    """Documents from ``Memory.recall``: the best of the top-``k`` hits that fit
    ``budget_tokens``, near-duplicates dropped, grouped by thread in conversation order.

    Works over an embedded ``Memory`` or a ``Client``. Every document cites the version
    it came from in its metadata, so an answer can name (and re-read) its sources.
    ``k``, ``budget_tokens``, ``mode``, ``filter``, ``thread``, ``at_revision`` and
    ``namespaces`` may also be given per call: ``retriever.invoke(q, k=5)``.
    """

    memory: Any
    """The store: a ``Memory`` or a ``Client``."""
    namespaces: list[str] | None = None
    """Namespace prefixes searched (None: every namespace the caller may read)."""
    budget_tokens: int = 1500
    k: int = 20
    mode: str = "hybrid"
    filter: dict[str, Any] | None = None
    thread: str | None = None
    at_revision: int | None = None

    def _options(self, overrides: dict[str, Any]) -> dict[str, Any]:
        unknown = set(overrides) - _CALL_OPTIONS
        if unknown:
            raise InvalidInput(sorted(unknown)[0], "is not a recall option")
        options = {name: getattr(self, name) for name in _CALL_OPTIONS}
        options.update(overrides)
        return options

    def _recall(self, query: str, overrides: dict[str, Any]) -> Recall:
        o = self._options(overrides)
        target: Target = self.memory
        result: Recall = target.recall(
            query,
            o["namespaces"],
            o["budget_tokens"],
            k=o["k"],
            mode=o["mode"],
            filter=o["filter"],
            thread=o["thread"],
            at_revision=o["at_revision"],
        )
        return result

    def recall(self, query: str, **overrides: Any) -> Recall:
        """The whole ``Recall`` (its ``context`` string, ``tokens``, ``truncated``)."""
        return self._recall(query, overrides)

    async def arecall(self, query: str, **overrides: Any) -> Recall:
        """Async twin of ``recall``."""
        return await to_thread(self._recall, query, overrides)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **overrides: Any
    ) -> list[Document]:
        return recall_documents(self._recall(query, overrides))

    async def _aget_relevant_documents(
        self,
        query: str,
        *,
        run_manager: AsyncCallbackManagerForRetrieverRun,
        **overrides: Any,
    ) -> list[Document]:
        return recall_documents(await to_thread(self._recall, query, overrides))
