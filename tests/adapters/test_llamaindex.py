"""The LlamaIndex adapters: the vector store end to end through ``VectorStoreIndex``,
every filter hivemem can express (and a clear error for the rest), the query modes,
the chat store, permissions — embedded and remote alike."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import Document, StorageContext, VectorStoreIndex  # noqa: E402
from llama_index.core.base.embeddings.base import BaseEmbedding  # noqa: E402
from llama_index.core.llms import ChatMessage, MessageRole  # noqa: E402
from llama_index.core.schema import IndexNode, TextNode  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)

from hivemem.adapters.llamaindex import HivememChatStore, HivememVectorStore  # noqa: E402
from hivemem.memory.errors import InvalidInput, PermissionDenied  # noqa: E402
from tests.adapters.conftest import Side  # noqa: E402
from tests.embedders import HashEmbedder  # noqa: E402


class HashEmbedding(BaseEmbedding):
    """The word-hashing test embedder as a LlamaIndex embed model (64 dimensions)."""

    def _vec(self, text: str) -> list[float]:
        return [float(x) for x in HashEmbedder().embed([text])[0]]

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._vec(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._vec(text)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._vec(query)


NODES = [
    ("n1", "deploy on friday after the freeze", {"kind": "plan", "n": 1, "tags": ["ops", "infra"]}),
    ("n2", "pizza for lunch on friday", {"kind": "food", "n": 2, "tags": ["social"]}),
    ("n3", "rollback the deploy with the old image", {"kind": "plan", "n": 3, "tags": ["ops"]}),
    ("n4", "the coffee machine is broken", {"kind": "office", "n": 4, "tags": []}),
]


def filled(side: Side, ns: str) -> HivememVectorStore:
    store = HivememVectorStore(side.target(), ns)
    nodes = [TextNode(id_=i, text=t, metadata=m) for i, t, m in NODES]
    for node in nodes:
        node.embedding = HashEmbedding()._vec(node.text)
    store.add(nodes)
    return store


def ids(store: HivememVectorStore, filters: MetadataFilters) -> set[str]:
    return {n.node_id for n in store.get_nodes(filters=filters)}


def f(key: str, op: FilterOperator, value: Any) -> MetadataFilter:
    return MetadataFilter(key=key, operator=op, value=value)


def test_index_from_vector_store_end_to_end(hash_side: Side, ns: str) -> None:
    store = HivememVectorStore(hash_side.target(), ns)
    ctx = StorageContext.from_defaults(vector_store=store)
    docs = [
        Document(text="deploy on friday after the freeze", doc_id="d1", metadata={"kind": "plan"}),
        Document(text="pizza for lunch", doc_id="d2", metadata={"kind": "food"}),
    ]
    VectorStoreIndex.from_documents(docs, storage_context=ctx, embed_model=HashEmbedding())
    index = VectorStoreIndex.from_vector_store(store, embed_model=HashEmbedding())
    found = index.as_retriever(similarity_top_k=1).retrieve("when is the deploy friday")
    assert len(found) == 1
    assert found[0].node.get_content() == "deploy on friday after the freeze"
    assert found[0].node.metadata == {"kind": "plan"}
    assert found[0].node.ref_doc_id == "d1"
    assert found[0].score is not None and found[0].score > 0
    store.delete("d1")
    again = index.as_retriever(similarity_top_k=5).retrieve("deploy friday")
    assert [n.node.ref_doc_id for n in again] == ["d2"]


def test_nodes_read_back_as_the_same_type_with_the_same_metadata(hash_side: Side, ns: str) -> None:
    store = HivememVectorStore(hash_side.target(), ns)
    meta = {"kind": "plan", "nested": {"a": [1, 2]}, "score": 0.5}
    text_node = TextNode(id_="t", text="deploy notes", metadata=meta)
    index_node = IndexNode(id_="i", text="see the other index", index_id="other")
    store.add([text_node, index_node])
    back = {n.node_id: n for n in store.get_nodes(node_ids=["t", "i"])}
    assert type(back["t"]) is TextNode and back["t"].metadata == meta
    assert back["t"].get_content() == "deploy notes"
    assert type(back["i"]) is IndexNode and back["i"].index_id == "other"


def test_every_operator_hivemem_can_express(hash_side: Side, ns: str) -> None:
    s = filled(hash_side, ns)
    op = FilterOperator
    cases: list[tuple[list[MetadataFilter], set[str]]] = [
        ([f("kind", op.EQ, "plan")], {"n1", "n3"}),
        ([f("kind", op.NE, "plan")], {"n2", "n4"}),
        ([f("n", op.GT, 2)], {"n3", "n4"}),
        ([f("n", op.GTE, 2)], {"n2", "n3", "n4"}),
        ([f("n", op.LT, 2)], {"n1"}),
        ([f("n", op.LTE, 2)], {"n1", "n2"}),
        ([f("kind", op.IN, ["food", "office"])], {"n2", "n4"}),
        ([f("kind", op.NIN, ["food", "office"])], {"n1", "n3"}),
        ([f("tags", op.ANY, ["social", "infra"])], {"n1", "n2"}),
        ([f("tags", op.CONTAINS, "ops")], {"n1", "n3"}),
        ([f("tags", op.ALL, ["ops"])], {"n1", "n3"}),
        ([f("tags", op.IS_EMPTY, None)], {"n4"}),
        ([f("kind", op.EQ, "plan"), f("n", op.GT, 1)], {"n3"}),
    ]
    for filters, expected in cases:
        assert ids(s, MetadataFilters(filters=filters)) == expected, filters


def test_or_on_one_field_not_and_nesting(hash_side: Side, ns: str) -> None:
    s = filled(hash_side, ns)
    op = FilterOperator
    either = MetadataFilters(
        filters=[f("kind", op.EQ, "food"), f("kind", op.EQ, "office")],
        condition=FilterCondition.OR,
    )
    assert ids(s, either) == {"n2", "n4"}
    negated = MetadataFilters(filters=[f("kind", op.EQ, "plan")], condition=FilterCondition.NOT)
    assert ids(s, negated) == {"n2", "n4"}
    nested = MetadataFilters(filters=[either, f("n", op.LT, 3)])
    assert ids(s, nested) == {"n2"}


def test_filters_beyond_hivemem_raise_naming_them(hash_side: Side, ns: str) -> None:
    s = filled(hash_side, ns)
    op = FilterOperator
    beyond = [
        MetadataFilters(filters=[f("kind", op.TEXT_MATCH, "pl")]),
        MetadataFilters(filters=[f("tags", op.ALL, ["ops", "infra"])]),
        MetadataFilters(
            filters=[f("kind", op.EQ, "food"), f("n", op.EQ, 1)], condition=FilterCondition.OR
        ),
        MetadataFilters(filters=[f("n", op.GT, 1)], condition=FilterCondition.NOT),
    ]
    for filters in beyond:
        with pytest.raises(InvalidInput) as err:
            s.get_nodes(filters=filters)
        assert err.value.field.startswith("filters"), filters


def test_query_modes(hash_side: Side, ns: str) -> None:
    s = filled(hash_side, ns)
    emb = HashEmbedding()
    vector = s.query(
        VectorStoreQuery(query_embedding=emb._vec("rollback deploy"), similarity_top_k=1)
    )
    assert vector.ids == ["n3"] and vector.nodes[0].get_content().startswith("rollback")
    text = s.query(
        VectorStoreQuery(
            query_str="pizza", mode=VectorStoreQueryMode.TEXT_SEARCH, similarity_top_k=3
        )
    )
    assert text.ids == ["n2"]
    hybrid = s.query(
        VectorStoreQuery(
            query_str="deploy",
            query_embedding=emb._vec("deploy"),
            mode=VectorStoreQueryMode.HYBRID,
            similarity_top_k=2,
            filters=MetadataFilters(filters=[f("n", FilterOperator.GT, 1)]),
        )
    )
    assert set(hybrid.ids) <= {"n2", "n3", "n4"}
    assert hybrid.ids[0] == "n3"
    with pytest.raises(InvalidInput) as err:
        s.query(VectorStoreQuery(query_str="x", mode=VectorStoreQueryMode.MMR))
    assert err.value.field == "mode"


def test_delete_nodes_and_clear(hash_side: Side, ns: str) -> None:
    s = filled(hash_side, ns)
    s.delete_nodes(node_ids=["n1"])
    s.delete_nodes(filters=MetadataFilters(filters=[f("kind", FilterOperator.EQ, "food")]))
    assert {n.node_id for n in s.get_nodes()} == {"n3", "n4"}
    s.clear()
    assert s.get_nodes() == []


async def test_async_twins(hash_side: Side, ns: str) -> None:
    s = HivememVectorStore(hash_side.target(), ns)
    node = TextNode(id_="a", text="async deploy", metadata={"k": 1})
    node.relationships = {}
    assert await s.async_add([node]) == ["a"]
    assert [n.node_id for n in await s.aget_nodes(node_ids=["a"])] == ["a"]
    found = await s.aquery(
        VectorStoreQuery(query_str="deploy", mode=VectorStoreQueryMode.TEXT_SEARCH)
    )
    assert found.ids == ["a"]
    await s.adelete_nodes(node_ids=["a"])
    assert await s.aget_nodes() == []


def test_read_only_key_retrieves_and_refuses_writes(hash_side: Side, ns: str) -> None:
    filled(hash_side, ns)
    hash_side.root.grant("li-reader", ns, "read")
    reader = HivememVectorStore(hash_side.target("li-reader"), ns)
    index = VectorStoreIndex.from_vector_store(reader, embed_model=HashEmbedding())
    assert index.as_retriever(similarity_top_k=1).retrieve("coffee machine")[0].node.node_id == "n4"
    with pytest.raises(PermissionDenied) as err:
        reader.add([TextNode(id_="x", text="nope")])
    assert isinstance(err.value, PermissionError) and "li-reader" in str(err.value)


# -- chat store -------------------------------------------------------------------------


def test_chat_store(hash_side: Side, ns: str) -> None:
    chats = HivememChatStore(hash_side.target(), ns)
    user = ChatMessage(role=MessageRole.USER, content="when is the deploy?")
    bot = ChatMessage(role=MessageRole.ASSISTANT, content="friday")
    chats.set_messages("User 1", [user, bot])
    chats.add_message("User 1", ChatMessage(role=MessageRole.USER, content="thanks"))
    chats.add_message("u2", ChatMessage(role=MessageRole.USER, content="hello"))
    assert [m.content for m in chats.get_messages("User 1")] == [
        "when is the deploy?",
        "friday",
        "thanks",
    ]
    assert chats.get_messages("User 1")[1].role == MessageRole.ASSISTANT
    assert sorted(chats.get_keys()) == ["User 1", "u2"]
    assert chats.delete_message("User 1", 1) == bot
    assert chats.delete_message("User 1", 9) is None
    last = chats.delete_last_message("User 1")
    assert last is not None and last.content == "thanks"
    assert [m.content for m in chats.get_messages("User 1")] == ["when is the deploy?"]
    chats.set_messages("User 1", [bot])
    assert chats.get_messages("User 1") == [bot]
    assert chats.delete_messages("u2") == [ChatMessage(role=MessageRole.USER, content="hello")]
    assert chats.get_keys() == ["User 1"]
    hits = hash_side.root.search("friday", namespaces=[ns], mode="keyword")
    assert [h.item.metadata["role"] for h in hits] == ["assistant"]


def test_chat_store_writes_each_chat_as_a_thread(hash_side: Side, ns: str) -> None:
    chats = HivememChatStore(hash_side.target(), ns)
    chats.set_messages(
        "User/1",
        [
            ChatMessage(role=MessageRole.USER, content="can we move the offsite to lisbon?"),
            ChatMessage(role=MessageRole.ASSISTANT, content="yes"),
        ],
    )
    chats.add_message("u2", ChatMessage(role=MessageRole.USER, content="lisbon is sunny"))
    thread = HivememChatStore.thread_of("User/1")
    assert thread == "User%2F1"
    items = hash_side.root.list(ns).items
    assert sorted({(i.metadata["chat"], i.thread) for i in items}) == [
        ("User/1", thread),
        ("u2", "u2"),
    ]
    # the reply "yes" is found by the question's word; the other chat is its own thread
    hits = hash_side.root.search("lisbon", namespaces=[ns], mode="keyword", thread=thread)
    assert [h.item.text for h in hits] == ["can we move the offsite to lisbon?", "yes"]
    chats.delete_message("User/1", 0)
    hits = hash_side.root.search("lisbon", namespaces=[ns], mode="keyword")
    assert [h.item.text for h in hits] == ["lisbon is sunny"]


async def test_chat_store_async_and_read_only(hash_side: Side, ns: str) -> None:
    chats = HivememChatStore(hash_side.target(), ns)
    await chats.async_add_message("k", ChatMessage(role=MessageRole.USER, content="hi"))
    assert [m.content for m in await chats.aget_messages("k")] == ["hi"]
    hash_side.root.grant("chat-li-reader", ns, "read")
    reader = HivememChatStore(hash_side.target("chat-li-reader"), ns)
    assert [m.content for m in reader.get_messages("k")] == ["hi"]
    with pytest.raises(PermissionDenied):
        reader.add_message("k", ChatMessage(role=MessageRole.USER, content="no"))
