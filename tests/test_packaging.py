"""hivemem installs under one import name: no bare ``memory``/``api``/``adapters``.

Two copies of one module (``memory.errors`` beside ``hivemem.memory.errors``) would
make ``except Conflict`` miss, so every import in the project must go through
``hivemem.``; and the wheel must hold nothing else at its top level.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BARE = {"memory", "api", "adapters"}
SOURCES = ["memory", "api", "adapters", "tests", "bench", "examples", "hivemem/__init__.py"]


def _python_files() -> list[Path]:
    files: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            files += sorted(path.rglob("*.py"))
    return files


def _bare_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno}: {n}" for n in names if n.split(".")[0] in BARE
        ]
    return found


def test_no_module_imports_memory_api_or_adapters_bare() -> None:
    files = _python_files()
    assert len(files) > 50  # the walk found the project
    offenders = [hit for f in files for hit in _bare_imports(f)]
    assert offenders == []


def test_importing_everything_loads_no_bare_top_level_package() -> None:
    code = (
        "import sys, hivemem, hivemem.api.app, hivemem.api.cli, hivemem.memory.client;"
        "bare = sorted(m for m in sys.modules if m.split('.')[0] in "
        f"{sorted(BARE)!r}); print(bare); sys.exit(1 if bare else 0)"
    )
    # From a neutral directory, so the repo root is not on sys.path.
    done = subprocess.run([sys.executable, "-c", code], cwd="/", capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_root_is_the_repo_folders() -> None:
    import hivemem.api
    import hivemem.memory

    assert Path(hivemem.memory.__file__).resolve() == ROOT / "memory" / "__init__.py"
    assert Path(hivemem.api.__file__).resolve() == ROOT / "api" / "__init__.py"


@pytest.mark.slow
def test_the_wheel_has_one_top_level_name(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("hivemem-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"hivemem"}
    for module in (
        "hivemem/__init__.py",
        "hivemem/py.typed",
        "hivemem/memory/engine.py",
        "hivemem/memory/py.typed",
        "hivemem/api/app.py",
        "hivemem/adapters/__init__.py",
    ):
        assert module in names, module
    console = sorted(
        f"hivemem/api/console/{p.relative_to(ROOT / 'api' / 'console').as_posix()}"
        for p in (ROOT / "api" / "console" / "static").rglob("*")
        if p.is_file()
    )
    assert len(console) >= 10  # index.html, the stylesheet and every module
    missing = [name for name in console if name not in names]
    assert missing == [], "console assets missing from the wheel"
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hivemem = hivemem.api.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()
