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


def combine(*parts):
    """A node of the tree reduction: the sum of partial results, in a fixed order."""
    out = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        out += p
    return out


# ---- lazy predictions (map_blocks on the user's chunks) ----
def margins(X, coef, b):
    """``X coef + b`` for one block, computed as the in-memory estimator does
    (product in X's dtype, then float64)."""
    if sp.issparse(X):
        X = _checked_csr(X)
    z = X @ np.asarray(coef, dtype=X.dtype)
    return np.asarray(z, dtype=np.float64).ravel() + b


def labels(z, classes):
    """Predicted labels from one block of margins."""
    return classes[(z > 0).astype(int)]


def probabilities(z, log):
    """``[P(classes_[0]), P(classes_[1])]`` (or their logs) from one block of margins,
    as the in-memory estimator computes them."""
    from scipy.special import expit, log_expit

    if log:
        return np.column_stack([log_expit(-z), log_expit(z)])
    p = expit(z)
    return np.column_stack([1.0 - p, p])
