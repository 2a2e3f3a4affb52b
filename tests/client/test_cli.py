"""The ``hivemem`` command against a live server, its configuration, and ``serve``."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from hivemem.api.cli import build_parser, client_options, load_config, main, server_settings
from hivemem.memory.client import Client
from hivemem.memory.errors import Conflict
from tests.client.conftest import ADMIN_KEY, LiveServer, free_socket
from tests.client.sides import normalize
from tests.embedders import HashEmbedder

pytestmark = pytest.mark.timeout(20)


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the developer's ~/.config/hivemem and HIVEMEM_* out of these tests."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("HIVEMEM_URL", "HIVEMEM_API_KEY", "HIVEMEM_CONFIG"):
        monkeypatch.delenv(name, raising=False)


def run(
    capsys: pytest.CaptureFixture[str], server: LiveServer | None, *argv: str
) -> tuple[int, str, str]:
    """Run ``hivemem`` (pointed at ``server``); return (status, stdout, stderr)."""
    env = {"HIVEMEM_URL": server.url, "HIVEMEM_API_KEY": ADMIN_KEY} if server else {}
    status = main(list(argv), env=env)
    out, err = capsys.readouterr()
    return status, out, err


def lines(out: str) -> list[Any]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


# -- client commands -----------------------------------------------------------------


def test_put_get_history_delete(capsys: pytest.CaptureFixture[str], server: LiveServer) -> None:
    status, out, _ = run(
        capsys, server, "put", "team/notes", "plan", '{"step": 1}', "--text", "Deploy on Friday",
        "--metadata", '{"kind": "plan"}',
    )  # fmt: skip
    assert status == 0
    assert json.loads(out)["version"] == 1
    run(capsys, server, "put", "team/notes", "plan", '{"step": 2}', "--if-version", "1")
    status, out, _ = run(capsys, server, "get", "team/notes", "plan")
    item = json.loads(out)
    assert (item["value"], item["text"], item["metadata"]) == ({"step": 2}, None, {})
    _, out, _ = run(capsys, server, "get", "team/notes", "plan", "--at-revision", "1")
    assert json.loads(out)["text"] == "Deploy on Friday"
    _, out, _ = run(capsys, server, "delete", "team/notes", "plan")
    assert json.loads(out)["deleted"] is True
    _, out, _ = run(capsys, server, "history", "team/notes", "plan")
    assert [i["version"] for i in lines(out)] == [1, 2, 3]
    _, out, _ = run(
        capsys, server, "update", "team/notes", "tally", '[{"op": "increment", "path": "/n"}]'
    )
    assert json.loads(out)["value"] == {"n": 1}
    code, _, err = run(
        capsys, server, "update", "team/notes", "tally", '[{"op": "increment", "path": "/n"}]',
        "--if-version", "7",
    )  # fmt: skip
    assert code != 0 and "expected version 7" in err


def test_search_and_list(capsys: pytest.CaptureFixture[str], server: LiveServer) -> None:
    with server.client() as c:
        c.put("team/ops", "deploy", 1, text="deploy on friday", metadata={"p": 2})
        c.put("team/dev", "lunch", 2, text="lunch on friday", metadata={"p": 1})
        c.put("other", "deploy", 3, text="deploy elsewhere")
    _, out, _ = run(
        capsys, server, "search", "deploy", "--ns", "team", "-k", "5", "--mode", "keyword"
    )
    assert [h["item"]["key"] for h in lines(out)] == ["deploy"]
    _, out, _ = run(capsys, server, "search", "friday", "--ns", "team/ops", "--ns", "team/dev")
    assert {h["item"]["namespace"] for h in lines(out)} == {"team/ops", "team/dev"}
    _, out, _ = run(capsys, server, "search", "friday", "--filter", '{"p": {"$gte": 2}}')
    assert [h["item"]["key"] for h in lines(out)] == ["deploy"]
    _, out, _ = run(capsys, server, "list", "--prefix", "team", "--limit", "1")
    assert len(lines(out)) == 1
    _, out, _ = run(capsys, server, "list")
    assert len(lines(out)) == 3
    _, out, _ = run(capsys, server, "namespaces", "--depth", "1")
    assert lines(out) == [{"namespace": "other", "items": 1}, {"namespace": "team", "items": 2}]


def test_activity_per_namespace_and_author(
    capsys: pytest.CaptureFixture[str], server: LiveServer
) -> None:
    with server.client() as c:
        c.put("team/ops", "deploy", 1)
        c.put("team/dev", "lunch", 2)
        with pytest.raises(Conflict):
            c.put("team/dev", "lunch", 3, if_version=0)
    _, out, _ = run(capsys, server, "activity", "--depth", "1", "--window", "600", "--totals")
    assert lines(out) == [
        {"namespace": "team", "writes": 2, "conflicts": 1, "expiries": 0, "lagged": 0},
        {"author": "admin", "writes": 2, "conflicts": 1, "expiries": 0, "lagged": 0},
    ]
    status, out, _ = run(capsys, server, "activity", "--window", "600", "--bucket", "60")
    report = json.loads(out)
    assert status == 0 and report["bucket"] == 60 and sum(report["total"]["writes"]) == 2
    status, _, err = run(capsys, server, "activity", "--bucket", "7")
    assert status != 0 and "bucket" in err


def test_export_then_import_round_trips(
    capsys: pytest.CaptureFixture[str],
    make_server: Callable[..., LiveServer],
    tmp_path: Path,
) -> None:
    source, target = make_server(), make_server()
    with source.client() as c:
        c.put_many(
            [
                {"namespace": f"team/n{i % 3}", "key": f"k{i}", "value": {"i": i}, "text": f"t {i}"}
                for i in range(25)
            ]
        )
        c.put("other", "x", "not exported")
    dump = tmp_path / "team.jsonl"
    status, _, err = run(
        capsys, source, "export", "--prefix", "team", "-o", str(dump), "--progress"
    )
    assert status == 0
    assert "export: 25 records" in err
    assert len(dump.read_text().splitlines()) == 25
    status, out, err = run(capsys, target, "import", str(dump), "--batch", "10", "--progress")
    assert (status, json.loads(out)) == (0, {"imported": 25})
    assert "import: 25 records" in err
    with source.client() as a, target.client() as b:
        want, got = a.list("team", limit=100).items, b.list("team", limit=100).items
        assert [normalize(i) for i in got] == [
            {**normalize(i), "revision": n // 10 + 1} for n, i in enumerate(want)
        ]
        hits = b.search("t 7", namespaces=["team"], mode="vector", k=1)
        assert hits[0].item.key == "k7"  # vectors travelled with the records
    _, out, _ = run(capsys, source, "export", "--prefix", "team/n0", "--no-vectors")
    assert len(lines(out)) == 9 and "vector" not in lines(out)[0]


def test_import_reads_stdin(
    capsys: pytest.CaptureFixture[str], server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = "".join(
        json.dumps({"namespace": "team", "key": f"k{i}", "value": i}) + "\n" for i in range(3)
    )
    monkeypatch.setattr("sys.stdin", io.StringIO(records + "\n"))
    status, out, _ = run(capsys, server, "import", "-")
    assert (status, json.loads(out)) == (0, {"imported": 3})


def test_watch_prints_one_json_line_per_change(
    capsys: pytest.CaptureFixture[str], server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with server.client() as c:
        for i in range(7):  # team gets revisions 2, 4 and 6
            c.put("team/w" if i % 2 else "other", f"k{i}", i)

    class Head(io.StringIO):
        """Like ``| head -2``: the pipe closes after two lines."""

        def write(self, s: str) -> int:
            if self.getvalue().count("\n") >= 2:
                raise BrokenPipeError
            return super().write(s)

    head = Head()
    monkeypatch.setattr("sys.stdout", head)
    status = main(["watch", "--ns", "team", "--since", "1"], env={
        "HIVEMEM_URL": server.url, "HIVEMEM_API_KEY": ADMIN_KEY,
    })  # fmt: skip
    assert status == 0
    assert [(c["revision"], c["key"]) for c in lines(head.getvalue())] == [(2, "k1"), (4, "k3")]


def test_keys_and_grants(capsys: pytest.CaptureFixture[str], server: LiveServer) -> None:
    status, out, _ = run(capsys, server, "keys", "create", "agent-1")
    created = json.loads(out)
    assert status == 0 and created["secret"].startswith("hm_")
    _, out, _ = run(capsys, server, "grant", "agent-1", "team", "write")
    assert json.loads(out) == {"principal": "agent-1", "prefix": "team", "permission": "write"}
    _, out, _ = run(capsys, server, "grants", "agent-1")
    assert len(lines(out)) == 1
    agent = {"HIVEMEM_URL": server.url, "HIVEMEM_API_KEY": created["secret"]}
    assert main(["put", "team/x", "k", "1"], env=agent) == 0
    assert main(["whoami"], env=agent) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["principal"] == "agent-1"
    assert main(["put", "other", "k", "1"], env=agent) == 1
    assert "permission denied" in capsys.readouterr().err
    run(capsys, server, "grant", "--revoke", "agent-1", "team")
    _, out, _ = run(capsys, server, "keys", "list", "--principal", "agent-1")
    assert [k["id"] for k in lines(out)] == [created["id"]]
    run(capsys, server, "keys", "revoke", created["id"])
    assert main(["get", "team/x", "k"], env=agent) == 1
    assert "unauthenticated" in capsys.readouterr().err


# -- errors --------------------------------------------------------------------------


def test_errors_are_one_line_on_stderr_and_a_nonzero_status(
    capsys: pytest.CaptureFixture[str], server: LiveServer
) -> None:
    status, out, err = run(capsys, server, "get", "team", "missing")
    assert (status, out) == (1, "")
    assert err.startswith("hivemem: not found:") and "Traceback" not in err
    status, _, err = run(capsys, server, "put", "Team", "k", "1")
    assert status == 1 and "namespace" in err
    status, _, err = run(capsys, server, "put", "team", "k", "not json")
    assert status == 1 and "VALUE_JSON" in err
    run(capsys, server, "put", "team", "k", '{"a": 1}')
    status, _, err = run(capsys, server, "put", "team", "k", '{"a": 2}', "--if-version", "7")
    assert status == 1 and "conflict" in err and '"version":1' in err


def test_an_unreachable_server_is_reported(capsys: pytest.CaptureFixture[str]) -> None:
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    status = main(["get", "team", "k", "--url", f"http://127.0.0.1:{port}"], env={})
    assert status == 1
    assert "unavailable" in capsys.readouterr().err


# -- configuration -------------------------------------------------------------------


def test_flags_beat_environment_beat_config_file_beat_defaults(tmp_path: Path) -> None:
    cfg_file = tmp_path / "hivemem.toml"
    cfg_file.write_text('url = "http://file:1"\napi_key = "file-key"\nport = 9001\ndata = "/f"\n')
    parser = build_parser()
    cfg = load_config(str(cfg_file), {})

    args = parser.parse_args(["get", "ns", "k"])
    assert client_options(args, {}, {}) == ("http://127.0.0.1:8080", None)
    assert client_options(args, {}, cfg) == ("http://file:1", "file-key")
    env = {"HIVEMEM_URL": "http://env:2"}
    assert client_options(args, env, cfg) == ("http://env:2", "file-key")
    args = parser.parse_args(["get", "ns", "k", "--url", "http://flag:3"])
    assert client_options(args, env, cfg) == ("http://flag:3", "file-key")
    args = parser.parse_args(["--api-key", "flag-key", "get", "ns", "k"])
    assert client_options(args, env, cfg)[1] == "flag-key"

    args = parser.parse_args(["serve"])
    s = server_settings(args, {}, {})
    assert (s.data_dir, s.host, s.port, s.durability) == ("./data", "127.0.0.1", 8080, "full")
    s = server_settings(args, {}, cfg)
    assert (s.data_dir, s.port) == ("/f", 9001)
    s = server_settings(args, {"HIVEMEM_PORT": "9002", "HIVEMEM_DATA": "/e"}, cfg)
    assert (s.data_dir, s.port) == ("/e", 9002)
    args = parser.parse_args(["serve", "--port", "9003", "--data", "/x", "--durability", "normal"])
    s = server_settings(args, {"HIVEMEM_PORT": "9002", "HIVEMEM_WATCH_QUEUE": "7"}, cfg)
    assert (s.data_dir, s.port, s.durability, s.watch_queue) == ("/x", 9003, "normal", 7)


def test_the_default_config_file_is_read_when_present(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home" / ".config" / "hivemem"
    home.mkdir(parents=True)
    (home / "config.toml").write_text('url = "http://from-default-file:1"\n')
    assert load_config(None, {}) == {"url": "http://from-default-file:1"}
    assert main(["get", "ns", "k", "--config", str(tmp_path / "missing.toml")], env={}) == 1
    assert "cannot read" in capsys.readouterr().err


# -- serve ---------------------------------------------------------------------------


def test_serve_runs_the_app_over_the_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("hivemem.memory.engine.default_embedder", lambda: HashEmbedder())
    servers: list[uvicorn.Server] = []

    class Recorded(uvicorn.Server):
        def __init__(self, config: uvicorn.Config) -> None:
            super().__init__(config)
            servers.append(self)

    monkeypatch.setattr(uvicorn, "Server", Recorded)
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()
    argv = ["serve", "--data", str(tmp_path / "data"), "--port", str(port)]
    argv += ["--admin-key", ADMIN_KEY, "--log-level", "warning", "--durability", "normal"]
    thread = threading.Thread(target=main, args=(argv,), kwargs={"env": {}}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not (servers and servers[0].started):
        assert time.monotonic() < deadline and thread.is_alive(), "serve did not start"
        time.sleep(0.02)
    try:
        with Client(f"http://127.0.0.1:{port}", ADMIN_KEY) as c:
            assert c.put("team", "k", {"v": 1}).version == 1
            assert c.principal == "admin"
    finally:
        servers[0].should_exit = True
        thread.join(timeout=10)
    assert (tmp_path / "data" / "log.db").exists()


def test_lease_commands_grant_renew_stream_read_and_revoke(
    capsys: pytest.CaptureFixture[str], server: LiveServer
) -> None:
    from hivemem.api.cli import keepalive_stream

    status, out, _ = run(capsys, server, "lease", "--ttl", "5")
    lease = lines(out)[0]
    assert status == 0 and lease["ttl"] == 5
    status, out, _ = run(capsys, server, "put", "team/p", "a", "1", "--lease", lease["id"])
    assert status == 0 and lines(out)[0]["lease"] == lease["id"]
    status, out, _ = run(capsys, server, "keepalive", lease["id"])
    assert status == 0 and lines(out)[0]["items"] == 1
    stream = io.StringIO()
    with server.client() as c:
        keepalive_stream(c, lease["id"], stream, every=0.05, count=3)
    renewals = lines(stream.getvalue())
    assert len(renewals) == 3 and all(r["alive"] for r in renewals)
    status, out, _ = run(capsys, server, "get-lease", lease["id"])
    assert status == 0 and lines(out)[0]["id"] == lease["id"]
    assert run(capsys, server, "revoke-lease", lease["id"])[0] == 0
    status, _, err = run(capsys, server, "keepalive", lease["id"])
    assert status == 1 and "not found" in err


def test_claim_commands_claim_fence_and_complete(
    capsys: pytest.CaptureFixture[str], server: LiveServer
) -> None:
    run(capsys, server, "put", "team/tasks", "t0", '{"n": 0}')
    status, out, _ = run(capsys, server, "claim", "team/tasks", "--ttl", "30")
    claim = lines(out)[0]
    assert status == 0 and claim["item"]["claim"]["state"] == "claimed"
    status, out, _ = run(capsys, server, "put", "team/out", "r", '"ok"', "--fence", claim["token"])
    assert status == 0
    status, out, _ = run(capsys, server, "complete", claim["token"], '{"n": 0, "done": true}')
    assert status == 0 and lines(out)[0]["claim"]["state"] == "done"
    status, _, err = run(capsys, server, "delete", "team/out", "r", "--fence", claim["token"])
    assert status == 1 and "stale fencing token" in err
    status, _, err = run(capsys, server, "claim", "team/tasks")
    assert status == 1 and "no open task" in err
