"""The checkers of the one validation layer, and the limits table they document."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hivemem.api import Settings, create_app
from hivemem.memory import Memory
from hivemem.memory.errors import InvalidInput, PayloadTooLarge
from hivemem.memory.validation import (
    INT64_MAX,
    INT64_MIN,
    MAX_JSON_DEPTH,
    check_body_json,
    check_int,
    check_text,
    check_ttl,
    check_vector,
    dump_json,
    json_text_depth,
    limits_markdown,
)

README = Path(__file__).resolve().parents[1] / "README.md"


def nested(depth: int, leaf: Any = 1) -> Any:
    for _ in range(depth):
        leaf = [leaf] if depth % 2 else {"k": leaf}
    return leaf


def test_readme_quotes_the_limits_table_exactly() -> None:
    block = re.search(
        r"<!-- limits:start -->\n(.*?)\n<!-- limits:end -->", README.read_text(), re.S
    )
    assert block is not None
    assert block.group(1) == limits_markdown()


def test_openapi_description_carries_the_limits_table() -> None:
    mem = Memory.open(":memory:", embedder=None, reaper_interval=None)
    try:
        app = create_app(Settings(admin_key="x" * 20), memory=mem)
        assert limits_markdown() in app.openapi()["info"]["description"]
    finally:
        mem.close()


@pytest.mark.parametrize("bad", [True, False, 1.0, "1", None, INT64_MAX + 1, INT64_MIN - 1, 10**30])
def test_check_int_takes_only_int64_integers(bad: Any) -> None:
    with pytest.raises(InvalidInput) as err:
        check_int(bad, "n")
    assert err.value.field == "n"


def test_check_int_accepts_the_bounds_and_numpy_integers() -> None:
    assert check_int(INT64_MAX, "n") == INT64_MAX
    assert check_int(INT64_MIN, "n") == INT64_MIN
    assert check_int(np.int32(7), "n") == 7


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb", "\ud83d"])
def test_lone_surrogates_are_not_text(text: str) -> None:
    with pytest.raises(InvalidInput):
        check_text(text, "t")


def test_paired_surrogates_and_astral_characters_are_text() -> None:
    assert check_text("\U0001f600 ok", "t")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"a": [1, float("nan")]}, "value.a[1]"),
        ({"a": {"b": "\ud800"}}, "value.a.b"),
        ([1, object()], "value[1]"),
        (nested(MAX_JSON_DEPTH + 1), "value"),
        (nested(5000), "value"),  # deeper than json.dumps can even recurse
    ],
)
def test_dump_json_names_the_part_that_cannot_be_stored(value: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        dump_json(value, "value")
    assert err.value.field == field


def test_dump_json_keeps_big_numbers_inside_values_and_checks_size() -> None:
    assert json.loads(dump_json({"n": 10**30}, "value")) == {"n": 10**30}
    assert dump_json(nested(MAX_JSON_DEPTH), "value")
    with pytest.raises(PayloadTooLarge):
        dump_json("é" * 600, "value", max_bytes=1000)  # 1,202 bytes of UTF-8


def test_json_text_depth_ignores_brackets_inside_strings() -> None:
    assert json_text_depth('["[[[[", {"a": "{{{{"}]', limit=0) == 2
    text = json.dumps(nested(100))
    assert json_text_depth(text, limit=10) == 100
    assert json_text_depth(text.encode(), limit=10) == 100
    assert json_text_depth(r'["a\"[[[[[", 1]', limit=0) == 1


def test_body_checks_name_body() -> None:
    with pytest.raises(InvalidInput, match="UTF-8") as err:
        check_body_json(b'{"a": "\xff"}')
    assert err.value.field == "body"
    with pytest.raises(InvalidInput, match="deeper"):
        check_body_json(b"[" * 1000)


@pytest.mark.parametrize(
    "bad", [0, -1, True, "10", float("inf"), float("nan"), 1e308, 3e11, 10**30]
)
def test_ttl_must_be_a_positive_number_within_the_maximum(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        check_ttl(bad)


@pytest.mark.parametrize(
    "bad", [[True, 1.0], ["1", 2.0], [1e39, 1.0], [0.0, 0.0], [], [[1.0]], "abc", None, {"a": 1}]
)
def test_vectors_are_finite_numbers_not_all_zero(bad: Any) -> None:
    with pytest.raises(InvalidInput):
        check_vector(bad, None)


def test_a_vector_names_its_first_bad_element_and_takes_numpy_scalars() -> None:
    for bad, index in (([1.0, 2, True], 2), ([0.5, np.bool_(True)], 1), ([1.0, "2"], 1)):
        with pytest.raises(InvalidInput) as err:
            check_vector(bad, None)
        assert err.value.field == f"vector[{index}]"
    mixed = [1, 2.5, np.float32(0.5), np.int64(3)]
    assert check_vector(mixed, 4).tolist() == [1.0, 2.5, 0.5, 3.0]
    with pytest.raises(InvalidInput, match="dimensions"):
        check_vector([1.0, 2.0], 3)


def test_huge_but_finite_vectors_are_normalised_without_overflow() -> None:
    mem = Memory.open(":memory:", embedder=None, reaper_interval=None)
    try:
        mem.put("a", "k", 1, vector=[1e30, 1e30, 0.0])
        hit = mem.search(vector=[1.0, 1.0, 0.0], mode="vector")[0]
        assert hit.score == pytest.approx(1.0, abs=1e-5)
    finally:
        mem.close()


def test_a_wrong_sized_vector_in_the_log_is_skipped_by_a_rebuild(tmp_path: Path) -> None:
    mem = Memory.open(str(tmp_path), embedder=None, reaper_interval=None)
    mem.put("a", "good", 1, vector=[1.0, 0.0, 0.0])
    bad = np.ones(5, dtype=np.float32).tobytes()
    mem._core.log._w.execute("UPDATE changes SET vector = ? WHERE key = 'good'", (bad,))  # type: ignore[attr-defined]
    mem.put("a", "other", 1, vector=[0.0, 1.0, 0.0])
    mem.rebuild_index()
    assert [h.item.key for h in mem.search(vector=[0.0, 1.0, 0.0], mode="vector")] == ["other"]
    assert mem._core.events[("index_skip_vector", "dimension_mismatch")] >= 1
    mem.close()
    reopened = Memory.open(str(tmp_path), embedder=None, reaper_interval=None)
    assert reopened.search(vector=[0.0, 1.0, 0.0], mode="vector", k=1)[0].item.key == "other"
    reopened.close()
