"""The public surface of ``memory`` is what ``__all__`` says, and it all imports."""

from __future__ import annotations

import memory
from memory import errors


def test_every_exported_name_exists() -> None:
    for name in memory.__all__:
        assert hasattr(memory, name), name


def test_the_documented_names_are_exported() -> None:
    documented = {
        "Memory",
        "Conflict",
        "NotFound",
        "PermissionDenied",
        "Compacted",
        "InvalidInput",
        "Item",
        "Hit",
        "Change",
        "TxnResult",
        "ListPage",
    }
    assert documented <= set(memory.__all__)


def test_every_error_maps_to_one_status_and_problem_type() -> None:
    classes = list(errors.ERRORS_BY_TYPE.values())
    assert len({c.problem_type for c in classes}) == len(classes)
    assert all(issubclass(c, errors.HivememError) for c in classes)
    assert not issubclass(errors.HivememError, MemoryError)
