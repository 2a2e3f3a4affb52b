"""``make soak``: the fault battery at full counts; writes the "Reliability" section.

python -m bench.soak                  # everything (tens of minutes on 2 cores)
python -m bench.soak --quick          # every part at reduced counts
python -m bench.soak --only crash     # one part (crash, cas, index, guess, watch,
                                      # shared, overload, properties, fuzz)

The figures go into bench/results.json under ``reliability`` and RESULTS.md is
rewritten from results.json by ``bench.run.report`` (``make bench`` keeps the section,
``make soak`` keeps the benchmarks).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np

from bench import crash
from bench.common import Progress, local_postgres_url, step

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
Result = dict[str, Any]
PARTS = ["crash", "cas", "index", "guess", "watch", "shared", "overload", "properties", "fuzz"]


@contextlib.contextmanager
def _server(name: str, **kw: Any) -> Iterator[crash.Server]:
    base = tempfile.mkdtemp(prefix=f"hivemem-soak-{name}-", dir=os.environ.get("TMPDIR"))
    server = crash.Server(os.path.join(base, "data"), crash.free_port(), **kw)
    try:
        server.start()
        yield server
    finally:
        server.close()
        shutil.rmtree(base, ignore_errors=True)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _vec(rng: random.Random, dim: int = crash.DIM) -> list[float]:
    return [rng.gauss(0.0, 1.0) for _ in range(dim)]


# -- 1. SIGKILL under four writers ---------------------------------------------------------


def crash_runs(kills: int) -> Result:
    out: Result = {}
    backends = [("sqlite", None)]
    pg = local_postgres_url()
    if pg is not None:
        backends.append(("postgres", pg))
    else:
        out["postgres"] = {"skipped": "no PostgreSQL on 127.0.0.1:5432"}
    for backend, url in backends:
        step(f"crash: SIGKILL hivemem serve {kills} times under 4 writers ({backend})")
        bar = Progress(f"kills ({backend})", kills)
        out[backend] = crash.run(
            kills, backend, postgres_url=url, progress=lambda k, info, bar=bar: bar.advance()
        )
        r = out[backend]
        step(
            f"crash {backend}: {r['acknowledged']} acknowledged, {r['lost']} lost, "
            f"{r['revision_gaps']} revision gaps, CAS lost updates {r['cas_lost_updates']}"
        )
    return out


# -- 2. 16 x N CAS increments over HTTP -------------------------------------------------------


def cas_race(clients: int, increments: int) -> Result:
    step(f"cas: {clients} clients x {increments} CAS increments of one counter over HTTP")
    from hivemem.memory.client import Client
    from hivemem.memory.errors import Conflict

    with _server("cas") as server:
        with Client(server.url, api_key=crash.ADMIN_KEY) as c:
            c.put("soak/cas", "counter", 0)
        conflicts = [0]
        lock = threading.Lock()
        progress = Progress("increments", clients * increments)
        t0 = time.monotonic()

        def worker() -> None:
            with Client(server.url, api_key=crash.ADMIN_KEY) as client:
                done = 0
                while done < increments:
                    cur = client.get("soak/cas", "counter")
                    try:
                        client.put("soak/cas", "counter", cur.value + 1, if_version=cur.version)
                    except Conflict:
                        with lock:
                            conflicts[0] += 1
                        continue
                    done += 1
                    with lock:
                        progress.advance()

        threads = [threading.Thread(target=worker) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        with Client(server.url, api_key=crash.ADMIN_KEY) as c:
            final = c.get("soak/cas", "counter")
            versions = [i.version for i in c.history("soak/cas", "counter")]
    expected = clients * increments
    return {
        "clients": clients,
        "increments": increments,
        "expected": expected,
        "final": final.value,
        "lost_updates": expected - final.value,
        "version_gaps": len(set(range(1, len(versions) + 1)) - set(versions)),
        "conflicts": conflicts[0],
        "increments_per_s": expected / elapsed,
    }


# -- 3. index damage --------------------------------------------------------------------------

DAMAGE = [
    "missing",
    "truncated",
    "bit-flip",
    "garbage",
    "empty",
    "stale",
    "foreign",
    "appended",
    "zeroed-head",
    "older-copy",
]


def index_damage(rounds: int) -> Result:
    step(f"index: {rounds} rounds of vector index damage, each reopened and verified")
    from hivemem.memory import Memory

    rng = np.random.default_rng(20)
    outcomes: list[Result] = []
    progress = Progress("rounds", rounds)
    for n in range(rounds):
        kind = DAMAGE[n % len(DAMAGE)]
        base = tempfile.mkdtemp(prefix="hivemem-soak-index-")
        path, other = os.path.join(base, "store"), os.path.join(base, "other")
        try:
            mem = Memory.open(path, embedder=None, reaper_interval=None)
            vectors = rng.standard_normal((200, 32)).astype(np.float32)
            mem.put_many(
                [{"namespace": "ns", "key": f"k{i}", "value": i, "vector": v.tolist()}
                 for i, v in enumerate(vectors[:120])]
            )  # fmt: skip
            mem.checkpoint()
            index_file = os.path.join(path, "vectors.faiss")
            older = Path(index_file).read_bytes()
            mem.put_many(
                [{"namespace": "ns", "key": f"k{i}", "value": i, "vector": v.tolist()}
                 for i, v in enumerate(vectors[120:], start=120)]
            )  # fmt: skip
            for i in range(0, 200, 7):
                mem.delete("ns", f"k{i}")
            mem.close()
            data = bytearray(Path(index_file).read_bytes())
            if kind == "missing":
                os.remove(index_file)
            elif kind == "truncated":
                Path(index_file).write_bytes(data[: int(len(data) * rng.uniform(0.05, 0.95))])
            elif kind == "bit-flip":
                for _ in range(int(rng.integers(1, 8))):
                    data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
                Path(index_file).write_bytes(bytes(data))
            elif kind == "garbage":
                Path(index_file).write_bytes(rng.bytes(len(data)))
            elif kind == "empty":
                Path(index_file).write_bytes(b"")
            elif kind in ("stale", "older-copy"):
                Path(index_file).write_bytes(older)
            elif kind == "foreign":
                o = Memory.open(other, embedder=None, reaper_interval=None)
                o.put("ns", "lonely", 1, vector=vectors[0].tolist())
                o.close()
                shutil.copy(os.path.join(other, "vectors.faiss"), index_file)
            elif kind == "appended":
                Path(index_file).write_bytes(bytes(data) + rng.bytes(4096))
            elif kind == "zeroed-head":
                data[:64] = bytes(64)
                Path(index_file).write_bytes(bytes(data))
            mem = Memory.open(path, embedder=None, reaper_interval=None)
            try:
                core = mem._core
                live = {cid for cid, _, _ in core.log.live_vectors()}
                same = core.index.ids() == live and core.index.applied_revision == mem.revision
                probe = 121 if 121 % 7 else 122
                hits = mem.search(vector=vectors[probe].tolist(), namespaces=["ns"], mode="vector")
                found = bool(hits) and hits[0].item.key == f"k{probe}"
                outcomes.append({"kind": kind, "index_matches_log": same, "search_ok": found})
            finally:
                mem.close()
        finally:
            shutil.rmtree(base, ignore_errors=True)
        progress.advance()
    return {
        "rounds": rounds,
        "kinds": sorted({o["kind"] for o in outcomes}),
        "recovered": sum(1 for o in outcomes if o["index_matches_log"] and o["search_ok"]),
        "failed": [o for o in outcomes if not (o["index_matches_log"] and o["search_ok"])],
    }


# -- 4. guessing another principal's names ------------------------------------------------------


def guessing(guesses: int) -> Result:
    step(f"guess: {guesses} requests by another principal for names under tenant-a")
    from hivemem.memory.client import Client

    with _server("guess") as server:
        with Client(server.url, api_key=crash.ADMIN_KEY) as admin:
            admin.grant("alice", "tenant-a", "write")
            admin.grant("mallory", "tenant-m", "write")
            alice = admin.create_key("alice").secret
            mallory = admin.create_key("mallory").secret
        secret = "s3cret-" + uuid.uuid4().hex
        names = [f"doc-{i}" for i in range(200)]
        with Client(server.url, api_key=alice) as a:
            a.put_many(
                [{"namespace": "tenant-a/private", "key": k, "value": {"secret": secret},
                  "text": f"{secret} plans"} for k in names]
            )  # fmt: skip
        rng = random.Random(4)
        bodies: dict[str, set[bytes]] = {}
        leaked = 0
        statuses: dict[int, int] = {}
        progress = Progress("guesses", guesses)
        headers = {"Authorization": f"Bearer {mallory}", "Content-Type": "application/json"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=30) as http:
            for i in range(guesses):
                exists = rng.random() < 0.5
                key = rng.choice(names) if exists else f"doc-{rng.randrange(200, 10**6)}"
                kind = ("get", "history", "delete", "put", "list", "search")[i % 6]
                path = quote(key, safe="")
                if kind == "get":
                    r = http.get(f"/v1/items/tenant-a/private/{path}")
                elif kind == "history":
                    r = http.get(f"/v1/history/tenant-a/private/{path}")
                elif kind == "delete":
                    r = http.delete(f"/v1/items/tenant-a/private/{path}")
                elif kind == "put":
                    r = http.put(f"/v1/items/tenant-a/private/{path}", json={"value": 1})
                elif kind == "list":
                    r = http.get("/v1/items", params={"prefix": "tenant-a/private"})
                else:
                    r = http.post("/v1/search", json={"query": secret, "namespaces": ["tenant-a"]})
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if secret.encode() in r.content:
                    leaked += 1
                if kind in ("get", "history", "delete", "put"):
                    bodies.setdefault(kind, set()).add(r.content)
                progress.advance()
        with Client(server.url, api_key=alice) as a:
            intact = sum(1 for item in a.list("tenant-a", limit=1000).items)
    return {
        "guesses": guesses,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "leaked": leaked,
        "distinct_bodies": {k: len(v) for k, v in bodies.items()},
        "items_intact": intact,
        "items_written": len(names),
    }


# -- 5. a stalled watcher -----------------------------------------------------------------------


def stalled_watcher(writes: int) -> Result:
    step(f"watch: a watcher stops reading during {writes} writes")
    from hivemem.memory.client import Client

    with _server("watch") as server:
        assert server.proc is not None
        with Client(server.url, api_key=crash.ADMIN_KEY) as c:
            c.put("soak/w", "first", 0)
            start = c.revision
            c.search("load the model first", namespaces=["soak"])  # its memory is not ours
        rss0 = _rss_mb(server.proc.pid)
        # A small receive window, set before connecting (shrinking it afterwards makes
        # the kernel drop data and back off for minutes): the server's sends block soon.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(
            f"GET /v1/watch?namespaces=soak&since={start} HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {crash.ADMIN_KEY}\r\n\r\n".encode()
        )
        head = sock.recv(1024)  # the status line, then it stops reading
        rss_peak = rss0
        progress = Progress("writes", writes)
        lock = threading.Lock()
        counter = [0]

        def writer() -> None:
            with Client(server.url, api_key=crash.ADMIN_KEY) as client:
                while True:
                    with lock:
                        if counter[0] >= writes:
                            return
                        counter[0] += 1
                        n = counter[0]
                    client.put("soak/w", f"k{n % 500}", {"n": n, "pad": "x" * 200})
                    with lock:
                        progress.advance()

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            rss_peak = max(rss_peak, _rss_mb(server.proc.pid))
            time.sleep(0.5)
        with Client(server.url, api_key=crash.ADMIN_KEY) as c:
            end = c.revision
        # Now read what the stalled connection was sent: events, then (if cut off) an error.
        sock.settimeout(5)
        raw = bytearray(head)
        try:
            while True:
                chunk = sock.recv(1 << 20)
                if not chunk:
                    break
                raw += chunk
                if b"event: error" in raw[-4096:]:
                    break
        except TimeoutError:
            pass
        sock.close()
        text = raw.decode(errors="replace")
        lagged = "event: error" in text and "lagged" in text
        last_ids = [int(line[4:]) for line in text.splitlines() if line.startswith("id: ")]
        resume = last_ids[-1] if last_ids else start
        # Resume where the stalled watcher stopped: everything after it arrives.
        got: list[int] = []
        if resume < end:
            with Client(server.url, api_key=crash.ADMIN_KEY) as c:
                stream = c.watch(["soak"], since=resume)

                def read() -> None:
                    for change in stream:
                        got.append(change.revision)
                        if change.revision >= end:
                            return

                reader = threading.Thread(target=read, daemon=True)
                reader.start()
                reader.join(timeout=300)
                stream.close()
        revisions = sorted(set(got))
        expected = list(range(resume + 1, end + 1))
    return {
        "writes": writes,
        "cut_off_with_lagged": lagged,
        "events_before_cut_off": len(last_ids),
        "resumed_from": resume,
        "resumed_received": len(revisions),
        "resumed_missing": len(set(expected) - set(revisions)),
        "server_rss_mb_before": rss0,
        "server_rss_mb_peak": rss_peak,
    }


# -- 6. two servers on one data directory -------------------------------------------------


def shared_directory(seconds: float) -> Result:
    step(f"shared: two hivemem serve processes on one data directory for {seconds:.0f} s")
    from hivemem.memory.client import Client
    from hivemem.memory.errors import Conflict, HivememError

    base = tempfile.mkdtemp(prefix="hivemem-soak-shared-", dir=os.environ.get("TMPDIR"))
    data = os.path.join(base, "data")
    a = crash.Server(data, crash.free_port())
    b = crash.Server(data, crash.free_port())
    acks = crash.Acks()
    cas = [0]
    errors: list[str] = []
    try:
        a.start()
        b.start()
        stop = time.monotonic() + seconds
        lock = threading.Lock()

        def writer(n: int) -> None:
            rng = random.Random(n)
            urls = [a.url, b.url]
            clients = [Client(u, api_key=crash.ADMIN_KEY) for u in urls]
            try:
                i = 0
                while time.monotonic() < stop:
                    i += 1
                    c = clients[rng.randrange(2)]
                    try:
                        if n == 0:  # CAS on one counter through either server
                            item = crash.cas_increment(c, "soak/shared", "counter")
                            with lock:
                                cas[0] += 1
                        else:
                            item = c.put(
                                "soak/shared", f"w{n}-{i % 300}", {"i": i}, vector=_vec(rng)
                            )
                        acks.add(item.namespace, item.key, item.revision, item.version)  # type: ignore[union-attr]
                    except Conflict:
                        continue
                    except HivememError as exc:
                        with lock:
                            errors.append(f"{type(exc).__name__}: {exc}")
            finally:
                for cl in clients:
                    cl.close()

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lost_a = crash.verify(a, acks)
        lost_b = crash.verify(b, acks)
        with Client(a.url, api_key=crash.ADMIN_KEY) as ca:
            counter_a = ca.get("soak/shared", "counter").value + 1
        with Client(b.url, api_key=crash.ADMIN_KEY) as cb:
            counter_b = cb.get("soak/shared", "counter").value + 1
    finally:
        a.close()
        b.close()
        shutil.rmtree(base, ignore_errors=True)
    return {
        "seconds": seconds,
        "acknowledged": acks.count,
        "lost_via_a": lost_a["lost"],
        "lost_via_b": lost_b["lost"],
        "cas_acknowledged": cas[0],
        "cas_final_a": counter_a,
        "cas_final_b": counter_b,
        "cas_lost_updates": lost_a["cas_lost_updates"],
        "errors": len(errors),
        "first_errors": errors[:5],
    }


# -- 7. overload (bench/overload.py, from the load-shedding work) ------------------------


def overload(quick: bool) -> Result:
    try:
        from bench import overload as mod  # type: ignore[attr-defined]
    except ImportError:
        return {"not_run": "bench/overload.py is not in this tree"}
    run = getattr(mod, "run", None)
    if run is None:
        return {"not_run": "bench/overload.py has no run()"}
    step("overload: bench/overload.py run()")
    try:
        import inspect

        params = inspect.signature(run).parameters
        kwargs: dict[str, Any] = {}
        if quick and "quick" in params:
            kwargs["quick"] = True
        elif quick and "seconds" in params:
            kwargs["seconds"] = 10.0
        result = run(**kwargs)
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        return {"not_run": f"run() raised {type(exc).__name__}: {exc}"}
    return dict(result)


# -- 8-9. the property test and schemathesis at full counts -------------------------------


def _pytest(target: str, env: dict[str, str]) -> Result:
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", target],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    tail = proc.stdout.strip().splitlines()[-1:] or [""]
    return {
        "passed": proc.returncode == 0,
        "summary": tail[0],
        "seconds": time.monotonic() - t0,
        "failures": proc.stdout[-3000:] if proc.returncode else "",
    }


def properties(quick: bool) -> Result:
    profile = "test" if quick else "soak"
    step(f"properties: tests/test_properties.py with the {profile!r} example counts")
    from tests import test_properties as tp

    out = _pytest("tests/test_properties.py", {"HIVEMEM_HYPOTHESIS": profile})
    counts = {"test": (tp.EXAMPLES, tp.HTTP_EXAMPLES), "soak": (5000, 2000)}[profile]
    return {**out, "embedded_examples": counts[0], "http_examples": counts[1]}


def fuzz(quick: bool) -> Result:
    examples = 25 if quick else 300
    step(f"fuzz: schemathesis, {examples} examples per operation, every phase")
    out = _pytest("tests/api/test_schema_fuzz.py", {"HIVEMEM_FUZZ_EXAMPLES": str(examples)})
    return {**out, "examples_per_operation": examples}


# -- the section -------------------------------------------------------------------------


def report(r: Result) -> list[str]:
    """RESULTS.md lines of the Reliability section (every figure from results.json)."""
    lines = [
        "## Reliability (`make soak`)",
        "",
        f"Run {r.get('when', '?')}{' (--quick: reduced counts)' if r.get('quick') else ''}.",
        "",
    ]
    ran = r.get("ran", {})
    if len(set(ran.values())) > 1:  # parts re-run alone with --only since the first run
        first = min(ran.values())
        again = ", ".join(f"{name} at {when}" for name, when in ran.items() if when != first)
        lines[2] = f"Run {first}; parts run again alone since: {again}."
    c = r.get("crash", {})
    if c:
        lines += [
            "| SIGKILL of `hivemem serve` under 4 writers | kills | acknowledged writes | lost "
            "| revision gaps | CAS lost updates | restart p50 / max |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for backend in ("sqlite", "postgres"):
            x = c.get(backend)
            if not x:
                continue
            if "skipped" in x:
                lines.append(f"| {backend} | skipped: {x['skipped']} | | | | | |")
                continue
            lines.append(
                f"| {backend} | {x['kills']} | {x['acknowledged']:,} | {x['lost']} | "
                f"{x['revision_gaps']} (head {x['head']:,}) | {x['cas_lost_updates']} "
                f"({x['cas_acknowledged']:,} acknowledged, counter {x['cas_final']:,}) | "
                f"{x['restart_p50_s']:.1f} / {x['restart_max_s']:.1f} s |"
            )
        lines.append("")
    if "cas" in r:
        x = r["cas"]
        lines += [
            f"- CAS over HTTP: {x['clients']} clients x {x['increments']} increments of one "
            f"counter: final {x['final']:,} of {x['expected']:,} ({x['lost_updates']} lost), "
            f"{x['version_gaps']} version gaps, {x['conflicts']:,} conflicts retried, "
            f"{x['increments_per_s']:.0f} increments/s.",
        ]
    if "index" in r:
        x = r["index"]
        lines += [
            f"- Vector index damage: {x['recovered']} of {x['rounds']} rounds rebuilt or caught "
            f"up to match the log, search correct ({len(x['kinds'])} kinds: "
            f"{', '.join(x['kinds'])}).",
        ]
    if "guess" in r:
        x = r["guess"]
        bodies = ", ".join(f"{k} {v}" for k, v in x["distinct_bodies"].items())
        statuses = ", ".join(f"{k}: {v:,}" for k, v in x["statuses"].items())
        lines += [
            f"- Another principal's {x['guesses']:,} requests for names under `tenant-a` "
            f"(half of them existing): {x['leaked']} responses held its data; distinct "
            f"response bodies per route: {bodies}; statuses {statuses}; "
            f"{x['items_intact']} of {x['items_written']} items intact.",
        ]
    if "watch" in r:
        x = r["watch"]
        lines += [
            f"- A watcher that stopped reading during {x['writes']:,} writes: cut off with "
            f"`Lagged`: {'yes' if x['cut_off_with_lagged'] else 'no'} (after "
            f"{x['events_before_cut_off']:,} events); resumed from revision "
            f"{x['resumed_from']:,} it received {x['resumed_received']:,} revisions, "
            f"{x['resumed_missing']} missing; server RSS {x['server_rss_mb_before']:.0f} MB "
            f"before, {x['server_rss_mb_peak']:.0f} MB at most.",
        ]
    if "shared" in r:
        x = r["shared"]
        lines += [
            f"- Two servers on one data directory for {x['seconds']:.0f} s: "
            f"{x['acknowledged']:,} acknowledged writes, {x['lost_via_a']} / {x['lost_via_b']} "
            f"missing when read through either; CAS counter {x['cas_final_a']:,} / "
            f"{x['cas_final_b']:,} for {x['cas_acknowledged']:,} acknowledged increments "
            f"({x['cas_lost_updates']} lost updates); {x['errors']} errors.",
        ]
    if "overload" in r:
        x = r["overload"]
        if "not_run" in x:
            lines.append(f"- Overload run: not run ({x['not_run']}).")
        else:
            flat = {k: v for k, v in x.items() if not isinstance(v, dict | list)}
            goals = x.get("goals")
            lines.append(
                f"- Overload run (bench/overload.py): {json.dumps(flat, sort_keys=True)}"
                + (f"; goals {json.dumps(goals, sort_keys=True)}" if goals else "")
                + "."
            )
    if "properties" in r:
        x = r["properties"]
        lines.append(
            f"- Property test ({x['embedded_examples']:,} embedded, {x['http_examples']:,} HTTP "
            f"examples per property): {'passed' if x['passed'] else '**failed**'} "
            f"({x['summary']}, {x['seconds']:.0f} s)."
        )
    if "fuzz" in r:
        x = r["fuzz"]
        lines.append(
            f"- Schemathesis ({x['examples_per_operation']} examples per operation, all "
            f"phases, stateful over the OpenAPI links): "
            f"{'0 failures' if x['passed'] else '**failures**'} ({x['summary']}, "
            f"{x['seconds']:.0f} s)."
        )
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="every part at reduced counts")
    parser.add_argument("--only", choices=PARTS, action="append")
    args = parser.parse_args(argv)
    q = args.quick
    runs: dict[str, Callable[[], Result]] = {
        "crash": lambda: crash_runs(5 if q else 50),
        "cas": lambda: cas_race(16, 50 if q else 500),
        "index": lambda: index_damage(10 if q else 20),
        "guess": lambda: guessing(1000 if q else 10_000),
        "watch": lambda: stalled_watcher(2000 if q else 20_000),
        "shared": lambda: shared_directory(10 if q else 60),
        "overload": lambda: overload(q),
        "properties": lambda: properties(q),
        "fuzz": lambda: fuzz(q),
    }
    results_path = HERE / "results.json"
    results: Result = json.loads(results_path.read_text()) if results_path.exists() else {}
    section: Result = dict(results.get("reliability", {})) if args.only else {}
    # When each part last ran: with --only, the others keep the date of their own run.
    ran: dict[str, str] = dict(section.get("ran", {}))
    for name in PARTS:
        if name in section and name not in ran and section.get("when"):
            ran[name] = section["when"]
    section.update(when=datetime.now(UTC).isoformat(timespec="seconds"), quick=q, ran=ran)
    for name in args.only or PARTS:
        ran[name] = datetime.now(UTC).isoformat(timespec="seconds")
        section[name] = runs[name]()
        results["reliability"] = section
        results_path.write_text(json.dumps(results, indent=2) + "\n")  # keep what is done
    from bench.run import report as bench_report

    if "meta" in results:
        (HERE / "RESULTS.md").write_text(bench_report(results))
    step(f"wrote the Reliability section into {HERE / 'RESULTS.md'}")
    print("\n".join(report(section)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
