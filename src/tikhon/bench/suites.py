"""Named suites of ``tikhon bench --suite NAME``: each a list of parts (:class:`BenchConfig`:
data, problems, cells, anchors, levels, settings) run by the one engine (:mod:`.runner`).

=========  ==================================================================================
default    a9a, C in {0.1, 1, 10}, every available backend and solver (not lbfgs/gd/sgd), the
           default anchors where installed (under 2 minutes on 2 cores)
kernels    one loss+gradient pass and one Hessian-vector product per backend against one read
           of X: dense 1e6 x 100 float64/float32, text-like CSR 200k x 100k float64/float32, a9a
fits       time to 1e-4 / 1e-6 / 1e-8, C in {0.1, 1, 10, 100}, with and without intercept, every
           anchor variant (issue 18's table): a9a, reuters, dna (3 classes: multinomial, against
           scikit-learn's multinomial solvers), dense 2e5 x 100 and 7000 x 28, text-like CSR
           200k x 100k
liblinear  no intercept (LIBLINEAR's problem): dual CD and Newton-CG against LIBLINEAR -s 0 / -s 7
           and scikit-learn, time to 1e-4 / 1e-8: a9a, reuters, text-like CSR
path       a whole path of 20 C in [1e-3, 1e3] at tol 1e-6, tikhon against scikit-learn's path
           solvers: a9a, reuters
dask       the dask backend on 2 local worker processes (1 thread each; or --dask-workers N /
           --dask-scheduler) against in-memory Numba: dense 1e6 x 100 chunked by rows
load       contention (issue 15): tikhon's default fit, the NumPy backend and scikit-learn's
           LogisticRegression() / Ridge() at their defaults, quiet and beside --load N busy
           processes (default 2): a9a, dense 7000 x 28, 2000 x 500, 1e6 x 100 and 1000 x 10
           (the fixed cost of a fit); then
           GridSearchCV(LogisticRegression(), {"C": [...]}, n_jobs=2) on dense 2e5 x 100
=========  ==================================================================================

``--scale F`` multiplies the rows of the suite's generated data sets (tests run every
suite at a tiny scale); the real data sets (a9a; reuters, dna: the shared data folder) are
used whole, and a missing one is listed as skipped. Measured here (2 cores, shared):
default 40-50 s; at ``--scale 0.1``/``0.2``: kernels 50 s, liblinear 51 s, path 15 s,
dask 19 s, load 38 s; ``fits`` at full scale is issue 18's whole table (every anchor
variant, 4 C, 2 intercept settings, 6 data sets): expect an hour; ``--data``, ``--C``
and ``--anchors`` narrow it.
"""
from __future__ import annotations

from .data import scaled_rows
from .runner import BenchConfig

__all__ = ["SUITES", "build_suite"]

ISSUE_18_C = [0.1, 1.0, 10.0, 100.0]


def _dense(n, d, scale, dtype="float64", seed=0):
    return f"synthetic:n={scaled_rows(n, scale)},d={d},dtype={dtype},seed={seed}"


def _text(scale, dtype="float64"):
    n = scaled_rows(200_000, scale)
    d = 100_000 if scale >= 1 else max(1000, int(100_000 * scale))
    nnz = max(n * 5, int(7_500_000 * scale))
    return f"text:n={n},d={d},nnz={nnz},dtype={dtype}"


def _default(scale, load):
    return [BenchConfig(data=["a9a"])]


def _kernels(scale, load):
    data = [_dense(1_000_000, 100, scale), _dense(1_000_000, 100, scale, "float32"), _text(scale),
            _text(scale, "float32"), "a9a"]
    return [BenchConfig(data=data, label="kernels", fits=False, hessian=True, anchors="none", kernel_seconds=0.5,
                        optional_data=True)]


def _fits(scale, load):
    # dna: 3 classes, multinomial (tikhon's and scikit-learn's multinomial solvers; the
    # two-class anchors and dual_cd are listed as skipped with the reason)
    data = ["a9a", "reuters", "dna", _dense(200_000, 100, scale), _dense(7000, 28, 1.0), _text(scale)]
    common = dict(data=data, C=ISSUE_18_C, levels="1e-4,1e-6,1e-8", anchors="all", anchor_budget=5.0,
                  solvers="newton,newton_cholesky,lbfgs,dual_cd", optional_data=True)
    return [BenchConfig(label="fits, intercept", fit_intercept=True, **common),
            BenchConfig(label="fits, no intercept", fit_intercept=False, **common)]


def _liblinear(scale, load):
    return [BenchConfig(data=["a9a", "reuters", _text(scale)], label="liblinear", C=ISSUE_18_C, fit_intercept=False,
                        solvers="dual_cd,newton", backends="cython", anchors="liblinear,sklearn",
                        levels="1e-4,1e-8", verdict_level=1e-8, anchor_budget=10.0, optional_data=True)]


def _path(scale, load):
    return [BenchConfig(data=["a9a", "reuters"], label="path", kind="path", tol=1e-6, anchors="sklearn",
                        optional_data=True)]


def _dask(scale, load):
    return [BenchConfig(data=[_dense(1_000_000, 100, scale)], label="dask", backends="numba,dask",
                        solvers="newton,lbfgs", C=[1.0], levels="1e-3,1e-6", anchors="none", hessian=True,
                        dask_workers=2, optional_data=True)]


def _load(scale, load):
    parts = []
    # 1000 x 10: the fixed cost of a fit (validation, set-up, certificate), issue 18 item 2
    data = ["a9a", _dense(7000, 28, 1.0), _dense(2000, 500, 1.0), _dense(1_000_000, 100, scale),
            _dense(1000, 10, 1.0)]
    for spec in data:
        for n in (0, load):
            parts.append(BenchConfig(data=[spec], label=f"load {n}", defaults=True, C=[1.0], alpha=[1.0],
                                     levels="1e-4,1e-6", anchors="sklearn/default", kernels=False, load=n,
                                     optional_data=True))
    for n in (0, load):
        parts.append(BenchConfig(data=[_dense(200_000, 100, scale)], label=f"gridsearch, load {n}",
                                 kind="gridsearch", anchors="none", load=n, optional_data=True))
    return parts


SUITES = {"default": _default, "kernels": _kernels, "fits": _fits, "liblinear": _liblinear, "path": _path,
          "dask": _dask, "load": _load}


def build_suite(name, scale=1.0, load=2):
    """The parts of suite ``name`` (not yet validated); ``load``: busy processes of the
    loaded parts of the load suite."""
    from .problems import BenchArgumentError

    if name not in SUITES:
        raise BenchArgumentError(f"unknown suite {name!r}; valid suites are {', '.join(SUITES)}")
    if not scale > 0:
        raise BenchArgumentError(f"--scale must be positive, got {scale!r}")
    return SUITES[name](float(scale), int(load))
