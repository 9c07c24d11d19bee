"""The benchmark engine: a run is a list of *parts* (one :class:`BenchConfig` each: data,
problems, cells, anchors, levels, settings); a suite (:mod:`.suites`) is a named list of parts.

A part of kind ``levels`` (the default) times, per data set and C (logistic) or alpha
(ridge): the requested backends (discovered through the registry, NumPy always first as
the baseline) times the requested solvers (a solver that is a whole backend loop runs
only on backends that declare it), then the anchors (:mod:`.anchors`), then the kernel
passes (:mod:`.kernels`). Non-NumPy backends are warmed up (JIT compilation, caches) on
a small slice of the data before any timed run; the warm-up seconds are reported apart.
Parts of kind ``path`` and ``gridsearch`` are in :mod:`.paths` and :mod:`.gridsearch`.

Times are wall-clock seconds of the whole ``fit`` call. A tikhon fit's history
(seconds since the solver started, objective) is shifted by the fit's overhead
(validation, backend set-up, final certificate) so that its last point is the whole
fit's time: times to a level are never flattered. The reference optimum ``P*`` of a
problem is the lowest objective any run reached (``defaults`` parts: an untimed tight
tikhon fit), every solution scored by the same evaluator (NumPy kernels, float64).

The task comes from ``--task`` or, with ``auto``, from the labels by the rule of ``tikhon
fit --task auto`` (:func:`tikhon._datafiles.infer_task`): text labels, two values, or
integer labels of which every value labels at least 1% of the rows are K classes,
anything else is ridge. A problem the estimators refuse is a *skipped problem* with the
reason, not a failed run.
"""
from __future__ import annotations

import json
import platform
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from .._datafiles import infer_task
from . import anchors as anchor_mod
from .kernels import floor_figures, kernel_figures
from .load import DEFAULT_LOAD_SECONDS, busy_load
from .measure import (MEMORY_METHODS, Evaluator, MultinomialEvaluator, PeakMemory, clock, level_key,
                      suboptimality, time_to_levels)
from .problems import BenchArgumentError, describe, load_dataset, parse_data_spec, parse_dtype
from .verdict import add_verdicts, not_reached

__all__ = ["BenchConfig", "DEFAULT_C", "DEFAULT_ALPHA", "run", "validate"]

DEFAULT_C = (0.1, 1.0, 10.0)
DEFAULT_ALPHA = (0.1, 1.0, 10.0)
DEFAULT_LEVELS = (1e-3, 1e-6, 1e-8)
VERDICT_LEVEL = 1e-6
# Iteration caps per solver when --max-iter is not given (keeps the default run short;
# a cell that stops early shows "cap" for the levels it did not reach).
DEFAULT_MAX_ITER = {"newton": 100, "lbfgs": 200, "gd": 300, "sgd": 20}
DEFAULT_MAX_ITER_OTHER = 300
# Solvers run when --solver is not given: all registered except the first-order ones
# (the seeds' GD and SGD do not reach 1e-6 in a short run, L-BFGS needs hundreds of
# passes on a9a): the default run must stay under 2 minutes. Ask for them by name.
NOT_BY_DEFAULT = ("gd", "sgd", "lbfgs")
# Default solver tolerance: every solver stops on the relative duality gap, an upper
# bound on the relative suboptimality, so a tenth of the tightest level is enough.
TOL_PER_LEVEL = 0.1
TASKS = ("auto", "logistic", "ridge")
# Solvers of two-class logistic regression (and single-target ridge) only: on K >= 3 classes
# their cells are skipped with the reason (tikhon.solvers.dual_cd refuses multinomial problems).
TWO_CLASS_SOLVERS = ("dual_cd",)
KINDS = ("levels", "path", "gridsearch")


@dataclass
class BenchConfig:
    data: list = field(default_factory=lambda: ["a9a"])
    dtype: str = "float64"
    backends: list | None = None  # None: every available backend
    solvers: list | None = None  # None: every registered solver but NOT_BY_DEFAULT
    task: str = "auto"  # auto: from the labels
    C: list | None = None
    alpha: list | None = None
    levels: tuple = DEFAULT_LEVELS
    verdict_level: float = VERDICT_LEVEL
    tol: float | None = None  # None: TOL_PER_LEVEL times the tightest level
    max_iter: int | None = None
    repeat: int = 1
    anchors: object = "default"  # --anchors text, parsed by validate into {family: variants}
    anchor_budget: float = 3.0
    memory: str = "tracemalloc"
    fit_intercept: bool = True
    kernel_seconds: float = 0.2
    warmup: bool = True
    kernels: bool = True  # time one loss+gradient pass per backend
    hessian: bool = False  # and one Hessian-vector product
    fits: bool = True  # time the fits
    defaults: bool = False  # cells at the estimators' defaults (the load suite), P* from a tight reference fit
    kind: str = "levels"  # levels | path | gridsearch
    label: str = ""  # the part's name within a suite
    optional_data: bool = False  # a suite's own data: a missing data set is skipped, not an error
    grid: list | None = None  # C grid of path / gridsearch parts
    load: int = 0  # busy processes beside the part (contention, issue 15)
    load_seconds: float = DEFAULT_LOAD_SECONDS
    dask_workers: int | None = None
    dask_scheduler: str | None = None
    dask_chunk_rows: int | None = None
    notes: list = field(default_factory=list)  # warnings about options that do not apply


def _split(values):
    if isinstance(values, str):
        values = [values]
    out = []
    for value in values or ():
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


def _numbers(config, name):
    values = getattr(config, name)
    if values is None:
        return None
    try:
        values = [float(v) for v in _split(values)]
    except ValueError:
        raise BenchArgumentError(f"--{name} takes numbers, got {getattr(config, name)!r}") from None
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise BenchArgumentError(f"--{name} values must be finite positive numbers, got {values}")
    return values


def validate(config: BenchConfig) -> BenchConfig:
    """Check names and numbers up front; raises :class:`BenchArgumentError` with the valid choices."""
    import tikhon
    from tikhon import solvers as solver_registry

    valid_backends = tikhon.backend_names()
    if config.backends is not None:
        config.backends = _split(config.backends)
        unknown = [b for b in config.backends if b not in valid_backends]
        if unknown or not config.backends:
            raise BenchArgumentError(f"unknown backend {', '.join(map(repr, unknown)) or '(empty)'}; "
                                     f"valid backends are {', '.join(valid_backends)}")
    if config.solvers is not None:
        config.solvers = _split(config.solvers)
        valid = ("auto", *solver_registry.SOLVERS)
        unknown = [s for s in config.solvers if s not in valid]
        if unknown or not config.solvers:
            raise BenchArgumentError(f"unknown solver {', '.join(map(repr, unknown)) or '(empty)'}; "
                                     f"valid solvers are {', '.join(valid)}")
    if not isinstance(config.anchors, dict):
        try:
            config.anchors = anchor_mod.parse_anchors(config.anchors if config.anchors is not None else "default")
        except ValueError as exc:
            raise BenchArgumentError(str(exc)) from None
    if config.task not in TASKS:
        raise BenchArgumentError(f"unknown --task {config.task!r}; valid: {', '.join(TASKS)}")
    if config.kind not in KINDS:
        raise BenchArgumentError(f"unknown part kind {config.kind!r}; valid: {', '.join(KINDS)}")
    config.C, config.alpha = _numbers(config, "C"), _numbers(config, "alpha")
    if config.grid is not None:
        config.grid = _numbers(config, "grid")
    if config.task == "logistic" and config.alpha is not None:
        config.notes.append("--alpha does not apply to --task logistic (ignored)")
        config.alpha = None
    if config.task == "ridge" and config.C is not None:
        config.notes.append("--C does not apply to --task ridge (ignored; ridge's penalty is --alpha)")
        config.C = None
    try:
        levels = sorted({float(v) for v in _split(config.levels)}, reverse=True)
    except ValueError:
        raise BenchArgumentError(f"--levels takes numbers, got {config.levels!r}") from None
    if not levels or not all(0 < v < 1 for v in levels):
        raise BenchArgumentError(f"--levels must be relative suboptimalities in (0, 1), got {config.levels!r}")
    config.levels = tuple(levels)
    if not 0 < float(config.verdict_level) < 1:
        raise BenchArgumentError(f"--verdict-level must be in (0, 1), got {config.verdict_level!r}")
    for name, value in (("tol", config.tol or 1.0), ("anchor-budget", config.anchor_budget),
                        ("kernel-seconds", config.kernel_seconds), ("load-seconds", config.load_seconds)):
        if not (np.isfinite(value) and value > 0):
            raise BenchArgumentError(f"--{name} must be a positive number, got {value!r}")
    if int(config.repeat) != config.repeat or config.repeat < 1:
        raise BenchArgumentError(f"--repeat must be a positive integer, got {config.repeat!r}")
    if config.max_iter is not None and config.max_iter < 1:
        raise BenchArgumentError(f"--max-iter must be a positive integer, got {config.max_iter!r}")
    if int(config.load) != config.load or config.load < 0:
        raise BenchArgumentError(f"--load must be a non-negative integer, got {config.load!r}")
    if config.dask_workers is not None and (int(config.dask_workers) != config.dask_workers
                                            or config.dask_workers < 1):
        raise BenchArgumentError(f"--dask-workers must be a positive integer, got {config.dask_workers!r}")
    if config.memory not in MEMORY_METHODS:
        raise BenchArgumentError(f"unknown --memory {config.memory!r}; valid: {', '.join(MEMORY_METHODS)}")
    parse_dtype(config.dtype)
    config.data = [d if isinstance(d, dict) else parse_data_spec(d, parse_dtype(config.dtype))
                   for d in (config.data or ["a9a"])]
    return config


# ---------------------------------------------------------------- the task
def _problems(config, y):
    """``(problems, skipped)``: the (task, C or alpha) problems of one data set, and the
    problems that cannot be run on these labels with the reason."""
    found = infer_task(y)
    task, n_classes = found.task, found.n_classes
    C, alpha = config.C, config.alpha
    if config.task == "logistic" or (config.task == "auto" and C is None and alpha is None and task == "logistic"):
        C = C or list(DEFAULT_C)
    if config.task == "ridge" or (config.task == "auto" and C is None and alpha is None and task == "ridge"):
        alpha = alpha or list(DEFAULT_ALPHA)
    out, skipped = [], {}
    n_values = int(np.unique(y).size)
    for value in C or ():
        problem = {"task": "logistic", "loss": "logistic", "param": "C", "value": value, "lam": 1.0 / value,
                   "n_classes": n_classes if task == "logistic" else n_values}
        if task != "logistic":
            skipped[_tag(problem)] = (f"the labels are a regression target ({n_values} distinct values, not "
                                      f"classes): logistic regression needs classes; use --task ridge")
            continue
        out.append(problem)
    for value in alpha or ():
        out.append({"task": "ridge", "loss": "squared", "param": "alpha", "value": value, "lam": value,
                    "n_classes": 0})
    return out, skipped


def _tag(problem):
    return f"{problem['loss']} {problem['param']}={problem['value']:g}"


def _targets(problem, y):
    """``(y_signed, y_index)``: +-1 labels of two classes (``classes[1]`` is +1), or the
    real targets of ridge; the class index of each row for K >= 3 classes."""
    if problem["loss"] != "logistic":
        return np.asarray(y, dtype=np.float64), None
    classes, index = np.unique(y, return_inverse=True)
    signed = np.where(index == classes.size - 1, 1.0, -1.0)
    return signed, (index if classes.size > 2 else None)


def _probe_refusal(problem, X, y, warm):
    """Why the estimators refuse this problem (``None`` when they fit it): K >= 3 classes
    on a binary-only LogisticRegression gives its ValueError."""
    if problem["loss"] != "logistic" or problem["n_classes"] <= 2:
        return None
    Xs, ys = warm
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _estimator("logistic", problem["value"], backend="numpy", max_iter=2).fit(Xs, ys)
    except (ValueError, TypeError) as exc:
        return f"tikhon's estimators refuse {problem['n_classes']} classes: {' '.join(str(exc).split())}"
    return None


# ---------------------------------------------------------------- planning
def _generic(cls):
    """Whether a backend offers the generic kernels (the primal solvers need them)."""
    from tikhon.backends import Backend

    return any(getattr(cls, m) is not getattr(Backend, m) for m in ("matvec", "loss_grad"))


def _plan_cells(config, X, loss, Xd=None, n_classes=2):
    """``[(label, requested_name, backend_cls, solver)]`` and ``{what: why skipped}``.
    ``Xd``: the data on the dask cluster (``None``: no cluster); ``n_classes``: K of the
    logistic problems (K >= 3: multinomial, which the two-class solvers do not fit)."""
    import tikhon
    from tikhon import BackendUnavailableError
    from tikhon import solvers as registry
    from tikhon.backends import get_backend

    if config.defaults:
        return _plan_default_cells(X)
    requested = config.backends if config.backends is not None else list(tikhon.available_backends())
    names = ["numpy"] + [b for b in requested if b != "numpy"]  # the baseline is always there, first
    default_solver = registry.choose_solver("auto", loss)
    if config.solvers is None:
        solver_list = [s for s in registry.SOLVERS if s not in NOT_BY_DEFAULT]
    else:
        solver_list = [registry.choose_solver(s, loss) for s in config.solvers if s != "auto"]
    asked_default = default_solver in solver_list
    solver_list = [default_solver] + [s for s in dict.fromkeys(solver_list) if s != default_solver]
    cells, skipped, seen = [], {}, set()
    if loss == "logistic" and n_classes > 2:
        for solver in [s for s in solver_list if s in TWO_CLASS_SOLVERS]:
            solver_list.remove(solver)
            skipped[solver] = f"fits two-class logistic regression only; the data has {n_classes} classes (multinomial)"
    for name in names:
        if name == "dask" and Xd is None:
            if config.backends is not None or "dask" in tikhon.available_backends():
                skipped["dask"] = "dask rows need a cluster: give --dask-workers N or --dask-scheduler ADDRESS"
            continue
        data = Xd if name == "dask" else X
        for solver in solver_list:
            if solver == default_solver and name not in ("numpy", "dask") and not asked_default:
                continue  # run on NumPy only, as the baseline the requested solvers are compared with
            loop = solver if solver in registry.BACKEND_LOOPS else None
            try:
                cls = get_backend(name, data, loop=loop, solver=solver)
            except BackendUnavailableError as exc:
                skipped[name] = str(exc)
                break
            except ValueError as exc:
                if loop is None or (config.solvers is not None and name != "auto"):
                    skipped[f"{name}/{solver}"] = str(exc)
                continue
            if loop is None and not _generic(cls):
                if config.solvers is not None:
                    skipped[f"{name}/{solver}"] = f"backend {cls.name!r} runs only its own loops {sorted(cls.loops)}"
                continue
            if solver == "newton_cholesky" and X.shape[1] > anchor_mod.DENSE_HESSIAN_MAX_FEATURES:
                skipped[f"{name}/{solver}"] = (f"forms the d x d Hessian ({X.shape[1]} features, "
                                               f"{8 * X.shape[1] ** 2 / 1e9:.2g} GB): run only up to "
                                               f"{anchor_mod.DENSE_HESSIAN_MAX_FEATURES} features")
                continue
            if name == "dask" and solver == "sgd":
                skipped["dask/sgd"] = "sgd does not run on dask (a round trip per mini-batch)"
                continue
            label = cls.name if name != "auto" else f"auto:{cls.name}"
            if (cls.name, solver) in seen:
                if name == "auto":
                    skipped[f"auto/{solver}"] = f"auto chose {cls.name!r}, already in the table"
                continue
            seen.add((cls.name, solver))
            cells.append((label, name, cls, solver))
    if config.solvers is None or "auto" in config.solvers:
        # the user's default: backend and solver both "auto" (the record names what it chose)
        cells.append(("tikhon", None, get_backend("auto", X), "auto"))
    return cells, skipped


def _plan_default_cells(X):
    """The load suite's cells: tikhon's default fit and the NumPy backend, both at the
    estimators' defaults."""
    from tikhon.backends import get_backend

    return [("tikhon/default", None, get_backend("auto", X), "auto"),
            ("numpy/default", "numpy", get_backend("numpy", X), "auto")], {}


# ---------------------------------------------------------------- fits
def _estimator(loss, value, **kwargs):
    import tikhon

    if loss == "logistic":
        return tikhon.LogisticRegression(C=value, **kwargs)
    return tikhon.Ridge(alpha=value, **kwargs)


def _max_iter(config, solver):
    if config.defaults:
        return None
    if config.max_iter is not None:
        return int(config.max_iter)
    return DEFAULT_MAX_ITER.get(solver, DEFAULT_MAX_ITER_OTHER)


def _tol(config):
    if config.defaults:
        return None
    if config.tol is not None:
        return float(config.tol)
    return TOL_PER_LEVEL * min(config.levels)


def _fit_once(config, loss, value, backend, solver, X, y, memory, tol):
    if config.defaults:  # the estimator as a user makes it: LogisticRegression() / Ridge(), backend aside
        model = _estimator(loss, value) if backend is None else _estimator(loss, value, backend=backend)
    else:
        model = _estimator(loss, value, solver=solver, backend=backend, tol=tol,
                           max_iter=_max_iter(config, solver), fit_intercept=config.fit_intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PeakMemory(memory) as mem:
            t0 = clock()
            model.fit(X, y)
            seconds = clock() - t0
    history = [(float(t), float(v)) for t, v in (getattr(model, "history_", None) or [])]
    offset = seconds - history[-1][0] if history else 0.0
    trace = [(t + offset, v) for t, v in history] or [(seconds, float("inf"))]
    return model, seconds, trace, mem.peak


def _warm_small(X, y, loss, n=256):
    """A small slice of the data with every class (for warm-up fits and probes)."""
    if loss == "logistic":
        classes = np.unique(y)
        per = max(2, n // max(classes.size, 1))
        rows = np.concatenate([np.flatnonzero(y == c)[:per] for c in classes])
    else:
        rows = np.arange(min(n, X.shape[0]))
    rows.sort()
    return X[rows], y[rows], rows


def _run_cell(config, problem, cell, data, y, evaluate):
    label, name, cls, solver = cell
    loss, value = problem["loss"], problem["value"]
    tol = _tol(config)
    record = {"kind": "tikhon", "label": f"{label}/{solver}" if not config.defaults else label,
              "backend": cls.name, "requested_backend": name or "auto", "solver": solver,
              "max_iter": _max_iter(config, solver), "tol": tol, "error": None}
    try:
        runs = []
        for r in range(config.repeat):
            model, seconds, trace, peak = _fit_once(config, loss, value, name, solver, data, y,
                                                    config.memory if r == 0 else "off", tol)
            runs.append((seconds, trace, model))
            if r == 0:
                record["peak_memory_bytes"] = peak
        seconds, trace, model = min(runs, key=lambda item: item[0])
        record.update(
            seconds=seconds,
            seconds_all=[r[0] for r in runs],
            trace=trace,
            traces=[r[1] for r in runs],
            final_objective=evaluate(model.coef_, model.intercept_),
            reported_objective=float(model.objective_),
            iterations=int(np.max(model.n_iter_)),
            converged=bool(model.converged_),
            duality_gap=float(model.duality_gap_),
            backend=str(model.backend_),
            solver=str(model.solver_),
            tol=float(model.tol),
            max_iter=int(model.max_iter) if model.max_iter is not None else None,
        )
    except Exception as exc:  # a failing cell is reported, the run goes on
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


def _run_anchor(config, variant, evaluate, reference_hint):
    record = {"kind": "anchor", "label": variant.label, "anchor": variant.anchor, "backend": None,
              "solver": variant.label.split("/", 1)[1], "notes": variant.notes,
              "setup_seconds": variant.setup_seconds, "budget_seconds": config.anchor_budget, "error": None}
    kept = anchor_mod.isolated.subnormals_kept()
    try:
        runs, stop = anchor_mod.run_variant(variant, evaluate, reference_hint, min(config.levels),
                                            config.anchor_budget)
        best = min(runs, key=lambda r: r["objective"])
        trace = sorted((r["seconds"], r["objective"]) for r in runs)
        record.update(runs=runs, stop=stop, trace=trace, seconds=best["seconds"],
                      final_objective=best["objective"], iterations=best["iterations"], tol=best["tol"],
                      peak_memory_bytes=None)
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        variant.close()
    if kept and not anchor_mod.isolated.subnormals_kept():  # a library new to this: say so, loudly
        record["error"] = (f"{variant.anchor} switched this process to flush subnormals to zero: the fits after "
                           f"it are not comparable; run it in a child process (isolated = ... in anchors.py)")
    return record


# ---------------------------------------------------------------- one data set
def _threads():
    import os

    return os.cpu_count() or 1


def _anchor_records(config, problem, X, y_signed, y, evaluate, hint, progress, tag, workspace=None):
    records, skipped = [], {}
    spec = anchor_mod.AnchorProblem(problem["task"], problem["lam"], config.fit_intercept, X, y_signed, y,
                                    problem["n_classes"], _threads(), workspace)
    for name, which in config.anchors.items():
        if anchor_mod.anchor_status(name) is not None:
            continue  # listed once for the whole run
        try:
            found, why = anchor_mod.variants(name, spec, which)
        except Exception as exc:
            records.append({"kind": "anchor", "label": name, "anchor": name, "backend": None, "solver": None,
                            "error": f"{type(exc).__name__}: {exc}"})
            continue
        skipped.update(why)
        for variant in found.values():
            progress.step(f"{tag}  anchor {variant.label}")
            records.append(_run_anchor(config, variant, evaluate, hint))
    return records, skipped


def _n_steps(config, problems, plans):
    installed = [a for a in config.anchors if anchor_mod.anchor_status(a) is None]
    anchors = {task: sum(anchor_mod.count_variants(a, task, config.anchors[a]) for a in installed)
               for task in ("logistic", "ridge")}
    kernels = len(plans) + 1 if config.kernels else 0
    return sum(len(plans[p["loss"]][0]) + anchors[p["task"]] for p in problems) * bool(config.fits) + kernels


def _warm_up(config, plans, X, y, Xd, client, out, progress):
    """Untimed fits on a small slice (JIT compilation, caches) and kernel warm-up."""
    for loss, (cells, _) in plans.items():
        Xs, ys, rows = _warm_small(X, y, loss)
        for label, name, cls, solver in cells:
            if not config.warmup or cls.name == "numpy":
                continue
            key = f"{label}/{solver}"
            t0 = clock()
            try:
                data = Xs
                if cls.name == "dask":
                    from .cluster import small_slice

                    data = small_slice(Xd, rows)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    kwargs = {} if name is None else {"backend": name}
                    if not config.defaults:
                        kwargs["solver"] = solver
                    _estimator(loss, 1.0, max_iter=3, **kwargs).fit(data, ys)
                    if _generic(cls) and cls.name != "dask":
                        signed, index = _targets({"loss": loss}, ys)
                        kernel_figures(cls, Xs, signed, loss, min_seconds=0.0, y_index=index)
            except Exception as exc:
                out["skipped"][f"warm-up {key}"] = f"{type(exc).__name__}: {exc}"
            out["warmup_seconds"][key] = clock() - t0
            progress.note(f"warm-up {key} ({loss}): {out['warmup_seconds'][key]:.2f} s")


def _kernels(config, plans, X, y, Xd, client, out, progress):
    """One loss+gradient pass per backend against one read of X (``X @ w``; for K >= 3
    classes the multinomial pass against ``X @ W^T`` with K columns)."""
    y_index = _targets({"loss": "logistic"}, y)[1] if "logistic" in plans else None
    progress.step("kernel floor (X @ w)")
    out["kernels"]["floor"] = floor_figures(X, config.kernel_seconds, 1 if y_index is None else int(y_index.max()) + 1)
    for loss, (cells, _) in plans.items():
        progress.step(f"kernels loss+grad ({loss})")
        figures = {}
        y_kernel, index = _targets({"loss": loss}, y)
        for label, name, cls, solver in cells:
            if cls.name in figures or not _generic(cls):
                continue
            try:
                if cls.name == "dask":
                    figures[cls.name] = kernel_figures(cls, Xd, y_kernel, loss, config.kernel_seconds,
                                                       bytes_of=X, client=client, hessian=config.hessian)
                else:
                    figures[cls.name] = kernel_figures(cls, X, y_kernel, loss, config.kernel_seconds,
                                                       hessian=config.hessian, y_index=index)
            except Exception as exc:
                figures[cls.name] = {"error": f"{type(exc).__name__}: {exc}"}
        floor, base = out["kernels"]["floor"], figures.get("numpy", {}).get("seconds_per_pass")
        for fig in figures.values():
            if "seconds_per_pass" in fig:
                fig["of_floor"] = floor["seconds"] / fig["seconds_per_pass"]
                fig["speedup_vs_numpy"] = base / fig["seconds_per_pass"] if base else None
        out["kernels"]["multinomial" if loss == "logistic" and index is not None else loss] = figures


def _reference_fit(problem, X, y, fit_intercept, evaluate):
    """P* of a defaults part: an untimed tight tikhon fit (the defaults stop loosely)."""
    model = _estimator(problem["loss"], problem["value"], tol=1e-10, max_iter=1000, fit_intercept=fit_intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X, y)
    return {"kind": "reference", "label": "reference (tikhon, tol 1e-10, untimed)",
            "final_objective": evaluate(model.coef_, model.intercept_), "error": None,
            "duality_gap": float(model.duality_gap_)}


def run_dataset(config, dataset, progress, client=None):
    X, y = dataset.X, dataset.y
    out = {"name": dataset.name, "part": config.label, "spec": dataset.spec, **describe(X),
           "load_seconds": dataset.load_seconds, "skipped": {}, "skipped_problems": {}, "warmup_seconds": {},
           "kernels": {}, "problems": [], "settings": _settings(config)}
    problems, out["skipped_problems"] = _problems(config, y)
    Xd = None
    if client is not None and (config.backends is None or "dask" in config.backends) and not config.defaults:
        from .cluster import to_dask

        progress.note(f"putting {dataset.name} on the dask cluster (chunked by rows) ...")
        Xd = to_dask(X, client, config.dask_chunk_rows)
        out["dask_chunks"] = [int(c) for c in Xd.chunks[0]]
    ready = []
    for problem in problems:
        why = _probe_refusal(problem, X, y, _warm_small(X, y, "logistic")[:2])
        if why is not None:
            out["skipped_problems"][_tag(problem)] = why
        else:
            ready.append(problem)
    problems = ready
    plans = {}
    for loss in dict.fromkeys(p["loss"] for p in problems):
        n_classes = max(p["n_classes"] for p in problems if p["loss"] == loss)
        plans[loss] = _plan_cells(config, X, loss, Xd, n_classes)
        out["skipped"].update(plans[loss][1])
    progress.start(_n_steps(config, problems, plans), f"{dataset.name}{' [' + config.label + ']' if config.label else ''}")
    if problems and config.fits:  # a kernels-only part needs no warm-up fit (time_call warms each kernel)
        _warm_up(config, plans, X, y, Xd, client, out, progress)
    if problems and config.kernels:
        _kernels(config, plans, X, y, Xd, client, out, progress)
    X_anchors = _int32_indices(X)
    with anchor_mod.isolated.Workspace(X_anchors) as workspace:  # X for the anchors run in a child process
        for problem in problems if config.fits else ():
            out["problems"].append(_run_problem(config, problem, plans[problem["loss"]][0], X, y, Xd, progress,
                                                X_anchors, workspace))
    progress.finish()
    return out


def _int32_indices(X):
    """The anchors' copy of a CSR ``X`` with int32 indices (scikit-learn's sag, saga and
    liblinear solvers and skglm refuse int64 ones): made once per data set, untimed; ``X``
    itself when it has them already or is dense."""
    import scipy.sparse as sp

    if not sp.issparse(X) or X.indices.dtype == np.int32 or X.nnz >= 2**31:
        return X
    return sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)), shape=X.shape)


def _run_problem(config, problem, cells, X, y, Xd, progress, X_anchors=None, workspace=None):
    loss = problem["loss"]
    y_signed, y_index = _targets(problem, y)
    if y_index is not None:
        evaluate = MultinomialEvaluator(X, y_index, problem["lam"], config.fit_intercept)
    else:
        evaluate = Evaluator(X, y_signed, loss, problem["lam"], config.fit_intercept)
    tag = _tag(problem)
    records = []
    for cell in cells:
        progress.step(f"{tag}  {cell[0]}/{cell[3]}")
        data = Xd if cell[2].name == "dask" else X
        records.append(_run_cell(config, problem, cell, data, y if loss == "logistic" else y_signed, evaluate))
    reference = _reference_fit(problem, X, y, config.fit_intercept, evaluate) if config.defaults else None
    done = [r["final_objective"] for r in records if r["error"] is None]
    hint = reference["final_objective"] if reference else (min(done) if done else None)
    anchors, skipped = _anchor_records(config, problem, X if X_anchors is None else X_anchors, y_signed, y,
                                       evaluate, hint, progress, tag, workspace)
    problem = dict(problem, records=records + anchors, skipped_anchors=skipped)
    if reference is not None:
        problem["reference"] = reference
    _score(problem, config.levels, loss)
    add_verdicts(problem, config.levels, config.verdict_level, by_seconds=config.defaults)
    return problem


def _score(problem, levels, loss):
    """Reference optimum, suboptimality, times to each level and speedups against NumPy."""
    from tikhon import solvers as registry

    ok = [r for r in problem["records"] if r["error"] is None]
    pool = ok + ([problem["reference"]] if problem.get("reference") else [])
    if not pool:
        problem["reference_objective"] = None
        return
    best = min(pool, key=lambda r: r["final_objective"])
    reference = best["final_objective"]
    problem["reference_objective"] = reference
    problem["reference_from"] = best["label"]
    for r in ok:
        r["relative_suboptimality"] = suboptimality(r["final_objective"], reference)
        r["time_to"] = time_to_levels(r["trace"], reference, levels)
        if r["kind"] == "tikhon" and r.get("traces"):
            per_run = [time_to_levels(t, reference, levels) for t in r["traces"]]
            r["time_to"] = {k: min((p[k] for p in per_run if p[k] is not None), default=None)
                            for k in r["time_to"]}
        r["not_reached"] = {k: not_reached(r) for k, v in r["time_to"].items() if v is None}
    baselines = {r["solver"]: r for r in ok if r["kind"] == "tikhon" and r["backend"] == "numpy"
                 and r["requested_backend"] == "numpy"}
    default = baselines.get(registry.choose_solver("auto", loss))
    for r in ok:
        if r["kind"] == "tikhon" and r["requested_backend"] == "numpy":
            r["baseline"] = None
            r["speedup_vs_numpy"] = {}
            continue
        base = baselines.get(r["solver"]) if r["kind"] == "tikhon" else None
        base = base or default
        if base is None:
            r["baseline"], r["speedup_vs_numpy"] = None, {}
            continue
        r["baseline"] = base["label"]
        r["speedup_vs_numpy"] = {
            level_key(lv): (base["time_to"][level_key(lv)] / r["time_to"][level_key(lv)]
                            if base["time_to"][level_key(lv)] and r["time_to"][level_key(lv)] else None)
            for lv in levels}


def _settings(config):
    """The part's settings (JSON-ready): what a reader needs to tell parts apart."""
    keys = ("task", "fit_intercept", "levels", "verdict_level", "anchor_budget", "defaults", "load", "repeat",
            "backends", "solvers", "tol", "max_iter")
    out = {k: getattr(config, k) for k in keys}
    out["levels"] = [level_key(v) for v in config.levels]
    out["anchors"] = {k: v for k, v in config.anchors.items()}
    return out


# ---------------------------------------------------------------- everything
def _environment():
    import os

    import scipy
    import sklearn

    import tikhon

    env = {"tikhon": tikhon.__version__, "python": platform.python_version(), "numpy": np.__version__,
           "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "backends_registered": list(tikhon.backend_names()),
           "backends_available": list(tikhon.available_backends())}
    from importlib.metadata import PackageNotFoundError, version

    for dist in ("liblinear-official", "scikit-learn-intelex", "glum", "snapml", "skglm", "dask", "distributed"):
        try:
            env[dist] = version(dist)
        except PackageNotFoundError:
            env[dist] = None
    if "numba" in env["backends_available"]:
        import numba

        env["numba"] = numba.__version__
        env["numba_threads"] = numba.get_num_threads()
    env["load_average_start"] = _load_average()
    return env


def _load_average():
    """1-minute load average (other processes share the cores: context for the timings)."""
    import os

    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _spec_key(spec):
    return json.dumps(spec, sort_keys=True, default=str)


class _DataCache:
    """Data sets shared by several parts are loaded once; each is dropped after its last use."""

    def __init__(self, parts):
        self.uses = {}
        for part in parts:
            for spec in part.data:
                self.uses[_spec_key(spec)] = self.uses.get(_spec_key(spec), 0) + 1
        self.loaded = {}

    def get(self, spec, progress):
        key = _spec_key(spec)
        if key not in self.loaded:
            progress.note(f"loading {spec['name']} ...")
            self.loaded[key] = load_dataset(spec)
            progress.note(f"loaded {spec['name']} in {self.loaded[key].load_seconds:.2f} s")
        dataset = self.loaded[key]
        self.uses[key] -= 1
        if self.uses[key] <= 0:
            del self.loaded[key]
        return dataset


def _run_part(config, dataset, progress, client):
    if config.kind == "path":
        from .paths import run_path

        return "paths", run_path(config, dataset, progress)
    if config.kind == "gridsearch":
        from .gridsearch import run_gridsearch

        return "gridsearch", run_gridsearch(config, dataset, progress)
    return "datasets", run_dataset(config, dataset, progress, client)


def run(parts, progress, suite=None) -> dict:
    """Run one part or a suite's parts (each already validated); returns the JSON-ready figures."""
    from .cluster import dask_client, describe_client

    parts = [parts] if isinstance(parts, BenchConfig) else list(parts)
    started = time.time()
    t0 = clock()
    families = list(dict.fromkeys(a for p in parts for a in p.anchors))
    anchors = {a: anchor_mod.anchor_status(a) for a in families}
    for name, why in anchors.items():
        if why is not None:
            progress.note(f"anchor {name} skipped: {why}")
    result = {
        "format": "tikhon-bench",
        "format_version": 2,
        "suite": suite,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "environment": _environment(),
        "config": {k: v for k, v in asdict(parts[0]).items() if k != "data"},
        "parts": [{"label": p.label, "kind": p.kind, "data": [d["name"] for d in p.data], **_settings(p),
                   "notes": p.notes} for p in parts],
        "levels": [level_key(v) for v in parts[0].levels],
        "verdict_level": level_key(parts[0].verdict_level),
        "memory_method": {"name": parts[0].memory, "what": MEMORY_METHODS[parts[0].memory]},
        "anchors": {"run": [a for a, why in anchors.items() if why is None],
                    "skipped": {a: why for a, why in anchors.items() if why is not None}},
        "datasets": [], "paths": [], "gridsearch": [], "skipped_data": {}, "loads": [], "dask": None,
    }
    for note in dict.fromkeys(n for p in parts for n in p.notes):
        progress.note(f"note: {note}")
    workers = next((p.dask_workers for p in parts if p.dask_workers), None)
    scheduler = next((p.dask_scheduler for p in parts if p.dask_scheduler), None)
    cache = _DataCache(parts)
    with dask_client(workers, scheduler) as client:
        if client is not None:
            result["dask"] = {"started_by_bench": scheduler is None, **describe_client(client)}
        for config in parts:
            with busy_load(config.load, config.load_seconds) as load:
                if config.load:
                    progress.note(f"load: {config.load} busy processes started (pids {load.alive()})")
                for spec in config.data:
                    try:
                        dataset = cache.get(spec, progress)
                    except BenchArgumentError as exc:
                        if not config.optional_data:  # the user's own --data: an error
                            raise
                        result["skipped_data"][f"{spec['name']} [{config.label}]"] = str(exc)
                        progress.note(f"skipped {spec['name']}: {exc}")
                        continue
                    key, entry = _run_part(config, dataset, progress, client if config.dask_workers
                                           or config.dask_scheduler else None)
                    entry["load"] = {"processes": config.load}
                    result[key].append(entry)
                    del dataset
            if config.load:
                result["loads"].append({"part": config.label, **load.describe()})
    result["total_seconds"] = clock() - t0
    result["environment"]["load_average_end"] = _load_average()
    return result
