"""The solver registry under its 0.1 name; the solvers live in :mod:`fmlearn.optim`.

Kept so that code written against fmlearn 0.1 (``from fmlearn.solvers import
register_solver``) keeps working.
"""

from fmlearn.optim import (  # noqa: F401
    SOLVERS,
    AdaGradSolver,
    ALSSolver,
    FTRLSolver,
    MCMCSolver,
    SGDSolver,
    __all__,  # noqa: F401
    get_solver,
    register_solver,
    solvers_for,
    supports,
)
