"""langchain-tests' standard suites, unmodified, over an embedded store and a server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("langchain_tests")

from langchain_tests.integration_tests import (  # noqa: E402
    BaseStoreAsyncTests,
    BaseStoreSyncTests,
    VectorStoreIntegrationTests,
)

from hivemem.adapters.langchain import (  # noqa: E402
    HivememByteStore,
    HivememJSONStore,
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
