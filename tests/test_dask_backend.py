"""The dask backend solves the same problem as in memory, on a real dask.distributed
LocalCluster: same objective (relative difference <= 1e-8) as the in-memory Numba fit
with the same solver, for dense and CSR chunks, unequal / one / many chunks, with and
without intercept and sample weights, float32 and float64; lazy predictions; chunks
recomputed when not persisted; a worker killed mid-fit.

Two module-scoped clusters of 2 workers x 1 thread: threads (fast start, most tests)
and processes (the killed worker, last in the file).
"""
from __future__ import annotations

import os
import signal
import sys

import numpy as np
import pytest
import scipy.sparse as sp

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("numba")

import tikhon  # noqa: E402
from tikhon.backends import BackendUnavailableError, get_backend  # noqa: E402
from tikhon.backends import dask as dask_backend  # noqa: E402

REL = 1e-8


def _cluster(processes):
    return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                    dashboard_address=":0", memory_limit="1GiB")


@pytest.fixture(scope="module")
def client():
    with _cluster(processes=False) as cluster, distributed.Client(cluster) as c:
        with c.as_current():
            yield c


@pytest.fixture(scope="module")
def process_client():
    with _cluster(processes=True) as cluster, distributed.Client(cluster) as c:
        with c.as_current():
            yield c


def _estimator(loss, **kw):
    if loss == "logistic":
        return tikhon.LogisticRegression(C=0.5, **kw)
    return tikhon.Ridge(alpha=3.0, **kw)


def _data(loss, dtype, sparse, n=1500, d=12, seed=0):
    rng = np.random.default_rng(seed)
    if sparse:
        X, y = tikhon.datasets.make_sparse_classification(n, d, density=0.3, dtype=dtype, seed=seed)
    else:
        X, y = tikhon.datasets.make_classification(n, d, dtype=dtype, seed=seed)
    if loss == "squared":
        y = np.asarray(X @ rng.standard_normal(d)).ravel() + 0.3 * rng.standard_normal(n) + 1.0
    return X, y


def _to_dask(X, rows):
    return da.from_array(X, chunks=(rows, X.shape[1]), asarray=not sp.issparse(X))


def _check_same(model, ref, X_dask, X):
    assert model.backend_ == "dask" and ref.backend_ == "numba"
    assert model.solver_ == ref.solver_
    assert abs(model.objective_ - ref.objective_) <= REL * abs(ref.objective_), (model.objective_, ref.objective_)
    scale = max(1.0, float(np.max(np.abs(ref.coef_))))
    # the objective decides; coefficients agree to the accuracy the stopping rule gives
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(model.intercept_, ref.intercept_, rtol=0, atol=1e-4 * scale)
    # lazy predictions on dask input = the same model's predictions on the in-memory data
    z = model.decision_function(X_dask) if hasattr(model, "decision_function") else model.predict(X_dask)
    assert isinstance(z, da.Array)
    z_mem = model.decision_function(X) if hasattr(model, "decision_function") else model.predict(X)
    tol = 1e-12 if X.dtype == np.float64 else 1e-6  # float32 products: blocked BLAS rounding
    np.testing.assert_allclose(z.compute(), z_mem, rtol=tol, atol=tol)
    if hasattr(model, "classes_"):
        labels = model.predict(X_dask)
        assert isinstance(labels, da.Array)
        clear = np.abs(z_mem) > 1e-4  # away from the boundary (float32 rounding)
        np.testing.assert_array_equal(labels.compute()[clear], model.predict(X)[clear])
        for method in ("predict_proba", "predict_log_proba"):
            p = getattr(model, method)(X_dask)
            assert isinstance(p, da.Array) and p.shape == (X.shape[0], 2)
            np.testing.assert_allclose(p.compute(), getattr(model, method)(X), rtol=tol, atol=tol)


N = 1500
CASES = [  # loss, dtype, sparse, row chunks, fit_intercept, weights, solver
    ("logistic", np.float64, False, (100, 900, 7, 493), True, True, "newton"),  # unequal
    ("logistic", np.float32, False, N // 11 + 1, False, False, "newton"),  # many (> SPLIT_EVERY)
    ("logistic", np.float64, True, (N,), True, False, "lbfgs"),  # one chunk, CSR
    ("logistic", np.float32, True, (1, 600, 899), False, True, "newton"),  # CSR float32
    ("squared", np.float64, False, (N,), True, True, "newton"),  # one chunk
    ("squared", np.float32, False, (700, 13, 787), False, True, "lbfgs"),
    ("squared", np.float64, True, 130, True, False, "newton"),  # many, CSR
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{np.dtype(c[1]).name}-{'csr' if c[2] else 'dense'}-"
                                               f"{'b' if c[4] else 'nob'}-{'w' if c[5] else 'now'}-{c[6]}"
                                               for c in CASES])
def test_same_solution_as_in_memory(client, case):
    loss, dtype, sparse, rows, intercept, weighted, solver = case
    X, y = _data(loss, dtype, sparse)
    s = np.random.default_rng(1).uniform(0.2, 3.0, X.shape[0]) if weighted else None
    kw = dict(fit_intercept=intercept, solver=solver)
    ref = _estimator(loss, backend="numba", **kw).fit(X, y, sample_weight=s)
    Xd = _to_dask(X, rows)
    yd = da.from_array(y, chunks=400)  # chunked unlike X: aligned by the backend
    sd = None if s is None else da.from_array(s, chunks=333)
    model = _estimator(loss, **kw).fit(Xd, yd, sample_weight=sd)  # "auto" picks dask
    _check_same(model, ref, Xd, X)


def test_backend_kernels_match_numba(client):
    """Every pass the solvers use, against the in-memory Numba backend on the same data."""
    from tikhon.backends.numba import NumbaBackend
    from tikhon.objective import LogisticLoss

    X, y = _data("logistic", np.float64, False, n=600, d=7)
    s = np.random.default_rng(2).uniform(0.5, 2.0, X.shape[0])
    ref = NumbaBackend(X, y, s, LogisticLoss)
    be = dask_backend.DaskBackend(_to_dask(X, (50, 500, 50)), y, s, LogisticLoss)
    assert be.persisted and be.weight_sum == pytest.approx(s.sum(), rel=1e-14)
    rng = np.random.default_rng(3)
    w, v, r = rng.standard_normal(7), rng.standard_normal(7), rng.standard_normal(600)
    a1, g1, c1, p1 = ref.loss_grad_hessian(w, 0.3)
    a2, g2, c2, p2 = be.loss_grad_hessian(w, 0.3)
    np.testing.assert_allclose([a2, c2], [a1, c1], rtol=1e-12)
    np.testing.assert_allclose(g2, g1, rtol=1e-12, atol=1e-12)
    for got, want in [(p2(v, 0.7), p1(v, 0.7)), (be.loss_grad(w, 0.3)[1:], ref.loss_grad(w, 0.3)[1:])]:
        np.testing.assert_allclose(got[0], want[0], rtol=1e-12, atol=1e-12)
        assert got[1] == pytest.approx(want[1], rel=1e-12, abs=1e-12)
    np.testing.assert_allclose(be.matvec(w), ref.matvec(w), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(be.rmatvec(r), ref.rmatvec(r), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(be.row_norms_sq(), ref.row_norms_sq(), rtol=1e-12)
    dw, db = be.hessian_diagonal(w, 0.3)  # reuses the Hessian weights computed above
    d = s * LogisticLoss.curvature(y, X @ w + 0.3)
    np.testing.assert_allclose(dw, (X * X).T @ d, rtol=1e-10)
    assert db == pytest.approx(d.sum(), rel=1e-10)
    assert be.hessian_diagonal(w * 2, 0.3)[1] != pytest.approx(db)  # other point: recomputed
    assert be.curvature_norm() == pytest.approx(ref.curvature_norm(), rel=1e-10)


def test_numba_threads_per_unit(client):
    """``config_context(n_threads=...)`` on the driver sets each unit's Numba threads."""
    from tikhon.backends.numba import NumbaBackend
    from tikhon.objective import SquaredLoss

    X, y = _data("squared", np.float32, True, n=400, d=6)
    w = np.linspace(-1, 1, 6)
    with tikhon.config_context(n_threads=2):
        be = dask_backend.DaskBackend(_to_dask(X, 90), y, np.ones(400), SquaredLoss)
    assert be._unit_threads == [2] * len(be._units)
    got, want = be.loss_grad(w, 0.5), NumbaBackend(X, y, np.ones(400), SquaredLoss).loss_grad(w, 0.5)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-12)
    assert got[0] == pytest.approx(want[0], rel=1e-12)


def test_chunks_recomputed_when_not_persisted(client, monkeypatch):
    """Data larger than the cluster's memory is not persisted: each pass regenerates
    the chunks from the graph (here seeded dask.array.random), same solution."""
    rng = da.random.default_rng(42)
    Xd = rng.standard_normal((1200, 10), chunks=(300, 10))
    X = Xd.compute()
    y = np.where(X @ np.linspace(-1, 1, 10) + 0.3 > 0, 1.0, -1.0)
    ref = tikhon.LogisticRegression(backend="numba").fit(X, y)
    monkeypatch.setattr(dask_backend, "PERSIST_FRACTION", 0.0)
    model = tikhon.LogisticRegression().fit(Xd, y)
    _check_same(model, ref, Xd, X)
    from tikhon.objective import LogisticLoss

    assert not dask_backend.DaskBackend(Xd, y, np.ones(1200), LogisticLoss).persisted


@pytest.mark.parametrize("bad, match", [(np.nan, "NaN or infinity"), (-np.inf, "NaN or infinity"),
                                        (1e60, "rescale X")])
def test_bad_chunk_refused(client, bad, match):
    """The estimators' checks of X run on each chunk where it lives."""
    X, y = _data("logistic", np.float64, False, n=200, d=4)
    X[150, 2] = bad
    with pytest.raises(ValueError, match=match):
        tikhon.LogisticRegression().fit(_to_dask(X, 60), y)


def test_column_chunks_and_feature_check(client):
    X, y = _data("squared", np.float64, False, n=300, d=6)
    Xd = da.from_array(X, chunks=(100, 4))  # two column chunks: merged once by rows
    model = tikhon.Ridge(tol=1e-8).fit(Xd, y)
    ref = tikhon.Ridge(backend="numba", tol=1e-8).fit(X, y)
    _check_same(model, ref, Xd, X)
    with pytest.raises(ValueError, match="features"):
        model.predict(Xd[:, :5])


def test_unsupported_solvers_say_so(client):
    X, y = _data("logistic", np.float64, False, n=200, d=4)
    Xd = _to_dask(X, 100)
    with pytest.raises(ValueError, match="does not run the 'sgd' solver"):
        tikhon.LogisticRegression(solver="sgd", learning_rate=0.1).fit(Xd, y)
    with pytest.raises(ValueError, match="does not run the 'dual_cd' solver"):
        tikhon.LogisticRegression(solver="dual_cd").fit(Xd, y)


def test_unavailable_dask_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` fails
    X = da.zeros((10, 3), chunks=5)
    for name in ("dask", "auto"):
        with pytest.raises(BackendUnavailableError, match=r'pip install "tikhon\[dask\]"'):
            get_backend(name, X)
    with pytest.raises(BackendUnavailableError, match="dask"):
        tikhon.Ridge().fit(X, np.zeros(10))


def test_auto_never_picks_dask_for_memory_input():
    X, y = _data("logistic", np.float64, False, n=50, d=3)
    assert get_backend("auto", X).name != "dask"
    with pytest.raises(ValueError, match="backend 'dask' cannot read dense"):
        get_backend("dask", X)


def _on_worker(block):
    """A chunk generator that refuses to run outside a worker: computing a chunk of X
    on the driver (a chunk moved to the driver) fails the fit."""
    distributed.get_worker()  # ValueError outside a worker
    return block


def test_a9a_csr_chunks_only_on_workers(client, monkeypatch):
    X, y = tikhon.datasets.load_a9a()
    ref = tikhon.LogisticRegression(backend="numba", tol=1e-8).fit(X, y)
    Xd = da.from_array(X, chunks=(5000, X.shape[1]), asarray=False)
    Xd = Xd.map_blocks(_on_worker, meta=Xd._meta)
    gathered = []
    gather = client.gather

    def watched_gather(futures, *args, **kwargs):  # what comes back to the driver
        out = gather(futures, *args, **kwargs)
        gathered.extend(out if isinstance(out, list) else [out])
        return out

    monkeypatch.setattr(client, "gather", watched_gather)
    model = tikhon.LogisticRegression(tol=1e-8).fit(Xd, da.from_array(y, chunks=8192))
    monkeypatch.undo()
    from dask.sizeof import sizeof

    # only (d + 2)-vectors and n-vectors (y, margins for the certificate), never a chunk of X
    assert gathered and max(sizeof(g) for g in gathered) < sizeof(X[:5000])
    assert model.n_iter_ == ref.n_iter_
    _check_same(model, ref, Xd, X)


# ---- processes=True (last: it kills a worker process) ----
def test_worker_killed_mid_fit(process_client, monkeypatch):
    """A worker process killed during a pass: Dask recomputes its chunks from their
    lineage and the fit completes with the in-memory solution, or the fit raises
    DaskPassError; never a wrong result."""
    X, y = _data("logistic", np.float64, False, n=3000, d=10, seed=5)
    ref = tikhon.LogisticRegression(backend="numba").fit(X, y)
    pids = process_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    calls = {"n": 0}
    launch = dask_backend.DaskBackend._launch

    def launch_then_kill(self, *args, **kwargs):
        futures = launch(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # a few passes in: the chunks are persisted on both workers
            os.kill(victim, signal.SIGKILL)
        return futures

    monkeypatch.setattr(dask_backend.DaskBackend, "_launch", launch_then_kill)
    Xd = _to_dask(X, 500)
    try:
        model = tikhon.LogisticRegression().fit(Xd, y)
    except dask_backend.DaskPassError as exc:
        assert "workers died" in str(exc)
        print("killed worker: the fit raised DaskPassError")
        return
    assert calls["n"] > 4  # the kill happened before the fit ended
    _check_same(model, ref, Xd, X)
    print("killed worker: the fit completed through recomputation")
