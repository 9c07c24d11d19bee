"""Bad input, every backend x every input kind: a clear error naming the problem, or the
documented correct result -- never a crash, a hang, or a silently wrong model.

The rules under test are written down in :mod:`tikhon._validation` (and the
estimators' docstrings). Each error case is fitted on every backend that reads the
input kind (the ``cython`` backend reads CSR only: for it the dense kinds are the one
documented "cannot read dense input" error); each accepted-but-unusual case must give
the model of the equivalent clean float64 input on the same backend.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn.exceptions import ConvergenceWarning

import tikhon
from tikhon._validation import MAX_MAGNITUDE

BACKENDS = [b for b in ("numpy", "numba", "cython", "dask") if b in tikhon.available_backends()]
KINDS = ("dense_c", "dense_f", "csr", "memmap") + (("dask",) if "dask" in BACKENDS else ())
# The dask backend (a few seconds of graph overhead per fit) runs the error matrix, the
# hyperparameter and predict checks and one dtype conversion; the other tests are about
# in-memory layouts, or driver-side code that every backend shares.
IN_MEMORY = [b for b in BACKENDS if b != "dask"]
TOL = 1e-8  # tight, so that models of equivalent inputs agree to ~1e-6


def reads(backend, kind):
    """Whether ``backend`` reads input ``kind`` (the dask backend reads dask arrays only)."""
    if backend == "cython":
        return kind == "csr"
    if backend == "dask":
        return kind == "dask"
    return kind != "dask"


def native(backend, X, request=None):
    """``X`` in the layout ``backend`` reads: CSR for cython, a dask array for dask."""
    if backend == "cython":
        return sp.csr_matrix(X)
    if backend == "dask":
        if request is not None:
            request.getfixturevalue("dask_client")
        return make("dask", np.asarray(X), None)
    return X


def make(kind, X, tmp_path):
    """``X`` (a float dense array) as input ``kind``; the memmap is opened read-only."""
    X = np.asarray(X)
    if kind == "dense_c":
        return np.ascontiguousarray(X)
    if kind == "dense_f":
        return np.asfortranarray(X)
    if kind == "csr":
        return sp.csr_matrix(X)
    if kind == "memmap":
        if X.size == 0:  # an empty file cannot be memory-mapped
            return np.ascontiguousarray(X)
        path = tmp_path / f"X{np.random.default_rng().integers(1 << 30)}.dat"
        mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
        mm[:] = X
        mm.flush()
        del mm
        return np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)
    if kind == "dask":
        import dask.array as da

        return da.from_array(X, chunks=(max(1, X.shape[0] // 2), X.shape[1]))
    raise KeyError(kind)


def data(n=40, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(n) > 0, 1, 0)
    return X, y


def fit(estimator, backend, X, y, solver="auto", **kw):
    tol = 1e-5 if getattr(X, "dtype", None) == np.float32 else TOL  # float32 products: ~1e-7 floor
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad input must not slip through as a mere warning
        return estimator(backend=backend, solver=solver, tol=tol).fit(X, y, **kw)


# ---------------------------------------------------------------------------------
# Error cases: (name, estimator, transform(X, y) -> (X, y, fit kwargs), error, match)
# ---------------------------------------------------------------------------------
def _with(X, i, j, value):
    X = X.copy()
    X[i, j] = value
    return X


def _yval(y, value):
    y = y.astype(float)
    y[3] = value
    return y


LR, RR = tikhon.LogisticRegression, tikhon.Ridge
ERRORS = [
    ("nan_in_X", LR, lambda X, y: (_with(X, 2, 1, np.nan), y, {}), ValueError, "NaN"),
    ("inf_in_X", RR, lambda X, y: (_with(X, 2, 1, np.inf), y, {}), ValueError, "infinity"),
    ("neg_inf_in_X", LR, lambda X, y: (_with(X, 0, 0, -np.inf), y, {}), ValueError, "infinity"),
    ("nan_in_y_logistic", LR, lambda X, y: (X, _yval(y, np.nan), {}), ValueError, "NaN"),
    ("nan_in_y_ridge", RR, lambda X, y: (X, _yval(y, np.nan), {}), ValueError, "NaN"),
    ("inf_in_y_ridge", RR, lambda X, y: (X, _yval(y, np.inf), {}), ValueError, "infinity"),
    ("nan_in_weight", LR, lambda X, y: (X, y, {"sample_weight": _yval(np.ones(len(y)), np.nan)}),
     ValueError, "sample_weight contains NaN"),
    ("inf_in_weight", RR, lambda X, y: (X, y, {"sample_weight": _yval(np.ones(len(y)), np.inf)}),
     ValueError, "sample_weight contains infinity"),
    ("zero_rows", LR, lambda X, y: (X[:0], y[:0], {}), ValueError, "0 sample"),
    ("zero_features", RR, lambda X, y: (X[:, :0], y, {}), ValueError, "0 feature"),
    ("single_class", LR, lambda X, y: (X, np.ones_like(y), {}), ValueError, "two classes"),
    ("continuous_labels", LR, lambda X, y: (X, y + 0.5 * np.arange(len(y)), {}), ValueError, "continuous"),
    ("y_too_short", LR, lambda X, y: (X, y[:-1], {}), ValueError,
     "inconsistent numbers of samples|y must be a 1-D array of 40 entries"),
    ("y_two_columns", LR, lambda X, y: (X, np.c_[y, y], {}), ValueError, "1d array|y must be a 1-D array|column-vector"),
    ("weight_too_long", LR, lambda X, y: (X, y, {"sample_weight": np.ones(len(y) + 1)}), ValueError,
     "sample_weight.shape"),
    ("weight_2d", RR, lambda X, y: (X, y, {"sample_weight": np.ones((len(y), 1))}), ValueError, "1D array"),
    ("negative_weight", LR, lambda X, y: (X, y, {"sample_weight": _yval(np.ones(len(y)), -1.0)}),
     ValueError, "Negative values"),
    ("all_zero_weights", RR, lambda X, y: (X, y, {"sample_weight": np.zeros(len(y))}), ValueError,
     "sums to zero"),
    ("one_class_weighted_out", LR, lambda X, y: (X, y, {"sample_weight": (y == 1).astype(float)}),
     ValueError, "zero weight"),
    ("huge_X", LR, lambda X, y: (X * 1e60, y, {}), ValueError, "rescale X"),
    ("huge_y_ridge", RR, lambda X, y: (X, y * 1e200, {}), ValueError, "rescale y"),
    ("huge_weight", LR, lambda X, y: (X, y, {"sample_weight": np.full(len(y), 1e200)}), ValueError,
     "rescale sample_weight"),
]


# every (backend, input kind) pair the backend reads; the others are one documented
# error each (test_backend_refuses_kind)
PAIRS = [(b, k) for b in BACKENDS for k in KINDS if reads(b, k)]


@pytest.mark.parametrize("backend, kind", PAIRS)
@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_bad_data_is_refused(case, backend, kind, tmp_path, request):
    name, estimator, transform, error, match = case
    if backend == "dask":
        request.getfixturevalue("dask_client")
    X, y = data()
    X, y, kw = transform(X, y)
    with pytest.raises(error, match=match):
        fit(estimator, backend, make(kind, X, tmp_path), y, **kw)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b in ("cython", "dask")])
def test_backend_refuses_kind(backend):
    """An explicit backend given input it cannot read says so (no silent conversion)."""
    X, y = data()
    with pytest.raises(ValueError, match=f"backend '{backend}' cannot read dense"):
        fit(LR, backend, X, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.complex128, "str"])
def test_complex_and_string_data_refused(backend, dtype, request):
    """Complex and string arrays are refused (numpy would parse numeric strings: before,
    ``X.astype(str)`` fitted silently); objects that are not numbers too."""
    X, y = data()
    Xb = X.astype(dtype)
    if backend == "cython" and dtype == "str":
        pytest.skip("scipy.sparse cannot hold strings")
    Xb = native(backend, Xb, request)
    match = "Complex data not supported" if dtype is np.complex128 else "X holds strings"
    if backend == "dask":
        match = "is not numeric"  # the dask backend's own (lazy) validation
    with pytest.raises(ValueError, match=match):
        fit(LR, backend, Xb, y)
    with pytest.raises(ValueError, match="Complex data not supported"):
        fit(RR, backend, native(backend, X, request), y.astype(np.complex128))
    if backend in IN_MEMORY and backend != "cython":
        Xo = X.astype(object)
        Xo[1, 1] = {"not": "a number"}
        with pytest.raises(TypeError, match="argument must be a string or a( real)? number"):
            fit(LR, backend, Xo, y)


def _breaks(kind):
    """CSR structures a kernel would read out of bounds with."""
    M = sp.csr_matrix(data()[0])
    if kind == "index_past_n_features":
        M.indices[7] = M.shape[1]
    elif kind == "negative_index":
        M.indices[3] = -1
    elif kind == "decreasing_indptr":
        M.indptr[4] = M.indptr[6]
    elif kind == "indptr_not_from_zero":
        M.indptr[0] = 1
    elif kind == "indptr_past_data":
        M.indptr[-1] = M.data.size + 5
    return M


CSR_BREAKS = {
    "index_past_n_features": "column index 5 in row 1 is out of range",
    "negative_index": "column index -1 in row 0 is out of range",
    "decreasing_indptr": "indptr must be non-decreasing",
    "indptr_not_from_zero": "indptr must start at 0",
    "indptr_past_data": "indptr ends at",
}


@pytest.mark.parametrize("backend", [b for b in BACKENDS if reads(b, "csr")])
@pytest.mark.parametrize("brk", CSR_BREAKS)
@pytest.mark.parametrize("stage", ["fit", "predict"])
def test_broken_csr_structure_refused(brk, backend, stage):
    """Before validation these fitted silently on garbage (numpy, numba) or crashed the
    process (numba, negative index: segfault)."""
    X, y = data()
    M = _breaks(brk)
    if stage == "fit":
        with pytest.raises(ValueError, match=CSR_BREAKS[brk]):
            fit(LR, backend, M, y)
    else:
        model = fit(LR, backend, sp.csr_matrix(X), y)
        with pytest.raises(ValueError, match=CSR_BREAKS[brk]):
            model.predict(M)


# ---------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------
BAD_PARAMS = [
    (LR, {"C": 0}, "C must be a finite positive number"),
    (LR, {"C": -1.0}, "C must be a finite positive number"),
    (LR, {"C": np.inf}, "C must be a finite positive number"),
    (LR, {"C": np.nan}, "C must be a finite positive number"),
    (LR, {"C": "1"}, "C must be a finite positive number"),
    (RR, {"alpha": -1.0}, "alpha must be a finite positive number"),
    (RR, {"alpha": 0.0}, "alpha must be a finite positive number"),  # the dual needs alpha > 0
    (LR, {"tol": 0.0}, "tol must be"),
    (RR, {"tol": -1e-3}, "tol must be"),
    (LR, {"max_iter": -1}, "max_iter must be None or a non-negative integer"),  # 0: the start (issue 17)
    (RR, {"max_iter": -5}, "max_iter must be None or a non-negative integer"),
    (LR, {"max_iter": 2.5}, "max_iter must be None or a non-negative integer"),
    (LR, {"learning_rate": 0.0}, "learning_rate must be"),
    (RR, {"batch_size": 0}, "batch_size must be a positive integer"),
    (LR, {"fit_intercept": "yes"}, "fit_intercept must be True or False"),
    (LR, {"random_state": -1}, "random_state must be None or a non-negative integer"),
    (LR, {"solver": "bogus"}, "unknown solver 'bogus'"),
    (LR, {"class_weight": {0: -1.0, 1: 1.0}}, "class_weight must give finite non-negative"),
    (LR, {"class_weight": {0: 0.0, 1: 1.0}}, "zero weight"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator, params, match", BAD_PARAMS)
def test_bad_hyperparameters_refused(estimator, params, match, backend, request):
    X, y = data()
    model = estimator(backend=backend, **params)
    with pytest.raises(ValueError, match=match):
        model.fit(native(backend, X, request), y)


def test_unknown_backend_refused():
    X, y = data()
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        LR(backend="bogus").fit(X, y)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predict_checks_features(backend, request):
    X, y = data()
    model = fit(LR, backend, native(backend, X, request), y)
    with pytest.raises(ValueError, match="X has 3 features, but LogisticRegression is expecting 5"):
        model.predict(native(backend, X[:, :3]))
    if backend != "dask":  # dask predictions are lazy: NaN is not looked for
        with pytest.raises(ValueError, match="NaN"):
            model.predict(native(backend, _with(X, 0, 0, np.nan)))


# ---------------------------------------------------------------------------------
# Accepted inputs: the model of the equivalent clean float64 input
# ---------------------------------------------------------------------------------
def _same_model(a, b, sign=1.0):
    """Equal coefficients up to what both fits certify: a relative duality gap ``g``
    bounds ``P - P*`` by ``g P``, and ``P`` is ``lam``-strongly convex in ``w``, so
    ``||w - w*|| <= sqrt(2 g P / lam)`` (the intercept gets the same allowance)."""
    lam = 1.0 / a.C if hasattr(a, "C") else a.alpha
    slack = sum(np.sqrt(2.0 * m.duality_gap_ * abs(m.objective_) / lam) for m in (a, b))
    atol = 1e-6 + 2.0 * slack
    np.testing.assert_allclose(np.ravel(a.coef_), sign * np.ravel(b.coef_), rtol=1e-5, atol=atol)
    np.testing.assert_allclose(np.ravel(a.intercept_), sign * np.ravel(b.intercept_), rtol=1e-5, atol=10 * atol)


def _csr_variant(M, variant):
    """Equivalent CSR matrices in unusual layouts."""
    M = M.copy()
    if variant == "int64_indices":
        M.indices, M.indptr = M.indices.astype(np.int64), M.indptr.astype(np.int64)
    elif variant == "mixed_index_types":
        M.indptr = M.indptr.astype(np.int64)
    elif variant == "unsorted_indices":
        for i in range(M.shape[0]):
            sl = slice(M.indptr[i], M.indptr[i + 1])
            M.indices[sl], M.data[sl] = M.indices[sl][::-1].copy(), M.data[sl][::-1].copy()
        assert not M.has_sorted_indices
    elif variant == "duplicates":  # every entry split in two halves: same matrix
        rows = np.repeat(np.arange(M.shape[0]), np.diff(M.indptr))
        order = np.argsort(np.r_[rows, rows], kind="stable")
        data = np.r_[0.25 * M.data, 0.75 * M.data][order]
        indices = np.r_[M.indices, M.indices][order]
        M = sp.csr_matrix((data, indices, 2 * M.indptr), shape=M.shape)
        assert not M.has_canonical_format
    elif variant == "explicit_zeros":  # an explicit zero (column 2, all zero) appended to every row
        data, idx, ptr = [], [], [0]
        for i in range(M.shape[0]):
            sl = slice(M.indptr[i], M.indptr[i + 1])
            data += [*M.data[sl], 0.0]
            idx += [*M.indices[sl], 2]
            ptr.append(len(data))
        M = sp.csr_matrix((np.array(data), np.array(idx, dtype=np.int32), np.array(ptr, dtype=np.int32)),
                          shape=M.shape)
        assert M.nnz == len(data)
    elif variant == "trailing_junk":  # data/indices longer than indptr[-1] (scipy allows it)
        M = sp.csr_matrix(M)
        M.data = np.r_[M.data, 99.0]
        M.indices = np.r_[M.indices, 0].astype(M.indices.dtype)
    elif variant == "read_only":
        for arr in (M.data, M.indices, M.indptr):
            arr.flags.writeable = False
    elif variant == "csr_array":
        M = sp.csr_array(M)
    elif variant == "coo":
        M = M.tocoo()
    elif variant in ("strided_data", "strided_indices", "strided_indptr"):  # views scipy accepts
        name = variant.split("_")[1]
        setattr(M, name, np.repeat(getattr(M, name), 2)[::2])
        assert not getattr(M, name).flags.c_contiguous
    elif variant == "reversed_views":  # negative strides, same values
        M.data, M.indices = M.data[::-1].copy()[::-1], M.indices[::-1].copy()[::-1]
    return M


CSR_VARIANTS = ["int64_indices", "mixed_index_types", "unsorted_indices", "duplicates",
                "explicit_zeros", "trailing_junk", "read_only", "csr_array", "coo",
                "strided_data", "strided_indices", "strided_indptr", "reversed_views"]


# CSR readers, and the cython backend's own dual CD loop ("auto" is Newton-CG on few features)
CSR_RUNS = [(b, "auto") for b in BACKENDS if reads(b, "csr")] + (
    [("cython", "dual_cd")] if "cython" in BACKENDS else [])


@pytest.mark.parametrize("backend, solver", CSR_RUNS)
@pytest.mark.parametrize("variant", CSR_VARIANTS)
@pytest.mark.parametrize("estimator", [LR, RR], ids=["logistic", "ridge"])
def test_csr_layouts_give_the_canonical_model(variant, backend, solver, estimator):
    X, y = data(60, 6, seed=1)
    X[np.abs(X) < 0.6] = 0.0  # sparse, with some empty rows below
    X[::7] = 0.0
    if variant == "explicit_zeros":
        X[:, 2] = 0.0
    M = sp.csr_matrix(X)
    ref = fit(estimator, backend, M, y, solver=solver)
    V = _csr_variant(M, variant)
    parts = [a.copy() for a in (V.data, V.indices, V.indptr)] if sp.issparse(V) and V.format == "csr" else None
    model = fit(estimator, backend, V, y, solver=solver)
    _same_model(model, ref)
    np.testing.assert_allclose(model.predict(V), ref.predict(M), rtol=1e-6, atol=1e-6)
    if parts is not None:  # the caller's arrays were used, not rewritten (duplicates: merged in a copy)
        for a, b in zip(parts, (V.data, V.indices, V.indptr)):
            np.testing.assert_array_equal(a, b)


def _empty_rows_dense():
    X, y = data(50, 4, seed=2)
    X[5:20] = 0.0
    return X, y


@pytest.mark.parametrize("backend", IN_MEMORY)
def test_empty_rows_match_dense(backend):
    X, y = _empty_rows_dense()
    dense_backend = "numpy" if backend == "cython" else backend
    _same_model(fit(LR, backend, sp.csr_matrix(X), y), fit(LR, dense_backend, X, y))


CONVERTED = {
    "float16": lambda X: X.astype(np.float16),
    "int64": lambda X: np.round(3 * X).astype(np.int64),
    "int8": lambda X: np.round(3 * X).astype(np.int8),
    "uint8": lambda X: np.round(3 * np.abs(X)).astype(np.uint8),
    "bool": lambda X: X > 0,
    "object_numbers": lambda X: X.astype(object),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("conv", CONVERTED)
def test_other_dtypes_are_converted_to_float64(conv, backend, request):
    """Integers, bool, float16 and object arrays of numbers: converted to float64
    (documented); the model equals the one on the float64 copy."""
    X, y = data()
    Xc = CONVERTED[conv](X)
    X64 = np.asarray(Xc, dtype=np.float64)
    if backend == "cython" and conv in ("float16", "object_numbers"):
        pytest.skip("scipy.sparse holds neither float16 nor object data")
    if backend == "dask" and conv != "int64":
        pytest.skip("dask: one conversion is enough (it casts lazily, chunk by chunk)")
    Xc, X64 = native(backend, Xc, request), native(backend, X64, request)
    model = fit(LR, backend, Xc, y)
    _same_model(model, fit(LR, backend, X64, y))
    assert model.coef_.dtype == np.float64


@pytest.mark.parametrize("backend", [b for b in BACKENDS if reads(b, "dense_c")])
@pytest.mark.parametrize("layout", ["read_only", "strided", "negative_strides", "float32_f"])
def test_dense_layouts(layout, backend, tmp_path):
    """Read-only, strided, reversed and F-order float32 arrays (read-only memmaps: the
    "memmap" kind of the matrix above) give the model of the C-order copy."""
    X, y = data()
    ref_X = X
    if layout == "read_only":
        X = X.copy()
        X.flags.writeable = False
    elif layout == "strided":
        X = np.repeat(X, 2, axis=1)[::1, ::2]
    elif layout == "negative_strides":
        X, y = X[::-1], y[::-1]
        ref_X = np.ascontiguousarray(X)
    elif layout == "float32_f":
        X = np.asfortranarray(X, dtype=np.float32)
        ref_X = np.ascontiguousarray(X)
    assert not (layout == "strided" and (X.flags.c_contiguous or X.flags.f_contiguous))
    y_ro = np.array(y)
    y_ro.flags.writeable = False
    model = fit(LR, backend, X, y_ro)
    _same_model(model, fit(LR, backend, ref_X, y))


@pytest.mark.parametrize("backend", IN_MEMORY)
def test_labels_of_any_type(backend):
    X, y = data()
    inp = sp.csr_matrix(X) if backend == "cython" else X
    ref = fit(LR, backend, inp, y)
    names = np.where(y == 1, "spam", "ham")
    model = fit(LR, backend, inp, names)
    assert model.classes_.tolist() == ["ham", "spam"]
    _same_model(model, ref)
    assert set(model.predict(inp)) <= {"ham", "spam"}
    flipped = fit(LR, backend, inp, np.where(y == 1, -7, 3))  # classes_ sorted: 3 is the positive class
    _same_model(flipped, ref, sign=-1.0)
    np.testing.assert_allclose(flipped.decision_function(inp), -ref.decision_function(inp), atol=1e-5)


@pytest.mark.parametrize("backend", IN_MEMORY)
def test_zero_weights_drop_rows(backend):
    """Weight 0 means the row is absent (the documented meaning of sample weights)."""
    X, y = data(60, 5, seed=3)
    s = np.ones(60)
    s[::3] = 0.0
    inp = sp.csr_matrix if backend == "cython" else np.asarray
    for est in (LR, RR):
        _same_model(fit(est, backend, inp(X), y, sample_weight=s),
                    fit(est, backend, inp(X[s > 0]), y[s > 0]))


@pytest.mark.parametrize("backend", IN_MEMORY)
def test_constant_target_ridge(backend):
    """Ridge on a constant target: w = 0, b = y; P* = D* = 0 must certify as optimal
    (before: relative gap inf; dual CD then ran to max_iter and warned)."""
    X, _ = data()
    inp = sp.csr_matrix(X) if backend == "cython" else X
    model = fit(RR, backend, inp, np.full(X.shape[0], 2.5))
    np.testing.assert_allclose(model.coef_, 0.0, atol=1e-12)
    assert model.intercept_ == pytest.approx(2.5)
    assert model.converged_ and model.duality_gap_ == 0.0
    one = fit(RR, backend, inp[:1], [3.0])
    assert one.intercept_ == pytest.approx(3.0) and one.converged_


@pytest.mark.parametrize("backend", IN_MEMORY)
@pytest.mark.parametrize("scale", [1e3, 1e6])
def test_float32_features_that_overflow_exp(backend, scale):
    """float32 features whose margins overflow exp() in float32 (|z| >> 88): the loss
    stays finite and equals the float64 computation; the fit is finite and certified."""
    X, y = data()
    X32 = (X * scale).astype(np.float32)
    inp = sp.csr_matrix(X32) if backend == "cython" else X32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # float32 products may not reach tol=1e-8
        model = LR(backend=backend, tol=1e-6, max_iter=50).fit(inp, y)
    assert np.all(np.isfinite(model.coef_)) and np.isfinite(model.objective_)
    z = X32.astype(np.float64) @ model.coef_.ravel() + model.intercept_[0]
    s = np.where(y == 1, 1.0, -1.0)
    reference = np.sum(np.logaddexp(0.0, -s * z)) + 0.5 * np.dot(model.coef_.ravel(), model.coef_.ravel())
    assert model.objective_ == pytest.approx(reference, rel=1e-5)
    # the loss kernel itself at a margin of ~1e4 (exp(1e4) is inf in any float)
    from tikhon.backends import get_backend
    from tikhon.objective import Objective

    obj = Objective("logistic", 1.0)
    cls = get_backend(backend, inp)
    be = cls(inp, s, np.ones(len(y)), obj.pointwise)
    w = np.full(X.shape[1], 10.0)
    loss, gw, gb = be.loss_grad(w, 0.0)
    z = X32.astype(np.float64) @ w
    assert np.isfinite(loss) and np.all(np.isfinite(gw))
    assert loss == pytest.approx(np.sum(np.logaddexp(0.0, -s * z)), rel=1e-5)


@pytest.mark.parametrize("backend, solver", [(b, "auto") for b in IN_MEMORY] + (
    [("cython", "dual_cd")] if "cython" in BACKENDS else []))
@pytest.mark.parametrize("scale", [1e10, MAX_MAGNITUDE / 1e10])
def test_large_but_allowed_scale_is_finite_or_warns(backend, solver, scale):
    """Large features (under the magnitude limit): a finite model; if the tolerance
    cannot be met in float64 rounding, a ConvergenceWarning says so (never NaN).
    (Before: dual CD crashed with "cannot convert float NaN to integer" from X * 1e10.)"""
    X, y = data()
    X = X * scale
    inp = sp.csr_matrix(X) if backend == "cython" else X
    for est in (LR, RR):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = est(backend=backend, solver=solver, max_iter=50).fit(inp, y)
        assert np.all(np.isfinite(model.coef_)) and np.all(np.isfinite(model.intercept_))
        assert model.converged_ or model.n_iter_ > 0


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["C", "F", "csr"])
@pytest.mark.parametrize("where", ["first", "last", "after_larger"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_one_bad_value_in_a_large_X_is_found_whatever_its_block(monkeypatch, threads, layout, where, bad):
    """X is checked block by block in one pass (by two threads when X is large, here made
    to count as large): a single NaN or infinity is found in the first or the last block,
    and after a block holding a larger finite value."""
    from tikhon import _validation

    if threads > 1:
        monkeypatch.setattr(_validation, "_PARALLEL_CHECK_BYTES", 0)
        monkeypatch.setattr(_validation, "_check_threads", lambda: threads)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40_000, 5))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    X[0, 0] = 1e40 if where == "after_larger" else X[0, 0]
    row = 0 if where == "first" else -1
    X[row, 3] = bad
    inp = sp.csr_matrix(X) if layout == "csr" else np.asarray(X, order=layout)
    with pytest.raises(ValueError, match="NaN or infinity"):
        LR().fit(inp, y)
    if where == "after_larger":  # the largest finite value is found by whichever thread holds it
        X[row, 3] = 0.0
        X[-1, 2] = 1e60
        inp = sp.csr_matrix(X) if layout == "csr" else np.asarray(X, order=layout)
        with pytest.raises(ValueError, match="magnitude 1e\\+60"):
            LR().fit(inp, y)


@pytest.mark.parametrize("compiled", [True, False])
def test_duplicate_detection_with_and_without_the_extension(monkeypatch, compiled):
    """Unsorted CSR is searched for repeated column indices by the extension (O(d) memory)
    or, when it is missing, by numpy: both find one repeated index and none in its absence."""
    from tikhon import _validation

    if not compiled:
        monkeypatch.setitem(sys.modules, "tikhon._cd", None)  # `from . import _cd` fails
        monkeypatch.delattr(tikhon, "_cd", raising=False)
    X = sp.random(300, 50, density=0.1, format="csr", random_state=0)
    X.indices = np.ascontiguousarray(X.indices[::-1])  # unsorted rows (and shuffled columns)
    X.data = np.ascontiguousarray(X.data[::-1])
    X.indptr = np.ascontiguousarray(X.indptr[-1] - X.indptr[::-1])
    X.has_sorted_indices = False
    assert (_validation._compiled_duplicate_rows(X) is None) == (not compiled)
    assert not _validation._has_duplicates(X)
    row = 7
    start = X.indptr[row]
    assert X.indptr[row + 1] - start >= 2
    X.indices[start + 1] = X.indices[start]  # one repeated index in row 7
    assert _validation._has_duplicates(X)


# ---------------------------------------------------------------------------------
# Valid strided CSR (scipy accepts views): read by every backend, path and CV (issue 14:
# the cython backend refused it, "CSR data must be contiguous", and auto, path and CV
# picked cython)
# ---------------------------------------------------------------------------------
def _strided(M, which):
    S = M.copy()
    for name in which:
        setattr(S, name, np.repeat(getattr(S, name), 2)[::2])
    return S


@pytest.mark.parametrize("which", [("data",), ("indices",), ("data", "indices", "indptr")])
def test_strided_csr_everywhere(which, request):
    X, y = data(60, 6, seed=4)
    X[np.abs(X) < 0.5] = 0.0
    M = sp.csr_matrix(X)
    S = _strided(M, which)
    ref = fit(LR, "auto", M, y)
    for backend in ["auto", *BACKENDS]:
        if backend == "dask":
            request.getfixturevalue("dask_client")
            import dask.array as da

            _same_model(fit(LR, backend, da.from_array(S, chunks=(30, S.shape[1]), asarray=False), y), ref)
            continue
        model = fit(LR, backend, S, y)
        _same_model(model, fit(LR, backend, M, y))
        _same_model(model, ref)
    if "cython" in BACKENDS:
        _same_model(fit(LR, "cython", S, y, solver="dual_cd"), ref)
        from tikhon.backends import get_backend
        from tikhon.objective import Objective

        cls = get_backend("auto", S)  # auto's choice reads S, also built outside the gate
        be = cls(S, np.where(y == 1, 1.0, -1.0), np.ones(len(y)), Objective("logistic", 1.0).pointwise)
        np.testing.assert_allclose(be.matvec(np.ones(6)), M @ np.ones(6))
    path = tikhon.regularization_path(S, y, Cs=[0.1, 1.0], tol=TOL)
    ref_path = tikhon.regularization_path(M, y, Cs=[0.1, 1.0], tol=TOL)
    np.testing.assert_allclose(path.coefs, ref_path.coefs, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(path.decision_function(S), ref_path.decision_function(M), rtol=1e-6, atol=1e-8)
    cv = tikhon.LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, tol=TOL).fit(S, y)
    ref_cv = tikhon.LogisticRegressionCV(Cs=[0.1, 1.0], cv=3, tol=TOL).fit(M, y)
    assert cv.C_ == ref_cv.C_
    np.testing.assert_allclose(cv.coef_, ref_cv.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ref.predict_proba(S), ref.predict_proba(M), rtol=1e-12)


# ---------------------------------------------------------------------------------
# Hostile CSR on every public entry point (issue 14). Each case runs in a subprocess:
# before, several of these crashed the interpreter (segfault), which must fail the test
# and not kill pytest.
# ---------------------------------------------------------------------------------
_CHILD = """
import sys, warnings
import numpy as np, scipy.sparse as sp
import tikhon
from tikhon.bench.problems import load_dataset, parse_data_spec

warnings.simplefilter("ignore")
kind, workdir = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(0)
X = rng.standard_normal((40, 5))
y = (X[:, 0] > 0).astype(int)
M = sp.csr_matrix(X)


def broken(A):  # a copy of the compressed matrix A (CSR or CSC) with the structure fault `kind`
    A = A.copy()
    if kind == "index_past_n_features":
        A.indices[7] = 10 ** 8
    elif kind == "negative_index":
        A.indices[3] = -10 ** 8
    elif kind == "indptr_rises_then_falls":  # [0, 1e8, 10, ...]: ends within the data
        A.indptr[1] = 10 ** 8
    elif kind == "canonical_flag_on_bad_index":  # scipy's flag can be set on any matrix
        A.indices[7] = 10 ** 8
        A.has_canonical_format = True
    elif kind == "indptr_past_data":
        A.indptr[-1] = 10 ** 8
    return A


B = broken(M)
model = tikhon.LogisticRegression().fit(M, y)
ridge = tikhon.Ridge().fit(M, y)
path = tikhon.regularization_path(M, y, Cs=[1.0])
np.savez(f"{workdir}/crafted.npz", data=B.data, indices=B.indices, indptr=B.indptr, shape=np.array(B.shape), y=y)
calls = {
    **{f"LogisticRegression.fit[{b}]": (lambda b=b: tikhon.LogisticRegression(backend=b).fit(B, y))
       for b in tikhon.available_backends() if b != "dask"},
    **{f"Ridge.fit[{b}]": (lambda b=b: tikhon.Ridge(backend=b).fit(B, y))
       for b in tikhon.available_backends() if b != "dask"},
    "LogisticRegression.fit[dual_cd]": lambda: tikhon.LogisticRegression(solver="dual_cd").fit(B, y),
    "predict": lambda: model.predict(B),
    "decision_function": lambda: model.decision_function(B),
    "predict_proba": lambda: model.predict_proba(B),
    "predict_log_proba": lambda: model.predict_log_proba(B),
    "Ridge.predict": lambda: ridge.predict(B),
    "regularization_path": lambda: tikhon.regularization_path(B, y, Cs=[1.0]),
    "regularization_path[ridge]": lambda: tikhon.regularization_path(B, y, alphas=[1.0], model="ridge"),
    "PathResult.decision_function": lambda: path.decision_function(B),
    "LogisticRegressionCV.fit": lambda: tikhon.LogisticRegressionCV(Cs=[1.0], cv=2).fit(B, y),
    "RidgeCV.fit": lambda: tikhon.RidgeCV().fit(B, y),
    "RidgeCV.fit[cv=2]": lambda: tikhon.RidgeCV(cv=2).fit(B, y),
    "bench load_dataset": lambda: load_dataset(parse_data_spec(f"{workdir}/crafted.npz")),
    "CSC input": lambda: tikhon.LogisticRegression().fit(broken(sp.csc_matrix(X)), y),
}
if "cython" in tikhon.available_backends():
    from tikhon import _cd

    calls["_cd.check_csr"] = lambda: _cd.check_csr(B.data, B.indices, B.indptr, B.shape[1])
for name, call in calls.items():
    print(name, end=": ", flush=True)
    try:
        call()
        print("ACCEPTED", flush=True)
    except ValueError as exc:
        print("REFUSED", str(exc).splitlines()[0], flush=True)
print("DONE")
"""

HOSTILE = ["index_past_n_features", "negative_index", "indptr_rises_then_falls", "canonical_flag_on_bad_index",
           "indptr_past_data"]


def run_isolated(args, timeout=300, **kw):
    """Run a child Python; a crash (killed by a signal) fails the calling test with the
    child's last output, which names the call that crashed."""
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, **kw)
    assert proc.returncode >= 0, (f"the child process crashed (signal {-proc.returncode}) after:\n"
                                  f"{proc.stdout[-1500:]}\n{proc.stderr[-1500:]}")
    return proc


@pytest.mark.parametrize("kind", HOSTILE)
def test_hostile_csr_refused_by_every_entry_point(kind, tmp_path):
    """Fit (every backend, dual CD), predictions, paths, PathResult.decision_function (it
    segfaulted on an out-of-range index), CV, the bench's data loading, CSC input and the
    extension's own check (it read past indptr's end on a rising-then-falling indptr):
    each refuses the broken matrix with a ValueError naming the problem."""
    proc = run_isolated(["-c", _CHILD, kind, str(tmp_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    *lines, done = proc.stdout.strip().splitlines()
    assert done == "DONE" and len(lines) >= 17, proc.stdout
    accepted = [line for line in lines if not line.split(": ", 1)[1].startswith("REFUSED")]
    assert not accepted, "\n".join(accepted)
    if kind == "indptr_rises_then_falls":  # the extension names the row before reading it
        check = [line for line in lines if line.startswith("_cd.check_csr")]
        assert not check or "row 0 spans [0, 100000000)" in check[0], check


def test_extension_check_csr_reads_nothing_past_the_end():
    """``_cd.check_csr`` on ``indptr = [0, 10**9, 5]`` with 5 stored values: before, it
    read ``indices[5:10**9]`` (garbage taken for column indices, or a segfault); now it
    refuses row 0 before reading it."""
    pytest.importorskip("tikhon._cd")
    proc = run_isolated(["-c", textwrap.dedent("""
        import numpy as np
        from tikhon import _cd
        for ptr in ([0, 10**9, 5], [0, 100, 5], [0, 6, 5]):
            try:
                _cd.check_csr(np.ones(5), np.zeros(5, np.int32), np.array(ptr, np.int32), 5)
                print("ACCEPTED")
            except ValueError as exc:
                print(exc)
        """)])
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 3, proc.stdout + proc.stderr
    for line, ptr in zip(lines, ("10**9", "100", "6")):
        assert line.startswith("malformed CSR indptr: row 0 spans [0, "), (ptr, line)


@pytest.mark.parametrize("kind", ["index_past_n_features", "indptr_rises_then_falls", "canonical_flag_on_bad_index"])
def test_bench_refuses_a_crafted_npz(kind, tmp_path):
    """`tikhon bench --data crafted.npz` built backends and ran solvers on the file's CSR
    with no validation (a segfault); now the data set passes the gate when it is loaded:
    one line on stderr and exit 2."""
    M = sp.csr_matrix(data(40, 5)[0])
    y = data(40, 5)[1]
    if kind == "indptr_rises_then_falls":
        M.indptr[1] = 10 ** 8
    else:
        M.indices[7] = 10 ** 8
    path = tmp_path / "crafted.npz"
    np.savez(path, data=M.data, indices=M.indices, indptr=M.indptr, shape=np.array(M.shape), y=y)
    proc = run_isolated(["-m", "tikhon.cli", "bench", "--data", str(path), "--C", "1", "--anchors", "none",
                         "--kernel-seconds", "0.005", "--no-warmup", "--out", str(tmp_path / "out")])
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and err[-1].startswith("tikhon bench: error: "), proc.stderr
    assert "crafted" in err[-1] and ("out of range" in err[-1] or "non-decreasing" in err[-1]), err[-1]


def test_hostile_dask_chunks_refused(tmp_path):
    """CSR chunks of a dask array are checked where they live, as the gate checks in-memory
    CSR, for fits and lazy predictions (before: a chunk with an out-of-range index
    segfaulted the worker's fit kernel, and scipy's product in predict)."""
    pytest.importorskip("distributed")
    proc = run_isolated(["-c", textwrap.dedent("""
        import numpy as np, scipy.sparse as sp, dask, dask.array as da, tikhon
        from distributed import Client
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 5)); y = (X[:, 0] > 0).astype(int)
        def block(i):
            M = sp.csr_matrix(X[20 * i:20 * i + 20]); M.indices[7] = 10 ** 8; return M
        Xd = da.concatenate([da.from_delayed(dask.delayed(block)(i), shape=(20, 5), dtype=np.float64,
                                             meta=sp.csr_matrix((0, 5))) for i in range(2)])
        with Client(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None):
            model = tikhon.LogisticRegression().fit(X, y)
            for call in (lambda: tikhon.LogisticRegression().fit(Xd, y), lambda: model.predict(Xd).compute(),
                         lambda: model.predict_proba(Xd).compute(), lambda: model.decision_function(Xd).compute()):
                try:
                    call(); print("ACCEPTED", flush=True)
                except ValueError as exc:
                    print("REFUSED", exc, flush=True)
        """)])
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 4, proc.stdout + proc.stderr[-2000:]
    assert all(line.startswith("REFUSED CSR column index 100000000") for line in lines), proc.stdout


@pytest.mark.parametrize("fmt", ["coo", "csc", "bsr"])
def test_hostile_other_sparse_formats_refused(fmt):
    """Other sparse formats are converted to CSR by scikit-learn, whose conversion (scipy's
    coo/csc -> csr) writes out of bounds on a broken structure: checked before it."""
    proc = run_isolated(["-c", textwrap.dedent(f"""
        import numpy as np, scipy.sparse as sp, tikhon
        rng = np.random.default_rng(0)
        X = rng.standard_normal((40, 4)); y = (X[:, 0] > 0).astype(int)
        A = sp.coo_matrix(X) if "{fmt}" == "coo" else sp.csc_matrix(X) if "{fmt}" == "csc" else sp.bsr_matrix(X, blocksize=(2, 2))
        if "{fmt}" == "coo":
            A.row[3] = 10 ** 8
        else:
            A.indices[3] = 10 ** 8
        for call in (lambda: tikhon.LogisticRegression().fit(A, y), lambda: tikhon.regularization_path(A, y, Cs=[1.0])):
            try:
                call(); print("ACCEPTED")
            except ValueError as exc:
                print("REFUSED", exc)
        """)])
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("REFUSED") for line in lines), proc.stdout + proc.stderr[-2000:]


# ---------------------------------------------------------------------------------
# class_weight="balanced" with sample weights: one definition for the estimator, CV and
# path, scikit-learn's (>= 1.7), whatever scikit-learn is installed (issue 14)
# ---------------------------------------------------------------------------------
def _imbalanced(seed=5):
    X, y = data(80, 4, seed=seed)
    y[:12] = 1  # more of class 1
    s = np.random.default_rng(seed).uniform(0.1, 5.0, len(y))
    return X, y, s


def test_balanced_class_weight_uses_sample_weight():
    """Before: LogisticRegression computed "balanced" from counts, ignoring sample_weight,
    while LogisticRegressionCV, regularization_path and scikit-learn >= 1.7 used the
    weighted counts: the same data gave different models (intercept 0.74 against 0.84).
    The reference is scikit-learn fitted with the weights ``s_i * sum(s) / (2 sum_{y_j =
    y_i} s_j)`` spelled out (any version), and with class_weight="balanced" where
    scikit-learn (>= 1.7) uses sample weights in it."""
    import sklearn
    from sklearn.linear_model import LogisticRegression as SkLR

    X, y, s = _imbalanced()
    per_class = s.sum() / (2 * np.array([s[y == 0].sum(), s[y == 1].sum()]))
    references = [dict(sample_weight=s * per_class[y])]
    if tuple(int(v) for v in sklearn.__version__.split(".")[:2]) >= (1, 7):
        references.append(dict(sample_weight=s, class_weight="balanced"))
    ours = LR(class_weight="balanced", tol=TOL).fit(X, y, sample_weight=s)
    path = tikhon.regularization_path(X, y, Cs=[1.0], class_weight="balanced", sample_weight=s, tol=TOL)
    cv = tikhon.LogisticRegressionCV(Cs=[1.0], cv=2, class_weight="balanced", tol=TOL).fit(X, y, sample_weight=s)
    for ref in references:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk = SkLR(class_weight=ref.get("class_weight"), tol=1e-12, max_iter=10000).fit(
                X, y, sample_weight=ref["sample_weight"])
        for coef, b in ((ours.coef_, ours.intercept_), (path.coefs, path.intercepts), (cv.coef_, cv.intercept_)):
            np.testing.assert_allclose(np.ravel(coef), sk.coef_.ravel(), rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(np.ravel(b), sk.intercept_, rtol=1e-5, atol=1e-6)


def test_class_weighted_matches_scikit_learn():
    """The per-sample weights equal scikit-learn's ``compute_class_weight`` with sample
    weights (scikit-learn >= 1.7 takes them), for "balanced", a dict and None."""
    from sklearn.utils.class_weight import compute_class_weight

    from tikhon._validation import class_weighted

    _, y, s = _imbalanced()
    classes, index = np.unique(y, return_inverse=True)
    for cw in ("balanced", {0: 0.5, 1: 3.0}, {1: 2.0}, None):
        ours = class_weighted(s.copy(), cw, classes, index)
        if cw is None:
            np.testing.assert_array_equal(ours, s)
            continue
        try:
            ref = compute_class_weight(cw, classes=classes, y=y, sample_weight=s)
        except TypeError:
            pytest.skip("this scikit-learn's compute_class_weight takes no sample_weight (< 1.7)")
        np.testing.assert_allclose(ours, s * ref[index], rtol=1e-14)
    # unit weights: the count-based definition of every scikit-learn version
    ones = np.ones(len(y))
    np.testing.assert_allclose(class_weighted(ones, "balanced", classes, index),
                               compute_class_weight("balanced", classes=classes, y=y)[index], rtol=1e-14)


def test_class_weights_with_scikit_learn_1_6(monkeypatch):
    """scikit-learn 1.6 (pyproject's floor) has ``compute_class_weight(class_weight, *,
    classes, y)``: no ``sample_weight``. Before, regularization_path and
    LogisticRegressionCV passed it (a TypeError there); the balanced weights are now
    computed by tikhon itself, with 1.7's weighted definition."""
    import sklearn.utils.class_weight as cw_module

    real = cw_module.compute_class_weight

    def compute_class_weight_1_6(class_weight, *, classes, y):
        return real(class_weight, classes=classes, y=y)

    monkeypatch.setattr(cw_module, "compute_class_weight", compute_class_weight_1_6)
    import tikhon.cv
    import tikhon.path

    for module in (tikhon.path, tikhon.cv, tikhon.estimators):
        monkeypatch.setattr(module, "compute_class_weight", compute_class_weight_1_6, raising=False)
    X, y, s = _imbalanced()
    ref = LR(class_weight="balanced", tol=TOL).fit(X, y, sample_weight=s)
    for cw in ("balanced", {0: 0.5, 1: 3.0}):
        path = tikhon.regularization_path(X, y, Cs=[1.0], class_weight=cw, sample_weight=s, tol=TOL)
        cv = tikhon.LogisticRegressionCV(Cs=[1.0], cv=2, class_weight=cw, tol=TOL).fit(X, y, sample_weight=s)
        model = LR(class_weight=cw, tol=TOL).fit(X, y, sample_weight=s)
        np.testing.assert_allclose(path.coefs[0], model.coef_.ravel(), rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(cv.coef_, model.coef_, rtol=1e-6, atol=1e-8)
        if cw == "balanced":
            _same_model(model, ref)


def test_sample_weight_checks_need_no_private_scikit_learn_helper(monkeypatch):
    """Before, sample weights went through scikit-learn's private ``_check_sample_weight``
    with ``allow_all_zero_weights``, a keyword scikit-learn 1.6 (pyproject's floor) does
    not have: every fit there raised TypeError. The checks are tikhon's own now, with
    the same messages (the error cases above)."""
    import sklearn.utils.validation as validation

    def private_1_6(sample_weight, X, *, dtype=None, copy=False, ensure_non_negative=False):
        raise AssertionError("scikit-learn's private _check_sample_weight was called")

    monkeypatch.setattr(validation, "_check_sample_weight", private_1_6)
    X, y = data()
    s = np.linspace(0.5, 2.0, len(y))
    ref = LR(tol=TOL).fit(np.repeat(X, 2, axis=0), np.repeat(y, 2))
    _same_model(LR(tol=TOL).fit(X, y, sample_weight=np.full(len(y), 2.0)), LR(tol=TOL).fit(X, y, sample_weight=2.0))
    model = LR(tol=TOL).fit(X, y, sample_weight=s)
    assert np.isfinite(model.objective_)
    _same_model(LR(C=0.5, tol=TOL).fit(X, y, sample_weight=np.ones(len(y))), LR(C=0.5, tol=TOL).fit(X, y))
    _same_model(LR(tol=TOL).fit(X, y, sample_weight=2.0), ref)  # weight 2 == each row twice
    tikhon.regularization_path(X, y, Cs=[1.0], sample_weight=s)
    tikhon.RidgeCV().fit(X, y, sample_weight=s)
