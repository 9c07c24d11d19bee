"""Solver registry: each solver is a function ``solve(problem, theta0, tol, max_iter, **options)``
that drives a :class:`~tikhon.solvers._common.Problem` and returns a ``FitResult``.

Solvers in ``BACKEND_LOOPS`` are whole loops a backend runs itself (the registry of
backends checks that the chosen backend offers it).
"""
from __future__ import annotations

import importlib
import math

from ._common import FitResult, History, Problem, certified

__all__ = ["SOLVERS", "BACKEND_LOOPS", "FitResult", "History", "Problem", "backend_for", "certified", "choose_solver", "newton_solver", "run", "wide_sparse_solver"]

SOLVERS = {
    "gd": "tikhon.solvers.gd",
    "sgd": "tikhon.solvers.sgd",
    "lbfgs": "tikhon.solvers.lbfgs",
    "lbfgs_newton": "tikhon.solvers.lbfgs_newton",
    "newton": "tikhon.solvers.newton",
    "newton_cholesky": "tikhon.solvers.newton_cholesky",
    "dual_cd": "tikhon.solvers.dual_cd",
}
BACKEND_LOOPS = frozenset({"dual_cd"})


# The cost model of ``auto`` (figures: single-threaded fits to tol 1e-6, min of 5,
# /work notes of 2026-12-01; costs counted in passes over X, so that the rule is the
# same on every machine and a fit's choice is repeatable):
# * a Gram pass costs ``Backend.gram_cost()`` passes: 0.15 d for dense X (BLAS syrk:
#   20 ms against 1 ms for a pass at 20000 x 128), 0.33 nnz/row for the compiled CSR
#   Gram (a9a: 1.5 ms against 0.3 ms a pass), 9 nnz/row for scipy's sparse product;
# * Newton-CG costs 1 + 2 k passes a Newton step, k the CG products (3-8 on
#   well-conditioned data, 10-40 on one-hot data such as a9a); ridge's one quadratic
#   needs 5-7 steps of it;
# * Newton-Cholesky costs 1 pass plus a Gram plus the Cholesky a step, ridge 1 step.
# * binary logistic regression on CSR with at least as many features as rows
#   (wide_sparse_solver; reuters, 7770 x 8315, time to 1e-4 / 1e-8, C = 0.1..100):
#   - without an intercept, L-BFGS handing over to Newton (lbfgs_newton, on the Numba
#     backend: tikhon.backends.NUMBA_FIRST_CSR_SOLVERS): 4.7-17 / 6.3-35 ms against dual
#     CD's 7.3-20 / 9.7-36 and Newton-CG's 7.3-33 / 9.0-48;
#   - with one, L-BFGS's gaps wait for the intercept and it hands over early (8.5-66 /
#     11-87 ms): the dual coordinate descent (cython) for lam <= DUAL_MAX_LAM (0.5-0.7x
#     Newton-CG's time at C = 1..100), Newton-CG at C = 0.1 (dual CD 1.7-1.9x slower);
#   - on the text-like CSR (d = n / 2) dual CD is 1.5-3.6x and on a9a (d << n) 1.2-2.3x
#     slower than Newton-CG, and L-BFGS on a9a 1.2-1.7x (its forecast hands over late).
# * logistic regression on dense X takes L-BFGS, handing over to Newton when its gaps
#   forecast a slow run (tikhon.solvers.lbfgs_newton). Fits with intercept, C = 0.1..100,
#   time to 1e-4 / 1e-8 against Newton-CG on the numba backend (tikhon bench, issue 18's
#   grid): 1e6 x 100 0.30-0.37, 2e5 x 100 0.40-0.56, 7000 x 28 0.39-0.55, 2000 x 500
#   0.5-1.05, a9a as dense 0.9-1.3 (it hands over after two L-BFGS steps; Newton from there
#   takes more CG products than from the start); multinomial 2e5 x 100 K = 10 0.80-1.13
#   (1.05-1.13 at C >= 10; /work/scratch/s19/mc2.py, load 0.9).
#   Below LBFGS_MIN_SIZE values of X, L-BFGS's ~30 us of Python an iteration outweighs a
#   pass (default fits, 1000 x 10: 0.88 ms against Newton-Cholesky's 0.75; 5000 x 20: 1.33
#   against 1.89; /work/scratch/s19/tiny.py).
# Measured crossovers: ridge, Cholesky 0.2-0.6x the time of CG up to d = 512 dense (1.1-2x
# at d = 1024); logistic on a9a 0.15-0.3x; logistic on Gaussian dense data 1.0-1.3x at
# d <= 32 (CG needs only ~3 products there) and 2-8x at d >= 128. Hence: ridge takes
# Cholesky while a Gram costs at most RIDGE_GRAM_PASSES passes, logistic while it costs
# at most LOGISTIC_GRAM_PASSES; Newton-CG itself moves to the explicit Hessian when its
# CG products cost more than a Gram (see tikhon.solvers.newton).
RIDGE_GRAM_PASSES = 80.0
LOGISTIC_GRAM_PASSES = 8.0
DUAL_MAX_LAM = 1.0
LBFGS_MIN_SIZE = 5e4


def choose_solver(name, loss, backend=None, lam=None, fit_intercept=True):
    """Resolve ``"auto"`` by the cost model above, given the backend (an instance)
    the fit runs on, the penalty ``lam`` of a single fit (None: a path's grid) and
    whether it fits an intercept;
    ``"newton"`` when no backend is given. Other names are checked and returned as they are."""
    if name != "auto":
        if name not in SOLVERS:
            raise ValueError(f"unknown solver {name!r}; valid solvers are auto, {', '.join(SOLVERS)}")
        return name
    if backend is None:
        return "newton"
    from ..backends._base import input_format

    newton = newton_solver(loss, backend)
    if loss == "squared":
        return newton
    size = backend.n_samples * backend.n_features * backend.n_outputs
    if input_format(backend.X) == "dense" and size >= LBFGS_MIN_SIZE:
        return "lbfgs_newton"  # L-BFGS while it beats Newton (see above)
    wide = wide_sparse_solver(loss, backend.X, backend.n_outputs, lam, fit_intercept)
    if newton == "newton" and wide is not None and (wide != "dual_cd" or "dual_cd" in backend.loops):
        return wide
    return newton


def wide_sparse_solver(loss, X, n_outputs, lam, fit_intercept):
    """auto's solver for binary logistic regression on CSR ``X`` with at least as many
    features as rows (see above): ``lbfgs_newton`` without an intercept; with one,
    ``dual_cd`` for ``lam <= DUAL_MAX_LAM`` (else the cost model's Newton, None); None for
    other problems and for a path's grid (``lam`` None)."""
    from ..backends._base import input_format

    n, d = X.shape
    if loss != "logistic" or n_outputs != 1 or d < n or lam is None or input_format(X) != "csr":
        return None
    if not fit_intercept:
        return "lbfgs_newton"
    return "dual_cd" if lam <= DUAL_MAX_LAM else None


def newton_solver(loss, backend):
    """The Newton solver of the cost model above for ``loss`` on ``backend``:
    ``newton_cholesky`` while a Gram costs at most its limit of passes, else ``newton``."""
    from .newton_cholesky import MAX_PARAMS, cost_in_passes

    limit = RIDGE_GRAM_PASSES if loss == "squared" else LOGISTIC_GRAM_PASSES
    small = backend.n_outputs * (backend.n_features + 1) <= MAX_PARAMS
    return "newton_cholesky" if small and cost_in_passes(backend) <= limit else "newton"


def backend_for(name, loss, backend_name, X, n_outputs, what="model", lam=None, fit_intercept=True):
    """The backend class that runs solver ``name`` (checked here, before any work) on
    ``X`` for ``n_outputs`` outputs, penalty ``lam`` (None: a path) and intercept, as
    :func:`tikhon.backends.get_backend` chooses it for the solver (``auto``'s, where it
    is known before the backend: :func:`wide_sparse_solver`); a backend loop
    (``dual_cd``) refuses several outputs, naming ``what`` is fitted."""
    from ..backends import get_backend

    choose_solver(name, loss)
    if name in BACKEND_LOOPS and n_outputs > 1:
        raise ValueError(f"solver {name!r} fits binary logistic regression and single-target ridge; this "
                         f"{what} has {n_outputs} outputs: use solver='auto', 'newton' or 'lbfgs'")
    loop = name if name in BACKEND_LOOPS else None
    solver = (wide_sparse_solver(loss, X, n_outputs, lam, fit_intercept) or name) if name == "auto" else name
    return get_backend(backend_name, X, loop=loop, n_outputs=n_outputs, solver=solver)


def run(name, objective, backend, theta0, tol, max_iter, **options) -> FitResult:
    """Run solver ``name`` and certify its result by the relative duality gap.

    A solver reports the gap it stopped on (``certificate``; for the primal solvers the
    gap of the gradient pass's dual point, :meth:`Problem.gap`). When that misses ``tol``,
    or the backend's products round in float32 (then the solver's figure is rounded too),
    :meth:`Problem.duality_gap` (two passes, float64 products) is computed as well; the
    smallest valid bound is ``relative_gap``, and ``converged`` means exactly that it is
    ``<= tol`` (an infinite or NaN gap never converges)."""
    problem = Problem(objective, backend)
    solve = importlib.import_module(SOLVERS[name]).solve
    with backend.solving():
        result = solve(problem, theta0, tol, max_iter, **options)
        objective.canonical(result.theta)
        # recompute unless the solver's own (P, D) at theta is valid and meets tol
        recheck = math.isnan(result.relative_gap) or not backend.exact
        if recheck or not min(result.relative_gap, result.certificate) <= tol:
            primal, dual, gap = problem.duality_gap(result.theta)
            if recheck or gap < result.relative_gap:
                result.objective, result.dual_objective, result.relative_gap = primal, dual, gap
    gap = result.relative_gap
    if backend.exact and result.certificate < gap:  # a dual solver's own dual iterate certifies more tightly
        gap = result.certificate
        result.dual_objective = result.objective / (1.0 + gap)
    result.relative_gap = gap
    result.converged = bool(gap <= tol)
    return result
