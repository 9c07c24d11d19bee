"""Solver drivers: the seeds' GD update by hand, convergence of every solver to the same
optimum, SGD's seeded repeatability, solver selection."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import tikhon
from tikhon.backends import get_backend
from tikhon.objective import Objective
from tikhon.solvers import SOLVERS, choose_solver, gd, run, sgd
from tikhon.solvers._common import Problem


def small_problem(fmt="dense", weighted=True, seed=0):
    X, y = tikhon.datasets.make_classification(400, 6, seed=seed)
    s = np.random.default_rng(seed).uniform(0.5, 2.0, X.shape[0]) if weighted else np.ones(X.shape[0])
    return (sp.csr_matrix(X) if fmt == "csr" else X), y, s


def bind(loss, lam, fit_intercept, X, y, s, backend="numpy"):
    objective = Objective(loss, lam, fit_intercept)
    return Problem(objective, get_backend(backend, X)(X, y, s, objective.pointwise))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_gd_one_step_is_the_seeds_update(backend, fmt, fit_intercept):
    """w1 = w0 (1 - a lam / m) - a grad(mean loss)(w0), b1 = b0 - a d(mean loss)/db,
    written out here with NumPy only, equals one step of the solver."""
    X, y, s = small_problem(fmt)
    lam, a = 2.0, 0.7
    problem = bind("logistic", lam, fit_intercept, X, y, s, backend)
    rng = np.random.default_rng(1)
    w0, b0 = rng.standard_normal(X.shape[1]), (0.3 if fit_intercept else 0.0)
    theta0 = np.append(w0, b0) if fit_intercept else w0

    Xd = X.toarray() if sp.issparse(X) else X
    m = s.sum()
    z = Xd @ w0 + b0
    r = s * (-y / (1.0 + np.exp(y * z)))  # s_i dloss/dz for log(1 + exp(-y z))
    w1 = w0 * (1 - a * lam / m) - a * (Xd.T @ r) / m
    b1 = b0 - a * r.sum() / m

    result = gd.solve(problem, theta0, tol=1e-30, max_iter=1, learning_rate=a)
    assert result.n_iter == 1 and not result.converged
    w, b = problem.split(result.theta)
    assert np.allclose(w, w1, rtol=1e-12, atol=1e-14)
    assert b == pytest.approx(b1 if fit_intercept else 0.0, rel=1e-12, abs=1e-14)


CONVERGENT = [("gd", "numpy"), ("gd", "numba"), ("lbfgs", "numpy"), ("newton", "numpy"),
              ("newton", "numba"), ("dual_cd", "cython")]


@pytest.mark.parametrize("solver,backend", CONVERGENT)
@pytest.mark.parametrize("loss", ["logistic", "squared"])
def test_every_solver_reaches_the_same_optimum(solver, backend, loss):
    if backend not in tikhon.available_backends():
        pytest.skip(f"backend {backend} is not available here")
    X, y, s = small_problem("csr" if backend == "cython" else "dense")
    if loss == "squared":
        y = np.asarray(X @ np.linspace(-1, 1, X.shape[1])).ravel() + 0.5 + 0.1 * y
    lam = 3.0
    Xd = X.toarray() if sp.issparse(X) else X
    # the exact optimum: ridge in closed form, logistic by Newton in float64 here
    Z = np.hstack([Xd, np.ones((Xd.shape[0], 1))])
    R = lam * np.diag([1.0] * Xd.shape[1] + [0.0])
    if loss == "squared":
        theta_star = np.linalg.solve(Z.T @ (s[:, None] * Z) + R, Z.T @ (s * y))
    else:
        theta_star = np.zeros(Z.shape[1])
        for _ in range(50):
            p = 1 / (1 + np.exp(-y * (Z @ theta_star)))
            g = Z.T @ (s * -y * (1 - p)) + R @ theta_star
            H = Z.T @ ((s * p * (1 - p))[:, None] * Z) + R
            theta_star -= np.linalg.solve(H, g)
    problem = bind(loss, lam, True, X, y, s, backend)
    tol = 1e-13 if solver == "dual_cd" else 1e-9  # dual_cd's tol bounds the relative gap
    result = run(solver, problem.objective, problem.backend, np.zeros(Z.shape[1]), tol, 100000)
    assert result.converged
    assert np.allclose(result.theta, theta_star, rtol=1e-5, atol=1e-6)
    assert result.relative_gap <= 1e-8


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_sgd_is_repeatable_for_a_seed_and_approaches_the_optimum(backend):
    X, y, s = small_problem()
    fit = dict(C=0.5, solver="sgd", backend=backend, tol=1e-12, max_iter=30, batch_size=32)
    with pytest.warns(Warning, match="failed to converge after 30 iterations"):
        a = tikhon.LogisticRegression(random_state=4, **fit).fit(X, y, sample_weight=s)
        b = tikhon.LogisticRegression(random_state=4, **fit).fit(X, y, sample_weight=s)
        c = tikhon.LogisticRegression(random_state=5, **fit).fit(X, y, sample_weight=s)
    assert np.array_equal(a.coef_, b.coef_) and a.intercept_ == b.intercept_
    assert not np.array_equal(a.coef_, c.coef_)
    exact = tikhon.LogisticRegression(C=0.5, solver="newton", tol=1e-10).fit(X, y, sample_weight=s)
    assert a.objective_ <= exact.objective_ * (1 + 1e-2)  # SGD is close, not exact
    assert a.duality_gap_ >= (a.objective_ - exact.objective_) / exact.objective_


def test_sgd_numba_loop_equals_the_numpy_loop():
    """Same shuffles, same schedule, same update: the two implementations agree."""
    X, y, s = small_problem()
    fit = dict(C=0.5, solver="sgd", tol=1e-12, max_iter=5, batch_size=50, random_state=2)
    with pytest.warns(Warning):
        a = tikhon.LogisticRegression(backend="numpy", **fit).fit(X, y, sample_weight=s)
        b = tikhon.LogisticRegression(backend="numba", **fit).fit(X, y, sample_weight=s)
    assert np.allclose(a.coef_, b.coef_, rtol=1e-10, atol=1e-12)


def test_gd_with_a_too_large_learning_rate_says_it_diverged():
    X, y, s = small_problem()
    with pytest.raises(FloatingPointError, match="smaller learning_rate"):
        tikhon.Ridge(solver="gd", backend="numpy", learning_rate=1e6, max_iter=2000).fit(X, y * 1e3)


def test_gd_default_step_is_below_the_inverse_lipschitz_constant():
    X, y, s = small_problem()
    problem = bind("logistic", 1.0, True, X, y, s)
    Z = np.hstack([X, np.ones((X.shape[0], 1))])
    L = (0.25 * np.linalg.norm(Z.T @ (s[:, None] * Z), 2) + 1.0) / s.sum()
    assert 0.9 / L <= gd.default_step(problem) <= 1.0 / L
    assert sgd.default_step(problem) > 0


def test_choose_solver():
    assert choose_solver("auto", "logistic") == "newton"
    assert choose_solver("lbfgs", "logistic") == "lbfgs"
    with pytest.raises(ValueError, match="unknown solver 'cg'; valid solvers are auto, " + ", ".join(SOLVERS)):
        choose_solver("cg", "logistic")


def test_auto_follows_the_cost_model():
    """auto takes Newton-Cholesky where a Gram pass is cheap: narrow dense ridge, small
    dense logistic, a9a on the compiled CSR Gram; Newton-CG on wide data; L-BFGS handing
    over to Newton for dense logistic regression of at least LBFGS_MIN_SIZE values."""
    from tikhon.backends.numpy import NumpyBackend
    from tikhon.objective import LOSSES

    rng = np.random.default_rng(0)

    def backend(n, d, cls=NumpyBackend):
        return cls(rng.standard_normal((n, d)), np.ones(n), np.ones(n), LOSSES["squared"])

    assert choose_solver("auto", "squared", backend(1000, 20)) == "newton_cholesky"
    assert choose_solver("auto", "squared", backend(1000, 400)) == "newton_cholesky"
    assert choose_solver("auto", "squared", backend(2000, 2000)) == "newton"
    assert choose_solver("auto", "logistic", backend(1000, 20)) == "newton_cholesky"  # 2e4 values
    assert choose_solver("auto", "logistic", backend(1000, 200)) == "lbfgs_newton"
    assert choose_solver("auto", "logistic", backend(5000, 20)) == "lbfgs_newton"
    assert choose_solver("auto", "squared", backend(5000, 20)) == "newton_cholesky"
    X, y = tikhon.datasets.load_a9a()
    model = tikhon.LogisticRegression().fit(X, y)
    assert model.backend_ == "cython" and model.solver_ == "newton_cholesky"
    assert tikhon.LogisticRegression(backend="numpy").fit(X, y).solver_ == "newton"  # scipy's Gram: costly


def test_newton_cg_moves_to_the_explicit_hessian_when_cg_costs_more():
    """On a9a at C=100 CG needs more products per step than a compiled CSR Gram costs:
    Newton-CG finishes with Newton-Cholesky within a few steps (same optimum); with
    scipy's costly Gram (numpy backend) only after longer CG runs, if at all."""
    import re

    from tikhon.objective import Objective

    X, y = tikhon.datasets.load_a9a()
    y = np.where(y > 0, 1.0, -1.0)
    objective = Objective("logistic", 0.01, True)
    results = {}
    for name in ("cython", "numpy"):
        backend = get_backend(name, X)(X, y, np.ones(X.shape[0]), objective.pointwise)
        theta0 = np.zeros(objective.n_params(X.shape[1]))
        results[name] = run("newton", objective, backend, theta0, 1e-10, 100)
    def cg_steps(result):
        found = re.match(r"(\d+) Newton-CG steps, then", result.message)
        return int(found.group(1)) if found else result.n_iter

    assert "by newton_cholesky" in results["cython"].message
    assert cg_steps(results["cython"]) <= 5 < cg_steps(results["numpy"])
    for r in results.values():
        assert r.converged and r.relative_gap <= 1e-10
    assert abs(results["cython"].objective - results["numpy"].objective) <= 1e-9 * results["numpy"].objective


def test_newton_cholesky_refuses_a_hessian_too_large_to_form():
    rng = np.random.default_rng(0)
    X = sp.random(50, 6000, density=0.01, format="csr", random_state=0)
    y = np.where(rng.random(50) < 0.5, 1, -1)
    with pytest.raises(ValueError, match="forms the 6001 x 6001 Hessian.*solver='newton'"):
        tikhon.LogisticRegression(solver="newton_cholesky").fit(X, y)
    assert tikhon.LogisticRegression(C=0.1).fit(X, y).solver_ == "newton"  # auto never forms it
    assert tikhon.LogisticRegression().fit(X, y).solver_ == "dual_cd"  # wide CSR, C >= 1


def test_auto_takes_dual_cd_on_wide_csr_at_c_of_one_and_more():
    """The cost model's rule for dual CD (measured on reuters, see tikhon.solvers): binary
    logistic regression, CSR with d >= n, lam <= 1; anything else keeps the primal solvers."""
    rng = np.random.default_rng(1)
    wide = sp.random(200, 400, density=0.05, format="csr", random_state=1)
    tall = sp.random(400, 200, density=0.05, format="csr", random_state=1)
    labels = lambda n: np.where(rng.random(n) < 0.5, 1, -1)  # noqa: E731
    chosen = lambda X, **kw: tikhon.LogisticRegression(**kw).fit(X, labels(X.shape[0])).solver_  # noqa: E731
    assert chosen(wide, C=1.0) == "dual_cd" and chosen(wide, C=100.0) == "dual_cd"
    assert chosen(wide, C=0.5) != "dual_cd" and chosen(tall, C=10.0) != "dual_cd"
    assert chosen(wide.toarray(), C=10.0) != "dual_cd"  # dense: no backend runs the dual loop
    model = tikhon.LogisticRegression(C=10.0).fit(wide, labels(200))
    assert model.converged_ and model.duality_gap_ <= model.tol
    assert tikhon.Ridge(alpha=0.1).fit(wide, rng.standard_normal(200)).solver_ != "dual_cd"
