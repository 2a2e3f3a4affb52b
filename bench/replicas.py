"""Scale-out figures (``--only replicas``): PostgreSQL against SQLite for writes, and how
fast a commit on one replica reaches a watcher on another (LISTEN/NOTIFY wake-up)."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from typing import Any

import numpy as np

from bench.common import clustered_vectors, fresh_dir, interleaved, pct, step
from hivemem.memory import Memory

Result = dict[str, Any]
PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _pg_log(schema: str) -> Any:
    from hivemem.memory.log.postgres import PostgresLog

    return PostgresLog(PG_URL, schema=schema, fresh=True, durability="full")


def run(batches: int = 10, singles: int = 200, deliveries: int = 200) -> Result:
    """Write rate and single-write latency on both logs, then cross-replica delivery."""
    try:
        import psycopg

        psycopg.connect(PG_URL, connect_timeout=2).close()
    except Exception as exc:  # no PostgreSQL here: say so in the results
        return {"skipped": f"no PostgreSQL at {PG_URL}: {exc}"}
    out: Result = {}
    out.update(_writes(batches, singles))
    out.update(_delivery(deliveries))
    return out


def _writes(batches: int, singles: int) -> Result:
    step("replicas: PostgreSQL vs SQLite writes (durability full, supplied vectors)")
    vectors = clustered_vectors(batches * 1000 + singles * 2, seed=7)
    path = fresh_dir("sqlite-writes")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    stores = {
        "sqlite": Memory.open(path, embedder=None, reaper_interval=None),
        "postgres": Memory.open(
            fresh_dir("pg-writes"), embedder=None, reaper_interval=None, log=_pg_log(schema)
        ),
    }

    def batch(mem: Memory, b: int) -> None:
        mem.put_many(
            [
                {
                    "namespace": "bench/w",
                    "key": f"b{b}-{i}",
                    "value": i,
                    "vector": vectors[b * 1000 + i],
                }
                for i in range(1000)
            ]
        )

    t = interleaved(
        {name: (lambda b, m=m: batch(m, b)) for name, m in stores.items()},
        batches,
        rounds=batches,
        label="batches of 1,000",
    )
    out: Result = {f"{n}_batch_items_per_s": 1000 / float(np.median(v)) for n, v in t.items()}
    base = batches * 1000
    single = interleaved(
        {
            name: (lambda i, m=m: m.put("bench/s", f"s{i}", i, vector=vectors[base + i]))
            for name, m in stores.items()
        },
        singles,
        label="single puts",
    )
    for name, samples in single.items():
        out[f"{name}_put_p50_ms"] = pct(samples, 50) * 1e3
        out[f"{name}_put_p99_ms"] = pct(samples, 99) * 1e3
    for mem in stores.values():
        mem.close()
    shutil.rmtree(path, ignore_errors=True)
    _pg_log(schema).drop()
    return out


def _delivery(n: int) -> Result:
    """From the acknowledgement of a commit on replica A until a watcher on replica B
    yields it (no polling: B's reaper is off, so only the NOTIFY wakes it)."""
    step("replicas: commit on A -> watcher on B")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    a = Memory.open(fresh_dir("ra"), embedder=None, reaper_interval=None, log=_pg_log(schema))
    from hivemem.memory.log.postgres import PostgresLog

    b = Memory.open(
        fresh_dir("rb"), embedder=None, reaper_interval=None, log=PostgresLog(PG_URL, schema=schema)
    )
    sub = b.watch(["bench"], since=0)
    seen: dict[int, float] = {}
    done = threading.Event()

    def watch() -> None:
        for change in sub:
            seen[change.revision] = time.perf_counter()
            if len(seen) == n:
                done.set()
                return

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    sent: dict[int, float] = {}
    for i in range(n):
        item = a.put("bench/d", f"d{i}", i)
        sent[item.revision] = time.perf_counter()  # acknowledged to the writer
        time.sleep(0.01)
    done.wait(30)
    sub.close()
    # B may yield a change before A's put has returned: that counts as 0 ms
    lat = [max(0.0, seen[r] - t) * 1e3 for r, t in sent.items() if r in seen]
    out = {
        "delivery_p50_ms": pct(lat, 50),
        "delivery_p99_ms": pct(lat, 99),
        "delivered": len(lat),
        "sent": n,
    }
    a.close()
    b.close()
    PostgresLog(PG_URL, schema=schema).drop()
    return out
