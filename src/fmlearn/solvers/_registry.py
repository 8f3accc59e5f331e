"""Name -> solver class registry."""

from __future__ import annotations

SOLVERS: dict[str, type] = {}


def register_solver(cls):
    """Class decorator adding ``cls`` to :data:`SOLVERS` under ``cls.name``."""
    SOLVERS[cls.name] = cls
    return cls


def get_solver(name: str):
    """The solver class registered as ``name``."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"unknown solver {name!r}; available: {', '.join(sorted(SOLVERS))}"
        ) from None
