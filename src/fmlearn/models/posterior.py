"""Posterior samples of a Bayesian FM (``solver="mcmc"``) as one persistable container.

:class:`PosteriorFM` is an :class:`~fmlearn.models.fm.FMParams` (the chain's current sample, which
the Gibbs sweeps update in place) that also keeps the samples drawn in the kept window. Its
``decision_function`` is the posterior mean of the FM output, averaged over the kept samples,
so ``predict`` works on new data after ``fit`` and after ``load``, unlike libFM.
"""

from __future__ import annotations

import numpy as np

from fmlearn.models.fm import FMParams
from fmlearn.models.table import LINKS


class PosteriorFM(FMParams):
    """Current Gibbs sample plus kept samples.

    Parameters
    ----------
    w0, table, n_factors
        The current sample, as in :class:`FMParams` (float64).
    samples : ndarray of shape (capacity, n_features, n_factors + 1), float32
        Kept samples' ``[V | w]`` rows; the first ``n_samples`` are filled.
    w0_samples, noise_samples : ndarray of shape (capacity,)
        Kept samples' bias and noise precision ``alpha`` (regression; 1 for probit).
    n_samples : int
    extra_samples : ndarray of shape (capacity, n_extra), optional
        Other sampled model parameters, e.g. the cutpoints of ordinal regression.
    """

    kind = "fm_posterior"

    def __init__(self, w0, table, n_factors, samples, w0_samples, noise_samples, n_samples=0,
                 extra_samples=None):
        super().__init__(w0, table, n_factors)
        if extra_samples is None:
            extra_samples = np.zeros((samples.shape[0], 0))
        self.extra_samples = extra_samples
        self.samples = samples
        self.w0_samples = w0_samples
        self.noise_samples = noise_samples
        self.n_samples = int(n_samples)
        self._cache: dict = {}

    @classmethod
    def start(cls, point: FMParams, capacity: int, n_extra: int = 0) -> PosteriorFM:
        """A chain starting at ``point`` (copied to float64) with room for ``capacity`` samples."""
        k = point.n_factors
        table = np.ascontiguousarray(point.table[:, : k + 1], dtype=np.float64)
        return cls(
            point.w0.astype(np.float64),
            table,
            k,
            np.empty((capacity, point.n_features, k + 1), dtype=np.float32),
            np.empty(capacity, dtype=np.float32),
            np.empty(capacity, dtype=np.float64),
            extra_samples=np.empty((capacity, n_extra)),
        )

    def as_point(self) -> FMParams:
        return FMParams(self.w0, self.table, self.n_factors)

    def add_sample(self, noise_precision: float, extra=None) -> None:
        """Keep the current sample (raises IndexError when the capacity is used up)."""
        s = self.n_samples
        k = self.n_factors
        self.samples[s] = self.table[:, : k + 1]
        self.w0_samples[s] = self.w0[0]
        self.noise_samples[s] = noise_precision
        if extra is not None:
            self.extra_samples[s] = extra
        self.n_samples = s + 1

    def _like(self, w0, table):
        return PosteriorFM(
            w0, table, self.n_factors, self.samples.copy(), self.w0_samples.copy(),
            self.noise_samples.copy(), self.n_samples, self.extra_samples.copy(),
        )

    def all_finite(self) -> bool:
        kept = self.samples[: self.n_samples]
        return super().all_finite() and bool(np.isfinite(kept).all())

    # -- prediction
    def sample_outputs(self, X, n_jobs=1):
        """Yield the FM output of every kept sample on ``X`` (the current one if none kept)."""
        if self.n_samples == 0:
            yield FMParams.decision_function(self, X, n_jobs)
            return
        for s in range(self.n_samples):
            point = FMParams(self.w0_samples[s : s + 1], self.samples[s], self.n_factors)
            yield point.decision_function(X, n_jobs)

    def mean_output(self, X, link="identity", n_jobs=1) -> np.ndarray:
        """Posterior mean of ``link(y(x))`` over the kept samples, shape (n_rows,).

        Called on the same validation design after every sweep, it only adds the samples kept
        since the previous call.
        """
        key = (id(X), link)
        hit = self._cache.get(key)
        if hit is None or hit[0] is not X or hit[1] > self.n_samples or self.n_samples == 0:
            hit = (X, 0, np.zeros(X.n_rows))
        _, done, total = hit
        fn = LINKS[link]
        for s in range(done, self.n_samples):
            point = FMParams(self.w0_samples[s : s + 1], self.samples[s], self.n_factors)
            total = total + fn(point.decision_function(X, n_jobs))
        if self.n_samples == 0:
            return fn(FMParams.decision_function(self, X, n_jobs))
        self._cache[key] = (X, self.n_samples, total)
        return total / self.n_samples

    def decision_function(self, X, n_jobs: int = 1) -> np.ndarray:
        """Posterior mean of the FM output."""
        return self.mean_output(X, "identity", n_jobs)

    def predictive_std(self, X, n_jobs=1) -> np.ndarray:
        """Standard deviation of the posterior predictive of ``y`` (regression).

        The variance of the FM output across samples plus the mean noise variance
        ``1 / alpha``: the spread of a new target, not only of its mean.
        """
        mean = np.zeros(X.n_rows)
        square = np.zeros(X.n_rows)
        count = 0
        for f in self.sample_outputs(X, n_jobs):
            mean += f
            square += f * f
            count += 1
        mean /= count
        var = np.maximum(square / count - mean * mean, 0.0)
        noise = self.noise_samples[: self.n_samples]
        noise_var = float(np.mean(1.0 / noise)) if noise.size else 0.0
        return np.sqrt(var + noise_var)

    # -- model files
    def _latent_arrays(self):
        s, k = self.n_samples, self.n_factors
        kept = self.samples[:s]
        return {
            "V": np.ascontiguousarray(self.V),
            "w0_samples": self.w0_samples[:s].copy(),
            "w_samples": np.ascontiguousarray(kept[:, :, k]),
            "V_samples": np.ascontiguousarray(kept[:, :, :k]),
            "noise_samples": self.noise_samples[:s].copy(),
            "extra_samples": self.extra_samples[:s].copy(),
        }

    @classmethod
    def from_arrays(cls, arrays, state=None) -> PosteriorFM:
        point = FMParams.from_arrays(arrays, state=None)
        w0s, ws, Vs, noise = (
            arrays[n] for n in ("w0_samples", "w_samples", "V_samples", "noise_samples")
        )
        s, n, k = Vs.shape if Vs.ndim == 3 else (-1, -1, -1)
        ok = (
            Vs.ndim == 3 and (n, k) == (point.n_features, point.n_factors)
            and ws.shape == (s, n) and w0s.shape == (s,) and noise.shape == (s,)
            and Vs.dtype == ws.dtype == w0s.dtype == np.float32 and noise.dtype == np.float64
        )
        if not ok:
            raise ValueError(
                f"inconsistent posterior samples: V_samples {Vs.shape}, w_samples {ws.shape}, "
                f"w0_samples {w0s.shape}, noise_samples {noise.shape} for "
                f"{point.n_features} features and {point.n_factors} factors"
            )
        samples = np.empty((s, n, k + 1), dtype=np.float32)
        samples[:, :, :k] = Vs
        samples[:, :, k] = ws
        extra = arrays.get("extra_samples", np.zeros((s, 0)))
        if extra.ndim != 2 or extra.shape[0] != s or extra.dtype != np.float64:
            raise ValueError(f"extra_samples of shape {extra.shape} do not fit {s} samples")
        table = np.ascontiguousarray(point.table[:, : k + 1], dtype=np.float64)
        return cls(point.w0.astype(np.float64), table, k, samples, w0s.copy(), noise.copy(), s,
                   extra.copy())
