"""Kernel level: seconds per loss+gradient pass of each backend, and one read of X.

Effective bandwidth = bytes of X (one read: data, plus indices and indptr for CSR)
divided by the seconds of one ``loss_grad`` pass. The best possible bandwidth of a pass
is that of one read of X: one plain product ``X @ w`` on the same X -- BLAS gemv for
dense, scipy's CSR matvec for sparse -- (the JSON key ``floor``: the floor of the time
per pass). A two-product kernel (``X w`` then ``X^T r``, as the NumPy backend) reads X
twice and so reaches at most about half of it.
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


def floor_figures(X, min_seconds=0.2, n_columns=1):
    """One read of X: ``X @ w`` (BLAS gemv / scipy's CSR matvec), or for ``n_columns`` K > 1
    ``X @ W^T`` with a dense (d, K) block (BLAS gemm / scipy's CSR times a dense block)."""
    rng = np.random.default_rng(0)
    shape = X.shape[1] if n_columns == 1 else (X.shape[1], n_columns)
    w = rng.standard_normal(shape).astype(X.dtype)
    seconds = time_call(lambda: X @ w, min_seconds)
    nbytes = x_bytes(X)
    sparse = hasattr(X, "indptr")
    if n_columns == 1:
        what = "X @ w, " + ("scipy CSR matvec" if sparse else "BLAS gemv")
    else:
        what = f"X @ W^T, K={n_columns} columns, " + ("scipy CSR times a dense block" if sparse else "BLAS gemm")
    return {"what": what, "seconds": seconds, "bytes": nbytes, "GBps": nbytes / seconds / 1e9}


def kernel_figures(backend_cls, X, y_signed, loss, min_seconds=0.2, bytes_of=None, client=None, hessian=False,
                   y_index=None):
    """Seconds per ``loss_grad`` of one backend on X (built once, construction timed apart).

    ``bytes_of``: the in-memory X whose bytes one pass reads (for dask input, whose
    chunks live on the cluster); ``client``: the dask client; ``hessian``: also time one
    Hessian-vector product (Newton-CG's inner step); ``y_index``: the class index of each
    row of K >= 3 classes (then the multinomial pass, W of shape (K, d))."""
    from ..objective import LOSSES

    t0 = clock()
    extra = {} if client is None else {"client": client}
    K = 1 if y_index is None else int(np.max(y_index)) + 1
    if K > 1:
        loss, y_signed, extra["n_outputs"] = "multinomial", np.asarray(y_index, dtype=np.float64), K
    backend = backend_cls(X, y_signed, np.ones(X.shape[0]), LOSSES[loss], **extra)
    setup = clock() - t0
    rng = np.random.default_rng(1)
    w = rng.standard_normal(X.shape[1] if K == 1 else (K, X.shape[1])) / np.sqrt(X.shape[1])
    b = 0.1 if K == 1 else np.full(K, 0.1)
    seconds = time_call(lambda: backend.loss_grad(w, b), min_seconds)
    nbytes = x_bytes(bytes_of if bytes_of is not None else X)
    out = {"seconds_per_pass": seconds, "setup_seconds": setup, "bytes": nbytes, "GBps": nbytes / seconds / 1e9}
    if hessian:
        product = backend.loss_grad_hessian(w, b)[3]
        v = np.random.default_rng(2).standard_normal(w.shape)
        out["seconds_per_hessian_product"] = time_call(lambda: product(v, 0.0 * b), min_seconds)
    return out
