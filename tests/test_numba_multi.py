"""The numba backend with several outputs (K >= 3 classes, T targets): one compiled pass
over X for all K columns (``X W^T``, ``R^T X``, the squares of the Hessian diagonal) and
the fused multinomial and squared-loss passes, against the NumPy reference.

Before: ``matvec(W)`` and ``rmatvec(R)`` ran K one-column passes, and the multinomial
gradient went through the base class in NumPy (``test_one_pass_for_all_columns`` counted
K compiled calls a product). References are :class:`tikhon.backends.numpy.NumpyBackend`
on the float64 values of X (the kernels read float32 values exactly and sum in float64,
so that is the exact reference for float32 data too).
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("numba")

import tikhon  # noqa: E402
import tikhon.backends.numba as numba_module  # noqa: E402
from tikhon.backends._base import Backend  # noqa: E402
from tikhon.backends.numba import NumbaBackend  # noqa: E402
from tikhon.backends.numpy import NumpyBackend  # noqa: E402
from tikhon.objective import LOSSES  # noqa: E402

RTOL = 1e-12
LAYOUTS = ["C", "F", "csr32", "csr64"]
DTYPES = [np.float64, np.float32]


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch):
    """Small test data would otherwise run as one chunk: exercise the chunked path."""
    monkeypatch.setattr(numba_module, "MIN_PARALLEL_WORK", 0)


def make_X(layout, dtype, n=150, d=37, seed=0):
    """X in the layout asked (C, F, or CSR with int32/int64 index arrays kept as asked,
    rows in a shuffled column order), with empty rows (first, last, inside)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < 0.3)
    X[[i for i in (0, 7, 8, n - 1) if i < n]] = 0.0
    X = X.astype(dtype)
    if layout == "C":
        return np.ascontiguousarray(X)
    if layout == "F":
        return np.asfortranarray(X)
    A = sp.csr_matrix(X)
    data, indices = A.data.copy(), A.indices.copy()
    for i in range(n):  # unsorted rows
        lo, hi = A.indptr[i], A.indptr[i + 1]
        order = lo + rng.permutation(hi - lo)
        data[lo:hi], indices[lo:hi] = data[order].copy(), indices[order].copy()
    index = np.int32 if layout == "csr32" else np.int64
    A = sp.csr_matrix((data, indices, A.indptr), shape=(n, d))
    A.indices, A.indptr = indices.astype(index), A.indptr.astype(index)
    A.has_sorted_indices = False
    assert A.indices.dtype == index and A.dtype == dtype
    return A


def _labels(n, K, loss, seed=1):
    rng = np.random.default_rng(seed)
    s = rng.uniform(0.2, 3.0, n)
    s[rng.random(n) < 0.1] = 0.0  # rows of weight 0
    if loss == "squared":
        return rng.standard_normal((n, K)), s
    y = rng.integers(0, K, n).astype(np.float64)
    y[:K] = np.arange(K)
    return y, s


def _pair(X, K, loss="multinomial", seed=1):
    """``(numba backend on X, NumpyBackend on X's float64 values)`` with the same y, s."""
    y, s = _labels(X.shape[0], K, loss, seed)
    X64 = X.astype(np.float64) if sp.issparse(X) else np.asarray(X, dtype=np.float64)
    return (NumbaBackend(X, y, s, LOSSES[loss], n_outputs=K),
            NumpyBackend(X64, y, s, LOSSES[loss], n_outputs=K))


def assert_close(actual, expected, rtol=RTOL):
    """Equal to ``rtol`` relative to the largest entry of the reference."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    err = np.max(np.abs(actual - expected), initial=0.0)
    assert err <= rtol * scale, f"relative error {err / scale:.3g} > {rtol:g}"


def _compare(be, ref, K, rng):
    """Every kernel a solver calls, numba against the reference."""
    d, n = be.n_features, be.n_samples
    W, b = rng.standard_normal((K, d)), rng.standard_normal(K)
    V, vb = rng.standard_normal((K, d)), rng.standard_normal(K)
    R = rng.standard_normal((n, K))
    assert_close(be.matvec(W), ref.matvec(W))
    assert_close(be.decision(W, b), ref.decision(W, b))
    G = be.rmatvec(R)
    assert G.flags.c_contiguous
    assert_close(G, ref.rmatvec(R))

    ours, theirs = be.loss_grad(W, b), ref.loss_grad(W, b)
    assert ours[0] == pytest.approx(theirs[0], rel=RTOL)
    for a, e in zip(ours[1:], theirs[1:]):
        assert_close(a, e)

    ours, theirs = be.loss_grad_hessian(W, b), ref.loss_grad_hessian(W, b)
    assert ours[0] == pytest.approx(theirs[0], rel=RTOL)
    for a, e in zip(ours[1:3], theirs[1:3]):
        assert_close(a, e)
    for args in ((V, vb), (V,), (W, np.zeros(K))):
        for a, e in zip(ours[3](*args), theirs[3](*args)):
            assert_close(a, e)

    for a, e in zip(be.hessian_diagonal(W, b), ref.hessian_diagonal(W, b)):
        assert_close(a, e)


# ---- every layout, K in {3, 10, 15} (15 = 8 + 4 + 2 + 1: every chunk width) ----
@pytest.mark.parametrize("K", [3, 10, 15])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("loss", ["multinomial", "squared"])
def test_kernels_match_numpy(loss, layout, dtype, K):
    be, ref = _pair(make_X(layout, dtype, seed=K), K, loss)
    _compare(be, ref, K, np.random.default_rng(K))


def test_memmap_input(tmp_path):
    X = make_X("C", np.float64)
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=X.shape)
    mm[:] = X
    be, ref = _pair(mm, 4)
    _compare(be, ref, 4, np.random.default_rng(0))


def test_x_is_neither_copied_nor_written():
    """The kernels read X in place: the backend holds X's own arrays, left unchanged."""
    for layout in LAYOUTS:
        X = make_X(layout, np.float32)
        before = (X.data.copy(), X.indices.copy()) if sp.issparse(X) else X.copy()
        be, _ = _pair(X, 3)
        _compare(be, _pair(X, 3)[1], 3, np.random.default_rng(1))
        held = be._Xt[0]
        assert held is X.data if sp.issparse(X) else np.shares_memory(held, X)
        if sp.issparse(X):
            np.testing.assert_array_equal(X.data, before[0])
            np.testing.assert_array_equal(X.indices, before[1])
        else:
            np.testing.assert_array_equal(X, before)


def test_products_of_a_matrix_without_entries():
    for X in (sp.csr_matrix((5, 4)), np.zeros((5, 4))):
        be, ref = _pair(X, 3)
        _compare(be, ref, 3, np.random.default_rng(2))


def test_more_chunks_than_rows_and_fewer_columns_than_a_gather():
    """Chunks of no rows (the gradient buffers stay zero) and K = 3 < 4."""
    be, ref = _pair(make_X("csr32", np.float64, n=5, d=3), 3)
    be._chunks = 8
    _compare(be, ref, 3, np.random.default_rng(3))


# ---- threads: results are the same bits on any number of threads ----
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("loss", ["multinomial", "squared"])
def test_results_do_not_depend_on_the_thread_count(layout, loss, monkeypatch):
    import numba

    monkeypatch.setattr(numba_module, "cores_free", lambda: 8)  # a loaded machine would give 1 thread
    K = 5
    be, ref = _pair(make_X(layout, np.float64, n=400, seed=4), K, loss)
    be._chunks = 6  # chunks fixed by the data (here: set), threads from the budget
    rng = np.random.default_rng(5)
    W, b, V, R = (rng.standard_normal((K, be.n_features)), rng.standard_normal(K),
                  rng.standard_normal((K, be.n_features)), rng.standard_normal((be.n_samples, K)))
    results = {}
    for threads in (1, 2, 3):
        with tikhon.config_context(n_threads=threads):
            out = be.loss_grad_hessian(W, b)
            results[threads] = [out[0], *out[1:3], *out[3](V, b), be.matvec(W), be.rmatvec(R),
                                *be.hessian_diagonal(W, b)]
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("Numba has one thread here")
    for threads in (2, 3):
        for a, e in zip(results[threads], results[1]):
            np.testing.assert_array_equal(a, e)
    theirs = ref.loss_grad(W, b)
    assert results[1][0] == pytest.approx(theirs[0], rel=RTOL)
    assert_close(results[1][1], theirs[1])


def test_gradient_buffers_are_bounded(monkeypatch):
    """Chunks of a K-column pass keep a d x K buffer each: their count is cut to keep
    them within MULTI_BUFFER_BYTES (from the data alone, not the threads)."""
    be, ref = _pair(make_X("csr32", np.float64, n=400), 4)
    be._chunks = 6
    monkeypatch.setattr(numba_module, "MULTI_BUFFER_BYTES", 3 * 8 * be.n_features * 4)
    assert be._multi_chunk_count(4) == 3 and be._multi_chunk_count(8) == 1
    _compare(be, ref, 4, np.random.default_rng(6))


# ---- one compiled call per product ----
def test_one_pass_for_all_columns(monkeypatch):
    """K columns cost one compiled call, not K (before: ``one_pass`` once per column);
    a multinomial gradient or Hessian product is one fused pass."""
    K = 4
    be, _ = _pair(make_X("C", np.float64), K)
    calls = []

    class Spy:
        def __init__(self, module, prefix):
            self._module, self._prefix = module, prefix

        def __getattr__(self, name):
            value = getattr(self._module, name)
            if callable(value):
                calls.append(f"{self._prefix}.{name}")
            return value

    monkeypatch.setattr(be, "_m", Spy(be._m, "multi"))
    monkeypatch.setattr(be, "_k", Spy(be._k, "one"))
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((K, be.n_features)), rng.standard_normal(K)
    be.matvec(W)
    be.rmatvec(rng.standard_normal((be.n_samples, K)))
    assert [c for c in calls if c != "one.parallel_launch"] == ["multi.multi_pass"] * 2
    calls.clear()
    be.loss_grad(W, b)
    assert [c for c in calls if c != "one.parallel_launch"] == ["multi.multi_pass"]
    calls.clear()
    product = be.loss_grad_hessian(W, b)[3]
    product(W, b)
    assert [c for c in calls if c != "one.parallel_launch"] == ["multi.multi_pass"] * 2
    calls.clear()
    be.hessian_diagonal(W, b)
    assert [c for c in calls if c != "one.parallel_launch"] == ["multi.multi_pass"] * 2


# ---- the fused passes against the unfused route, edge cases ----
def test_fused_passes_match_the_unfused_path():
    """The fused multinomial passes against the base class's kernels on the same
    backend's K-column products (the same numbers by another route)."""
    K = 5
    be, _ = _pair(make_X("csr64", np.float32, n=300, d=60), K)
    rng = np.random.default_rng(4)
    W, b = 2.0 * rng.standard_normal((K, be.n_features)), rng.standard_normal(K)
    V, vb = rng.standard_normal((K, be.n_features)), rng.standard_normal(K)
    fused, plain = be.loss_grad_hessian(W, b), Backend.loss_grad_hessian(be, W, b)
    assert fused[0] == pytest.approx(plain[0], rel=RTOL)
    for a, e in zip(fused[1:3] + fused[3](V, vb), plain[1:3] + plain[3](V, vb)):
        assert_close(a, e)


@pytest.mark.parametrize("layout", ["C", "csr32"])
def test_large_margins_do_not_overflow(layout):
    K = 3
    be, ref = _pair(make_X(layout, np.float64), K)
    W = 800.0 * np.random.default_rng(5).standard_normal((K, be.n_features))
    value, grad, grad_b = be.loss_grad(W, np.zeros(K))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    ref_value, ref_grad, ref_grad_b = ref.loss_grad(W, np.zeros(K))
    assert value == pytest.approx(ref_value, rel=RTOL)
    assert_close(grad, ref_grad)
    assert_close(grad_b, ref_grad_b)


def test_non_finite_coefficients_show_in_the_value():
    be, _ = _pair(make_X("C", np.float64), 3)
    W = np.zeros((3, be.n_features))
    for bad in (np.nan, np.inf):
        W[1, 0] = bad
        value, grad, _ = be.loss_grad(W, np.zeros(3))
        assert not np.isfinite(value)


def test_a_label_outside_the_classes_is_refused():
    be, _ = _pair(make_X("C", np.float64), 3)
    be._y1 = be._y1.copy()
    row = int(np.flatnonzero(be.s > 0)[3])
    be._y1[row] = 3.0
    be.y = be._y1
    with pytest.raises(ValueError, match=rf"y\[{row}\] = 3.0 is not a class index in 0\.\.2"):
        be.loss_grad(np.zeros((3, be.n_features)), np.zeros(3))


# ---- fits ----
@pytest.mark.parametrize("layout", ["C", "csr32"])
@pytest.mark.parametrize("solver", ["newton", "lbfgs"])
def test_multinomial_fit_equals_the_numpy_fit(layout, solver):
    rng = np.random.default_rng(8)
    X = make_X(layout, np.float64, n=400, d=20, seed=8)
    y = np.argmax((X @ rng.standard_normal((20, 4))) + rng.gumbel(size=(400, 4)), axis=1)
    fits = [tikhon.LogisticRegression(C=1.0, backend=backend, solver=solver, tol=1e-10, max_iter=2000
                                      ).fit(X, y) for backend in ("numba", "numpy")]
    assert fits[0].backend_ == "numba" and fits[0].coef_.shape == (4, 20)
    assert abs(fits[0].objective_ - fits[1].objective_) <= 1e-9 * fits[1].objective_


def test_multi_target_ridge_fit_equals_the_numpy_fit():
    rng = np.random.default_rng(9)
    X = make_X("F", np.float64, n=300, d=12, seed=9)
    Y = X @ rng.standard_normal((12, 3)) + 0.1 * rng.standard_normal((300, 3))
    fits = [tikhon.Ridge(alpha=[0.5, 1.0, 2.0], backend=backend, solver="newton", tol=1e-12).fit(X, Y)
            for backend in ("numba", "numpy")]
    np.testing.assert_allclose(fits[0].coef_, fits[1].coef_, rtol=1e-7, atol=1e-9)


# ---- first use: one specialization of the K-column entry point, announced once ----
_FIRST_FIT = r"""
import json, logging
import numpy as np
import tikhon

class Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []
    def emit(self, record):
        self.records.append((record.levelname, record.getMessage()))

keep = Keep()
logger = logging.getLogger("tikhon")
logger.addHandler(keep)
logger.setLevel(logging.DEBUG)
rng = np.random.default_rng(0)
X = rng.standard_normal((300, 5))
y = np.argmax(X[:, :3] + rng.gumbel(size=(300, 3)), axis=1)
model = tikhon.LogisticRegression(backend="numba", solver="newton").fit(X, y)
from tikhon.backends import _numba_multi as m
print(json.dumps({"records": keep.records, "score": model.score(X, y),
                  "multi_pass": len(m.multi_pass.signatures)}))
"""


def test_a_multinomial_fit_compiles_one_specialization_and_says_so(tmp_path):
    """Before: a first multinomial fit compiled the one-column kernels only; now its
    K-column passes are one entry point, compiled once per layout (W, b and row blocks
    are handed over as writable float64 arrays: a read-only ``b`` was a second
    specialization) and announced once; a second process loads it from the cache."""
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    env.pop("NUMBA_DISABLE_JIT", None)

    def run():
        out = subprocess.run([sys.executable, "-c", _FIRST_FIT], env=env, capture_output=True, text=True,
                             timeout=900)
        assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
        return json.loads(out.stdout.strip().splitlines()[-1])

    cold = run()
    infos = [message for level, message in cold["records"] if level == "INFO" and "multi_pass" in message]
    assert len(infos) == 1 and "dense float64 (C order)" in infos[0] and str(tmp_path) in infos[0], cold
    assert cold["multi_pass"] == 1, cold
    warm = run()
    assert warm["records"] == [] and warm["multi_pass"] == 1 and warm["score"] == cold["score"], warm
