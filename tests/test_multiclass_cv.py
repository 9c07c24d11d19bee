"""Cross-validation and regularization paths with several outputs: multinomial
(K >= 3 classes) and multi-target ridge (y of shape (n, T)).

* ``regularization_path``: every point of a multinomial or multi-target path equals an
  independent cold fit (or scikit-learn's ``Ridge``); ``"eigh"`` decomposes once for all
  targets and alphas; shapes (n_grid, K, d), (n_grid, K), decision (n, K, n_grid).
* ``LogisticRegressionCV``: scikit-learn's ``LogisticRegressionCV`` with the same folds
  and Cs makes the same choice, fold scores and refit (objective within 1e-8, scored by
  an evaluator written here) on dna.scale and synthetic data.
* ``RidgeCV``: scikit-learn's ``RidgeCV`` (leave-one-out, ``alpha_per_target``, k-fold)
  on synthetic multi-target data and on dna.scale's one-hot classes as three targets.

Multinomial intercepts are defined up to a common shift: compared centred.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import SHARED_DATA
from scipy.special import logsumexp
from sklearn import linear_model as sk
from sklearn.model_selection import GridSearchCV, KFold, StratifiedKFold

import tikhon
from tikhon.path import RidgeSpectrum, regularization_path

OBJECTIVE_RTOL = 1e-8
TIGHT = 1e-10  # relative duality gap of our fits (1e-12 is below the rounding floor on dna)


# ---------------------------------------------------------------- data and evaluators
@functools.lru_cache(maxsize=None)
def _dna():
    """dna.scale: CSR 2000 x 180, classes 1, 2, 3 (skipped when ../shared/data lacks it)."""
    from sklearn.datasets import load_svmlight_file

    path = SHARED_DATA / "dna.scale"
    if not path.exists():
        pytest.skip(f"real data set dna.scale not found: {path} (the ../shared/data folder beside the project root)")
    X, y = load_svmlight_file(str(path), n_features=180)
    return X.tocsr(), y.astype(int)


def _multiclass(n=400, d=8, K=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.3, 2.0, d)
    y = np.argmax(X @ rng.standard_normal((d, K)) + 1.5 * rng.gumbel(size=(n, K)), axis=1)
    return X, y


def _targets(n=150, d=10, T=3, seed=0):
    """Dense X (not centred) and T targets of different scales and noise."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.2, 3.0, d) + rng.uniform(-1, 1, d)
    W = rng.standard_normal((T, d)) * np.logspace(-1, 1, T)[:, None]
    Y = X @ W.T + rng.standard_normal((n, T)) * np.linspace(0.5, 3.0, T) + np.arange(T)
    return X, Y


def multinomial_objective(X, y_index, s, C, W, b):
    """``sum_i s_i (logsumexp(z_i) - z_{i y_i}) + ||W||^2 / (2 C)`` (scikit-learn's problem)."""
    Z = np.asarray(X @ W.T) + b
    data = np.sum(s * (logsumexp(Z, axis=1) - Z[np.arange(len(y_index)), y_index]))
    return data + 0.5 / C * np.sum(W * W)


def ridge_objectives(X, Y, s, alphas, W, b):
    """Per target: ``sum_i s_i (y_ij - x_i w_j - b_j)^2 / 2 + alpha_j / 2 ||w_j||^2``."""
    R = Y - np.asarray(X @ W.T) - b
    return 0.5 * (s @ R ** 2) + 0.5 * np.asarray(alphas) * np.sum(W * W, axis=1)


def _relative(a, b):
    return np.abs(np.asarray(a) - np.asarray(b)) / np.abs(np.asarray(b))


def _assert_same_solution(W, b, ref_W, ref_b, centre):
    scale = max(1.0, np.abs(ref_W).max())
    assert np.abs(W - ref_W).max() <= 1e-5 * scale
    if centre:
        b, ref_b = b - b.mean(), ref_b - ref_b.mean()
    assert np.abs(b - ref_b).max() <= 1e-5 * scale


# ---------------------------------------------------------------- multinomial paths
@pytest.mark.parametrize("name", ["dna", "synthetic"])
def test_multinomial_path_equals_cold_fits(name):
    """Warm-started multinomial path (unsorted grid, weights): each point equals an
    independent cold fit (objective within 1e-8, W within 1e-5); shapes (n_grid, K, d),
    (n_grid, K), decision (n, K, n_grid); the warm starts take fewer Newton steps in all.
    (Before: "Only binary classification is supported".)"""
    X, y = _dna() if name == "dna" else _multiclass()
    s = np.random.default_rng(1).uniform(0.2, 2.0, X.shape[0])
    Cs = np.array([1.0, 0.01, 100.0, 0.1])
    path = regularization_path(X, y, Cs=Cs, solver="newton", tol=TIGHT, sample_weight=s)
    K, d = np.unique(y).size, X.shape[1]
    assert path.coefs.shape == (4, K, d) and path.intercepts.shape == (4, K) and path.n_outputs == K
    assert path.converged.all() and path.method == "warm_start"
    np.testing.assert_array_equal(path.classes, np.unique(y))
    Z = path.decision_function(X)
    assert Z.shape == (X.shape[0], K, 4)
    cold_iter = 0
    for k, C in enumerate(Cs):
        cold = tikhon.LogisticRegression(C=C, solver="newton", tol=TIGHT).fit(X, y, sample_weight=s)
        cold_iter += cold.n_iter_
        assert _relative(path.objectives[k], cold.objective_) <= OBJECTIVE_RTOL, C
        _assert_same_solution(path.coefs[k], path.intercepts[k], cold.coef_, cold.intercept_, centre=True)
        np.testing.assert_allclose(Z[:, :, k] - Z[:, :, k].mean(axis=1, keepdims=True),
                                   cold.decision_function(X) - cold.decision_function(X).mean(axis=1, keepdims=True),
                                   atol=1e-4 * max(1.0, np.abs(cold.coef_).max()))
    assert path.n_iter.sum() < np.sum(cold_iter)  # the warm starts pay


def test_multinomial_path_class_weight_and_string_labels():
    """Labels of any type; class weights multiply the sample weights as in the estimator."""
    X, y = _multiclass(n=300, K=3, seed=4)
    labels = np.array(["c", "a", "b"])[y]
    path = regularization_path(X, labels, Cs=[0.1, 10.0], tol=TIGHT, class_weight="balanced")
    np.testing.assert_array_equal(path.classes, ["a", "b", "c"])
    for k, C in enumerate([0.1, 10.0]):
        cold = tikhon.LogisticRegression(C=C, tol=TIGHT, class_weight="balanced").fit(X, labels)
        assert _relative(path.objectives[k], cold.objective_) <= OBJECTIVE_RTOL


def test_multi_output_path_decision_refuses_other_widths():
    X, y = _multiclass(n=120, d=5, K=3)
    path = regularization_path(X, y, Cs=[1.0])
    with pytest.raises(ValueError, match="X has 4 features, but this path was fitted on 5"):
        path.decision_function(X[:, :4])


# ---------------------------------------------------------------- multi-target ridge paths
@pytest.mark.parametrize("shape", [(150, 10), (20, 40)])
@pytest.mark.parametrize("fit_intercept", [True, False])
@pytest.mark.parametrize("sparse", [False, True])
def test_multi_target_ridge_path_matches_sklearn(shape, fit_intercept, sparse):
    """y (n, T): "eigh" (n >= d and n < d) and warm starts, weighted, dense and CSR,
    equal scikit-learn's Ridge(alpha) at every alpha for every target; shapes
    (n_grid, T, d), (n_grid, T), decision (n, T, n_grid). (Before: "y must be
    one-dimensional".)"""
    X, Y = _targets(*shape, T=3)
    if sparse:
        X[np.abs(X) < 0.7] = 0.0
        X = sp.csr_matrix(X)
    s = np.random.default_rng(3).uniform(0.0, 2.0, shape[0])
    s[:2] = 0.0
    alphas = [10.0, 0.01, 1.0, 100.0]
    eig = regularization_path(X, Y, alphas=alphas, model="ridge", method="eigh", tol=1e-14, sample_weight=s,
                              fit_intercept=fit_intercept)
    warm = regularization_path(X, Y, alphas=alphas, model="ridge", method="warm_start", tol=1e-14,
                               sample_weight=s, fit_intercept=fit_intercept)
    for path in (eig, warm):
        assert path.coefs.shape == (4, 3, shape[1]) and path.intercepts.shape == (4, 3) and path.converged.all()
        assert path.decision_function(X).shape == (shape[0], 3, 4)
    for k, alpha in enumerate(alphas):
        ref = sk.Ridge(alpha=alpha, solver="svd" if not sparse else "auto", fit_intercept=fit_intercept,
                       tol=1e-12).fit(X, Y, sample_weight=s)
        ref_b = ref.intercept_ if fit_intercept else np.zeros(3)
        np.testing.assert_allclose(eig.coefs[k], ref.coef_, rtol=1e-6, atol=1e-8 * max(1, np.abs(ref.coef_).max()))
        np.testing.assert_allclose(eig.intercepts[k], ref_b, rtol=1e-6, atol=1e-8)
        ours = ridge_objectives(X, Y, s, alpha, eig.coefs[k], eig.intercepts[k])
        theirs = ridge_objectives(X, Y, s, alpha, ref.coef_, ref_b)
        assert np.all(ours <= theirs * (1 + OBJECTIVE_RTOL)), alpha
        assert np.all(_relative(warm.objectives[k], eig.objectives[k]) <= OBJECTIVE_RTOL), alpha
        assert eig.objectives[k] == pytest.approx(ours.sum(), rel=1e-10)


def test_eigh_decomposes_once_for_every_target_and_alpha(monkeypatch):
    """One eigendecomposition serves 4 targets x 6 alphas in a path, and RidgeCV's
    leave-one-out and its refit (before: the refit decomposed X again, 2 calls)."""
    X, Y = _targets(200, 12, T=4, seed=2)
    calls = []
    eigh = np.linalg.eigh
    monkeypatch.setattr(np.linalg, "eigh", lambda A, *a, **k: calls.append(A.shape) or eigh(A, *a, **k))
    path = regularization_path(X, Y, alphas=np.logspace(-2, 3, 6), model="ridge", method="eigh")
    assert calls == [(12, 12)] and path.coefs.shape == (6, 4, 12)
    calls.clear()
    model = tikhon.RidgeCV(alphas=np.logspace(-2, 3, 6), alpha_per_target=True).fit(X, Y)
    assert calls == [(12, 12)] and model.solver_ == "eigh" and model.converged_


@pytest.mark.parametrize("shape", [(30, 5), (12, 25)])
def test_multi_target_leave_one_out_equals_refits(shape):
    """RidgeSpectrum.loo_residuals of T targets at once: column j is target j's own
    leave-one-out residual, which equals refitting without each row."""
    X, Y = _targets(*shape, T=3, seed=5)
    s = np.random.default_rng(5).uniform(0.3, 2.0, shape[0])
    residuals, W, b = RidgeSpectrum(X, Y, s).loo_residuals(0.7)
    assert residuals.shape == (shape[0], 3) and W.shape == (3, shape[1]) and b.shape == (3,)
    for j in range(3):
        single, w, bj = RidgeSpectrum(X, Y[:, j], s).loo_residuals(0.7)
        np.testing.assert_allclose(residuals[:, j], single, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(W[j], w, rtol=1e-9, atol=1e-12)
    for i in range(shape[0]):
        keep = np.arange(shape[0]) != i
        Wi, bi = RidgeSpectrum(X[keep], Y[keep], s[keep]).solve(0.7)
        np.testing.assert_allclose(residuals[i], Y[i] - Wi @ X[i] - bi, rtol=1e-7, atol=1e-9)


def test_spectrum_solves_one_alpha_per_target():
    X, Y = _targets(80, 6, T=3, seed=6)
    alphas = np.array([0.1, 10.0, 1000.0])
    W, b = RidgeSpectrum(X, Y, np.ones(80)).solve(alphas)
    ref = sk.Ridge(alpha=alphas, solver="svd").fit(X, Y)
    np.testing.assert_allclose(W, ref.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b, ref.intercept_, rtol=1e-9)


# ---------------------------------------------------------------- LogisticRegressionCV, K classes
def _sk_logistic_cv(**kwargs):
    kwargs.setdefault("scoring", None)
    return sk.LogisticRegressionCV(l1_ratios=(0,), use_legacy_attributes=True, **kwargs)


def _effective_weights(y, s, class_weight):
    s = np.ones(len(y)) if s is None else s
    if class_weight == "balanced":
        classes, index = np.unique(y, return_inverse=True)
        s = s * (s.sum() / (len(classes) * np.bincount(index, weights=s)))[index]
    return s


def _check_refit(ours, ref, X, y, s=None, class_weight=None, fit_intercept=True):
    """Same C_: the refits solve the same problem; ours is at least as good within 1e-8."""
    np.testing.assert_array_equal(ours.C_, ref.C_)
    C = float(ours.C_[0])
    index = np.searchsorted(ours.classes_, y)
    se = _effective_weights(y, s, class_weight)
    ref_b = ref.intercept_ if fit_intercept else np.zeros(len(ref.classes_))
    mine = multinomial_objective(X, index, se, C, ours.coef_, ours.intercept_)
    theirs = multinomial_objective(X, index, se, C, ref.coef_, ref_b)
    assert mine <= theirs * (1 + OBJECTIVE_RTOL) and _relative(mine, theirs) <= OBJECTIVE_RTOL, (mine, theirs)
    _assert_same_solution(ours.coef_, ours.intercept_, ref.coef_, ref_b, centre=fit_intercept)


@pytest.mark.parametrize("scoring", [None, "neg_log_loss"])
def test_logistic_cv_multinomial_matches_sklearn_on_dna(scoring):
    """dna.scale (3 classes, CSR): same folds and Cs, scikit-learn's choice, fold scores,
    per-class coefs_paths_ and refit (objective within 1e-8). (Before: "Only binary
    classification is supported".)"""
    X, y = _dna()
    Cs = np.logspace(-2, 2, 5)
    folds = StratifiedKFold(3)
    ours = tikhon.LogisticRegressionCV(Cs=Cs, cv=folds, tol=TIGHT, scoring=scoring, n_jobs=2).fit(X, y)
    ref = _sk_logistic_cv(Cs=Cs, cv=folds, tol=1e-10, solver="newton-cg", max_iter=1000, scoring=scoring).fit(X, y)
    K, d = 3, X.shape[1]
    assert ours.coef_.shape == (K, d) and ours.intercept_.shape == (K,) and ours.C_.shape == (K,)
    assert ours.n_iter_.shape == (1, 3, 5) and ours.converged_
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    np.testing.assert_array_equal(ours.Cs_, ref.Cs_)
    assert list(ours.scores_) == list(ref.scores_) == [1, 2, 3]
    atol = 2.5 / (X.shape[0] // 3) if scoring is None else 1e-6  # accuracy: at most 2 rows per fold differ
    for label in ours.classes_:
        np.testing.assert_allclose(ours.scores_[label], ref.scores_[label][..., 0], atol=atol)
        theirs = ref.coefs_paths_[label][:, :, 0, :]  # (n_folds, n_Cs, d + 1), its row of W and intercept
        assert ours.coefs_paths_[label].shape == theirs.shape == (3, 5, d + 1)
        np.testing.assert_allclose(ours.coefs_paths_[label][..., :d], theirs[..., :d], atol=1e-4)
    _check_refit(ours, ref, X, y)


@pytest.mark.parametrize("options", [
    dict(scoring="neg_log_loss", class_weight="balanced"),
    dict(weights=True),
    dict(fit_intercept=False, scoring="neg_log_loss"),
    dict(refit=False, scoring="neg_log_loss"),
])
def test_logistic_cv_multinomial_options_match_sklearn(options):
    """Synthetic K = 4, dense: class weights, sample weights (scores weighted by the test
    rows' weights), no intercept, refit=False (the mean of the folds' best solutions),
    as scikit-learn's LogisticRegressionCV with the same folds."""
    X, y = _multiclass(n=400, d=6, K=4, seed=7)
    options = dict(options)
    s = np.random.default_rng(1).uniform(0.2, 3.0, y.size) if options.pop("weights", False) else None
    Cs = np.logspace(-3, 2, 6)
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    ours = tikhon.LogisticRegressionCV(Cs=Cs, cv=folds, tol=TIGHT, backend="numpy", **options).fit(X, y, s)
    ref = _sk_logistic_cv(Cs=Cs, cv=folds, tol=1e-10, solver="newton-cholesky", max_iter=1000,
                          **options).fit(X, y, sample_weight=s)
    np.testing.assert_allclose(ours.cv_scores_, ref.scores_[0][..., 0], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.C_, ref.C_)
    if options.get("refit", True):
        _check_refit(ours, ref, X, y, s, options.get("class_weight"), options.get("fit_intercept", True))
    else:
        _assert_same_solution(ours.coef_, ours.intercept_, ref.coef_, ref.intercept_, centre=True)
    proba = ours.predict_proba(X)
    assert proba.shape == (400, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_logistic_cv_multinomial_threads_labels_and_tags():
    """Threads change nothing; string labels; the estimator declares multiclass (the
    tag override multi_class=False is gone: scikit-learn's multiclass checks run)."""
    X, y = _multiclass(n=300, K=3, seed=8)
    labels = np.array(["x", "y", "z"])[y]
    one = tikhon.LogisticRegressionCV(Cs=4, cv=3, backend="numpy").fit(X, labels)
    two = tikhon.LogisticRegressionCV(Cs=4, cv=3, backend="numpy", n_jobs=2).fit(X, labels)
    np.testing.assert_array_equal(one.cv_scores_, two.cv_scores_)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    assert set(one.predict(X)) <= {"x", "y", "z"} and one.score(X, labels) > 0.5
    assert all(one.scores_[c] is one.cv_scores_ for c in one.classes_)
    assert tikhon.LogisticRegressionCV().__sklearn_tags__().classifier_tags.multi_class
    assert tikhon.RidgeCV().__sklearn_tags__().target_tags.multi_output


# ---------------------------------------------------------------- RidgeCV, T targets
@pytest.mark.parametrize("alpha_per_target", [False, True])
@pytest.mark.parametrize("scoring", [None, "r2", "neg_mean_absolute_error"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(120, 10), (25, 40)])
def test_ridge_cv_multi_target_matches_sklearn(alpha_per_target, scoring, weighted, shape):
    """Leave-one-out for T = 3 targets at once: scikit-learn's alpha_ (one per target with
    alpha_per_target), best_score_ and fit; each target's objective within 1e-8.
    (Before: RidgeCV refused a 2-D y.)"""
    X, Y = _targets(*shape, T=3, seed=9)
    s = np.random.default_rng(9).uniform(0.2, 2.0, shape[0]) if weighted else None
    alphas = np.logspace(-2, 3, 11)
    ours = tikhon.RidgeCV(alphas=alphas, scoring=scoring, alpha_per_target=alpha_per_target).fit(X, Y, s)
    ref = sk.RidgeCV(alphas=alphas, scoring=scoring, alpha_per_target=alpha_per_target).fit(X, Y, sample_weight=s)
    if alpha_per_target:
        assert ours.alpha_.shape == (3,) and ours.best_score_.shape == (3,) and ours.cv_scores_.shape == (1, 11, 3)
        np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    else:
        assert ours.alpha_ == ref.alpha_ and ours.cv_scores_.shape == (1, 11)
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=1e-8)  # wide: 1.6e-9 apart
    assert ours.coef_.shape == (3, shape[1]) and ours.intercept_.shape == (3,)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9 * max(1, np.abs(ref.coef_).max()))
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-7, atol=1e-9)
    w = np.ones(shape[0]) if s is None else s
    mine = ridge_objectives(X, Y, w, ours.alpha_, ours.coef_, ours.intercept_)
    theirs = ridge_objectives(X, Y, w, ref.alpha_, ref.coef_, ref.intercept_)
    assert np.all(_relative(mine, theirs) <= OBJECTIVE_RTOL)
    assert ours.predict(X).shape == (shape[0], 3)


def test_ridge_cv_alpha_per_target_on_dna():
    """dna.scale's one-hot classes as 3 targets (CSR 2000 x 180): RidgeCV(alpha_per_target=True)
    picks scikit-learn's alpha for each, and the refit's objectives agree within 1e-8."""
    X, y = _dna()
    Y = (y[:, None] == np.array([1, 2, 3])).astype(np.float64)
    alphas = np.logspace(-2, 4, 25)
    ours = tikhon.RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
    ref = sk.RidgeCV(alphas=alphas, alpha_per_target=True).fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, ref.alpha_)
    assert len(set(ours.alpha_)) > 1  # the targets do want different penalties here
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=1e-9)
    mine = ridge_objectives(X, Y, np.ones(len(y)), ours.alpha_, ours.coef_, ours.intercept_)
    theirs = ridge_objectives(X, Y, np.ones(len(y)), ref.alpha_, ref.coef_, ref.intercept_)
    assert np.all(_relative(mine, theirs) <= OBJECTIVE_RTOL)
    assert ours.converged_ and ours.refit_path_.lams.shape == (1, 3)


def test_ridge_cv_multi_target_kfold_equals_gridsearch():
    """k-fold, dense, T = 3: every fold's R^2 (averaged over targets, as r2_score) equals
    GridSearchCV(Ridge)'s; alpha_per_target with cv set is refused, as scikit-learn."""
    X, Y = _targets(200, 8, T=3, seed=10)
    alphas = np.logspace(-2, 4, 9)
    folds = KFold(4, shuffle=True, random_state=1)
    ours = tikhon.RidgeCV(alphas=alphas, cv=folds, n_jobs=2).fit(X, Y)
    grid = GridSearchCV(sk.Ridge(), {"alpha": alphas}, cv=folds).fit(X, Y)
    scores = np.array([grid.cv_results_[f"split{i}_test_score"] for i in range(4)])
    np.testing.assert_allclose(ours.cv_scores_, scores, rtol=1e-10)
    assert ours.alpha_ == grid.best_params_["alpha"]
    assert ours.paths_[0].coefs.shape == (9, 3, 8)
    scored = tikhon.RidgeCV(alphas=alphas, cv=folds, scoring="neg_mean_squared_error").fit(X, Y)
    grid = GridSearchCV(sk.Ridge(), {"alpha": alphas}, cv=folds, scoring="neg_mean_squared_error").fit(X, Y)
    assert scored.best_score_ == pytest.approx(grid.best_score_, rel=1e-10)
    with pytest.raises(ValueError, match="cv!=None and alpha_per_target=True are incompatible"):
        tikhon.RidgeCV(cv=3, alpha_per_target=True).fit(X, Y)
    with pytest.raises(ValueError, match="alpha_per_target must be True or False"):
        tikhon.RidgeCV(alpha_per_target="yes").fit(X, Y)


def test_ridge_cv_one_column_and_one_target():
    """A y of one column fits the 1-D target (coef_ (d,), a float intercept_ and alpha_);
    alpha_per_target with one target is the plain choice, as scikit-learn."""
    X, Y = _targets(100, 5, T=1, seed=11)
    column = tikhon.RidgeCV(alpha_per_target=True).fit(X, Y)
    flat = tikhon.RidgeCV().fit(X, Y.ravel())
    assert column.coef_.shape == (5,) and isinstance(column.intercept_, float) and isinstance(column.alpha_, float)
    np.testing.assert_array_equal(column.coef_, flat.coef_)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DataConversionWarning: RidgeCV is multi-output
        tikhon.RidgeCV().fit(X, Y)
