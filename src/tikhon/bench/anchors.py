"""External anchors: scikit-learn and LIBLINEAR solving the same problem.

Each anchor variant is run at a sweep of its own tolerances, loosest first; every run
gives one ``(seconds, objective)`` point (whole ``fit``/``train`` call, the solution
scored by tikhon's objective). The sweep stops when a run reaches the tightest
suboptimality level, stops improving, or the variant's time budget is spent.

Problem mapping (tikhon: ``sum_i loss_i + lam/2 ||w||^2``, unpenalized intercept):

* scikit-learn ``LogisticRegression(C=1/lam)``: the same problem; ``Ridge(alpha=lam)``:
  twice the objective, same minimizer.
* LIBLINEAR logistic ``-s 0`` (primal trust-region Newton) with ``-B 1 -R`` (bias
  feature, bias not regularized): ``1/lam`` times tikhon's objective with ``-c 1/lam``;
  ``-s 7`` (dual CD) regularizes a bias, so it is run only without an intercept.
  Ridge: ``-s 11 -p 0`` (primal, L2-loss SVR with zero epsilon = least squares) with
  ``-c 1/(2 lam)``, ``-B 1 -R`` for the intercept; ``-s 12`` (dual) only without one.
"""
from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .measure import clock

__all__ = ["ANCHORS", "Variant", "anchor_status", "variants"]

ANCHORS = ("sklearn", "liblinear")

_SK_TOLS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
_LL_TOLS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8)


def anchor_status(name):
    """``None`` if the anchor can run here, else why not."""
    module = {"sklearn": "sklearn", "liblinear": "liblinear"}[name]
    if importlib.util.find_spec(module) is None:
        pip = {"sklearn": "scikit-learn", "liblinear": "liblinear-official"}[name]
        return f"{module} is not installed (pip install {pip})"
    if name == "liblinear":
        try:
            importlib.import_module("liblinear.liblinearutil")
        except Exception as exc:  # the shared library may fail to load
            return f"liblinear cannot be imported: {exc}"
    return None


@dataclass
class Variant:
    """One anchor solver: ``run(tol) -> (coef, intercept, n_iter)``; ``tols`` loosest first."""

    anchor: str
    label: str
    run: object
    tols: tuple
    setup_seconds: float = 0.0
    notes: list = field(default_factory=list)


def _sklearn_variants(loss, lam, fit_intercept, X, y_signed):
    from sklearn import linear_model

    out = []
    if loss == "logistic":
        solvers = ["lbfgs"]
        if X.shape[1] <= 2000:  # newton-cholesky forms the d x d Hessian
            solvers.append("newton-cholesky")
        for solver in solvers:
            def run(tol, solver=solver):
                model = linear_model.LogisticRegression(C=1.0 / lam, solver=solver, tol=tol, max_iter=100000,
                                                        fit_intercept=fit_intercept)
                model.fit(X, y_signed)
                return model.coef_.ravel(), float(model.intercept_[0]) if fit_intercept else 0.0, \
                    int(np.max(model.n_iter_))
            out.append(Variant("sklearn", f"sklearn/{solver}", run, _SK_TOLS))
    else:
        solvers = ["auto"]
        for solver in solvers:
            def run(tol, solver=solver):
                model = linear_model.Ridge(alpha=lam, solver=solver, tol=tol, max_iter=100000,
                                           fit_intercept=fit_intercept)
                model.fit(X, y_signed)
                n_iter = model.n_iter_
                n_iter = int(np.max(n_iter)) if n_iter is not None else 0  # direct solvers: none
                return model.coef_.ravel(), float(model.intercept_) if fit_intercept else 0.0, n_iter
            out.append(Variant("sklearn", f"sklearn/ridge-{solver}", run, _SK_TOLS))
    return out


def _liblinear_variants(loss, lam, fit_intercept, X, y_signed):
    from liblinear.liblinearutil import parameter, problem, train

    t0 = clock()
    Xc = X if sp.issparse(X) else sp.csr_matrix(X)  # dense input goes through a Python loop otherwise
    prob = problem(np.asarray(y_signed, dtype=np.float64), sp.csr_matrix(Xc, dtype=np.float64))
    setup = clock() - t0
    bias = "-B 1 -R" if fit_intercept else ""
    if loss == "logistic":
        c = 1.0 / lam
        kinds = [("0", "primal TRON")] + ([] if fit_intercept else [("7", "dual CD")])
        extra = ""
    else:
        c = 1.0 / (2.0 * lam)
        kinds = [("11", "primal TRON")] + ([] if fit_intercept else [("12", "dual CD")])
        extra = "-p 0"

    out = []
    for s, what in kinds:
        def run(tol, s=s):
            model = train(prob, parameter(f"-s {s} -c {c!r} -e {tol!r} {extra} {bias} -q"))
            w, b = model.get_decfun()
            w = np.asarray(w, dtype=np.float64)
            labels = model.get_labels() if loss == "logistic" else [1]
            sign = 1.0 if labels[0] == 1 else -1.0  # LIBLINEAR's decision is for its first label
            return sign * w, sign * float(b) if fit_intercept else 0.0, 0
        variant = Variant("liblinear", f"liblinear/-s{s}", run, _LL_TOLS, setup_seconds=setup,
                          notes=[f"LIBLINEAR -s {s} ({what}) {bias}".strip(),
                                 "time excludes building LIBLINEAR's problem "
                                 f"({setup:.3g} s, once per data set)"])
        out.append(variant)
    return out


def variants(name, loss, lam, fit_intercept, X, y_signed):
    """The runnable variants of anchor ``name`` for one problem."""
    if name == "sklearn":
        return _sklearn_variants(loss, lam, fit_intercept, X, y_signed)
    if name == "liblinear":
        return _liblinear_variants(loss, lam, fit_intercept, X, y_signed)
    raise ValueError(name)


def run_variant(variant, evaluate, reference_hint, tightest_level, budget):
    """Sweep ``variant.tols``; returns a list of run records (seconds, objective, tol, n_iter)."""
    from .measure import suboptimality

    runs = []
    spent = 0.0
    best = np.inf
    for tol in variant.tols:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = clock()
            coef, intercept, n_iter = variant.run(tol)
            seconds = clock() - t0
        value = evaluate(coef, intercept)
        runs.append({"tol": tol, "seconds": seconds, "objective": value, "iterations": n_iter})
        spent += seconds
        if reference_hint is not None and suboptimality(value, reference_hint) <= tightest_level:
            break
        if value >= best - 1e-15 * abs(best):  # no progress from a tighter tolerance
            break
        best = min(best, value)
        if spent + 2.0 * seconds > budget:  # a tighter tolerance costs at least about as much again
            break
    return runs
