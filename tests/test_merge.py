"""Tests for memory.merge: RFC 7396 merge patch and the three-way JSON merge."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hivemem.memory.merge import json_pointer, merge_patch, three_way
from hivemem.memory.models import MergeConflict

# --- strategies -------------------------------------------------------------

# A small key alphabet so that generated objects share keys and actually collide.
keys = st.sampled_from(["a", "b", "c", "~", "/", "x/y~z"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-5, 5)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=3)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(keys, json_values, max_size=4)
non_null_values = st.recursive(
    scalars.filter(lambda v: v is not None),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=4),
    max_leaves=12,
)
null_free_patches = st.dictionaries(keys, non_null_values, max_size=4)


def leaves(obj: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """(path, value) for every non-object value (and every empty object) inside obj."""
    out: list[tuple[tuple[str, ...], Any]] = []
    for key, value in obj.items():
        if isinstance(value, dict) and value:
            out.extend(leaves(value, (*prefix, key)))
        else:
            out.append(((*prefix, key), value))
    return out


def lookup(obj: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        assert isinstance(obj, dict) and key in obj, f"missing {path!r}"
        obj = obj[key]
    return obj


# --- json_pointer -------------------------------------------------------------


def test_json_pointer_of_no_parts_is_the_root() -> None:
    assert json_pointer([]) == ""


def test_json_pointer_escapes_tilde_before_slash() -> None:
    assert json_pointer(["a", "b"]) == "/a/b"
    assert json_pointer(["a/b", "m~n"]) == "/a~1b/m~0n"
    assert json_pointer(["~1"]) == "/~01"
    assert json_pointer([""]) == "/"


# --- merge_patch: RFC 7396 appendix A ----------------------------------------------

RFC7396_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "expected"), RFC7396_EXAMPLES)
def test_merge_patch_matches_every_rfc7396_appendix_example(
    target: Any, patch: Any, expected: Any
) -> None:
    assert merge_patch(target, patch) == expected


def test_merge_patch_rfc7396_section3_document_example() -> None:
    target = {
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged",
    }
    patch = {
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": None},
        "tags": ["example"],
    }
    assert merge_patch(target, patch) == {
        "title": "Hello!",
        "author": {"givenName": "John"},
        "tags": ["example"],
        "content": "This will be unchanged",
        "phoneNumber": "+01-123-456-7890",
    }


def test_merge_patch_keeps_nulls_inside_replaced_lists() -> None:
    assert merge_patch({"a": 1}, {"a": [None, {"b": None}]}) == {"a": [None, {"b": None}]}


def test_merge_patch_result_shares_no_structure_with_inputs() -> None:
    target = {"keep": {"deep": [1]}, "x": 1}
    patch = {"new": {"list": [2]}, "x": 2}
    result = merge_patch(target, patch)
    result["keep"]["deep"].append(99)
    result["new"]["list"].append(99)
    assert target == {"keep": {"deep": [1]}, "x": 1}
    assert patch == {"new": {"list": [2]}, "x": 2}


@given(json_values, json_values)
def test_merge_patch_never_mutates_its_inputs(target: Any, patch: Any) -> None:
    target_before, patch_before = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert target == target_before
    assert patch == patch_before


@given(json_values, null_free_patches)
def test_merge_patch_without_nulls_contains_every_leaf_of_the_patch(
    target: Any, patch: dict[str, Any]
) -> None:
    result = merge_patch(target, patch)
    for path, value in leaves(patch):
        found = lookup(result, path)
        if value == {}:
            assert isinstance(found, dict)
        else:
            assert found == value


@given(json_values, json_values)
def test_merge_patch_with_a_non_object_patch_replaces_the_target(target: Any, patch: Any) -> None:
    if not isinstance(patch, dict):
        assert merge_patch(target, patch) == patch


# --- three_way: examples ------------------------------------------------------------


def test_disjoint_field_edits_merge_without_conflict() -> None:
    base = {"a": 1, "b": 1, "c": 1}
    merged, conflicts = three_way(base, {"a": 2, "b": 1, "c": 1}, {"a": 1, "b": 3, "c": 1})
    assert merged == {"a": 2, "b": 3, "c": 1}
    assert conflicts == []


def test_disjoint_nested_edits_merge_without_conflict() -> None:
    base = {"cfg": {"x": 1, "y": 1}}
    merged, conflicts = three_way(base, {"cfg": {"x": 2, "y": 1}}, {"cfg": {"x": 1, "y": 2}})
    assert merged == {"cfg": {"x": 2, "y": 2}}
    assert conflicts == []


def test_same_edit_on_both_sides_is_not_a_conflict() -> None:
    merged, conflicts = three_way({"a": 1}, {"a": 5, "n": [1]}, {"a": 5, "n": [1]})
    assert merged == {"a": 5, "n": [1]}
    assert conflicts == []


def test_nested_conflict_reports_exact_pointer_and_all_three_values() -> None:
    base = {"user": {"profile": {"name": "ann", "age": 30}}}
    ours = {"user": {"profile": {"name": "anne", "age": 30}}}
    theirs = {"user": {"profile": {"name": "annie", "age": 31}}}
    merged, conflicts = three_way(base, ours, theirs)
    assert conflicts == [
        MergeConflict(path="/user/profile/name", base="ann", ours="anne", theirs="annie")
    ]
    assert conflicts[0].absent == []
    assert merged == {"user": {"profile": {"name": "annie", "age": 31}}}


def test_delete_on_ours_vs_modify_on_theirs_is_a_conflict_with_ours_absent() -> None:
    merged, conflicts = three_way({"a": 1, "k": 0}, {"k": 0}, {"a": 2, "k": 0})
    assert conflicts == [MergeConflict(path="/a", base=1, ours=None, theirs=2, absent=["ours"])]
    assert merged == {"a": 2, "k": 0}


def test_modify_on_ours_vs_delete_on_theirs_is_a_conflict_with_theirs_absent() -> None:
    merged, conflicts = three_way({"a": 1}, {"a": 2}, {})
    assert conflicts == [MergeConflict(path="/a", base=1, ours=2, theirs=None, absent=["theirs"])]
    assert merged == {}


def test_delete_on_one_side_and_unchanged_on_the_other_deletes_the_field() -> None:
    assert three_way({"a": 1, "b": 2}, {"b": 2}, {"a": 1, "b": 3}) == ({"b": 3}, [])
    assert three_way({"a": 1, "b": 2}, {"a": 1, "b": 3}, {"b": 2}) == ({"b": 3}, [])


def test_delete_on_both_sides_deletes_without_conflict() -> None:
    assert three_way({"a": 1, "b": 2}, {"b": 3}, {"b": 3}) == ({"b": 3}, [])


def test_null_is_a_value_distinct_from_an_absent_field() -> None:
    merged, conflicts = three_way({"a": 1}, {"a": None}, {})
    assert merged == {}
    assert conflicts == [
        MergeConflict(path="/a", base=1, ours=None, theirs=None, absent=["theirs"])
    ]


def test_add_add_with_different_values_conflicts_with_base_absent() -> None:
    merged, conflicts = three_way({}, {"new": 1}, {"new": 2})
    assert conflicts == [MergeConflict(path="/new", base=None, ours=1, theirs=2, absent=["base"])]
    assert merged == {"new": 2}


def test_add_add_with_equal_values_merges_without_conflict() -> None:
    assert three_way({}, {"new": {"x": 1}}, {"new": {"x": 1}}) == ({"new": {"x": 1}}, [])


def test_keys_with_tilde_and_slash_are_escaped_in_conflict_paths() -> None:
    base = {"a/b": {"m~n": 0}}
    _, conflicts = three_way(base, {"a/b": {"m~n": 1}}, {"a/b": {"m~n": 2}})
    assert [c.path for c in conflicts] == ["/a~1b/m~0n"]


def test_root_scalar_conflict_has_empty_pointer() -> None:
    merged, conflicts = three_way(1, 2, 3)
    assert merged == 3
    assert conflicts == [MergeConflict(path="", base=1, ours=2, theirs=3)]


def test_lists_are_atomic_and_conflict_as_a_whole() -> None:
    base = {"tags": ["a", "b"]}
    merged, conflicts = three_way(base, {"tags": ["a", "b", "c"]}, {"tags": ["z", "b"]})
    assert conflicts == [
        MergeConflict(path="/tags", base=["a", "b"], ours=["a", "b", "c"], theirs=["z", "b"])
    ]
    assert merged == {"tags": ["z", "b"]}


def test_type_change_against_a_concurrent_edit_is_a_conflict() -> None:
    base = {"v": {"x": 1}}
    _, conflicts = three_way(base, {"v": "flat"}, {"v": {"x": 2}})
    assert conflicts == [MergeConflict(path="/v", base={"x": 1}, ours="flat", theirs={"x": 2})]


def test_booleans_and_numbers_are_different_values() -> None:
    assert three_way(1, True, 1) == (True, [])
    assert three_way({"f": 0}, {"f": False}, {"f": 0}) == ({"f": False}, [])
    _, conflicts = three_way({"f": 1}, {"f": True}, {"f": 2})
    assert [c.path for c in conflicts] == ["/f"]


def test_default_resolution_takes_theirs_but_reports_every_conflict() -> None:
    base = {"a": 0, "b": 0, "c": 0}
    merged, conflicts = three_way(base, {"a": 1, "b": 1, "c": 1}, {"a": 2, "b": 2, "c": 0})
    assert merged == {"a": 2, "b": 2, "c": 1}
    assert [c.path for c in conflicts] == ["/a", "/b"]


def test_on_conflict_ours_takes_the_callers_value_and_still_reports() -> None:
    base = {"a": 0, "b": 0, "gone": 0}
    ours = {"a": 1, "b": 0}
    theirs = {"a": 2, "b": 5, "gone": 9}
    merged, conflicts = three_way(base, ours, theirs, on_conflict="ours")
    assert merged == {"a": 1, "b": 5}
    assert [c.path for c in conflicts] == ["/a", "/gone"]


def test_on_conflict_theirs_takes_the_stored_value_and_still_reports() -> None:
    base = {"a": 0}
    merged, conflicts = three_way(base, {"a": 1, "n": 1}, {"n": 2}, on_conflict="theirs")
    assert merged == {"n": 2}
    assert [(c.path, c.absent) for c in conflicts] == [("/n", ["base"]), ("/a", ["theirs"])]


@pytest.mark.parametrize("bad", ["mine", "OURS", "", "base"])
def test_invalid_on_conflict_raises_value_error(bad: str) -> None:
    with pytest.raises(ValueError, match="on_conflict"):
        three_way({}, {}, {}, on_conflict=bad)


def test_merged_keys_keep_theirs_order_then_new_keys_from_ours() -> None:
    base = {"a": 0, "b": 0}
    ours = {"z": 1, "b": 0, "a": 0, "y": 1}
    theirs = {"b": 0, "a": 0, "t": 2}
    merged, _ = three_way(base, ours, theirs)
    assert list(merged) == ["b", "a", "t", "z", "y"]


def test_three_way_result_shares_no_structure_with_inputs() -> None:
    base = {"l": [1], "d": {"x": 1}}
    ours = {"l": [1], "d": {"x": 1}, "o": [0]}
    theirs = {"l": [1], "d": {"x": 1}}
    merged, _ = three_way(base, ours, theirs)
    merged["l"].append(2)
    merged["d"]["x"] = 9
    merged["o"].append(1)
    assert ours == {"l": [1], "d": {"x": 1}, "o": [0]}
    assert theirs == {"l": [1], "d": {"x": 1}}


# --- three_way: properties ----------------------------------------------------------


@given(json_values, json_values)
def test_only_ours_changed_yields_ours_without_conflict(base: Any, x: Any) -> None:
    assert three_way(base, x, base) == (x, [])


@given(json_values, json_values)
def test_only_theirs_changed_yields_theirs_without_conflict(base: Any, y: Any) -> None:
    assert three_way(base, base, y) == (y, [])


@given(json_values, json_values)
def test_identical_changes_yield_that_value_without_conflict(base: Any, x: Any) -> None:
    assert three_way(base, x, copy.deepcopy(x)) == (x, [])


@given(json_values, json_values, json_values)
def test_three_way_never_mutates_its_inputs(base: Any, ours: Any, theirs: Any) -> None:
    before = copy.deepcopy((base, ours, theirs))
    three_way(base, ours, theirs)
    three_way(base, ours, theirs, on_conflict="ours")
    assert (base, ours, theirs) == before


@given(json_objects, json_objects, json_objects)
def test_swapping_sides_and_resolution_gives_the_same_merge(
    base: Any, ours: Any, theirs: Any
) -> None:
    merged, conflicts = three_way(base, ours, theirs, on_conflict="ours")
    swapped, swapped_conflicts = three_way(base, theirs, ours, on_conflict="theirs")
    assert merged == swapped
    assert sorted(c.path for c in conflicts) == sorted(c.path for c in swapped_conflicts)


@given(json_objects, json_objects, json_objects)
def test_a_conflict_never_has_both_changed_sides_absent(base: Any, ours: Any, theirs: Any) -> None:
    _, conflicts = three_way(base, ours, theirs)
    for c in conflicts:
        assert c.path.startswith("/")
        assert not {"ours", "theirs"} <= set(c.absent)
