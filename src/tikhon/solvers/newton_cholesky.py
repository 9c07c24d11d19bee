"""Newton's method with the explicit Hessian and a Cholesky solve, for few features.

Each iteration computes ``P``, its gradient and its ``p x p`` Hessian (``p = d`` plus
the intercept) in one call (:meth:`tikhon.backends.Backend.loss_grad_gram`: a pass
for the margins and gradient, a BLAS-3 Gram pass for ``[X 1]^T diag(s loss'') [X 1]``),
solves ``H p = -g`` by Cholesky, and backtracks from step 1 until Armijo's condition
holds, as scikit-learn's ``newton-cholesky``. For ridge the objective is quadratic:
one step is the exact solution (the direct solve of the normal equations), and the
second Gram is never formed.

Accuracy: a Cholesky solve of an ill-conditioned ``H`` (tiny ``lam``, collinear
columns) can be inaccurate; if Cholesky fails (``H`` not numerically positive
definite) the step comes from a symmetric eigendecomposition with eigenvalues floored
at ``eps * max eigenvalue``. Either way the step is only accepted through the line
search and the fit is certified by the relative duality gap like every other
(:meth:`tikhon.solvers.Problem.gap`), so an inaccurate solve costs iterations, never a
wrong ``converged_``.

Cost: ``n d^2 / 2`` flops per Gram (dense; ``sum_i nnz_i^2`` for CSR) plus ``d^3 / 3``
for Cholesky: it pays where ``d`` is small (see :func:`tikhon.solvers.choose_solver`).
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import eigh

from ..backends._blas import cholesky_solve
from ..objective import BlockDiagonal
from ._common import FitResult, History, certified, drowned, gradient_stalled

__all__ = ["cost_in_passes", "newton_step", "solve"]

def cost_in_passes(backend):
    """One iteration's Gram plus Cholesky factorization, in passes over X (the cost
    model of :func:`tikhon.solvers.choose_solver`): ``gram_count() * gram_cost()`` plus
    ``(K d)^3 / 3`` flops against the ``n d`` reads of a pass (a flop costing a fifth of a
    read, as BLAS-3 against a streamed pass measures here)."""
    n, d = backend.n_samples, backend.n_features
    p = backend.n_outputs * d  # the Hessian's size (a multinomial's couples its K blocks)
    return backend.gram_count() * backend.gram_cost() + 0.2 * (p ** 3 / 3.0) / max(1.0, float(n) * d)


def newton_step(H, g):
    """``-H^{-1} g`` by Cholesky (:func:`tikhon.backends._blas.cholesky_solve`: on the
    calling thread, not LAPACK's threads, for Hessians of up to 512 parameters); by a
    floored eigendecomposition if ``H`` is not numerically positive definite; block by
    block for a :class:`tikhon.objective.BlockDiagonal`."""
    if isinstance(H, BlockDiagonal):
        step = np.empty_like(g)
        for block, idx in zip(H.blocks, H.index):
            step[idx] = newton_step(block, g[idx])
        return step
    solved = cholesky_solve(H, g)
    if solved is not None:
        return -solved
    values, vectors = eigh(H, check_finite=False)
    floor = max(float(values[-1]), 1.0) * np.finfo(np.float64).eps * H.shape[0]
    return -vectors @ ((vectors.T @ g) / np.maximum(values, floor))


# The largest Hessian formed: 5000^2 doubles are 200 MB and a 4e10-flop Cholesky; beyond,
# Newton-CG (solver="newton") needs only Hessian products.
MAX_PARAMS = 5000


def solve(problem, theta0, tol, max_iter, armijo=1e-4):
    if problem.n_params > MAX_PARAMS:
        raise ValueError(f"solver 'newton_cholesky' forms the {problem.n_params} x {problem.n_params} Hessian "
                         f"(more than {MAX_PARAMS} parameters); use solver='newton' or 'auto'")
    history = History()
    theta = np.array(theta0, dtype=np.float64)
    value, grad, hessian = problem.value_grad_hessian_matrix(theta)
    history.add(value)
    quadratic = problem.objective.loss == "squared"
    n_iter, message, previous = 0, "", np.inf
    while True:
        gap = problem.gap(theta, value, grad)
        history.report(gap[2], n_iter)
        if gap[2] <= tol or n_iter >= max_iter:
            break
        direction = newton_step(hessian, grad)
        slope = float(np.dot(grad, direction))
        if not slope < 0:  # rounding: fall back to steepest descent
            direction, slope = -grad, -float(np.dot(grad, grad))
        step = 1.0
        for _ in range(40):
            trial = theta + step * direction
            if quadratic:  # P is quadratic: H does not change, only P and the gradient
                t_value, t_grad = problem.value_grad(trial)
                t_hessian = hessian
            else:
                t_value, t_grad, t_hessian = problem.value_grad_hessian_matrix(trial)
            if t_value <= value + armijo * step * slope or drowned(value, t_value):
                break
            step *= 0.5
        else:
            message = "no further decrease of P (optimal to rounding)"
            break
        # Within the rounding of P, a step is progress only if it shrinks the gradient by a
        # tenth (as Newton-CG): else the gradient is at its own rounding floor (float32
        # margins: the certificate, recomputed in float64 by the registry, decides).
        no_decrease = t_value > value or drowned(value, t_value)
        stalled = no_decrease or gap[2] > 0.5 * previous  # Newton's gap falls fast until rounding stops it
        previous = gap[2]
        if stalled and not problem.backend.exact:  # float32 products: is theta optimal in float64?
            exact_gap = problem.duality_gap(theta)
            if exact_gap[2] <= tol:
                gap, message = exact_gap, "optimal to tol by the float64 certificate"
                break
        if no_decrease and gradient_stalled(grad, t_grad):
            message = "no further decrease of P or of its gradient (optimal to rounding)"
            break
        theta, value, grad, hessian = trial, t_value, t_grad, t_hessian
        history.add(value)
        n_iter += 1
    return FitResult(theta, n_iter, gap[2] <= tol, gap[2], history.records, message=message,
                     **certified(gap))
