"""What every solver shares: the objective bound to a backend, the fit report, the clock."""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Problem", "FitResult", "History"]


class Problem:
    """The objective bound to one backend, in the flat parameter vector ``theta = [w, b]``.

    Solvers see only this: values, gradients and Hessian products of ``P`` (the
    unscaled objective), its certificate, and ``m = sum_i s_i`` for the seeds' scaling.
    """

    def __init__(self, objective, backend):
        self.objective = objective
        self.backend = backend
        self.weight_sum = backend.weight_sum
        self.n_params = objective.n_params(backend.n_features)

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

    def hessian_diagonal(self, theta):
        """Diagonal of ``Hess P`` at ``theta`` (for preconditioning): two passes over X."""
        w, b = self.split(theta)
        dw, db = self.backend.hessian_diagonal(w, b)
        return self.objective.hess_vec(dw, db, np.ones_like(dw))

    def certificate(self, grad):
        return self.objective.certificate(grad, self.weight_sum)

    def duality_gap(self, theta):
        """``(P, D, relative gap)`` at ``theta`` (two passes over X)."""
        w, b = self.split(theta)
        be = self.backend
        return self.objective.duality_gap(w, b, be.matvec(w), be.y, be.s, be.rmatvec)


class History:
    """Objective values over wall-clock time since the solver started."""

    def __init__(self):
        self._start = time.perf_counter()
        self.records = []

    def add(self, objective_value):
        self.records.append((time.perf_counter() - self._start, float(objective_value)))

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
    certificate: float  # the value of the solver's stopping criterion at theta
    criterion: str  # what ``certificate`` measures, e.g. "grad_inf/m" or "relative_gap"
    history: list = field(default_factory=list)
    message: str = ""
    objective: float = np.nan
    dual_objective: float = np.nan
    relative_gap: float = np.nan
