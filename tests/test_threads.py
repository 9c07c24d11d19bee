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
    # 3. cross-validation on four threads (dense: "auto" is numba)
    cv = lambda n_jobs: tikhon.LogisticRegressionCV(Cs=[0.1, 1.0, 10.0], cv=4, n_jobs=n_jobs).fit(X, y)
    one, four = cv(1), cv(4)
    report["cv_backend"] = four.backend_
    report["cv_equal"] = bool(one.C_ == four.C_) and sig(one) == sig(four) and \
        np.array_equal(one.cv_scores_, four.cv_scores_)
    report["blas_after"] = blas()
    report["layer"] = numba.threading_layer()
    print(json.dumps(report))
""")


def _tbb_missing():
    try:
        from numba.np.ufunc import tbbpool  # noqa: F401
    except ImportError as exc:
        return f"Numba's tbb threading layer cannot load here ({exc}); pip install tbb"
    return None


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
