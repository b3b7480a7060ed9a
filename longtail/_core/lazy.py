"""Lazy attribute loading for package ``__init__`` modules (PEP 562)."""
from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable, Mapping


def lazy_exports(
    package: str, module_globals: dict[str, Any], modules: Mapping[str, str],
    *, include: Iterable[Mapping[str, str]] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]], list[str], dict[str, str]]:
    """``(__getattr__, __dir__, __all__, _LAZY)`` for a package that imports on first use.

    ``modules`` maps a submodule of ``package`` (relative name) to the public names it
    defines, separated by spaces; a name equal to the submodule's own name is the module
    itself. ``include`` adds the ``_LAZY`` maps (name -> absolute module) of child
    packages, so a parent re-exports its children's names without importing them.

    Example
    -------
    >>> g = {}
    >>> getattr_, dir_, all_, lazy = lazy_exports("longtail.datasets", g,
    ...                                           {"label_matrix": "LabelMatrix"})
    >>> all_, getattr_("LabelMatrix").__name__
    (['LabelMatrix'], 'LabelMatrix')
    """
    mapping: dict[str, str] = {}
    for child in include:
        mapping.update(child)
    for sub, names in modules.items():
        mapping.update((name, f"{package}.{sub}") for name in names.split())

    def __getattr__(name: str) -> Any:
        module_name = mapping.get(name)
        if module_name is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module = importlib.import_module(module_name)
        value = module if module_name.rsplit(".", 1)[-1] == name else getattr(module, name)
        module_globals[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(module_globals) | set(mapping))

    return __getattr__, __dir__, sorted(mapping), mapping
