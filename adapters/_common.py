"""What every adapter shares: the store it talks to, and reversible names.

An adapter talks to a ``Memory`` (embedded) or a ``Client`` (a server) through the
methods the two have in common, so one adapter class serves both. Framework keys and
namespace labels are arbitrary strings; hivemem's keys and segments are not, so they
are encoded reversibly here (and only here).
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from hivemem.memory.errors import InvalidInput, NotFound
from hivemem.memory.models import Item

if TYPE_CHECKING:
    from hivemem.memory.client import Client
    from hivemem.memory.engine import Memory

    #: What an adapter writes to and reads from: an embedded store or a server.
    Target = Memory | Client
else:
    Target = Any

__all__ = [
    "Target",
    "encode_key",
    "decode_key",
    "encode_label",
    "decode_label",
    "join_namespace",
    "mirror_metadata",
    "to_thread",
    "list_all",
    "get_many",
    "delete_present",
    "message_keys",
]

T = TypeVar("T")

# -- keys ------------------------------------------------------------------------------
# hivemem keys may not contain '/' or control characters, nor be '', '.' or '..'.
# Percent-encode exactly those characters (and '%' itself); the empty key is a lone '%'.
_KEY_ESCAPE = re.compile(r"[%/\x00-\x1f\x7f]")
_KEY_UNESCAPE = re.compile(r"%([0-9A-F]{2})")


def encode_key(key: str) -> str:
    """A framework key as a hivemem key (reversible; most keys are unchanged)."""
    if not isinstance(key, str):
        raise InvalidInput("key", "must be a string")
    if key == "":
        return "%"
    if key in (".", ".."):
        return key.replace(".", "%2E")
    encoded = _KEY_ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", key)
    if len(encoded) > 512:
        raise InvalidInput("key", "longer than 512 characters once encoded")
    return encoded


def decode_key(key: str) -> str:
    """The framework key a hivemem key was encoded from."""
    if key == "%":
        return ""
    return _KEY_UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), key)


# -- namespace labels --------------------------------------------------------------------
# A segment is [a-z0-9_.-]{1,64}. Labels made of [a-z0-9_-] stay as they are; any other
# character becomes '.' and two hex digits per UTF-8 byte ("Alice" -> ".41lice"), and
# the empty label is "._" (not ".", which URLs would drop as a dot-segment). A '.' only
# ever starts an escape, so decoding is exact.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPED = re.compile(r"(?:[a-z0-9_-]|\.[0-9a-f]{2})+")


def encode_label(label: str) -> str:
    """A namespace label (any string) as one hivemem namespace segment."""
    if not isinstance(label, str):
        raise InvalidInput("namespace", "labels must be strings")
    if label == "":
        return "._"
    out = [c if c in _PLAIN else "".join(f".{b:02x}" for b in c.encode()) for c in label]
    segment = "".join(out)
    if len(segment) > 64:
        raise InvalidInput(
            "namespace", f"label {label!r} is longer than 64 characters once encoded"
        )
    return segment


def decode_label(segment: str) -> str:
    """The label a segment was encoded from (a segment hivemem wrote itself stays as is)."""
    if segment == "._":
        return ""
    if "." not in segment or not _ESCAPED.fullmatch(segment):
        return segment
    raw = bytearray()
    i = 0
    while i < len(segment):
        if segment[i] == ".":
            raw.append(int(segment[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.append(ord(segment[i]))
            i += 1
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return segment


def join_namespace(root: str, labels: Sequence[str]) -> str:
    """``root`` followed by the encoded labels, as one hivemem namespace."""
    parts = [root] if root else []
    parts += [encode_label(label) for label in labels]
    if not parts:
        raise InvalidInput("namespace", "must have at least one label")
    return "/".join(parts)


# -- metadata ----------------------------------------------------------------------------
_META_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")


def mirror_metadata(fields: dict[str, Any], skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The top-level scalar fields hivemem can filter on, copied as its metadata.

    The full object is stored losslessly elsewhere (in the item's value); this copy only
    lets the engine's own filters run on it. Nested objects and lists are left out.
    """
    out: dict[str, Any] = {}
    for name, value in fields.items():
        if name in skip or not isinstance(name, str) or not _META_NAME.fullmatch(name):
            continue
        if value is None or isinstance(value, str | bool | int):
            out[name] = value
        elif isinstance(value, float) and math.isfinite(value):
            out[name] = value
    return out


# -- calls ------------------------------------------------------------------------------
async def to_thread(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call in a worker thread (the async twins use this)."""
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


def list_all(
    target: Target, namespace: str, filter: dict[str, Any] | None = None, exact: bool = True
) -> Iterator[Item]:
    """Every live item under ``namespace`` (only in it when ``exact``), page by page."""
    cursor = None
    while True:
        page = target.list(namespace, filter=filter, limit=1000, cursor=cursor)
        for item in page.items:
            if not exact or item.namespace == namespace:
                yield item
        cursor = page.cursor
        if cursor is None:
            return


def get_many(target: Target, pairs: Sequence[tuple[str, str]]) -> list[Item | None]:
    """The current items at ``(namespace, key)`` pairs, read in one snapshot."""
    if not pairs:
        return []
    ops = [{"op": "get", "namespace": ns, "key": key} for ns, key in pairs]
    result = target.txn(success=ops)
    return [r.item for r in result.results]


def delete_present(target: Target, pairs: Sequence[tuple[str, str]]) -> int:
    """Delete those of the items that exist, in one revision; returns how many."""
    pairs = list(dict.fromkeys(pairs))
    for _ in range(5):
        present = [p for p, item in zip(pairs, get_many(target, pairs), strict=True) if item]
        if not present:
            return 0
        ops = [{"op": "delete", "namespace": ns, "key": key} for ns, key in present]
        try:
            target.txn(success=ops)
            return len(present)
        except NotFound:
            continue  # one went away between the read and the delete: read again
    raise NotFound("items kept disappearing while being deleted")


# -- conversations -------------------------------------------------------------------
_clock = threading.Lock()
_last = [0]


def message_keys(count: int) -> list[str]:
    """``count`` new keys that sort after every key this process made before.

    Nanoseconds since the epoch, made strictly increasing, zero-padded so that key
    order is write order; a batch gets consecutive keys.
    """
    with _clock:
        start = max(time.time_ns(), _last[0] + 1)
        _last[0] = start + count - 1
    return [f"{start + i:020d}" for i in range(count)]
