"""Certificates: every fit records the figure it stopped on; reaching max_iter first
emits a ConvergenceWarning with that figure; and the certificate bounds the true
suboptimality (checked against an exact optimum, at deliberately early iterates).

What each solver stops on (see tikhon.objective): a relative duality gap ``(P - D) / D``
with ``D <= P*`` -- the primal solvers (newton, lbfgs, gd, sgd) at the dual point of
their gradient pass, dual_cd at its dual iterate. Every fit also reports
``duality_gap_``, the smallest valid gap known at the solution, so that
``P - P* <= duality_gap_ * P*`` and ``converged_`` is ``duality_gap_ <= tol``.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import tikhon
from test_properties import reference_optimum

BACKENDS = [b for b in ("numpy", "numba", "cython", "dask") if b in tikhon.available_backends()]
SOLVERS = {"numpy": ("newton", "lbfgs", "gd", "sgd"), "numba": ("newton", "lbfgs", "gd", "sgd"),
           "cython": ("dual_cd", "newton"), "dask": ("newton", "lbfgs")}  # dask gd: a graph per step, slow
CASES = [(b, s) for b in BACKENDS for s in SOLVERS[b]]
PRIMAL = ("newton", "lbfgs", "gd", "sgd")


@pytest.fixture(scope="module")
def problem():
    """A small, moderately conditioned weighted problem (float64, dense)."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((120, 8)) * rng.uniform(0.2, 3.0, 8)
    X[rng.random(X.shape) < 0.3] = 0.0
    y = np.where(X @ rng.standard_normal(8) + 0.5 * rng.standard_normal(120) > 0, 1.0, -1.0)
    targets = X @ rng.standard_normal(8) + rng.standard_normal(120)
    s = rng.uniform(0.5, 2.0, 120)
    return X, y, targets, s


def _native(backend, X, request):
    if backend == "cython":
        return sp.csr_matrix(X)
    if backend == "dask":
        request.getfixturevalue("dask_client")
        import dask.array as da

        return da.from_array(X, chunks=(60, X.shape[1]))
    return X


def _estimator(loss, backend, solver, **params):
    cls = tikhon.LogisticRegression if loss == "logistic" else tikhon.Ridge
    return cls(backend=backend, solver=solver, **params)


def _primal(X, y, s, loss, lam, coef, b):
    """``P`` at ``(coef, b)``, written out independently of tikhon."""
    z = X @ coef + b
    if loss == "logistic":
        value = np.sum(s * np.logaddexp(0.0, -y * z))
    else:
        value = 0.5 * np.sum(s * (y - z) ** 2)
    return value + 0.5 * lam * coef @ coef


@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("backend, solver", CASES)
def test_fit_records_its_certificate(backend, solver, loss, problem, request):
    X, y, targets, s = problem
    labels = y if loss == "logistic" else targets
    model = _estimator(loss, backend, solver, tol=1e-6, max_iter=2000 if solver != "sgd" else 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # sgd, 5 epochs
        model.fit(_native(backend, X, request), labels, sample_weight=s)
    for attr in ("certificate_", "converged_", "n_iter_", "duality_gap_", "objective_", "history_"):
        assert hasattr(model, attr), attr
    assert model.solver_ == solver and model.backend_ == backend
    assert len(model.history_) >= 1 and all(len(h) == 2 for h in model.history_)
    lam = 1.0 if loss == "logistic" else model.alpha
    coef, b = np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])
    primal = _primal(X, labels, s, loss, lam, coef, b)
    assert model.objective_ == pytest.approx(primal, rel=1e-10)
    # the recorded figure is a relative duality gap at the returned point: it bounds the
    # true suboptimality, and the reported duality_gap_ is the smallest bound known
    p_star = reference_optimum(X, labels, s, loss, lam, True)
    assert primal - p_star <= model.certificate_ * p_star + 1e-9 * p_star
    assert 0.0 <= model.duality_gap_ <= model.certificate_ * (1 + 1e-12)
    if solver != "sgd":
        assert model.converged_ and model.certificate_ <= 1e-6
    assert model.converged_ == (model.duality_gap_ <= model.tol)


@pytest.mark.parametrize("backend, solver", CASES)
def test_max_iter_reached_warns_with_the_figure(backend, solver, problem, request):
    X, y, _, s = problem
    model = _estimator("logistic", backend, solver, tol=1e-12, max_iter=1)
    with pytest.warns(ConvergenceWarning) as record:
        model.fit(_native(backend, X, request), y, sample_weight=s)
    assert not model.converged_ and model.n_iter_ <= 1
    message = str(record[-1].message)
    assert f"{model.certificate_:.3g}" in message  # the achieved figure
    assert "max_iter=1" in message and "tol = 1e-12" in message
    assert "failed to converge after" in message
    assert f"relative duality gap {model.duality_gap_:.3g}" in message
    if solver != "sgd":  # a converged fit does not warn
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConvergenceWarning)
            _estimator("logistic", backend, solver, tol=1e-4, max_iter=5000).fit(
                _native(backend, X, request), y, sample_weight=s)


@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("backend, solver", [c for c in CASES if c[0] != "dask"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gap_bounds_the_true_suboptimality(backend, solver, loss, fit_intercept, problem, request):
    """At early iterates (max_iter = 1, 2, 4, 8: a real gap), ``P - P* <= gap * P*``;
    for dual_cd its own stopping gap bounds it too."""
    X, y, targets, s = problem
    labels = y if loss == "logistic" else targets
    C = 10.0  # weaker penalty: slower convergence, so early iterates are visibly suboptimal
    lam = 1.0 / C
    p_star = reference_optimum(X, labels, s, loss, lam, fit_intercept)
    seen_gap = False
    for max_iter in (1, 2, 4, 8):
        params = {"C": C} if loss == "logistic" else {"alpha": lam}
        model = _estimator(loss, backend, solver, tol=1e-14, max_iter=max_iter,
                           fit_intercept=fit_intercept, **params)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(_native(backend, X, request), labels, sample_weight=s)
        coef, b = np.ravel(model.coef_), float(np.ravel(model.intercept_)[0])
        primal = _primal(X, labels, s, loss, lam, coef, b)
        subopt = primal - p_star
        assert subopt >= -1e-9 * p_star  # the reference is the optimum
        assert subopt <= model.duality_gap_ * p_star + 1e-9 * p_star, (max_iter, subopt, model.duality_gap_)
        if solver == "dual_cd":
            assert subopt <= model.certificate_ * p_star + 1e-9 * p_star
        # the dual value the gap implies is a lower bound of the optimum
        dual = model.objective_ / (1.0 + model.duality_gap_)
        assert dual <= p_star * (1 + 1e-9)
        seen_gap |= subopt > 1e-6 * p_star
    assert seen_gap or solver in ("newton", "dual_cd"), "no early iterate was suboptimal: the test is vacuous"
