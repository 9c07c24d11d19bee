"""pytest-benchmark suite for the compiled dual CD (``pytest benchmarks/test_dual_cd.py``).

Fits to a certified relative duality gap of 1e-8 on a9a and reuters (no intercept, the
LIBLINEAR problem) and with the exact intercept; LIBLINEAR ``-s 7`` at ``-e 1e-4`` and
tikhon's Newton-CG are timed beside them for scale. The full table (time to 1e-8
relative suboptimality, LIBLINEAR's best eps, scikit-learn, memory) is printed by
``python benchmarks/liblinear_compare.py``.
"""
from __future__ import annotations

import lzma
from pathlib import Path

import numpy as np
import pytest

import tikhon

pytest.importorskip("tikhon._cd")
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load(name):
    from sklearn.datasets import load_svmlight_file

    path = DATA / ("a9a.xz" if name == "a9a" else "reuters.trn.bz2")
    if not path.exists():
        pytest.skip(f"{path} not found")
    if name == "a9a":
        with lzma.open(path) as f:
            return load_svmlight_file(f, n_features=123)
    return load_svmlight_file(str(path), n_features=8315)


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
