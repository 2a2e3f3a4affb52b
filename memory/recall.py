"""Recall: the best hits of a search packed into one prompt-ready context under a budget.

The candidates are the top ``k`` of an ordinary search. In rank order each is taken if
it is not a near-duplicate of one already taken (cosine of their stored vectors at or
above ``DUPLICATE_COSINE``; items without vectors: the same normalised text) and if its
entry still fits the token budget; a hit that does not fit is skipped and ``truncated``
says so. The chosen items are then grouped by thread, each group in conversation order,
groups ordered by their best hit, and rendered with a citation per item.

Tokens are counted with the embedding model's own tokenizer (WordPiece, offline); the
library takes any ``count_tokens`` function instead. Each entry is counted once. The
model's tokenizer splits on whitespace before anything else, so its count of the
context is exactly the sum of its counts of the lines (the separators are line breaks):
with it the context is not counted again. Any other counter is assumed to be
non-additive: each line is charged one token more, and the rendered context is counted
and trimmed until it fits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence

import numpy as np

from hivemem.memory.models import Citation, Hit, Recall, RecallItem

__all__ = ["DUPLICATE_COSINE", "pack", "entry_text", "default_counter"]

#: Two items at least this similar (cosine of their embeddings) say the same thing:
#: only the better ranked one is kept. MiniLM puts paraphrases of one sentence above
#: 0.9 and distinct turns of one conversation rarely above 0.8.
DUPLICATE_COSINE = 0.95

_SPACE = re.compile(r"\s+")


def default_counter() -> Callable[[str], int]:
    """The model's own tokenizer, offline (WordPiece of all-MiniLM-L6-v2)."""
    from hivemem.memory.embed_onnx import count_tokens

    return count_tokens


def entry_text(hit: Hit) -> str:
    """One item as the context shows it: its citation, then its text (or JSON value)."""
    item = hit.item
    body = item.text if item.text else json.dumps(item.value, ensure_ascii=False)
    return f"[{item.namespace}/{item.key} v{item.version} r{item.revision}] {body}"


def _header(namespace: str, thread: str) -> str:
    return f"## thread {thread} in {namespace}"


def _is_duplicate(
    hit: Hit, vec: np.ndarray | None, chosen: list[tuple[Hit, np.ndarray | None]]
) -> bool:
    norm = _SPACE.sub(" ", (hit.item.text or "").strip().lower())
    for other, ovec in chosen:
        if vec is not None and ovec is not None and len(vec) == len(ovec):
            if float(vec @ ovec) >= DUPLICATE_COSINE:
                return True
        elif norm and norm == _SPACE.sub(" ", (other.item.text or "").strip().lower()):
            return True
    return False


class _Counts:
    """A counter with each distinct text counted once."""

    def __init__(self, count: Callable[[str], int]) -> None:
        self.count = count
        self.additive = _is_models_own(count)
        self._memo: dict[str, int] = {}

    def __call__(self, text: str) -> int:
        found = self._memo.get(text)
        if found is None:
            found = self._memo[text] = int(self.count(text))
        return found


def _is_models_own(count: Callable[[str], int]) -> bool:
    from hivemem.memory.embed_onnx import count_tokens

    return count is count_tokens


def pack(
    hits: Sequence[Hit],
    vectors: dict[tuple[str, str, int], np.ndarray],
    budget: int,
    count: Callable[[str], int],
) -> Recall:
    """Choose, group and render ``hits`` (best first) within ``budget`` tokens."""
    counts = _Counts(count)
    extra = 0 if counts.additive else 1  # a line break, for a counter that may count it
    chosen: list[tuple[Hit, np.ndarray | None]] = []
    truncated = False
    used_headers: set[tuple[str, str]] = set()
    spent = 0
    for hit in hits:
        item = hit.item
        vec = vectors.get((item.namespace, item.key, item.version))
        if _is_duplicate(hit, vec, chosen):
            continue
        cost = counts(entry_text(hit)) + extra
        group = (item.namespace, item.thread) if item.thread is not None else None
        if group is not None and group not in used_headers:
            cost += counts(_header(*group)) + 2 * extra
        if spent + cost > budget:
            truncated = True
            continue
        spent += cost
        chosen.append((hit, vec))
        if group is not None:
            used_headers.add(group)
    context = _render([h for h, _ in chosen])
    if counts.additive:
        tokens = spent
    else:
        tokens = count(context) if context else 0
        while context and tokens > budget:  # a counter that is not additive
            chosen.pop()
            truncated = True
            context = _render([h for h, _ in chosen])
            tokens = count(context) if context else 0
    return Recall(
        context=context,
        items=[_recall_item(h, counts) for h in _ordered([h for h, _ in chosen])],
        tokens=tokens,
        truncated=truncated,
    )


def _ordered(hits: list[Hit]) -> list[Hit]:
    """Threads together in conversation order; groups by their best hit."""
    groups: dict[tuple[str, str] | int, list[Hit]] = {}
    for i, hit in enumerate(hits):
        item = hit.item
        key: tuple[str, str] | int = (item.namespace, item.thread) if item.thread else i
        groups.setdefault(key, []).append(hit)
    out: list[Hit] = []
    for members in groups.values():
        out += sorted(members, key=lambda h: (h.item.thread_pos or 0, h.item.key))
    return out


def _render(hits: list[Hit]) -> str:
    blocks: list[str] = []
    current: tuple[str, str] | None = None
    lines: list[str] = []
    for hit in _ordered(hits):
        item = hit.item
        group = (item.namespace, item.thread) if item.thread else None
        if group != current or group is None:
            if lines:
                blocks.append("\n".join(lines))
            lines = [_header(*group)] if group is not None else []
            current = group
        lines.append(entry_text(hit))
    if lines:
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _recall_item(hit: Hit, count: Callable[[str], int]) -> RecallItem:
    item = hit.item
    citation = Citation(
        namespace=item.namespace,
        key=item.key,
        version=item.version,
        revision=item.revision,
        author=item.author,
        thread=item.thread,
    )
    return RecallItem(item=item, score=hit.score, citation=citation, tokens=count(entry_text(hit)))
