"""Stored rows as public models: items and changes, built without re-validation.

Rendering is total: whatever is in the log renders. Everything written now passed
``memory.validation``; rows an earlier release let through (an expiry beyond the
calendar, a lone surrogate in metadata, a value nested past what a serializer
handles) render with the offending part made representable instead of failing the
read, the list, the export or the watch stream that meets them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from hivemem.memory.log.base import Row
from hivemem.memory.models import Change, Item, Proposal, TaskClaim
from hivemem.memory.validation import json_text_depth

__all__ = ["row_to_item", "row_to_change", "build_model", "dt", "render_json", "RENDER_DEPTH"]

_M = TypeVar("_M", bound=BaseModel)
_MISSING = object()
_LAST = datetime.max.replace(tzinfo=UTC)
#: Deeper parts of a legacy value render as their JSON text (serializers stop near 255).
RENDER_DEPTH = 192
log = logging.getLogger("hivemem.rows")


def dt(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime (clamped to the calendar's last instant)."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, ValueError, OSError):
        return _LAST


def render_json(text: str) -> Any:
    """Stored JSON text as a value that always serializes back."""
    suspicious = "\\ud" in text or "\\uD" in text
    if not suspicious and json_text_depth(text, RENDER_DEPTH) <= RENDER_DEPTH:
        return json.loads(text)
    try:
        value = json.loads(text)
    except RecursionError:
        log.warning("event=render_legacy reason=too_deep chars=%d", len(text))
        return text
    return _representable(value, 0)


def _representable(node: Any, depth: int) -> Any:
    if isinstance(node, str):
        if node.isascii():
            return node
        # a lone surrogate becomes U+FFFD; everything else passes through unchanged
        return node.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(node, dict | list) and depth >= RENDER_DEPTH:
        return json.dumps(node, ensure_ascii=True)
    if isinstance(node, dict):
        return {_representable(k, depth): _representable(v, depth + 1) for k, v in node.items()}
    if isinstance(node, list):
        return [_representable(v, depth + 1) for v in node]
    return node


def row_to_item(row: Row, value: Any = _MISSING) -> Item:
    """Build the public item of one stored row (already valid: no re-validation).

    ``value``, when given, is the Python value the row's JSON was made from, saving a
    decode; only immutable values are passed this way, so nothing is shared.
    """
    if value is _MISSING:
        value = render_json(row.value) if row.value is not None else None
    meta = row.metadata
    return build_model(
        Item,
        namespace=row.namespace,
        key=row.key,
        value=value,
        text=row.text,
        metadata=render_json(meta) if meta and meta != "{}" else {},
        version=row.version,
        revision=row.revision,
        author=row.author,
        created_at=dt(row.created_at),
        updated_at=dt(row.updated_at),
        expires_at=dt(row.expires_at) if row.expires_at is not None else None,
        deleted=not row.live,
        lease=row.lease if row.live else None,
        claim=_claim(row.claim) if row.claim and row.live else None,
        thread=row.thread,
        thread_pos=row.thread_pos,
    )


_CLAIM_FIELDS = ("state", "attempts", "holder", "revision", "lease", "max_attempts")


def _claim(raw: str) -> TaskClaim:
    stored = json.loads(raw)
    return build_model(TaskClaim, **{name: stored.get(name) for name in _CLAIM_FIELDS})


def row_to_change(row: Row) -> Change:
    """Build the public change of one stored row (an item's, or a proposal entry)."""
    if row.op in ("propose", "review"):
        proposal = Proposal.model_validate_json(row.info or "{}")
        return build_model(
            Change,
            revision=row.revision,
            op=row.op,
            namespace=proposal.namespace,
            key=proposal.key,
            version=proposal.base_version,
            prev_version=None,
            item=None,
            author=row.author,
            time=dt(row.updated_at),
            reason=None,
            score=None,
            proposal=proposal,
        )
    return build_model(
        Change,
        revision=row.revision,
        op=row.op,
        namespace=row.namespace,
        key=row.key,
        version=row.version,
        prev_version=row.prev_version,
        item=row_to_item(row) if row.live else None,
        author=row.author,
        time=dt(row.updated_at),
        reason=json.loads(row.info).get("reason") if row.info else None,
        score=None,
        proposal=None,
        ops=json.loads(row.ops) if row.ops else None,
    )


def build_model(cls: type[_M], **values: Any) -> _M:
    """Instantiate a model from values known to be valid and complete.

    ``model_construct`` re-derives defaults and the fields set on every call; rows from
    the log already carry every field, and this path runs once per returned item.
    """
    obj: _M = cls.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", set(values))
    object.__setattr__(obj, "__pydantic_extra__", None)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj
