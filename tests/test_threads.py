"""Fits from several Python threads at once: no abort on any Numba threading layer,
results equal (bit for bit) to the same fits run one after the other, and the process's
BLAS thread count as it was.

Before: under ``NUMBA_THREADING_LAYER=workqueue`` concurrent numba fits and
``LogisticRegressionCV(n_jobs=4)`` aborted the process ("Concurrent access has been
detected"); under the default layer concurrent numba solves left BLAS at one thread
for good (overlapping ``threadpool_limits`` pairs), so a later ``dual_cd`` fit on wide
data, whose objective's long dot products are threaded BLAS calls, changed.

Now no fit changes the BLAS thread count, and the solvers' long dot products do not
depend on it (:func:`tikhon.objective.dot`), so a ``dual_cd`` fit beside numba fits
equals its sequential result too. Only logistic numba fits are compared bit for bit:
the squared-loss kernels' sums (dense, and CSR when they store Hessian weights) depend
on the alignment of ``y`` and ``s`` in memory, which differs between threads' heaps,
so a Ridge fit in another thread can differ in the last bits even when run alone.

Each layer runs in a subprocess (an abort fails the test instead of killing pytest),
with 2 Numba and 2 BLAS threads whatever the machine, so that the passes really run
on threads and BLAS really has a count to lose.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

_SCRIPT = textwrap.dedent(r"""
    import json, threading
    import numpy as np, scipy.sparse as sp, scipy.optimize, scipy.linalg  # every BLAS loaded
    from threadpoolctl import threadpool_info
    import numba
    import tikhon

    def blas():
        return {p["filepath"]: p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}

    def sig(model):
        return [np.ravel(model.coef_).tolist(), np.ravel(model.intercept_).tolist(),
                np.ravel(model.n_iter_).tolist()]

    def concurrently(jobs):
        # every job in its own thread, started together
        start = threading.Barrier(len(jobs))
        out = [None] * len(jobs)
        def run(i):
            start.wait()
            out[i] = jobs[i]()
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    rng = np.random.default_rng(0)
    X = rng.standard_normal((3000, 30))  # 90,000 entries: passes on 2 threads
    y = np.where(X @ rng.standard_normal(30) + rng.standard_normal(3000) > 0, 1, -1)
    Xt = X[:300]                         # 9,000 entries: passes on one thread
    Xw = sp.random(1000, 12000, density=1e-3, format="csr", random_state=1)  # wide CSR
    yw = np.where(rng.random(1000) < 0.5, 1, -1)
    wide = lambda: sig(tikhon.LogisticRegression(C=10.0, solver="dual_cd").fit(Xw, yw))
    big = [lambda: sig(tikhon.LogisticRegression(backend="numba").fit(X, y)),
           lambda: sig(tikhon.LogisticRegression(C=0.1, solver="lbfgs", backend="numba").fit(X, y)),
           lambda: sig(tikhon.LogisticRegression(solver="gd", max_iter=30, backend="numba").fit(X, y)),
           lambda: sig(tikhon.LogisticRegression(backend="numba").fit(Xw, yw))]
    small = [lambda: sig(tikhon.LogisticRegression(backend="numba").fit(Xt, y[:300])),
             lambda: sig(tikhon.LogisticRegression(solver="lbfgs", backend="numba").fit(Xt, y[:300]))]

    report = {"blas_before": blas()}
    wide_ref = wide()
    big_ref = [f() for f in big]
    small_ref = [f() for f in small]
    # 1. numba fits with threaded passes, four threads at once, each fit twice
    jobs = [big[i % len(big)] for i in range(2 * len(big))]
    report["big_equal"] = [r == big_ref[i % len(big)] for i, r in enumerate(concurrently(jobs))]
    report["blas_after_big"] = blas()
    report["wide_after_equal"] = wide() == wide_ref
    # 2. a dual_cd fit beside numba fits (passes on two threads and on one)
    out = concurrently([wide] + small + big[:2])
    report["wide_beside_equal"] = out[0] == wide_ref
    report["small_equal"] = [r == small_ref[i] for i, r in enumerate(out[1:1 + len(small)])]
    report["wide_after_all_equal"] = wide() == wide_ref
    # 3. cross-validation on four threads (numba named: "auto" reads data this small with numpy)
    cv = lambda n_jobs: tikhon.LogisticRegressionCV(Cs=[0.1, 1.0, 10.0], cv=4, n_jobs=n_jobs,
                                                    backend="numba").fit(X, y)
    one, four = cv(1), cv(4)
    report["cv_backend"] = four.backend_
    report["cv_equal"] = bool(one.C_ == four.C_) and sig(one) == sig(four) and \
        np.array_equal(one.cv_scores_, four.cv_scores_)
    report["blas_after"] = blas()
    report["layer"] = numba.threading_layer()
    print(json.dumps(report))
""")


def _layer_missing(layer):
    """Why Numba's threading layer ``layer`` cannot start here (None if it can): asked of
    Numba itself in a subprocess (it finds libtbb where a bare import of its tbbpool
    module does not)."""
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    out = subprocess.run([sys.executable, "-c", "import numba; numba.get_num_threads(); "
                          "print(numba.threading_layer())"], env=env, capture_output=True,
                         text=True, timeout=120)
    if out.returncode == 0 and out.stdout.strip() == layer:
        return None
    last = (out.stderr.strip().splitlines() or ["?"])[-1]
    return f"Numba's {layer} threading layer cannot start here ({last})"


def _tbb_missing():
    return _layer_missing("tbb")


@pytest.mark.parametrize("layer", ["workqueue", "default", "tbb"])
def test_concurrent_fits_are_safe_and_equal_sequential_ones(layer):
    if layer == "tbb" and _tbb_missing():
        pytest.skip(_tbb_missing())
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer, NUMBA_NUM_THREADS="2",
               OPENBLAS_NUM_THREADS="2")
    env.pop("TIKHON_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    if layer != "default":
        assert report["layer"] == layer
    assert set(report["blas_before"].values()) == {2}
    assert all(report["big_equal"]), report["big_equal"]
    assert report["blas_after_big"] == report["blas_before"]
    assert report["wide_after_equal"]
    assert report["wide_beside_equal"]
    assert report["wide_after_all_equal"]
    assert all(report["small_equal"]), report["small_equal"]
    assert report["cv_backend"] == "numba" and report["cv_equal"]
    assert report["blas_after"] == report["blas_before"]



def test_long_dot_products_do_not_depend_on_the_blas_thread_count():
    """tikhon.objective.dot (the solvers' dot products) sums single-threaded chunks: the
    same bits whatever the BLAS thread count (np.dot differs above 10000 entries)."""
    import numpy as np
    from threadpoolctl import threadpool_info, threadpool_limits

    from tikhon.objective import DOT_CHUNK, dot

    if max(p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas") < 2:
        pytest.skip("BLAS runs on one thread here")
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(12 * DOT_CHUNK + 5), rng.standard_normal(12 * DOT_CHUNK + 5)
    threaded = dot(a, b)
    with threadpool_limits(1, user_api="blas"):
        assert dot(a, b) == threaded
    chunks = [np.dot(a[i:i + DOT_CHUNK], b[i:i + DOT_CHUNK]) for i in range(0, a.size, DOT_CHUNK)]
    assert threaded == sum(chunks)
    assert threaded == pytest.approx(float(np.dot(a, b)), rel=1e-12)
    assert dot(a[:100], b[:100]) == np.dot(a[:100], b[:100])


_DASK_BESIDE_NUMBA = textwrap.dedent(r"""
    import json, threading
    import numpy as np
    import dask.array as da
    from distributed import Client
    import tikhon

    if __name__ == "__main__":
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40000, 20))
        y = np.where(X[:, 0] + rng.standard_normal(40000) > 0, 1, -1)
        with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None):
            Xd = da.from_array(X, chunks=(5000, 20))
            on_dask = lambda: tikhon.LogisticRegression().fit(Xd, y).coef_.tolist()
            on_numba = lambda: tikhon.LogisticRegression(backend="numba").fit(X, y).coef_.tolist()
            refs = (on_dask(), on_numba())
            same = []
            def run(fit, ref, times):
                for _ in range(times):
                    same.append(fit() == ref)
            threads = [threading.Thread(target=run, args=(on_dask, refs[0], 2)),
                       threading.Thread(target=run, args=(on_numba, refs[1], 4))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            print(json.dumps(same))
""")


def test_in_process_dask_workers_beside_a_numba_fit_under_workqueue():
    """The dask backend's unit tasks and the numba backend share one launch guard.
    Before: each had its own lock, and a numba fit beside in-process dask workers
    aborted the process under workqueue."""
    pytest.importorskip("distributed")
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", NUMBA_NUM_THREADS="2")
    env.pop("TIKHON_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", _DASK_BESIDE_NUMBA], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    same = json.loads(out.stdout.strip().splitlines()[-1])
    assert same == [True] * 6


# --------------------------------------------------------------------------------------
# The thread budget: nested parallelism uses at most the cores, and results do not
# depend on the thread count.
# Before: every fit took Numba's default count (all cores) whatever ran beside it, and
# LogisticRegressionCV's fold threads did not get the caller's config_context: two
# fits in two threads, LogisticRegressionCV(n_jobs=2), GridSearchCV(n_jobs=2) on the
# threading backend and a dask worker with two threads each ran 4 Numba threads at once
# on 2 cores (counted as below). A pass's result depended on its thread count (the rows
# were split in one chunk per thread), so fits differed in the last bits with it.
# --------------------------------------------------------------------------------------
import threading  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402

import tikhon  # noqa: E402
from tikhon._config import available_cores  # noqa: E402


class _PassCounter:
    """Wraps the kernels' ``one_pass`` to count the Numba threads of tikhon's passes
    running at once: the count each call was launched with (``numba.get_num_threads()``
    in the calling thread, which Numba's parallel region uses), summed over threads."""

    def __init__(self, kernels):
        self.kernels, self.original = kernels, kernels.one_pass
        self.lock, self.now, self.peak, self.counts = threading.Lock(), 0, 0, set()

    def __call__(self, *args):
        import numba

        n = numba.get_num_threads()
        with self.lock:
            self.now += n
            self.peak = max(self.peak, self.now)
            self.counts.add(n)
        try:
            return self.original(*args)
        finally:
            with self.lock:
                self.now -= n


@pytest.fixture
def pass_counter(monkeypatch):
    """Count the passes' threads, on a machine taken as quiet: the cores other processes
    keep busy (which would make tikhon use one thread) are not looked at."""
    from tikhon.backends import _numba_kernels
    from tikhon.backends import numba as numba_backend

    counter = _PassCounter(_numba_kernels)
    monkeypatch.setattr(_numba_kernels, "one_pass", counter)
    monkeypatch.setattr(numba_backend, "cores_free", available_cores)
    return counter


def _nested_data():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((24000, 30))  # 720,000 entries a pass: several chunks
    y = np.where(X @ rng.standard_normal(30) + rng.standard_normal(24000) > 0, 1, -1)
    return X, y


def _together(jobs):
    """Run the callables in threads started together; their results in order."""
    start, out = threading.Barrier(len(jobs)), [None] * len(jobs)

    def run(i):
        start.wait()
        out[i] = jobs[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def _same_bits(a, b):
    return a.coef_.tobytes() == b.coef_.tobytes() and np.float64(a.intercept_) == np.float64(b.intercept_)


def _need_two_cores():
    if available_cores() < 2:
        pytest.skip("one core here: no budget to share")


def test_fits_in_user_threads_share_the_cores(pass_counter):
    _need_two_cores()
    X, y = _nested_data()
    fit = lambda C: tikhon.LogisticRegression(C=C, backend="numba", solver="newton").fit(X, y)  # noqa: E731
    alone = [fit(C) for C in (0.5, 2.0)]
    assert max(pass_counter.counts) == min(available_cores(), 2) or available_cores() > 2  # threads alone
    pass_counter.peak = 0
    together = _together([lambda: [fit(0.5) for _ in range(3)], lambda: [fit(2.0) for _ in range(3)]])
    assert pass_counter.peak <= max(available_cores(), 2), pass_counter.peak
    assert all(_same_bits(m, alone[0]) for m in together[0])
    assert all(_same_bits(m, alone[1]) for m in together[1])


def test_logistic_regression_cv_fold_threads_get_the_budget(pass_counter):
    _need_two_cores()
    X, y = _nested_data()
    cv = lambda n_jobs: tikhon.LogisticRegressionCV(Cs=[0.1, 1.0, 10.0], cv=4, backend="numba",  # noqa: E731
                                                    n_jobs=n_jobs).fit(X, y)
    one = cv(1)
    pass_counter.peak = 0
    two = cv(2)
    assert pass_counter.peak <= max(available_cores(), 2), pass_counter.peak
    assert _same_bits(one, two) and np.array_equal(one.cv_scores_, two.cv_scores_)
    # the caller's explicit budget reaches the fold threads (before: they took Numba's
    # default count, every core)
    pass_counter.counts = set()
    with tikhon.config_context(n_threads=1):
        cv(2)
    assert pass_counter.counts == {1}


def test_grid_search_on_joblib_threads_shares_the_cores(pass_counter):
    _need_two_cores()
    from joblib import parallel_config
    from sklearn.model_selection import GridSearchCV

    X, y = _nested_data()
    search = lambda n_jobs: GridSearchCV(tikhon.LogisticRegression(backend="numba", solver="newton"),  # noqa: E731
                                         {"C": [0.1, 1.0, 10.0, 100.0]}, cv=2, n_jobs=n_jobs).fit(X, y)
    alone = search(1)
    pass_counter.peak = 0
    with parallel_config(backend="threading"):
        nested = search(2)
    assert pass_counter.peak <= max(available_cores(), 2), pass_counter.peak
    assert np.array_equal(alone.cv_results_["mean_test_score"], nested.cv_results_["mean_test_score"])
    assert _same_bits(alone.best_estimator_, nested.best_estimator_)


def test_fits_in_dask_worker_threads_share_the_cores(pass_counter):
    _need_two_cores()
    distributed = pytest.importorskip("distributed")
    X, y = _nested_data()

    def fit(C):
        return tikhon.LogisticRegression(C=C, backend="numba", solver="newton").fit(X, y)

    alone = [fit(C) for C in (0.5, 2.0)]
    pass_counter.peak = 0
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        futures = [client.submit(fit, C, pure=False) for C in (0.5, 2.0, 0.5, 2.0)]
        fitted = client.gather(futures)
    assert pass_counter.peak <= max(available_cores(), 2), pass_counter.peak
    assert all(_same_bits(m, alone[i % 2]) for i, m in enumerate(fitted))


_LOKY_GRID = textwrap.dedent(r"""
    import json
    import numpy as np
    from sklearn.model_selection import GridSearchCV
    import tikhon

    def peak_threads(estimator, X, y):  # runs in the worker, after its fit
        from tikhon.backends.numba import threads_in_use
        return float(threads_in_use(reset=True)[1])

    if __name__ == "__main__":
        rng = np.random.default_rng(7)
        X = rng.standard_normal((24000, 30))
        y = np.where(X @ rng.standard_normal(30) + rng.standard_normal(24000) > 0, 1, -1)
        grid = {"C": [0.1, 1.0, 10.0, 100.0]}
        est = tikhon.LogisticRegression(backend="numba", solver="newton")
        search = GridSearchCV(est, grid, cv=2, n_jobs=2, scoring={"peak": peak_threads, "acc": "accuracy"},
                              refit="acc").fit(X, y)
        alone = GridSearchCV(est, grid, cv=2, n_jobs=1).fit(X, y)
        print(json.dumps({"peaks": search.cv_results_["mean_test_peak"].tolist(),
                          "same": bool(np.array_equal(search.cv_results_["mean_test_acc"],
                                                      alone.cv_results_["mean_test_score"])),
                          "coef": bool(search.best_estimator_.coef_.tobytes()
                                       == alone.best_estimator_.coef_.tobytes())}))
""")


def test_grid_search_in_loky_workers_keeps_their_limit():
    """joblib's loky workers get NUMBA_NUM_THREADS/OMP_NUM_THREADS = cores // n_jobs;
    the fits there use at most that (counted in the worker by threads_in_use)."""
    _need_two_cores()
    env = dict(os.environ)
    for name in ("TIKHON_BACKEND", "NUMBA_NUM_THREADS", "OMP_NUM_THREADS"):
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", _LOKY_GRID], env=env, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    report = json.loads(out.stdout.strip().splitlines()[-1])
    share = max(1, available_cores() // 2)
    assert 1 <= max(report["peaks"]) <= share, report
    assert report["same"] and report["coef"], report


@pytest.mark.parametrize("layout", ["C", "F", "csr"])
@pytest.mark.parametrize("solver", ["newton", "newton_cholesky", "lbfgs", "gd", "sgd"])
def test_results_do_not_depend_on_the_thread_count(layout, solver, request):
    """The rows are split into chunks chosen from the data alone, so 1 and 2 threads
    give the same sums: the same logistic fit to the bit, ridge to 1e-12 relative."""
    _need_two_cores()
    # gd and sgd run whole loops in Numba, whose compilation must see the real one_pass
    counter = None if solver in ("gd", "sgd") else request.getfixturevalue("pass_counter")
    import scipy.sparse as sp

    rng = np.random.default_rng(3)
    if layout == "csr":
        X = sp.random(20000, 300, density=0.02, format="csr", random_state=3)
    else:
        X = rng.standard_normal((6000, 40))
        X = np.asfortranarray(X) if layout == "F" else X
    y = np.where(rng.random(X.shape[0]) < 0.5, 1, -1)
    params = dict(backend="numba", solver=solver, max_iter=25, random_state=0)
    fits = []
    for n_threads in (1, 2):
        with tikhon.config_context(n_threads=n_threads), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(tikhon.LogisticRegression(**params).fit(X, y))
            fits.append(tikhon.Ridge(alpha=1.0, **params).fit(X, y) if solver != "sgd" else fits[-1])
    assert _same_bits(fits[0], fits[2])  # logistic: the same bits
    # ridge: its kernels' vectorized sums also follow the memory alignment of y and s
    # (see the top of this file), so two runs on one thread may differ in the last bit
    scale = np.max(np.abs(fits[1].coef_))
    np.testing.assert_allclose(fits[3].coef_, fits[1].coef_, rtol=0, atol=1e-12 * scale)
    np.testing.assert_allclose(fits[3].intercept_, fits[1].intercept_, rtol=1e-12, atol=1e-12 * scale)
    if counter is not None:  # the passes really ran on 1 and on 2 threads
        assert counter.counts == {1, 2}



# --------------------------------------------------------------------------------------
# Waiting: Numba's OpenMP threads wait passively when tikhon starts them
# Before: GNU OpenMP's default spin (GOMP_SPINCOUNT 300000) after every region; a pass
# followed by a BLAS call, or a pass beside busy processes, waited for spinning threads.
# libgomp prints what it read at load time with OMP_DISPLAY_ENV=VERBOSE; the marker
# separates scikit-learn's own vendored libgomp (loaded by `import tikhon`) from the
# one Numba loads.
# --------------------------------------------------------------------------------------
_WAIT_SCRIPT = textwrap.dedent(r"""
    import json, os, sys
    import tikhon
    sys.stderr.write("@@numba@@\n"); sys.stderr.flush()
    from tikhon.backends import _numba_kernels as k
    print(json.dumps({"state": k.threading_state, "left": os.environ.get("OMP_WAIT_POLICY")}))
""")


def _start_omp(extra_env):
    if _layer_missing("omp"):
        pytest.skip(_layer_missing("omp"))
    env = dict(os.environ, NUMBA_THREADING_LAYER="omp", OMP_DISPLAY_ENV="VERBOSE", **extra_env)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        if name not in extra_env:
            env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", _WAIT_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    numba_part = out.stderr.split("@@numba@@", 1)[1]
    return json.loads(out.stdout.strip().splitlines()[-1]), numba_part


def test_numba_openmp_threads_wait_passively_and_the_environment_is_left_as_it_was():
    report, displayed = _start_omp({})
    assert "GOMP_SPINCOUNT = '0'" in displayed, displayed  # passive: no spinning
    assert report["state"] == {"layer": "omp", "wait": "passive (set by tikhon)"}
    assert report["left"] is None  # not left in the user's environment


def test_the_users_own_wait_policy_wins():
    report, displayed = _start_omp({"OMP_WAIT_POLICY": "ACTIVE"})
    assert "OMP_WAIT_POLICY = 'ACTIVE'" in displayed, displayed
    assert report["state"]["wait"] == "as the environment sets it"
    assert report["left"] == "ACTIVE"


def test_passes_take_one_thread_when_other_processes_keep_the_cores_busy(monkeypatch):
    """/proc/stat says the CPUs were busy while this process was not: one thread."""
    _need_two_cores()
    from tikhon import _config
    from tikhon.backends import numba as numba_backend

    cores = available_cores()
    clock = {"t": 100.0, "busy": 0.0}
    monkeypatch.setattr(_config.time, "monotonic", lambda: clock["t"])
    monkeypatch.setattr(_config.time, "process_time", lambda: 0.0)  # this process: idle
    monkeypatch.setattr(_config, "_busy_seconds", lambda cpus: clock["busy"])
    monkeypatch.setattr(_config, "_load", {"time": None, "busy": 0.0, "own": 0.0, "others": 0.0})
    assert _config.cores_free() == cores  # first sample: nothing known yet
    clock["t"] += 1.0
    clock["busy"] += cores * 1.0  # every core busy for the whole second, not by us
    assert _config.cores_free() == 1
    with numba_backend._claim(cores) as granted:
        assert granted == 1
    clock["t"] += 1.0
    clock["busy"] += 0.0  # then idle
    assert _config.cores_free() == cores
    with numba_backend._claim(cores) as granted:
        assert granted == cores
