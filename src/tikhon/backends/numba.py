"""The Numba backend: fused one-pass kernels, dense and CSR, float32/float64, threaded.

* Inputs used in place: dense C- or F-order arrays (memory-mapped or not) and CSR
  matrices with int32 or int64 indices, in float32 or float64. X is never copied or
  cast; a dense array that is neither C- nor F-contiguous (a strided view) is copied
  once to C order when the backend is built.
* One pass over X per call: ``loss_grad`` works on blocks of rows that stay in cache
  (the block's margins, then its losses and derivatives, the logistic exponentials and
  logarithms computed by vectorized polynomials to full double accuracy, then its
  gradient contributions); ``loss_grad_hessian`` also stores the curvature weights, and
  each Hessian-vector product is one pass (``t = x_i . v + vb``; accumulate
  ``d_i t x_i``) without forming ``diag(d) X``.
* Precision: X is read in its dtype; coefficients and all sums are float64 (so
  float32 data gets float64 accumulation of the margins and the gradient).
* Threads: row chunks run in parallel (``prange``), one private gradient buffer per
  chunk, reduced in a fixed order. The chunks are chosen from the data alone (see
  "Chunks and threads" below), so results do not depend on the thread count. Each
  pass takes its threads (applied with ``numba.set_num_threads``, which is per Python
  thread, and restored after the call) as the least of: its chunks; the fit's budget
  (:func:`tikhon._config.thread_budget`: ``config_context(n_threads=...)`` if set, else
  its share of the cores among the fits running at once); Numba's count for the
  calling thread (``NUMBA_NUM_THREADS`` unless set otherwise); and the cores neither
  other processes (:func:`tikhon._config.cores_free`) nor other tikhon passes are using.
* Waiting: Numba's threading layer is started when this backend is first used
  (:func:`tikhon.backends._numba_kernels.start_threads`), with passive waits for its
  OpenMP threads unless the user chose a policy (see "Waiting" there).
* Fits from several Python threads at once (user threads, ``LogisticRegressionCV(
  n_jobs)``) are safe on every Numba threading layer and give the results of the same
  fits run one after the other. Under ``workqueue`` (Numba's fallback when neither
  OpenMP nor TBB is present), which cannot run two parallel regions at once, the
  passes of concurrent fits take turns (a process-wide lock,
  :func:`tikhon.backends._numba_kernels.parallel_launch`); under ``omp`` and ``tbb``
  they run together.
* BLAS: left as it is (no process-wide setting is changed during a fit). The solvers'
  long dot products run in single-threaded chunks (:func:`tikhon.objective.dot`): a
  threaded OpenBLAS call wakes threads that then spin and take the cores from Numba's
  (Newton-CG on the 200k x 100k text CSR: 0.32 s chunked, 0.90 s threaded). Limiting
  BLAS to one thread during a solve instead is not safe: the limit is process-wide,
  overlapping solves in several threads restored it in the wrong order, and OpenBLAS
  0.3.31 ignores ``openblas_set_num_threads`` from any thread but the main one once the
  main thread has called it, so a limit entered or left in a worker thread may never
  apply or never be undone. For the same reason ``lbfgs`` is tikhon's own
  (:mod:`tikhon.solvers.lbfgs`): scipy's L-BFGS-B woke BLAS threads at every iteration
  (2e5 x 100 dense: 172 ms a fit against 108 ms with one BLAS thread).
* Whole loops: ``gd_loop`` and ``sgd_loop`` run the seeds' gradient descent and
  mini-batch SGD with weight decay entirely inside Numba (see
  :mod:`tikhon.solvers.gd`, :mod:`tikhon.solvers.sgd`).

Compilation and cache: kernels compile lazily, on the first call for each input
layout/dtype (several seconds each, announced at INFO on the ``tikhon`` logger with
the cache's folder), and are cached on disk, so another process
loads them instead of compiling. Numba writes the cache to ``__pycache__`` beside
``_numba_kernels.py`` when that directory is writable; otherwise (e.g. a read-only
site-packages) it falls back to a per-user directory (``~/.cache/numba``, by Numba's
rules), and ``NUMBA_CACHE_DIR=/some/writable/dir`` chooses the place explicitly.
When no directory is writable, or a cache file cannot be read (truncated, damaged),
the kernels concerned are compiled in memory and the fit goes on, with one
:class:`NumbaCacheWarning` per process; a damaged file is replaced when the directory
is writable.
Numba itself is imported only when this backend is used (``import tikhon`` stays light).
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

import numpy as np

from .._config import cores_free, resolve_threads, sharing_cores, thread_budget
from ._base import Backend, input_format

__all__ = ["NumbaBackend", "NumbaCacheWarning"]


class NumbaCacheWarning(UserWarning):
    """Numba's on-disk kernel cache could not be used; kernels were compiled in memory."""


# Chunks and threads. A pass splits the rows into ``chunks`` contiguous ranges, each
# summed into its own buffer and reduced in a fixed order (see _numba_kernels), and runs
# them on ``threads <= chunks`` threads. ``chunks`` depends only on the data and the
# machine (:meth:`NumbaBackend._chunk_count`), never on the threads a call gets, so a
# fit's result is the same bits on 1 thread or on 8, loaded or quiet, inside joblib or
# dask workers or beside other fits: the thread count can follow the budget per call.
# A pass gets one chunk per MIN_PARALLEL_WORK units of work (a dense entry is one unit,
# a stored CSR entry CSR_ENTRY_WORK units), at most one per CPU of the machine, and
# chunks of at least 8 d units (each chunk's buffer of d sums is zeroed and reduced).
# Below 2 * MIN_PARALLEL_WORK a pass is one chunk on one thread: the launch of a
# parallel region (waking the pool's threads) costs more than it saves.
MIN_PARALLEL_WORK = 1 << 16
CSR_ENTRY_WORK = 4
# K-column passes keep a d x K gradient buffer per chunk: at most this much in all.
MULTI_BUFFER_BYTES = 1 << 27

_use = threading.Condition()
_in_use = 0  # Numba threads running tikhon passes now, over all Python threads
_extra = 0  # of which beyond the first of each pass (the threads tikhon adds)
_peak = 0


def threads_in_use(reset=False):
    """``(now, peak)``: the Numba threads running tikhon's passes at this moment, summed
    over every Python thread of the process, and the most seen at once since the last
    ``reset`` (a check that nested fits keep to their share of the cores)."""
    global _peak
    with _use:
        now, peak = _in_use, _peak
        if reset:
            _peak = _in_use
    return now, peak


def _take(wanted):
    """Take up to ``wanted`` of the cores free (:func:`tikhon._config.cores_free`: not
    kept busy by other processes) and not running other tikhon passes, at least one
    (the calling thread's own), counted in :func:`threads_in_use` until :func:`_give`.
    When every core is taken and some running pass has added threads of its own, wait
    for those to end (at most one pass): so the threads in use never exceed the cores
    or, when more Python threads than cores run passes at once, those threads. Returns
    the thread count granted."""
    global _in_use, _extra, _peak
    cores = cores_free() if wanted > 1 else 1
    with _use:
        while _in_use >= cores and _extra > 0:
            _use.wait()
        granted = max(1, min(wanted, cores - _in_use))
        _in_use += granted
        _extra += granted - 1
        _peak = max(_peak, _in_use)
    return granted


def _give(granted):
    """Return the threads of :func:`_take`."""
    global _in_use, _extra
    with _use:
        _in_use -= granted
        _extra -= granted - 1
        if granted > 1:
            _use.notify_all()


@contextmanager
def _claim(wanted):
    """:func:`_take` and :func:`_give` around a block; yields the count granted."""
    granted = _take(wanted)
    try:
        yield granted
    finally:
        _give(granted)


def _f64(v):
    return np.ascontiguousarray(v, dtype=np.float64)


def _writable(a):
    """``a`` as a C-contiguous float64 array that is writable (a read-only one would be
    another compiled specialization of the kernel): a copy only if needed."""
    a = _f64(a)
    return a if a.flags.writeable else a.copy()


class NumbaBackend(Backend):
    """Fused Numba kernels (see the module docstring).

    Several outputs (``n_outputs = K > 1``: a multinomial model, a ridge with K targets)
    run the K-column kernels of :mod:`tikhon.backends._numba_multi`, each one pass over X
    for all K columns, parallel over the same row chunks as the one-column passes (fewer
    when their ``d x K`` gradient buffers would pass ``MULTI_BUFFER_BYTES``): ``X W^T``,
    ``R^T X``; ``loss_grad`` fused by blocks of rows (margins, softmax or residuals, value
    and ``X^T R``, no ``n x K`` temporary); ``loss_grad_hessian`` keeps the ``n x K``
    probabilities of the multinomial, and each Hessian product is one fused pass; the
    Hessian diagonal's squares one pass. Dense rows meet 4 rows of ``W`` at a time
    (vectorized dot products, the partial sums in registers), F-order blocks are swept
    column by column, CSR entries meet K contiguous coefficients of ``W^T``. Other
    losses with several outputs take the base class's kernels on these products.
    """

    name = "numba"
    formats = frozenset({"dense", "csr"})
    loops = frozenset({"gd", "sgd"})
    # Several outputs (multinomial, multi-target ridge): the K-column kernels of
    # _numba_multi, one pass over X for all K columns (products, the fused multinomial
    # and squared-loss gradients, their Hessian products, the Hessian diagonal).
    multi_output = True

    @classmethod
    def availability(cls):
        try:
            import numba  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the environment
            return f"numba cannot be imported ({exc}); install it with `pip install numba`"
        return None

    def __init__(self, X, y, sample_weight, loss, n_outputs=1):
        super().__init__(X, y, sample_weight, loss, n_outputs)
        from . import _numba_kernels as kernels

        self._k = kernels
        if input_format(X) == "csr":
            self._Xt = (X.data, X.indices, X.indptr)
        else:
            A = np.asarray(X)  # a memmap becomes a plain view: no copy
            if not (A.flags.c_contiguous or A.flags.f_contiguous):
                A = np.ascontiguousarray(A)  # strided view: copied once (documented)
            self._Xt = (A,)
        # several outputs: only the products run in Numba (they ignore the loss's code)
        self._code = kernels.LOSS_CODES[loss.name] if n_outputs == 1 else kernels.SQUARED
        self._y = _f64(y) if n_outputs == 1 else np.zeros(self.n_samples)  # K outputs: the base class reads y
        self._s = _f64(sample_weight)
        self._empty = np.empty(0)
        self._zeros_d = np.zeros(self.n_features)
        self._chunks = self._chunk_count(X)
        self._csr = input_format(X) == "csr"
        self._init_multi(y, loss)

    def _init_multi(self, y, loss):
        """What the K-column kernels read: class indices (multinomial) or an ``n x K``
        target matrix (squared loss) of several outputs, as float64 (no copy from the
        estimators); nothing for one output (its K-column products need neither)."""
        from . import _numba_multi

        self._m = _numba_multi
        K = self.n_outputs
        several = K > 1 and loss.name in ("multinomial", "squared")
        self._multi_loss = loss.name if several else None
        self._y1 = _f64(y) if several and loss.name == "multinomial" else self._empty
        self._Y = _f64(y).reshape(self.n_samples, K) if several and loss.name == "squared" else np.empty((0, K))

    def _chunk_count(self, X):
        """Row chunks per pass (see "Chunks and threads" above)."""
        if input_format(X) == "csr":
            work = CSR_ENTRY_WORK * X.nnz + X.shape[0]
        else:
            work = X.shape[0] * X.shape[1]
        per_chunk = max(1, MIN_PARALLEL_WORK, 8 * self.n_features)
        return int(max(1, min(os.cpu_count() or 1, X.shape[0], work // per_chunk)))

    def _multi_chunk_count(self, K):
        """Row chunks of a K-column pass: those of a one-column pass, fewer if their
        gradient buffers (``d x K`` float64 each) would pass MULTI_BUFFER_BYTES in all
        (the text CSR, d = 1e5 and K = 20: 16 MB a chunk). From the data alone."""
        per_chunk = 8 * self.n_features * K
        return int(max(1, min(self._chunks, MULTI_BUFFER_BYTES // max(1, per_chunk))))

    def _thread_count(self, chunks=None):
        """Threads for one pass of ``chunks`` (default: a one-column pass's) row chunks:
        at most its chunks, the fit's budget (:func:`tikhon._config.thread_budget`) and
        Numba's count for this thread."""
        import numba

        chunks = self._chunks if chunks is None else chunks
        if chunks == 1:
            return 1
        limit = numba.get_num_threads() if resolve_threads() is None else numba.config.NUMBA_NUM_THREADS
        return max(1, min(chunks, thread_budget(), limit))

    def solving(self):
        """A solve counts as one of the fits sharing the cores (:func:`sharing_cores`)."""
        return sharing_cores()

    @contextmanager
    def _launch(self, chunks=None):
        """Around one kernel call that may start a parallel region: its thread count
        (:meth:`_thread_count`, granted from the cores free of other tikhon passes, set
        with ``numba.set_num_threads``, per Python thread, restored after) and the
        launch guard of the threading layer (see the module docstring). Yields the
        chunk count to pass to the kernel (``chunks``, default a one-column pass's)."""
        import numba

        chunks = self._chunks if chunks is None else chunks
        wanted = self._thread_count(chunks)
        current = numba.get_num_threads()
        with self._k.parallel_launch():
            granted = _take(wanted)
            try:
                if granted != current:
                    numba.set_num_threads(granted)
                yield chunks
            finally:
                if granted != current:
                    numba.set_num_threads(current)
                _give(granted)

    # ---- products ----
    def _pass(self, op, w, b=0.0, rowvec=None, out=None):
        k = self._k
        rowvec = self._empty if rowvec is None else rowvec
        out = self._empty if out is None else out
        with self._launch() as chunks:
            return k.one_pass(op, self._Xt, self._y, self._s, w, float(b), self._code,
                              rowvec, out, chunks)

    def matvec(self, w):
        """``X w``, or ``X W^T`` (n x K) for a K x d ``W``: one pass for all K columns."""
        if np.ndim(w) == 2:
            out = np.empty((self.n_samples, np.shape(w)[0]))
            self._multi_pass(self._m.OP_MATMAT, w, out=out)
            return out
        out = np.empty(self.n_samples)
        self._pass(self._k.OP_MATVEC, _f64(w), out=out)
        return out

    def rmatvec(self, r):
        """``X^T r``, or ``R^T X`` (K x d) for an n x K ``R``: one pass for all K columns."""
        if np.ndim(r) == 2:
            return self._multi_pass(self._m.OP_RMATMAT, rows=r)[0]
        g, _, _ = self._pass(self._k.OP_RMATVEC, self._zeros_d, rowvec=_f64(r))
        return g

    # ---- K-column passes (several outputs) ----
    def _multi_pass(self, op, w=None, b=0.0, rows=None, out=None):
        """One call of :func:`tikhon.backends._numba_multi.multi_pass`: ``w`` (K x d) or
        ``None``, ``b`` a scalar or K values, ``rows`` its ``P`` (n x K), ``out`` the
        margins of ``OP_MATMAT``. Returns ``(G as K x d, value, gb)``."""
        m = self._m
        K = np.shape(w)[0] if w is not None else rows.shape[1]
        # W and b are copied (K x d values), always writable: one compiled specialization
        if w is None:
            W = np.empty((0, 0))
        else:  # the CSR kernels gather from W^T: K contiguous values per feature
            W = np.array(np.asarray(w, dtype=np.float64).T if self._csr else w, dtype=np.float64, order="C")
        bv = np.empty(K)
        bv[:] = b
        y1, Y = (self._y1, self._Y) if self._fused() else (self._empty, np.empty((0, K)))
        rows = np.empty((0, K)) if rows is None else _writable(rows)
        out = np.empty((0, K)) if out is None else out
        with self._launch(self._multi_chunk_count(K)) as chunks:
            G, value, gb, bad = m.multi_pass(op, self._Xt, W, bv, y1, Y, self._s, rows, out,
                                             self.n_features, K, chunks)
        if bad >= 0:
            raise ValueError(f"y[{bad}] = {self.y[bad]} is not a class index in 0..{K - 1}")
        if self._csr and G.size:
            G = np.ascontiguousarray(G.T)
        return G, float(value), gb

    def _fused(self):
        """Whether the K-column loss kernels apply (several outputs of a loss they know)."""
        return self.n_outputs > 1 and self._multi_loss is not None

    def _multi_loss_grad(self, w, b, proba=None):
        op = self._m.OP_MULTINOMIAL if self._multi_loss == "multinomial" else self._m.OP_SQUARED
        G, value, gb = self._multi_pass(op, w, b, rows=proba)
        return value, G, gb

    def hessian_diagonal(self, w, b):
        """As the base class; for several outputs the squares are accumulated in one
        K-column pass over X (no squared copy of X's blocks)."""
        if self.n_outputs == 1:
            return super().hessian_diagonal(w, b)
        d = np.ascontiguousarray(self._curvature_weights(w, b))
        return self._multi_pass(self._m.OP_SQUARES, rows=d)[0], d.sum(axis=0)

    # ---- fused data-term kernels ----
    def loss_grad(self, w, b):
        """One fused pass over X (several outputs too: margins, pointwise loss and
        gradient by blocks of rows, no n x K temporary)."""
        if self.n_outputs > 1:
            if not self._fused():
                return super().loss_grad(w, b)
            return self._multi_loss_grad(w, b)
        g, loss, gb = self._pass(self._k.OP_LOSS_GRAD, _f64(w), b)
        return float(loss), g, float(gb)

    def _multi_loss_grad_hessian(self, w, b):
        """Several outputs: the gradient pass keeps the n x K probabilities (multinomial;
        the squared loss's Hessian needs only ``s``); each product is one fused pass."""
        multinomial = self._multi_loss == "multinomial"
        proba = np.empty((self.n_samples, self.n_outputs)) if multinomial else None
        value, G, gb = self._multi_loss_grad(w, b, proba)
        m = self._m
        op, rows = (m.OP_MULTINOMIAL_HESS, proba) if multinomial else (m.OP_SQUARED_HESS, None)

        def product(v, vb=0.0):
            hv, _, hb = self._multi_pass(op, v, vb, rows=rows)
            return hv, hb

        return value, G, gb, product

    def loss_grad_hessian(self, w, b):
        if self.n_outputs > 1:
            if not self._fused():
                return super().loss_grad_hessian(w, b)
            return self._multi_loss_grad_hessian(w, b)
        dvec = np.empty(self.n_samples)
        g, loss, gb = self._pass(self._k.OP_LOSS_GRAD, _f64(w), b, out=dvec)
        hess = self._k.OP_HESS

        def product(v, vb=0.0):
            hv, _, hb = self._pass(hess, _f64(v), vb, rowvec=dvec)
            return hv, float(hb)

        return float(loss), g, float(gb), product

    def batch_loss_grad(self, w, b, rows):
        if self.n_outputs > 1:
            return super().batch_loss_grad(w, b, rows)
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        loss, g, gb = self._k.batch_loss_grad(self._Xt, self._y, self._s, _f64(w), float(b),
                                              self._code, rows)
        return float(loss), g, float(gb)

    def row_norms_sq(self, chunk=None):
        out = np.empty(self.n_samples)
        self._pass(self._k.OP_ROW_NORMS, self._zeros_d, out=out)
        return out

    def weighted_product(self, v, vb):
        """One fused pass (the Hessian product kernel with weights ``s``)."""
        g, _, gb = self._pass(self._k.OP_HESS, v, vb, rowvec=self._s)
        return g, float(gb)

    # ---- whole loops (called by tikhon.solvers.gd / sgd) ----
    def gd_loop(self, w, b, *, decay, scale, lam, anchors, fit_intercept, tol, max_steps,
                safeguard):
        """Run gradient descent steps inside Numba from ``(w, b)``; see
        :func:`tikhon.backends._numba_kernels.gd_loop`. Returns
        ``(status, w, b, steps, values, cert)`` with status one of "converged",
        "max_iter", "uphill" (the last step was undone), "nonfinite", and ``values``
        the objective at each recorded iterate as ``(seconds, value)`` pairs (times are
        spread evenly over the call: the loop does not read the clock)."""
        k = self._k
        w = _f64(w).copy()
        values = np.empty(int(max_steps) + 2)
        start = time.perf_counter()
        with self._launch() as chunks:
            status, steps, n_values, b, cert = k.gd_loop(
                self._Xt, self._y, self._s, self._code, w, float(b), bool(fit_intercept),
                float(decay), float(scale), float(lam), *anchors, float(tol),
                int(max_steps), bool(safeguard), chunks, values)
        records = _spread(start, time.perf_counter(), values[:n_values])
        return _STATUS[status], w, float(b), int(steps), records, float(cert)

    def sgd_loop(self, w, b, *, rng, steps, decays, t0, batch_size, lam, weight_sum, anchors,
                 fit_intercept, tol, epoch0, epoch_stop, max_epochs):
        """Run SGD epochs inside Numba; see :func:`tikhon.backends._numba_kernels.sgd_loop`.
        Returns ``(status, w, b, epoch, t, records, cert)`` with status one of
        "converged", "max_iter", "pause", "nonfinite"."""
        k = self._k
        w = _f64(w).copy()
        values = np.empty(int(epoch_stop) - int(epoch0) + 1)
        start = time.perf_counter()
        with self._launch() as chunks:
            status, epoch, b, cert, t = k.sgd_loop(
                self._Xt, self._y, self._s, self._code, w, float(b), bool(fit_intercept), rng,
                _f64(steps), _f64(decays), int(t0), int(batch_size), float(weight_sum),
                float(lam), *anchors, float(tol), int(epoch0), int(epoch_stop),
                int(max_epochs), chunks, values)
        done = int(epoch) - int(epoch0) + (0 if _STATUS[status] == "pause" else 1)
        records = _spread(start, time.perf_counter(), values[:max(done, 0)])
        return _STATUS[status], w, float(b), int(epoch), int(t), records, float(cert)


_STATUS = {0: "converged", 1: "max_iter", 2: "uphill", 3: "nonfinite", 4: "pause"}


def _spread(start, stop, values):
    """``(seconds, value)`` pairs with the times spread evenly over ``[start, stop]``."""
    n = len(values)
    if n == 0:
        return []
    times = np.linspace(start, stop, n + 1)[1:]
    return [(float(t), float(v)) for t, v in zip(times, values)]
