"""L-BFGS that hands over to Newton when Newton will be faster.

L-BFGS's passes are the cheapest (one pass over X each, no curvature weights, no
Hessian products), and on well-conditioned data it reaches 1e-8 in 10-15 of them, less
than Newton's 5-7 steps cost. On ill-conditioned data (one-hot columns such as a9a's) it
needs hundreds to thousands. This solver runs L-BFGS while the rate of its gaps
forecasts (:func:`tikhon.solvers.lbfgs.forecast`) that it reaches ``tol`` within
``BUDGET`` passes, and otherwise goes on with the Newton solver ``auto`` would run
(Newton-Cholesky or Newton-CG, :func:`tikhon.solvers.newton_solver`) from its iterate:
a few passes are lost where Newton was the better choice from the start, most of
Newton's cost is saved where it was not.

The budget: Newton's fit costs 16 L-BFGS passes on Gaussian dense 2e5 x 100, about 40
on a9a, 110-150 on 2000 x 500; the forecasts after two iterations are 20-28 passes on
Gaussian data (which then takes 12-15) and 66-87 on a9a (which takes 120-2700), so 50
separates them. Measured (`tikhon bench`, numba backend, fits with intercept, C =
0.1..100, time to 1e-4 / 1e-8 against Newton-CG's): 1e6 x 100 0.30-0.37, 2e5 x 100
0.40-0.56, 7000 x 28 0.39-0.55, 2000 x 500 0.5-1.05 (it hands over after two
iterations at C >= 1, where L-BFGS alone takes 62-90), a9a as dense 0.9-1.3.
"""
from __future__ import annotations

from . import lbfgs

__all__ = ["solve", "BUDGET"]

BUDGET = 50  # passes over X (see the module docstring)


def solve(problem, theta0, tol, max_iter):
    from . import newton_solver

    newton = newton_solver(problem.objective.loss, problem.backend)
    return lbfgs.solve(problem, theta0, tol, max_iter, hand_over=(BUDGET, newton))
