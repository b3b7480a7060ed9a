"""Sphinx configuration of the longtail API reference (``make docs``).

The pages (``docs/api/*.rst``, one per package) are generated from the docstrings
(autodoc, numpydoc for the numpy-style sections); ``make docs`` builds them with warnings
as errors, cross-references checked.
"""
from __future__ import annotations

import os
import re
import sys

sys.path.insert(0, os.path.abspath(".."))

import longtail  # noqa: E402

project = "longtail"
author = "the longtail developers"
copyright = "the longtail developers"
version = release = longtail.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "numpydoc",
]

exclude_patterns = ["_build", "architecture.md"]
templates_path: list[str] = []
html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"longtail {release}"

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": False}

numpydoc_show_class_members = False   # methods are documented by autodoc itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

intersphinx_mapping: dict[str, tuple[str, str | None]] = {}   # CI is offline

# The project writes its doctested examples under "Example"; numpydoc knows "Examples"
# only and would drop an unknown section. Other free-form headings of a module docstring
# ("Conventions", ...) become rubrics of the extended summary.
_KNOWN = {"Parameters", "Returns", "Yields", "Receives", "Raises", "Warns", "Warnings",
          "Other Parameters", "Attributes", "Methods", "See Also", "Notes", "References",
          "Examples"}
_HEADING = re.compile(r"^(\s*)(\S[^\n]*?)\s*$")


def _normalise_sections(app, what, name, obj, options, lines):  # noqa: ANN001
    """Rename "Example" to "Examples", turn unknown headings into rubrics (in place)."""
    i = 0
    while i + 1 < len(lines):
        head, rule = lines[i], lines[i + 1]
        m = _HEADING.match(head)
        stripped = rule.strip()
        if (m and stripped and set(stripped) == {"-"}
                and len(stripped) == len(m.group(2))
                and (i == 0 or not lines[i - 1].strip())):
            indent, title = m.group(1), m.group(2)
            if title == "Example":
                lines[i], lines[i + 1] = f"{indent}Examples", f"{indent}--------"
            elif title not in _KNOWN:
                lines[i], lines[i + 1] = f"{indent}.. rubric:: {title}", ""
        i += 1


# Cross-references are checked (nitpicky): a reference to a name that does not exist is
# an error. A name that exists but is documented under another path (``longtail.X`` for
# ``longtail.datasets.X``, a defining submodule) links to the documented page; one that
# exists and has no page (torch, numpy, a private submodule) is rendered as code.
nitpicky = True
# ``pa.Array`` in signatures: the annotation names pyarrow by its import alias
nitpick_ignore_regex = [("py:class", r"pa\..*")]
# ``Batch``: the private alias of the (x, y, index, extras) tuple the collates return
nitpick_ignore = [("py:class", "Batch")]
_ALIASES: dict[int, tuple[str, str]] = {}


def _resolve(target: str):  # noqa: ANN202
    """The Python object a dotted name denotes, or None."""
    import importlib

    parts = target.split(".")
    if "__main__" in parts:   # importing it would run the command line
        return None
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except Exception:  # noqa: BLE001 - not a module: try a shorter prefix
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _documented(env):  # noqa: ANN001, ANN202
    """id(object) -> (documented name, objtype) for everything the py domain holds."""
    if not _ALIASES:
        for name, entry in env.get_domain("py").objects.items():
            obj = _resolve(name)
            if obj is not None:
                _ALIASES.setdefault(id(obj), (name, entry.objtype))
    return _ALIASES


def _missing_reference(app, env, node, contnode):  # noqa: ANN001, ANN202
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    candidates = [target]
    for scope in (node.get("py:class"), node.get("py:module")):
        if scope:
            candidates.append(f"{scope}.{target}")
    # a name of the module that defines the docstring ("docstring of pkg.mod.Class.meth")
    where = re.search(r"docstring of ([\w.]+)", str(node.source or ""))
    if where:
        parts = where.group(1).split(".")
        candidates += [".".join(parts[:cut] + [target]) for cut in range(len(parts), 0, -1)]
    for name in candidates:
        obj = _resolve(name)
        if obj is None:
            continue
        hit = _documented(env).get(id(obj))
        if hit is not None and hit[0] != target:
            ref = env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"] if hit[1] != "module"
                else "mod", hit[0], node, contnode)
            if ref is not None:
                return ref
        return contnode   # exists, has no page of its own: plain code
    # a short name (``LabelMatrix.from_any`` from another module's page): the one
    # documented object whose full name ends with it
    ends = [name for name, entry in env.get_domain("py").objects.items()
            if name.endswith("." + target) and not entry.aliased]
    if len(ends) == 1:
        return env.get_domain("py").resolve_xref(env, node["refdoc"], app.builder,
                                                 node["reftype"], ends[0], node, contnode)
    return None


def _skip_member(app, what, name, obj, skip, options):  # noqa: ANN001, ANN202
    """Leave out ``forward`` / ``extra_repr`` of the loss modules: they have no docstring
    of their own (the class docstring gives the signature), torch's would be shown."""
    import torch

    if getattr(obj, "__doc__", None) is None and hasattr(torch.nn.Module, name):
        return True
    return None


def setup(app):  # noqa: ANN001, ANN201
    # before numpydoc's own autodoc-process-docstring handler (priority 500)
    app.connect("autodoc-process-docstring", _normalise_sections, priority=400)
    app.connect("missing-reference", _missing_reference)
    app.connect("autodoc-skip-member", _skip_member)


# numpydoc also parses the raw docstring for signatures (autodoc-process-signature),
# before the hook above runs, and warns about "Example" there: harmless, silenced
import warnings  # noqa: E402

warnings.filterwarnings("ignore", message=r"Unknown section Example\b", category=UserWarning)
