"""What the ``dask`` backend runs on the workers: *unit* tasks, each calling the Numba
backend's fused kernel (:func:`tikhon.backends._numba_kernels.one_pass`) on a list of
chunks where they live (the chunks one worker holds, or a single chunk being
recomputed), and the small combine step of the tree reduction.

A *chunk* is the tuple ``(Xt, y, s)`` built once by :func:`pack`: ``Xt`` is the
kernels' data tuple (``(X,)`` dense or ``(data, indices, indptr)`` CSR), ``y`` and
``s`` the chunk's float64 targets and weights. A unit task returns one float64 vector
``[g (d entries), a, c]`` (see ``one_pass``) summed over its chunks in list order (the
first level of the reduction), so that combining partial results is one sum.

Arrays that arrive on a worker through Dask's serialization may be read-only or
unaligned; Numba types those differently (a new compilation of every kernel, in every
worker process), so they are copied to writable aligned arrays: chunks once, in
:func:`pack`; coefficient vectors (``d`` entries) at every call.

Several outputs (``K > 1``: a multinomial model's classes, a multi-target ridge's
targets; ``y`` is then the class indices or the ``n x K`` targets): the ``multi_*``
unit tasks, BLAS-3 products on row blocks of each chunk (:func:`_blocks64`), each
block read once per pass for both of its products (margins ``X_b W^T`` for all K
outputs, the pointwise terms of :mod:`tikhon.objective`'s loss, then ``R_b^T X_b``);
they return ``[G.ravel() (K d entries), a, c (K entries)]`` so that the same
:func:`combine` reduces them.
"""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp



def _writable(a, dtype=None):
    a = np.asarray(a, dtype=dtype)
    if a.flags.writeable and a.flags.aligned and (a.flags.c_contiguous or a.flags.f_contiguous):
        return a
    return np.array(a, order="C", copy=True)


def _checked_csr(X):
    """A sparse chunk as CSR after the gate's structure checks (:mod:`tikhon._validation`),
    where the chunk lives: a broken structure would make the kernels (and scipy's
    products) read out of bounds. Another sparse format is converted once (documented)."""
    from .._validation import check_csr_structure, check_sparse_structure

    check_sparse_structure(X)
    return check_csr_structure(X if X.format == "csr" else X.tocsr())


def pack(X, ys):
    """The chunk tuple ``(Xt, y, s)`` for one row block ``X`` and its ``(y, s)``."""
    y, s = ys
    if sp.issparse(X):
        X = _checked_csr(X)
        Xt = (_writable(X.data), _writable(X.indices), _writable(X.indptr))
    else:
        Xt = (_writable(X),)
    values = Xt[0][:Xt[2][-1]] if len(Xt) == 3 else Xt[0]
    # the estimators' checks of X, done where the chunk lives
    from .._validation import check_values

    check_values("X", values)
    n = Xt[2].shape[0] - 1 if len(Xt) == 3 else Xt[0].shape[0]
    if y.shape[0] != n or s.shape[0] != n:
        raise ValueError(f"a chunk of X has {n} rows but its targets/weights have {y.shape[0]}/{s.shape[0]}")
    return Xt, y, s


def pack_targets(y, s):
    """Writable float64 copies of one chunk's targets and weights."""
    return np.array(y, dtype=np.float64, copy=True), np.array(s, dtype=np.float64, copy=True)


@contextmanager
def _numba_threads(T):
    """Run a kernel on ``T`` Numba threads (thread-local setting, restored after)."""
    import numba

    current = numba.get_num_threads()
    T = max(1, min(int(T), numba.config.NUMBA_NUM_THREADS))
    if T != current:
        numba.set_num_threads(T)
    try:
        yield T
    finally:
        if T != current:
            numba.set_num_threads(current)


def _one_pass(op, chunk, w, b, code, rowvec, out, T):
    """``one_pass`` on a chunk, inside the numba backend's launch guard: Numba's
    ``workqueue`` threading layer aborts the process when two threads launch parallel
    kernels at once (a worker with several threads, or an in-process worker beside a
    numba fit), so launches share one process-wide lock where the layer needs it."""
    from . import _numba_kernels as k

    Xt, y, s = chunk
    if y.ndim != 1:  # a multi-target chunk: these passes do not read y, the kernels type it 1-D
        y = np.zeros(y.shape[0])
    with _numba_threads(T) as T, k.parallel_launch():
        return k.one_pass(op, Xt, y, s, w, float(b), code, rowvec, out, T)


def _vec(v):
    return np.array(v, dtype=np.float64, copy=True)  # writable (see the module docstring)


def _flat(g, a, c):
    out = np.empty(g.shape[0] + 2)
    out[:-2] = g
    out[-2] = a
    out[-1] = c
    return out


_EMPTY = np.empty(0)


# ---- unit tasks: each takes a list of chunks (those one worker holds, or one chunk) and
# ---- returns the sum over them, in list order: the first level of the tree reduction
def loss_grad(chunks, w, b, code, T):
    """``[X^T (s loss'), sum s loss, sum s loss']`` summed over the chunks."""
    from . import _numba_kernels as k

    w = _vec(w)
    return combine(*[_flat(*_one_pass(k.OP_LOSS_GRAD, ch, w, b, code, _EMPTY, _EMPTY, T)) for ch in chunks])


def loss_grad_curvature(chunks, w, b, code, T):
    """``(loss_grad, [Hessian weights s_i loss''_i per chunk])``: the weights stay on the
    worker (this result is only read there, by :func:`hess` and :func:`hess_diagonal`)."""
    from . import _numba_kernels as k

    w = _vec(w)
    parts, dvecs = [], []
    for ch in chunks:
        dvec = np.empty(ch[1].shape[0])
        parts.append(_flat(*_one_pass(k.OP_LOSS_GRAD, ch, w, b, code, _EMPTY, dvec, T)))
        dvecs.append(dvec)
    return combine(*parts), dvecs


def first(state):
    """The reduced vector of a :func:`loss_grad_curvature` result."""
    return state[0]


def hess(chunks, state, v, vb, T):
    """``[X^T (d * (X v + vb)), 0, sum d * (X v + vb)]`` with the Hessian weights ``d`` of
    a :func:`loss_grad_curvature` result ``state``."""
    from . import _numba_kernels as k

    v = _vec(v)
    return combine(*[_flat(*_one_pass(k.OP_HESS, ch, v, vb, 0, dvec, _EMPTY, T))
                     for ch, dvec in zip(chunks, state[1])])


def weighted_hess(chunks, v, vb, T):
    """``hess`` with the sample weights as the row weights (``X^T S (X v + vb)``)."""
    return hess(chunks, (None, [ch[2] for ch in chunks]), v, vb, T)


def hess_diagonal(chunks, state, d, block=4096):
    """``[sum_i d_i x_ij^2 (d entries), 0, sum_i d_i]`` with the Hessian weights of
    ``state``: the diagonal of the data term's Hessian (squares one row block at a time)."""
    out = []
    for ch, dvec in zip(chunks, state[1]):
        Xt = ch[0]
        if len(Xt) == 3:
            data, indices, indptr = Xt
            sq = sp.csr_matrix((np.square(data, dtype=np.float64), indices, indptr),
                               shape=(indptr.shape[0] - 1, d))
            g = np.asarray(sq.T @ dvec, dtype=np.float64).ravel()
        else:
            X = Xt[0]
            g = np.zeros(d)
            for start in range(0, X.shape[0], block):
                Xb = np.asarray(X[start:start + block], dtype=np.float64)
                g += np.square(Xb).T @ dvec[start:start + block]
        out.append(_flat(g, 0.0, float(dvec.sum())))
    return combine(*out)


def _per_row(op, chunks, w, T):
    """One float64 value per row of every chunk, from the row-wise pass ``op``."""
    outs = []
    for ch in chunks:
        out = np.empty(ch[1].shape[0])
        _one_pass(op, ch, w, 0.0, 0, _EMPTY, out, T)
        outs.append(out)
    return outs


def matvec(chunks, w, T):
    """``[X w]`` per chunk (float64)."""
    from . import _numba_kernels as k

    return _per_row(k.OP_MATVEC, chunks, _vec(w), T)


def rmatvec(chunks, pieces, d, T):
    """``[X^T r, 0, sum r]`` summed over the chunks, ``pieces[k]`` the rows of chunk k."""
    from . import _numba_kernels as k

    zeros = np.zeros(d)
    return combine(*[_flat(_one_pass(k.OP_RMATVEC, ch, zeros, 0.0, 0, _vec(r), _EMPTY, T)[0], 0.0, float(np.sum(r)))
                     for ch, r in zip(chunks, pieces)])


def row_norms(chunks, d, T):
    """``[||x_i||^2]`` per chunk (float64)."""
    from . import _numba_kernels as k

    return _per_row(k.OP_ROW_NORMS, chunks, np.zeros(d), T)


def weight_sum(chunks):
    """``[sum s]`` over the chunks."""
    return np.array([sum(float(ch[2].sum()) for ch in chunks)])

# ---- several outputs (K > 1): BLAS-3 products per row block, pointwise terms from the
# ---- objective module (the NumPy reference's own functions, so results match it)
BLOCK_VALUES = 1 << 16  # values (or stored entries) of X per row block: 512 KiB in float64


def _blocks64(Xt, d):
    """``(start, stop, block)``: consecutive row blocks of a chunk as float64 matrices
    (dense: a view of a float64 chunk, a converted copy of a float32 block; CSR: a
    matrix over views of the chunk's index arrays), at most one block copied at a time."""
    if len(Xt) == 3:
        data, indices, indptr = Xt
        n = indptr.shape[0] - 1
        width = max(1.0, indptr[-1] / max(1, n))
    else:
        n, width = Xt[0].shape[0], max(1, d)
    rows = int(max(64, BLOCK_VALUES // width))
    for start in range(0, n, rows):
        stop = min(start + rows, n)
        if len(Xt) == 3:
            lo, hi = indptr[start], indptr[stop]
            block = sp.csr_matrix((data[lo:hi].astype(np.float64, copy=False), indices[lo:hi],
                                   indptr[start:stop + 1] - lo), shape=(stop - start, d))
        else:
            block = np.asarray(Xt[0][start:stop], dtype=np.float64)
        yield start, stop, block


def _times_t(block, W):
    """``X_b W^T`` (rows x K) as a dense float64 array."""
    return np.asarray(block @ W.T, dtype=np.float64)


def _t_times(R, block):
    """``R_b^T X_b`` (K x d) as a dense float64 array."""
    return np.asarray(block.T @ R, dtype=np.float64).T


def _multi_flat(G, a, c):
    return np.concatenate([G.ravel(), [a], c])


def _loss(name):
    from ..objective import LOSSES

    return LOSSES[name]


def multi_loss_grad(chunks, W, b, loss, keep=False):
    """``[(S loss')^T X, sum s loss, sum_i s_i loss'_i]`` summed over the chunks, at
    margins ``X W^T + b`` (one visit of each row block: margins, loss, ``R^T X``).
    ``keep``: also return the Hessian's row terms per chunk (the multinomial's
    probabilities; ``None`` for the squared loss, whose weights are ``s``), which stay
    on the worker (read by :func:`multi_hess` and :func:`multi_hess_diagonal`)."""
    from ..objective import row_totals

    fn, W, b = _loss(loss), _vec(W), _vec(b)
    K, d = W.shape
    G, a, c, curvatures = np.zeros((K, d)), 0.0, np.zeros(K), []
    for Xt, y, s in chunks:
        p = np.empty((y.shape[0], K)) if keep and loss == "multinomial" else None
        for start, stop, block in _blocks64(Xt, d):
            Z = _times_t(block, W) + b
            yk, sk = y[start:stop], s[start:stop]
            a += float(np.dot(sk, row_totals(fn.value(yk, Z))))
            first, second = fn.derivative_curvature(yk, Z)
            R = sk[:, None] * first
            G += _t_times(R, block)
            c += R.sum(axis=0)
            if p is not None:
                p[start:stop] = second
        curvatures.append(p)
    flat = _multi_flat(G, a, c)
    return (flat, curvatures) if keep else flat


def _row_terms(loss, p, s, T):
    """The data Hessian's row terms applied to ``T`` (rows x K): ``s (diag(p) - p p^T) t``
    for the multinomial, ``s t`` for the squared loss (as ``Backend._hessian_product``)."""
    if loss == "multinomial":
        return _loss(loss).hessian_product(p, s, T)
    T *= s[:, None]
    return T


def multi_hess(chunks, state, V, vb, loss):
    """``[H_ww V + h_wb vb (K x d), 0, h_bw V + h_bb vb (K)]`` with the row terms of a
    :func:`multi_loss_grad` ``keep`` result ``state`` (``None``: the weights ``s``, the
    squared loss's Hessian): one visit of each row block."""
    V, vb = _vec(V), _vec(vb)
    K, d = V.shape
    curvatures = [None] * len(chunks) if state is None else state[1]
    G, c = np.zeros((K, d)), np.zeros(K)
    for (Xt, _, s), p in zip(chunks, curvatures):
        for start, stop, block in _blocks64(Xt, d):
            T = _times_t(block, V) + vb
            T = _row_terms(loss, None if p is None else p[start:stop], s[start:stop], T)
            G += _t_times(T, block)
            c += T.sum(axis=0)
    return _multi_flat(G, 0.0, c)


def multi_hess_diagonal(chunks, state, loss, K, d):
    """``[sum_i D_ik x_ij^2 (K x d), 0, sum_i D_ik (K)]``: the diagonal of the data term's
    Hessian, ``D = s p (1 - p)`` (multinomial) or ``s`` in every column (squared)."""
    G, c = np.zeros((K, d)), np.zeros(K)
    for (Xt, _, s), p in zip(chunks, state[1]):
        for start, stop, block in _blocks64(Xt, d):
            sk = s[start:stop, None]
            D = sk * p[start:stop] * (1.0 - p[start:stop]) if loss == "multinomial" else np.repeat(sk, K, axis=1)
            square = block.multiply(block) if sp.issparse(block) else np.square(block)
            G += _t_times(D, square)
            c += D.sum(axis=0)
    return _multi_flat(G, 0.0, c)


def multi_matvec(chunks, W):
    """``[X W^T]`` per chunk (rows x K, float64)."""
    W = _vec(W)
    d = W.shape[1]
    return [np.concatenate([_times_t(block, W) for _, _, block in _blocks64(Xt, d)]
                           or [np.empty((0, W.shape[0]))]) for Xt, _, _ in chunks]


def multi_rmatvec(chunks, pieces, d):
    """``[R^T X (K x d), 0, sum_i r_i (K)]`` summed over the chunks, ``pieces[k]`` the
    rows x K block of ``R`` of chunk k."""
    K = pieces[0].shape[1] if pieces else 0
    G, c = np.zeros((K, d)), np.zeros(K)
    for (Xt, _, _), R in zip(chunks, pieces):
        R = _vec(R)
        for start, stop, block in _blocks64(Xt, d):
            G += _t_times(R[start:stop], block)
        c += R.sum(axis=0)
    return _multi_flat(G, 0.0, c)


def combine(*parts):
    """A node of the tree reduction: the sum of partial results, in a fixed order."""
    out = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        out += p
    return out


# ---- lazy predictions (map_blocks on the user's chunks) ----
def margins(X, coef, b):
    """``X coef + b`` for one block (``coef`` K x d: the rows x K margins ``X W^T + b``),
    computed as the in-memory estimator does (product in X's dtype, then float64)."""
    if sp.issparse(X):
        X = _checked_csr(X)
    coef = np.asarray(coef, dtype=X.dtype)
    if coef.ndim == 2:
        return np.asarray(X @ coef.T, dtype=np.float64) + b
    z = X @ coef
    return np.asarray(z, dtype=np.float64).ravel() + b


def labels(z, classes):
    """Predicted labels from one block of margins (rows x K: the largest margin's class)."""
    return classes[np.argmax(z, axis=1) if z.ndim == 2 else (z > 0).astype(int)]


def probabilities(z, log):
    """``[P(classes_[0]), P(classes_[1])]`` (or their logs) from one block of margins,
    as the in-memory estimator computes them; rows x K margins: the softmax."""
    from scipy.special import expit, log_expit, log_softmax, softmax

    if z.ndim == 2:
        return log_softmax(z, axis=1) if log else softmax(z, axis=1)
    if log:
        return np.column_stack([log_expit(-z), log_expit(z)])
    p = expit(z)
    return np.column_stack([1.0 - p, p])
