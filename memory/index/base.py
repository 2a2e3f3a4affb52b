"""The VectorIndex protocol: upsert, delete, search, and the revision applied."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

import numpy as np

__all__ = ["VectorIndex"]


class VectorIndex(Protocol):
    """A vector index partitioned by namespace, keyed by change id.

    ``applied_revision`` is the last log revision whose changes it holds; the engine
    catches it up from the log (or rebuilds it) whenever it lags.
    """

    dim: int | None
    applied_revision: int

    def apply(
        self,
        revision: int,
        adds: Sequence[tuple[int, str, np.ndarray]],
        removes: Collection[int],
    ) -> None:
        """Remove ``removes``, add ``(id, namespace, vector)``, record ``revision``."""
        ...

    def search(
        self,
        query: np.ndarray,
        scopes: Sequence[str],
        k: int,
        allowed: Collection[int] | None = None,
    ) -> list[tuple[int, float]]:
        """Top-k ``(id, score)`` among vectors in the scopes (and in ``allowed``)."""
        ...

    def score(self, query: np.ndarray, ids: Collection[int]) -> dict[int, float]:
        """Exact similarity of ``query`` to each held id (missing ids are left out)."""
        ...

    def ids(self) -> set[int]:
        """Every id held (for verification)."""
        ...

    def reset(self) -> None:
        """Drop everything (before a rebuild)."""
        ...

    def save(self) -> None:
        """Persist atomically, if the index is persistent."""
        ...

    def load(self) -> bool:
        """Load the persisted state; False if absent or corrupt (then rebuild)."""
        ...

    def close(self) -> None:
        """Stop background work and release connections (after the last ``save``)."""
        ...

    def __len__(self) -> int: ...
