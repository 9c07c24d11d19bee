"""Newton-CG with a backtracking line search (a truncated Newton method).

Template, as scikit-learn's ``NewtonSolver``: at each iterate compute ``P``, its
gradient and a Hessian-vector product (the curvature weights are computed in the
same pass as the gradient; each product is one pass over X each way, X is never
copied or reweighted), solve ``H p = -g`` inexactly by conjugate gradients (relative
residual ``min(0.5, sqrt(||g|| / m))``, the Eisenstat-Walker forcing term), then
backtrack from step 1 until Armijo's condition holds. The trial point's gradient
is reused as the next iterate's.

Preconditioning: once CG has needed more than ``PRECONDITION_AFTER`` products in one
Newton step, later steps precondition it with the Hessian's diagonal (Jacobi). That
costs two passes per step and removes the feature-scale spread that otherwise stalls
CG on one-hot data such as a9a (there: 9 Newton steps instead of 28 at C=100);
well-conditioned problems, solved in a few products per step, never pay for it.

Stopping rule: the relative duality gap at the iterate, from its gradient pass
(:meth:`tikhon.solvers.Problem.gap`, O(d) work), ``<= tol``.

Near the optimum, where the change of ``P`` is below its rounding, a step is
accepted when it reduces ``||grad P||_1`` by a tenth instead; when it does not, the
iterate is optimal to rounding (e.g. float32 data, whose margins carry ~1e-7 relative
error, cannot give a gradient below that level) and the solver stops and says so.

Switch to the explicit Hessian: when a Newton step's CG products (two passes each)
cost more than an iteration of Newton-Cholesky would (a Gram pass and a Cholesky
factorization, :func:`tikhon.solvers.newton_cholesky.cost_in_passes`, counted in
passes, so that the switch is repeatable), the remaining steps are Newton-Cholesky's
from the current iterate: ill-conditioned data with few features (one-hot columns,
large C) stops paying for ever longer CG runs.

Fallback: if CG meets non-positive curvature (possible only through rounding), the
direction found so far (or ``-g``) is used; if the line search cannot decrease
``P`` (the iterate is optimal to rounding), the solver stops and says so.
"""
from __future__ import annotations

import numpy as np

from ..objective import dot
from ._common import FitResult, History, certified

__all__ = ["solve"]


def conjugate_gradient(hess_vec, g, rtol, max_iter, inv_diag):
    """Approximately solve ``H p = -g`` by CG preconditioned with ``inv_diag`` (Jacobi);
    stops when ``||r|| <= rtol ||g||``. Returns ``(p, iterations)``."""
    p = np.zeros_like(g)
    r = -g.copy()
    z = inv_diag * r
    d = z.copy()
    rz = float(dot(r, z))
    target = rtol * rtol * float(dot(r, r))
    for k in range(max_iter):
        if float(dot(r, r)) <= target:
            return p, k
        hd = hess_vec(d)
        curvature = float(dot(d, hd))
        if curvature <= 0:
            return (p if k else -g), k
        alpha = rz / curvature
        p += alpha * d
        r -= alpha * hd
        z = inv_diag * r
        rz_new = float(dot(r, z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return p, max_iter


_ROUNDING = 64 * np.finfo(np.float64).eps


def _jacobi(diagonal):
    """Inverse of the Hessian's diagonal; 1 where an entry is zero or not finite (e.g.
    the intercept's curvature underflows when every margin saturates)."""
    usable = np.isfinite(diagonal) & (diagonal > 0)
    return np.divide(1.0, diagonal, out=np.ones_like(diagonal), where=usable)


def _l1(v):
    return float(np.sum(np.abs(v)))


PRECONDITION_AFTER = 10


def solve(problem, theta0, tol, max_iter, max_cg_iter=250, armijo=1e-4):
    from .newton_cholesky import cost_in_passes

    m = problem.weight_sum
    switch_after = cost_in_passes(problem.backend)  # CG products worth one Cholesky iteration
    history = History()
    theta = np.array(theta0, dtype=np.float64)
    value, grad, hess_vec = problem.value_grad_hessian(theta)
    history.add(value)
    n_iter, cg_total, message = 0, 0, ""
    inv_diag = np.ones_like(theta)
    precondition = False
    while True:
        gap = problem.gap(theta, value, grad)
        history.report(gap[2], n_iter)
        if gap[2] <= tol or n_iter >= max_iter:
            break
        rtol = min(0.5, np.sqrt(np.max(np.abs(grad)) / m))
        if precondition:
            inv_diag = _jacobi(problem.hessian_diagonal(theta))
        direction, cg_iter = conjugate_gradient(hess_vec, grad, rtol, max_cg_iter, inv_diag)
        hess_vec = None  # its curvature weights (an n-vector) go before the trial pass makes new ones
        cg_total += cg_iter
        precondition = precondition or cg_iter > PRECONDITION_AFTER
        slope = float(dot(grad, direction))
        if slope >= 0:  # not a descent direction (rounding): fall back to steepest descent
            direction, slope = -grad, -float(dot(grad, grad))
        step, at_rounding = 1.0, False
        for _ in range(40):
            trial = theta + step * direction
            t_value, t_grad, t_hess = problem.value_grad_hessian(trial)
            if t_value <= value + armijo * step * slope:
                break
            if abs(t_value - value) <= _ROUNDING * abs(value):
                # The decrease drowns in the rounding of P: a step that shrinks the gradient
                # by a tenth is progress (scikit-learn's NewtonSolver does alike); else the
                # gradient itself is at its rounding level and shorter steps cannot help.
                at_rounding = _l1(t_grad) >= 0.9 * _l1(grad)
                break
            step *= 0.5
        else:
            at_rounding = True
        if at_rounding:
            message = "no further decrease of P or of its gradient (optimal to rounding)"
            break
        theta, value, grad, hess_vec = trial, t_value, t_grad, t_hess
        history.add(value)
        n_iter += 1
        if cg_iter > switch_after and n_iter < max_iter:
            return _cholesky_finish(problem, theta, tol, max_iter - n_iter, n_iter, history)
    return FitResult(theta, n_iter, gap[2] <= tol, gap[2], history.records,
                     message=message or f"{cg_total} CG iterations", **certified(gap))


def _cholesky_finish(problem, theta, tol, max_iter, n_iter, history):
    """The remaining iterations by Newton-Cholesky from ``theta``; its objective values
    join ``history``."""
    import time

    from . import newton_cholesky

    started = time.perf_counter()
    result = newton_cholesky.solve(problem, theta, tol, max_iter)
    history.extend(result.history[1:], started)  # its first value is this solver's last
    result.n_iter += n_iter
    result.history = history.records
    result.message = f"{n_iter} Newton-CG steps, then {result.n_iter - n_iter} with the explicit Hessian. {result.message}"
    return result
