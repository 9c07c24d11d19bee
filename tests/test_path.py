"""regularization_path: every grid point equals an independent cold fit; the ridge closed form
(eigendecomposition, leave-one-out) against brute force; the grid, the result, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import tikhon
from tikhon.path import RidgeSpectrum, _use_eigh, regularization_path

TOL = 1e-14  # relative duality gap: coefficients agree to 1e-6 only at a gap near its square


def _relative(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))


@pytest.fixture(scope="module")
def a9a_small():
    X, y = tikhon.datasets.load_a9a()
    rows = np.random.default_rng(0).choice(X.shape[0], 4000, replace=False)
    return X[rows], y[rows]


def _dense_regression(n, d, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, d) + rng.uniform(-1, 1, d)
    y = X @ rng.standard_normal(d) + 2.0 + rng.standard_normal(n)
    return X, y


@pytest.mark.parametrize("weighted", [False, True])
def test_logistic_path_equals_cold_fits(a9a_small, weighted):
    """Warm-started path on CSR a9a (unsorted grid): each point's objective equals an
    independent cold fit's within 1e-8; fewer Newton steps in all than the cold fits."""
    X, y = a9a_small
    s = np.random.default_rng(1).uniform(0.2, 2.0, X.shape[0]) if weighted else None
    Cs = np.array([1.0, 0.01, 100.0, 0.1, 10.0])
    path = regularization_path(X, y, Cs=Cs, backend="numpy", tol=TOL, sample_weight=s)
    assert path.method == "warm_start" and path.solver == "newton" and path.backend == "numpy"
    np.testing.assert_array_equal(path.grid, Cs)
    np.testing.assert_allclose(path.lams, 1.0 / Cs)
    assert path.coefs.shape == (5, X.shape[1]) and path.converged.all()
    assert np.all(path.certificates <= TOL) and np.all(path.duality_gaps < 1e-8)
    cold_iter = 0
    for k, C in enumerate(Cs):
        cold = tikhon.LogisticRegression(C=C, solver="newton", backend="numpy", tol=TOL).fit(X, y, s)
        cold_iter += cold.n_iter_
        assert _relative(path.objectives[k], cold.objective_) <= 1e-8, C
        np.testing.assert_allclose(path.coefs[k], cold.coef_[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(path.intercepts[k], cold.intercept_[0], rtol=1e-4, atol=1e-5)
    assert path.n_iter.sum() < cold_iter  # the warm starts pay


def test_logistic_path_string_labels_and_class_weight():
    """Labels need not be +-1; class weights multiply the sample weights as in the estimator."""
    rng = np.random.default_rng(2)
    X = rng.standard_normal((300, 6))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(300) > 0.3, "yes", "no")
    path = regularization_path(X, y, Cs=[0.1, 1.0], backend="numpy", tol=TOL, class_weight="balanced")
    np.testing.assert_array_equal(path.classes, ["no", "yes"])
    for k, C in enumerate([0.1, 1.0]):
        cold = tikhon.LogisticRegression(C=C, backend="numpy", solver="newton", tol=TOL,
                                         class_weight="balanced").fit(X, y)
        assert _relative(path.objectives[k], cold.objective_) <= 1e-8
        np.testing.assert_allclose(path.decision_function(X)[:, k], cold.decision_function(X), atol=1e-6)


@pytest.mark.parametrize("shape", [(400, 12), (30, 80)])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_ridge_eigh_and_warm_start_equal_cold_fits(shape, fit_intercept, sparse):
    """Ridge by one eigendecomposition (n >= d: X^T S X; n < d: X X^T) and by warm starts,
    weighted, dense and CSR: objectives equal independent cold fits within 1e-8."""
    X, y = _dense_regression(*shape)
    if sparse:
        X[np.abs(X) < 0.7] = 0.0
        X = sp.csr_matrix(X)
    s = np.random.default_rng(3).uniform(0.0, 2.0, shape[0])
    s[:3] = 0.0  # rows of weight zero are allowed
    alphas = [10.0, 0.01, 1.0, 100.0]
    eig = regularization_path(X, y, alphas=alphas, model="ridge", method="eigh", backend="numpy", tol=TOL,
                              sample_weight=s, fit_intercept=fit_intercept)
    warm = regularization_path(X, y, alphas=alphas, model="ridge", method="warm_start", backend="numpy",
                               tol=TOL, sample_weight=s, fit_intercept=fit_intercept)
    assert eig.method == "eigh" and eig.solver is None and np.all(eig.n_iter == 0)
    assert warm.method == "warm_start" and np.all(warm.n_iter > 0)
    for k, alpha in enumerate(alphas):
        cold = tikhon.Ridge(alpha=alpha, backend="numpy", solver="newton", tol=TOL,
                            fit_intercept=fit_intercept).fit(X, y, s)
        assert _relative(eig.objectives[k], cold.objective_) <= 1e-8, alpha
        assert _relative(warm.objectives[k], cold.objective_) <= 1e-8, alpha
        np.testing.assert_allclose(eig.coefs[k], cold.coef_, rtol=1e-6, atol=1e-7)
    if not fit_intercept:
        assert np.all(eig.intercepts == 0.0)


def test_ridge_path_matches_sklearn_ridge():
    """An independent reference: scikit-learn's Ridge (cholesky) at each alpha."""
    from sklearn.linear_model import Ridge

    X, y = _dense_regression(500, 20, seed=4)
    s = np.random.default_rng(4).uniform(0.5, 1.5, 500)
    alphas = np.logspace(-2, 3, 6)
    path = regularization_path(X, y, alphas=alphas, model="ridge", sample_weight=s, backend="numpy")
    assert path.method == "eigh"  # auto: small dense data
    for k, alpha in enumerate(alphas):
        ref = Ridge(alpha=alpha, solver="cholesky").fit(X, y, sample_weight=s)
        np.testing.assert_allclose(path.coefs[k], ref.coef_, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(path.intercepts[k], ref.intercept_, rtol=1e-8)


@pytest.mark.parametrize("shape", [(25, 4), (12, 30)])
def test_leave_one_out_residuals_equal_refits(shape):
    """RidgeSpectrum.loo_residuals equals refitting without each row (weighted, intercept)."""
    X, y = _dense_regression(*shape, seed=5)
    s = np.random.default_rng(5).uniform(0.3, 2.0, shape[0])
    alpha = 0.7
    residuals, w, b = RidgeSpectrum(X, y, s).loo_residuals(alpha)
    for i in range(shape[0]):
        keep = np.arange(shape[0]) != i
        wi, bi = RidgeSpectrum(X[keep], y[keep], s[keep]).solve(alpha)
        assert residuals[i] == pytest.approx(y[i] - X[i] @ wi - bi, rel=1e-7, abs=1e-9)


def test_auto_method_rule():
    """Closed form where one decomposition is cheaper than ~100 passes per grid point."""
    assert _use_eigh(np.zeros((10000, 50)), 10)
    assert not _use_eigh(np.zeros((3000, 3000)), 5)
    def csr(n, d, nnz):
        rng = np.random.default_rng(0)
        return sp.csr_matrix((np.ones(nnz), (rng.integers(0, n, nnz), rng.integers(0, d, nnz))), shape=(n, d))

    assert not _use_eigh(csr(7700, 8300, 340000), 20)  # reuters' shape
    assert _use_eigh(csr(32000, 123, 450000), 20)  # a9a's


def test_default_grid_and_int_grid():
    X, y = _dense_regression(60, 3)
    path = regularization_path(X, y, alphas=5, model="ridge")
    np.testing.assert_allclose(path.grid, np.logspace(-4, 4, 5))
    assert path.param_name == "alpha" and path.total_seconds >= 0


def test_non_convergence_warns():
    from sklearn.exceptions import ConvergenceWarning

    X, y = tikhon.datasets.load_a9a()
    with pytest.warns(ConvergenceWarning, match="did not reach tol"):
        path = regularization_path(X[:2000], y[:2000], Cs=[1.0, 100.0], solver="gd", backend="numpy",
                                   max_iter=3, tol=1e-10)
    assert not path.converged.any() and np.all(path.n_iter == 3)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="lasso"), "unknown model"),
    (dict(alphas=[1.0]), "alphas is the ridge grid"),
    (dict(Cs=[1.0, -1.0]), "C must be"),
    (dict(Cs=0), "Cs"),
    (dict(method="eigh"), "closed form of ridge"),
    (dict(method="svd"), "unknown method"),
    (dict(tol=0.0), "tol"),
    (dict(fit_intercept="yes"), "fit_intercept"),
])
def test_bad_arguments(kwargs, message):
    X = np.random.default_rng(0).standard_normal((20, 3))
    y = np.arange(20) % 2
    with pytest.raises(ValueError, match=message):
        regularization_path(X, y, **kwargs)


def test_bad_labels():
    """One class, a 2-D label array, the other model's grid and dual CD on K outputs are
    refused (three classes were refused before: now a multinomial path)."""
    X = np.random.default_rng(0).standard_normal((30, 3))
    with pytest.raises(ValueError, match="at least two classes"):
        regularization_path(X, np.zeros(30))
    with pytest.raises(ValueError, match="one-dimensional.*model='ridge'"):
        regularization_path(X, np.zeros((30, 2)))
    with pytest.raises(ValueError, match="Cs is the logistic grid"):
        regularization_path(X, np.ones(30), Cs=[1.0], model="ridge")
    with pytest.raises(ValueError, match="solver 'dual_cd' .* this path has 3 outputs"):
        regularization_path(X, np.arange(30) % 3, Cs=[1.0], solver="dual_cd")
