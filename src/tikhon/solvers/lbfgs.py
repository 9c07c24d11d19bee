"""L-BFGS: limited-memory BFGS directions (the two-loop recursion) and a backtracking
Armijo line search.

Written here rather than taken from scipy's L-BFGS-B, whose C code makes BLAS calls
that wake OpenBLAS's threads, which then spin and take the cores from the Numba
backend's passes (2e5 x 100 dense: 172 ms a fit against 108 ms with one BLAS thread);
the recursion's dot products here are :func:`tikhon.objective.dot`'s single-threaded
chunks. The objectives are strictly convex (``lam > 0`` on ``w``), so ``s.y > 0`` for
every step and Armijo's condition alone keeps the BFGS updates positive definite (a
pair with ``s.y <= 0``, possible only through rounding, is skipped). The first step is
the Cauchy step ``g.g / g.H g`` along ``-g`` (one Hessian product), so that no pass is
spent finding the scale; later steps start at 1 and backtrack by quadratic interpolation.

Stopping rule: the relative duality gap of an iterate from its gradient pass
(:meth:`tikhon.solvers.Problem.gap`) ``<= tol``. Near the optimum, where the change of
``P`` is below its rounding, a step is accepted when it shrinks ``||grad P||_1`` by a
tenth; when it does not, the iterate is optimal to rounding and the solver stops and
says so (``converged_ = False`` if the gap is still above ``tol``).

``hand_over`` (the solver ``lbfgs_newton``, :mod:`tikhon.solvers.lbfgs_newton`): a
budget of passes over X and a Newton solver; once the gaps so far predict that L-BFGS
needs more passes than the budget (or it has run twice the budget: late forecasts can
be optimistic), the fit goes on with that solver from the iterate.
"""
from __future__ import annotations

import math
from collections import deque

import numpy as np

from ..objective import dot
from ._common import FitResult, History, certified, continue_with, drowned, gradient_stalled

__all__ = ["solve", "forecast"]

# forecasts count from the second iteration on: there they already separate a9a (66-87
# passes, one-hot columns) from Gaussian dense data (20-28)
FIRST_FORECAST = 1


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


def _direction(grad, pairs):
    """``-H grad`` for the L-BFGS inverse Hessian ``H`` of the ``(s, y, 1 / s.y)`` pairs
    (the two-loop recursion, initial ``H_0 = (s.y / y.y) I`` of the newest pair)."""
    q = grad.copy()
    alphas = []
    for s, y, rho in reversed(pairs):
        alpha = rho * dot(s, q)
        q -= alpha * y
        alphas.append(alpha)
    s, y, rho = pairs[-1]
    q *= 1.0 / (rho * dot(y, y))
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        q += (alpha - rho * dot(y, q)) * s
    return -q


def solve(problem, theta0, tol, max_iter, memory=20, hand_over=None, armijo=1e-4):
    history = History()
    theta = np.array(theta0, dtype=np.float64)
    value, grad, hess_vec = problem.value_grad_hessian(theta)
    history.add(value)
    pairs = deque(maxlen=memory)
    passes, best = [], []  # per iteration: passes so far, the best absolute gap so far
    count, n_iter, message = 1, 0, ""
    curvature = float(dot(grad, hess_vec(grad)))
    hess_vec = None
    while True:
        gap = problem.gap(theta, value, grad)
        history.report(gap[2], n_iter)
        if gap[2] <= tol or n_iter >= max_iter:
            break
        if hand_over is not None and n_iter > 0:
            budget, newton = hand_over
            passes.append(count)
            best.append(min(gap[0] - gap[1], best[-1] if best else math.inf))
            target = tol * gap[0] / (1.0 + tol)  # relative gap tol, were P this iterate's
            if count >= 2 * budget or (len(best) > FIRST_FORECAST and forecast(passes, best, target) > budget):
                return continue_with(newton, problem, theta, tol, max_iter - n_iter, n_iter, history,
                                     f"{n_iter} L-BFGS iterations ({count} passes)")
        if pairs:
            direction = _direction(grad, pairs)
            step = 1.0
        else:  # the first step, or after a reset: steepest descent, Cauchy's length
            direction = -grad
            norm2 = float(dot(grad, grad))
            step = norm2 / curvature if curvature > 0 and math.isfinite(norm2 / curvature) else 1.0 / math.sqrt(norm2)
        slope = float(dot(grad, direction))
        if not slope < 0:  # rounding: start again from steepest descent
            pairs.clear()
            direction, slope = -grad, -float(dot(grad, grad))
        at_rounding = True
        for _ in range(40):
            trial = theta + step * direction
            t_value, t_grad = problem.value_grad(trial)
            count += 1
            if t_value <= value + armijo * step * slope:
                at_rounding = False
                break
            if drowned(value, t_value):  # see the module docstring
                at_rounding = gradient_stalled(grad, t_grad)
                break
            # the minimizer of the quadratic through P(0), P'(0) and P(step), kept in [0.1, 0.5] step
            excess = t_value - value - slope * step
            shrink = -slope * step / (2.0 * excess) if excess > 0 else 0.5
            step *= min(0.5, max(0.1, shrink))
        if at_rounding:
            message = "no further decrease of P or of its gradient (optimal to rounding)"
            break
        s, y = trial - theta, t_grad - grad
        sy = float(dot(s, y))
        if sy > 0:
            pairs.append((s, y, 1.0 / sy))
        theta, value, grad = trial, t_value, t_grad
        history.add(value)
        n_iter += 1
    return FitResult(theta, n_iter, gap[2] <= tol, gap[2], history.records,
                     message=message or f"{count} passes", **certified(gap))
