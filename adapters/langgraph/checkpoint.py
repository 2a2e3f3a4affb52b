"""``HivememSaver``: LangGraph's ``BaseCheckpointSaver`` over hivemem's log.

Layout, under a root namespace (``checkpoints`` by default)::

    <root>/<thread>/<checkpoint_ns>/checkpoints   one item per checkpoint
    <root>/<thread>/<checkpoint_ns>/writes        one item per pending write

A checkpoint's key inverts its id, so hivemem's key order is newest first and the
latest checkpoint is the first item listed. Checkpoint metadata's top-level scalar
fields are copied into the item's metadata, so ``list(filter=...)``, ``before`` and
``delete_for_runs`` are hivemem filters. Values are the saver's serializer output
(base64), exactly as LangGraph's own savers keep them.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    get_checkpoint_id,
    get_checkpoint_metadata,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from hivemem.adapters._common import (
    Target,
    delete_present,
    encode_key,
    encode_label,
    get_many,
    list_all,
    mirror_metadata,
    to_thread,
)
from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Item

__all__ = ["HivememSaver"]

_HEX_DESC = str.maketrans("0123456789abcdef-", "fedcba9876543210y")
_OWN = frozenset({"_kind", "_cid", "_thread", "_ns"})


def _order_key(checkpoint_id: str) -> str:
    """A key whose byte order is the reverse of the ids' order (newest first).

    LangGraph's ids are uuid6 (hex and '-'): each character maps to its mirror and a
    final 'z' sorts a shorter id after its extensions. Other ids invert code points.
    """
    if re.fullmatch(r"[0-9a-f-]+", checkpoint_id):
        return checkpoint_id.translate(_HEX_DESC) + "z"
    return "~" + "".join(f"{0x10FFFF - ord(c):06x}" for c in checkpoint_id) + "z"


def _segment(label: str) -> str:
    """A namespace segment for a thread id or checkpoint namespace.

    Readable when it fits; a long one is hashed (the item holds the real name, so
    the segment need never be decoded). ".h" never starts an encoded label.
    """
    try:
        return encode_label(label)
    except InvalidInput:
        return ".h" + hashlib.sha256(label.encode()).hexdigest()[:40]


class HivememSaver(BaseCheckpointSaver[str]):
    """Graph state (checkpoints and pending writes) kept in hivemem.

    One service then holds both a graph's state and its shared memory, with history,
    watch and permissions for free. Sync and async, over a ``Memory`` or a ``Client``.
    """

    def __init__(
        self,
        memory: Target,
        *,
        root: str = "checkpoints",
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        self.memory = memory
        self.root = root.strip("/")

    # -- names and encoding ----------------------------------------------------------
    def _thread_ns(self, thread_id: str) -> str:
        return f"{self.root}/{_segment(str(thread_id))}"

    def _ns(self, thread_id: str, checkpoint_ns: str, kind: str) -> str:
        return f"{self._thread_ns(thread_id)}/{_segment(checkpoint_ns)}/{kind}"

    def _dump(self, obj: Any) -> list[str]:
        kind, raw = self.serde.dumps_typed(obj)
        return [kind, base64.b64encode(raw).decode()]

    def _load(self, dumped: list[str]) -> Any:
        return self.serde.loads_typed((dumped[0], base64.b64decode(dumped[1])))

    # -- reads -----------------------------------------------------------------------
    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """The checkpoint ``config`` names, or the thread's latest in its namespace."""
        conf = config["configurable"]
        thread_id, checkpoint_ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        ns = self._ns(thread_id, checkpoint_ns, "checkpoints")
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            item = get_many(self.memory, [(ns, encode_key(_order_key(checkpoint_id)))])[0]
        else:
            page = self.memory.list(ns, limit=1)
            item = page.items[0] if page.items else None
        return self._tuple(item) if item is not None else None

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """Checkpoints newest first (per namespace), matching the metadata ``filter``."""
        flt: dict[str, Any] = {"_kind": "checkpoint"}
        for name, value in (filter or {}).items():
            if value is not None and not isinstance(value, str | int | float | bool):
                raise InvalidInput(f"filter.{name}", "hivemem compares scalar metadata only")
            flt[name] = value
        if before is not None and (before_id := get_checkpoint_id(before)):
            flt["_cid"] = {"$lt": before_id}
        prefix, exact = self.root, False
        if config is not None:
            conf = config["configurable"]
            thread_id = str(conf["thread_id"])
            prefix = self._thread_ns(thread_id)
            if "checkpoint_ns" in conf:
                prefix, exact = self._ns(thread_id, conf["checkpoint_ns"], "checkpoints"), True
            if checkpoint_id := get_checkpoint_id(config):
                flt["_cid"] = checkpoint_id
        count = 0
        for item in list_all(self.memory, prefix, flt, exact=exact):
            if limit is not None and count >= limit:
                return
            count += 1
            yield self._tuple(item)

    def _tuple(self, item: Item) -> CheckpointTuple:
        v = item.value
        thread_id, checkpoint_ns, checkpoint_id = v["thread_id"], v["checkpoint_ns"], v["id"]
        writes_ns = self._ns(thread_id, checkpoint_ns, "writes")
        writes = [w.value for w in list_all(self.memory, writes_ns, {"_cid": checkpoint_id})]
        writes.sort(key=lambda w: (w["task_path"], w["task_id"], w["idx"]))
        parent = v.get("parent_id")
        return CheckpointTuple(
            config=_config(thread_id, checkpoint_ns, checkpoint_id),
            checkpoint=self._load(v["checkpoint"]),
            metadata=self._load(v["metadata"]),
            parent_config=_config(thread_id, checkpoint_ns, parent) if parent else None,
            pending_writes=[(w["task_id"], w["channel"], self._load(w["value"])) for w in writes],
        )

    # -- writes ----------------------------------------------------------------------
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint (pending writes of other checkpoints are left alone)."""
        conf = config["configurable"]
        thread_id, checkpoint_ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        meta = get_checkpoint_metadata(config, metadata)
        value = {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "id": checkpoint["id"],
            "parent_id": conf.get("checkpoint_id"),
            "checkpoint": self._dump(checkpoint),
            "metadata": self._dump(meta),
        }
        own = {
            "_kind": "checkpoint",
            "_cid": checkpoint["id"],
            "_thread": thread_id,
            "_ns": checkpoint_ns,
        }
        self.memory.put(
            self._ns(thread_id, checkpoint_ns, "checkpoints"),
            encode_key(_order_key(checkpoint["id"])),
            value,
            text="",
            metadata={**mirror_metadata(dict(meta), skip=_OWN), **own},
        )
        return _config(thread_id, checkpoint_ns, checkpoint["id"])

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes; a regular write already stored is kept (idempotent),
        a special one (error, interrupt, ...) is replaced."""
        conf = config["configurable"]
        thread_id, checkpoint_ns = str(conf["thread_id"]), conf.get("checkpoint_ns", "")
        checkpoint_id = conf["checkpoint_id"]
        ns = self._ns(thread_id, checkpoint_ns, "writes")
        ops: list[dict[str, Any]] = []
        for i, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, i)
            key = encode_key(f"{checkpoint_id}|{task_id}|{idx}")
            record = {
                "task_id": task_id,
                "task_path": task_path,
                "channel": channel,
                "idx": idx,
                "value": self._dump(value),
            }
            meta = {"_kind": "write", "_cid": checkpoint_id, "_thread": thread_id}
            ops.append({"namespace": ns, "key": key, "value": record, "text": "", "metadata": meta})
        regular = [op for op in ops if op["value"]["idx"] >= 0]
        stored = get_many(self.memory, [(op["namespace"], op["key"]) for op in regular])
        skip = {op["key"] for op, item in zip(regular, stored, strict=True) if item is not None}
        todo = [op for op in ops if op["key"] not in skip]
        if todo:
            self.memory.put_many(todo)

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint and write of a thread (history stays in the log)."""
        self._delete_items(
            list(list_all(self.memory, self._thread_ns(str(thread_id)), exact=False))
        )

    def _delete_items(self, items: Sequence[Item]) -> None:
        pairs = [(i.namespace, i.key) for i in items]
        for start in range(0, len(pairs), 500):
            delete_present(self.memory, pairs[start : start + 500])

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` is listed."""
        if not run_ids:
            return
        flt = {"_kind": "checkpoint", "run_id": {"$in": [str(r) for r in run_ids]}}
        checkpoints = list(list_all(self.memory, self.root, flt, exact=False))
        self._delete_with_writes(checkpoints)

    def _delete_with_writes(self, checkpoints: Sequence[Item]) -> None:
        doomed: list[Item] = list(checkpoints)
        for item in checkpoints:
            writes_ns = item.namespace.rsplit("/", 1)[0] + "/writes"
            doomed += list_all(self.memory, writes_ns, {"_cid": item.value["id"]})
        self._delete_items(doomed)

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of a thread to another thread id."""
        source, target = str(source_thread_id), str(target_thread_id)
        items = list(list_all(self.memory, self._thread_ns(source), exact=False))
        src_root, dst_root = self._thread_ns(source), self._thread_ns(target)
        ops = []
        for item in items:
            value = dict(item.value)
            if "thread_id" in value:
                value["thread_id"] = target
            meta = dict(item.metadata)
            meta["_thread"] = target
            ops.append(
                {
                    "namespace": dst_root + item.namespace[len(src_root) :],
                    "key": item.key,
                    "value": value,
                    "text": "",
                    "metadata": meta,
                }
            )
        for start in range(0, len(ops), 500):
            self.memory.put_many(ops[start : start + 500])

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Keep only the latest checkpoint per namespace (``"keep_latest"``, with its
        writes) or delete everything (``"delete"``) of each thread."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidInput("strategy", "must be 'keep_latest' or 'delete'")
        for thread_id in thread_ids:
            if strategy == "delete":
                self.delete_thread(thread_id)
                continue
            flt = {"_kind": "checkpoint"}
            checkpoints = list(list_all(self.memory, self._thread_ns(str(thread_id)), flt, False))
            seen: set[str] = set()
            older = []
            for item in checkpoints:  # namespace by namespace, newest first
                if item.namespace in seen:
                    older.append(item)
                seen.add(item.namespace)
            self._delete_with_writes(older)

    # -- async twins -------------------------------------------------------------------
    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async twin of ``get_tuple``."""
        return await to_thread(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async twin of ``list``."""
        found = await to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for tup in found:
            yield tup

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async twin of ``put``."""
        return await to_thread(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async twin of ``put_writes``."""
        await to_thread(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """Async twin of ``delete_thread``."""
        await to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async twin of ``delete_for_runs``."""
        await to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async twin of ``copy_thread``."""
        await to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async twin of ``prune``."""
        await to_thread(self.prune, thread_ids, strategy=strategy)


def _config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }
