"""scikit-learn compatible estimators: validate, pick a backend and a solver, solve, store.

Both estimators solve ``P(w, b) = sum_i s_i loss(y_i, x_i w + b) + lam / 2 ||w||^2``
(see :mod:`tikhon.objective`), the problem of scikit-learn's ``LogisticRegression(C)``
(``lam = 1 / C``) and ``Ridge(alpha)`` (``lam = alpha``).

Input (the rules live in :mod:`tikhon._validation`): dense arrays (C or F order,
strided, memory-mapped, read-only or not) and CSR matrices are used in place in
float32 or float64. Other numeric dtypes (integers, bool, float16) and object arrays
of numbers are converted to float64, and other sparse formats to CSR: that conversion
is a copy. Complex data, strings, NaN and infinity are refused with ``ValueError``,
as are empty inputs, broken CSR structure (an index past ``n_features``, a decreasing
``indptr``) and magnitudes above ``1e50``. CSR duplicates mean their sum (copied once
to merge them); unsorted indices and explicit zeros are used as they are. ``X``, ``y``
and ``sample_weight`` are never written to.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from . import _validation as V
from . import solvers
from ._config import resolve_backend
from .backends import get_backend, input_format
from .objective import DEFAULT_TOL, Objective

__all__ = ["LogisticRegression", "Ridge"]


_positive = V.positive  # checks of hyperparameters live in tikhon._validation


class _L2LinearModel(BaseEstimator):
    """Shared fit machinery; subclasses say which loss and penalty strength."""

    _loss = None

    def _lam(self):
        raise NotImplementedError

    def _validate_X(self, X, reset, y=None):
        """``X`` (and ``y``) through the validation gate :func:`tikhon._validation.check_X`."""
        return V.check_X(X, fitting=reset, estimator=self, y=y, y_numeric=self._loss == "squared")

    def _check_params(self):
        """Hyperparameters, checked before any data is touched (see :mod:`tikhon._validation`)."""
        self._lam()
        V.check_solve_settings(self.tol, self.max_iter, self.fit_intercept)
        _positive("learning_rate", self.learning_rate, allow_none=True)
        _positive("batch_size", self.batch_size, integer=True)
        V.check_random_state_param(self.random_state)

    def _fit(self, X, y_signed, sample_weight):
        """Solve for ``(w, b)`` given validated ``X``, float64 targets and weights
        (hyperparameters already checked by ``_check_params``)."""
        objective = Objective(self._loss, self._lam(), bool(self.fit_intercept))
        backend_name = resolve_backend(self.backend)
        solvers.choose_solver(self.solver, self._loss)  # an unknown name fails before any work
        loop = self.solver if self.solver in solvers.BACKEND_LOOPS else None
        backend_cls = get_backend(backend_name, X, loop=loop)
        backend = backend_cls(X, y_signed, sample_weight, objective.pointwise)
        solver = solvers.choose_solver(self.solver, self._loss, backend)  # auto: by the cost model

        theta0 = np.zeros(objective.n_params(X.shape[1]))
        if objective.fit_intercept:  # start from the best constant model
            theta0[-1] = objective.constant_intercept(y_signed, sample_weight)
        options = {k: v for k, v in self._solver_options().items() if k in _SOLVER_OPTIONS[solver]}
        result = solvers.run(solver, objective, backend, theta0, self.tol, self.max_iter, **options)

        w, b = objective.split(result.theta)
        self.backend_ = backend_cls.name
        self.solver_ = solver
        self.n_iter_ = result.n_iter
        self.converged_ = result.converged
        self.certificate_ = result.certificate
        self.objective_ = result.objective
        self.duality_gap_ = result.relative_gap
        self.history_ = result.history
        if not result.converged:
            warnings.warn(
                f"tikhon {solver} (backend {backend_cls.name}) failed to converge after {result.n_iter} "
                f"iterations (max_iter={self.max_iter}): relative duality gap {result.relative_gap:.3g} > "
                f"tol = {self.tol:g} (the solver's own certificate: {result.certificate:.3g}). {result.message}",
                ConvergenceWarning,
                stacklevel=3,
            )
        return np.asarray(w, dtype=np.float64), float(b)

    def _solver_options(self):
        return {"learning_rate": self.learning_rate, "batch_size": self.batch_size,
                "random_state": self.random_state}

    def _check_weights(self, sample_weight, X):
        """A fresh float64 copy of the checked weights (never the caller's array)."""
        if input_format(sample_weight) == "dask":  # an n-vector, gathered under the dead-cluster watch
            from .backends import dask as dask_backend

            sample_weight = dask_backend._gather_vector(sample_weight)
        return V.check_sample_weight(sample_weight, X)

    def save(self, path):
        """Write this fitted model to ``path`` without pickle: a ZIP (``.npz``) of JSON
        metadata with a format version and ``.npy`` arrays (see :mod:`tikhon._io`).
        Read it back with :func:`tikhon.load`. Returns the path written."""
        from ._io import save_model

        return save_model(self, path)

    def _margins(self, X):
        check_is_fitted(self)
        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.margins(self, X)
        X = self._validate_X(X, reset=False)
        coef = np.ravel(self.coef_).astype(X.dtype, copy=False)
        z = X @ coef
        return np.asarray(z, dtype=np.float64).ravel() + float(np.ravel(self.intercept_)[0])

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


# Which estimator options each solver takes.
_SOLVER_OPTIONS = {
    "gd": ("learning_rate",),
    "sgd": ("learning_rate", "batch_size", "random_state"),
    "lbfgs": (),
    "newton": (),
    "newton_cholesky": (),
    "dual_cd": ("random_state",),
}


class LogisticRegression(ClassifierMixin, _L2LinearModel):
    """Binary L2-regularized logistic regression.

    Minimizes ``sum_i s_i log(1 + exp(-y_i (x_i w + b))) + 1 / (2 C) ||w||^2`` over
    ``w`` and (with ``fit_intercept``) the unpenalized intercept ``b``; the same
    problem as ``sklearn.linear_model.LogisticRegression(C=C)``.

    Parameters
    ----------
    C : float, default=1.0
        Inverse penalty strength, ``lam = 1 / C``.
    fit_intercept : bool, default=True
    solver : {"auto", "newton", "newton_cholesky", "lbfgs", "gd", "sgd", "dual_cd"}, default="auto"
        ``auto`` is ``newton_cholesky`` where a Gram pass is cheap (few features, or
        few nonzeros a row on the cython backend), else ``newton`` (see
        :func:`tikhon.solvers.choose_solver`). ``gd`` is the seeds' gradient descent with weight
        decay, ``sgd`` its mini-batch stochastic version, ``dual_cd`` dual coordinate
        descent on CSR input (backend ``cython``).
    backend : str or None, default=None
        Kernel set (``"numpy"``, ``"auto"``, ...). ``None`` defers to
        :func:`tikhon.config_context`, then ``TIKHON_BACKEND``, then ``"auto"``.
    tol : float, default=1e-8
        Stop when the relative duality gap ``(P - D) / D``, an upper bound on the
        relative suboptimality ``(P - P*) / P*``, is ``<= tol`` (see
        :mod:`tikhon.objective`); ``converged_`` says whether it was reached.
    max_iter : int, default=1000
        Iterations (epochs for ``sgd``).
    class_weight : dict, "balanced" or None
        Multiplies each sample's weight by its class's weight; "balanced" gives class
        ``k`` the weight ``sum(s) / (2 sum_{y_i = k} s_i)`` with the sample weights ``s``
        (scikit-learn >= 1.7's definition; the same in LogisticRegressionCV and
        regularization_path: :func:`tikhon._validation.class_weighted`).
    learning_rate : float or None
        Fixed step of ``gd`` / initial step of ``sgd``; ``None`` derives it from a
        Lipschitz bound.
    batch_size : int, default=256
        Rows per ``sgd`` step.
    random_state : int or None, default=None
        Seed of ``sgd``'s shuffling (``None`` means seed 0: fits are repeatable).

    Input
    -----
    ``X``: float32/float64 dense (C/F order, strided, memmap, read-only) or CSR, used in
    place; integer, bool, float16 and object-of-numbers arrays are converted to
    float64 (a copy), complex and string arrays refused; NaN/inf, empty ``X``, broken
    CSR structure and magnitudes above 1e50 are a ``ValueError``. ``y``: exactly two
    classes, each with positive total weight (else ``ValueError``: "Only binary
    classification is supported" for more). ``sample_weight``: finite, >= 0, positive
    sum; weight 0 drops a row. Nothing passed in is written to. The full rules:
    :mod:`tikhon._validation`.

    Attributes
    ----------
    classes_, coef_ (1, n_features), intercept_ (1,), n_iter_, converged_,
    backend_, solver_, certificate_ (the relative duality gap the solver stopped on),
    objective_ (``P`` at the solution), duality_gap_ (relative duality gap, an upper
    bound on the relative suboptimality), history_ (list of (seconds, objective)).
    """

    _loss = "logistic"

    def __init__(self, C=1.0, *, fit_intercept=True, solver="auto", backend=None, tol=DEFAULT_TOL,
                 max_iter=1000, class_weight=None, learning_rate=None, batch_size=256,
                 random_state=None):
        self.C = C
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state

    def _lam(self):
        _positive("C", self.C)
        return 1.0 / self.C

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features) and two-class labels ``y``."""
        self._check_params()
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        V.check_nonempty(X)
        classes, y_index = V.check_binary_labels(y)
        s = V.class_weighted(self._check_weights(sample_weight, X), self.class_weight, classes, y_index)
        y_signed = np.where(y_index == 1, 1.0, -1.0)
        del y_index  # not held through the solve (n integers)
        self.classes_ = classes
        w, b = self._fit(X, y_signed, s)
        self.coef_ = w.reshape(1, -1)
        self.intercept_ = np.array([b])
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False  # binary until multinomial exists
        return tags

    def decision_function(self, X):
        """``X w + b``: positive values predict ``classes_[1]``."""
        return self._margins(X)

    def predict(self, X):
        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.predict_labels(self, X)
        positive = self.decision_function(X) > 0  # first: raises NotFittedError before classes_ is read
        return self.classes_[positive.astype(int)]

    def predict_proba(self, X):
        """Columns: probabilities of ``classes_[0]`` and ``classes_[1]``."""
        from scipy.special import expit

        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.probabilities(self, X)
        p = expit(self.decision_function(X))
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X):
        from scipy.special import log_expit

        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.probabilities(self, X, log=True)
        z = self.decision_function(X)
        return np.column_stack([log_expit(-z), log_expit(z)])


class Ridge(RegressorMixin, _L2LinearModel):
    """L2-regularized least squares.

    Minimizes ``sum_i s_i (y_i - x_i w - b)^2 / 2 + alpha / 2 ||w||^2``: the minimizer
    of ``sklearn.linear_model.Ridge(alpha=alpha)`` (whose objective is twice this).

    Parameters are those of :class:`LogisticRegression` with ``alpha`` (> 0) in
    place of ``C`` and no ``class_weight``; ``solver="auto"`` is ``newton_cholesky``
    (the direct solve of the normal equations) up to a few hundred features, else
    ``newton`` (conjugate gradients). ``coef_`` has shape
    (n_features,) and ``intercept_`` is a float.

    Input: as :class:`LogisticRegression`, with real targets ``y`` (finite, 1-D,
    magnitude at most 1e50; complex refused).
    """

    _loss = "squared"

    def __init__(self, alpha=1.0, *, fit_intercept=True, solver="auto", backend=None, tol=DEFAULT_TOL,
                 max_iter=1000, learning_rate=None, batch_size=256, random_state=None):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.random_state = random_state

    def _lam(self):
        _positive("alpha", self.alpha)
        return float(self.alpha)

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features) and real targets ``y`` (n_samples,)."""
        self._check_params()
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        V.check_nonempty(X)
        y = V.check_targets(y)  # a finite float64 copy: solvers never see the caller's y
        s = self._check_weights(sample_weight, X)
        w, b = self._fit(X, y, s)
        self.coef_ = w
        self.intercept_ = b
        return self

    def predict(self, X):
        return self._margins(X)
