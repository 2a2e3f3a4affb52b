"""The overload run: 100 concurrent writers against a real ``hivemem serve`` process.

    python -m bench.overload [--writers 100] [--seconds 30] [--limit N] [--quick]

1. Best rate: ``hivemem serve --max-inflight-writes 0`` (the real CLI, no write limit,
   with the model; ``/readyz`` awaited) on a fresh data directory; closed-loop writers
   at 1, 2, 4, … 64 connections, a few seconds each: the best accepted writes/s is the
   rate the server sustains at its best concurrency.
2. Start a second server on a fresh directory, with the write limit under test (its
   default unless ``--limit``).
3. Overload: ``writers`` connections for ``seconds``, each writing as fast as it is
   answered: a third supplied vectors, a third texts (embedded by the server), a third
   compare-and-swap creates (``if_version=0``, half with text). A shed write (503 +
   ``Retry-After``) waits ``Retry-After`` (plus up to a quarter, as the clients do)
   and goes on with a new write.
4. Every acknowledged write must be in ``/v1/export`` afterwards, at its version.

Goals (issue 6): p99 of all answers <= 1 s, accepted rate >= 80% of the best rate, no
5xx but the 503, nothing acknowledged missing. ``run(...)`` returns the figures as a
dict (for ``make soak``); the CLI prints them as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import pct, step

ROOT = Path(__file__).resolve().parent.parent
KEY = "hm_overload_bench_key_0123456789abcdef"
P99_GOAL = 1.0
RATE_GOAL = 0.8
DIM = 384
WORDS = (
    "deploy rollback incident pager database index cache latency quorum shard replica "
    "agent planner critic memory vector search budget token review merge conflict"
).split()


# -- a minimal keep-alive HTTP/1.1 client (cheap: the load shares 2 cores with the server)


class Conn:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            assert self.reader is not None and self.writer is not None
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            try:
                self.writer.write(head + body)
                await self.writer.drain()
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, dict[str, str], bytes]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int((await self.reader.readline()).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                body += chunk[:-2]
        else:
            body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, headers, body

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, OSError):
                pass
        self.reader = self.writer = None


# -- the server ------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``hivemem serve`` in a child process on a fresh data directory."""

    def __init__(self, limit: int | None, data_dir: str) -> None:
        self.port = _free_port()
        self.data_dir = data_dir
        self.log = tempfile.TemporaryFile()
        args = [sys.executable, "-m", "hivemem.api.cli", "serve", "--data", data_dir]
        args += ["--port", str(self.port), "--admin-key", KEY, "--log-level", "warning"]
        if limit is not None:
            args += ["--max-inflight-writes", str(limit)]
        env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self.log, stderr=self.log)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-3000:]

    async def ready(self, timeout: float = 300.0) -> float:
        """Seconds until ``/readyz`` is 200 (the model loaded)."""
        start = time.monotonic()
        conn = Conn(self.port)
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hivemem serve exited:\n{self.output()}")
            try:
                status, _, _ = await conn.request("GET", "/readyz")
                if status == 200:
                    await conn.close()
                    return time.monotonic() - start
            except OSError:
                pass
            if time.monotonic() - start > timeout:
                raise RuntimeError(f"not ready after {timeout:.0f}s:\n{self.output()}")
            await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


# -- the load --------------------------------------------------------------------------


@dataclass
class Tally:
    """What the writers saw."""

    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    acked: dict[tuple[str, str], int] = field(default_factory=dict)
    kinds: Counter[str] = field(default_factory=Counter)
    accepted_latencies: list[float] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.statuses[200]


def _write(writer: int, seq: int, rng: random.Random) -> tuple[str, str, str, bytes]:
    """One write of the mix: (kind, namespace, key, request path and body)."""
    ns = f"load/w{writer:03d}"
    key = f"k{seq:06d}"
    kind = ("vector", "text", "cas")[seq % 3]
    text = " ".join(rng.choices(WORDS, k=12)) + f" #{writer}-{seq}"
    body: dict[str, Any] = {"value": {"writer": writer, "seq": seq}}
    if kind == "vector" or (kind == "cas" and seq % 2):
        vec = np.random.default_rng(writer * 1_000_003 + seq).standard_normal(DIM)
        body["vector"] = [round(float(x), 5) for x in vec]
    else:
        body["text"] = text
    if kind == "cas":
        body["if_version"] = 0
    return kind, ns, key, json.dumps(body).encode()


async def _writer(
    port: int, writer: int, until: float, tally: Tally, shed_wait: bool, progress: list[int]
) -> None:
    conn = Conn(port)
    rng = random.Random(writer)
    seq = 0
    try:
        while time.monotonic() < until:
            kind, ns, key, body = _write(writer, seq, rng)
            seq += 1
            start = time.monotonic()
            try:
                status, headers, data = await conn.request("PUT", f"/v1/items/{ns}/{key}", body)
            except (OSError, asyncio.IncompleteReadError):
                tally.statuses[-1] += 1  # a dropped connection: counted, never "accepted"
                continue
            elapsed = time.monotonic() - start
            tally.latencies.append(elapsed)
            tally.statuses[status] += 1
            if status == 200:
                tally.acked[(ns, key)] = int(json.loads(data)["version"])
                tally.kinds[kind] += 1
                tally.accepted_latencies.append(elapsed)
                progress[0] += 1
            elif status == 503 and shed_wait:
                after = float(headers.get("retry-after", "1"))
                await asyncio.sleep(after * (1 + rng.random() / 4))
    finally:
        await conn.close()


async def _phase(
    port: int, writers: int, seconds: float, shed_wait: bool = True, label: str = "", first: int = 0
) -> tuple[Tally, float]:
    tally = Tally()
    progress = [0]
    start = time.monotonic()
    until = start + seconds

    async def report() -> None:
        while True:
            await asyncio.sleep(5)
            elapsed = time.monotonic() - start
            n = len(tally.latencies)
            p99 = pct(tally.latencies[-2000:], 99) if n else 0.0
            step(
                f"  {label}: {elapsed:4.0f}s  accepted {progress[0] / elapsed:6.1f}/s  "
                f"answers {n}  shed {tally.statuses[503]}  recent p99 {p99:.3f}s"
            )

    reporter = asyncio.create_task(report()) if label else None
    await asyncio.gather(
        *(_writer(port, first + w, until, tally, shed_wait, progress) for w in range(writers))
    )
    if reporter is not None:
        reporter.cancel()
    return tally, time.monotonic() - start


async def _present(port: int, acked: dict[tuple[str, str], int]) -> tuple[int, int]:
    """(acknowledged writes missing or at an older version, items exported)."""
    conn = Conn(port)
    status, _, body = await conn.request("GET", "/v1/export?prefix=load&vectors=false")
    await conn.close()
    if status != 200:
        raise RuntimeError(f"export answered {status}: {body[:300]!r}")
    stored: dict[tuple[str, str], int] = {}
    for line in body.splitlines():
        rec = json.loads(line)
        if rec.get("kind", "item") == "item" and "key" in rec:
            stored[(rec["namespace"], rec["key"])] = int(rec["version"])
    missing = sum(1 for k, v in acked.items() if stored.get(k, -1) < v)
    return missing, len(stored)


async def _metrics(port: int) -> dict[str, float]:
    conn = Conn(port)
    _, _, body = await conn.request("GET", "/metrics")
    await conn.close()
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(("hivemem_write_embed", "hivemem_writes_")):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


async def _best(levels: list[int], seconds: float) -> tuple[float, int, dict[int, float], float]:
    """The best accepted rate of a server without a write limit, over ``levels``."""
    data_dir = tempfile.mkdtemp(prefix="hivemem-overload-best-")
    server = Server(0, data_dir)
    try:
        step(f"overload: best rate: hivemem serve --max-inflight-writes 0 on {server.port}")
        ready = await server.ready()
        step(f"overload: ready after {ready:.1f}s (model loaded)")
        await _phase(server.port, 4, 2.0, first=900)  # warm the paths up
        best_rate, best_level, rates = 0.0, 0, {}
        first = 1000
        for level in levels:
            tally, elapsed = await _phase(server.port, level, seconds, first=first)
            first += level
            rate = tally.accepted / elapsed
            rates[level] = round(rate, 1)
            p99 = pct(tally.latencies, 99)
            step(f"overload: {level:3d} writers: {rate:6.1f} accepted/s, p99 {p99:.3f}s")
            if rate > best_rate:
                best_rate, best_level = rate, level
        return best_rate, best_level, rates, ready
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


async def _run(
    writers: int, seconds: float, limit: int | None, levels: list[int], best_seconds: float
) -> dict[str, Any]:
    best_rate, best_level, rates, _ = await _best(levels, best_seconds)
    data_dir = tempfile.mkdtemp(prefix="hivemem-overload-")
    server = Server(limit, data_dir)
    try:
        shown = "default" if limit is None else limit
        step(f"overload: hivemem serve on port {server.port} (limit {shown})")
        ready = await server.ready()
        step(f"overload: ready after {ready:.1f}s (model loaded)")
        await _phase(server.port, 4, 2.0, first=900)
        step(
            f"overload: best {best_rate:.1f} writes/s at {best_level} writers; "
            f"now {writers} writers for {seconds:.0f}s"
        )
        before = await _metrics(server.port)
        tally, elapsed = await _phase(
            server.port, writers, seconds, label=f"{writers} writers", first=0
        )
        after = await _metrics(server.port)
        acked = dict(tally.acked)
        missing, exported = await _present(server.port, acked)
        rate = tally.accepted / elapsed
        five_xx = sum(n for s, n in tally.statuses.items() if s >= 500 and s != 503)
        calls = after.get("hivemem_write_embed_calls_total", 0) - before.get(
            "hivemem_write_embed_calls_total", 0
        )
        texts = after.get("hivemem_write_embed_texts_total", 0) - before.get(
            "hivemem_write_embed_texts_total", 0
        )
        result = {
            "writers": writers,
            "seconds": round(elapsed, 1),
            "limit": int(after.get("hivemem_writes_in_flight_limit", -1)),
            "ready_seconds": round(ready, 1),
            "best_rate": round(best_rate, 1),
            "best_writers": best_level,
            "rates_by_writers": rates,
            "accepted_rate": round(rate, 1),
            "accepted_ratio": round(rate / best_rate, 3) if best_rate else 0.0,
            "answers": len(tally.latencies),
            "p50_s": round(pct(tally.latencies, 50), 4),
            "p99_s": round(pct(tally.latencies, 99), 4),
            "max_s": round(max(tally.latencies), 4),
            "accepted_p99_s": round(pct(tally.accepted_latencies, 99), 4),
            "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
            "accepted_by_kind": dict(tally.kinds),
            "shed": tally.statuses[503],
            "server_errors_other_than_503": five_xx,
            "dropped_connections": tally.statuses[-1],
            "acknowledged": len(acked),
            "missing": missing,
            "exported": exported,
            "embed_calls": int(calls),
            "embedded_texts": int(texts),
            "texts_per_call": round(texts / calls, 1) if calls else 0.0,
            "cpus": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
        result["goals"] = {
            "p99_le_1s": result["p99_s"] <= P99_GOAL,
            "accepted_ge_80pct_of_best": result["accepted_ratio"] >= RATE_GOAL,
            "no_5xx_but_503": five_xx == 0 and result["dropped_connections"] == 0,
            "every_ack_present": missing == 0,
        }
        return result
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def run(
    writers: int = 100,
    seconds: float = 30.0,
    limit: int | None = None,
    levels: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64),
    best_seconds: float = 6.0,
) -> dict[str, Any]:
    """Run the overload bench; returns its figures (``goals`` says which were met).

    ``limit`` is the server's ``--max-inflight-writes`` (None: its default).
    """
    return asyncio.run(_run(writers, seconds, limit, list(levels), best_seconds))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.overload", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--limit", type=int, default=None, help="--max-inflight-writes (default: the server's)"
    )
    parser.add_argument("--quick", action="store_true", help="10 s, fewer levels (a smoke run)")
    args = parser.parse_args(argv)
    if args.quick:
        result = run(args.writers, 10.0, args.limit, levels=(4, 16, 32), best_seconds=3.0)
    else:
        result = run(args.writers, args.seconds, args.limit)
    print(json.dumps(result, indent=2))
    return 0 if all(result["goals"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
