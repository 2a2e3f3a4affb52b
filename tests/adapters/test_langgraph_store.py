"""A store test suite for LangGraph's ``BaseStore``: every scenario runs against
LangGraph's own ``InMemoryStore`` (the reference) and against ``HivememStore`` (embedded
and through a server), and the results must be equal. TTL, which InMemoryStore lacks,
compare-and-swap and permissions have tests of their own below."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langgraph.store.memory")

from langgraph.store.base import (  # noqa: E402
    BaseStore,
    GetOp,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
)
from langgraph.store.memory import InMemoryStore  # noqa: E402

from hivemem.adapters.langchain import HivememEmbeddings  # noqa: E402
from hivemem.adapters.langgraph import HivememStore, VersionedItem  # noqa: E402
from hivemem.memory.errors import Conflict, InvalidInput, PermissionDenied  # noqa: E402
from tests.adapters.conftest import Side  # noqa: E402
from tests.embedders import HashEmbedder  # noqa: E402

INDEX: Any = {"dims": 64, "embed": HivememEmbeddings(HashEmbedder()), "fields": ["text"]}


def shape(result: Any) -> Any:
    """A result without timestamps (the two stores write at different instants)."""
    if isinstance(result, list):
        return [shape(r) for r in result]
    if hasattr(result, "namespace") and hasattr(result, "value"):
        score = getattr(result, "score", None)
        return (
            result.namespace,
            result.key,
            result.value,
            round(score, 4) if score is not None else None,
        )
    return result


NOTES = [
    (("team", "notes"), "a1", {"text": "deploy on friday", "kind": "plan", "n": 1}),
    (("team", "notes"), "a2", {"text": "pizza for lunch", "kind": "food", "n": 2}),
    (("team", "notes"), "a3", {"text": "rollback the deploy now", "kind": "plan", "n": 3}),
    (("team", "tasks"), "b1", {"text": "fix the deploy script today", "kind": "task", "n": 4}),
    (("users", "alice", "prefs"), "c1", {"text": "likes dark mode", "kind": "pref", "n": 5}),
    (("users", "bob", "prefs"), "c2", {"text": "likes tea", "kind": "pref", "n": 6}),
]


def seed(store: BaseStore) -> None:
    for ns, key, value in NOTES:
        store.put(ns, key, value)


def sc_put_get_overwrite_delete(s: BaseStore) -> list[Any]:
    out: list[Any] = [s.get(("a",), "k")]
    s.put(("a",), "k", {"v": 1})
    out.append(s.get(("a",), "k"))
    s.put(("a",), "k", {"v": 2, "nested": {"x": [1, None]}})
    out.append(s.get(("a",), "k"))
    s.delete(("a",), "k")
    out.append(s.get(("a",), "k"))
    s.delete(("a",), "never-there")
    return out


def sc_awkward_labels_and_keys(s: BaseStore) -> list[Any]:
    ns = ("Users", "al.ice", "", "ünï/côde", "x" * 20)
    # written in hivemem's key order: searches without a query list in key order, the
    # reference in insertion order
    s.batch([PutOp(ns, "", {"v": 2}), PutOp(ns, ".", {"v": 3}), PutOp(ns, "a/b c", {"v": 1})])
    return [
        s.batch([GetOp(ns, "a/b c"), GetOp(ns, ""), GetOp(ns, ".")]),
        s.batch([SearchOp(ns[:2], limit=10)]),
        s.batch([ListNamespacesOp(match_conditions=None, limit=10)]),
    ]


def sc_search_filters_limit_offset(s: BaseStore) -> list[Any]:
    seed(s)
    return [
        s.search(("team",)),
        s.search(("team",), filter={"kind": "plan"}),
        s.search(("team",), filter={"kind": {"$ne": "plan"}}),
        s.search(("team",), filter={"n": {"$gt": 1, "$lte": 3}}),
        s.search(("team",), filter={"n": {"$gte": 2}, "kind": "plan"}),
        s.search(("team",), filter={"n": {"$lt": 2}}),
        s.search(("team",), filter={"missing": {"$ne": 1}}, limit=2),
        s.search((), limit=2, offset=3),
        s.search(("users",), limit=10, offset=1),
        s.search(("nobody",)),
    ]


def sc_semantic_search(s: BaseStore) -> list[Any]:
    seed(s)
    s.put(("team", "notes"), "noidx", {"text": "deploy notes not indexed"}, index=False)
    return [
        s.search(("team",), query="deploy friday", limit=3),
        s.search(("team",), query="deploy", filter={"kind": "plan"}),
        s.search(("team",), query="deploy", limit=2, offset=1),
        s.search(("team", "notes"), query="deploy", limit=10),
        s.search((), query="likes tea", limit=1),
    ]


def sc_index_fields_per_put(s: BaseStore) -> list[Any]:
    s.put(("docs",), "d1", {"title": "deploy guide", "text": "pizza"}, index=["title"])
    s.put(("docs",), "d2", {"title": "pizza menu", "text": "deploy"})
    return [s.search(("docs",), query="deploy guide", limit=1)]


def sc_list_namespaces(s: BaseStore) -> list[Any]:
    seed(s)
    s.put(("team", "notes", "old"), "z", {"text": "x"})
    return [
        s.list_namespaces(),
        s.list_namespaces(prefix=("team",)),
        s.list_namespaces(suffix=("prefs",)),
        s.list_namespaces(prefix=("users", "*", "prefs")),
        s.list_namespaces(prefix=("*", "notes")),
        s.list_namespaces(max_depth=1),
        s.list_namespaces(max_depth=2, limit=2, offset=1),
        s.list_namespaces(prefix=("team",), suffix=("old",)),
        s.list_namespaces(limit=1, offset=10),
    ]


def sc_batch_reads_see_state_before_writes(s: BaseStore) -> list[Any]:
    s.put(("b",), "k", {"v": 0})
    first = s.batch(
        [
            PutOp(("b",), "k", {"v": 1}),
            GetOp(("b",), "k"),
            PutOp(("b",), "k", {"v": 2}),
            PutOp(("b",), "new", {"v": 3}),
            SearchOp(("b",)),
            ListNamespacesOp(match_conditions=(MatchCondition("prefix", ("b",)),)),
        ]
    )
    return [first, s.get(("b",), "k"), s.search(("b",))]


SCENARIOS: list[Callable[[BaseStore], Any]] = [
    sc_put_get_overwrite_delete,
    sc_awkward_labels_and_keys,
    sc_search_filters_limit_offset,
    sc_semantic_search,
    sc_index_fields_per_put,
    sc_list_namespaces,
    sc_batch_reads_see_state_before_writes,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda f: f.__name__[3:])
def test_scenario_matches_in_memory_store(
    scenario: Callable[[BaseStore], Any], hash_side: Side, ns: str
) -> None:
    expected = shape(scenario(InMemoryStore(index=INDEX)))
    got = shape(scenario(HivememStore(hash_side.target(), root=ns, index=INDEX)))
    assert got == expected


async def test_async_methods_match_in_memory_store(hash_side: Side, ns: str) -> None:
    async def run(s: BaseStore) -> list[Any]:
        await s.aput(("x", "y"), "k", {"text": "deploy friday", "n": 1})
        await s.aput(("x", "z"), "k", {"text": "pizza", "n": 2})
        out = [await s.aget(("x", "y"), "k")]
        out.append(await s.asearch(("x",), query="deploy", limit=1))
        out.append(await s.asearch(("x",), filter={"n": 2}))
        out.append(await s.alist_namespaces(prefix=("x",)))
        await s.adelete(("x", "y"), "k")
        out.append(await s.aget(("x", "y"), "k"))
        return out

    expected = shape(await run(InMemoryStore(index=INDEX)))
    assert shape(await run(HivememStore(hash_side.target(), root=ns, index=INDEX))) == expected


# -- hivemem's own embeddings, modes, names ------------------------------------------


def test_without_embed_hivemem_embeds_the_index_fields(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns, index={"fields": ["text"]})  # type: ignore[typeddict-item]
    seed(s)
    top = s.search(("team",), query="rollback deploy", limit=1)
    assert top[0].key == "a3"
    assert hash_side.root.get(f"{ns}/team/notes", "a3").text == "rollback the deploy now"


def test_hybrid_search_mode(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns, index=INDEX, search_mode="keyword")
    seed(s)
    assert [i.key for i in s.search(("team",), query="pizza")] == ["a2"]


def test_namespaces_are_readable_hivemem_paths(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    s.put(("Users", "alice"), "k", {"v": 1})
    assert hash_side.root.get(f"{ns}/.55sers/alice", "k").value == {"v": 1}


def test_filters_hivemem_cannot_run_say_so(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    with pytest.raises(InvalidInput) as err:
        s.search(("a",), filter={"nested": {"x": 1}})
    assert err.value.field == "filter.nested"
    with pytest.raises(InvalidInput):
        s.search(("a",), filter={"tags": ["x"]})


# -- compare-and-swap ---------------------------------------------------------------


def test_put_if_rejects_a_stale_version(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    assert s.put_if(("c",), "k", {"v": 1}, expected_version=0) == 1
    item = s.get(("c",), "k")
    assert isinstance(item, VersionedItem) and item.version == 1
    assert s.put_if(("c",), "k", {"v": 2}, expected_version=1) == 2
    with pytest.raises(Conflict) as err:
        s.put_if(("c",), "k", {"v": 3}, expected_version=1)
    assert err.value.current.value == {"v": 2}
    with pytest.raises(Conflict):
        s.put_if(("c",), "k", {"v": 3}, expected_version=0)


def test_parallel_increments_with_put_if_lose_nothing(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    s.put(("c",), "counter", {"n": 0})

    def work() -> None:
        for _ in range(10):
            while True:
                item = s.get(("c",), "counter")
                assert isinstance(item, VersionedItem)
                try:
                    s.put_if(
                        ("c",), "counter", {"n": item.value["n"] + 1}, expected_version=item.version
                    )
                    break
                except Conflict:
                    continue

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    counter = s.get(("c",), "counter")
    assert counter is not None and counter.value == {"n": 40}


async def test_aput_if(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    assert await s.aput_if(("c",), "k", {"v": 1}, expected_version=0) == 1
    with pytest.raises(Conflict):
        await s.aput_if(("c",), "k", {"v": 1}, expected_version=0)


# -- TTL ------------------------------------------------------------------------------


def expiry(side: Side, ns: str, key: str) -> float:
    item = side.root.get(ns, key)
    assert item.expires_at is not None
    return item.expires_at.timestamp()


def test_ttl_in_minutes_and_default_ttl(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns, ttl={"default_ttl": 2.0})
    assert s.supports_ttl
    s.put(("t",), "default", {"v": 1})
    s.put(("t",), "own", {"v": 1}, ttl=10.0)
    s.put(("t",), "none", {"v": 1}, ttl=None)
    now = time.time()
    assert expiry(hash_side, f"{ns}/t", "default") == pytest.approx(now + 120, abs=30)
    assert expiry(hash_side, f"{ns}/t", "own") == pytest.approx(now + 600, abs=30)
    assert hash_side.root.get(f"{ns}/t", "none").expires_at is None


def test_reads_refresh_the_ttl_unless_told_not_to(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns, ttl={"refresh_on_read": True})
    s.put(("t",), "k", {"v": 1}, ttl=1.0)
    first = expiry(hash_side, f"{ns}/t", "k")
    time.sleep(0.05)
    assert s.get(("t",), "k", refresh_ttl=False) is not None
    assert expiry(hash_side, f"{ns}/t", "k") == first
    got = s.get(("t",), "k")
    assert got is not None and got.value == {"v": 1}
    after_get = expiry(hash_side, f"{ns}/t", "k")
    assert after_get > first
    time.sleep(0.05)
    s.search(("t",))
    assert expiry(hash_side, f"{ns}/t", "k") > after_get
    assert hash_side.root.get(f"{ns}/t", "k").value == {"v": 1}


def test_refresh_keeps_the_items_vector(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns, index=INDEX)
    s.put(("t",), "k", {"text": "deploy friday"}, ttl=1.0)
    s.get(("t",), "k")
    hits = s.search(("t",), query="deploy friday")
    assert hits[0].key == "k" and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_a_read_only_key_reads_without_refreshing(hash_side: Side, ns: str) -> None:
    HivememStore(hash_side.target(), root=ns).put(("t",), "k", {"v": 1}, ttl=1.0)
    first = expiry(hash_side, f"{ns}/t", "k")
    hash_side.root.grant("lg-ttl-reader", ns, "read")
    reader = HivememStore(hash_side.target("lg-ttl-reader"), root=ns)
    got = reader.get(("t",), "k")
    assert got is not None and got.value == {"v": 1}
    assert len(reader.search(("t",))) == 1
    assert expiry(hash_side, f"{ns}/t", "k") == first


def test_expired_items_disappear(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    s.put(("t",), "k", {"v": 1}, ttl=0.005)  # 0.3 seconds
    time.sleep(0.4)
    assert s.get(("t",), "k") is None
    assert s.search(("t",)) == []


# -- permissions ----------------------------------------------------------------------


def test_read_only_key_reads_and_a_write_raises_permission_denied(hash_side: Side, ns: str) -> None:
    HivememStore(hash_side.target(), root=ns).put(("p",), "k", {"v": 1})
    hash_side.root.grant("lg-reader", ns, "read")
    reader = HivememStore(hash_side.target("lg-reader"), root=ns)
    assert reader.get(("p",), "k") is not None
    assert reader.list_namespaces() == [("p",)]
    with pytest.raises(PermissionDenied) as err:
        reader.put(("p",), "k", {"v": 2})
    assert isinstance(err.value, PermissionError)
    assert "lg-reader" in str(err.value)
    with pytest.raises(PermissionError):
        reader.delete(("p",), "k")


# -- atomic updates (beyond LangGraph) ----------------------------------------------


def test_parallel_nodes_increment_and_append_without_losing_any(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    s.put(("run",), "stats", {"done": 0, "label": "crawl"})

    def node(i: int) -> None:
        for j in range(10):
            s.increment(("run",), "stats", "done")
            s.append(("run",), "stats", ("log",), f"{i}-{j}", max_len=25)

    threads = [threading.Thread(target=node, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = s.get(("run",), "stats")
    assert got is not None and got.value["done"] == 40 and got.value["label"] == "crawl"
    assert len(got.value["log"]) == 25
    assert isinstance(got, VersionedItem) and got.version == 81


def test_filters_see_the_incremented_field(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    s.put(("jobs",), "j1", {"attempts": 1, "kind": "fetch"})
    s.put(("jobs",), "j2", {"attempts": 1, "kind": "fetch"})
    s.increment(("jobs",), "j1", "attempts", by=2)
    s.update(("jobs",), "j2", [{"op": "replace", "path": "/kind", "value": "parse"}])
    assert [i.key for i in s.search(("jobs",), filter={"attempts": {"$gte": 3}})] == ["j1"]
    assert [i.key for i in s.search(("jobs",), filter={"kind": "parse"})] == ["j2"]
    s.update(("jobs",), "j2", [{"op": "replace", "path": "/kind", "value": {"nested": 1}}])
    assert s.search(("jobs",), filter={"kind": "parse"}) == []
    s.update(("jobs",), "j1", [{"op": "replace", "path": "", "value": {"attempts": 9}}])
    assert [i.key for i in s.search(("jobs",), filter={"attempts": 9})] == ["j1"]
    assert s.search(("jobs",), filter={"kind": "fetch"}) == []


def test_an_update_on_a_read_only_key_is_permission_denied(hash_side: Side, ns: str) -> None:
    HivememStore(hash_side.target(), root=ns).put(("t",), "k", {"n": 1})
    hash_side.root.grant("lg-upd-reader", ns, "read")
    reader = HivememStore(hash_side.target("lg-upd-reader"), root=ns)
    with pytest.raises(PermissionDenied):
        reader.increment(("t",), "k", "n")
    with pytest.raises(InvalidInput):
        HivememStore(hash_side.target(), root=ns).update(
            ("t",), "k", [{"op": "replace", "path": "", "value": [1]}]
        )


def test_a_proposers_read_never_files_a_proposal(hash_side: Side, ns: str) -> None:
    HivememStore(hash_side.target(), root=ns).put(("t",), "k", {"v": 1}, ttl=1.0)
    hash_side.root.grant("lg-proposer", ns, "propose")
    proposer = HivememStore(hash_side.target("lg-proposer"), root=ns)
    assert proposer.get(("t",), "k") is not None
    assert hash_side.root.proposals(ns) == []


async def test_async_twins_of_the_updates(hash_side: Side, ns: str) -> None:
    s = HivememStore(hash_side.target(), root=ns)
    await s.aincrement(("a",), "c", "n")
    await s.aappend(("a",), "c", "log", "x")
    item = await s.aupdate(("a",), "c", [{"op": "add_to_set", "path": "/tags", "value": "t"}])
    assert item.value == {"n": 1, "log": ["x"], "tags": ["t"]}
