"""Newton-CG with a backtracking line search (a truncated Newton method).

Template, as scikit-learn's ``NewtonSolver``: at each iterate compute ``P``, its
gradient and a Hessian-vector product (the curvature weights are computed in the
same pass as the gradient; each product is one pass over X each way, X is never
copied or reweighted), solve ``H p = -g`` inexactly by conjugate gradients (relative
residual ``min(0.5, sqrt(||g|| / m))``, the Eisenstat-Walker forcing term), then
backtrack from step 1 until Armijo's condition holds. The trial point's gradient
is reused as the next iterate's.

Fallback: if CG meets non-positive curvature (possible only through rounding), the
direction found so far (or ``-g``) is used; if the line search cannot decrease
``P`` (the iterate is optimal to rounding), the solver stops and says so.
"""
from __future__ import annotations

import numpy as np

from ._common import FitResult, History

__all__ = ["solve"]


def conjugate_gradient(hess_vec, g, rtol, max_iter):
    """Approximately solve ``H p = -g``; returns ``(p, iterations)``."""
    p = np.zeros_like(g)
    r = -g.copy()
    d = r.copy()
    rr = float(np.dot(r, r))
    target = (rtol * np.sqrt(rr)) ** 2
    for k in range(max_iter):
        if rr <= target:
            return p, k
        hd = hess_vec(d)
        curvature = float(np.dot(d, hd))
        if curvature <= 0:
            return (p if k else -g), k
        alpha = rr / curvature
        p += alpha * d
        r -= alpha * hd
        rr_new = float(np.dot(r, r))
        d = r + (rr_new / rr) * d
        rr = rr_new
    return p, max_iter


def solve(problem, theta0, tol, max_iter, max_cg_iter=250, armijo=1e-4):
    m = problem.weight_sum
    history = History()
    theta = np.array(theta0, dtype=np.float64)
    value, grad, hess_vec = problem.value_grad_hessian(theta)
    history.add(value)
    n_iter, cg_total, message = 0, 0, ""
    while True:
        cert = problem.certificate(grad)
        if cert <= tol or n_iter >= max_iter:
            break
        rtol = min(0.5, np.sqrt(np.max(np.abs(grad)) / m))
        direction, cg_iter = conjugate_gradient(hess_vec, grad, rtol, max_cg_iter)
        cg_total += cg_iter
        slope = float(np.dot(grad, direction))
        if slope >= 0:  # not a descent direction (rounding): fall back to steepest descent
            direction, slope = -grad, -float(np.dot(grad, grad))
        step = 1.0
        for _ in range(40):
            trial = theta + step * direction
            t_value, t_grad, t_hess = problem.value_grad_hessian(trial)
            if t_value <= value + armijo * step * slope:
                break
            step *= 0.5
        else:
            message = "line search cannot decrease the objective further (optimal to rounding)"
            break
        theta, value, grad, hess_vec = trial, t_value, t_grad, t_hess
        history.add(value)
        n_iter += 1
    return FitResult(theta, n_iter, cert <= tol, cert, "grad_inf/m", history.records,
                     message=message or f"{cg_total} CG iterations")
