"""The public surface of ``hivemem`` is what ``__all__`` says, and it all imports."""

from __future__ import annotations

import hivemem
import hivemem.memory
from hivemem.memory import errors


def test_every_exported_name_exists() -> None:
    for name in hivemem.__all__:
        assert hasattr(hivemem, name), name


def test_the_root_package_re_exports_the_engine_surface() -> None:
    assert set(hivemem.__all__) == set(hivemem.memory.__all__)
    for name in hivemem.__all__:
        assert getattr(hivemem, name) is getattr(hivemem.memory, name), name


def test_the_documented_names_are_exported() -> None:
    documented = {
        "Memory",
        "Client",
        "AsyncClient",
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
    assert documented <= set(hivemem.__all__)


def test_every_error_maps_to_one_status_and_problem_type() -> None:
    classes = list(errors.ERRORS_BY_TYPE.values())
    assert len({c.problem_type for c in classes}) == len(classes)
    assert all(issubclass(c, errors.HivememError) for c in classes)
    assert not issubclass(errors.HivememError, MemoryError)
