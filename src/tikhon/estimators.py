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
        ridge = self._loss == "squared"
        multi_output = ridge and self.__sklearn_tags__().target_tags.multi_output
        return V.check_X(X, fitting=reset, estimator=self, y=y, y_numeric=ridge, multi_output=multi_output)

    def _check_params(self):
        """Hyperparameters, checked before any data is touched (see :mod:`tikhon._validation`)."""
        self._lam()
        V.check_solve_settings(self.tol, self.max_iter, self.fit_intercept)
        _positive("learning_rate", self.learning_rate, allow_none=True)
        _positive("batch_size", self.batch_size, integer=True)
        V.check_random_state_param(self.random_state)

    def _fit(self, X, y_fit, sample_weight, loss=None, n_outputs=1):
        """Solve for ``(W, b)`` given validated ``X``, float64 targets and weights
        (hyperparameters already checked by ``_check_params``): ``(w, float b)`` for one
        output, ``W`` (K x d) and ``b`` (K,) for ``n_outputs = K > 1``."""
        loss = loss or self._loss
        objective = Objective(loss, self._lam(), bool(self.fit_intercept), n_outputs)
        backend_name = resolve_backend(self.backend)
        solvers.choose_solver(self.solver, loss)  # an unknown name fails before any work
        if self.solver in solvers.BACKEND_LOOPS and n_outputs > 1:
            raise ValueError(f"solver {self.solver!r} fits binary logistic regression and single-target ridge; "
                             f"this model has {n_outputs} outputs: use solver='auto', 'newton' or 'lbfgs'")
        loop = self.solver if self.solver in solvers.BACKEND_LOOPS else None
        backend_cls = get_backend(backend_name, X, loop=loop, n_outputs=n_outputs)
        backend = backend_cls(X, y_fit, sample_weight, objective.pointwise, n_outputs=n_outputs)
        solver = solvers.choose_solver(self.solver, loss, backend)  # auto: by the cost model

        theta0 = np.zeros(objective.n_params(X.shape[1]))
        if objective.fit_intercept:  # start from the best constant model
            theta0[-n_outputs:] = objective.constant_intercept(y_fit, sample_weight)
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
        if n_outputs > 1:
            return np.array(w, dtype=np.float64), np.array(b, dtype=np.float64)
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
        coef = np.asarray(self.coef_)
        if coef.ndim == 1 or (coef.shape[0] == 1 and self._loss == "logistic"):  # one output: a vector
            z = X @ np.ravel(coef).astype(X.dtype, copy=False)
            return np.asarray(z, dtype=np.float64).ravel() + float(np.ravel(self.intercept_)[0])
        z = X @ coef.T.astype(X.dtype, copy=False)  # K outputs: n x K
        return np.asarray(z, dtype=np.float64) + np.asarray(self.intercept_, dtype=np.float64)

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
    """L2-regularized logistic regression: binary, or multinomial for three or more classes.

    Two classes: minimizes ``sum_i s_i log(1 + exp(-y_i (x_i w + b))) + 1 / (2 C) ||w||^2``
    over ``w`` and (with ``fit_intercept``) the unpenalized intercept ``b``. ``K >= 3``
    classes: ``sum_i s_i (logsumexp_k(z_ik) - z_{i y_i}) + 1 / (2 C) ||W||_F^2`` with
    ``z_i = W x_i + b`` over all ``K`` rows of ``W`` (the symmetric parameterization).
    Both are the problems of ``sklearn.linear_model.LogisticRegression(C=C)``.

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
        ``k`` the weight ``sum(s) / (K sum_{y_i = k} s_i)`` with the sample weights ``s``
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
    CSR structure and magnitudes above 1e50 are a ``ValueError``. ``y``: labels of any
    type, at least two classes, each with positive total weight. ``sample_weight``: finite, >= 0, positive
    sum; weight 0 drops a row. Nothing passed in is written to. The full rules:
    :mod:`tikhon._validation`.

    Attributes
    ----------
    classes_, coef_ ((1, n_features) for two classes, else (n_classes, n_features)),
    intercept_ ((1,) or (n_classes,)), n_iter_, converged_,
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
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` of two or more classes."""
        self._check_params()
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        V.check_nonempty(X)
        classes, y_index = V.check_class_labels(y)
        s = V.class_weighted(self._check_weights(sample_weight, X), self.class_weight, classes, y_index)
        self.classes_ = classes
        if classes.size == 2:
            w, b = self._fit(X, np.where(y_index == 1, 1.0, -1.0), s)
            self.coef_, self.intercept_ = w.reshape(1, -1), np.array([b])
        else:  # multinomial: class indices as floats
            self.coef_, self.intercept_ = self._fit(X, y_index.astype(np.float64), s, "multinomial", classes.size)
        return self

    def decision_function(self, X):
        """``X w + b`` for two classes (positive values predict ``classes_[1]``), else the
        ``n x K`` margins ``X W^T + b``."""
        return self._margins(X)

    def predict(self, X):
        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.predict_labels(self, X)
        z = self.decision_function(X)  # first: raises NotFittedError before classes_ is read
        return self.classes_[(z > 0).astype(int) if z.ndim == 1 else np.argmax(z, axis=1)]

    def predict_proba(self, X):
        """Class probabilities, one column per class of ``classes_`` (rows sum to 1)."""
        from scipy.special import expit, softmax

        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.probabilities(self, X)
        z = self.decision_function(X)
        if z.ndim == 2:
            return softmax(z, axis=1)
        p = expit(z)
        return np.column_stack([1.0 - p, p])

    def predict_log_proba(self, X):
        from scipy.special import log_expit, log_softmax

        if input_format(X) == "dask":  # a lazy dask array: see tikhon.backends.dask
            from .backends import dask as dask_backend

            return dask_backend.probabilities(self, X, log=True)
        z = self.decision_function(X)
        if z.ndim == 2:
            return log_softmax(z, axis=1)
        return np.column_stack([log_expit(-z), log_expit(z)])


class Ridge(RegressorMixin, _L2LinearModel):
    """L2-regularized least squares.

    Minimizes ``sum_i s_i (y_i - x_i w - b)^2 / 2 + alpha / 2 ||w||^2``: the minimizer
    of ``sklearn.linear_model.Ridge(alpha=alpha)`` (whose objective is twice this).

    Several targets (``y`` of shape (n_samples, n_targets)) are fitted at once, one pass
    over X serving all of them, each with its own intercept and, if ``alpha`` is an
    array of ``n_targets`` values, its own penalty, as ``sklearn.linear_model.Ridge``.

    Parameters are those of :class:`LogisticRegression` with ``alpha`` (> 0, a float or
    one per target) in place of ``C`` and no ``class_weight``; ``solver="auto"`` is
    ``newton_cholesky`` (the direct solve of the normal equations) up to a few hundred
    features, else ``newton`` (conjugate gradients). ``coef_`` has shape (n_features,)
    and ``intercept_`` is a float for a 1-D ``y``; (n_targets, n_features) and
    (n_targets,) for a 2-D ``y``.

    Input: as :class:`LogisticRegression`, with real targets ``y`` (finite, 1-D or 2-D,
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
        if np.ndim(self.alpha) == 0:
            _positive("alpha", self.alpha)
            return float(self.alpha)
        alphas = np.asarray(self.alpha, dtype=np.float64)
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas) & (alphas > 0)):
            raise ValueError(f"alpha must be a finite positive number or a 1-D array of them, got {self.alpha!r}")
        return alphas

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features) and real targets ``y``: (n_samples,) or
        (n_samples, n_targets)."""
        self._check_params()
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        V.check_nonempty(X)
        y = V.check_targets(y)  # a finite float64 copy: solvers never see the caller's y
        lam = self._lam()
        targets = 1 if y.ndim == 1 else y.shape[1]
        if np.ndim(lam) and lam.size not in (1, targets):
            raise ValueError(f"alpha has {lam.size} values for {targets} target(s); give one, or one per target")
        s = self._check_weights(sample_weight, X)
        if targets == 1:
            w, b = self._fit(X, y.ravel(), s)
            # a 2-D y of one column keeps scikit-learn's shapes: coef_ (1, d), intercept_ (1,)
            self.coef_, self.intercept_ = (w, b) if y.ndim == 1 else (w.reshape(1, -1), np.array([b]))
        else:
            self.coef_, self.intercept_ = self._fit(X, y, s, n_outputs=targets)
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        return self._margins(X)
