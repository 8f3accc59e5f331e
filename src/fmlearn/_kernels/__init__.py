"""Numba kernels: arrays in, arrays out.

Nothing in this package validates input, raises user-facing errors, handles strings or imports
scikit-learn, pandas or torch. Callers (solvers, estimators, readers) own all of that. Kernels
are split by concern (``fm`` prediction, ``sgd`` training, ``textscan``/``textformat`` for text
files) and, where rows are independent, come as a serial and a ``parallel=True`` twin compiled
from one row-range body, so both are cached on disk and repeated small fits never recompile.
"""
