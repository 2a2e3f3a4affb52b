"""Operations as the engine receives them, validated and authorized before any commit.

``prepare_ops`` turns puts, deletes and gets (models or plain dicts) into prepared
operations: every field checked, every error naming its field, nothing written yet.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hivemem.memory.errors import InvalidInput
from hivemem.memory.models import Compare, DeleteOp, GetOp, PutOp, UpdateOp
from hivemem.memory.patch import PatchOp, parse_ops
from hivemem.memory.validation import (
    INT64_MAX,
    MERGE_MODES,
    check_int,
    check_key,
    check_metadata,
    check_namespace,
    check_text,
    check_ttl,
    check_vector,
    dump_json,
    dump_value,
    unit_vector,
)

__all__ = [
    "PreparedPut",
    "PreparedDelete",
    "PreparedGet",
    "PreparedUpdate",
    "Prepared",
    "prepare_put",
    "prepare_update",
    "prepare_ops",
    "check_version",
    "coerce_compare",
    "validate_model",
]


@dataclass
class PreparedPut:
    """A validated put, ready for the write transaction."""

    namespace: str
    key: str
    value: Any
    value_json: str
    text: str | None
    metadata: str | None
    if_version: int | None
    merge: str
    base_version: int | None
    on_conflict: str | None
    ttl: float | None
    vector: bytes | None
    lease: str | None = None
    fence: tuple[str, str, int] | None = None
    #: Where the op came from (``ops[2].``): names the field of a check made later.
    field: str = ""
    #: A task's claim state restored by import (never taken from a caller's op).
    claim_json: str | None = None
    thread: str | None = None
    thread_pos: int | None = None  # only an import sets it: the place the record had


@dataclass
class PreparedUpdate:
    """A validated update: operations applied to the current value inside the commit.

    ``text``, ``metadata`` and ``vector`` are None to keep the item's own; a new
    ``text`` without a ``vector`` is embedded before the transaction. ``field`` is the
    op's field prefix, so errors raised inside the commit name ``ops[i].path`` in it.
    """

    namespace: str
    key: str
    ops: list[PatchOp]
    ops_json: str
    if_version: int | None
    create: bool
    text: str | None
    metadata: str | None
    vector: bytes | None
    max_value_bytes: int
    field: str
    fence: tuple[str, str, int] | None = None
    ttl: float | None = None  # a new time to live; None keeps the item's expiry
    metadata_ops: list[PatchOp] | None = None  # applied to the metadata, in the same commit


@dataclass
class PreparedDelete:
    """A validated delete."""

    namespace: str
    key: str
    if_version: int | None
    fence: tuple[str, str, int] | None = None


@dataclass
class PreparedGet:
    """A validated read inside a transaction."""

    namespace: str
    key: str


Prepared = PreparedPut | PreparedUpdate | PreparedDelete | PreparedGet


def prepare_put(
    op: dict[str, Any], field: str, *, max_value_bytes: int, dim: int | None
) -> PreparedPut:
    """Validate one put (``field`` prefixes every error's field name)."""
    get = op.get
    ns = check_namespace(get("namespace"), f"{field}namespace")
    key = check_key(get("key"), f"{field}key")
    value, merge = get("value"), get("merge", "replace")
    if merge not in MERGE_MODES:
        raise InvalidInput(f"{field}merge", f"must be one of {', '.join(MERGE_MODES)}")
    base_version, on_conflict = get("base_version"), get("on_conflict")
    if merge == "three_way" and base_version is None:
        raise InvalidInput(f"{field}base_version", "is required with merge='three_way'")
    if on_conflict not in (None, "ours", "theirs"):
        raise InvalidInput(f"{field}on_conflict", "must be 'ours', 'theirs' or null")
    if_version = get("if_version")
    check_version(if_version, f"{field}if_version")
    check_version(base_version, f"{field}base_version")
    if merge == "patch" and not isinstance(value, dict):
        raise InvalidInput(f"{field}value", "a merge patch must be an object")
    value_json = dump_value(value, max_value_bytes, f"{field}value")
    text = get("text")
    if text is not None:
        check_text(text, f"{field}text")
    if text is None and merge == "replace" and isinstance(value, str):
        text = value
    metadata = get("metadata")
    meta_json: str | None = None
    if metadata:
        check_metadata(metadata, f"{field}metadata")
        meta_json = dump_json(metadata, f"{field}metadata", max_value_bytes)
    elif metadata is not None or merge == "replace":
        check_metadata(metadata, f"{field}metadata")
        meta_json = "{}"
    vector = None
    if get("vector") is not None:
        vec = check_vector(get("vector"), dim, f"{field}vector")
        vector = unit_vector(vec).tobytes()
    ttl = check_ttl(get("ttl"), f"{field}ttl")
    lease = get("lease")
    if lease is not None:
        from hivemem.memory.leases import check_lease_id

        check_lease_id(lease, f"{field}lease")
        if ttl is not None:
            raise InvalidInput(f"{field}lease", "an item has a lease or a ttl, not both")
    thread = get("thread")
    if thread is not None:
        thread = check_key(thread, f"{field}thread")  # thread names follow the key rules
    return PreparedPut(
        ns,
        key,
        value,
        value_json,
        text,
        meta_json,
        if_version,
        merge,
        base_version,
        on_conflict,
        ttl,
        vector,
        lease,
        _fence(get("fence"), f"{field}fence"),
        field,
        thread=thread,
    )


def _fence(token: Any, field: str) -> tuple[str, str, int] | None:
    if token is None:
        return None
    from hivemem.memory.claims import parse_token

    return parse_token(token, field)


def prepare_update(
    op: dict[str, Any], field: str, *, max_value_bytes: int, dim: int | None
) -> PreparedUpdate:
    """Validate one update: the operations' shape and values, and any new text or metadata."""
    get = op.get
    ns = check_namespace(get("namespace"), f"{field}namespace")
    key = check_key(get("key"), f"{field}key")
    patch_ops = parse_ops(get("ops"), f"{field}ops")
    # Every value an op carries is JSON the item may come to hold: the same limits.
    for op_ in patch_ops:
        dump_json(op_.value, f"{op_.where}.value", max_value_bytes)
    ops_json = json.dumps(get("ops"), ensure_ascii=False, separators=(",", ":"))
    if_version = get("if_version")
    check_version(if_version, f"{field}if_version")
    create = get("create", True)
    if not isinstance(create, bool):
        raise InvalidInput(f"{field}create", "must be true or false")
    text = get("text")
    if text is not None:
        check_text(text, f"{field}text")
    metadata = get("metadata")
    meta_json = None
    if metadata is not None:
        check_metadata(metadata, f"{field}metadata")
        meta_json = dump_json(metadata, f"{field}metadata", max_value_bytes)
    meta_ops = None
    if get("metadata_ops") is not None:
        if metadata is not None:
            raise InvalidInput(f"{field}metadata_ops", "give metadata or metadata_ops, not both")
        meta_ops = parse_ops(get("metadata_ops"), f"{field}metadata_ops")
        for op_ in meta_ops:
            dump_json(op_.value, f"{op_.where}.value", max_value_bytes)
    vector = None
    if get("vector") is not None:
        vector = unit_vector(check_vector(get("vector"), dim, f"{field}vector")).tobytes()
    return PreparedUpdate(
        ns,
        key,
        patch_ops,
        ops_json,
        if_version,
        create,
        text,
        meta_json,
        vector,
        max_value_bytes,
        field,
        _fence(get("fence"), f"{field}fence"),
        check_ttl(get("ttl"), f"{field}ttl"),
        meta_ops,
    )


def prepare_ops(
    ops: Sequence[PutOp | UpdateOp | DeleteOp | GetOp | dict[str, Any]],
    field: str,
    *,
    max_value_bytes: int,
    dim: int | None,
    require: Callable[[str, str], None],
) -> list[Prepared]:
    """Validate and authorize a list of ops; nothing runs until all of them pass."""
    out: list[Prepared] = []
    if not isinstance(ops, list | tuple):
        raise InvalidInput(field, "must be a list of operations")
    for i, raw in enumerate(ops):
        where = f"{field}[{i}]."
        op = op_fields(raw, where)
        kind = op.get("op", "put")
        if kind == "put":
            put = prepare_put(op, where, max_value_bytes=max_value_bytes, dim=dim)
            require(put.namespace, "write")
            if put.fence is not None:
                require(put.fence[0], "read")  # the token's task must be readable
            if put.vector is not None and dim is None:
                dim = len(put.vector) // 4  # the first vector fixes the rest of the batch
            out.append(put)
            continue
        if kind == "update":
            update = prepare_update(op, where, max_value_bytes=max_value_bytes, dim=dim)
            require(update.namespace, "write")
            if update.fence is not None:
                require(update.fence[0], "read")  # the token's task must be readable
            out.append(update)
            continue
        # deletes and reads reach items stored under '.'/'..' by earlier releases
        ns = check_namespace(op.get("namespace"), f"{where}namespace", stored=True)
        key = check_key(op.get("key"), f"{where}key")
        if kind == "delete":
            check_version(op.get("if_version"), f"{where}if_version")
            fence = _fence(op.get("fence"), f"{where}fence")
            require(ns, "write")
            if fence is not None:
                require(fence[0], "read")
            out.append(PreparedDelete(ns, key, op.get("if_version"), fence))
        else:
            require(ns, "read")
            out.append(PreparedGet(ns, key))
    return out


def check_version(value: Any, field: str) -> None:
    """A version number (``if_version``, ``base_version``): None or an int64 >= 0."""
    if value is not None:
        check_int(value, field, 0, INT64_MAX, "a version number")


_OP_FIELDS: dict[str, frozenset[str]] = {
    "put": frozenset(PutOp.model_fields),
    "update": frozenset(UpdateOp.model_fields),
    "delete": frozenset(DeleteOp.model_fields),
    "get": frozenset(GetOp.model_fields),
}


def op_fields(raw: Any, where: str) -> dict[str, Any]:
    """The fields of an op given as a model or a plain dict; values are checked later."""
    if isinstance(raw, PutOp | UpdateOp | DeleteOp | GetOp):
        return raw.__dict__
    if not isinstance(raw, dict):
        raise InvalidInput(where.rstrip("."), "must be an operation object")
    allowed = _OP_FIELDS.get(raw.get("op", "put"))
    if allowed is None:
        raise InvalidInput(f"{where}op", "must be 'put', 'update', 'delete' or 'get'")
    for name in raw:
        if name not in allowed:
            raise InvalidInput(f"{where}{name}", "is not a field of this operation")
    return raw


def coerce_compare(raw: Any, where: str) -> Compare:
    """A txn compare, from a model or a plain dict, with its operand checked."""
    cmp: Compare = raw if isinstance(raw, Compare) else validate_model(Compare, raw, where)
    check_namespace(cmp.namespace, f"{where}namespace", stored=True)
    check_key(cmp.key, f"{where}key")
    if cmp.target == "version":
        check_int(cmp.value, f"{where}value", 0, INT64_MAX, "a version number")
    elif cmp.target == "exists":
        if not isinstance(cmp.value, bool):
            raise InvalidInput(f"{where}value", "must be true or false")
    else:
        dump_json(cmp.value, f"{where}value")
    return cmp


def validate_model(model: Any, raw: Any, where: str) -> Any:
    """``model.model_validate(raw)``, failing as ``InvalidInput`` naming the field."""
    from pydantic import ValidationError

    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise InvalidInput(f"{where}{loc}".rstrip("."), err["msg"]) from None
