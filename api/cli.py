"""``hivemem``: run the server, or talk to one.

    hivemem serve --data ./data --port 8080
    hivemem put team/notes plan '{"step": 1}' --text "Deploy on Friday"
    hivemem search "when is the deploy?" --ns team
    hivemem export --prefix team -o team.jsonl && hivemem import team.jsonl

Configuration, strongest first: flags; environment (``HIVEMEM_URL``,
``HIVEMEM_API_KEY``, ``HIVEMEM_DATA``, ``HIVEMEM_HOST``, ``HIVEMEM_PORT``,
``HIVEMEM_DURABILITY``, ``HIVEMEM_ADMIN_KEY``, ``HIVEMEM_WORKERS``, and every other
``HIVEMEM_<SETTING>`` of ``api.settings.Settings``); a TOML file (``--config FILE``,
``HIVEMEM_CONFIG`` or ``~/.config/hivemem/config.toml``) with the same names in
lowercase (``url``, ``api_key``, ``data``, ``port``, …); then the defaults.

Results are JSON on stdout (lists as JSON Lines); errors are one line on stderr and a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import IO, Any

from hivemem.api.settings import Settings
from hivemem.memory.client import Client
from hivemem.memory.errors import Conflict, HivememError, InvalidInput, NotFound

__all__ = ["main", "build_parser", "load_config", "client_options", "server_settings"]

DEFAULT_URL = "http://127.0.0.1:8080"
DEFAULT_CONFIG = "~/.config/hivemem/config.toml"
_WORKER_SETTINGS = "HIVEMEM_SERVE_SETTINGS"  # settings handed to --workers processes


# -- configuration -------------------------------------------------------------------


def load_config(path: str | None, env: Mapping[str, str]) -> dict[str, Any]:
    """The TOML config file's table ({} when the default file does not exist)."""
    explicit = path or env.get("HIVEMEM_CONFIG")
    target = Path(explicit or DEFAULT_CONFIG).expanduser()
    if not explicit and not target.is_file():
        return {}
    try:
        with target.open("rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise InvalidInput("config", f"cannot read {target}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidInput("config", f"{target} is not TOML: {exc}") from None


def _pick(flag: Any, env: Mapping[str, str], names: Sequence[str], cfg: Any, default: Any) -> Any:
    if flag is not None:
        return flag
    for name in names:
        if env.get(name):
            return env[name]
    return cfg if cfg is not None else default


def client_options(
    args: argparse.Namespace, env: Mapping[str, str], cfg: Mapping[str, Any]
) -> tuple[str, str | None]:
    """(url, api_key) by precedence: flag, environment, config file, default."""
    url = _pick(args.url, env, ["HIVEMEM_URL"], cfg.get("url"), DEFAULT_URL)
    key = _pick(args.api_key, env, ["HIVEMEM_API_KEY"], cfg.get("api_key"), None)
    return str(url), (str(key) if key else None)


def server_settings(
    args: argparse.Namespace, env: Mapping[str, str], cfg: Mapping[str, Any]
) -> Settings:
    """The server's ``Settings`` by precedence: flag, environment, config file, default."""
    names = {f.name for f in fields(Settings)}
    merged: dict[str, str] = {}
    for name, value in cfg.items():  # the config file is the weakest source
        field = "data_dir" if name == "data" else name
        if field in names:
            merged[f"HIVEMEM_{field.upper()}"] = str(value)
    merged.update(env)
    if env.get("HIVEMEM_DATA"):
        merged["HIVEMEM_DATA_DIR"] = env["HIVEMEM_DATA"]
    flags = {
        "data_dir": args.data,
        "host": args.host,
        "port": args.port,
        "durability": args.durability,
        "admin_key": args.admin_key,
        "max_inflight_writes": getattr(args, "max_inflight_writes", None),
    }
    try:
        return Settings.from_env(merged, **flags)
    except ValueError as exc:
        raise InvalidInput("settings", str(exc)) from None


# -- progress --------------------------------------------------------------------------


class Progress:
    """A one-line counter on stderr: records, rate and elapsed time."""

    def __init__(self, label: str, enabled: bool, stream: IO[str] | None = None) -> None:
        self.label = label
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.count = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, count: int) -> None:
        self.count = count
        now = time.monotonic()
        if self.enabled and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self.started, 1e-9)
        line = (
            f"\r{self.label}: {self.count:,} records  {self.count / elapsed:,.0f}/s  "
            f"{int(elapsed) // 60:d}:{elapsed % 60:04.1f}"
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


def _progress(args: argparse.Namespace, label: str) -> Progress:
    return Progress(label, bool(args.progress) or sys.stderr.isatty())


# -- output --------------------------------------------------------------------------


def _emit(obj: Any, out: IO[str]) -> None:
    if hasattr(obj, "model_dump"):
        obj = obj.model_dump(mode="json")
    out.write(json.dumps(obj, ensure_ascii=False) + "\n")


def _json_arg(raw: str, name: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidInput(
            name, f"is not JSON: {raw!r} (quote a string value: '\"text\"')"
        ) from None


# -- client commands ---------------------------------------------------------------


def _put(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    item = c.put(
        a.namespace,
        a.key,
        _json_arg(a.value, "VALUE_JSON"),
        text=a.text,
        metadata=_json_arg(a.metadata, "--metadata") if a.metadata is not None else None,
        if_version=a.if_version,
        merge=a.merge,
        base_version=a.base_version,
        on_conflict=a.on_conflict,
        ttl=a.ttl,
        lease=a.lease,
        fence=a.fence,
        thread=a.thread,
    )
    _emit(item, out)


def _update(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    item = c.update(
        a.namespace,
        a.key,
        _json_arg(a.ops, "OPS_JSON"),
        if_version=a.if_version,
        create=not a.no_create,
        text=a.text,
        metadata=_json_arg(a.metadata, "--metadata") if a.metadata is not None else None,
        ttl=a.ttl,
    )
    _emit(item, out)


def _get(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    item = c.get(a.namespace, a.key, at_revision=a.at_revision, min_revision=a.min_revision)
    _emit(item, out)


def _delete(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.delete(a.namespace, a.key, if_version=a.if_version, fence=a.fence), out)


def _history(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    for item in c.history(a.namespace, a.key):
        _emit(item, out)


def _list(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    left, cursor = a.limit, None
    while left > 0:
        page = c.list(a.prefix, filter=filt, limit=min(left, 1000), cursor=cursor)
        for item in page.items:
            _emit(item, out)
        left -= len(page.items)
        cursor = page.cursor
        if cursor is None:
            return


def _namespaces(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    cursor = None
    while True:
        page = c.namespaces(a.prefix, depth=a.depth, limit=1000, cursor=cursor)
        for info in page.namespaces:
            _emit(info, out)
        cursor = page.cursor
        if cursor is None:
            return


def _activity(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    report = c.activity(a.prefix, window=a.window, bucket=a.bucket, depth=a.depth, limit=a.limit)
    if not a.totals:
        _emit(report, out)
        return
    metrics = ("writes", "conflicts", "expiries", "lagged")
    for group, series in (("namespace", report.namespaces), ("author", report.authors)):
        for s in series:
            sums = {m: sum(getattr(s, m)) for m in metrics}
            _emit({group: s.name, **sums}, out)


def _search(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    hits = c.search(
        a.query,
        namespaces=a.ns,
        k=a.k,
        mode=a.mode,
        filter=filt,
        thread=a.thread,
        at_revision=a.at_revision,
        min_revision=a.min_revision,
    )
    for hit in hits:
        _emit(hit, out)


def _recall(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    found = c.recall(
        a.query,
        namespaces=a.ns,
        budget_tokens=a.budget,
        k=a.k,
        mode=a.mode,
        filter=filt,
        thread=a.thread,
        at_revision=a.at_revision,
    )
    if a.json:
        _emit(found, out)
    else:
        out.write(found.context + "\n")


def _watch(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    filt = _json_arg(a.filter, "--filter") if a.filter is not None else None
    with c.watch(
        a.ns, since=a.since, thread=a.thread, query=a.query, threshold=a.threshold, filter=filt
    ) as stream:
        for change in stream:
            out.write(change.model_dump_json() + "\n")
            out.flush()


def _lease(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.lease(a.ttl), out)


def _keepalive(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    if not a.stream:
        _emit(c.keepalive(a.lease_id), out)
        return
    keepalive_stream(c, a.lease_id, out, every=a.every)


def keepalive_stream(
    c: Client, lease_id: str, out: IO[str], every: float | None = None, count: int | None = None
) -> None:
    """Renew over the WebSocket stream every ``every`` seconds (ttl / 3 by default) until
    interrupted (or ``count`` renewals); closing only stops renewing, it does not revoke."""
    from urllib.parse import quote

    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    from hivemem.memory.client._base import error_from_problem
    from hivemem.memory.models import Lease

    url = c.base_url.replace("http", "ws", 1) + f"/v1/leases/{quote(lease_id, safe='')}"
    headers = {"Authorization": f"Bearer {c.api_key}"} if c.api_key else {}
    done = 0
    with connect(url + "/keepalive/ws", additional_headers=headers) as ws:
        while count is None or done < count:
            ws.send("{}")
            try:
                body = json.loads(ws.recv())
            except ConnectionClosed:
                raise InvalidInput("lease_id", "the server closed the keepalive stream") from None
            if "error" in body:
                raise error_from_problem(0, body["error"])
            lease = Lease.model_validate(body)
            out.write(lease.model_dump_json() + "\n")
            out.flush()
            done += 1
            if count is None or done < count:
                time.sleep(every if every is not None else max(lease.ttl / 3, 0.05))


def _claim(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    got = c.claim(
        a.namespace,
        a.key,
        lease=a.lease,
        ttl=a.ttl,
        filter=_json_arg(a.filter, "--filter") if a.filter is not None else None,
        max_attempts=a.max_attempts,
    )
    if got is None:
        raise NotFound("no open task to claim")
    _emit(got, out)


def _complete(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    value = _json_arg(a.value, "VALUE_JSON") if a.value is not None else None
    _emit(c.complete(a.token, value), out)


def _release(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.release(a.token), out)


def _proposals(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    for p in c.proposals(a.prefix, status=None if a.status == "any" else a.status, limit=a.limit):
        _emit(p, out)


def _approve(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.approve(a.proposal_id, a.reason), out)


def _reject(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.reject(a.proposal_id, a.reason), out)


def _revoke_lease(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    c.revoke_lease(a.lease_id)


def _get_lease(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit(c.get_lease(a.lease_id), out)


def _keys(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    if a.keys_command == "create":
        _emit(c.create_key(a.principal), out)
    elif a.keys_command == "revoke":
        c.revoke_key(a.id)
    else:
        for info in c.keys(a.principal):
            _emit(info, out)


def _grant(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    if a.revoke:
        c.revoke(a.principal, a.prefix)
    elif a.permission is None:
        raise InvalidInput(
            "PERMISSION", "is required (read, propose, write or admin) unless --revoke"
        )
    else:
        _emit(c.grant(a.principal, a.prefix, a.permission), out)


def _grants(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    for g in c.grants(a.principal):
        _emit(g, out)


def _whoami(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    _emit({"principal": c.principal, "url": c.base_url}, out)


def _export(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    progress = _progress(a, "export")
    target = open(a.output, "w", encoding="utf-8") if a.output else out  # noqa: SIM115
    try:
        for n, record in enumerate(c.export(a.prefix, vectors=not a.no_vectors), 1):
            target.write(json.dumps(record, ensure_ascii=False) + "\n")
            progress.update(n)
    finally:
        if target is not out:
            target.close()
        progress.close()


def _records(stream: IO[str]) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(stream, 1):
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                raise InvalidInput("FILE", f"line {n} is not JSON") from None


def _import(c: Client, a: argparse.Namespace, out: IO[str]) -> None:
    from hivemem.memory.client._base import import_chunks

    progress = _progress(a, "import")
    source = sys.stdin if a.file == "-" else open(a.file, encoding="utf-8")  # noqa: SIM115
    total = 0
    try:
        for chunk in import_chunks(_records(source), a.batch):
            total += c.import_items(chunk, batch=a.batch)
            progress.update(total)
    finally:
        if source is not sys.stdin:
            source.close()
        progress.close()
    _emit({"imported": total}, out)


Command = Callable[[Client, argparse.Namespace, IO[str]], None]


# -- serve ---------------------------------------------------------------------------


def _bind(host: str, port: int) -> Any:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets whose
    # proto says TCP; with proto 0 every keep-alive request waits ~40 ms (delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise InvalidInput("port", f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def worker_app() -> Any:
    """The app of one ``--workers`` process (settings come from the parent)."""
    from hivemem.api.app import create_app

    return create_app(Settings(**json.loads(os.environ[_WORKER_SETTINGS])))


def serve(settings: Settings, workers: int = 1, log_level: str = "info") -> None:
    """Run the REST server in this process (or ``workers`` processes on one socket)."""
    import uvicorn

    sock = _bind(settings.host, settings.port)
    where = f"http://{settings.host}:{settings.port}"
    print(f"hivemem: serving {settings.data_dir} on {where}", file=sys.stderr, flush=True)
    if workers <= 1:
        from hivemem.api.app import create_app

        config = uvicorn.Config(create_app(settings), log_level=log_level)
        uvicorn.Server(config).run(sockets=[sock])
        return
    # Binding the socket here and handing it to the supervisor keeps TCP_NODELAY, which
    # `uvicorn --workers` loses (see FACTS.md); every worker opens the same store.
    import inspect

    from uvicorn.supervisors import Multiprocess

    os.environ[_WORKER_SETTINGS] = json.dumps(asdict(settings))
    config = uvicorn.Config(
        "hivemem.api.cli:worker_app", factory=True, workers=workers, log_level=log_level
    )
    if "target" in inspect.signature(Multiprocess).parameters:  # uvicorn < 0.50
        server = uvicorn.Server(config)
        Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()


def run_mcp(args: argparse.Namespace, env: Mapping[str, str], cfg: Mapping[str, Any]) -> int:
    """``hivemem mcp``: the MCP tools over stdio, on a server or a local data directory.

    Nothing but the protocol may reach stdout, so messages go to stderr.
    """
    from hivemem.adapters.mcp import create_server

    target: Any
    if args.data:
        from hivemem.memory import Memory

        target = Memory.open(args.data)
    else:
        url, key = client_options(args, env, cfg)
        target = Client(url, key, timeout=args.timeout)
    try:
        create_server(lambda ctx: target).run()
    finally:
        target.close()
    return 0


# -- parser --------------------------------------------------------------------------


def _common() -> argparse.ArgumentParser:
    """Options every subcommand accepts (before or after its name)."""
    p = argparse.ArgumentParser(add_help=False)
    sup = argparse.SUPPRESS
    p.add_argument("--config", metavar="FILE", default=sup, help="TOML config file")
    p.add_argument("--url", default=sup, help=f"server URL (default {DEFAULT_URL})")
    p.add_argument("--api-key", default=sup, help="API key (Bearer token)")
    p.add_argument("--timeout", type=float, default=sup, help="seconds per request")
    return p


_MIN_REVISION = "first wait until the replica has applied revision N (read-your-writes)"


def build_parser() -> argparse.ArgumentParser:
    """The ``hivemem`` argument parser."""
    # Two instances: parents share action objects, and the top level's defaults (None)
    # must not leak into the subcommands' copies (SUPPRESS), or they would overwrite a
    # flag given before the subcommand.
    common = _common()
    parser = argparse.ArgumentParser(
        prog="hivemem",
        description="Versioned shared memory for multi-agent systems.",
        parents=[_common()],
    )
    parser.set_defaults(config=None, url=None, api_key=None, timeout=30.0)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def cmd(name: str, func: Any, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = cmd("serve", None, "run the REST server")
    p.add_argument("--data", help="data directory (default ./data)")
    p.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default 8080)")
    p.add_argument("--durability", choices=["full", "normal"], help="commit durability")
    p.add_argument("--admin-key", help="API key of the 'admin' principal on a new store")
    p.add_argument("--workers", type=int, help="worker processes on one socket (default 1)")
    p.add_argument(
        "--max-inflight-writes",
        type=int,
        metavar="N",
        help="writes always run at once per process; up to 4x more while writes finish "
        "within HIVEMEM_SHED_LATENCY on average, the rest are answered 503 + Retry-After "
        "(default 16, 0 = no limit)",
    )
    p.add_argument("--log-level", default="info", help="uvicorn log level")

    p = cmd("mcp", None, "serve the MCP tools over stdio (to --url, or over --data)")
    p.add_argument("--data", help="serve a local data directory instead of a server")

    p = cmd("put", _put, "write an item")
    p.add_argument("namespace", metavar="NS")
    p.add_argument("key", metavar="KEY")
    p.add_argument("value", metavar="VALUE_JSON")
    p.add_argument("--text")
    p.add_argument("--metadata", metavar="JSON")
    p.add_argument("--if-version", type=int, metavar="N")
    p.add_argument("--merge", choices=["replace", "patch", "three_way"], default="replace")
    p.add_argument("--base-version", type=int, metavar="N")
    p.add_argument("--on-conflict", choices=["ours", "theirs"])
    p.add_argument("--ttl", type=float, metavar="SECONDS")
    p.add_argument("--lease", metavar="LEASE_ID", help="attach the item to a lease")
    p.add_argument("--fence", metavar="TOKEN", help="only while this claim is current")
    p.add_argument("--thread", metavar="NAME", help="the conversation the item belongs to")

    p = cmd("update", _update, "apply JSON Patch / increment / append / set ops atomically")
    p.add_argument("namespace", metavar="NS")
    p.add_argument("key", metavar="KEY")
    p.add_argument("ops", metavar="OPS_JSON", help='e.g. \'[{"op": "increment", "path": "/n"}]\'')
    p.add_argument("--if-version", type=int, metavar="N")
    p.add_argument("--no-create", action="store_true", help="fail if the item does not exist")
    p.add_argument("--text", help="new text (re-embedded); default: keep")
    p.add_argument("--metadata", metavar="JSON", help="new metadata; default: keep")
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="restart the expiry")

    p = cmd("get", _get, "read an item")
    p.add_argument("namespace", metavar="NS")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--at-revision", type=int, metavar="N")
    p.add_argument("--min-revision", type=int, metavar="N", help=_MIN_REVISION)

    p = cmd("delete", _delete, "delete an item (history is kept)")
    p.add_argument("namespace", metavar="NS")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--if-version", type=int, metavar="N")
    p.add_argument("--fence", metavar="TOKEN", help="only while this claim is current")

    p = cmd("history", _history, "every version of an item")
    p.add_argument("namespace", metavar="NS")
    p.add_argument("key", metavar="KEY")

    p = cmd("list", _list, "items under a namespace prefix")
    p.add_argument("--prefix", default="")
    p.add_argument("--filter", metavar="JSON")
    p.add_argument("--limit", type=int, default=100)

    p = cmd("namespaces", _namespaces, "namespaces with their live item counts")
    p.add_argument("--prefix", default="")
    p.add_argument("--depth", type=int, metavar="N", help="cut namespaces to N segments")

    p = cmd("activity", _activity, "writes, conflicts, expiries, lagged watchers over time")
    p.add_argument("--prefix", default="")
    p.add_argument("--window", type=int, default=3600, metavar="SECONDS")
    p.add_argument("--bucket", type=int, metavar="SECONDS", help="a multiple of 10")
    p.add_argument("--depth", type=int, metavar="N", help="group namespaces cut to N segments")
    p.add_argument("--limit", type=int, default=20, help="series per group")
    p.add_argument("--totals", action="store_true", help="one line per series, summed")

    p = cmd("search", _search, "search by meaning and keywords")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--ns", action="append", metavar="PREFIX", help="repeatable")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default="hybrid")
    p.add_argument("--filter", metavar="JSON")
    p.add_argument("--thread", metavar="NAME", help="only items of this thread")
    p.add_argument("--at-revision", type=int, metavar="N", help="search the state at N")
    p.add_argument("--min-revision", type=int, metavar="N", help=_MIN_REVISION)

    p = cmd("recall", _recall, "a prompt-ready context of the best hits under a token budget")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--ns", action="append", metavar="PREFIX", help="repeatable")
    p.add_argument("--budget", type=int, default=1500, metavar="TOKENS")
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--mode", choices=["hybrid", "vector", "keyword"], default="hybrid")
    p.add_argument("--filter", metavar="JSON")
    p.add_argument("--thread", metavar="NAME")
    p.add_argument("--at-revision", type=int, metavar="N")
    p.add_argument("--json", action="store_true", help="the whole Recall, not just the context")

    p = cmd("watch", _watch, "stream changes, one JSON line each")
    p.add_argument("--ns", action="append", metavar="PREFIX", help="repeatable")
    p.add_argument("--since", type=int, default=0, metavar="REVISION")
    p.add_argument("--query", help="only changes about this (semantic subscription)")
    p.add_argument("--threshold", type=float, help="minimum cosine similarity (0.25)")
    p.add_argument("--filter", metavar="JSON", help="only changes whose metadata matches")
    p.add_argument("--thread", metavar="NAME", help="only changes of this thread")

    p = cmd("lease", _lease, "grant a lease")
    p.add_argument("--ttl", type=float, default=10.0, metavar="SECONDS")

    p = cmd("keepalive", _keepalive, "renew a lease (--stream: keep renewing over a WebSocket)")
    p.add_argument("lease_id", metavar="LEASE_ID")
    p.add_argument("--stream", action="store_true", help="renew until interrupted")
    p.add_argument("--every", type=float, metavar="SECONDS", help="default: ttl / 3")

    p = cmd("revoke-lease", _revoke_lease, "end a lease now (its items expire)")
    p.add_argument("lease_id", metavar="LEASE_ID")

    p = cmd("get-lease", _get_lease, "read a lease")
    p.add_argument("lease_id", metavar="LEASE_ID")

    p = cmd("claim", _claim, "claim a task (the oldest open one unless KEY); exit 1 if none")
    p.add_argument("namespace", metavar="NS")
    p.add_argument("key", metavar="KEY", nargs="?")
    p.add_argument("--lease", metavar="LEASE_ID")
    p.add_argument("--ttl", type=float, metavar="SECONDS")
    p.add_argument("--filter", metavar="JSON")
    p.add_argument("--max-attempts", type=int, metavar="N")

    p = cmd("complete", _complete, "mark a claimed task done")
    p.add_argument("token", metavar="TOKEN")
    p.add_argument("value", metavar="VALUE_JSON", nargs="?")

    p = cmd("release", _release, "give a claimed task back")
    p.add_argument("token", metavar="TOKEN")

    p = cmd("proposals", _proposals, "the review queue: proposals you may see")
    p.add_argument("--prefix", default="")
    p.add_argument(
        "--status", choices=["pending", "approved", "rejected", "expired", "any"], default="pending"
    )
    p.add_argument("--limit", type=int, default=100)

    p = cmd("approve", _approve, "apply a pending proposal")
    p.add_argument("proposal_id", metavar="PROPOSAL_ID")
    p.add_argument("--reason")

    p = cmd("reject", _reject, "reject a pending proposal")
    p.add_argument("proposal_id", metavar="PROPOSAL_ID")
    p.add_argument("--reason")

    p = cmd("keys", _keys, "API keys")
    keys = p.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    keys.add_parser("create", parents=[common], help="new key").add_argument("principal")
    keys.add_parser("list", parents=[common], help="list keys").add_argument(
        "--principal", default=None
    )
    keys.add_parser("revoke", parents=[common], help="revoke a key").add_argument("id")

    p = cmd("grant", _grant, "grant (or --revoke) a permission on a prefix")
    p.add_argument("principal", metavar="PRINCIPAL")
    p.add_argument("prefix", metavar="PREFIX")
    p.add_argument(
        "permission", metavar="PERMISSION", nargs="?", choices=["read", "propose", "write", "admin"]
    )
    p.add_argument("--revoke", action="store_true", help="remove the grant instead")

    p = cmd("grants", _grants, "list grants")
    p.add_argument("principal", nargs="?")

    cmd("whoami", _whoami, "the principal of the API key")

    p = cmd("export", _export, "current items as JSON Lines")
    p.add_argument("--prefix", default="")
    p.add_argument("-o", "--output", metavar="FILE")
    p.add_argument("--no-vectors", action="store_true")
    p.add_argument("--progress", action="store_true", help="progress on stderr")

    p = cmd("import", _import, "write JSON Lines records back ('-' reads stdin)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--batch", type=int, default=500, help="records per request")
    p.add_argument("--progress", action="store_true", help="progress on stderr")
    return parser


# -- entry point ---------------------------------------------------------------------


def _report(err: HivememError) -> None:
    print(f"hivemem: {err.title.lower()}: {err.detail}", file=sys.stderr)
    if isinstance(err, Conflict):
        for c in err.conflicts:
            print(
                f"  {c.path}: base={json.dumps(c.base)} ours={json.dumps(c.ours)} "
                f"theirs={json.dumps(c.theirs)}",
                file=sys.stderr,
            )
        if err.current is not None:
            print(f"  current: {err.current.model_dump_json()}", file=sys.stderr)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """Run the ``hivemem`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    env = os.environ if env is None else env
    try:
        cfg = load_config(args.config, env)
        if args.command == "serve":
            workers = int(_pick(args.workers, env, ["HIVEMEM_WORKERS"], cfg.get("workers"), 1))
            serve(server_settings(args, env, cfg), workers=workers, log_level=args.log_level)
            return 0
        if args.command == "mcp":
            return run_mcp(args, env, cfg)
        url, key = client_options(args, env, cfg)
        with Client(url, key, timeout=args.timeout) as client:
            args.func(client, args, sys.stdout)
        return 0
    except HivememError as err:
        _report(err)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # stdout went away (``| head``): stop quietly, and keep Python from complaining
        # when it flushes stdout on exit.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        print(f"hivemem: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
