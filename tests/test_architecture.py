"""The package rules of docs/architecture.md, read from the imports (ast), not from habit.

* a package uses another only through its public names: no imported module path or name
  that starts with ``_`` unless it is inside the importing package or in ``longtail._core``;
* Numba kernels (``_kernels`` modules) are imported only by modules of their own package;
* ``longtail._core`` is the only shared private code and imports no other longtail package;
* a parent package ``__init__`` may gather its children's lazy export maps (``_LAZY``).
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "longtail"
MODULES = sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def _package_of(path: Path) -> str:
    """Dotted name of the package a module belongs to (its directory)."""
    return ".".join(("longtail",) + path.parent.relative_to(ROOT).parts)


def _imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name) for every ``longtail`` import, at any depth of the file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            if node.module and node.module.split(".")[0] == "longtail":
                found += [(node.lineno, node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names
                      if a.name.split(".")[0] == "longtail"]
    return found


def _inside(target: str, package: str) -> bool:
    """Whether ``target`` belongs to ``package``; the root ``longtail`` package owns only
    its own top-level modules, not the packages below it."""
    if package == "longtail":
        return target == "longtail" or (target.count(".") == 1 and (
            ROOT / (target.split(".")[1] + ".py")).exists())
    return target == package or target.startswith(package + ".")


def violations(path: Path) -> list[str]:
    """Every import of ``path`` that breaks a rule, as ``file:line: why``."""
    package = _package_of(path)
    where = path.relative_to(ROOT.parent)
    out = []
    for line, module, name in _imports(path):
        parts = module.split(".") + ([name] if name else [])
        if _inside(package, "longtail._core") and not _inside(module, "longtail._core"):
            out.append(f"{where}:{line}: longtail._core imports {module}")
        if "_kernels" in parts:
            owner = ".".join(parts[:parts.index("_kernels")])
            if owner != package:
                out.append(f"{where}:{line}: kernels of {owner} imported from {package}")
            continue
        if _inside(module, package) or _inside(module, "longtail._core"):
            continue
        if name == "_LAZY" and path.name == "__init__.py" and module.startswith(package):
            continue  # a parent gathers its children's export maps
        if any(p.startswith("_") for p in parts):
            out.append(f"{where}:{line}: private {'.'.join(parts)} of another package "
                       f"(from {package})")
    return out


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_package_rules(path: Path) -> None:
    assert violations(path) == []


def test_the_rules_catch_what_they_forbid(tmp_path: Path, monkeypatch) -> None:
    """The checker itself: each rule fires on a module written to break it."""
    fake = tmp_path / "longtail"
    for sub in ("_core", "metrics", "samplers/split", "datasets"):
        (fake / sub).mkdir(parents=True)
        (fake / sub / "__init__.py").write_text("")
    (fake / "datasets" / "_kernels.py").write_text("")
    (fake / "metrics" / "_kernels.py").write_text("")
    bad = fake / "samplers" / "split" / "bad.py"
    bad.write_text("from longtail.datasets import _kernels as K\n"
                   "from longtail.metrics._kernels import ap\n"
                   "from longtail.samplers.replay.sampler import _tree_size\n"
                   "import longtail.cli._common\n"
                   "from longtail._core.checks import check_int\n"
                   "from longtail.datasets import LabelMatrix\n")
    top = fake / "losses.py"
    top.write_text("from longtail.metrics import _kernels\nfrom longtail.metrics import _x\n")
    core = fake / "_core" / "bad.py"
    core.write_text("from longtail.datasets import LabelMatrix\n")
    monkeypatch.setattr(__import__(__name__), "ROOT", fake)
    got = violations(bad)
    assert [g.split(":")[1] for g in got] == ["1", "2", "3", "4"], got
    assert "kernels of longtail.datasets" in got[0] and "kernels of longtail.metrics" in got[1]
    assert "_tree_size" in got[2] and "_common" in got[3]
    assert len(violations(top)) == 2, violations(top)
    assert violations(core) == ["longtail/_core/bad.py:1: longtail._core imports "
                                "longtail.datasets"]


MAX_KERNEL_ARGS = 10


def test_kernels_take_few_positional_arguments() -> None:
    """No Numba kernel takes more than ~10 positional parameters: related arrays travel
    grouped (namedtuples, record arrays), so no call site is a row of 20 bare arrays."""
    wide = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef) and any(
                    "njit" in ast.unparse(d) for d in node.decorator_list):
                if len(node.args.args) > MAX_KERNEL_ARGS:
                    wide.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                f"takes {len(node.args.args)}")
    assert wide == []
