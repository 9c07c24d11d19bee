"""Parts of kind ``gridsearch``: ``GridSearchCV(LogisticRegression(), {"C": grid}, n_jobs=2)``,
tikhon's estimator against scikit-learn's, each at its defaults, the same folds (5-fold
stratified, scikit-learn's default) and grid: the whole search's wall time, the C each
chose and its mean validation score. Part of the load suite (quiet and loaded).
"""
from __future__ import annotations

import time
import warnings

import numpy as np

__all__ = ["DEFAULT_GRID", "N_JOBS", "run_gridsearch"]

DEFAULT_GRID = (0.01, 0.1, 1.0, 10.0, 100.0)
N_JOBS = 2


def _search(estimator, X, y, grid):
    from sklearn.model_selection import GridSearchCV

    search = GridSearchCV(estimator, {"C": list(grid)}, n_jobs=N_JOBS)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search.fit(X, y)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "best_C": float(search.best_params_["C"]), "best_score": float(search.best_score_),
            "mean_fit_seconds": float(np.mean(search.cv_results_["mean_fit_time"]))}


def _warm_up(X, y):
    """One tiny search, untimed: starts joblib's worker processes (seconds, once) and
    imports what they need, so that the timed searches do not pay for it."""
    import tikhon

    rows = np.concatenate([np.flatnonzero(y == c)[:20] for c in np.unique(y)])
    _search(tikhon.LogisticRegression(), X[rows], y[rows], (1.0, 2.0))


def run_gridsearch(config, dataset, progress):
    """One grid search part on one data set (JSON-ready), with its verdict."""
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    import tikhon

    grid = tuple(config.grid or DEFAULT_GRID)
    X, y = dataset.X, dataset.y
    out = {"name": dataset.name, "part": config.label, "n_samples": int(X.shape[0]), "n_features": int(X.shape[1]),
           "grid": list(grid), "n_jobs": N_JOBS, "runs": []}
    progress.start(2, f"{dataset.name} GridSearchCV [{config.label or 'gridsearch'}]")
    _warm_up(X, y)
    for label, estimator in (("tikhon", tikhon.LogisticRegression()), ("sklearn", SkLogisticRegression())):
        progress.step(f"GridSearchCV({label} LogisticRegression())")
        try:
            out["runs"].append({"label": label, **_search(estimator, X, y, grid)})
        except Exception as exc:
            out["runs"].append({"label": label, "error": f"{type(exc).__name__}: {exc}"})
    ok = sorted((r for r in out["runs"] if "error" not in r), key=lambda r: r["seconds"])
    if ok:
        items = [f"{r['label']} ({r['seconds']:.3g} s{'' if i == 0 else ', %.1fx' % (r['seconds'] / ok[0]['seconds'])}"
                 f", chose C={r['best_C']:g}, score {r['best_score']:.4f})" for i, r in enumerate(ok)]
        out["verdict"] = {"text": "fastest GridSearchCV here: " + items[0] + (", then " + ", ".join(items[1:])
                                                                              if items[1:] else "")}
    else:
        out["verdict"] = {"text": "no grid search finished"}
    progress.finish()
    return out
