"""Property tests (hypothesis) on random small problems, and repeatability.

* Kernels: every backend's data-term loss, gradient and Hessian-vector product equal an
  independent float64 NumPy computation (dense C/F or CSR, float32/float64, with or
  without intercept and weights; zero weights and empty rows included).
* Solvers: every solver's objective is within its certificate of a tight reference
  optimum, computed here by an exact dense Newton method (no tikhon code involved):
  ``P - P* <= duality_gap_ * P*`` (up to rounding).
* Threads: the same seed and thread count give bit-identical fits; 1 vs 2 threads agree.

Examples are bounded (``max_examples``) and ``deadline=None`` (Numba's first call may
load from its cache): fast and not flaky. Layouts are the ones whose Numba
specializations the suite already compiles.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import tikhon
from tikhon.backends import get_backend
from tikhon.objective import Objective

BACKENDS = [b for b in ("numpy", "numba", "cython", "dask") if b in tikhon.available_backends()]
IN_MEMORY = [b for b in BACKENDS if b != "dask"]
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                      HealthCheck.too_slow], derandomize=True)


# ---------------------------------------------------------------------------------
# Random problems
# ---------------------------------------------------------------------------------
@st.composite
def problems(draw, layouts=("dense_c", "dense_f", "csr"), dtypes=(np.float32, np.float64), n_min=1):
    n = draw(st.integers(n_min, 30))
    d = draw(st.integers(1, 7))
    layout = draw(st.sampled_from(layouts))
    dtype = draw(st.sampled_from(dtypes))
    loss = draw(st.sampled_from(["logistic", "squared"]))
    weighted = draw(st.booleans())
    intercept = draw(st.booleans())
    density = draw(st.sampled_from([0.0, 0.3, 1.0])) if layout == "csr" else 1.0
    scale = draw(st.sampled_from([0.1, 1.0, 10.0]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    X = rng.standard_normal((n, d)) * scale
    X[rng.random((n, d)) >= density] = 0.0
    X = X.astype(dtype)
    if loss == "logistic":
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    else:
        y = rng.standard_normal(n) * 3.0
    s = rng.uniform(0.0, 3.0, n) if weighted else np.ones(n)
    if weighted and n > 2:
        s[rng.random(n) < 0.2] = 0.0
    if s.sum() == 0:
        s[0] = 1.0
    Xin = {"dense_c": np.ascontiguousarray, "dense_f": np.asfortranarray, "csr": sp.csr_matrix}[layout](X)
    return dict(X=Xin, X64=X.astype(np.float64), y=y, s=s, loss=loss, intercept=intercept, rng=rng,
                lam=float(draw(st.sampled_from([0.01, 1.0, 30.0]))))


def _reference_terms(X64, y, s, loss, w, b, v, vb):
    """Data term, its gradient and Hessian product, in float64 from the formulas."""
    z = X64 @ w + b
    if loss == "logistic":
        value = np.sum(s * np.logaddexp(0.0, -y * z))
        deriv = -y / (1.0 + np.exp(np.clip(y * z, -700, 700)))
        p = 1.0 / (1.0 + np.exp(np.clip(-z, -700, 700)))
        curv = p * (1.0 - p)
    else:
        value = 0.5 * np.sum(s * (y - z) ** 2)
        deriv = z - y
        curv = np.ones_like(z)
    r = s * deriv
    t = s * curv * (X64 @ v + vb)
    return value, X64.T @ r, r.sum(), X64.T @ t, t.sum(), (np.abs(X64).T @ np.abs(r) + np.abs(r).sum(),
                                                           np.abs(X64).T @ np.abs(t) + np.abs(t).sum())


def _check_kernels(be, P):
    X64, y, s, rng = P["X64"], P["y"], P["s"], P["rng"]
    d = X64.shape[1]
    w, v = rng.standard_normal(d), rng.standard_normal(d)
    b, vb = (float(rng.standard_normal()), float(rng.standard_normal())) if P["intercept"] else (0.0, 0.0)
    ref_val, ref_gw, ref_gb, ref_hw, ref_hb, (mag_g, mag_h) = _reference_terms(X64, y, s, P["loss"], w, b, v, vb)
    # float32 X: products may run in float32 (numpy backend), so ~1e-7 relative per term
    rtol = 2e-5 if P["X"].dtype == np.float32 else 1e-10
    value, gw, gb = be.loss_grad(w, b)
    np.testing.assert_allclose(value, ref_val, rtol=rtol, atol=rtol * (1 + np.sum(s)))
    np.testing.assert_allclose(gw, ref_gw, rtol=0, atol=rtol * (1 + mag_g.max()))
    np.testing.assert_allclose(gb, ref_gb, rtol=0, atol=rtol * (1 + mag_g.max()))
    value2, gw2, gb2, product = be.loss_grad_hessian(w, b)
    np.testing.assert_allclose(value2, ref_val, rtol=rtol, atol=rtol * (1 + np.sum(s)))
    np.testing.assert_allclose(gw2, ref_gw, rtol=0, atol=rtol * (1 + mag_g.max()))
    hw, hb = product(v, vb)
    np.testing.assert_allclose(hw, ref_hw, rtol=0, atol=rtol * (1 + mag_h.max()))
    np.testing.assert_allclose(hb, ref_hb, rtol=0, atol=rtol * (1 + mag_h.max()))
    np.testing.assert_allclose(be.matvec(w), X64 @ w, rtol=0, atol=rtol * (1 + np.abs(X64) @ np.abs(w)).max())


@pytest.mark.parametrize("backend", IN_MEMORY)
@settings(max_examples=60, **SETTINGS)
@given(P=problems())
def test_kernels_equal_the_float64_reference(backend, P):
    X = P["X"]
    if backend == "cython" and not sp.issparse(X):
        X = sp.csr_matrix(X)  # the cython backend reads CSR only
    obj = Objective(P["loss"], P["lam"], P["intercept"])
    be = get_backend(backend, X)(X, P["y"], P["s"], obj.pointwise)
    _check_kernels(be, P)


@pytest.mark.skipif("dask" not in BACKENDS, reason="dask backend not available")
@settings(max_examples=6, **SETTINGS)
@given(P=problems(layouts=("dense_c",), n_min=2))
def test_dask_kernels_equal_the_float64_reference(dask_client, P):
    import dask.array as da

    X = da.from_array(P["X"], chunks=(max(1, P["X"].shape[0] // 2), -1))
    obj = Objective(P["loss"], P["lam"], P["intercept"])
    be = get_backend("dask", X)(X, P["y"], P["s"], obj.pointwise)
    _check_kernels(be, P)


# ---------------------------------------------------------------------------------
# Solvers: within the certificate of an exact optimum
# ---------------------------------------------------------------------------------
def reference_optimum(X64, y, s, loss, lam, intercept):
    """``P*`` by damped Newton with the exact (d+1)x(d+1) Hessian, in float64."""
    n, d = X64.shape
    A = np.hstack([X64, np.ones((n, 1))]) if intercept else X64
    pen = np.full(A.shape[1], lam)
    if intercept:
        pen[-1] = 0.0

    def P(theta):
        z = A @ theta
        data = np.sum(s * np.logaddexp(0.0, -y * z)) if loss == "logistic" else 0.5 * np.sum(s * (y - z) ** 2)
        return data + 0.5 * np.sum(pen * theta * theta)

    theta = np.zeros(A.shape[1])
    for _ in range(100):
        z = A @ theta
        if loss == "logistic":
            p = 1.0 / (1.0 + np.exp(np.clip(-z, -700, 700)))
            r, c = s * (p - (y > 0)), s * p * (1.0 - p)
        else:
            r, c = s * (z - y), s
        g = A.T @ r + pen * theta
        H = (A * c[:, None]).T @ A + np.diag(pen) + 1e-300 * np.eye(A.shape[1])
        step = np.linalg.lstsq(H, -g, rcond=None)[0]
        t, f0 = 1.0, P(theta)
        while P(theta + t * step) > f0 and t > 1e-12:
            t *= 0.5
        theta = theta + t * step
        if np.max(np.abs(g)) <= 1e-13 * max(1.0, np.sum(s)):
            break
    return P(theta)


def _primal64(P, coef, intercept):
    z = P["X64"] @ np.ravel(coef) + (intercept if P["intercept"] else 0.0)
    y, s = P["y"], P["s"]
    data = np.sum(s * np.logaddexp(0.0, -y * z)) if P["loss"] == "logistic" else 0.5 * np.sum(s * (y - z) ** 2)
    return data + 0.5 * P["lam"] * float(np.dot(np.ravel(coef), np.ravel(coef)))


_SOLVERS = {"numpy": ("newton", "newton_cholesky", "lbfgs", "gd", "sgd"),
            "numba": ("newton", "newton_cholesky", "lbfgs", "gd", "sgd"),
            "cython": ("dual_cd", "newton", "newton_cholesky")}
SOLVER_CASES = [(b, s) for b in IN_MEMORY for s in _SOLVERS[b]]


@pytest.mark.parametrize("backend, solver", SOLVER_CASES)
@settings(max_examples=15, **SETTINGS)
@given(data=st.data())
def test_solution_within_its_certificate(backend, solver, data):
    # numba's gd/sgd loops: float64, C order or CSR (the compiled specializations)
    loops = solver in ("gd", "sgd") and backend == "numba"
    P = data.draw(problems(layouts=("dense_c", "csr") if loops else ("dense_c", "dense_f", "csr"),
                           dtypes=(np.float64,) if loops else (np.float32, np.float64), n_min=2))
    X = sp.csr_matrix(P["X"]) if backend == "cython" else P["X"]
    y = P["y"]
    if P["loss"] == "logistic" and len(np.unique(y[P["s"] > 0])) < 2:
        y = y.copy()
        y[np.flatnonzero(P["s"] > 0)[0]] *= -1.0  # both classes need weight
        if len(np.unique(y[P["s"] > 0])) < 2:
            return
    P["y"] = y
    est = (tikhon.LogisticRegression(C=1.0 / P["lam"]) if P["loss"] == "logistic"
           else tikhon.Ridge(alpha=P["lam"]))
    est.set_params(backend=backend, solver=solver, fit_intercept=P["intercept"], tol=1e-7,
                   max_iter={"gd": 300, "sgd": 20}.get(solver, 200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # sgd/gd may stop early: the gap still bounds
        est.fit(X, y, sample_weight=P["s"])
    p_star = reference_optimum(P["X64"], y, P["s"], P["loss"], P["lam"], P["intercept"])
    primal = _primal64(P, est.coef_, np.ravel(est.intercept_)[0])
    f32 = P["X"].dtype == np.float32
    rounding = (1e-5 if f32 else 1e-9) * max(p_star, 1e-3) + 1e-12
    # the reported objective is the true P at the returned coefficients
    assert est.objective_ == pytest.approx(primal, rel=1e-5 if f32 else 1e-9, abs=1e-9)
    # and it is within its certificate of the optimum (the gap bounds the suboptimality)
    assert p_star <= primal + rounding
    assert primal - p_star <= est.duality_gap_ * p_star + rounding
    if est.converged_ and solver == "dual_cd":  # its stopping figure is a relative gap too
        assert primal - p_star <= est.certificate_ * p_star + rounding


# ---------------------------------------------------------------------------------
# Threads and repeatability
# ---------------------------------------------------------------------------------
def _big_dense(seed=0):
    """Large enough that the numba backend runs its passes on threads (> MIN_PARALLEL_WORK)."""
    X, y = tikhon.datasets.make_classification(1500, 60, seed=seed)
    return X, y


def _fit(backend, solver, X, y, n_threads, **params):
    with tikhon.config_context(n_threads=n_threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return tikhon.LogisticRegression(backend=backend, solver=solver, **params).fit(X, y)


THREAD_CASES = [("numba", "newton"), ("numba", "gd"), ("numba", "sgd"), ("numpy", "newton"),
                ("numpy", "sgd"), ("cython", "dual_cd")]


@pytest.mark.parametrize("backend, solver", [c for c in THREAD_CASES if c[0] in BACKENDS])
def test_same_seed_and_threads_bit_identical(backend, solver):
    X, y = _big_dense()
    if backend == "cython":
        X = sp.csr_matrix(X)
    params = dict(max_iter=40, random_state=3, tol=1e-8)
    a = _fit(backend, solver, X, y, 2, **params)
    b = _fit(backend, solver, X, y, 2, **params)
    assert a.coef_.tobytes() == b.coef_.tobytes() and a.intercept_.tobytes() == b.intercept_.tobytes()
    assert a.n_iter_ == b.n_iter_
    if solver in ("sgd", "dual_cd"):  # the seed matters (so the test above could fail)
        c = _fit(backend, solver, X, y, 2, **{**params, "random_state": 4})
        assert c.coef_.tobytes() != a.coef_.tobytes()


@pytest.mark.parametrize("solver", ["newton", "gd", "sgd"])
@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not available")
def test_one_and_two_threads_agree(solver):
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has a single thread here")
    X, y = _big_dense(1)
    params = dict(max_iter=40, random_state=5, tol=1e-8)
    one = _fit("numba", solver, X, y, 1, **params)
    two = _fit("numba", solver, X, y, 2, **params)
    # summation order differs between thread counts: agreement to rounding, amplified
    # a little by the iterations
    np.testing.assert_allclose(two.coef_, one.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(two.intercept_, one.intercept_, rtol=1e-7, atol=1e-9)
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored after the fit


@pytest.mark.skipif("dask" not in BACKENDS, reason="dask backend not available")
def test_dask_repeatable(dask_client):
    import dask.array as da

    X, y = tikhon.datasets.make_classification(400, 8, seed=2)
    Xd = da.from_array(X, chunks=(100, 8))
    a = _fit("dask", "newton", Xd, y, 2, tol=1e-8)
    b = _fit("dask", "newton", Xd, y, 2, tol=1e-8)
    c = _fit("dask", "newton", Xd, y, 1, tol=1e-8)
    assert a.coef_.tobytes() == b.coef_.tobytes()
    np.testing.assert_allclose(c.coef_, a.coef_, rtol=1e-7, atol=1e-9)
