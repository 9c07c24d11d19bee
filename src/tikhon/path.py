"""Regularization paths: the solutions of one problem over a grid of penalty strengths.

``regularization_path(X, y, Cs=...)`` (logistic) or ``regularization_path(X, y,
alphas=..., model="ridge")`` solves ``P(w, b) = sum_i s_i loss(y_i, x_i w + b) +
lam / 2 ||w||^2`` (see :mod:`tikhon.objective`) for every grid value, ``lam = 1 / C``
or ``lam = alpha``.

Two methods:

* ``"warm_start"``: one backend is built for the data (backends depend on the loss
  only, not on ``lam``) and serves every grid point; points are solved from the
  strongest penalty to the weakest, each started from its neighbour's solution (the
  first from ``w = 0`` and the best constant intercept; from the third point on, from
  the secant through the last two solutions in ``log lam`` when that has the lower
  objective — on a9a and reuters over 20 values of C it saves a fifth of the Newton
  steps). Solutions near each other make Newton converge in a few steps. ``solver="auto"`` is a Newton solver here (as for
  the estimators), not dual CD: dual CD starts from its own dual point (it cannot use a primal warm start) and
  converges more slowly from a warm primal point than Newton does.
* ``"eigh"`` (ridge only): one symmetric eigendecomposition of the weighted, centred
  Gram matrix of the smaller side (``X^T S X`` when ``n >= d``, ``X X^T`` otherwise;
  ``S`` the sample weights, centring by the weighted means handles the intercept, the
  weights enter as ``sqrt(s)`` row scalings) gives every grid point in closed form.
  ``method="auto"`` uses it when its cost, about ``nnz * k + k^3`` with
  ``k = min(n, d)``, is below that of ``100`` passes over X per grid point; each
  closed-form point is then certified like any fit (and polished by Newton in the rare
  case its duality gap misses ``tol``).

Several outputs (``n_outputs = K > 1``) are the estimators' problems of K rows of ``W``
(:class:`tikhon.objective.Objective` with ``n_outputs=K``): labels of three or more
classes make a multinomial path, and a ridge ``y`` of shape (n, T), ``T >= 2``, a
multi-target path (each grid value the penalty of every target). Warm starts and the
secant predictor run on the whole parameter vector ``[W.ravel(), b]``; ``"eigh"``
decomposes once for every target and every grid value. Binary and single-target paths
keep their shapes: ``coefs`` (n_grid, d), ``intercepts`` (n_grid,).

Every point reports its objective ``P``, iterations, the certificate it stopped on and
the relative duality gap (see :mod:`tikhon.objective`).
"""
from __future__ import annotations

import numbers
import time
import warnings
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_consistent_length

from . import _validation as V
from . import solvers
from ._config import resolve_backend
from .estimators import DEFAULT_MAX_ITER, LogisticRegression, Ridge, _max_iter, _SOLVER_OPTIONS
from .objective import DEFAULT_TOL, Objective
from .solvers import Problem

__all__ = ["PathResult", "regularization_path", "default_grid"]

_MODELS = {"logistic": ("logistic", "C"), "ridge": ("squared", "alpha")}


def default_grid(n):
    """``n`` values log-spaced in ``[1e-4, 1e4]`` (scikit-learn's ``Cs=n``)."""
    return np.logspace(-4, 4, int(n))


@dataclass
class PathResult:
    """Solutions over a grid, in the order the grid was given.

    Attributes
    ----------
    model : "logistic" or "ridge"
    param_name : "C" or "alpha"
    grid : (n_grid,) the C or alpha values; ``lams`` the penalties ``1 / C`` or ``alpha``
        (a path of one penalty per target, as RidgeCV's refit with ``alpha_per_target``
        makes: (n_grid, n_targets))
    coefs : (n_grid, n_features); intercepts : (n_grid,) -- one output (binary logistic
        regression, one target); (n_grid, K, n_features) and (n_grid, K) for ``K >= 3``
        classes or ``K >= 2`` targets
    objectives : ``P`` at each solution
    n_iter : solver iterations per point (0 for the closed form)
    certificates : the relative duality gap each point's solver stopped on
    duality_gaps : relative duality gap per point (a bound on the relative suboptimality;
        the smaller of the solver's and the objective module's, see :func:`tikhon.solvers.run`)
    converged : bool per point; seconds : wall time per point
    method : "warm_start" or "eigh"; solver, backend : what ran (solver ``None`` for eigh)
    decomposition_seconds : time of the eigendecomposition (0 for warm starts, and for a
        decomposition reused from RidgeCV's leave-one-out)
    classes : the labels (logistic): for two, ``classes[1]`` is the positive class; for
        ``K >= 3``, row ``k`` of each point's ``W`` is ``classes[k]``
    histories : per point, the solver's (seconds, objective) records (empty for eigh)
    """

    model: str
    param_name: str
    grid: np.ndarray
    lams: np.ndarray
    coefs: np.ndarray
    intercepts: np.ndarray
    objectives: np.ndarray
    n_iter: np.ndarray
    certificates: np.ndarray
    duality_gaps: np.ndarray
    converged: np.ndarray
    seconds: np.ndarray
    method: str
    solver: str | None
    backend: str
    decomposition_seconds: float = 0.0
    classes: np.ndarray | None = None
    histories: list | None = None

    @property
    def total_seconds(self):
        return float(self.decomposition_seconds + self.seconds.sum())

    @property
    def n_outputs(self):
        """``K``, the rows of each point's ``W`` (1 for binary logistic regression and one target)."""
        return self.coefs.shape[1] if self.coefs.ndim == 3 else 1

    def decision_function(self, X):
        """Margins ``X W_k^T + b_k`` for every grid point ``k``: shape (n_samples, n_grid)
        for one output, (n_samples, K, n_grid) for ``K`` (the grid is always the last axis).
        ``X`` passes the estimators' validation gate (:func:`tikhon._validation.check_X`)."""
        X = V.check_X(X, fitting=False)
        d = self.coefs.shape[-1]
        if X.shape[1] != d:
            raise ValueError(f"X has {X.shape[1]} features, but this path was fitted on {d}")
        return self._decision(X)

    def _decision(self, X):
        """``decision_function`` on ``X`` already validated (the CV estimators' folds)."""
        n_grid, d = self.coefs.shape[0], self.coefs.shape[-1]
        flat = self.coefs.reshape(-1, d)  # one product for all grid points and outputs
        Z = np.asarray(X @ flat.T.astype(X.dtype, copy=False), dtype=np.float64)
        if self.coefs.ndim == 2:
            return Z + self.intercepts
        Z = Z.reshape(X.shape[0], n_grid, -1) + self.intercepts  # n x n_grid x K
        return Z.transpose(0, 2, 1)


# ---------------------------------------------------------------- validation
def _validate(X, y, model, sample_weight, class_weight, checked_X=False):
    """``(X, targets, weights, classes)`` with the estimators' checks
    (:mod:`tikhon._validation`): X through their gate (``check_X``, skipped when
    ``checked_X``); targets as +-1 (two classes), class indices as floats (three or
    more: multinomial) or a float64 copy (ridge: (n,), or (n, T) for ``T >= 2`` targets;
    one column is flattened); weights (a fresh copy) times class weights
    (``class_weighted``)."""
    if not checked_X:
        X = V.check_X(X, fitting=True)
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y.ravel()
    if y.ndim != 1 and not (model == "ridge" and y.ndim == 2):
        raise ValueError(f"y must be one-dimensional, got shape {y.shape}"
                         + (" (several targets: model='ridge')" if y.ndim == 2 else ""))
    check_consistent_length(X, y)
    s = V.check_sample_weight(sample_weight, X)
    if model == "ridge":
        if class_weight is not None:
            raise ValueError("class_weight applies to logistic regression only")
        return X, V.check_targets(y), s, None  # finite, bounded, a float64 copy
    classes, index = V.check_class_labels(y, "regularization_path")
    s = V.class_weighted(s, class_weight, classes, index)
    if classes.size == 2:
        return X, np.where(index == 1, 1.0, -1.0), s, classes
    return X, index.astype(np.float64), s, classes


def class_index(t, classes):
    """The class index of each row from :func:`_validate`'s logistic targets."""
    return (t > 0).astype(np.intp) if classes.size == 2 else t.astype(np.intp)


def _outputs(loss, t, classes):
    """``(loss, n_outputs)`` of the problem on these targets: the multinomial loss for
    three or more classes, one output per column of a 2-D ridge target."""
    if loss == "logistic" and classes is not None and classes.size > 2:
        return "multinomial", int(classes.size)
    if loss == "squared" and np.ndim(t) == 2:
        return loss, int(t.shape[1])
    return loss, 1


def _grid(values, name):
    if values is None:
        values = 10
    if isinstance(values, numbers.Integral) and not isinstance(values, (bool, np.bool_)):
        V.positive(f"{name}s (a number of grid values)", int(values), integer=True)
        return default_grid(values)
    grid = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if grid.ndim != 1 or grid.size == 0:
        raise ValueError(f"{name}s must be a positive integer or a non-empty 1-D list of values")
    if name == "C" and np.any(grid == np.inf):  # scikit-learn's Cs=(np.inf,) is its penalty=None
        raise ValueError("Cs holds inf: C=inf is no penalty (scikit-learn's penalty=None), which tikhon does not "
                         "solve (L2, lam = 1/C > 0); give finite values of C")
    for v in grid:
        V.positive(name, float(v))
    return grid


def solver_name(model, solver):
    """tikhon's name of ``solver`` for ``model`` ("logistic" or "ridge"), by the
    estimators' rule: tikhon's names, or scikit-learn's names of the same algorithms
    (``newton-cg``, ``newton-cholesky``, ``lbfgs``; ridge: ``cholesky``, ``sparse_cg``,
    ``lbfgs``); others are refused with the list (``_L2LinearModel._solver_name``)."""
    estimator = LogisticRegression if model == "logistic" else Ridge
    return estimator(solver=solver)._solver_name()


def check_settings(tol, max_iter, fit_intercept):
    """The settings a path shares with the estimators, checked by their rules: ``tol``
    > 0, ``max_iter`` an integer >= 0 or ``None`` (returned as the solvers' cap:
    ``DEFAULT_MAX_ITER``; ``0`` returns the starting point), a boolean ``fit_intercept``."""
    V.positive("tol", tol)
    V.check_bool("fit_intercept", fit_intercept)
    return _max_iter(max_iter)


def _use_eigh(X, n_grid):
    """The ``method="auto"`` rule for ridge (see the module docstring)."""
    n, d = X.shape
    k = min(n, d)
    work = X.nnz if sp.issparse(X) else n * d
    return work * k + k ** 3 <= n_grid * 100 * 2 * work


# ---------------------------------------------------------------- the public function
def regularization_path(X, y, Cs=None, *, alphas=None, model="logistic", backend=None, solver="auto",
                        method="auto", tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, sample_weight=None,
                        class_weight=None, fit_intercept=True):
    """Solve one L2-regularized problem over a grid of ``C`` (logistic) or ``alpha`` (ridge).

    Parameters
    ----------
    X : array or CSR matrix (n_samples, n_features), float32 or float64 (used in place)
    y : labels (logistic: two classes, or three or more for a multinomial path) or real
        targets (ridge: (n_samples,), or (n_samples, n_targets) for a multi-target path)
    Cs : int or list of float, logistic only
        Grid of ``C``; an int ``k`` means ``k`` values log-spaced in [1e-4, 1e4]
        (default 10), as scikit-learn's ``LogisticRegressionCV``.
    alphas : int or list of float, ridge only (same convention)
    model : {"logistic", "ridge"}
    backend, solver, tol, max_iter : as for :class:`tikhon.LogisticRegression` (``model="ridge"``:
        :class:`tikhon.Ridge`), scikit-learn's solver names included (``"newton-cg"``,
        ``"newton-cholesky"``, ``"lbfgs"``; ridge: ``"cholesky"``, ``"sparse_cg"``);
        ``solver="auto"`` is chosen as for the estimators (a Newton solver, warm-startable).
        ``max_iter=None`` is 1000; ``max_iter=0`` returns the starting point at every grid
        value (zero coefficients and the best constant intercept) with a ConvergenceWarning.
    method : {"auto", "warm_start", "eigh"}
        ``eigh`` (ridge only): one eigendecomposition for the whole path.
    sample_weight, class_weight (logistic), fit_intercept : as for the estimators.

    Returns
    -------
    PathResult
        ``coefs`` (n_grid, n_features) for two classes or one target, (n_grid, K,
        n_features) for ``K >= 3`` classes or ``K >= 2`` targets (see :class:`PathResult`).
    """
    if model not in _MODELS:
        raise ValueError(f"unknown model {model!r}; expected 'logistic' or 'ridge'")
    loss, name = _MODELS[model]
    if model == "logistic":
        if alphas is not None:
            raise ValueError("alphas is the ridge grid; pass Cs for model='logistic'")
        grid = _grid(Cs, "C")
        lams = 1.0 / grid
    else:
        if Cs is not None:
            raise ValueError("Cs is the logistic grid; pass alphas for model='ridge'")
        grid = _grid(alphas, "alpha")
        lams = grid.copy()
    if method not in ("auto", "warm_start", "eigh"):
        raise ValueError(f"unknown method {method!r}; expected 'auto', 'warm_start' or 'eigh'")
    if method == "eigh" and model != "ridge":
        raise ValueError("method='eigh' is the closed form of ridge; logistic paths use warm starts")
    max_iter = check_settings(tol, max_iter, fit_intercept)
    solver = solver_name(model, solver)
    X, t, s, classes = _validate(X, y, model, sample_weight, class_weight)
    if method == "auto":
        method = "eigh" if model == "ridge" and _use_eigh(X, grid.size) else "warm_start"
    return _solve_path(X, t, s, grid, lams, loss, name, bool(fit_intercept), backend, solver, method,
                       tol, max_iter, classes, model)


def _solve_path(X, t, s, grid, lams, loss, name, fit_intercept, backend, solver, method, tol,
                max_iter, classes=None, model=None, theta0=None, spectrum=None, options=None):
    """The path on validated data and checked settings (``solver`` tikhon's name,
    ``max_iter`` an int; the CV estimators call this per fold and to refit;
    ``options``: the estimators' solver options, e.g. ``random_state`` (an int seed),
    passed to the solvers that take them;
    ``theta0``, if given, starts the first warm-started point; ``spectrum``, a
    :class:`RidgeSpectrum` of these data already made, serves ``method="eigh"``, as
    RidgeCV's leave-one-out one serves its refit). ``loss`` is the model's
    ("logistic" or "squared"): three or more ``classes`` make it multinomial, a 2-D ``t``
    several ridge targets (:func:`_outputs`). ``lams`` is (n_grid,), or (n_grid, K) for
    one penalty per output at each point."""
    model = model or ("logistic" if loss == "logistic" else "ridge")
    loss, K = _outputs(loss, t, classes)
    backend_name = resolve_backend(backend)
    backend_cls = solvers.backend_for(solver, loss, backend_name, X, K, what="path")
    be = backend_cls(X, t, s, Objective(loss, 1.0, fit_intercept, K).pointwise, n_outputs=K)
    solver = solvers.choose_solver(solver, loss, be)  # auto: by the cost model, for the whole grid
    options = {k: v for k, v in (options or {}).items() if k in _SOLVER_OPTIONS[solver]}

    n_grid, d = lams.shape[0], X.shape[1]
    outputs = (K,) if K > 1 else ()
    out = dict(coefs=np.zeros((n_grid, *outputs, d)), intercepts=np.zeros((n_grid, *outputs)),
               objectives=np.zeros(n_grid), n_iter=np.zeros(n_grid, dtype=int), certificates=np.zeros(n_grid),
               duality_gaps=np.zeros(n_grid), converged=np.zeros(n_grid, dtype=bool), seconds=np.zeros(n_grid))
    strength = lams if lams.ndim == 1 else lams.mean(axis=1)
    order = np.argsort(-strength, kind="stable")  # strongest penalty first
    decomposition_seconds = 0.0
    if method == "eigh":
        t0 = time.perf_counter()
        # one decomposition: every target, every alpha
        spectral = spectrum if spectrum is not None else RidgeSpectrum(X, t, s, fit_intercept)
        decomposition_seconds = time.perf_counter() - t0
    theta = None if theta0 is None else np.asarray(theta0, dtype=np.float64)
    trail = []  # (theta, log lam) of the last two warm-started solutions, for the predictor
    failed, histories = [], [None] * n_grid
    for k in order:
        objective = Objective(loss, lams[k] if lams.ndim == 2 else float(lams[k]), fit_intercept, K)
        log_lam = float(np.log(strength[k]))
        t0 = time.perf_counter()
        if method == "eigh":
            w, b = spectral.solve(lams[k])
            theta = objective.join(w, b)
            problem = Problem(objective, be)
            gap = problem.gap(theta, *problem.value_grad(theta))
            if gap[2] <= tol:
                result = solvers.FitResult(theta, 0, True, gap[2], **solvers.certified(gap))
            else:  # rounding in an ill-conditioned decomposition: polish by Newton
                result = solvers.run("newton", objective, be, theta, tol, max_iter)
        else:
            if theta is None:
                theta = np.zeros(objective.n_params(d))
                if fit_intercept:
                    theta[-K:] = objective.constant_intercept(t, s)
            elif len(trail) == 2:
                theta = _predict(Problem(objective, be), trail, log_lam)
            result = solvers.run(solver, objective, be, theta, tol, max_iter, **options)
            trail = [*trail[-1:], (result.theta, log_lam)]
        out["seconds"][k] = time.perf_counter() - t0
        theta = result.theta
        w, b = objective.split(theta)
        out["coefs"][k], out["intercepts"][k] = w, b
        out["objectives"][k], out["n_iter"][k] = result.objective, result.n_iter
        out["certificates"][k], out["duality_gaps"][k] = result.certificate, result.relative_gap
        out["converged"][k] = result.converged
        histories[k] = result.history
        if not result.converged:
            failed.append(f"{name}={_show(grid[k])} (relative duality gap {result.relative_gap:.3g})")
    if failed:
        warnings.warn(f"tikhon path: {len(failed)} of {n_grid} grid points did not reach tol={tol:g} "
                      f"within max_iter={max_iter}: {', '.join(failed)}", ConvergenceWarning, stacklevel=3)
    return PathResult(model=model, param_name=name, grid=grid, lams=lams, method=method,
                      solver=None if method == "eigh" else solver, backend=backend_cls.name,
                      decomposition_seconds=decomposition_seconds, classes=classes, histories=histories, **out)


def _show(value):
    """A grid value (or a row of per-target values) for a message."""
    return f"{value:g}" if np.ndim(value) == 0 else "[" + ", ".join(f"{v:g}" for v in value) + "]"


def _predict(problem, trail, log_lam):
    """Warm start for the next point: the secant through the last two solutions, in
    ``log lam``, extended to ``log_lam`` (solutions vary smoothly along a log grid), if
    it has a lower objective than the last solution itself (two passes over X)."""
    (theta0, l0), (theta1, l1) = trail
    if l1 == l0:
        return theta1
    guess = theta1 + (theta1 - theta0) * ((log_lam - l1) / (l1 - l0))
    if problem.value_grad(guess)[0] < problem.value_grad(theta1)[0]:
        return guess
    return theta1


# ---------------------------------------------------------------- ridge in closed form
class RidgeSpectrum:
    """One eigendecomposition for every ridge penalty, every target (and leave-one-out errors).

    With weighted means ``xbar = X^T s / m``, ``ybar = s . y / m`` (zero without an
    intercept) the weighted, centred problem is plain ridge on ``Xc = sqrt(S)(X - 1 xbar^T)``
    and ``yc = sqrt(S)(y - ybar)``; ``b = ybar - xbar . w``. The smaller Gram matrix is
    decomposed: ``Xc^T Xc = V diag(e) V^T`` (``n >= d``, then ``w = V (V^T Xc^T yc) / (e + lam)``)
    or ``Xc Xc^T = U diag(e) U^T`` (``n < d``, then ``w = Xc^T U (U^T yc) / (e + lam)``).
    ``y`` of shape (n, T) holds ``T`` targets: the decomposition depends on ``X`` only, so
    it serves them all, their projections ``V^T Xc^T yc`` (d x T) are one product, and each
    target may take its own penalty (``solve(lam)`` with ``T`` values).
    Sparse X is never densified or centred: the centring enters as rank-one corrections.
    Memory: the ``k x k`` Gram (``k = min(n, d)``), plus ``n x k`` for leave-one-out.
    """

    def __init__(self, X, y, s, fit_intercept=True):
        self.X, self.y, self.s = X, np.asarray(y, dtype=np.float64), np.asarray(s, dtype=np.float64)
        n, d = X.shape
        m = self.s.sum()
        self.sw = np.sqrt(self.s)
        self.fit_intercept = fit_intercept
        if fit_intercept:
            self.xbar = np.asarray(X.T @ self.s.astype(X.dtype), dtype=np.float64).ravel() / m
            self.ybar = self.s @ self.y / m if self.y.ndim == 2 else float(np.dot(self.s, self.y) / m)
        else:
            self.xbar, self.ybar = np.zeros(d), (np.zeros(self.y.shape[1]) if self.y.ndim == 2 else 0.0)
        self.yc = _by_row(self.sw, self.y - self.ybar)
        self.wide = n < d
        if self.wide:
            K = self._gram_rows()
            self.e, self.U = np.linalg.eigh(K)
            self.Uyc = self.U.T @ self.yc
        else:
            G = self._gram_cols()
            self.e, self.V = np.linalg.eigh(G)
            self.Vb = self.V.T @ self._rmatvec_c(self.yc)
        np.maximum(self.e, 0.0, out=self.e)  # rounding can make a zero eigenvalue negative
        self._A = None

    # Xc v and Xc^T r without forming Xc (v: d or d x T; r: n or n x T)
    def _matvec_c(self, v):
        z = _product(self.X, v)
        return _by_row(self.sw, z - self.xbar @ v)

    def _rmatvec_c(self, r):
        u = _by_row(self.sw, r)
        g = _product(self.X.T, u)
        return g - np.multiply.outer(self.xbar, u.sum(axis=0))

    def _gram_cols(self):
        X = self.X
        Xs = sp.diags(self.s) @ X if sp.issparse(X) else X * self.s[:, None].astype(X.dtype)
        G = X.T @ Xs
        G = G.toarray() if sp.issparse(G) else np.asarray(G)
        G = G.astype(np.float64) - self.s.sum() * np.outer(self.xbar, self.xbar)
        return 0.5 * (G + G.T)

    def _gram_rows(self):
        X = self.X
        K = X @ X.T
        K = K.toarray() if sp.issparse(K) else np.asarray(K)
        K = K.astype(np.float64)
        if self.fit_intercept:
            z = np.asarray(X @ self.xbar.astype(X.dtype), dtype=np.float64).ravel()
            K += float(np.dot(self.xbar, self.xbar)) - z[:, None] - z[None, :]
        K *= self.sw[:, None] * self.sw[None, :]
        return 0.5 * (K + K.T)

    def solve(self, lam):
        """``(w, b)`` for penalty ``lam``: ``w`` (d,) and a float ``b`` for one target;
        ``W`` (T, d) and ``b`` (T,) for ``T``, with ``lam`` one value or one per target."""
        lam = np.asarray(lam, dtype=np.float64)
        e = self.e if self.y.ndim == 1 else self.e[:, None]  # columns: targets (lam broadcasts along them)
        if self.wide:
            w = self._rmatvec_c(self.U @ (self.Uyc / (e + lam)))
        else:
            w = self.V @ (self.Vb / (e + lam))
        if self.y.ndim == 1:
            return w, self.ybar - float(np.dot(self.xbar, w))
        W = np.ascontiguousarray(w.T)
        return W, self.ybar - W @ self.xbar

    def loo_residuals(self, lam):
        """Leave-one-out residuals ``y_i - yhat_(-i)`` in the data's units (n, or n x T:
        every target at once), and the fit ``(w, b)``.

        ``yhat_(-i)`` is the prediction for row ``i`` of the weighted ridge fit without row
        ``i``: ``(y_i - yhat_i) / (1 - h_ii)`` with ``h_ii`` the leverage of the hat matrix
        of ``[Xc, sqrt(s)]`` (the intercept column adds ``s_i / m``): it depends on ``lam``
        and ``X`` only, so one leverage vector serves all targets."""
        if self._A is None:
            # rows of the "score" matrix whose squared norms, weighted per eigenvalue, are the leverages
            if self.wide:
                self._A = self.U
            else:  # Xc V, n x d
                Z = np.asarray(self.X @ self.V.astype(self.X.dtype), dtype=np.float64)
                self._A = self.sw[:, None] * (Z - self.xbar @ self.V)
        A = self._A
        if self.wide:
            weights = self.e / (self.e + lam)
        else:
            weights = 1.0 / (self.e + lam)
        h = np.einsum("ij,j,ij->i", A, weights, A)
        if self.fit_intercept:
            h = h + self.s / self.s.sum()
        w, b = self.solve(lam)
        pred = _product(self.X, w.T) + b
        return _by_row(1.0 / (1.0 - h), self.y - pred), w, b


def _product(A, v):
    """``A @ v`` in float64 (``v``: a vector or a block of columns, cast to ``A``'s dtype)."""
    out = np.asarray(A @ v.astype(A.dtype, copy=False), dtype=np.float64)
    return out.reshape(A.shape[0], *v.shape[1:])


def _by_row(factors, a):
    """``a`` (n, or n x T) with row ``i`` multiplied by ``factors[i]``."""
    return factors[:, None] * a if a.ndim == 2 else factors * a
