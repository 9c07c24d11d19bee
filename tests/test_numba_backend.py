"""The Numba backend equals the NumPy reference, kernel by kernel, and its fits match
scikit-learn. Small data: the cost of these tests is JIT compilation, cached on disk
after the first run (see tikhon.backends.numba)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

pytest.importorskip("numba")

import tikhon  # noqa: E402
import tikhon.backends.numba as numba_module  # noqa: E402
from tikhon.backends import available_backends, get_backend  # noqa: E402
from tikhon.backends.numba import NumbaBackend  # noqa: E402
from tikhon.backends.numpy import NumpyBackend  # noqa: E402
from tikhon.objective import LOSSES  # noqa: E402

N, D = 240, 6


@pytest.fixture(autouse=True)
def _always_parallel(monkeypatch):
    """Small test data would otherwise run on one thread: exercise the chunked path."""
    monkeypatch.setattr(numba_module, "MIN_PARALLEL_WORK", 0)


def _data(layout, dtype, loss):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    X[rng.random((N, D)) < 0.4] = 0.0
    X[[0, 7, 100, N - 1]] = 0.0  # empty rows (first and last too)
    if loss == "logistic":
        y = np.where(rng.random(N) < 0.5, -1.0, 1.0)
    else:
        y = rng.standard_normal(N) * 2.0
    X = X.astype(dtype)
    if layout == "C":
        Xl = np.ascontiguousarray(X)
    elif layout == "F":
        Xl = np.asfortranarray(X)
    else:
        Xl = sp.csr_matrix(X)
        index = np.int32 if layout == "csr32" else np.int64
        Xl.indices = Xl.indices.astype(index)
        Xl.indptr = Xl.indptr.astype(index)
    return Xl, y


def _close(a, b, dtype, what):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(b))) if b.size else 1.0)
    # float64: rounding only; float32: the NumPy reference computes products in float32
    tol = 1e-11 if dtype == np.float64 else 5e-5
    err = float(np.max(np.abs(a - b))) / scale if b.size else 0.0
    assert err <= tol, f"{what}: relative error {err:.3g} > {tol:g}"


def _compare_all(Xl, y, s, loss, dtype, b):
    ref = NumpyBackend(Xl, y, s, LOSSES[loss])
    nb = NumbaBackend(Xl, y, s, LOSSES[loss])
    rng = np.random.default_rng(1)
    w = rng.standard_normal(D)
    v = rng.standard_normal(D)
    r = rng.standard_normal(N)
    for what, got, want in [
        ("loss_grad", nb.loss_grad(w, b), ref.loss_grad(w, b)),
        ("matvec", nb.matvec(w), ref.matvec(w)),
        ("decision", nb.decision(w, b), ref.decision(w, b)),
        ("rmatvec", nb.rmatvec(r), ref.rmatvec(r)),
        ("row_norms_sq", nb.row_norms_sq(), ref.row_norms_sq()),
        ("curvature_norm", nb.curvature_norm(), ref.curvature_norm()),
        ("batch_loss_grad", nb.batch_loss_grad(w, b, np.array([0, 3, 7, 8, 50, N - 1])),
         ref.batch_loss_grad(w, b, np.array([0, 3, 7, 8, 50, N - 1]))),
    ]:
        if isinstance(got, tuple):
            for k, (g_, w_) in enumerate(zip(got, want)):
                _close(g_, w_, dtype, f"{what}[{k}]")
        else:
            _close(got, want, dtype, what)
    got, want = nb.loss_grad_hessian(w, b), ref.loss_grad_hessian(w, b)
    for k in range(3):
        _close(got[k], want[k], dtype, f"loss_grad_hessian[{k}]")
    for vb in (0.0, 0.7):
        for k, (g_, w_) in enumerate(zip(got[3](v, vb), want[3](v, vb))):
            _close(g_, w_, dtype, f"hessian product[{k}] vb={vb}")


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["C", "F", "csr32", "csr64"])
def test_kernels_equal_numpy_reference(layout, dtype, loss, n_threads):
    Xl, y = _data(layout, dtype, loss)
    rng = np.random.default_rng(2)
    weights = rng.random(N) * 2.0
    weights[[1, 5, 9]] = 0.0
    with tikhon.config_context(n_threads=n_threads):
        for s in (np.ones(N), weights):  # without / with sample weights
            for b in (0.0, 0.37):  # without / with an intercept
                _compare_all(Xl, y, s, loss, dtype, b)


def test_deterministic_for_fixed_thread_count_and_threads_restored():
    import numba

    Xl, y = _data("csr32", np.float64, "logistic")
    nb = NumbaBackend(Xl, y, np.ones(N), LOSSES["logistic"])
    w = np.linspace(-1, 1, D)
    before = numba.get_num_threads()
    with tikhon.config_context(n_threads=2):
        first = nb.loss_grad(w, 0.1)
        for _ in range(5):
            again = nb.loss_grad(w, 0.1)
            assert again[0] == first[0] and again[2] == first[2]
            np.testing.assert_array_equal(again[1], first[1])
    with tikhon.config_context(n_threads=1):
        nb.loss_grad(w, 0.1)
    assert numba.get_num_threads() == before


def test_memmap_and_strided_input(tmp_path):
    X, y = _data("C", np.float64, "logistic")
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64, shape=X.shape)
    mm[:] = X
    s = np.ones(N)
    w = np.arange(D, dtype=float) / D
    want = NumpyBackend(X, y, s, LOSSES["logistic"]).loss_grad(w, 0.2)
    got = NumbaBackend(mm, y, s, LOSSES["logistic"]).loss_grad(w, 0.2)
    for k in range(3):
        _close(got[k], want[k], np.float64, "memmap")
    wide = np.zeros((N, 2 * D))
    wide[:, ::2] = X
    got = NumbaBackend(wide[:, ::2], y, s, LOSSES["logistic"]).loss_grad(w, 0.2)  # copied once to C order
    for k in range(3):
        _close(got[k], want[k], np.float64, "strided")


def test_registry_and_availability(monkeypatch):
    assert "numba" in available_backends()
    Xl, _ = _data("C", np.float32, "logistic")
    assert get_backend("numba", Xl) is NumbaBackend
    assert {"gd", "sgd"} <= NumbaBackend.loops
    monkeypatch.setitem(sys.modules, "numba", None)  # "import numba" now fails
    message = NumbaBackend.availability()
    assert message is not None and "pip install numba" in message


# ---- whole loops: the jitted GD / SGD loops follow the Python reference loops ----
def _fit_pair(est_cls, X, y, **params):
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for backend in ("numpy", "numba"):
            fits[backend] = est_cls(backend=backend, **params).fit(X, y)
    return fits["numpy"], fits["numba"]


@pytest.mark.parametrize("layout", ["C", "csr32"])
def test_gd_loop_matches_python_loop(layout):
    Xl, y = _data(layout, np.float64, "logistic")
    for params in (dict(max_iter=60), dict(max_iter=40, learning_rate=5.0, fit_intercept=False),
                   dict(max_iter=25, learning_rate=50.0)):  # fixed steps: no safeguard
        ref, got = _fit_pair(tikhon.LogisticRegression, Xl, y, solver="gd", C=10.0, **params)
        assert got.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-9, atol=1e-11)
        np.testing.assert_allclose(got.intercept_, ref.intercept_, rtol=1e-9, atol=1e-11)
        assert len(got.history_) == len(ref.history_)
        np.testing.assert_allclose([v for _, v in got.history_], [v for _, v in ref.history_], rtol=1e-9)


def test_gd_loop_safeguard_halves_step():
    # a default step from an underestimated Lipschitz bound would go uphill: simulate it
    # with a backend whose curvature_norm is too small, on both backends
    Xl, y = _data("C", np.float64, "logistic")
    from tikhon import solvers
    from tikhon.objective import Objective

    objective = Objective("logistic", 0.1, True)
    results = {}
    for cls in (NumpyBackend, NumbaBackend):
        be = cls(Xl, y, np.ones(N), objective.pointwise)
        be.curvature_norm = lambda *a, **k: 0.5  # far too small: steps overshoot
        theta0 = np.zeros(D + 1)
        results[cls.name] = solvers.run("gd", objective, be, theta0, 1e-10, 50)
    ref, got = results["numpy"], results["numba"]
    assert got.n_iter == ref.n_iter
    # both halved the initial step (once converged to rounding, a tie in P may halve
    # once more on one side: compare the iterates, not the final step)
    first = 1.0 / objective.lipschitz_bound(1.05 * 0.5, float(N))
    for result in (ref, got):
        assert float(result.message.split()[1]) < first
    np.testing.assert_allclose(got.theta, ref.theta, rtol=1e-7, atol=1e-8)
    assert abs(got.objective - ref.objective) <= 1e-12 * ref.objective


@pytest.mark.parametrize("layout", ["C", "csr32"])
def test_sgd_loop_matches_python_loop(layout, monkeypatch):
    Xl, y = _data(layout, np.float64, "squared")
    ref, got = _fit_pair(tikhon.Ridge, Xl, y, solver="sgd", alpha=1.0, max_iter=4, batch_size=32,
                         random_state=3)
    assert got.n_iter_ == ref.n_iter_ == 4
    np.testing.assert_allclose(got.coef_, ref.coef_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(got.intercept_, ref.intercept_, rtol=1e-9, atol=1e-12)
    # epochs handed over in several blocks give the same fit
    import tikhon.solvers.sgd as sgd

    monkeypatch.setattr(sgd, "_SCHEDULE_BLOCK", 9)  # 8 batches per epoch: one epoch per call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        blocked = tikhon.Ridge(alpha=1.0, solver="sgd", backend="numba", max_iter=4, batch_size=32,
                               random_state=3).fit(Xl, y)
    np.testing.assert_array_equal(blocked.coef_, got.coef_)
    assert len(blocked.history_) == len(got.history_) == 5


# ---- fits match scikit-learn ----
def test_logistic_fit_matches_sklearn(a9a):
    from sklearn.linear_model import LogisticRegression as SkLR

    X, y = a9a
    X, y = X[:3000], y[:3000]
    sk = SkLR(C=0.5, tol=1e-10, max_iter=5000).fit(X.toarray(), y)
    cases = [("newton", X, 1e-5), ("newton", X.astype(np.float32), 1e-3), ("newton", X.toarray(), 1e-5),
             ("lbfgs", X, 1e-3)]
    for solver, Xi, tol in cases:
        model = tikhon.LogisticRegression(C=0.5, solver=solver, backend="numba",
                                          tol=1e-9 if solver == "newton" else 1e-7).fit(Xi, y)
        assert model.backend_ == "numba"
        np.testing.assert_allclose(model.coef_, sk.coef_, atol=tol * max(1, np.abs(sk.coef_).max()))
        np.testing.assert_allclose(model.intercept_, sk.intercept_, atol=tol)


def test_ridge_fit_matches_sklearn():
    from sklearn.linear_model import Ridge as SkRidge

    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 12))
    y = X @ rng.standard_normal(12) + 0.3 + 0.1 * rng.standard_normal(400)
    s = rng.random(400)
    sk = SkRidge(alpha=3.0).fit(X, y, sample_weight=s)
    for Xi in (X, np.asfortranarray(X), sp.csr_matrix(X)):
        model = tikhon.Ridge(alpha=3.0, backend="numba", tol=1e-10).fit(Xi, y, sample_weight=s)
        np.testing.assert_allclose(model.coef_, sk.coef_, rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(model.intercept_, sk.intercept_, rtol=1e-7, atol=1e-9)


# ---- start-up: a second process loads the kernels from the disk cache ----
_SECOND_PROCESS = textwrap.dedent("""
    import numpy as np, tikhon
    from tikhon.backends import _numba_kernels as K
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5)); y = np.where(X[:, 0] > 0, 1.0, -1.0)
    tikhon.LogisticRegression(backend="numba").fit(X, y)
    stats = K.one_pass.stats
    print(sum(stats.cache_hits.values()), sum(stats.cache_misses.values()))
""")


def test_second_process_reuses_disk_cache():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    tikhon.LogisticRegression(backend="numba").fit(X, y)  # compiled (or loaded) and cached here
    out = subprocess.run([sys.executable, "-c", _SECOND_PROCESS], capture_output=True, text=True,
                         check=True, timeout=300)
    hits, misses = map(int, out.stdout.split()[-2:])
    assert hits >= 1 and misses == 0, out.stdout + out.stderr


def test_solves_leave_the_blas_thread_count_alone():
    """A numba solve changes no process-wide BLAS setting (another thread could observe
    it, and OpenBLAS ignores settings from worker threads once the main thread has made
    one); the solvers' long dot products avoid threaded BLAS calls instead
    (tikhon.objective.dot)."""
    from threadpoolctl import threadpool_info

    from tikhon.backends.numba import NumbaBackend
    from tikhon.objective import LOSSES

    def blas_threads():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]

    before = blas_threads()
    X = np.ones((4, 2))
    backend = NumbaBackend(X, np.array([1.0, -1.0, 1.0, -1.0]), np.ones(4), LOSSES["logistic"])
    with backend.solving():
        assert blas_threads() == before
    assert blas_threads() == before


# ---- the vectorized logistic block (polynomial exp and log1p) ----
@pytest.mark.parametrize("scale", [1e-3, 1.0, 30.0, 800.0])
def test_vectorized_logistic_block_matches_the_objective_to_rounding(scale):
    """The block's loss, derivatives and curvatures equal tikhon.objective's formulas (numpy,
    libm) to a few units of rounding, over margins from tiny to saturated."""
    from tikhon.backends import _numba_kernels as K

    rng = np.random.default_rng(int(scale * 7))
    m = 3000
    z = rng.standard_normal(m) * scale
    y = np.where(rng.random(m) < 0.5, 1.0, -1.0)
    s = rng.uniform(0.5, 2.0, m)
    zb, dvec = z.copy(), np.empty(m)
    loss, gb = K._pointwise_block(K.LOGISTIC, y, s, zb, 0, m, 0.25, dvec, True)
    f = LOSSES["logistic"]
    ref_r, ref_d = s * f.derivative(y, z + 0.25), s * f.curvature(y, z + 0.25)
    assert loss == pytest.approx(np.dot(s, f.value(y, z + 0.25)), rel=1e-14)
    assert gb == pytest.approx(ref_r.sum(), rel=1e-13, abs=1e-13 * np.abs(ref_r).sum())
    # exp(-|t|) is clamped at exp(-708): below that, absolute differences of ~1e-308
    assert np.allclose(zb, ref_r, rtol=2e-15, atol=1e-300)
    assert np.allclose(dvec, ref_d, rtol=2e-15, atol=1e-300)


def test_vectorized_logistic_block_repeats_exactly_and_shows_nan():
    """Bit-identical results whatever the buffers' alignment (sums in row order), and a
    NaN margin gives a NaN loss (the clamp of exp(-|t|) does not hide it)."""
    from tikhon.backends import _numba_kernels as K

    rng = np.random.default_rng(3)
    m = 1001
    z = rng.standard_normal(m) * 4
    y = np.where(rng.random(m) < 0.5, 1.0, -1.0)
    results = set()
    for offset in range(8):
        buf = np.empty(m + 8)
        zb = buf[offset:offset + m]
        zb[:] = z
        loss, gb = K._pointwise_block(K.LOGISTIC, y, np.ones(m), zb, 0, m, 0.1, np.empty(0), False)
        results.add((loss, gb, zb.tobytes()))
    assert len(results) == 1
    zb = z.copy()
    zb[17] = np.nan
    loss, gb = K._pointwise_block(K.LOGISTIC, y, np.ones(m), zb, 0, m, 0.1, np.empty(0), False)
    assert np.isnan(loss) and np.isnan(gb) and np.isnan(zb[17])
