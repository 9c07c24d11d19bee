"""The fixed cost of a fit (issue 18): work done once, never twice, and nothing refused
today let through by the shortcuts that remove the repeats.

* Validation: plain float ndarrays skip scikit-learn's ``validate_data`` (its dataframe
  probes) with the same result and bookkeeping (``n_features_in_``, a stale
  ``feature_names_in_`` removed); anything else, and every error, still goes through it.
* NaN/infinity/magnitude: one scan of X (by blocks, max and min), anywhere in a block.
* The certificate: the squared loss's intercept anchor comes from the Gram (no pass of
  its own, X^T s to rounding); the float64 final certificate is the solver's own (no second
  ``duality_gap``), float32 data is still rechecked in float64.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import validate_data

import tikhon
from tikhon import _validation as V
from tikhon.objective import Objective
from tikhon.solvers import _common

pd = pytest.importorskip("pandas")


def _data(n=60, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    return X, (X[:, 0] + 0.3 * rng.standard_normal(n) > 0).astype(int), X @ rng.standard_normal(d)


# ---- the plain-array path of check_X --------------------------------------------------
@pytest.mark.parametrize("cls", [tikhon.LogisticRegression, tikhon.Ridge])
def test_plain_arrays_skip_validate_data_with_its_result(cls, monkeypatch):
    import sklearn.utils.validation as skv

    X, labels, targets = _data()
    y = labels if cls is tikhon.LogisticRegression else targets
    ridge = cls is tikhon.Ridge
    ref = cls()
    ref_X, ref_y = validate_data(ref, X, y, reset=True, y_numeric=ridge, multi_output=ridge, **V._X_RULES)
    calls = _Counter(monkeypatch, skv, "validate_data")  # check_X imports it where it uses it
    est = cls()
    got_X, got_y = V.check_X(X, fitting=True, estimator=est, y=y, y_numeric=ridge, multi_output=ridge)
    assert calls.calls == 0
    assert got_X is X and ref_X is X and np.array_equal(got_y, ref_y)
    assert est.n_features_in_ == ref.n_features_in_ == X.shape[1]
    V.check_X(X.tolist(), fitting=True, estimator=est, y=y, y_numeric=ridge, multi_output=ridge)
    assert calls.calls == 1  # anything else: scikit-learn's


def test_plain_path_taken_only_for_plain_float_arrays():
    X, y, _ = _data()
    est = tikhon.LogisticRegression()
    assert V._validate_plain(X, y, est, True) is not None
    assert V._validate_plain(np.asfortranarray(X).astype(np.float32), y, est, True) is not None
    for bad_X in (X.astype(np.int64), X.astype(np.float16), X.astype(">f8"), X[:, :, None], X[:0], X[:, :0],
                  X.view(np.recarray), X.tolist()):
        assert V._validate_plain(bad_X, y, est, True) is None
    for bad_y in (y.astype(object), y.astype(str), y[:-1], y[:, None], np.r_[y[:-1], np.nan], y.astype(complex),
                  list(y), np.r_[y[:-1].astype(float), np.inf]):
        assert V._validate_plain(X, bad_y, est, True) is None


def test_dataframe_then_array_fit_drops_feature_names():
    X, y, _ = _data()
    model = tikhon.LogisticRegression().fit(pd.DataFrame(X, columns=list("abcd")), y)
    assert list(model.feature_names_in_) == list("abcd")
    model.fit(X, y)  # plain arrays now: scikit-learn forgets the names
    assert not hasattr(model, "feature_names_in_") and model.n_features_in_ == 4


def test_array_predict_after_dataframe_fit_still_warns():
    X, y, _ = _data()
    model = tikhon.LogisticRegression().fit(pd.DataFrame(X, columns=list("abcd")), y)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        model.predict(X)


@pytest.mark.parametrize("cls", [tikhon.LogisticRegression, tikhon.Ridge])
def test_errors_keep_scikit_learns_messages(cls):
    X, labels, targets = _data()
    y = (labels if cls is tikhon.LogisticRegression else targets).astype(float)
    model = cls().fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but .* is expecting 4 features"):
        model.predict(X[:, :3])
    for bad, what in ((np.nan, "NaN"), (np.inf, "infinity")):
        y_bad = y.copy()
        y_bad[7] = bad
        with pytest.raises(ValueError, match=f"Input y contains {what}"):
            cls().fit(X, y_bad)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        cls().fit(X, y[:-1])


def test_ridge_target_magnitude_refused_once_checked():
    X, _, targets = _data()
    y = targets.copy()
    y[3] = 1e60
    with pytest.raises(ValueError, match="y has values of magnitude 1e\\+60"):
        tikhon.Ridge().fit(X, y)
    with pytest.raises(ValueError, match="y has values of magnitude 1e\\+60"):
        tikhon.RidgeCV().fit(X, y)


# ---- one scan for NaN, infinity and magnitude -----------------------------------------
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 2e50, -2e50])
@pytest.mark.parametrize("where", [0, 1, 5000, 5001, 9999, 40000, 79999])
def test_check_values_finds_a_bad_value_anywhere(bad, where, monkeypatch):
    monkeypatch.setattr(V, "_CHECK_BLOCK", 1 << 12)  # several blocks
    values = np.random.default_rng(0).standard_normal((8000, 10))
    values.flat[where] = bad
    pattern = "NaN or infinity" if not np.isfinite(bad) else "magnitude 2e\\+50"
    with pytest.raises(ValueError, match=pattern):
        V.check_values("X", values)
    with pytest.raises(ValueError, match=pattern):
        V.check_values("X", np.asfortranarray(values))
    if np.isfinite(bad):
        V.check_values("X", values, magnitude=False)  # prediction: only NaN and infinity


def test_check_values_nan_beside_infinity():
    values = np.zeros((10, 3))
    values[2, 1], values[2, 2] = np.inf, np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        V.check_values("X", values)


def test_class_balance_one_pass_still_refuses_an_unweighted_class():
    classes, index = np.array([0, 1, 2]), np.array([0, 1, 2, 1, 0])
    V.check_class_balance(classes, index, np.ones(5))
    with pytest.raises(ValueError, match="every sample of class 2 has zero weight"):
        V.check_class_balance(classes, index, np.array([1.0, 1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="every sample of class 0 has zero weight"):
        V.check_class_balance(classes, index, np.array([0.0, 1.0, 1.0, 1.0, 0.0]))


def test_default_weights_are_fresh_ones():
    X, _, _ = _data()
    a, b = V.check_sample_weight(None, X), V.check_sample_weight(None, X)
    assert a is not b and a.dtype == np.float64 and np.array_equal(a, np.ones(len(X)))


# ---- the certificate from quantities at hand -------------------------------------------
class _Counter:
    """Counts calls of a function it replaces (a spy)."""

    def __init__(self, monkeypatch, owner, name):
        self.calls, real = 0, getattr(owner, name)

        def spy(*args, **kwargs):
            self.calls += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(owner, name, spy)


BACKENDS = [b for b in ("numpy", "numba") if b in tikhon.available_backends()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("targets", [1, 3])
def test_ridge_anchor_from_the_gram_not_a_pass(backend, targets, monkeypatch):
    X, _, y = _data(200, 6)
    Y = y if targets == 1 else np.column_stack([y, 2 * y + 1, -y])
    ref = tikhon.Ridge(solver="newton", backend=backend).fit(X, Y)  # its anchor: a pass
    anchors = _Counter(monkeypatch, Objective, "intercept_anchor")
    model = tikhon.Ridge(solver="newton_cholesky", backend=backend).fit(X, Y)
    assert anchors.calls == 0 and model.converged_
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-7, atol=1e-9)


def test_ridge_anchor_from_the_gram_is_x_transpose_s():
    X, _, y = _data(300, 7)
    s = np.random.default_rng(3).uniform(0.1, 2.0, 300)
    for backend in BACKENDS:
        from tikhon.backends import get_backend

        obj = Objective("squared", 2.0, True, 1)
        be = get_backend(backend, X)(X, y, s, obj.pointwise)
        problem = _common.Problem(obj, be)
        problem.value_grad_hessian_matrix(np.zeros(8))
        xv, total = problem._anchors[0]
        ref_xv, ref_total = obj.intercept_anchor(be.y, be.s, 0, be.rmatvec)
        # X^T s summed in another order (the Gram kernel's): equal to rounding
        np.testing.assert_allclose(xv, ref_xv, rtol=1e-13, atol=1e-13 * np.abs(X).sum())
        assert total == pytest.approx(ref_total, rel=1e-15)


@pytest.mark.parametrize("cls", [tikhon.LogisticRegression, tikhon.Ridge])
@pytest.mark.parametrize("solver", ["newton", "newton_cholesky", "lbfgs"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # float32 lbfgs may stop short
def test_final_certificate_computed_once(cls, solver, monkeypatch):
    """float64: the solver's own certificate is final (no second, two-pass duality gap);
    float32 (rounded products): rechecked once in float64, and still honest."""
    X, labels, targets = _data(150, 5)
    y = labels if cls is tikhon.LogisticRegression else targets
    asked = []  # the w of each two-pass duality gap computed
    real = Objective.duality_gap
    monkeypatch.setattr(Objective, "duality_gap", lambda self, w, *a, **k: asked.append(np.array(w)) or
                        real(self, w, *a, **k))
    model = cls(solver=solver, backend="numpy").fit(X, y)
    assert model.converged_ and model.duality_gap_ <= model.tol and not asked
    model32 = cls(solver=solver, backend="numpy").fit(X.astype(np.float32), y)
    assert asked and model32.converged_ == (model32.duality_gap_ <= model32.tol)
    assert len({w.tobytes() for w in asked}) == len(asked)  # never twice at the same point


def test_duality_gap_kept_for_the_same_theta():
    X, labels, _ = _data(150, 5)
    from tikhon.backends import get_backend

    obj = Objective("logistic", 1.0, True, 1)
    y = np.where(labels == 1, 1.0, -1.0)
    problem = _common.Problem(obj, get_backend("numpy", X)(X, y, np.ones(150), obj.pointwise))
    theta = np.full(6, 0.1)
    first = problem.duality_gap(theta)
    assert problem.duality_gap(theta.copy()) is first
    theta[0] = 0.2  # changed in place: computed afresh
    assert problem.duality_gap(theta) != first
    assert problem.duality_gap(np.full(6, 0.1)) == first


def test_unconverged_fit_rechecked_and_warned(monkeypatch):
    X, y, _ = _data(150, 5)
    gaps = _Counter(monkeypatch, _common.Problem, "duality_gap")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = tikhon.LogisticRegression(solver="gd", backend="numpy", max_iter=2).fit(X, y)
    assert not model.converged_ and model.duality_gap_ > model.tol and gaps.calls == 1
    assert any("failed to converge" in str(w.message) for w in caught)


# ---- "auto" on small dense data: the NumPy backend ------------------------------------
from tikhon.backends import SMALL_DENSE_ENTRIES, get_backend  # noqa: E402


@pytest.mark.skipif("numba" not in tikhon.available_backends(), reason="numba not installed")
def test_auto_reads_small_float64_dense_with_numpy():
    small = np.zeros((1000, 10))
    for solver in ("auto", "newton", "newton_cholesky", "lbfgs"):
        assert get_backend("auto", small, solver=solver).name == "numpy"
    for solver in ("gd", "sgd"):  # numba runs their whole loop
        assert get_backend("auto", small, solver=solver).name == "numba"
    assert get_backend("auto", small.astype(np.float32)).name == "numba"  # numpy's float32 products round
    rows = SMALL_DENSE_ENTRIES // 10
    assert get_backend("auto", np.zeros((rows, 10))).name == "numpy"
    assert get_backend("auto", np.zeros((rows + 1, 10))).name == "numba"
    assert get_backend("numba", small).name == "numba"  # a named backend is what it says


@pytest.mark.skipif("numba" not in tikhon.available_backends(), reason="numba not installed")
def test_default_small_fits_record_numpy_and_newton_cholesky():
    X, labels, targets = _data(1000, 10)
    for cls, y in ((tikhon.LogisticRegression, labels), (tikhon.Ridge, targets)):
        model = cls().fit(X, y)
        assert (model.backend_, model.solver_) == ("numpy", "newton_cholesky") and model.converged_
        ref = cls(backend="numba").fit(X, y)
        assert abs(model.objective_ - ref.objective_) <= 1e-10 * ref.objective_
    with pytest.warns(ConvergenceWarning):
        assert tikhon.LogisticRegression(solver="gd", max_iter=5).fit(X, labels).backend_ == "numba"
