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

A backend that offers ``gd_loop`` (the Numba backend) runs the whole iteration loop
itself, with the same update: this module computes the step, the decay factor
``Objective.weight_decay(step, m)`` and ``step / m``, and the backend applies
``w <- w * decay - (step / m) * grad`` until it converges, reaches ``max_iter``, or
(with the safeguard) meets an uphill step, which hands control back here to halve the
step. The Python loop below is the reference for every other backend.
"""
from __future__ import annotations

import numpy as np

from ._common import ROUNDING, FitResult, History, certified

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
    if getattr(backend, "gd_loop", None) is not None and not objective.multi:
        return _solve_in_backend(problem, w, b, step, safeguard, tol, max_iter, history)
    previous = None  # (w, b, P) before the last step, for the monotone safeguard
    n_iter = 0
    while True:
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported below
            data_loss, gw, gb = backend.loss_grad(w, b)
            value = objective.value(data_loss, w)
        if not np.isfinite(value):
            raise FloatingPointError(f"gradient descent diverged (objective {value}); use a smaller learning_rate")
        # uphill beyond P's rounding (an increase within it is no reason to halve the step)
        if safeguard and previous is not None and value > previous[2] + ROUNDING * abs(previous[2]):
            w, b, _ = previous  # undo the step that went uphill and retry with half the step
            step *= 0.5
            previous = None
            continue
        history.add(value)
        gap = problem.gap(objective.join(w, b), value, objective.gradient(gw, gb, w))
        history.report(gap[2], n_iter)
        if gap[2] <= tol:
            break
        if n_iter >= max_iter:
            break
        previous = (w, b, value)
        decay = objective.weight_decay(step, m)
        w = w * decay - (step / m) * gw
        if objective.fit_intercept:
            b = b - (step / m) * gb
        n_iter += 1
    return FitResult(objective.join(w, b), n_iter, gap[2] <= tol, gap[2], history.records,
                     message=f"step {step:.3g}", **certified(gap))


def _solve_in_backend(problem, w, b, step, safeguard, tol, max_iter, history):
    """The loop above, run by ``backend.gd_loop`` (same update, same safeguard)."""
    objective, backend, m = problem.objective, problem.backend, problem.weight_sum
    anchors = problem.loop_anchors()
    n_iter = 0
    while True:
        status, w, b, steps, records, cert = backend.gd_loop(
            w, b, decay=objective.weight_decay(step, m), scale=step / m, lam=objective.lam,
            anchors=anchors, fit_intercept=objective.fit_intercept, tol=tol,
            max_steps=max_iter - n_iter, safeguard=safeguard)
        n_iter += steps
        history.records.extend((t - history._start, v) for t, v in records)
        if status == "nonfinite":
            raise FloatingPointError(f"gradient descent diverged (objective {cert}); use a smaller learning_rate")
        history.report(cert, n_iter)  # the backend ran the iterations: one line per hand-back
        if status == "uphill":  # the backend undid the step that went uphill: halve it
            step *= 0.5
            continue
        break
    return FitResult(objective.join(w, b), n_iter, status == "converged", cert,
                     history.records, message=f"step {step:.3g}")
