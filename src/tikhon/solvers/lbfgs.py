"""L-BFGS (scipy.optimize's L-BFGS-B, no bounds) on the mean-scaled objective ``P / m``.

Working on ``P / m`` keeps values of order one whatever ``n``. The fit stops when the
relative duality gap of an iterate, computed from the gradient L-BFGS-B already asked
for (:meth:`tikhon.solvers.Problem.gap`), is ``<= tol``: scipy's own tests are switched
off (``gtol=0``, ``ftol=0``) and the callback ends the run. Otherwise it stops on
``max_iter`` or when the line search sees only the rounding of ``P`` (on a9a near
``1e-9``), and then says so through ``converged_ = False``.

L-BFGS-B's first step has length 1 along ``-g`` and then extrapolates, 5-6 passes on
the data sets here before its memory holds any curvature: the solver works in ``u =
theta / scale`` instead, ``scale`` the length of the Cauchy step ``|g|^3 / g.H g`` at the
start (one Hessian product), so that its first trial is the exact line minimum of the
quadratic model. Later steps do not depend on the scale.

``hand_over`` (the solver ``lbfgs_newton``, :mod:`tikhon.solvers.lbfgs_newton`): a
budget of passes over X and a Newton solver; once the gaps so far predict that L-BFGS
needs more passes than the budget (or it has run twice the budget: late forecasts can
be optimistic), the fit goes on with that solver from the iterate.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize

from ._common import FitResult, History, certified, continue_with

__all__ = ["solve"]

# forecasts count from the second iteration on: there they already separate a9a (66-87
# passes, one-hot columns) from Gaussian dense data (20-28)
FIRST_FORECAST = 1


class _HandOver(Exception):
    """L-BFGS's forecast exceeds the budget: the fit goes on with Newton."""


def forecast(passes, gaps, target):
    """The passes L-BFGS needs to bring its absolute gap ``P - D`` to ``target``,
    extrapolated from its best gaps ``gaps[k]`` after ``passes[k]`` passes at a constant
    rate measured over the second half of the run (linear convergence); ``inf`` when the
    gap did not fall there."""
    k = len(gaps) - 1
    j = k // 2
    done = passes[k] - passes[j]
    if done <= 0:
        return passes[k]
    if not gaps[k] < gaps[j]:
        return math.inf
    rate = math.log(gaps[k] / gaps[j]) / done  # per pass, < 0
    return passes[k] + max(0.0, math.log(target / gaps[k]) / rate)


def solve(problem, theta0, tol, max_iter, memory=20, hand_over=None):
    m = problem.weight_sum
    history = History()
    last = {}
    passes, best = [], []  # per iteration: passes so far, the best gap so far
    count = [0]

    def evaluate(theta):
        if np.array_equal(last.get("theta"), theta):  # L-BFGS-B's first call: the start, known
            return last["value"] / m, last["grad"] / m
        count[0] += 1
        value, grad = problem.value_grad(theta)
        last.update(theta=theta.copy(), value=value, grad=grad)
        return value / m, grad / m

    def fun(u):  # P / m in the variable u = theta / scale
        value, grad = evaluate(scale * u)
        return value, scale * grad

    def gap_at(theta):
        """The gap at ``theta`` from its last evaluation (a pass only if L-BFGS-B's last
        evaluation was elsewhere)."""
        evaluate(theta)
        return problem.gap(last["theta"], last["value"], last["grad"])

    def callback(intermediate_result):
        history.add(intermediate_result.fun * m)
        last["gap"] = gap_at(scale * intermediate_result.x)
        history.report(last["gap"][2])
        if last["gap"][2] <= tol:
            raise StopIteration
        if hand_over is not None:
            primal, dual, _ = last["gap"]
            passes.append(count[0])
            best.append(min(primal - dual, best[-1] if best else math.inf))
            target = tol * primal / (1.0 + tol)  # relative gap tol, were P this iterate's
            budget = hand_over[0]
            if count[0] >= 2 * budget or (len(best) > FIRST_FORECAST and forecast(passes, best, target) > budget):
                last["hand_over"] = scale * intermediate_result.x
                raise _HandOver

    theta0 = np.array(theta0, dtype=np.float64)
    value, grad, hess_vec = problem.value_grad_hessian(theta0)
    count[0] += 1
    last.update(theta=theta0.copy(), value=value, grad=grad)
    history.add(value)
    gap = problem.gap(theta0, value, grad)
    history.report(gap[2])
    if gap[2] <= tol:
        return FitResult(theta0, 0, True, gap[2], history.records, message="the start is optimal", **certified(gap))
    scale = _cauchy_length(grad, hess_vec)
    try:
        result = minimize(
            fun, theta0 / scale, jac=True, method="L-BFGS-B", callback=callback,
            options={"maxiter": max_iter, "maxcor": memory, "gtol": 0.0,
                     "ftol": 0.0, "maxls": 50, "maxfun": 4 * max_iter + 100},
        )
    except _HandOver:
        n_iter = len(passes)
        return continue_with(hand_over[1], problem, last["hand_over"], tol, max_iter - n_iter, n_iter, history,
                             f"{n_iter} L-BFGS iterations ({count[0]} passes)")
    theta = scale * result.x
    gap = gap_at(theta)
    return FitResult(theta, int(result.nit), gap[2] <= tol, gap[2], history.records,
                     message=str(result.message), **certified(gap))


def _cauchy_length(grad, hess_vec):
    """``|g|^3 / g.H g``, the length of the exact line step along ``-g`` on the quadratic
    model (1 if that is not a positive finite number)."""
    norm2 = float(np.dot(grad, grad))
    curvature = float(np.dot(grad, hess_vec(grad)))
    length = norm2 ** 1.5 / curvature if curvature > 0 else 1.0
    return length if np.isfinite(length) and length > 0 else 1.0
