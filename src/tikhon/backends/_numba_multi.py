"""K-column Numba kernels of the ``numba`` backend: several outputs in one pass over X.

A multinomial model with K classes or a ridge with K targets works on ``n x K`` margins
``Z = X W^T + b``. Each pass here reads X once for all K columns (imported only by
:mod:`tikhon.backends.numba`, with the conventions of :mod:`._numba_kernels`: plain
``njit(cache=True)`` functions through its tolerant cache, the layout chosen at compile
time from ``Xt``'s type, float64 accumulators whatever X's dtype, X never copied):

* ``X W^T`` and ``R^T X`` (and ``(X * X)^T R``, the K-output Hessian diagonal);
* the multinomial's value and gradient, fused by blocks of rows: a block's margins,
  softmax (the exponentials by the vectorized polynomial of ``_numba_kernels``), value
  and ``R^T X`` contribution with the block still in cache, so the only ``n x K`` array
  is the probabilities a Hessian needs (written only if asked for);
* the multinomial's Hessian product ``u_i = s_i (diag(p_i) - p_i p_i^T)(x_i V^T + vb)``;
* the squared loss's value, gradient and Hessian product for K targets.

Everything is one parallel entry point, :func:`multi_pass`, selected by ``op`` (one gufunc
to compile per input layout, as ``_numba_kernels.one_pass``). The rows are split into
``T`` contiguous chunks (``T`` chosen by the caller from the data alone), each summed
into its own buffer, the buffers reduced in a fixed order: the results are the same bits
whatever the number of threads.

Layouts, and how each keeps K partial sums in registers:

* dense C order: ``W`` is passed as ``(K, d)``: a row of X (contiguous) meets 4 rows of
  ``W`` (contiguous) at a time, 4 vectorized dot products whose sums stay in registers;
  the gradient ``G (K, d) += U_b^T X_b`` runs over 4 rows of X and 2 rows of ``G`` at a
  time (one load and store of ``G`` per 4 fused multiply-adds);
* dense F order: ``W`` as ``(K, d)``; a block of rows is swept column by column (each
  column piece contiguous), 4 columns at a time into the block's transposed margins;
* CSR (int32/int64 indices): ``W^T`` is passed as ``(d, K)`` C order: each stored entry
  meets K contiguous coefficients, added into the row's K sums (in L1); the gradient
  ``G (d, K)`` is scattered row by row, K contiguous sums per entry.
"""
from __future__ import annotations

import numpy as np
from numba import prange
from numba.extending import overload

from ._numba_kernels import (_FAST, _OV, _PRANGE_ONLY, _CM_BLOCK, _entries, _exp_neg_abs, _is_csr,
                             _is_fortran, n_rows, njit)

OP_MATMAT = 0  # out = X W^T
OP_RMATMAT = 1  # G = X^T P
OP_SQUARES = 2  # G = (X * X)^T P
OP_MULTINOMIAL = 3  # value, G = X^T R, gb = sum R; probabilities into P if it has n rows
OP_MULTINOMIAL_HESS = 4  # G = X^T U, U the multinomial Hessian rows at probabilities P
OP_SQUARED = 5  # value, gradient of the squared loss against targets Y
OP_SQUARED_HESS = 6  # G = X^T (s (X V^T + vb))


# --------------------------------------------------------------------------------------
# Pointwise work on a block of margins Z (m x K), layout-free
# --------------------------------------------------------------------------------------
@njit(cache=True, fastmath={"contract"}, error_model="numpy")
def _multinomial_block(Z, i0, m, b, y, s, P, keep, part, t, e, work):
    """``Z[k] <- s_i (softmax(z_i) - e_{y_i})`` for rows ``i = i0 + k``, ``z_i = Z[k] + b``;
    adds ``sum s_i (logsumexp(z_i) - z_{i, y_i})`` to ``part[0]`` and the rows of ``Z`` to
    ``part[1:]``; ``P[i] = softmax(z_i)`` if ``keep``. Rows of weight 0 add nothing
    (``Z[k] = 0``, ``P[i] = 0``). Returns the first row whose label is not a class index
    in ``0..K-1`` (such a row is skipped), or -1. The sums run in row order."""
    K = Z.shape[1]
    bad = -1
    for k in range(m):
        top = Z[k, 0] + b[0]
        for c in range(1, K):
            top = max(top, Z[k, c] + b[c])
        for c in range(K):
            t[k * K + c] = Z[k, c] + b[c] - top
    _exp_neg_abs(t, m * K, e, work)  # exp(z - top), z - top <= 0
    value = 0.0
    for k in range(m):
        i = i0 + k
        si = s[i]
        yv = y[i]
        cy = int(yv) if (yv >= 0.0 and yv < K) else -1
        if si == 0.0 or cy < 0 or cy != yv:
            if si != 0.0 and bad < 0:
                bad = i
            for c in range(K):
                Z[k, c] = 0.0
            if keep:
                for c in range(K):
                    P[i, c] = 0.0
            continue
        total = 0.0
        spread = 0.0
        for c in range(K):
            total += e[k * K + c]
            spread += t[k * K + c]
        nan_if_not_finite = 0.0 * spread  # an inf or NaN margin (exp was clamped): let it show
        value += si * (np.log(total) - t[k * K + cy] + nan_if_not_finite)
        scale = si / total
        for c in range(K):
            Z[k, c] = e[k * K + c] * scale + nan_if_not_finite
        if keep:
            inv = 1.0 / total
            for c in range(K):
                P[i, c] = e[k * K + c] * inv + nan_if_not_finite
        Z[k, cy] -= si
        for c in range(K):
            part[1 + c] += Z[k, c]
    part[0] += value
    return bad


@njit(cache=True, fastmath={"contract"})
def _multinomial_hess_block(Z, i0, m, vb, s, P, part):
    """``Z[k] <- s_i (diag(p_i) - p_i p_i^T)(Z[k] + vb)`` with ``p_i = P[i]``; adds the
    rows to ``part[1:]``."""
    K = Z.shape[1]
    for k in range(m):
        i = i0 + k
        si = s[i]
        if si == 0.0:
            for c in range(K):
                Z[k, c] = 0.0
            continue
        total = 0.0
        for c in range(K):
            pt = P[i, c] * (Z[k, c] + vb[c])
            Z[k, c] = pt
            total += pt
        for c in range(K):
            u = si * (Z[k, c] - P[i, c] * total)
            Z[k, c] = u
            part[1 + c] += u


@njit(cache=True, fastmath={"contract"})
def _squared_block(Z, i0, m, b, Y, s, part):
    """``Z[k] <- s_i (z_i - y_i)`` with ``z_i = Z[k] + b``; adds ``sum s_i |z_i - y_i|^2 / 2``
    to ``part[0]`` and the rows to ``part[1:]``."""
    K = Z.shape[1]
    value = 0.0
    for k in range(m):
        i = i0 + k
        si = s[i]
        row = 0.0
        for c in range(K):
            r = Z[k, c] + b[c] - Y[i, c]
            row += 0.5 * r * r
            r = si * r
            Z[k, c] = r
            part[1 + c] += r
        value += si * row
    part[0] += value


@njit(cache=True, fastmath={"contract"})
def _squared_hess_block(Z, i0, m, vb, s, part):
    """``Z[k] <- s_i (Z[k] + vb)``; adds the rows to ``part[1:]``."""
    K = Z.shape[1]
    for k in range(m):
        si = s[i0 + k]
        for c in range(K):
            u = si * (Z[k, c] + vb[c])
            Z[k, c] = u
            part[1 + c] += u


# --------------------------------------------------------------------------------------
# Dense C order: W (K, d), G (K, d)
# --------------------------------------------------------------------------------------
@njit(cache=True, fastmath=_FAST)
def _rm_forward(X, W, i0, m, Z):
    """``Z[:m] = X[i0:i0 + m] @ W.T``: per row, 4 (then 2, 1) dot products at a time."""
    d = X.shape[1]
    K = W.shape[0]
    for k in range(m):
        x = X[i0 + k]
        c = 0
        while c + 4 <= K:
            w0, w1, w2, w3 = W[c], W[c + 1], W[c + 2], W[c + 3]
            a0 = a1 = a2 = a3 = 0.0
            for j in range(d):
                xj = np.float64(x[j])
                a0 += xj * w0[j]
                a1 += xj * w1[j]
                a2 += xj * w2[j]
                a3 += xj * w3[j]
            Z[k, c] = a0
            Z[k, c + 1] = a1
            Z[k, c + 2] = a2
            Z[k, c + 3] = a3
            c += 4
        if c + 2 <= K:
            w0, w1 = W[c], W[c + 1]
            a0 = a1 = 0.0
            for j in range(d):
                xj = np.float64(x[j])
                a0 += xj * w0[j]
                a1 += xj * w1[j]
            Z[k, c] = a0
            Z[k, c + 1] = a1
            c += 2
        if c < K:
            w0 = W[c]
            a0 = 0.0
            for j in range(d):
                a0 += np.float64(x[j]) * w0[j]
            Z[k, c] = a0


@njit(cache=True, fastmath=_FAST)
def _rm_backward(X, U, i0, m, G, squares):
    """``G += U[:m].T @ X[i0:i0 + m]`` (squared entries of X if ``squares``): 4 rows of X
    meet 2 rows of ``G`` at a time (one load and store of ``G`` per 4 fused multiply-adds;
    measured faster than 4 x 1 and 8 x 1 at d = 100, K = 10)."""
    d = X.shape[1]
    K = G.shape[0]
    k = 0
    while k + 4 <= m:
        x0, x1, x2, x3 = X[i0 + k], X[i0 + k + 1], X[i0 + k + 2], X[i0 + k + 3]
        c = 0
        while c + 2 <= K:
            r0, r1, r2, r3 = U[k, c], U[k + 1, c], U[k + 2, c], U[k + 3, c]
            q0, q1, q2, q3 = U[k, c + 1], U[k + 1, c + 1], U[k + 2, c + 1], U[k + 3, c + 1]
            g, h = G[c], G[c + 1]
            for j in range(d):
                v0, v1, v2, v3 = np.float64(x0[j]), np.float64(x1[j]), np.float64(x2[j]), np.float64(x3[j])
                if squares:
                    v0, v1, v2, v3 = v0 * v0, v1 * v1, v2 * v2, v3 * v3
                g[j] += r0 * v0 + r1 * v1 + r2 * v2 + r3 * v3
                h[j] += q0 * v0 + q1 * v1 + q2 * v2 + q3 * v3
            c += 2
        if c < K:
            r0, r1, r2, r3 = U[k, c], U[k + 1, c], U[k + 2, c], U[k + 3, c]
            g = G[c]
            for j in range(d):
                v0, v1, v2, v3 = np.float64(x0[j]), np.float64(x1[j]), np.float64(x2[j]), np.float64(x3[j])
                if squares:
                    v0, v1, v2, v3 = v0 * v0, v1 * v1, v2 * v2, v3 * v3
                g[j] += r0 * v0 + r1 * v1 + r2 * v2 + r3 * v3
        k += 4
    while k < m:
        x0 = X[i0 + k]
        for c in range(K):
            r0 = U[k, c]
            g = G[c]
            for j in range(d):
                v0 = np.float64(x0[j])
                if squares:
                    v0 = v0 * v0
                g[j] += r0 * v0
        k += 1


# --------------------------------------------------------------------------------------
# Dense F order: W (K, d), G (K, d); a block swept column by column (contiguous reads)
# --------------------------------------------------------------------------------------
@njit(cache=True, fastmath=_FAST)
def _cm_forward(X, W, i0, m, Z, Zt):
    """``Z[:m] = X[i0:i0 + m] @ W.T`` through ``Zt`` (K x block, the transposed margins):
    4 columns of the block at a time, each a contiguous piece of X."""
    d = X.shape[1]
    K = W.shape[0]
    for c in range(K):
        zt = Zt[c]
        for k in range(m):
            zt[k] = 0.0
    j = 0
    while j + 4 <= d:
        x0, x1, x2, x3 = X[i0:i0 + m, j], X[i0:i0 + m, j + 1], X[i0:i0 + m, j + 2], X[i0:i0 + m, j + 3]
        for c in range(K):
            w0, w1, w2, w3 = W[c, j], W[c, j + 1], W[c, j + 2], W[c, j + 3]
            zt = Zt[c]
            for k in range(m):
                zt[k] += (np.float64(x0[k]) * w0 + np.float64(x1[k]) * w1
                          + np.float64(x2[k]) * w2 + np.float64(x3[k]) * w3)
        j += 4
    while j < d:
        x0 = X[i0:i0 + m, j]
        for c in range(K):
            w0 = W[c, j]
            zt = Zt[c]
            for k in range(m):
                zt[k] += np.float64(x0[k]) * w0
        j += 1
    for k in range(m):
        for c in range(K):
            Z[k, c] = Zt[c, k]


@njit(cache=True, fastmath=_FAST)
def _cm_backward(X, U, i0, m, G, Ut, squares):
    """``G += U[:m].T @ X[i0:i0 + m]`` (squared entries if ``squares``) through ``Ut``
    (U transposed): per column of the block, 4 classes at a time."""
    d = X.shape[1]
    K = G.shape[0]
    for k in range(m):
        for c in range(K):
            Ut[c, k] = U[k, c]
    for j in range(d):
        x = X[i0:i0 + m, j]
        c = 0
        while c + 4 <= K:
            u0, u1, u2, u3 = Ut[c], Ut[c + 1], Ut[c + 2], Ut[c + 3]
            a0 = a1 = a2 = a3 = 0.0
            for k in range(m):
                v = np.float64(x[k])
                if squares:
                    v = v * v
                a0 += u0[k] * v
                a1 += u1[k] * v
                a2 += u2[k] * v
                a3 += u3[k] * v
            G[c, j] += a0
            G[c + 1, j] += a1
            G[c + 2, j] += a2
            G[c + 3, j] += a3
            c += 4
        while c < K:
            u0 = Ut[c]
            a0 = 0.0
            for k in range(m):
                v = np.float64(x[k])
                if squares:
                    v = v * v
                a0 += u0[k] * v
            G[c, j] += a0
            c += 1


# --------------------------------------------------------------------------------------
# CSR: W^T (d, K), G (d, K); scalar gathers and scatters (no fastmath, as _numba_kernels)
# --------------------------------------------------------------------------------------
@njit(cache=True, fastmath={"contract"})
def _csr_forward(data, indices, indptr, WT, i0, m, Z):
    """``Z[:m] = X[i0:i0 + m] @ WT``: each entry adds its value times K contiguous
    coefficients to the row's K sums (in L1). Measured on the text CSR (K = 20, one
    thread, the two timed in turn): 52 ms against 60 ms for gathers of 8/4/2/1 columns
    in scalar sums (the cython backend's ``row_gather``, which reads each row's entries
    once per gather)."""
    K = WT.shape[1]
    for k in range(m):
        z = Z[k]
        for c in range(K):
            z[c] = 0.0
        for p in _entries(indptr, i0 + k):
            v = np.float64(data[p])
            w = WT[np.uint64(indices[p])]
            for c in range(K):
                z[c] += v * w[c]


@njit(cache=True, fastmath={"contract"})
def _csr_backward(data, indices, indptr, U, i0, m, G, squares):
    """``G[j] += x_ij U[k]`` (``x_ij^2`` if ``squares``) for every entry of rows
    ``i0 + k``; rows of ``U`` that are all zero are skipped."""
    K = G.shape[1]
    for k in range(m):
        r = U[k]
        live = False
        for c in range(K):
            if r[c] != 0.0:
                live = True
        if not live:
            continue
        for p in _entries(indptr, i0 + k):
            v = np.float64(data[p])
            if squares:
                v = v * v
            g = G[np.uint64(indices[p])]
            for c in range(K):
                g[c] += r[c] * v


# --------------------------------------------------------------------------------------
# Generic block functions: the layout is chosen at compile time from Xt's type
# --------------------------------------------------------------------------------------
def block_rows(Xt, K):
    """Rows per block of a chunk (jitted use only)."""
    raise NotImplementedError


def grad_shape(Xt, d, K):
    """The shape of a gradient accumulator: ``(K, d)`` dense, ``(d, K)`` CSR."""
    raise NotImplementedError


def block_forward(Xt, W, i0, m, Z, work):
    raise NotImplementedError


def block_backward(Xt, U, i0, m, G, work, squares):
    raise NotImplementedError


@overload(block_rows, jit_options=_OV)
def _ov_block_rows(Xt, K):
    if _is_csr(Xt):
        return lambda Xt, K: 256
    if _is_fortran(Xt):
        return lambda Xt, K: max(64, min(_CM_BLOCK, (1 << 15) // max(1, K)))
    # dense C: a block of rows of about 256 KiB (in L2 when the gradient reads it again;
    # measured faster than 64 KiB at d = 100)
    return lambda Xt, K: max(8, min(256, 32768 // max(1, Xt[0].shape[1])))


@overload(grad_shape, jit_options=_OV)
def _ov_grad_shape(Xt, d, K):
    if _is_csr(Xt):
        return lambda Xt, d, K: (d, K)
    return lambda Xt, d, K: (K, d)


@overload(block_forward, jit_options=_OV)
def _ov_block_forward(Xt, W, i0, m, Z, work):
    if _is_csr(Xt):
        return lambda Xt, W, i0, m, Z, work: _csr_forward(Xt[0], Xt[1], Xt[2], W, i0, m, Z)
    if _is_fortran(Xt):
        return lambda Xt, W, i0, m, Z, work: _cm_forward(Xt[0], W, i0, m, Z, work)
    return lambda Xt, W, i0, m, Z, work: _rm_forward(Xt[0], W, i0, m, Z)


@overload(block_backward, jit_options=_OV)
def _ov_block_backward(Xt, U, i0, m, G, work, squares):
    if _is_csr(Xt):
        return lambda Xt, U, i0, m, G, work, squares: _csr_backward(Xt[0], Xt[1], Xt[2], U, i0, m, G, squares)
    if _is_fortran(Xt):
        return lambda Xt, U, i0, m, G, work, squares: _cm_backward(Xt[0], U, i0, m, G, work, squares)
    return lambda Xt, U, i0, m, G, work, squares: _rm_backward(Xt[0], U, i0, m, G, squares)


# --------------------------------------------------------------------------------------
# One chunk of rows, and the parallel driver
# --------------------------------------------------------------------------------------
@njit(cache=True)
def _chunk(op, Xt, W, b, y, Y, s, P, out, lo, hi, G, part, K):
    """Rows ``lo:hi`` of :func:`multi_pass` (its ``op``) by blocks; the gradient into
    ``G``, value and row sums into ``part``. Returns the first bad label's row, or -1."""
    block = block_rows(Xt, K)
    Z = np.empty((block, K))
    work = np.empty((K, block))
    t = np.empty(block * K)
    e = np.empty(block * K)
    scratch = np.empty(block * K)
    keep = P.shape[0] > 0
    bad = -1
    for i0 in range(lo, hi, block):
        m = min(block, hi - i0)
        if op == OP_MATMAT:
            block_forward(Xt, W, i0, m, out[i0:i0 + m], work)
            continue
        if op == OP_RMATMAT or op == OP_SQUARES:
            block_backward(Xt, P[i0:i0 + m], i0, m, G, work, op == OP_SQUARES)
            continue
        block_forward(Xt, W, i0, m, Z, work)
        if op == OP_MULTINOMIAL:
            first = _multinomial_block(Z, i0, m, b, y, s, P, keep, part, t, e, scratch)
            if bad < 0:
                bad = first
        elif op == OP_MULTINOMIAL_HESS:
            _multinomial_hess_block(Z, i0, m, b, s, P, part)
        elif op == OP_SQUARED:
            _squared_block(Z, i0, m, b, Y, s, part)
        else:
            _squared_hess_block(Z, i0, m, b, s, part)
        block_backward(Xt, Z, i0, m, G, work, False)
    return bad


@njit(cache=True, parallel=_PRANGE_ONLY)
def multi_pass(op, Xt, W, b, y, Y, s, P, out, d, K, T):
    """Every K-column pass over X, selected by ``op`` (see the ``OP_`` constants).
    Returns ``(G, value, gb, bad)``: ``G`` the gradient-like accumulator (``grad_shape``:
    ``(K, d)`` dense, ``(d, K)`` CSR; empty for ``OP_MATMAT``, which fills ``out`` (n x K)),
    ``value`` the loss, ``gb`` (K) the sum of the rows of ``R`` or ``U``, ``bad`` the first
    row whose label is not a class index (-1: none).

    ``W``: ``(K, d)`` dense, ``W^T`` ``(d, K)`` CSR (C order); ``b`` (K): intercepts (or
    ``vb``); ``y`` (n): class indices as floats (multinomial); ``Y`` (n x K): targets
    (squared); ``s`` (n): sample weights; ``P`` (n x K): ``R`` for ``OP_RMATMAT`` and
    ``OP_SQUARES``, the probabilities for the multinomial (written by ``OP_MULTINOMIAL``
    if it has n rows, read by ``OP_MULTINOMIAL_HESS``). ``T``: row chunks."""
    n = n_rows(Xt)
    A, B = grad_shape(Xt, d, K)
    if op == OP_MATMAT:
        A = 0
        B = 0
    G = np.zeros((T, A, B))
    parts = np.zeros((T, K + 1))
    bad = np.full(T, -1, dtype=np.int64)
    for c in prange(T):
        lo = c * n // T
        hi = (c + 1) * n // T
        bad[c] = _chunk(op, Xt, W, b, y, Y, s, P, out, lo, hi, G[c], parts[c], K)
    total = G[0]  # the chunks' buffers summed into the first, in a fixed order:
    for c in range(1, T):  # the same bits on any number of threads
        total += G[c]
    value = 0.0
    gb = np.zeros(K)
    first_bad = -1
    for c in range(T):
        value += parts[c, 0]
        for k in range(K):
            gb[k] += parts[c, 1 + k]
        if first_bad < 0:
            first_bad = bad[c]
    return total, value, gb, first_bad
