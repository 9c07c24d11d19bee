"""L-BFGS that hands over to Newton when Newton will be faster.

L-BFGS's passes are Newton's cheapest (one pass over X each, no curvature weights, no
Hessian products), and on well-conditioned data it reaches 1e-8 in 10-15 of them, less
than Newton's 5-7 steps cost. On ill-conditioned data (one-hot columns such as a9a's) it
needs hundreds to thousands. This solver runs L-BFGS while the rate of its gaps predicts
that it reaches ``tol`` within ``BUDGET`` passes, and otherwise goes on with the Newton
solver ``auto`` would run (Newton-Cholesky or Newton-CG, by
:func:`tikhon.solvers.newton_solver`) from its iterate: a few passes are lost where
Newton was the better choice from the start, most of Newton's cost is saved where it was not.
"""
from __future__ import annotations

from . import lbfgs

__all__ = ["solve", "BUDGET"]

BUDGET = 50  # passes over X (see the module docstring)


def solve(problem, theta0, tol, max_iter):
    from . import newton_solver

    newton = newton_solver(problem.objective.loss, problem.backend)
    return lbfgs.solve(problem, theta0, tol, max_iter, hand_over=(BUDGET, newton))
