"""The client's wire format, with no I/O: the ``Call`` an operation becomes, decoding
answers and problem+json errors, encoding bodies, paths and query parameters, and
splitting streamed NDJSON / SSE bodies into lines.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from hivemem.memory.errors import (
    ERRORS_BY_TYPE,
    Compacted,
    Conflict,
    HivememError,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from hivemem.memory.models import ApiKeyInfo, Claim, Grant, Hit, Item, Proposal
from hivemem.memory.validation import check_key, check_namespace

__all__ = [
    "Call",
    "error_from_problem",
    "error_from_response",
    "encode_json",
    "item_path",
    "LineSplitter",
    "wire_lines",
    "awire_lines",
    "ndjson",
    "import_chunks",
]

T = TypeVar("T")

_BY_STATUS: dict[int, type[HivememError]] = {
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    410: Compacted,
    413: PayloadTooLarge,
    422: InvalidInput,
    400: InvalidInput,
    502: Unavailable,
    503: Unavailable,
    504: Unavailable,
}

_ITEMS = TypeAdapter(list[Item])
_HITS = TypeAdapter(list[Hit])
_GRANTS = TypeAdapter(list[Grant])
_KEYS = TypeAdapter(list[ApiKeyInfo])


@dataclass(frozen=True)
class Call(Generic[T]):
    """One HTTP exchange, described without sending it."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: list[tuple[str, str]] = field(default_factory=list)
    content: bytes | None = None
    #: Safe to send again when the first attempt may or may not have arrived.
    retry: bool = False
    headers: dict[str, str] = field(default_factory=dict)
    #: A write: the client remembers the revision it returns (read-your-writes).
    writes: bool = False


# -- decoding ----------------------------------------------------------------------------


def error_from_problem(status: int, body: Any) -> HivememError:
    """The ``HivememError`` a problem+json body (or any error body) stands for."""
    if isinstance(body, dict):
        if isinstance(body.get("status"), int):
            status = body["status"]
        ptype = body.get("type")
        if isinstance(ptype, str):
            cls = ERRORS_BY_TYPE.get(ptype.rstrip("/").rsplit("/", 1)[-1])
            if cls is not None:
                return cls.from_problem(body)
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            # A framework validation error that escaped the problem renderer.
            loc = [str(p) for p in detail[0].get("loc", ()) if p not in ("body", "query", "path")]
            return InvalidInput(".".join(loc), str(detail[0].get("msg", "invalid")))
        text = detail if isinstance(detail, str) else body.get("title") or ""
    else:
        text = body if isinstance(body, str) else ""
    cls = _BY_STATUS.get(status, HivememError)
    return cls.from_problem({"detail": text or f"HTTP {status}"})


def error_from_response(response: httpx.Response) -> HivememError:
    """Decode an error response (its body must already be read)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text.strip()[:500]
    return error_from_problem(response.status_code, body)


def _model(model: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda r: model.model_validate_json(r.content)


def _many(adapter: TypeAdapter[Any]) -> Callable[[httpx.Response], Any]:
    return lambda r: adapter.validate_json(r.content)


def _claim_or_none(r: httpx.Response) -> Claim | None:
    return None if r.status_code == 204 else Claim.model_validate_json(r.content)


def _item_or_proposal(r: httpx.Response) -> Item | Proposal:
    """A write's answer: the item, or (202) the proposal a proposer's write became."""
    if r.status_code == 202:
        return Proposal.model_validate_json(r.content)
    return Item.model_validate_json(r.content)


_PROPOSALS = TypeAdapter(list[Proposal])


def _nothing(_: httpx.Response) -> None:
    return None


def _json(r: httpx.Response) -> Any:
    return r.json()


# -- encoding ----------------------------------------------------------------------------


def encode_json(body: dict[str, Any]) -> bytes:
    """Strict JSON (no NaN); a value that cannot be sent is ``InvalidInput`` naming it."""
    try:
        return json.dumps(body, ensure_ascii=False, allow_nan=False, default=_plain).encode()
    except (TypeError, ValueError) as exc:
        name = "body"
        for key, value in body.items():
            try:
                json.dumps(value, allow_nan=False, default=_plain)
            except (TypeError, ValueError):
                name = key
                break
        raise InvalidInput(name, f"is not JSON: {exc}") from None


def _plain(obj: Any) -> Any:
    """JSON for the few non-JSON types callers naturally pass (models, numpy)."""
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json", exclude_unset=True)
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def _op(op: Any) -> Any:
    """A txn/batch op as sent: the fields the caller set, and always its ``op`` tag.

    The engine takes an op without ``op`` as a put; the wire needs the tag to tell the
    kinds apart, so it is filled in here.
    """
    if isinstance(op, BaseModel):
        return {"op": getattr(op, "op", "put"), **op.model_dump(mode="json", exclude_unset=True)}
    if isinstance(op, dict) and "op" not in op:
        return {"op": "put", **op}
    return op


def _compare(c: Any) -> Any:
    return c.model_dump(mode="json", exclude_unset=True) if isinstance(c, BaseModel) else c


def _vector(vector: Sequence[float] | None) -> list[float] | None:
    if vector is None:
        return None
    try:
        return [float(x) for x in vector]
    except (TypeError, ValueError):
        return list(vector)  # let the server name the problem


def item_path(namespace: str, key: str) -> str:
    """``/{namespace}/{key}``: slashes of the namespace kept, the key percent-encoded.

    Both are checked here first because a path cannot carry every invalid value
    faithfully (an empty part, a ``/`` in a key); the checks are the engine's own.
    Segments ``.`` and ``..`` (which only items stored by earlier releases have) go as
    ``%2E``: HTTP libraries would otherwise resolve them away before sending.
    """
    check_namespace(namespace, stored=True)
    check_key(key)
    segments = [_DOT_SEGMENTS.get(s) or quote(s, safe="") for s in namespace.split("/")]
    return f"/{'/'.join(segments)}/{quote(key, safe='')}"


_DOT_SEGMENTS = {".": "%2E", "..": "%2E%2E"}


class LineSplitter:
    """Lines of a streamed body, split where NDJSON and SSE frame them: LF, CRLF or CR.

    Never at the other Unicode line boundaries (U+2028, U+0085, …) where ``str.splitlines``
    and httpx's ``iter_lines`` split: JSON strings hold those raw, so a value with one
    would be cut in two.
    """

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[str]:
        data = self._buffer + chunk
        lines: list[str] = []
        start = 0
        while True:
            lf, cr = data.find(b"\n", start), data.find(b"\r", start)
            end = min(i for i in (lf, cr) if i >= 0) if lf >= 0 or cr >= 0 else -1
            if end < 0:
                break
            if data[end : end + 1] == b"\r":
                if end + 1 == len(data):  # a CR at the end: an LF may follow in the next chunk
                    break
                step = 2 if data[end + 1 : end + 2] == b"\n" else 1
            else:
                step = 1
            lines.append(data[start:end].decode("utf-8", "replace"))
            start = end + step
        self._buffer = data[start:]
        return lines

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, b""
        if rest.endswith(b"\r"):
            rest = rest[:-1]
        return [rest.decode("utf-8", "replace")] if rest else []


def wire_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The lines of a streamed NDJSON or SSE body (see ``LineSplitter``)."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.flush()


async def awire_lines(chunks: AsyncIterator[bytes]) -> AsyncIterator[str]:
    """``wire_lines`` over an async body."""
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.flush():
        yield line


def ndjson(records: Iterable[dict[str, Any]]) -> bytes:
    """JSON Lines of ``records``."""
    return b"".join(encode_json(r) + b"\n" for r in records)


def _json_param(name: str, value: Any) -> str:
    """A JSON-valued query parameter."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(name, f"is not JSON: {exc}") from None


def _strs(params: list[tuple[str, Any]]) -> list[tuple[str, str]]:
    return [(k, v.decode() if isinstance(v, bytes) else str(v)) for k, v in params]


def import_chunks(records: Iterable[dict[str, Any]], batch: int) -> Iterable[list[dict[str, Any]]]:
    """``records`` in lists of ``batch``: one request (and one revision) each."""
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidInput("batch", "must be a positive integer")
    chunk: list[dict[str, Any]] = []
    for n, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"records[{n}]", "must be an object")
        chunk.append(record)
        if len(chunk) >= batch:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
