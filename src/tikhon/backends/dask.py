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
``loss_grad``, Hessian-vector product, ``rmatvec`` ... is then ONE graph: one task per
chunk, running ``_numba_kernels.one_pass`` where the chunk lives and returning a
vector of ``d + 2`` numbers, then a tree reduction (fan-in :data:`SPLIT_EVERY`, fixed
order, so results are deterministic) whose root, ``d + 2`` numbers, is the only thing
sent to the driver. The Hessian weights of the last ``loss_grad_hessian`` stay on the
workers, one vector per chunk, for the Newton-CG products.

Persisting. If ``X`` fits in half the cluster's memory (sum of the workers'
``memory_limit``), the chunks are persisted once, when the backend is built, and
every pass reuses them. Otherwise (data larger than the cluster's memory) chunks are
*not* persisted: each pass recomputes them from ``X``'s graph (e.g. generated per
chunk with ``dask.array.random``, read from files, memory-mapped), one or two chunks
per worker at a time; only the targets and weights (n numbers) are persisted.

What reaches the driver: never a chunk of ``X``. n-vectors (targets, weights,
margins ``X w``: d times smaller than ``X``) are gathered only where the
backend-agnostic code asks for them: the estimators' label checks and starting
intercept, and the duality-gap certificate computed once at the end of a fit.

Threads: each chunk task runs the kernel on ``tikhon.config_context(n_threads=...)``
Numba threads if set on the driver, else on one thread (Dask runs one task per worker
thread: with ``threads_per_worker=1`` and ``n_threads=k`` a worker uses k cores).

Worker failure: Dask recomputes lost chunks (and Hessian weights) from their lineage
and the pass completes; if a task's workers keep dying (``KilledWorker``) the fit
raises :class:`DaskPassError` and stores nothing.

Not supported: the ``sgd`` solver (a round trip per mini-batch) and ``dual_cd``.
"""
from __future__ import annotations

import numpy as np

from .._config import resolve_threads
from ._base import Backend, input_format
from . import _dask_chunks as C

__all__ = ["DaskBackend", "DaskPassError"]

SPLIT_EVERY = 8  # fan-in of the tree reduction
PERSIST_FRACTION = 0.5  # persist X when it takes at most this share of the cluster's memory

_INSTALL = 'install it with `pip install "tikhon[dask]"` (dask[array] and distributed)'


class DaskPassError(RuntimeError):
    """A pass over the chunks failed on the cluster (e.g. workers kept dying)."""


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
    """A float64 1-D dask array with the given row chunks (numpy input is split)."""
    if is_dask(v):
        return da.asarray(v).astype(np.float64).rechunk((chunks,))
    return da.from_array(np.asarray(v, dtype=np.float64), chunks=(chunks,))


class DaskBackend(Backend):
    """Per-chunk Numba kernels on a dask.distributed cluster (see the module docstring).

    ``client``: defaults as in the module docstring. ``persist``: ``None`` decides by
    size (:data:`PERSIST_FRACTION`), ``True``/``False`` forces it.
    """

    name = "dask"
    formats = frozenset({"dask"})
    loops = frozenset()

    @classmethod
    def availability(cls):
        try:
            _import()
            import numba  # noqa: F401
        except ImportError as exc:
            return f"dask, distributed or numba cannot be imported ({exc}); {_INSTALL}"
        return None

    def __init__(self, X, y, sample_weight, loss, client=None, persist=None):
        dask, da, _ = _import()
        from . import _numba_kernels as kernels

        if not isinstance(X, da.Array) or X.ndim != 2:
            raise ValueError(f"backend 'dask' reads a 2-D dask.array.Array, got {type(X).__name__}")
        if any(np.isnan(c) for c in X.chunks[0]):
            raise ValueError("X has unknown chunk sizes: call X.compute_chunk_sizes() first")
        X = _row_chunked(X)
        self.X = X
        self.loss = loss
        self.n_samples, self.n_features = X.shape
        self.client = client if client is not None else _client_for(X)
        self._code = kernels.LOSS_CODES[loss.name]
        self._T = resolve_threads() or 1
        rows = X.chunks[0]
        self._bounds = np.concatenate(([0], np.cumsum(rows))).astype(np.int64)
        self._y_in, self._s_in = y, sample_weight
        self._y = self._s = None

        # targets and weights, one (y, s) pair per chunk, persisted (n numbers)
        yb = _aligned(y, rows, da).to_delayed()
        sb = _aligned(sample_weight, rows, da).to_delayed()
        ys = [dask.delayed(C.pack_targets, pure=True)(a, b) for a, b in zip(yb, sb)]
        ys = self.client.persist(ys)
        Xb = X.to_delayed().ravel()
        chunks = [dask.delayed(C.pack, pure=True)(xb, t) for xb, t in zip(Xb, ys)]
        if persist is None:
            persist = X.nbytes <= PERSIST_FRACTION * _cluster_memory(self.client)
        self.persisted = bool(persist)
        if self.persisted:  # once: later passes reuse the chunks where they live
            chunks = self.client.persist(chunks)
            self._wait(chunks)
        self._ys = ys  # keeps the persisted targets alive in streaming mode
        self._chunks = chunks
        self.weight_sum = float(self._reduce([dask.delayed(C.weight_sum, pure=False)(t) for t in ys])[0])
        self._curvature = None  # (w, b, per-chunk Hessian weight futures) of the last loss_grad_hessian

    # ---- running passes ----
    def _tree(self, parts):
        """Tree reduction of per-chunk vectors with :func:`_dask_chunks.combine`."""
        import dask

        while len(parts) > 1:
            parts = [dask.delayed(C.combine, pure=False)(*parts[i:i + SPLIT_EVERY])
                     for i in range(0, len(parts), SPLIT_EVERY)]
        return parts[0]

    def _wait(self, collections):
        _, _, distributed = _import()
        try:
            distributed.wait(distributed.futures_of(collections))
            for f in distributed.futures_of(collections):
                if f.status == "error":
                    f.result()
        except distributed.KilledWorker as exc:
            raise DaskPassError(f"backend 'dask': workers died while persisting the chunks ({exc})") from exc

    def _submit(self, collections):
        """Submit delayed objects; returns their futures (results stay on the workers)."""
        return self.client.compute(collections)

    def _result(self, future):
        _, _, distributed = _import()
        try:
            return future.result()
        except distributed.KilledWorker as exc:
            raise DaskPassError(
                f"backend 'dask': a pass over the chunks failed because workers died ({exc}); "
                "the fit is abandoned and no result is stored") from exc

    def _reduce(self, parts):
        """Tree-reduce per-chunk vectors; only the root comes to the driver."""
        return self._result(self._submit([self._tree(parts)])[0])

    def _map(self, func, *args, per_chunk=None):
        """One delayed task per chunk: ``func(chunk, *per_chunk[k], *args)``."""
        import dask

        f = dask.delayed(func, pure=False)
        if per_chunk is None:
            return [f(c, *args) for c in self._chunks]
        return [f(c, *extra, *args) for c, extra in zip(self._chunks, per_chunk)]

    @staticmethod
    def _vector(v):
        import dask

        # one graph key per pass: each worker fetches the vector once, not once per chunk
        return dask.delayed(np.ascontiguousarray(v, dtype=np.float64), pure=False, traverse=False)

    @staticmethod
    def _split(flat):
        return flat[:-2], float(flat[-2]), float(flat[-1])

    # ---- data-term kernels ----
    def loss_grad(self, w, b):
        g, a, c = self._split(self._reduce(self._map(C.loss_grad, self._vector(w), float(b), self._code, self._T)))
        return a, g, c

    def loss_grad_hessian(self, w, b):
        import dask

        f = dask.delayed(C.loss_grad_curvature, pure=False, nout=2)
        wd = self._vector(w)
        pairs = [f(c, wd, float(b), self._code, self._T) for c in self._chunks]
        futures = self._submit([self._tree([p for p, _ in pairs])] + [d for _, d in pairs])
        g, a, c = self._split(self._result(futures[0]))
        dvecs = futures[1:]  # Hessian weights, one vector per chunk, kept on the workers
        self._curvature = (np.array(w, dtype=np.float64), float(b), dvecs)

        def product(v, vb=0.0):
            hv, _, hb = self._split(self._reduce(
                self._map(C.hess, self._vector(v), float(vb), self._T, per_chunk=[(d,) for d in dvecs])))
            return hv, hb

        return a, g, c, product

    def hessian_diagonal(self, w, b):
        """``(sum_i d_i x_ij^2, sum_i d_i)``, ``d_i = s_i loss''_i``: one pass, reusing the
        Hessian weights of the last ``loss_grad_hessian`` when it was at the same point."""
        import dask

        cached = self._curvature
        if cached is not None and cached[1] == float(b) and np.array_equal(cached[0], w):
            dvecs = cached[2]
        else:
            f = dask.delayed(C.curvature, pure=False)
            wd = self._vector(w)
            dvecs = [f(c, wd, float(b), self._code, self._T) for c in self._chunks]
        parts = self._map(C.hess_diagonal, self.n_features, per_chunk=[(d,) for d in dvecs])
        g, _, c = self._split(self._reduce(parts))
        return g, c

    def matvec(self, w):
        """``X w`` gathered to the driver (an n-vector: used for the final certificate)."""
        futures = self._submit(self._map(C.matvec, self._vector(w), self._T))
        _, _, distributed = _import()
        try:
            parts = self.client.gather(futures)
        except distributed.KilledWorker as exc:
            raise DaskPassError(f"backend 'dask': workers died during a pass ({exc})") from exc
        return np.concatenate(parts) if parts else np.empty(0)

    def rmatvec(self, r):
        """``X^T r`` for an n-vector ``r`` on the driver (each chunk receives its piece)."""
        r = np.ascontiguousarray(r, dtype=np.float64)
        pieces = [(r[lo:hi],) for lo, hi in zip(self._bounds[:-1], self._bounds[1:])]
        g, _, _ = self._split(self._reduce(self._map(C.rmatvec, self.n_features, self._T, per_chunk=pieces)))
        return g

    def row_norms_sq(self, chunk=None):
        futures = self._submit(self._map(C.row_norms, self.n_features, self._T))
        return np.concatenate(self.client.gather(futures))

    def curvature_norm(self, n_iter=30, seed=0):
        """Power iteration on ``[X 1]^T S [X 1]``, each product one pass on the workers."""
        rng = np.random.default_rng(seed)
        v = rng.standard_normal(self.n_features)
        vb = 1.0
        estimate = 0.0
        for _ in range(n_iter):
            norm = np.sqrt(np.dot(v, v) + vb * vb)
            if norm == 0:
                return 0.0
            v, vb = v / norm, vb / norm
            v, _, vb = self._split(self._reduce(self._map(C.weighted_hess, self._vector(v), vb, self._T)))
            estimate = np.sqrt(np.dot(v, v) + vb * vb)
        return float(estimate)

    def batch_loss_grad(self, w, b, rows):
        raise ValueError("backend 'dask' does not run the 'sgd' solver (one round trip per mini-batch); "
                         "use solver='newton' or 'lbfgs'")

    # ---- n-vectors the backend-agnostic code reads (gathered once, on first use) ----
    @property
    def y(self):
        if self._y is None:
            self._y = _gather_vector(self._y_in)
        return self._y

    @property
    def s(self):
        if self._s is None:
            self._s = _gather_vector(self._s_in)
        return self._s


def _gather_vector(v):
    if is_dask(v):
        v = v.compute()
    return np.asarray(v, dtype=np.float64)


# --------------------------------------------------------------------------------------
# Estimator hooks: dask input bypasses scikit-learn's validate_data (which would
# compute X) and predictions stay lazy.
# --------------------------------------------------------------------------------------
def validate(estimator, X, reset, y=None):
    """Check a dask ``X`` (2-D array, known row chunks, numeric) without computing it.

    Non-float dtypes are cast to float64 lazily (chunk by chunk). ``y`` (an n-vector)
    is returned as a NumPy array: the estimators check labels and start from the best
    constant on the driver. Sets/checks ``n_features_in_`` as ``validate_data`` does.
    """
    _, da, _ = _import()
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
    y = np.asarray(y.compute() if is_dask(y) else y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise ValueError(f"y must be a 1-D array of {X.shape[0]} entries, got shape {y.shape}")
    return X, y


def margins(estimator, X):
    """Lazy ``X coef + intercept`` (a dask array), blockwise as in memory."""
    X = _row_chunked(validate(estimator, X, reset=False))
    coef = np.ravel(estimator.coef_)
    b = float(np.ravel(estimator.intercept_)[0])
    return X.map_blocks(C.margins, coef, b, drop_axis=1, dtype=np.float64)


def predict_labels(estimator, X):
    """Lazy class labels for dask ``X`` (a dask array)."""
    z = estimator.decision_function(X)
    return z.map_blocks(C.labels, estimator.classes_, dtype=estimator.classes_.dtype)
