"""The README's Python examples run as written (with the real model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_examples() -> None:
    assert len(python_blocks()) >= 2


@pytest.mark.model
@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_example_runs(index: int, tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    code = python_blocks()[index]
    namespace: dict[str, object] = {}
    if "Memory.open" not in code:  # a fragment: give it a store
        exec("from hivemem import Memory\nmem = Memory.open(':memory:')", namespace)
    exec(compile(code, f"README.md block {index}", "exec"), namespace)
    if "print(" in code:
        assert capsys.readouterr().out.strip()
