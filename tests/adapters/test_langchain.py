"""The LangChain adapters beyond the standard suites: hivemem's modes and filters, MMR,
retrievers in a chain, chat history, permissions — embedded and remote alike."""

from __future__ import annotations

import pytest

pytest.importorskip("langchain_core")

from langchain_core.documents import Document  # noqa: E402
from langchain_core.embeddings import DeterministicFakeEmbedding  # noqa: E402
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage  # noqa: E402
from langchain_core.runnables import RunnableLambda  # noqa: E402

from hivemem.adapters.langchain import (  # noqa: E402
    HivememByteStore,
    HivememChatMessageHistory,
    HivememEmbeddings,
    HivememJSONStore,
    HivememRecallRetriever,
    HivememVectorStore,
)
from hivemem.memory.errors import InvalidInput, PermissionDenied  # noqa: E402
from tests.adapters.conftest import Side  # noqa: E402
from tests.embedders import HashEmbedder  # noqa: E402

DOCS = [
    Document(page_content="the deploy happens on friday", metadata={"kind": "plan", "n": 1}),
    Document(page_content="lunch is pizza on friday", metadata={"kind": "food", "n": 2}),
    Document(page_content="rollback steps for the deploy", metadata={"kind": "plan", "n": 3}),
    Document(page_content="coffee machine is broken", metadata={"kind": "office", "n": 4}),
]


def store(side: Side, ns: str, **kw: object) -> HivememVectorStore:
    s = HivememVectorStore(side.target(), ns, **kw)  # type: ignore[arg-type]
    s.add_documents(DOCS, ids=["a", "b", "c", "d"])
    return s


def test_default_embeddings_are_hivemems_own(hash_side: Side, ns: str) -> None:
    s = store(hash_side, ns)
    top = s.similarity_search("deploy friday", k=1)
    assert top[0].id == "a"
    assert hash_side.root.get(ns, "a").value["page_content"] == DOCS[0].page_content


def test_keyword_and_hybrid_modes_are_search_kwargs(hash_side: Side, ns: str) -> None:
    s = store(hash_side, ns)
    keyword = s.similarity_search("rollback", k=4, mode="keyword")
    assert [d.id for d in keyword] == ["c"]
    hybrid = s.similarity_search_with_score("rollback deploy", k=2, mode="hybrid")
    assert hybrid[0][0].id == "c" and 0.0 <= hybrid[0][1] <= 1.0
    retriever = s.as_retriever(search_kwargs={"k": 4, "mode": "keyword"})
    assert [d.id for d in retriever.invoke("pizza")] == ["b"]


def test_filters_use_hivemems_filter_language(hash_side: Side, ns: str) -> None:
    s = store(hash_side, ns)
    plans = s.similarity_search("friday", k=4, filter={"kind": "plan"})
    assert {d.id for d in plans} == {"a", "c"}
    later = s.similarity_search("friday", k=4, filter={"n": {"$gte": 3}})
    assert {d.id for d in later} == {"c", "d"}
    with pytest.raises(InvalidInput) as err:
        s.similarity_search("friday", filter={"n": {"$regex": "x"}})
    assert err.value.field == "filter.n.$regex"


def test_nested_metadata_reads_back_whole_and_scalars_filter(hash_side: Side, ns: str) -> None:
    s = HivememVectorStore(hash_side.target(), ns)
    meta = {"source": {"file": "a.md", "page": 3}, "tags": ["x", "y"], "year": 2024}
    s.add_texts(["nested metadata survives"], [meta], ids=["n1"])
    assert s.get_by_ids(["n1"])[0].metadata == meta
    assert [d.id for d in s.similarity_search("nested", filter={"year": 2024})] == ["n1"]


def test_supplied_embeddings_and_search_by_vector(plain_side: Side, ns: str) -> None:
    emb = DeterministicFakeEmbedding(size=6)
    s = store(plain_side, ns, embedding=emb)
    found = s.similarity_search_by_vector(emb.embed_query(DOCS[3].page_content), k=1)
    assert found[0].id == "d"
    scored = s.similarity_search_with_relevance_scores(DOCS[1].page_content, k=1)
    assert scored[0][0].id == "b" and scored[0][1] == pytest.approx(1.0, abs=1e-5)


def test_mmr_prefers_diverse_documents(hash_side: Side, ns: str) -> None:
    s = HivememVectorStore(hash_side.target(), ns, HivememEmbeddings(HashEmbedder()))
    s.add_texts(["deploy friday", "deploy friday now", "coffee deploy"], ids=["x", "y", "z"])
    plain = s.similarity_search("deploy friday", k=2)
    diverse = s.max_marginal_relevance_search("deploy friday", k=2, fetch_k=3, lambda_mult=0.1)
    assert [d.id for d in plain] == ["x", "y"]
    assert [d.id for d in diverse] == ["x", "z"]


def test_mmr_without_embeddings_says_why(hash_side: Side, ns: str) -> None:
    s = store(hash_side, ns)
    with pytest.raises(InvalidInput, match="Embeddings"):
        s.max_marginal_relevance_search("deploy")


async def test_async_twins_match_sync(hash_side: Side, ns: str) -> None:
    s = HivememVectorStore(hash_side.target(), ns)
    ids = await s.aadd_documents(DOCS)
    assert len(ids) == 4
    sync = s.similarity_search("deploy", k=2)
    assert await s.asimilarity_search("deploy", k=2) == sync
    assert await s.aget_by_ids(ids[:1]) == s.get_by_ids(ids[:1])
    await s.adelete(ids[:2])
    assert len(await s.asimilarity_search("deploy", k=4)) == 2


def test_from_texts_and_retriever_in_a_runnable_chain(hash_side: Side, ns: str) -> None:
    s = HivememVectorStore.from_texts(
        ["the deploy happens on friday", "lunch is pizza"],
        metadatas=[{"kind": "plan"}, {"kind": "food"}],
        memory=hash_side.target(),
        namespace=ns,
    )
    chain = s.as_retriever(search_kwargs={"k": 1}) | RunnableLambda(
        lambda docs: f"context: {docs[0].page_content}"
    )
    assert chain.invoke("when is the deploy?") == "context: the deploy happens on friday"


def test_read_only_key_retrieves_and_refuses_writes(hash_side: Side, ns: str) -> None:
    store(hash_side, ns)
    hash_side.root.grant("lc-reader", ns, "read")
    reader = HivememVectorStore(hash_side.target("lc-reader"), ns)
    assert reader.similarity_search("deploy friday", k=1)[0].id == "a"
    with pytest.raises(PermissionDenied) as err:
        reader.add_texts(["sneaky"])
    assert isinstance(err.value, PermissionError)
    assert "lc-reader" in str(err.value) or "write" in str(err.value)
    with pytest.raises(PermissionError):
        reader.delete(["a"])
    assert reader.get_by_ids(["a"])[0].id == "a"


def test_key_value_stores_keep_awkward_keys(plain_side: Side, ns: str) -> None:
    kv = HivememByteStore(plain_side.target(), ns)
    keys = ["a/b", "", ".", "..", "100%", "tab\there"]
    kv.mset([(k, k.encode() + b"\x00") for k in keys])
    assert kv.mget(keys) == [k.encode() + b"\x00" for k in keys]
    assert sorted(kv.yield_keys()) == sorted(keys)
    assert sorted(kv.yield_keys(prefix="a/")) == ["a/b"]
    js = HivememJSONStore(plain_side.target(), ns + "j")
    js.mset([("doc", {"x": [1, {"y": None}]})])
    assert js.mget(["doc", "nope"]) == [{"x": [1, {"y": None}]}, None]


# -- chat history ---------------------------------------------------------------------


def test_chat_history_keeps_order_and_types(hash_side: Side, ns: str) -> None:
    h = HivememChatMessageHistory(hash_side.target(), ns, "Session 7")
    h.add_messages([SystemMessage("be brief"), HumanMessage("hi")])
    h.add_ai_message(AIMessage("hello", additional_kwargs={"model": "none"}))
    h.add_user_message("what is the deploy day?")
    got = h.messages
    assert [type(m).__name__ for m in got] == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
    ]
    assert [m.content for m in got] == ["be brief", "hi", "hello", "what is the deploy day?"]
    assert got[2].additional_kwargs == {"model": "none"}


def test_chat_history_is_one_item_per_message_per_session(hash_side: Side, ns: str) -> None:
    a = HivememChatMessageHistory(hash_side.target(), ns, "a")
    b = HivememChatMessageHistory(hash_side.target(), ns, "b")
    a.add_user_message("deploy on friday")
    b.add_user_message("other session")
    items = hash_side.root.list(ns).items
    assert sorted((i.namespace, i.metadata["session"]) for i in items) == [
        (f"{ns}/a", "a"),
        (f"{ns}/b", "b"),
    ]
    assert [m.content for m in a.messages] == ["deploy on friday"]
    hits = hash_side.root.search("deploy", namespaces=[ns], mode="keyword")
    assert [h.item.metadata["role"] for h in hits] == ["human"]
    a.clear()
    assert a.messages == [] and len(b.messages) == 1


def test_chat_history_is_a_thread_the_keyword_index_reads_in_context(
    hash_side: Side, ns: str
) -> None:
    h = HivememChatMessageHistory(hash_side.target(), ns, "Session/7")
    h.add_messages([HumanMessage("can we move the offsite to lisbon?"), AIMessage("yes")])
    h.add_user_message("great, book flights")
    items = hash_side.root.list(h.namespace).items
    assert h.thread == "Session%2F7"  # the session id under the key rules
    assert {i.thread for i in items} == {h.thread}
    # the reply "yes" is found by the question's word, and returned as itself
    hits = hash_side.root.search("lisbon", namespaces=[ns], mode="keyword", thread=h.thread)
    assert [x.item.text for x in hits] == [
        "can we move the offsite to lisbon?",
        "yes",
        "great, book flights",
    ]
    h.clear()
    h.add_user_message("and hotels")
    assert hash_side.root.search("lisbon", namespaces=[ns], mode="keyword") == []


async def test_chat_history_async_twins(hash_side: Side, ns: str) -> None:
    h = HivememChatMessageHistory(hash_side.target(), ns, "s")
    await h.aadd_messages([HumanMessage("one"), AIMessage("two")])
    assert [m.content for m in await h.aget_messages()] == ["one", "two"]
    await h.aclear()
    assert await h.aget_messages() == []


def test_chat_history_read_only_key(hash_side: Side, ns: str) -> None:
    HivememChatMessageHistory(hash_side.target(), ns, "s").add_user_message("hi")
    hash_side.root.grant("chat-reader", ns, "read")
    reader = HivememChatMessageHistory(hash_side.target("chat-reader"), ns, "s")
    assert [m.content for m in reader.messages] == ["hi"]
    with pytest.raises(PermissionDenied):
        reader.add_user_message("no")


# -- recall retriever -----------------------------------------------------------------


def test_recall_retriever_cites_each_document(hash_side: Side, ns: str) -> None:
    target = hash_side.target()
    h = HivememChatMessageHistory(target, ns, "s1")
    h.add_messages([HumanMessage("when is the deploy?"), AIMessage("friday, after the freeze")])
    target.put(ns, "note", {"n": 1}, text="lunch is pizza", metadata={"kind": "food"})
    retriever = HivememRecallRetriever(memory=target, namespaces=[ns], k=5)
    docs = retriever.invoke("deploy freeze")
    assert [d.page_content for d in docs[:2]] == ["when is the deploy?", "friday, after the freeze"]
    first = docs[0].metadata
    item = hash_side.root.get(first["namespace"], first["key"])
    assert first["namespace"] == h.namespace and first["thread"] == "s1"
    assert (first["version"], first["revision"], first["author"]) == (
        item.version,
        item.revision,
        item.author,
    )
    assert first["tokens"] > 0 and docs[0].id == f"{h.namespace}/{item.key}"
    top = retriever.invoke("deploy freeze", k=1)  # the reply has both words, with context
    assert [d.page_content for d in top] == ["friday, after the freeze"]
    food = retriever.invoke("pizza", filter={"kind": "food"})
    assert [(d.page_content, d.metadata["item_metadata"]) for d in food] == [
        ("lunch is pizza", {"kind": "food"})
    ]
    whole = retriever.recall("deploy freeze", budget_tokens=15)
    assert whole.truncated and whole.tokens <= 15
    with pytest.raises(InvalidInput) as err:
        retriever.invoke("deploy", budget_tokens=0)
    assert err.value.field == "budget_tokens"
    with pytest.raises(InvalidInput) as err:
        retriever.invoke("deploy", top_n=3)
    assert err.value.field == "top_n"


async def test_recall_retriever_async_matches_sync(hash_side: Side, ns: str) -> None:
    target = hash_side.target()
    for i, text in enumerate(["the deploy is friday", "rollback plan", "coffee is broken"]):
        target.put(ns, f"k{i}", text, text=text, thread="t")
    retriever = HivememRecallRetriever(memory=target, namespaces=[ns], mode="keyword")
    sync = retriever.invoke("deploy rollback")
    assert [d.metadata["key"] for d in sync] == [
        d.metadata["key"] for d in await retriever.ainvoke("deploy rollback")
    ]
    assert {d.metadata["key"] for d in sync} >= {"k0", "k1"}
    at = sync[0].metadata["revision"]
    target.delete(ns, "k0")
    assert "k0" not in [d.metadata["key"] for d in await retriever.ainvoke("deploy")]
    past = await retriever.ainvoke("deploy", at_revision=at)
    assert [d.metadata["key"] for d in past][:1] == ["k0"]
    whole = await retriever.arecall("deploy")
    assert "the deploy is friday" not in whole.context


def test_recall_retriever_in_a_runnable_chain(hash_side: Side, ns: str) -> None:
    target = hash_side.target()
    target.put(ns, "a", "x", text="the deploy happens on friday")
    retriever = HivememRecallRetriever(memory=target, namespaces=[ns])
    chain = retriever | RunnableLambda(
        lambda docs: "\n".join(f"{d.page_content} [{d.metadata['key']}]" for d in docs)
    )
    assert chain.invoke("deploy") == "the deploy happens on friday [a]"
