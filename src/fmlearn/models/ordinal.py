"""Parameters of ordinal regression with an FM score (cumulative link models).

``P(y <= c | x) = F(theta_c - f(x))`` for classes ``0 .. C-1``, with the FM score ``f`` (its
bias ``w0`` stays 0: the cutpoints play its part) and increasing cutpoints ``theta`` (C - 1,).
The cutpoints are model parameters, kept, copied, snapshotted and saved with the FM's; the
link ``F`` is the model's too:

- :class:`OrdinalFMParams` (kind ``"fm_ordinal"``): a point estimate of the logistic model
  (proportional odds), what the SGD-type solvers train (kernels in
  :mod:`fmlearn._kernels.ordinal`);
- :class:`OrdinalPosteriorFM` (kind ``"fm_ordinal_posterior"``): the MCMC posterior of the
  probit model (ordered probit), the kept samples of the cutpoints beside the FM's.

The cutpoints are the model's *intercepts* (:attr:`intercepts`), in place of the FM bias: the
SGD epoch driver keeps their solver state where it keeps a bias's (``"<prefix>_w0"``), so it
has no ordinal case.
"""

from __future__ import annotations

import numpy as np

from fmlearn._kernels import ordinal as ordinal_kernels
from fmlearn.models.fm import FMParams
from fmlearn.models.posterior import PosteriorFM
from fmlearn.models.table import LINKS


def class_probabilities(f: np.ndarray, cutpoints: np.ndarray, link: str) -> np.ndarray:
    """(n, n_classes) class probabilities of scores ``f`` (n,) under ``link``."""
    cdf = LINKS[link](cutpoints[None, :] - f[:, None])
    n = f.shape[0]
    return np.diff(np.hstack([np.zeros((n, 1)), cdf, np.ones((n, 1))]), axis=1)


def _check_cutpoints(cutpoints, what="cutpoints") -> np.ndarray:
    cut = np.asarray(cutpoints)
    if cut.ndim != 1 or not cut.size or cut.dtype != np.float64:
        raise ValueError(f"{what} must be a non-empty 1-D float64 array, got {cut.dtype} of "
                         f"shape {cut.shape}")
    return cut


def _check_link(link, own):
    if link is not None and link != own:
        raise ValueError(f"this ordinal model has the {own} link, not {link!r}")


class OrdinalFMParams(FMParams):
    """Point estimate of the proportional-odds FM: an :class:`FMParams` (bias 0) plus
    ``cutpoints`` (C - 1,), float64, increasing."""

    kind = "fm_ordinal"
    link = "logit"

    def __init__(self, w0, table, n_factors, cutpoints):
        super().__init__(w0, table, n_factors)
        self.cutpoints = cutpoints

    @property
    def n_classes(self) -> int:
        return self.cutpoints.shape[0] + 1

    @property
    def intercepts(self) -> np.ndarray:
        """The cutpoints: they take the bias's place (and its solver state)."""
        return self.cutpoints

    @classmethod
    def initialize(cls, n_features, n_factors, init_stdev, rng, dtype=np.float32, *,
                   cutpoints, n_state=0):
        """An FM with zero bias and weights and factors from N(0, init_stdev^2) (as
        :meth:`FMParams.initialize`), starting at ``cutpoints``."""
        fm = FMParams.initialize(n_features, n_factors, init_stdev, rng, dtype, n_state=n_state)
        return cls(fm.w0, fm.table, n_factors, np.array(cutpoints, dtype=np.float64))

    def _like(self, w0, table):
        return OrdinalFMParams(w0, table, self.n_factors, self.cutpoints.copy())

    def all_finite(self) -> bool:
        return super().all_finite() and bool(np.isfinite(self.cutpoints).all())

    def posterior(self, capacity: int) -> OrdinalPosteriorFM:
        return OrdinalPosteriorFM.start(self, capacity)

    # -- kernels
    def sgd_epoch(
        self, X, y, sample_weight, order, w0_state, solver, concurrent=None
    ) -> float:
        """One pass of the proportional-odds model (see :mod:`fmlearn._kernels.ordinal`);
        ``y`` float64 class indices, ``w0_state`` the cutpoints' solver state."""
        return ordinal_kernels.sgd_epoch(
            X.indptr, X.indices, X.data, y, sample_weight, order, self.table, self.n_factors,
            self.cutpoints, w0_state, solver.code, solver.kernel_args, solver.fit_linear,
            reg_scale=solver.reg_scale,
        )

    def mean_output(self, X, link=None, n_jobs=1) -> np.ndarray:
        """Class probabilities, shape (n_rows, n_classes), under the model's own ``link``."""
        _check_link(link, self.link)
        return class_probabilities(self.decision_function(X, n_jobs), self.cutpoints,
                                   self.link)

    # -- model files
    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "cutpoints": self.cutpoints}

    @classmethod
    def from_arrays(cls, arrays, state=None) -> OrdinalFMParams:
        fm = FMParams.from_arrays(arrays, state)
        return cls(fm.w0, fm.table, fm.n_factors, _check_cutpoints(arrays["cutpoints"]).copy())


class OrdinalPosteriorFM(PosteriorFM):
    """The ordered probit FM's Gibbs chain: a :class:`PosteriorFM` (bias 0) whose current
    sample also has ``cutpoints`` (C - 1,), kept per sample in ``extra_samples``."""

    kind = "fm_ordinal_posterior"
    link = "probit"

    def __init__(self, w0, table, n_factors, samples, w0_samples, noise_samples, n_samples=0,
                 extra_samples=None, cutpoints=None):
        super().__init__(w0, table, n_factors, samples, w0_samples, noise_samples, n_samples,
                         extra_samples)
        self.cutpoints = cutpoints

    n_classes = OrdinalFMParams.n_classes
    intercepts = OrdinalFMParams.intercepts

    @classmethod
    def start(cls, point: OrdinalFMParams, capacity: int, n_extra: int = 0):
        """A chain starting at ``point`` (its cutpoints included), room for ``capacity``."""
        chain = super().start(point, capacity, point.cutpoints.shape[0])
        chain.cutpoints = point.cutpoints.astype(np.float64)  # a copy
        return chain

    def as_point(self) -> OrdinalFMParams:
        return OrdinalFMParams(self.w0, self.table, self.n_factors, self.cutpoints)

    def add_sample(self, noise_precision: float, extra=None) -> None:
        """Keep the current sample, its cutpoints included."""
        super().add_sample(noise_precision, self.cutpoints if extra is None else extra)

    def _like(self, w0, table):
        return OrdinalPosteriorFM(
            w0, table, self.n_factors, self.samples.copy(), self.w0_samples.copy(),
            self.noise_samples.copy(), self.n_samples, self.extra_samples.copy(),
            self.cutpoints.copy(),
        )

    def all_finite(self) -> bool:
        return super().all_finite() and bool(np.isfinite(self.cutpoints).all())

    @property
    def cutpoint_samples(self) -> np.ndarray:
        """The kept samples' cutpoints, shape (n_samples, C - 1)."""
        return self.extra_samples[: self.n_samples]

    def decision_function(self, X, n_jobs: int = 1) -> np.ndarray:
        """Posterior mean of the FM score."""
        return PosteriorFM.mean_output(self, X, "identity", n_jobs)

    def mean_output(self, X, link=None, n_jobs=1) -> np.ndarray:
        """Posterior predictive class probabilities, shape (n_rows, n_classes): each kept
        sample's (the current sample's if none is kept yet), averaged."""
        _check_link(link, self.link)
        if self.n_samples == 0:
            f = FMParams.decision_function(self, X, n_jobs)
            return class_probabilities(f, self.cutpoints, self.link)
        total = 0.0
        for s, f in enumerate(self.sample_outputs(X, n_jobs)):
            total = total + class_probabilities(f, self.extra_samples[s], self.link)
        return total / self.n_samples

    # -- model files
    def arrays(self) -> dict[str, np.ndarray]:
        return {**super().arrays(), "cutpoints": self.cutpoints}

    @classmethod
    def from_arrays(cls, arrays, state=None) -> OrdinalPosteriorFM:
        chain = super().from_arrays(arrays, state)
        chain.cutpoints = _check_cutpoints(arrays["cutpoints"]).copy()
        if chain.extra_samples.shape[1] != chain.cutpoints.shape[0]:
            raise ValueError(
                f"{chain.extra_samples.shape[1]} cutpoints per kept sample but "
                f"{chain.cutpoints.shape[0]} cutpoints"
            )
        return chain


def migrate_solver_state_cutpoints(kind: str, arrays: dict, state: dict) -> str:
    """Files of fmlearn <= 0.1 (and until the cutpoints became parameters) keep an ordinal
    model in a plain ``"fm"``/``"fm_posterior"`` container, its cutpoints in the solver
    state (``"cutpoints"``, and the SGD-type solvers' ``"<prefix>_cut"``, beside the unused
    bias's ``"<prefix>_w0"``). Moves them into ``arrays`` and ``state`` as written today, in
    place, and returns the container kind to read them with."""
    if "cutpoints" not in state:
        raise ValueError("an ordinal model without cutpoints")
    arrays["cutpoints"] = state.pop("cutpoints")
    for key in [k for k in state if k.endswith("_cut")]:
        # The cutpoints' optimizer state replaces the (unused) FM bias's.
        state[key[: -len("_cut")] + "_w0"] = state.pop(key)
    return {"fm": OrdinalFMParams.kind, "fm_posterior": OrdinalPosteriorFM.kind}[kind]


__all__ = ["OrdinalFMParams", "OrdinalPosteriorFM", "class_probabilities"]
