"""Reads are total: whatever a write is allowed to commit renders on every read path.

Hypothesis generates writes at and beyond every limit of ``memory.validation.LIMITS``
(values, texts, metadata, ttls, vectors, namespaces and keys). An oracle written from
the limits table (not from the checkers) says whether each write is valid:

- an accepted write round-trips through get, get at its revision, history, list,
  export, search and watch: the same item on every path;
- a rejected one raises ``InvalidInput`` / ``PayloadTooLarge`` (over HTTP: a 4xx
  problem) naming a field that is at fault, and leaves the revision unchanged.

Both embedded (``Memory``) and over HTTP (a live uvicorn server, raw request bodies
so that NaN and lone surrogates reach the server, the real ``Client`` for reads).
``HIVEMEM_HYPOTHESIS=soak`` (``make soak``) runs ten times more examples.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from hivemem import Client
from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from hivemem.memory.errors import InvalidInput, PayloadTooLarge
from hivemem.memory.models import Item
from hivemem.memory.validation import (
    INT64_MAX,
    INT64_MIN,
    MAX_DEPTH,
    MAX_JSON_DEPTH,
    MAX_KEY,
    MAX_SEGMENT,
    MAX_TTL,
)
from tests.api.helpers import ADMIN_KEY, bearer, live_server
from tests.embedders import HashEmbedder

PROFILE = os.environ.get("HIVEMEM_HYPOTHESIS", "test")
EXAMPLES = {"test": 300, "soak": 5000}[PROFILE]
HTTP_EXAMPLES = {"test": 150, "soak": 2000}[PROFILE]
DIM = 16
VALUE_LIMIT = 2048  # max_value_bytes of the stores under test: its edge is reachable
FLOAT32_MAX = float(np.finfo(np.float32).max)

SETTINGS = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

# -- strategies: at and beyond every limit -------------------------------------------

surrogate = st.characters(categories=["Cs"])


def mostly(valid: st.SearchStrategy[Any], edge: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``valid`` about five times in six, else ``edge``: most writes pass, every field's
    edges are still reached often (a write is accepted only when all its fields are)."""
    return st.integers(0, 5).flatmap(lambda n: valid if n else edge)


def with_surrogate(base: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda a, s, b: a + s + b, base, surrogate, base)


good_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
texts = mostly(
    good_text | st.sampled_from(["", " ", "alpha bravo", "\x00", "\u2028", "😀", "a" * 3000]),
    with_surrogate(st.text(max_size=6)),
)
good_ints = st.integers(INT64_MIN, INT64_MAX) | st.sampled_from([INT64_MIN, INT64_MAX, 0])
ints = mostly(
    good_ints,
    st.sampled_from([INT64_MIN - 1, INT64_MAX + 1, 10**30, -(10**30), 2**64]),
)
good_floats = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from(
    [0.0, -0.0, 1e308, 5e-324, FLOAT32_MAX]
)
floats = mostly(good_floats, st.sampled_from([math.nan, math.inf, -math.inf]))
good_scalars = st.one_of(st.none(), st.booleans(), good_ints, good_floats, good_text)
scalars = st.one_of(st.none(), st.booleans(), ints, floats, texts)


def nest(depth: int, leaf: Any, shape: str) -> Any:
    for i in range(depth):
        use_list = shape == "list" or (shape == "mixed" and i % 2)
        leaf = [leaf] if use_list else {"k": leaf}
    return leaf


deep = st.builds(
    nest,
    st.integers(MAX_JSON_DEPTH - 2, MAX_JSON_DEPTH + 2) | st.integers(200, 300),
    st.one_of(st.integers(0, 9), st.text(max_size=3), st.just([]), st.just({})),
    st.sampled_from(["list", "dict", "mixed"]),
)
json_keys = mostly(good_text, with_surrogate(st.text(max_size=2)))


def json_values(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: st.one_of(
            st.lists(children, max_size=4),
            st.dictionaries(good_text, children, max_size=4),
        ),
        max_leaves=12,
    )


values = mostly(
    # numbers inside values stay plain JSON numbers: integers beyond 64 bits are fine
    json_values(good_scalars | st.sampled_from([10**30, -(2**64)])),
    st.one_of(
        json_values(scalars),
        st.dictionaries(json_keys, scalars, min_size=1, max_size=3),
        deep,
        st.integers(VALUE_LIMIT - 4, VALUE_LIMIT + 2).map(lambda n: "v" * n),  # + 2 quotes
        st.integers(VALUE_LIMIT // 2 - 3, VALUE_LIMIT // 2 + 1).map(lambda n: "é" * n),
    ),
)
good_meta_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,8}", fullmatch=True) | st.just("a" * 64)
good_meta_values = good_scalars | st.lists(good_scalars, max_size=3)
metadatas = mostly(
    st.none() | st.dictionaries(good_meta_names, good_meta_values, max_size=4),
    st.dictionaries(
        good_meta_names | st.sampled_from(["", "1a", "a b", "ünï", "a" * 65, "$in", "a.b"]),
        st.one_of(
            scalars,
            st.lists(scalars, max_size=3),
            st.lists(st.lists(scalars, max_size=1), min_size=1, max_size=2),
            st.dictionaries(st.text(max_size=3), scalars, max_size=2),
            st.just("m" * (VALUE_LIMIT + 1)),
        ),
        min_size=1,
        max_size=3,
    ),
)
ttls = mostly(
    st.none()
    | st.floats(600, MAX_TTL)
    | st.integers(600, MAX_TTL)
    | st.sampled_from([MAX_TTL, MAX_TTL - 0.5, 1e-300, 0.5, 1]),
    st.sampled_from(
        [0, -1, MAX_TTL + 1, MAX_TTL + 0.5, 3e11, 1e308, math.nan, math.inf, True, False]
        + ["10", 10**30, INT64_MAX + 1, -0.0]
    )
    | st.floats()
    | st.integers(),
)
good_vectors = st.lists(st.floats(-10, 10, allow_nan=False), min_size=DIM, max_size=DIM).filter(any)
vector_entries = st.one_of(
    st.floats(-10, 10, allow_nan=False),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([3.5e38, 3.4e38, 1e-46, 1e39, 0, 1, True, 10**40]),
)
vectors = mostly(
    st.none() | good_vectors,
    st.one_of(
        st.lists(vector_entries, min_size=DIM, max_size=DIM),
        st.lists(st.floats(-1, 1, allow_nan=False), min_size=0, max_size=DIM + 2),
        st.sampled_from([[0.0] * DIM, [1e-46] * DIM, [True] * DIM, [FLOAT32_MAX] * DIM]),
    ),
)
valid_segments = st.from_regex(r"[a-z0-9_\-][a-z0-9_.\-]{0,7}", fullmatch=True)
segments = st.one_of(
    valid_segments,
    st.sampled_from([".", "..", "", "A", "é", "a b", "s" * MAX_SEGMENT, "s" * (MAX_SEGMENT + 1)]),
)
# Below a fresh head segment: usually a valid tail, sometimes one at or beyond a limit.
namespace_tails = mostly(
    st.lists(valid_segments, max_size=3),
    st.lists(segments, min_size=1, max_size=3)
    | st.sampled_from([["s"] * (MAX_DEPTH - 1), ["s"] * MAX_DEPTH]),
)
valid_keys = st.text(
    st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="/"), min_size=1, max_size=20
).filter(lambda k: k not in (".", ".."))
keys = mostly(
    valid_keys | st.sampled_from(["k" * MAX_KEY, "%FF", "sp ace", "?q=1#f", "...", "a%2Fb"]),
    with_surrogate(st.text(max_size=4))
    | st.sampled_from(["", ".", "..", "a/b", "a\x00b", "tab\tkey", "\x7f", "k" * (MAX_KEY + 1)]),
)


@dataclass
class Write:
    """One generated put; ``tail``/``key`` name the item below a fresh namespace."""

    tail: list[str]
    key: str
    value: Any
    text: Any
    metadata: Any
    ttl: Any
    vector: Any


writes = st.builds(
    Write, namespace_tails, keys, values, texts | st.none(), metadatas, ttls, vectors
)

# -- the oracle: the limits table, written out again ---------------------------------

_SEGMENT = re.compile(r"[a-z0-9_.\-]{1,64}")
_META = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")


def unicode_ok(s: str) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def json_depth(v: Any) -> int:
    if isinstance(v, dict):
        return 1 + max((json_depth(x) for x in v.values()), default=0)
    if isinstance(v, list):
        return 1 + max((json_depth(x) for x in v), default=0)
    return 0


def json_ok(v: Any) -> bool:
    """Strict JSON, valid Unicode everywhere (object keys too)."""
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, str):
        return unicode_ok(v)
    if isinstance(v, list):
        return all(json_ok(x) for x in v)
    if isinstance(v, dict):
        return all(unicode_ok(k) and json_ok(x) for k, x in v.items())
    return v is None or isinstance(v, bool | int)


def json_size(v: Any) -> int:
    return len(json.dumps(v, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def scalar_ok(v: Any) -> bool:
    if v is None or isinstance(v, bool):
        return True
    if isinstance(v, int):
        return INT64_MIN <= v <= INT64_MAX
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, str) and unicode_ok(v)


def faults(w: Write) -> set[str]:
    """The top-level fields of ``w`` that break a documented limit (empty: valid)."""
    bad: set[str] = set()
    parts = ["p0", *w.tail]
    if len(parts) > MAX_DEPTH or any(not _SEGMENT.fullmatch(p) or p in (".", "..") for p in parts):
        bad.add("namespace")
    k = w.key
    if (
        not k
        or len(k) > MAX_KEY
        or k in (".", "..")
        or any(c == "/" or ord(c) < 0x20 or ord(c) == 0x7F for c in k)
        or not unicode_ok(k)
    ):
        bad.add("key")
    depth = json_depth(w.value)
    if depth > MAX_JSON_DEPTH or not json_ok(w.value) or json_size(w.value) > VALUE_LIMIT:
        bad.add("value")
    if w.text is not None and not unicode_ok(w.text):
        bad.add("text")
    if w.metadata is not None:
        for name, val in w.metadata.items():
            if not _META.fullmatch(name):
                bad.add("metadata")
            elif isinstance(val, list):
                if not all(not isinstance(x, list | dict) and scalar_ok(x) for x in val):
                    bad.add("metadata")
            elif isinstance(val, dict) or not scalar_ok(val):
                bad.add("metadata")
        if "metadata" not in bad and json_size(w.metadata) > VALUE_LIMIT:
            bad.add("metadata")
    t = w.ttl
    if t is not None:
        if isinstance(t, bool) or not isinstance(t, int | float):
            bad.add("ttl")
        elif isinstance(t, int) and not 0 < t <= MAX_TTL:
            bad.add("ttl")
        elif not (math.isfinite(t) and 0 < t <= MAX_TTL):
            bad.add("ttl")
    if w.vector is not None and not vector_ok(w.vector):
        bad.add("vector")
    return bad


def vector_ok(v: list[Any]) -> bool:
    if len(v) != DIM or any(isinstance(x, bool) or not isinstance(x, int | float) for x in v):
        return False
    try:
        wide = [float(x) for x in v]
    except OverflowError:
        return False
    # float32: finite after rounding (values a little over the maximum round down to it)
    with np.errstate(over="ignore"):
        narrow = np.asarray(wide, dtype=np.float64).astype(np.float32)
    return bool(np.isfinite(narrow).all() and narrow.any())


def readable_for_long(w: Write) -> bool:
    """An accepted item that cannot have expired while the test reads it."""
    return w.ttl is None or float(w.ttl) >= 600


# -- checks of one accepted item on every read path ----------------------------------


def same(a: Item, b: Item) -> None:
    assert a.model_dump() == b.model_dump()


def check_item(w: Write, ns: str, item: Item) -> None:
    assert (item.namespace, item.key, item.value) == (ns, w.key, w.value)
    assert item.metadata == (w.metadata or {})
    if w.text is not None:
        assert item.text == w.text
    if w.ttl is not None:
        assert item.expires_at is not None
        delta = (item.expires_at - item.updated_at).total_seconds()
        assert abs(delta - float(w.ttl)) <= max(1e-3, float(w.ttl) * 1e-9)


def embedded_text(w: Write) -> str | None:
    text = w.text if w.text is not None else (w.value if isinstance(w.value, str) else None)
    return text or None


# -- embedded ------------------------------------------------------------------------

_names = itertools.count()


@pytest.fixture(scope="module")
def store() -> Iterator[Memory]:
    mem = Memory.open(
        ":memory:", embedder=HashEmbedder(DIM), reaper_interval=None, max_value_bytes=VALUE_LIMIT
    )
    yield mem
    mem.close()


def _put_embedded(mem: Memory, ns: str, w: Write) -> Item:
    item = mem.put(ns, w.key, w.value, text=w.text, metadata=w.metadata, ttl=w.ttl, vector=w.vector)
    assert isinstance(item, Item)
    return item


@settings(SETTINGS, max_examples=EXAMPLES)
@given(w=writes)
def test_embedded_writes_round_trip_or_are_rejected_whole(store: Memory, w: Write) -> None:
    ns = "/".join([f"e{next(_names)}", *w.tail])
    expected = faults(w)
    before = store.revision
    try:
        item = _put_embedded(store, ns, w)
    except (InvalidInput, PayloadTooLarge) as exc:
        assert store.revision == before, "a rejected write advanced the revision"
        assert expected, f"valid write rejected: {exc}"
        top = re.split(r"[.\[]", exc.field, maxsplit=1)[0]
        event(f"rejected: {top}")
        assert top in expected, f"{exc} names {top!r}; at fault: {expected}"
        return
    assert not expected, f"accepted a write that breaks {expected}: {w!r}"[:2000]
    event("accepted")
    assert item.revision == store.revision == before + 1
    check_item(w, ns, item)
    if not readable_for_long(w):
        return
    same(store.get(ns, w.key), item)
    same(store.get(ns, w.key, at_revision=item.revision), item)
    same(store.history(ns, w.key)[-1], item)
    listed = store.list(ns).items
    assert [i.key for i in listed] == [w.key]
    same(listed[0], item)
    records = [r for r in store.export(ns) if r.get("kind", "item") == "item"]
    assert len(records) == 1 and records[0]["key"] == w.key
    assert records[0]["value"] == w.value
    assert ("vector" in records[0]) == (w.vector is not None or embedded_text(w) is not None)
    sub = store.watch(ns, since=item.revision - 1)
    try:
        changes = list(sub.iter(timeout=0.05))
    finally:
        sub.close()
    assert [c.revision for c in changes] == [item.revision]
    assert changes[0].item is not None
    same(changes[0].item, item)
    query_vector = w.vector if w.vector is not None else None
    text = embedded_text(w)
    if query_vector is not None or text is not None:
        hits = store.search(
            query=None if query_vector is not None else text[:16_384],  # type: ignore[index]
            vector=query_vector,
            namespaces=[ns],
            mode="vector",
        )
        assert [h.item.key for h in hits] == [w.key]
        same(hits[0].item, item)
    store.search(query="alpha", namespaces=[ns], mode="hybrid")  # renders, whatever it finds


def _count_listed(store: Any) -> int:
    """How many live items ``list`` returns, page by page (a Memory or a Client)."""
    listed, cursor = 0, None
    while True:
        page = store.list("", limit=1000, cursor=cursor)
        listed += len(page.items)
        cursor = page.cursor
        if cursor is None:
            return listed


def test_embedded_store_reads_whole_after_the_property(store: Memory) -> None:
    """Everything the property committed still renders in one list, export and watch."""
    head = store.revision
    assert head > 0
    listed = _count_listed(store)
    exported = sum(1 for r in store.export("") if r.get("kind", "item") == "item")
    assert exported == listed
    sub = store.watch(None, since=0)
    try:
        seen = [c.revision for c in sub.iter(timeout=0.2)]
    finally:
        sub.close()
    assert seen == list(range(1, head + 1))
    store.search(query="alpha bravo", mode="hybrid", k=50)


# -- over HTTP -----------------------------------------------------------------------


@dataclass
class Http:
    url: str
    client: Client
    raw: httpx.Client
    memory: Memory


@pytest.fixture(scope="module")
def http() -> Iterator[Http]:
    mem = Memory.open(
        ":memory:", embedder=HashEmbedder(DIM), reaper_interval=None, max_value_bytes=VALUE_LIMIT
    )
    app = create_app(Settings(admin_key=ADMIN_KEY, heartbeat=0.2), memory=mem)
    with (
        live_server(app) as url,
        Client(url, api_key=ADMIN_KEY) as client,
        httpx.Client(base_url=url, headers=bearer(ADMIN_KEY), timeout=30) as raw,
    ):
        yield Http(url, client, raw, mem)
    mem.close()


def _segment(s: str) -> str:
    if s in (".", ".."):
        return s.replace(".", "%2E")
    return quote(s.encode("utf-8", "surrogatepass"), safe="")


def raw_body(w: Write) -> bytes:
    """JSON text as a hostile client may send it: NaN, Infinity and lone surrogates too."""
    body: dict[str, Any] = {"value": w.value}
    for name in ("text", "metadata", "ttl", "vector"):
        if getattr(w, name) is not None:
            body[name] = getattr(w, name)
    return json.dumps(body, allow_nan=True).encode()


@settings(SETTINGS, max_examples=HTTP_EXAMPLES)
@given(w=writes)
def test_http_writes_round_trip_or_are_rejected_whole(http: Http, w: Write) -> None:
    ns = "/".join([f"h{next(_names)}", *w.tail])
    path = "/v1/items/" + "/".join(_segment(s) for s in ns.split("/")) + "/" + _segment(w.key)
    expected = faults(w)
    before = http.client.revision
    response = http.raw.put(path, content=raw_body(w), headers={"Content-Type": "application/json"})
    if response.status_code >= 400:
        assert response.status_code < 500, response.text
        assert http.client.revision == before, "a rejected write advanced the revision"
        assert expected, f"valid write rejected: {response.text}"
        problem = response.json()
        field = problem.get("field")
        assert field, f"4xx names no field: {response.text}"
        top = re.split(r"[.\[]", field, maxsplit=1)[0]
        event(f"rejected: {top}")
        assert top in expected | {"body"}, f"{response.text} names {top!r}; at fault {expected}"
        return
    assert response.status_code == 200, response.text
    assert not expected, f"accepted a write that breaks {expected}: {w!r}"[:2000]
    event("accepted")
    item = Item.model_validate(response.json())
    assert item.revision == http.client.revision == before + 1
    check_item(w, ns, item)
    if not readable_for_long(w):
        return
    c = http.client
    same(c.get(ns, w.key), item)
    same(c.get(ns, w.key, at_revision=item.revision), item)
    same(c.history(ns, w.key)[-1], item)
    listed = c.list(ns).items
    assert [i.key for i in listed] == [w.key]
    same(listed[0], item)
    records = [r for r in c.export(ns) if r.get("kind", "item") == "item"]
    assert len(records) == 1 and records[0]["value"] == w.value
    stream = c.watch([ns], since=item.revision - 1)
    got: list[Any] = []
    reader = threading.Thread(target=lambda: got.append(next(stream)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    stream.close()
    assert got and got[0].revision == item.revision and got[0].item is not None
    same(got[0].item, item)
    text = embedded_text(w)
    if w.vector is not None or text is not None:
        hits = c.search(
            query=None if w.vector is not None else text[:16_384],  # type: ignore[index]
            vector=w.vector,
            namespaces=[ns],
            mode="vector",
        )
        assert [h.item.key for h in hits] == [w.key]
        same(hits[0].item, item)


def test_http_store_reads_whole_after_the_property(http: Http) -> None:
    c = http.client
    head = c.revision
    assert head > 0
    listed = _count_listed(c)
    assert sum(1 for r in c.export("") if r.get("kind", "item") == "item") == listed
    stream = c.watch(None, since=0)
    seen: list[int] = []

    def read() -> None:
        for change in stream:
            seen.append(change.revision)
            if change.revision >= head:
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    stream.close()
    assert seen == list(range(1, head + 1))
    assert c.search(query="alpha bravo", k=50) is not None


def test_oracle_agrees_with_the_limits_table_on_its_edges() -> None:
    """The oracle itself: each documented edge is valid and one step beyond is not."""
    ok = Write([], "k", 1, None, None, None, None)
    assert faults(ok) == set()
    edges: list[tuple[dict[str, Any], set[str]]] = [
        ({"ttl": MAX_TTL}, set()),
        ({"ttl": MAX_TTL + 1}, {"ttl"}),
        ({"ttl": True}, {"ttl"}),
        ({"value": nest(MAX_JSON_DEPTH, 0, "mixed")}, set()),
        ({"value": nest(MAX_JSON_DEPTH + 1, 0, "mixed")}, {"value"}),
        ({"value": "v" * (VALUE_LIMIT - 2)}, set()),
        ({"value": "v" * (VALUE_LIMIT - 1)}, {"value"}),
        ({"key": "k" * MAX_KEY}, set()),
        ({"key": "k" * (MAX_KEY + 1)}, {"key"}),
        ({"tail": ["s"] * (MAX_DEPTH - 1)}, set()),
        ({"tail": ["s"] * MAX_DEPTH}, {"namespace"}),
        ({"metadata": {"n": INT64_MAX}}, set()),
        ({"metadata": {"n": INT64_MAX + 1}}, {"metadata"}),
        ({"vector": [1.0] * DIM}, set()),
        ({"vector": [1.0] * (DIM + 1)}, {"vector"}),
        ({"vector": [True] * DIM}, {"vector"}),
    ]
    for change, bad in edges:
        w = Write(**{**ok.__dict__, **change})
        assert faults(w) == bad, change


# -- batches: all or nothing ---------------------------------------------------------

_OP_FIELD = re.compile(r"ops\[(\d+)\]\.?([a-z_]*)")


def _op(ns: str, w: Write) -> dict[str, Any]:
    op: dict[str, Any] = {"op": "put", "namespace": ns, "key": w.key, "value": w.value}
    for name in ("text", "metadata", "ttl", "vector"):
        if getattr(w, name) is not None:
            op[name] = getattr(w, name)
    return op


def check_batch_fault(field: str, expected: list[set[str]]) -> None:
    """``ops[i].name`` names a field at fault in op i (``ops[i]`` / ``body``: the op)."""
    if field == "body":
        assert any(expected)
        return
    match = _OP_FIELD.match(field)
    assert match, f"field {field!r} does not name an op"
    i, name = int(match.group(1)), match.group(2)
    assert expected[i], f"{field} named, but op {i} is valid"
    assert not name or name in expected[i] | {"op"}, f"{field} named; op {i} breaks {expected[i]}"


batches = st.lists(writes, min_size=1, max_size=3)


@settings(SETTINGS, max_examples=EXAMPLES // 2)
@given(ws=batches)
def test_embedded_batches_commit_whole_or_not_at_all(store: Memory, ws: list[Write]) -> None:
    n = next(_names)
    names = ["/".join([f"b{n}x{i}", *w.tail]) for i, w in enumerate(ws)]
    expected = [faults(w) for w in ws]
    before = store.revision
    try:
        items = store.put_many([_op(ns, w) for ns, w in zip(names, ws, strict=True)])
    except (InvalidInput, PayloadTooLarge) as exc:
        assert store.revision == before
        event("rejected")
        check_batch_fault(exc.field, expected)
        return
    assert not any(expected), f"accepted a batch that breaks {expected}"
    event("accepted")
    assert store.revision == before + 1
    for ns, w, item in zip(names, ws, items, strict=True):
        assert item.revision == before + 1
        check_item(w, ns, item)
        if readable_for_long(w):
            same(store.get(ns, w.key, at_revision=item.revision), item)


@settings(SETTINGS, max_examples=HTTP_EXAMPLES // 2)
@given(ws=batches)
def test_http_batches_commit_whole_or_not_at_all(http: Http, ws: list[Write]) -> None:
    n = next(_names)
    names = ["/".join([f"hb{n}x{i}", *w.tail]) for i, w in enumerate(ws)]
    expected = [faults(w) for w in ws]
    before = http.client.revision
    body = {"ops": [_op(ns, w) for ns, w in zip(names, ws, strict=True)]}
    response = http.raw.post(
        "/v1/batch",
        content=json.dumps(body, allow_nan=True).encode(),
        headers={"Content-Type": "application/json"},
    )
    if response.status_code >= 400:
        assert response.status_code < 500, response.text
        assert http.client.revision == before
        event("rejected")
        field = response.json().get("field")
        assert field, response.text
        check_batch_fault(field, expected)
        return
    assert response.status_code == 200, response.text
    assert not any(expected), f"accepted a batch that breaks {expected}"
    event("accepted")
    items = [Item.model_validate(x) for x in response.json()]
    assert http.client.revision == before + 1
    for ns, w, item in zip(names, ws, items, strict=True):
        check_item(w, ns, item)
        if readable_for_long(w):
            same(http.client.get(ns, w.key, at_revision=item.revision), item)
