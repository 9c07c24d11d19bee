"""pytest-benchmark suite of the Numba kernels against their references (same data, same run).

    python -m pytest benchmarks/test_numba_kernels.py --benchmark-only --benchmark-group-by=group

Groups: ``dense`` (loss+grad numba / numpy / one BLAS ``X @ w``, float64 and float32),
``csr`` (the same against one scipy CSR ``X @ w``), ``hessp`` (Hessian-vector product),
``gd`` (30 epochs of the seeds' GD loop). Sizes are moderate so the suite runs in about
a minute; ``tikhon bench --suite kernels`` measures the full-size ratios (the data here
comes from the same engine: ``tikhon.bench`` data specs).
Speed is compared here, never asserted.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

pytest.importorskip("numba")
pytest.importorskip("pytest_benchmark")

from tikhon.bench.data import text_csr  # noqa: E402
from tikhon.backends.numba import NumbaBackend  # noqa: E402
from tikhon.backends.numpy import NumpyBackend  # noqa: E402
from tikhon.objective import LogisticLoss  # noqa: E402

N_DENSE, D_DENSE = 300_000, 100


@pytest.fixture(scope="module")
def dense():
    X, y = _logistic_data(N_DENSE, D_DENSE)
    w = np.random.default_rng(1).standard_normal(D_DENSE) * 0.1
    return X, y, w


@pytest.fixture(scope="module")
def csr():
    X, y = text_csr(n=100_000, d=50_000, nnz=3_750_000)
    w = np.random.default_rng(2).standard_normal(X.shape[1]) * 0.1
    return X, y, w


def _logistic_data(n, d):
    """Seeded dense two-class data of the bench (``synthetic:n=...,d=...``)."""
    from tikhon.bench.problems import load_dataset, parse_data_spec

    ds = load_dataset(parse_data_spec(f"synthetic:n={n},d={d}"))
    return ds.X, np.where(ds.y > 0, 1.0, -1.0)


def _backend(cls, X, y):
    be = cls(X, y, np.ones(X.shape[0]), LogisticLoss)
    return be


@pytest.mark.benchmark(group="dense")
@pytest.mark.parametrize("what", ["numba-f64", "numba-f32", "numpy-f64", "blas-Xw-f64"])
def test_dense_loss_grad(benchmark, dense, what):
    X, y, w = dense
    if what == "blas-Xw-f64":
        benchmark(lambda: X @ w)
        return
    if what.endswith("f32"):
        X = X.astype(np.float32)
    be = _backend(NumbaBackend if what.startswith("numba") else NumpyBackend, X, y)
    be.loss_grad(w, 0.1)  # compile / warm up
    benchmark(be.loss_grad, w, 0.1)


@pytest.mark.benchmark(group="csr")
@pytest.mark.parametrize("what", ["numba-f64", "numba-f32", "numpy-f64", "scipy-Xw-f64"])
def test_csr_loss_grad(benchmark, csr, what):
    X, y, w = csr
    if what == "scipy-Xw-f64":
        benchmark(lambda: X @ w)
        return
    if what.endswith("f32"):
        X = X.astype(np.float32)
    be = _backend(NumbaBackend if what.startswith("numba") else NumpyBackend, X, y)
    be.loss_grad(w, 0.1)
    benchmark(be.loss_grad, w, 0.1)


@pytest.mark.benchmark(group="hessp")
@pytest.mark.parametrize("cls", [NumbaBackend, NumpyBackend], ids=["numba", "numpy"])
def test_dense_hessian_product(benchmark, dense, cls):
    X, y, w = dense
    be = _backend(cls, X, y)
    product = be.loss_grad_hessian(w, 0.1)[3]
    product(w, 0.5)
    benchmark(product, w, 0.5)


@pytest.mark.benchmark(group="gd")
@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_gd_30_epochs(benchmark, backend):
    import tikhon
    from sklearn.exceptions import ConvergenceWarning

    X, y = _logistic_data(200_000, 100)
    model = tikhon.LogisticRegression(solver="gd", backend=backend, max_iter=30, learning_rate=1.0, tol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X[:1000], y[:1000])
        benchmark.pedantic(model.fit, args=(X, y), rounds=3, iterations=1)
