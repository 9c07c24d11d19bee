"""Bad input, every backend x every input kind: a clear error naming the problem, or the
documented correct result -- never a crash, a hang, or a silently wrong model.

The rules under test are written down in :mod:`tikhon._validation` (and the
estimators' docstrings). Each error case is fitted on every backend that reads the
input kind (the ``cython`` backend reads CSR only: for it the dense kinds are the one
documented "cannot read dense input" error); each accepted-but-unusual case must give
the model of the equivalent clean float64 input on the same backend.
"""
from __future__ import annotations

import sys
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
    ("three_classes", LR, lambda X, y: (X, np.arange(len(y)) % 3, {}), ValueError, "binary; got 3 classes"),
    ("continuous_labels", LR, lambda X, y: (X, y + 0.5 * np.arange(len(y)), {}), ValueError, "continuous"),
    ("y_too_short", LR, lambda X, y: (X, y[:-1], {}), ValueError,
     "inconsistent numbers of samples|y must be a 1-D array of 40 entries"),
    ("y_two_columns", RR, lambda X, y: (X, np.c_[y, y], {}), ValueError, "1d array|y must be a 1-D array"),
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
    (LR, {"max_iter": 0}, "max_iter must be a positive integer"),
    (RR, {"max_iter": -5}, "max_iter must be a positive integer"),
    (LR, {"max_iter": 2.5}, "max_iter must be a positive integer"),
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
    return M


CSR_VARIANTS = ["int64_indices", "mixed_index_types", "unsorted_indices", "duplicates",
                "explicit_zeros", "trailing_junk", "read_only", "csr_array", "coo"]


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
