"""Module attributes imported on first access (PEP 562), for the package ``__init__`` files."""

from __future__ import annotations

import importlib


def lazy_module(namespace: dict, names: dict[str, str], submodules=None, extra=()):
    """``(__getattr__, __dir__)`` for the module whose globals are ``namespace``.

    ``names``: public name -> the module defining it. ``submodules``: names importable as
    ``<package>.<name>`` on attribute access (None: any submodule). ``extra``: more names
    for ``dir()``. A resolved name is stored in ``namespace``, so later accesses skip this.
    """
    package = namespace["__name__"]

    def __getattr__(name: str):
        module = names.get(name)
        if module is not None:
            value = getattr(importlib.import_module(module), name)
        elif submodules is None or name in submodules:
            try:
                value = importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise  # the submodule exists but needs something missing
                raise AttributeError(
                    f"module {package!r} has no attribute {name!r}") from None
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names) | set(extra) | set(submodules or ()))

    return __getattr__, __dir__
