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
SOLVERS = {"numpy": ("newton", "newton_cholesky", "lbfgs", "lbfgs_newton", "gd", "sgd"),
           "numba": ("newton", "newton_cholesky", "lbfgs", "lbfgs_newton", "gd", "sgd"),
           "cython": ("dual_cd", "newton", "newton_cholesky", "lbfgs_newton"), "dask": ("newton", "lbfgs", "lbfgs_newton")}  # dask gd: a graph per step, slow
CASES = [(b, s) for b in BACKENDS for s in SOLVERS[b]]


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
    assert seen_gap or solver in ("newton", "newton_cholesky", "dual_cd"), "no early iterate was suboptimal: the test is vacuous"


def _hostile(case):
    """Data where the old gradient test ``||grad P||_inf / m <= tol`` passed far from the
    optimum: a few rows with huge weights (``m`` huge), or separable data at large C
    (``P*`` tiny)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((600, 10))
    y = np.where(X @ rng.standard_normal(10) + rng.standard_normal(600) > 0, 1.0, -1.0)
    s, C = np.ones(600), 1.0
    if case == "one row 1e12":
        s[5] = 1e12
    elif case == "ten rows 1e7":
        s[:10] = 1e7
    else:  # "separable C=1e4" / "separable C=1e8"
        C = float(case.split("C=")[1])
        y = np.where(X @ rng.standard_normal(10) > 0, 1.0, -1.0)
    return X, y, s, C


HOSTILE = ["one row 1e12", "ten rows 1e7", "separable C=1e4", "separable C=1e8"]


def _optimum(X, y, s, C):
    """``P*``: the lowest of an exact-Hessian Newton and two tikhon fits at tight tol."""
    values = [reference_optimum(X, y, s, "logistic", 1.0 / C, True)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for solver, Xf in (("dual_cd", sp.csr_matrix(X)), ("newton", X)):
            values.append(tikhon.LogisticRegression(C=C, solver=solver, tol=1e-13, max_iter=100000)
                          .fit(Xf, y, sample_weight=s).objective_)
    return min(values)


@pytest.mark.parametrize("case", HOSTILE)
@pytest.mark.parametrize("backend, solver", [("numpy", "newton"), ("numpy", "lbfgs"), ("numba", "newton"),
                                             ("numba", "gd"), ("cython", "dual_cd")])
def test_converged_means_within_tol_of_the_optimum(case, backend, solver):
    """``converged_`` is True only when ``(P - P*) / P* <= tol`` (through the duality gap);
    otherwise a ConvergenceWarning. Newton, L-BFGS and dual CD do converge here."""
    if backend not in tikhon.available_backends():
        pytest.skip(f"backend {backend} is not available")
    X, y, s, C = _hostile(case)
    p_star = _optimum(X, y, s, C)
    tol = 1e-6
    model = tikhon.LogisticRegression(C=C, solver=solver, backend=backend, tol=tol,
                                      max_iter=300 if solver == "gd" else 1000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(sp.csr_matrix(X) if backend == "cython" else X, y, sample_weight=s)
    warned = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    subopt = (model.objective_ - p_star) / p_star
    assert subopt <= model.duality_gap_ * (1 + 1e-9) + 1e-12  # the gap is a true bound
    assert model.converged_ == (model.duality_gap_ <= tol) and warned == (not model.converged_)
    if model.converged_:
        assert subopt <= tol
    if solver != "gd":
        assert model.converged_, (case, model.duality_gap_, model.n_iter_)


def test_interpolating_ridge_does_not_claim_convergence():
    """Ridge at alpha=1e-16 on a wide X interpolates: P* is at the rounding of P, no
    relative gap can be certified, so the fit says it did not converge (it used to report
    converged_=True with duality_gap_=inf)."""
    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((20, 100)), rng.standard_normal(20)
    with pytest.warns(ConvergenceWarning, match="relative duality gap inf"):
        model = tikhon.Ridge(alpha=1e-16).fit(X, y)
    assert not model.converged_ and model.duality_gap_ == np.inf
