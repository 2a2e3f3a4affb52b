"""The multi-agent correctness benchmark: what goes wrong when agents share memory.

N agents (2, 8, 32) run four workloads, each written the natural way for the store:

- counter: read-modify-write increments of one key, with 1 ms of "thinking" between the
  read and the write (hivemem: ``if_version``, and on Conflict back off and retry;
  LangGraph: get then put). Figure: lost updates.
- tasks: claim / work / complete, with agents killed (they drop a task silently) or
  stalled (they sleep past their claim, then write their result) at random. hivemem:
  ``claim(ttl=)``, ``fence=token``, ``complete``; LangGraph: find an open task, mark it
  claimed, write the result, mark it done, and take over claims older than the ttl.
  Figures: duplicate executions (results accepted beyond one per task), lost tasks (never
  done), stale results accepted (a stalled agent's result written after it lost the task).
- blackboard: each agent posts a partial result per round and waits for everyone's
  (hivemem: watch, followed by a listener thread that stamps each change as it arrives;
  LangGraph has no watch: polling every 10 ms). Figures: lag from post to sight (p50,
  p99) and stale reads (a get right after seeing a change, once a round, that does not
  return that version).
- teams: two teams in separate namespaces; each agent guesses the other team's item
  names. hivemem: one principal per agent with a grant on its team's namespace;
  LangGraph has no permissions. Figure: leaks (reads of the other team's items).

hivemem runs over its HTTP service with agents as threads and as processes; LangGraph's
``InMemoryStore`` and ``SqliteStore`` run in process with threads (neither can be shared
over HTTP).
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import step

__all__ = ["run", "report", "plot"]

INCREMENTS = 20
THINK = 0.001  # seconds an agent spends between reading and writing the counter
TASKS = 300
ROUNDS = 5
TTL = 0.5
P_KILL = 0.05
P_STALL = 0.05


# -- hivemem agents (a Client each: a thread or a process) ------------------------------


def _client(url: str, key: str) -> Any:
    from hivemem.memory.client import Client

    return Client(url, key, timeout=60)


def hm_counter(url: str, key: str, index: int) -> dict[str, Any]:
    from hivemem.memory.errors import Conflict

    c, conflicts, rng = _client(url, key), 0, random.Random(index)
    for _ in range(INCREMENTS):
        while True:
            item = c.get("bench/counter", "c")
            time.sleep(THINK)
            try:
                c.put("bench/counter", "c", {"n": item.value["n"] + 1}, if_version=item.version)
                break
            except Conflict:
                conflicts += 1
                time.sleep(rng.uniform(0, 0.002 * conflicts))  # back off, then re-read
    c.close()
    return {"retries": conflicts}


def hm_tasks(url: str, key: str, index: int) -> dict[str, Any]:
    from hivemem.memory.errors import Conflict

    c, rng = _client(url, key), random.Random(index)
    accepted: list[str] = []
    stale = idle = 0
    while idle < 12:
        got = c.claim("bench/tasks", ttl=TTL)
        if got is None:
            idle += 1
            time.sleep(0.1)
            continue
        idle, task, roll = 0, got.item.key, rng.random()
        if roll < P_KILL:
            c.close()
            c = _client(url, key)  # dead; a new agent takes its place
            continue
        if roll < P_KILL + P_STALL:
            time.sleep(TTL * 1.5)
        try:
            c.put("bench/results", task, {"by": index}, fence=got.token)
            c.complete(got.token)
        except Conflict:
            continue  # refused: the claim was lost
        accepted.append(task)
        if roll >= P_KILL:
            stale += roll < P_KILL + P_STALL
    c.close()
    return {"accepted": accepted, "stale_accepted": stale}


def hm_blackboard(url: str, key: str, index: int, agents: int, since: int) -> dict[str, Any]:
    """Post a result a round, then wait for everyone's: a listener thread follows the
    watch and stamps each change as it arrives (what an agent's listener would do), so
    the lag is the delivery's, not the time this agent spent writing meanwhile."""
    c, listener = _client(url, key), _client(url, key)
    lags, stale = [], 0
    arrived: queue.Queue[tuple[float, Any]] = queue.Queue()
    stream = listener.watch("bench/board", since=since)

    def listen() -> None:
        try:
            for change in stream:
                arrived.put((time.time(), change))
        except Exception:  # closed at the end
            pass

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    for r in range(ROUNDS):
        c.put("bench/board", f"a{index}-r{r}", {"t": time.time()})
        seen = 0
        while seen < agents:
            at, change = arrived.get(timeout=120)
            if not change.key.endswith(f"-r{r}"):
                continue
            seen += 1
            lags.append(at - change.item.value["t"])  # type: ignore[union-attr]
            if change.key.startswith(f"a{(index + 1) % agents}-"):  # one read back a round
                stale += c.get("bench/board", change.key).version < change.version
    stream.close()
    c.close()
    listener.close()
    return {"lags": lags, "stale": stale}


def hm_teams(url: str, key: str, index: int, agents: int) -> dict[str, Any]:
    from hivemem.memory.errors import NotFound

    c, team = _client(url, key), "a" if index % 2 == 0 else "b"
    other = "b" if team == "a" else "a"
    c.put(f"bench/teams/{team}", f"{team}-{index}", {"secret": index})
    time.sleep(0.2)
    leaks = 0
    for j in range(agents):
        try:
            c.get(f"bench/teams/{other}", f"{other}-{j}")
            leaks += 1
        except NotFound:
            pass
    leaks += len(c.list(f"bench/teams/{other}").items)
    c.close()
    return {"leaks": leaks}


def _call(args: tuple[str, tuple[Any, ...]]) -> dict[str, Any]:
    name, params = args
    result: dict[str, Any] = globals()[name](*params)
    return result


# -- LangGraph agents (threads sharing one store) ---------------------------------------


def lg_counter(store: Any, index: int) -> dict[str, Any]:
    for _ in range(INCREMENTS):
        item = store.get(("bench", "counter"), "c")
        time.sleep(THINK)
        store.put(("bench", "counter"), "c", {"n": item.value["n"] + 1})
    return {"retries": 0}


def lg_tasks(store: Any, index: int) -> dict[str, Any]:
    rng = random.Random(index)
    accepted: list[str] = []
    stale = idle = 0
    while idle < 12:
        task = _lg_pick(store)
        if task is None:
            idle += 1
            time.sleep(0.1)
            continue
        idle, roll = 0, rng.random()
        store.put(("bench", "tasks"), task, {"status": "claimed", "by": index, "at": time.time()})
        if roll < P_KILL:
            continue
        if roll < P_KILL + P_STALL:
            time.sleep(TTL * 1.5)
            stale += 1
        store.put(("bench", "results"), task, {"by": index})
        store.put(("bench", "tasks"), task, {"status": "done", "by": index})
        accepted.append(task)
    return {"accepted": accepted, "stale_accepted": stale}


def _lg_pick(store: Any) -> str | None:
    """The natural claim: the first open task, or a claim older than the ttl."""
    found = store.search(("bench", "tasks"), filter={"status": "open"}, limit=1)
    if found:
        return str(found[0].key)
    for item in store.search(("bench", "tasks"), filter={"status": "claimed"}, limit=1000):
        if time.time() - item.value["at"] > TTL:
            return str(item.key)
    return None


def lg_blackboard(store: Any, index: int, agents: int) -> dict[str, Any]:
    lags, stale = [], 0
    seen: set[str] = set()
    for r in range(ROUNDS):
        store.put(("bench", "board"), f"a{index}-r{r}", {"t": time.time()})
        mine = 0
        while mine < agents:
            for item in store.search(("bench", "board"), limit=1000):
                if item.key in seen or not item.key.endswith(f"-r{r}"):
                    continue
                seen.add(item.key)
                mine += 1
                lags.append(time.time() - item.value["t"])
            if mine < agents:
                time.sleep(0.01)
    return {"lags": lags, "stale": stale}


def lg_teams(store: Any, index: int, agents: int) -> dict[str, Any]:
    team = "a" if index % 2 == 0 else "b"
    other = "b" if team == "a" else "a"
    store.put(("bench", "teams", team), f"{team}-{index}", {"secret": index})
    time.sleep(0.2)
    leaks = sum(
        store.get(("bench", "teams", other), f"{other}-{j}") is not None for j in range(agents)
    )
    leaks += len(store.search(("bench", "teams", other), limit=1000))
    return {"leaks": leaks}


# -- running ---------------------------------------------------------------------------


def _threads(fn: Callable[..., dict[str, Any]], args: list[tuple[Any, ...]]) -> list[Any]:
    out: list[Any] = [None] * len(args)

    def one(i: int) -> None:
        out[i] = fn(*args[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(args))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _summary(n: int, counter: int, tasks: list[Any], board: list[Any], leaks: int) -> Any:
    accepted = Counter(t for r in tasks for t in r["accepted"])
    lags = np.array([lag for r in board for lag in r["lags"]]) * 1000
    return {
        "agents": n,
        "increments": n * INCREMENTS,
        "lost_updates": n * INCREMENTS - counter,
        "tasks": TASKS,
        "duplicate_executions": sum(k - 1 for k in accepted.values() if k > 1),
        "lost_tasks": TASKS - len(accepted),
        "stale_results_accepted": sum(r["stale_accepted"] for r in tasks),
        "lag_p50_ms": float(np.percentile(lags, 50)),
        "lag_p99_ms": float(np.percentile(lags, 99)),
        "stale_reads": sum(r["stale"] for r in board),
        "leaks": leaks,
    }


def _hivemem(n: int, processes: bool) -> dict[str, Any]:
    from hivemem.memory import Memory
    from tests.client.conftest import ADMIN_KEY, LiveServer
    from tests.embedders import HashEmbedder

    with tempfile.TemporaryDirectory() as tmp:
        mem = Memory.open(tmp, embedder=HashEmbedder(), reaper_interval=0.2, durability="normal")
        server = LiveServer(mem).start()
        try:
            admin = server.client(ADMIN_KEY)
            keys = []
            for i in range(n):
                name = f"agent-{i}"
                admin.grant(name, "bench/counter", "write")
                admin.grant(name, "bench/tasks", "write")
                admin.grant(name, "bench/results", "write")
                admin.grant(name, "bench/board", "write")
                admin.grant(name, f"bench/teams/{'a' if i % 2 == 0 else 'b'}", "write")
                keys.append(admin.create_key(name).secret)
            admin.put("bench/counter", "c", {"n": 0})
            admin.put_many(
                [{"namespace": "bench/tasks", "key": f"t{i:04d}", "value": i} for i in range(TASKS)]
            )
            url = server.url

            def run_all(name: str, extra: tuple[Any, ...] = ()) -> list[Any]:
                jobs = [(name, (url, keys[i], i, *extra)) for i in range(n)]
                if processes:
                    return pool.map(_call, jobs)
                return _threads(lambda job: _call(job), [(j,) for j in jobs])

            ctx = multiprocessing.get_context("spawn")
            pool = ctx.Pool(n) if processes else None
            try:
                run_all("hm_counter")
                counter = admin.get("bench/counter", "c").value["n"]
                tasks = run_all("hm_tasks")
                board = run_all("hm_blackboard", (n, admin.revision))
                leaks = sum(r["leaks"] for r in run_all("hm_teams", (n,)))
            finally:
                if pool is not None:
                    pool.close()
                    pool.join()
            admin.close()
        finally:
            server.stop()
            mem.close()
    return _summary(n, counter, tasks, board, leaks)


def _langgraph(n: int, kind: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "sqlite":
            from langgraph.store.sqlite import SqliteStore

            conn = sqlite3.connect(
                str(Path(tmp) / "store.db"), check_same_thread=False, isolation_level=None
            )
            store: Any = SqliteStore(conn)
            store.setup()
        else:
            from langgraph.store.memory import InMemoryStore

            store = InMemoryStore()
        store.put(("bench", "counter"), "c", {"n": 0})
        for i in range(TASKS):
            store.put(("bench", "tasks"), f"t{i:04d}", {"status": "open"})
        ids = list(range(n))
        _threads(lg_counter, [(store, i) for i in ids])
        counter = store.get(("bench", "counter"), "c").value["n"]
        tasks = _threads(lg_tasks, [(store, i) for i in ids])
        board = _threads(lg_blackboard, [(store, i, n) for i in ids])
        leaks = sum(r["leaks"] for r in _threads(lg_teams, [(store, i, n) for i in ids]))
        if kind == "sqlite":
            conn.close()
    return _summary(n, counter, tasks, board, leaks)


SYSTEMS: dict[str, Callable[[int], dict[str, Any]]] = {
    "hivemem (HTTP, threads)": lambda n: _hivemem(n, processes=False),
    "hivemem (HTTP, processes)": lambda n: _hivemem(n, processes=True),
    "LangGraph InMemoryStore (threads)": lambda n: _langgraph(n, "memory"),
    "LangGraph SqliteStore (threads)": lambda n: _langgraph(n, "sqlite"),
}


def run(counts: tuple[int, ...] = (2, 8, 32)) -> dict[str, Any]:
    """Every system at every agent count."""
    rows = []
    for n in counts:
        for name, fn in SYSTEMS.items():
            step(f"agents: {name}, N={n}")
            rows.append({"system": name, **fn(n)})
    return {"rows": rows, "ttl": TTL, "p_kill": P_KILL, "p_stall": P_STALL}


def report(r: dict[str, Any]) -> list[str]:
    """RESULTS.md lines for this section."""
    lines = [
        "## Multi-agent correctness (counter, task queue, blackboard, teams)",
        "",
        f"N agents, each workload written the natural way for the store ({INCREMENTS}",
        f"increments per agent; {TASKS} tasks with agents killed ({r['p_kill']:.0%}) or",
        f"stalled past the {r['ttl']} s claim ({r['p_stall']:.0%}) at random; {ROUNDS}",
        "blackboard rounds; two teams guessing each other's item names). See",
        "`bench/agents.py` for the code of each. LangGraph's stores have no watch: the",
        "blackboard polls them every 10 ms.",
        "",
        "| system | N | lost updates | duplicate executions | lost tasks | stale results "
        "accepted | watch lag p50 / p99 | stale reads | leaks |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {row['system']} | {row['agents']} | {row['lost_updates']:,} of "
            f"{row['increments']:,} | {row['duplicate_executions']:,} | {row['lost_tasks']:,} | "
            f"{row['stale_results_accepted']:,} | {row['lag_p50_ms']:.1f} / "
            f"{row['lag_p99_ms']:.1f} ms | {row['stale_reads']} | {row['leaks']:,} |"
        )
    lines += ["", "![multi-agent correctness](agents.png)", ""]
    return lines


def plot(r: dict[str, Any], path: Path) -> None:
    """Lost updates and duplicate executions per system and N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(dict.fromkeys(row["system"] for row in r["rows"]))
    counts = sorted({row["agents"] for row in r["rows"]})
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=110)
    for ax, field, title in (
        (axes[0], "lost_updates", "lost updates (counter)"),
        (axes[1], "duplicate_executions", "duplicate executions (task queue)"),
    ):
        width = 0.8 / len(systems)
        for s, name in enumerate(systems):
            values = [
                next(
                    row[field] for row in r["rows"] if row["system"] == name and row["agents"] == n
                )
                for n in counts
            ]
            ax.bar([i + s * width for i in range(len(counts))], values, width, label=name)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(counts))])
        ax.set_xticklabels([f"N={n}" for n in counts])
        ax.set_title(title)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
