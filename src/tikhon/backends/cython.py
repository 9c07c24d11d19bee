"""Thin wrapper over the compiled extension ``tikhon._cd``: dual coordinate descent on CSR.

Reads CSR ``X`` in place (float32 or float64 data, int32 or int64 indices, sorted or
not), as the validation gate :func:`tikhon._validation.check_X` hands it over: structure
checked (indices in range, ``indptr`` monotone) and arrays contiguous. Rows that repeat
a column index are handled (their values are summed, as scipy does).
The products ``X w`` and ``X^T r`` used for the certificate accumulate in float64
whatever X's dtype. The whole ``dual_cd`` loop runs in the extension with the GIL
released; the driver is :mod:`tikhon.solvers.dual_cd`.

Several outputs (``K > 1``: a multinomial model, a multi-target ridge): ``X W^T`` and
``R^T X`` are one compiled pass over X for all K columns (each stored entry read once,
meeting K contiguous coefficients of a ``(d, K)`` block), and the multinomial's gradient
and Hessian products are fused passes (margins, softmax and ``X^T R`` in one visit of
each row), so a gradient reads X once instead of ``2 K`` times. With one output, a
Hessian product is one pass too (a row's dot product and its scatter in one visit:
0.83-0.99x the time of the two passes on a9a, reuters and text-like CSR).

Threads. The products (``X w``, ``X^T r``, the Hessian products, the Hessian diagonal,
the Gram, their K-column and multinomial forms) cut the rows into ``chunks`` contiguous
ranges of about equal stored entries, chosen from the data alone (:func:`chunk_count`),
each summed into its own buffer and reduced in chunk order: so a fit gives the same bits
on 1 thread or on 2, quiet or loaded. A pass runs its chunks on up to as many threads
as the fit's budget (:func:`tikhon._config.thread_budget`), granted from the cores that
neither other processes (:func:`tikhon._config.cores_free`) nor other tikhon passes are
using (the count shared with the Numba backend, :func:`tikhon.backends.numba.threads_in_use`):
the calling thread runs the first group of chunks and a small persistent pool of
Python threads the others (the kernels release the GIL); a group that no pool thread
has started when the calling thread is done with its own is run by the calling thread. A pass below
``2 * MIN_PARALLEL_WORK`` is one chunk on one thread. The dual CD epochs run on one
thread.
"""
from __future__ import annotations

import os
from concurrent.futures import wait

import numpy as np

from .._config import thread_budget, thread_pool
from .numba import _claim  # tikhon's count of the threads its passes use, over both backends
from .numpy import NumpyBackend

_FIX = ("the compiled extension tikhon._cd is missing; reinstall tikhon with "
        "`pip install .` (or `pip install -e .`), which needs a C compiler, Cython>=3 and numpy")


def _extension():
    from tikhon import _cd

    return _cd


# Chunks (see the module docstring). A pass of ``4 nnz + n`` units of work gets one chunk
# per MIN_PARALLEL_WORK units, at most one per CPU of the machine, and chunks of at least
# CHUNK_FEATURE_WORK d units: each chunk's buffer of d sums is zeroed and reduced, and is
# extra memory during the pass, here at most ~2% of the chunk's share of X (32 d stored
# entries of 12 bytes at least; issue 18's peak-memory goal; reuters, d = 8315 and 41 d
# stored entries, stays one chunk). Handing a group of
# chunks to a pool thread and waiting for it costs 0.03-0.05 ms (2 cores, measured with
# one other process busy beside), about 100k stored entries of a pass: so a pass takes
# 2 chunks from about 130k stored entries (a9a's 450k: 0.17 ms -> 0.12-0.14 ms quiet).
MIN_PARALLEL_WORK = 1 << 18
CHUNK_FEATURE_WORK = 128
CSR_ENTRY_WORK = 4
# K-column passes and the Gram keep a d x K (d x d) buffer per chunk: at most this much in all.
MULTI_BUFFER_BYTES = 1 << 27


def chunk_count(n, d, nnz, cpus=None):
    """Row chunks per pass for an ``n x d`` CSR with ``nnz`` stored entries (from the data
    and the machine's CPU count only, never from the threads a pass gets)."""
    cpus = os.cpu_count() or 1 if cpus is None else cpus
    work = CSR_ENTRY_WORK * nnz + n
    per_chunk = max(MIN_PARALLEL_WORK, CHUNK_FEATURE_WORK * d)
    return int(max(1, min(cpus, n, work // per_chunk)))


def row_bounds(indptr, chunks):
    """``chunks + 1`` row offsets cutting the rows into ranges of about equal stored
    entries (int64)."""
    n = len(indptr) - 1
    nnz = int(indptr[-1]) if n >= 0 else 0
    targets = (np.arange(1, chunks) * (nnz / chunks)).astype(np.int64)
    inner = np.searchsorted(np.asarray(indptr), targets, side="left")
    return np.concatenate(([0], np.clip(inner, 0, n), [n])).astype(np.int64)


def _executor():
    """The threads for the chunks beyond the calling thread's (:func:`tikhon._config.thread_pool`)."""
    return thread_pool("tikhon-cd")


def _groups(chunks, threads):
    """``threads + 1`` chunk offsets: contiguous groups of chunks, one per thread."""
    return [g * chunks // threads for g in range(threads + 1)]


def _sum_chunks(parts):
    """The chunks' partial results (axis 0 of ``parts``, which owns its memory) summed in
    chunk order into the first, the others' memory then given back: a pass's peak extra
    memory is one buffer per chunk, and its result keeps one."""
    for c in range(1, len(parts)):
        parts[0] += parts[c]
    if len(parts) > 1:
        # no view of ``parts`` lives on (the kernels' slices are released when they return)
        parts.resize((1,) + parts.shape[1:], refcheck=False)
    return parts[0]


class CythonBackend(NumpyBackend):
    """CSR kernels of ``tikhon._cd``; runs the ``dual_cd`` solver loop."""

    name = "cython"
    formats = frozenset({"csr"})
    loops = frozenset({"dual_cd"})
    multi_output = True  # several outputs: the compiled K-column products and fused multinomial passes

    @classmethod
    def availability(cls):
        try:
            _extension()
        except ImportError as exc:
            return f"{_FIX} ({exc})"
        return None

    def __init__(self, X, y, sample_weight, loss, n_outputs=1):
        from .._validation import readable_csr

        # X comes from the validation gate (tikhon._validation.check_X), which checked its
        # structure and made its arrays readable in place; readable_csr is then O(1). On X
        # that skipped the gate it converts strided arrays or mixed index types (a copy),
        # so that "auto" never picks this backend for a layout it then refuses.
        X = readable_csr(X)
        super().__init__(X, y, sample_weight, loss, n_outputs)
        self._cd = _extension()
        self._parts = (X.data, X.indices, X.indptr)
        # rows repeating a column index (for X that skipped the gate: it sums them);
        # canonical CSR (scipy's flag, read after the gate's structure check) has none,
        # so the O(nnz) count is skipped
        self.duplicate_rows = 0 if X.has_canonical_format else int(
            self._cd.check_csr(*self._parts, self.n_features))
        self._chunks = chunk_count(self.n_samples, self.n_features, X.nnz)
        self._bounds = {}

    # ---- chunks and threads ----
    def _chunks_for(self, block=1):
        """Chunks of a pass whose per-chunk buffer holds ``d * block`` doubles: those of a
        one-column pass, fewer if the buffers would pass MULTI_BUFFER_BYTES in all."""
        per_chunk = 8 * self.n_features * block
        return int(max(1, min(self._chunks, MULTI_BUFFER_BYTES // max(1, per_chunk))))

    def _bounds_of(self, chunks):
        """The row offsets of ``chunks`` chunks (computed once per count)."""
        bounds = self._bounds.get(chunks)
        if bounds is None:
            bounds = self._bounds[chunks] = row_bounds(self._parts[2], chunks)
        return bounds

    def _spread(self, call, chunks):
        """Run ``call(c0, c1)`` over groups of the ``chunks`` chunks covering them all: on
        the threads granted (the calling thread runs the first group), waiting for all."""
        wanted = 1 if chunks == 1 else min(chunks, thread_budget())
        with _claim(wanted) as threads:
            if threads == 1:
                call(0, chunks)
                return
            edges = _groups(chunks, threads)
            pool = _executor()
            futures = [pool.submit(call, edges[g], edges[g + 1]) for g in range(1, threads)]
            try:
                call(edges[0], edges[1])
                # a group no pool thread has started yet (its core taken by other work) is
                # run here: the same chunks, so the same bits, and no wait for a core
                for g, future in enumerate(futures, start=1):
                    if future.cancel():
                        call(edges[g], edges[g + 1])
            finally:
                wait(futures)
            for future in futures:
                if not future.cancelled():
                    future.result()

    def _rows_pass(self, kernel, *args, chunks=None):
        """A row-wise kernel (``out`` rows written by row ranges) over every chunk."""
        chunks = self._chunks if chunks is None else chunks
        bounds = self._bounds_of(chunks)
        self._spread(lambda c0, c1: kernel(*self._parts, *args, int(bounds[c0]), int(bounds[c1])), chunks)

    def _chunked(self, kernel, args, outs, chunks, **kw):
        """A reducing kernel: ``outs`` are arrays with one leading entry per chunk, each
        thread's group of chunks given its slices; returns them summed in chunk order."""
        bounds = self._bounds_of(chunks)

        def call(c0, c1):
            kernel(*self._parts, *args, *(o[c0:c1] for o in outs), bounds=bounds[c0:c1 + 1], **kw)

        self._spread(call, chunks)
        return [_sum_chunks(o) for o in outs]

    # ---- products in float64 (the certificate needs them exact for float32 data) ----
    def matvec(self, w):
        """``X w``, or ``X W^T`` (n x K) for a K x d ``W``: one pass for all K columns."""
        if np.ndim(w) == 2:
            out = np.empty((self.n_samples, w.shape[0]))
            self._rows_pass(self._cd.csr_matmat, self._columns(w), out)
            return out
        out = np.empty(self.n_samples)
        self._rows_pass(self._cd.csr_matvec, np.ascontiguousarray(w, dtype=np.float64), out)
        return out

    def rmatvec(self, r):
        """``X^T r``, or ``R^T X`` (K x d) for an n x K ``R``: one pass for all K columns."""
        if np.ndim(r) == 2:
            return self._rows(self._rmatmat(r))
        return self._rmatvec(np.ascontiguousarray(r, dtype=np.float64))

    def _rmatvec(self, r, squares=False):
        """``X^T r`` (or ``(X * X)^T r``) for float64 ``r``, by chunks."""
        parts = np.empty((self._chunks, self.n_features))
        return self._chunked(self._cd.csr_rmatvec, (r,), (parts,), self._chunks, squares=squares)[0]

    @staticmethod
    def _columns(w):
        """``W^T`` as the ``(d, K)`` C-order float64 block the K-column kernels gather
        from (one copy of W a call: a row's entry then reads K contiguous doubles)."""
        return np.ascontiguousarray(np.asarray(w, dtype=np.float64).T)

    @staticmethod
    def _rows(block):
        """A ``(d, K)`` accumulator of the kernels as the ``(K, d)`` C-order result."""
        return np.ascontiguousarray(block.T)

    def _rmatmat(self, r, squares=False):
        """``X^T R`` (or ``(X * X)^T R``) as the ``(d, K)`` block the extension scatters into."""
        K = r.shape[1]
        chunks = self._chunks_for(K)
        parts = np.empty((chunks, self.n_features * K))
        total = self._chunked(self._cd.csr_rmatmat, (np.ascontiguousarray(r, dtype=np.float64),), (parts,),
                              chunks, n_features=self.n_features, squares=squares)[0]
        return total.reshape(self.n_features, K)

    def loss_grad_hessian(self, w, b):
        """As the base class, with each Hessian product one pass over X
        (``_cd.csr_hessian_product``: a row's dot product and its scatter in one visit;
        two passes in the base class); the multinomial's is fused too (below). The
        curvature weights are kept for a :meth:`hessian_diagonal` at the same point
        (Newton-CG's preconditioner), which then needs no pass for the margins."""
        if self.n_outputs > 1:
            return self._multinomial_hessian(w, b) if self._fused() else super().loss_grad_hessian(w, b)
        r = self.matvec(w)
        c = np.empty_like(r)
        value = self._pointwise(r, b, c)
        self._curvature_at = (np.array(w, dtype=np.float64), float(b), c)

        def product(v, vb=0.0):
            parts, totals = np.empty((self._chunks, self.n_features)), np.empty(self._chunks)
            out, total = self._chunked(self._cd.csr_hessian_product,
                                       (c, np.ascontiguousarray(v, dtype=np.float64), float(vb)),
                                       (parts, totals), self._chunks)
            return out, float(total)

        return value, self.rmatvec(r), self._row_sums(r), product

    def _curvature_weights(self, w, b):
        """The weights kept by :meth:`loss_grad_hessian` at the same ``(w, b)``, else the
        base class's pass."""
        kept = getattr(self, "_curvature_at", None)
        if kept is not None and np.ndim(b) == 0 and kept[1] == b and np.array_equal(kept[0], w):
            return kept[2].copy()
        return super()._curvature_weights(w, b)

    def hessian_diagonal(self, w, b):
        """As the base class, with the squares accumulated by the extension (no squared
        copy of X's blocks; K outputs in one pass); rows repeating a column index take
        the base class's way."""
        if self.duplicate_rows:
            return super().hessian_diagonal(w, b)
        d = self._curvature_weights(w, b)
        if d.ndim == 2:
            return self._rows(self._rmatmat(d, squares=True)), d.sum(axis=0)
        return self._rmatvec(d, squares=True), float(d.sum())

    # ---- fused multinomial passes (K >= 3 classes) ----
    def _fused(self):
        return self.n_outputs > 1 and self.loss.name == "multinomial"

    def _multinomial_pass(self, w, b, proba=None):
        """``(value, X^T R as (K, d), sum_i r_i)``: one pass, ``proba`` filled if given."""
        K, d = self.n_outputs, self.n_features
        chunks = self._chunks_for(K)
        outs = (np.empty((chunks, d * K)), np.empty((chunks, K)), np.empty(chunks))
        y, s = (np.ascontiguousarray(a, dtype=np.float64) for a in (self.y, self.s))  # no copy from the estimators
        grad, grad_b, value = self._chunked(self._cd.multinomial_loss_grad, (self._columns(w), self._vector(b), y, s),
                                            outs, chunks, proba=proba)
        return float(value), self._rows(grad.reshape(d, K)), grad_b

    def _vector(self, b):
        """``b`` as K contiguous float64 (a scalar, e.g. ``vb = 0``, broadcast)."""
        return np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float64), (self.n_outputs,)))

    def loss_grad(self, w, b):
        """As the base class; the multinomial's is one fused pass over X."""
        if not self._fused():
            return super().loss_grad(w, b)
        return self._multinomial_pass(w, b)

    def _multinomial_hessian(self, w, b):
        """The multinomial's gradient is one fused pass that keeps the probabilities
        (n x K), and each Hessian product one fused pass."""
        proba = np.empty((self.n_samples, self.n_outputs))
        value, grad, grad_b = self._multinomial_pass(w, b, proba)
        s = np.ascontiguousarray(self.s, dtype=np.float64)

        K, d = self.n_outputs, self.n_features
        chunks = self._chunks_for(K)

        def product(v, vb=0.0):
            outs = (np.empty((chunks, d * K)), np.empty((chunks, K)))
            out, out_b = self._chunked(self._cd.multinomial_hessian_product,
                                       (self._columns(v), self._vector(vb), proba, s), outs, chunks)
            return self._rows(out.reshape(d, K)), out_b

        return value, grad, grad_b, product

    def gram_cost(self):
        """A compiled CSR Gram costs about a third of a pass per nonzero of a row (a9a:
        1.5 ms against 0.3 ms for a pass)."""
        return 0.33 * self.X.nnz / max(1, self.n_samples)

    def gram(self, c):
        """As the base class, with the CSR Gram ``X^T diag(c) X`` accumulated by the
        extension (``sum_i nnz_i (nnz_i + 1) / 2`` products, no temporary)."""
        d = self.n_features
        G = np.zeros((d + 1, d + 1))
        chunks = self._chunks_for(d)
        parts = np.empty((chunks, d * d))
        upper = self._chunked(self._cd.csr_gram_upper, (np.ascontiguousarray(c, dtype=np.float64),), (parts,),
                              chunks, n_features=d)[0].reshape(d, d)
        G[:d, :d] = upper + np.triu(upper, 1).T
        G[:d, d] = G[d, :d] = self.rmatvec(c)
        G[d, d] = float(np.sum(c))
        return G

    def row_norms_sq(self, chunk=8192):
        out = np.empty(self.n_samples)
        if self.duplicate_rows:
            self._cd.csr_row_norms_sq_merged(*self._parts, self.n_features, out)
        else:
            self._cd.csr_row_norms_sq(self._parts[0], self._parts[2], out)
        return out

    # ---- the dual CD loop ----
    def dual_state(self, dual, w, C, seed=0):
        """A ``DualState`` over the estimator's ``y`` and ``s`` with the caller's
        dual variables ``dual`` (n,) and ``w`` (d,), both float64, updated in place."""
        sqnorm = self.row_norms_sq() if self.duplicate_rows else None
        return self._cd.DualState(self.y, self.s, dual, w, float(C), int(seed), sqnorm,
                                  labels=self.loss.name == "logistic")

    def dual_epochs(self, state, n_epochs):
        """Run ``n_epochs`` passes of dual CD for this backend's loss; returns the largest
        dual gradient magnitude of the last pass."""
        run = self._cd.logistic_epochs if self.loss.name == "logistic" else self._cd.ridge_epochs
        return run(*self._parts, state, int(n_epochs))
