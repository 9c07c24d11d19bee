"""LogisticRegressionCV / RidgeCV make scikit-learn's choices on the same folds."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import load_shared
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold

import tikhon

TIGHT = 1e-8  # both sides solve to this gradient tolerance, so their choices coincide


def _sk_logistic_cv(**kwargs):
    # l1_ratios=(0,) is the l2 penalty; explicit scoring/attributes silence scikit-learn 1.8+'s notices
    kwargs.setdefault("scoring", None)
    return sk.LogisticRegressionCV(l1_ratios=(0,), use_legacy_attributes=True, max_iter=1000, **kwargs)


def _sk_scores(ref, positive):
    """scikit-learn's fold scores (n_folds, n_Cs): an explicit l1_ratios keeps a trailing axis."""
    scores = ref.scores_[positive]
    return scores.reshape(scores.shape[:2])


# a modest grid and few folds keep it fast; scikit-learn's fastest exact solver per data set
@pytest.mark.parametrize("name, sk_solver, Cs, n_folds", [
    ("a9a", "newton-cholesky", np.logspace(-1.5, 1.5, 4), 2),
    ("reuters", "newton-cg", np.logspace(-1, 2, 4), 3),
])
def test_logistic_cv_picks_sklearns_C(name, sk_solver, Cs, n_folds):
    """Same folds, same grid: the same C_, the same fold accuracies, and the same refit."""
    X, y = load_shared(name)
    folds = StratifiedKFold(n_folds)
    ours = tikhon.LogisticRegressionCV(Cs=Cs, cv=folds, tol=TIGHT, n_jobs=2).fit(X, y)
    ref = _sk_logistic_cv(Cs=Cs, cv=folds, tol=TIGHT, solver=sk_solver).fit(X, y)
    n_test = X.shape[0] // n_folds
    np.testing.assert_allclose(ours.cv_scores_, _sk_scores(ref, 1), atol=2.5 / n_test)  # at most 2 rows differ
    assert ours.C_[0] == ref.C_[0]
    np.testing.assert_array_equal(ours.Cs_, ref.Cs_)
    np.testing.assert_array_equal(ours.classes_, ref.classes_)
    assert ours.coef_.shape == ref.coef_.shape and ours.intercept_.shape == (1,)
    assert ours.n_iter_.shape == (1, n_folds, 4)
    assert ours.coefs_paths_[1].shape == (n_folds, 4, X.shape[1] + 1)
    # the refit solves scikit-learn's problem at C_: same predictions but for margins near 0
    agree = np.mean(ours.predict(X) == ref.predict(X))
    assert agree > 0.999
    assert ours.converged_


def _classification(n=240, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(X @ rng.standard_normal(d) + 0.8 * rng.standard_normal(n) > 0.2, "pos", "neg")
    return X, y


@pytest.mark.parametrize("options", [
    dict(scoring="neg_log_loss"),
    dict(scoring="roc_auc", class_weight="balanced"),
    dict(weights=True),
    dict(refit=False, scoring="neg_log_loss"),
])
def test_logistic_cv_options_match_sklearn(options):
    """Scorers, class weights, sample weights (scores weighted by the test rows' weights)
    and refit=False (mean of the folds' best solutions) as scikit-learn."""
    X, y = _classification()
    options = dict(options)
    s = np.random.default_rng(1).uniform(0.2, 3.0, y.size) if options.pop("weights", False) else None
    Cs = np.logspace(-3, 2, 8)
    folds = StratifiedKFold(4, shuffle=True, random_state=0)
    ours = tikhon.LogisticRegressionCV(Cs=Cs, cv=folds, tol=1e-10, backend="numpy", **options).fit(X, y, s)
    ref = _sk_logistic_cv(Cs=Cs, cv=folds, tol=1e-10, **options).fit(X, y, sample_weight=s)
    np.testing.assert_allclose(ours.cv_scores_, _sk_scores(ref, "pos"), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(ours.C_, ref.C_)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-4, atol=1e-5)


def test_logistic_cv_default_folds_threads_and_api():
    """cv=None is 5-fold stratified; threads change nothing; a scikit-learn estimator."""
    X, y = _classification(n=300, seed=2)
    one = tikhon.LogisticRegressionCV(Cs=6, backend="numpy").fit(X, y)
    two = clone(one).set_params(n_jobs=2).fit(X, y)
    assert one.cv_scores_.shape == (5, 6) and one.train_scores_.shape == (5, 6)
    np.testing.assert_array_equal(one.cv_scores_, two.cv_scores_)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    np.testing.assert_allclose(one.Cs_, np.logspace(-4, 4, 6))
    assert set(one.predict(X)) <= {"neg", "pos"} and 0.5 < one.score(X, y) <= 1.0
    assert one.predict_proba(X).shape == (300, 2)
    ref = _sk_logistic_cv(Cs=6, tol=1e-6).fit(X, y)
    np.testing.assert_array_equal(one.C_, ref.C_)
    assert one.get_params()["Cs"] == 6


def test_logistic_cv_bad_input():
    """Bad grids and one class are refused; so is a training fold that lacks a class (no
    minimizer: that class's intercept runs off to -inf), naming the fold and the class
    (three classes were refused as "binary only" before; a fold without a class ran on)."""
    from sklearn.model_selection import KFold

    X, y = _classification(n=60)
    with pytest.raises(ValueError, match="C must be"):
        tikhon.LogisticRegressionCV(Cs=[1.0, 0.0]).fit(X, y)
    with pytest.raises(ValueError, match="at least two classes"):
        tikhon.LogisticRegressionCV().fit(X, np.zeros(60))
    labels = np.repeat([0, 1, 2], 20)  # unshuffled KFold(3): each training fold misses one class
    with pytest.raises(ValueError, match="fold 0: its training rows hold no sample .* of class 0"):
        tikhon.LogisticRegressionCV(Cs=2, cv=KFold(3)).fit(X, labels)


# (cal_housing with cv=5 is left out: scikit-learn's sparse_cg grid search alone takes ~8 s)
@pytest.mark.parametrize("name, cv", [("abalone", None), ("abalone", 5), ("cal_housing", None)])
def test_ridge_cv_picks_sklearns_alpha(name, cv):
    """Leave-one-out (cv=None, efficient, via one eigendecomposition) and 5-fold: sklearn's alpha_."""
    X, y = load_shared(name)
    alphas = np.logspace(-3, 3, 13)
    ours = tikhon.RidgeCV(alphas=alphas, cv=cv).fit(X, y)
    ref = sk.RidgeCV(alphas=alphas, cv=cv).fit(X, y)
    assert ours.alpha_ == ref.alpha_
    # scikit-learn's k-fold fits sparse data by sparse_cg (tol 1e-4): scores agree to that
    assert ours.best_score_ == pytest.approx(ref.best_score_, rel=1e-9 if cv is None else 1e-3)
    assert ours.cv_method_ == ("loo" if cv is None else "kfold")
    assert ours.cv_scores_.shape == ((1, 13) if cv is None else (5, 13))


@pytest.mark.parametrize("scoring", [None, "r2", "neg_mean_absolute_error"])
@pytest.mark.parametrize("weighted", [False, True])
def test_ridge_cv_loo_scores_equal_sklearn(scoring, weighted):
    """Dense data, weights: the LOO scores of every alpha, the choice and the fit, as scikit-learn."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((120, 30)) + 1.0
    y = X @ rng.standard_normal(30) * 0.3 + rng.standard_normal(120) + 5.0
    s = rng.uniform(0.2, 2.0, 120) if weighted else None
    alphas = np.logspace(-2, 3, 11)
    ours = tikhon.RidgeCV(alphas=alphas, scoring=scoring).fit(X, y, sample_weight=s)
    ref = sk.RidgeCV(alphas=alphas, scoring=scoring).fit(X, y, sample_weight=s)
    assert ours.alpha_ == ref.alpha_
    assert ours.best_score_ == pytest.approx(ref.best_score_, rel=1e-9)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-8, atol=1e-10)
    assert ours.intercept_ == pytest.approx(ref.intercept_, rel=1e-8)


def test_ridge_cv_kfold_dense_equals_gridsearch():
    """k-fold on dense data (scikit-learn solves it exactly there): every fold's R^2 too."""
    from sklearn.model_selection import GridSearchCV

    rng = np.random.default_rng(4)
    X = rng.standard_normal((200, 8))
    y = X @ rng.standard_normal(8) + rng.standard_normal(200)
    alphas = np.logspace(-2, 4, 9)
    folds = KFold(4, shuffle=True, random_state=1)
    ours = tikhon.RidgeCV(alphas=alphas, cv=folds, n_jobs=2).fit(X, y)
    grid = GridSearchCV(sk.Ridge(), {"alpha": alphas}, cv=folds).fit(X, y)
    scores = np.array([grid.cv_results_[f"split{i}_test_score"] for i in range(4)])
    np.testing.assert_allclose(ours.cv_scores_, scores, rtol=1e-10)
    assert ours.alpha_ == grid.best_params_["alpha"]
    assert ours.predict(X).shape == (200,) and ours.score(X, y) > 0.5


def test_cv_estimators_need_y_and_report_iterations():
    X, y = _classification(n=60)
    for est in (tikhon.LogisticRegressionCV(Cs=2, cv=3), tikhon.RidgeCV()):
        with pytest.raises(ValueError, match="requires y to be passed"):
            est.fit(X, None)
    ridge = tikhon.RidgeCV().fit(X, X[:, 0])
    assert ridge.solver_ == "eigh" and ridge.n_iter_ == 1  # one direct solve
