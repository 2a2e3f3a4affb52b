"""Processes for the HTTP benchmark (bench/http.py), each run as ``python -m bench.http_load``.

    serve hello|hivemem [--data DIR --key KEY]   one uvicorn on 127.0.0.1, free port
    load --port P --paths-file F [--key K]       keep-alive GET load over N connections
    watch --port P --key K --since N --expect W  N SSE subscribers, timestamps per event

``serve`` binds its own socket exactly as ``hivemem serve`` does (``IPPROTO_TCP``, so
asyncio turns TCP_NODELAY on for accepted connections) and prints ``PORT <n>`` on stdout.
``load`` and ``watch`` print one JSON line on stdout when done.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import select
import socket
import sys
import time
from datetime import datetime
from typing import Any

# -- servers ---------------------------------------------------------------------------


def hello_app() -> Any:
    """The baseline: FastAPI's hello world, as an ``async def`` route like hivemem's get
    (the fastest form: no thread-pool hop)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    return app


def hivemem_app(data_dir: str, key: str) -> Any:
    """hivemem's REST app over a store opened here (``embedder=None``: supplied vectors)."""
    from hivemem.api.app import create_app
    from hivemem.api.settings import Settings
    from hivemem.memory import Memory

    settings = Settings(data_dir=data_dir, admin_key=key)
    memory = Memory.open(data_dir, embedder=None, watch_queue=settings.watch_queue)
    return create_app(settings, memory=memory)


def serve(which: str, data_dir: str | None, key: str | None) -> None:
    import uvicorn

    if which == "hello":
        app = hello_app()
    else:
        assert data_dir and key, "hivemem needs --data and --key"
        app = hivemem_app(data_dir, key)
    # Same as api.cli._bind: proto=IPPROTO_TCP, or keep-alive requests stall on delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    # No access log for either server: the benchmark measures the app, not log writing.
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


# -- keep-alive load generator ---------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(
    port: int,
    paths: list[str],
    key: str | None,
    conns: int,
    warmup: float,
    duration: float,
    server_pid: int | None,
) -> dict[str, Any]:
    """GETs of ``paths`` (cycled) over ``conns`` keep-alive connections, one in flight each.

    A plain epoll loop over non-blocking sockets: about half the CPU per request of an
    asyncio client, which matters when the generator shares two cores with the server.
    Counts the responses completed in the ``duration`` after ``warmup``.
    """
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    requests = [f"GET {p} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\n".encode() for p in paths]
    nreq = len(requests)
    ep = select.epoll()
    # per connection: [socket, request counter, buffer, bytes needed, send time, status ok]
    state: dict[int, list[Any]] = {}
    for c in range(conns):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        state[sock.fileno()] = [sock, c * 7919, b"", -1, 0.0, True]
        ep.register(sock.fileno(), select.EPOLLIN)
    latencies: list[float] = []
    errors = 0
    begin = time.perf_counter()
    start, stop = begin + warmup, begin + warmup + duration
    for st in state.values():
        st[4] = time.perf_counter()
        st[0].send(requests[st[1] % nreq])
    cpu0 = server0 = 0.0
    measuring = False
    perf = time.perf_counter
    while state:
        for fd, _ in ep.poll(0.05):
            st = state[fd]
            data = st[0].recv(65536)
            if not data:
                raise RuntimeError("the server closed a keep-alive connection")
            buf = st[2] + data
            while True:
                if st[3] < 0:
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head = buf[:end].lower()
                    at = head.find(b"content-length:")
                    if at < 0:
                        raise RuntimeError("response without content-length")
                    eol = head.find(b"\r\n", at)
                    st[3] = end + 4 + int(head[at + 15 : eol if eol >= 0 else len(head)])
                    st[5] = head.startswith(b"http/1.1 200")
                if len(buf) < st[3]:
                    break
                buf = buf[st[3] :]
                st[3] = -1
                now = perf()
                if now >= stop:
                    ep.unregister(fd)
                    st[0].close()
                    del state[fd]
                    break
                if now >= start:
                    if not measuring:
                        measuring = True
                        cpu0 = time.process_time()
                        server0 = _cpu_seconds(server_pid) if server_pid else 0.0
                    latencies.append(now - st[4])
                    errors += not st[5]
                st[1] += 1
                st[4] = now
                st[0].send(requests[st[1] % nreq])
            st[2] = buf
    cpu = time.process_time() - cpu0
    server = _cpu_seconds(server_pid) - server0 if server_pid else None
    ep.close()
    lat = sorted(latencies)
    n = len(lat)
    return {
        "requests": n,
        "seconds": duration,
        "rps": n / duration,
        "p50_ms": lat[n // 2] * 1e3 if n else None,
        "p99_ms": lat[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
        "errors": errors,
        "generator_cpu": cpu / duration,
        "server_cpu": server / duration if server is not None else None,
    }


# -- SSE subscribers -------------------------------------------------------------------

_MARK = b"event: changes"


class _SSEConn(asyncio.Protocol):
    """Keeps every received piece with its arrival time; parsing waits until the end.

    The callback does as little as possible so that a hundred streams on one event loop
    do not delay each other's timestamps: arrival time, append, a cheap event count.
    """

    def __init__(self, request: bytes, ready: asyncio.Future[None]) -> None:
        self.request = request
        self.ready = ready
        self.pieces: list[tuple[float, bytes]] = []
        self.events = 0
        self.tail = b""
        self.headers_seen = False
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        self.pieces.append((now, data))
        window = self.tail + data
        self.events += window.count(_MARK)
        self.tail = window[-(len(_MARK) - 1) :]
        if not self.headers_seen and b"\r\n\r\n" in b"".join(p for _, p in self.pieces):
            self.headers_seen = True
            if not self.ready.done():
                self.ready.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("watch stream closed before its headers"))


def parse_sse(pieces: list[tuple[float, bytes]]) -> tuple[int, list[tuple[float, dict[str, Any]]]]:
    """(status, [(arrival time, change)]) from the raw pieces of one chunked SSE response."""
    raw = b""
    at = 0
    status = 0
    chunked = False
    body_started = False
    chunk_buf = b""
    sse_buf = b""
    out: list[tuple[float, dict[str, Any]]] = []
    for t, data in pieces:
        if not body_started:
            raw += data
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                continue
            head = raw[:end].lower()
            status = int(head.split(b" ", 2)[1])
            chunked = b"transfer-encoding: chunked" in head
            body_started = True
            data = raw[end + 4 :]
        if chunked:
            chunk_buf += data
            while True:
                eol = chunk_buf.find(b"\r\n", at)
                if eol < 0:
                    break
                size = int(chunk_buf[at:eol].split(b";")[0], 16)
                if len(chunk_buf) < eol + 2 + size + 2:
                    break
                sse_buf += chunk_buf[eol + 2 : eol + 2 + size]
                at = eol + 2 + size + 2
            chunk_buf, at = chunk_buf[at:], 0
        else:
            sse_buf += data
        while True:
            end = sse_buf.find(b"\n\n")
            if end < 0:
                break
            event, sse_buf = sse_buf[:end], sse_buf[end + 2 :]
            fields: dict[bytes, bytes] = {}
            for line in event.split(b"\n"):
                if line.startswith(b":"):
                    continue
                name, _, value = line.partition(b":")
                fields[name] = value[1:] if value.startswith(b" ") else value
            if fields.get(b"event") == b"changes":
                for change in json.loads(fields[b"data"]):
                    out.append((t, change))
            elif b"event" in fields:
                raise RuntimeError(f"watch stream error: {fields.get(b'data', b'')!r}")
    return status, out


async def _watch(
    port: int, key: str, namespace: str, since: int, conns: int, expect: int, timeout: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET /v1/watch?namespaces={namespace}&since={since} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nAuthorization: Bearer {key}\r\n"
        "Accept: text/event-stream\r\n\r\n"
    ).encode()
    subs: list[_SSEConn] = []
    for _ in range(conns):
        ready: asyncio.Future[None] = loop.create_future()
        _, proto = await loop.create_connection(
            functools.partial(_SSEConn, request, ready), "127.0.0.1", port
        )
        subs.append(proto)
    await asyncio.wait_for(asyncio.gather(*(s.ready for s in subs)), 30)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(s.events >= expect for s in subs):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # anything beyond the expected count would be a duplicate
    for s in subs:
        assert s.transport is not None
        s.transport.close()
    latencies: list[float] = []
    from_stamp: list[float] = []  # from the server's own timestamp of the write
    per_sub: list[int] = []
    arrivals: dict[int, list[float]] = {}
    out_of_order = duplicates = 0
    statuses = set()
    for s in subs:
        status, changes = parse_sse(s.pieces)
        statuses.add(status)
        seen: set[int] = set()
        last = -1
        for t, change in changes:
            value = change["item"]["value"]
            latencies.append(t - value["t"])
            from_stamp.append(t - datetime.fromisoformat(change["time"]).timestamp())
            i = value["i"]
            arrivals.setdefault(i, []).append(t)
            duplicates += i in seen
            out_of_order += i < last
            seen.add(i)
            last = i
        per_sub.append(len(seen))
    latencies.sort()
    from_stamp.sort()
    # first to last subscriber, per write: the cost of the fan-out itself
    spread = sorted(max(ts) - min(ts) for ts in arrivals.values())
    n = len(latencies)
    return {
        "subscribers": conns,
        "statuses": sorted(statuses),
        "delivered": sum(per_sub),
        "min_per_subscriber": min(per_sub) if per_sub else 0,
        "duplicates": duplicates,
        "out_of_order": out_of_order,
        "p50_ms": latencies[n // 2] * 1e3 if n else None,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
        "max_ms": latencies[-1] * 1e3 if n else None,
        "spread_p50_ms": spread[len(spread) // 2] * 1e3 if spread else None,
        "spread_p99_ms": spread[min(len(spread) - 1, int(len(spread) * 0.99))] * 1e3
        if spread
        else None,
        "from_server_stamp_p50_ms": from_stamp[n // 2] * 1e3 if n else None,
        "from_server_stamp_p99_ms": from_stamp[min(n - 1, int(n * 0.99))] * 1e3 if n else None,
    }


# -- entry point -----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.http_load")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve")
    p.add_argument("app", choices=["hello", "hivemem"])
    p.add_argument("--data")
    p.add_argument("--key")
    p = sub.add_parser("load")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--paths-file", required=True, help="one request path per line")
    p.add_argument("--key")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--duration", type=float, default=3.0)
    p.add_argument("--server-pid", type=int, help="report this process's CPU use")
    p = sub.add_parser("watch")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--namespace", default="bench")
    p.add_argument("--since", type=int, required=True)
    p.add_argument("--connections", type=int, default=100)
    p.add_argument("--expect", type=int, required=True, help="events each subscriber awaits")
    p.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        serve(args.app, args.data, args.key)
        return 0
    if args.command == "load":
        with open(args.paths_file) as fh:
            paths = [line.strip() for line in fh if line.strip()]
        result = load(
            args.port,
            paths,
            args.key,
            args.connections,
            args.warmup,
            args.duration,
            args.server_pid,
        )
    else:
        result = asyncio.run(
            _watch(
                args.port,
                args.key,
                args.namespace,
                args.since,
                args.connections,
                args.expect,
                args.timeout,
            )
        )
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
