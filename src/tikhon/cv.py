"""Cross-validated estimators: choose ``C`` / ``alpha`` over a warm-started path, then refit.

:class:`LogisticRegressionCV` makes the choice of scikit-learn's
``LogisticRegressionCV(l1_ratios=(0,))`` on the same folds: ``StratifiedKFold(5)`` by
default (``cv`` an int or a splitter, resolved by ``sklearn.model_selection.check_cv``),
``scoring=None`` is accuracy (weighted by the test rows' ``sample_weight``, as
scikit-learn), the chosen ``C_`` maximizes the score summed over folds (the first
such grid value), and the model is refit on all data at ``C_``, started from the
folds' mean solution. Three or more classes: each fold's path is multinomial (all
``K`` rows of ``W``, as :class:`tikhon.LogisticRegression`), scored on the ``K``
classes' margins or probabilities.

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

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.metrics import get_scorer
from sklearn.model_selection import check_cv

from ._config import config_context, resolve_backend, thread_budget
from . import _validation as V
from .estimators import LogisticRegression, Ridge
from .objective import DEFAULT_TOL
from .path import RidgeSpectrum, _grid, _product, _solve_path, _use_eigh, _validate, class_index

__all__ = ["LogisticRegressionCV", "RidgeCV"]


def _n_workers(n_jobs, n_folds):
    if n_jobs is None:
        return 1
    if n_jobs < 0:
        n_jobs = (os.cpu_count() or 1) + 1 + n_jobs
    return max(1, min(int(n_jobs), n_folds))


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


def _store_fit(estimator, path):
    """Copy the refit's single-point path into the estimator's fitted attributes
    (``n_iter_`` is 1 for the closed form: one direct solve): ``coef_`` (d,) and a float
    ``intercept_`` for one output, (K, d) and (K,) for ``K``."""
    estimator.coef_ = path.coefs[0].copy()
    estimator.intercept_ = float(path.intercepts[0]) if path.n_outputs == 1 else path.intercepts[0].copy()
    estimator.n_iter_ = int(path.n_iter[0]) if path.method != "eigh" else 1
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


def _theta(row, d, fit_intercept):
    """A ``coefs_paths_`` entry (``[w, b]``, or K such rows) as the objective's
    parameter vector ``[W.ravel(), b]``."""
    if row.ndim == 1:
        return row
    return np.concatenate([row[:, :d].ravel(), row[:, d]]) if fit_intercept else row.ravel()


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


class LogisticRegressionCV(LogisticRegression):
    """L2 logistic regression (binary, or multinomial for three or more classes) with
    ``C`` chosen by k-fold cross-validation.

    Parameters
    ----------
    Cs : int or list of float, default=10
        Grid of ``C``; an int ``k`` is ``k`` values log-spaced in [1e-4, 1e4].
    cv : int, splitter or None, default=None
        ``None`` is 5-fold ``StratifiedKFold``; as in scikit-learn.
    scoring : str, callable or None, default=None
        A scikit-learn scorer name or callable; ``None`` is accuracy.
    refit : bool, default=True
        Refit on all data at ``C_``; else average the folds' best solutions (``C_`` is
        then the mean of the folds' best ``C``), as scikit-learn.
    n_jobs : int or None
        Threads over folds (``None``: 1, ``-1``: all cores).
    fit_intercept, solver, backend, tol, max_iter, class_weight
        As :class:`tikhon.LogisticRegression`; ``solver="auto"`` is Newton-CG,
        warm-started along the path.

    Attributes
    ----------
    Cs_ : (n_Cs,) the grid; C_ : the chosen C, (1,) for two classes, repeated (n_classes,)
    for more (as scikit-learn)
    scores_ : dict {classes_[1]: (n_folds, n_Cs)} validation scores for two classes,
    {each class: the same array} for more (as scikit-learn);
    cv_scores_ : the same array; train_scores_ : (n_folds, n_Cs) scores on the training folds
    coefs_paths_ : dict {classes_[1]: (n_folds, n_Cs, n_features + fit_intercept)}; for three
    or more classes {classes_[k]: its row of W (and intercept), same shape} (as scikit-learn)
    n_iter_ : (1, n_folds, n_Cs) solver iterations per fold and C (as scikit-learn; the
    refit's are in ``refit_path_.n_iter``)
    coef_ (1, n_features) or (n_classes, n_features), intercept_ (1,) or (n_classes,),
    classes_, and the refit's converged_, certificate_, objective_, duality_gap_,
    history_, backend_, solver_.
    paths_ : the folds' :class:`tikhon.path.PathResult`

    A training fold without a sample of some class has no minimizer (that class's
    intercept runs off to minus infinity): it is refused with a ``ValueError`` naming
    the fold and the class.
    """

    def __init__(self, *, Cs=10, fit_intercept=True, cv=None, scoring=None, solver="auto", backend=None,
                 tol=DEFAULT_TOL, max_iter=1000, class_weight=None, n_jobs=None, refit=True):
        self.Cs = Cs
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.scoring = scoring
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.n_jobs = n_jobs
        self.refit = refit

    def fit(self, X, y, sample_weight=None):
        """Cross-validate over ``Cs``, then refit on all of ``X``, ``y``."""
        V.require_y(self, y)
        X, y = self._validate_X(X, reset=True, y=y)
        V.check_solve_settings(self.tol, self.max_iter, self.fit_intercept)
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
        scorer = None if self.scoring is None else get_scorer(self.scoring)
        backend = resolve_backend(self.backend)  # resolved here: workers do not see config_context
        weighted = sample_weight is not None

        def run_fold(fold):
            train, test = fold
            path = _solve_path(X[train], t[train], s[train], Cs, 1.0 / Cs, "logistic", "C",
                               bool(self.fit_intercept), backend, self.solver, "warm_start", self.tol,
                               self.max_iter, classes=classes)
            sw_test = s_user[test] if weighted else None
            sw_train = s_user[train] if weighted else None
            return (path, self._scores(path, X[test], y[test], sw_test, scorer),
                    self._scores(path, X[train], y[train], sw_train, scorer))

        results = _map_folds(run_fold, folds, self.n_jobs)
        self.paths_ = [r[0] for r in results]
        self.Cs_ = Cs
        self.cv_scores_ = np.array([r[1] for r in results])
        self.train_scores_ = np.array([r[2] for r in results])
        # (n_folds, n_Cs, d + fit_intercept), or (n_folds, n_Cs, K, d + fit_intercept) for K classes
        theta_paths = np.array([_with_intercepts(p.coefs, p.intercepts, self.fit_intercept) for p in self.paths_])
        multi = classes.size > 2
        labels = classes if multi else classes[1:]  # scikit-learn's keys: every class, or the positive one
        self.scores_ = {label: self.cv_scores_ for label in labels}
        self.coefs_paths_ = ({label: theta_paths[:, :, k] for k, label in enumerate(labels)} if multi
                             else {labels[0]: theta_paths})
        d = X.shape[1]
        if self.refit:
            best = int(np.argmax(self.cv_scores_.sum(axis=0)))
            C = float(Cs[best])
            refit = _solve_path(X, t, s, np.array([C]), np.array([1.0 / C]), "logistic", "C",
                                bool(self.fit_intercept), backend, self.solver, "warm_start", self.tol,
                                self.max_iter, classes=classes,
                                theta0=_theta(theta_paths[:, best].mean(axis=0), d, self.fit_intercept))
            _store_fit(self, refit)
            self.refit_path_ = refit
        else:  # scikit-learn's refit=False: mean of each fold's best solution
            best_each = np.argmax(self.cv_scores_, axis=1)
            mean = np.mean([theta_paths[i, j] for i, j in enumerate(best_each)], axis=0)
            C = float(np.mean(Cs[best_each]))
            self.coef_ = mean[..., :d]
            self.intercept_ = mean[..., d] if self.fit_intercept else np.zeros(mean.shape[:-1])
        self.n_iter_ = np.array([p.n_iter for p in self.paths_])[None, ...]  # scikit-learn's shape (after the refit's)
        rows = classes.size if multi else 1
        self.C_ = np.full(rows, C)
        self.coef_ = np.asarray(self.coef_, dtype=np.float64).reshape(rows, d)
        self.intercept_ = np.asarray(self.intercept_, dtype=np.float64).reshape(rows)
        return self

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
    n_jobs : int or None
        Threads over folds (k-fold only).
    fit_intercept, solver, backend, tol, max_iter
        As :class:`tikhon.Ridge`, for the k-fold paths and the refit when they are not
        solved in closed form (``method="auto"``, see :mod:`tikhon.path`).

    Attributes
    ----------
    alpha_, best_score_ (as scikit-learn: floats, or (n_targets,) with ``alpha_per_target``
    and several targets), alphas_ (the grid), cv_scores_ (n_folds, n_alphas) validation
    scores (one row, the LOO score, for ``cv=None``; (1, n_alphas, n_targets), one score per
    target, with ``alpha_per_target`` and several targets), train_scores_ (same shape, on
    the training rows), coef_ ((n_features,), or (n_targets, n_features) for a 2-D ``y``
    of several columns), intercept_ (a float, or (n_targets,)), cv_method_ ("loo" or
    "kfold"), and the refit's n_iter_, converged_, certificate_, objective_, duality_gap_,
    history_, backend_, solver_.

    A ``y`` of one column is fitted as the 1-D target (``coef_`` (n_features,)).
    """

    def __init__(self, alphas=(0.1, 1.0, 10.0), *, fit_intercept=True, cv=None, scoring=None, solver="auto",
                 backend=None, tol=DEFAULT_TOL, max_iter=1000, n_jobs=None, alpha_per_target=False):
        self.alphas = alphas
        self.fit_intercept = fit_intercept
        self.cv = cv
        self.scoring = scoring
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.n_jobs = n_jobs
        self.alpha_per_target = alpha_per_target

    def fit(self, X, y, sample_weight=None):
        """Cross-validate over ``alphas``, then store the fit at ``alpha_`` on all data."""
        V.require_y(self, y)
        V.check_bool("alpha_per_target", self.alpha_per_target)
        if self.alpha_per_target and self.cv is not None:
            raise ValueError("cv!=None and alpha_per_target=True are incompatible: per-target alphas are chosen "
                             "by leave-one-out (cv=None)")
        X, y = self._validate_X(X, reset=True, y=y)
        V.check_solve_settings(self.tol, self.max_iter, self.fit_intercept)
        X, t, s, _ = _validate(X, y, "ridge", sample_weight, None, checked_X=True)
        alphas = _grid(self.alphas, "alpha")
        self.alphas_ = alphas
        scorer = None if self.scoring is None else get_scorer(self.scoring)
        backend = resolve_backend(self.backend)
        per_target = bool(self.alpha_per_target) and t.ndim == 2
        spectrum = None
        if self.cv is None:
            spectrum = self._fit_loo(X, t, s, alphas, scorer, sample_weight is not None, per_target)
        else:
            self._fit_kfold(X, t, s, alphas, scorer, backend)
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
                            self.solver, method, self.tol, self.max_iter, spectrum=spectrum)
        _store_fit(self, refit)
        self.refit_path_ = refit
        return self

    def _fit_loo(self, X, t, s, alphas, scorer, weighted, per_target):
        """Leave-one-out scores of every alpha (and every target with ``per_target``),
        from one decomposition, which is returned (the refit reuses it)."""
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

        val, train = [], []
        for alpha in alphas:
            residuals, w, b = spectrum.loo_residuals(alpha)
            fitted = _product(X, np.transpose(w)) + b
            val.append(score(t - residuals, residuals))
            train.append(score(fitted, t - fitted))
        self.cv_scores_ = np.array([val], dtype=np.float64)
        self.train_scores_ = np.array([train], dtype=np.float64)
        return spectrum

    def _fit_kfold(self, X, t, s, alphas, scorer, backend):
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
                               bool(self.fit_intercept), backend, self.solver,
                               "eigh" if _use_eigh(X[train], alphas.size) else "warm_start",
                               self.tol, self.max_iter)
            return path, scores(path, X[test], t[test]), scores(path, X[train], t[train])

        results = _map_folds(run_fold, folds, self.n_jobs)
        self.paths_ = [r[0] for r in results]
        self.cv_scores_ = np.array([r[1] for r in results])
        self.train_scores_ = np.array([r[2] for r in results])
