"""scikit-learn's parameters and conventions on tikhon.LogisticRegression and tikhon.Ridge
(issue 17): each parameter's meaning, compared with scikit-learn where it has the same
parameter; the refusals that name what tikhon solves; warm starts; the thread budget of
``n_jobs``; ``verbose`` logging and its progress bar; ``coef_`` in X's dtype; ``n_iter_``
and ``intercept_`` as scikit-learn gives them; ``max_iter`` 0 and None; ``random_state``
objects.

Before this file's changes every scikit-learn-only parameter was a ``TypeError``,
``coef_`` was float64 for float32 input, ``n_iter_`` an int, ``Ridge.intercept_`` a
Python float, ``max_iter=0``/``None`` and ``random_state=RandomState(..)`` were refused.
"""
from __future__ import annotations

import inspect
import logging
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.linear_model as sk
from sklearn.base import clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning

import tikhon
from tikhon import estimators
from tikhon._config import available_cores, config_context, resolve_threads, thread_budget

LR, RR = tikhon.LogisticRegression, tikhon.Ridge
TIGHT = 1e-12  # tikhon's tol for comparisons of coefficients with scikit-learn


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, random_state=0)
    return X, y


@pytest.fixture(scope="module")
def three_classes():
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=3, random_state=1)
    return X, y


@pytest.fixture(scope="module")
def regression():
    X, y = make_regression(n_samples=200, n_features=8, noise=1.0, random_state=0)
    return X, y


def _sklearn_lr(X, y, **params):
    """scikit-learn's LogisticRegression at a tight tolerance (the reference)."""
    params = {"solver": "newton-cholesky", "tol": 1e-12, "max_iter": 1000, **params}
    return sk.LogisticRegression(**params).fit(X, y)


def _close(ours, ref, atol=1e-6):
    np.testing.assert_allclose(np.asarray(ours.coef_, dtype=float), ref.coef_, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(np.asarray(ours.intercept_, dtype=float), ref.intercept_, rtol=1e-5, atol=atol)


# ---------------------------------------------------------------------------------
# Signatures: every scikit-learn parameter is accepted; defaults differ only where documented
# ---------------------------------------------------------------------------------
# tikhon's own defaults, each with its reason in the estimator's docstring
DIFFERENT_DEFAULTS = {
    "LogisticRegression": {"penalty", "tol", "solver", "max_iter"},  # "l2" (not deprecated), 1e-8 gap, auto, 1000
    "Ridge": {"tol"},
}


@pytest.mark.parametrize("ours, theirs", [(LR, sk.LogisticRegression), (RR, sk.Ridge)])
def test_every_sklearn_parameter_is_accepted_with_sklearn_default_unless_documented(ours, theirs):
    mine, ref = inspect.signature(ours).parameters, inspect.signature(theirs).parameters
    assert set(ref) <= set(mine), f"not accepted: {set(ref) - set(mine)}"
    differ = {name for name in ref if mine[name].default != ref[name].default}
    assert differ == DIFFERENT_DEFAULTS[ours.__name__]
    doc = ours.__doc__
    for name in ref:  # each is documented
        assert re.search(rf"^    {name} :", doc, re.M), name


def test_sklearn_parameters_round_trip_through_get_params_and_clone(binary):
    X, y = binary
    model = LR(penalty="l2", l1_ratio=0.0, dual=False, intercept_scaling=2.0, verbose=0, warm_start=True, n_jobs=1,
               random_state=np.random.RandomState(0), solver="newton-cg")
    twin = clone(model)
    assert twin.get_params()["solver"] == "newton-cg" and twin.get_params()["n_jobs"] == 1
    twin.fit(X, y)
    assert twin.solver_ == "newton"
    ridge = clone(RR(copy_X=False, positive=False, max_iter=None, random_state=3))
    assert ridge.get_params()["copy_X"] is False


# ---------------------------------------------------------------------------------
# penalty, l1_ratio, C: L2 only, refusals name what tikhon solves
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("params", [{"penalty": "l2"}, {"penalty": "deprecated"}, {"l1_ratio": 0}, {"l1_ratio": None}])
def test_l2_spellings_fit_scikit_learns_l2_model(binary, params):
    X, y = binary
    ours = LR(C=0.5, tol=TIGHT, **params).fit(X, y)
    _close(ours, _sklearn_lr(X, y, C=0.5, l1_ratio=0.0))


@pytest.mark.parametrize("params, match", [
    ({"penalty": None}, r"penalty=None \(no penalty\) is not what tikhon solves: .*L2 penalty only"),
    ({"penalty": "l1"}, r"penalty='l1' is not what tikhon solves: .*L2 penalty only"),
    ({"penalty": "elasticnet"}, r"penalty='elasticnet' is not what tikhon solves"),
    ({"penalty": "L2 "}, r"penalty must be 'l2', the penalty tikhon solves"),
    ({"l1_ratio": 0.5}, r"l1_ratio=0.5 asks for an L1 part: tikhon fits the L2 penalty only"),
    ({"l1_ratio": 1}, r"l1_ratio=1 asks for an L1 part"),
    ({"C": np.inf}, r"C=inf is no penalty .*which tikhon does not solve"),
])
def test_other_penalties_are_refused_naming_l2(binary, params, match):
    X, y = binary
    with pytest.raises(ValueError, match=match):
        LR(**params).fit(X, y)


# ---------------------------------------------------------------------------------
# dual, intercept_scaling, copy_X, positive
# ---------------------------------------------------------------------------------
def test_dual_true_names_dual_cd(binary):
    X, y = binary
    with pytest.raises(ValueError, match=r"dual=True: tikhon's dual formulation is solver='dual_cd'"):
        LR(dual=True).fit(X, y)
    with pytest.raises(ValueError, match="dual must be True or False"):
        LR(dual="yes").fit(X, y)


@pytest.mark.skipif("cython" not in tikhon.available_backends(), reason="the compiled extension is not built")
def test_dual_true_with_dual_cd_is_liblinears_dual_problem(binary):
    """scikit-learn's dual=True (liblinear, no intercept: then liblinear penalizes nothing
    extra) and tikhon's dual_cd solve the same problem."""
    X, y = binary
    Xs = sp.csr_matrix(X)
    ours = LR(C=0.5, dual=True, solver="dual_cd", fit_intercept=False, tol=TIGHT).fit(Xs, y)
    plain = LR(C=0.5, solver="dual_cd", fit_intercept=False, tol=TIGHT).fit(Xs, y)
    np.testing.assert_array_equal(ours.coef_, plain.coef_)
    ref = sk.LogisticRegression(C=0.5, dual=True, solver="liblinear", fit_intercept=False, tol=1e-10,
                                max_iter=10000).fit(X, y)
    np.testing.assert_allclose(ours.coef_, ref.coef_, rtol=1e-4, atol=1e-5)


def test_intercept_scaling_has_no_effect_as_in_sklearn_lbfgs(binary):
    """tikhon's intercept is never penalized: intercept_scaling changes nothing, as for
    scikit-learn's lbfgs (it is liblinear's synthetic feature)."""
    X, y = binary
    one = LR(tol=TIGHT).fit(X, y)
    hundred = LR(tol=TIGHT, intercept_scaling=100.0).fit(X, y)
    np.testing.assert_array_equal(one.coef_, hundred.coef_)
    np.testing.assert_array_equal(one.intercept_, hundred.intercept_)
    _close(hundred, _sklearn_lr(X, y, intercept_scaling=100.0, solver="lbfgs", tol=1e-10))
    with pytest.raises(ValueError, match="intercept_scaling must be a finite positive number"):
        LR(intercept_scaling=0).fit(X, y)


@pytest.mark.parametrize("copy_X", [True, False])
def test_copy_x_never_writes_to_x_and_fits_sklearns_model(regression, copy_X):
    X, y = regression
    X = X + 5.0  # off-centre: scikit-learn's copy_X=False centres such an X in place
    before = X.copy()
    ours = RR(alpha=2.0, copy_X=copy_X, tol=TIGHT).fit(X, y)
    np.testing.assert_array_equal(X, before)
    ref = sk.Ridge(alpha=2.0, copy_X=True).fit(X, y)
    _close(ours, ref)


def test_positive_only_false(regression):
    X, y = regression
    _close(RR(positive=False, tol=TIGHT).fit(X, y), sk.Ridge(positive=False).fit(X, y))
    with pytest.raises(ValueError, match=r"positive=True .* is not what tikhon solves"):
        RR(positive=True).fit(X, y)
    with pytest.raises(ValueError, match="copy_X must be True or False"):
        RR(copy_X=None).fit(X, y)


# ---------------------------------------------------------------------------------
# scikit-learn's solver names
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name, tikhons", [("newton-cg", "newton"), ("newton-cholesky", "newton_cholesky"),
                                            ("lbfgs", "lbfgs")])
def test_sklearn_logistic_solver_names_map_to_the_same_algorithm(binary, three_classes, name, tikhons):
    for X, y in (binary, three_classes):
        ours = LR(solver=name, tol=TIGHT).fit(X, y)
        assert ours.solver_ == tikhons and ours.get_params()["solver"] == name
        _close(ours, _sklearn_lr(X, y, solver=name, tol=1e-10), atol=1e-5)


@pytest.mark.parametrize("name, tikhons", [("cholesky", "newton_cholesky"), ("sparse_cg", "newton"),
                                            ("lbfgs", "lbfgs")])
def test_sklearn_ridge_solver_names_map_to_the_same_algorithm(regression, name, tikhons):
    X, y = regression
    ours = RR(alpha=3.0, solver=name, tol=TIGHT).fit(X, y)
    assert ours.solver_ == tikhons
    _close(ours, sk.Ridge(alpha=3.0, solver="cholesky").fit(X, y))


@pytest.mark.parametrize("est, name", [(LR, "liblinear"), (LR, "sag"), (LR, "saga"), (RR, "svd"), (RR, "lsqr"),
                                       (RR, "saga"), (LR, "cholesky"), (RR, "newton-cg")])
def test_other_solver_names_are_refused_with_the_list(binary, est, name):
    X, y = binary
    with pytest.raises(ValueError, match=rf"unknown solver '{name}'.*valid solvers are auto, .*newton_cholesky, "
                                         r".*scikit-learn's names of the same algorithms"):
        est(solver=name).fit(X, y)


# ---------------------------------------------------------------------------------
# max_iter: None and 0; the ConvergenceWarning's text
# ---------------------------------------------------------------------------------
def test_max_iter_none_is_the_default_cap(binary, regression):
    X, y = binary
    np.testing.assert_array_equal(LR(max_iter=None).fit(X, y).coef_, LR().fit(X, y).coef_)
    Xr, yr = regression
    assert RR().max_iter is None and sk.Ridge().max_iter is None
    ridge = RR(solver="gd").fit(Xr, yr)  # None: the 1000 iterations gd needs here
    assert ridge.converged_ and 1 < ridge.n_iter_[0] <= estimators.DEFAULT_MAX_ITER


@pytest.mark.parametrize("est, solver", [(e, s) for e in ("logistic", "ridge")
                                         for s in ("newton", "newton_cholesky", "lbfgs", "gd", "sgd")]
                         + [("logistic", "newton-cg"), ("ridge", "cholesky")])
def test_max_iter_zero_returns_the_start_with_a_warning(binary, regression, solver, est):
    """As scikit-learn's newton-cholesky: coefficients zero, n_iter_ [0]; tikhon's start
    has the best constant intercept (log odds, or the mean of y)."""
    if est == "logistic":
        X, y = binary
        model, ref = LR(solver=solver, max_iter=0, backend="numpy"), sk.LogisticRegression(solver="newton-cholesky",
                                                                                          max_iter=0)
        start = np.log(np.mean(y == 1) / np.mean(y == 0))
    else:
        X, y = regression
        model, ref = RR(solver=solver, max_iter=0, backend="numpy"), None
        start = y.mean()
    with pytest.warns(ConvergenceWarning, match=r"failed to converge after 0 iterations \(max_iter=0\)"):
        model.fit(X, y)
    assert np.all(model.coef_ == 0) and model.n_iter_.tolist() == [0] and not model.converged_
    np.testing.assert_allclose(np.ravel(model.intercept_), start, rtol=1e-12)
    if ref is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            ref.fit(X, y)
        assert np.all(ref.coef_ == 0) and ref.n_iter_.tolist() == [0]


@pytest.mark.parametrize("solver, match", [("lbfgs", "lbfgs failed to converge"),
                                           ("newton-cg", "newton-cg failed to converge.* Increase the number of "
                                                         "iterations.")])
def test_convergence_warning_reads_as_sklearns(binary, solver, match):
    """The patterns scikit-learn's own test_logistic.py::test_max_iter matches."""
    X, y = binary
    with pytest.warns(ConvergenceWarning, match=match):
        LR(solver=solver, max_iter=1, tol=1e-15).fit(X, y)


@pytest.mark.parametrize("bad", [-1, 2.5, True, "10"])
def test_bad_max_iter_refused(binary, bad):
    X, y = binary
    with pytest.raises(ValueError, match="max_iter must be None or a non-negative integer"):
        LR(max_iter=bad).fit(X, y)


# ---------------------------------------------------------------------------------
# Fitted attributes: n_iter_, intercept_, dtypes, as scikit-learn gives them
# ---------------------------------------------------------------------------------
def test_n_iter_shapes_as_sklearns(binary, three_classes, regression):
    for X, y in (binary, three_classes):
        ours, ref = LR().fit(X, y), sk.LogisticRegression().fit(X, y)
        assert ours.n_iter_.shape == ref.n_iter_.shape == (1,) and ours.n_iter_.dtype == ref.n_iter_.dtype
        assert ours.n_iter_[0] >= 1
    X, y = regression
    for target in (y, y[:, None], np.c_[y, 2 * y, -y]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # sag at 5 iterations: only its shapes matter
            ours, ref = RR(solver="newton").fit(X, target), sk.Ridge(solver="sag", max_iter=5).fit(X, target)
        expected = (1,) if target.ndim == 1 else (target.shape[1],)
        assert ours.n_iter_.shape == ref.n_iter_.shape == expected and ours.n_iter_.dtype == np.int32
        assert len(set(ours.n_iter_.tolist())) == 1  # one joint solve for all targets


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ridge_intercept_is_a_numpy_scalar_of_xs_dtype(regression, dtype):
    X, y = regression
    ours, ref = RR(alpha=2.0).fit(X.astype(dtype), y), sk.Ridge(alpha=2.0).fit(X.astype(dtype), y)
    assert type(ours.intercept_) is type(ref.intercept_) is dtype
    assert ours.coef_.dtype == ref.coef_.dtype == dtype
    assert type(RR(fit_intercept=False).fit(X.astype(dtype), y).intercept_) is dtype


@pytest.mark.parametrize("layout", ["dense", "csr"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_coef_follows_xs_dtype_and_matches_the_float64_solve(binary, three_classes, regression, layout, dtype):
    """The solve stays float64 inside: float32 coefficients are those of the float64 solve
    of the same (float32) data, to the rounding of float32 products."""
    convert = sp.csr_matrix if layout == "csr" else np.asarray
    cases = [(LR, binary[0], binary[1]), (LR, three_classes[0], three_classes[1]), (RR, regression[0], regression[1]),
             (RR, regression[0], np.c_[regression[1], -regression[1]])]
    for est, X, y in cases:
        X32 = X.astype(np.float32)
        model = est(backend="numpy").fit(convert(X32.astype(dtype)), y)
        ref = est(backend="numpy").fit(X32.astype(np.float64), y)
        assert model.coef_.dtype == dtype and np.asarray(model.intercept_).dtype == dtype
        np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-4, atol=1e-5)  # float32 products round
        expected = ref.predict(X32)  # float32 products: rounding relative to the largest values
        np.testing.assert_allclose(model.predict(convert(X32)), expected, rtol=1e-5,
                                   atol=1e-6 * np.abs(expected).max())
    sk_model = sk.LogisticRegression().fit(binary[0].astype(np.float32), binary[1])
    assert sk_model.coef_.dtype == sk_model.intercept_.dtype == np.float32  # the convention followed


def test_saved_float32_model_loads_with_its_dtypes(tmp_path, regression):
    X, y = regression
    model = RR().fit(X.astype(np.float32), y)
    loaded = tikhon.load(model.save(tmp_path / "r.npz"))
    assert loaded.coef_.dtype == np.float32 and type(loaded.intercept_) is np.float32
    assert loaded.n_iter_.tolist() == model.n_iter_.tolist()


# ---------------------------------------------------------------------------------
# random_state
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [np.random.RandomState, np.random.default_rng])
def test_random_state_objects_seed_the_shuffles_deterministically(binary, make):
    X, y = binary
    kw = dict(solver="sgd", max_iter=3, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = LR(random_state=make(7), **kw).fit(X, y)
        b = LR(random_state=make(7), **kw).fit(X, y)
        draw = make(7)
        seed = draw.randint(np.iinfo(np.int32).max) if isinstance(draw, np.random.RandomState) else \
            draw.integers(np.iinfo(np.int32).max)
        c = LR(random_state=int(seed), **kw).fit(X, y)
        shared = make(7)  # one object over two fits: each fit draws its own seed, as scikit-learn's
        first = LR(random_state=shared, **kw).fit(X, y)
        second = LR(random_state=shared, **kw).fit(X, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)
    np.testing.assert_array_equal(a.coef_, c.coef_)
    np.testing.assert_array_equal(first.coef_, a.coef_)
    assert not np.array_equal(second.coef_, first.coef_)
    sk.LogisticRegression(solver="saga", random_state=make(7) if make is np.random.RandomState else 7)  # same type


@pytest.mark.skipif("cython" not in tikhon.available_backends(), reason="the compiled extension is not built")
def test_random_state_object_for_dual_cd(binary):
    X, y = binary
    Xs = sp.csr_matrix(X)
    a = LR(solver="dual_cd", random_state=np.random.RandomState(3)).fit(Xs, y)
    b = LR(solver="dual_cd", random_state=int(np.random.RandomState(3).randint(np.iinfo(np.int32).max))).fit(Xs, y)
    np.testing.assert_array_equal(a.coef_, b.coef_)


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_bad_random_state_refused(binary, bad):
    X, y = binary
    with pytest.raises(ValueError, match="random_state must be None or a non-negative integer"):
        LR(random_state=bad).fit(X, y)


# ---------------------------------------------------------------------------------
# warm_start
# ---------------------------------------------------------------------------------
@pytest.mark.parametrize("solver", ["newton", "newton_cholesky", "lbfgs", "gd"])
def test_warm_start_takes_fewer_iterations_at_a_nearby_c(binary, solver):
    X, y = binary
    kw = dict(solver=solver, backend="numpy", tol=1e-6 if solver == "gd" else 1e-10, max_iter=20000)
    cold = LR(C=1.2, **kw).fit(X, y)
    warm = LR(C=1.0, warm_start=True, **kw).fit(X, y)
    warm.set_params(C=1.2).fit(X, y)
    assert warm.converged_ and cold.converged_
    assert warm.n_iter_[0] < cold.n_iter_[0], (warm.n_iter_, cold.n_iter_)
    np.testing.assert_allclose(warm.coef_, cold.coef_, rtol=1e-3, atol=1e-4)
    restart = LR(C=1.0, warm_start=False, **kw).fit(X, y)  # warm_start=False: every fit starts afresh
    restart.set_params(C=1.2).fit(X, y)
    assert restart.n_iter_[0] == cold.n_iter_[0]


@pytest.mark.parametrize("solver", ["newton", "newton_cholesky", "lbfgs"])
def test_warm_start_ridge_and_multinomial(three_classes, regression, solver):
    X, y = regression
    Y = np.c_[y, -y + 3.0]
    cold = RR(alpha=12.0, solver=solver, tol=1e-12).fit(X, Y)
    warm = RR(alpha=10.0, solver=solver, tol=1e-12, warm_start=True).fit(X, Y)
    warm.set_params(alpha=12.0).fit(X, Y)
    # Cholesky: one step either way; Newton-CG: two (LIBLINEAR's truncated CG leaves the
    # quadratic's first step inexact), the warm one's CG shorter
    assert warm.n_iter_[0] < cold.n_iter_[0] or cold.n_iter_[0] <= (2 if solver == "newton" else 1)
    assert warm.n_iter_[0] <= cold.n_iter_[0]
    X, y = three_classes
    cold = LR(C=1.2, solver=solver, tol=1e-10).fit(X, y)
    warm = LR(C=1.0, solver=solver, tol=1e-10, warm_start=True).fit(X, y)
    warm.set_params(C=1.2).fit(X, y)
    assert warm.n_iter_[0] < cold.n_iter_[0]


def test_warm_start_steps_continue_as_scikit_learns(three_classes):
    """scikit-learn's test_warm_start_newton_solver: two single steps with warm_start are
    the two steps of one fit."""
    X, y = three_classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two = LR(solver="newton-cholesky", max_iter=2).fit(X, y)
        steps = LR(solver="newton-cholesky", max_iter=1, warm_start=True).fit(X, y)
        steps.fit(X, y)
    np.testing.assert_allclose(steps.coef_, two.coef_, rtol=1e-10)
    np.testing.assert_allclose(steps.intercept_, two.intercept_, rtol=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        again = LR(max_iter=0, warm_start=True).fit(X, y)  # no iteration: the previous fit's start, itself
        coef = again.coef_.copy()
        again.fit(X, y)
    np.testing.assert_array_equal(again.coef_, coef)


def test_warm_start_close_to_sklearn_after_one_more_step(binary):
    """scikit-learn's test_warm_start: a 1-iteration refit with warm_start stays at the solution."""
    X, y = binary
    model = LR(warm_start=True, tol=1e-10).fit(X, y)
    first = model.coef_.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.set_params(max_iter=1).fit(X, y)
    assert np.sum(np.abs(first - model.coef_)) < 1e-6
    cold = LR(tol=1e-10, max_iter=1, solver="lbfgs")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
    assert np.sum(np.abs(first - cold.coef_)) > 0.1


def test_warm_start_with_another_shape_is_a_clear_error(binary, three_classes, regression):
    X, y = binary
    model = LR(warm_start=True).fit(X, y)
    X3, y3 = three_classes
    with pytest.raises(ValueError, match=r"warm_start=True starts from the previous fit, whose coef_ has shape "
                                         r"\(1, 6\), but this fit needs 3 x 6 .*set warm_start=False"):
        model.fit(X3, y3)
    with pytest.raises(ValueError, match=r"needs 1 x 4 coefficients"):
        model.fit(X[:, :4], y)
    Xr, yr = regression
    ridge = RR(warm_start=True).fit(Xr, yr)
    ridge.fit(Xr, yr[:, None])  # one target, 1-D or a column: the same problem
    assert ridge.coef_.shape == (1, 8)
    with pytest.raises(ValueError, match=r"needs 2 x 8 coefficients"):
        ridge.fit(Xr, np.c_[yr, yr])
    ridge.coef_ = np.full_like(ridge.coef_, np.nan)
    with pytest.raises(ValueError, match="holds NaN or infinity"):
        ridge.fit(Xr, yr)


# ---------------------------------------------------------------------------------
# n_jobs: the thread budget
# ---------------------------------------------------------------------------------
@pytest.fixture
def budget_seen(monkeypatch):
    """The thread budget (and the explicit setting) while the solver runs."""
    seen = {}
    run = estimators.solvers.run

    def spy(*args, **kwargs):
        seen.update(budget=thread_budget(), setting=resolve_threads())
        return run(*args, **kwargs)

    monkeypatch.setattr(estimators.solvers, "run", spy)
    return seen


@pytest.mark.parametrize("n_jobs, expected", [(1, 1), (2, 2), (5, 5), (-1, "all"), (-2, "all but one")])
def test_n_jobs_is_the_fits_thread_budget(binary, budget_seen, n_jobs, expected):
    X, y = binary
    cores = available_cores()
    expected = {"all": cores, "all but one": max(1, cores - 1)}.get(expected, expected)
    LR(n_jobs=n_jobs).fit(X, y)
    assert budget_seen == {"budget": expected, "setting": expected}
    RR(n_jobs=n_jobs).fit(X, y.astype(float))
    assert budget_seen["budget"] == expected
    assert resolve_threads() is None  # restored after the fit


def test_n_jobs_none_leaves_the_budget_and_an_explicit_n_jobs_wins(binary, budget_seen):
    X, y = binary
    LR().fit(X, y)
    assert budget_seen["setting"] is None
    with config_context(n_threads=3):
        LR().fit(X, y)
        assert budget_seen["setting"] == 3
        LR(n_jobs=1).fit(X, y)
        assert budget_seen["setting"] == 1
        assert resolve_threads() == 3


@pytest.mark.skipif("numba" not in tikhon.available_backends(), reason="numba is not installed")
def test_n_jobs_does_not_change_the_model(binary):
    X, y = binary
    one = LR(backend="numba", n_jobs=1, tol=TIGHT).fit(X, y)
    two = LR(backend="numba", n_jobs=2, tol=TIGHT).fit(X, y)
    np.testing.assert_allclose(one.coef_, two.coef_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("bad", [0, 1.5, True, "2"])
def test_bad_n_jobs_refused(binary, bad):
    X, y = binary
    with pytest.raises(ValueError, match=r"n_jobs must be None, a positive integer, or a negative one"):
        LR(n_jobs=bad).fit(X, y)


# ---------------------------------------------------------------------------------
# verbose: the "tikhon" logger, one line per iteration; the progress bar
# ---------------------------------------------------------------------------------
_LINE = re.compile(r"tikhon (\w+): iteration (\d+), objective (\S+), relative gap (\S+), (\S+) s$")


def _iteration_lines(caplog):
    lines = [_LINE.match(r.getMessage()) for r in caplog.records if r.name == "tikhon"]
    return [m for m in lines if m]


@pytest.mark.parametrize("solver", ["newton", "newton_cholesky", "lbfgs", "gd", "sgd"])
def test_verbose_logs_one_line_per_iteration(binary, caplog, solver):
    X, y = binary
    kw = {"tol": 1e-4, "max_iter": 300} if solver in ("gd", "sgd") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LR(verbose=1, solver=solver, backend="numpy", **kw).fit(X, y)
    lines = _iteration_lines(caplog)
    iterations = [int(m.group(2)) for m in lines]
    assert iterations == list(range(model.n_iter_[0] + 1))  # the start, then each iteration
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "tikhon")
    assert {m.group(1) for m in lines} == {model.solver_}
    last = lines[-1]
    assert float(last.group(3)) == pytest.approx(model.objective_, rel=1e-9)
    seconds = [float(m.group(5)) for m in lines]
    assert seconds == sorted(seconds)
    summary = caplog.records[-1].getMessage()
    assert summary.startswith("tikhon LogisticRegression: ") and f"after {model.n_iter_[0]} iteration(s)" in summary


@pytest.mark.skipif("cython" not in tikhon.available_backends(), reason="the compiled extension is not built")
@pytest.mark.parametrize("C", [0.1, 100.0])
def test_verbose_dual_cd_counts_passes_and_its_newton_finish(binary, caplog, C):
    """dual_cd reports at its checks (passes), and a Newton finish continues the count:
    the last line is n_iter_."""
    X, y = binary
    model = LR(C=C, verbose=1, solver="dual_cd").fit(sp.csr_matrix(X), y)
    iterations = [int(m.group(2)) for m in _iteration_lines(caplog)]
    assert iterations == sorted(iterations) and iterations[-1] == model.n_iter_[0]


def test_verbose_ridge_multitarget_and_newton_finishing_with_cholesky(regression, caplog):
    X, y = regression
    model = RR(verbose=2, solver="newton").fit(X, np.c_[y, -y])
    iterations = [int(m.group(2)) for m in _iteration_lines(caplog)]
    assert iterations == list(range(model.n_iter_[0] + 1))


def test_not_verbose_logs_nothing(binary, caplog):
    X, y = binary
    caplog.set_level(logging.DEBUG, logger="tikhon")
    LR(backend="numpy").fit(X, y)
    assert not _iteration_lines(caplog)


def test_verbose_respects_a_level_the_user_set_and_restores_the_logger(binary, caplog):
    X, y = binary
    logger = logging.getLogger("tikhon")
    handlers, level = list(logger.handlers), logger.level
    LR(verbose=1, backend="numpy").fit(X, y)
    assert _iteration_lines(caplog)
    assert logger.handlers == handlers and logger.level == level  # pytest's handlers listen: none added
    caplog.clear()
    logger.setLevel(logging.WARNING)
    try:
        LR(verbose=1, backend="numpy").fit(X, y)
        assert not _iteration_lines(caplog)
        assert logger.level == logging.WARNING
    finally:
        logger.setLevel(level)


_SCRIPT = textwrap.dedent(r"""
    import logging, sys
    import numpy as np
    import tikhon
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = np.where(X[:, 0] + rng.standard_normal(300) > 0, 1, -1)
    model = tikhon.LogisticRegression(verbose=1, backend="numpy", solver="newton").fit(X, y)
    log = logging.getLogger("tikhon")
    print(len(log.handlers), log.level, model.n_iter_[0])
""")


def _run(env_extra):
    env = {k: v for k, v in os.environ.items() if k != estimators.PROGRESS_ENV}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return out


def test_verbose_without_logging_configured_prints_to_stderr_and_cleans_up():
    """No handler anywhere: the fit adds one on stderr for its duration (stdout stays the
    program's); stderr is a pipe, not a terminal: no progress bar."""
    out = _run({})
    handlers, level, n_iter = map(int, out.stdout.split())
    assert (handlers, level) == (0, logging.NOTSET)
    lines = [line for line in out.stderr.splitlines() if _LINE.match(line)]
    assert [int(_LINE.match(line).group(2)) for line in lines] == list(range(n_iter + 1))
    assert "%|" not in out.stderr and "\r" not in out.stderr


def test_forced_progress_bar_is_drawn_on_stderr_with_the_lines():
    pytest.importorskip("tqdm")
    out = _run({estimators.PROGRESS_ENV: "1"})
    frames = out.stderr.replace("\r", "\n").splitlines()
    bars = [f for f in frames if re.match(r"tikhon newton: +\d+%\|", f)]
    assert bars and any(" 100%|" in f for f in bars)
    assert sum(bool(_LINE.match(f)) for f in frames) == int(out.stdout.split()[2]) + 1
    assert out.stdout.count("\n") == 1  # nothing but the script's own line on stdout


class _Terminal:
    """A stand-in stderr that is a terminal."""

    def __init__(self, stream):
        self._stream = stream

    def isatty(self):
        return True

    def __getattr__(self, name):
        return getattr(self._stream, name)


def test_progress_bar_only_on_a_terminal_after_a_delay(monkeypatch):
    pytest.importorskip("tqdm")
    monkeypatch.delenv(estimators.PROGRESS_ENV, raising=False)
    assert estimators._progress_bar("newton") is None  # pytest's captured stderr is no terminal
    monkeypatch.setattr(sys, "stderr", _Terminal(sys.stderr))
    bar = estimators._progress_bar("newton")
    try:
        assert bar is not None and bar.delay == estimators.BAR_DELAY and bar.dynamic_ncols
    finally:
        bar.close()
    monkeypatch.setenv(estimators.PROGRESS_ENV, "0")
    assert estimators._progress_bar("newton") is None
    monkeypatch.setenv(estimators.PROGRESS_ENV, "1")
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm not installed: no bar, the lines alone
    assert estimators._progress_bar("newton") is None


@pytest.mark.parametrize("bad", [-1, 0.5, "yes"])
def test_bad_verbose_and_warm_start_refused(binary, bad):
    X, y = binary
    with pytest.raises(ValueError, match="verbose must be a non-negative integer or a bool"):
        LR(verbose=bad).fit(X, y)
    with pytest.raises(ValueError, match="warm_start must be True or False"):
        LR(warm_start=bad).fit(X, y)
