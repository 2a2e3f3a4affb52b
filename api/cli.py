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

This module holds the parser, ``serve``, ``mcp`` and the entry point; the client
commands are in ``api.commands``, the configuration in ``api.config``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any

from hivemem.api.commands import Progress as Progress
from hivemem.api.commands import (
    _activity,
    _approve,
    _claim,
    _complete,
    _delete,
    _export,
    _get,
    _get_lease,
    _grant,
    _grants,
    _history,
    _import,
    _keepalive,
    _keys,
    _lease,
    _list,
    _namespaces,
    _proposals,
    _put,
    _recall,
    _reject,
    _release,
    _revoke_lease,
    _search,
    _update,
    _watch,
    _whoami,
)
from hivemem.api.commands import keepalive_stream as keepalive_stream
from hivemem.api.config import DEFAULT_CONFIG as DEFAULT_CONFIG
from hivemem.api.config import DEFAULT_URL, _pick, client_options, load_config, server_settings
from hivemem.api.settings import Settings
from hivemem.memory.client import Client
from hivemem.memory.errors import Conflict, HivememError, InvalidInput

__all__ = ["main", "build_parser", "load_config", "client_options", "server_settings"]

_WORKER_SETTINGS = "HIVEMEM_SERVE_SETTINGS"  # settings handed to --workers processes


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
