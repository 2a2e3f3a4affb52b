"""Shared benchmark helpers: progress lines, interleaved timing, test data."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"


class Progress:
    """One self-rewriting stderr line: label, count, rate, elapsed."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self.start = self.last = time.monotonic()
        self.tty = sys.stderr.isatty()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= (0.2 if self.tty else 5.0) or self.done >= self.total:
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            end = "\r" if self.tty and self.done < self.total else "\n"
            sys.stderr.write(
                f"  {self.label}: {self.done}/{self.total} ({rate:,.0f}/s, "
                f"{now - self.start:.1f}s){end}"
            )
            sys.stderr.flush()


def step(message: str) -> None:
    """Announce a benchmark step."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


def pct(samples: Sequence[float], p: float) -> float:
    """The p-th percentile of ``samples``."""
    return float(np.percentile(np.asarray(samples), p))


def interleaved(
    subjects: dict[str, Callable[[int], object]],
    n: int,
    rounds: int = 10,
    label: str = "queries",
) -> dict[str, list[float]]:
    """Time ``fn(i)`` for i in range(n) for each subject, alternating subjects in rounds.

    Alternating cancels drift (another process, thermal state) between the baseline and
    the subject; returns seconds per call.
    """
    out: dict[str, list[float]] = {name: [] for name in subjects}
    progress = Progress(label, n * len(subjects))
    per_round = max(1, n // rounds)
    for start in range(0, n, per_round):
        for name, fn in subjects.items():
            for i in range(start, min(n, start + per_round)):
                t0 = time.perf_counter()
                fn(i)
                out[name].append(time.perf_counter() - t0)
            progress.advance(min(n, start + per_round) - start)
    return out


def clustered_vectors(n: int, dim: int = 384, seed: int = 0, clusters: int = 256) -> np.ndarray:
    """Unit vectors drawn around random centres (closer to real embeddings than noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        stop = min(n, start + 100_000)
        pick = rng.integers(0, clusters, stop - start)
        block = centres[pick] + 0.6 * rng.standard_normal((stop - start, dim)).astype(np.float32)
        out[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def cached_embeddings(name: str, texts: list[str], embed: Callable[[list[str]], np.ndarray]):  # type: ignore[no-untyped-def]
    """Embed ``texts`` once and keep the result in bench/.cache (keyed by content)."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{name}-{digest}.npy"
    if path.exists():
        return np.load(path)
    CACHE.mkdir(exist_ok=True)
    progress = Progress(f"embedding {name}", len(texts))
    parts = []
    for start in range(0, len(texts), 256):
        parts.append(embed(texts[start : start + 256]))
        progress.advance(len(parts[-1]))
    vectors = np.vstack(parts).astype(np.float32)
    np.save(path, vectors)
    return vectors


def fresh_dir(name: str) -> str:
    """An empty scratch directory under the system temp dir."""
    import tempfile

    return tempfile.mkdtemp(prefix=f"hivemem-bench-{name}-", dir=os.environ.get("TMPDIR"))


def local_postgres_url() -> str | None:
    """The PostgreSQL the tests and soaks use: ``HIVEMEM_TEST_POSTGRES``, else the local
    server on 127.0.0.1:5432 (database ``test``) when it answers, else None."""
    url = os.environ.get("HIVEMEM_TEST_POSTGRES")
    if url:
        return url
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return "postgresql://postgres@127.0.0.1:5432/test"
    except OSError:
        return None
