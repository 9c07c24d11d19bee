"""Dual coordinate descent (rows are the coordinates), with an exact unpenalized intercept.

The passes run in the backend (``backend.dual_epochs``, the compiled ``tikhon._cd``
with the GIL released); this driver decides when to stop and moves the intercept.

* Logistic: Yu, Huang & Lin (2011), LIBLINEAR's ``-s 7``: the dual variable of row
  ``i`` is ``alpha_i in [0, C s_i]`` with ``w = sum_i alpha_i y_i x_i``; each step is a
  safeguarded 1-D Newton solve on ``alpha_i`` (kept as its logit, see ``_cd.pyx``).
  In the objective module's dual variable: ``u_i = -y_i alpha_i / C``.
* Ridge: the closed-form step on ``beta_i`` with ``w = sum_i beta_i x_i``,
  ``u_i = -beta_i / C`` (``C = 1 / alpha``).

Stopping criterion (documented, certified): a relative duality gap ``(P - D) / D``
at the current ``(w, b)``, an upper bound on ``(P - P*) / P*``; the fit stops when it
is ``<= tol``. ``D`` is the objective module's dual value at the better of two dual
points: the dual iterate itself (``u_i = -y_i alpha_i / C``, recentred by
``center_dual`` with an intercept) with ``X^T u`` computed by a pass over X, and the
point :meth:`tikhon.objective.Objective.duality_gap` builds from ``w``. The fit's
``duality_gap_`` (computed afterwards by the solver registry) uses the second only and
can be larger than ``certificate_``; both are certified bounds.
It costs two passes over X, so it is evaluated only when a cheaper estimate — the gap
between ``P`` and the dual value of the current dual variables, one pass — says the
target is reached; and that estimate is computed only at epochs predicted from the
observed linear rate (never more often than every pass, never less often than
doubling the previous interval).

Exact intercept. LIBLINEAR penalizes its bias; tikhon does not. The intercept ``b``
is the multiplier of the dual constraint ``sum_i u_i = 0``, handled by the method of
multipliers (augmented Lagrangian; in the primal, the proximal-point method on ``b``):
each sub-problem is ``min_{w,b} P(w, b) + lam (b - c)^2 / (2 rho)``, which dual CD
solves as LIBLINEAR does a bias column (here of value ``sqrt(rho)``, implicit: a scalar
``sum_i y_i alpha_i`` kept by the pass, no copy of X) offset by the center ``c``;
``b = c - rho sum(u) / lam``. When the sub-problem's own gap is small against the
certificate, the center moves to ``b`` (the multiplier step) and dual CD continues
warm. The certificate is always that of the unpenalized problem, so the result is
exact to ``tol``; the tests compare with scikit-learn's ``fit_intercept=True``.
Why not an outer 1-D search on ``b`` with ``b`` fixed inside (tried first)? With a
group of columns summing to the constant column (one-hot features, as in a9a)
``V(b) = min_w P(w, b)`` is nearly flat: each new ``b`` forces dual CD to re-converge
along that flat direction and the secant slopes drown in the sub-problems' error
(a9a, C=1: 4639 passes against 151 here). With ``b`` free inside the sub-problem the
flat direction is solved by the passes themselves; ``rho`` (default: the mean squared
row norm, a bias column of the rows' scale) makes the prox term weak (few multiplier
steps) without dominating the rows' curvature.
"""
from __future__ import annotations

import math
import time

import numpy as np
from scipy.special import expit

from ..objective import relative_gap, row_blocks
from ._common import FitResult, History, certified

__all__ = ["solve"]


class _Dual:
    """The dual iterate and its certificate pieces, in the objective module's terms."""

    def __init__(self, problem, seed):
        self.problem = problem
        self.objective = problem.objective
        self.backend = be = problem.backend
        if problem.objective.multi:
            raise ValueError("the dual_cd solver fits binary logistic regression and single-target ridge; "
                             "for several classes or targets use solver='auto', 'newton' or 'lbfgs'")
        if not hasattr(be, "dual_epochs"):
            raise ValueError(f"backend {be.name!r} does not run the dual_cd solver")
        self.logistic = self.objective.loss == "logistic"
        self.C = 1.0 / self.objective.lam
        self.y, self.s = be.y, be.s
        n, d = be.n_samples, be.n_features
        self.w = np.zeros(d)
        self.v = np.zeros(n)
        if self.logistic:
            # LIBLINEAR's start: alpha_i = min(1e-3 C_i, 1e-8), kept as its logit
            ya = np.zeros(n)  # y_i alpha_i
            for sl in row_blocks(n):
                Ci = self.C * self.s[sl]
                live = Ci > 0  # rows of weight 0 are skipped by the passes; alpha_i = 0
                Ci[~live] = 1.0
                alpha = np.minimum(1e-3 * Ci, 1e-8)
                self.v[sl] = np.log(alpha) - np.log(Ci - alpha)
                ya[sl] = np.where(live, alpha * self.y[sl], 0.0)
            self.w[:] = be.rmatvec(ya)
            del ya
        self.state = be.dual_state(self.v, self.w, self.C, seed)

    def u(self, sl=None):
        """The objective module's dual variable for the current dual iterate: of rows
        ``sl``, or (``None``) of all rows as a new n-vector built by row blocks."""
        if sl is None:
            u = np.empty_like(self.v)
            for k in row_blocks(len(u)):
                u[k] = self.u(k)
            return u
        if self.logistic:
            return -self.y[sl] * self.s[sl] * expit(self.v[sl])
        return -self.v[sl] / self.C

    def inner_gap(self, margins, center, rho):
        """``(P_aug, D_aug, b)`` of the sub-problem: ``P`` plus ``lam (b - center)^2 / (2 rho)``
        (the augmented Lagrangian of the intercept's constraint; ``rho = 0``: the
        intercept fixed at ``center``), with ``b = center - rho sum(u) / lam``. One pass
        was spent on ``margins``; the dual uses ``X^T u = -lam w`` (no pass)."""
        obj = self.objective
        y, s = self.y, self.s
        # by row blocks, so that the O(n) work allocates O(block), not several n-vectors;
        # the dual value is separable: the rows' conjugates by blocks, the norm term once
        su = rows = 0.0
        for sl in row_blocks(y.shape[0]):
            u = self.u(sl)
            su += float(u.sum())
            rows += obj.dual_value(y[sl], s[sl], u, _EMPTY)
        b = center - rho * su / obj.lam
        pen = rho * su * su / (2.0 * obj.lam)
        data_loss = obj.data_loss(margins, y, s, b)
        dual = rows + obj.dual_value(_EMPTY, _EMPTY, _EMPTY, -obj.lam * self.w) + center * su - pen
        return obj.value(data_loss, self.w) + pen, dual, b

    def certificate(self, w, b, margins):
        """Relative duality gap of the real problem at ``(w, b)``: the smaller of two
        certified bounds, both computed by the objective module with exact products —
        (1) the dual point of the current dual iterate (recentred by the objective's
        ``center_dual`` when there is an intercept), ``X^T u`` by one pass over X (not
        from the maintained ``w``, so rounding cannot fake it), and (2)
        :meth:`Objective.duality_gap`, the dual point built from ``w``. (1) is usually
        the tighter near the optimum; (2) is evaluated only when (1) misses ``tol``."""
        obj = self.objective
        loss = obj.pointwise
        be = self.backend
        primal = obj.value(obj.data_loss(margins, self.y, self.s, b), w)
        u = self.u()
        if obj.fit_intercept:
            loss.center_dual(self.y, self.s, u)
        dual = obj.dual_value(self.y, self.s, u, be.rmatvec(u))
        return relative_gap(primal, primal - dual)

    def objective_gap(self, w, b, margins):
        """``(P, D, relative gap)`` of :meth:`Objective.duality_gap` at ``(w, b)``."""
        return self.objective.duality_gap(w, b, margins, self.y, self.s, self.backend.rmatvec)


_EMPTY = np.zeros(0)

# The early switch to Newton-CG (see ``solve``): after this many passes, if the observed
# rate predicts more than SWITCH_PASSES_LEFT further passes. Measured with 10 against 15
# (no intercept, tol 1e-8): synthetic text 200k x 100k (7.5M nonzeros), C=10, 3.1 s
# against 6.7 s, reuters C=10 0.043 s against 0.064 s (8 passes + Newton instead of 20);
# the other cells of liblinear_compare made the same passes either way.
SWITCH_AFTER = 5
SWITCH_PASSES_LEFT = 10


def solve(problem, theta0, tol, max_iter, random_state=None, inner_min=1e-12, rho=None,
          newton_after=20):
    """Dual CD to relative duality gap ``tol``; ``max_iter`` bounds the passes over X.

    ``theta0``: only its intercept is used (the dual iterate starts as LIBLINEAR's).
    ``random_state``: seed of the per-pass permutations (``None`` means 0).
    ``rho``: augmented-Lagrangian weight of the intercept's constraint (default: the
    mean squared row norm, i.e. a bias column of the rows' typical scale).
    ``newton_after``: passes after which, if the gap is still above ``tol``, the fit is
    finished by Newton-CG warm-started at the current ``(w, b)`` — what LIBLINEAR's
    ``-s 7`` does (after its pass limit it switches to its primal Newton, ``-s 0``): at
    large C dual CD converges slowly in its last digits while Newton converges
    quadratically from a good start. The switch also comes earlier, after
    ``SWITCH_AFTER`` passes, as soon as the observed linear rate predicts more than
    ``SWITCH_PASSES_LEFT`` further passes: a pass visits the rows in random order and
    costs several sequential products with X (measured 5x to 10x on a9a and on synthetic
    text), so a Newton finish of a few dozen products is then the cheaper way to ``tol``
    (a9a, C=1..100: 10-14 passes + Newton iterations instead of 41-508 passes, 2.8x to 14x
    faster). The default pass limit, 20, catches the fits whose rate the rule cannot read:
    with an intercept each multiplier step restarts the rate's estimate (a9a, C=0.1, with
    intercept: 22 passes + Newton, 0.38 s, instead of 31 passes, 0.62 s). Both rules
    count passes, not seconds, so a seeded fit is repeatable. ``None`` disables both
    switches (pure dual CD).
    """
    obj = problem.objective
    history = History()
    seed = 0 if random_state is None else int(random_state)
    dual = _Dual(problem, seed)
    be, state, w = dual.backend, dual.state, dual.w
    y, s = dual.y, dual.s
    state.innereps_min = inner_min
    _, center = obj.split(np.asarray(theta0, dtype=np.float64))
    center = float(center) if obj.fit_intercept else 0.0
    if obj.fit_intercept:
        if rho is None:
            sq = be.row_norms_sq()
            rho = float(np.dot(s, sq) / s.sum()) or 1.0
            del sq
        state.rho = float(rho)
    else:
        rho = 0.0
    state.offset = center

    epochs, interval, outer = 0, 3, 0  # the first passes are fast: check after three
    points = []  # (epoch, log inner gap) since the multiplier last moved
    certificate, message, finish = math.inf, "", False
    checked = None  # (P, D, gap) of Objective.duality_gap at the current (w, b), if computed
    inner_target = tol
    while True:
        run = min(interval, max_iter - epochs)
        if run > 0:
            be.dual_epochs(state, run)
            epochs += run
        margins = be.matvec(w)
        primal, dual_value, b = dual.inner_gap(margins, center, rho)
        history.add(primal)
        inner = relative_gap(primal, primal - dual_value)
        history.report(inner, epochs)  # the sub-problem's gap (the certificate comes at the end)
        points.append((epochs, math.log(max(inner, 1e-300))))
        budget_left = epochs < max_iter
        if newton_after is not None and budget_left and (
                epochs >= newton_after
                or (epochs >= SWITCH_AFTER and _passes_needed(points, tol) > SWITCH_PASSES_LEFT)):
            finish = True  # at newton_after passes, or as soon as the observed rate says so
            break
        if inner > inner_target and budget_left:
            interval = _next_interval(points, inner_target, interval)
            continue
        # the sub-problem is solved: certify (w, b) for the real problem
        if obj.fit_intercept:
            b = obj.best_intercept(margins, y, s, b)  # can only lower P(w, b)
        certificate, checked = dual.certificate(w, b, margins), None
        if certificate > tol:
            checked = dual.objective_gap(w, b, margins)  # the registry's certificate, at this (w, b)
            certificate = min(certificate, checked[2])
        if certificate <= tol or not budget_left:
            break
        if obj.fit_intercept and inner < 0.1 * certificate:
            # the gap is in the intercept's constraint: multiplier step (prox center to b)
            center = b
            state.offset = center
            outer += 1
            points = []
            interval = 1
            inner_target = max(0.05 * tol, min(inner_target, 0.01 * certificate))
            continue
        inner_target = max(min(0.5 * inner, 0.1 * certificate), 1e-3 * tol)
        interval = _next_interval(points, inner_target, interval)
    if finish:  # LIBLINEAR's switch: Newton-CG from the dual CD iterate
        if obj.fit_intercept:
            b = obj.best_intercept(margins, y, s, b)
        theta = obj.join(w, b)
        del dual, state, w, margins  # the dual iterate's n-vectors are not needed by Newton
        theta, checked, newton_iters = _newton_finish(problem, theta, tol, max_iter - epochs, history)
        certificate = checked[2]
        converged = certificate <= tol
        message = (f"{epochs} dual CD passes, then {newton_iters} Newton-CG iterations; "
                   f"{outer} multiplier steps")
        return FitResult(theta, epochs + newton_iters, converged, certificate,
                         history.records, message=message, **certified(checked))
    theta = obj.join(w, b)
    converged = certificate <= tol
    if not converged:
        message = f"pass limit reached; sub-problem gap {inner:.3g}"
    message = message or (f"{epochs} passes, {outer} multiplier steps, "
                          f"{state.newton_steps} Newton steps")
    return FitResult(theta, epochs, converged, certificate, history.records, message=message,
                     **(certified(checked) if checked is not None else {}))


def _newton_finish(problem, theta, tol, max_iter, history):
    """Newton-CG from ``theta`` to relative duality gap ``tol`` (its own stopping rule);
    its objective values join ``history``. Returns ``(theta, (P, D, gap) at theta,
    iterations)``."""
    from . import newton

    started = time.perf_counter()
    result = newton.solve(problem, theta, tol, max(1, max_iter))
    history.extend(result.history, started)
    return result.theta, (result.objective, result.dual_objective, result.relative_gap), result.n_iter


def _passes_needed(points, target):
    """Passes still needed to bring the sub-problem's gap to ``target`` at the observed
    linear rate (infinite when the gap is not falling)."""
    if len(points) < 2:
        return 0.0
    (e0, g0), (e1, g1) = points[-2], points[-1]
    rate = (g1 - g0) / max(e1 - e0, 1)
    return (math.log(max(target, 1e-300)) - g1) / rate if rate < 0 else math.inf


def _next_interval(points, target, interval):
    """Passes until the next check, predicted from the linear rate of the last checks."""
    if len(points) < 2:
        return max(2, interval)
    (e0, g0), (e1, g1) = points[-2], points[-1]
    rate = (g1 - g0) / max(e1 - e0, 1)
    if not rate < 0:  # not falling, or NaN: two infinite gaps (a dual value <= 0 early on)
        return min(2 * interval, 2 * interval + 1)
    need = (math.log(max(0.5 * target, 1e-300)) - g1) / rate  # aim a little past the target
    return int(max(1, min(math.ceil(need), 2 * interval + 1)))
