"""L-BFGS (scipy.optimize's L-BFGS-B, no bounds) on the mean-scaled objective ``P / m``.

Working on ``P / m`` keeps values of order one whatever ``n``. The fit stops when the
relative duality gap of an iterate, computed from the gradient L-BFGS-B already asked
for (:meth:`tikhon.solvers.Problem.gap`), is ``<= tol``: scipy's own tests are switched
off (``gtol=0``, ``ftol=0``) and the callback ends the run. Otherwise it stops on
``max_iter`` or when the line search sees only the rounding of ``P`` (on a9a near
``1e-9``), and then says so through ``converged_ = False``.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ._common import FitResult, History, certified

__all__ = ["solve"]


def solve(problem, theta0, tol, max_iter, memory=20):
    m = problem.weight_sum
    history = History()
    last = {}

    def fun(theta):
        value, grad = problem.value_grad(theta)
        last.update(theta=theta.copy(), value=value, grad=grad)
        return value / m, grad / m

    def gap_at(theta):
        """The gap at ``theta`` from its last evaluation (a pass only if L-BFGS-B's last
        evaluation was elsewhere)."""
        if not np.array_equal(last.get("theta"), theta):
            fun(theta)
        return problem.gap(last["theta"], last["value"], last["grad"])

    def callback(intermediate_result):
        history.add(intermediate_result.fun * m)
        last["gap"] = gap_at(intermediate_result.x)
        history.report(last["gap"][2])
        if last["gap"][2] <= tol:
            raise StopIteration

    theta0 = np.array(theta0, dtype=np.float64)
    history.add(fun(theta0)[0] * m)
    gap = problem.gap(theta0, last["value"], last["grad"])
    history.report(gap[2])
    if gap[2] <= tol:
        return FitResult(theta0, 0, True, gap[2], history.records, message="the start is optimal", **certified(gap))
    result = minimize(
        fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": max_iter, "maxcor": memory, "gtol": 0.0,
                 "ftol": 0.0, "maxls": 50, "maxfun": 4 * max_iter + 100},
    )
    theta = result.x
    gap = gap_at(theta)
    return FitResult(theta, int(result.nit), gap[2] <= tol, gap[2], history.records,
                     message=str(result.message), **certified(gap))
