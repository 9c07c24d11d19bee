"""Input validation for the estimators: what tikhon accepts, converts, or refuses.

One place decides it, so that every backend sees the same, checked input:

* ``X``: dense arrays (C or F order, strided views, memory maps, read-only or not)
  and CSR matrices/arrays in float32 or float64 are used **in place** (no copy).
  Integer, bool and float16 data, and object arrays holding numbers, are converted
  to float64 (a copy); other sparse formats to CSR (a copy). Complex data, string
  arrays, NaN and infinity are refused with ``ValueError`` (objects that are not
  numbers with numpy's ``TypeError``); so are empty inputs (0 rows or 0 features)
  and arrays that are not 2-D.
* One gate, :func:`check_X`, validates ``X`` for every public entry point: the
  estimators' ``fit``, ``predict``, ``decision_function`` and ``predict_proba`` (CV
  included), :func:`tikhon.regularization_path`, ``PathResult.decision_function`` and
  the benchmark's data loading (``tikhon bench``; the CLI's ``fit`` and ``predict`` go
  through the estimators). Backends read what it returns and check nothing again.
* CSR structure is checked in O(nnz) without copying: ``indptr`` of length
  ``n_samples + 1``, starting at 0, non-decreasing, ending within ``data`` and
  ``indices``; every column index in ``[0, n_features)`` (whatever scipy's
  ``has_canonical_format`` flag says: it can be set on any matrix). A broken
  structure is a ``ValueError`` (the kernels would otherwise read out of bounds).
  Unsorted indices, explicit zeros, empty rows and stored values past ``indptr[-1]``
  are valid and used as they are. Duplicate entries mean their sum (scipy's
  meaning): such a matrix is copied once with its duplicates summed, so that every
  kernel (row norms included) sees one entry per column (the canonical flag only
  skips this search).
* CSR layouts the compiled kernels cannot read in place are converted once, in
  the gate: ``data``, ``indices`` or ``indptr`` that are strided views (e.g.
  ``data[::2]``, which scipy accepts), unaligned, of different lengths, or index
  arrays of two integer types (or not int32/int64). The new matrix copies only the
  arrays that change: ``nnz`` values (8 or 4 bytes each) for strided ``data``,
  ``nnz`` indices for strided ``indices``; index types are unified by scipy's rule
  (int32 when the values fit, else int64: one pass over int64 arrays to see their
  range).
* ``y``: 1-D, finite. Logistic regression needs exactly two classes carrying
  positive weight; ridge needs real numbers.
* ``sample_weight``: ``None``, a scalar or a 1-D array of ``n_samples`` finite,
  non-negative numbers with a positive, finite sum; always copied to a fresh
  float64 array, so nothing downstream can write into the caller's array.
* ``class_weight`` (logistic): ``None``, a dict ``{label: weight}`` or
  ``"balanced"``; :func:`class_weighted` multiplies each sample's weight by its
  class's, for the estimator, the CV estimator and the path alike. "balanced" is
  scikit-learn's (>= 1.7) weighted definition ``w_k = sum(s) / (2 sum_{y_i=k} s_i)``,
  computed here (scikit-learn 1.6's ``compute_class_weight`` ignores sample weights).
* Magnitudes: features, ridge targets and weights must be at most ``1e50`` in
  absolute value (``MAX_MAGNITUDE``; checked when fitting, O(nnz)); beyond, squares
  of products overflow float64, so such data is refused with a request to rescale.
* Hyperparameters: ``C``, ``alpha``, ``tol``, ``learning_rate`` finite and > 0;
  ``max_iter``, ``batch_size`` positive integers; ``fit_intercept`` a bool.
"""
from __future__ import annotations

import numbers

import numpy as np
import scipy.sparse as sp

__all__ = ["MAX_MAGNITUDE", "check_X", "check_binary_labels", "check_bool", "check_class_balance", "check_class_labels",
           "check_csr_structure", "check_magnitude", "check_nonempty", "check_random_state_param",
           "check_sample_weight", "check_sparse_structure", "check_targets", "check_values",
           "class_weighted", "positive", "readable_csr", "refuse_strings", "require_y"]


def positive(name, value, integer=False, allow_none=False):
    """Raise ``ValueError`` unless ``value`` is a finite positive number (or integer)."""
    if allow_none and value is None:
        return
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind) or not np.isfinite(value) or value <= 0:
        what = "a positive integer" if integer else "a finite positive number"
        raise ValueError(f"{name} must be {what}, got {value!r}")


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")


def check_random_state_param(value):
    """``random_state`` is ``None`` or a non-negative integer (fits are repeatable)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"random_state must be None or a non-negative integer, got {value!r}")


def refuse_strings(X):
    """Refuse arrays of strings or bytes (numpy would parse numeric strings silently)."""
    dtype = getattr(X, "dtype", None)
    if isinstance(dtype, np.dtype) and dtype.kind in "USa":
        raise ValueError(f"X holds strings (dtype {dtype}); tikhon takes numbers: convert X first")


# What the gate hands to every backend: float64 or float32, CSR or dense, any order.
_X_RULES = dict(accept_sparse="csr", dtype=[np.float64, np.float32], order=None, accept_large_sparse=True,
                ensure_all_finite=False)  # finiteness: checked with the magnitude, in one pass


def check_X(X, *, fitting, estimator=None, reset=None, y=None, y_numeric=False, multi_output=False):
    """The validation gate: ``X`` as every backend may read it, checked (module docstring).

    Every public entry point that takes ``X`` calls this, once: kernels read the result
    without further checks. ``fitting``: also refuse magnitudes the solvers cannot square
    (prediction only refuses NaN and infinity). ``estimator``: scikit-learn's bookkeeping
    (``n_features_in_``, feature names; ``reset`` as in ``validate_data``, default
    ``fitting``) and, with ``y``, its checks of ``y`` (``y_numeric`` for real targets,
    ``multi_output`` for one column per target);
    returns ``(X, y)`` then. Dask arrays given with an estimator stay lazy (checked per
    chunk: :mod:`tikhon.backends.dask`). Costs: O(nnz) reads of a CSR's indices and
    values (O(n d) for dense); copies only for the conversions documented above.
    """
    reset = fitting if reset is None else reset
    if estimator is not None and _is_dask(X):
        from .backends import dask as dask_backend

        return dask_backend.validate(estimator, X, reset, y)
    refuse_strings(X)
    check_sparse_structure(X)  # another sparse format: before scikit-learn converts it to CSR
    plain = _validate_plain(X, y, estimator, reset) if estimator is not None else None
    if plain is not None:
        X, y = plain
    elif estimator is None:
        from sklearn.utils.validation import check_array

        X = check_array(X, **_X_RULES)
    else:
        from sklearn.utils.validation import validate_data

        if y is None:
            X = validate_data(estimator, X, reset=reset, **_X_RULES)
        else:
            X, y = validate_data(estimator, X, y, reset=reset, y_numeric=y_numeric, multi_output=multi_output,
                                 **_X_RULES)
    if sp.issparse(X):  # kernels index with it: a broken structure would read out of bounds
        X = check_csr_structure(X)
    check_values("X", X.data[:X.indptr[-1]] if sp.issparse(X) else X, magnitude=fitting)
    # a real y's magnitude: by check_targets, which every fit of real targets calls next
    return X if y is None else (X, y)


def _validate_plain(X, y, estimator, reset):
    """``(X, y)`` as scikit-learn's ``validate_data`` returns them, for the common case it
    would leave unchanged (a float32/float64 ``numpy.ndarray`` X of at least one row and
    one feature; ``y`` absent, or a finite 1-D numeric ndarray of one label per row; no
    fitted feature names to compare), with its bookkeeping: ``n_features_in_`` set on
    ``reset``, a stale ``feature_names_in_`` removed. ``None`` for anything else (and for
    a feature count that does not match the fit's), so that scikit-learn decides, with its
    messages. Saves its dataframe probes (~70 us a call, the largest fixed cost of a
    small fit)."""
    if (type(X) is not np.ndarray or X.dtype not in _FLOATS or X.ndim != 2 or X.shape[0] < 1
            or X.shape[1] < 1):
        return None
    if y is not None and not (type(y) is np.ndarray and y.ndim == 1 and y.shape[0] == X.shape[0]
                              and y.dtype.kind in "biuf" and (y.dtype.kind != "f" or np.isfinite(np.sum(y)))):
        return None  # NaN/inf in y (or a sum that overflows): scikit-learn's check and message
    if reset:
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_  # fitted on a dataframe before: as validate_data does
        estimator.n_features_in_ = X.shape[1]
    elif hasattr(estimator, "feature_names_in_") or getattr(estimator, "n_features_in_", X.shape[1]) != X.shape[1]:
        return None  # scikit-learn's warning about missing names, its error about the count
    return X, y


_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))


def _is_dask(X):
    return type(X).__module__.startswith("dask")


def check_sparse_structure(X):
    """Refuse a broken sparse structure in a format other than CSR before scipy converts
    it to CSR (its conversions write out of bounds on one): CSC as CSR
    (:func:`_check_compressed`), COO by its coordinates, BSR by scipy's full check; DIA,
    LIL and DOK convert safely. CSR itself is checked by :func:`check_csr_structure`
    (scikit-learn's checks read no CSR structure, so that check comes after them)."""
    if not sp.issparse(X) or X.format == "csr":
        return
    if X.format == "csc":
        _check_compressed(X, "csc")
    elif X.format == "coo":
        _check_coo(X)
    elif X.format == "bsr":
        try:
            X.check_format(full_check=True)
        except (ValueError, TypeError, IndexError) as exc:
            raise ValueError(f"broken BSR structure: {exc}") from None


def _check_compressed(X, fmt):
    """CSR (or CSC) arrays: see the module docstring. O(n) on indptr, two reductions
    over the used indices; no copy."""
    major, minor, width = ("row", "column", "features") if fmt == "csr" else ("column", "row", "rows")
    kind = fmt.upper()
    n_major, n_minor = X.shape if fmt == "csr" else X.shape[::-1]
    indptr, indices, data = X.indptr, X.indices, X.data
    for name, arr in (("indices", indices), ("indptr", indptr)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"{kind} {name} must be a 1-D integer array, got {getattr(arr, 'dtype', type(arr))} "
                             f"of shape {np.shape(arr)}")
    if not isinstance(data, np.ndarray) or data.ndim != 1:
        raise ValueError(f"{kind} data must be a 1-D array, got shape {np.shape(data)}")
    if indptr.shape[0] != n_major + 1:
        raise ValueError(f"{kind} indptr has {indptr.shape[0]} entries; {n_major} {major}s need {n_major + 1}")
    if indptr[0] != 0:
        raise ValueError(f"{kind} indptr must start at 0, got {indptr[0]}")
    nnz = int(indptr[-1])
    if nnz > min(indices.shape[0], data.shape[0]):
        raise ValueError(f"{kind} indptr ends at {nnz} but data has {data.shape[0]} and "
                         f"indices {indices.shape[0]} entries")
    decreasing = indptr[1:] < indptr[:-1]  # one byte per row; with indptr[-1] <= nnz: all within data
    if np.any(decreasing):
        row = int(np.argmax(decreasing))
        raise ValueError(f"{kind} indptr must be non-decreasing; it decreases at {major} {row}")
    if nnz:
        cols = indices[:nnz]
        lo, hi = cols.min(), cols.max()
        if lo < 0 or hi >= n_minor:
            bad = int(np.argmax((cols < 0) | (cols >= n_minor)))
            row = int(np.searchsorted(indptr, bad, side="right")) - 1
            raise ValueError(f"{kind} {minor} index {int(cols[bad])} in {major} {row} is out of range "
                             f"[0, {n_minor}) for a matrix of {n_minor} {width}")


def _check_coo(X):
    coords = getattr(X, "coords", None) or (X.row, X.col)
    for axis, (arr, size) in enumerate(zip(coords, X.shape)):
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise ValueError(f"COO coordinates must be 1-D integer arrays, got {getattr(arr, 'dtype', type(arr))}")
        if arr.shape[0] != np.shape(X.data)[0]:
            raise ValueError(f"COO has {np.shape(X.data)[0]} values but {arr.shape[0]} coordinates on axis {axis}")
        if arr.size and (arr.min() < 0 or arr.max() >= size):
            raise ValueError(f"COO coordinate on axis {axis} out of range [0, {size})")


def check_csr_structure(X):
    """Check a CSR matrix (see the module docstring); returns ``X`` itself, or a new
    matrix when its layout had to be converted or its duplicates summed."""
    _check_compressed(X, "csr")
    X = readable_csr(X)
    if not X.has_canonical_format and _has_duplicates(X):  # the flag is read only now: scipy's
        X = X.copy()  # never sum into the caller's arrays    # computation of it trusts indptr
        X.sum_duplicates()
    return X


def _readable(arr):
    return arr.flags.c_contiguous and arr.flags.aligned


def readable_csr(X):
    """``X`` if the compiled kernels can read its arrays in place (C-contiguous and aligned,
    ``data`` and ``indices`` of one length, one index type, int32 or int64), else one new
    matrix over ``data[:nnz]``, ``indices[:nnz]``, ``indptr`` in which only the arrays that
    need it are copied (scipy's constructor unifies the index types). ``X``'s structure
    must already be checked: O(1) then, beyond the copies."""
    index_types = {X.indices.dtype, X.indptr.dtype}
    if (len(index_types) == 1 and X.indices.dtype in (np.int32, np.int64)
            and X.data.shape[0] == X.indices.shape[0] and all(map(_readable, (X.data, X.indices, X.indptr)))):
        return X
    nnz = int(X.indptr[-1])
    parts = tuple(a if _readable(a) else np.array(a, order="C") for a in (X.data[:nnz], X.indices[:nnz], X.indptr))
    kind = sp.csr_array if isinstance(X, sp.sparray) else sp.csr_matrix
    return kind(parts, shape=X.shape)


def _has_duplicates(X):
    """Whether some row repeats a column index, in O(nnz) time and no copy of X: by the
    compiled extension with O(n_features) memory, else (extension missing, or arrays
    it does not take) with two nnz-sized int64 temporaries."""
    nnz = X.indptr[-1]
    if nnz < 2:
        return False
    compiled = _compiled_duplicate_rows(X)
    if compiled is not None:
        return compiled > 0
    rows = np.repeat(np.arange(X.shape[0], dtype=np.int64), np.diff(X.indptr))
    keys = rows * X.shape[1] + X.indices[:nnz]
    if X.has_sorted_indices:
        return bool(np.any(np.diff(keys) == 0))
    return np.unique(keys).size != keys.size


def _compiled_duplicate_rows(X):
    """Rows of ``X`` repeating a column index, counted by ``tikhon._cd.check_csr``;
    ``None`` when the extension is missing or does not take X's arrays."""
    try:
        from . import _cd
    except ImportError:
        return None
    nnz = int(X.indptr[-1])
    parts = (X.data[:nnz], X.indices[:nnz], X.indptr)
    if (X.data.dtype not in (np.float32, np.float64) or X.indices.dtype != X.indptr.dtype
            or X.indices.dtype not in (np.int32, np.int64) or not all(map(_readable, parts))):
        return None
    return _cd.check_csr(*parts, X.shape[1])


def check_nonempty(X):
    """At least one row and one feature (also for inputs validated elsewhere, e.g. dask)."""
    n, d = X.shape
    if n < 1 or d < 1:
        what = "0 sample(s)" if n < 1 else "0 feature(s)"
        raise ValueError(f"Found array with {what} (shape={tuple(X.shape)}) while a minimum of 1 is required")


def require_y(estimator, y):
    if y is None:
        raise ValueError(f"{type(estimator).__name__} requires y to be passed, but the target y is None")


def check_targets(y):
    """Ridge targets: a fresh float64 array, 1-D or one column per target (n x T, C
    order), of finite values within ``MAX_MAGNITUDE``."""
    if np.iscomplexobj(y):
        raise ValueError("Complex data not supported: y is complex")
    y = np.array(y, dtype=np.float64, order="C")  # a copy: solvers never see the caller's y
    if y.ndim not in (1, 2) or (y.ndim == 2 and y.shape[1] == 0):
        raise ValueError(f"y must be 1-D or 2-D with at least one target column, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("Input y contains NaN or infinity")
    check_magnitude("y", y)
    return y


def check_sample_weight(sample_weight, X):
    """A fresh float64 array of ``n_samples`` checked weights (see the module docstring).
    Written here, with scikit-learn's messages: its ``_check_sample_weight`` is private
    and its keywords differ across the versions pyproject allows (1.6 has no
    ``allow_all_zero_weights``)."""
    n = X.shape[0]
    if sample_weight is None:
        return np.ones(n)  # valid as it is: nothing to scan
    if isinstance(sample_weight, numbers.Real):
        s = np.full(n, float(sample_weight))
    else:
        s = np.asarray(sample_weight)
        if s.dtype.kind == "c":
            raise ValueError("Complex data not supported: sample_weight is complex")
        refuse_strings(s)
        s = np.array(s, dtype=np.float64)  # a copy: never the caller's array
        if s.ndim != 1:
            raise ValueError(f"Sample weights must be 1D array or scalar, got {s.ndim}D array. Expected either "
                             f"a scalar value or a 1D array of length {n}.")
        if s.shape != (n,):
            raise ValueError(f"sample_weight.shape == {s.shape}, expected {(n,)}!")
    if not np.all(np.isfinite(s)):
        what = "NaN" if np.any(np.isnan(s)) else "infinity"
        raise ValueError(f"Input sample_weight contains {what}")
    if np.any(s < 0):
        raise ValueError("Negative values in data passed to `sample_weight`")
    check_magnitude("sample_weight", s)
    total = float(s.sum())
    if not total > 0:
        raise ValueError("sample_weight sums to zero: there is nothing to fit")
    if not np.isfinite(total):
        raise ValueError(f"sample_weight sums to {total}: rescale the weights")
    return s


def check_binary_labels(y, name="LogisticRegression"):
    """``(classes, y_index)`` for two-class labels (see :func:`check_class_labels`)."""
    classes, y_index = check_class_labels(y, name)
    if classes.size > 2:
        raise ValueError(f"Only binary classification is supported here: tikhon.{name} is binary; got "
                         f"{classes.size} classes (tikhon.LogisticRegression fits them, multinomial)")
    return classes, y_index


def check_class_labels(y, name="LogisticRegression"):
    """``(classes, y_index)`` for labels of at least two classes (sorted ``classes``, as
    scikit-learn's ``classes_``); each class needs positive weight (checked with the
    weights, :func:`check_class_balance`)."""
    from sklearn.utils.multiclass import check_classification_targets

    y = np.asarray(y)
    if y.dtype.kind in "fc" and not np.all(np.isfinite(y)):  # before sklearn's cast warns on it
        raise ValueError("Input y contains NaN or infinity")
    fast = _two_integral_values(y)
    if fast is not None:
        return fast
    check_classification_targets(y)
    try:
        classes, y_index = np.unique(y, return_inverse=True)
    except TypeError as exc:  # e.g. a mix of strings and numbers
        raise ValueError(f"labels y cannot be ordered: {exc}") from None
    if classes.size < 2:
        raise ValueError(f"{name} needs samples of at least two classes; got 1 class ({_label(classes[0])})")
    return classes, y_index.reshape(-1)


def _two_integral_values(y):
    """``(classes, y_index)`` without sorting when numeric ``y`` holds exactly two values,
    both integral (scikit-learn's "binary" target type); ``None`` otherwise, for the
    general path to decide. Three O(n) passes instead of ``np.unique``'s sort."""
    if y.dtype.kind not in "biuf" or y.ndim != 1 or y.size == 0:
        return None
    lo, hi = y.min(), y.max()
    if lo == hi or (y.dtype.kind == "f" and not (float(lo).is_integer() and float(hi).is_integer())):
        return None
    is_hi = y == hi
    if not np.all(is_hi | (y == lo)):
        return None
    return np.array([lo, hi], dtype=y.dtype), is_hi.astype(np.intp)


def check_class_balance(classes, y_index, s):
    """Refuse weights that leave one class with no weight: then no minimizer exists
    (the unpenalized intercept runs off to infinity)."""
    weighted = np.bincount(y_index, weights=s > 0, minlength=classes.size)  # one pass for any K
    if not np.all(weighted[:classes.size] > 0):
        k = int(np.argmin(weighted[:classes.size] > 0))
        raise ValueError(f"every sample of class {_label(classes[k])} has zero weight: "
                         "the model would see a single class")


def class_weighted(s, class_weight, classes, y_index):
    """Per-sample weights of a logistic fit: the checked sample weights ``s``
    (from :func:`check_sample_weight`) times the weight of each sample's class, a new
    array (``s`` itself for ``class_weight=None``). One definition for
    ``LogisticRegression``, ``LogisticRegressionCV`` (on the whole ``y``) and
    ``regularization_path``:

    * ``"balanced"``: ``w_k = sum(s) / (K sum_{i: y_i = k} s_i)`` for ``K`` classes,
      scikit-learn's definition since 1.7 (the weighted class frequencies; with unit
      weights ``n / (K n_k)``). Computed here: scikit-learn 1.6's ``compute_class_weight``
      takes no sample weights.
    * a dict ``{label: weight}``: scikit-learn's ``compute_class_weight`` (labels
      missing from it weigh 1).

    Refuses weights that are negative or not finite, and weights that leave a class
    with no weight (:func:`check_class_balance`).
    """
    check_class_balance(classes, y_index, s)
    if class_weight is None:
        return s
    if isinstance(class_weight, str) and class_weight == "balanced":
        per_class = float(s.sum()) / (classes.size * np.bincount(y_index, weights=s, minlength=classes.size))
    else:
        from sklearn.utils.class_weight import compute_class_weight

        # y=classes: the labels of y are classes[y_index], all in classes; a dict needs nothing else
        per_class = np.asarray(compute_class_weight(class_weight, classes=classes, y=classes), dtype=np.float64)
    if not np.all(np.isfinite(per_class) & (per_class >= 0)):
        raise ValueError(f"class_weight must give finite non-negative weights, got {class_weight!r}")
    s = s * per_class[y_index]
    if not np.isfinite(s.sum()):
        raise ValueError("sample_weight times class_weight is too large: rescale the weights")
    check_class_balance(classes, y_index, s)
    return s


def _label(value):
    return repr(value.item() if isinstance(value, np.generic) else value)


# Largest magnitude of features, targets and weights that the float64 solvers take:
# beyond it squares of products (Hessian products, gradient norms) can overflow.
MAX_MAGNITUDE = 1e50


def check_magnitude(name, values):
    """Refuse ``|values| > MAX_MAGNITUDE`` (two reductions, no copy of ``values``)."""
    if values.size == 0:
        return
    _refuse_magnitude(name, max(float(np.max(values)), -float(np.min(values))))


def _refuse_magnitude(name, top):
    if top > MAX_MAGNITUDE:
        raise ValueError(f"{name} has values of magnitude {top:.3g}, beyond the {MAX_MAGNITUDE:g} tikhon "
                         f"supports (squares would overflow float64): rescale {name}")


# Values per block of check_values: the block stays in L2 cache between its two reductions.
_CHECK_BLOCK = 1 << 15
# Arrays from this size on are checked by several threads (numpy's reductions release
# the GIL): the check is then one parallel pass over X.
_PARALLEL_CHECK_BYTES = 64 << 20


def check_values(name, values, magnitude=True):
    """Refuse NaN and infinity (and, with ``magnitude``, ``|x| > MAX_MAGNITUDE``) in one
    pass over ``values`` (an array of any shape, e.g. X or a CSR's ``data``), by blocks
    of rows, each read twice from cache (its max and min: NaN propagates through both),
    no temporary and no copy of ``values``. Replaces
    scikit-learn's finiteness check plus a magnitude check (three passes over X) at fit
    time. Large arrays are split among ``config_context(n_threads=...)`` threads (default:
    every core)."""
    if values.size == 0:
        return
    rows = max(1, _CHECK_BLOCK // max(1, values.size // max(1, values.shape[0])))
    starts = range(0, values.shape[0], rows)

    def largest(part):
        top = 0.0
        for start in part:
            block = values[start:start + rows]
            hi, lo = float(np.max(block)), float(np.min(block))  # both NaN if the block has one
            block_top = hi if hi >= -lo else -lo  # NaN stays NaN
            if not block_top <= top:
                top = block_top
                if not np.isfinite(top):
                    break
        return top

    threads = min(len(starts), _check_threads()) if values.nbytes >= _PARALLEL_CHECK_BYTES else 1
    if threads > 1:
        from concurrent.futures import ThreadPoolExecutor

        parts = [starts[k * len(starts) // threads:(k + 1) * len(starts) // threads] for k in range(threads)]
        with ThreadPoolExecutor(threads) as pool:
            tops = list(pool.map(largest, parts))
    else:
        tops = [largest(starts)]
    if not all(np.isfinite(t) for t in tops):
        raise ValueError(f"Input {name} contains NaN or infinity")
    if magnitude:
        _refuse_magnitude(name, max(tops))


def _check_threads():
    import os

    from ._config import resolve_threads

    return resolve_threads() or os.cpu_count() or 1
