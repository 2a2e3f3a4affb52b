"""A LlamaIndex retriever over hivemem.

Documents are indexed into a ``HivememVectorStore``; a second index built with
``VectorStoreIndex.from_vector_store`` (as another process would) retrieves from it,
filtered by metadata.

    python examples/llamaindex_retriever.py
"""

from __future__ import annotations

from typing import Any

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.vector_stores.types import MetadataFilter, MetadataFilters

from hivemem import Memory, MiniLMEmbedder
from hivemem.adapters.llamaindex import HivememEmbedding, HivememVectorStore

DOCS = [
    ("deploy", "Deploy on Friday after the freeze ends", "plan"),
    ("rollback", "Rollback by redeploying the previous image", "plan"),
    ("lunch", "Friday lunch is pizza in the big room", "social"),
]


def retrieve(mem: Any, question: str, embed_model: Any) -> list[tuple[str, str]]:
    """Index the documents into ``mem``, then retrieve the plans relevant to ``question``."""
    store = HivememVectorStore(mem, "team/handbook")
    documents = [Document(text=t, doc_id=i, metadata={"kind": k}) for i, t, k in DOCS]
    VectorStoreIndex.from_documents(
        documents,
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=embed_model,
    )
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed_model)
    plans = MetadataFilters(filters=[MetadataFilter(key="kind", value="plan")])
    retriever = index.as_retriever(similarity_top_k=2, filters=plans)
    return [(n.node.ref_doc_id or "", n.node.get_content()) for n in retriever.retrieve(question)]


def main() -> None:
    with Memory.open(":memory:") as mem:
        for doc_id, text in retrieve(mem, "when do we deploy?", HivememEmbedding(MiniLMEmbedder())):
            print(doc_id, text)


if __name__ == "__main__":
    main()
