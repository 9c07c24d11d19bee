"""Nothing the caller passes is written to: X (dense, CSR data/indices/indptr, memmap
file), y and sample_weight are bit-identical after fit and predict, on every backend
and every solver it runs.

Inputs are writable (a read-only array could not be written anyway; test_bad_input
fits read-only ones), so an in-place write anywhere would show here.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning

import tikhon

BACKENDS = [b for b in ("numpy", "numba", "cython", "dask") if b in tikhon.available_backends()]

# solvers each backend runs here (numba's gd/sgd loops only on the layouts whose
# compiled specializations the suite already has: C-order float64 and CSR int32)
SOLVERS = {
    "numpy": ("newton", "newton_cholesky", "lbfgs", "gd", "sgd"),
    "numba": ("newton", "newton_cholesky", "lbfgs", "gd", "sgd"),
    "cython": ("dual_cd", "newton", "newton_cholesky"),
    "dask": ("newton",),
}
KINDS = {
    "numpy": ("dense_c", "dense_f", "csr", "csr_int64", "memmap"),
    "numba": ("dense_c", "dense_f", "csr", "csr_int64", "memmap"),
    "cython": ("csr", "csr_int64"),
    "dask": ("dask",),
}
LOOP_KINDS = ("dense_c", "csr", "memmap")  # where numba's gd/sgd loops run in this test

CASES = [(b, k, s) for b in BACKENDS for k in KINDS[b] for s in SOLVERS[b]
         if not (b == "numba" and s in ("gd", "sgd") and k not in LOOP_KINDS)]


def _input(kind, X, tmp_path):
    if kind == "dense_c":
        return np.ascontiguousarray(X)
    if kind == "dense_f":
        return np.asfortranarray(X)
    if kind in ("csr", "csr_int64"):
        M = sp.csr_matrix(X)
        if kind == "csr_int64":
            M.indices, M.indptr = M.indices.astype(np.int64), M.indptr.astype(np.int64)
        return M
    if kind == "memmap":  # writable ("r+"): a write would reach the file
        mm = np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="w+", shape=X.shape)
        mm[:] = X
        mm.flush()
        return np.memmap(tmp_path / "X.dat", dtype=X.dtype, mode="r+", shape=X.shape)
    if kind == "dask":
        import dask.array as da

        return da.from_array(np.ascontiguousarray(X), chunks=(X.shape[0] // 2, X.shape[1]))
    raise KeyError(kind)


def _snapshot(X):
    """Copies of every buffer of ``X`` (its bytes, for a bit-for-bit comparison)."""
    if sp.issparse(X):
        return [a.copy() for a in (X.data, X.indices, X.indptr)]
    if type(X).__module__.startswith("dask"):
        return [np.asarray(X.compute()).copy()]
    return [np.array(X, copy=True)]


def _assert_same(before, after):
    for a, b in zip(before, after):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()  # bit-identical (NaN-safe, sign-of-zero-safe)


@pytest.mark.parametrize("backend, kind, solver", CASES)
def test_fit_and_predict_never_write_to_inputs(backend, kind, solver, tmp_path, request):
    if backend == "dask":
        request.getfixturevalue("dask_client")
    rng = np.random.default_rng(7)
    Xd = rng.standard_normal((60, 6))
    Xd[np.abs(Xd) < 0.5] = 0.0  # some sparsity, so CSR has structure to keep
    X = _input(kind, Xd, tmp_path)
    labels = np.where(Xd[:, 0] + 0.3 * rng.standard_normal(60) > 0, 1.0, -1.0)
    targets = Xd @ rng.standard_normal(6) + 0.1 * rng.standard_normal(60)
    weights = rng.uniform(0.5, 2.0, 60)
    X_before = _snapshot(X)
    extras_before = [labels.copy(), targets.copy(), weights.copy()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # sgd: few epochs is enough here
        for est, y in ((tikhon.LogisticRegression, labels), (tikhon.Ridge, targets)):
            model = est(backend=backend, solver=solver, max_iter=30, tol=1e-6).fit(
                X, y, sample_weight=weights)
            np.asarray(model.predict(X))
            if hasattr(model, "predict_proba"):
                model.predict_proba(X), model.score(X, y)
    _assert_same(X_before, _snapshot(X))
    _assert_same(extras_before, [labels, targets, weights])
    if kind == "memmap":  # the file itself
        on_disk = np.fromfile(tmp_path / "X.dat", dtype=Xd.dtype).reshape(Xd.shape)
        assert on_disk.tobytes() == Xd.tobytes()


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "dask"])
def test_float32_and_scalar_and_class_weights_not_written(backend):
    """float32 data, class_weight, a scalar weight, a column-vector y: still untouched."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((50, 4)).astype(np.float32)
    if backend == "cython":
        X = sp.csr_matrix(X)
    y = np.where(rng.standard_normal(50) > 0, 1, 0)
    before, y_before = _snapshot(X), y.copy()
    model = tikhon.LogisticRegression(backend=backend, class_weight="balanced", tol=1e-5)
    model.fit(X, y, sample_weight=2.0)
    model.predict(X)
    _assert_same(before, _snapshot(X))
    assert y.tobytes() == y_before.tobytes()
