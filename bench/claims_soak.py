"""Task claims under fire: worker threads over HTTP, killed or stalled at random.

    python -m bench.claims_soak                       # 32 workers, 10,000 tasks
    python -m bench.claims_soak --workers 8 --tasks 300

Each worker claims the oldest open task (a claim of ``ttl`` seconds), writes its result
with ``fence=token`` and completes the task with it. At random a worker is *killed*
(it drops its claim without a word and comes back as a new worker) or *stalls* (it sleeps
past its claim's ttl, then tries to write and to complete with the old token). The run
checks what the issue asks: every task completed, no task's result accepted twice, every
stale-token write refused. ``tests/test_claims_soak.py`` runs it with reduced counts;
``make soak`` with the full ones. Exit status 1 if any check fails.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["Report", "run", "main"]

NS = "soak/tasks"
RESULTS = "soak/results"


@dataclass
class Report:
    """What a run did and whether the guarantees held."""

    workers: int
    tasks: int
    seconds: float = 0.0
    claims: int = 0
    kills: int = 0
    stalls: int = 0
    completed: int = 0
    stale_writes_refused: int = 0
    stale_writes_accepted: int = 0
    duplicate_completions: int = 0
    not_done: int = 0
    wrong_results: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.completed == self.tasks
            and self.stale_writes_accepted == 0
            and self.duplicate_completions == 0
            and self.not_done == 0
            and self.wrong_results == 0
            and not self.errors
        )


def run(
    client_factory: Any,
    workers: int,
    tasks: int,
    *,
    ttl: float = 0.5,
    p_kill: float = 0.03,
    p_stall: float = 0.03,
    seed: int = 8,
    timeout: float = 600.0,
    progress: bool = False,
) -> Report:
    """Run the workload against the server ``client_factory()`` clients talk to."""
    from hivemem.memory.errors import Conflict

    report = Report(workers, tasks)
    setup = client_factory()
    for start in range(0, tasks, 500):
        ops = [
            {"namespace": NS, "key": f"t{i:05d}", "value": {"n": i}}
            for i in range(start, min(tasks, start + 500))
        ]
        setup.put_many(ops)
    completions: Counter[str] = Counter()
    lock = threading.Lock()
    deadline = time.monotonic() + timeout

    def stale(c: Any, token: str, key: str) -> None:
        """A stalled worker's writes with its lost token: each must be refused."""
        for attempt in ("result", "complete"):
            try:
                if attempt == "result":
                    c.put(RESULTS, key, {"by": "stalled"}, fence=token)
                else:
                    c.complete(token, {"by": "stalled"})
            except Conflict:
                with lock:
                    report.stale_writes_refused += 1
            else:
                with lock:
                    report.stale_writes_accepted += 1

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        c = client_factory()
        while time.monotonic() < deadline:
            try:
                got = c.claim(NS, ttl=ttl)
            except Exception as exc:  # a bug or a dead server: record and stop
                with lock:
                    report.errors.append(f"claim: {type(exc).__name__}: {exc}")
                return
            if got is None:
                if setup_done():
                    return
                time.sleep(0.02)
                continue
            with lock:
                report.claims += 1
            roll, key = rng.random(), got.item.key
            if roll < p_kill:
                with lock:
                    report.kills += 1
                c.close()
                c = client_factory()  # a new process in its place; the claim just lapses
                continue
            if roll < p_kill + p_stall:
                with lock:
                    report.stalls += 1
                time.sleep(ttl * 1.5)
                stale(c, got.token, key)
                continue
            value = {"n": int(key[1:]), "claim": got.item.claim.revision}  # type: ignore[union-attr]
            try:
                c.put(RESULTS, key, value, fence=got.token)
                c.complete(got.token, value)
            except Conflict:
                continue  # lost it (the machine was slow): someone else will finish it
            with lock:
                completions[key] += 1
                report.completed += 1

    def setup_done() -> bool:
        with lock:
            return report.completed >= tasks

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(workers)]
    for t in threads:
        t.start()
    last = started
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        time.sleep(0.5)
        if progress and time.monotonic() - last >= 5:
            last = time.monotonic()
            with lock:
                print(
                    f"claims soak: {report.completed:,} of {tasks:,} tasks done, "
                    f"{report.claims:,} claims, {report.kills} kills, {report.stalls} stalls, "
                    f"{time.monotonic() - started:.0f} s",
                    file=sys.stderr,
                    flush=True,
                )
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic()))
    report.seconds = round(time.monotonic() - started, 2)
    report.duplicate_completions = sum(n - 1 for n in completions.values() if n > 1)
    _verify(setup, report, tasks)
    setup.close()
    return report


def _verify(c: Any, report: Report, tasks: int) -> None:
    """Every task done, with the result of the claim that completed it."""
    done, cursor = {}, None
    while True:
        page = c.list(NS, limit=1000, cursor=cursor)
        for item in page.items:
            done[item.key] = item
        cursor = page.cursor
        if cursor is None:
            break
    results = {}
    cursor = None
    while True:
        page = c.list(RESULTS, limit=1000, cursor=cursor)
        for item in page.items:
            results[item.key] = item.value
        cursor = page.cursor
        if cursor is None:
            break
    for i in range(tasks):
        item = done.get(f"t{i:05d}")
        if item is None or item.claim is None or item.claim.state != "done":
            report.not_done += 1
            continue
        if item.value != {"n": i, "claim": item.claim.revision}:
            report.wrong_results += 1
        elif results.get(item.key) != item.value:
            report.wrong_results += 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=32)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--ttl", type=float, default=1.0)
    parser.add_argument("--kill", type=float, default=0.03)
    parser.add_argument("--stall", type=float, default=0.03)
    args = parser.parse_args(argv)
    from tests.client.conftest import ADMIN_KEY, LiveServer

    with tempfile.TemporaryDirectory() as tmp:
        from hivemem.memory import Memory
        from tests.embedders import HashEmbedder

        memory = Memory.open(tmp, embedder=HashEmbedder(), reaper_interval=0.2, durability="normal")
        server = LiveServer(memory).start()
        try:
            report = run(
                lambda: server.client(ADMIN_KEY, timeout=60),
                args.workers,
                args.tasks,
                ttl=args.ttl,
                p_kill=args.kill,
                p_stall=args.stall,
                progress=True,
            )
        finally:
            server.stop()
            memory.close()
    print(json.dumps({**asdict(report), "ok": report.ok}, indent=2))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
