"""The console's static files: served at /console with a strict policy, complete, and
loading nothing the policy would block. (The pages themselves are tested in a real
browser in tests/console.)"""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from hivemem.api.console import STATIC_DIR

IMPORT = re.compile(r"""^\s*import\s[^;]*?from\s+["'](\.[^"']+)["']""", re.M)


def test_console_redirects_to_its_index_page(client: TestClient) -> None:
    r = client.get("/console", follow_redirects=False)
    assert r.status_code == 308 and r.headers["location"] == "/console/"
    page = client.get("/console/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js"></script>' in page.text


def test_every_console_response_carries_the_security_policy(client: TestClient) -> None:
    for path in ("/console/", "/console/js/main.js", "/console/console.css"):
        r = client.get(path)
        assert r.status_code == 200, path
        policy = r.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["cache-control"] == "no-cache"
    assert (
        client.get("/console/js/main.js")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )


def test_the_console_needs_no_key_to_load_but_its_data_does(client: TestClient) -> None:
    assert client.get("/console/js/api.js").status_code == 200
    assert client.get("/v1/whoami").status_code == 401


def test_a_missing_console_file_is_a_404_and_paths_cannot_escape(client: TestClient) -> None:
    assert client.get("/console/js/nope.js").status_code == 404
    assert client.get("/console/../api/app.py").status_code == 404
    assert client.get("/console/%2e%2e/__init__.py").status_code == 404


def test_every_module_the_pages_import_exists() -> None:
    modules = sorted((STATIC_DIR / "js").glob("*.js"))
    assert len(modules) >= 8
    for module in modules:
        for target in IMPORT.findall(module.read_text(encoding="utf-8")):
            assert (module.parent / target).resolve().is_file(), f"{module.name} imports {target}"


def test_the_pages_use_no_inline_script_or_style_and_put_no_key_in_a_url() -> None:
    html = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", html), "inline script"
    assert "<style" not in html and " style=" not in html
    assert not re.search(r"\son[a-z]+=", html), "inline event handler"
    for module in (STATIC_DIR / "js").glob("*.js"):
        source = module.read_text(encoding="utf-8")
        assert "api_key=" not in source, module.name
        assert "innerHTML" not in source, module.name  # values are text, never markup
