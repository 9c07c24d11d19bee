"""Dask backend report: per-pass overhead against in-memory Numba, and a fit on data
larger than the workers' memory. Ratios come from one run (interleaved measurements).

    python benchmarks/dask_report.py                 # 1e6 x 100, then the scale fit
    python benchmarks/dask_report.py --n 200000 --skip-scale   # quick

1. Overhead: the same n x d float64 data (generated per chunk on the workers, persisted,
   and computed once to the driver for the in-memory side). Time per gradient pass
   (``loss_grad``) and per Hessian-vector product of ``DaskBackend`` on a LocalCluster of
   2 worker processes x 1 thread vs ``NumbaBackend`` in memory (Numba's default threads);
   medians of interleaved repeats. dask-ml's LogisticRegression is timed on the same data
   only if ``dask_ml`` is importable (it is not installed by tikhon).
2. Scale: a logistic fit (L-BFGS, tol 1e-5) on data 4x one worker's ``memory_limit`` (2 workers), generated
   per chunk by a seeded ``map_blocks`` (never materialized on the driver): the chunks do
   not fit, so each pass regenerates them; the peak RSS of each worker process is sampled
   during the fit.
"""
from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import numpy as np


def _timed(fn, repeat):
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def _cluster(**kw):
    import distributed

    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", **kw)
    return cluster, distributed.Client(cluster)


def _chunk_data(block_id, rows, d, seed, dtype):
    """One seeded row block of X (uniform, unit variance: cheap to regenerate) for a dask
    ``map_blocks``."""
    rng = np.random.default_rng([seed, block_id[0]])
    X = rng.random((rows, d), dtype=dtype)
    X -= 0.5
    X *= np.sqrt(12.0)
    return X


def _labels(X, w_true, seed, block_id=None):
    rng = np.random.default_rng([seed + 1, block_id[0]])
    z = X @ w_true.astype(X.dtype) + 0.5 * rng.standard_normal(X.shape[0])
    return np.where(z > 0, 1.0, -1.0)


def generated(n, d, rows, seed=0, dtype=np.float64):
    """``(X, y)`` dask arrays generated per chunk on the workers."""
    import dask.array as da

    chunks = [rows] * (n // rows) + ([n % rows] if n % rows else [])
    X = da.map_blocks(lambda block_id=None, block_info=None: _chunk_data(
        block_id, block_info[None]["chunk-shape"][0], d, seed, dtype),
        chunks=(tuple(chunks), (d,)), dtype=dtype, meta=np.empty((0, 0), dtype=dtype))
    w_true = np.random.default_rng(seed).standard_normal(d) / np.sqrt(d)
    y = X.map_blocks(_labels, w_true, seed, drop_axis=1, dtype=np.float64, meta=np.empty(0))
    return X, y


def overhead(n, d, rows, repeat):
    import dask

    from tikhon.backends.dask import DaskBackend
    from tikhon.backends.numba import NumbaBackend
    from tikhon.objective import LogisticLoss

    cluster, client = _cluster()
    try:
        X, y = generated(n, d, rows)
        X, y = client.persist([X, y])
        dask.compute(X.sum())  # wait for the persisted chunks
        t = time.perf_counter()
        backend = DaskBackend(X, y, np.ones(n), LogisticLoss, client=client)
        build = time.perf_counter() - t
        Xm, ym = dask.compute(X, y)  # the in-memory side: the same data on the driver
        memory = NumbaBackend(Xm, ym, np.ones(n), LogisticLoss)
        rng = np.random.default_rng(1)
        w, v = rng.standard_normal(d) * 0.1, rng.standard_normal(d)
        for be in (memory, backend):  # warm-up: kernel loading on every process
            be.loss_grad(w, 0.1)
            be.loss_grad_hessian(w, 0.1)[3](v, 0.0)
        prods = {be: be.loss_grad_hessian(w, 0.1)[3] for be in (memory, backend)}
        times = {("numba", "grad"): [], ("dask", "grad"): [], ("numba", "hess"): [], ("dask", "hess"): []}
        for _ in range(repeat):  # interleaved: load changes affect both sides alike
            for name, be in (("numba", memory), ("dask", backend)):
                times[(name, "grad")] += _timed(lambda: be.loss_grad(w, 0.1), 1)
                times[(name, "hess")] += _timed(lambda: prods[be](v, 0.0), 1)
        check = np.max(np.abs(backend.loss_grad(w, 0.1)[1] - memory.loss_grad(w, 0.1)[1]))
        med = {k: statistics.median(v) for k, v in times.items()}
        result = {
            "n": n, "d": d, "chunk_rows": rows, "n_chunks": len(X.chunks[0]), "repeat": repeat,
            "units_per_pass": len(backend._units), "backend_build_s": build,
            "numba_threads": __import__("numba").get_num_threads(),
            "grad_numba_s": med[("numba", "grad")], "grad_dask_s": med[("dask", "grad")],
            "grad_ratio": med[("dask", "grad")] / med[("numba", "grad")],
            "hess_numba_s": med[("numba", "hess")], "hess_dask_s": med[("dask", "hess")],
            "hess_ratio": med[("dask", "hess")] / med[("numba", "hess")],
            "max_abs_grad_difference": float(check),
        }
        result["dask_ml"] = _dask_ml(X, y, Xm, ym)
        return result
    finally:
        client.close()
        cluster.close()


def _dask_ml(X, y, Xm, ym):
    try:
        from dask_ml.linear_model import LogisticRegression as DaskMLLogistic
    except ImportError as exc:
        return f"skipped: dask_ml is not importable ({exc})"
    import tikhon

    t = time.perf_counter()
    DaskMLLogistic(C=1.0, solver="lbfgs", max_iter=100).fit(X, (y > 0).astype(int))
    dml = time.perf_counter() - t
    t = time.perf_counter()
    tikhon.LogisticRegression(C=1.0, solver="lbfgs").fit(X, y)
    tk = time.perf_counter() - t
    return {"dask_ml_lbfgs_fit_s": dml, "tikhon_dask_lbfgs_fit_s": tk}


def scale(memory_limit_mb, d, rows, solver, factor=4.0):
    import tikhon

    limit = memory_limit_mb * 2**20
    n = int(factor * limit / (8 * d))
    cluster, client = _cluster(memory_limit=limit)
    peaks, stop = {}, threading.Event()

    def rss():
        import psutil

        return psutil.Process().memory_info().rss

    def sample():
        while not stop.is_set():
            try:
                for addr, value in client.run(rss).items():
                    peaks[addr] = max(peaks.get(addr, 0), value)
            except Exception:  # noqa: BLE001 - a sample lost to a busy worker is not an error
                pass
            stop.wait(0.2)

    try:
        X, y = generated(n, d, rows, seed=7)
        baseline = client.run(rss)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t = time.perf_counter()
        model = tikhon.LogisticRegression(C=1.0, solver=solver, tol=1e-5).fit(X, y)
        seconds = time.perf_counter() - t
        stop.set()
        sampler.join()
        return {
            "n": n, "d": d, "data_bytes": int(X.nbytes), "worker_memory_limit_bytes": limit,
            "data_over_one_worker_limit": X.nbytes / limit, "chunk_rows": rows,
            "fit_s": seconds, "solver": model.solver_, "n_iter": model.n_iter_,
            "converged": bool(model.converged_), "duality_gap": float(model.duality_gap_),
            "worker_rss_at_start_bytes": sorted(baseline.values()),
            "peak_worker_rss_bytes": sorted(peaks.values()),
        }
    finally:
        stop.set()
        client.close()
        cluster.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=100)
    parser.add_argument("--rows", type=int, default=125_000, help="rows per chunk (overhead)")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--memory-limit-mb", type=int, default=600, help="per worker (scale)")
    parser.add_argument("--scale-solver", default="lbfgs", help="solver of the scale fit (one pass per step)")
    parser.add_argument("--scale-rows", type=int, default=25_000, help="rows per chunk (scale)")
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args(argv)
    report = {}
    if not args.skip_overhead:
        o = overhead(args.n, args.d, args.rows, args.repeat)
        report["overhead"] = o
        print(f"overhead: {o['n']} x {o['d']} float64, {o['n_chunks']} chunks, 2 workers x 1 thread "
              f"({o['units_per_pass']} tasks per pass); numba in memory on {o['numba_threads']} threads")
        print(f"  gradient pass:   numba {o['grad_numba_s'] * 1e3:8.1f} ms   dask {o['grad_dask_s'] * 1e3:8.1f} ms"
              f"   ratio {o['grad_ratio']:.2f}x")
        print(f"  Hessian product: numba {o['hess_numba_s'] * 1e3:8.1f} ms   dask {o['hess_dask_s'] * 1e3:8.1f} ms"
              f"   ratio {o['hess_ratio']:.2f}x")
        print(f"  max |grad difference| {o['max_abs_grad_difference']:.2e}; dask-ml: {o['dask_ml']}")
    if not args.skip_scale:
        s = scale(args.memory_limit_mb, args.d, args.scale_rows, args.scale_solver)
        report["scale"] = s
        mb = 2**20
        print(f"scale: {s['n']} x {s['d']} float64 = {s['data_bytes'] / mb:.0f} MiB = "
              f"{s['data_over_one_worker_limit']:.1f}x one worker's memory_limit ({s['worker_memory_limit_bytes'] / mb:.0f} MiB)")
        print(f"  fit {s['fit_s']:.1f} s, {s['solver']} {s['n_iter']} iterations, converged {s['converged']}, "
              f"relative duality gap {s['duality_gap']:.2e}")
        print(f"  worker RSS at start {[round(v / mb) for v in s['worker_rss_at_start_bytes']]} MiB, "
              f"peak during the fit {[round(v / mb) for v in s['peak_worker_rss_bytes']]} MiB")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
