"""Numba kernels of the ``numba`` backend (imported only by :mod:`tikhon.backends.numba`).

Conventions
-----------
* Every function is a plain ``@njit(cache=True)`` function (no jitclass, no function
  objects passed in): compiled lazily on first call, per argument types, and cached on
  disk (see :mod:`tikhon.backends.numba` for where the cache lives). ``njit`` here is
  Numba's with a cache that cannot fail a call (see "Loading" below).
* Every call that may start a parallel region runs inside :func:`parallel_launch`
  (see "Launching" below).
* ``Xt`` is the data as a tuple: ``(X,)`` for a dense 2-D array (C or F order) or
  ``(data, indices, indptr)`` for CSR (int32 or int64 indices). The row-range helpers
  are generic functions whose implementation is chosen at compile time from the
  tuple's type (``numba.extending.overload``), so every driver and whole loop is
  written once for all layouts.
* ``code`` selects the pointwise loss (``LOGISTIC`` or ``SQUARED``); each loss is
  written once, in :func:`pointwise`, and every loop calls it.
* Precision: X is read in its own dtype (float32 or float64, never copied or cast);
  coefficients, margins and every accumulator are float64, so float32 input gets
  float64 sums (a float32 gradient summed over 1e6 rows would lose about 3 digits).
* Parallel drivers split the rows into ``T`` contiguous chunks (``T`` = the chunk
  count, passed in; the caller chooses it from the data alone and runs the chunks on
  at most ``T`` threads, set with ``numba.set_num_threads``); chunk ``c`` accumulates
  into row ``c`` of a ``(T, d)`` buffer that no other chunk touches, and the rows are
  summed in a fixed order at the end: no races, and results are the same bits
  whatever the number of threads that ran the chunks.
* Loops doing dot products use ``fastmath={"reassoc", "contract"}`` so that LLVM can
  vectorize the reductions (summation order changes; no finiteness assumptions).
"""
from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from contextlib import contextmanager

import numba
import numpy as np
from numba import prange
from numba.extending import overload

from ..objective import dot, gap_from_gradient, relative_gap


# --------------------------------------------------------------------------------------
# Loading: an on-disk cache that never fails a fit
# --------------------------------------------------------------------------------------
# Numba's own cache=True raises when no cache directory is writable (a read-only install:
# "cannot cache function ...: no locator available") and when a cache file cannot be read
# (truncated or damaged: UnpicklingError, EOFError). Here such a function is compiled in
# memory instead, with one NumbaCacheWarning per process; a damaged file is replaced
# (its function's index is reset, so the next save rewrites it). This uses Numba's
# FunctionCache class and a dispatcher's ``_cache`` slot, as ``enable_caching`` does.
try:
    from numba.core.caching import FunctionCache as _FunctionCache
except ImportError:  # pragma: no cover - a Numba without it: its plain cache=True
    _FunctionCache = None

_warn_lock = threading.Lock()
_cache_warned = False


_KEEP = "set NUMBA_CACHE_DIR to a writable directory to keep them across processes"


def _cache_problem(message):
    """Warn once per process that kernels are compiled without the disk cache."""
    global _cache_warned
    with _warn_lock:
        if _cache_warned:
            return
        _cache_warned = True
    from .numba import NumbaCacheWarning

    warnings.warn(f"tikhon: {message}", NumbaCacheWarning, stacklevel=3)


# First use: a kernel that the backend calls (an entry point below) and that is not in
# the cache is about to compile, a stall of seconds; it is said once per entry point
# and input type on the "tikhon" logger (INFO, with the cache's place), and how long
# it took at DEBUG. Its callees compile inside it and are not announced.
logger = logging.getLogger("tikhon")
ENTRY_POINTS = frozenset({"one_pass", "loss_grad", "batch_loss_grad", "gd_loop", "sgd_loop"})
MULTI_ENTRY_POINTS = frozenset({"multi_pass"})  # of tikhon.backends._numba_multi (K columns)


def describe_input(sig):
    """The input layout of a kernel signature, in words (``"dense float64 (C order)"``)."""
    for t in sig:
        if isinstance(t, numba.types.BaseTuple) and len(t) in (1, 3):
            first = t[0]
            if len(t) == 1:
                return f"dense {first.dtype} ({'Fortran' if first.layout == 'F' else 'C'} order)"
            return f"CSR {first.dtype} with {t[1].dtype} indices"
    return "this input"


def _announce_compile(name, sig, where):
    logger.info("tikhon: compiling the Numba kernel %s for %s: a one-time cost of several "
                "seconds; %s", name, describe_input(sig), where)


if _FunctionCache is not None:
    class _TolerantCache(_FunctionCache):
        """Numba's per-function disk cache; a failed read or write compiles in memory.
        A miss of an entry point is announced (see "First use" above)."""

        def load_overload(self, sig, target_context):
            try:
                data = super().load_overload(sig, target_context)
            except Exception as exc:  # any unreadable file: the function compiles anew
                _cache_problem(f"an unreadable file in Numba's kernel cache {self.cache_path} "
                               f"was dropped ({type(exc).__name__}: {exc}); the kernel is "
                               "compiled again and its cache file rewritten")
                try:
                    self.flush()  # an empty index: the next save writes a good file
                except Exception:
                    self.disable()
                data = None
            if data is None and self._py_func.__name__ in ENTRY_POINTS | MULTI_ENTRY_POINTS:
                self._compile_started = time.perf_counter()
                _announce_compile(self._py_func.__name__, sig,
                                  f"cached in {self.cache_path} for later processes")
            return data

        def save_overload(self, sig, data):
            started = getattr(self, "_compile_started", None)
            if started is not None:
                logger.debug("tikhon: compiled %s for %s in %.1f s", self._py_func.__name__,
                             describe_input(sig), time.perf_counter() - started)
                self._compile_started = None
            try:
                super().save_overload(sig, data)
            except Exception as exc:
                _cache_problem(f"Numba's kernel cache {self.cache_path} cannot be written "
                               f"({type(exc).__name__}: {exc}); kernels are compiled in "
                               f"memory (a few seconds each): {_KEEP}")
                self.disable()


def _enable_cache(dispatcher):
    """Give ``dispatcher`` a disk cache, or warn once and leave it in memory."""
    try:
        if _FunctionCache is None:  # pragma: no cover
            dispatcher.enable_caching()
        else:
            dispatcher._cache = _TolerantCache(dispatcher.py_func)
    except Exception as exc:  # no writable directory: "no locator available"
        _cache_problem(f"no writable directory for Numba's kernel cache ({exc}); kernels "
                       f"are compiled in memory (a few seconds each): {_KEEP}")


def njit(func=None, *, cache=False, **options):
    """``numba.njit`` whose ``cache=True`` cannot fail a call (see above)."""

    def decorate(f):
        dispatcher = numba.njit(**options)(f)
        if cache and hasattr(dispatcher, "py_func"):  # not under NUMBA_DISABLE_JIT
            _enable_cache(dispatcher)
        return dispatcher

    return decorate if func is None else decorate(func)


# --------------------------------------------------------------------------------------
# Launching: parallel regions from several Python threads
# --------------------------------------------------------------------------------------
# Numba's omp and tbb threading layers run parallel regions launched by several Python
# threads at once; workqueue (its fallback when neither OpenMP nor TBB is present)
# aborts the process ("Concurrent access has been detected"). So calls that may launch
# one are serialized by a process-wide lock until the first launch has shown which layer
# runs, and for good under workqueue. Waiting was measured against running a waiting
# thread's pass serially (a second, non-parallel compilation of one_pass, the same sums):
# 4 fits of 2e5 x 50 in 4 threads on 2 busy cores, 0.73 and 1.08 s waiting, 0.57 and
# 1.39 s serial: no consistent gain for twice the compiled kernels.
# The thread count itself (numba.set_num_threads) is per Python thread in every layer.
THREAD_SAFE_LAYERS = frozenset({"omp", "tbb"})
_launch_lock = threading.Lock()
_concurrent_ok = None  # unknown until a parallel region has run


@contextmanager
def parallel_launch():
    """Hold around every call of a kernel that may start a parallel region."""
    global _concurrent_ok
    if _concurrent_ok:
        yield
        return
    with _launch_lock:
        yield
        if _concurrent_ok is None:
            try:
                _concurrent_ok = numba.threading_layer() in THREAD_SAFE_LAYERS
            except ValueError:  # no parallel region has run yet
                pass


# Waiting: how Numba's idle threads wait for the next parallel region.
# GNU OpenMP (Numba's "omp" layer on Linux) by default spins for a while (GOMP_SPINCOUNT
# 300000 when OMP_WAIT_POLICY is unset) after each region before sleeping. Measured on
# this 2-core machine: a loss-gradient pass (2000 x 128) followed by a BLAS Gram call
# (dsyrk, OpenBLAS threads), twice: 16.0 ms spinning against 1.4 ms with passive waits;
# with two busy processes beside it, 4 passes took 124 ms spinning against 0.31 ms
# passive. The spinning thread takes the core that OpenBLAS's or the other process's
# thread needs, and a region waits for its slowest thread. A passive wait costs a
# wake-up per region instead (tens of microseconds, covered by MIN_PARALLEL_WORK in
# tikhon.backends.numba). TBB's workers and workqueue's sleep by themselves.
# libgomp reads the policy once, from the environment, when it is loaded; so when
# tikhon is the first to start Numba's threads, the user has set neither
# OMP_WAIT_POLICY nor GOMP_SPINCOUNT, and no libgomp is loaded yet, OMP_WAIT_POLICY=
# PASSIVE is in the environment only while Numba loads its threading layer, then
# removed: it applies to the libgomp that Numba loads and to nothing else the user
# starts (their own settings always win; a Numba started before tikhon is left as is).
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
threading_state = {"layer": None, "wait": None}  # what start_threads found or set


def _openmp_loaded():
    """Whether an OpenMP runtime Numba would share is already in the process (Linux:
    /proc/self/maps; elsewhere unknown: None). Vendored copies (``libgomp-<hash>.so``,
    as scikit-learn's) are separate runtimes and do not count."""
    try:
        with open("/proc/self/maps") as maps:
            names = {os.path.basename(line.split()[-1]) for line in maps if "omp" in line}
    except OSError:
        return None
    return any(name.startswith(("libgomp.so", "libomp.so", "libiomp5.so")) for name in names)


_start_lock = threading.Lock()


def start_threads():
    """Start Numba's threading layer, with passive waits where tikhon may choose them
    (see "Waiting" above); record what was found in :data:`threading_state`. Called
    when this module is imported, before any kernel runs."""
    with _start_lock:
        if threading_state["layer"] is None:
            _start_threads()
    return threading_state


def _start_threads():
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", True):
        wait = "as Numba was started before tikhon"
    elif any(v in os.environ for v in WAIT_VARIABLES):
        wait = "as the environment sets it"
    elif _openmp_loaded():
        wait = "as the OpenMP runtime already loaded sets it"
    else:
        wait = None
    if wait is None:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            numba.get_num_threads()  # loads the layer and starts its threads
        finally:
            os.environ.pop("OMP_WAIT_POLICY", None)
        wait = "passive (set by tikhon)"
    else:
        numba.get_num_threads()
    try:
        layer = numba.threading_layer()
    except ValueError:  # NUMBA_DISABLE_JIT: no layer
        layer = "none"
    threading_state.update(layer=layer, wait=wait if layer == "omp" else f"{layer}'s own")


start_threads()


LOGISTIC = 0
SQUARED = 1
LOSS_CODES = {"logistic": LOGISTIC, "squared": SQUARED}

_FAST = {"reassoc", "contract"}
# Parallelize the explicit prange loops only (np.zeros & co. stay serial): each implicit
# parfor would be one more gufunc to compile.
_PRANGE_ONLY = {"prange": True, "numpy": False, "setitem": False, "reduction": False,
                "comprehension": False, "stencil": False, "inplace_binop": False, "fusion": False}


# --------------------------------------------------------------------------------------
# The pointwise losses, written once
# --------------------------------------------------------------------------------------
@njit(cache=True)
def pointwise(code, y, z):
    """``(loss, d loss/dz, d2 loss/dz2)`` at margin ``z`` for target ``y`` (float64).

    logistic (``y`` in {-1, +1}): ``log1p(exp(-|t|)) + max(-t, 0)`` with ``t = y z``;
    derivative ``-y sigmoid(-t)``; curvature ``sigmoid(z) sigmoid(-z) = e / (1 + e)^2``
    with ``e = exp(-|t|) = exp(-|z|)`` (as ``|y| = 1``): one ``exp`` for all three.
    squared: ``(y - z)^2 / 2``, ``z - y``, ``1``.
    Callers that need only some outputs let the compiler drop the others.
    """
    if code == LOGISTIC:
        t = y * z
        e = np.exp(-abs(t))
        value = np.log1p(e) + max(-t, 0.0)
        one_e = 1.0 + e
        sig_neg = e / one_e if t >= 0.0 else 1.0 / one_e  # sigmoid(-t)
        return value, -y * sig_neg, e / (one_e * one_e)
    r = z - y
    return 0.5 * r * r, r, 1.0


# --------------------------------------------------------------------------------------
# Row-range helpers, one implementation per layout (serial; called inside prange)
# --------------------------------------------------------------------------------------
# ---- dense, row by row (C order; also any other non-F layout) ----
# The loss kernels work on blocks of rows in three sweeps (margins, pointwise loss,
# gradient accumulation) with the block still in cache: still one pass over X in
# memory, but the long exp/log1p latency no longer sits between each row's loads and
# its stores (fused row by row, the CPU's memory disambiguation serializes the rows:
# measured 2x to 3x slower on CSR).
@njit(cache=True)
def _pointwise_block(code, y, s, zb, i0, m, b, dvec, want_d):
    """``zb[k] <- s r'`` for rows ``i0 + k``; returns ``(sum s loss, sum s loss')``."""
    if code == LOGISTIC:
        return _logistic_block(y, s, zb, i0, m, b, dvec, want_d)
    loss = 0.0
    gb = 0.0
    for k in range(m):
        i = i0 + k
        value, deriv, curv = pointwise(code, y[i], zb[k] + b)
        loss += s[i] * value
        r = s[i] * deriv
        gb += r
        if want_d:
            dvec[i] = s[i] * curv
        zb[k] = r
    return loss, gb


# ---- the logistic loss of a block of rows, in vectorizable loops ----
# pointwise() costs two libm calls (exp, log1p) a row, which cannot be vectorized without
# SVML: measured ~40% of a dense loss+gradient pass. On a block, exp(-|t|) and log1p(e)
# are computed here by polynomials in straight-line loops that LLVM vectorizes (AVX2: 4
# rows at once; measured 5x faster than the libm calls), to full double accuracy:
# exp by reduction to r = a - k ln2 (|r| <= ln2/2) and its degree-13 Taylor polynomial
# (truncation below 4e-18), 2^k assembled in the float's exponent bits; log1p(e) for
# e in [0, 1] as 2 atanh(e / (2 + e)), a series in u^2 <= 1/9 (17 terms, truncation
# below 1e-18). Measured over 1e5 margins: relative errors <= 2.3e-16 (exp) and 6.3e-16
# (log1p) against numpy. exp(-|t|) is clamped at exp(-708) (a relative change of the
# loss below 1e-300). error_model="numpy": divisions without Python's zero check, which
# would stop vectorization (the divisors here are >= 1). The Horner steps are written
# out: a loop over the coefficient tuple is not vectorized (measured 4x slower).
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e+00
_ROUND = 6755399441055744.0  # 1.5 * 2^52: x + _ROUND holds round(x) in its low mantissa bits
_ROUND_BITS = np.int64(np.float64(_ROUND).view(np.int64))
_EXP_TAYLOR = tuple(1.0 / float(np.prod(np.arange(1, k + 1, dtype=np.float64))) for k in range(14))
_ATANH_SERIES = tuple(1.0 / (2 * k + 1) for k in range(18))


@njit(cache=True, fastmath=_FAST, error_model="numpy")
def _exp_neg_abs(t, m, e, work):
    """``e[k] = exp(-|t[k]|)`` for ``k < m`` (``work``: scratch of ``m`` floats)."""
    for k in range(m):
        a = max(-abs(t[k]), -708.0)
        f = np.floor(a * _INV_LN2 + 0.5)
        r = (a - f * _LN2_HI) - f * _LN2_LO
        p = _EXP_TAYLOR[13]
        p = p * r + _EXP_TAYLOR[12]
        p = p * r + _EXP_TAYLOR[11]
        p = p * r + _EXP_TAYLOR[10]
        p = p * r + _EXP_TAYLOR[9]
        p = p * r + _EXP_TAYLOR[8]
        p = p * r + _EXP_TAYLOR[7]
        p = p * r + _EXP_TAYLOR[6]
        p = p * r + _EXP_TAYLOR[5]
        p = p * r + _EXP_TAYLOR[4]
        p = p * r + _EXP_TAYLOR[3]
        p = p * r + _EXP_TAYLOR[2]
        p = p * r + _EXP_TAYLOR[1]
        e[k] = p * r + _EXP_TAYLOR[0]
        work[k] = f + _ROUND
    bits = work.view(np.int64)
    for k in range(m):  # 2^f: the exponent field f + 1023
        bits[k] = (bits[k] - _ROUND_BITS + 1023) << 52
    for k in range(m):
        e[k] *= work[k]


@njit(cache=True, fastmath=_FAST, error_model="numpy")
def _log1p_unit(e, m, out):
    """``out[k] = log1p(e[k])`` for ``e[k]`` in [0, 1], ``k < m``."""
    for k in range(m):
        u = e[k] / (2.0 + e[k])
        u2 = u * u
        p = _ATANH_SERIES[17]
        p = p * u2 + _ATANH_SERIES[16]
        p = p * u2 + _ATANH_SERIES[15]
        p = p * u2 + _ATANH_SERIES[14]
        p = p * u2 + _ATANH_SERIES[13]
        p = p * u2 + _ATANH_SERIES[12]
        p = p * u2 + _ATANH_SERIES[11]
        p = p * u2 + _ATANH_SERIES[10]
        p = p * u2 + _ATANH_SERIES[9]
        p = p * u2 + _ATANH_SERIES[8]
        p = p * u2 + _ATANH_SERIES[7]
        p = p * u2 + _ATANH_SERIES[6]
        p = p * u2 + _ATANH_SERIES[5]
        p = p * u2 + _ATANH_SERIES[4]
        p = p * u2 + _ATANH_SERIES[3]
        p = p * u2 + _ATANH_SERIES[2]
        p = p * u2 + _ATANH_SERIES[1]
        out[k] = 2.0 * u * (p * u2 + _ATANH_SERIES[0])


@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _logistic_block(y, s, zb, i0, m, b, dvec, want_d):
    """:func:`_pointwise_block` for the logistic loss (see :func:`pointwise` for the
    formulas), with the exponentials and logarithms of the whole block vectorized. The
    sums run in row order (no ``reassoc``): a vectorized reduction's order would depend
    on the buffers' alignment, and results must repeat exactly."""
    t = np.empty(m)
    e = np.empty(m)
    log_term = np.empty(m)
    for k in range(m):
        t[k] = y[i0 + k] * (zb[k] + b)
    _exp_neg_abs(t, m, e, log_term)
    _log1p_unit(e, m, log_term)
    loss = 0.0
    gb = 0.0
    for k in range(m):
        i = i0 + k
        tk = t[k]
        inv = 1.0 / (1.0 + e[k])
        sig_neg = e[k] * inv if tk >= 0.0 else inv  # sigmoid(-t)
        nan_if_not_finite = tk - tk  # exp(-|t|) was clamped: let NaN/inf margins show
        loss += s[i] * (log_term[k] + max(-tk, 0.0) + nan_if_not_finite)
        r = s[i] * (-y[i] * sig_neg + nan_if_not_finite)
        gb += r
        zb[k] = r
        if want_d:
            dvec[i] = s[i] * (e[k] * inv * inv)
    return loss, gb


@njit(cache=True, fastmath=_FAST)
def _dense_rm_loss_grad(X, y, s, w, b, code, lo, hi, g, dvec, want_d, block):
    d = X.shape[1]
    loss = 0.0
    gb = 0.0
    zb = np.empty(block)
    for i0 in range(lo, hi, block):
        m = min(block, hi - i0)
        for k in range(m):
            z = 0.0
            for j in range(d):
                z += X[i0 + k, j] * w[j]
            zb[k] = z
        lb, gbb = _pointwise_block(code, y, s, zb, i0, m, b, dvec, want_d)
        loss += lb
        gb += gbb
        for k in range(m):
            r = zb[k]
            for j in range(d):
                g[j] += r * X[i0 + k, j]
    return loss, gb


@njit(cache=True, fastmath=_FAST)
def _dense_rm_hess(X, dvec, v, vb, lo, hi, g):
    d = X.shape[1]
    hb = 0.0
    for i in range(lo, hi):
        t = 0.0
        for j in range(d):
            t += X[i, j] * v[j]
        q = dvec[i] * (t + vb)
        hb += q
        for j in range(d):
            g[j] += q * X[i, j]
    return hb


@njit(cache=True, fastmath=_FAST)
def _dense_rm_matvec(X, w, lo, hi, out):
    d = X.shape[1]
    for i in range(lo, hi):
        z = 0.0
        for j in range(d):
            z += X[i, j] * w[j]
        out[i] = z


@njit(cache=True, fastmath=_FAST)
def _dense_rm_rmatvec(X, r, lo, hi, g):
    d = X.shape[1]
    for i in range(lo, hi):
        ri = r[i]
        for j in range(d):
            g[j] += ri * X[i, j]


@njit(cache=True, fastmath=_FAST)
def _dense_rm_row_norms(X, lo, hi, out):
    d = X.shape[1]
    for i in range(lo, hi):
        acc = 0.0
        for j in range(d):
            x = np.float64(X[i, j])
            acc += x * x
        out[i] = acc


# ---- dense F order: blocks of rows, swept column by column (contiguous reads) ----
# A column's part of a block is taken as a 1-D view and indexed from 0: indexed as
# X[i0 + k, j] (a signed row index), Numba tested every access for negative-index
# wraparound, which kept LLVM from vectorizing the sweeps (measured 2.2x slower at
# d = 100 and 3.8x at d = 1000, where the old blocks of 16384 // d rows were also too
# short to stream). Blocks have _CM_BLOCK rows whatever d: long contiguous runs per column.
_CM_BLOCK = 1024


@njit(cache=True, fastmath=_FAST)
def _cm_block_matvec(X, w, i0, z):
    """``z = X[i0:i0 + len(z)] @ w``."""
    m = z.shape[0]
    z[:] = 0.0
    for j in range(X.shape[1]):
        col = X[i0:i0 + m, j]
        wj = w[j]
        for k in range(m):
            z[k] += col[k] * wj


@njit(cache=True, fastmath=_FAST)
def _cm_block_rmatvec(X, r, i0, g):
    """``g += X[i0:i0 + len(r)].T @ r``."""
    m = r.shape[0]
    for j in range(X.shape[1]):
        col = X[i0:i0 + m, j]
        acc = 0.0
        for k in range(m):
            acc += r[k] * col[k]
        g[j] += acc


@njit(cache=True, fastmath=_FAST)
def _dense_cm_loss_grad(X, y, s, w, b, code, lo, hi, g, dvec, want_d, block):
    loss = 0.0
    gb = 0.0
    zb = np.empty(block)
    for i0 in range(lo, hi, block):
        m = min(block, hi - i0)
        _cm_block_matvec(X, w, i0, zb[:m])
        lb, gbb = _pointwise_block(code, y, s, zb, i0, m, b, dvec, want_d)
        loss += lb
        gb += gbb
        _cm_block_rmatvec(X, zb[:m], i0, g)
    return loss, gb


@njit(cache=True, fastmath=_FAST)
def _dense_cm_hess(X, dvec, v, vb, lo, hi, g, block):
    hb = 0.0
    zb = np.empty(block)
    for i0 in range(lo, hi, block):
        m = min(block, hi - i0)
        z = zb[:m]
        dv = dvec[i0:i0 + m]
        _cm_block_matvec(X, v, i0, z)
        for k in range(m):
            q = dv[k] * (z[k] + vb)
            hb += q
            z[k] = q
        _cm_block_rmatvec(X, z, i0, g)
    return hb


@njit(cache=True, fastmath=_FAST)
def _dense_cm_matvec(X, w, lo, hi, out, block):
    for i0 in range(lo, hi, block):
        _cm_block_matvec(X, w, i0, out[i0:min(i0 + block, hi)])


@njit(cache=True, fastmath=_FAST)
def _dense_cm_rmatvec(X, r, lo, hi, g, block):
    for i0 in range(lo, hi, block):
        _cm_block_rmatvec(X, r[i0:min(i0 + block, hi)], i0, g)


@njit(cache=True, fastmath=_FAST)
def _dense_cm_row_norms(X, lo, hi, out, block):
    for i0 in range(lo, hi, block):
        o = out[i0:min(i0 + block, hi)]
        o[:] = 0.0
        for j in range(X.shape[1]):
            col = X[i0:i0 + o.shape[0], j]
            for k in range(o.shape[0]):
                x = np.float64(col[k])
                o[k] += x * x


# ---- CSR ----
# Scalar loops (no fastmath: short rows of gathers gain nothing from vectorization, and
# AVX2 gathers are slow). Entry positions and column indices are unsigned (CSR has no
# negative ones): with signed ones Numba tests every access for negative-index
# wraparound, which made these loops about 1.8x slower.
@njit(cache=True)
def _entries(indptr, i):
    """The positions of row ``i``'s entries, as an unsigned range."""
    return range(np.uint64(indptr[i]), np.uint64(indptr[i + 1]))


@njit(cache=True)
def _csr_dot(data, indices, indptr, i, w):
    z = 0.0
    for p in _entries(indptr, i):
        z += data[p] * w[np.uint64(indices[p])]
    return z


@njit(cache=True)
def _csr_axpy(data, indices, indptr, i, r, g):
    for p in _entries(indptr, i):
        g[np.uint64(indices[p])] += r * data[p]


@njit(cache=True)
def _csr_loss_grad(data, indices, indptr, y, s, w, b, code, lo, hi, g, dvec, want_d, block):
    loss = 0.0
    gb = 0.0
    zb = np.empty(block)
    for i0 in range(lo, hi, block):
        m = min(block, hi - i0)
        for k in range(m):
            zb[k] = _csr_dot(data, indices, indptr, i0 + k, w)
        lb, gbb = _pointwise_block(code, y, s, zb, i0, m, b, dvec, want_d)
        loss += lb
        gb += gbb
        for k in range(m):
            _csr_axpy(data, indices, indptr, i0 + k, zb[k], g)
    return loss, gb


@njit(cache=True)
def _csr_hess(data, indices, indptr, dvec, v, vb, lo, hi, g):
    hb = 0.0
    for i in range(lo, hi):
        q = dvec[i] * (vb + _csr_dot(data, indices, indptr, i, v))
        hb += q
        _csr_axpy(data, indices, indptr, i, q, g)
    return hb


@njit(cache=True)
def _csr_matvec(data, indices, indptr, w, lo, hi, out):
    for i in range(lo, hi):
        out[i] = _csr_dot(data, indices, indptr, i, w)


@njit(cache=True)
def _csr_rmatvec(data, indices, indptr, r, lo, hi, g):
    for i in range(lo, hi):
        _csr_axpy(data, indices, indptr, i, r[i], g)


@njit(cache=True)
def _csr_row_norms(data, indptr, lo, hi, out):
    for i in range(lo, hi):
        acc = 0.0
        for p in _entries(indptr, i):
            x = np.float64(data[p])
            acc += x * x
        out[i] = acc


# ---- mini-batch (a list of rows, serial) ----
@njit(cache=True, fastmath=_FAST)
def _dense_batch(X, y, s, w, b, code, rows, g):
    d = X.shape[1]
    loss = 0.0
    gb = 0.0
    for i in rows:
        z = 0.0
        for j in range(d):
            z += X[i, j] * w[j]
        value, deriv, _ = pointwise(code, y[i], z + b)
        loss += s[i] * value
        r = s[i] * deriv
        gb += r
        for j in range(d):
            g[j] += r * X[i, j]
    return loss, gb


@njit(cache=True)
def _csr_batch(data, indices, indptr, y, s, w, b, code, rows, g):
    loss = 0.0
    gb = 0.0
    for i in rows:
        value, deriv, _ = pointwise(code, y[i], _csr_dot(data, indices, indptr, i, w) + b)
        loss += s[i] * value
        r = s[i] * deriv
        gb += r
        _csr_axpy(data, indices, indptr, i, r, g)
    return loss, gb


# --------------------------------------------------------------------------------------
# Generic row-range functions: the layout is chosen at compile time from Xt's type
# --------------------------------------------------------------------------------------
def _is_csr(Xt):
    return len(Xt) == 3


def _is_fortran(Xt):
    return len(Xt) == 1 and Xt.types[0].layout == "F"


def n_rows(Xt):
    """Number of rows of ``Xt`` (jitted use only)."""
    raise NotImplementedError


def rows_loss_grad(Xt, y, s, w, b, code, lo, hi, g, dvec, want_d):
    raise NotImplementedError


def rows_hess(Xt, dvec, v, vb, lo, hi, g):
    raise NotImplementedError


def rows_matvec(Xt, w, lo, hi, out):
    raise NotImplementedError


def rows_rmatvec(Xt, r, lo, hi, g):
    raise NotImplementedError


def rows_norms(Xt, lo, hi, out):
    raise NotImplementedError


def batch_rows(Xt, y, s, w, b, code, rows, g):
    raise NotImplementedError


# The overloads' small dispatch functions are compiled with their caller and not cached
# on their own: a cached caller never needs them, and Numba builds their dispatchers
# itself, out of reach of the tolerant cache above.
_OV = {"cache": False}


# tikhon.objective.dot (long dot products in single-threaded chunks), called by the
# objective functions these loops compile, is compiled as it is written.
@overload(dot, jit_options=_OV)
def _ov_dot(a, b):
    return dot


@overload(n_rows, jit_options=_OV)
def _ov_n_rows(Xt):
    if _is_csr(Xt):
        return lambda Xt: Xt[2].shape[0] - 1
    return lambda Xt: Xt[0].shape[0]


@overload(rows_loss_grad, jit_options=_OV)
def _ov_rows_loss_grad(Xt, y, s, w, b, code, lo, hi, g, dvec, want_d):
    if _is_csr(Xt):
        return lambda Xt, y, s, w, b, code, lo, hi, g, dvec, want_d: _csr_loss_grad(
            Xt[0], Xt[1], Xt[2], y, s, w, b, code, lo, hi, g, dvec, want_d, 256)
    if _is_fortran(Xt):
        return lambda Xt, y, s, w, b, code, lo, hi, g, dvec, want_d: _dense_cm_loss_grad(
            Xt[0], y, s, w, b, code, lo, hi, g, dvec, want_d, _CM_BLOCK)

    def impl(Xt, y, s, w, b, code, lo, hi, g, dvec, want_d):
        X = Xt[0]
        block = max(4, min(256, 8192 // max(1, X.shape[1])))
        return _dense_rm_loss_grad(X, y, s, w, b, code, lo, hi, g, dvec, want_d, block)
    return impl


@overload(rows_hess, jit_options=_OV)
def _ov_rows_hess(Xt, dvec, v, vb, lo, hi, g):
    if _is_csr(Xt):
        return lambda Xt, dvec, v, vb, lo, hi, g: _csr_hess(Xt[0], Xt[1], Xt[2], dvec, v, vb, lo, hi, g)
    if _is_fortran(Xt):
        return lambda Xt, dvec, v, vb, lo, hi, g: _dense_cm_hess(Xt[0], dvec, v, vb, lo, hi, g, _CM_BLOCK)
    return lambda Xt, dvec, v, vb, lo, hi, g: _dense_rm_hess(Xt[0], dvec, v, vb, lo, hi, g)


@overload(rows_matvec, jit_options=_OV)
def _ov_rows_matvec(Xt, w, lo, hi, out):
    if _is_csr(Xt):
        return lambda Xt, w, lo, hi, out: _csr_matvec(Xt[0], Xt[1], Xt[2], w, lo, hi, out)
    if _is_fortran(Xt):
        return lambda Xt, w, lo, hi, out: _dense_cm_matvec(Xt[0], w, lo, hi, out, _CM_BLOCK)
    return lambda Xt, w, lo, hi, out: _dense_rm_matvec(Xt[0], w, lo, hi, out)


@overload(rows_rmatvec, jit_options=_OV)
def _ov_rows_rmatvec(Xt, r, lo, hi, g):
    if _is_csr(Xt):
        return lambda Xt, r, lo, hi, g: _csr_rmatvec(Xt[0], Xt[1], Xt[2], r, lo, hi, g)
    if _is_fortran(Xt):
        return lambda Xt, r, lo, hi, g: _dense_cm_rmatvec(Xt[0], r, lo, hi, g, _CM_BLOCK)
    return lambda Xt, r, lo, hi, g: _dense_rm_rmatvec(Xt[0], r, lo, hi, g)


@overload(rows_norms, jit_options=_OV)
def _ov_rows_norms(Xt, lo, hi, out):
    if _is_csr(Xt):
        return lambda Xt, lo, hi, out: _csr_row_norms(Xt[0], Xt[2], lo, hi, out)
    if _is_fortran(Xt):
        return lambda Xt, lo, hi, out: _dense_cm_row_norms(Xt[0], lo, hi, out, _CM_BLOCK)
    return lambda Xt, lo, hi, out: _dense_rm_row_norms(Xt[0], lo, hi, out)


@overload(batch_rows, jit_options=_OV)
def _ov_batch_rows(Xt, y, s, w, b, code, rows, g):
    if _is_csr(Xt):
        return lambda Xt, y, s, w, b, code, rows, g: _csr_batch(
            Xt[0], Xt[1], Xt[2], y, s, w, b, code, rows, g)
    return lambda Xt, y, s, w, b, code, rows, g: _dense_batch(Xt[0], y, s, w, b, code, rows, g)


# --------------------------------------------------------------------------------------
# Parallel drivers: T contiguous row chunks, one private buffer row per chunk
# --------------------------------------------------------------------------------------
@njit(cache=True)
def _reduce_rows(G, out):
    """``out = sum_c G[c]`` in a fixed order (deterministic)."""
    for c in range(G.shape[0]):
        for j in range(G.shape[1]):
            out[j] += G[c, j]


OP_LOSS_GRAD = 0
OP_HESS = 1
OP_MATVEC = 2
OP_RMATVEC = 3
OP_ROW_NORMS = 4


@njit(cache=True, parallel=_PRANGE_ONLY)
def one_pass(op, Xt, y, s, w, b, code, rowvec, out, T):
    """Every parallel pass over X, selected by ``op`` (one gufunc to compile per input
    type instead of five). Returns ``(g, a, c)``:

    * ``OP_LOSS_GRAD``: ``g = X^T (s loss')``, ``a = sum s loss``, ``c = sum s loss'`` at
      ``(w, b)``; if ``out`` has n entries, ``out[i] = s_i loss''_i`` (Hessian weights);
    * ``OP_HESS``: ``g = X^T (rowvec * (X w + b))``, ``c = sum rowvec * (X w + b)``;
    * ``OP_MATVEC``: ``out = X w``; ``OP_RMATVEC``: ``g = X^T rowvec`` (``w`` gives d);
    * ``OP_ROW_NORMS``: ``out[i] = ||x_i||^2``.
    """
    n = n_rows(Xt)
    d = w.shape[0]
    want_d = out.shape[0] > 0
    G = np.zeros((T, d))
    parts = np.zeros((T, 2))
    for c in prange(T):
        lo = c * n // T
        hi = (c + 1) * n // T
        if op == OP_LOSS_GRAD:
            lc, gbc = rows_loss_grad(Xt, y, s, w, b, code, lo, hi, G[c], out, want_d)
            parts[c, 0] = lc
            parts[c, 1] = gbc
        elif op == OP_HESS:
            parts[c, 1] = rows_hess(Xt, rowvec, w, b, lo, hi, G[c])
        elif op == OP_MATVEC:
            rows_matvec(Xt, w, lo, hi, out)
        elif op == OP_RMATVEC:
            rows_rmatvec(Xt, rowvec, lo, hi, G[c])
        else:
            rows_norms(Xt, lo, hi, out)
    g = np.zeros(d)
    _reduce_rows(G, g)
    a = 0.0
    cc = 0.0
    for c in range(T):
        a += parts[c, 0]
        cc += parts[c, 1]
    return g, a, cc


@njit(cache=True)
def loss_grad(Xt, y, s, w, b, code, T, dvec):
    """Fused one pass: ``(sum s loss, X^T (s loss'), sum s loss')`` at ``(w, b)``; if
    ``dvec`` has n entries it receives ``s_i loss''_i`` (the Hessian's weights)."""
    g, loss, gb = one_pass(OP_LOSS_GRAD, Xt, y, s, w, b, code, y, dvec, T)
    return loss, g, gb


@njit(cache=True)
def batch_loss_grad(Xt, y, s, w, b, code, rows):
    """``loss_grad`` restricted to ``rows`` (serial, no copy of the rows)."""
    g = np.zeros(w.shape[0])
    loss, gb = batch_rows(Xt, y, s, w, b, code, rows, g)
    return loss, g, gb


# --------------------------------------------------------------------------------------
# Whole solver loops (the iteration loop runs inside Numba; each pass is the parallel
# fused kernel above). The update's scalars come from tikhon.objective via the solver.
# --------------------------------------------------------------------------------------
STATUS_CONVERGED = 0
STATUS_MAX_ITER = 1
STATUS_UPHILL = 2
STATUS_NONFINITE = 3
STATUS_PAUSE = 4


# The stopping rule, compiled from tikhon.objective's own functions (one definition).
_gap_from_gradient = njit(cache=True)(gap_from_gradient)
_relative_gap = njit(cache=True)(relative_gap)


@njit(cache=True)
def _value_and_gap(code, loss, w, b, gw, gb, lam, fit_intercept, anchors, anchor_sums):
    """``P = loss + lam/2 ||w||^2`` and the relative duality gap of
    ``tikhon.objective.Objective.gradient_gap``: ``anchors[k]``, ``anchor_sums[k]`` are
    the intercept's anchor of side ``-1`` (``k = 0``; the squared loss's only one) and
    ``+1`` (``k = 1``)."""
    value = loss + 0.5 * lam * np.dot(w, w)
    grad_w = gw + lam * w
    k = 1 if (code == LOGISTIC and gb > 0.0) else 0
    gap = _gap_from_gradient(lam, code == LOGISTIC, fit_intercept, loss, w, b, grad_w, gb,
                             anchors[k], anchor_sums[k])
    return value, _relative_gap(value, gap)


# An increase of P within its rounding is not an uphill step (as in tikhon.solvers.gd).
UPHILL_ROUNDING = 64 * 2.220446049250313e-16


@njit(cache=True)
def gd_loop(Xt, y, s, code, w, b, fit_intercept, decay, scale, lam, anchors, anchor_sums, tol,
            max_steps, safeguard, T, values):
    """The seeds' full-batch gradient descent, as ``tikhon.solvers.gd`` runs it.

    Per iteration: one fused pass for ``(loss, gw, gb)``; record ``P``; stop when the
    relative duality gap ``<= tol`` or after ``max_steps`` steps; else
    ``w <- w * decay - scale * gw``, ``b <- b - scale * gb``. With ``safeguard``, an
    iterate whose ``P`` exceeds the previous one is undone and the loop returns
    ``STATUS_UPHILL`` (the caller halves the step, recomputes ``decay``, and calls
    again). ``w`` is updated in place; returns ``(status, steps, n_values, b, cert)``
    with the objective values in ``values[:n_values]``.
    """
    dummy = np.empty(0)
    prev_w = np.empty_like(w)
    prev_b = b
    prev_value = np.inf
    have_prev = False
    steps = 0
    n_values = 0
    cert = np.inf
    while True:
        loss, gw, gb = loss_grad(Xt, y, s, w, b, code, T, dummy)
        value, c = _value_and_gap(code, loss, w, b, gw, gb, lam, fit_intercept, anchors, anchor_sums)
        if not np.isfinite(value):
            return STATUS_NONFINITE, steps, n_values, b, value
        if safeguard and have_prev and value > prev_value + UPHILL_ROUNDING * abs(prev_value):
            w[:] = prev_w
            return STATUS_UPHILL, steps, n_values, prev_b, cert
        values[n_values] = value
        n_values += 1
        cert = c
        if cert <= tol:
            return STATUS_CONVERGED, steps, n_values, b, cert
        if steps >= max_steps:
            return STATUS_MAX_ITER, steps, n_values, b, cert
        if safeguard:
            prev_w[:] = w
            prev_b = b
            prev_value = value
            have_prev = True
        for j in range(w.shape[0]):
            w[j] = w[j] * decay - scale * gw[j]
        if fit_intercept:
            b = b - scale * gb
        steps += 1


@njit(cache=True)
def sgd_loop(Xt, y, s, code, w, b, fit_intercept, rng, steps, decays, t0, batch_size,
             m, lam, anchors, anchor_sums, tol, epoch0, epoch_stop, max_epochs, T, values):
    """Mini-batch SGD with weight decay, as ``tikhon.solvers.sgd`` runs it.

    Each epoch: one fused full pass (objective and relative duality gap; stop when
    ``gap <= tol`` or after ``max_epochs`` epochs), then a permutation drawn from the
    NumPy ``Generator`` ``rng`` (same stream as ``rng.permutation(n)`` in Python), and
    for each batch of sorted rows ``w <- w * decays[t] - scale * g_B``,
    ``b <- b - scale * gb_B``, ``scale = steps[t] * n / (m |B|)``; ``steps``/``decays``
    are indexed by the global batch counter ``t`` minus ``t0``. Starts at epoch
    ``epoch0``; returns ``STATUS_PAUSE`` before the full pass of epoch ``epoch_stop``
    (the caller refills ``steps``/``decays`` and calls again). ``w`` is updated in
    place; returns ``(status, epoch, b, cert, t)``; objective values go to
    ``values[epoch - epoch0]``.
    """
    n = n_rows(Xt)
    dummy = np.empty(0)
    d = w.shape[0]
    g = np.zeros(d)
    epoch = epoch0
    t = t0
    cert = np.inf
    while True:
        if epoch == epoch_stop and epoch < max_epochs:
            return STATUS_PAUSE, epoch, b, cert, t
        loss, gw, gb = loss_grad(Xt, y, s, w, b, code, T, dummy)
        value, cert = _value_and_gap(code, loss, w, b, gw, gb, lam, fit_intercept, anchors, anchor_sums)
        if not np.isfinite(value):
            return STATUS_NONFINITE, epoch, b, value, t
        values[epoch - epoch0] = value
        if cert <= tol:
            return STATUS_CONVERGED, epoch, b, cert, t
        if epoch >= max_epochs:
            return STATUS_MAX_ITER, epoch, b, cert, t
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = np.sort(order[start:start + batch_size])
            g[:] = 0.0
            _, bgb = batch_rows(Xt, y, s, w, b, code, rows, g)
            scale = steps[t - t0] * n / (m * rows.shape[0])
            decay = decays[t - t0]
            for j in range(d):
                w[j] = w[j] * decay - scale * g[j]
            if fit_intercept:
                b = b - scale * bgb
            t += 1
        epoch += 1
