"""Command line: ``tikhon bench`` (the main job).

Until the benchmark suite lands, ``bench`` fits L2 logistic regression on the
embedded a9a data set with every available backend and solver and prints a report.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np


def _bench(args):
    import tikhon
    from tikhon.datasets import load_a9a

    X, y = load_a9a()
    backends = args.backend.split(",") if args.backend else ["numpy"]
    print(f"a9a: {X.shape[0]} x {X.shape[1]} CSR, {X.nnz} nonzeros")
    print(f"{'backend':8} {'solver':7} {'C':>6} {'seconds':>8} {'iters':>6} {'objective':>18} {'rel. gap':>9} {'train acc':>9}")
    for backend in backends:
        for solver in ("newton", "lbfgs"):
            for C in args.C:
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model = tikhon.LogisticRegression(C=C, solver=solver, backend=backend, tol=args.tol,
                                                      max_iter=10000).fit(X, y)
                seconds = time.perf_counter() - t0
                print(f"{model.backend_:8} {solver:7} {C:6g} {seconds:8.3f} {model.n_iter_:6d} "
                      f"{model.objective_:18.10f} {model.duality_gap_:9.2e} {model.score(X, y):9.4f}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tikhon", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="fit and report on the embedded a9a data set")
    bench.add_argument("--backend", default=None, help="comma-separated backend names (default: numpy)")
    bench.add_argument("--C", type=float, nargs="+", default=[0.01, 1.0, 100.0])
    bench.add_argument("--tol", type=float, default=1e-8)
    args = parser.parse_args(argv)
    if args.command == "bench":
        return _bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
