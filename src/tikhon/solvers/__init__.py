"""Solver registry: each solver is a function ``solve(problem, theta0, tol, max_iter, **options)``
that drives a :class:`~tikhon.solvers._common.Problem` and returns a ``FitResult``.

Solvers in ``BACKEND_LOOPS`` are whole loops a backend runs itself (the registry of
backends checks that the chosen backend offers it).
"""
from __future__ import annotations

import importlib
import math

from ._common import FitResult, History, Problem, certified

__all__ = ["SOLVERS", "BACKEND_LOOPS", "FitResult", "History", "Problem", "certified", "choose_solver", "run"]

SOLVERS = {
    "gd": "tikhon.solvers.gd",
    "sgd": "tikhon.solvers.sgd",
    "lbfgs": "tikhon.solvers.lbfgs",
    "newton": "tikhon.solvers.newton",
    "newton_cholesky": "tikhon.solvers.newton_cholesky",
    "dual_cd": "tikhon.solvers.dual_cd",
}
BACKEND_LOOPS = frozenset({"dual_cd"})


def choose_solver(name, loss):
    """Resolve ``"auto"`` to Newton-CG, for every loss and input.

    Measured (``tikhon bench``, time to 1e-6 relative suboptimality, one run each):
    Newton-CG beats dual CD on a9a (0.14-0.31 s vs 0.56-0.98 s, C in 0.1..10) and on
    synthetic text 200k x 100k with 7.5M nonzeros (1.06 s vs 2.50 s at C=1), and loses
    only on reuters (about 0.11 s vs 0.08 s); L-BFGS is 4x to 10x slower on a9a. So
    ``dual_cd`` runs when asked for by name."""
    if name == "auto":
        return "newton"
    if name not in SOLVERS:
        raise ValueError(f"unknown solver {name!r}; valid solvers are auto, {', '.join(SOLVERS)}")
    return name


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
