"""Issue 18 item 3: the sparse second-order solver against LIBLINEAR's ``-s 0``.

LIBLINEAR 2.50's ``-s 0`` is no longer the trust-region TRON but a line-search truncated
Newton (its ``newton.cpp``); tikhon's Newton-CG (``solver="newton"``) now runs its
inexact-Newton schedule: CG stopped on the quadratic model (Nash and Sofer's rule) and
the mixed diagonal preconditioner ``(1 - a) lam + a diag(H)``. A separate ``tron`` solver
was not kept (see the module docstring of :mod:`tikhon.solvers.newton`). These tests pin
the schedule (the CG rule, the pass count it buys on text-like CSR) and check that the
optimum is still scikit-learn's on every input kind the preconditioner treats apart
(intercept, sample weights, ridge, three classes, float32, dense and CSR).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge as SkRidge

import tikhon
from tikhon.backends.numpy import NumpyBackend
from tikhon.bench.data import text_csr
from tikhon.objective import Objective
from tikhon.solvers import newton, run


def _model_decrease_stop(H, g, eta):
    """Plain dense CG on ``H p = -g``: the first ``k`` with ``k (Q_k - Q_{k-1}) >= eta Q_k``
    and its iterate, ``Q(p) = g.p + p.H p / 2`` evaluated directly."""
    p, r = np.zeros_like(g), -g.copy()
    d, q = r.copy(), 0.0
    for k in range(1, len(g) + 1):
        alpha = (r @ r) / (d @ H @ d)
        p = p + alpha * d
        r_new = r - alpha * (H @ d)
        q_new = g @ p + 0.5 * p @ H @ p
        if k * (q_new - q) >= eta * q_new:
            return k, p
        d = r_new + (r_new @ r_new) / (r @ r) * d
        r, q = r_new, q_new
    raise AssertionError("the rule never held")


@pytest.mark.parametrize("eta", [0.5, 0.25, 0.1])
def test_cg_stops_on_the_quadratic_model_rule(eta):
    rng = np.random.default_rng(0)
    Q, _ = np.linalg.qr(rng.standard_normal((40, 40)))
    H = Q @ np.diag(np.logspace(0, 2, 40)) @ Q.T
    g = rng.standard_normal(40)
    k_ref, p_ref = _model_decrease_stop(H, g, eta)
    p, k = newton.conjugate_gradient(lambda v: H @ v, g, eta, 100, np.ones(40))
    assert k == k_ref and k < 40  # truncated, not solved to the end
    assert np.allclose(p, p_ref, rtol=1e-8, atol=1e-12)


class _Counting(NumpyBackend):
    """The NumPy backend counting its passes over X: products and the diagonal's squares."""

    passes = 0

    def matvec(self, w):
        type(self).passes += 1
        return super().matvec(w)

    def rmatvec(self, r):
        type(self).passes += 1
        return super().rmatvec(r)

    def hessian_diagonal(self, w, b):
        type(self).passes += 1  # the squares; its margins are counted by matvec
        return super().hessian_diagonal(w, b)


def test_newton_needs_fewer_passes_on_text_like_csr():
    """Text-like CSR at C = 100, tol 1e-8: 164 passes over X (measured), where the residual
    rule with Jacobi after 10 products took 257; LIBLINEAR's schedule makes the early
    Newton steps cheap."""
    X, y = text_csr(3000, 2000, 90000, seed=1)
    objective = Objective("logistic", 1.0 / 100.0, False)
    _Counting.passes = 0
    backend = _Counting(X, y, np.ones(X.shape[0]), objective.pointwise)
    result = run("newton", objective, backend, np.zeros(X.shape[1]), 1e-8, 1000)
    assert result.converged and result.relative_gap <= 1e-8
    assert _Counting.passes <= 200, _Counting.passes


def _data(kind, fmt, dtype, seed=0):
    rng = np.random.default_rng(seed)
    n, d = 600, 40
    X = rng.standard_normal((n, d)) * np.logspace(0, 1.5, d)  # spread column scales: the diagonal matters
    X[rng.random((n, d)) < 0.6] = 0.0
    z = X @ (rng.standard_normal(d) / np.logspace(0, 1.5, d))
    if kind == "ridge":
        y = z + 0.3 * rng.standard_normal(n) + 1.0
    elif kind == "multinomial":
        y = np.digitize(z + 0.5 * rng.standard_normal(n), np.quantile(z, [1 / 3, 2 / 3])).astype(float)
    else:
        y = np.where(rng.random(n) < 1 / (1 + np.exp(-z - 0.5)), 1.0, -1.0)
    X = X.astype(dtype)
    return (sp.csr_matrix(X) if fmt == "csr" else X), y


def _sk_objective(kind, C_or_alpha, X, y, s, coef, intercept):
    """P at (coef, intercept) in float64, tikhon's scaling (sum of losses + lam/2 ||W||^2)."""
    Xd = X.toarray() if sp.issparse(X) else np.asarray(X)
    Xd = Xd.astype(np.float64)
    W = np.atleast_2d(coef).astype(np.float64)
    Z = Xd @ W.T + np.asarray(intercept, dtype=np.float64)
    if kind == "ridge":
        return float(0.5 * s @ (y - Z[:, 0]) ** 2 + 0.5 * C_or_alpha * np.sum(W * W))
    lam = 1.0 / C_or_alpha
    if kind == "multinomial":
        classes = np.unique(y)
        lse = np.logaddexp.reduce(Z, axis=1)
        zy = Z[np.arange(len(y)), np.searchsorted(classes, y)]
        return float(s @ (lse - zy) + 0.5 * lam * np.sum(W * W))
    return float(s @ np.logaddexp(0.0, -y * Z[:, 0]) + 0.5 * lam * np.sum(W * W))


CASES = [(kind, fmt, dtype, fit_intercept, weighted, reg)
         for kind, reg in (("logistic", 100.0), ("logistic", 0.1), ("ridge", 10.0), ("multinomial", 10.0))
         for fmt in ("dense", "csr") for dtype in (np.float64, np.float32)
         for fit_intercept, weighted in ((True, True), (False, False))]


@pytest.mark.parametrize("kind,fmt,dtype,fit_intercept,weighted,reg", CASES)
def test_newton_reaches_sklearns_optimum(kind, fmt, dtype, fit_intercept, weighted, reg):
    X, y = _data(kind, fmt, dtype)
    s = np.random.default_rng(1).uniform(0.2, 3.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    X64 = X.astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "ridge":
            ours = tikhon.Ridge(alpha=reg, fit_intercept=fit_intercept, solver="sparse_cg", tol=1e-12)
            ref = SkRidge(alpha=reg, fit_intercept=fit_intercept, solver="cholesky" if fmt == "dense" else "auto",
                          tol=1e-12)
        else:
            ours = tikhon.LogisticRegression(C=reg, fit_intercept=fit_intercept, solver="newton", tol=1e-12)
            ref = SkLogisticRegression(C=reg, fit_intercept=fit_intercept, solver="newton-cholesky", tol=1e-12,
                                       max_iter=1000)
        ours.fit(X, y, sample_weight=s)
        ref.fit(X64, y, sample_weight=s)
    assert ours.solver_ == "newton" and ours.converged_
    p_ours = _sk_objective(kind, reg, X64, y, s, ours.coef_, ours.intercept_)
    p_ref = _sk_objective(kind, reg, X64, y, s, ref.coef_, ref.intercept_)
    assert p_ours <= p_ref * (1 + 1e-8)
    scale = float(np.max(np.abs(ref.coef_)))
    coef_rtol = 1e-5 if dtype == np.float64 else 1e-4  # float32 coef_ rounds at ~6e-8 of the largest entry
    assert np.allclose(np.ravel(ours.coef_), np.ravel(ref.coef_), rtol=coef_rtol, atol=coef_rtol * scale)


def test_newton_at_max_iter_warns_and_is_not_converged():
    X, y = _data("logistic", "csr", np.float64)
    with pytest.warns(ConvergenceWarning, match="newton failed to converge after 2 iterations"):
        model = tikhon.LogisticRegression(C=100.0, solver="newton", max_iter=2, tol=1e-12).fit(X, y)
    assert not model.converged_ and model.n_iter_[0] == 2
