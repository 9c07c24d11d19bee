"""Fuzzed CSR structure over every public function that takes ``X`` (issue 14).

Hypothesis draws a small CSR matrix and then damages or disguises its arrays: ``indptr``
monotone or not (rising then falling, decreasing, not from 0, ending past the data, of
the wrong length, negative), column indices out of range or negative, int32/int64 and
other integer types mixed, strided and reversed views, duplicates, unsorted rows,
explicit zeros, empty rows, stored values past ``indptr[-1]``, ``data`` and ``indices``
of other lengths, read-only arrays, scipy's canonical flag set on a broken matrix.

An independent oracle (plain Python loops over the arrays) says whether the structure is
valid and, if it is, which dense matrix it means (duplicates summed). Each public
function must then give the result it gives on the canonical CSR of that matrix; on a
broken structure it must raise ``ValueError``. Nothing else: no other exception, no
silent result, no crash.

A segfault would kill the interpreter, so each batch (one group of functions over all
drawn matrices) runs in its own subprocess, which prints each case before trying it: a
crash fails the test and names the case. The draws are derandomized (the same cases
every run) and each batch takes a few seconds.
"""
from __future__ import annotations

import functools
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import tikhon

# drawn cases per batch and structure fault; three times as many with no fault
EXAMPLES = int(os.environ.get("TIKHON_FUZZ_EXAMPLES", "5"))
TOL = 1e-10
VALUES = (0.0, 0.0, 0.0, 1.3, -0.7, 2.1, -1.9, 0.45)  # zeros make empty rows; no ties in margins
INDEX_TYPES = (np.int32, np.int64, np.uint32, np.int16)
HOSTILE = ("index_past_end", "index_huge", "index_negative", "indptr_rises_then_falls", "indptr_decreases",
           "indptr_not_from_zero", "indptr_past_data", "indptr_too_short", "indptr_too_long",
           "indptr_negative", "data_too_short", "indices_too_short", "indices_float", "data_2d")
PREDICT_DASK = "decision_function, predict_proba[dask]"
# Faults another library repairs before tikhon sees the matrix: dask's graph for lazy
# predictions rebuilds the chunk with scipy's constructor, which casts float indices.
REPAIRED = {PREDICT_DASK: {"indices_float"}}
DISGUISES = ("unsorted", "duplicates", "explicit_zeros", "trailing_junk", "strided_data", "strided_indices",
             "strided_indptr", "reversed_views", "read_only", "csr_array", "canonical_flag")


# ------------------------------------------------------------------ the oracle
def oracle(data, indices, indptr, shape):
    """The dense matrix the arrays mean, or ``None`` when the structure is broken.
    Written with plain loops, independently of tikhon's checks."""
    n, d = shape
    for arr in (indices, indptr):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in "iu":
            return None
    if not isinstance(data, np.ndarray) or data.ndim != 1 or len(indptr) != n + 1 or int(indptr[0]) != 0:
        return None
    ptr = [int(v) for v in indptr]
    if any(b < a for a, b in zip(ptr, ptr[1:])) or ptr[-1] > min(len(data), len(indices)):
        return None
    dense = np.zeros(shape, dtype=np.float64)
    for i in range(n):
        for k in range(ptr[i], ptr[i + 1]):
            j = int(indices[k])
            if not 0 <= j < d:
                return None
            dense[i, j] += float(data[k])
    return dense


# ------------------------------------------------------------------ drawing cases
def _case_strategy(hostile):
    """Cases with the structure fault ``hostile`` (``None``: only disguises)."""
    from hypothesis import strategies as st

    @st.composite
    def case(draw):
        n, d = draw(st.integers(6, 9)), draw(st.integers(1, 5))  # n >= 6: both classes in every CV fold
        dense = np.array(draw(st.lists(st.sampled_from(VALUES), min_size=n * d, max_size=n * d))).reshape(n, d)
        dtype = draw(st.sampled_from((np.float64, np.float32)))
        C = sp.csr_matrix(dense.astype(dtype))
        data, indices, indptr = C.data.copy(), C.indices.astype(draw(st.sampled_from(INDEX_TYPES))), C.indptr
        indptr = indptr.astype(draw(st.sampled_from((np.int32, np.int64))))
        # each disguise in about a quarter of the cases, in DISGUISES' order: row rewrites, then
        # junk past the end, then views
        disguises = [name for name in DISGUISES if draw(st.integers(0, 3)) == 0]
        for name in disguises:
            data, indices, indptr = _disguise(name, data, indices, indptr, d)
        if hostile is not None:
            data, indices, indptr = _break(hostile, data, indices, indptr, n, d, draw)
        M = (sp.csr_array if "csr_array" in disguises else sp.csr_matrix)((n, d), dtype=dtype)
        M.data, M.indices, M.indptr = data, indices, indptr  # past scipy's constructor checks
        if "read_only" in disguises:
            for arr in (data, indices, indptr):
                if isinstance(arr, np.ndarray):
                    arr.flags.writeable = False
        dense = oracle(data, indices, indptr, (n, d))
        if "canonical_flag" in disguises and (dense is None or not _repeats(indices, indptr)):
            # a lie on a broken or unsorted matrix; not on duplicates: the flag is trusted there, as scipy does
            M.has_canonical_format = True
        label = f"n={n} d={d} {np.dtype(dtype).name} idx={indices.dtype}/{indptr.dtype} {disguises} {hostile}"
        return M, dense, label

    return case()


def _repeats(indices, indptr):
    """Whether a row of a valid structure stores one column twice (plain loops)."""
    for i in range(len(indptr) - 1):
        row = [int(j) for j in indices[int(indptr[i]):int(indptr[i + 1])]]
        if len(set(row)) != len(row):
            return True
    return False


def _disguise(name, data, indices, indptr, d):
    """Equivalent arrays in an unusual layout (the same matrix)."""
    nnz = int(indptr[-1])
    rows = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr.astype(np.int64)))
    if name == "unsorted":
        order = np.lexsort((-np.arange(nnz), rows))
        return data[order], indices[order], indptr
    if name == "duplicates":  # each entry v as v/4 and 3v/4 in the same column, apart in the row
        order = np.argsort(np.r_[rows, rows], kind="stable")
        return (np.r_[0.25 * data, 0.75 * data][order].astype(data.dtype), np.r_[indices, indices][order],
                (2 * indptr.astype(np.int64)).astype(indptr.dtype))
    if name == "explicit_zeros":  # a stored 0 in column d - 1 appended to every row
        parts_d, parts_i = [], []
        for i in range(len(indptr) - 1):
            sl = slice(int(indptr[i]), int(indptr[i + 1]))
            parts_d += [data[sl], np.zeros(1, data.dtype)]
            parts_i += [indices[sl], np.full(1, d - 1, indices.dtype)]
        ptr = (indptr.astype(np.int64) + np.arange(len(indptr))).astype(indptr.dtype)
        return np.concatenate(parts_d), np.concatenate(parts_i), ptr
    if name == "trailing_junk":  # stored values past indptr[-1] (scipy allows them): never read
        junk = np.array([d + 7, 0], dtype=np.int64).astype(indices.dtype)
        return np.r_[data, [np.nan, 1e30]].astype(data.dtype), np.r_[indices, junk].astype(indices.dtype), indptr
    if name in ("strided_data", "strided_indices", "strided_indptr"):  # views scipy accepts
        arrays = {"data": data, "indices": indices, "indptr": indptr}
        key = name.split("_")[1]
        arrays[key] = np.repeat(arrays[key], 2)[::2]
        return arrays["data"], arrays["indices"], arrays["indptr"]
    if name == "reversed_views":
        return data[::-1].copy()[::-1], indices[::-1].copy()[::-1], indptr
    return data, indices, indptr  # read_only, csr_array, canonical_flag: set on the matrix


def _break(name, data, indices, indptr, n, d, draw):
    """A structure fault (the result may still happen to be valid: the oracle decides)."""
    from hypothesis import strategies as st

    indices, indptr = indices.copy(), indptr.astype(np.int64)
    nnz = int(indptr[-1])
    k = draw(st.integers(0, max(0, nnz - 1)))
    big = int(np.iinfo(indices.dtype).max)
    if name == "index_past_end" and nnz:
        indices[k] = min(d + draw(st.integers(0, 3)), big)
    elif name == "index_huge" and nnz:
        indices[k] = big
    elif name == "index_negative" and nnz:
        indices[k] = np.iinfo(indices.dtype).min if indices.dtype.kind == "i" else big
    elif name == "indptr_rises_then_falls":
        indptr[draw(st.integers(1, n - 1))] = nnz + draw(st.sampled_from((1, 1000, 10 ** 9)))
    elif name == "indptr_decreases":
        i = draw(st.integers(1, n - 1))
        indptr[i] = indptr[i + 1] + 1
    elif name == "indptr_not_from_zero":
        indptr[0] = draw(st.sampled_from((1, -1)))
    elif name in ("indptr_past_data", "data_too_short", "indices_too_short") and not nnz:
        indptr[-1] = 3
    elif name == "indptr_past_data":
        indptr[-1] = nnz + draw(st.integers(1, 10 ** 6))
    elif name == "indptr_too_short":
        indptr = indptr[:-1]
    elif name == "indptr_too_long":
        indptr = np.r_[indptr, nnz]
    elif name == "indptr_negative":
        indptr[draw(st.integers(1, n - 1))] = -5
    elif name == "data_too_short":
        data = data[:nnz - 1]
    elif name == "indices_too_short":
        indices = indices[:nnz - 1]
    elif name == "indices_float":
        indices = indices.astype(np.float64)
    elif name == "data_2d":
        data = data.reshape(-1, 1)
    return data, indices, indptr.astype(draw(st.sampled_from((np.int32, np.int64))))


# ------------------------------------------------------------------ the functions under test
def _fit(estimator, backend, X, y, solver="auto"):
    tol = 1e-6 if X.dtype == np.float32 else TOL
    return estimator(backend=backend, solver=solver, tol=tol, max_iter=2000).fit(X, y)


def _clean(d, ridge=False, seed=0):
    rng = np.random.default_rng(seed + d)
    X = rng.standard_normal((12, d))
    y = X[:, 0] + 0.3 * rng.standard_normal(12) if ridge else (X[:, 0] > 0).astype(int)
    return X, y


def _labels(n):
    return np.array([1, 1, 0] * n)[:n]  # two classes, unbalanced: no tie at an all-zero row


def _targets(n):
    return np.linspace(-1.0, 2.0, n) ** 2


def _group(name):
    """``{function name: callable(X) -> result arrays}`` for one batch."""
    LR, RR = tikhon.LogisticRegression, tikhon.Ridge
    if name.startswith("fit-"):
        backend = name[4:]
        out = {f"LogisticRegression[{backend}]": lambda X: _coefs(_fit(LR, backend, X, _labels(X.shape[0]))),
               f"Ridge[{backend}]": lambda X: _coefs(_fit(RR, backend, X, _targets(X.shape[0])))}
        if backend == "cython":
            out["LogisticRegression[dual_cd]"] = lambda X: _coefs(_fit(LR, backend, X, _labels(X.shape[0]), "dual_cd"))
            out["Ridge[dual_cd]"] = lambda X: _coefs(_fit(RR, backend, X, _targets(X.shape[0]), "dual_cd"))
        return out
    if name == "dask":  # one chunk holding the matrix itself (an in-process cluster: no copy on the way)
        def lazy(X):
            import dask
            import dask.array as da

            return da.from_delayed(dask.delayed(lambda: X)(), shape=X.shape, dtype=X.dtype,
                                   meta=sp.csr_matrix((0, X.shape[1]), dtype=X.dtype))

        def predictions(X):
            model = LR(tol=TOL).fit(*_clean(X.shape[1]))
            return model.decision_function(lazy(X)).compute(), model.predict_proba(lazy(X)).compute()

        _dask_client()
        return {"LogisticRegression[dask]": lambda X: _coefs(_fit(LR, "dask", lazy(X), _labels(X.shape[0]))),
                "Ridge[dask]": lambda X: _coefs(_fit(RR, "dask", lazy(X), _targets(X.shape[0]))),
                PREDICT_DASK: predictions}
    if name == "predict":
        @functools.lru_cache(maxsize=None)
        def fitted(d, ridge=False):
            return (RR if ridge else LR)(tol=TOL).fit(*_clean(d, ridge))

        return {"predict": lambda X: fitted(X.shape[1]).predict(X),
                "decision_function": lambda X: fitted(X.shape[1]).decision_function(X),
                "predict_proba": lambda X: fitted(X.shape[1]).predict_proba(X),
                "predict_log_proba": lambda X: fitted(X.shape[1]).predict_log_proba(X),
                "Ridge.predict": lambda X: fitted(X.shape[1], ridge=True).predict(X)}
    if name == "path":
        def path_of(X):
            p = tikhon.regularization_path(X, _labels(X.shape[0]), Cs=[0.1, 10.0], tol=TOL, max_iter=2000)
            return p.coefs, p.intercepts

        def ridge_path(X):
            p = tikhon.regularization_path(X, _targets(X.shape[0]), alphas=[0.1, 10.0], model="ridge", tol=TOL)
            return p.coefs, p.intercepts

        def path_decision(X):
            return tikhon.regularization_path(*_clean(X.shape[1]), Cs=[0.1, 10.0], tol=TOL).decision_function(X)

        return {"regularization_path": path_of, "regularization_path[ridge]": ridge_path,
                "PathResult.decision_function": path_decision}
    if name == "cv":
        def lr_cv(X):
            m = tikhon.LogisticRegressionCV(Cs=[0.1, 10.0], cv=2, tol=TOL, max_iter=2000).fit(X, _labels(X.shape[0]))
            return m.coef_, m.intercept_, m.C_

        def ridge_cv(X, cv=None):
            m = tikhon.RidgeCV(alphas=[0.1, 10.0], cv=cv, tol=TOL).fit(X, _targets(X.shape[0]))
            return m.coef_, m.intercept_, m.alpha_

        return {"LogisticRegressionCV": lr_cv, "RidgeCV[loo]": ridge_cv,
                "RidgeCV[cv=2]": lambda X: ridge_cv(X, cv=2)}
    if name == "bench":
        from tikhon.bench.problems import checked_X, load_dataset, parse_data_spec

        def from_npz(X):
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "case.npz")
                np.savez(path, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.array(X.shape),
                         y=_labels(X.shape[0]))
                return load_dataset(parse_data_spec(path, X.dtype)).X.toarray()

        return {"bench load_dataset(.npz)": from_npz, "bench checked_X": lambda X: checked_X(X, "fuzz").toarray()}
    raise KeyError(name)


@functools.lru_cache(maxsize=None)
def _dask_client():
    """One in-process cluster for the child (worker memory thresholds off, as the suite's)."""
    import dask
    import distributed

    dask.config.set({f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause", "terminate")})
    return distributed.Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=None)


def _coefs(model):
    return np.ravel(model.coef_), np.ravel(model.intercept_)


def _same(a, b, dtype):
    rtol, atol = (1e-3, 1e-4) if dtype == np.float32 else (1e-6, 1e-8)
    for u, v in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        np.testing.assert_allclose(np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64),
                                   rtol=rtol, atol=atol)


def run_batch(group, examples):
    """The hypothesis test of one group, run in this (child) process: ``examples`` cases
    per structure fault, ``3 * examples`` valid ones."""
    functions = _group(group)
    if group == "dask":  # about 0.3 s a fit: a fifth of the cases
        examples = max(1, examples // 5)
    for hostile in (None, *HOSTILE):
        _hypothesis_test(functions, hostile, 3 * examples if hostile is None else examples)()


def _hypothesis_test(functions, hostile, examples):
    from hypothesis import HealthCheck, given, settings

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(_case_strategy(hostile))
    def check(case):
        M, dense, label = case
        for name, function in functions.items():
            if hostile in REPAIRED.get(name, ()):
                continue
            print(f"{name}: {label}", file=sys.stderr, flush=True)  # the last line names a crash
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:  # the canonical matrix's result: a value, or a refusal (e.g. a NaN stored in range)
                    expected = None if dense is None else function(sp.csr_matrix(dense.astype(M.dtype)))
                except ValueError:
                    dense = None
                if dense is None:
                    with pytest.raises(ValueError):
                        function(M)
                    continue
                _same(function(M), expected, M.dtype)

    return check


# ------------------------------------------------------------------ the tests (parent process)
def _groups():
    available = tikhon.available_backends()
    fits = [f"fit-{b}" for b in ("numpy", "numba", "cython") if b in available]
    return [*fits, "predict", "path", "cv", "bench", *(["dask"] if "dask" in available else [])]


@pytest.mark.parametrize("group", _groups())
def test_fuzzed_csr_structure(group):
    proc = subprocess.run([sys.executable, __file__, group, str(EXAMPLES)], capture_output=True, text=True,
                          timeout=900)
    last = proc.stderr.strip().splitlines()[-1:] or ["(nothing)"]
    assert proc.returncode >= 0, f"{group}: the child crashed (signal {-proc.returncode}) on: {last[0]}"
    assert proc.returncode == 0, f"{group}:\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"


def test_oracle_agrees_with_scipy_on_valid_structures():
    """The oracle itself: the dense matrix of a valid structure is scipy's (duplicates
    summed), and broken ones are recognized (else the fuzz test could not fail)."""
    M = sp.random(6, 4, density=0.5, format="csr", random_state=1)
    np.testing.assert_allclose(oracle(M.data, M.indices, M.indptr, M.shape), M.toarray())
    D = sp.csr_matrix((np.ones(3), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 2))
    np.testing.assert_allclose(oracle(D.data, D.indices, D.indptr, D.shape), [[0, 2], [1, 0]])
    assert oracle(M.data, M.indices, np.r_[0, 100, M.indptr[2:]], M.shape) is None
    bad = M.indices.copy()
    bad[0] = 4
    assert oracle(M.data, bad, M.indptr, M.shape) is None


if __name__ == "__main__":
    run_batch(sys.argv[1], int(sys.argv[2]))
