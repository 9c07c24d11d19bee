"""Newton-CG with a backtracking line search (a truncated Newton method).

Template, as scikit-learn's ``NewtonSolver``: at each iterate compute ``P``, its
gradient and a Hessian-vector product (the curvature weights are computed in the
same pass as the gradient; each product is one pass over X each way, X is never
copied or reweighted), solve ``H p = -g`` inexactly by preconditioned conjugate
gradients, then backtrack from step 1 until Armijo's condition holds. The trial
point's gradient is reused as the next iterate's.

The inexact-Newton schedule is LIBLINEAR's (``-s 0``, its line-search Newton solver of
version 2.4x/2.50, after Galli and Lin 2021 and Hsia, Chiang and Lin 2018), measured
against it (issue 18, reuters 7770 x 8315 at C = 100: 160 passes over X to relative
suboptimality 1e-4 instead of 316 with a residual rule, LIBLINEAR's own run 152):

* CG stops on the quadratic model ``Q(p) = g.p + p.H p / 2`` (Nash and Sofer's rule):
  once ``k (Q_k - Q_{k-1}) <= eta Q_k``, the last of ``k`` steps bringing at most a
  fraction ``eta`` of the model's decrease, ``eta = min(0.25, (g.M^-1 g / lam)^(1/4))``
  (the second term, in LIBLINEAR's scaling ``C P``, tightens it near the optimum).
  Early Newton steps take 2-6 products instead of tens.
* The preconditioner is the mixed diagonal ``M = (1 - a) lam + a diag(H)``, ``a = 0.01``
  (LIBLINEAR's ``(1 - a) I + a diag``, in the scaling of ``P``), recomputed each step (two
  passes); kept from the first iterate when refreshing cannot pay (``a max diag <= lam / 10``
  on the coefficients there, where the logistic curvature is largest: then ``M`` is within
  10% of ``lam I``) and for ridge, whose curvature does not change.

Stopping rule: the relative duality gap at the iterate, from its gradient pass
(:meth:`tikhon.solvers.Problem.gap`, O(d) work), ``<= tol``.

Near the optimum, where the change of ``P`` is below its rounding, a step is
accepted when it reduces ``||grad P||_1`` by a tenth instead; when it does not, the
iterate is optimal to rounding (e.g. float32 data, whose margins carry ~1e-7 relative
error, cannot give a gradient below that level) and the solver stops and says so.

Switch to the explicit Hessian: when the CG products spent so far (two passes each)
cost more than an iteration of Newton-Cholesky would (a Gram pass and a Cholesky
factorization, :func:`tikhon.solvers.newton_cholesky.cost_in_passes`, counted in
passes, so that the switch is repeatable), the remaining steps are Newton-Cholesky's
from the current iterate: ill-conditioned data with few features (one-hot columns such
as a9a's) stops paying for CG.

Fallback: if CG meets non-positive curvature (possible only through rounding), the
direction found so far (or ``-g``) is used; if the line search cannot decrease
``P`` (the iterate is optimal to rounding), the solver stops and says so.
"""
from __future__ import annotations

import numpy as np

from ..objective import dot
from ._common import FitResult, History, certified, continue_with, drowned, gradient_stalled

__all__ = ["solve"]


def conjugate_gradient(hess_vec, g, eta, max_iter, inv_diag, value=None):
    """Approximately solve ``H p = -g`` by CG preconditioned with ``inv_diag``, stopped by
    the quadratic model ``Q(p) = g.p + p.H p / 2`` (Nash and Sofer's truncation rule, the
    one of LIBLINEAR's Newton solver): once ``k (Q_k - Q_{k-1}) >= eta Q_k``, i.e. the last
    step's decrease of the model times the step count is at most ``eta`` of the total.
    ``value``: ``P`` at the iterate of a quadratic ``P`` (ridge), whose model is ``P``
    itself: the last decrease is then measured against the predicted ``P + Q_k`` (the
    scale of the relative gap) instead. Returns ``(p, iterations)``."""
    p = np.zeros_like(g)
    r = -g.copy()
    z = inv_diag * r
    d = z.copy()
    rz = float(dot(r, z))
    q = 0.0
    for k in range(1, max_iter + 1):
        hd = hess_vec(d)
        curvature = float(dot(d, hd))
        if not curvature > 0:
            return (p if k > 1 else -g), k
        alpha = rz / curvature
        p += alpha * d
        r -= alpha * hd
        q_new = 0.5 * (float(dot(p, g)) - float(dot(p, r)))
        scale = -q_new if value is None else value + q_new
        if not (q_new <= 0 and q_new <= q) or k * (q - q_new) <= eta * scale:
            return p, k
        q = q_new
        z = inv_diag * r
        rz_new = float(dot(r, z))
        d = z + (rz_new / rz) * d
        rz = rz_new
    return p, max_iter


def _jacobi(diagonal):
    """Inverse of the Hessian's diagonal; 1 where an entry is zero or not finite (e.g.
    the intercept's curvature underflows when every margin saturates)."""
    usable = np.isfinite(diagonal) & (diagonal > 0)
    return np.divide(1.0, diagonal, out=np.ones_like(diagonal), where=usable)


MIX = 0.01  # weight of diag(H) in the mixed preconditioner (Hsia, Chiang and Lin 2018)
# Ridge (P quadratic: a CG cut short only restarts its Krylov space) runs CG until its last
# decreases are below tol / 10 of P: one Newton step at tol 1e-8 (two with the rule above,
# whose first leaves relative prediction errors of 2e-6: scikit-learn's weight-equivalence
# check failed). Below QUADRATIC_MIN_TOL CG's recurrences drift from the true residual
# before that (an ill-conditioned path at 1e-14 stalled, a dask ridge at 1e-15 crawled):
# there the rule above, whose outer steps restart from a fresh gradient.
QUADRATIC_MIN_TOL = 1e-9
ETA_CG = 0.25  # the quadratic-model rule's fraction (LIBLINEAR's Python binding runs 0.5; 0.25 measured better)


class _Preconditioner:
    """The inverse of the mixed diagonal ``(1 - MIX) lam + MIX diag(H)`` (``lam`` on every
    entry, the intercepts' too, as LIBLINEAR's identity part) at each iterate (two passes);
    kept from the first iterate when refreshing cannot pay (see the module docstring)."""

    def __init__(self, problem, theta):
        self.problem = problem
        w, b = problem.split(theta)
        obj = problem.objective
        penalty = obj.hess_vec(np.zeros_like(w), np.zeros_like(b), np.ones_like(w))  # lam on w, 0 on b
        self.coefficients = penalty > 0
        self.identity = np.where(self.coefficients, penalty, float(np.mean(obj.lams)))
        self.refresh = obj.loss != "squared"  # ridge: diag(H) is constant
        self.inverse = None

    def __call__(self, theta):
        if self.inverse is None or self.refresh:
            diagonal = self.problem.hessian_diagonal(theta)
            if self.inverse is None:
                data = (diagonal - self.identity)[self.coefficients]
                # the first iterate's curvature is the largest (logistic: at most 1/4): when even it
                # leaves M within 10% of lam I on the coefficients, later diagonals cannot help
                if MIX * float(np.max(data, initial=0.0)) <= 0.1 * float(np.min(self.identity)):
                    self.refresh = False
            self.inverse = _jacobi((1.0 - MIX) * self.identity + MIX * diagonal)
        return self.inverse


def solve(problem, theta0, tol, max_iter, max_cg_iter=250, armijo=1e-4):
    from .newton_cholesky import cost_in_passes

    switch_after = cost_in_passes(problem.backend)  # CG products worth one Cholesky iteration
    history = History()
    theta = np.array(theta0, dtype=np.float64)
    value, grad, hess_vec = problem.value_grad_hessian(theta)
    history.add(value)
    n_iter, cg_total, message = 0, 0, ""
    preconditioner = _Preconditioner(problem, theta)
    lam = float(np.mean(problem.objective.lams))
    quadratic = problem.objective.loss == "squared"
    while True:
        gap = problem.gap(theta, value, grad)
        history.report(gap[2], n_iter)
        if gap[2] <= tol or n_iter >= max_iter:
            break
        inv_diag = preconditioner(theta)
        # LIBLINEAR's forcing term, in its scaling C P: (g_C.M_C^-1 g_C)^(1/4) = (g.M^-1 g / lam)^(1/4)
        eta = min(ETA_CG, (float(dot(grad, inv_diag * grad)) / lam) ** 0.25)
        scaled = quadratic and tol >= QUADRATIC_MIN_TOL
        direction, cg_iter = conjugate_gradient(hess_vec, grad, 0.1 * tol if scaled else eta, max_cg_iter,
                                                inv_diag, value if scaled else None)
        hess_vec = None  # its curvature weights (an n-vector) go before the trial pass makes new ones
        cg_total += cg_iter
        slope = float(dot(grad, direction))
        if slope >= 0:  # not a descent direction (rounding): fall back to steepest descent
            direction, slope = -grad, -float(dot(grad, grad))
        step, at_rounding = 1.0, False
        for _ in range(40):
            trial = theta + step * direction
            t_value, t_grad, t_hess = problem.value_grad_hessian(trial)
            if t_value <= value + armijo * step * slope:
                break
            if drowned(value, t_value):  # shorter steps cannot help a stalled gradient
                at_rounding = gradient_stalled(grad, t_grad)
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
        if cg_total > switch_after and n_iter < max_iter:
            return continue_with("newton_cholesky", problem, theta, tol, max_iter - n_iter, n_iter, history,
                                 f"{n_iter} Newton-CG steps")
    return FitResult(theta, n_iter, gap[2] <= tol, gap[2], history.records,
                     message=message or f"{cg_total} CG iterations", **certified(gap))
