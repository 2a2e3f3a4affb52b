"""langchain-tests' standard suites, unmodified, over an embedded store and a server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import (  # noqa: E402
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    RetrieversIntegrationTests,
    VectorStoreIntegrationTests,
)

from hivemem.adapters.langchain import (  # noqa: E402
    HivememByteStore,
    HivememJSONStore,
    HivememRecallRetriever,
    HivememVectorStore,
)
from tests.adapters.conftest import Side  # noqa: E402


class TestVectorStore(VectorStoreIntegrationTests):
    """The suite's 6-dimensional vectors go to the embedder-less store."""

    @pytest.fixture
    def vectorstore(self, plain_side: Side, ns: str) -> Iterator[HivememVectorStore]:  # type: ignore[override]
        store = HivememVectorStore(plain_side.target(), ns, self.get_embeddings())
        try:
            yield store
        finally:
            store.delete()


class TestRecallRetriever(RetrieversIntegrationTests):
    """The suite builds the retriever from static constructor parameters: a fixture puts
    five distinct notes in a fresh namespace and points the parameters at it."""

    params: dict[str, Any] = {}

    @pytest.fixture(autouse=True)
    def _notes(self, hash_side: Side, ns: str) -> None:
        target = hash_side.target()
        for i, text in enumerate(
            [
                "the deploy happens on friday",
                "the deploy rollback plan is in the wiki",
                "lunch after the deploy is pizza",
                "the deploy needs two reviewers",
                "coffee before the deploy",
            ]
        ):
            target.put(ns, f"n{i}", text, text=text, thread="notes")
        type(self).params = {"memory": target, "namespaces": [ns]}

    @property
    def retriever_constructor(self) -> type[HivememRecallRetriever]:
        return HivememRecallRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def retriever_query_example(self) -> str:
        return "when is the deploy?"


class TestByteStoreSync(BaseStoreSyncTests[bytes]):
    @pytest.fixture
    def kv_store(self, plain_side: Side, ns: str) -> HivememByteStore:  # type: ignore[override]
        return HivememByteStore(plain_side.target(), ns)

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:  # type: ignore[override]
        return b"foo", b"\x00bar\xff", b"buzz"


class TestByteStoreAsync(BaseStoreAsyncTests[bytes]):
    @pytest.fixture
    async def kv_store(self, plain_side: Side, ns: str) -> HivememByteStore:  # type: ignore[override]
        return HivememByteStore(plain_side.target(), ns)

    @pytest.fixture
    def three_values(self) -> tuple[bytes, bytes, bytes]:  # type: ignore[override]
        return b"foo", b"\x00bar\xff", b"buzz"


class TestJSONStoreSync(BaseStoreSyncTests[Any]):
    @pytest.fixture
    def kv_store(self, plain_side: Side, ns: str) -> HivememJSONStore:  # type: ignore[override]
        return HivememJSONStore(plain_side.target(), ns)

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:  # type: ignore[override]
        return {"a": [1, 2.5, None]}, "a string value", [True, {"b": "c"}]


class TestJSONStoreAsync(BaseStoreAsyncTests[Any]):
    @pytest.fixture
    async def kv_store(self, plain_side: Side, ns: str) -> HivememJSONStore:  # type: ignore[override]
        return HivememJSONStore(plain_side.target(), ns)

    @pytest.fixture
    def three_values(self) -> tuple[Any, Any, Any]:  # type: ignore[override]
        return {"a": [1, 2.5, None]}, "a string value", [True, {"b": "c"}]
