"""What every solver shares: the objective bound to a backend, the fit report, the clock."""
from __future__ import annotations

import contextlib
import contextvars
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Problem", "FitResult", "History", "ROUNDING", "certified", "continue_with", "drowned", "gradient_stalled"]


# A change of P below this fraction of |P| is its rounding, not progress.
ROUNDING = 64 * np.finfo(np.float64).eps


def drowned(value, new_value):
    """Whether ``P`` moving from ``value`` to ``new_value`` is within its rounding."""
    return abs(new_value - value) <= ROUNDING * abs(value)


def gradient_stalled(grad, new_grad):
    """Within ``P``'s rounding a step is progress only if it shrinks ``||grad P||_1`` by a
    tenth (scikit-learn's NewtonSolver does alike): whether it does not (then the gradient
    is at its own rounding floor and the iterate optimal to rounding)."""
    return float(np.sum(np.abs(new_grad))) >= 0.9 * float(np.sum(np.abs(grad)))


class Problem:
    """The objective bound to one backend, in the flat parameter vector ``theta = [w, b]``.

    Solvers see only this: values, gradients and Hessian products of ``P`` (the
    unscaled objective), the relative duality gap they stop on (:meth:`gap`), and
    ``m = sum_i s_i`` for the seeds' scaling.
    """

    def __init__(self, objective, backend):
        self.objective = objective
        self.backend = backend
        self.weight_sum = backend.weight_sum
        self.n_params = objective.n_params(backend.n_features)
        self._anchors = {}  # side -> Objective.intercept_anchor, one pass each, made on first use
        self._last_gap = None  # (theta, duality_gap(theta)): a solver's final check is not redone

    def split(self, theta):
        return self.objective.split(theta)

    def value_grad(self, theta):
        """``(P, grad P)`` at ``theta``: one pass over X."""
        w, b = self.split(theta)
        data_loss, gw, gb = self.backend.loss_grad(w, b)
        return self.objective.value(data_loss, w), self.objective.gradient(gw, gb, w)

    def value_grad_hessian(self, theta):
        """``(P, grad P, v -> Hess P v)`` at ``theta``."""
        w, b = self.split(theta)
        data_loss, gw, gb, product = self.backend.loss_grad_hessian(w, b)

        def hess_vec(v):
            vw, vb = self.split(v)
            hw, hb = product(vw, vb)
            return self.objective.hess_vec(hw, hb, vw)

        return self.objective.value(data_loss, w), self.objective.gradient(gw, gb, w), hess_vec

    def value_grad_hessian_matrix(self, theta):
        """``(P, grad P, Hess P)`` at ``theta``, the Hessian as a matrix (a Gram pass)."""
        w, b = self.split(theta)
        data_loss, gw, gb, gram = self.backend.loss_grad_gram(w, b)
        obj = self.objective
        if obj.loss == "squared" and obj.fit_intercept and 0 not in self._anchors:
            self._anchor_from_gram(gram)
        return obj.value(data_loss, w), obj.gradient(gw, gb, w), obj.hessian_matrix(gram)

    def _anchor_from_gram(self, gram):
        """The squared loss's intercept anchor ``(X^T s, sum(s))`` is the Gram's last
        column (its weights are ``s loss'' = s``; :meth:`Backend.gram`): kept, so that
        :meth:`gap` needs no pass of its own."""
        G = gram[(0, 0)] if isinstance(gram, dict) else gram
        d = self.backend.n_features
        self._anchors[0] = (np.array(G[:d, d], dtype=np.float64), float(G[d, d]))

    def hessian_diagonal(self, theta):
        """Diagonal of ``Hess P`` at ``theta`` (for preconditioning): two passes over X."""
        w, b = self.split(theta)
        dw, db = self.backend.hessian_diagonal(w, b)
        return self.objective.hess_vec(dw, db, np.ones_like(dw))

    def gap(self, theta, value, grad):
        """``(P, D, relative gap)`` at ``theta`` from its value and gradient (no pass over
        X but, with an intercept, once per fit the pass of the intercept's anchor):
        :meth:`tikhon.objective.Objective.gradient_gap`, the stopping rule of every solver."""
        obj = self.objective
        w, b = self.split(theta)
        grad_b = obj.split(grad)[1]
        anchor = self._anchor(obj.anchor_side(grad_b)) if obj.needs_anchor(grad_b) else None
        return obj.gradient_gap(value, grad, w, b, anchor)

    def loop_anchors(self):
        """The intercept's anchors as arrays, for solver loops a backend runs itself:
        ``(A, sums)``, ``A[0], sums[0]`` of side ``-1`` (the squared loss's only one),
        ``A[1], sums[1]`` of side ``+1``; zeros where not needed."""
        A, sums = np.zeros((2, self.backend.n_features)), np.zeros(2)
        if self.objective.fit_intercept:
            for k, side in enumerate((0,) if self.objective.loss == "squared" else (-1, 1)):
                A[k], sums[k] = self._anchor(side)
        return A, sums

    def _anchor(self, side):
        if side not in self._anchors:
            be = self.backend
            self._anchors[side] = self.objective.intercept_anchor(be.y, be.s, side, be.rmatvec)
        return self._anchors[side]

    def duality_gap(self, theta):
        """``(P, D, relative gap)`` at ``theta`` with the dual point of the best intercept
        for ``w`` (two passes over X): tighter than :meth:`gap` when ``grad_b`` is not
        yet small, the check of last resort. The last result is kept: asked again at the
        same ``theta`` (a solver that stopped on it, then the registry's final check), it
        costs no pass."""
        if self._last_gap is not None and np.array_equal(self._last_gap[0], theta):
            return self._last_gap[1]
        key = np.array(theta, dtype=np.float64)  # a copy: the caller may change theta in place
        w, b = self.split(key)
        be = self.backend
        matvec, rmatvec = be.certified_products()
        anchor = self._anchor(0) if self.objective.loss == "multinomial" and self.objective.fit_intercept else None
        result = self.objective.duality_gap(w, b, matvec(w), be.y, be.s, rmatvec, anchor=anchor)
        self._last_gap = (key, result)
        return result


class History:
    """Objective values over wall-clock time since the solver started.

    With an observer active (:meth:`observed`, e.g. an estimator's ``verbose``),
    :meth:`report` passes each certified iterate on to it: ``observer.begin()`` when a
    solver starts (its return value, the fit-level iteration of the solver's iteration
    0, offsets the solver's own count), ``observer.added()`` per :meth:`add`, and
    ``observer.iteration(k, objective, relative_gap)`` per :meth:`report`.
    """

    # The observer of the fit running in this context, or None: solvers create their
    # History without knowing it; nested solvers (Newton-CG finishing a dual CD fit,
    # Newton-Cholesky finishing Newton-CG) report to the same observer.
    _observer_var = contextvars.ContextVar("tikhon_fit_observer", default=None)

    def __init__(self):
        self._start = time.perf_counter()
        self.records = []
        self._observer = History._observer_var.get()
        self._offset = self._observer.begin() if self._observer is not None else 0

    def add(self, objective_value):
        self.records.append((time.perf_counter() - self._start, float(objective_value)))
        if self._observer is not None:
            self._observer.added()

    def report(self, relative_gap, iteration=None):
        """Tell the observer (if any) about the last added iterate: its relative gap and
        iteration (default: the number of values added before it)."""
        if self._observer is None or not self.records:
            return
        local = len(self.records) - 1 if iteration is None else int(iteration)
        self._observer.iteration(self._offset + local, self.records[-1][1], float(relative_gap))

    @staticmethod
    @contextlib.contextmanager
    def observed(observer):
        """Histories created inside this context report to ``observer``."""
        token = History._observer_var.set(observer)
        try:
            yield observer
        finally:
            History._observer_var.reset(token)

    def extend(self, records, started):
        """Append another solver's records, whose clock started at ``started`` (a
        ``time.perf_counter()`` reading), on this history's clock."""
        shift = started - self._start
        self.records.extend((t + shift, v) for t, v in records)


@dataclass
class FitResult:
    """What a solver returns; the estimators copy it into their fitted attributes."""

    theta: np.ndarray
    n_iter: int
    converged: bool
    certificate: float  # the relative duality gap the solver stopped on (its own bound)
    history: list = field(default_factory=list)
    message: str = ""
    objective: float = np.nan
    dual_objective: float = np.nan
    relative_gap: float = np.nan


def certified(gap):
    """FitResult's ``objective``, ``dual_objective`` and ``relative_gap`` from a ``(P, D,
    relative gap)`` triple computed at the returned ``theta`` (the registry then need not
    compute it again)."""
    primal, dual, relative = gap
    return {"objective": primal, "dual_objective": dual, "relative_gap": relative}


def continue_with(name, problem, theta, tol, max_iter, n_iter, history, done):
    """The remaining iterations by solver ``name`` from ``theta``, after a solver that
    ran ``n_iter`` iterations (``done`` says what they were) with ``history``: its
    objective values join that history, its count the ``n_iter``."""
    import importlib

    from . import SOLVERS

    started = time.perf_counter()
    result = importlib.import_module(SOLVERS[name]).solve(problem, theta, tol, max(max_iter, 0))
    history.extend(result.history[1:], started)  # its first value is the other solver's last
    result.n_iter += n_iter
    result.history = history.records
    result.message = f"{done}, then {result.n_iter - n_iter} by {name}. {result.message}"
    return result
