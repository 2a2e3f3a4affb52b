"""Cost per change of semantic subscriptions at 1, 100 and 1,000 subscribers.

Embedded store, supplied 384-d unit vectors, one put per revision. For each count N,
N subscriptions are opened live, ``changes`` puts are committed (the fan-out to N
queues is part of each commit), then every subscription drains its queue (the matching:
the metadata filter and the cosine to its query). The same is run with N plain
(unfiltered) watches as the baseline, interleaved, so the figures are the extra cost a
semantic subscriber adds to a change. Query vectors are random, so about 0.0001 of the
changes match each subscriber at the default threshold.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from bench.common import step

__all__ = ["run"]

DIM = 384


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _round(subscribers: int, changes: int, semantic: bool, seed: int) -> dict[str, float]:
    from hivemem.memory import Memory

    rng = np.random.default_rng(seed)
    mem = Memory.open(":memory:", embedder=None, reaper_interval=None, watch_queue=changes + 8)
    try:
        mem.put("bench/warm", "k", 0, vector=_unit(rng, 1)[0].tolist())
        queries = _unit(rng, subscribers)
        head = mem.revision
        subs = [
            mem.watch("bench", head, vector=q.tolist()) if semantic else mem.watch("bench", head)
            for q in queries
        ]
        for sub in subs:  # go live before the writes
            list(sub.iter(timeout=0))
        vectors = _unit(rng, changes)
        start = time.perf_counter()
        for i in range(changes):
            mem.put("bench/n", f"k{i}", i, vector=vectors[i].tolist())
        write = time.perf_counter() - start
        start = time.perf_counter()
        delivered = sum(len(list(sub.iter(timeout=0))) for sub in subs)
        drain = time.perf_counter() - start
        for sub in subs:
            sub.close()
    finally:
        mem.close()
    return {
        "commit_ms": 1000 * write / changes,
        "deliver_ms": 1000 * drain / changes,
        "delivered": delivered,
    }


def run(counts: tuple[int, ...] = (1, 100, 1000), changes: int = 200, rounds: int = 3) -> Any:
    """Per change: commit (with fan-out) and delivery (with matching), semantic vs plain."""
    points = []
    for n in counts:
        step(f"subscriptions: {n} subscribers")
        semantic, plain = [], []
        for r in range(rounds):  # interleaved, so machine noise hits both alike
            semantic.append(_round(n, changes, True, seed=r))
            plain.append(_round(n, changes, False, seed=r))

        def median(rows: list[dict[str, float]], name: str) -> float:
            return float(np.median([row[name] for row in rows]))

        points.append(
            {
                "subscribers": n,
                "changes": changes,
                "semantic_commit_ms": median(semantic, "commit_ms"),
                "semantic_deliver_ms": median(semantic, "deliver_ms"),
                "plain_commit_ms": median(plain, "commit_ms"),
                "plain_deliver_ms": median(plain, "deliver_ms"),
                "semantic_delivered": int(median(semantic, "delivered")),
                "plain_delivered": int(median(plain, "delivered")),
                "per_subscriber_us": 1000 * median(semantic, "deliver_ms") / n,
            }
        )
    return {"points": points}


def report(r: dict[str, Any]) -> list[str]:
    """RESULTS.md lines for this section."""
    lines = [
        "## Semantic subscriptions: cost per change",
        "",
        "Embedded, supplied 384-d vectors, one put per revision; each change is offered to",
        "every subscriber (commit, with fan-out) and matched by each (delivery: metadata",
        "filter and cosine to its query). Plain watches of the same prefix are the baseline.",
        "",
        "| subscribers | commit, semantic | commit, plain | delivery, semantic | "
        "delivery, plain | matching per subscriber | delivered (semantic / plain) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for p in r["points"]:
        lines.append(
            f"| {p['subscribers']:,} | {p['semantic_commit_ms']:.2f} ms | "
            f"{p['plain_commit_ms']:.2f} ms | {p['semantic_deliver_ms']:.2f} ms | "
            f"{p['plain_deliver_ms']:.2f} ms | {p['per_subscriber_us']:.1f} µs | "
            f"{p['semantic_delivered']:,} / {p['plain_delivered']:,} |"
        )
    lines.append("")
    return lines
