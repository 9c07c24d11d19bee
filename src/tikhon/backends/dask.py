"""The Dask backend: the Numba backend's fused kernels run chunk by chunk on a
``dask.distributed`` cluster; the solver runs on the driver.

Input: ``X`` a 2-D ``dask.array.Array`` of dense NumPy blocks or scipy CSR blocks
(float32 or float64), chunked by rows (column chunks of a dense ``X`` are merged once
with ``rechunk``; a CSR ``X`` must have one column chunk). Chunks may be unequal.

The client: the one holding ``X``'s persisted chunks if any, else the current client
(``distributed.Client.current()``: the last one created, or the one made current with
``with client.as_current(): ...``). Workers need tikhon installed (``pip install
"tikhon[dask]"``).

Passes. Each chunk of ``X`` is packed once with its targets and weights into a
*chunk* ``(Xt, y, s)`` on a worker (:mod:`tikhon.backends._dask_chunks`). Each
``loss_grad``, Hessian-vector product, ``rmatvec`` ... is then ONE pass: one task per
worker (a *unit*) runs ``_numba_kernels.one_pass`` on each chunk that worker holds and
sums them (fixed order), returning ``d + 2`` numbers; the units' vectors are
tree-reduced (:func:`_dask_chunks.combine` on the workers, fan-in
:data:`SPLIT_EVERY`; the root, at most SPLIT_EVERY vectors, on the driver). One task
per worker rather than per chunk: a task costs milliseconds of scheduling, whatever
the chunk size. The Hessian weights of the last ``loss_grad_hessian`` stay on the
workers, one vector per chunk, for the Newton-CG products and the diagonal
preconditioner.

Several outputs (``n_outputs = K > 1``: a multinomial model's K classes, or a ridge
with K targets; ``W`` is K x d, ``y`` the class indices or the n x K targets, packed
into the chunks as in memory): the same passes, one per gradient and one per Hessian
product, by the ``multi_*`` unit tasks of :mod:`tikhon.backends._dask_chunks`: each
chunk computes its margins for all K outputs, the softmax or the residuals and its
part of ``R^T X`` in one visit of each row block (BLAS-3, accumulated in float64 for
float32 chunks too), and returns ``K d + K + 1`` numbers, reduced as above; the
multinomial's probabilities stay on the workers for the Hessian products and the
K-output Hessian diagonal.

Persisting. If ``X`` fits in half the cluster's memory (sum of the workers'
``memory_limit``, :data:`PERSIST_FRACTION`), the chunks are persisted once, when the
backend is built, and every pass reuses them. Otherwise (data larger than the
cluster's memory) chunks are *not* persisted: each pass recomputes them from ``X``'s
graph (e.g. generated per chunk with ``dask.array.random``, read from files,
memory-mapped), one unit task per chunk, a chunk or two per worker in memory at a
time; only the targets and weights (n numbers) are persisted.

What reaches the driver: never a chunk of ``X``. n-vectors (targets, weights,
margins ``X w``: d times smaller than ``X``) are gathered only where the
backend-agnostic code asks for them: the estimators' label checks and starting
intercept, and the duality-gap certificate computed once at the end of a fit.

Threads: each unit task runs the kernel on ``tikhon.config_context(n_threads=...)``
Numba threads if set on the driver, else on its worker's thread count (persisted: one
unit per worker) or on one thread (not persisted: Dask runs the chunks in parallel).

Worker failure: Dask recomputes lost chunks (and Hessian weights) from their lineage
(the targets and weights travel inside the graph for that reason) and the pass
completes; the units of a lost worker then run where their chunks were recomputed. If
a task's workers keep dying (``KilledWorker``) the fit raises :class:`DaskPassError`
and stores nothing.

A dead or paused cluster: while the driver waits for a pass (persisting the chunks, a
reduction, gathering an n-vector), a watcher asks the scheduler every second whether a
worker is *usable*: running, or paused but still executing a task. When none has been
for the grace period (:data:`WORKER_GRACE` = 30 s; the dask config value
:data:`GRACE_CONFIG`, e.g. ``dask.config.set({"tikhon.dask.worker-grace": "2 minutes"})``,
or the constructor's ``worker_grace``), the pass's futures are cancelled and the fit
raises :class:`DaskPassError` saying why (no worker left, all paused, ...) and the
fix: at most the grace period plus a second after the scheduler last reported a usable
worker (it notices a killed worker at once, an unreachable host after
``distributed.scheduler.worker-ttl``). A long pass on
live workers is never cut: only the absence of usable workers counts, not time. (Dask
itself would wait for a worker forever.) In-process workers (``processes=False``)
measure the whole process's memory, so a large driver pauses them past
``distributed.worker.memory.pause`` of their ``memory_limit``.

Checks: each chunk is checked where it lives, once when persisted (every pass when
not): no NaN/infinity, magnitudes as in memory (:mod:`tikhon._validation`).

Not supported: the ``sgd`` solver (a round trip per mini-batch) and ``dual_cd``.
"""
from __future__ import annotations

import numbers
import threading
import time
import warnings
from collections import Counter
from contextlib import contextmanager

import numpy as np

from .._config import resolve_threads
from ._base import Backend, input_format
from . import _dask_chunks as C

__all__ = ["DaskBackend", "DaskPassError"]

SPLIT_EVERY = 8  # fan-in of the tree reduction
_UNIT_T = object()  # placeholder argument: the unit's Numba thread count
PERSIST_FRACTION = 0.5  # persist X when it takes at most this share of the cluster's memory
WORKER_GRACE = 30.0  # s without a usable worker before a pass raises DaskPassError
GRACE_CONFIG = "tikhon.dask.worker-grace"  # dask config key overriding WORKER_GRACE
_POLL = 1.0  # s between the watcher's questions to the scheduler (at most)

_INSTALL = 'install it with `pip install "tikhon[dask]"` (dask[array] and distributed)'


class DaskPassError(RuntimeError):
    """A pass over the chunks failed on the cluster: workers kept dying, or no worker
    was usable (none left, all paused) for the grace period."""


def _import():
    import dask
    import dask.array as da
    import distributed

    return dask, da, distributed


def is_dask(X) -> bool:
    return input_format(X) == "dask"


def _client_for(X):
    """The client holding ``X``'s persisted chunks, else the current client."""
    _, _, distributed = _import()
    futures = distributed.futures_of(X)
    if futures:
        return futures[0].client
    try:
        return distributed.Client.current()
    except ValueError:
        raise ValueError(
            "backend 'dask' needs a dask.distributed Client: create one (`Client(...)`) "
            "or make one current with `with client.as_current(): ...`"
        ) from None


def grace_seconds(value=None) -> float:
    """The grace period in seconds: ``value``, else the dask config value
    :data:`GRACE_CONFIG`, else :data:`WORKER_GRACE`; a number of seconds or a dask time
    string (``"2 minutes"``)."""
    import dask.config
    from dask.utils import parse_timedelta

    if value is None:
        value = dask.config.get(GRACE_CONFIG, WORKER_GRACE)
    try:
        seconds = float(value) if isinstance(value, numbers.Real) else parse_timedelta(value, default="s")
    except (TypeError, ValueError, KeyError):  # dask says KeyError for an unknown unit
        seconds = None
    if seconds is None or not seconds > 0:
        raise ValueError(f"worker_grace must be a positive number of seconds or a dask time string "
                         f"such as '2 minutes', got {value!r}")
    return float(seconds)


def _usable(worker) -> bool:
    """Whether a worker (the scheduler's record) runs the pass's tasks: running, or
    paused but still executing one (a paused worker finishes what it started)."""
    executing = ((worker.get("metrics") or {}).get("task_counts") or {}).get("executing", 0)
    return worker.get("status") == "running" or (worker.get("status") == "paused" and executing > 0)


def _unusable_reason(client):
    """``None`` when a worker is usable, else why none is and the fix (one line)."""
    try:
        workers = list(client.scheduler_info()["workers"].values())
    except Exception as exc:  # noqa: BLE001 - whatever the reason, nothing can run
        return f"the scheduler did not answer ({exc}): check that the cluster is up and fit again"
    if any(_usable(w) for w in workers):
        return None
    if not workers:
        return "the cluster has no worker (all died or left): restart its workers and fit again"
    statuses = Counter(w.get("status") for w in workers)
    if set(statuses) == {"paused"}:
        return (f"all {len(workers)} workers are paused (their memory is above "
                "distributed.worker.memory.pause of memory_limit; an in-process worker, processes=False, "
                "counts the whole process): give them a larger memory_limit, or create the cluster under "
                "dask.config.set({'distributed.worker.memory.pause': False})")
    listed = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
    return f"no worker is running ({listed}): restart the workers and fit again"


def _watch(client, futures, grace, stop, why):
    """Until ``stop`` is set: ask the scheduler every poll whether a worker is usable;
    when none has been for ``grace`` s, record why in ``why`` and cancel ``futures``
    (which ends the driver's wait)."""
    poll = min(_POLL, grace / 4)
    last_usable = time.monotonic()
    while not stop.wait(poll):
        reason = _unusable_reason(client)
        if reason is None:
            last_usable = time.monotonic()
        elif time.monotonic() - last_usable >= grace:
            why.append(reason)
            try:
                client.cancel(futures)
            except Exception:  # noqa: BLE001 - a closed client has cancelled them already
                pass
            return


@contextmanager
def _watched(client, futures, grace, what):
    """Run the body (a wait for ``futures``) under :func:`_watch`; raise
    :class:`DaskPassError` if no worker was usable for ``grace`` s."""
    stop, why = threading.Event(), []
    watcher = threading.Thread(target=_watch, args=(client, futures, grace, stop, why),
                               name="tikhon-dask-watch", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()
        if why:  # replaces the cancellation error the wait raised, if any
            raise DaskPassError(f"backend 'dask': no usable worker for {grace:g} s while {what}; its tasks "
                                f"were cancelled and no result is stored: {why[0]} "
                                f"(the wait is dask config {GRACE_CONFIG!r}, default {WORKER_GRACE:g} s)")


def _gather_on(client, futures, grace, what):
    """``client.gather(futures)`` under the watch; workers that kept dying raise
    :class:`DaskPassError` too."""
    _, _, distributed = _import()
    try:
        with _watched(client, futures, grace, what):
            return client.gather(futures)
    except distributed.KilledWorker as exc:
        raise DaskPassError(
            f"backend 'dask': {what} failed because workers died ({exc}); "
            "the fit is abandoned and no result is stored") from exc


def _cluster_memory(client):
    limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return float("inf") if not limits or 0 in limits else float(sum(limits))


def _row_chunked(X):
    """``X`` with a single column chunk (dense: merged once; CSR must already be)."""
    if X.numblocks[1] == 1:
        return X
    if not isinstance(X._meta, np.ndarray):
        raise ValueError("a dask array of sparse blocks must have one chunk along the features: "
                         "rechunk it by rows only, e.g. X.rechunk({1: -1}) before making it sparse")
    return X.rechunk({1: -1})


def _aligned(v, chunks, da):
    """Per-chunk delayed blocks of a float64 dask array with the given row chunks (numpy
    input is split): an n-vector, or n x K targets (one column chunk)."""
    if is_dask(v):
        v = da.asarray(v).astype(np.float64)
        v = v.rechunk((chunks,) + tuple((k,) for k in v.shape[1:]))
    else:
        v = np.asarray(v, dtype=np.float64)
        v = da.from_array(v, chunks=(chunks,) + v.shape[1:])
    return v.to_delayed().ravel()


class DaskBackend(Backend):
    """Per-chunk Numba kernels on a dask.distributed cluster (see the module docstring).

    ``client``: defaults as in the module docstring. ``persist``: ``None`` decides by
    size (:data:`PERSIST_FRACTION`), ``True``/``False`` forces it. ``worker_grace``:
    seconds a pass waits with no usable worker before :class:`DaskPassError`
    (:func:`grace_seconds`).
    """

    name = "dask"
    formats = frozenset({"dask"})
    loops = frozenset()
    multi_output = True

    @classmethod
    def availability(cls):
        try:
            _import()
            import numba  # noqa: F401
        except ImportError as exc:
            return f"dask, distributed or numba cannot be imported ({exc}); {_INSTALL}"
        return None

    def __init__(self, X, y, sample_weight, loss, n_outputs=1, client=None, persist=None, worker_grace=None):
        self.n_outputs = int(n_outputs)
        dask, da, _ = _import()
        from . import _numba_kernels as kernels

        if not isinstance(X, da.Array) or X.ndim != 2:
            raise ValueError(f"backend 'dask' reads a 2-D dask.array.Array, got {type(X).__name__}")
        if any(np.isnan(c) for c in X.chunks[0]):
            raise ValueError("X has unknown chunk sizes: call X.compute_chunk_sizes() first")
        self.worker_grace = grace_seconds(worker_grace)
        X = _row_chunked(X)
        self.X = X
        self.loss = loss
        self.n_samples, self.n_features = X.shape
        self.client = client if client is not None else _client_for(X)
        self._code = kernels.LOSS_CODES[loss.name] if n_outputs == 1 else None  # K outputs: multi_* tasks
        self._T = resolve_threads()  # None: each unit uses its worker's thread count
        rows = X.chunks[0]
        self._bounds = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
        self._y_in, self._s_in = y, sample_weight
        self._y = self._s = None
        self._curvature = None  # (w, b, per-unit futures) of the last loss_grad_hessian

        # targets and weights, one (y, s) pair per chunk, persisted (n numbers)
        yb = _aligned(y, rows, da)
        sb = _aligned(sample_weight, rows, da)
        with _n_vectors_in_graph():
            ys = self.client.persist([dask.delayed(C.pack_targets, pure=True)(a, b) for a, b in zip(yb, sb)])
        chunks = [dask.delayed(C.pack, pure=True)(xb, t) for xb, t in zip(X.to_delayed().ravel(), ys)]
        if persist is None:
            persist = X.nbytes <= PERSIST_FRACTION * _cluster_memory(self.client)
        self.persisted = bool(persist)
        if self.persisted:  # once: later passes reuse the chunks where they live
            self._chunks = [distributed_future(c) for c in self.client.persist(chunks)]
            self._wait(self._chunks)
            self._units = self._group_by_worker()
            nthreads = {a: w["nthreads"] for a, w in self.client.scheduler_info()["workers"].items()}
            self._unit_threads = [self._T or nthreads.get(addr, 1) for addr, _ in self._units]
        else:  # each pass recomputes the chunks from X's graph, one unit per chunk
            self._ys = ys  # keeps the persisted targets alive
            self._chunks = chunks
            self._units = [(None, [k]) for k in range(len(chunks))]
            self._unit_threads = [self._T or 1] * len(chunks)  # Dask runs chunks in parallel
        self.weight_sum = float(self._reduce(self._launch(C.weight_sum))[0])

    # ---- running passes ----
    def _group_by_worker(self):
        """Units of work: the chunks each worker holds (one task per worker per pass, so a
        pass costs a task per worker, not per chunk; each sums its chunks locally)."""
        who = self.client.who_has(self._chunks)
        by_worker = {}
        for k, f in enumerate(self._chunks):
            holders = sorted(who.get(f.key, ())) or [None]
            by_worker.setdefault(holders[0], []).append(k)
        return sorted(by_worker.items(), key=lambda item: item[1][0])

    def _launch(self, func, *args, per_unit=None):
        """Start ``func(chunks_of_unit, *per_unit[u], *args)`` for every unit; returns
        futures (the results stay on the workers)."""
        per_unit = per_unit or [()] * len(self._units)
        threads = self._unit_threads

        def unit_args(u):  # the unit's Numba thread count in place of _UNIT_T
            return [threads[u] if a is _UNIT_T else a for a in args]

        if self.persisted:
            return [self.client.submit(func, [self._chunks[k] for k in ks], *extra, *unit_args(u), pure=False,
                                       workers=None if addr is None else [addr], allow_other_workers=True)
                    for u, ((addr, ks), extra) in enumerate(zip(self._units, per_unit))]
        import dask

        # one graph key per vector argument: each worker fetches it once, not once per chunk
        args = tuple(dask.delayed(a, traverse=False) if isinstance(a, np.ndarray) else a for a in args)
        f = dask.delayed(func, pure=False)
        tasks = [f([self._chunks[k] for k in ks], *extra, *unit_args(u))
                 for u, ((_, ks), extra) in enumerate(zip(self._units, per_unit))]
        return self._submit(tasks)

    def _submit(self, tasks):
        """Compute delayed tasks on the cluster; returns their futures."""
        return self.client.compute(tasks)

    def _wait(self, futures):
        """Wait for futures without fetching them (under the watch of :func:`_watched`);
        raise the first error (e.g. a NaN chunk)."""
        _, _, distributed = _import()
        with _watched(self.client, futures, self.worker_grace, "persisting the chunks"):
            distributed.wait(futures)
        for f in futures:
            if f.status == "error":
                try:
                    f.result()  # re-raises the task's exception; fetches no data
                except distributed.KilledWorker as exc:
                    raise DaskPassError(f"backend 'dask': workers died while persisting the chunks ({exc})") from exc

    def _gather(self, futures, what="running a pass over the chunks"):
        return _gather_on(self.client, futures, self.worker_grace, what)

    def _reduce(self, futures):
        """Tree reduction of the units' vectors: :func:`_dask_chunks.combine` on the workers
        with fan-in :data:`SPLIT_EVERY`, the root on the driver (at most SPLIT_EVERY
        vectors of d + 2 numbers come to the driver)."""
        while len(futures) > SPLIT_EVERY:
            futures = [self.client.submit(C.combine, *futures[i:i + SPLIT_EVERY], pure=False)
                       for i in range(0, len(futures), SPLIT_EVERY)]
        return C.combine(*self._gather(futures))

    @staticmethod
    def _split(flat):
        return flat[:-2], float(flat[-2]), float(flat[-1])

    def _split_multi(self, flat, K=None):
        """``(G (K x d), a, c (K,))`` of a reduced ``multi_*`` result."""
        K = self.n_outputs if K is None else K
        kd = K * self.n_features
        return flat[:kd].reshape(K, self.n_features), float(flat[kd]), flat[kd + 1:]

    @property
    def _multi(self):
        return self.n_outputs > 1

    # ---- data-term kernels ----
    def loss_grad(self, w, b):
        if self._multi:
            G, a, c = self._split_multi(self._reduce(self._launch(C.multi_loss_grad, _f64(w), _f64(b),
                                                                  self.loss.name)))
            return a, G, c
        g, a, c = self._split(self._reduce(self._launch(C.loss_grad, _f64(w), float(b), self._code, _UNIT_T)))
        return a, g, c

    def _curvature_at(self, w, b):
        """Per-unit futures of ``loss_grad_curvature`` at ``(w, b)`` (the Hessian weights
        stay on the workers); reused when asked again at the same point."""
        cached = self._curvature
        if cached is not None and np.array_equal(cached[1], b) and np.array_equal(cached[0], w):
            return cached[2]
        if self._multi:
            states = self._launch(C.multi_loss_grad, _f64(w), _f64(b), self.loss.name, True)
        else:
            states = self._launch(C.loss_grad_curvature, _f64(w), float(b), self._code, _UNIT_T)
        self._curvature = (np.array(w, dtype=np.float64), np.array(b, dtype=np.float64), states)
        return states

    def loss_grad_hessian(self, w, b):
        self._curvature = None  # a new point: always one fresh pass
        states = self._curvature_at(w, b)
        firsts = [self.client.submit(C.first, st, pure=False) for st in states]
        if self._multi:
            g, a, c = self._split_multi(self._reduce(firsts))
        else:
            g, a, c = self._split(self._reduce(firsts))

        def product(v, vb=0.0):
            per_unit = [(st,) for st in states]
            if self._multi:
                hv, _, hb = self._split_multi(self._reduce(
                    self._launch(C.multi_hess, _f64(v), _f64(vb), self.loss.name, per_unit=per_unit)))
                return hv, hb
            hv, _, hb = self._split(self._reduce(
                self._launch(C.hess, _f64(v), float(vb), _UNIT_T, per_unit=per_unit)))
            return hv, hb

        return a, g, c, product

    def hessian_diagonal(self, w, b):
        """``(sum_i d_i x_ij^2, sum_i d_i)``, ``d_i = s_i loss''_i``: one pass, reusing the
        Hessian weights of the last ``loss_grad_hessian`` when it was at the same point."""
        states = self._curvature_at(w, b)
        per_unit = [(st,) for st in states]
        if self._multi:  # K outputs: (K x d, K), the multinomial's d_ik = s_i p_ik (1 - p_ik)
            g, _, c = self._split_multi(self._reduce(
                self._launch(C.multi_hess_diagonal, self.loss.name, self.n_outputs, self.n_features,
                             per_unit=per_unit)))
            return g, c
        g, _, c = self._split(self._reduce(self._launch(C.hess_diagonal, self.n_features, per_unit=per_unit)))
        return g, c

    def _rows(self, per_unit_lists):
        """Reassemble per-chunk n-vector pieces (one list per unit) in row order."""
        pieces = [None] * len(self._chunks)
        for (_, ks), parts in zip(self._units, per_unit_lists):
            for k, part in zip(ks, parts):
                pieces[k] = part
        return np.concatenate(pieces) if pieces else np.empty(0)

    def matvec(self, w):
        """``X w`` gathered to the driver (an n-vector: used for the final certificate);
        ``X W^T`` (n x K) for a K x d ``W``."""
        w = _f64(w)
        if w.ndim == 2:
            return self._rows(self._gather(self._launch(C.multi_matvec, w), "gathering the n x K margins"))
        return self._rows(self._gather(self._launch(C.matvec, w, _UNIT_T), "gathering an n-vector"))

    def rmatvec(self, r):
        """``X^T r`` for an n-vector ``r`` on the driver (each chunk receives its piece);
        ``R^T X`` (K x d) for an n x K ``R``."""
        r = np.ascontiguousarray(r, dtype=np.float64)
        lo, hi = self._bounds[:-1], self._bounds[1:]
        pieces = [([r[lo[k]:hi[k]] for k in ks],) for _, ks in self._units]
        with _n_vectors_in_graph():
            if r.ndim == 2:
                futures = self._launch(C.multi_rmatvec, self.n_features, per_unit=pieces)
                return self._split_multi(self._reduce(futures), K=r.shape[1])[0]
            futures = self._launch(C.rmatvec, self.n_features, _UNIT_T, per_unit=pieces)
        g, _, _ = self._split(self._reduce(futures))
        return g

    def row_norms_sq(self, chunk=None):
        return self._rows(self._gather(self._launch(C.row_norms, self.n_features, _UNIT_T), "gathering an n-vector"))

    def weighted_product(self, v, vb):
        """One pass on the workers (the power iteration of ``curvature_norm`` uses it)."""
        g, _, gb = self._split(self._reduce(self._launch(C.weighted_hess, v, vb, _UNIT_T)))
        return g, float(gb)

    def gram_cost(self):
        return float("inf")  # no Gram on the cluster: auto never picks newton_cholesky here

    def loss_grad_gram(self, w, b):
        raise ValueError("backend 'dask' does not run the 'newton_cholesky' solver (it forms the "
                         "d x d Hessian); use solver='newton' or 'lbfgs'")

    def batch_loss_grad(self, w, b, rows):
        raise ValueError("backend 'dask' does not run the 'sgd' solver (one round trip per mini-batch); "
                         "use solver='newton' or 'lbfgs'")

    # ---- n-vectors the backend-agnostic code reads (gathered once, on first use) ----
    @property
    def y(self):
        if self._y is None:
            self._y = _gather_vector(self._y_in, self.client, self.worker_grace)
        return self._y

    @property
    def s(self):
        if self._s is None:
            self._s = _gather_vector(self._s_in, self.client, self.worker_grace)
        return self._s


@contextmanager
def _n_vectors_in_graph():
    """n-vectors (targets, weights, the certificate's dual vector) travel inside the task
    graph on purpose: a chunk lost with its worker is then recomputed from the graph
    (scattered data would be lost with it). Dask warns about such graphs; not here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sending large graph", category=UserWarning)
        yield


def _f64(v):
    return np.ascontiguousarray(v, dtype=np.float64)


def distributed_future(delayed_obj):
    """The future behind a persisted delayed object."""
    _, _, distributed = _import()
    (future,) = distributed.futures_of(delayed_obj)
    return future


def _gather_vector(v, client=None, grace=None, dtype=np.float64):
    """An n-vector on the driver; a dask one computed on ``client`` (else ``X``'s client
    rules, :func:`_client_for`) under the watch, or locally when there is no cluster
    (the backend then reports its absence)."""
    if is_dask(v):
        try:
            client = client if client is not None else _client_for(v)
        except (ImportError, ValueError):
            v = v.compute()
        else:
            v = _gather_on(client, client.compute(v), grace_seconds(grace), "gathering an n-vector")
    return np.asarray(v, dtype=dtype)


# --------------------------------------------------------------------------------------
# Estimator hooks: dask input bypasses scikit-learn's validate_data (which would
# compute X) and predictions stay lazy.
# --------------------------------------------------------------------------------------
def validate(estimator, X, reset, y=None):
    """Check a dask ``X`` (2-D array, known row chunks, numeric) without computing it.

    Non-float dtypes are cast to float64 lazily (chunk by chunk). ``y`` (an n-vector,
    or n x T targets of a ridge) is returned as a NumPy array: the estimators check
    labels and start from the best constant on the driver. Sets/checks
    ``n_features_in_`` as ``validate_data`` does.
    """
    import dask.array as da  # not distributed: its absence is reported when the backend is chosen

    if not isinstance(X, da.Array):
        raise TypeError(f"tikhon reads dask input as a dask.array.Array, got {type(X).__name__}; "
                        "convert a dask DataFrame with .to_dask_array(lengths=True)")
    if X.ndim != 2:
        raise ValueError(f"Expected a 2-D array, got a {X.ndim}-D dask array")
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "biuf":
            raise ValueError(f"dask input of dtype {X.dtype} is not numeric")
        X = X.astype(np.float64)
    if any(np.isnan(c) for c in X.chunks[0]):
        raise ValueError("X has unknown chunk sizes: call X.compute_chunk_sizes() first")
    if reset:
        estimator.n_features_in_ = X.shape[1]
    elif X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} "
                         f"is expecting {estimator.n_features_in_} features as input.")
    if y is None:
        return X
    y = _gather_vector(y, dtype=None)
    if y.ndim == 2 and y.shape[1] == 1 and getattr(estimator, "_loss", None) != "squared":
        y = y.ravel()  # labels of one column; a ridge keeps scikit-learn's (n, 1) shapes, as in memory
    if y.ndim == 2 and getattr(estimator, "_loss", None) != "squared":
        raise ValueError(f"y must be a 1-D array of {X.shape[0]} labels, got shape {y.shape}")
    if y.ndim not in (1, 2) or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be a 1-D array of {X.shape[0]} entries (or {X.shape[0]} rows of targets), "
                         f"got shape {y.shape}")
    return X, y


def margins(estimator, X):
    """Lazy ``X coef + intercept`` (a dask array), blockwise as in memory."""
    X = _row_chunked(validate(estimator, X, reset=False))
    coef = np.asarray(estimator.coef_)
    if coef.ndim == 1 or (coef.shape[0] == 1 and estimator._loss == "logistic"):  # one output: a vector
        b = float(np.ravel(estimator.intercept_)[0])
        return X.map_blocks(C.margins, np.ravel(coef), b, drop_axis=1, dtype=np.float64)
    b = np.asarray(estimator.intercept_, dtype=np.float64)  # K outputs: n x K, as in memory
    return X.map_blocks(C.margins, coef, b, chunks=(X.chunks[0], (coef.shape[0],)), dtype=np.float64)


def predict_labels(estimator, X):
    """Lazy class labels for dask ``X`` (a dask array)."""
    z = estimator.decision_function(X)
    if z.ndim == 2:  # K classes: the largest margin's
        return z.map_blocks(C.labels, estimator.classes_, drop_axis=1, dtype=estimator.classes_.dtype)
    return z.map_blocks(C.labels, estimator.classes_, dtype=estimator.classes_.dtype)


def probabilities(estimator, X, log=False):
    """Lazy ``predict_proba`` (``log``: ``predict_log_proba``) for dask ``X``."""
    z = estimator.decision_function(X)
    if z.ndim == 2:  # K classes: the softmax of each block's rows
        return z.map_blocks(C.probabilities, log, dtype=np.float64)
    return z.map_blocks(C.probabilities, log, new_axis=1, chunks=(z.chunks[0], (2,)), dtype=np.float64)
