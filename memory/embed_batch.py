"""Micro-batching: texts from concurrent writes go to the model together.

The model embeds 150-300 texts a second in batches but about 45 one at a time, and a
server runs many writes at once, each with a text or two. ``BatchingEmbedder`` puts
every ``embed`` call on a queue; one worker thread takes whatever has queued up (waiting
up to ``max_wait`` seconds for more while the batch is under ``max_batch`` texts),
embeds it in one model call and hands each caller its rows through a future. While the
model is busy the next batch gathers by itself, so a lone write waits at most
``max_wait`` longer and a crowd of them shares model calls.

The engine calls it before the write transaction, never inside it. Batches go to the
wrapped embedder's ``embed_reference`` when it has one (MiniLM: torch for every batch
size, not the int8 export it uses for small query batches, which can differ by a
cosine of about 0.01), so a stored vector equals the one-at-a-time vector within float
rounding however many writes shared its batch.
"""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Any

import numpy as np

from hivemem.memory.embed import Embedder

__all__ = ["BatchingEmbedder"]

_Request = tuple[list[str], "Future[np.ndarray]"]


class BatchingEmbedder:
    """An ``Embedder`` that embeds concurrent calls together through ``inner``."""

    def __init__(self, inner: Embedder, max_batch: int = 16, max_wait: float = 0.002) -> None:
        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.max_batch = max_batch
        self.max_wait = max_wait
        self._embed = getattr(inner, "embed_reference", inner.embed)
        #: Model calls made and texts embedded (for tests and the bench).
        self.calls = 0
        self.texts = 0
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._worker: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def loaded(self) -> bool:
        """Whether the wrapped model has loaded (see ``Memory.ready``)."""
        return bool(getattr(self.inner, "loaded", True))

    def warm_up(self) -> None:
        """Load the wrapped model now."""
        warm = getattr(self.inner, "warm_up", None)
        if callable(warm):
            warm()
        else:
            self.inner.embed(["warm up"])

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in a batch shared with whatever other calls are waiting."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self._closed or len(texts) >= self.max_batch:
            return self._direct(list(texts))
        future: Future[np.ndarray] = Future()
        self._start()
        self._queue.put((list(texts), future))
        return future.result()

    def _direct(self, texts: list[str]) -> np.ndarray:
        out = self._embed(texts)
        with self._lock:
            self.calls += 1
            self.texts += len(texts)
        return out

    def _start(self) -> None:
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(
                    target=self._run, name="hivemem-embed-batch", daemon=True
                )
                self._worker.start()

    def _gather(self, first: _Request) -> tuple[list[_Request], bool]:
        """``first`` and what else queues within ``max_wait``, up to ``max_batch`` texts;
        and whether ``close`` asked the worker to stop."""
        batch, size = [first], len(first[0])
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch:
            left = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
            size += len(nxt[0])
        return batch, False

    def _run(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is None:
                break
            batch, stop = self._gather(first)
            self._answer(batch)
        while True:  # calls that raced ``close``
            try:
                late = self._queue.get_nowait()
            except queue.Empty:
                return
            if late is not None:
                self._answer([late])

    def _answer(self, batch: list[_Request]) -> None:
        texts = [t for req, _ in batch for t in req]
        try:
            vectors = self._direct(texts)
        except BaseException as exc:  # every caller of the batch gets the error
            for _, future in batch:
                future.set_exception(exc)
            return
        at = 0
        for req, future in batch:
            future.set_result(vectors[at : at + len(req)])
            at += len(req)

    def close(self) -> None:
        """Stop the worker after the batches already queued."""
        self._closed = True
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)

    def __getattr__(self, name: str) -> Any:
        # Attributes of the wrapped embedder (batch_size, …) read through.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)
