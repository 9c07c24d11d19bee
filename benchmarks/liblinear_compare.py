"""tikhon's dual CD against LIBLINEAR (-s 7) and scikit-learn: time to 1e-8 relative suboptimality.

    python benchmarks/liblinear_compare.py                       # a9a, reuters, synthetic text; C in 0.1 1 10 100
    python benchmarks/liblinear_compare.py --data a9a --C 1 10   # a subset

Same problem for all: L2 logistic regression, no intercept (LIBLINEAR -s 7, no bias,
``C`` as given), the same CSR float64 data. The optimum ``P*`` of each cell is tikhon's
Newton-CG at tol=1e-10 (numpy backend), whose relative duality gap is printed.

* tikhon: ``LogisticRegression(solver="dual_cd", backend="cython", tol=1e-8,
  fit_intercept=False)``; its stopping rule is the certified relative gap, so one fit
  at tol=1e-8 is the time to 1e-8 (checked against ``P*``).
* LIBLINEAR: ``train(problem, "-s 7 -c C -e eps -q")`` for eps = 1e-1, 3e-2, 1e-2, ...
  (its stopping rule is a projected-gradient size, not a suboptimality); the time
  reported is that of the *largest* eps whose model reaches 1e-8 — an oracle choice
  that favours LIBLINEAR. Building LIBLINEAR's ``problem`` (its copy of X) is not timed.
  ``>`` marks a cell where no eps reached 1e-8 (LIBLINEAR stops at 1000 passes; the
search stops once three eps in a row give the same model) and gives the time
and suboptimality of the last attempt.
* scikit-learn: its best solver for the shape (``newton-cholesky`` for fewer than 1000
  features, else ``lbfgs``), tol = 1e-4, 1e-6, ... until 1e-8 is reached; the time of
  that fit.

Peak extra memory: ``tracemalloc`` peak during the tikhon fit (numpy and Python
allocations; tikhon's extension allocates through numpy), as a fraction of the CSR's
bytes (data + indices + indptr). Timings are wall-clock on a shared machine: compare
columns within one run only.
"""
from __future__ import annotations

import argparse
import lzma
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scipy.sparse as sp

import tikhon
from tikhon.objective import LOSSES, Objective

from synthetic import text_csr

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TARGET = 1e-8


def load(name, seed=0):
    from sklearn.datasets import load_svmlight_file

    if name == "a9a":
        with lzma.open(DATA / "a9a.xz") as f:
            X, y = load_svmlight_file(f, n_features=123)
    elif name == "reuters":
        X, y = load_svmlight_file(str(DATA / "reuters.trn.bz2"), n_features=8315)
    elif name == "synthetic":
        X, y = text_csr(seed=seed)
    else:
        raise KeyError(name)
    return sp.csr_matrix(X, dtype=np.float64), np.where(y > 0, 1.0, -1.0)


def primal(X, y, C, w):
    z = np.asarray(X @ w).ravel()
    return Objective("logistic", 1.0 / C, False).value(LOSSES["logistic"].value(y, z).sum(), w)


def optimum(X, y, C):
    m = tikhon.LogisticRegression(C=C, fit_intercept=False, solver="newton", backend="numpy",
                                  tol=1e-10, max_iter=1000).fit(X, y)
    return primal(X, y, C, m.coef_.ravel()), m.duality_gap_


def run_tikhon(X, y, C):
    model = tikhon.LogisticRegression(C=C, fit_intercept=False, solver="dual_cd", backend="cython",
                                      tol=TARGET, max_iter=100_000)
    t = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - t, primal(X, y, C, model.coef_.ravel()), model


def tikhon_memory(X, y, C):
    model = tikhon.LogisticRegression(C=C, fit_intercept=False, solver="dual_cd", backend="cython",
                                      tol=TARGET, max_iter=100_000)
    tracemalloc.start()
    model.fit(X, y)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)


def run_liblinear(prob, X, y, C, pstar):
    from liblinear.liblinearutil import parameter, train

    sub, same = np.inf, 0
    for eps in (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7, 1e-8):
        t = time.perf_counter()
        m = train(prob, parameter(f"-s 7 -c {C} -e {eps} -q"))
        elapsed = time.perf_counter() - t
        w, _ = m.get_decfun()
        w = np.asarray(w[:X.shape[1]])
        if m.get_labels()[0] != 1:
            w = -w
        previous, sub = sub, (primal(X, y, C, w) - pstar) / pstar
        if sub <= TARGET:
            return elapsed, sub, eps, True
        same = same + 1 if sub == previous else 0
        if same >= 2:  # three identical models: LIBLINEAR stops at its 1000-pass cap
            break
    return elapsed, sub, eps, False


def run_sklearn(X, y, C, pstar):
    from sklearn.linear_model import LogisticRegression

    solver = "newton-cholesky" if X.shape[1] < 1000 else "lbfgs"
    for tol in (1e-4, 1e-6, 1e-8, 1e-10, 1e-12):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            m = LogisticRegression(C=C, fit_intercept=False, solver=solver, tol=tol, max_iter=100_000).fit(X, y)
            elapsed = time.perf_counter() - t
        sub = (primal(X, y, C, m.coef_.ravel()) - pstar) / pstar
        if sub <= TARGET:
            return elapsed, sub, f"{solver} tol={tol:g}", True
    return elapsed, sub, f"{solver} tol={tol:g}", False


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", nargs="+", default=["a9a", "reuters", "synthetic"])
    parser.add_argument("--C", nargs="+", type=float, default=[0.1, 1.0, 10.0, 100.0])
    parser.add_argument("--no-sklearn", action="store_true")
    args = parser.parse_args(argv)
    from liblinear.liblinearutil import problem

    header = (f"{'data':10s} {'C':>6s} {'tikhon s':>9s} {'liblinear s':>12s} {'ratio':>6s} {'sklearn s':>10s} "
              f"{'tik passes':>10s} {'tik subopt':>10s} {'LL eps':>7s} {'peak mem':>8s}  sklearn solver")
    print(header)
    print("-" * len(header))
    for name in args.data:
        X, y = load(name)
        prob = problem(y, X)
        for C in args.C:
            pstar, ref_gap = optimum(X, y, C)
            t_tik, p_tik, model = run_tikhon(X, y, C)
            sub_tik = (p_tik - pstar) / pstar
            mem = tikhon_memory(X, y, C)
            t_ll, sub_ll, eps, ok_ll = run_liblinear(prob, X, y, C, pstar)
            if args.no_sklearn:
                t_sk, sk_label, ok_sk = float("nan"), "-", True
            else:
                t_sk, _, sk_label, ok_sk = run_sklearn(X, y, C, pstar)
            ll = f"{'' if ok_ll else '>'}{t_ll:.3f}" + ("" if ok_ll else f" ({sub_ll:.0e})")
            sk = f"{'' if ok_sk else '>'}{t_sk:.3f}"
            print(f"{name:10s} {C:6g} {t_tik:9.3f} {ll:>12s} {t_tik / t_ll:6.2f} {sk:>10s} "
                  f"{model.n_iter_:10d} {sub_tik:10.1e} {eps:7.0e} {mem:8.1%}  {sk_label} "
                  f"(P* gap {ref_gap:.0e})", flush=True)
        del prob


if __name__ == "__main__":
    sys.exit(main())
