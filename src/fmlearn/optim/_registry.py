"""Name -> solver class registry."""

from __future__ import annotations

SOLVERS: dict[str, type] = {}


def register_solver(cls):
    """Class decorator adding ``cls`` to :data:`SOLVERS` under ``cls.name``."""
    SOLVERS[cls.name] = cls
    return cls


def supports(cls, family: str, task: str) -> bool:
    """Whether solver class ``cls`` trains model ``family`` (a :mod:`fmlearn.models` kind:
    "fm", "ffm", ...) for ``task`` (a :mod:`fmlearn.tasks` name: "regression", "binary",
    "multinomial", "ordinal", "pairwise"), by what the class declares in ``families`` and
    ``tasks`` (``None``: all)."""
    return (cls.families is None or family in cls.families) and (
        cls.tasks is None or task in cls.tasks
    )


def solvers_for(family: str, task: str) -> list[str]:
    """Names of the registered solvers that train ``family`` for ``task``, sorted."""
    return sorted(name for name, cls in SOLVERS.items() if supports(cls, family, task))


def get_solver(name: str):
    """The solver class registered as ``name``."""
    try:
        return SOLVERS[name]
    except KeyError:
        raise ValueError(
            f"unknown solver {name!r}; available: {', '.join(sorted(SOLVERS))}"
        ) from None


def hyper(est, name: str, solver_cls) -> float:
    """The value of ``learning_rate``, ``l2_reg_w``, ``l2_reg_V`` or ``n_iter_no_change`` a
    solver trains ``est`` with: the estimator's, or where it is None the solver's default
    (the estimator's ``_solver_defaults[solver name]`` first, then the solver class's
    ``defaults``)."""
    value = getattr(est, name, None)
    if value is None:
        family = getattr(est, "_solver_defaults", {}).get(solver_cls.name, {})
        value = family.get(name, solver_cls.defaults.get(name))
    return value
