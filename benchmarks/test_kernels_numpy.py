"""Kernel benchmarks: one loss+gradient pass per backend, the NumPy reference and the
one-read floor ``X @ w`` in the same group (dense/CSR x float32/float64); the seeds'
gradient-descent epoch (one loss+grad pass plus the weight-decay update).

Fixtures (``kernel_case``, ``any_backend``, ``helpers``) come from conftest.py.
"""
from __future__ import annotations

import numpy as np


def _w(X):
    return np.random.default_rng(1).standard_normal(X.shape[1]) / np.sqrt(X.shape[1])


def test_floor_matvec(benchmark, kernel_case, helpers):
    """The floor: one read of X by ``X @ w`` (BLAS gemv / scipy CSR matvec)."""
    fmt, dtype, X, _ = kernel_case
    benchmark.group = helpers.kernel_group(fmt, dtype)
    w = _w(X).astype(X.dtype)
    benchmark(lambda: X @ w)


def test_loss_grad(benchmark, kernel_case, any_backend, helpers):
    fmt, dtype, X, y = kernel_case
    benchmark.group = helpers.kernel_group(fmt, dtype)
    be = helpers.make_backend(any_backend, X, y)
    w = _w(X)
    be.loss_grad(w, 0.1)  # compile / warm up outside the timing
    value, gw, gb = benchmark(be.loss_grad, w, 0.1)
    assert np.isfinite(value) and gw.shape == (X.shape[1],)


def test_seed_gd_epoch(benchmark, kernel_case, any_backend, helpers):
    """One epoch of the seeds' update ``w <- w (1 - step lam/m) - step grad(mean loss)``."""
    from tikhon.objective import Objective

    fmt, dtype, X, y = kernel_case
    benchmark.group = "seed gd epoch " + helpers.kernel_group(fmt, dtype).split(" ", 1)[1]
    be = helpers.make_backend(any_backend, X, y)
    objective = Objective("logistic", 1.0)
    m = be.weight_sum
    step = 1.0
    state = {"w": np.zeros(X.shape[1]), "b": 0.0}

    def epoch():
        _, gw, gb = be.loss_grad(state["w"], state["b"])
        state["w"] = state["w"] * objective.weight_decay(step, m) - (step / m) * gw
        state["b"] -= (step / m) * gb

    epoch()
    benchmark(epoch)
    assert np.all(np.isfinite(state["w"]))
