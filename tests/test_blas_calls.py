"""The dense Gram matrix of ``newton_cholesky`` on tikhon's own threads, not BLAS's.

Before: ``Backend.gram`` called scipy's ``dsyrk`` (or a ``gemm`` for signed weights)
per block of rows, on OpenBLAS's own threads whatever the fit's budget and the cores
free: beside 2 busy processes on 2 cores a Gram of 1e6 x 100 took 3 to 28 s instead of
0.3 s, and inside nested parallelism (fits in threads) each call took every core.
Now the dense Gram is tikhon's compiled kernel (:mod:`tikhon.backends._gram`) on the
threads granted to it, with chunks chosen from the data alone (the same bits on any
thread count), and no BLAS-3 call; nothing process-wide is changed.
"""
from __future__ import annotations

import threading

import numpy as np
import pytest
import scipy.linalg.blas

import tikhon
from tikhon._config import available_cores
from tikhon.backends import _blas
from tikhon.backends import numba as numba_backend
from tikhon.backends.numba import NumbaBackend
from tikhon.backends.numpy import NumpyBackend
from tikhon.objective import LOSSES


def _reference(X, c):
    """``[X 1]^T diag(c) [X 1]`` in float64 by plain NumPy (the definition)."""
    A = np.hstack([np.asarray(X, dtype=np.float64), np.ones((X.shape[0], 1))])
    return A.T @ (A * c[:, None])


def _rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)


def _backend(cls, X, n_outputs=1):
    n = X.shape[0]
    loss = LOSSES["logistic" if n_outputs == 1 else "multinomial"]()
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) if n_outputs == 1 else np.arange(n) % n_outputs
    return cls(X, y, np.ones(n), loss, n_outputs=n_outputs)


@pytest.fixture
def many_chunks(monkeypatch):
    """Small data split into several chunks (as on a machine of 4 CPUs)."""
    monkeypatch.setattr(_blas, "CHUNK_WORK", 1 << 12)
    monkeypatch.setattr(_blas, "MAX_CHUNKS", 4)


class _ChunkCounter:
    """Wraps ``_blas._chunk``: the chunks running at once (peak) and their threads; and
    ``_blas.dense_gram``: the thread counts the Grams were granted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0
        self.threads, self.granted = set(), set()
        self.original, self.original_gram = _blas._chunk, _blas.dense_gram

    def gram(self, X, c, threads=1):
        with self.lock:
            self.granted.add(threads)
        return self.original_gram(X, c, threads)

    def __call__(self, *args):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
            self.threads.add(threading.get_ident())
        try:
            return self.original(*args)
        finally:
            with self.lock:
                self.now -= 1


@pytest.fixture
def chunk_counter(monkeypatch):
    counter = _ChunkCounter()
    monkeypatch.setattr(_blas, "_chunk", counter)
    monkeypatch.setattr(_blas, "dense_gram", counter.gram)
    return counter


def _data(n, d, seed=0, order="C", dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(dtype)
    return np.asfortranarray(X) if order == "F" else X


@pytest.mark.parametrize("cls", [NumpyBackend, NumbaBackend])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(1, 1), (7, 2), (300, 3), (1000, 13), (2051, 128), (999, 37)])
def test_dense_gram_equals_the_reference(cls, order, dtype, shape, many_chunks):
    """Every shape (tiles of 4 and their remainders, strips and their remainders,
    several chunks), layout and dtype; weights positive, of both signs, some zero."""
    X = _data(*shape, order=order, dtype=dtype)
    rng = np.random.default_rng(1)
    backend = _backend(cls, X)
    for c in (rng.random(shape[0]), rng.standard_normal(shape[0]),
              np.where(rng.random(shape[0]) < 0.5, 0.0, 1.0)):
        G = backend.gram(c)
        assert G.shape == (shape[1] + 1,) * 2 and G.dtype == np.float64
        assert np.array_equal(G, G.T)
        assert _rel(G, _reference(X, c)) <= 1e-12


def test_strided_and_memory_mapped_x_are_read_in_place(tmp_path):
    X = _data(3000, 20)
    c = np.random.default_rng(2).random(1500)
    strided = X[::2]  # neither C- nor F-contiguous
    assert _rel(_backend(NumpyBackend, strided).gram(c), _reference(strided, c)) <= 1e-12
    path = tmp_path / "x.npy"
    np.save(path, X)
    mapped = np.load(path, mmap_mode="r")
    c = np.random.default_rng(3).random(3000)
    assert _rel(_backend(NumbaBackend, mapped).gram(c), _reference(X, c)) <= 1e-12


def test_the_kernel_and_the_blas_fallback_agree(monkeypatch):
    """Where no compiled kernel can run (NUMBA_DISABLE_JIT), BLAS computes the Gram."""
    X = _data(4000, 50)
    c = np.random.default_rng(4).random(4000)
    backend = _backend(NumpyBackend, X)
    compiled = backend.gram(c)
    monkeypatch.setattr(_blas, "_compiled", {"_strip_upper": None, "_cholesky_rows": None})  # NUMBA_DISABLE_JIT
    assert not _blas.available()
    assert _rel(backend.gram(c), compiled) <= 1e-12


@pytest.mark.parametrize("signed", [False, True])
def test_gram_is_the_same_bits_on_any_thread_count(signed, many_chunks, chunk_counter):
    X = _data(5000, 30)
    rng = np.random.default_rng(5)
    c = rng.standard_normal(5000) if signed else rng.random(5000)
    assert _blas.chunk_count(*X.shape) == 4
    results = [_blas.dense_gram(X, c, threads) for threads in (1, 2, 3, 4)]
    assert all(np.array_equal(G, results[0]) for G in results[1:])
    assert chunk_counter.calls == 16 and len(chunk_counter.threads) > 1  # really on threads


@pytest.mark.parametrize("cls", ["numpy", "numba"])
def test_newton_cholesky_fit_does_not_depend_on_the_thread_count(cls, many_chunks, chunk_counter,
                                                                  monkeypatch):
    monkeypatch.setattr(numba_backend, "cores_free", available_cores)  # the machine taken as quiet
    if available_cores() < 2:
        pytest.skip("one core here: one thread only")
    X = _data(3000, 40, seed=6)
    y = np.where(X @ np.linspace(-1, 1, 40) + np.random.default_rng(6).standard_normal(3000) > 0, 1, -1)
    fits = {}
    for n_threads in (1, 2):
        chunk_counter.granted = set()
        with tikhon.config_context(n_threads=n_threads):
            fits[n_threads] = (tikhon.LogisticRegression(solver="newton_cholesky", backend=cls).fit(X, y),
                               tikhon.Ridge(alpha=1.0, solver="newton_cholesky", backend=cls).fit(X, y))
        assert chunk_counter.granted == {n_threads}  # the Grams ran on 1, then on 2 threads
    for one, two in zip(fits[1], fits[2]):
        scale = np.max(np.abs(one.coef_))
        np.testing.assert_allclose(two.coef_, one.coef_, rtol=0, atol=1e-12 * scale)
        np.testing.assert_allclose(two.intercept_, one.intercept_, rtol=1e-12, atol=1e-12 * scale)


def test_multinomial_newton_cholesky_grams_on_tikhons_threads(monkeypatch, chunk_counter):
    """K (K + 1) / 2 Grams with weights of both signs: none by BLAS-3."""
    monkeypatch.setattr(scipy.linalg.blas, "dsyrk", _forbidden)
    X = _data(900, 6, seed=7)
    y = np.argmax(X[:, :3] + 0.5 * np.random.default_rng(7).standard_normal((900, 3)), axis=1)
    model = tikhon.LogisticRegression(solver="newton_cholesky", backend="numpy").fit(X, y)
    assert model.converged_ and chunk_counter.calls >= 6


def _forbidden(*args, **kwargs):
    raise AssertionError("called a BLAS/LAPACK routine that runs on OpenBLAS's threads")


@pytest.mark.parametrize("cls", ["numpy", "numba"])
def test_under_load_the_gram_takes_one_thread_and_no_blas3_call(cls, monkeypatch, many_chunks, chunk_counter):
    """Other processes keep the cores busy (cores_free() == 1): the Gram's chunks run on
    the calling thread only, even with a budget of 2; before, BLAS's threads ran it."""
    monkeypatch.setattr(numba_backend, "cores_free", lambda: 1)
    monkeypatch.setattr(scipy.linalg.blas, "dsyrk", _forbidden)
    X = _data(3000, 40, seed=8)
    y = np.where(X[:, 0] > 0, 1, -1)
    with tikhon.config_context(n_threads=2):
        tikhon.LogisticRegression(solver="newton_cholesky", backend=cls).fit(X, y)
    assert chunk_counter.granted == {1} and chunk_counter.peak == 1 and len(chunk_counter.threads) == 1


def test_fits_in_threads_keep_to_the_cores(monkeypatch, many_chunks, chunk_counter):
    """Nested parallelism: newton_cholesky fits in 3 user threads at once use at most
    the cores for their Grams (each granted from the cores the others leave), and each
    fit equals its sequential result."""
    monkeypatch.setattr(numba_backend, "cores_free", available_cores)
    X = _data(3000, 40, seed=9)
    y = np.where(X[:, 1] + 0.3 * X[:, 2] > 0, 1, -1)
    fit = lambda C: tikhon.LogisticRegression(C=C, solver="newton_cholesky", backend="numba").fit(X, y)  # noqa: E731
    alone = [fit(C).coef_ for C in (0.1, 1.0, 10.0)]
    chunk_counter.peak = 0
    start, out = threading.Barrier(3), [None] * 3

    def run(i, C):
        start.wait()
        out[i] = [fit(C).coef_ for _ in range(3)]

    threads = [threading.Thread(target=run, args=(i, C)) for i, C in enumerate((0.1, 1.0, 10.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert 0 < chunk_counter.peak <= max(available_cores(), 3), chunk_counter.peak
    for i in range(3):
        for coef in out[i]:
            np.testing.assert_allclose(coef, alone[i], rtol=0, atol=1e-12 * np.max(np.abs(alone[i])))


def test_nothing_process_wide_changes_during_a_fit(many_chunks):
    """BLAS's thread counts (threadpoolctl), seen from another thread while fits run
    and after them, and Numba's count: as they were."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    import numba

    def blas():
        return sorted((i["filepath"], i["num_threads"]) for i in threadpoolctl.threadpool_info())

    before, numba_before = blas(), numba.get_num_threads()
    X = _data(20000, 60, seed=10)
    y = np.where(X[:, 0] - X[:, 3] > 0, 1, -1)
    seen, done = [], threading.Event()

    def watch():
        while not done.is_set():
            seen.append(blas())

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for backend in ("numpy", "numba"):
            for _ in range(3):
                tikhon.LogisticRegression(solver="newton_cholesky", backend=backend).fit(X, y)
    finally:
        done.set()
        watcher.join()
    assert seen and all(s == before for s in seen)
    assert blas() == before and numba.get_num_threads() == numba_before


# ---- the Newton step's Cholesky solve ------------------------------------------------
@pytest.mark.parametrize("p", [1, 2, 5, 101, 129, 300])
def test_cholesky_solve_equals_lapacks(p):
    from scipy.linalg import cho_factor, cho_solve

    rng = np.random.default_rng(p)
    A = rng.standard_normal((p + 20, p))
    H, g = A.T @ A + 0.1 * np.eye(p), rng.standard_normal(p)
    H_before, g_before = H.copy(), g.copy()
    x = _blas.cholesky_solve(H, g)
    assert np.array_equal(H, H_before) and np.array_equal(g, g_before)  # inputs left as they were
    assert _rel(x, cho_solve(cho_factor(H), g)) <= 1e-12


@pytest.mark.parametrize("H", [-np.eye(3), np.diag([1.0, 0.0, 2.0]), np.full((2, 2), np.nan),
                               np.array([[1.0, 2.0], [2.0, 1.0]])])
def test_cholesky_solve_refuses_what_is_not_positive_definite(H):
    assert _blas.cholesky_solve(H, np.ones(len(H))) is None


def test_newton_cholesky_makes_no_lapack_cholesky_call(monkeypatch):
    """Before: scipy's cho_factor (OpenBLAS's dpotrf, threaded at every size) each
    iteration: 66 ms a call for a 129 x 129 Hessian beside 2 busy processes."""
    import scipy.linalg

    from tikhon.solvers import newton_cholesky

    monkeypatch.setattr(scipy.linalg, "cho_factor", _forbidden)
    monkeypatch.setattr(newton_cholesky, "cho_factor", _forbidden, raising=False)
    X = _data(2000, 128, seed=11)
    y = np.where(X[:, :5].sum(axis=1) > 0, 1, -1)
    for backend in ("numpy", "numba"):
        model = tikhon.LogisticRegression(solver="newton_cholesky", backend=backend).fit(X, y)
        assert model.converged_
        assert tikhon.Ridge(solver="newton_cholesky", backend=backend).fit(X, y).converged_


# ---- the numpy backend's K-column products -------------------------------------------
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5000, 40, 3), (700, 128, 10), (30, 5, 2), (3000, 17, 7)])
def test_k_column_products_equal_numpys(order, dtype, shape):
    n, d, K = shape
    X = _data(n, d, seed=12, order=order, dtype=dtype)
    rng = np.random.default_rng(12)
    W, R = rng.standard_normal((K, d)), rng.standard_normal((n, K))
    backend = _backend(NumpyBackend, X, n_outputs=K)
    tol = 1e-12 if dtype == np.float64 else 1e-5  # float32 products sum in float32 (as before)
    Xd = X.astype(np.float64)
    assert backend.matvec(W).dtype == np.float64 and backend.rmatvec(R).dtype == np.float64
    assert _rel(backend.matvec(W), Xd @ W.astype(dtype).astype(np.float64).T) <= tol
    assert _rel(backend.rmatvec(R), R.astype(dtype).astype(np.float64).T @ Xd) <= tol


def test_k_column_products_are_the_same_bits_on_any_thread_count(monkeypatch):
    monkeypatch.setattr(_blas, "MAX_CHUNKS", 4)
    X = _data(20000, 64, seed=13)
    rng = np.random.default_rng(13)
    Wt, R = rng.standard_normal((64, 5)), rng.standard_normal((20000, 5))
    assert _blas.product_chunks(20000, 5, 64) == 4
    left = [_blas.times_columns(X, Wt, t) for t in (1, 2, 4)]
    right = [_blas.columns_times(R, X, t) for t in (1, 2, 4)]
    assert all(np.array_equal(a, left[0]) for a in left) and all(np.array_equal(a, right[0]) for a in right)
    assert _rel(left[0], X @ Wt) <= 1e-12 and _rel(right[0], R.T @ X) <= 1e-12


def test_multinomial_fit_on_numpy_products_in_blocks_one_thread_under_load(monkeypatch):
    """Before: X W^T and R^T X were single BLAS calls on OpenBLAS's threads (beside 2
    busy processes, 2000 x 128 with K = 3: R^T X took 17 ms against 0.15 ms on one)."""
    monkeypatch.setattr(numba_backend, "cores_free", lambda: 1)
    granted = []
    for name in ("times_columns", "columns_times"):
        original = getattr(_blas, name)

        def counted(a, b, threads=1, _original=original):
            granted.append(threads)
            return _original(a, b, threads)

        monkeypatch.setattr(_blas, name, counted)
    X = _data(2000, 128, seed=14)
    y = np.argmax(X[:, :3] + np.random.default_rng(14).standard_normal((2000, 3)), axis=1)
    with tikhon.config_context(n_threads=2):
        model = tikhon.LogisticRegression(solver="lbfgs", backend="numpy").fit(X, y)
    assert model.converged_ and granted and set(granted) == {1}


_FORK = r"""
import multiprocessing as mp, numpy as np
from tikhon.backends import _blas
X = np.random.default_rng(0).standard_normal((4000, 30)); c = np.ones(4000)
_blas.CHUNK_WORK = 1 << 12
G = _blas.dense_gram(X, c, 2)  # the pool's threads started in the parent

def child(q):
    q.put(bool(np.array_equal(_blas.dense_gram(X, c, 2), G)))

if __name__ == "__main__":
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(q,))
    p.start()
    p.join(120)
    if p.is_alive():  # waiting for threads that do not exist in the child
        p.kill()
        print(False)
    else:
        print(q.get(timeout=10))
"""


def test_a_forked_child_runs_threaded_grams():
    """Before the at-fork reset, a child forked after a threaded Gram waited forever
    for the parent's pool threads, which a fork does not copy."""
    import subprocess
    import sys

    if not hasattr(__import__("os"), "register_at_fork"):
        pytest.skip("no fork here")
    out = subprocess.run([sys.executable, "-c", _FORK], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "True", out.stderr[-2000:]
