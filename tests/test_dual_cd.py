"""The compiled dual coordinate descent (``solver="dual_cd"``, ``backend="cython"``).

It solves scikit-learn's problem (objective relative difference <= 1e-8, with and
without the unpenalized intercept, with sample and class weights, float32/float64
data, int32/int64 indices) and its reported relative duality gap (``certificate_``, the solver's
criterion; ``duality_gap_``, the objective module's from ``w`` alone) bounds the true
relative suboptimality. References, cached per module:

* sklearn's ``LogisticRegression`` (``newton-cholesky`` on a9a, which is exact for its
  123 features; ``lbfgs`` elsewhere) and ``Ridge`` (its exact solvers);
* tikhon's own ``solver="newton"`` (numpy backend, tol=1e-10, relative gap ~1e-14)
  for the true optimum ``P*`` where sklearn's lbfgs is not accurate enough.

Cost control: a9a at C=100 needs ~5000 passes of dual CD to 1e-10 (the known weakness
of dual CD at large C), so that cell runs on the first 5000 rows of a9a; every other
cell of the issue's matrix runs on the full data sets.
"""
from __future__ import annotations

import functools
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import load_shared
from sklearn.linear_model import LogisticRegression as SkLogisticRegression
from sklearn.linear_model import Ridge as SkRidge

import tikhon
from tikhon.backends import BackendUnavailableError, get_backend
from tikhon.objective import LOSSES, Objective

pytest.importorskip("tikhon._cd", reason="the compiled extension is not built")

RTOL = 1e-8
TOL = 1e-10  # the certified relative gap asked of dual CD in the matching tests


def objective_value(loss, lam, X, y, s, w, b):
    X64 = X.astype(np.float64)
    z = np.asarray(X64 @ np.asarray(w, dtype=np.float64)).ravel() + b
    return Objective(loss, lam).value(np.dot(s, LOSSES[loss].value(y, z)), w)


def weights_for(n, seed=0):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.2, 3.0, n)
    s[rng.random(n) < 0.02] = 0.0
    return s


@functools.lru_cache(maxsize=None)
def dataset(name):
    """``(X, y)`` float64 CSR with labels in {-1, +1}."""
    if name == "a9a":
        return load_shared("a9a")
    if name == "a9a5k":
        X, y = load_shared("a9a")
        return X[:5000], y[:5000]
    if name == "reuters":
        return load_shared("reuters")
    if name == "synthetic":
        return synthetic(3000, 800, 0.02, seed=1)
    raise KeyError(name)


def synthetic(n, d, density, seed=0):
    rng = np.random.default_rng(seed)
    X = sp.random(n, d, density=density, format="csr", random_state=rng,
                  data_rvs=lambda k: rng.exponential(1.0, k))
    X.data /= np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel().repeat(np.diff(X.indptr)) + 1e-12)
    w = rng.standard_normal(d) * 3
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-(X @ w) + 0.5)), 1.0, -1.0)
    return X, y


@functools.lru_cache(maxsize=None)
def sk_logistic(name, C, fit_intercept, weighted):
    X, y = dataset(name)
    s = weights_for(X.shape[0]) if weighted else np.ones(X.shape[0])
    solver = "newton-cholesky" if name.startswith("a9a") else "lbfgs"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkLogisticRegression(C=C, fit_intercept=fit_intercept, tol=1e-10, max_iter=10000,
                                   solver=solver).fit(X, y, sample_weight=s)
    return objective_value("logistic", 1 / C, X, y, s, ref.coef_.ravel(), float(ref.intercept_[0]))


@functools.lru_cache(maxsize=None)
def newton_optimum(name, C, fit_intercept, weighted):
    X, y = dataset(name)
    s = weights_for(X.shape[0]) if weighted else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = tikhon.LogisticRegression(C=C, fit_intercept=fit_intercept, solver="newton", backend="numpy",
                                        tol=1e-10, max_iter=500).fit(X, y, sample_weight=s)
    return ref.objective_


def dual_cd(C, fit_intercept=True, tol=TOL, **kw):
    return tikhon.LogisticRegression(C=C, fit_intercept=fit_intercept, solver="dual_cd", backend="cython",
                                     tol=tol, max_iter=50000, **kw)


def check_logistic(name, C, fit_intercept, weighted=False, X=None):
    Xd, y = dataset(name)
    X = Xd if X is None else X
    s = weights_for(X.shape[0]) if weighted else None
    model = dual_cd(C, fit_intercept).fit(X, y, sample_weight=s)
    assert model.converged_ and model.solver_ == "dual_cd" and model.backend_ == "cython"
    assert model.certificate_ <= TOL
    sw = np.ones(X.shape[0]) if s is None else s
    ours = objective_value("logistic", 1 / C, Xd, y, sw, model.coef_.ravel(), float(model.intercept_[0]))
    ref = sk_logistic(name, C, fit_intercept, weighted)
    best = min(ref, newton_optimum(name, C, fit_intercept, weighted))
    assert abs(ours - ref) / ref <= RTOL, (ours, ref)
    # both certificates are true bounds on the suboptimality (rounding slack 1e-13)
    assert (ours - best) / best <= min(model.certificate_, model.duality_gap_) + 1e-13
    if not fit_intercept:
        assert model.intercept_[0] == 0.0
    return model


# ---- the matrix: data sets x C x intercept ----
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_a9a_matches_sklearn(C, fit_intercept):
    check_logistic("a9a", C, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [False, True])
def test_a9a_large_C_matches_sklearn(fit_intercept):
    check_logistic("a9a5k", 100.0, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_reuters_matches_sklearn(C, fit_intercept):
    check_logistic("reuters", C, fit_intercept)


@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("C", [0.01, 1.0, 100.0])
def test_synthetic_matches_sklearn(C, fit_intercept):
    check_logistic("synthetic", C, fit_intercept)


@pytest.mark.parametrize("name,C", [("a9a5k", 1.0), ("reuters", 1.0), ("synthetic", 100.0)])
def test_sample_weights_match_sklearn(name, C):
    check_logistic(name, C, True, weighted=True)


def test_class_weight_matches_sklearn():
    X, y = dataset("reuters")
    model = dual_cd(1.0, class_weight="balanced").fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = SkLogisticRegression(C=1.0, class_weight="balanced", tol=1e-10, max_iter=10000).fit(X, y)
    counts = np.bincount((y > 0).astype(int))
    s = (len(y) / (2.0 * counts))[(y > 0).astype(int)]
    ours = objective_value("logistic", 1.0, X, y, s, model.coef_.ravel(), model.intercept_[0])
    theirs = objective_value("logistic", 1.0, X, y, s, ref.coef_.ravel(), ref.intercept_[0])
    assert abs(ours - theirs) / theirs <= RTOL


# ---- dtypes and index types, read in place ----
def variants(X):
    for dtype in (np.float64, np.float32):
        for itype in (np.int32, np.int64):
            V = sp.csr_matrix((X.data.astype(dtype), X.indices.copy(), X.indptr.copy()), shape=X.shape)
            V.indices, V.indptr = X.indices.astype(itype), X.indptr.astype(itype)  # scipy would downcast
            assert V.data.dtype == dtype and V.indices.dtype == itype
            yield f"{np.dtype(dtype).name}/{np.dtype(itype).name}", V


@pytest.mark.parametrize("name", ["a9a5k", "synthetic"])
def test_float32_float64_int32_int64(name):
    """Every layout solves the problem of its own values (float32 data are a different,
    exactly representable, data set) to the certified tolerance, matching sklearn on
    the same values in float64; the caller's arrays are used as they are."""
    X, y = dataset(name)
    C = 1.0
    for label, V in variants(X):
        data_before = V.data.copy()
        model = dual_cd(C, True).fit(V, y)
        assert np.array_equal(V.data, data_before), label
        X64 = V.astype(np.float64)
        if V.dtype == np.float64:
            ref = sk_logistic(name, C, True, False)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                sk = SkLogisticRegression(C=C, tol=1e-10, max_iter=10000,
                                          solver="newton-cholesky" if name.startswith("a9a") else "lbfgs").fit(X64, y)
            ref = objective_value("logistic", 1 / C, X64, y, np.ones(len(y)), sk.coef_.ravel(), sk.intercept_[0])
        ours = objective_value("logistic", 1 / C, X64, y, np.ones(len(y)), model.coef_.ravel(), model.intercept_[0])
        assert model.certificate_ <= TOL, label
        assert abs(ours - ref) / ref <= RTOL, (label, ours, ref)


def test_compiled_hessian_diagonal_equals_the_numpy_backend():
    """The extension's squared-entry product (Newton's Jacobi preconditioner on the cython
    backend) equals the numpy backend's blockwise squares, for every data/index type."""
    from tikhon.backends.numpy import NumpyBackend

    X, y = dataset("synthetic")
    s = np.random.default_rng(0).uniform(0.5, 2.0, len(y))
    w = np.random.default_rng(1).standard_normal(X.shape[1]) * 0.1
    for label, V in variants(X):
        cy = get_backend("cython", V)(V, y, s, LOSSES["logistic"])
        ref = NumpyBackend(V, y, s, LOSSES["logistic"])
        (dw, db), (rw, rb) = cy.hessian_diagonal(w, 0.2), ref.hessian_diagonal(w, 0.2)
        rtol = 1e-12 if V.dtype == np.float64 else 1e-5  # numpy's float32 margins are float32
        assert np.allclose(dw, rw, rtol=rtol, atol=1e-15 * np.abs(rw).max()), label
        assert db == pytest.approx(rb, rel=rtol), label


def test_backend_reads_the_callers_arrays():
    X, y = dataset("synthetic")
    for label, V in variants(X):
        be = get_backend("cython", V, loop="dual_cd")(V, y, np.ones(len(y)), LOSSES["logistic"])
        assert all(a is b for a, b in zip(be._parts, (V.data, V.indices, V.indptr))), label


def test_fit_peak_memory_is_small():
    """No copy of X: a fit's peak extra memory is a small fraction of the CSR's bytes."""
    X, y = synthetic(4000, 20000, 0.01, seed=3)  # 200 stored values per row
    csr_bytes = X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    model = dual_cd(1.0, True, tol=1e-6)
    tracemalloc.start()
    model.fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak <= 0.10 * csr_bytes, (peak, csr_bytes)


# ---- unsorted and duplicate indices ----
def test_unsorted_indices_give_the_same_fit():
    X, y = dataset("synthetic")
    rng = np.random.default_rng(5)
    U = X.copy()
    for i in range(U.shape[0]):
        a, b = U.indptr[i], U.indptr[i + 1]
        p = rng.permutation(b - a)
        U.indices[a:b] = U.indices[a:b][p]
        U.data[a:b] = U.data[a:b][p]
    U.has_sorted_indices = False
    m1 = dual_cd(1.0).fit(X, y)
    m2 = dual_cd(1.0).fit(U, y)
    assert abs(m1.objective_ - m2.objective_) / m1.objective_ <= 1e-10


def test_duplicate_indices_mean_their_sum():
    X, y = dataset("synthetic")
    n = X.shape[0]
    # split every stored value v into two entries v/3 and 2v/3 in the same column
    counts = np.diff(X.indptr)
    data = np.concatenate([X.data / 3, 2 * X.data / 3])
    rows = np.repeat(np.arange(n), counts)
    cols = X.indices
    order = np.argsort(np.concatenate([rows, rows]), kind="stable")
    D = sp.csr_matrix((data[order], np.concatenate([cols, cols])[order], np.concatenate(([0], np.cumsum(2 * counts)))),
                      shape=X.shape)
    assert D.nnz == 2 * X.nnz  # duplicates kept, not summed
    be = get_backend("cython", D, loop="dual_cd")(D, y, np.ones(n), LOSSES["logistic"])
    assert be.duplicate_rows > 0
    m1 = dual_cd(1.0).fit(X, y)
    m2 = dual_cd(1.0).fit(D, y)
    assert abs(m1.objective_ - m2.objective_) / m1.objective_ <= 1e-9
    np.testing.assert_allclose(m2.coef_, m1.coef_, rtol=1e-4, atol=1e-6)


def test_malformed_csr_is_rejected():
    X, y = dataset("synthetic")
    B = X.copy()
    B.indices[5] = X.shape[1] + 7
    with pytest.raises(ValueError, match="out of range"):
        get_backend("cython", B, loop="dual_cd")(B, y, np.ones(len(y)), LOSSES["logistic"])


# ---- ridge ----
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fit_intercept", [False, True])
@pytest.mark.parametrize("alpha", [0.1, 10.0, 1000.0])
def test_ridge_matches_sklearn(alpha, fit_intercept, weighted):
    X, y = dataset("synthetic")
    rng = np.random.default_rng(2)
    t = X @ rng.standard_normal(X.shape[1]) + 0.3 * rng.standard_normal(X.shape[0]) + 1.5
    s = weights_for(X.shape[0]) if weighted else np.ones(X.shape[0])
    model = tikhon.Ridge(alpha=alpha, fit_intercept=fit_intercept, solver="dual_cd", backend="cython",
                         tol=TOL, max_iter=50000).fit(X, t, sample_weight=s)
    assert model.converged_ and model.certificate_ <= TOL
    ref = SkRidge(alpha=alpha, fit_intercept=fit_intercept, solver="sparse_cg" if fit_intercept else "auto",
                  tol=1e-12, max_iter=100000).fit(X, t, sample_weight=s)
    ours = objective_value("squared", alpha, X, t, s, model.coef_, model.intercept_)
    theirs = objective_value("squared", alpha, X, t, s, ref.coef_, ref.intercept_)
    assert abs(ours - theirs) / theirs <= RTOL, (ours, theirs)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-3, atol=1e-4 * np.abs(ref.coef_).max())


def test_ridge_a9a_matches_sklearn():
    X, y = dataset("a9a")
    model = tikhon.Ridge(alpha=10.0, solver="dual_cd", backend="cython", tol=TOL, max_iter=50000).fit(X, y)
    ref = SkRidge(alpha=10.0, solver="sparse_cg", tol=1e-12, max_iter=100000).fit(X, y)
    s = np.ones(len(y))
    ours = objective_value("squared", 10.0, X, y, s, model.coef_, model.intercept_)
    theirs = objective_value("squared", 10.0, X, y, s, ref.coef_, ref.intercept_)
    assert abs(ours - theirs) / theirs <= RTOL


# ---- the certificate ----
@pytest.mark.parametrize("tol", [1e-3, 1e-5, 1e-7])
@pytest.mark.parametrize("fit_intercept", [False, True])
def test_gap_bounds_the_suboptimality(tol, fit_intercept):
    C = 1.0
    X, y = dataset("reuters")
    model = dual_cd(C, fit_intercept, tol=tol).fit(X, y)
    assert model.converged_ and model.certificate_ <= tol
    best = min(newton_optimum("reuters", C, fit_intercept, False), sk_logistic("reuters", C, fit_intercept, False))
    ours = objective_value("logistic", 1 / C, X, y, np.ones(len(y)), model.coef_.ravel(), model.intercept_[0])
    assert ours >= best * (1 - 1e-13)
    assert (ours - best) / best <= min(model.certificate_, model.duality_gap_) + 1e-13


def test_pass_limit_warns_with_the_gap():
    X, y = dataset("a9a5k")
    with pytest.warns(Warning, match="relative duality gap"):
        model = tikhon.LogisticRegression(C=100.0, solver="dual_cd", tol=1e-12, max_iter=3).fit(X, y)
    assert not model.converged_ and model.n_iter_ == 3


def test_seeded_permutations():
    X, y = dataset("synthetic")
    a = dual_cd(1.0, tol=1e-4, random_state=7).fit(X, y)
    b = dual_cd(1.0, tol=1e-4, random_state=7).fit(X, y)
    c = dual_cd(1.0, tol=1e-4, random_state=8).fit(X, y)
    assert np.array_equal(a.coef_, b.coef_) and a.n_iter_ == b.n_iter_
    assert not np.array_equal(a.coef_, c.coef_)


def test_dual_state_carries_labels_and_refuses_the_wrong_loss():
    """Logistic passes read y_i's sign from the permutation (bit 31); a state made for one
    loss is refused by the other's passes, and labels other than +-1 are refused."""
    from tikhon import _cd

    X, y = dataset("reuters")
    n, d = X.shape
    state = _cd.DualState(y, np.ones(n), np.zeros(n), np.zeros(d), 1.0, 0, None, labels=True)
    assert state.labels
    with pytest.raises(ValueError, match="labels=False"):
        _cd.ridge_epochs(X.data, X.indices, X.indptr, state, 1)
    plain = _cd.DualState(y, np.ones(n), np.zeros(n), np.zeros(d), 1.0, 0, None)
    with pytest.raises(ValueError, match="labels=True"):
        _cd.logistic_epochs(X.data, X.indices, X.indptr, plain, 1)
    bad = y.copy()
    bad[5] = 0.5
    with pytest.raises(ValueError, match="-1 or \\+1"):
        _cd.DualState(bad, np.ones(n), np.zeros(n), np.zeros(d), 1.0, 0, None, labels=True)


def test_uniform_weights_run_as_a_scaled_C():
    """Equal weights s (the passes skip reading s) solve the problem of C s: the same
    iterates as unit weights with C multiplied by s."""
    X, y = dataset("reuters")
    a = dual_cd(2.0, False, tol=1e-6, random_state=3).fit(X, y, sample_weight=np.full(len(y), 3.0))
    b = dual_cd(6.0, False, tol=1e-6, random_state=3).fit(X, y)
    assert a.n_iter_ == b.n_iter_
    assert np.allclose(a.coef_, b.coef_, rtol=1e-12, atol=1e-14)


# ---- selection and availability ----
def test_auto_runs_newton_on_the_compiled_csr_products():
    """dual_cd runs when asked for by name; auto is Newton-CG (measured faster on a9a and
    on synthetic text, see tikhon.solvers.choose_solver)."""
    X, y = synthetic(1500, 1200, 0.01, seed=2)
    model = tikhon.LogisticRegression().fit(X, y)
    assert (model.solver_, model.backend_) == ("newton", "cython")
    assert tikhon.LogisticRegression(solver="dual_cd").fit(X, y).solver_ == "dual_cd"


def test_missing_extension_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "tikhon._cd", None)  # makes `from tikhon import _cd` fail
    monkeypatch.delattr(tikhon, "_cd", raising=False)
    from tikhon.backends.cython import CythonBackend

    message = CythonBackend.availability()
    assert message is not None and "tikhon._cd" in message and "pip install" in message
    X, y = dataset("synthetic")
    with pytest.raises(BackendUnavailableError, match="pip install"):
        tikhon.LogisticRegression(backend="cython", solver="dual_cd").fit(X, y)
    # auto falls back to Newton-CG on another backend
    assert tikhon.LogisticRegression(tol=1e-4).fit(X, y).solver_ == "newton"


# ---- LIBLINEAR's switch to Newton at large C ----
def test_newton_finish_at_the_pass_limit():
    """With an intercept, multiplier steps restart the rate's estimate; the pass limit
    (newton_after, default 20) still hands over to Newton-CG, at the first check past it."""
    from tikhon.solvers import run

    X, y = dataset("a9a5k")
    obj = Objective("logistic", 1 / 0.1, True)
    be = get_backend("cython", X, loop="dual_cd")(X, y, np.ones(len(y)), obj.pointwise)
    theta0 = np.zeros(obj.n_params(X.shape[1]))
    pure = run("dual_cd", obj, be, theta0, 1e-10, 100_000, newton_after=None)
    assert pure.converged and "Newton-CG" not in pure.message and pure.n_iter > 20
    for limit in (8, 20):
        capped = run("dual_cd", obj, be, theta0, 1e-10, 100_000, newton_after=limit)
        passes = int(capped.message.split()[0])
        assert capped.converged and "Newton-CG" in capped.message and limit <= passes < limit + 8
        assert (capped.objective - pure.objective) / pure.objective <= 1e-10


def test_newton_finish_when_the_rate_is_slow_and_pure_dual_cd():
    """At large C the observed rate predicts many passes: after SWITCH_AFTER passes the
    fit is finished by Newton-CG; newton_after=None runs pure dual CD (hundreds of passes)."""
    from tikhon.solvers import Problem, dual_cd as dual_cd_solver, run

    X, y = dataset("a9a5k")
    obj = Objective("logistic", 1 / 100.0, True)
    be = get_backend("cython", X, loop="dual_cd")(X, y, np.ones(len(y)), obj.pointwise)
    theta0 = np.zeros(obj.n_params(X.shape[1]))
    finished = run("dual_cd", obj, be, theta0, 1e-9, 100_000)
    assert finished.converged and "Newton-CG" in finished.message and finished.certificate <= 1e-9
    passes = int(finished.message.split()[0])
    assert dual_cd_solver.SWITCH_AFTER <= passes < 30, finished.message
    # the Newton iterations join the fit's history, on its clock: it ends at the solution
    times = [t for t, _ in finished.history]
    assert times == sorted(times) and len(finished.history) > passes // 3
    assert finished.history[-1][1] == pytest.approx(finished.objective, rel=1e-12)
    pure = run("dual_cd", obj, be, theta0, 1e-7, 100_000, newton_after=None)
    assert pure.converged and "Newton-CG" not in pure.message and pure.n_iter > 300
    best = newton_optimum("a9a5k", 100.0, True, False)
    for result in (finished, pure):
        assert (result.objective - best) / best <= result.certificate + 1e-13
    assert Problem(obj, be).duality_gap(pure.theta)[2] >= 0
