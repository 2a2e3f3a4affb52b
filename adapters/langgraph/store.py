"""``HivememStore``: LangGraph's ``BaseStore`` over hivemem, with compare-and-swap.

A namespace tuple ``("users", "Alice")`` is the hivemem namespace ``users/.41lice``
under an optional root (labels hivemem's segment rules reject are encoded reversibly,
see ``hivemem.adapters._common``). An item's value is the LangGraph value itself; its
top-level scalar fields are copied into hivemem metadata, so LangGraph filters run in
hivemem's engine; the index fields, when configured, become the item's text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import Any

from langgraph.store.base import (
    NOT_PROVIDED,
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    NotProvided,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)

from hivemem.adapters._common import (
    _META_NAME,
    Target,
    decode_key,
    decode_label,
    encode_key,
    get_many,
    join_namespace,
    mirror_metadata,
    to_thread,
)
from hivemem.memory.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from hivemem.memory.models import Item as HmItem

__all__ = ["HivememStore", "VersionedItem"]

_FILTER_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")


class VersionedItem(Item):
    """A LangGraph ``Item`` that also carries hivemem's version (for ``put_if``)."""

    __slots__ = ("version",)

    def __init__(self, *, version: int, **fields: Any) -> None:
        super().__init__(**fields)
        self.version = version


class HivememStore(BaseStore):
    """LangGraph long-term memory kept in hivemem: versioned, shared, permissioned.

    ``index={"fields": [...], "embed": ..., "dims": ...}`` makes items searchable by
    meaning: the fields' text is what hivemem indexes; with ``embed`` the vectors are
    computed here and supplied (the store must then hold no other dimension), without
    it hivemem embeds with its own model. ``search_mode`` picks hivemem's retrieval for
    queries (``"vector"`` as LangGraph's stores, or ``"hybrid"`` / ``"keyword"``).
    ``ttl={"default_ttl": minutes, "refresh_on_read": True}`` as in LangGraph.
    """

    supports_ttl = True
    __slots__ = ("memory", "root", "index_config", "embeddings", "search_mode", "ttl_config")

    def __init__(
        self,
        memory: Target,
        *,
        root: str = "",
        index: IndexConfig | None = None,
        ttl: TTLConfig | None = None,
        search_mode: str = "vector",
    ) -> None:
        if search_mode not in ("vector", "hybrid", "keyword"):
            raise InvalidInput("search_mode", "must be 'vector', 'hybrid' or 'keyword'")
        self.memory = memory
        self.root = root.strip("/")
        self.index_config: dict[str, Any] | None = dict(index) if index else None
        self.embeddings = None
        if index and index.get("embed") is not None:
            self.embeddings = ensure_embeddings(index["embed"])
        self.search_mode = search_mode
        self.ttl_config = ttl

    # -- names ---------------------------------------------------------------------
    def _ns(self, namespace: Sequence[str]) -> str:
        return join_namespace(self.root, namespace)

    def _labels(self, hm_namespace: str) -> tuple[str, ...]:
        rest = hm_namespace[len(self.root) :].lstrip("/") if self.root else hm_namespace
        return tuple(decode_label(s) for s in rest.split("/")) if rest else ()

    def _item(self, hm: HmItem, score: float | None = None, search: bool = False) -> Item:
        fields: dict[str, Any] = {
            "value": hm.value if isinstance(hm.value, dict) else {},
            "key": decode_key(hm.key),
            "namespace": self._labels(hm.namespace),
            "created_at": hm.created_at,
            "updated_at": hm.updated_at,
        }
        if search:
            return SearchItem(**fields, score=score)
        return VersionedItem(version=hm.version, **fields)

    # -- batch ---------------------------------------------------------------------
    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run ``ops``: reads see the state before the batch, then its writes commit
        together in one revision (the last put to a key wins), as in ``InMemoryStore``."""
        ops = list(ops)
        results: list[Result] = [None] * len(ops)
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for i, op in enumerate(ops):
            if isinstance(op, GetOp):
                results[i] = self._get(op)
            elif isinstance(op, SearchOp):
                results[i] = self._search(op)
            elif isinstance(op, ListNamespacesOp):
                results[i] = self._list_namespaces(op)
            elif isinstance(op, PutOp):
                puts[(tuple(op.namespace), op.key)] = op
            else:
                raise InvalidInput("ops", f"unknown operation {type(op).__name__}")
        if puts:
            self._write(list(puts.values()))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Async twin of ``batch`` (run in a worker thread)."""
        return await to_thread(self.batch, list(ops))

    # -- reads ---------------------------------------------------------------------
    def _get(self, op: GetOp) -> Item | None:
        try:
            hm = self.memory.get(self._ns(op.namespace), encode_key(op.key))
        except NotFound:
            return None
        if op.refresh_ttl:
            hm = self._refresh(hm)
        return self._item(hm)

    def _refresh(self, hm: HmItem) -> HmItem:
        """Restart an item's TTL on read; a reader that may not write leaves it be."""
        if hm.expires_at is None:
            return hm
        ttl = (hm.expires_at - hm.updated_at).total_seconds()
        try:
            # An update without operations keeps value, text, metadata and vector: only
            # the expiry moves. It needs write, so a reader (or a proposer, whose put
            # would file a proposal) leaves the item be; if_version: a concurrent write
            # wins and sets its own TTL.
            return self.memory.update(
                hm.namespace, hm.key, [], ttl=ttl, if_version=hm.version, create=False
            )
        except (PermissionDenied, Conflict, NotFound):
            return hm

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = self._ns(op.namespace_prefix) if op.namespace_prefix else self.root
        flt = _translate_filter(op.filter)
        want = op.offset + op.limit
        if want <= 0:
            return []
        if op.query and self.index_config is not None:
            hits = self._query(op.query, prefix, want, flt)
            found = [(h.item, h.score) for h in hits]
            if len(found) < want and self.search_mode == "vector":
                # As InMemoryStore: when fewer items have vectors than asked for, fill
                # up with the matching items that have none, unscored.
                seen = {(h.item.namespace, h.item.key) for h in hits}
                rest = self._list(prefix, flt, want + len(seen))
                found += [(i, None) for i in rest if (i.namespace, i.key) not in seen]
        else:
            found = [(item, None) for item in self._list(prefix, flt, want)]
        found = found[op.offset : want]
        out = []
        for hm, score in found:
            if op.refresh_ttl:
                hm = self._refresh(hm)
            out.append(self._item(hm, score, search=True))
        return out  # type: ignore[return-value]

    def _query(self, query: str, prefix: str, k: int, flt: dict[str, Any] | None) -> list[Any]:
        vector = None
        if self.embeddings is not None and self.search_mode != "keyword":
            vector = self.embeddings.embed_query(query)
        return self.memory.search(
            query,
            namespaces=[prefix],
            k=min(k, 1000),
            mode=self.search_mode,
            filter=flt,
            vector=vector,
        )

    def _list(self, prefix: str, flt: dict[str, Any] | None, want: int) -> list[HmItem]:
        items: list[HmItem] = []
        cursor = None
        while len(items) < want:
            page = self.memory.list(prefix, filter=flt, limit=1000, cursor=cursor)
            items += page.items
            cursor = page.cursor
            if cursor is None:
                break
        return items[:want]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        names: list[tuple[str, ...]] = []
        cursor = None
        while True:
            page = self.memory.namespaces(self.root, limit=1000, cursor=cursor)
            names += [self._labels(info.namespace) for info in page.namespaces]
            cursor = page.cursor
            if cursor is None:
                break
        conditions = op.match_conditions or ()
        names = [n for n in names if n and all(_matches(c, n) for c in conditions)]
        if op.max_depth is not None:
            names = list({n[: op.max_depth] for n in names})
        names.sort()
        return names[op.offset : op.offset + op.limit]

    # -- writes --------------------------------------------------------------------
    def _put_op(self, op: PutOp, if_version: int | None = None) -> dict[str, Any]:
        assert op.value is not None
        value = dict(op.value)
        text = self._text(value, op.index)
        vector = None
        if text and self.embeddings is not None:
            vector = self.embeddings.embed_documents([text])[0]
        ttl = op.ttl if not isinstance(op.ttl, NotProvided) else self._default_ttl()
        return {
            "namespace": self._ns(op.namespace),
            "key": encode_key(op.key),
            "value": value,
            # "" keeps an item without index fields out of the embedder and index
            "text": text or "",
            "metadata": mirror_metadata(value),
            "ttl": ttl * 60 if ttl is not None else None,
            "vector": vector,
            "if_version": if_version,
        }

    def _default_ttl(self) -> float | None:
        return self.ttl_config.get("default_ttl") if self.ttl_config else None

    def _text(self, value: dict[str, Any], index: Any) -> str | None:
        if index is False or self.index_config is None:
            return None
        fields: list[str] = self.index_config.get("fields") or ["$"]
        paths: list[str] = index if index is not None else fields
        texts: list[str] = []
        for path in paths:
            texts += get_text_at_path(value, tokenize_path(path) if path != "$" else path)
        return "\n".join(texts) or None

    def _write(self, puts: list[PutOp]) -> None:
        writes = [self._put_op(op) for op in puts if op.value is not None]
        deletes = [(self._ns(op.namespace), encode_key(op.key)) for op in puts if op.value is None]
        for _ in range(5):
            present = [
                p for p, it in zip(deletes, get_many(self.memory, deletes), strict=True) if it
            ]
            ops = writes + [{"op": "delete", "namespace": n, "key": k} for n, k in present]
            if not ops:
                return
            try:
                self.memory.txn(success=ops)
                return
            except NotFound:
                continue  # an item went away between the read and the delete
        raise NotFound("items kept disappearing while being deleted")

    # -- compare-and-swap (beyond LangGraph) ------------------------------------------
    def put_if(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        *,
        expected_version: int,
        index: Any = None,
        ttl: float | None | NotProvided = NOT_PROVIDED,
    ) -> int:
        """Write only if the item is still at ``expected_version`` (0: must not exist).

        Returns the new version; raises ``Conflict`` (with ``current``) otherwise, so
        parallel writers re-read and retry instead of losing each other's updates.
        ``get`` returns ``VersionedItem`` whose ``version`` is what to expect.
        """
        op = PutOp(tuple(namespace), key, value, index, ttl)  # type: ignore[arg-type]
        result = self.memory.txn(success=[self._put_op(op, if_version=expected_version)])
        version = result.results[0].version
        assert version is not None
        return version

    async def aput_if(
        self,
        namespace: tuple[str, ...],
        key: str,
        value: dict[str, Any],
        *,
        expected_version: int,
        index: Any = None,
        ttl: float | None | NotProvided = NOT_PROVIDED,
    ) -> int:
        """Async twin of ``put_if``."""
        return await to_thread(
            self.put_if,
            namespace,
            key,
            value,
            expected_version=expected_version,
            index=index,
            ttl=ttl,
        )

    # -- atomic updates (beyond LangGraph) --------------------------------------------
    def update(
        self, namespace: tuple[str, ...], key: str, ops: Sequence[dict[str, Any]]
    ) -> VersionedItem:
        """Apply hivemem update operations (JSON Patch, ``increment``, ``append``,
        ``add_to_set``, ``remove_from_set``) to the item's value inside one commit.

        Concurrent updates from parallel nodes never conflict or lose each other. A
        missing item starts from ``{}`` (with no TTL); its filterable copies of
        top-level fields move with the value. The item is not re-indexed for search:
        ``put`` a value whose index fields changed.
        """
        ops = list(ops)
        for i, op in enumerate(ops):
            if isinstance(op, dict) and op.get("path") == "" and op.get("op") in ("add", "replace"):
                if not isinstance(op.get("value"), dict):
                    raise InvalidInput(f"ops[{i}].value", "a LangGraph item's value is an object")
        hm = self.memory.update(
            self._ns(namespace), encode_key(key), ops, metadata_ops=_mirrored_ops(ops)
        )
        item = self._item(hm)
        assert isinstance(item, VersionedItem)
        return item

    def increment(
        self, namespace: tuple[str, ...], key: str, field: str | Sequence[str], by: float = 1
    ) -> VersionedItem:
        """Add ``by`` to the number at ``field`` (a name, a path of names, or a JSON
        Pointer), starting from 0; exact for integers within 64 bits."""
        return self.update(namespace, key, [{"op": "increment", "path": _path(field), "value": by}])

    def append(
        self,
        namespace: tuple[str, ...],
        key: str,
        field: str | Sequence[str],
        value: Any,
        *,
        max_len: int | None = None,
    ) -> VersionedItem:
        """Append ``value`` to the list at ``field`` (created if missing); ``max_len``
        keeps only the newest entries (a bounded log)."""
        op: dict[str, Any] = {"op": "append", "path": _path(field), "value": value}
        if max_len is not None:
            op["max_len"] = max_len
        return self.update(namespace, key, [op])

    async def aupdate(
        self, namespace: tuple[str, ...], key: str, ops: Sequence[dict[str, Any]]
    ) -> VersionedItem:
        """Async twin of ``update``."""
        return await to_thread(self.update, namespace, key, list(ops))

    async def aincrement(
        self, namespace: tuple[str, ...], key: str, field: str | Sequence[str], by: float = 1
    ) -> VersionedItem:
        """Async twin of ``increment``."""
        return await to_thread(self.increment, namespace, key, field, by)

    async def aappend(
        self,
        namespace: tuple[str, ...],
        key: str,
        field: str | Sequence[str],
        value: Any,
        *,
        max_len: int | None = None,
    ) -> VersionedItem:
        """Async twin of ``append``."""
        return await to_thread(self.append, namespace, key, field, value, max_len=max_len)

    # -- waiting for another agent (beyond LangGraph) ----------------------------------
    def wait_for(self, namespace: tuple[str, ...], key: str, timeout: float | None = None) -> Item:
        """The item at ``(namespace, key)``, waiting on hivemem's watch until it exists.

        Reads first; if absent, follows the change stream from the revision of that
        read, so a write landing in between is never missed. Raises ``TimeoutError``
        after ``timeout`` seconds.
        """
        hm_ns, hm_key = self._ns(namespace), encode_key(key)
        since = self.memory.revision
        try:
            return self._item(self.memory.get(hm_ns, hm_key))
        except NotFound:
            pass
        stream = self.memory.watch([hm_ns], since=since)
        timer = threading.Timer(timeout, stream.close) if timeout is not None else None
        try:
            if timer is not None:
                timer.start()
            for change in stream:
                if (change.namespace, change.key) == (hm_ns, hm_key) and change.item:
                    return self._item(change.item)
        finally:
            if timer is not None:
                timer.cancel()
            stream.close()
        raise TimeoutError(f"{namespace!r} / {key!r} did not appear within {timeout} s")

    async def await_for(
        self, namespace: tuple[str, ...], key: str, timeout: float | None = None
    ) -> Item:
        """Async twin of ``wait_for``."""
        return await to_thread(self.wait_for, namespace, key, timeout)


def _path(field: str | Sequence[str]) -> str:
    """A JSON Pointer from a field name, a sequence of names, or a pointer itself."""
    if isinstance(field, str):
        if field.startswith("/"):
            return field
        field = (field,)
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in field)


def _mirrored_ops(ops: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """The ops that keep the metadata copy of top-level scalar fields in step.

    The store copies a value's top-level scalars into metadata so LangGraph filters run
    in the engine; an update changing such a field makes the same change to the copy
    in the same commit. A field that stops being a scalar (or is moved away) loses its
    copy; a whole new value gets a whole new copy.
    """
    out: list[dict[str, Any]] = []
    for op in ops:
        kind, path = op.get("op"), op.get("path")
        if not isinstance(path, str):
            continue
        if path == "":
            if kind in ("add", "replace") and isinstance(op.get("value"), dict):
                out.append({"op": "replace", "path": "", "value": mirror_metadata(op["value"])})
            continue
        if kind in ("move", "copy"):
            out += _unmirror(path)
            if kind == "move" and isinstance(op.get("from"), str):
                out += _unmirror(op["from"])
            continue
        if path.count("/") != 1 or not _META_NAME.fullmatch(path[1:]):
            continue  # nested, or a name the copy never holds
        value = op.get("value")
        scalar = value is None or isinstance(value, str | bool | int | float)
        if kind == "increment" or (kind in ("add", "replace") and scalar):
            out.append(op)
        elif kind in ("add", "replace", "remove", "append", "add_to_set"):
            out += _unmirror(path)
    return out or None


def _unmirror(path: str) -> list[dict[str, Any]]:
    """Ops dropping the metadata copy at a top-level ``path``, present or not."""
    if path.count("/") != 1 or not _META_NAME.fullmatch(path[1:]):
        return []
    return [{"op": "add", "path": path, "value": None}, {"op": "remove", "path": path}]


def _matches(condition: MatchCondition, namespace: tuple[str, ...]) -> bool:
    """LangGraph's namespace match: a prefix or suffix of labels, ``*`` any one label."""
    path = tuple(condition.path)
    if len(namespace) < len(path):
        return False
    if condition.match_type == "prefix":
        part = namespace[: len(path)]
    else:
        part = namespace[len(namespace) - len(path) :]
    return all(p == "*" or p == n for p, n in zip(path, part, strict=True))


def _translate_filter(flt: dict[str, Any] | None) -> dict[str, Any] | None:
    """A LangGraph filter as hivemem's (the same operators on top-level scalar fields)."""
    if not flt:
        return None
    out: dict[str, Any] = {}
    for field, spec in flt.items():
        if isinstance(spec, dict):
            if not spec or not all(op in _FILTER_OPS for op in spec):
                raise InvalidInput(
                    f"filter.{field}",
                    "hivemem filters compare top-level scalar fields with "
                    + ", ".join(_FILTER_OPS),
                )
        elif isinstance(spec, list | tuple):
            raise InvalidInput(f"filter.{field}", "hivemem filters compare scalars, not lists")
        out[field] = spec
    return out
