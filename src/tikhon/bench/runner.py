"""The benchmark runner: per (data, C or alpha, backend, solver) fits, anchors, kernels.

Plan for one data set: the requested backends (discovered through the registry, NumPy
always first as the baseline) times the requested solvers (discovered through
``tikhon.solvers.SOLVERS``; a solver that is a whole backend loop runs only on
backends that declare it), then the anchors, then kernel timings. Non-NumPy backends
are warmed up (JIT compilation, caches) on a small slice of the data before any timed
run; the warm-up seconds are reported apart.

Times are wall-clock seconds of the whole ``fit`` call. A tikhon fit's history
(seconds since the solver started, objective) is shifted by the fit's overhead
(validation, backend set-up, final certificate) so that its last point is the whole
fit's time: times to a level are never flattered. The reference optimum ``P*`` of a
problem is the lowest objective any run reached, every solution scored by the same
evaluator (NumPy kernels, the data's dtype).
"""
from __future__ import annotations

import platform
import time
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from . import anchors as anchor_mod
from .kernels import floor_figures, kernel_figures
from .measure import MEMORY_METHODS, Evaluator, PeakMemory, clock, level_key, suboptimality, time_to_levels
from .problems import BenchArgumentError, describe, load_dataset, parse_data_spec, parse_dtype

__all__ = ["BenchConfig", "DEFAULT_C", "run", "validate"]

DEFAULT_C = (0.1, 1.0, 10.0)
DEFAULT_LEVELS = (1e-3, 1e-6, 1e-8)
# Iteration caps per solver when --max-iter is not given (keeps the default run short;
# a cell that stops early shows "-" for the levels it did not reach).
DEFAULT_MAX_ITER = {"newton": 100, "lbfgs": 200, "gd": 300, "sgd": 20}
DEFAULT_MAX_ITER_OTHER = 300
# Solvers run when --solver is not given: all registered except the first-order ones
# (the seeds' GD and SGD do not reach 1e-6 in a short run, L-BFGS needs hundreds of
# passes on a9a): the default run must stay under 2 minutes. Ask for them by name.
NOT_BY_DEFAULT = ("gd", "sgd", "lbfgs")
# Default solver tolerance: every solver stops on the relative duality gap, an upper
# bound on the relative suboptimality, so a tenth of the tightest level is enough.
TOL_PER_LEVEL = 0.1


@dataclass
class BenchConfig:
    data: list = field(default_factory=lambda: ["a9a"])
    dtype: str = "float64"
    backends: list | None = None  # None: every available backend
    solvers: list | None = None  # None: every registered solver but NOT_BY_DEFAULT
    C: list | None = None
    alpha: list | None = None
    levels: tuple = DEFAULT_LEVELS
    tol: float | None = None  # None: TOL_PER_LEVEL times the tightest level
    max_iter: int | None = None
    repeat: int = 1
    anchors: list = field(default_factory=lambda: list(anchor_mod.ANCHORS))
    anchor_budget: float = 3.0
    memory: str = "tracemalloc"
    fit_intercept: bool = True
    kernel_seconds: float = 0.2
    warmup: bool = True


def _split(values):
    if isinstance(values, str):
        values = [values]
    out = []
    for value in values or ():
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


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
    config.anchors = _split(config.anchors)
    if config.anchors in (["none"], ["off"]):
        config.anchors = []
    unknown = [a for a in config.anchors if a not in anchor_mod.ANCHORS]
    if unknown:
        raise BenchArgumentError(f"unknown anchor {', '.join(map(repr, unknown))}; "
                                 f"valid anchors are {', '.join(anchor_mod.ANCHORS)} (or none)")
    for name in ("C", "alpha"):
        values = getattr(config, name)
        if values is not None:
            try:
                values = [float(v) for v in _split(values)]
            except ValueError:
                raise BenchArgumentError(f"--{name} takes numbers, got {getattr(config, name)!r}") from None
            if not values or not all(np.isfinite(v) and v > 0 for v in values):
                raise BenchArgumentError(f"--{name} values must be finite positive numbers, got {values}")
            setattr(config, name, values)
    if config.C is None and config.alpha is None:
        config.C = list(DEFAULT_C)
    try:
        levels = sorted({float(v) for v in _split(config.levels)}, reverse=True)
    except ValueError:
        raise BenchArgumentError(f"--levels takes numbers, got {config.levels!r}") from None
    if not levels or not all(0 < v < 1 for v in levels):
        raise BenchArgumentError(f"--levels must be relative suboptimalities in (0, 1), got {config.levels!r}")
    config.levels = tuple(levels)
    for name, value in (("tol", config.tol or 1.0), ("anchor-budget", config.anchor_budget),
                        ("kernel-seconds", config.kernel_seconds)):
        if not (np.isfinite(value) and value > 0):
            raise BenchArgumentError(f"--{name} must be a positive number, got {value!r}")
    if int(config.repeat) != config.repeat or config.repeat < 1:
        raise BenchArgumentError(f"--repeat must be a positive integer, got {config.repeat!r}")
    if config.max_iter is not None and config.max_iter < 1:
        raise BenchArgumentError(f"--max-iter must be a positive integer, got {config.max_iter!r}")
    if config.memory not in MEMORY_METHODS:
        raise BenchArgumentError(f"unknown --memory {config.memory!r}; valid: {', '.join(MEMORY_METHODS)}")
    parse_dtype(config.dtype)
    config.data = [parse_data_spec(d, parse_dtype(config.dtype)) for d in (config.data or ["a9a"])]
    return config


# ---------------------------------------------------------------- planning
def _generic(cls):
    """Whether a backend offers the generic kernels (the primal solvers need them)."""
    from tikhon.backends import Backend

    return any(getattr(cls, m) is not getattr(Backend, m) for m in ("matvec", "loss_grad"))


def _plan_cells(config, X, loss):
    """``[(label, requested_name, backend_cls, solver)]`` and ``{what: why skipped}``."""
    import tikhon
    from tikhon import BackendUnavailableError
    from tikhon import solvers as registry
    from tikhon.backends import get_backend

    requested = config.backends if config.backends is not None else list(tikhon.available_backends())
    names = ["numpy"] + [b for b in requested if b != "numpy"]  # the baseline is always there, first
    default_solver = registry.choose_solver("auto", loss)
    if config.solvers is None:
        solver_list = [s for s in registry.SOLVERS if s not in NOT_BY_DEFAULT]
    else:
        solver_list = [registry.choose_solver(s, loss) for s in config.solvers]
    asked_default = default_solver in solver_list
    solver_list = [default_solver] + [s for s in dict.fromkeys(solver_list) if s != default_solver]
    cells, skipped, seen = [], {}, set()
    for name in names:
        for solver in solver_list:
            if solver == default_solver and name != "numpy" and not asked_default:
                continue  # run on NumPy only, as the baseline the requested solvers are compared with
            loop = solver if solver in registry.BACKEND_LOOPS else None
            try:
                cls = get_backend(name, X, loop=loop)
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
            label = cls.name if name != "auto" else f"auto:{cls.name}"
            if (cls.name, solver) in seen:
                if name == "auto":
                    skipped[f"auto/{solver}"] = f"auto chose {cls.name!r}, already in the table"
                continue
            seen.add((cls.name, solver))
            cells.append((label, name, cls, solver))
    return cells, skipped


# ---------------------------------------------------------------- fits
def _estimator(loss, value, **kwargs):
    import tikhon

    if loss == "logistic":
        return tikhon.LogisticRegression(C=value, **kwargs)
    return tikhon.Ridge(alpha=value, **kwargs)


def _max_iter(config, solver):
    if config.max_iter is not None:
        return int(config.max_iter)
    return DEFAULT_MAX_ITER.get(solver, DEFAULT_MAX_ITER_OTHER)


def _tol(config):
    if config.tol is not None:
        return float(config.tol)
    return TOL_PER_LEVEL * min(config.levels)


def _fit_once(config, loss, value, backend, solver, X, y, memory, tol):
    model = _estimator(loss, value, solver=solver, backend=backend, tol=tol,
                       max_iter=_max_iter(config, solver), fit_intercept=config.fit_intercept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with PeakMemory(memory) as mem:
            t0 = clock()
            model.fit(X, y)
            seconds = clock() - t0
    history = [(float(t), float(v)) for t, v in model.history_]
    offset = seconds - history[-1][0] if history else 0.0
    trace = [(t + offset, v) for t, v in history]
    return model, seconds, trace, mem.peak


def _warm_small(X, y, loss, n=256):
    """A small slice of the data with both classes (for warm-up fits)."""
    if loss == "logistic":
        classes = np.unique(y)
        rows = np.concatenate([np.flatnonzero(y == c)[: n // 2] for c in classes[:2]])
    else:
        rows = np.arange(min(n, X.shape[0]))
    rows.sort()
    return X[rows], y[rows]


def _run_cell(config, loss, value, cell, X, y, evaluate):
    label, name, cls, solver = cell
    tol = _tol(config)
    record = {"kind": "tikhon", "label": f"{label}/{solver}", "backend": cls.name, "requested_backend": name,
              "solver": solver, "max_iter": _max_iter(config, solver), "tol": tol,
              "error": None}
    try:
        runs = []
        for r in range(config.repeat):
            model, seconds, trace, peak = _fit_once(config, loss, value, name, solver, X, y,
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
            iterations=int(model.n_iter_),
            converged=bool(model.converged_),
            duality_gap=float(model.duality_gap_),
            backend=str(model.backend_),
        )
    except Exception as exc:  # a failing cell is reported, the run goes on
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


def _run_anchor(config, variant, evaluate, reference_hint):
    record = {"kind": "anchor", "label": variant.label, "anchor": variant.anchor, "backend": None,
              "solver": variant.label.split("/", 1)[1], "notes": variant.notes,
              "setup_seconds": variant.setup_seconds, "error": None}
    try:
        runs = anchor_mod.run_variant(variant, evaluate, reference_hint, min(config.levels), config.anchor_budget)
        best = min(runs, key=lambda r: r["objective"])
        trace = sorted((r["seconds"], r["objective"]) for r in runs)
        record.update(runs=runs, trace=trace, seconds=best["seconds"], final_objective=best["objective"],
                      iterations=best["iterations"], tol=best["tol"], peak_memory_bytes=None)
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
    return record


# ---------------------------------------------------------------- one data set
def _problems(config, y):
    out = []
    for C in config.C or ():
        out.append({"loss": "logistic", "param": "C", "value": C, "lam": 1.0 / C})
    for alpha in config.alpha or ():
        out.append({"loss": "squared", "param": "alpha", "value": alpha, "lam": alpha})
    return out


def _signed(loss, y):
    if loss == "logistic":
        classes = np.unique(y)
        if classes.size != 2:
            raise BenchArgumentError(f"logistic regression needs two classes, the data has {classes.size}")
        return np.where(y == classes[1], 1.0, -1.0)
    return np.asarray(y, dtype=np.float64)


def run_dataset(config, dataset, progress):
    X, y = dataset.X, dataset.y
    out = {"name": dataset.name, "spec": dataset.spec, **describe(X), "load_seconds": dataset.load_seconds,
           "skipped": {}, "warmup_seconds": {}, "kernels": {}, "problems": []}
    problems = _problems(config, y)
    plans = {}
    for loss in dict.fromkeys(p["loss"] for p in problems):
        plans[loss] = _plan_cells(config, X, loss)
        out["skipped"].update(plans[loss][1])
    anchor_names = [a for a in config.anchors if anchor_mod.anchor_status(a) is None]

    n_steps = sum(len(plans[p["loss"]][0]) + len(anchor_names) for p in problems) + len(plans) + 1
    progress.start(n_steps, dataset.name)

    # warm-up (JIT compilation, caches) outside every timed run
    for loss, (cells, _) in plans.items():
        Xs, ys = _warm_small(X, y, loss)
        for label, name, cls, solver in cells:
            key = f"{label}/{solver}"
            t0 = clock()
            try:
                if config.warmup and cls.name != "numpy":
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        _estimator(loss, 1.0, solver=solver, backend=name, max_iter=3).fit(Xs, ys)
                        if _generic(cls):
                            kernel_figures(cls, Xs, _signed(loss, ys), loss, min_seconds=0.0)
            except Exception as exc:
                out["skipped"][f"warm-up {key}"] = f"{type(exc).__name__}: {exc}"
            if cls.name != "numpy":
                out["warmup_seconds"][key] = clock() - t0
                progress.note(f"warm-up {key} ({loss}): {out['warmup_seconds'][key]:.2f} s")

    # kernels: one loss+grad pass per backend, against the floor
    progress.step("kernel floor (X @ w)")
    out["kernels"]["floor"] = floor_figures(X, config.kernel_seconds)
    for loss, (cells, _) in plans.items():
        progress.step(f"kernels loss+grad ({loss})")
        figures = {}
        for label, name, cls, solver in cells:
            if cls.name in figures or not _generic(cls):
                continue
            try:
                figures[cls.name] = kernel_figures(cls, X, _signed(loss, y), loss, config.kernel_seconds)
            except Exception as exc:
                figures[cls.name] = {"error": f"{type(exc).__name__}: {exc}"}
        floor, base = out["kernels"]["floor"], figures.get("numpy", {}).get("seconds_per_pass")
        for fig in figures.values():
            if "seconds_per_pass" in fig:
                fig["of_floor"] = floor["seconds"] / fig["seconds_per_pass"]
                fig["speedup_vs_numpy"] = base / fig["seconds_per_pass"] if base else None
        out["kernels"][loss] = figures

    for problem in problems:
        loss = problem["loss"]
        cells, _ = plans[loss]
        y_signed = _signed(loss, y)
        evaluate = Evaluator(X, y_signed, loss, problem["lam"], config.fit_intercept)
        tag = f"{loss} {problem['param']}={problem['value']:g}"
        records = []
        for cell in cells:
            progress.step(f"{tag}  {cell[0]}/{cell[3]}")
            records.append(_run_cell(config, loss, problem["value"], cell, X, y, evaluate))
        done = [r["final_objective"] for r in records if r["error"] is None]
        hint = min(done) if done else None
        for name in anchor_names:
            progress.step(f"{tag}  anchor {name}")
            try:
                found = anchor_mod.variants(name, loss, problem["lam"], config.fit_intercept, X, y_signed)
            except Exception as exc:
                records.append({"kind": "anchor", "label": name, "anchor": name, "backend": None, "solver": None,
                                "error": f"{type(exc).__name__}: {exc}"})
                continue
            for variant in found:
                records.append(_run_anchor(config, variant, evaluate, hint))
        problem = dict(problem, records=records)
        _score(problem, config.levels, loss)
        out["problems"].append(problem)
    progress.finish()
    return out


def _score(problem, levels, loss):
    """Reference optimum, suboptimality, times to each level and speedups against NumPy."""
    from tikhon import solvers as registry

    ok = [r for r in problem["records"] if r["error"] is None]
    if not ok:
        problem["reference_objective"] = None
        return
    best = min(ok, key=lambda r: r["final_objective"])
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
    try:
        env["liblinear"] = __import__("importlib.metadata").metadata.version("liblinear-official")
    except Exception:
        env["liblinear"] = None
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


def run(config: BenchConfig, progress) -> dict:
    """Run the whole benchmark (``config`` already validated); returns the JSON-ready figures."""
    started = time.time()
    t0 = clock()
    anchors = {a: anchor_mod.anchor_status(a) for a in config.anchors}
    for name, why in anchors.items():
        if why is not None:
            progress.note(f"anchor {name} skipped: {why}")
    result = {
        "format": "tikhon-bench",
        "format_version": 1,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "environment": _environment(),
        "config": {k: v for k, v in asdict(config).items() if k != "data"},
        "levels": [level_key(v) for v in config.levels],
        "memory_method": {"name": config.memory, "what": MEMORY_METHODS[config.memory]},
        "anchors": {"run": [a for a, why in anchors.items() if why is None],
                    "skipped": {a: why for a, why in anchors.items() if why is not None}},
        "datasets": [],
    }
    for spec in config.data:
        progress.note(f"loading {spec['name']} ...")
        dataset = load_dataset(spec)
        progress.note(f"loaded {dataset.name} in {dataset.load_seconds:.2f} s")
        result["datasets"].append(run_dataset(config, dataset, progress))
        del dataset
    result["total_seconds"] = clock() - t0
    result["environment"]["load_average_end"] = _load_average()
    return result
