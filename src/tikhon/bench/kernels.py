"""Kernel level: seconds per loss+gradient pass of each backend, and the floor.

Effective bandwidth = bytes of X (one read: data, plus indices and indptr for CSR)
divided by the seconds of one ``loss_grad`` pass. The floor is one plain product
``X @ w`` on the same X -- BLAS gemv for dense, scipy's CSR matvec for sparse -- that
reads X exactly once; a two-product kernel (``X w`` then ``X^T r``, as the NumPy
backend) reads X twice and so reaches at most about half the floor's bandwidth.
"""
from __future__ import annotations

import numpy as np

from .measure import clock
from .problems import x_bytes

__all__ = ["time_call", "kernel_figures"]


def time_call(fn, min_seconds=0.2, min_calls=3, rounds=3):
    """Best-of-``rounds`` seconds per call of ``fn()`` (one warm-up call first)."""
    fn()
    best = np.inf
    for _ in range(rounds):
        calls, t0 = 0, clock()
        while True:
            fn()
            calls += 1
            elapsed = clock() - t0
            if calls >= min_calls and elapsed >= min_seconds:
                break
        best = min(best, elapsed / calls)
    return float(best)


def floor_figures(X, min_seconds=0.2):
    w = np.random.default_rng(0).standard_normal(X.shape[1]).astype(X.dtype)
    seconds = time_call(lambda: X @ w, min_seconds)
    nbytes = x_bytes(X)
    return {"what": "X @ w, " + ("scipy CSR matvec" if hasattr(X, "indptr") else "BLAS gemv"),
            "seconds": seconds, "bytes": nbytes, "GBps": nbytes / seconds / 1e9}


def kernel_figures(backend_cls, X, y_signed, loss, min_seconds=0.2):
    """Seconds per ``loss_grad`` of one backend on X (built once, construction timed apart)."""
    from ..objective import LOSSES

    t0 = clock()
    backend = backend_cls(X, y_signed, np.ones(X.shape[0]), LOSSES[loss])
    setup = clock() - t0
    w = np.random.default_rng(1).standard_normal(X.shape[1]) / np.sqrt(X.shape[1])
    seconds = time_call(lambda: backend.loss_grad(w, 0.1), min_seconds)
    nbytes = x_bytes(X)
    return {"seconds_per_pass": seconds, "setup_seconds": setup, "bytes": nbytes,
            "GBps": nbytes / seconds / 1e9}
