"""L-BFGS (scipy.optimize's L-BFGS-B, no bounds) on the mean-scaled objective ``P / m``.

Working on ``P / m`` keeps values of order one whatever ``n``; L-BFGS-B's ``pgtol``
test ``||grad(P / m)||_inf <= tol`` is then exactly tikhon's certificate. Its
relative-decrease test is switched off (``ftol=0``): the fit stops on the certificate,
on ``max_iter``, or when the line search sees only the rounding of ``P`` (on a9a near
``1e-9``), and then says so through ``converged_ = False``.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import minimize

from ._common import FitResult, History

__all__ = ["solve"]


def solve(problem, theta0, tol, max_iter, memory=20):
    m = problem.weight_sum
    history = History()
    last = {}

    def fun(theta):
        value, grad = problem.value_grad(theta)
        last.update(theta=theta.copy(), value=value, grad=grad)
        return value / m, grad / m

    def callback(intermediate_result):
        history.add(intermediate_result.fun * m)

    theta0 = np.array(theta0, dtype=np.float64)
    history.add(fun(theta0)[0] * m)
    result = minimize(
        fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
        options={"maxiter": max_iter, "maxcor": memory, "gtol": tol,
                 "ftol": 0.0, "maxls": 50, "maxfun": 4 * max_iter + 100},
    )
    theta = result.x
    if np.array_equal(last.get("theta"), theta):
        grad = last["grad"]
    else:
        grad = problem.value_grad(theta)[1]
    cert = problem.certificate(grad)
    return FitResult(theta, int(result.nit), cert <= tol, cert, "grad_inf/m", history.records,
                     message=str(result.message))
