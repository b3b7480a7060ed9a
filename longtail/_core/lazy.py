"""Lazy attribute loading for package ``__init__`` modules (PEP 562)."""
from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(
    package: str, module_globals: dict[str, Any], mapping: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` that import ``mapping[name]`` on first use.

    ``mapping`` maps a public name to the module defining it. A name equal to the last
    component of its module is the module itself.
    """

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

    return __getattr__, __dir__
