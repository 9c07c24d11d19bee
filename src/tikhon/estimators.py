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

import contextlib
import logging
import math
import numbers
import os
import sys
import threading
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from . import _validation as V
from . import solvers
from ._config import available_cores, config_context, resolve_backend
from .backends import input_format
from .objective import DEFAULT_TOL, Objective
from .solvers import History

__all__ = ["LogisticRegression", "Ridge"]

logger = logging.getLogger("tikhon")

_positive = V.positive  # checks of hyperparameters live in tikhon._validation

# ``max_iter=None``: the iteration cap of every solver (Newton steps, L-BFGS iterations,
# gd steps, sgd epochs, dual CD passes). Larger than scikit-learn's 100 because tikhon's
# default tol (1e-8, a relative duality gap) is tighter and gd/sgd/dual_cd count passes.
DEFAULT_MAX_ITER = 1000


class _L2LinearModel(BaseEstimator):
    """Shared fit machinery; subclasses say which loss and penalty strength."""

    _loss = None
    # scikit-learn's solver names for the same algorithms -> tikhon's solver
    _solver_aliases = {}
    # scikit-learn's solvers with no tikhon counterpart (named in the error)
    _sklearn_only_solvers = ()

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
        _positive("tol", self.tol)
        _max_iter(self.max_iter)
        V.check_bool("fit_intercept", self.fit_intercept)
        V.check_bool("warm_start", self.warm_start)
        _check_verbose(self.verbose)
        _n_threads(self.n_jobs)
        _positive("learning_rate", self.learning_rate, allow_none=True)
        _positive("batch_size", self.batch_size, integer=True)
        _check_random_state(self.random_state)
        self._solver_name()

    def _solver_name(self):
        """tikhon's name of ``self.solver``: its own names, or scikit-learn's names of the
        same algorithms (``_solver_aliases``); anything else is refused with the list."""
        name = self.solver
        if isinstance(name, str) and name in self._solver_aliases:
            return self._solver_aliases[name]
        if isinstance(name, str) and (name == "auto" or name in solvers.SOLVERS):
            return name
        why = " (scikit-learn's, with no tikhon counterpart)" if name in self._sklearn_only_solvers else ""
        aliases = ", ".join(f"{k} ({v})" for k, v in self._solver_aliases.items())
        raise ValueError(f"unknown solver {name!r}{why}; valid solvers are auto, {', '.join(solvers.SOLVERS)}, "
                         f"and scikit-learn's names of the same algorithms: {aliases}")

    def _fitting(self):
        """The context a whole fit runs in: ``n_jobs`` as the thread budget."""
        threads = _n_threads(self.n_jobs)
        return contextlib.nullcontext() if threads is None else config_context(n_threads=threads)

    def _fit(self, X, y_fit, sample_weight, loss=None, n_outputs=1):
        """Solve for ``(W, b)`` given validated ``X``, float64 targets and weights
        (hyperparameters already checked by ``_check_params``), in X's dtype (float32
        stays float32; the solve is float64): ``(w, b)`` with ``b`` a NumPy scalar for
        one output, ``W`` (K x d) and ``b`` (K,) for ``n_outputs = K > 1``."""
        loss = loss or self._loss
        objective = Objective(loss, self._lam(), bool(self.fit_intercept), n_outputs)
        backend_name = resolve_backend(self.backend)
        name = self._solver_name()
        backend_cls = solvers.backend_for(name, loss, backend_name, X, n_outputs, lam=objective.lam,
                                          fit_intercept=objective.fit_intercept)
        backend = backend_cls(X, y_fit, sample_weight, objective.pointwise, n_outputs=n_outputs)
        solver = solvers.choose_solver(name, loss, backend, objective.lam, objective.fit_intercept)  # auto: the cost model

        theta0 = self._start(objective, X.shape[1], y_fit, sample_weight)
        options = {k: v for k, v in self._solver_options().items() if k in _SOLVER_OPTIONS[solver]}
        if "random_state" in options:
            options["random_state"] = _seed(self.random_state)
        max_iter = _max_iter(self.max_iter)
        with _reporting(self.verbose, solver, self.tol) as report:
            result = solvers.run(solver, objective, backend, theta0, self.tol, max_iter, **options)
            report.summary(type(self).__name__, backend_cls.name, result, self.tol)

        w, b = objective.split(result.theta)
        self.backend_ = backend_cls.name
        self.solver_ = solver
        # scikit-learn's convention: an array, one entry (LogisticRegression) or one per target (Ridge)
        self.n_iter_ = np.full(n_outputs if loss == "squared" else 1, result.n_iter, dtype=np.int32)
        self.converged_ = result.converged
        self.certificate_ = result.certificate
        self.objective_ = result.objective
        self.duality_gap_ = result.relative_gap
        self.history_ = result.history
        if not result.converged:
            shown = self.solver if self.solver in self._solver_aliases else solver  # the user's spelling
            warnings.warn(
                f"tikhon {shown} failed to converge after {result.n_iter} iterations (max_iter={max_iter}): relative "
                f"duality gap {result.relative_gap:.3g} > tol = {self.tol:g} (tikhon solver {solver}, backend "
                f"{backend_cls.name}; its own certificate {result.certificate:.3g}; {result.message}). "
                f"Increase the number of iterations (max_iter) or tol.",
                ConvergenceWarning,
                stacklevel=3,
            )
        dtype = np.float32 if X.dtype == np.float32 else np.float64  # coef_ follows X's dtype
        if n_outputs > 1:
            return np.array(w, dtype=dtype), np.array(b, dtype=dtype)
        return np.array(w, dtype=dtype), dtype(b)

    def _start(self, objective, n_features, y_fit, sample_weight):
        """The solvers' starting point ``theta0``: with ``warm_start`` and a previous fit,
        its ``coef_``/``intercept_``; else zero coefficients and the best constant
        model's intercept."""
        if self.warm_start and hasattr(self, "coef_"):
            return self._previous_solution(objective, n_features)
        theta0 = np.zeros(objective.n_params(n_features))
        if objective.fit_intercept:
            theta0[-objective.n_outputs:] = objective.constant_intercept(y_fit, sample_weight)
        return theta0

    def _previous_solution(self, objective, n_features):
        """``theta`` of the previous fit's ``coef_``/``intercept_``, which must have this
        fit's number of outputs and features (a clear error otherwise, as scikit-learn's)."""
        K = objective.n_outputs
        coef = np.asarray(self.coef_, dtype=np.float64)
        intercept = np.asarray(self.intercept_, dtype=np.float64).ravel()
        if coef.size != K * n_features or intercept.size != K:
            raise ValueError(f"warm_start=True starts from the previous fit, whose coef_ has shape {coef.shape}, "
                             f"but this fit needs {K} x {n_features} coefficients ({K} output(s): classes or "
                             f"targets, by {n_features} features): set warm_start=False to start afresh")
        if not (np.all(np.isfinite(coef)) and np.all(np.isfinite(intercept))):
            raise ValueError("warm_start=True starts from the previous fit, whose coef_ or intercept_ holds NaN or "
                             "infinity: set warm_start=False to start afresh")
        return objective.join(coef, intercept if K > 1 else intercept[0])

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
    "lbfgs_newton": (),
    "newton": (),
    "newton_cholesky": (),
    "dual_cd": ("random_state",),
}


# ---- parameters shared with scikit-learn ---------------------------------------------
def _max_iter(value):
    """``max_iter`` as the solvers' cap: ``None`` is DEFAULT_MAX_ITER, ``0`` returns the
    starting point (with a ConvergenceWarning unless it is optimal)."""
    if value is None:
        return DEFAULT_MAX_ITER
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"max_iter must be None or a non-negative integer, got {value!r}")
    return int(value)


def _check_verbose(value):
    if isinstance(value, bool):
        return
    if not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"verbose must be a non-negative integer or a bool, got {value!r}")


def _n_threads(n_jobs):
    """``n_jobs`` as a thread budget, joblib's convention: ``None`` leaves the budget to
    :func:`tikhon.config_context` / the cores left; ``k >= 1`` threads; ``-1`` all the
    cores this process may use (:func:`tikhon._config.available_cores`), ``-k`` all but
    ``k - 1`` of them (at least one)."""
    if n_jobs is None:
        return None
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, a positive integer, or a negative one (-1: all cores), got {n_jobs!r}")
    return int(n_jobs) if n_jobs > 0 else max(1, available_cores() + 1 + int(n_jobs))


def _check_random_state(value):
    if value is None or isinstance(value, (np.random.RandomState, np.random.Generator)):
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ValueError(f"random_state must be None or a non-negative integer (or a numpy RandomState or "
                         f"Generator), got {value!r}")


def _seed(random_state):
    """The integer seed of ``sgd``'s and ``dual_cd``'s shuffles: ``None`` stays ``None``
    (seed 0: fits are repeatable), an integer is the seed, a RandomState or Generator
    gives one draw (consuming from it, as scikit-learn's estimators do)."""
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    return None if random_state is None else int(random_state)


# ---- verbose: one line per iteration on the "tikhon" logger, a progress bar ------------
# TIKHON_PROGRESS: "1" forces the bar of a verbose fit (even when stderr is not a terminal,
# and from its first iteration), "0" turns it off; unset: only on a terminal, after a second.
PROGRESS_ENV = "TIKHON_PROGRESS"
BAR_DELAY = 1.0  # seconds before a verbose fit on a terminal shows its bar: short fits show none

_logging_lock = threading.Lock()
_logging_state = {"fits": 0, "handler": None, "level_set": False}


class _ConsoleHandler(logging.StreamHandler):
    """The stderr handler a verbose fit adds when logging is not configured; it writes
    through ``tqdm.write`` when tqdm is installed, so that lines and a bar do not mix."""

    def emit(self, record):
        try:
            from tqdm import tqdm
        except ImportError:
            return super().emit(record)
        try:
            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's convention: a failing handler does not break the program
            self.handleError(record)


def _someone_listens(log):
    """Whether a handler other than a NullHandler would receive ``log``'s records."""
    while log is not None:
        if any(not isinstance(h, logging.NullHandler) for h in log.handlers):
            return True
        log = log.parent if log.propagate else None
    return False


@contextlib.contextmanager
def _verbose_logging():
    """While verbose fits run, the "tikhon" logger's INFO records reach the user: its
    level, if the user left it unset, is INFO; if no handler would receive them, a
    stderr handler is added (what ``logging.basicConfig`` would give). Both are undone
    when the last verbose fit ends; levels and handlers the user configured stay as they are."""
    with _logging_lock:
        if _logging_state["fits"] == 0:
            if logger.level == logging.NOTSET and logger.getEffectiveLevel() > logging.INFO:
                logger.setLevel(logging.INFO)
                _logging_state["level_set"] = True
            if not _someone_listens(logger):
                _logging_state["handler"] = _ConsoleHandler(sys.stderr)
                logger.addHandler(_logging_state["handler"])
        _logging_state["fits"] += 1
    try:
        yield
    finally:
        with _logging_lock:
            _logging_state["fits"] -= 1
            if _logging_state["fits"] == 0:
                if _logging_state["handler"] is not None:
                    logger.removeHandler(_logging_state["handler"])
                    _logging_state["handler"] = None
                if _logging_state["level_set"]:
                    logger.setLevel(logging.NOTSET)
                    _logging_state["level_set"] = False


def _progress_bar(solver):
    """A tqdm bar for a verbose fit, or None: tqdm not installed, ``TIKHON_PROGRESS=0``,
    or stderr not a terminal (unless ``TIKHON_PROGRESS=1``)."""
    setting = os.environ.get(PROGRESS_ENV, "").strip()
    forced = setting == "1"
    if setting == "0" or not (forced or sys.stderr.isatty()):
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=100, desc=f"tikhon {solver}",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}{postfix}]",
                dynamic_ncols=True, delay=0.0 if forced else BAR_DELAY, file=sys.stderr, leave=False)


class _Report:
    """The observer of a verbose fit (see :class:`tikhon.solvers.History`): an INFO line
    per iteration (fit-level iteration, objective, relative gap, seconds since the fit
    started) and a bar of the progress from the first gap to ``tol``, in decades."""

    def __init__(self, solver, tol, bar):
        self.solver, self.tol, self.bar = solver, tol, bar
        self.started = time.perf_counter()
        self.last, self.position = -1, 0  # last reported iteration; the iteration of the newest iterate
        self.first_gap = None

    # the History observer protocol
    def begin(self):
        return self.position

    def added(self):
        self.position = self.last + 1

    def iteration(self, k, objective, gap):
        self.last = self.position = k
        if self.bar is not None:  # first: the line's tqdm.write redraws the bar as it now is
            self._advance(k, gap)
        logger.info("tikhon %s: iteration %d, objective %.12g, relative gap %.3g, %.3f s",
                    self.solver, k, objective, gap, time.perf_counter() - self.started)

    def _advance(self, k, gap):
        if self.first_gap is None and math.isfinite(gap) and gap > self.tol:
            self.first_gap = gap
        done = 0.0
        if gap <= self.tol:
            done = 1.0
        elif self.first_gap is not None and math.isfinite(gap):
            done = math.log(self.first_gap / gap) / math.log(self.first_gap / self.tol)
        self.bar.set_postfix_str(f"iteration {k}, gap {gap:.2e}", refresh=False)
        self.bar.update(max(self.bar.n, min(100, int(100 * done))) - self.bar.n)

    def summary(self, estimator, backend, result, tol):
        verdict = "converged" if result.converged else "not converged"
        logger.info("tikhon %s: %s, %s on backend %s after %d iteration(s): objective %.12g, relative duality "
                    "gap %.3g (tol %g), %.3f s", estimator, verdict, self.solver, backend, result.n_iter,
                    result.objective, result.relative_gap, tol, time.perf_counter() - self.started)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class _Silent:
    """The observer of a fit that is not verbose: nothing to report."""

    def summary(self, *args):
        pass


@contextlib.contextmanager
def _reporting(verbose, solver, tol):
    """The fit's report: ``verbose >= 1``, per-iteration lines and a bar; else silence."""
    if not verbose:
        yield _Silent()
        return
    with _verbose_logging():
        report = _Report(solver, tol, _progress_bar(solver))
        try:
            with History.observed(report):
                yield report
        finally:
            report.close()


_COMMON_PARAMETERS = """
    fit_intercept : bool, default=True
        Fit an unpenalized intercept ``b``.
    solver : str, default="auto"
        tikhon's solvers: ``auto`` is ``newton_cholesky`` where a Gram pass is cheap
        (few features, or few nonzeros a row on the cython backend), else ``newton``
        (see :func:`tikhon.solvers.choose_solver`); ``newton`` (Newton-CG),
        ``newton_cholesky``, ``lbfgs``, ``gd`` (the seeds' gradient descent with weight
        decay), ``sgd`` (its mini-batch stochastic version), ``dual_cd`` (dual coordinate
        descent on CSR input, backend ``cython``).
        {aliases}
        scikit-learn's other solvers are refused with this list.
    backend : str or None, default=None
        Kernel set (``"numpy"``, ``"auto"``, ...). ``None`` defers to
        :func:`tikhon.config_context`, then ``TIKHON_BACKEND``, then ``"auto"``.
    tol : float, default=1e-8
        Stop when the relative duality gap ``(P - D) / D``, an upper bound on the
        relative suboptimality ``(P - P*) / P*``, is ``<= tol`` (see
        :mod:`tikhon.objective`); ``converged_`` says whether it was reached.
        scikit-learn's default is 1e-4 of solver-specific measures; tikhon's is one
        scale-free certificate, tight by default (``DEFAULT_TOL``).
    max_iter : int >= 0 or None, default={max_iter}
        Iterations: Newton steps, L-BFGS or gd iterations, sgd epochs, dual CD passes.
        ``None`` means 1000 (more than scikit-learn's 100: the default tol is tighter and
        gd, sgd and dual CD count passes). ``0`` returns the starting point (zero
        coefficients and the best constant intercept, or the previous fit with
        ``warm_start``) with a ``ConvergenceWarning``.
    random_state : int, numpy RandomState or Generator, or None, default=None
        Seed of the shuffles of ``sgd`` and ``dual_cd`` (the other solvers are
        deterministic). ``None`` means seed 0 (fits are repeatable); a RandomState or
        Generator gives one seed per fit, drawn from it.
    verbose : int, default=0
        ``>= 1``: an INFO line per iteration on the ``"tikhon"`` logger (iteration,
        objective ``P``, relative gap, seconds since the fit started) and one at the end;
        if logging is not configured, the fit adds a stderr handler for its duration (a
        level or handlers you set on ``logging.getLogger("tikhon")`` are respected). On a
        terminal, with tqdm installed (``pip install "tikhon[progress]"``), a fit that
        lasts over a second also shows a progress bar (decades of the gap down to
        ``tol``); ``TIKHON_PROGRESS=0`` turns it off, ``=1`` forces it. The gap of a
        ``dual_cd`` line is that of its current sub-problem; loops a backend runs itself
        (numba's ``gd``/``sgd``) report when they hand control back.
    warm_start : bool, default=False
        Start from the previous fit's ``coef_`` and ``intercept_`` (they must have this
        fit's shape: a ``ValueError`` otherwise, as scikit-learn's): a nearby ``{penalty}``
        takes fewer iterations. ``dual_cd`` reuses the intercept only (its dual iterate
        starts afresh, as LIBLINEAR's).
    n_jobs : int or None, default=None
        Threads of the fit's kernels (numba; ``dask``: per worker task), joblib's
        convention: ``None`` leaves it to :func:`tikhon.config_context` (``n_threads``)
        or the cores left; ``-1`` all the cores this process may use, ``-2`` all but one.
        It is ``config_context(n_threads=...)`` for this fit, and wins over it.
    learning_rate : float or None, default=None
        Fixed step of ``gd`` / initial step of ``sgd``; ``None`` derives it from a
        Lipschitz bound.
    batch_size : int, default=256
        Rows per ``sgd`` step."""


class LogisticRegression(ClassifierMixin, _L2LinearModel):
    __doc__ = """L2-regularized logistic regression: binary, or multinomial for three or more classes.

    Two classes: minimizes ``sum_i s_i log(1 + exp(-y_i (x_i w + b))) + 1 / (2 C) ||w||^2``
    over ``w`` and (with ``fit_intercept``) the unpenalized intercept ``b``. ``K >= 3``
    classes: ``sum_i s_i (logsumexp_k(z_ik) - z_{i y_i}) + 1 / (2 C) ||W||_F^2`` with
    ``z_i = W x_i + b`` over all ``K`` rows of ``W`` (the symmetric parameterization).
    Both are the problems of ``sklearn.linear_model.LogisticRegression(C=C)``, whose
    parameters this class takes wherever their meaning carries over.

    Parameters
    ----------
    C : float, default=1.0
        Inverse penalty strength, ``lam = 1 / C``: finite and positive (scikit-learn's
        ``C=np.inf``, no penalty, is not a problem tikhon solves). The first positional
        parameter, as in tikhon's earlier releases (scikit-learn's is ``penalty``).
    penalty : "l2", default="l2"
        The only penalty tikhon solves; scikit-learn's ``"deprecated"`` (its default: the
        penalty set by ``l1_ratio``) is accepted too. ``"l1"``, ``"elasticnet"`` and
        ``None`` raise a ``ValueError``.
    l1_ratio : 0 or None, default=0.0
        scikit-learn's L1 share of the penalty; tikhon's is L2 only, so only 0 (or None).
    dual : bool, default=False
        scikit-learn's switch to the dual formulation; tikhon's dual solver is
        ``solver="dual_cd"`` (``dual=True`` is accepted with it and refused otherwise).
    intercept_scaling : float, default=1
        Accepted for scikit-learn's code and without effect: tikhon's intercept is never
        penalized (liblinear's synthetic feature, which this scales, is not needed).
    class_weight : dict, "balanced" or None, default=None
        Multiplies each sample's weight by its class's weight; "balanced" gives class
        ``k`` the weight ``sum(s) / (K sum_{y_i = k} s_i)`` with the sample weights ``s``
        (scikit-learn >= 1.7's definition; the same in LogisticRegressionCV and
        regularization_path: :func:`tikhon._validation.class_weighted`).""" + _COMMON_PARAMETERS.format(
        aliases="scikit-learn's names of the same algorithms map: ``newton-cg`` -> ``newton``,\n"
                "        ``newton-cholesky`` -> ``newton_cholesky``, ``lbfgs``.",
        max_iter="1000", penalty="C") + r"""

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
    intercept_ ((1,) or (n_classes,)), both in X's dtype (float32 or float64; the solve is
    float64), n_iter_ (int32 array of shape (1,), as scikit-learn's), converged_,
    backend_, solver_ (tikhon's name), certificate_ (the relative duality gap the solver
    stopped on), objective_ (``P`` at the solution), duality_gap_ (relative duality gap,
    an upper bound on the relative suboptimality), history_ (list of (seconds, objective)).
    """

    _loss = "logistic"
    _solver_aliases = {"newton-cg": "newton", "newton-cholesky": "newton_cholesky", "lbfgs": "lbfgs"}
    _sklearn_only_solvers = ("liblinear", "sag", "saga")

    def __init__(self, C=1.0, *, penalty="l2", l1_ratio=0.0, dual=False, fit_intercept=True, intercept_scaling=1,
                 solver="auto", backend=None, tol=DEFAULT_TOL, max_iter=DEFAULT_MAX_ITER, class_weight=None,
                 random_state=None, verbose=0, warm_start=False, n_jobs=None, learning_rate=None, batch_size=256):
        self.C = C
        self.penalty = penalty
        self.l1_ratio = l1_ratio
        self.dual = dual
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.solver = solver
        self.backend = backend
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.learning_rate = learning_rate
        self.batch_size = batch_size

    def _lam(self):
        if isinstance(self.C, numbers.Real) and not isinstance(self.C, bool) and self.C == np.inf:
            raise ValueError("C must be a finite positive number, got inf: C=inf is no penalty (scikit-learn's "
                             "penalty=None), which tikhon does not solve (L2, lam = 1/C > 0); give a finite C")
        _positive("C", self.C)
        return 1.0 / self.C

    def _check_params(self):
        super()._check_params()
        _check_penalty(self.penalty, self.l1_ratio)
        V.check_bool("dual", self.dual)
        if self.dual and self._solver_name() != "dual_cd":
            raise ValueError(f"dual=True: tikhon's dual formulation is solver='dual_cd' (CSR input, backend "
                             f"'cython'); pass solver='dual_cd', or dual=False for solver={self.solver!r}")
        _positive("intercept_scaling", self.intercept_scaling)

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features) and labels ``y`` of two or more classes."""
        self._check_params()
        with self._fitting():
            V.require_y(self, y)
            X, y = self._validate_X(X, reset=True, y=y)
            V.check_nonempty(X)
            classes, y_index = V.check_class_labels(y)
            s = V.class_weighted(self._check_weights(sample_weight, X), self.class_weight, classes, y_index)
            if classes.size == 2:
                w, b = self._fit(X, np.where(y_index == 1, 1.0, -1.0), s)
                coef, intercept = w.reshape(1, -1), np.array([b])
            else:  # multinomial: class indices as floats
                coef, intercept = self._fit(X, y_index.astype(np.float64), s, "multinomial", classes.size)
        self.classes_ = classes
        self.coef_, self.intercept_ = coef, intercept
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


def _check_penalty(penalty, l1_ratio):
    """``penalty`` and ``l1_ratio`` must ask for the L2 penalty, the one tikhon solves."""
    if penalty is None:
        raise ValueError("penalty=None (no penalty) is not what tikhon solves: tikhon fits the L2 penalty only "
                         "(penalty='l2', lam = 1/C > 0); a large C gives a weak penalty")
    if penalty in ("l1", "elasticnet"):
        raise ValueError(f"penalty={penalty!r} is not what tikhon solves: tikhon fits the L2 penalty only "
                         f"(penalty='l2'); for L1 use scikit-learn's LogisticRegression(solver='saga') or skglm")
    if penalty not in ("l2", "deprecated"):
        raise ValueError(f"penalty must be 'l2', the penalty tikhon solves, got {penalty!r}")
    if l1_ratio is not None and not (isinstance(l1_ratio, numbers.Real) and not isinstance(l1_ratio, bool)
                                     and l1_ratio == 0):
        raise ValueError(f"l1_ratio={l1_ratio!r} asks for an L1 part: tikhon fits the L2 penalty only "
                         f"(l1_ratio=0 or None)")


class Ridge(RegressorMixin, _L2LinearModel):
    __doc__ = """L2-regularized least squares.

    Minimizes ``sum_i s_i (y_i - x_i w - b)^2 / 2 + alpha / 2 ||w||^2``: the minimizer
    of ``sklearn.linear_model.Ridge(alpha=alpha)`` (whose objective is twice this), whose
    parameters this class takes wherever their meaning carries over.

    Several targets (``y`` of shape (n_samples, n_targets)) are fitted at once, one pass
    over X serving all of them, each with its own intercept and, if ``alpha`` is an
    array of ``n_targets`` values, its own penalty, as ``sklearn.linear_model.Ridge``.

    Parameters
    ----------
    alpha : float or array of n_targets floats, default=1.0
        Penalty strength ``lam = alpha``, finite and positive.
    copy_X : bool, default=True
        Accepted for scikit-learn's code and without effect: tikhon never writes to X
        (nor copies it, except for the conversions documented in
        :mod:`tikhon._validation`).
    positive : False, default=False
        scikit-learn's non-negativity constraint, not a problem tikhon solves: only False.""" + (
        _COMMON_PARAMETERS.format(
            aliases="scikit-learn's names of the same algorithms map: ``cholesky`` -> ``newton_cholesky``\n"
                    "        (the direct solve of the normal equations, one step), ``sparse_cg`` -> ``newton``\n"
                    "        (conjugate gradients on the normal equations), ``lbfgs``.",
            max_iter="None", penalty="alpha")) + r"""

    Ridge takes ``verbose``, ``warm_start`` and ``n_jobs`` as LogisticRegression does
    (scikit-learn's Ridge has none of them).

    Input: as :class:`LogisticRegression`, with real targets ``y`` (finite, 1-D or 2-D,
    magnitude at most 1e50; complex refused).

    Attributes
    ----------
    coef_ ((n_features,) for a 1-D ``y``, else (n_targets, n_features)) and intercept_ (a
    NumPy scalar for a 1-D ``y``, else (n_targets,)), both in X's dtype; n_iter_ (int32
    array of shape (n_targets,), (1,) for a 1-D ``y``: the targets are solved together,
    so the entries are equal), and the fit report of :class:`LogisticRegression`.
    """

    _loss = "squared"
    _solver_aliases = {"cholesky": "newton_cholesky", "sparse_cg": "newton", "lbfgs": "lbfgs"}
    _sklearn_only_solvers = ("svd", "lsqr", "sag", "saga")

    def __init__(self, alpha=1.0, *, fit_intercept=True, copy_X=True, max_iter=None, tol=DEFAULT_TOL, solver="auto",
                 positive=False, random_state=None, backend=None, verbose=0, warm_start=False, n_jobs=None,
                 learning_rate=None, batch_size=256):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.copy_X = copy_X
        self.max_iter = max_iter
        self.tol = tol
        self.solver = solver
        self.positive = positive
        self.random_state = random_state
        self.backend = backend
        self.verbose = verbose
        self.warm_start = warm_start
        self.n_jobs = n_jobs
        self.learning_rate = learning_rate
        self.batch_size = batch_size

    def _lam(self):
        if np.ndim(self.alpha) == 0:
            _positive("alpha", self.alpha)
            return float(self.alpha)
        alphas = np.asarray(self.alpha, dtype=np.float64)
        if alphas.ndim != 1 or alphas.size == 0 or not np.all(np.isfinite(alphas) & (alphas > 0)):
            raise ValueError(f"alpha must be a finite positive number or a 1-D array of them, got {self.alpha!r}")
        return alphas

    def _check_params(self):
        super()._check_params()
        V.check_bool("copy_X", self.copy_X)
        V.check_bool("positive", self.positive)
        if self.positive:
            raise ValueError("positive=True (coefficients constrained >= 0) is not what tikhon solves: tikhon "
                             "fits unconstrained L2-penalized least squares; use positive=False")

    def fit(self, X, y, sample_weight=None):
        """Fit on ``X`` (n_samples, n_features) and real targets ``y``: (n_samples,) or
        (n_samples, n_targets)."""
        self._check_params()
        with self._fitting():
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
                coef, intercept = (w, b) if y.ndim == 1 else (w.reshape(1, -1), np.array([b]))
            else:
                coef, intercept = self._fit(X, y, s, n_outputs=targets)
        self.coef_, self.intercept_ = coef, intercept
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        return self._margins(X)
