"""The two hottest routes (get-by-key, PATCH of an item) are served directly, ahead of
every other route, and behave exactly as the documented API routes they shadow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from starlette.routing import Route

from hivemem.api.app import create_app
from hivemem.api.routes.items import get_item
from hivemem.api.routes.update import patch_item
from hivemem.api.routing import serve_directly
from hivemem.api.settings import Settings
from hivemem.memory import Memory
from tests.api.helpers import ADMIN_KEY, bearer
from tests.embedders import HashEmbedder

H = bearer(ADMIN_KEY)
INC = {"ops": [{"op": "increment", "path": "/n"}]}
UPDATE = {**H, "Content-Type": "application/vnd.hivemem.update+json"}


@pytest.fixture
def app() -> Iterator[FastAPI]:
    mem = Memory.open(":memory:", embedder=HashEmbedder(), reaper_interval=None)
    yield create_app(Settings(admin_key=ADMIN_KEY), memory=mem)
    mem.close()


def test_both_are_matched_first_and_still_documented(app: FastAPI) -> None:
    front = app.router.routes[:2]
    assert all(type(r) is Route for r in front)
    assert {(r.path, frozenset(r.methods or ())) for r in front} == {
        ("/v1/items/{namespace:path}/{key}", frozenset({"GET"})),
        ("/v1/items/{namespace:path}/{key}", frozenset({"PATCH"})),
    }
    operations = app.openapi()["paths"]["/v1/items/{namespace}/{key}"]
    assert {"get", "patch", "put", "delete"} <= set(operations)
    names = {p["name"] for p in operations["get"]["parameters"]}
    assert {"namespace", "key", "at_revision", "min_revision"} <= names
    assert operations["patch"]["security"] == [{"ApiKey": []}]


def test_they_answer_as_the_api_routes_do(app: FastAPI) -> None:
    with TestClient(app) as c:
        r = c.patch("/v1/items/team/c", headers=UPDATE, json=INC)
        assert r.status_code == 200 and r.json()["value"] == {"n": 1}
        assert r.headers["ETag"] == '"1"'
        r = c.get("/v1/items/team/c", headers=H)
        assert r.status_code == 200 and r.json()["value"] == {"n": 1}
        # errors: the same problem documents, naming the field
        r = c.get("/v1/items/team/missing", headers=H)
        assert r.status_code == 404 and r.json()["type"] == "/problems/not-found"
        r = c.get("/v1/items/team/c", headers=H, params={"at_revison": 1})
        assert r.status_code == 422 and r.json()["field"] == "at_revison"
        r = c.get("/v1/items/team/c", headers=H, params={"at_revision": "x"})
        assert r.status_code == 422 and r.json()["field"] == "at_revision"
        r = c.patch("/v1/items/team/c", headers=H, json={"ops": [{"op": "nope", "path": "/n"}]})
        assert r.status_code == 422 and r.json()["field"].startswith("ops[0]")
        assert c.get("/v1/items/team/c").status_code == 401
        assert c.patch("/v1/items/team/c", json=INC).status_code == 401
        # no implicit HEAD: the documented methods only
        assert c.head("/v1/items/team/c", headers=H).status_code == 405
        metrics = c.get("/metrics").text
    label = 'route="/v1/items/{namespace}/{key}"'  # the template, as for any route
    assert f'hivemem_requests_total{{{label},method="GET",status="200"}} 1' in metrics
    assert f'hivemem_requests_total{{{label},method="PATCH",status="200"}} 1' in metrics


def test_only_an_endpoint_that_reads_its_own_parameters_can_be_served_directly() -> None:
    app = FastAPI()

    @app.get("/x/{a}")
    async def declared(a: str, request: Request) -> dict[str, str]:
        return {"a": a}

    with pytest.raises(TypeError, match="must be `async def f\\(request\\)`"):
        serve_directly(app, [declared])
    assert serve_directly(FastAPI(), [get_item, patch_item]) == 0  # not registered there
