"""Semantic and metadata subscriptions: which changes of a watch concern its subscriber.

A ``Matcher`` is given to a ``Subscription``; the watch still reads every committed
revision in order (so ordering, whole transactions and resumption hold as for any
watch), and hands over only the changes that match:

- a put matches when its item passes the metadata ``filter`` and, for a semantic
  subscription, its vector's cosine similarity to the query is at least ``threshold``;
  the similarity travels as the change's ``score``;
- a delete or an expiry matches when the item's previous version matched (the
  subscriber saw it appear, it must see it go), with that version's score.

Similarity is the cosine of unit vectors (the index's inner product), in [-1, 1];
``DEFAULT_THRESHOLD`` suits all-MiniLM-L6-v2 with a short query: measured here, "deploy
incidents" scores 0.28-0.35 against notes on failed deploys and 0.02-0.12 against notes
on lunch, budgets or an offsite. Items without a vector never match a semantic
subscription.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from hivemem.memory.errors import InvalidInput
from hivemem.memory.log.base import Row, StateLog
from hivemem.memory.search import Cond, matches

__all__ = ["Matcher", "DEFAULT_THRESHOLD", "check_threshold"]

#: The default minimum cosine similarity of a semantic subscription.
DEFAULT_THRESHOLD = 0.25
_REMEMBERED = 100_000  # keys whose last match is kept; older ones are looked up again


def check_threshold(value: Any) -> float:
    """A similarity threshold: a number in [-1, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise InvalidInput("threshold", "must be a number from -1 to 1 (cosine similarity)")
    return float(value)


class Matcher:
    """Decides, change by change, what a filtered subscription delivers (and its score)."""

    def __init__(
        self,
        log: StateLog,
        conds: list[Cond],
        query: np.ndarray | None,
        threshold: float,
    ) -> None:
        self.log = log
        self.conds = conds
        self.query = query
        self.threshold = threshold
        # (namespace, key) -> (did its last version seen match, its score)
        self._last: dict[tuple[str, str], tuple[bool, float | None]] = {}

    def score(self, row: Row) -> tuple[bool, float | None]:
        """Whether ``row`` is delivered, and its similarity (None for a metadata-only match)."""
        k = (row.namespace, row.key)
        if row.live:
            hit, score = self._version(row)
            if len(self._last) >= _REMEMBERED:
                self._last.clear()
            self._last[k] = (hit, score)
            return hit, score
        if k in self._last:
            return self._last.pop(k)
        previous = self._previous(row)
        if previous is None:
            return False, None
        return self._version(previous)

    def _version(self, row: Row) -> tuple[bool, float | None]:
        if self.conds and not matches(self.conds, json.loads(row.metadata or "{}")):
            return False, None
        if self.query is None:
            return True, None
        if row.vector is None or len(row.vector) != 4 * self.query.size:
            return False, None
        score = float(np.dot(np.frombuffer(row.vector, dtype=np.float32), self.query))
        return score >= self.threshold, score

    def _previous(self, row: Row) -> Row | None:
        """The version a delete or expiry ended (read from history: it came before
        this subscription started, or was forgotten)."""
        if row.prev_version is None:
            return None
        for old in self.log.history(row.namespace, row.key):
            if old.version == row.prev_version and old.live:
                return old
        return None
