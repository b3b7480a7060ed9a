"""Static type checkers see the lazily exported names: every package whose ``__init__``
exports lazily (``lazy_exports``) lists each name of its ``__all__`` in an ``if
TYPE_CHECKING:`` block (``from module import Name as Name``, the explicit re-export form),
those imports denote the objects the package hands out at run time, and none of them
runs at run time. The package ships ``py.typed``."""
from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "longtail"
LAZY_INITS = sorted(p for p in ROOT.rglob("__init__.py")
                    if "__pycache__" not in p.parts and "lazy_exports(" in p.read_text())


def _package(path: Path) -> str:
    return ".".join(("longtail",) + path.parent.relative_to(ROOT).parts)


def _type_checking_imports(path: Path) -> list[tuple[str, str, str | None]]:
    """(module, name, asname) of every import in the module-level ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text(), str(path))
    blocks = [node for node in tree.body if isinstance(node, ast.If)
              and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"]
    assert len(blocks) == 1, f"{path}: expected one module-level `if TYPE_CHECKING:` block"
    out = []
    for stmt in blocks[0].body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 0, (
            f"{path}:{stmt.lineno}: only absolute `from ... import` in the block")
        out += [(stmt.module, a.name, a.asname) for a in stmt.names]
    return out


def test_every_lazy_package_is_covered():
    names = {_package(p) for p in LAZY_INITS}
    assert {"longtail", "longtail.datasets", "longtail.metrics", "longtail.samplers",
            "longtail.samplers.weights", "longtail.samplers.balanced",
            "longtail.samplers.split", "longtail.samplers.replay"} <= names


@pytest.mark.parametrize("path", LAZY_INITS, ids=_package)
def test_type_checking_block_matches_all(path):
    package = importlib.import_module(_package(path))
    imports = _type_checking_imports(path)
    not_reexported = [f"{m}.{n} as {a}" for m, n, a in imports if a != n]
    assert not not_reexported, (
        f"{path}: write `from M import X as X` (explicit re-export): {not_reexported}")
    listed = [n for _, n, _ in imports]
    assert len(listed) == len(set(listed)), f"{path}: a name is imported twice"
    missing = sorted(set(package.__all__) - set(listed))
    extra = sorted(set(listed) - set(package.__all__))
    assert not missing, (f"{path}: exported lazily but not in its TYPE_CHECKING block "
                         f"(type checkers cannot see them): {missing}")
    assert not extra, f"{path}: in the TYPE_CHECKING block but not exported: {extra}"


@pytest.mark.parametrize("path", LAZY_INITS, ids=_package)
def test_type_checking_imports_denote_the_exported_objects(path):
    package = importlib.import_module(_package(path))
    for module, name, _ in _type_checking_imports(path):
        source = importlib.import_module(module)
        assert getattr(source, name) is getattr(package, name), (
            f"{path}: {module}.{name} is not what {package.__name__}.{name} gives")


def test_type_checking_imports_do_not_run():
    # a fresh interpreter: importing every lazy package loads none of the modules behind
    # the names (nor torch or numba); the private core may load
    packages = [_package(p) for p in LAZY_INITS]
    code = (
        "import sys\n"
        f"for name in {packages!r}:\n"
        "    __import__(name)\n"
        f"allowed = set({packages!r})\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'longtail'\n"
        "                and m not in allowed and not m.startswith('longtail._core'))\n"
        "heavy = sorted(m for m in ('torch', 'numba', 'scipy') if m in sys.modules)\n"
        "print(loaded, heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT.parent)
    assert out.stdout.strip() == "[] []", out.stdout


def test_py_typed_ships():
    assert (ROOT / "py.typed").is_file()
    pyproject = (ROOT.parent / "pyproject.toml").read_text()
    assert '"py.typed"' in pyproject, "py.typed must be package data in pyproject.toml"
