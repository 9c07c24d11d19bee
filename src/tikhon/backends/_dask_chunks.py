"""What the ``dask`` backend runs on the workers: one task per chunk, each calling the
Numba backend's fused kernel (:func:`tikhon.backends._numba_kernels.one_pass`) on the
chunk where it lives, and the small combine step of the tree reduction.

A *chunk* is the tuple ``(Xt, y, s)`` built once by :func:`pack`: ``Xt`` is the
kernels' data tuple (``(X,)`` dense or ``(data, indices, indptr)`` CSR), ``y`` and
``s`` the chunk's float64 targets and weights. Every per-chunk task returns one
float64 vector ``[g (d entries), a, c]`` (see ``one_pass``), so that combining partial
results is one sum.

Arrays that arrive on a worker through Dask's serialization may be read-only; Numba
types those differently (a new compilation of every kernel, in every worker process),
so they are copied to writable arrays: chunks once, in :func:`pack`; coefficient
vectors (``d`` entries) at every call.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp

_LOCK = threading.Lock()
_CONCURRENT_OK = None  # whether the Numba threading layer allows concurrent launches


def _writable(a, dtype=None):
    a = np.asarray(a, dtype=dtype)
    if a.flags.writeable and (a.flags.c_contiguous or a.flags.f_contiguous):
        return a
    return np.array(a, order="C", copy=True)


def pack(X, ys):
    """The chunk tuple ``(Xt, y, s)`` for one row block ``X`` and its ``(y, s)``."""
    y, s = ys
    if sp.issparse(X):
        if X.format != "csr":
            X = X.tocsr()  # documented: a chunk in another sparse format is converted once
        Xt = (_writable(X.data), _writable(X.indices), _writable(X.indptr))
    else:
        Xt = (_writable(X),)
    values = Xt[0][:Xt[2][-1]] if len(Xt) == 3 else Xt[0]
    if not np.isfinite(values).all():  # the estimators' finiteness check, done where the chunk lives
        raise ValueError("Input X contains NaN or infinity")
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
    """``one_pass`` on a chunk. Numba's ``workqueue`` threading layer aborts the process
    when two threads launch parallel kernels at once (possible in a worker with several
    threads), so calls are serialized until the layer in use is known to be safe."""
    global _CONCURRENT_OK
    from . import _numba_kernels as k

    Xt, y, s = chunk
    with _numba_threads(T) as T:
        if _CONCURRENT_OK:
            return k.one_pass(op, Xt, y, s, w, float(b), code, rowvec, out, T)
        with _LOCK:
            result = k.one_pass(op, Xt, y, s, w, float(b), code, rowvec, out, T)
            import numba

            _CONCURRENT_OK = numba.threading_layer() != "workqueue"
        return result


def _vec(v):
    return np.array(v, dtype=np.float64, copy=True)  # writable (see the module docstring)


def _flat(g, a, c):
    out = np.empty(g.shape[0] + 2)
    out[:-2] = g
    out[-2] = a
    out[-1] = c
    return out


_EMPTY = np.empty(0)


def loss_grad(chunk, w, b, code, T):
    """``[X^T (s loss'), sum s loss, sum s loss']`` on one chunk."""
    from . import _numba_kernels as k

    g, a, c = _one_pass(k.OP_LOSS_GRAD, chunk, _vec(w), b, code, _EMPTY, _EMPTY, T)
    return _flat(g, a, c)


def loss_grad_curvature(chunk, w, b, code, T):
    """``loss_grad`` plus the chunk's Hessian weights ``s_i loss''_i`` (kept on the worker)."""
    from . import _numba_kernels as k

    dvec = np.empty(chunk[1].shape[0])
    g, a, c = _one_pass(k.OP_LOSS_GRAD, chunk, _vec(w), b, code, _EMPTY, dvec, T)
    return _flat(g, a, c), dvec


def hess(chunk, dvec, v, vb, T):
    """``[X^T (dvec * (X v + vb)), 0, sum dvec * (X v + vb)]`` on one chunk."""
    from . import _numba_kernels as k

    g, a, c = _one_pass(k.OP_HESS, chunk, _vec(v), vb, 0, dvec, _EMPTY, T)
    return _flat(g, a, c)


def weighted_hess(chunk, v, vb, T):
    """``hess`` with the sample weights as the row weights (``X^T S (X v + vb)``)."""
    return hess(chunk, chunk[2], v, vb, T)


def curvature(chunk, w, b, code, T):
    """The chunk's Hessian weights ``s_i loss''_i`` at ``(w, b)``."""
    return loss_grad_curvature(chunk, w, b, code, T)[1]


def hess_diagonal(chunk, dvec, d, block=4096):
    """``[sum_i dvec_i x_ij^2 (d entries), 0, sum_i dvec_i]``: the diagonal of the data
    term's Hessian on one chunk (squares one row block at a time, never the whole chunk)."""
    Xt = chunk[0]
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
    return _flat(g, 0.0, float(dvec.sum()))


def matvec(chunk, w, T):
    """``X w`` on one chunk (float64)."""
    from . import _numba_kernels as k

    out = np.empty(chunk[1].shape[0])
    _one_pass(k.OP_MATVEC, chunk, _vec(w), 0.0, 0, _EMPTY, out, T)
    return out


def rmatvec(chunk, r, d, T):
    """``[X^T r, 0, sum r]`` on one chunk."""
    from . import _numba_kernels as k

    g, _, _ = _one_pass(k.OP_RMATVEC, chunk, np.zeros(d), 0.0, 0, _vec(r), _EMPTY, T)
    return _flat(g, 0.0, float(np.sum(r)))


def row_norms(chunk, d, T):
    from . import _numba_kernels as k

    out = np.empty(chunk[1].shape[0])
    _one_pass(k.OP_ROW_NORMS, chunk, np.zeros(d), 0.0, 0, _EMPTY, out, T)
    return out


def weight_sum(ys):
    """``[sum s]`` of one chunk's ``(y, s)`` pair."""
    return np.array([ys[1].sum()])


def combine(*parts):
    """One node of the tree reduction: the sum of partial results, in a fixed order."""
    out = np.array(parts[0], dtype=np.float64, copy=True)
    for p in parts[1:]:
        out += p
    return out


# ---- lazy predictions (map_blocks on the user's chunks) ----
def margins(X, coef, b):
    """``X coef + b`` for one block, computed as the in-memory estimator does
    (product in X's dtype, then float64)."""
    z = X @ np.asarray(coef, dtype=X.dtype)
    return np.asarray(z, dtype=np.float64).ravel() + b


def labels(z, classes):
    """Predicted labels from one block of margins."""
    return classes[(z > 0).astype(int)]
