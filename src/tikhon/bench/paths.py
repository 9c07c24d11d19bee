"""Parts of kind ``path``: a whole regularization path, tikhon against scikit-learn.

Same problem for both: logistic regression (two classes) over the part's grid of C
(``grid``, strongest penalty first), the same data and tolerance. tikhon:
``regularization_path(X, y, Cs=grid, tol=tol)`` (one backend, Newton-CG warm-started
from the neighbour). scikit-learn: ``_logistic_regression_path``, the function
``LogisticRegressionCV`` calls per fold (warm-started in the grid's order), with
``lbfgs``, ``newton-cg`` and, below 1000 features, ``newton-cholesky`` (the sklearn
anchor's path variants).

Quality: every solution is scored by the same evaluator; at each grid point ``P*`` is
the lowest objective any run reached, and each run reports its largest relative
suboptimality over the grid and how many points it left unconverged. Timings: wall
clock and process CPU time.
"""
from __future__ import annotations

import time
import warnings

import numpy as np

from .measure import Evaluator, suboptimality

__all__ = ["DEFAULT_PATH_GRID", "run_path"]

DEFAULT_PATH_GRID = tuple(np.logspace(-3, 3, 20))
SKLEARN_PATH_SOLVERS = ("lbfgs", "newton-cg", "newton-cholesky")


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def _tikhon(X, y, grid, tol, max_iter, fit_intercept):
    import tikhon

    def fit():
        return tikhon.regularization_path(X, y, Cs=grid, tol=tol, max_iter=max_iter, fit_intercept=fit_intercept)

    path, seconds, cpu = _timed(fit)
    return {"label": f"tikhon/{path.backend}/{path.solver}", "kind": "tikhon", "seconds": seconds,
            "cpu_seconds": cpu, "coefs": path.coefs, "intercepts": path.intercepts,
            "unconverged": int((~np.asarray(path.converged)).sum()), "iterations": int(np.sum(path.n_iter))}


def _sklearn(X, y, grid, tol, max_iter, fit_intercept, solver):
    from sklearn.linear_model._logistic import _logistic_regression_path

    def fit():
        return _logistic_regression_path(X, y, classes=np.unique(y), Cs=list(grid), fit_intercept=fit_intercept,
                                         max_iter=max_iter, tol=tol, solver=solver)

    (coefs, _, n_iter), seconds, cpu = _timed(fit)
    coefs = np.asarray(coefs).reshape(len(grid), -1)
    d = X.shape[1]
    return {"label": f"sklearn/{solver}", "kind": "anchor", "seconds": seconds, "cpu_seconds": cpu,
            "coefs": coefs[:, :d], "intercepts": coefs[:, d] if fit_intercept else np.zeros(len(grid)),
            "unconverged": int(np.sum(np.asarray(n_iter).ravel() >= max_iter)),
            "iterations": int(np.sum(n_iter))}


def run_path(config, dataset, progress):
    """One path part on one data set: the figures and a verdict (JSON-ready)."""
    from .._datafiles import infer_task
    from .runner import _targets

    X, y = dataset.X, dataset.y
    grid = np.asarray(config.grid or DEFAULT_PATH_GRID, dtype=np.float64)
    grid = np.sort(grid)  # weakest C (strongest penalty) first: both sides warm-start along it
    tol = float(config.tol or 1e-6)
    max_iter = int(config.max_iter or 1000)
    out = {"name": dataset.name, "part": config.label, "n_samples": int(X.shape[0]),
           "n_features": int(X.shape[1]), "grid": grid.tolist(), "tol": tol, "max_iter": max_iter,
           "fit_intercept": config.fit_intercept, "runs": [], "skipped": {}}
    found = infer_task(y)
    task, n_classes = found.task, found.n_classes
    if task != "logistic" or n_classes != 2:
        out["skipped"]["path"] = f"the path part runs two-class logistic regression; the labels have " \
                                 f"{n_classes or np.unique(y).size} values"
        return out
    solvers = [s for s in SKLEARN_PATH_SOLVERS
               if not (s == "newton-cholesky" and X.shape[1] >= 1000)]
    wanted = config.anchors.get("sklearn", None) if "sklearn" in config.anchors else []
    if isinstance(wanted, list):
        solvers = [s for s in solvers if s in wanted]
    progress.start(1 + len(solvers), f"{dataset.name} path [{config.label or 'path'}]")
    import tikhon

    tikhon.regularization_path(X[:200], y[:200], Cs=[1.0])  # loads the backend modules, untimed
    progress.step("tikhon regularization_path")
    runs = [_tikhon(X, y, grid, tol, max_iter, config.fit_intercept)]
    for solver in solvers:
        progress.step(f"sklearn path {solver}")
        try:
            runs.append(_sklearn(X, y, grid, tol, max_iter, config.fit_intercept, solver))
        except Exception as exc:
            runs.append({"label": f"sklearn/{solver}", "kind": "anchor", "error": f"{type(exc).__name__}: {exc}"})
    y_signed = _targets({"loss": "logistic"}, y)[0]
    objectives = []
    for run in runs:
        if "error" in run:
            continue
        values = [Evaluator(X, y_signed, "logistic", 1.0 / C, config.fit_intercept)(w, b)
                  for C, w, b in zip(grid, run["coefs"], run["intercepts"])]
        run["objectives"] = values
        objectives.append(values)
    best = np.min(np.array(objectives), axis=0) if objectives else None
    for run in runs:
        run.pop("coefs", None)
        run.pop("intercepts", None)
        if "objectives" in run:
            run["max_relative_suboptimality"] = float(max(suboptimality(v, b) for v, b in zip(run["objectives"], best)))
    out["runs"] = runs
    out["verdict"] = _verdict(runs, len(grid), tol)
    progress.finish()
    return out


def _verdict(runs, n_grid, tol):
    ok = sorted((r for r in runs if "error" not in r), key=lambda r: r["seconds"])
    if not ok:
        return {"text": "no path finished", "ranking": []}
    first = ok[0]["seconds"]
    ranking = [{"label": r["label"], "seconds": r["seconds"], "ratio": r["seconds"] / first,
                "max_relative_suboptimality": r["max_relative_suboptimality"]} for r in ok]
    items = [f"{e['label']} ({e['seconds']:.3g} s{'' if i == 0 else ', %.1fx' % e['ratio']}, worst subopt "
             f"{e['max_relative_suboptimality']:.0e})" for i, e in enumerate(ranking)]
    text = f"fastest whole path ({n_grid} C, tol {tol:g}) here: {items[0]}"
    if items[1:]:
        text += ", then " + ", ".join(items[1:])
    return {"text": text, "ranking": ranking}
