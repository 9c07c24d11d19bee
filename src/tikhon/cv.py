"""Cross-validated estimators: choose ``C`` / ``alpha`` over a warm-started path, then refit.

:class:`LogisticRegressionCV` makes the choice of scikit-learn's
``LogisticRegressionCV(l1_ratios=(0,))`` on the same folds: ``StratifiedKFold(5)`` by
default (``cv`` an int or a splitter, resolved by ``sklearn.model_selection.check_cv``),
``scoring=None`` is accuracy (weighted by the test rows' ``sample_weight``, as
scikit-learn), the chosen ``C_`` maximizes the score summed over folds (the first
such grid value), and the model is refit on all data at ``C_`` by a
:class:`tikhon.LogisticRegression` (its checks, conventions and report), started from the
folds' mean solution. Three or more classes: each fold's path is multinomial (all
``K`` rows of ``W``, as :class:`tikhon.LogisticRegression`), scored on the ``K``
classes' margins or probabilities.

Both take scikit-learn's parameters of the same names wherever their meaning carries
over (issue 17; the parameters shared with LogisticRegression/Ridge are checked by
those estimators' rules) and give its fitted attributes in its shapes and dtypes.

:class:`RidgeCV` makes the choice of ``sklearn.linear_model.RidgeCV``: with
``cv=None`` the efficient leave-one-out error of the closed form (one
eigendecomposition, :class:`tikhon.path.RidgeSpectrum`; the score is minus the
weighted mean squared LOO residual, or ``scoring`` applied to the LOO predictions);
with ``cv`` set, k-fold (``KFold``, unshuffled, for an int) with ``scoring=None``
meaning R^2 — unweighted, as scikit-learn's ``GridSearchCV`` behind ``RidgeCV``.
Several targets (``y`` of shape (n, T)): one decomposition and one leverage vector per
alpha serve every target; the score pools the targets (the mean over all of them, or
the scorer's ``multioutput`` average), or, with ``alpha_per_target=True`` (leave-one-out
only, as scikit-learn), each target gets the alpha of its own best score.

Folds run in threads (``n_jobs``): the kernels spend their time in NumPy/SciPy and
compiled code that release the GIL. Backend choices in force (``config_context``)
are resolved once in the caller's thread and passed to the workers explicitly, and so
is the thread budget: each of ``k`` fold threads gets ``budget // k`` threads for its
kernels (at least one), so ``n_jobs`` never multiplies the threads in use.
"""
from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import get_scorer
from sklearn.model_selection import check_cv

from ._config import config_context, resolve_backend, thread_budget
from . import _validation as V
from .estimators import (DEFAULT_MAX_ITER, LogisticRegression, Ridge, _check_verbose, _max_iter, _n_threads, _seed,
                         _verbose_logging, logger)
from .objective import DEFAULT_TOL
from .path import (RidgeSpectrum, _grid, _product, _solve_path, _use_eigh, _validate, check_settings, class_index)

__all__ = ["LogisticRegressionCV", "RidgeCV"]


def _n_workers(n_jobs, n_folds):
    """Fold threads for ``n_jobs`` (scikit-learn's meaning for the CV estimators: ``None``
    is one; ``-1`` all the cores, as the estimators' ``n_jobs``), at most one per fold."""
    threads = _n_threads(n_jobs)
    return 1 if threads is None else max(1, min(threads, n_folds))


def _map_folds(function, folds, n_jobs):
    """``[function(fold) for fold in folds]``, on ``n_jobs`` threads. The caller's
    thread budget (:func:`tikhon._config.thread_budget`: its ``config_context(n_threads)``
    or its share of the cores) is split among the fold threads: each runs under
    ``config_context(n_threads=budget // workers)`` (settings are thread-local, so a
    fold thread would otherwise start from the defaults and claim every core)."""
    workers = _n_workers(n_jobs, len(folds))
    if workers == 1:
        return [function(fold) for fold in folds]
    share = max(1, thread_budget() // workers)

    def run(fold):
        with config_context(n_threads=share):
            return function(fold)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, folds))


def _store_fit(estimator, path, dtype):
    """Copy RidgeCV's refit, a single-point path, into its fitted attributes with
    :class:`tikhon.Ridge`'s conventions: ``coef_`` (d,) and a NumPy scalar ``intercept_``
    for one target, (T, d) and (T,) for ``T``, both in X's ``dtype``; ``n_iter_`` an int32
    array of one entry per target (1 for the closed form: one direct solve)."""
    estimator.coef_ = path.coefs[0].astype(dtype)
    estimator.intercept_ = dtype(path.intercepts[0]) if path.n_outputs == 1 else path.intercepts[0].astype(dtype)
    estimator.n_iter_ = np.full(path.n_outputs, path.n_iter[0] if path.method != "eigh" else 1, dtype=np.int32)
    estimator.converged_ = bool(path.converged[0])
    estimator.certificate_ = float(path.certificates[0])
    estimator.objective_ = float(path.objectives[0])
    estimator.duality_gap_ = float(path.duality_gaps[0])
    estimator.history_ = path.histories[0]
    estimator.backend_ = path.backend
    estimator.solver_ = path.solver if path.solver is not None else path.method


def _with_intercepts(coefs, intercepts, fit_intercept):
    """A path's solutions as scikit-learn's ``coefs_paths_`` rows: ``[w, b]`` per point
    (``coefs`` (n_grid, d) or (n_grid, K, d)), ``w`` alone without an intercept."""
    return np.concatenate([coefs, intercepts[..., None]], axis=-1) if fit_intercept else coefs


def _check_fold_classes(i, classes, y_index, s):
    """Refuse a training fold in which a class has no (weighted) sample: its path has no
    minimizer."""
    weights = np.bincount(y_index, weights=s, minlength=classes.size)
    empty = np.flatnonzero(weights <= 0)
    if empty.size:
        raise ValueError(f"cross-validation fold {i}: its training rows hold no sample (of positive weight) of "
                         f"class {V._label(classes[empty[0]])}; use fewer folds or a StratifiedKFold")


class _Identity(RegressorMixin, BaseEstimator):
    """Predicts its input: lets a scorer grade precomputed predictions."""

    def fit(self, X, y=None):
        return self

    def predict(self, X):
        return X


def _dtype_of(X):
    """The fitted coefficients' dtype: X's (float32 or float64), as the estimators'."""
    return np.float32 if X.dtype == np.float32 else np.float64


def _l1_ratio_count(l1_ratios):
    """How many (zero) L1 shares ``l1_ratios`` lists: ``None`` (scikit-learn's ``None`` or
    its default ``"warn"``: no axis for them in the legacy attributes) or their number.
    Any non-zero share is refused: tikhon solves the L2 penalty only."""
    if l1_ratios is None or (isinstance(l1_ratios, str) and l1_ratios == "warn"):
        return None
    try:
        ratios = np.asarray(l1_ratios, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        ratios = None
    if ratios is None or ratios.size == 0 or np.ndim(l1_ratios) != 1 or np.any(ratios != 0):
        raise ValueError(f"l1_ratios={l1_ratios!r} asks for an L1 part: tikhon fits the L2 penalty only "
                         f"(l1_ratios=None or all zero, e.g. (0,))")
    return int(ratios.size)


def _legacy(value):
    """scikit-learn's ``use_legacy_attributes`` (``"warn"``, its default, means True)."""
    if isinstance(value, str) and value == "warn":
        return True
    V.check_bool("use_legacy_attributes", value)
    return bool(value)


def _log_fold(i, n_folds, path, seconds):
    """A verbose CV's line per grid point of fold ``i`` (from its thread: logging is thread-safe)."""
    for k in range(path.grid.size):
        logger.info("tikhon LogisticRegressionCV: fold %d/%d, C=%.6g: %s, %d iteration(s), relative gap %.3g%s",
                    i + 1, n_folds, path.grid[k], path.solver, path.n_iter[k], path.duality_gaps[k],
                    "" if path.converged[k] else " (not converged)")
    logger.info("tikhon LogisticRegressionCV: fold %d/%d done in %.3f s", i + 1, n_folds, seconds)


# What LogisticRegressionCV's refit, a tikhon.LogisticRegression, stores and the CV keeps
# (n_iter_ is the folds', as scikit-learn's)
_REFIT_ATTRIBUTES = ("coef_", "intercept_", "converged_", "certificate_", "objective_", "duality_gap_", "history_",
                     "backend_", "solver_")


class LogisticRegressionCV(LogisticRegression):
    """L2 logistic regression (binary, or multinomial for three or more classes) with
    ``C`` chosen by k-fold cross-validation.

    Takes scikit-learn's parameters (those of its ``LogisticRegressionCV``) wherever their
    meaning carries over, with the defaults of :class:`tikhon.LogisticRegression`
    (``tol=1e-8`` relative duality gap, ``solver="auto"``, ``max_iter=1000``,
    ``penalty="l2"``); refusals name what tikhon solves.

    Parameters
    ----------
    Cs : int or list of float, default=10
        Grid of ``C``; an int ``k`` is ``k`` values log-spaced in [1e-4, 1e4]. ``inf`` (no
        penalty) is refused.
    l1_ratios : None or a list of zeros, default=None
        scikit-learn's L1 shares: tikhon's penalty is L2, so only zeros (scikit-learn's
        ``"warn"`` means None). A list adds scikit-learn's trailing axis of one entry per
        ratio to ``scores_``, ``coefs_paths_`` and ``n_iter_``.
    cv : int, splitter or None, default=None
        ``None`` is 5-fold ``StratifiedKFold``; as in scikit-learn.
    dual, penalty, intercept_scaling, class_weight, fit_intercept, solver, backend, tol, max_iter
        As :class:`tikhon.LogisticRegression` (scikit-learn's solver names map the same
        way; ``max_iter=0`` returns the starting points, ``None`` is 1000), for every
        fold's warm-started path and the refit.
    scoring : str, callable or None, default=None
        A scikit-learn scorer name or callable; ``None`` (and scikit-learn's ``"warn"``) is
        accuracy.
    n_jobs : int or None
        Threads over folds, as scikit-learn's (``None``: 1, ``-1``: all cores); each fold
        thread gets its share of the thread budget.
    verbose : int, default=0
        ``>= 1``: an INFO line on the ``"tikhon"`` logger per fold and grid point (solver,
        iterations, relative gap) and per fold; ``>= 2``: also the refit's lines, as
        ``tikhon.LogisticRegression(verbose=verbose - 1)`` (scikit-learn passes
        ``verbose - 1`` to its refit too).
    refit : bool, default=True
        Refit on all data at ``C_`` (a :class:`tikhon.LogisticRegression` started from the
        folds' mean solution, as scikit-learn's); else average the folds' best solutions
        (``C_`` is then the mean of the folds' best ``C``), as scikit-learn.
    random_state : int, numpy RandomState or Generator, or None
        Seeds the shuffles of ``sgd`` and ``dual_cd`` (one draw per fit from a RandomState;
        not the folds, as scikit-learn's).
    use_legacy_attributes : bool, default=True
        scikit-learn's switch (its ``"warn"`` means True): True keeps the dict attributes
        below; False gives its new ones: ``C_`` a float, ``scores_`` (n_folds, n_l1, n_Cs),
        ``coefs_paths_`` (n_folds, n_l1, n_Cs, 1 or n_classes, n_dof), ``n_iter_``
        (n_folds, n_l1, n_Cs), with ``n_l1`` the length of ``l1_ratios`` (1 for None).

    Attributes
    ----------
    Cs_ : (n_Cs,) the grid; C_ : the chosen C, (1,) for two classes, repeated (n_classes,)
    for more (as scikit-learn)
    scores_ : dict {classes_[1]: (n_folds, n_Cs)} validation scores for two classes,
    {each class: the same array} for more (as scikit-learn);
    cv_scores_ : the same array; train_scores_ : (n_folds, n_Cs) scores on the training folds
    coefs_paths_ : dict {classes_[1]: (n_folds, n_Cs, n_features + fit_intercept)}; for three
    or more classes {classes_[k]: its row of W (and intercept), same shape} (as scikit-learn)
    n_iter_ : int32 (1, n_folds, n_Cs) solver iterations per fold and C (as scikit-learn)
    coef_ (1, n_features) or (n_classes, n_features) and intercept_ (1,) or (n_classes,),
    in X's dtype, classes_, and the refit's converged_, certificate_, objective_,
    duality_gap_, history_, backend_, solver_ (as :class:`tikhon.LogisticRegression`).
    paths_ : the folds' :class:`tikhon.path.PathResult`

    A training fold without a sample of some class has no minimizer (that class's
    intercept runs off to minus infinity): it is refused with a ``ValueError`` naming
    the fold and the class.
    """

    def __init__(self, *, Cs=10, l1_ratios=None, fit_intercept=True, cv=None, dual=False, penalty="l2",
                 scoring=None, solver="auto", backend=None, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER,
                 class_weight=None, n_jobs=None, verbose=0, refit=True, intercept_scaling=1.0, random_state=None,
                 use_legacy_attributes=True):
        self.Cs = Cs
        self.l1_ratios = l1_ratios
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.dual = dual
        self.penalty = penalty
        self.scoring = scoring
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.verbose = verbose
        self.refit = refit
        self.intercept_scaling = intercept_scaling
        self.random_state = random_state
        self.use_legacy_attributes = use_legacy_attributes

    def _estimator(self, C, random_state):
        """The :class:`tikhon.LogisticRegression` of this CV's parameters at ``C``: its
        ``_check_params`` checks the parameters they share, and it makes the refit."""
        return LogisticRegression(C=C, penalty=self.penalty, dual=self.dual, fit_intercept=self.fit_intercept,
                                  intercept_scaling=self.intercept_scaling, solver=self.solver, backend=self.backend,
                                  tol=self.tol, max_iter=self.max_iter, class_weight=self.class_weight,
                                  random_state=random_state, verbose=max(0, self.verbose - 1), warm_start=True)

    def _check_params(self):
        """Every parameter, checked before any data is touched: those shared with
        LogisticRegression by its own checks, then the CV's."""
        _check_verbose(self.verbose)
        self._estimator(1.0, self.random_state)._check_params()
        _l1_ratio_count(self.l1_ratios)
        _legacy(self.use_legacy_attributes)
        V.check_bool("refit", self.refit)
        _n_threads(self.n_jobs)

    def fit(self, X, y, sample_weight=None):
        """Cross-validate over ``Cs``, then refit on all of ``X``, ``y``."""
        self._check_params()
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        X, t, s_user, classes = _validate(X, y, "logistic", sample_weight, None, checked_X=True)
        y_index = class_index(t, classes)
        # class weights from the whole y, as scikit-learn; folds take their rows of s
        s = V.class_weighted(s_user, self.class_weight, classes, y_index)
        self.classes_ = classes
        Cs = _grid(self.Cs, "C")
        cv = check_cv(self.cv, y, classifier=True)
        folds = list(cv.split(X, y))
        for i, (train, _) in enumerate(folds):
            _check_fold_classes(i, classes, y_index[train], s[train])
        scoring = None if isinstance(self.scoring, str) and self.scoring == "warn" else self.scoring
        scorer = None if scoring is None else get_scorer(scoring)
        backend = resolve_backend(self.backend)  # resolved here: workers do not see config_context
        solver, max_iter = self._solver_name(), _max_iter(self.max_iter)
        seed = _seed(self.random_state)  # one draw per fit, for every fold and the refit
        weighted = sample_weight is not None

        def run_fold(i):
            train, test = folds[i]
            started = time.perf_counter()
            path = _solve_path(X[train], t[train], s[train], Cs, 1.0 / Cs, "logistic", "C",
                               bool(self.fit_intercept), backend, solver, "warm_start", self.tol,
                               max_iter, classes=classes, options={"random_state": seed})
            if self.verbose:
                _log_fold(i, len(folds), path, time.perf_counter() - started)
            sw_test = s_user[test] if weighted else None
            sw_train = s_user[train] if weighted else None
            return (path, self._scores(path, X[test], y[test], sw_test, scorer),
                    self._scores(path, X[train], y[train], sw_train, scorer))

        with _verbose_logging() if self.verbose else contextlib.nullcontext():
            results = _map_folds(run_fold, range(len(folds)), self.n_jobs)
            self.paths_ = [r[0] for r in results]
            self.Cs_ = Cs
            self.cv_scores_ = np.array([r[1] for r in results])
            self.train_scores_ = np.array([r[2] for r in results])
            # (n_folds, n_Cs, d + fit_intercept), or (n_folds, n_Cs, K, d + fit_intercept) for K classes
            theta_paths = np.array([_with_intercepts(p.coefs, p.intercepts, self.fit_intercept) for p in self.paths_])
            C = self._choose(X, y, sample_weight, theta_paths, seed)
        self._store_sklearn_attributes(theta_paths, C)
        return self

    def _choose(self, X, y, sample_weight, theta_paths, seed):
        """Store the chosen model (``coef_``, ``intercept_``, the refit's report) and return its C:
        with ``refit``, the best C of the summed fold scores, refit on all data from the
        folds' mean solution there; else the mean of each fold's best C and solution."""
        d, rows = X.shape[1], theta_paths.shape[-2] if theta_paths.ndim == 4 else 1
        if self.refit:
            best = int(np.argmax(self.cv_scores_.sum(axis=0)))  # the first maximum, as scikit-learn
            C = float(self.Cs_[best])
            start = theta_paths[:, best].mean(axis=0)
            refit = self._estimator(C, seed)  # warm_start=True: from the folds' mean solution, as scikit-learn
            refit.coef_ = start[..., :d].reshape(rows, d)
            refit.intercept_ = start[..., d].reshape(rows) if self.fit_intercept else np.zeros(rows)
            refit.fit(X, y, sample_weight)
            for attr in _REFIT_ATTRIBUTES:
                setattr(self, attr, getattr(refit, attr))
            if self.verbose:
                logger.info("tikhon LogisticRegressionCV: C_ = %.6g refit by %s, %d iteration(s), relative gap %.3g",
                            C, refit.solver_, refit.n_iter_[0], refit.duality_gap_)
            return C
        # scikit-learn's refit=False: mean of each fold's best solution
        best_each = np.argmax(self.cv_scores_, axis=1)
        mean = np.mean([theta_paths[i, j] for i, j in enumerate(best_each)], axis=0)
        dtype = _dtype_of(X)
        self.coef_ = mean[..., :d].reshape(rows, d).astype(dtype)
        self.intercept_ = (mean[..., d].reshape(rows) if self.fit_intercept else np.zeros(rows)).astype(dtype)
        return float(np.mean(self.Cs_[best_each]))

    def _store_sklearn_attributes(self, theta_paths, C):
        """``C_``, ``scores_``, ``coefs_paths_`` and ``n_iter_`` in scikit-learn's layouts
        (``use_legacy_attributes``, ``l1_ratios``; see the class docstring)."""
        classes, multi = self.classes_, self.classes_.size > 2
        n_iter = np.array([p.n_iter for p in self.paths_], dtype=np.int32)  # (n_folds, n_Cs)
        n_l1 = _l1_ratio_count(self.l1_ratios)
        if not _legacy(self.use_legacy_attributes):
            n_l1 = n_l1 or 1
            self.C_ = C
            self.scores_ = np.repeat(self.cv_scores_[:, None, :], n_l1, axis=1)
            self.n_iter_ = np.repeat(n_iter[:, None, :], n_l1, axis=1)
            paths = theta_paths if multi else theta_paths[:, :, None, :]  # (n_folds, n_Cs, rows, n_dof)
            self.coefs_paths_ = np.repeat(paths[:, None], n_l1, axis=1)
            return
        self.C_ = np.full(classes.size if multi else 1, C)
        labels = classes if multi else classes[1:]  # scikit-learn's keys: every class, or the positive one
        per_class = [theta_paths[:, :, k] for k in range(classes.size)] if multi else [theta_paths]
        if n_l1 is None:
            self.scores_ = {label: self.cv_scores_ for label in labels}
            self.n_iter_ = n_iter[None]
        else:  # an explicit l1_ratios: scikit-learn's trailing axis, one entry per ratio
            scores = np.repeat(self.cv_scores_[:, :, None], n_l1, axis=2)
            self.scores_ = {label: scores for label in labels}
            self.n_iter_ = np.repeat(n_iter[None, :, :, None], n_l1, axis=3)
            per_class = [np.repeat(p[:, :, None], n_l1, axis=2) for p in per_class]
        self.coefs_paths_ = dict(zip(labels, per_class))

    def _scores(self, path, X, y, sample_weight, scorer):
        """One score per grid point of ``path`` on ``(X, y)``."""
        if scorer is None:  # accuracy from all the grid's margins at once
            Z = path._decision(X)  # X: rows of the checked X; n x n_grid, or n x K x n_grid
            predicted = self.classes_[(Z > 0).astype(int) if Z.ndim == 2 else np.argmax(Z, axis=1)]
            hits = predicted == np.asarray(y)[:, None]
            if sample_weight is None:
                return hits.mean(axis=0)
            return (sample_weight @ hits) / sample_weight.sum()
        scores = []
        kwargs = {} if sample_weight is None else {"sample_weight": sample_weight}
        for k in range(path.grid.size):
            model = LogisticRegression(C=float(path.grid[k]), fit_intercept=self.fit_intercept)
            model.classes_, model.n_features_in_ = self.classes_, X.shape[1]
            model.coef_ = path.coefs[k].reshape(-1, X.shape[1])  # (1, d) or (K, d)
            model.intercept_ = np.atleast_1d(path.intercepts[k])
            scores.append(scorer(model, X, y, **kwargs))
        return np.array(scores, dtype=np.float64)


# scikit-learn's RidgeCV(gcv_mode=...) values, all served by tikhon's one decomposition
_GCV_MODES = (None, "auto", "svd", "eigen")


class RidgeCV(Ridge):
    """Ridge regression with ``alpha`` chosen by leave-one-out or k-fold cross-validation,
    for one target or several (``y`` of shape (n_samples, n_targets)).

    Parameters
    ----------
    alphas : int or list of float, default=(0.1, 1.0, 10.0)
        Grid of ``alpha`` (an int ``k``: ``k`` values log-spaced in [1e-4, 1e4]).
    cv : int, splitter or None, default=None
        ``None``: efficient leave-one-out via one eigendecomposition (as scikit-learn's
        ``RidgeCV``; memory ``O(n min(n, d))``), which serves every target. Else k-fold,
        as ``GridSearchCV``.
    scoring : str, callable or None
        ``None``: minus the (weighted) mean squared LOO error for ``cv=None`` (the mean over
        rows and targets), R^2 for k-fold (averaged over targets, as ``r2_score``).
    alpha_per_target : bool, default=False
        With several targets and ``cv=None``, choose each target's alpha by its own score
        (``scoring`` applied to that target's LOO predictions), as scikit-learn; ``alpha_``
        and ``best_score_`` then have one entry per target, and the refit solves every
        target at its own alpha at once. With ``cv`` set it is refused, as scikit-learn.
    gcv_mode : None, "auto", "svd" or "eigen", default=None
        scikit-learn's choice of decomposition for leave-one-out, accepted for its code:
        tikhon decomposes the smaller of the weighted, centred Gram matrices (``X^T S X``,
        d x d, when n >= d, else ``X X^T``, n x n, for every mode: scikit-learn's ``svd`` is
        the first, its ``eigen`` the second), which gives the same leave-one-out errors at
        the lower cost. Ignored with ``cv`` set, as scikit-learn.
    store_cv_results : bool, default=False
        Keep the leave-one-out values of every row and alpha in ``cv_results_``, as
        scikit-learn: (n_samples, n_alphas), or (n_samples, n_targets, n_alphas) for a 2-D
        ``y``: the weighted squared errors ``s_i r_i^2`` for ``scoring=None``, else the
        leave-one-out predictions. With ``cv`` set it is refused, as scikit-learn.
    n_jobs : int or None
        Threads over folds (k-fold only).
    fit_intercept, solver, backend, tol, max_iter
        As :class:`tikhon.Ridge` (scikit-learn's Ridge solver names map the same way;
        ``max_iter=None`` is 1000, ``0`` returns the starting points), for the k-fold
        paths and the refit when they are not solved in closed form (``method="auto"``,
        see :mod:`tikhon.path`).

    Attributes
    ----------
    alpha_, best_score_ (as scikit-learn: floats, or (n_targets,) with ``alpha_per_target``
    and several targets), alphas_ (the grid), cv_results_ (with ``store_cv_results``),
    cv_scores_ (n_folds, n_alphas) validation
    scores (one row, the LOO score, for ``cv=None``; (1, n_alphas, n_targets), one score per
    target, with ``alpha_per_target`` and several targets), train_scores_ (same shape, on
    the training rows), coef_ ((n_features,), or (n_targets, n_features) for a 2-D ``y``
    of several columns) and intercept_ (a NumPy scalar, or (n_targets,)) in X's dtype, as
    :class:`tikhon.Ridge`, cv_method_ ("loo" or "kfold"), and the refit's n_iter_ (int32,
    one entry per target; 1 for the closed form), converged_, certificate_, objective_,
    duality_gap_, history_, backend_, solver_ ("eigh" for the closed form).

    A ``y`` of one column is fitted as the 1-D target (``coef_`` (n_features,)).
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0), *, fit_intercept=True, scoring=None, cv=None, gcv_mode=None,
                 store_cv_results=False, alpha_per_target=False, solver="auto", backend=None, tol=DEFAULT_TOL,
                 max_iter=None, n_jobs=None):
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.scoring = scoring
        self.cv = cv
        self.gcv_mode = gcv_mode
        self.store_cv_results = store_cv_results
        self.alpha_per_target = alpha_per_target
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.n_jobs = n_jobs

    def _check_params(self):
        """Every parameter, checked before any data is touched."""
        V.check_bool("alpha_per_target", self.alpha_per_target)
        V.check_bool("store_cv_results", self.store_cv_results)
        if self.gcv_mode not in _GCV_MODES:
            raise ValueError(f"gcv_mode must be one of None, 'auto', 'svd', 'eigen' (scikit-learn's), got "
                             f"{self.gcv_mode!r}; tikhon decomposes the smaller Gram matrix for each of them")
        for name in ("alpha_per_target", "store_cv_results"):
            if getattr(self, name) and self.cv is not None:
                raise ValueError(f"cv!=None and {name}=True are incompatible: it is a leave-one-out option "
                                 f"(cv=None), as scikit-learn's")
        _n_threads(self.n_jobs)
        self._solver_name()
        return check_settings(self.tol, self.max_iter, self.fit_intercept)

    def fit(self, X, y, sample_weight=None):
        """Cross-validate over ``alphas``, then store the fit at ``alpha_`` on all data."""
        max_iter = self._check_params()
        solver = self._solver_name()
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        X, t, s, _ = _validate(X, y, "ridge", sample_weight, None, checked_X=True)
        two_d = np.ndim(y) == 2  # scikit-learn's cv_results_ keeps a target axis for a 2-D y of one column
        alphas = _grid(self.alphas, "alpha")
        self.alphas_ = alphas
        scorer = None if self.scoring is None else get_scorer(self.scoring)
        backend = resolve_backend(self.backend)
        per_target = bool(self.alpha_per_target) and t.ndim == 2
        spectrum = None
        if self.cv is None:
            spectrum = self._fit_loo(X, t, s, alphas, scorer, sample_weight is not None, per_target, two_d)
        else:
            self._fit_kfold(X, t, s, alphas, scorer, backend, solver, max_iter)
        mean = self.cv_scores_.mean(axis=0)  # (n_alphas,), or (n_alphas, T) per target
        best = np.argmax(mean, axis=0)  # first maximum, as scikit-learn
        if per_target:
            self.alpha_ = alphas[best]
            self.best_score_ = mean[best, np.arange(t.shape[1])]
            lams = self.alpha_[None, :]  # one point, one alpha per target
        else:
            self.alpha_ = float(alphas[best])
            self.best_score_ = float(mean[best])
            lams = np.array([self.alpha_])
        # leave-one-out has decomposed X already: the refit is that spectrum's solve (certified)
        method = "eigh" if spectrum is not None or _use_eigh(X, 1) else "warm_start"
        refit = _solve_path(X, t, s, lams, lams, "squared", "alpha", bool(self.fit_intercept), backend,
                            solver, method, self.tol, max_iter, spectrum=spectrum)
        _store_fit(self, refit, _dtype_of(X))
        self.refit_path_ = refit
        return self

    def _fit_loo(self, X, t, s, alphas, scorer, weighted, per_target, two_d):
        """Leave-one-out scores of every alpha (and every target with ``per_target``),
        from one decomposition, which is returned (the refit reuses it); with
        ``store_cv_results``, ``cv_results_`` (see the class docstring; ``two_d``: ``y``
        was 2-D)."""
        self.cv_method_ = "loo"
        spectrum = RidgeSpectrum(X, t, s, bool(self.fit_intercept))
        kwargs = {"sample_weight": s} if weighted else {}
        s_rows = s[:, None] if t.ndim == 2 else s
        axis = 0 if per_target else None

        def score(predicted, residuals):
            if scorer is None:  # scikit-learn's default: minus the mean of s_i * r_ij^2
                return -np.mean(s_rows * residuals ** 2, axis=axis)
            if per_target:
                return [scorer(_Identity(), predicted[:, j], t[:, j], **kwargs) for j in range(t.shape[1])]
            return scorer(_Identity(), predicted, t, **kwargs)

        val, train, values = [], [], []
        for alpha in alphas:
            residuals, w, b = spectrum.loo_residuals(alpha)
            fitted = _product(X, np.transpose(w)) + b
            val.append(score(t - residuals, residuals))
            train.append(score(fitted, t - fitted))
            if self.store_cv_results:
                values.append(s_rows * residuals ** 2 if scorer is None else t - residuals)
        self.cv_scores_ = np.array([val], dtype=np.float64)
        self.train_scores_ = np.array([train], dtype=np.float64)
        if self.store_cv_results:  # (n, n_alphas), or (n, T, n_alphas), in X's dtype as scikit-learn's
            results = np.stack(values, axis=-1).astype(_dtype_of(X))
            self.cv_results_ = results[:, None, :] if two_d and t.ndim == 1 else results
        return spectrum

    def _fit_kfold(self, X, t, s, alphas, scorer, backend, solver, max_iter):
        self.cv_method_ = "kfold"
        folds = list(check_cv(self.cv, t, classifier=False).split(X, t))

        def scores(path, Xp, yp):
            if scorer is None:  # R^2 per grid point (the targets' mean), unweighted (GridSearchCV routes no weights)
                residual = (yp[..., None] if yp.ndim == 1 else yp[:, :, None]) - path._decision(Xp)
                total = np.sum((yp - yp.mean(axis=0)) ** 2, axis=0)  # per target
                r2 = 1.0 - np.sum(residual ** 2, axis=0) / (total[:, None] if yp.ndim == 2 else total)
                return r2 if yp.ndim == 1 else r2.mean(axis=0)
            out = []
            for k in range(path.grid.size):
                model = Ridge(alpha=float(path.grid[k]), fit_intercept=self.fit_intercept)
                model.n_features_in_ = Xp.shape[1]
                model.coef_ = path.coefs[k]
                model.intercept_ = float(path.intercepts[k]) if path.n_outputs == 1 else path.intercepts[k]
                out.append(scorer(model, Xp, yp))
            return np.array(out, dtype=np.float64)

        def run_fold(fold):
            train, test = fold
            path = _solve_path(X[train], t[train], s[train], alphas, alphas, "squared", "alpha",
                               bool(self.fit_intercept), backend, solver,
                               "eigh" if _use_eigh(X[train], alphas.size) else "warm_start",
                               self.tol, max_iter)
            return path, scores(path, X[test], t[test]), scores(path, X[train], t[train])

        results = _map_folds(run_fold, folds, self.n_jobs)
        self.paths_ = [r[0] for r in results]
        self.cv_scores_ = np.array([r[1] for r in results])
        self.train_scores_ = np.array([r[2] for r in results])
