"""External anchors: other libraries solving tikhon's problem, each through a small adapter.

tikhon's objective, for labels ``y``, unit sample weights (``m = n`` rows) and
``lam = 1 / C`` (logistic) or ``lam = alpha`` (ridge)::

    P(w, b) = sum_i loss(y_i, x_i w + b) + lam / 2 ||w||^2,   b unpenalized

Each adapter converts that to its library's parameterization (the conversions below are
checked numerically against tikhon's optimum in ``tests/test_bench_anchors.py``):

* ``sklearn``: ``LogisticRegression(C=1/lam)`` is P itself; ``Ridge(alpha=lam)`` is 2 P
  (same minimizer). Its ``liblinear`` solver penalizes the intercept, so it runs only
  without one; ``sag``/``saga`` leave it free. For K >= 3 classes every solver but
  ``liblinear`` (one-vs-rest: skipped) is multinomial, tikhon's problem for K classes:
  ``sum_i [logsumexp(z_i) - z_{i,y_i}] + lam/2 ||W||_F^2``, ``z_i = W x_i + b``, all K rows
  penalized, ``b`` free (the bench scores it so: :class:`.measure.MultinomialEvaluator`).
* ``sklearnex`` (scikit-learn-intelex): the same classes and parameters as scikit-learn
  (multinomial for K >= 3 too).
* ``liblinear``: logistic ``-s 0`` (primal trust-region Newton) with ``-c 1/lam`` is
  ``P / lam`` up to the constant; ``-B 1 -R`` adds a bias feature left unregularized (the
  free intercept). ``-s 7`` (dual CD) regularizes its bias: no intercept only. Ridge:
  ``-s 11 -p 0`` (L2-loss SVR with zero epsilon = least squares) with ``-c 1/(2 lam)``,
  ``-B 1 -R`` for the intercept; ``-s 12`` (dual) only without one.
* ``glum``: ``GeneralizedLinearRegressor(family="binomial"|"normal", l1_ratio=0,
  alpha=lam/m)`` minimizes ``(1/(2m)) deviance + alpha/2 ||w||^2 = P / m`` (the binomial
  deviance is twice the log-loss; labels 0/1); the intercept is free.
* ``snapml``: ``LogisticRegression(regularizer=lam)`` / ``LinearRegression(regularizer=lam)``
  minimize P; its intercept is a regularized constant feature: no intercept only.
* ``skglm``: datafits ``Logistic`` / ``Quadratic`` are the *mean* loss, so the penalty is
  ``alpha = lam / m``: ``L2(lam/m)`` with ``LBFGS`` (no intercept: that solver fits none),
  ``L1_plus_L2(lam/m, l1_ratio=0)`` with ``ProxNewton`` / ``AndersonCD`` (free intercept).

Every variant is run at a sweep of its own tolerances, loosest first; each run gives one
``(seconds, objective)`` point (the whole ``fit``/``train`` call, the solution scored by
tikhon's objective). The sweep stops when a run reaches the tightest level, stops
improving, the tolerances run out, or the variant's time budget is spent (``stop`` says
which: a level missed because of the budget is reported as cut off, not as failed).
Anchors that cannot solve a problem (a penalized intercept, K >= 3 classes, a dense
Hessian of too many features) say so as a skipped variant with the reason.

An anchor whose library changes the process's floating-point state (snapml: flush-to-zero,
from ``-ffast-math``) runs in a child process (:mod:`.isolated`) and is never imported by
the bench's process; its runs are timed in the child, around the fit only.
"""
from __future__ import annotations

import importlib
import importlib.util
import itertools
import os
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from . import isolated
from .measure import clock

__all__ = ["ANCHORS", "DEFAULT_ANCHORS", "AnchorProblem", "Variant", "anchor_status", "parse_anchors",
           "run_variant", "variants"]

_SK_TOLS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
_LL_TOLS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6, 1e-8)
_GLM_TOLS = (1e-2, 1e-4, 1e-6, 1e-8, 1e-10)
_MAX_ITER = 100000
# Solvers that form and factor the d x d Hessian (tikhon's newton_cholesky, scikit-learn's
# newton-cholesky) run only up to this many features: 5000 is 200 MB and seconds per step;
# text data (reuters 8315, 100k) would take gigabytes.
DENSE_HESSIAN_MAX_FEATURES = 5000


@dataclass
class AnchorProblem:
    """What an adapter needs: the task (``logistic`` / ``ridge``), ``lam``, the intercept,
    ``X``, targets (``y_signed``: +-1 for two classes, real for ridge; ``y``: the labels),
    the number of classes (``n_classes``, 0 for ridge) and the cores to use.
    ``workspace``: the data set's :class:`.isolated.Workspace` for anchors that run in a
    child process (``None``: each such variant makes its own, closed by ``Variant.close``)."""

    task: str
    lam: float
    fit_intercept: bool
    X: object
    y_signed: np.ndarray
    y: np.ndarray
    n_classes: int = 2
    threads: int = field(default_factory=lambda: os.cpu_count() or 1)
    workspace: object = None

    def fields(self):
        """Everything but ``X`` and the workspace (what a child process is sent)."""
        return {"task": self.task, "lam": self.lam, "fit_intercept": self.fit_intercept,
                "y_signed": self.y_signed, "y": self.y, "n_classes": self.n_classes, "threads": self.threads}

    @property
    def m(self):
        return float(self.X.shape[0])  # the sum of the (unit) sample weights


@dataclass
class Variant:
    """One anchor solver: ``run(tol) -> (coef, intercept, n_iter)``, or with ``timed``
    ``(coef, intercept, n_iter, seconds)`` (a run timed where it ran: a child process);
    ``tols`` loosest first (``(None,)``: one run at the library's defaults). :meth:`close`
    releases what the variant holds (a child process of its own)."""

    anchor: str
    label: str
    run: object
    tols: tuple
    setup_seconds: float = 0.0
    notes: list = field(default_factory=list)
    timed: bool = False
    on_close: object = None

    def close(self):
        if self.on_close is not None:
            self.on_close()
            self.on_close = None


class _Skip(Exception):
    """This variant cannot solve this problem; the message says why."""


# ---------------------------------------------------------------- adapters
class _Adapter:
    """An anchor family: ``variants(problem, names)`` -> ``({label: Variant}, {label: why skipped})``.
    ``solvers[task]``: every variant name; ``defaults[task]``: those run when the family is
    named alone."""

    name = module = pip = ""
    solvers: dict = {}
    defaults: dict = {}
    binary_only: frozenset = frozenset()  # variants that solve two-class problems only
    free_intercept_missing: frozenset = frozenset()  # variants that penalize (or lack) the intercept
    tols = _SK_TOLS
    isolated = ""  # why the library runs in a child process ("": in the bench's process)

    def status(self):
        if importlib.util.find_spec(self.module.split(".")[0]) is None:
            return f"{self.name} is not installed (pip install {self.pip})"
        if self.isolated:  # never imported here
            why = isolated.import_status(self.module)
            return None if why is None else f"{self.name} cannot be imported: {why}"
        try:
            importlib.import_module(self.module)
        except Exception as exc:  # a shared library that fails to load
            return f"{self.name} cannot be imported: {type(exc).__name__}: {exc}"
        return None

    def check(self, problem, solver):
        """Raise :class:`_Skip` when ``solver`` cannot solve ``problem`` as tikhon states it."""
        if problem.fit_intercept and solver in self.free_intercept_missing:
            raise _Skip("penalizes its intercept (or fits none): runs only without an intercept (--no-intercept)")
        if problem.task == "logistic" and problem.n_classes > 2 and (solver in self.binary_only or "*" in self.binary_only):
            raise _Skip(f"solves two-class problems only (one-vs-rest otherwise), the data has {problem.n_classes} "
                        "classes")

    def build(self, problem, solver):
        """``(run, notes, setup_seconds)`` of one variant."""
        raise NotImplementedError

    def variants(self, problem, names):
        out, skipped = {}, {}
        for solver in names:
            label = f"{self.name}/{solver}"
            tols = (None,) if solver == "default" else self.tols
            try:
                self.check(problem, solver)
                if self.isolated:
                    out[label] = self._child_variant(problem, solver, label, tols)
                else:
                    run, notes, setup = self.build(problem, solver)
                    out[label] = Variant(self.name, label, run, tols, setup, notes)
            except _Skip as why:
                skipped[label] = str(why)
        return out, skipped

    _keys = itertools.count()

    def _child_variant(self, problem, solver, label, tols):
        """The variant built and run in the data set's child process of this family."""
        own = problem.workspace is None
        workspace = isolated.Workspace(problem.X) if own else problem.workspace
        try:
            started = self.name not in workspace.children
            child = workspace.child(self.name)
            key = next(self._keys)
            notes, setup = child.call("build", key, problem.fields(), solver)
        except BaseException:
            if own:
                workspace.close()
            raise
        setup += child.seconds if started else 0.0
        notes = [*notes, f"runs in a child process ({self.isolated}); time is the fit in the child; starting it "
                         f"and reading X took {child.seconds:.3g} s, once per data set"]

        def run(tol):
            return child.call("run", key, tol)

        def close():
            if own:
                workspace.close()
            elif child.proc.poll() is None:
                try:
                    child.call("drop", key)
                except isolated.ChildError:
                    pass  # a child that ended holds nothing

        return Variant(self.name, label, run, tols, setup, notes, timed=True, on_close=close)


def _labels01(problem):
    return (problem.y_signed > 0).astype(np.float64)


def _coef_intercept(model, problem):
    coef = np.asarray(model.coef_, dtype=np.float64)
    if problem.task == "logistic" and problem.n_classes > 2:
        intercept = np.asarray(model.intercept_, dtype=np.float64) if problem.fit_intercept else 0.0
        return coef, intercept
    intercept = float(np.ravel(model.intercept_)[0]) if problem.fit_intercept else 0.0
    return coef.ravel(), intercept


def _n_iter(model):
    n_iter = getattr(model, "n_iter_", None)
    return int(np.max(n_iter)) if n_iter is not None else 0


class _Sklearn(_Adapter):
    name, module, pip = "sklearn", "sklearn.linear_model", "scikit-learn"
    solvers = {"logistic": ("lbfgs", "newton-cg", "newton-cholesky", "liblinear", "sag", "saga"),
               "ridge": ("auto", "cholesky", "sparse_cg", "lsqr", "sag", "saga", "svd")}
    defaults = {"logistic": ("lbfgs", "newton-cholesky"), "ridge": ("auto",)}
    binary_only = frozenset({"liblinear"})
    free_intercept_missing = frozenset({"liblinear"})

    def _module(self):
        return importlib.import_module(self.module)

    def check(self, problem, solver):
        super().check(problem, solver)
        if solver == "newton-cholesky" and problem.X.shape[1] > DENSE_HESSIAN_MAX_FEATURES:
            raise _Skip(f"forms the d x d Hessian: run only up to {DENSE_HESSIAN_MAX_FEATURES} features")
        if solver == "svd" and sp.issparse(problem.X):
            raise _Skip("reads dense X only")
        if (problem.task == "ridge" and problem.fit_intercept and sp.issparse(problem.X)
                and solver not in ("auto", "lsqr", "sparse_cg", "sag", "default")):
            raise _Skip("scikit-learn's Ridge fits no intercept on sparse X with this solver")
        if solver == "default" and (not problem.fit_intercept or problem.lam != 1.0):
            raise _Skip("scikit-learn's defaults solve C = 1 (alpha = 1) with an intercept, not this problem")

    def build(self, problem, solver):
        lm = self._module()
        if problem.task == "logistic":
            def run(tol):
                if tol is None:  # scikit-learn's defaults: LogisticRegression()
                    model = lm.LogisticRegression()
                else:
                    model = lm.LogisticRegression(C=1.0 / problem.lam, solver=solver, tol=tol, max_iter=_MAX_ITER,
                                                  fit_intercept=problem.fit_intercept)
                model.fit(problem.X, problem.y if problem.n_classes > 2 else problem.y_signed)
                return (*_coef_intercept(model, problem), _n_iter(model))
            what = "LogisticRegression()" if solver == "default" else f"LogisticRegression(C=1/lam, solver={solver!r})"
        else:
            def run(tol):
                if tol is None:  # Ridge()
                    model = lm.Ridge()
                else:
                    model = lm.Ridge(alpha=problem.lam, solver=solver, tol=tol, max_iter=_MAX_ITER,
                                     fit_intercept=problem.fit_intercept)
                model.fit(problem.X, problem.y_signed)
                return (*_coef_intercept(model, problem), _n_iter(model))
            what = "Ridge()" if solver == "default" else f"Ridge(alpha=lam, solver={solver!r}) (objective 2 P)"
        return run, [f"{self.module}.{what}"], 0.0


class _Sklearnex(_Sklearn):
    name, module, pip = "sklearnex", "sklearnex.linear_model", "scikit-learn-intelex"
    solvers = {"logistic": ("lbfgs", "newton-cg"), "ridge": ("auto",)}
    defaults = {"logistic": ("lbfgs",), "ridge": ("auto",)}
    binary_only = frozenset()
    free_intercept_missing = frozenset()

    def _module(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its banner about patching
            return importlib.import_module(self.module)


class _Liblinear(_Adapter):
    name, module, pip = "liblinear", "liblinear.liblinearutil", "liblinear-official"
    solvers = {"logistic": ("-s0", "-s7"), "ridge": ("-s11", "-s12")}
    defaults = solvers
    binary_only = frozenset({"*"})
    free_intercept_missing = frozenset({"-s7", "-s12"})
    tols = _LL_TOLS
    _what = {"-s0": "primal trust-region Newton", "-s7": "dual CD", "-s11": "primal trust-region Newton",
             "-s12": "dual CD"}

    def build(self, problem, solver):
        from liblinear.liblinearutil import parameter, problem as ll_problem, train

        t0 = clock()
        Xc = problem.X if sp.issparse(problem.X) else sp.csr_matrix(problem.X)  # dense goes through a Python loop
        prob = ll_problem(np.asarray(problem.y_signed, dtype=np.float64), sp.csr_matrix(Xc, dtype=np.float64))
        setup = clock() - t0
        bias = "-B 1 -R" if problem.fit_intercept else ""
        if problem.task == "logistic":
            c, extra = 1.0 / problem.lam, ""
        else:
            c, extra = 1.0 / (2.0 * problem.lam), "-p 0"
        s = solver[2:]

        def run(tol):
            model = train(prob, parameter(f"-s {s} -c {c!r} -e {tol!r} {extra} {bias} -q"))
            w, b = model.get_decfun()
            labels = model.get_labels() if problem.task == "logistic" else [1]
            sign = 1.0 if labels[0] == 1 else -1.0  # LIBLINEAR's decision is for its first label
            return sign * np.asarray(w, dtype=np.float64), (sign * float(b) if problem.fit_intercept else 0.0), 0

        notes = [f"LIBLINEAR -s {s} ({self._what[solver]}) -c {c:.6g} {extra} {bias}".strip(),
                 f"time excludes building LIBLINEAR's problem ({setup:.3g} s, once per data set and C)"]
        return run, notes, setup


class _Glum(_Adapter):
    name, module, pip = "glum", "glum", "glum"
    solvers = {"logistic": ("irls-cd", "lbfgs"), "ridge": ("irls-cd", "lbfgs")}
    defaults = {"logistic": ("irls-cd",), "ridge": ("irls-cd",)}
    binary_only = frozenset({"*"})
    tols = _GLM_TOLS

    def build(self, problem, solver):
        import glum

        family = "binomial" if problem.task == "logistic" else "normal"
        target = _labels01(problem) if problem.task == "logistic" else problem.y_signed
        alpha = problem.lam / problem.m

        def run(tol):
            model = glum.GeneralizedLinearRegressor(family=family, alpha=alpha, l1_ratio=0.0, solver=solver,
                                                    fit_intercept=problem.fit_intercept, gradient_tol=tol,
                                                    max_iter=1000)
            model.fit(problem.X, target)
            return np.asarray(model.coef_, dtype=np.float64), float(model.intercept_), _n_iter(model)

        return run, [f"glum GeneralizedLinearRegressor(family={family!r}, alpha=lam/m = {alpha:.6g}, l1_ratio=0, "
                     f"solver={solver!r}): P/m"], 0.0


class _Snapml(_Adapter):
    name, module, pip = "snapml", "snapml", "snapml"
    solvers = {"logistic": ("sdca",), "ridge": ("sdca",)}
    defaults = solvers
    binary_only = frozenset({"*"})
    free_intercept_missing = frozenset({"sdca"})
    tols = _LL_TOLS
    isolated = "importing snapml sets flush-to-zero for its whole process: it was built with -ffast-math"

    def build(self, problem, solver):
        import snapml

        cls = snapml.LogisticRegression if problem.task == "logistic" else snapml.LinearRegression
        threads = int(problem.threads)

        def run(tol):
            model = cls(regularizer=problem.lam, fit_intercept=False, dual=True, tol=tol, max_iter=_MAX_ITER,
                        n_jobs=threads)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.fit(problem.X, problem.y_signed)
            return np.asarray(model.coef_, dtype=np.float64).ravel(), 0.0, _n_iter(model)

        return run, [f"snapml {cls.__name__}(regularizer=lam, dual=True, n_jobs={threads}): P"], 0.0


class _Skglm(_Adapter):
    name, module, pip = "skglm", "skglm", "skglm"
    solvers = {"logistic": ("ProxNewton", "AndersonCD", "LBFGS"), "ridge": ("AndersonCD", "LBFGS")}
    defaults = {"logistic": ("ProxNewton",), "ridge": ("AndersonCD",)}
    binary_only = frozenset({"*"})
    free_intercept_missing = frozenset({"LBFGS"})
    tols = _GLM_TOLS

    def check(self, problem, solver):
        super().check(problem, solver)
        if solver == "LBFGS" and problem.task == "ridge" and sp.issparse(problem.X):
            raise _Skip("skglm's Quadratic datafit has no sparse gradient for LBFGS: dense X only")

    def _estimator(self, problem, solver, tol, max_iter=None):
        from skglm import GeneralizedLinearEstimator, datafits, penalties, solvers

        datafit = datafits.Logistic() if problem.task == "logistic" else datafits.Quadratic()
        alpha = problem.lam / problem.m
        if solver == "LBFGS":
            penalty, algo = penalties.L2(alpha), solvers.LBFGS(tol=tol, max_iter=max_iter or 1000)
            algo.fit_intercept, algo.warm_start = False, False  # what the estimator reads; LBFGS fits none
        else:
            penalty = penalties.L1_plus_L2(alpha, l1_ratio=0.0)
            # skglm's own outer-iteration cap (50 for both): a single run at a tight tol on a9a
            # otherwise takes up to 100 s, far past any budget (the sweep cannot stop a run)
            algo = getattr(solvers, solver)(tol=tol, max_iter=max_iter or 50, fit_intercept=problem.fit_intercept,
                                            ws_strategy="fixpoint")
        return GeneralizedLinearEstimator(datafit, penalty, algo)

    def build(self, problem, solver):
        t0 = clock()
        X = problem.X
        if sp.issparse(X) and X.indices.dtype != np.int32 and X.nnz < 2**31:  # skglm reads int32 indices only
            X = sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)), shape=X.shape)
        # skglm compiles its Numba classes in every process: once on a tiny slice, outside the timing
        rows = np.unique(np.concatenate([np.flatnonzero(problem.y_signed > 0)[:8],
                                         np.flatnonzero(problem.y_signed <= 0)[:8]]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._estimator(problem, solver, 1e-2, max_iter=2).fit(X[rows], problem.y_signed[rows])
        setup = clock() - t0

        def run(tol):
            model = self._estimator(problem, solver, tol)
            model.fit(X, problem.y_signed)
            intercept = float(model.intercept_) if problem.fit_intercept else 0.0
            return np.asarray(model.coef_, dtype=np.float64).ravel(), intercept, _n_iter(model)

        penalty = "L2(lam/m)" if solver == "LBFGS" else "L1_plus_L2(lam/m, l1_ratio=0)"
        return run, [f"skglm GeneralizedLinearEstimator(mean datafit, {penalty}, {solver}): P/m",
                     f"time excludes the Numba compilation of skglm's classes and int32 CSR indices "
                     f"({setup:.3g} s)"], setup


_ADAPTERS = {a.name: a for a in (_Sklearn(), _Liblinear(), _Sklearnex(), _Glum(), _Snapml(), _Skglm())}
ANCHORS = tuple(_ADAPTERS)
# The anchors of ``--anchors default``, each used only where installed, each with its family's
# default variants. Not skglm: its L2 solvers take 7 s (ProxNewton, tol 1e-4) to 100 s
# (AndersonCD, 1e-6) on a9a, past the default run's 2 minutes; ask for it by name.
DEFAULT_ANCHORS = ("sklearn", "liblinear", "sklearnex", "glum", "snapml")


def anchor_status(name):
    """``None`` if the anchor family can run here, else why not (with the pip command)."""
    return _ADAPTERS[name].status()


def parse_anchors(text):
    """``--anchors`` -> ``{family: None (its defaults) | "all" | [variant, ...]}``.

    Items, comma-separated: ``FAMILY`` (its default variants), ``FAMILY/VARIANT``,
    ``FAMILY/all``; ``all`` (every variant of every family), ``default``, ``none``.
    Raises ``ValueError`` naming the valid choices."""
    items = [t.strip() for t in (",".join(text) if isinstance(text, (list, tuple)) else str(text)).split(",")
             if t.strip()]
    if items in (["none"], ["off"], []):
        return {}
    out = {}
    for item in items:
        if item == "all":
            out.update({name: "all" for name in ANCHORS})
            continue
        if item == "default":
            out.update({name: out.get(name) for name in DEFAULT_ANCHORS})
            continue
        family, _, variant = item.partition("/")
        if family not in _ADAPTERS:
            raise ValueError(f"unknown anchor {item!r}; valid anchors are {', '.join(ANCHORS)} "
                             "(FAMILY, FAMILY/VARIANT, FAMILY/all, all, default or none)")
        if not variant:
            out.setdefault(family, None)
        elif variant == "all":
            out[family] = "all"
        else:
            known = {v for names in _ADAPTERS[family].solvers.values() for v in names} | {"default"}
            if variant not in known:
                raise ValueError(f"unknown {family} variant {variant!r}; valid: {', '.join(sorted(known))}")
            if out.get(family) != "all":
                current = out.get(family) or []
                out[family] = [*current, variant]
    return out


def _names(adapter, task, which):
    if which is None:
        return adapter.defaults[task]
    if which == "all":
        return adapter.solvers[task]
    return [v for v in which if v == "default" or v in adapter.solvers[task]]


def count_variants(name, task, which=None):
    """How many variants of family ``name`` a problem of ``task`` asks for (before the
    per-problem skips): the progress display's step count."""
    return len(_names(_ADAPTERS[name], task, which))


def variants(name, problem, which=None):
    """The runnable variants of anchor family ``name`` for ``problem``:
    ``({label: Variant}, {label: why skipped})``. ``which``: ``None`` (the defaults),
    ``"all"`` or a list of variant names."""
    adapter = _ADAPTERS[name]
    return adapter.variants(problem, _names(adapter, problem.task, which))


def run_variant(variant, evaluate, reference_hint, tightest_level, budget):
    """Sweep ``variant.tols``; returns ``(runs, stop)``: the run records (seconds, objective,
    tol, iterations) and why the sweep stopped: ``reached`` (the tightest level, judged
    against ``reference_hint``), ``stalled`` (a tighter tolerance gave no better
    objective), ``budget`` (another run would exceed ``budget`` seconds) or ``tols`` (every
    tolerance was run)."""
    from .measure import suboptimality

    runs, spent, best = [], 0.0, np.inf
    for tol in variant.tols:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = clock()
            out = variant.run(tol)
            seconds = clock() - t0
        if variant.timed:  # timed where it ran (a child process): the fit only
            *out, seconds = out
        coef, intercept, n_iter = out
        value = evaluate(coef, intercept)
        runs.append({"tol": tol, "seconds": seconds, "objective": value, "iterations": n_iter})
        spent += seconds
        if reference_hint is not None and suboptimality(value, reference_hint) <= tightest_level:
            return runs, "reached"
        if value >= best - 1e-15 * abs(best):  # no progress from a tighter tolerance
            return runs, "stalled"
        best = min(best, value)
        if tol is not variant.tols[-1] and spent + 2.0 * seconds > budget:  # a tighter tol costs about as much again
            return runs, "budget"
    return runs, "tols"
