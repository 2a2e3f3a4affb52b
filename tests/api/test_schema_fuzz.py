"""Schemathesis over the app's own ``/openapi.json``, with an admin key, every phase
(examples, coverage, fuzzing, stateful through the document's OpenAPI links).

Its own checks decide: no 5xx (``not_a_server_error``), every answer as documented
(``status_code_conformance``, ``content_type_conformance``,
``response_schema_conformance``, ``response_headers_conformance``,
``allow_header_conformance``), no invalid input accepted (``negative_data_rejection``),
and the stateful ones (``use_after_free``, ``ensure_resource_availability``,
``ignored_auth``). ``positive_data_acceptance`` is left out: a schema cannot say every
rule of the limits table (valid Unicode, depth, namespace segments), so a 422 for
schema-valid data is often the right answer.

``make test`` runs a few examples per operation; ``make soak`` (``HIVEMEM_FUZZ_EXAMPLES``)
runs many. Every failure is a bug: the report names the case and a curl to replay it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, live_server
from tests.embedders import HashEmbedder

HERE = Path(__file__).resolve().parent
EXAMPLES = int(os.environ.get("HIVEMEM_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("HIVEMEM_FUZZ_SEED", "20261201")
EXCLUDED_CHECKS = "positive_data_acceptance"

pytestmark = pytest.mark.slow


@pytest.fixture
def fuzzed_url(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    import hivemem.memory.engine as engine

    # min_revision beyond the head waits (5 s) for a replica to catch up; nothing will
    # arrive here, so waiting only slows the run down.
    monkeypatch.setattr(engine, "MIN_REVISION_WAIT", 0.05)
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    # Items under the documents' example namespaces: reads find something, and a watch
    # replays at least max-stream-events changes instead of waiting for new ones.
    for ns in ("team", "team/notes", "team/tasks"):
        for i in range(4):
            mem.put(ns, f"seed-{i}", {"n": i}, text=f"seed note {i} about the deploy")
    app = create_app(Settings(admin_key=ADMIN_KEY, heartbeat=0.2), memory=mem)
    with live_server(app) as url:
        yield url
    mem.close()


def run_schemathesis(
    url: str, report: Path, examples: int, seed: str
) -> subprocess.CompletedProcess[str]:
    config = report.parent / "schemathesis.toml"
    config.write_text("max-stream-events = 3\n")  # the watch stream never ends by itself
    cmd = [
        sys.executable, "-m", "schemathesis.cli",
        "--config-file", str(config),
        "run", f"{url}/openapi.json",
        "-H", f"Authorization: Bearer {ADMIN_KEY}",
        "--checks", "all",
        "--exclude-checks", EXCLUDED_CHECKS,
        "--max-examples", str(examples),
        "--seed", seed,
        "--workers", "1",
        "--request-timeout", "3",
        "--suppress-health-check", "filter_too_much,too_slow",
        "--report", "junit",
        "--report-junit-path", str(report),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks"}
    env["PYTHONPATH"] = os.pathsep.join([str(HERE.parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run(
        cmd, capture_output=True, text=True, env=env, timeout=1800, cwd=report.parent
    )


def problems(report: Path) -> list[str]:
    """Every failure and error in the JUnit report, one line each with its reproduction."""
    out: list[str] = []
    for case in ET.parse(report).iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                text = (child.text or child.get("message") or "").strip()
                out.append(f"{case.get('name')} [{child.tag}]: {text[:1500]}")
    return out


def test_schemathesis_finds_no_server_error_no_schema_violation_no_accepted_invalid_input(
    fuzzed_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "junit.xml"
    result = run_schemathesis(fuzzed_url, report, EXAMPLES, SEED)
    assert report.exists(), result.stdout[-5000:] + result.stderr[-5000:]
    found = problems(report)
    assert not found, "\n\n".join(found)
    assert result.returncode == 0, result.stdout[-5000:]
    # it did test: every operation, and the stateful phase ran over the links
    assert "Tested: " in result.stdout
    assert "Stateful" in result.stdout
