"""One line on stderr when longtail's Numba kernels compile (a cold cache), once a process.

Numba compiles a kernel the first time it runs in an installation and caches it on
disk; that first use can stall a script for tens of seconds. :func:`install` (called by
``import longtail``, without importing Numba) arranges for Numba's ``numba:compile``
event -- fired only when a kernel is really compiled, never when it is loaded from the
cache -- to print :data:`MESSAGE` once per process, the first time a longtail kernel
compiles. ``LONGTAIL_QUIET=1`` in the environment silences it.

Example
-------
>>> install()            # idempotent: import longtail has done it already
>>> MESSAGE.startswith("longtail: compiling")
True
"""
from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["install", "silence", "MESSAGE", "QUIET_ENV", "compiled_kernels"]

QUIET_ENV = "LONGTAIL_QUIET"
# a full compilation (``longtail warmup`` on a cold cache) took 85 s on 2 busy cores
MESSAGE = ("longtail: compiling Numba kernels on first use (about a minute in all, once "
           "per install: they are cached); `longtail warmup` does it ahead, "
           f"{QUIET_ENV}=1 hides this message")

_STATE: dict[str, Any] = {"installed": False, "listening": False, "announced": False,
                          "compiled": []}


def compiled_kernels() -> list[str]:
    """Names (``module.function``) of the longtail kernels compiled in this process, in
    order (those loaded from the cache are not listed)."""
    return list(_STATE["compiled"])


def silence() -> None:
    """No message in this process (``longtail warmup`` says what it does itself)."""
    _STATE["announced"] = True


def _quiet() -> bool:
    return os.environ.get(QUIET_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _on_compile(dispatcher: Any) -> None:
    module = getattr(getattr(dispatcher, "py_func", None), "__module__", None) or ""
    if not module.startswith("longtail."):
        return
    _STATE["compiled"].append(f"{module}.{dispatcher.py_func.__name__}")
    # Numba compiles under its global compiler lock: events arrive one at a time
    if _STATE["announced"]:
        return
    _STATE["announced"] = True
    if not _quiet():
        try:
            print(MESSAGE, file=sys.stderr, flush=True)
        except (OSError, ValueError):  # a closed or broken stderr: say nothing
            pass


def _listen() -> None:
    """Register the ``numba:compile`` listener (Numba is imported by now)."""
    if _STATE["listening"]:
        return
    _STATE["listening"] = True
    from numba.core import event

    class _Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            _on_compile((ev.data or {}).get("dispatcher"))

        def on_end(self, ev: Any) -> None:
            pass

    event.register("numba:compile", _Listener())


class _AfterNumba:
    """A ``sys.meta_path`` finder (duck-typed: importlib.abc costs ms to import) that
    finds nothing; when ``numba`` itself is about to be imported, it has that import
    register the listener once Numba has loaded, then steps out of ``sys.meta_path``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "numba":
            return None
        _remove_finder()
        for finder in sys.meta_path:            # the spec the other finders give
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            try:
                run(module)
            finally:
                try:
                    del loader.exec_module
                except AttributeError:
                    pass
            _listen()

        try:
            loader.exec_module = exec_module
        except AttributeError:                  # a loader without instance attributes
            pass
        return spec


def _remove_finder() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _AfterNumba)]


def install() -> None:
    """Arrange for the first-compile message (idempotent, cheap: Numba is not imported).

    If Numba is loaded already the listener is registered now, else as soon as Numba
    has been imported (by the first longtail kernel module, usually).
    """
    if _STATE["installed"]:
        return
    _STATE["installed"] = True
    if "numba" in sys.modules:
        _listen()
    else:
        sys.meta_path.insert(0, _AfterNumba())
