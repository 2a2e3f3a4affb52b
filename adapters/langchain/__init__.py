"""LangChain adapters (``pip install 'hivemem[langchain]'``).

- ``HivememVectorStore``: a ``VectorStore`` over one namespace (hivemem's search modes
  and filters, ids honoured, async twins, ``as_retriever``);
- ``HivememByteStore`` / ``HivememJSONStore``: key-value ``BaseStore`` implementations;
- ``HivememChatMessageHistory``: a session's messages, one item each, in order, as
  one hivemem thread;
- ``HivememRecallRetriever``: ``recall`` under a token budget as a ``BaseRetriever``,
  each Document citing the version it came from;
- ``HivememEmbeddings``: a hivemem ``Embedder`` (such as ``MiniLMEmbedder``) as LangChain
  ``Embeddings``, to compute hivemem's own vectors on the caller's side.

Each works over an embedded ``Memory`` or a ``Client``.
"""

from __future__ import annotations

from hivemem.adapters.langchain.chat import HivememChatMessageHistory
from hivemem.adapters.langchain.embeddings import HivememEmbeddings
from hivemem.adapters.langchain.kv import HivememByteStore, HivememJSONStore
from hivemem.adapters.langchain.retriever import HivememRecallRetriever
from hivemem.adapters.langchain.vectorstore import HivememVectorStore

__all__ = [
    "HivememVectorStore",
    "HivememByteStore",
    "HivememJSONStore",
    "HivememChatMessageHistory",
    "HivememRecallRetriever",
    "HivememEmbeddings",
]
