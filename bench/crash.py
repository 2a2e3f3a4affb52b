"""SIGKILL the real server process under writers, restart it, count what survived.

``run(kills, backend)`` starts ``hivemem serve`` (a temporary data directory, a free
port; ``backend="postgres"`` puts the log in a fresh PostgreSQL schema), runs four
writers over HTTP — compare-and-swap increments, batches, transactions and plain
puts, all with supplied vectors so no request waits for the model — and SIGKILLs the
server ``kills`` times at random moments, restarting it each time. Then, with the
server up once more: every acknowledged write is in its item's history, the CAS
counter has lost no increment, and the log's revisions run 1..head without a gap.

Used by tests/test_crash_server.py (5 kills, ``make test``) and bench/soak.py
(50 kills on each backend, ``make soak``).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from hivemem.memory.client import Client
from hivemem.memory.errors import Conflict, HivememError, NotFound
from hivemem.memory.models import Item, Proposal

ROOT = Path(__file__).resolve().parent.parent
ADMIN_KEY = "crash-admin-key-0123456789abcdef"
DIM = 384  # the default embedder's: vectors are supplied, the model is never needed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def hivemem_command() -> list[str]:
    """``hivemem`` as installed next to this interpreter (the console script)."""
    script = Path(sys.executable).with_name("hivemem")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from hivemem.api.cli import main; raise SystemExit(main())"]


class Server:
    """One ``hivemem serve`` process over ``data`` (and ``log_url``), restartable."""

    def __init__(self, data: str, port: int, log_url: str | None = None) -> None:
        self.data, self.port, self.log_url = data, port, log_url
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(os.path.join(os.path.dirname(data), f"server-{port}.log"), "ab")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> float:
        """Start and wait until ``/healthz`` answers; returns the seconds it took."""
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        env.pop("HIVEMEM_LOG_URL", None)
        if self.log_url:
            env["HIVEMEM_LOG_URL"] = self.log_url
        cmd = hivemem_command() + [
            "serve", "--data", self.data, "--port", str(self.port),
            "--admin-key", ADMIN_KEY, "--durability", "full", "--log-level", "warning",
        ]  # fmt: skip
        t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=self.log, cwd=ROOT)
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return time.monotonic() - t0
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.monotonic() - t0 > timeout:
                self.kill()
                self.log.flush()
                tail = Path(self.log.name).read_bytes()[-3000:].decode(errors="replace")
                raise RuntimeError(f"hivemem serve did not start:\n{tail}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler, no flush, no checkpoint."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def close(self) -> None:
        self.kill()
        self.log.close()


@dataclass
class Acks:
    """Acknowledged writes: (namespace, key) -> {(revision, version)}."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    items: dict[tuple[str, str], set[tuple[int, int]]] = field(default_factory=dict)
    count: int = 0
    cas: int = 0
    errors: int = 0
    unexpected: list[str] = field(default_factory=list)

    def add(self, namespace: str, key: str, revision: int, version: int) -> None:
        with self.lock:
            self.items.setdefault((namespace, key), set()).add((revision, version))
            self.count += 1


def _vector(rng: random.Random) -> list[float]:
    return [rng.gauss(0.0, 1.0) for _ in range(DIM)]


def _writer(kind: str, url: str, acks: Acks, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    client = Client(url, api_key=ADMIN_KEY, retries=0, timeout=10)
    n = 0
    try:
        while not stop.is_set():
            n += 1
            try:
                _one_write(kind, client, acks, rng, n)
            except (Conflict, NotFound):  # lost a race / deleted what was not there
                continue
            except (HivememError, httpx.HTTPError, OSError) as exc:
                with acks.lock:
                    acks.errors += 1
                    if getattr(exc, "status", 503) < 500 and not isinstance(
                        exc, httpx.HTTPError | OSError
                    ):
                        acks.unexpected.append(f"{kind}: {type(exc).__name__}: {exc}")
                time.sleep(0.02)  # the server is down (or restarting): try again soon
    finally:
        client.close()


def cas_increment(client: Client, namespace: str, key: str, **options: Any) -> Item | Proposal:
    """One read-compare-and-swap increment of an integer counter (created at 0 when
    absent); raises ``Conflict`` when another writer got there first."""
    try:
        current = client.get(namespace, key)
        value, version = current.value, current.version
    except HivememError as exc:
        if getattr(exc, "status", 0) != 404:
            raise
        value, version = -1, 0
    return client.put(namespace, key, value + 1, if_version=version, **options)


def _one_write(kind: str, client: Client, acks: Acks, rng: random.Random, n: int) -> None:
    if kind == "cas":
        item = cas_increment(client, "crash/cas", "counter", vector=_vector(rng))
        acks.add(item.namespace, item.key, item.revision, item.version)  # type: ignore[union-attr]
        with acks.lock:
            acks.cas += 1
    elif kind == "batch":
        ops = [
            {
                "namespace": "crash/batch",
                "key": f"b{rng.randrange(200)}",
                "value": {"n": n, "i": i},
                "vector": _vector(rng),
            }
            for i in range(rng.randrange(1, 12))
        ]
        for item in client.put_many(ops):
            acks.add(item.namespace, item.key, item.revision, item.version)
    elif kind == "txn":
        key = f"t{rng.randrange(20)}"
        try:
            version = client.get("crash/txn", key).version
        except HivememError as exc:
            if getattr(exc, "status", 0) != 404:
                raise
            version = 0
        result = client.txn(
            compare=[{"namespace": "crash/txn", "key": key, "target": "version", "value": version}],
            success=[
                {
                    "op": "put",
                    "namespace": "crash/txn",
                    "key": key,
                    "value": n,
                    "vector": _vector(rng),
                },
                {
                    "op": "put",
                    "namespace": "crash/txn-log",
                    "key": f"{key}-{version + 1}",
                    "value": n,
                    "vector": _vector(rng),
                },
            ],  # fmt: skip
        )
        if result.succeeded:
            for r in result.results:
                if r.item is not None:
                    acks.add(r.namespace, r.key, r.item.revision, r.item.version)
    else:  # plain puts and a few deletes
        key = f"p{rng.randrange(100)}"
        if rng.random() < 0.1:
            item = client.delete("crash/put", key)
        else:
            item = client.put("crash/put", key, {"n": n}, vector=_vector(rng))
        acks.add(item.namespace, item.key, item.revision, item.version)  # type: ignore[union-attr]


def _log_revisions(data: str, log_url: str | None) -> tuple[int, list[int]]:
    """(head, distinct revisions of the log), read from the log itself."""
    if log_url:
        from hivemem.memory.log.postgres import PostgresLog

        base, _, query = log_url.partition("?schema=")
        log: Any = PostgresLog(base, schema=query)
    else:
        from hivemem.memory.log.sqlite import SQLiteLog

        log = SQLiteLog(os.path.join(data, "log.db"))
    try:
        head = log.head()
        return head, sorted({r.revision for r in log.changes_since(0, 10**9)})
    finally:
        log.close()


def run(
    kills: int,
    backend: str = "sqlite",
    *,
    postgres_url: str | None = None,
    window: tuple[float, float] = (0.4, 1.5),
    seed: int = 6,
    progress: Callable[[int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Kill the server ``kills`` times under four writers; return the figures."""
    rng = random.Random(seed)
    base = tempfile.mkdtemp(prefix=f"hivemem-crash-{backend}-", dir=os.environ.get("TMPDIR"))
    data = os.path.join(base, "data")
    log_url = None
    schema = None
    if backend == "postgres":
        if postgres_url is None:
            raise ValueError("backend 'postgres' needs postgres_url")
        schema = f"crash_{uuid.uuid4().hex[:10]}"
        log_url = f"{postgres_url}?schema={schema}"
    server = Server(data, free_port(), log_url)
    acks = Acks()
    stop = threading.Event()
    starts: list[float] = []
    writers: list[threading.Thread] = []
    try:
        starts.append(server.start())
        writers = [
            threading.Thread(target=_writer, args=(kind, server.url, acks, stop, seed * 10 + i))
            for i, kind in enumerate(("cas", "batch", "txn", "put"))
        ]
        for t in writers:
            t.start()
        for k in range(kills):
            before = acks.count
            deadline = time.monotonic() + rng.uniform(*window)
            while time.monotonic() < deadline or acks.count == before:  # some acks per life
                time.sleep(0.01)
                if time.monotonic() > deadline + 30:
                    raise RuntimeError("no write was acknowledged in 30 s")
            server.kill()
            time.sleep(rng.uniform(0.0, 0.2))
            starts.append(server.start())
            if progress is not None:
                progress(k + 1, {"acknowledged": acks.count})
        time.sleep(0.3)
        stop.set()
        for t in writers:
            t.join(timeout=30)
        result = verify(server, acks)
        server.stop()
        head, revisions = _log_revisions(data, log_url)
        gaps = sorted(set(range(1, head + 1)) - set(revisions))
        result.update(
            backend=backend,
            kills=kills,
            head=head,
            revision_gaps=len(gaps),
            first_gaps=gaps[:10],
            restart_p50_s=sorted(starts)[len(starts) // 2],
            restart_max_s=max(starts),
            client_errors_while_down=acks.errors,
            unexpected_errors=acks.unexpected[:10],
        )
        return result
    finally:
        stop.set()
        for t in writers:
            t.join(timeout=30)
        server.close()
        if schema is not None and postgres_url is not None:
            try:
                from hivemem.memory.log.postgres import PostgresLog

                PostgresLog(postgres_url, schema=schema).drop()
            except Exception:  # noqa: BLE001 - cleanup only
                pass
        shutil.rmtree(base, ignore_errors=True)


def verify(server: Server, acks: Acks) -> dict[str, Any]:
    """Every acknowledged (revision, version) in its item's history; the counter whole."""
    lost: list[str] = []
    with Client(server.url, api_key=ADMIN_KEY) as client:
        for (ns, key), versions in acks.items.items():
            seen = {(i.revision, i.version) for i in client.history(ns, key)}
            lost += [f"{ns}/{key}@{r}v{v}" for r, v in sorted(versions - seen)]
        history = client.history("crash/cas", "counter") if acks.cas else []
    live = [i for i in history if not i.deleted]
    lost_updates = sum(1 for i in live if i.value != i.version - 1)
    versions = [i.version for i in history]
    return {
        "acknowledged": acks.count,
        "lost": len(lost),
        "first_lost": lost[:10],
        "cas_acknowledged": acks.cas,
        "cas_final": live[-1].value + 1 if live else 0,
        "cas_lost_updates": lost_updates,
        "cas_version_gaps": len(set(range(1, len(versions) + 1)) - set(versions)),
    }
