"""L-BFGS handing over to Newton (solver ``lbfgs_newton``, auto's dense logistic solver).

What can go wrong: a forecast that hands over on data L-BFGS solves fast (then it is
only Newton with a detour) or never hands over on data it solves slowly (then it is
slow L-BFGS); a hand-over that loses the iterate, the history or the iteration count; a
result off the optimum. Each is checked below against Newton's own fit of the same
problem and against scikit-learn's optimum (tests/test_sklearn_match.py runs it on a9a
at every C, dense and CSR, with and without intercept and weights)."""
import math
import re

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression as SkLogisticRegression

import tikhon
from tikhon.solvers.lbfgs import forecast


def test_forecast_extrapolates_the_rate_of_the_second_half():
    passes = [2, 3, 4, 5, 6]
    gaps = [10.0 ** -k for k in range(5)]  # one decade a pass
    assert forecast(passes, gaps, 1e-8) == pytest.approx(6 + 4)
    assert forecast(passes, gaps, 1.0) == 6  # already below the target: the passes so far
    assert forecast(passes, [1.0, 0.5, 0.5, 0.5, 0.5], 1e-8) == math.inf  # stalled over the second half
    assert forecast([3], [1.0], 1e-8) == 3  # nothing to measure a rate from yet


def _hand_over(model):
    found = re.match(r"(\d+) L-BFGS iterations \((\d+) passes\), then (\d+) by (\w+)", model._result_message)
    return None if found is None else (int(found.group(1)), found.group(4))


@pytest.fixture
def message(monkeypatch):
    """The fit's solver message, kept on the model as ``_result_message``."""
    from tikhon import solvers

    run = solvers.run

    def spy(*args, **kwargs):
        result = run(*args, **kwargs)
        spy.message = result.message
        return result

    monkeypatch.setattr(solvers, "run", spy)
    return spy


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_hands_over_on_one_hot_data_and_reaches_newtons_optimum(backend, message):
    """a9a as dense (one-hot columns: L-BFGS needs 300+ iterations to 1e-8 at C = 1)."""
    if backend not in tikhon.available_backends():
        pytest.skip(f"backend {backend} not available")
    X, y = tikhon.datasets.load_a9a()
    X = X[:8000].toarray()
    y = y[:8000]
    model = tikhon.LogisticRegression(C=1.0, tol=1e-10, solver="lbfgs_newton", backend=backend).fit(X, y)
    model._result_message = message.message
    steps, newton = _hand_over(model)
    assert model.converged_ and model.duality_gap_ <= 1e-10
    assert steps <= 6 and newton in ("newton", "newton_cholesky")  # handed over early, to auto's Newton
    assert len(model.history_) == model.n_iter_[0] + 1  # one value per iteration and the start's
    assert np.all(np.diff([t for t, _ in model.history_]) >= 0)
    ref = tikhon.LogisticRegression(C=1.0, tol=1e-10, solver="newton", backend=backend).fit(X, y)
    assert abs(model.objective_ - ref.objective_) <= 2e-10 * ref.objective_
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-4 * np.abs(ref.coef_).max())


@pytest.mark.parametrize("n_classes", [2, 4])
def test_stays_lbfgs_on_well_conditioned_dense_data_and_matches_sklearn(n_classes, message):
    X, y = tikhon.datasets.make_classification(20000, 20, n_classes=n_classes, seed=3)
    model = tikhon.LogisticRegression(C=1.0, tol=1e-10).fit(X, y)
    model._result_message = message.message
    assert model.solver_ == "lbfgs_newton" and model.converged_
    assert _hand_over(model) is None, model._result_message
    ref = SkLogisticRegression(C=1.0, tol=1e-12, max_iter=10000).fit(X, y)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-5 * np.abs(ref.coef_).max())
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=0, atol=1e-5 * np.abs(ref.coef_).max())


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_matches_sklearn_with_weights_on_every_input_kind(fmt, dtype, fit_intercept):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, 30)) * rng.uniform(0.1, 5.0, 30)  # unscaled columns
    X[rng.random(X.shape) < 0.5] = 0.0
    y = np.where(X @ rng.standard_normal(30) + rng.standard_normal(3000) > 0.3, 1, 0)
    s = rng.uniform(0.2, 3.0, 3000)
    Xf = (sp.csr_matrix(X) if fmt == "csr" else X).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-6  # float32 products floor near 1e-7 (as tests/test_multiclass.py)
    model = tikhon.LogisticRegression(C=10.0, fit_intercept=fit_intercept, solver="lbfgs_newton", tol=tol,
                                      backend="numpy").fit(Xf, y, sample_weight=s)
    assert model.converged_ and model.coef_.dtype == dtype
    ref = SkLogisticRegression(C=10.0, fit_intercept=fit_intercept, tol=1e-12, max_iter=10000,
                               solver="newton-cholesky").fit(X.astype(dtype).astype(np.float64), y, sample_weight=s)
    atol = (1e-6 if dtype == np.float64 else 1e-3) * np.abs(ref.coef_).max()
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=atol)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=0, atol=atol)


def test_max_iter_bounds_both_phases():
    X, y = tikhon.datasets.load_a9a()
    with pytest.warns(tikhon.estimators.ConvergenceWarning):
        model = tikhon.LogisticRegression(C=100.0, tol=1e-12, solver="lbfgs_newton", max_iter=4).fit(X[:5000].toarray(), y[:5000])
    assert not model.converged_ and model.n_iter_[0] <= 4


def test_lbfgs_first_step_is_the_exact_line_minimum_on_a_quadratic():
    """Ridge's P is quadratic: L-BFGS's first step (the Cauchy step, no line search) lands
    on the minimum of P along -grad P, computed here from X directly."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((400, 12)) * rng.uniform(0.5, 4.0, 12)
    t = X @ rng.standard_normal(12) + rng.standard_normal(400)
    alpha = 3.0
    with pytest.warns(tikhon.estimators.ConvergenceWarning):
        model = tikhon.Ridge(alpha=alpha, fit_intercept=False, solver="lbfgs", max_iter=1, backend="numpy").fit(X, t)
    g = -X.T @ t  # grad P at w = 0: X^T (X w - t) + alpha w
    H = X.T @ X + alpha * np.eye(12)
    w = -(g @ g) / (g @ H @ g) * g
    np.testing.assert_allclose(model.coef_, w, rtol=1e-10, atol=0)


@pytest.mark.skipif("numba" not in tikhon.available_backends() or "cython" not in tikhon.available_backends(),
                    reason="needs the numba and cython backends")
def test_auto_on_wide_csr_follows_the_intercept_rule():
    """Binary logistic regression on CSR with d >= n: without an intercept L-BFGS (handing
    over) on Numba at every C; with one, dual CD at C >= 1 and Newton-CG below."""
    X = sp.random(300, 900, density=0.05, format="csr", random_state=4)
    y = np.where(X @ np.random.default_rng(4).standard_normal(900) > 0, 1, 0)
    for C in (0.1, 100.0):
        model = tikhon.LogisticRegression(C=C, fit_intercept=False, tol=1e-12).fit(X, y)
        assert (model.solver_, model.backend_) == ("lbfgs_newton", "numba") and model.converged_
        ref = SkLogisticRegression(C=C, fit_intercept=False, tol=1e-12, max_iter=10000).fit(X.toarray(), y)
        np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-5 * np.abs(ref.coef_).max())
    assert tikhon.LogisticRegression(C=1.0).fit(X, y).solver_ == "dual_cd"
    assert tikhon.LogisticRegression(C=0.1).fit(X, y).solver_ == "newton"
    narrow = tikhon.LogisticRegression(C=1.0, fit_intercept=False).fit(X[:, :200], y)  # d < n: the cost model
    assert narrow.solver_ in ("newton", "newton_cholesky") and narrow.backend_ == "cython"
