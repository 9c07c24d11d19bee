"""Full-batch gradient descent with the seeds' weight-decay update.

On the mean-scaled problem ``J = P / m`` (``m = sum_i s_i``), each step is literally

    w <- w (1 - step * lam / m) - step * grad(mean loss)(w, b)
    b <- b - step * d(mean loss)/db

which is a plain gradient step on ``J``. The default step is ``1 / L`` with ``L`` the
Lipschitz constant of ``grad J``: ``L = (c * ||[X 1]^T S [X 1]||_2 + lam) / m`` with
``c`` the loss's largest curvature (1/4 logistic, 1 squared) and the matrix norm
estimated by 30 power iterations, enlarged by 5% because power iteration approaches
it from below. With that default step the iteration is kept monotone: a step that
increases ``P`` is undone and the step halved. A user-given ``learning_rate`` is used
as is, as in the seeds (no safeguard).
"""
from __future__ import annotations

import numpy as np

from ._common import FitResult, History

__all__ = ["solve"]


def default_step(problem):
    """``1 / L`` for the mean-scaled problem (see the module docstring)."""
    norm = 1.05 * problem.backend.curvature_norm()
    return 1.0 / problem.objective.lipschitz_bound(norm, problem.weight_sum)


def solve(problem, theta0, tol, max_iter, learning_rate=None):
    objective, backend, m = problem.objective, problem.backend, problem.weight_sum
    step = default_step(problem) if learning_rate is None else float(learning_rate)
    safeguard = learning_rate is None
    w, b = objective.split(np.array(theta0, dtype=np.float64))
    history = History()
    previous = None  # (w, b, P) before the last step, for the monotone safeguard
    n_iter, converged, cert = 0, False, np.inf
    while True:
        data_loss, gw, gb = backend.loss_grad(w, b)
        value = objective.value(data_loss, w)
        if not np.isfinite(value):
            raise FloatingPointError(f"gradient descent diverged (objective {value}); use a smaller learning_rate")
        if safeguard and previous is not None and value > previous[2]:
            w, b, _ = previous  # undo the step that went uphill and retry with half the step
            step *= 0.5
            previous = None
            continue
        history.add(value)
        cert = problem.certificate(objective.gradient(gw, gb, w))
        if cert <= tol:
            converged = True
            break
        if n_iter >= max_iter:
            break
        previous = (w, b, value)
        decay = objective.weight_decay(step, m)
        w = w * decay - (step / m) * gw
        if objective.fit_intercept:
            b = b - (step / m) * gb
        n_iter += 1
    return FitResult(objective.join(w, b), n_iter, converged, cert, "grad_inf/m", history.records,
                     message=f"step {step:.3g}")
