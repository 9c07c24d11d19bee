"""Dask rows of ``tikhon bench``: a cluster for the ``dask`` backend, and the data on it.

``--dask-workers N`` starts a ``distributed.LocalCluster`` inside the bench (N worker
processes, one thread each) and closes it when the bench ends; ``--dask-scheduler
ADDRESS`` connects to a running cluster instead (left running). The data of each data
set is then put on the cluster chunked by rows (:func:`to_dask`, dense or CSR blocks,
scattered to the workers once) and the ``dask`` backend's cells fit on it; the scoring, the reference
optimum and the anchors use the same data in memory.
"""
from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["DEFAULT_CHUNK_ROWS", "dask_client", "to_dask"]

DEFAULT_CHUNK_ROWS = None  # None: rows split evenly, two chunks per worker


@contextlib.contextmanager
def dask_client(workers=None, scheduler=None, memory_limit="auto"):
    """A ``distributed.Client`` for the block (``None`` when neither is given). Raises
    ``ImportError`` naming the extra when dask or distributed is missing."""
    if not workers and not scheduler:
        yield None
        return
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(f'dask rows need dask and distributed: pip install "tikhon[dask]" ({exc})') from None
    cluster = None
    if scheduler:
        client = distributed.Client(scheduler, timeout="20s")
    else:
        cluster = distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                           dashboard_address=":0", memory_limit=memory_limit)
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def describe_client(client):
    """Workers and threads of the cluster (JSON-ready)."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    return {"scheduler": info.get("address"), "workers": len(workers),
            "threads_per_worker": sorted({w.get("nthreads") for w in workers.values()}),
            "memory_limit_per_worker": sorted({w.get("memory_limit") for w in workers.values()})}


def chunk_rows(n, client, rows=None):
    """Rows per chunk: ``rows``, else ``n`` split into two chunks per worker."""
    if rows:
        return int(rows)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    return max(1, -(-n // (2 * workers)))


def to_dask(X, client, rows=None):
    """``X`` as a dask array chunked by rows (dense or CSR blocks) whose chunks are already on
    the workers (scattered once: the graph holds references, not the data)."""
    import dask.array as da

    rows = chunk_rows(X.shape[0], client, rows)
    blocks = [X[start:start + rows] for start in range(0, X.shape[0], rows)]
    futures = client.scatter(blocks)
    meta = X[:0]
    return da.concatenate([da.from_delayed(f, shape=b.shape, dtype=X.dtype, meta=meta)
                           for f, b in zip(futures, blocks)], axis=0)


def small_slice(Xd, rows):
    """The rows ``rows`` (sorted indices) of a dask array, as a dask array of one chunk."""
    part = Xd[np.asarray(rows)]
    return part.rechunk({0: -1})
