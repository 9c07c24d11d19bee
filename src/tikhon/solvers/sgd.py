"""Mini-batch stochastic gradient descent with weight decay.

Each epoch visits the rows in a fresh seeded random order, in batches of
``batch_size``. On the mean-scaled problem ``J = P / m`` a batch ``B`` gives the
unbiased gradient estimate ``n / (m |B|) * sum_{i in B} s_i loss'_i x_i`` and the
seeds' update ``w <- w (1 - step_t lam / m) - step_t * estimate``. The step decays as
``step_t = step_0 / (1 + step_0 (lam / m) t)`` after ``t`` batches (the classical
schedule for a ``lam / m``-strongly convex objective); ``step_0`` defaults to the
inverse of the largest per-row Lipschitz constant. After every epoch one full pass
computes the objective and the relative duality gap: a fit stops when the gap meets
``tol`` (rare for SGD at tight tolerances) or after ``max_iter`` epochs.
``random_state=None`` means seed 0 (fits are repeatable).

A backend that offers ``sgd_loop`` (the Numba backend) runs the epochs itself with
the same update and the same shuffles (it draws ``rng.permutation(n)`` from the same
NumPy generator): this module computes the step schedule (:func:`step_at`) and the
decay factors ``Objective.weight_decay(step_t, m)`` for a block of epochs at a time
and hands them over. The Python loop below is the reference for every other backend.
"""
from __future__ import annotations

import numpy as np

from ._common import FitResult, History, certified

__all__ = ["solve"]


def default_step(problem):
    be, objective = problem.backend, problem.objective
    per_row = be.s * (be.row_norms_sq() + float(objective.fit_intercept))
    top = objective.pointwise.max_curvature * float(per_row.max()) * be.n_samples / problem.weight_sum
    return 1.0 / (top + objective.lam / problem.weight_sum)


def step_at(step0, lam_over_m, t):
    """The decaying step ``step0 / (1 + step0 (lam / m) t)`` after ``t`` batches
    (``t`` may be an array)."""
    return step0 / (1.0 + step0 * lam_over_m * t)


def solve(problem, theta0, tol, max_iter, learning_rate=None, batch_size=256, random_state=0):
    objective, backend, m = problem.objective, problem.backend, problem.weight_sum
    n = backend.n_samples
    batch_size = int(min(max(1, batch_size), n))
    step0 = default_step(problem) if learning_rate is None else float(learning_rate)
    rng = np.random.default_rng(0 if random_state is None else random_state)
    w, b = objective.split(np.array(theta0, dtype=np.float64))
    history = History()
    if getattr(backend, "sgd_loop", None) is not None and not objective.multi:
        return _solve_in_backend(problem, w, b, step0, rng, batch_size, tol, max_iter, history)
    t, epoch = 0, 0
    while True:
        data_loss, gw, gb = backend.loss_grad(w, b)
        value = objective.value(data_loss, w)
        if not np.isfinite(value):
            raise FloatingPointError(f"SGD diverged (objective {value}); use a smaller learning_rate")
        history.add(value)
        gap = problem.gap(objective.join(w, b), value, objective.gradient(gw, gb, w))
        history.report(gap[2], epoch)
        if gap[2] <= tol:
            break
        if epoch >= max_iter:
            break
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            rows = np.sort(order[start:start + batch_size])
            _, bgw, bgb = backend.batch_loss_grad(w, b, rows)
            step = step_at(step0, objective.lam / m, t)
            scale = step * n / (m * rows.size)
            w = w * objective.weight_decay(step, m) - scale * bgw
            if objective.fit_intercept:
                b = b - scale * bgb
            t += 1
        epoch += 1
    return FitResult(objective.join(w, b), epoch, gap[2] <= tol, gap[2], history.records,
                     message=f"step0 {step0:.3g}, {t} batches", **certified(gap))


_SCHEDULE_BLOCK = 1 << 20  # batches of step/decay values handed to the backend per call


def _solve_in_backend(problem, w, b, step0, rng, batch_size, tol, max_iter, history):
    """The loop above, run by ``backend.sgd_loop`` in blocks of epochs (same update,
    same shuffles, same schedule)."""
    objective, backend, m = problem.objective, problem.backend, problem.weight_sum
    n = backend.n_samples
    batches = -(-n // batch_size)
    per_call = max(1, _SCHEDULE_BLOCK // batches)
    anchors = problem.loop_anchors()
    epoch, t = 0, 0
    while True:
        epoch_stop = min(epoch + per_call, max_iter)
        ts = np.arange(t, t + (epoch_stop - epoch) * batches, dtype=np.float64)
        steps = step_at(step0, objective.lam / m, ts)
        decays = objective.weight_decay(steps, m)
        status, w, b, epoch, t, records, cert = backend.sgd_loop(
            w, b, rng=rng, steps=steps, decays=decays, t0=t, batch_size=batch_size,
            lam=objective.lam, weight_sum=m, anchors=anchors, fit_intercept=objective.fit_intercept, tol=tol,
            epoch0=epoch, epoch_stop=epoch_stop, max_epochs=max_iter)
        history.records.extend((s - history._start, v) for s, v in records)
        if status == "nonfinite":
            raise FloatingPointError(f"SGD diverged (objective {cert}); use a smaller learning_rate")
        history.report(cert, epoch)  # the backend ran the epochs: one line per block
        if status != "pause":
            break
    return FitResult(objective.join(w, b), epoch, status == "converged", cert,
                     history.records, message=f"step0 {step0:.3g}, {t} batches")
