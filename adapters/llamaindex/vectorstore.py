"""``HivememVectorStore``: LlamaIndex's ``BasePydanticVectorStore`` over one namespace."""

from __future__ import annotations

import math
from typing import Any

from llama_index.core.schema import BaseNode, MetadataMode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from pydantic import PrivateAttr

from hivemem.adapters._common import (
    Target,
    decode_key,
    delete_present,
    encode_key,
    get_many,
    list_all,
    to_thread,
)
from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Item

__all__ = ["HivememVectorStore", "translate_filters"]

_MODES = {
    VectorStoreQueryMode.DEFAULT: "vector",
    VectorStoreQueryMode.HYBRID: "hybrid",
    VectorStoreQueryMode.TEXT_SEARCH: "keyword",
}
_SIMPLE = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.ANY: "$in",  # on a list field hivemem's $in is "any element in"
    FilterOperator.CONTAINS: "$eq",  # on a list field equality is membership
}
_NEGATED = {"$eq": "$ne", "$ne": "$eq", "$in": "$nin", "$nin": "$in"}


def _mirror(metadata: dict[str, Any]) -> dict[str, Any]:
    """Scalar and scalar-list fields as hivemem metadata; None and [] are left out, so
    a missing field is exactly LlamaIndex's ``is_empty``."""
    out: dict[str, Any] = {}
    for name, value in metadata.items():
        values = value if isinstance(value, list) else [value]
        ok = all(
            isinstance(v, str | bool | int) or (isinstance(v, float) and math.isfinite(v))
            for v in values
        )
        if ok and values and value is not None:
            out[name] = value
    return out


def _one(f: MetadataFilter) -> tuple[str, str, Any]:
    if f.operator == FilterOperator.IS_EMPTY:
        return f.key, "$exists", False
    if f.operator == FilterOperator.ALL:
        values = f.value if isinstance(f.value, list) else [f.value]
        if len(values) != 1:
            raise InvalidInput(
                f"filters.{f.key}", "'all' of several values is beyond hivemem's filters"
            )
        return f.key, "$eq", values[0]
    op = _SIMPLE.get(f.operator)
    if op is None:
        raise InvalidInput(
            f"filters.{f.key}", f"operator {f.operator.value!r} is beyond hivemem's filters"
        )
    return f.key, op, f.value


def _conds(filters: MetadataFilters) -> list[tuple[str, str, Any]]:
    parts = filters.filters
    if filters.condition == FilterCondition.NOT:
        if len(parts) != 1 or not isinstance(parts[0], MetadataFilter):
            raise InvalidInput("filters", "NOT applies to one filter in hivemem")
        key, op, value = _one(parts[0])
        if op not in _NEGATED:
            raise InvalidInput(f"filters.{key}", f"NOT of {op} is beyond hivemem's filters")
        return [(key, _NEGATED[op], value)]
    if filters.condition == FilterCondition.OR:
        conds = [_one(p) if isinstance(p, MetadataFilter) else None for p in parts]
        keys = {c[0] for c in conds if c is not None}
        if None in conds or len(keys) != 1 or any(c[1] != "$eq" for c in conds if c):
            raise InvalidInput(
                "filters", "OR is beyond hivemem's filters, except of == on one field"
            )
        return [(keys.pop(), "$in", [c[2] for c in conds if c is not None])]
    out: list[tuple[str, str, Any]] = []
    for part in parts:
        out += [_one(part)] if isinstance(part, MetadataFilter) else _conds(part)
    return out


def translate_filters(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """LlamaIndex ``MetadataFilters`` as a hivemem filter; ``InvalidInput`` names what
    hivemem cannot express (text_match, OR across fields, ...)."""
    if filters is None or not filters.filters:
        return None
    out: dict[str, dict[str, Any]] = {}
    for key, op, value in _conds(filters):
        spec = out.setdefault(key, {})
        if op in spec and spec[op] != value:
            raise InvalidInput(f"filters.{key}", f"two different {op} conditions on one field")
        spec[op] = value
    return out


class HivememVectorStore(BasePydanticVectorStore):
    """Nodes as items of one hivemem namespace (``stores_text=True``).

    Each node is an item keyed by its id: the value is LlamaIndex's own node dict
    (so it reads back as the same node type with the same metadata), the text is the
    node's content, the vector the node's embedding (or hivemem's own when the node
    has none), and the node's scalar metadata plus ``ref_doc_id`` are copied into the
    item's metadata for hivemem's filters.
    """

    stores_text: bool = True
    flat_metadata: bool = False
    namespace: str
    _memory: Any = PrivateAttr()

    def __init__(self, memory: Target, namespace: str, **kwargs: Any) -> None:
        super().__init__(namespace=namespace, **kwargs)  # type: ignore[call-arg]  # a field of ours
        self._memory = memory

    @classmethod
    def class_name(cls) -> str:
        return "HivememVectorStore"

    @property
    def client(self) -> Any:
        """The ``Memory`` or ``Client`` this store writes to."""
        return self._memory

    # -- writes ------------------------------------------------------------------------
    def add(self, nodes: Any, **kwargs: Any) -> list[str]:
        """Write one item per node, in one revision; returns the node ids."""
        ops = []
        for node in nodes:
            value = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
            meta = _mirror(node.metadata)
            meta.update({"ref_doc_id": node.ref_doc_id or "", "_node_id": node.node_id})
            ops.append(
                {
                    "namespace": self.namespace,
                    "key": encode_key(node.node_id),
                    "value": value,
                    "text": node.get_content(metadata_mode=MetadataMode.NONE),
                    "metadata": meta,
                    "vector": node.embedding,
                }
            )
        for start in range(0, len(ops), 500):
            self._memory.put_many(ops[start : start + 500])
        return [node.node_id for node in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the document ``ref_doc_id``."""
        self._delete(list_all(self._memory, self.namespace, {"ref_doc_id": ref_doc_id}))

    def _delete(self, items: Any) -> None:
        pairs = [(i.namespace, i.key) for i in items]
        for start in range(0, len(pairs), 500):
            delete_present(self._memory, pairs[start : start + 500])

    def delete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete the nodes with these ids and/or matching ``filters``."""
        self._delete(self._select(node_ids, filters))

    def clear(self) -> None:
        """Delete every node of the namespace (history stays in the log)."""
        self._delete(list_all(self._memory, self.namespace))

    # -- reads -------------------------------------------------------------------------
    def _select(self, node_ids: list[str] | None, filters: MetadataFilters | None) -> list[Item]:
        flt = translate_filters(filters) or {}
        if node_ids is not None:
            flt["_node_id"] = {"$in": list(node_ids)}
        return list(list_all(self._memory, self.namespace, flt or None))

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Nodes by id (in the order asked) and/or by ``filters``."""
        if node_ids is not None and filters is None:
            items = get_many(self._memory, [(self.namespace, encode_key(i)) for i in node_ids])
            return [_node(i) for i in items if i is not None]
        return [_node(i) for i in self._select(node_ids, filters)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Top ``similarity_top_k`` nodes in the query's mode, with their scores."""
        mode = _MODES.get(query.mode)
        if mode is None:
            raise InvalidInput(
                "mode", f"{query.mode.value!r}: hivemem serves default, hybrid and text_search"
            )
        flt = translate_filters(query.filters) or {}
        if query.doc_ids:
            flt["ref_doc_id"] = {"$in": list(query.doc_ids)}
        if query.node_ids:
            flt["_node_id"] = {"$in": list(query.node_ids)}
        hits = self._memory.search(
            query.query_str,
            namespaces=[self.namespace],
            k=query.hybrid_top_k or query.similarity_top_k,
            mode=mode,
            filter=flt or None,
            vector=query.query_embedding if mode != "keyword" else None,
        )
        return VectorStoreQueryResult(
            nodes=[_node(h.item) for h in hits],
            similarities=[h.score for h in hits],
            ids=[decode_key(h.item.key) for h in hits],
        )

    # -- async twins ---------------------------------------------------------------------
    async def async_add(self, nodes: Any, **kwargs: Any) -> list[str]:
        """Async twin of ``add``."""
        return await to_thread(self.add, list(nodes), **kwargs)

    async def adelete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Async twin of ``delete``."""
        await to_thread(self.delete, ref_doc_id)

    async def adelete_nodes(
        self,
        node_ids: list[str] | None = None,
        filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Async twin of ``delete_nodes``."""
        await to_thread(self.delete_nodes, node_ids, filters)

    async def aclear(self) -> None:
        """Async twin of ``clear``."""
        await to_thread(self.clear)

    async def aget_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None
    ) -> list[BaseNode]:
        """Async twin of ``get_nodes``."""
        return await to_thread(self.get_nodes, node_ids, filters)

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """Async twin of ``query``."""
        return await to_thread(self.query, query)


def _node(item: Item) -> BaseNode:
    return metadata_dict_to_node(item.value, text=item.text or "")
