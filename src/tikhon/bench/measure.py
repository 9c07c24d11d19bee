"""Measurements shared by the runner: peak extra memory, suboptimality, time to a level,
and a common objective evaluator (so every solution -- tikhon's, scikit-learn's,
LIBLINEAR's -- is scored by the same code on the same X)."""
from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np

__all__ = ["MEMORY_METHODS", "Evaluator", "PeakMemory", "level_key", "suboptimality", "time_to_levels"]

MEMORY_METHODS = {
    "tracemalloc": "tracemalloc peak minus the start (NumPy and Python allocations; memory allocated "
                   "inside compiled kernels -- numba NRT, C extensions, BLAS -- is not seen)",
    "rss": "process RSS sampled every 2 ms by psutil, peak minus the start (sees every allocation but "
           "misses memory reused from earlier frees and spikes shorter than the sampling period)",
    "off": "not measured",
}


class PeakMemory:
    """Context manager: ``peak`` = extra bytes at the peak of the block (``None`` if off)."""

    def __init__(self, method="tracemalloc"):
        if method not in MEMORY_METHODS:
            raise ValueError(f"unknown memory method {method!r}; valid: {', '.join(MEMORY_METHODS)}")
        self.method = method
        self.peak = None

    def __enter__(self):
        if self.method == "tracemalloc":
            self._was_tracing = tracemalloc.is_tracing()
            if not self._was_tracing:
                tracemalloc.start()
            tracemalloc.reset_peak()
            self._base = tracemalloc.get_traced_memory()[0]
        elif self.method == "rss":
            import psutil

            self._proc = psutil.Process()
            self._base = self._proc.memory_info().rss
            self._max = self._base
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.002):
            self._max = max(self._max, self._proc.memory_info().rss)

    def __exit__(self, *exc):
        if self.method == "tracemalloc":
            self.peak = max(0, tracemalloc.get_traced_memory()[1] - self._base)
            if not self._was_tracing:
                tracemalloc.stop()
        elif self.method == "rss":
            self._stop.set()
            self._thread.join()
            self._max = max(self._max, self._proc.memory_info().rss)
            self.peak = max(0, self._max - self._base)
        return False


def level_key(level) -> str:
    """JSON key of a suboptimality level: ``1e-06``."""
    return f"{level:.0e}"


def suboptimality(value, reference):
    """Relative suboptimality ``(P - P*) / |P*|``, at least 0."""
    return max(0.0, (value - reference) / max(abs(reference), np.finfo(float).tiny))


def time_to_levels(trace, reference, levels):
    """Seconds of the first ``(seconds, objective)`` point whose relative suboptimality is
    at most each level (``None`` when never reached). ``trace`` sorted by time."""
    out = {}
    for level in levels:
        hit = next((t for t, v in trace if suboptimality(v, reference) <= level), None)
        out[level_key(level)] = None if hit is None else float(hit)
    return out


class Evaluator:
    """``P(w, b)`` on the benchmark's data with tikhon's reference (NumPy) kernels, in
    float64 arithmetic: float32 data is scored on a float64 copy of its values (the
    problem is defined by the float32 values; only the arithmetic is widened)."""

    def __init__(self, X, y_signed, loss, lam, fit_intercept):
        from ..backends.numpy import NumpyBackend
        from ..objective import Objective

        if X.dtype != np.float64:
            X = X.astype(np.float64)
        self.objective = Objective(loss, lam, fit_intercept)
        self.backend = NumpyBackend(X, y_signed, np.ones(X.shape[0]), self.objective.pointwise)

    def __call__(self, coef, intercept):
        w = np.asarray(coef, dtype=np.float64).ravel()
        b = float(np.ravel(intercept)[0]) if self.objective.fit_intercept else 0.0
        data_loss, _, _ = self.backend.loss_grad(w, b)
        return self.objective.value(data_loss, w)


def clock():
    return time.perf_counter()


class MultinomialEvaluator:
    """``P(W, b) = sum_i [logsumexp(z_i) - z_{i, y_i}] + lam/2 ||W||_F^2``, ``z_i = W x_i + b``
    (``b`` unpenalized): the multinomial log-loss problem of K >= 3 classes, as
    scikit-learn's ``LogisticRegression(C=1/lam)`` states it; float64 arithmetic.
    ``y_index``: each row's class index in ``0..K-1``."""

    def __init__(self, X, y_index, lam, fit_intercept):
        self.X = X if X.dtype == np.float64 else X.astype(np.float64)
        self.y_index = np.asarray(y_index, dtype=np.int64)
        self.n_classes = int(self.y_index.max()) + 1
        self.lam, self.fit_intercept = float(lam), bool(fit_intercept)

    def __call__(self, coef, intercept):
        from scipy.special import logsumexp

        W = np.asarray(coef, dtype=np.float64).reshape(self.n_classes, -1)
        b = np.asarray(intercept, dtype=np.float64).ravel() if self.fit_intercept else np.zeros(self.n_classes)
        Z = np.asarray(self.X @ W.T) + b
        data = float(np.sum(logsumexp(Z, axis=1) - Z[np.arange(Z.shape[0]), self.y_index]))
        return data + 0.5 * self.lam * float(np.sum(W * W))
