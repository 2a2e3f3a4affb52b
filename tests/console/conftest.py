"""The console in a real browser against a real server process.

One ``hivemem serve`` process (the real embedding model, SQLite and FAISS in a
temporary data directory) and one headless Debian chromium, driven by Playwright, for
the whole module. The browser reaches the server through a TCP proxy the tests can cut,
which also records every HTTP request head the browser sends.

Chromium is never downloaded by Playwright: it is ``/usr/bin/chromium`` (``make test``
installs it with apt-get) or ``HIVEMEM_CHROMIUM``. When it is missing the tests fail
with the reason; they never skip.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from hivemem.memory.client import Client
from tests.console.proxy import RecordingProxy

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("HIVEMEM_SCREENSHOT_DIR", ROOT / "build" / "console-screenshots"))
ADMIN_KEY = "console-admin-key-0123456789"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """Debian's chromium, or fail the test run saying how to get it."""
    path = os.environ.get("HIVEMEM_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"no chromium at {path}: the console's browser tests need Debian's chromium "
            "(`apt-get install chromium`, which `make test` runs when it is absent) "
            "or HIVEMEM_CHROMIUM pointing at a Chromium binary",
            pytrace=False,
        )
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Keys:
    """API keys of the principals the console tests sign in as or write with."""

    admin: str = ADMIN_KEY
    planner: str = ""  # write on team
    researcher: str = ""  # write on team
    reader: str = ""  # read on team only
    stranger: str = ""  # write on lab only: another principal's namespaces


@dataclass
class Console:
    """The server process, the proxy in front of it, and keys."""

    url: str  # the server itself (for API clients)
    proxy: RecordingProxy  # what the browser talks to
    keys: Keys
    process: subprocess.Popen[bytes]
    log: Path
    seeded: dict[str, Any] = field(default_factory=dict)

    @property
    def console_url(self) -> str:
        return f"{self.proxy.url}/console/"

    def client(self, key: str) -> Client:
        return Client(self.url, key, timeout=60)


def _start_server(data: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HIVEMEM_HEARTBEAT": "1",
    }
    cmd = [sys.executable, "-m", "hivemem.api.cli", "serve", "--data", str(data)]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--durability", "normal"]
    cmd += ["--admin-key", ADMIN_KEY, "--log-level", "warning"]
    out = log.open("wb")
    process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=data)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"hivemem serve exited: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"hivemem serve did not answer within 60 s: {log.read_text()[-2000:]}")


def _seed(console: Console) -> None:
    """Principals, grants and a little history: three agents sharing a team space."""
    keys = console.keys
    with console.client(keys.admin) as admin:
        for who, prefix, level in (
            ("planner", "team", "write"),
            ("researcher", "team", "write"),
            ("reader", "team", "read"),
            ("stranger", "lab", "write"),
        ):
            admin.grant(who, prefix, level)
            setattr(keys, who, admin.create_key(who).secret)
    with console.client(keys.planner) as planner, console.client(keys.researcher) as researcher:
        plan = {"step": 1, "owner": "planner", "window": "friday"}
        planner.put(
            "team/notes",
            "deploy-plan",
            plan,
            text="Deploy on Friday after the freeze",
            metadata={"kind": "plan", "priority": 2},
        )
        researcher.put(
            "team/notes",
            "deploy-plan",
            {**plan, "step": 2, "checks": ["smoke", "canary"]},
            text="Deploy on Friday after the freeze, with a canary first",
            metadata={"kind": "plan", "priority": 3},
            if_version=1,
        )
        planner.put(
            "team/notes",
            "deploy-plan",
            {**plan, "step": 3, "checks": ["smoke", "canary"], "window": "monday"},
            text="Deploy moved to Monday: the canary found a memory leak",
            metadata={"kind": "plan", "priority": 3},
            merge="replace",
        )
        researcher.put_many(
            [
                {
                    "namespace": "team/research",
                    "key": f"finding-{i}",
                    "value": {"n": i},
                    "text": text,
                    "metadata": {"kind": "finding"},
                }
                for i, text in enumerate(
                    [
                        "The canary build leaks memory in the cache layer",
                        "Latency doubled when the cache is cold",
                        "Customers in Europe see the outage first",
                        "Rollback takes eleven minutes on the largest cluster",
                    ]
                )
            ]
        )
        planner.put("team", "charter", "Ship safely; write down every decision")
    with console.client(keys.stranger) as stranger:
        stranger.put("lab/secret", "formula", {"x": 42}, text="Confidential lab formula")


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """A seeded ``hivemem serve`` behind a recording proxy, for the whole module."""
    chromium_path()  # fail before the server's cost if there is no browser
    data = tmp_path_factory.mktemp("console-data")
    log = data / "server.log"
    process, url = _start_server(data, log)
    proxy = RecordingProxy(int(url.rsplit(":", 1)[1]))
    c = Console(url=url, proxy=proxy, keys=Keys(), process=process, log=log)
    try:
        _seed(c)
        yield c
    finally:
        proxy.close()
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless chromium for the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser context; the test fails on any script error the page logs."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(20_000)
    p = context.new_page()
    errors: list[str] = []
    p.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
    p.on(
        "console",
        lambda msg: (
            errors.append(f"console {msg.type}: {msg.text}")
            # the browser logs each failed request (a 409, a cut connection): those are
            # answers the tests provoke; anything else on the console is a bug
            if msg.type == "error" and not msg.text.startswith("Failed to load resource")
            else None
        ),
    )
    yield p
    context.close()
    assert errors == [], errors


def screenshot(page: Any, name: str) -> Path:
    """Save the page as ``build/console-screenshots/<name>.png`` (gitignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
