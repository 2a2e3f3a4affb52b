"""LlamaIndex adapters (``pip install 'hivemem[llamaindex]'``).

- ``HivememVectorStore``: a ``BasePydanticVectorStore`` over one namespace
  (``VectorStoreIndex.from_vector_store`` works end to end);
- ``HivememChatStore``: a ``BaseChatStore``, one item per message;
- ``HivememEmbedding``: a hivemem ``Embedder`` (such as ``MiniLMEmbedder``) as a
  LlamaIndex embed model.

Each works over an embedded ``Memory`` or a ``Client``.
"""

from __future__ import annotations

from hivemem.adapters.llamaindex.chat import HivememChatStore
from hivemem.adapters.llamaindex.embedding import HivememEmbedding
from hivemem.adapters.llamaindex.vectorstore import HivememVectorStore, translate_filters

__all__ = ["HivememVectorStore", "HivememChatStore", "HivememEmbedding", "translate_filters"]
