"""memory.patch: RFC 6902 JSON Patch (the RFC's own examples) and hivemem's extensions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from hivemem.memory.errors import Conflict, InvalidInput
from hivemem.memory.models import PatchTestFailure
from hivemem.memory.patch import apply_ops, json_equal, parse_ops


def patched(doc: Any, ops: list[dict[str, Any]]) -> Any:
    return apply_ops(json.loads(json.dumps(doc)), parse_ops(ops))


def field_of(doc: Any, ops: list[dict[str, Any]]) -> str:
    with pytest.raises(InvalidInput) as err:
        patched(doc, ops)
    return err.value.field


# -- RFC 6902, appendix A ------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "ops", "result"),
    [
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux"}],
            {"baz": "qux", "foo": "bar"},
        ),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        (
            {"foo": ["bar", "qux", "baz"]},
            [{"op": "remove", "path": "/foo/1"}],
            {"foo": ["bar", "baz"]},
        ),
        (
            {"baz": "qux", "foo": "bar"},
            [{"op": "replace", "path": "/baz", "value": "boo"}],
            {"baz": "boo", "foo": "bar"},
        ),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
            {"foo": "bar", "child": {"grandchild": {}}},
        ),
        (
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
        ),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        ({"a": 1}, [{"op": "copy", "from": "/a", "path": "/b"}], {"a": 1, "b": 1}),
        ({"a": 1}, [{"op": "add", "path": "", "value": [1, 2]}], [1, 2]),
        ({"a": {"b": 1}}, [{"op": "move", "from": "/a", "path": ""}], {"b": 1}),
    ],
)
def test_rfc6902_examples(doc: Any, ops: list[dict[str, Any]], result: Any) -> None:
    assert patched(doc, ops) == result


def test_test_compares_json_values_not_python_ones() -> None:
    assert patched(
        {"baz": "qux", "foo": ["a", 2, "c"]},
        [
            {"op": "test", "path": "/baz", "value": "qux"},
            {"op": "test", "path": "/foo/1", "value": 2.0},
        ],
    ) == {"baz": "qux", "foo": ["a", 2, "c"]}
    assert not json_equal(True, 1) and not json_equal(0, False) and json_equal(1, 1.0)
    assert not json_equal({"a": [1]}, {"a": [True]})


def test_a_failed_test_is_a_conflict_naming_expected_and_actual() -> None:
    with pytest.raises(Conflict) as err:
        patched({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}])
    assert err.value.conflicts == [PatchTestFailure(path="/baz", expected="bar", actual="qux")]
    with pytest.raises(Conflict) as err:
        patched({}, [{"op": "test", "path": "/gone", "value": None}])
    assert err.value.conflicts[0].absent is True


def test_missing_targets_and_bad_indexes_name_the_op() -> None:
    assert (
        field_of({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}])
        == "ops[0].path"
    )
    assert (
        field_of(
            {"a": 1}, [{"op": "test", "path": "/a", "value": 1}, {"op": "remove", "path": "/b"}]
        )
        == "ops[1].path"
    )
    assert field_of({"a": [1]}, [{"op": "add", "path": "/a/2", "value": 1}]) == "ops[0].path"
    assert field_of({"a": [1]}, [{"op": "replace", "path": "/a/01", "value": 1}]) == "ops[0].path"
    assert field_of({"a": 1}, [{"op": "copy", "from": "/nope", "path": "/b"}]) == "ops[0].from"
    assert field_of({"a": 1}, [{"op": "replace", "path": "/a/b", "value": 2}]) == "ops[0].path"


@pytest.mark.parametrize(
    ("ops", "field"),
    [
        ({"op": "add"}, "ops"),
        (["add"], "ops[0]"),
        ([{"op": "frobnicate", "path": "/a"}], "ops[0].op"),
        ([{"op": "add", "value": 1}], "ops[0].path"),
        ([{"op": "add", "path": "/a"}], "ops[0].value"),
        ([{"op": "add", "path": "a", "value": 1}], "ops[0].path"),
        ([{"op": "add", "path": "/a~2", "value": 1}], "ops[0].path"),
        ([{"op": "move", "path": "/a"}], "ops[0].from"),
        ([{"op": "move", "from": "/a", "path": "/a/b"}], "ops[0].from"),
        ([{"op": "remove", "path": ""}], "ops[0].path"),
        ([{"op": "add", "path": "/a", "value": 1, "extra": 2}], "ops[0].extra"),
        ([{"op": "increment", "path": "/a", "value": "1"}], "ops[0].value"),
        ([{"op": "increment", "path": "/a", "value": True}], "ops[0].value"),
        ([{"op": "increment", "path": "/a", "value": 2**63}], "ops[0].value"),
        ([{"op": "append", "path": "/a", "value": 1, "max_len": 0}], "ops[0].max_len"),
        ([{"op": "append", "path": "/a", "value": 1, "max_len": True}], "ops[0].max_len"),
    ],
)
def test_malformed_operations_are_rejected_before_anything_runs(ops: Any, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_ops(ops)
    assert err.value.field == field


def test_a_failing_op_leaves_no_partial_result_for_the_caller() -> None:
    doc = {"n": 1}
    ops = parse_ops([{"op": "increment", "path": "/n"}, {"op": "remove", "path": "/missing"}])
    with pytest.raises(InvalidInput):
        apply_ops(json.loads(json.dumps(doc)), ops)
    assert doc == {"n": 1}


# -- extensions ----------------------------------------------------------------------


def test_increment_is_exact_for_integers_and_starts_missing_paths_at_zero() -> None:
    assert patched({}, [{"op": "increment", "path": "/n"}]) == {"n": 1}
    assert patched({"n": 2**62}, [{"op": "increment", "path": "/n", "value": 2**62 - 1}]) == {
        "n": 2**63 - 1
    }
    assert patched({"n": 1}, [{"op": "increment", "path": "/n", "value": 0.5}]) == {"n": 1.5}
    assert patched({}, [{"op": "increment", "path": "/a/b/c", "value": -3}]) == {
        "a": {"b": {"c": -3}}
    }
    assert patched(None, [{"op": "increment", "path": ""}]) == 1
    assert patched(41, [{"op": "increment", "path": ""}]) == 42


def test_increment_overflow_and_non_numbers_are_invalid() -> None:
    assert field_of({"n": 2**63 - 1}, [{"op": "increment", "path": "/n"}]) == "ops[0].path"
    assert (
        field_of({"n": -(2**63)}, [{"op": "increment", "path": "/n", "value": -1}]) == "ops[0].path"
    )
    assert field_of({"n": True}, [{"op": "increment", "path": "/n"}]) == "ops[0].path"
    assert field_of({"n": "3"}, [{"op": "increment", "path": "/n"}]) == "ops[0].path"
    assert (
        field_of({"n": 1e308}, [{"op": "increment", "path": "/n", "value": 1e308}]) == "ops[0].path"
    )
    assert field_of({"a": [1]}, [{"op": "increment", "path": "/a/x/y"}]) == "ops[0].path"


def test_append_creates_the_array_and_max_len_keeps_the_newest() -> None:
    doc: Any = {}
    for i in range(5):
        doc = patched(doc, [{"op": "append", "path": "/log", "value": {"i": i}, "max_len": 3}])
    assert doc == {"log": [{"i": 2}, {"i": 3}, {"i": 4}]}
    assert field_of({"log": "x"}, [{"op": "append", "path": "/log", "value": 1}]) == "ops[0].path"


def test_sets_add_once_and_remove_every_equal_element() -> None:
    doc = patched(
        {},
        [
            {"op": "add_to_set", "path": "/seen", "value": "a"},
            {"op": "add_to_set", "path": "/seen", "value": "a"},
            {"op": "add_to_set", "path": "/seen", "value": 1},
            {"op": "add_to_set", "path": "/seen", "value": True},
            {"op": "add_to_set", "path": "/seen", "value": 1.0},
        ],
    )
    assert doc == {"seen": ["a", 1, True]}
    assert patched({"s": [1, 2, 1]}, [{"op": "remove_from_set", "path": "/s", "value": 1}]) == {
        "s": [2]
    }
    assert patched({}, [{"op": "remove_from_set", "path": "/s", "value": 1}]) == {}
    assert field_of({"s": {}}, [{"op": "add_to_set", "path": "/s", "value": 1}]) == "ops[0].path"


def test_an_empty_patch_changes_nothing() -> None:
    assert patched({"a": [1]}, []) == {"a": [1]}


def test_standard_only_refuses_the_extensions() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_ops([{"op": "increment", "path": "/n"}], standard_only=True)
    assert err.value.field == "ops[0].op"
