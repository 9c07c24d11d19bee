"""Whole regularization path, tikhon vs scikit-learn: 20 values of C on a9a and reuters.

    python benchmarks/path_report.py                          # a9a and reuters, 20 C in [1e-3, 1e3], tol 1e-6
    python benchmarks/path_report.py --data a9a --n-Cs 10 --tol 1e-8

Same problem for both: binary L2 logistic regression with a free intercept
(``sum_i loss_i + ||w||^2 / (2 C)``), the same CSR float64 data, the same grid and
the same stopping rule: tikhon's certificate ``||grad P||_inf / n <= tol`` is
scikit-learn's lbfgs ``gtol`` test on its mean-scaled objective.

* tikhon: ``regularization_path(X, y, Cs=grid, tol=tol)`` — one backend (``auto``:
  the compiled one for CSR) serves the whole path, Newton-CG warm-started from the
  neighbour, strongest penalty first.
* scikit-learn: ``sklearn.linear_model._logistic._logistic_regression_path``, the
  function ``LogisticRegressionCV`` calls per fold (warm-started in the grid's order),
  with its default solver ``lbfgs``, ``newton-cg`` (Newton-CG with Hessian-vector
  products, as tikhon's) and, for fewer than 1000 features, ``newton-cholesky``;
  ``max_iter`` as given.

Quality check: both sides' solutions are evaluated by tikhon's objective module; the
table gives the largest relative objective difference ``(P_sklearn - P_tikhon) /
P_tikhon`` over the grid (positive: tikhon's solution is better) and how many grid
points each side left unconverged. Timings: wall clock and process CPU time (the
latter is less disturbed by other jobs on a shared machine, but counts every thread
of a multi-threaded BLAS); compare columns within one run (both sides run back to
back per data set).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def load(name):
    from conftest import load_shared  # reads ../shared/data (pytest.skip -> a clear exit here)

    try:
        return load_shared(name)
    except BaseException as exc:  # pytest's Skipped derives from BaseException
        raise SystemExit(f"path_report: cannot load {name}: {exc}") from None


def objective_values(X, y, coefs, intercepts, Cs):
    """tikhon's ``P`` at each (w, b): one judge for both sides."""
    from tikhon.backends import get_backend
    from tikhon.objective import Objective

    t = np.where(y == np.unique(y)[1], 1.0, -1.0)
    be = get_backend("numpy", X)(X, t, np.ones(X.shape[0]), Objective("logistic", 1.0).pointwise)
    out = []
    for w, b, C in zip(coefs, intercepts, Cs):
        data_loss, _, _ = be.loss_grad(np.asarray(w, dtype=np.float64), float(b))
        out.append(Objective("logistic", 1.0 / C).value(data_loss, w))
    return np.array(out)


def run_tikhon(X, y, Cs, tol, max_iter):
    import tikhon

    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = tikhon.regularization_path(X, y, Cs=Cs, tol=tol, max_iter=max_iter)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return seconds, cpu, path.coefs, path.intercepts, int((~path.converged).sum()), path


def run_sklearn(X, y, Cs, tol, max_iter, solver):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model._logistic import _logistic_regression_path

    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # counted from n_iter below
        coefs, _, n_iter = _logistic_regression_path(
            X, y, classes=np.unique(y), Cs=Cs, fit_intercept=True, max_iter=max_iter, tol=tol, solver=solver)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    coefs = np.asarray(coefs).reshape(len(Cs), -1)
    unconverged = int(np.sum(np.asarray(n_iter).ravel() >= max_iter))
    return seconds, cpu, coefs[:, :-1], coefs[:, -1], unconverged, n_iter


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="a9a,reuters", help="comma-separated: a9a, reuters (../shared/data)")
    parser.add_argument("--n-Cs", type=int, default=20)
    parser.add_argument("--C-min", type=float, default=1e-3)
    parser.add_argument("--C-max", type=float, default=1e3)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--max-iter", type=int, default=1000)
    parser.add_argument("--sklearn-solvers", default="lbfgs,newton-cg,newton-cholesky",
                        help="scikit-learn solvers (newton-cholesky only where n_features < 1000: it "
                             "factorizes a d x d Hessian)")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import tikhon

    Cs = np.logspace(np.log10(args.C_min), np.log10(args.C_max), args.n_Cs)
    print(f"grid: {args.n_Cs} values of C in [{args.C_min:g}, {args.C_max:g}], tol {args.tol:g}, "
          f"max_iter {args.max_iter}; tikhon {tikhon.__version__} (backends {tikhon.available_backends()})")
    rows = []
    for name in args.data.split(","):
        X, y = load(name)
        # warm-up: loads the backend modules (no JIT on the default CSR backend), not timed
        tikhon.regularization_path(X[:200], y[:200], Cs=[1.0])
        t_sec, t_cpu, t_coefs, t_b, t_unconv, path = run_tikhon(X, y, Cs, args.tol, args.max_iter)
        P_t = objective_values(X, y, t_coefs, t_b, Cs)
        row = {"data": name, "shape": list(X.shape), "nnz": int(X.nnz), "tikhon_seconds": t_sec,
               "tikhon_cpu_seconds": t_cpu,
               "tikhon_backend": path.backend, "tikhon_solver": path.solver,
               "tikhon_newton_steps": int(path.n_iter.sum()), "tikhon_unconverged": t_unconv,
               "tikhon_max_gap": float(path.duality_gaps.max()), "sklearn": {}}
        print(f"\n{name}: {X.shape[0]} x {X.shape[1]}, nnz {X.nnz}")
        print(f"  tikhon  {path.backend}/{path.solver:10s} {t_sec:8.2f} s wall {t_cpu:8.2f} s CPU  "
              f"({int(path.n_iter.sum())} Newton steps, {t_unconv} unconverged, "
              f"max relative duality gap {path.duality_gaps.max():.1e})")
        for solver in args.sklearn_solvers.split(","):
            if solver == "newton-cholesky" and X.shape[1] >= 1000:
                continue
            s_sec, s_cpu, s_coefs, s_b, s_unconv, _ = run_sklearn(X, y, Cs, args.tol, args.max_iter, solver)
            P_s = objective_values(X, y, s_coefs, s_b, Cs)
            diff = float(np.max((P_s - P_t) / P_t))
            row["sklearn"][solver] = {"seconds": s_sec, "cpu_seconds": s_cpu, "unconverged": s_unconv,
                                      "max_rel_objective_diff": diff, "ratio": s_sec / t_sec,
                                      "cpu_ratio": s_cpu / t_cpu}
            print(f"  sklearn {solver:17s} {s_sec:8.2f} s wall {s_cpu:8.2f} s CPU  ({s_unconv} unconverged; "
                  f"max (P_sk - P_tikhon)/P_tikhon {diff:+.1e})   sklearn/tikhon = {s_sec / t_sec:.2f}x wall, "
                  f"{s_cpu / t_cpu:.2f}x CPU")
        rows.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps({"grid": Cs.tolist(), "tol": args.tol, "rows": rows}, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
