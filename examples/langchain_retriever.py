"""A LangChain retriever over hivemem inside a runnable chain.

Notes go into a ``HivememVectorStore``; the chain retrieves with hivemem's hybrid
search, restricted by a metadata filter, and formats a prompt-ready context.
No language model: the last step is a plain function.

    python examples/langchain_retriever.py
"""

from __future__ import annotations

from typing import Any

from langchain_core.documents import Document
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from hivemem import Memory
from hivemem.adapters.langchain import HivememVectorStore

NOTES = [
    ("deploy", "Deploy on Friday after the freeze ends", {"kind": "plan"}),
    ("rollback", "Rollback: redeploy the previous image tag", {"kind": "plan"}),
    ("lunch", "Friday lunch is pizza in the big room", {"kind": "social"}),
]


def build_chain(mem: Any) -> Any:
    """The chain ``question -> prompt`` over the notes in ``mem``."""
    store = HivememVectorStore(mem, "team/notes")
    store.add_texts(
        [text for _, text, _ in NOTES],
        [meta for _, _, meta in NOTES],
        ids=[key for key, _, _ in NOTES],
    )
    retriever = store.as_retriever(
        search_kwargs={"k": 2, "mode": "hybrid", "filter": {"kind": "plan"}}
    )

    def prompt(inputs: dict[str, Any]) -> str:
        docs: list[Document] = inputs["context"]
        lines = "\n".join(f"[{d.id}] {d.page_content}" for d in docs)
        return f"Context:\n{lines}\nQuestion: {inputs['question']}"

    return {"context": retriever, "question": RunnablePassthrough()} | RunnableLambda(prompt)


def main() -> None:
    with Memory.open(":memory:") as mem:
        print(build_chain(mem).invoke("When do we deploy on Friday?"))


if __name__ == "__main__":
    main()
