"""Several outputs on the dask backend (issue 16): a multinomial model's K classes and a
ridge's T targets, on a real in-process dask.distributed cluster (2 workers x 1 thread).

* The K-output passes (gradient, Hessian product, Hessian diagonal, ``X W^T``,
  ``R^T X``, the weighted product of ``curvature_norm``) equal the NumPy reference's to
  1e-12 relative: dense and CSR chunks, float32 and float64 (the chunks accumulate in
  float64, so float32 chunks are compared with the reference on the same values in
  float64), unequal chunks, more units than the reduction's fan-in, and chunks
  recomputed per pass (not persisted).
* Multinomial fits equal scikit-learn's ``LogisticRegression(tol=1e-10)`` (1e-8 relative
  objective, 1e-5 coefficients) on small dense and CSR data, with and without intercept
  and sample weights, float32 and float64; predictions stay lazy.
* Multi-target ridge equals scikit-learn's ``Ridge(alpha=array)``; ``y`` may be a dask
  array of shape (n, T).
* A K-output fit on paused workers raises DaskPassError within the grace period; one
  whose worker process is killed completes through Dask's recomputation (or raises
  DaskPassError).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("numba")

from scipy.special import logsumexp  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLR  # noqa: E402
from sklearn.linear_model import Ridge as SkRidge  # noqa: E402

import tikhon  # noqa: E402
from tikhon.backends import dask as dask_backend  # noqa: E402
from tikhon.backends.numpy import NumpyBackend  # noqa: E402
from tikhon.objective import MultinomialLoss, SquaredLoss  # noqa: E402

from test_dask_backend import _after_launch, _cluster, _error_of_fit, _on_worker, _pause, _short_grace  # noqa: E402

N, D, K = 480, 10, 4
CHUNKS = (100, 250, 7, 123)  # unequal, one of a few rows
REL = 1e-12


@pytest.fixture(scope="module")
def client():
    with _cluster(processes=False) as cluster, distributed.Client(cluster) as c:
        with c.as_current():
            yield c


def _X(sparse, dtype, n=N, d=D, seed=0):
    """Features with a third of zeros (so that CSR chunks have uneven rows) and a few
    empty rows."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.3, 2.0, d)
    X[rng.random((n, d)) < 0.35] = 0.0
    X[::97] = 0.0
    X = X.astype(dtype)
    return sp.csr_matrix(X) if sparse else X


def _labels(X, k, seed=1):
    rng = np.random.default_rng(seed)
    return np.argmax(np.asarray(X @ rng.standard_normal((X.shape[1], k))) + 1.5 * rng.gumbel(size=(X.shape[0], k)),
                     axis=1)


def _weights(n, seed=3):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.2, 3.0, n)
    s[rng.random(n) < 0.03] = 0.0
    return s


def _to_dask(X, rows):
    return da.from_array(X, chunks=(rows, X.shape[1]), asarray=not sp.issparse(X))


def _close(got, want, rel=REL):
    """Equal to ``rel`` relative to the largest entry of ``want``."""
    want = np.asarray(want, dtype=np.float64)
    np.testing.assert_allclose(got, want, rtol=rel, atol=rel * max(1.0, float(np.max(np.abs(want)))))


# ---- the K-output passes against the NumPy reference ----
PASS_CASES = [(sparse, dtype, loss, CHUNKS, True) for sparse in (False, True) for dtype in (np.float64, np.float32)
              for loss in ("multinomial", "squared")]
PASS_CASES += [(False, np.float32, "multinomial", 48, False),  # 10 chunks recomputed per pass (> SPLIT_EVERY)
               (True, np.float64, "squared", CHUNKS, False)]


@pytest.mark.parametrize("sparse, dtype, loss, rows, persist", PASS_CASES,
                         ids=[f"{'csr' if c[0] else 'dense'}-{np.dtype(c[1]).name}-{c[2]}-"
                              f"{'persisted' if c[4] else 'recomputed'}" for c in PASS_CASES])
def test_k_output_passes_match_numpy(client, sparse, dtype, loss, rows, persist):
    X = _X(sparse, dtype)
    rng = np.random.default_rng(7)
    fn = MultinomialLoss if loss == "multinomial" else SquaredLoss
    y = _labels(X, K).astype(np.float64) if loss == "multinomial" else rng.standard_normal((N, K)) + np.arange(K)
    s = _weights(N)
    be = dask_backend.DaskBackend(_to_dask(X, rows), y, s, fn, n_outputs=K, persist=persist)
    ref = NumpyBackend(X.astype(np.float64), y, s, fn, n_outputs=K)  # the same values, float64 products
    assert be.persisted == persist and be.multi_output and be.n_outputs == K
    assert be.weight_sum == pytest.approx(s.sum(), rel=1e-14)
    np.testing.assert_array_equal(be.y, y)
    W, b = 0.5 * rng.standard_normal((K, D)), rng.standard_normal(K)
    V, vb = rng.standard_normal((K, D)), rng.standard_normal(K)

    a1, g1, c1, p1 = ref.loss_grad_hessian(W, b)
    a2, g2, c2, p2 = be.loss_grad_hessian(W, b)
    assert g2.shape == (K, D) and c2.shape == (K,)
    assert a2 == pytest.approx(a1, rel=REL)
    _close(g2, g1)
    _close(c2, c1)
    for (hv, hb), (rv, rb) in [(p2(V, vb), p1(V, vb)), (p2(V, np.zeros(K)), p1(V, np.zeros(K)))]:
        assert hv.shape == (K, D) and hb.shape == (K,)
        _close(hv, rv)
        _close(hb, rb)
    a3, g3, c3 = be.loss_grad(W, b)
    assert a3 == pytest.approx(a1, rel=REL)
    _close(g3, g1)
    _close(c3, c1)
    dw, db = be.hessian_diagonal(W, b)  # reuses the curvature of loss_grad_hessian's pass
    rw, rb = ref.hessian_diagonal(W, b)
    assert dw.shape == (K, D)
    _close(dw, rw)
    _close(db, rb)
    dw2, _ = be.hessian_diagonal(2 * W, b)  # another point: recomputed
    _close(dw2, ref.hessian_diagonal(2 * W, b)[0])
    R = rng.standard_normal((N, K))
    _close(be.matvec(W), ref.matvec(W))
    _close(be.rmatvec(R), ref.rmatvec(R))
    _close(be.rmatvec(s), ref.rmatvec(s))  # an n-vector still (the squared loss's intercept anchor)
    assert be.curvature_norm() == pytest.approx(ref.curvature_norm(), rel=1e-10)


def test_one_output_unchanged(client):
    """K = 1 still takes the Numba kernels (the K-output tasks are for K > 1 only)."""
    X = _X(False, np.float64)
    y = np.where(_labels(X, 2) == 1, 1.0, -1.0)
    from tikhon.objective import LogisticLoss

    be = dask_backend.DaskBackend(_to_dask(X, CHUNKS), y, np.ones(N), LogisticLoss)
    w = np.linspace(-1, 1, D)
    a, g, c = be.loss_grad(w, 0.2)
    a1, g1, c1 = NumpyBackend(X, y, np.ones(N), LogisticLoss).loss_grad(w, 0.2)
    assert g.shape == (D,) and isinstance(c, float)
    assert a == pytest.approx(a1, rel=REL) and c == pytest.approx(c1, rel=REL, abs=REL)
    _close(g, g1)


# ---- multinomial fits against scikit-learn ----
def _multinomial_objective(X, index, s, C, W, b):
    Z = np.asarray(X @ W.T) + b
    return float(np.sum(s * (logsumexp(Z, axis=1) - Z[np.arange(len(index)), index])) + 0.5 / C * np.sum(W * W))


# each format and dtype with two of the four (intercept, weights) pairs, each pair twice
FIT_CASES = [(sparse, dtype, fi, weighted) for sparse in (False, True) for dtype in (np.float64, np.float32)
             for fi, weighted in (((True, True), (False, False)) if sparse == (dtype == np.float32)
                                  else ((True, False), (False, True)))]


@pytest.mark.parametrize("sparse, dtype, fit_intercept, weighted", FIT_CASES,
                         ids=[f"{'csr' if c[0] else 'dense'}-{np.dtype(c[1]).name}-{'b' if c[2] else 'nob'}-"
                              f"{'w' if c[3] else 'now'}" for c in FIT_CASES])
def test_multinomial_matches_sklearn(client, sparse, dtype, fit_intercept, weighted):
    C = 0.5
    X = _X(sparse, dtype, seed=11)
    y = np.array(["ant", "bee", "cat"])[_labels(X, 3, seed=12)]  # labels of any type
    s = _weights(N) if weighted else None
    X64 = X.astype(np.float64)  # the values tikhon solves on, in float64
    sk = SkLR(C=C, fit_intercept=fit_intercept, tol=1e-10, max_iter=10000).fit(X64, y, sample_weight=s)
    Xd = _to_dask(X, CHUNKS)
    sd = None if s is None else da.from_array(s, chunks=200)  # chunked unlike X: aligned by the backend
    model = tikhon.LogisticRegression(C=C, fit_intercept=fit_intercept, tol=1e-12, max_iter=500).fit(
        Xd, da.from_array(y, chunks=150), sample_weight=sd)
    assert model.backend_ == "dask" and model.converged_
    assert model.coef_.shape == (3, D) and model.intercept_.shape == (3,) and model.coef_.dtype == dtype
    np.testing.assert_array_equal(model.classes_, sk.classes_)

    index = np.searchsorted(model.classes_, y)
    se = np.ones(N) if s is None else s
    sk_b = sk.intercept_ if fit_intercept else np.zeros(3)
    theirs = _multinomial_objective(X64, index, se, C, sk.coef_, sk_b)
    assert abs(model.objective_ - theirs) <= 1e-8 * theirs, (model.objective_, theirs)
    scale = max(1.0, float(np.abs(sk.coef_).max()))
    assert np.abs(model.coef_ - sk.coef_).max() <= 1e-5 * scale
    if fit_intercept:  # defined up to a common shift: compared centred
        centred = model.intercept_ - model.intercept_.mean()
        assert np.abs(centred - (sk_b - sk_b.mean())).max() <= 1e-5 * scale
    else:
        assert not np.any(model.intercept_)

    # lazy predictions = the same model's in memory
    z = model.decision_function(Xd)
    assert isinstance(z, da.Array) and z.shape == (N, 3)
    tol = 1e-12 if dtype == np.float64 else 1e-6  # float32 products: blocked BLAS rounding
    np.testing.assert_allclose(z.compute(), model.decision_function(X), rtol=tol, atol=tol)
    proba = model.predict_proba(Xd)
    assert isinstance(proba, da.Array) and proba.shape == (N, 3)
    proba = proba.compute()
    np.testing.assert_allclose(proba, model.predict_proba(X), rtol=tol, atol=tol)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(model.predict_log_proba(Xd).compute(), model.predict_log_proba(X), rtol=tol, atol=tol)
    labels = model.predict(Xd)
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), model.predict(X))


@pytest.mark.parametrize("solver", ["newton", "lbfgs", "gd"])
def test_multinomial_solvers_match_numpy_backend(client, solver):
    """Every solver the dask backend runs follows the NumPy backend's (same solver):
    the optimum for newton and lbfgs; gd's deterministic iterates, 40 steps in."""
    X = _X(False, np.float64, seed=21)
    y = _labels(X, 5, seed=22)
    kw = dict(C=2.0, solver=solver, tol=1e-10, max_iter=40 if solver == "gd" else 500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gd stops at max_iter (and lbfgs may stop at its rounding floor)
        model = tikhon.LogisticRegression(**kw).fit(_to_dask(X, CHUNKS), y)
        ref = tikhon.LogisticRegression(backend="numpy", **kw).fit(X, y)
    assert model.backend_ == "dask" and model.solver_ == solver == ref.solver_
    assert model.coef_.shape == (5, D)
    assert model.objective_ == pytest.approx(ref.objective_, rel=1e-8)
    if solver == "gd":
        assert model.n_iter_ == ref.n_iter_ == 40
        np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-9)


def test_auto_and_unsupported_solvers_on_k_outputs(client):
    X = _X(False, np.float64, seed=31)
    y = _labels(X, 3, seed=32)
    Xd = _to_dask(X, CHUNKS)
    assert tikhon.LogisticRegression().fit(Xd, y).solver_ == "newton"  # no Gram on the cluster
    with pytest.raises(ValueError, match="does not run the 'newton_cholesky' solver"):
        tikhon.LogisticRegression(solver="newton_cholesky").fit(Xd, y)
    with pytest.raises(ValueError, match="dual_cd"):
        tikhon.LogisticRegression(solver="dual_cd").fit(Xd, y)


# ---- multi-target ridge against scikit-learn ----
RIDGE_CASES = [(False, True, np.float64), (False, False, np.float32), (True, False, np.float64),
               (True, True, np.float32)]  # each format, intercept and dtype twice


@pytest.mark.parametrize("sparse, fit_intercept, dtype", RIDGE_CASES,
                         ids=[f"{'csr' if c[0] else 'dense'}-{'b' if c[1] else 'nob'}-{np.dtype(c[2]).name}"
                              for c in RIDGE_CASES])
def test_multi_target_ridge_matches_sklearn(client, sparse, fit_intercept, dtype):
    rng = np.random.default_rng(5)
    X = _X(sparse, dtype, seed=41)
    X64 = np.asarray(X.astype(np.float64).todense()) if sparse else X.astype(np.float64)
    Y = X64 @ rng.standard_normal((D, 4)) + rng.standard_normal((N, 4)) * [0.1, 1, 3, 10] + np.arange(4)
    alpha = np.array([0.01, 1.0, 100.0, 3.0])
    s = _weights(N)
    sk = SkRidge(alpha=alpha, fit_intercept=fit_intercept, solver="cholesky").fit(X64, Y, sample_weight=s)
    Xd = _to_dask(X, CHUNKS)
    model = tikhon.Ridge(alpha=alpha, fit_intercept=fit_intercept, tol=1e-15, max_iter=1000).fit(
        Xd, da.from_array(Y, chunks=(150, 4)), sample_weight=s)  # y: a dask array (n, T)
    assert model.backend_ == "dask" and model.converged_
    assert model.coef_.shape == (4, D) and model.intercept_.shape == (4,) and model.n_iter_.shape == (4,)
    scale = max(1.0, float(np.abs(sk.coef_).max()))
    np.testing.assert_allclose(model.coef_, sk.coef_, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(model.intercept_, sk.intercept_ if fit_intercept else 0.0, atol=1e-6 * scale)
    pred = model.predict(Xd)
    assert isinstance(pred, da.Array) and pred.shape == (N, 4)
    np.testing.assert_allclose(pred.compute(), sk.predict(X64), rtol=1e-5, atol=1e-5 * scale)


def test_ridge_one_column_keeps_its_shape(client):
    """y of shape (n, 1) gives coef_ (1, d) and predictions (n, 1), as in memory (before:
    the dask input path flattened y, so coef_ was (d,))."""
    X = _X(False, np.float64, seed=51)
    y = X @ np.linspace(-1, 1, D) + 0.5
    Xd = _to_dask(X, CHUNKS)
    model = tikhon.Ridge(alpha=2.0).fit(Xd, da.from_array(y[:, None], chunks=(200, 1)))
    ref = tikhon.Ridge(alpha=2.0, backend="numpy").fit(X, y[:, None])
    assert model.coef_.shape == ref.coef_.shape == (1, D) and model.intercept_.shape == (1,)
    assert model.predict(Xd).compute().shape == (N, 1)
    np.testing.assert_allclose(model.coef_, ref.coef_, atol=1e-6)


def test_k_output_fit_keeps_chunks_on_workers(client, monkeypatch):
    """A multinomial fit never brings a chunk of X to the driver: the chunks refuse to be
    computed outside a worker, and everything gathered (reduced K d + K + 1 vectors, the
    certificate's n x K margins per unit) is smaller than one chunk."""
    from dask.sizeof import sizeof

    X = _X(False, np.float64, n=600, d=60, seed=81)
    y = _labels(X, 3, seed=82)
    Xd = _to_dask(X, 150)
    Xd = Xd.map_blocks(_on_worker, meta=Xd._meta)
    gathered, gather = [], client.gather

    def watched_gather(futures, *args, **kwargs):
        out = gather(futures, *args, **kwargs)
        gathered.append(out)
        return out

    monkeypatch.setattr(client, "gather", watched_gather)
    model = tikhon.LogisticRegression(tol=1e-10).fit(Xd, y)
    ref = tikhon.LogisticRegression(backend="numpy", solver="newton", tol=1e-10).fit(X, y)
    assert model.objective_ == pytest.approx(ref.objective_, rel=1e-9)
    assert gathered and max(sizeof(g) for g in gathered) < sizeof(X[:150])


# ---- a paused cluster: DaskPassError within the grace period ----
@pytest.fixture
def fresh_client():
    with _cluster(processes=False) as cluster, distributed.Client(cluster) as c:
        yield c


def test_k_output_fit_on_paused_workers_raises(fresh_client, monkeypatch):
    """Workers paused a few K-output passes in: DaskPassError after the grace period, no hang."""
    X = _X(False, np.float64, n=1000, seed=61)
    y = _labels(X, 3, seed=62)
    calls = _after_launch(monkeypatch, 4, lambda: fresh_client.run(_pause))
    with _short_grace():
        exc = _error_of_fit(fresh_client, lambda: tikhon.LogisticRegression().fit(_to_dask(X, 250), y))
    assert isinstance(exc, dask_backend.DaskPassError), repr(exc)
    assert calls["n"] >= 4 and "paused" in str(exc)


# ---- processes=True (last: it kills a worker process) ----
def test_k_output_fit_survives_a_killed_worker(monkeypatch):
    """A worker process killed a few K-output passes in: Dask recomputes its chunks and
    the multinomial probabilities kept on it from their lineage, and the fit ends at the
    NumPy backend's optimum, or raises DaskPassError; never a wrong result."""
    import os
    import signal

    X = _X(False, np.float64, n=1200, seed=71)
    y = _labels(X, 3, seed=72)
    ref = tikhon.LogisticRegression(backend="numpy", solver="newton").fit(X, y)
    with _cluster(processes=True) as cluster, distributed.Client(cluster) as c, c.as_current():
        victim = sorted(c.run(os.getpid).values())[0]
        calls = _after_launch(monkeypatch, 4, lambda: os.kill(victim, signal.SIGKILL))
        try:
            model = tikhon.LogisticRegression(solver="newton").fit(_to_dask(X, 300), y)
        except dask_backend.DaskPassError as exc:
            assert "workers died" in str(exc)
            return
    assert calls["n"] > 4  # the kill happened before the fit ended
    assert model.objective_ == pytest.approx(ref.objective_, rel=1e-8)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-4)
