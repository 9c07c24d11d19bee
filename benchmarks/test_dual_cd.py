"""pytest-benchmark suite for the compiled dual CD (``pytest benchmarks/test_dual_cd.py``).

Fits to a certified relative duality gap of 1e-8 on a9a and reuters (no intercept, the
LIBLINEAR problem) and with the exact intercept; LIBLINEAR ``-s 7`` at ``-e 1e-4`` and
tikhon's Newton-CG are timed beside them for scale. The full table (time to 1e-4 and
1e-8 relative suboptimality against LIBLINEAR -s 0 / -s 7 and scikit-learn, with the
verdicts) is ``tikhon bench --suite liblinear``; the data comes from the same engine.
"""
from __future__ import annotations

import numpy as np
import pytest

import tikhon

pytest.importorskip("tikhon._cd")


def load(name):
    """``(X, y)`` of a bench data set by name (``a9a`` embedded, ``reuters`` from the shared
    data folder: skipped, with the reason, when it is missing)."""
    from tikhon.bench.problems import BenchArgumentError, load_dataset, parse_data_spec

    try:
        ds = load_dataset(parse_data_spec(name))
    except BenchArgumentError as exc:
        pytest.skip(str(exc))
    return ds.X, ds.y


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("name,C", [("a9a", 1.0), ("reuters", 1.0), ("reuters", 100.0)])
def test_dual_cd_fit(benchmark, name, C, fit_intercept):
    X, y = load(name)
    model = tikhon.LogisticRegression(C=C, fit_intercept=fit_intercept, solver="dual_cd", backend="cython",
                                      tol=1e-8, max_iter=100_000)
    benchmark.pedantic(model.fit, args=(X, y), rounds=3, iterations=1)
    assert model.converged_ and model.certificate_ <= 1e-8


@pytest.mark.parametrize("name,C", [("a9a", 1.0), ("reuters", 1.0)])
def test_liblinear_s7(benchmark, name, C):
    liblinear = pytest.importorskip("liblinear.liblinearutil")
    X, y = load(name)
    prob = liblinear.problem(y, X)
    param = liblinear.parameter(f"-s 7 -c {C} -e 1e-4 -q")
    benchmark.pedantic(liblinear.train, args=(prob, param), rounds=3, iterations=1)


@pytest.mark.parametrize("name,C", [("a9a", 1.0), ("reuters", 1.0)])
def test_newton_numpy(benchmark, name, C):
    X, y = load(name)
    model = tikhon.LogisticRegression(C=C, fit_intercept=False, solver="newton", backend="numpy", tol=1e-8)
    benchmark.pedantic(model.fit, args=(X, y), rounds=3, iterations=1)


def test_epoch_kernel(benchmark):
    """One pass of logistic dual CD over a9a (the hot loop alone)."""
    from tikhon.backends.cython import CythonBackend
    from tikhon.objective import LogisticLoss

    X, y = load("a9a")
    be = CythonBackend(X, np.asarray(y, dtype=np.float64), np.ones(X.shape[0]), LogisticLoss)
    v, w = np.full(X.shape[0], -18.0), np.zeros(X.shape[1])
    state = be.dual_state(v, w, 1.0)
    benchmark(be.dual_epochs, state, 1)
