"""The objective module: pointwise losses, gradient and Hessian products (by finite
differences and against each other), the dual and its duality-gap certificate."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import minimize

from tikhon.backends.numpy import NumpyBackend
from tikhon.objective import LOSSES, LogisticLoss, Objective, SquaredLoss

ONE_OUTPUT = ("logistic", "squared")  # the multinomial loss: tests/test_multiclass.py
from tikhon.solvers._common import Problem


def problem_data(loss, n=60, d=7, fmt="dense", dtype=np.float64, weighted=True, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X[rng.random((n, d)) < 0.3] = 0.0
    w_true = rng.standard_normal(d)
    if loss == "logistic":
        y = np.where(rng.random(n) < 1 / (1 + np.exp(-X @ w_true)), 1.0, -1.0)
    else:
        y = X @ w_true + 0.3 * rng.standard_normal(n) + 2.0
    s = rng.uniform(0.5, 2.0, n) if weighted else np.ones(n)
    X = X.astype(dtype)
    X = sp.csr_matrix(X) if fmt == "csr" else np.asfortranarray(X) if fmt == "fortran" else X
    return X, y, s


def bound_problem(loss, lam=0.7, fit_intercept=True, **kwargs):
    X, y, s = problem_data(loss, **kwargs)
    objective = Objective(loss, lam, fit_intercept)
    return Problem(objective, NumpyBackend(X, y, s, objective.pointwise)), X, y, s


def naive_value(loss, lam, X, y, s, w, b):
    """P written out directly, in float64, the way the docs state it."""
    z = np.asarray(X.astype(np.float64) @ w).ravel() + b
    if loss == "logistic":
        data = np.sum(s * np.log(1 + np.exp(-y * z)))
    else:
        data = np.sum(s * 0.5 * (y - z) ** 2)
    return data + 0.5 * lam * np.dot(w, w)


# ---- pointwise losses ----
def test_logistic_value_equals_the_textbook_formula_where_that_is_safe():
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0])
    z = np.array([-3.0, -0.5, 0.0, 2.0, 10.0])
    assert np.allclose(LogisticLoss.value(y, z), np.logaddexp(0.0, -y * z), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_logistic_is_overflow_safe(dtype):
    """Margins far beyond exp()'s range: finite values, correct asymptotes, no warnings."""
    t = np.array([-1e4, -800.0, -100.0, 100.0, 800.0, 1e4], dtype=dtype)
    y = np.ones_like(t)
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        value = LogisticLoss.value(y, t)
        deriv = LogisticLoss.derivative(y, t)
        curv = LogisticLoss.curvature(y, t)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(deriv)) and np.all(np.isfinite(curv))
    assert np.allclose(value[:3], -t[:3].astype(np.float64), rtol=1e-6)  # log(1+e^{-t}) ~ -t
    assert np.all(value[3:] >= 0) and np.all(value[3:] < 1e-40)
    assert np.allclose(deriv, [-1, -1, -1, 0, 0, 0], atol=1e-40)
    assert np.all(curv >= 0) and np.all(curv <= 0.25)


@pytest.mark.parametrize("loss", ONE_OUTPUT)
def test_pointwise_derivatives_match_finite_differences(loss):
    rng = np.random.default_rng(1)
    z = rng.uniform(-6, 6, 200)
    y = np.where(rng.random(200) < 0.5, 1.0, -1.0) if loss == "logistic" else rng.standard_normal(200)
    f, h = LOSSES[loss], 1e-6
    fd = (f.value(y, z + h) - f.value(y, z - h)) / (2 * h)
    assert np.allclose(f.derivative(y, z), fd, rtol=1e-7, atol=1e-9)
    fd2 = (f.derivative(y, z + h) - f.derivative(y, z - h)) / (2 * h)
    assert np.allclose(f.curvature(y, z), fd2, rtol=1e-6, atol=1e-9)
    assert np.all(f.curvature(y, z) <= f.max_curvature)


@pytest.mark.parametrize("loss", ONE_OUTPUT)
def test_fenchel_young_holds_with_equality_at_the_derivative(loss):
    """(s l)(z) + (s l)^*(u) >= u z, with equality at u = s l'(z): the conjugate is right."""
    rng = np.random.default_rng(2)
    n = 50
    z = rng.uniform(-4, 4, n)
    y = np.where(rng.random(n) < 0.5, 1.0, -1.0) if loss == "logistic" else rng.standard_normal(n)
    s = rng.uniform(0.5, 2.0, n)
    f = LOSSES[loss]
    u_star = s * f.derivative(y, z)
    for i in range(n):
        one = slice(i, i + 1)
        primal = s[i] * f.value(y[one], z[one])[0]
        assert primal + f.conjugate_sum(y[one], s[one], u_star[one]) == pytest.approx(u_star[i] * z[i], abs=1e-12)
        u = u_star[one] * rng.uniform(0.2, 0.99)  # another feasible point
        assert primal + f.conjugate_sum(y[one], s[one], u) >= u[0] * z[i] - 1e-12


# ---- the objective as a whole ----
def test_objective_rejects_bad_parameters():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        Objective("hinge", 1.0)
    for lam in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="finite positive"):
            Objective("logistic", lam)


@pytest.mark.parametrize("loss", ONE_OUTPUT)
@pytest.mark.parametrize("fmt", ["dense", "fortran", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_value_matches_the_formula(loss, fmt, fit_intercept):
    problem, X, y, s = bound_problem(loss, fit_intercept=fit_intercept, fmt=fmt)
    theta = np.random.default_rng(3).standard_normal(problem.n_params)
    w, b = problem.split(theta)
    value, _ = problem.value_grad(theta)
    assert value == pytest.approx(naive_value(loss, 0.7, X, y, s, w, b), rel=1e-12)


@pytest.mark.parametrize("loss", ONE_OUTPUT)
@pytest.mark.parametrize("fmt", ["dense", "fortran", "csr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gradient_and_hessian_products_by_finite_differences(loss, fmt, dtype, fit_intercept):
    """grad P against central differences of P (float64 data); Hess P v against central
    differences of grad P, and against the explicit Hessian [X 1]^T D [X 1] + lam I."""
    problem, X, y, s = bound_problem(loss, fit_intercept=fit_intercept, fmt=fmt, dtype=dtype)
    rng = np.random.default_rng(4)
    theta = 0.3 * rng.standard_normal(problem.n_params)
    value, grad, hess_vec = problem.value_grad_hessian(theta)
    assert np.array_equal(problem.value_grad(theta)[1], grad)

    # float32 data: margins are computed in float32, so differences need a larger step
    # (exact for the quadratic loss, O(h^2) for the logistic one) and a looser tolerance.
    h, rtol = (1e-5, 1e-6) if dtype == np.float64 else (1e-2, 2e-3)
    fd = np.array([(problem.value_grad(theta + h * e)[0] - problem.value_grad(theta - h * e)[0]) / (2 * h)
                   for e in np.eye(problem.n_params)])
    assert np.allclose(grad, fd, rtol=rtol, atol=rtol * np.abs(grad).max())

    v = rng.standard_normal(problem.n_params)
    hv = hess_vec(v)
    fd_hv = (problem.value_grad(theta + h * v)[1] - problem.value_grad(theta - h * v)[1]) / (2 * h)
    assert np.allclose(hv, fd_hv, rtol=rtol, atol=rtol * np.abs(hv).max())

    rtol = 1e-12 if dtype == np.float64 else 1e-5  # against float64 arithmetic on the same X
    Xd = X.toarray() if sp.issparse(X) else np.asarray(X)
    Z = np.hstack([Xd, np.ones((Xd.shape[0], 1))]) if fit_intercept else Xd
    w, b = problem.split(theta)
    Xd = Xd.astype(np.float64)
    Z = Z.astype(np.float64)
    d = s * LOSSES[loss].curvature(y, Xd @ w + b)
    H = Z.T @ (d[:, None] * Z) + 0.7 * np.diag([1.0] * Xd.shape[1] + [0.0] * fit_intercept)
    assert np.allclose(hv, H @ v, rtol=rtol, atol=rtol * np.abs(hv).max())
    assert np.allclose(problem.hessian_diagonal(theta), np.diag(H), rtol=rtol)
    g = Z.T @ (s * LOSSES[loss].derivative(y, Xd @ w + b)) + 0.7 * np.append(w, [0.0] * fit_intercept)
    assert np.allclose(grad, g, rtol=rtol, atol=rtol * np.abs(g).max())


@pytest.mark.parametrize("loss", ONE_OUTPUT)
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_duality_gap_bounds_the_suboptimality_and_vanishes_at_the_optimum(loss, fit_intercept):
    problem, X, y, s = bound_problem(loss, lam=0.2, fit_intercept=fit_intercept)
    optimum = minimize(lambda t: problem.value_grad(t), np.zeros(problem.n_params), jac=True,
                       method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 0, "maxiter": 5000}).x
    p_star = problem.value_grad(optimum)[0]
    _, _, gap_at_optimum = problem.duality_gap(optimum)
    assert 0 <= gap_at_optimum <= 1e-9

    rng = np.random.default_rng(5)
    for scale in (1.0, 0.1, 0.01, 1e-4):
        theta = optimum + scale * rng.standard_normal(problem.n_params)
        primal, dual, gap = problem.duality_gap(theta)
        assert primal == pytest.approx(problem.value_grad(theta)[0], rel=1e-12)
        assert dual <= p_star * (1 + 1e-12)  # weak duality
        assert (primal - p_star) / p_star <= gap * (1 + 1e-9) + 1e-15


def test_best_intercept_zeroes_the_intercept_derivative():
    rng = np.random.default_rng(6)
    margins = rng.standard_normal(300) * 3
    y = np.where(rng.random(300) < 0.9, 1.0, -1.0)  # unbalanced: the optimum is far from 0
    s = rng.uniform(0.5, 2.0, 300)
    for loss in ONE_OUTPUT:
        target = y if loss == "logistic" else 5 + rng.standard_normal(300)
        b = Objective(loss, 1.0).best_intercept(margins, target, s)
        slope = np.dot(s, LOSSES[loss].derivative(target, margins + b))
        assert abs(slope) <= 1e-10 * s.sum()


def test_constant_intercept_is_the_closed_form_of_the_best_intercept_at_zero_margins():
    rng = np.random.default_rng(8)
    y = np.where(rng.random(300) < 0.8, 1.0, -1.0)
    s = rng.uniform(0.0, 2.0, 300)
    for loss in ONE_OUTPUT:
        target = y if loss == "logistic" else 3 + rng.standard_normal(300)
        objective = Objective(loss, 1.0)
        b = objective.constant_intercept(target, s)
        assert b == pytest.approx(objective.best_intercept(np.zeros(300), target, s), rel=1e-12, abs=1e-12)
        assert abs(np.dot(s, LOSSES[loss].derivative(target, np.full(300, b)))) <= 1e-12 * s.sum()


@pytest.mark.parametrize("loss", ONE_OUTPUT)
def test_derivative_curvature_equals_the_two_separate_formulas(loss):
    rng = np.random.default_rng(9)
    z = rng.uniform(-30, 30, 500)
    y = np.where(rng.random(500) < 0.5, 1.0, -1.0) if loss == "logistic" else rng.standard_normal(500)
    first, second = LOSSES[loss].derivative_curvature(y, z)
    assert np.allclose(first, LOSSES[loss].derivative(y, z), rtol=1e-14, atol=0)
    assert np.allclose(second, LOSSES[loss].curvature(y, z), rtol=1e-14, atol=0)
    if loss == "logistic":  # no cancellation at large margins: sigmoid(z) sigmoid(-z) to full precision
        from scipy.special import expit

        assert np.allclose(second, expit(z) * expit(-z), rtol=1e-14, atol=0)


def test_logistic_center_dual_balances_the_classes_and_stays_feasible():
    rng = np.random.default_rng(10)
    y = np.where(rng.random(400) < 0.3, 1.0, -1.0)
    s = rng.uniform(0.1, 2.0, 400)
    for bias in (0.2, 0.9):  # either class can carry the larger total
        a = s * np.where(y > 0, rng.uniform(0, bias, 400), rng.uniform(0, 1 - bias, 400))
        u = -y * a
        centered = LogisticLoss.center_dual(y, s, u.copy())  # in place: on a copy
        assert abs(centered.sum()) <= 1e-12 * np.abs(u).sum()
        assert np.all(-y * centered >= 0) and np.all(-y * centered <= s)
        shrunk = np.abs(centered) < np.abs(u)  # one class only is scaled, by one factor
        assert len(np.unique(y[shrunk])) == 1
        assert np.allclose((centered / u)[shrunk], (centered / u)[shrunk][0])


def test_weight_decay_update_is_a_gradient_step_on_the_mean_scaled_problem():
    """w (1 - a lam / m) - a grad(mean loss) == w - a grad(P / m): the seeds' update."""
    problem, X, y, s = bound_problem("logistic", lam=0.7, fit_intercept=False)
    w = np.random.default_rng(7).standard_normal(problem.n_params)
    m, a = problem.weight_sum, 0.3
    data_loss, gw, _ = problem.backend.loss_grad(w, 0.0)
    seeds = w * problem.objective.weight_decay(a, m) - a * gw / m
    assert np.allclose(seeds, w - a * problem.value_grad(w)[1] / m, rtol=1e-14)


def test_squared_and_logistic_share_one_interface():
    for cls in (LogisticLoss, SquaredLoss):
        for method in ("value", "derivative", "curvature", "derivative_curvature", "conjugate_sum",
                       "center_dual"):
            assert callable(getattr(cls, method))
        assert cls.max_curvature > 0 and LOSSES[cls.name] is cls
