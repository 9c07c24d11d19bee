"""Solver registry: each solver is a function ``solve(problem, theta0, tol, max_iter, **options)``
that drives a :class:`~tikhon.solvers._common.Problem` and returns a ``FitResult``.

Solvers in ``BACKEND_LOOPS`` are whole loops a backend runs itself (the registry of
backends checks that the chosen backend offers it).
"""
from __future__ import annotations

import importlib
import math

from ._common import FitResult, History, Problem

__all__ = ["SOLVERS", "BACKEND_LOOPS", "FitResult", "History", "Problem", "choose_solver", "run"]

SOLVERS = {
    "gd": "tikhon.solvers.gd",
    "sgd": "tikhon.solvers.sgd",
    "lbfgs": "tikhon.solvers.lbfgs",
    "newton": "tikhon.solvers.newton",
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
    """Run solver ``name`` and certify its result with the relative duality gap."""
    problem = Problem(objective, backend)
    solve = importlib.import_module(SOLVERS[name]).solve
    with backend.solving():
        result = solve(problem, theta0, tol, max_iter, **options)
        if math.isnan(result.relative_gap):  # else the solver computed it at result.theta
            result.objective, result.dual_objective, result.relative_gap = problem.duality_gap(result.theta)
    primal, dual, gap = result.objective, result.dual_objective, result.relative_gap
    if result.criterion == "relative_gap" and result.certificate < gap:
        # a dual solver's own dual iterate certifies more tightly than the dual point
        # rebuilt from w alone: report the tighter of the two valid bounds
        gap = result.certificate
        dual = primal / (1.0 + gap)
    result.objective, result.dual_objective, result.relative_gap = primal, dual, gap
    return result
