"""The cython backend with several outputs (K >= 3 classes, T targets): one compiled pass
over CSR X for all K columns (``X W^T``, ``R^T X``, the squared entries of the Hessian
diagonal) and the fused multinomial passes, against the NumPy reference; and the
one-output Hessian product, one fused pass too.

References are :class:`tikhon.backends.numpy.NumpyBackend` on the float64 values of X
(the cython kernels read float32 values exactly and accumulate in double, so that is
the exact reference for float32 data too; NumpyBackend on float32 X sums in float32).
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import SHARED_DATA

import tikhon
from tikhon.backends._base import Backend
from tikhon.backends.numpy import NumpyBackend
from tikhon.objective import LOSSES

pytestmark = pytest.mark.skipif("cython" not in tikhon.available_backends(),
                                reason="the compiled extension tikhon._cd is not built")

RTOL = 1e-12


def _backend():
    from tikhon.backends.cython import CythonBackend

    return CythonBackend


def make_csr(n=120, d=40, density=0.15, dtype=np.float64, index=np.int32, unsorted=True, empty_rows=True, seed=0):
    """A CSR with the layouts the kernels must read: float32/float64 values, int32/int64
    index arrays (kept as asked: scipy's constructor would narrow int64), rows in a
    shuffled column order and empty rows (the first, the last, some inside)."""
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    if empty_rows:
        dense[[0, 7, 8, n - 1]] = 0.0
    X = sp.csr_matrix(dense)
    data, indices, indptr = X.data.astype(dtype), X.indices.copy(), X.indptr.copy()
    if unsorted:
        for i in range(n):
            lo, hi = indptr[i], indptr[i + 1]
            order = lo + rng.permutation(hi - lo)
            data[lo:hi], indices[lo:hi] = data[order].copy(), indices[order].copy()
    X = sp.csr_matrix((data, indices, indptr), shape=(n, d))
    X.indices, X.indptr = indices.astype(index), indptr.astype(index)
    if unsorted:
        X.has_sorted_indices = False
    assert X.dtype == dtype and X.indices.dtype == index and X.indptr.dtype == index
    return X


def _labels(n, K, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, K, n).astype(np.float64)
    y[:K] = np.arange(K)  # every class present
    s = rng.uniform(0.2, 3.0, n)
    s[rng.random(n) < 0.1] = 0.0  # rows of weight 0: the fused passes skip them
    return y, s


def _pair(X, K, loss="multinomial", seed=1):
    """``(cython backend on X, NumpyBackend on X's float64 values)`` with the same y, s."""
    y, s = _labels(X.shape[0], K, seed)
    if loss == "squared":
        y = np.random.default_rng(seed).standard_normal((X.shape[0], K))
    pointwise = LOSSES[loss]
    ref = NumpyBackend(X.astype(np.float64), y, s, pointwise, n_outputs=K)
    return _backend()(X, y, s, pointwise, n_outputs=K), ref


def assert_close(actual, expected, rtol=RTOL):
    """Equal to ``rtol`` relative to the largest entry of the reference."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), np.finfo(np.float64).tiny)
    assert np.max(np.abs(actual - expected), initial=0.0) <= rtol * scale, np.max(np.abs(actual - expected))


def _spy_on_kernels(monkeypatch, be):
    """The names of the extension's functions ``be`` calls, in order (a list filled as it runs)."""
    calls = []

    class Spy:
        def __init__(self, module):
            self._module = module

        def __getattr__(self, name):
            calls.append(name)
            return getattr(self._module, name)

    monkeypatch.setattr(be, "_cd", Spy(be._cd))
    return calls


LAYOUTS = [(dtype, index) for dtype in (np.float32, np.float64) for index in (np.int32, np.int64)]


# ---- the K-column products ----
@pytest.mark.parametrize("K", [3, 10, 15])  # 15 = 8 + 4 + 2 + 1: every chunk width of the gather
@pytest.mark.parametrize("dtype,index", LAYOUTS)
def test_products_match_numpy_and_the_one_column_kernels(K, dtype, index):
    X = make_csr(dtype=dtype, index=index)
    be, ref = _pair(X, K)
    rng = np.random.default_rng(2)
    W, R = rng.standard_normal((K, X.shape[1])), rng.standard_normal((X.shape[0], K))
    Z, G = be.matvec(W), be.rmatvec(R)
    assert Z.shape == (X.shape[0], K) and G.shape == (K, X.shape[1]) and G.flags.c_contiguous
    assert_close(Z, ref.matvec(W))
    assert_close(G, ref.rmatvec(R))
    # per column, the same arithmetic in the same order as the compiled one-column kernels
    np.testing.assert_array_equal(Z, np.column_stack([be.matvec(row) for row in W]))
    np.testing.assert_array_equal(G, np.stack([be.rmatvec(col) for col in R.T]))


def test_products_of_a_matrix_without_entries():
    X = sp.csr_matrix((5, 4))
    be, ref = _pair(X, 3)
    W, R = np.ones((3, 4)), np.ones((5, 3))
    np.testing.assert_array_equal(be.matvec(W), np.zeros((5, 3)))
    np.testing.assert_array_equal(be.rmatvec(R), np.zeros((3, 4)))
    value, grad, grad_b = be.loss_grad(W, np.zeros(3))
    ref_value, ref_grad, ref_grad_b = ref.loss_grad(W, np.zeros(3))
    assert value == pytest.approx(ref_value, rel=RTOL)
    assert_close(grad, ref_grad)
    assert_close(grad_b, ref_grad_b)


def test_one_pass_for_all_columns(monkeypatch):
    """K columns cost one compiled call, not K (before: ``csr_matvec`` once per column),
    and a multinomial gradient or Hessian product is one fused pass."""
    K = 4
    be, _ = _pair(make_csr(), K)
    calls = _spy_on_kernels(monkeypatch, be)
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((K, be.n_features)), rng.standard_normal(K)
    be.matvec(W)
    be.rmatvec(rng.standard_normal((be.n_samples, K)))
    assert calls == ["csr_matmat", "csr_rmatmat"]
    calls.clear()
    be.loss_grad(W, b)
    assert calls == ["multinomial_loss_grad"]
    calls.clear()
    product = be.loss_grad_hessian(W, b)[3]
    product(W, b)
    assert calls == ["multinomial_loss_grad", "multinomial_hessian_product"]
    calls.clear()
    be.hessian_diagonal(W, b)
    assert calls == ["csr_matmat", "csr_rmatmat"]


# ---- the kernels the solvers call ----
@pytest.mark.parametrize("K", [3, 10])
@pytest.mark.parametrize("dtype,index", LAYOUTS)
@pytest.mark.parametrize("loss", ["multinomial", "squared"])
def test_kernels_match_numpy(K, dtype, index, loss):
    X = make_csr(dtype=dtype, index=index, seed=K)
    be, ref = _pair(X, K, loss)
    rng = np.random.default_rng(3)
    W, b = rng.standard_normal((K, X.shape[1])), rng.standard_normal(K)
    V, vb = rng.standard_normal((K, X.shape[1])), rng.standard_normal(K)

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

    ours, theirs = be.loss_grad_gram(W, b), ref.loss_grad_gram(W, b)
    assert ours[0] == pytest.approx(theirs[0], rel=RTOL)
    for a, e in zip(ours[1:3], theirs[1:3]):
        assert_close(a, e)
    assert ours[3].keys() == theirs[3].keys()
    for key in theirs[3]:
        assert_close(ours[3][key], theirs[3][key])


def test_fused_passes_match_the_unfused_path():
    """The fused multinomial passes against the base class's kernels on the same
    backend's K-column products (the same numbers by another route)."""
    K = 5
    be, _ = _pair(make_csr(n=300, d=60, dtype=np.float32, index=np.int64), K)
    rng = np.random.default_rng(4)
    W, b = 2.0 * rng.standard_normal((K, be.n_features)), rng.standard_normal(K)
    V, vb = rng.standard_normal((K, be.n_features)), rng.standard_normal(K)
    fused, plain = be.loss_grad_hessian(W, b), Backend.loss_grad_hessian(be, W, b)
    assert fused[0] == pytest.approx(plain[0], rel=RTOL)
    for a, e in zip(fused[1:3] + fused[3](V, vb), plain[1:3] + plain[3](V, vb)):
        assert_close(a, e)


def test_large_margins_do_not_overflow():
    K = 3
    be, ref = _pair(make_csr(), K)
    W = 800.0 * np.random.default_rng(5).standard_normal((K, be.n_features))
    value, grad, grad_b = be.loss_grad(W, np.zeros(K))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    ref_value, ref_grad, ref_grad_b = ref.loss_grad(W, np.zeros(K))
    assert value == pytest.approx(ref_value, rel=RTOL)
    assert_close(grad, ref_grad)


def test_repeated_column_indices():
    """A row repeating a column index (X that skipped the validation gate): products sum
    the repeats, as scipy does; the Hessian diagonal takes the base class's way."""
    X = make_csr(unsorted=False)
    indices = X.indices.copy()
    lo, hi = X.indptr[3], X.indptr[4]
    assert hi - lo >= 2
    indices[lo + 1] = indices[lo]
    Xd = sp.csr_matrix((X.data, indices, X.indptr), shape=X.shape)
    Xd.has_canonical_format = False
    be, ref = _pair(Xd, 3)
    assert be.duplicate_rows == 1
    rng = np.random.default_rng(6)
    W, b = rng.standard_normal((3, X.shape[1])), rng.standard_normal(3)
    assert_close(be.matvec(W), ref.matvec(W))
    R = rng.standard_normal((X.shape[0], 3))
    assert_close(be.rmatvec(R), ref.rmatvec(R))
    for a, e in zip(be.hessian_diagonal(W, b), ref.hessian_diagonal(W, b)):
        assert_close(a, e)


def test_a_label_outside_the_classes_is_refused():
    be, _ = _pair(make_csr(), 3)
    be.y = be.y.copy()
    be.y[np.flatnonzero(be.s > 0)[0]] = 3.0
    with pytest.raises(ValueError, match=r"is not a class index in 0\.\.2"):
        be.loss_grad(np.zeros((3, be.n_features)), np.zeros(3))


# ---- fits on dna (3 classes) ----
def _dna():
    from sklearn.datasets import load_svmlight_file

    path = SHARED_DATA / "dna.scale"
    if not path.exists():
        pytest.skip(f"real data set dna.scale not found: {path}")
    X, y = load_svmlight_file(str(path), n_features=180)
    return X.tocsr(), y.astype(int)


@pytest.mark.parametrize("solver", ["newton", "newton_cholesky", "lbfgs"])
@pytest.mark.parametrize("fit_intercept,weighted", [(True, False), (False, True)])
def test_dna_fit_equals_the_numpy_fit(solver, fit_intercept, weighted):
    X, y = _dna()
    s = np.random.default_rng(7).uniform(0.2, 3.0, len(y)) if weighted else None
    fits = {}
    for backend in ("cython", "numpy"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs may stop at its rounding floor and say so
            fits[backend] = tikhon.LogisticRegression(C=1.0, fit_intercept=fit_intercept, backend=backend,
                                                      solver=solver, tol=1e-12, max_iter=5000
                                                      ).fit(X, y, sample_weight=s)
    ours, theirs = fits["cython"], fits["numpy"]
    assert ours.backend_ == "cython" and ours.solver_ == solver and ours.coef_.shape == (3, 180)
    assert ours.converged_ or solver == "lbfgs"
    assert abs(ours.objective_ - theirs.objective_) <= 1e-10 * theirs.objective_
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


# ---- one output: the fused Hessian product and the kept curvature weights ----
@pytest.mark.parametrize("loss", ["logistic", "squared"])
@pytest.mark.parametrize("dtype,index", LAYOUTS)
def test_one_output_hessian_product_is_one_pass(monkeypatch, loss, dtype, index):
    """A Hessian product is one compiled pass (``csr_hessian_product``; two before:
    ``csr_matvec`` then ``csr_rmatvec``) equal to NumPy's, and the preconditioner's
    diagonal at the point of the last ``loss_grad_hessian`` needs no pass for the margins."""
    X = make_csr(dtype=dtype, index=index)
    rng = np.random.default_rng(3)
    y = np.where(rng.random(X.shape[0]) < 0.5, 1.0, -1.0) if loss == "logistic" else rng.standard_normal(X.shape[0])
    s = rng.uniform(0.0, 2.0, X.shape[0])
    s[:10] = 0.0
    be = _backend()(X, y, s, LOSSES[loss])
    ref = NumpyBackend(X.astype(np.float64), y, s, LOSSES[loss])
    w, v = rng.standard_normal(X.shape[1]), rng.standard_normal(X.shape[1])
    calls = _spy_on_kernels(monkeypatch, be)
    product = be.loss_grad_hessian(w, 0.3)[3]
    ref_product = ref.loss_grad_hessian(w, 0.3)[3]
    calls.clear()
    hv, hb = product(v, 0.7)
    assert calls == ["csr_hessian_product"]
    ref_hv, ref_hb = ref_product(v, 0.7)
    assert_close(hv, ref_hv)
    assert hb == pytest.approx(ref_hb, rel=RTOL)
    calls.clear()
    diagonal, total = be.hessian_diagonal(w, 0.3)
    assert calls == ["csr_rmatvec"]  # the squares only: the margins were kept
    ref_diagonal, ref_total = ref.hessian_diagonal(w, 0.3)
    assert_close(diagonal, ref_diagonal)
    assert total == pytest.approx(ref_total, rel=RTOL)
    calls.clear()
    moved = be.hessian_diagonal(w + 1.0, 0.3)[0]  # elsewhere: the margins' pass again
    assert calls == ["csr_matvec", "csr_rmatvec"]
    assert_close(moved, ref.hessian_diagonal(w + 1.0, 0.3)[0])
