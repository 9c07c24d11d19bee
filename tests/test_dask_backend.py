"""The dask backend solves the same problem as in memory, on a real dask.distributed
LocalCluster: same objective (relative difference <= 1e-8) as the in-memory Numba fit
with the same solver, for dense and CSR chunks, unequal / one / many chunks, with and
without intercept and sample weights, float32 and float64; lazy predictions; chunks
recomputed when not persisted; a worker killed mid-fit; a cluster whose workers all
died or paused makes the fit raise DaskPassError (never hang), a slow live pass does not.

Two module-scoped clusters of 2 workers x 1 thread: threads (fast start, most tests;
memory thresholds off, see conftest.IN_PROCESS_DASK_CONFIG) and processes (the killed
worker, last in the file); the dead and paused clusters are made per test.
"""
from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import scipy.sparse as sp

dask = pytest.importorskip("dask")
da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
pytest.importorskip("numba")

import tikhon  # noqa: E402
from tikhon.backends import BackendUnavailableError, get_backend  # noqa: E402
from tikhon.backends import _dask_chunks  # noqa: E402
from tikhon.backends import dask as dask_backend  # noqa: E402

from conftest import IN_PROCESS_DASK_CONFIG  # noqa: E402

REL = 1e-8
HANG = 120  # s: a fit that should raise and has not by then is declared hung (a hang guard)


def _cluster(processes, memory_limit="1GiB"):
    """2 workers x 1 thread; in-process workers get the memory thresholds off (they would
    measure the whole pytest process and pause)."""
    with dask.config.set(IN_PROCESS_DASK_CONFIG if not processes else {}):
        return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=processes,
                                        dashboard_address=":0", memory_limit=memory_limit)


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
    ref = tikhon.LogisticRegression(backend="numba", solver="newton").fit(X, y)
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
    ref = tikhon.Ridge(backend="numba", solver="newton", tol=1e-8).fit(X, y)
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
    ref = tikhon.LogisticRegression(backend="numba", solver="newton", tol=1e-8).fit(X, y)
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
    # (iteration counts differ since Newton-CG moves to the explicit Hessian on a9a in
    # memory, where a Gram pays, 2040905; the dask backend has no Gram and stays on CG)
    assert model.converged_ and ref.converged_
    _check_same(model, ref, Xd, X)


# ---- a dead or paused cluster: DaskPassError within the grace period, never a hang ----
def _after_launch(monkeypatch, n, action):
    """Run ``action()`` right after the backend's ``n``-th pass is launched (a few passes
    in, the chunks are persisted on the workers); returns the launch counter."""
    calls = {"n": 0}
    launch = dask_backend.DaskBackend._launch

    def launch_then_act(self, *args, **kwargs):
        futures = launch(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == n:
            action()
        return futures

    monkeypatch.setattr(dask_backend.DaskBackend, "_launch", launch_then_act)
    return calls


def _error_of_fit(client, fit):
    """The exception ``fit()`` raises, run in a thread with ``client`` current. Still
    running after HANG s: the test fails (closing the client cancels its futures, which
    ends the thread)."""
    def run():
        with client.as_current():
            fit()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        start, job = time.monotonic(), pool.submit(run)
        try:
            job.result(timeout=HANG)
        except concurrent.futures.TimeoutError:
            client.close()
            pytest.fail(f"the fit hung: neither a result nor an error after {HANG} s")
        except Exception as exc:  # noqa: BLE001 - the caller checks which
            print(f"the fit raised after {time.monotonic() - start:.1f} s: {exc!r}")
            return exc
    pytest.fail("the fit did not raise")


def _until(condition):
    """Wait (at most HANG s) until ``condition()`` holds."""
    deadline = time.monotonic() + HANG
    while not condition():
        assert time.monotonic() < deadline, "the cluster never reached the expected state"
        time.sleep(0.05)


def _short_grace():
    return dask.config.set({dask_backend.GRACE_CONFIG: 1})


def _pause(dask_worker):
    """Pause a worker as its memory monitor does (runs on the worker)."""
    from distributed.core import Status

    dask_worker.status = Status.paused


@pytest.fixture
def fresh_client():
    """A new in-process cluster (memory thresholds off: a paused worker stays paused)."""
    with _cluster(processes=False) as cluster, distributed.Client(cluster) as c:
        yield c


def test_workers_paused_mid_fit_raise(fresh_client, monkeypatch):
    X, y = _data("logistic", np.float64, False, n=1000, d=6)
    calls = _after_launch(monkeypatch, 4, lambda: fresh_client.run(_pause))
    with _short_grace():
        exc = _error_of_fit(fresh_client, lambda: tikhon.LogisticRegression().fit(_to_dask(X, 250), y))
    assert isinstance(exc, dask_backend.DaskPassError), repr(exc)
    assert calls["n"] >= 4 and "all 2 workers are paused" in str(exc) and "running a pass over the chunks" in str(exc)
    assert {w["status"] for w in fresh_client.scheduler_info()["workers"].values()} == {"paused"}


def test_in_process_workers_over_memory_limit_raise():
    """The suite's hang: in-process workers measure the whole process's memory, here
    above their memory limit's pause threshold (the default 80%), so they pause at once."""
    with dask.config.set({"distributed.worker.memory.pause": 0.8}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                           dashboard_address=":0", memory_limit="32MiB")
    X, y = _data("logistic", np.float64, False, n=200, d=4)
    with cluster, distributed.Client(cluster) as c:
        _until(lambda: {w["status"] for w in c.scheduler_info()["workers"].values()} == {"paused"})
        with _short_grace():
            exc = _error_of_fit(c, lambda: tikhon.LogisticRegression().fit(_to_dask(X, 50), y))
    assert isinstance(exc, dask_backend.DaskPassError), repr(exc)
    message = str(exc)
    assert "paused" in message and "persisting the chunks" in message
    assert "distributed.worker.memory.pause" in message and "\n" not in message


_SLOW = {"grace": 0.25, "slow_units": 0}  # module state: tasks pickle this function by reference
_CURVATURE = _dask_chunks.loss_grad_curvature


def _slow_first_pass(chunks, *args):
    """``loss_grad_curvature``, 4x the grace period slower in its first ``slow_units`` calls."""
    if _SLOW["slow_units"] > 0:
        _SLOW["slow_units"] -= 1
        time.sleep(4 * _SLOW["grace"])
    return _CURVATURE(chunks, *args)


def test_slow_live_pass_is_not_cut(client, monkeypatch):
    """Only the absence of usable workers counts, not a pass's duration: a pass 4x longer
    than the grace period on running workers completes, same solution."""
    X, y = _data("logistic", np.float64, False, n=600, d=5)
    ref = tikhon.LogisticRegression(backend="numba", solver="newton").fit(X, y)
    monkeypatch.setitem(_SLOW, "slow_units", 2)  # the first pass: one unit on each worker
    monkeypatch.setattr(_dask_chunks, "loss_grad_curvature", _slow_first_pass)
    Xd = _to_dask(X, 150)
    with dask.config.set({dask_backend.GRACE_CONFIG: _SLOW["grace"]}):
        model = tikhon.LogisticRegression(solver="newton").fit(Xd, y)
    assert _SLOW["slow_units"] == 0  # in-process workers: the same dict
    _check_same(model, ref, Xd, X)


def test_worker_grace_sources(client, monkeypatch):
    """The grace period: the constructor's argument, else the dask config value, else
    WORKER_GRACE; seconds or a dask time string; positive."""
    from tikhon.objective import LogisticLoss

    X, y = _data("logistic", np.float64, False, n=100, d=3)
    Xd, ones = _to_dask(X, 50), np.ones(100)
    assert dask_backend.DaskBackend(Xd, y, ones, LogisticLoss).worker_grace == dask_backend.WORKER_GRACE
    with dask.config.set({dask_backend.GRACE_CONFIG: "2 minutes"}):
        assert dask_backend.DaskBackend(Xd, y, ones, LogisticLoss).worker_grace == 120.0
        assert dask_backend.DaskBackend(Xd, y, ones, LogisticLoss, worker_grace=5).worker_grace == 5.0
    for bad in (0, -1.0, "soon", float("nan")):
        with pytest.raises(ValueError, match="worker_grace must be a positive"):
            dask_backend.DaskBackend(Xd, y, ones, LogisticLoss, worker_grace=bad)


@pytest.mark.parametrize("workers, usable, says", [
    ({}, False, "has no worker"),
    ({"a": {"status": "running"}, "b": {"status": "paused"}}, True, None),
    ({"a": {"status": "paused"}, "b": {"status": "paused"}}, False, "all 2 workers are paused"),
    # a paused worker still finishing a task is progressing
    ({"a": {"status": "paused", "metrics": {"task_counts": {"executing": 1}}}}, True, None),
    ({"a": {"status": "closing_gracefully"}}, False, "no worker is running (closing_gracefully: 1)"),
    (OSError("connection refused"), False, "the scheduler did not answer (connection refused)"),
])
def test_unusable_cluster_reasons(workers, usable, says):
    class Client:
        def scheduler_info(self):
            if isinstance(workers, Exception):
                raise workers
            return {"workers": workers}

    reason = dask_backend._unusable_reason(Client())
    assert (reason is None) == usable
    if says is not None:
        assert says in reason


def test_in_process_fixtures_never_pause(client, dask_client):
    """In-process workers measure the whole pytest process (840 MB after the earlier test
    files, past 80% of 1 GiB: the suite hung): the fixtures' workers have the memory
    thresholds off, and ``client`` keeps its 1 GiB limit (persist decisions use it)."""
    def fractions(dask_worker):
        m = dask_worker.memory_manager
        return m.memory_target_fraction, m.memory_spill_fraction, m.memory_pause_fraction

    for c in (client, dask_client):
        assert set(c.run(fractions).values()) == {(False, False, False)}
    assert {w["memory_limit"] for w in client.scheduler_info()["workers"].values()} == {2**30}


@pytest.fixture
def nanny_free_client(tmp_path):
    """A scheduler and two worker processes without nannies: a killed worker stays dead
    (a nanny would restart it)."""
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", "--no-nanny", "--nthreads", "1",
           "--memory-limit", "1GiB", "--no-dashboard", "--local-directory", str(tmp_path)]
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as cluster:
        procs = [subprocess.Popen(cmd + [cluster.scheduler_address], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for _ in range(2)]
        try:
            with distributed.Client(cluster) as c:
                c.wait_for_workers(2, timeout=HANG)
                yield c, procs
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()


def test_all_workers_killed_mid_fit_raise(nanny_free_client, monkeypatch):
    """Every worker process killed a few passes in, none restarted: DaskPassError after
    the grace period (before: the fit hung in client.gather with 0 workers)."""
    client, procs = nanny_free_client
    X, y = _data("logistic", np.float64, False, n=3000, d=10, seed=5)
    calls = _after_launch(monkeypatch, 4, lambda: [proc.kill() for proc in procs])
    with _short_grace():
        exc = _error_of_fit(client, lambda: tikhon.LogisticRegression().fit(_to_dask(X, 500), y))
    assert isinstance(exc, dask_backend.DaskPassError), repr(exc)
    assert calls["n"] >= 4 and "has no worker" in str(exc)
    assert client.scheduler_info()["workers"] == {}


# ---- processes=True (last: it kills a worker process) ----
def test_worker_killed_mid_fit(process_client, monkeypatch):
    """A worker process killed during a pass: Dask recomputes its chunks from their
    lineage and the fit completes with the in-memory solution, or the fit raises
    DaskPassError; never a wrong result."""
    X, y = _data("logistic", np.float64, False, n=3000, d=10, seed=5)
    ref = tikhon.LogisticRegression(backend="numba", solver="newton").fit(X, y)
    pids = process_client.run(os.getpid)
    victim = sorted(pids.values())[0]
    calls = _after_launch(monkeypatch, 4, lambda: os.kill(victim, signal.SIGKILL))
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
