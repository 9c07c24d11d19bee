"""scikit-learn's parameters and conventions on tikhon.LogisticRegressionCV, tikhon.RidgeCV
and tikhon.regularization_path (issue 17): each parameter's meaning against scikit-learn's
CV estimator with the same arguments (the chosen C/alpha equal, coefficients close), the
fitted attributes in scikit-learn's shapes and dtypes, the refusals that name what tikhon
solves, ``clone``/``get_params`` round trips, pickling and model files.

Before: scikit-learn's ``l1_ratios``, ``dual``, ``penalty``, ``verbose``,
``intercept_scaling``, ``random_state`` and ``use_legacy_attributes`` (LogisticRegressionCV)
and ``gcv_mode``, ``store_cv_results`` (RidgeCV) were a ``TypeError``; scikit-learn's
solver names, ``max_iter=0``/``None`` and RandomState objects were refused; the refits
stored ``coef_`` in float64 for float32 input and RidgeCV's ``n_iter_`` as an int and
``intercept_`` as a Python float; the path refused ``"newton-cg"`` and ``max_iter=0``.
"""
from __future__ import annotations

import inspect
import logging
import pickle
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.linear_model as sk
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.utils.estimator_checks import parametrize_with_checks

import tikhon

LRCV, RCV = tikhon.LogisticRegressionCV, tikhon.RidgeCV
TIGHT = 1e-10
FOLDS = StratifiedKFold(3, shuffle=True, random_state=0)
CS = np.logspace(-3, 2, 6)


@pytest.fixture(scope="module")
def binary():
    return make_classification(n_samples=240, n_features=6, n_informative=4, random_state=0)


@pytest.fixture(scope="module")
def three_classes():
    return make_classification(n_samples=240, n_features=6, n_informative=4, n_classes=3, random_state=1)


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=120, n_features=8, noise=5.0, random_state=0)
    return X, y


def _sk_lrcv(X, y, **params):
    """scikit-learn's LogisticRegressionCV, tight, with its notices silenced the way
    tikhon's defaults read (l1_ratios None, legacy attributes, accuracy)."""
    params = {"Cs": CS, "cv": FOLDS, "solver": "newton-cholesky", "tol": 1e-10, "max_iter": 1000,
              "l1_ratios": None, "use_legacy_attributes": True, "scoring": None, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # l1_ratios=None is deprecated in scikit-learn 1.8+
        return sk.LogisticRegressionCV(**params).fit(X, y)


def _lrcv(X, y, **params):
    params = {"Cs": CS, "cv": FOLDS, "tol": TIGHT, **params}
    return LRCV(**params).fit(X, y)


def _same_layout(ours, ref, attr):
    """``attr`` has scikit-learn's type, shape and dtype (dicts: the same keys, each value alike)."""
    a, b = getattr(ours, attr), getattr(ref, attr)
    assert type(a) is type(b), (attr, type(a), type(b))
    if isinstance(a, dict):
        assert list(a) == list(b), attr
        for key in a:
            assert np.shape(a[key]) == np.shape(b[key]) and a[key].dtype == b[key].dtype, (attr, key)
    elif isinstance(a, np.ndarray):
        assert a.shape == b.shape and a.dtype == b.dtype, (attr, a.shape, b.shape, a.dtype, b.dtype)


# ---------------------------------------------------------------- signatures
@pytest.mark.parametrize("ours, theirs", [(LRCV, sk.LogisticRegressionCV), (RCV, sk.RidgeCV)])
def test_signature_holds_sklearns_parameters(ours, theirs):
    """Every parameter of the installed scikit-learn's CV estimator is one of tikhon's."""
    missing = set(inspect.signature(theirs).parameters) - set(inspect.signature(ours).parameters)
    assert not missing


def test_sklearns_own_parameters_run_unchanged(binary):
    """scikit-learn's defaults, sentinels included (l1_ratios/scoring/use_legacy_attributes
    "warn", penalty "deprecated"), as a parameter dict: tikhon fits them and chooses C as
    scikit-learn does."""
    X, y = binary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        params = sk.LogisticRegressionCV(Cs=CS, cv=FOLDS).get_params()
        ref = sk.LogisticRegressionCV(**params).fit(X, y)
    ours = LRCV(**params).fit(X, y)
    assert ours.C_[0] == ref.C_[0]
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-3, atol=1e-3)  # scikit-learn stops at tol 1e-4
    ridge = sk.RidgeCV().get_params()
    assert RCV(**ridge).fit(X, y.astype(float)).alpha_ == sk.RidgeCV(**ridge).fit(X, y.astype(float)).alpha_


# ---------------------------------------------------------------- LogisticRegressionCV
@pytest.mark.parametrize("options, sk_options", [
    (dict(solver="newton-cg"), dict(solver="newton-cg")),
    (dict(solver="newton-cholesky"), dict(solver="newton-cholesky")),
    (dict(solver="lbfgs"), dict(solver="lbfgs")),
    (dict(penalty="l2"), dict()),
    (dict(l1_ratios=(0,)), dict(l1_ratios=(0,))),
    (dict(l1_ratios=[0.0, 0.0]), dict(l1_ratios=[0.0, 0.0])),
    (dict(dual=False, intercept_scaling=3.0), dict(dual=False, intercept_scaling=3.0)),
    (dict(class_weight="balanced", scoring="neg_log_loss"), dict(class_weight="balanced", scoring="neg_log_loss")),
    (dict(class_weight={0: 2.0}), dict(class_weight={0: 2.0})),
    (dict(refit=False), dict(refit=False)),
    (dict(fit_intercept=False, scoring="roc_auc"), dict(fit_intercept=False, scoring="roc_auc")),
    (dict(n_jobs=2, max_iter=None), dict(n_jobs=2)),
    (dict(use_legacy_attributes=False), dict(use_legacy_attributes=False)),
    (dict(use_legacy_attributes=False, l1_ratios=(0, 0)), dict(use_legacy_attributes=False, l1_ratios=(0, 0))),
])
def test_logistic_cv_parameter_matches_sklearn(binary, options, sk_options):
    """The same arguments: the same C_, fold scores and coefficients, and every attribute
    in scikit-learn's layout (C_, scores_, coefs_paths_, n_iter_, coef_, intercept_, Cs_)."""
    X, y = binary
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-learn: l1_ratios only used for elasticnet
        ref = _sk_lrcv(X, y, **sk_options)
    ours = _lrcv(X, y, **options)
    np.testing.assert_allclose(ours.C_, ref.C_)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.intercept_, ref.intercept_, rtol=1e-4, atol=1e-5)
    for attr in ("C_", "scores_", "coefs_paths_", "n_iter_", "coef_", "intercept_", "Cs_"):
        _same_layout(ours, ref, attr)
    scores = ours.scores_ if isinstance(ours.scores_, np.ndarray) else ours.scores_[1]
    np.testing.assert_allclose(scores, ref.scores_ if isinstance(ref.scores_, np.ndarray) else ref.scores_[1],
                               rtol=1e-5, atol=1e-7)
    if ours.refit:
        assert ours.converged_ and ours.solver_ in ("newton", "newton_cholesky", "lbfgs")


@pytest.mark.parametrize("legacy", [True, False])
def test_logistic_cv_multinomial_layout_matches_sklearn(three_classes, legacy):
    """Three classes: C_ per class (legacy) or a float, coefs_paths_ per class or one
    (n_folds, 1, n_Cs, K, n_dof) array, as scikit-learn; the same choice and refit."""
    X, y = three_classes
    ref = _sk_lrcv(X, y, use_legacy_attributes=legacy)
    ours = _lrcv(X, y, use_legacy_attributes=legacy)
    np.testing.assert_allclose(ours.C_, ref.C_)
    for attr in ("C_", "scores_", "coefs_paths_", "n_iter_", "coef_", "intercept_"):
        _same_layout(ours, ref, attr)
    # tikhon's W is the symmetric minimizer as scikit-learn's: probabilities agree
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-5)


def test_logistic_cv_refit_is_a_logistic_regression(binary):
    """The refit is tikhon.LogisticRegression's fit at C_ (its conventions: coef_ and
    intercept_ in X's dtype, its report), started from the folds' mean solution."""
    X, y = binary
    for dtype in (np.float64, np.float32):
        Xd = X.astype(dtype)
        ours = _lrcv(Xd, y, solver="newton-cg")
        alone = tikhon.LogisticRegression(C=ours.C_[0], solver="newton-cg", tol=TIGHT).fit(Xd, y)
        assert ours.coef_.dtype == ours.intercept_.dtype == alone.coef_.dtype == dtype
        np.testing.assert_allclose(ours.coef_, alone.coef_, rtol=1e-4, atol=1e-6)
        assert ours.solver_ == "newton" and ours.backend_ == alone.backend_
        assert ours.objective_ == pytest.approx(alone.objective_, rel=1e-8) and ours.duality_gap_ <= TIGHT
        assert ours.n_iter_.dtype == np.int32 and ours.n_iter_.shape == (1, 3, CS.size)
    no_refit = _lrcv(X.astype(np.float32), y, refit=False)
    assert no_refit.coef_.dtype == no_refit.intercept_.dtype == np.float32


def test_logistic_cv_max_iter_zero_and_none(binary):
    """max_iter=0 returns every fold's start (zero coefficients, 0 iterations, as
    scikit-learn's n_iter_) with a ConvergenceWarning; None is the default cap."""
    X, y = binary
    with pytest.warns(ConvergenceWarning, match="failed to converge after 0 iterations|did not reach tol"):
        ours = _lrcv(X, y, max_iter=0, solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = _sk_lrcv(X, y, max_iter=0, solver="lbfgs")
    np.testing.assert_array_equal(ours.n_iter_, ref.n_iter_)
    assert not np.any(ours.coefs_paths_[1][..., :-1]) and not np.any(ours.coef_) and not ours.converged_
    default, none = _lrcv(X, y), _lrcv(X, y, max_iter=None)
    np.testing.assert_array_equal(default.n_iter_, none.n_iter_)
    np.testing.assert_array_equal(default.coef_, none.coef_)


def test_logistic_cv_dual_and_random_state(binary):
    """dual=True is tikhon's dual solver (dual_cd, CSR): the same C_ as the primal; the
    shuffles follow random_state (an int or a RandomState; equal seeds, equal fits)."""
    if "cython" not in tikhon.available_backends():
        pytest.skip("dual_cd needs the compiled extension")
    X, y = binary
    Xs = sp.csr_matrix(X)
    dual = _lrcv(Xs, y, dual=True, solver="dual_cd", random_state=3)
    primal = _lrcv(Xs, y)
    np.testing.assert_allclose(dual.C_, primal.C_)
    np.testing.assert_allclose(dual.coef_, primal.coef_, rtol=1e-3, atol=1e-4)
    one = _lrcv(Xs, y, dual=True, solver="dual_cd", random_state=np.random.RandomState(5), tol=1e-4)
    two = _lrcv(Xs, y, dual=True, solver="dual_cd", random_state=np.random.RandomState(5), tol=1e-4)
    other = _lrcv(Xs, y, dual=True, solver="dual_cd", random_state=np.random.RandomState(6), tol=1e-4)
    np.testing.assert_array_equal(one.coefs_paths_[1], two.coefs_paths_[1])
    assert not np.array_equal(one.coefs_paths_[1], other.coefs_paths_[1])  # the seed is used


def test_logistic_cv_n_jobs(binary):
    """n_jobs: fold threads (scikit-learn's meaning); -1 and 2 give the results of 1; 0 is refused."""
    X, y = binary
    one = _lrcv(X, y)
    for n_jobs in (2, -1):
        other = _lrcv(X, y, n_jobs=n_jobs)
        np.testing.assert_array_equal(one.cv_scores_, other.cv_scores_)
        np.testing.assert_array_equal(one.coef_, other.coef_)
    with pytest.raises(ValueError, match="n_jobs must be None, a positive integer"):
        _lrcv(X, y, n_jobs=0)


_FOLD_LINE = re.compile(r"tikhon LogisticRegressionCV: fold (\d)/3, C=([0-9.e+-]+): (\w+), (\d+) iteration")


def test_logistic_cv_verbose_logs_folds_and_refit(binary, caplog):
    """verbose=1: an INFO line per fold and C on the "tikhon" logger (also from fold
    threads) and the choice; verbose=2 adds the refit's per-iteration lines."""
    X, y = binary
    with caplog.at_level(logging.INFO, logger="tikhon"):
        model = _lrcv(X, y, verbose=1, n_jobs=2)
    lines = [_FOLD_LINE.match(r.getMessage()) for r in caplog.records if r.name == "tikhon"]
    points = [m for m in lines if m]
    assert len(points) == 3 * CS.size
    assert {(int(m.group(1)), float(m.group(2))) for m in points} == {(f, float(f"{c:.6g}"))
                                                                       for f in (1, 2, 3) for c in CS}
    assert any("C_ = " in r.getMessage() for r in caplog.records)
    assert not any(": iteration " in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tikhon"):
        again = _lrcv(X, y, verbose=2)
    assert any(re.match(r"tikhon newton(_cholesky)?: iteration \d+", r.getMessage()) for r in caplog.records)
    np.testing.assert_array_equal(model.coef_, again.coef_)  # verbose changes nothing fitted
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tikhon"):
        _lrcv(X, y)
    assert not caplog.records


@pytest.mark.parametrize("params, message", [
    (dict(penalty="l1"), "penalty='l1' is not what tikhon solves: tikhon fits the L2 penalty only"),
    (dict(penalty="elasticnet"), "penalty='elasticnet' is not what tikhon solves"),
    (dict(penalty=None), "penalty=None \\(no penalty\\) is not what tikhon solves"),
    (dict(l1_ratios=[0.0, 0.5]), "l1_ratios=\\[0.0, 0.5\\] asks for an L1 part: tikhon fits the L2 penalty only"),
    (dict(l1_ratios=0.0), "l1_ratios=0.0 asks for an L1 part"),
    (dict(Cs=[1.0, np.inf]), "Cs holds inf: C=inf is no penalty"),
    (dict(solver="liblinear"), "unknown solver 'liblinear' \\(scikit-learn's, with no tikhon counterpart\\)"),
    (dict(solver="saga"), "unknown solver 'saga' \\(scikit-learn's"),
    (dict(solver="sag"), "unknown solver 'sag' \\(scikit-learn's"),
    (dict(dual=True), "dual=True: tikhon's dual formulation is solver='dual_cd'"),
    (dict(max_iter=-1), "max_iter must be None or a non-negative integer"),
    (dict(intercept_scaling=0.0), "intercept_scaling must be a finite positive number"),
    (dict(use_legacy_attributes="yes"), "use_legacy_attributes must be True or False"),
    (dict(refit="yes"), "refit must be True or False"),
    (dict(random_state=-1), "random_state must be None or a non-negative integer"),
    (dict(verbose=-1), "verbose must be a non-negative integer"),
    (dict(tol=0.0), "tol must be a finite positive number"),
])
def test_logistic_cv_refusals(binary, params, message):
    """What tikhon does not solve, or a malformed value: one line naming it, before any fit."""
    X, y = binary
    with pytest.raises(ValueError, match=message) as info:
        LRCV(cv=3, **params).fit(X, y)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- RidgeCV
@pytest.mark.parametrize("gcv_mode", [None, "auto", "svd", "eigen"])
@pytest.mark.parametrize("shape", [(120, 8), (30, 60)])
def test_ridge_cv_gcv_mode_matches_sklearn(gcv_mode, shape):
    """Every gcv_mode: scikit-learn's alpha_, best_score_ and fit (tikhon decomposes the
    smaller Gram matrix for all of them; the leave-one-out errors are the same)."""
    X, y = make_regression(n_samples=shape[0], n_features=shape[1], noise=5.0, random_state=2)
    alphas = np.logspace(-2, 3, 11)
    ours = RCV(alphas=alphas, gcv_mode=gcv_mode).fit(X, y)
    ref = sk.RidgeCV(alphas=alphas, gcv_mode=gcv_mode).fit(X, y)
    assert ours.alpha_ == ref.alpha_
    assert ours.best_score_ == pytest.approx(ref.best_score_, rel=1e-8)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("scoring", [None, "r2"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("targets", ["1-D", "one column", "three", "three per target"])
def test_ridge_cv_store_cv_results_matches_sklearn(regression, scoring, weighted, targets):
    """cv_results_: scikit-learn's shape and values (weighted squared LOO errors, or the
    LOO predictions with a scorer), in X's dtype; alpha_ and best_score_ as scikit-learn."""
    X, y = regression
    Y = {"1-D": y, "one column": y[:, None], "three": np.column_stack([y, 2 * y + X[:, 0], -y]),
         "three per target": np.column_stack([y, 2 * y + 30 * X[:, 0], -y])}[targets]
    per_target = targets == "three per target"
    s = np.random.default_rng(1).uniform(0.2, 3.0, y.size) if weighted else None
    alphas = np.logspace(-2, 3, 6)
    ours = RCV(alphas=alphas, scoring=scoring, store_cv_results=True, alpha_per_target=per_target).fit(X, Y, s)
    ref = sk.RidgeCV(alphas=alphas, scoring=scoring, store_cv_results=True, alpha_per_target=per_target).fit(X, Y, s)
    assert ours.cv_results_.shape == ref.cv_results_.shape and ours.cv_results_.dtype == ref.cv_results_.dtype
    np.testing.assert_allclose(ours.cv_results_, ref.cv_results_, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(ours.alpha_, ref.alpha_)
    np.testing.assert_allclose(ours.best_score_, ref.best_score_, rtol=1e-8)


def test_ridge_cv_fitted_conventions_are_ridges(regression):
    """coef_/intercept_ in X's dtype, intercept_ a NumPy scalar (1-D y) or (T,), n_iter_ an
    int32 array of one entry per target, as tikhon.Ridge and scikit-learn's RidgeCV."""
    X, y = regression
    for dtype in (np.float64, np.float32):
        Xd, yd = X.astype(dtype), y.astype(dtype)
        for cv in (None, 3):
            ours = RCV(cv=cv).fit(Xd, yd)
            ridge = tikhon.Ridge(alpha=ours.alpha_).fit(Xd, yd)
            assert type(ours.intercept_) is type(ridge.intercept_) is dtype
            assert ours.coef_.dtype == ridge.coef_.dtype == dtype and ours.coef_.shape == (8,)
            assert ours.n_iter_.dtype == np.int32 and ours.n_iter_.shape == (1,)
            np.testing.assert_allclose(ours.coef_, ridge.coef_, rtol=1e-5 if dtype == np.float32 else 1e-8)
        ref = sk.RidgeCV().fit(Xd, yd)
        assert type(ref.intercept_) is dtype and ref.coef_.dtype == dtype
    Y = np.column_stack([y, -y])
    multi = RCV().fit(X, Y)
    assert multi.intercept_.shape == (2,) and multi.coef_.shape == (2, 8) and multi.n_iter_.shape == (2,)
    assert multi.solver_ == "eigh" and np.all(multi.n_iter_ == 1)


@pytest.mark.parametrize("solver, name", [("cholesky", "newton_cholesky"), ("sparse_cg", "newton"),
                                          ("lbfgs", "lbfgs"), ("newton", "newton")])
def test_ridge_cv_solver_names_and_max_iter(regression, solver, name):
    """scikit-learn's Ridge solver names on k-fold paths and the refit (sparse X: no closed
    form), scikit-learn's choice; max_iter=None is the default cap, 0 the start."""
    X, y = regression
    Xs = sp.csr_matrix(np.hstack([X, np.zeros((X.shape[0], 400))]))  # wide sparse: warm-started paths
    folds = KFold(3, shuffle=True, random_state=0)
    alphas = np.logspace(-1, 3, 5)
    ours = RCV(alphas=alphas, cv=folds, solver=solver, tol=1e-12, max_iter=None).fit(Xs, y)
    ref = sk.RidgeCV(alphas=alphas, cv=folds).fit(X, y)
    assert ours.alpha_ == ref.alpha_ and ours.solver_ == name
    assert ours.best_score_ == pytest.approx(ref.best_score_, rel=1e-6)
    with pytest.warns(ConvergenceWarning):
        start = RCV(alphas=alphas, cv=folds, solver=solver, max_iter=0).fit(Xs, y)
    assert not np.any(start.coef_) and start.n_iter_[0] == 0


@pytest.mark.parametrize("params, message", [
    (dict(gcv_mode="cholesky"), "gcv_mode must be one of None, 'auto', 'svd', 'eigen'"),
    (dict(store_cv_results=True, cv=3), "cv!=None and store_cv_results=True are incompatible"),
    (dict(alpha_per_target=True, cv=3), "cv!=None and alpha_per_target=True are incompatible"),
    (dict(store_cv_results="yes"), "store_cv_results must be True or False"),
    (dict(solver="svd"), "unknown solver 'svd' \\(scikit-learn's, with no tikhon counterpart\\)"),
    (dict(solver="lsqr"), "unknown solver 'lsqr' \\(scikit-learn's"),
    (dict(max_iter=-2), "max_iter must be None or a non-negative integer"),
    (dict(n_jobs=0), "n_jobs must be None, a positive integer"),
])
def test_ridge_cv_refusals(regression, params, message):
    X, y = regression
    with pytest.raises(ValueError, match=message) as info:
        RCV(**params).fit(X, y)
    assert "\n" not in str(info.value)


# ---------------------------------------------------------------- regularization_path
@pytest.mark.parametrize("model, alias, name", [("logistic", "newton-cg", "newton"),
                                                ("logistic", "newton-cholesky", "newton_cholesky"),
                                                ("logistic", "lbfgs", "lbfgs"),
                                                ("ridge", "cholesky", "newton_cholesky"),
                                                ("ridge", "sparse_cg", "newton")])
def test_path_takes_sklearns_solver_names(binary, model, alias, name):
    """scikit-learn's names run tikhon's solver of the same algorithm: the same path."""
    X, y = binary
    target = y if model == "logistic" else X[:, 0] + y
    grid = {"Cs": [0.1, 1.0]} if model == "logistic" else {"alphas": [0.1, 1.0], "method": "warm_start"}
    ours = tikhon.regularization_path(X, target, model=model, solver=alias, tol=TIGHT, **grid)
    named = tikhon.regularization_path(X, target, model=model, solver=name, tol=TIGHT, **grid)
    assert ours.solver == name
    np.testing.assert_array_equal(ours.coefs, named.coefs)


def test_path_max_iter_zero_none_and_refusals(binary):
    """max_iter=0: every point is the start (zero coefficients, the best constant
    intercept), with a ConvergenceWarning, for every solver (L-BFGS too); None is 1000."""
    X, y = binary
    for solver in ("lbfgs", "newton-cg", "newton_cholesky"):
        with pytest.warns(ConvergenceWarning, match="within max_iter=0"):
            path = tikhon.regularization_path(X, y, Cs=[0.1, 1.0], solver=solver, max_iter=0)
        assert not np.any(path.coefs) and np.all(path.n_iter == 0)
        p = np.mean(y == 1)
        np.testing.assert_allclose(path.intercepts, np.log(p / (1 - p)))
    np.testing.assert_array_equal(tikhon.regularization_path(X, y, Cs=3, max_iter=None).coefs,
                                  tikhon.regularization_path(X, y, Cs=3).coefs)
    with pytest.raises(ValueError, match="unknown solver 'saga' \\(scikit-learn's, with no tikhon counterpart\\)"):
        tikhon.regularization_path(X, y, solver="saga")
    with pytest.raises(ValueError, match="unknown solver 'svd' \\(scikit-learn's"):
        tikhon.regularization_path(X, X[:, 0], model="ridge", solver="svd")
    with pytest.raises(ValueError, match="max_iter must be None or a non-negative integer"):
        tikhon.regularization_path(X, y, max_iter=-1)


# ---------------------------------------------------------------- clone, pickle, files
_NON_DEFAULT = [  # built in the test: a TypeError before, not an error collecting this file
    lambda: LRCV(Cs=[0.1, 1.0], l1_ratios=(0,), cv=3, dual=False, penalty="l2", scoring="neg_log_loss", solver="newton-cg",
         tol=1e-6, max_iter=None, class_weight="balanced", n_jobs=2, verbose=0, refit=True, intercept_scaling=2.0,
         random_state=np.random.RandomState(0), use_legacy_attributes=False),
    lambda: RCV(alphas=[0.1, 1.0], fit_intercept=False, scoring="r2", gcv_mode="svd", store_cv_results=True,
        alpha_per_target=False, solver="cholesky", max_iter=None),
]


@pytest.mark.parametrize("make", _NON_DEFAULT, ids=["LogisticRegressionCV", "RidgeCV"])
def test_clone_get_params_and_pickle(binary, make):
    """scikit-learn's parameters survive clone, get_params/set_params and pickling, fitted or not."""
    X, y = binary
    estimator = make()
    params = estimator.get_params()
    copy = clone(estimator)
    assert set(copy.get_params()) == set(params)
    for key, value in copy.get_params().items():
        if not isinstance(value, np.random.RandomState):
            assert value == params[key] or np.array_equal(value, params[key]), key
    assert type(estimator)().set_params(**params).get_params().keys() == params.keys()
    target = y if isinstance(estimator, LRCV) else X[:, 0] + y
    fitted = copy.fit(X, target)
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.get_params().keys() == params.keys()


def test_model_files_hold_the_new_attributes(binary, tmp_path):
    """Model files: use_legacy_attributes=False (C_ a float, array scores_/coefs_paths_)
    and RidgeCV's cv_results_ load back equal."""
    X, y = binary
    model = _lrcv(X, y, use_legacy_attributes=False)
    loaded = tikhon.load(model.save(tmp_path / "lrcv.npz"))
    assert loaded.C_ == model.C_ and isinstance(loaded.C_, float)
    np.testing.assert_array_equal(loaded.scores_, model.scores_)
    np.testing.assert_array_equal(loaded.coefs_paths_, model.coefs_paths_)
    np.testing.assert_array_equal(loaded.n_iter_, model.n_iter_)
    ridge = RCV(store_cv_results=True).fit(X, X[:, 0] + y)
    again = tikhon.load(ridge.save(tmp_path / "rcv.npz"))
    np.testing.assert_array_equal(again.cv_results_, ridge.cv_results_)
    assert type(again.intercept_) is type(ridge.intercept_)


# ---------------------------------------------------------------- scikit-learn's estimator checks
_CV_WEIGHT_EQUIVALENCE = {  # as tests/test_estimator_checks.py: CV folds differ between weighted and repeated rows
    f"check_sample_weight_equivalence_on_{kind}_data": "CV folds differ between weighted and repeated rows"
    for kind in ("dense", "sparse")
}


@parametrize_with_checks(
    [LRCV(Cs=3, cv=3, solver="lbfgs", l1_ratios=(0,), use_legacy_attributes=False, max_iter=None,
          random_state=np.random.RandomState(0), intercept_scaling=2.0, penalty="l2", backend="numpy"),
     RCV(gcv_mode="svd", solver="cholesky", max_iter=None, backend="numpy")],  # store_cv_results: LOO only
    expected_failed_checks=lambda est: _CV_WEIGHT_EQUIVALENCE if isinstance(est, LRCV) else {})
def test_sklearn_estimator_checks_with_sklearn_parameters(estimator, check):
    """scikit-learn's whole estimator suite with its parameters set away from the defaults."""
    check(estimator)
