"""Vector indexes: derived views of the log, rebuilt or caught up from it."""

from hivemem.memory.index.base import VectorIndex

__all__ = ["VectorIndex"]
