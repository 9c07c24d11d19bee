"""The cython backend's passes on several threads (issue 15's thread budget, issue 18's
sparse solvers on both cores).

A pass cuts the rows into chunks chosen from the data alone, sums each chunk into its
own buffer and reduces them in chunk order, and runs the chunks on the threads the fit's
budget grants: so 1 and 2 threads give the same bits, and both equal the NumPy
reference. Before: every pass ran on one thread (a kernel call over all rows), so a fit
given 2 threads used one core; the tests that count threads failed.

Threads are counted by wrapping the extension's kernels (which thread runs each call,
how many run at once). The machine is taken as quiet (``cores_free`` is the cores
available) unless a test says otherwise: other processes' load would make tikhon use
one thread. No test measures time.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import tikhon
from tikhon._config import available_cores
from tikhon.backends.numpy import NumpyBackend
from tikhon.objective import LOSSES

pytestmark = pytest.mark.skipif("cython" not in tikhon.available_backends(),
                                reason="the compiled extension tikhon._cd is not built")

RTOL = 1e-12
KERNELS = ("csr_matvec", "csr_rmatvec", "csr_hessian_product", "csr_matmat", "csr_rmatmat",
           "multinomial_loss_grad", "multinomial_hessian_product", "csr_gram_upper")


def _cython():
    from tikhon.backends import cython

    return cython


def make_csr(n=300, d=40, density=0.1, dtype=np.float64, index=np.int32, seed=0):
    """A CSR in ``dtype`` with ``index`` index arrays (kept as asked) and empty rows: the
    first, the last, a run inside (which a chunk boundary may fall in)."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    dense[[0, n - 1]] = 0.0
    dense[n // 3:n // 3 + 20] = 0.0
    X = sp.csr_matrix(dense)
    X = sp.csr_matrix((X.data.astype(dtype), X.indices, X.indptr), shape=(n, d))
    X.indices, X.indptr = X.indices.astype(index), X.indptr.astype(index)
    assert X.dtype == dtype and X.indices.dtype == index
    return X


class _Counter:
    """Stands in for ``tikhon._cd``: each kernel call is recorded (its thread, how many
    calls run at once) and passed on. ``delay``: seconds the main thread's calls wait
    first, so that a pool thread surely starts its chunks (a group no pool thread has
    started when the caller is done is run by the caller)."""

    def __init__(self, module):
        self._module = module
        self.delay = 0.0
        self.lock = threading.Lock()
        self.now = self.peak = 0
        self.threads = set()

    def reset(self):
        with self.lock:
            self.peak, self.threads = self.now, set()

    def __getattr__(self, name):
        attr = getattr(self._module, name)
        if name not in KERNELS:
            return attr

        def counted(*args, **kw):
            with self.lock:
                self.now += 1
                self.peak = max(self.peak, self.now)
                self.threads.add(threading.current_thread().name)
            try:
                if self.delay and threading.current_thread() is threading.main_thread():
                    time.sleep(self.delay)
                return attr(*args, **kw)
            finally:
                with self.lock:
                    self.now -= 1

        return counted


@pytest.fixture
def quiet(monkeypatch):
    """Other processes' load is not looked at (the passes may take every core)."""
    from tikhon.backends import numba as numba_backend

    monkeypatch.setattr(numba_backend, "cores_free", available_cores)


@pytest.fixture
def counter(monkeypatch, quiet):
    cy = _cython()
    counting = _Counter(cy._extension())
    monkeypatch.setattr(cy, "_extension", lambda: counting)
    return counting


def _need_two_cores():
    if available_cores() < 2:
        pytest.skip("one core here: no second thread to run a chunk")


def _backend(X, y, loss="logistic", K=1, chunks=None):
    be = _cython().CythonBackend(X, y, np.random.default_rng(5).uniform(0.5, 2.0, X.shape[0]), LOSSES[loss], K)
    if chunks is not None:  # small test data: force the chunks a large pass would have
        be._chunks = chunks
    return be


def _products(be, K):
    """Every threaded product of the backend at a fixed point, as a flat list of arrays."""
    rng = np.random.default_rng(9)
    d = be.n_features
    if K == 1:
        w, v = rng.standard_normal(d) * 0.3, rng.standard_normal(d)
        value, g, gb, hess = be.loss_grad_hessian(w, 0.1)
        hv, hb = hess(v, 0.2)
        diag, diag_b = be.hessian_diagonal(w, 0.1)
        c = rng.random(be.n_samples)
        return [be.matvec(w), be.rmatvec(rng.standard_normal(be.n_samples)), np.array([value, gb, hb, diag_b]),
                g, hv, diag, be.gram(c)]
    W, V = rng.standard_normal((K, d)) * 0.3, rng.standard_normal((K, d))
    value, G, gb, hess = be.loss_grad_hessian(W, np.zeros(K))
    HV, hb = hess(V, 0.2)
    diag, diag_b = be.hessian_diagonal(W, np.zeros(K))
    return [be.matvec(W), be.rmatvec(rng.standard_normal((be.n_samples, K))), np.array([value]), G, gb, HV, hb,
            diag, diag_b]


def _reference(X, y, K, loss):
    """The NumPy backend on X's float64 values (the kernels read float32 exactly and sum
    in double; NumpyBackend on float32 X would sum in float32)."""
    X64 = sp.csr_matrix((X.data.astype(np.float64), X.indices.astype(np.int64), X.indptr.astype(np.int64)),
                        shape=X.shape)
    ref = NumpyBackend(X64, y, np.random.default_rng(5).uniform(0.5, 2.0, X.shape[0]), LOSSES[loss], K)
    return ref


def _close(a, b, what):
    scale = max(1.0, float(np.max(np.abs(b)))) if np.size(b) else 1.0
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * scale, err_msg=what)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("index", [np.int32, np.int64])
@pytest.mark.parametrize("loss,K", [("logistic", 1), ("squared", 1), ("multinomial", 4), ("squared", 3)])
def test_products_do_not_depend_on_the_thread_count_and_equal_numpy(dtype, index, loss, K, counter):
    _need_two_cores()
    X = make_csr(dtype=dtype, index=index)
    rng = np.random.default_rng(2)
    n = X.shape[0]
    if loss == "multinomial":
        y = rng.integers(0, K, n).astype(np.float64)
    elif loss == "logistic":
        y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    else:
        y = rng.standard_normal((n, K) if K > 1 else n)
    results = {}
    counter.delay = 0.01
    for n_threads in (1, 2):
        counter.reset()
        with tikhon.config_context(n_threads=n_threads):
            results[n_threads] = _products(_backend(X, y, loss, K, chunks=3), K)
        assert len(counter.threads) == n_threads, counter.threads  # the chunks really ran on that many threads
    ref = _products(_reference(X, y, K, loss), K)
    for i, (one, two, want) in enumerate(zip(results[1], results[2], ref)):
        assert np.array_equal(one, two), f"product {i}: 1 and 2 threads differ"
        _close(one, want, f"product {i} against the numpy backend")


@pytest.mark.parametrize("solver", ["newton", "newton_cholesky"])
def test_fits_are_the_same_bits_on_1_and_2_threads(solver, counter):
    _need_two_cores()
    X = sp.random(20000, 60, density=0.15, format="csr", random_state=4)  # 180,000 entries: 2 chunks
    y = np.where(np.random.default_rng(4).random(20000) < 0.5, -1, 1)
    assert _cython().chunk_count(*X.shape, X.nnz, cpus=available_cores()) >= 2
    fits = {}
    counter.delay = 0.005
    for n_threads in (1, 2):
        counter.reset()
        with tikhon.config_context(n_threads=n_threads):
            fits[n_threads] = tikhon.LogisticRegression(backend="cython", solver=solver).fit(X, y)
        assert len(counter.threads) == n_threads
    assert fits[1].coef_.tobytes() == fits[2].coef_.tobytes()
    assert fits[1].intercept_ == fits[2].intercept_


def test_chunks_depend_on_the_data_only():
    cy = _cython()
    assert cy.chunk_count(32561, 123, 451592, cpus=2) == 2  # a9a
    assert cy.chunk_count(1000, 123, 14000, cpus=2) == 1  # too small to repay a thread
    assert cy.chunk_count(8000, 123, 112000, cpus=2) == 1
    assert cy.chunk_count(200000, 100000, 7500000, cpus=8) == 2  # the text CSR: 75 d stored entries
    assert cy.chunk_count(3, 10, 10**7, cpus=8) == 3  # at most one a row
    assert cy.chunk_count(7770, 8315, 339837, cpus=2) == 1  # reuters: a d-buffer per chunk would be 8% of X
    assert cy.chunk_count(4000, 20000, 800000, cpus=2) == 1
    bounds = cy.row_bounds(np.array([0, 0, 5, 5, 10, 10]), 2)
    assert bounds.tolist() == [0, 2, 5]  # 5 stored entries each side


def test_nested_fits_keep_to_the_cores(counter):
    """LogisticRegressionCV(n_jobs=2) runs folds in 2 threads: their passes together run
    at most one kernel call a core, and the result equals n_jobs=1's."""
    _need_two_cores()
    X = sp.random(16000, 80, density=0.15, format="csr", random_state=6)
    y = np.where(np.random.default_rng(6).random(16000) < 0.5, -1, 1)
    cv = lambda n_jobs: tikhon.LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, backend="cython",  # noqa: E731
                                                    solver="newton", n_jobs=n_jobs).fit(X, y)
    counter.delay = 0.002
    one = cv(1)
    counter.delay = 0.0
    assert any(name.startswith("tikhon-cd") for name in counter.threads)  # alone: the pool helps
    counter.reset()
    two = cv(2)
    assert counter.peak <= available_cores(), counter.peak
    assert np.array_equal(one.coef_, two.coef_) and np.array_equal(one.cv_scores_, two.cv_scores_)
    counter.reset()
    with tikhon.config_context(n_threads=1):  # the caller's budget reaches the fold threads
        cv(2)
    assert not any(name.startswith("tikhon-cd") for name in counter.threads), counter.threads


def test_a_budget_of_one_runs_every_pass_on_the_calling_thread(counter):
    X = sp.random(20000, 60, density=0.15, format="csr", random_state=4)
    y = np.where(np.random.default_rng(4).random(20000) < 0.5, -1, 1)
    assert _cython().chunk_count(*X.shape, X.nnz, cpus=2) == 2  # a pass that could take 2 threads
    with tikhon.config_context(n_threads=1):
        tikhon.LogisticRegression(backend="cython", solver="newton").fit(X, y)
    assert counter.threads == {threading.current_thread().name} and counter.peak == 1


def test_passes_take_one_thread_when_other_processes_keep_the_cores_busy(monkeypatch, counter):
    from tikhon.backends import numba as numba_backend

    monkeypatch.setattr(numba_backend, "cores_free", lambda: 1)
    X = sp.random(20000, 60, density=0.15, format="csr", random_state=4)
    y = np.where(np.random.default_rng(4).random(20000) < 0.5, -1, 1)
    assert _cython().chunk_count(*X.shape, X.nnz, cpus=2) == 2  # a pass that could take 2 threads
    with tikhon.config_context(n_threads=2):
        tikhon.LogisticRegression(backend="cython", solver="newton").fit(X, y)
    assert counter.threads == {threading.current_thread().name}


def test_an_error_in_a_chunk_reaches_the_caller(quiet):
    """A bad class index in the second thread's rows: the fit's error, the pool intact."""
    _need_two_cores()
    X = make_csr()
    y = np.random.default_rng(1).integers(0, 3, X.shape[0]).astype(np.float64)
    y[-5] = 7.0
    be = _backend(X, y, "multinomial", 3, chunks=2)
    with tikhon.config_context(n_threads=2), pytest.raises(ValueError, match=r"y\[295\] = 7.0 is not a class index"):
        be.loss_grad(np.zeros((3, X.shape[1])), np.zeros(3))
    y[-5] = 1.0
    with tikhon.config_context(n_threads=2):
        assert np.isfinite(be.loss_grad(np.zeros((3, X.shape[1])), np.zeros(3))[0])


def test_kernels_refuse_bounds_that_do_not_fit():
    from tikhon import _cd

    X = make_csr()
    r, parts = np.ones(X.shape[0]), np.empty((2, X.shape[1]))
    for bounds, message in [([0, 300], "2 row offsets, expected 3"), ([0, 100, 301], r"within \[0, 300\]"),
                            ([0, 200, 100], "non-decreasing")]:
        with pytest.raises(ValueError, match=message):
            _cd.csr_rmatvec(X.data, X.indices, X.indptr, r, parts, bounds=np.array(bounds))
    with pytest.raises(ValueError, match=r"row range \[5, 400\) not within \[0, 300\]"):
        _cd.csr_matvec(X.data, X.indices, X.indptr, np.ones(X.shape[1]), np.empty(300), 5, 400)


_FORK = textwrap.dedent(r"""
    import json, multiprocessing as mp
    import numpy as np, scipy.sparse as sp
    import tikhon
    from tikhon._config import available_cores
    from tikhon.backends import numba as nb, cython as cy
    from tikhon.objective import LOSSES
    nb.cores_free = available_cores
    X = sp.random(6000, 60, density=0.1, format="csr", random_state=4)
    be = cy.CythonBackend(X, np.ones(6000), np.ones(6000), LOSSES["logistic"])
    be._chunks = 2
    r = np.arange(6000.0)
    with tikhon.config_context(n_threads=2):
        want = be.rmatvec(r)   # the pool's threads started in the parent
        def child(queue):
            try:  # the pool runs work in the child (its threads were not copied by the fork)
                cy._executor().submit(int).result(timeout=20)
                alive = True
            except Exception:
                alive = False
            with tikhon.config_context(n_threads=2):
                queue.put((alive, be.rmatvec(r).tolist()))
        ctx = mp.get_context("fork")
        queue = ctx.Queue()
        p = ctx.Process(target=child, args=(queue,))
        p.start()
        alive, got = queue.get(timeout=60)
        p.join(60)
    print(json.dumps({"pool": alive, "same": bool(np.array_equal(got, want))}))
""")


def test_a_forked_child_runs_threaded_passes():
    """A fork copies the pool without its threads: the child makes its own (a pool that
    did not know its process ran nothing in the child: its passes' groups fell back to
    the calling thread, and work queued there waited for ever)."""
    _need_two_cores()
    out = subprocess.run([sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"pool": True, "same": True}


def test_multinomial_fit_on_threads_matches_one_thread(counter):
    _need_two_cores()
    X = sp.random(20000, 40, density=0.25, format="csr", random_state=8)
    y = np.random.default_rng(8).integers(0, 4, 20000)
    fits = []
    for n_threads in (1, 2):
        with tikhon.config_context(n_threads=n_threads), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(tikhon.LogisticRegression(backend="cython", solver="newton").fit(X, y))
    assert fits[0].coef_.tobytes() == fits[1].coef_.tobytes()
