"""Tikhon's own replacements for the BLAS-3 and LAPACK calls of its solvers.

Why: OpenBLAS's threaded level-3 routines (the pthreads builds numpy and scipy ship)
synchronize their threads by spinning, so beside busy processes a call waits for
descheduled threads. Measured on this 2-core machine beside 2 busy processes
(``/work/scratch/h15/repro.py --load 2``, best of 5): the Gram of 1e6 x 100 by
``dsyrk`` on row blocks 2.8 s (up to 28 s; 0.33 s with BLAS limited to one thread);
``dpotrf`` of a 129 x 129 Hessian 66 ms (0.1 ms on one thread); a ``newton_cholesky``
fit of 20000 x 128 6.9 s (numba backend) and 12.4 s (numpy backend). There is no
per-call way to keep OpenBLAS on one thread for these: ``syrk`` is threaded for any
output of 100 columns or more whatever the rows (``interface/syrk.c``: ``args.n <
100``), ``potrf`` at every size, ``gemm`` beyond ``m n k > 65536 *
GEMM_MULTITHREAD_THRESHOLD`` (16 rows of a 128-column Gram), and
``openblas_set_num_threads_local`` is process-wide in these builds (called from a
worker thread, it changed the main thread's count too: checked on 0.3.30 and 0.3.31).
A process-wide limit is not ours to set (see :mod:`tikhon.backends.numba`, "BLAS").

What runs instead:

* :func:`dense_gram`: ``[X 1]^T diag(c) [X 1]`` by a compiled, GIL-free kernel (4 x 4
  register tiles) on strips of rows (copied, scaled and transposed by NumPy into a
  float64 buffer, so one specialization serves float32/float64 and C/F order), the rows
  split into chunks chosen from the data alone, each summed into its own buffer, the
  buffers added in chunk order (the same bits on any thread count), the chunks on
  Python threads granted like a Numba pass (:func:`threads_for`). A thread without a
  core delays only its own chunks. 1e6 x 100: 0.2 s on one thread (others' tests
  beside), 1.5 s beside 2 busy processes and others' tests (load 7 on 2 cores).
* :func:`cholesky_solve`: a row Cholesky and two triangular solves on the calling
  thread, up to CHOLESKY_MAX parameters (LAPACK's beyond).
* :func:`times_columns` / :func:`columns_times`: the numpy backend's ``X W^T`` and
  ``R^T X`` by row blocks small enough that OpenBLAS runs each gemm on one thread
  (figures at :data:`GEMM_ONE_THREAD`).

Without compiled code (``NUMBA_DISABLE_JIT``) the Gram and Cholesky are BLAS's and
LAPACK's, as before.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np

__all__ = ["available", "cholesky_solve", "chunk_count", "columns_times", "dense_gram", "times_columns"]

# Values per strip (p x STRIP_VALUES // p float64, twice for signed weights): it stays in
# the L2 cache while the kernel's 4 x 4 tiles read it p/4 times.
STRIP_VALUES = 1 << 15
# Work per chunk (multiply-adds, n p^2 / 2): chunks of at least ~8 ms of one core,
# so the per-chunk buffers and the thread hand-off stay negligible.
CHUNK_WORK = 1 << 26
# Per-chunk buffers at most this many float64 values in all (p = 1001: 8 chunks).
BUFFER_VALUES = 1 << 23
# At most one chunk per CPU of the machine (not per thread granted: chunks must not
# depend on the threads a call gets).
MAX_CHUNKS = os.cpu_count() or 1

_compiled = {}
_compile_lock = threading.Lock()


def _jit(func):
    """``func`` compiled by Numba (GIL-free, cached on disk; in memory when no cache
    directory is writable), or None when Numba cannot run compiled code here
    (``NUMBA_DISABLE_JIT``: the callers use BLAS and LAPACK instead)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return None
    if numba.config.DISABLE_JIT:
        return None
    fast = {"reassoc", "contract"}  # lets LLVM vectorize the reductions
    try:
        return numba.njit(cache=True, nogil=True, fastmath=fast)(func)
    except Exception:  # no writable cache directory
        return numba.njit(nogil=True, fastmath=fast)(func)


def _get(func):
    """The compiled ``func`` (compiled on first use), or None (see :func:`_jit`)."""
    name = func.__name__
    if name not in _compiled:
        with _compile_lock:
            if name not in _compiled:
                _compiled[name] = _jit(func)
    return _compiled[name]


def _strip_upper(T, S, m, G):
    """``G[j, k] += sum_{i < m} T[j, i] S[k, i]`` for ``j <= k`` (the upper triangle;
    some entries below the diagonal of the diagonal tiles are written too). 4 x 4
    tiles of G in registers: 8 row loads per 16 multiply-adds."""
    p = T.shape[0]
    full = p - p % 4
    for jb in range(0, full, 4):
        for kb in range(jb, full, 4):
            a00 = a01 = a02 = a03 = 0.0
            a10 = a11 = a12 = a13 = 0.0
            a20 = a21 = a22 = a23 = 0.0
            a30 = a31 = a32 = a33 = 0.0
            for i in range(m):
                t0 = T[jb, i]
                t1 = T[jb + 1, i]
                t2 = T[jb + 2, i]
                t3 = T[jb + 3, i]
                s0 = S[kb, i]
                s1 = S[kb + 1, i]
                s2 = S[kb + 2, i]
                s3 = S[kb + 3, i]
                a00 += t0 * s0
                a01 += t0 * s1
                a02 += t0 * s2
                a03 += t0 * s3
                a10 += t1 * s0
                a11 += t1 * s1
                a12 += t1 * s2
                a13 += t1 * s3
                a20 += t2 * s0
                a21 += t2 * s1
                a22 += t2 * s2
                a23 += t2 * s3
                a30 += t3 * s0
                a31 += t3 * s1
                a32 += t3 * s2
                a33 += t3 * s3
            G[jb, kb] += a00
            G[jb, kb + 1] += a01
            G[jb, kb + 2] += a02
            G[jb, kb + 3] += a03
            G[jb + 1, kb] += a10
            G[jb + 1, kb + 1] += a11
            G[jb + 1, kb + 2] += a12
            G[jb + 1, kb + 3] += a13
            G[jb + 2, kb] += a20
            G[jb + 2, kb + 1] += a21
            G[jb + 2, kb + 2] += a22
            G[jb + 2, kb + 3] += a23
            G[jb + 3, kb] += a30
            G[jb + 3, kb + 1] += a31
            G[jb + 3, kb + 2] += a32
            G[jb + 3, kb + 3] += a33
    for j in range(p):  # the columns beyond the last whole tile
        for k in range(max(j, full), p):
            acc = 0.0
            for i in range(m):
                acc += T[j, i] * S[k, i]
            G[j, k] += acc


def available():
    """Whether :func:`dense_gram` and :func:`cholesky_solve` run compiled here (else
    callers use BLAS and LAPACK)."""
    return _get(_strip_upper) is not None


def chunk_count(n, d):
    """Row chunks of the Gram of an ``n x d`` X, from the shape and the machine alone:
    one per CHUNK_WORK multiply-adds, at most one per CPU, and buffers of at most
    BUFFER_VALUES values in all."""
    p = d + 1
    work = n * p * p // 2
    by_memory = max(1, BUFFER_VALUES // (p * p))
    return int(max(1, min(MAX_CHUNKS, n, work // CHUNK_WORK, by_memory)))


def _strip_rows(p):
    return int(max(32, min(1024, STRIP_VALUES // p)))


def _chunk(X, c, signed, start, stop, G, strip):
    """Add chunk ``[start, stop)``'s Gram to the upper triangle of G (zeroed here)."""
    run = _get(_strip_upper)
    d = X.shape[1]
    rows = strip.shape[-1]
    G[:] = 0.0
    for r0 in range(start, stop, rows):
        r1 = min(r0 + rows, stop)
        m = r1 - r0
        ck = c[r0:r1]
        if signed:  # T = [X 1]^T, S = T diag(c): weights of both signs
            T, S = strip[0], strip[1]
            T[:d, :m] = X[r0:r1].T
            T[d, :m] = 1.0
            np.multiply(T[:, :m], ck, out=S[:, :m])
        else:  # S = [X 1]^T diag(sqrt(c)), G += S S^T
            T = S = strip[0]
            root = np.sqrt(ck)
            np.multiply(X[r0:r1].T, root, out=S[:d, :m])
            S[d, :m] = root
        run(T, S, m, G)


@contextmanager
def threads_for(chunks):
    """The threads one call of ``chunks`` chunks may use: at most the fit's budget
    (:func:`tikhon._config.thread_budget`), granted from the cores neither other
    processes nor other tikhon passes are using (:func:`tikhon.backends.numba._claim`:
    one under load; counted in its ``threads_in_use``)."""
    from .._config import thread_budget
    from .numba import _claim

    with _claim(max(1, min(int(chunks), thread_budget()))) as granted:
        yield granted


def _forget_compile_lock():
    """In a child made by fork a compilation lock held at the fork stays held: a new one."""
    global _compile_lock
    _compile_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_compile_lock)


def _executor():
    """The threads that run chunks beside the calling thread (:func:`tikhon._config.thread_pool`)."""
    from .._config import thread_pool

    return thread_pool("tikhon-blas")


def dense_gram(X, c, threads=1):
    """``[X 1]^T diag(c) [X 1]`` for dense X (any order, float32/float64) and float64
    weights ``c`` of any sign: a symmetric ``(d + 1) x (d + 1)`` float64 matrix, the
    intercept's constant column last. Runs its chunks on at most ``threads`` threads
    (the calling one included); the result does not depend on ``threads``."""
    n, d = X.shape
    p = d + 1
    c = np.ascontiguousarray(c, dtype=np.float64)
    signed = bool(np.any(c < 0))
    chunks = chunk_count(n, d)
    rows = _strip_rows(p)
    parts = np.empty((chunks, p, p))
    bounds = [(q * n // chunks, (q + 1) * n // chunks) for q in range(chunks)]
    workers = max(1, min(int(threads), chunks))

    def share(t):
        strip = np.empty((2 if signed else 1, p, rows))
        for q in range(t, chunks, workers):
            _chunk(X, c, signed, *bounds[q], parts[q], strip)

    _run(share, workers)
    G = parts[0]
    for q in range(1, chunks):  # in chunk order: the same sums on any thread count
        G += parts[q]
    upper = np.triu(G)
    return upper + np.triu(upper, 1).T


# ---- the Newton step's Cholesky solve ------------------------------------------------
# LAPACK's dpotrf (OpenBLAS's own, threaded for any size) took 66 ms a call for the
# 129 x 129 Hessian of a 2000 x 128 fit beside 2 busy processes (1.0 s of a 1.35 s fit);
# this row-by-row Cholesky takes ~0.2 ms. Its inner products run over contiguous rows of
# L (vectorized); it reads all of L for each row, so beyond CHOLESKY_MAX parameters
# (L no longer in cache) LAPACK's blocked code is used (and the Gram, n p^2, dominates).
CHOLESKY_MAX = 512


def _cholesky_rows(H, g, L, x):
    """Solve ``H x = g`` by ``H = L L^T`` (L lower, row by row); False if a pivot is
    not positive (H not numerically positive definite), as LAPACK's dpotrf."""
    p = H.shape[0]
    for j in range(p):
        for k in range(j):
            acc = H[j, k]
            for q in range(k):
                acc -= L[j, q] * L[k, q]
            L[j, k] = acc / L[k, k]
        acc = H[j, j]
        for q in range(j):
            acc -= L[j, q] * L[j, q]
        if not acc > 0.0:  # also NaN
            return False
        L[j, j] = np.sqrt(acc)
    for j in range(p):  # L u = g
        acc = g[j]
        for q in range(j):
            acc -= L[j, q] * x[q]
        x[j] = acc / L[j, j]
    for j in range(p - 1, -1, -1):  # L^T x = u
        acc = x[j]
        for q in range(j + 1, p):
            acc -= L[q, j] * x[q]
        x[j] = acc / L[j, j]
    return True


def cholesky_solve(H, g):
    """``H^{-1} g`` for a symmetric positive definite ``H`` (float64) by a Cholesky
    factorization on the calling thread only; None when H is not numerically positive
    definite. Beyond CHOLESKY_MAX rows, or without compiled kernels, LAPACK's."""
    H = np.ascontiguousarray(H, dtype=np.float64)
    g = np.ascontiguousarray(g, dtype=np.float64)
    run = _get(_cholesky_rows) if H.shape[0] <= CHOLESKY_MAX else None
    if run is None:
        from scipy.linalg import LinAlgError, cho_factor, cho_solve

        try:
            return cho_solve(cho_factor(H, check_finite=False), g, check_finite=False)
        except LinAlgError:
            return None
    x = np.empty_like(g)
    return x if run(H, g, np.zeros_like(H), x) else None


# ---- products with K columns (the numpy backend's X W^T and R^T X) -------------------
# OpenBLAS runs a gemm on one thread when m n k <= 65536 * GEMM_MULTITHREAD_THRESHOLD
# (interface/gemm.c; 4 in the builds numpy ships): row blocks that small keep each call
# on the calling thread, and the blocks run on tikhon's threads (NumPy releases the
# GIL). Measured beside 2 busy processes (ms, best of 5): 2000 x 128, R^T X with K = 3:
# 17 threaded against 0.15 on one thread; 20000 x 128 K = 3: X W^T 36 against 2.5, R^T X
# 18 against 2.1. With another BLAS the blocks are only blocks (the same results).
# One column (gemv: threaded from m n >= 2304 * 4 = 9216) is left to BLAS: blocks of
# 72 rows would cost a Python call each.
GEMM_ONE_THREAD = 65536 * 4
MIN_BLOCK_ROWS = 64


def product_chunks(n, K, d):
    """The chunks of a K-column product of an ``n x d`` X (1: one call)."""
    rows = product_rows(K, d)
    return 1 if not rows or rows >= n else max(1, min(MAX_CHUNKS, -(-n // rows)))


def product_rows(K, d):
    """Rows per gemm call of an ``n x d`` by ``d x K`` product that OpenBLAS runs on one
    thread, or 0 when such blocks would be too thin to pay (then one call)."""
    rows = GEMM_ONE_THREAD // max(1, K * d)
    return rows if rows >= MIN_BLOCK_ROWS else 0


def _blocks(n, rows, threads):
    """Row blocks of ``rows`` grouped into chunks (from n and rows alone, at most
    MAX_CHUNKS), and the workers to run them."""
    starts = list(range(0, n, rows))
    chunks = max(1, min(MAX_CHUNKS, len(starts)))
    groups = [starts[q * len(starts) // chunks:(q + 1) * len(starts) // chunks] for q in range(chunks)]
    return groups, max(1, min(int(threads), chunks))


def _run(work, workers):
    """``work(t)`` for t < workers, t = 0 on the calling thread."""
    if workers == 1:
        work(0)
        return
    futures = [_executor().submit(work, t) for t in range(1, workers)]
    work(0)
    for f in futures:
        f.result()


def times_columns(X, Wt, threads=1):
    """``X @ Wt`` (n x K, float64) for dense X and a ``d x K`` Wt in X's dtype, by row
    blocks of :func:`product_rows` on at most ``threads`` threads."""
    n = X.shape[0]
    rows = product_rows(Wt.shape[1], Wt.shape[0])
    if not rows or rows >= n:
        return np.asarray(X @ Wt, dtype=np.float64)
    out = np.empty((n, Wt.shape[1]))
    groups, workers = _blocks(n, rows, threads)

    def work(t):
        for q in range(t, len(groups), workers):
            for start in groups[q]:
                out[start:start + rows] = X[start:start + rows] @ Wt

    _run(work, workers)
    return out


def columns_times(R, X, threads=1):
    """``R.T @ X`` (K x d, float64) for dense X and an ``n x K`` R in X's dtype: the row
    blocks' products summed per chunk, and the chunks in order (the same sums on any
    thread count)."""
    n = X.shape[0]
    rows = product_rows(R.shape[1], X.shape[1])
    if not rows or rows >= n:
        return np.asarray(R.T @ X, dtype=np.float64)
    groups, workers = _blocks(n, rows, threads)
    parts = np.zeros((len(groups), R.shape[1], X.shape[1]))

    def work(t):
        for q in range(t, len(groups), workers):
            for start in groups[q]:
                parts[q] += R[start:start + rows].T @ X[start:start + rows]

    _run(work, workers)
    total = parts[0]
    for q in range(1, len(groups)):  # in chunk order
        total += parts[q]
    return total
