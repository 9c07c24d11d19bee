"""tikhon's command line: ``tikhon bench`` (the main job), ``tikhon fit``, ``tikhon predict``.

    tikhon bench                                   # a9a, C in {0.1, 1, 10}, every available backend
    tikhon bench --backend numpy,numba --data synthetic:n=1e6,d=100 --anchors none
    tikhon fit train.svm --C 1 --backend auto --model model.npz
    tikhon predict model.npz test.svm --out predictions.txt
    tikhon plot path a9a --out path.png            # also: plot cv, plot history (PNG; needs matplotlib)

Exit codes: 0 success; 1 a run failed (a benchmark cell raised, a model file is
unreadable); 2 bad arguments (the message says which and lists the valid choices).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

import numpy as np

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse, but ``error`` raises instead of exiting (``main`` returns the code)."""

    def error(self, message):
        self.print_usage(sys.stderr)
        raise _UsageError(f"{self.prog}: error: {message}")


class _UsageError(Exception):
    pass


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite positive number")
    return value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def _build_parser():
    import tikhon

    backends = ", ".join(tikhon.backend_names())
    parser = _Parser(prog="tikhon", description="Fast solvers for L2-regularized logistic and ridge regression.",
                     epilog="Exit codes: 0 success, 1 a run failed, 2 bad arguments.")
    parser.add_argument("--version", action="version", version=f"tikhon {tikhon.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{bench,fit,predict,plot}",
                                parser_class=_Parser)

    bench = sub.add_parser(
        "bench", help="benchmark backends against NumPy and scikit-learn/LIBLINEAR (the main job)",
        description="Time to relative suboptimality 1e-3/1e-6/1e-8 per (data, C, backend, solver), kernel "
                    "throughput against the one-read floor, anchors; writes a table, results.json and PNG plots. "
                    "With no arguments: a9a, C in {0.1, 1, 10}, every available backend, under 2 minutes.")
    bench.add_argument("--backend", help=f"comma-separated backends (default: every available one); "
                                         f"registered: {backends}. NumPy, the baseline, is always run.")
    bench.add_argument("--solver", help="comma-separated solvers (default: every registered solver except the "
                                        "first-order lbfgs, gd and sgd, to stay under 2 minutes)")
    bench.add_argument("--data", action="append",
                       help="a9a (default) | PATH (svmlight, .npz, .npy) | synthetic:n=...,d=...,density=...,"
                            "dtype=...,seed=... ; repeat the option for several data sets")
    bench.add_argument("--dtype", default="float64", help="dtype of a9a and file data: float64 (default) or float32")
    bench.add_argument("--C", nargs="+", help="logistic regression C grid (default 0.1 1 10); commas or spaces")
    bench.add_argument("--alpha", nargs="+", help="ridge regression alpha grid (default: no ridge run)")
    bench.add_argument("--levels", default="1e-3,1e-6,1e-8", help="relative suboptimality levels to time "
                                                                   "(default 1e-3,1e-6,1e-8)")
    bench.add_argument("--tol", type=_positive_float, default=None,
                       help="solver tolerance of every tikhon fit (default: 1e-10 for the gradient test, so the "
                            "tightest solve gives P*; a tenth of the tightest level for duality-gap solvers)")
    bench.add_argument("--max-iter", type=_positive_int, help="iteration cap of every fit (default per solver: "
                                                              "newton 100, lbfgs 200, gd 300, sgd 20, others 300)")
    bench.add_argument("--repeat", type=_positive_int, default=1, help="timed runs per cell; the best is kept")
    bench.add_argument("--anchors", default="sklearn,liblinear",
                       help="external solvers: sklearn,liblinear (default; each used only if installed) or none")
    bench.add_argument("--anchor-budget", type=_positive_float, default=3.0,
                       help="seconds per anchor variant for its tolerance sweep (default 3)")
    bench.add_argument("--memory", default="tracemalloc", choices=["tracemalloc", "rss", "off"],
                       help="how peak extra memory is measured (default tracemalloc)")
    bench.add_argument("--no-intercept", action="store_true", help="fit without the intercept")
    bench.add_argument("--kernel-seconds", type=_positive_float, default=0.2,
                       help="minimum seconds per kernel timing round (default 0.2)")
    bench.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up (JIT) fits")
    bench.add_argument("--no-plots", action="store_true", help="write no PNG")
    bench.add_argument("--out", default="bench-out", help="output folder (default ./bench-out)")
    bench.add_argument("--quiet", action="store_true", help="no progress display")

    fit = sub.add_parser("fit", help="fit a model on a data file and write it (JSON + npz, no pickle)")
    fit.add_argument("data", help="svmlight/LIBSVM file (.bz2/.gz/.xz too), .npz (X, y or CSR + y) or .npy (X)")
    fit.add_argument("--labels", help="labels as .npy (for .npy data, or to override the file's)")
    fit.add_argument("--model", "-o", default="model.npz", help="model file to write (default model.npz)")
    fit.add_argument("--task", choices=["logistic", "ridge"], default="logistic")
    fit.add_argument("--C", type=_positive_float, default=1.0, help="logistic: inverse penalty (default 1)")
    fit.add_argument("--alpha", type=_positive_float, default=1.0, help="ridge: penalty (default 1)")
    fit.add_argument("--solver", default="auto")
    fit.add_argument("--backend", default=None, help=f"backend name ({backends}); default: tikhon's configuration")
    fit.add_argument("--tol", type=_positive_float, default=1e-6)
    fit.add_argument("--max-iter", type=_positive_int, default=1000)
    fit.add_argument("--dtype", default="float64", help="float64 (default) or float32")
    fit.add_argument("--no-intercept", action="store_true")

    predict = sub.add_parser("predict", help="predict with a model file")
    predict.add_argument("model", help="model file written by tikhon fit")
    predict.add_argument("data", help="data file, as for tikhon fit (labels, if present, are used for a score)")
    predict.add_argument("--out", "-o", default="-", help="predictions: .npy, or text one per line "
                                                         "(default '-': standard output)")
    predict.add_argument("--proba", action="store_true", help="logistic: write the probability of classes_[1]")
    predict.add_argument("--backend", default=None, help=f"backend name ({backends}); checked and recorded on "
                                                         "the model (prediction itself is one X @ w product)")
    predict.add_argument("--dtype", default="float64")

    _add_plot_parser(sub, backends)
    return parser


def _add_plot_parser(sub, backends):
    """``tikhon plot path|cv|history DATA``: the pictures of :mod:`tikhon.plot` as PNG files."""
    plot = sub.add_parser("plot", help="draw a regularization path, a CV curve or a convergence plot (PNG)",
                          description="Pictures of L2 regularization (needs matplotlib: pip install "
                                      "\"tikhon[plot]\"). DATA is a data file as for tikhon fit, or a9a.")
    kinds = plot.add_subparsers(dest="kind", required=True, metavar="{path,cv,history}", parser_class=_Parser)
    helps = {"path": "coefficients against lambda over a grid (warm-started path)",
             "cv": "training and validation score against lambda, chosen lambda marked (k-fold CV)",
             "history": "convergence of one fit per solver: relative suboptimality against time"}
    for kind, text in helps.items():
        p = kinds.add_parser(kind, help=text, description=text)
        p.add_argument("data", help="a9a (embedded) | svmlight/LIBSVM file | .npz | .npy (with --labels)")
        p.add_argument("--labels", help="labels as .npy (for .npy data)")
        p.add_argument("--task", choices=["logistic", "ridge"], default="logistic")
        if kind == "history":
            p.add_argument("--C", type=_positive_float, default=1.0, help="logistic: inverse penalty (default 1)")
            p.add_argument("--alpha", type=_positive_float, default=1.0, help="ridge: penalty (default 1)")
            p.add_argument("--solvers", default="newton,lbfgs,gd",
                           help="comma-separated solvers, one line each (default newton,lbfgs,gd)")
            p.add_argument("--x", choices=["time", "iteration"], default="time", help="x axis (default time)")
        else:
            p.add_argument("--C", nargs="+", help="logistic C grid, commas or spaces (default: 20 values "
                                                   "log-spaced in [1e-4, 1e4])")
            p.add_argument("--alpha", nargs="+", help="ridge alpha grid (default as --C)")
            p.add_argument("--solver", default="auto")
        if kind == "path":
            p.add_argument("--top", type=_positive_int, help="draw only the TOP largest coefficients")
        if kind == "cv":
            p.add_argument("--cv", type=_positive_int, default=5, help="number of folds (default 5)")
            p.add_argument("--scoring", help="a scikit-learn scorer name (default accuracy / R^2)")
            p.add_argument("--n-jobs", type=int, default=None, help="threads over folds")
        p.add_argument("--backend", default=None, help=f"backend name ({backends}); default: tikhon's configuration")
        p.add_argument("--tol", type=_positive_float, default=1e-6)
        p.add_argument("--max-iter", type=_positive_int, default=1000)
        p.add_argument("--dtype", default="float64", help="float64 (default) or float32")
        p.add_argument("--no-intercept", action="store_true")
        p.add_argument("--out", "-o", default=f"{kind}.png", help=f"PNG file to write (default {kind}.png)")


# ---------------------------------------------------------------- bench
def _bench(args):
    from .bench import BenchConfig, run, validate
    from .bench.plots import write_plots
    from .bench.report import Progress, format_tables, write_json

    config = validate(BenchConfig(
        data=args.data or ["a9a"], dtype=args.dtype, backends=args.backend, solvers=args.solver,
        C=args.C, alpha=args.alpha, levels=args.levels, tol=args.tol, max_iter=args.max_iter,
        repeat=args.repeat, anchors=args.anchors, anchor_budget=args.anchor_budget, memory=args.memory,
        fit_intercept=not args.no_intercept, kernel_seconds=args.kernel_seconds, warmup=not args.no_warmup))
    progress = Progress(enabled=not args.quiet)
    result = run(config, progress)
    os.makedirs(args.out, exist_ok=True)
    json_path = write_json(result, os.path.join(args.out, "results.json"))
    print(format_tables(result))
    written = [json_path]
    if not args.no_plots:
        try:
            written += write_plots(result, args.out)
        except ImportError as exc:
            print(f"plots skipped: matplotlib cannot be imported ({exc}); pip install matplotlib")
    print("wrote " + ", ".join(written))
    failed = [r["label"] for ds in result["datasets"] for p in ds["problems"] for r in p["records"]
              if r["error"] is not None]
    if failed:
        print(f"tikhon bench: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# ---------------------------------------------------------------- fit / predict
def _check_backend(name):
    import tikhon
    from .bench import BenchArgumentError

    if name is not None and name not in tikhon.backend_names():
        raise BenchArgumentError(f"unknown backend {name!r}; valid backends are {', '.join(tikhon.backend_names())}")


def _fit(args):
    import tikhon
    from ._io import save_model
    from .bench import BenchArgumentError
    from .bench.problems import load_data_file, parse_dtype

    _check_backend(args.backend)
    from . import solvers as registry

    if args.solver not in ("auto", *registry.SOLVERS):
        raise BenchArgumentError(f"unknown solver {args.solver!r}; valid solvers are auto, "
                                 f"{', '.join(registry.SOLVERS)}")
    X, y = load_data_file(args.data, dtype=parse_dtype(args.dtype), labels=args.labels)
    common = dict(solver=args.solver, backend=args.backend, tol=args.tol, max_iter=args.max_iter,
                  fit_intercept=not args.no_intercept)
    if args.task == "logistic":
        model = tikhon.LogisticRegression(C=args.C, **common)
    else:
        model = tikhon.Ridge(alpha=args.alpha, **common)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            model.fit(X, y)
    except tikhon.BackendUnavailableError as exc:
        raise BenchArgumentError(str(exc)) from None
    seconds = time.perf_counter() - t0
    save_model(model, args.model)
    score = model.score(X, y)
    what = "train accuracy" if args.task == "logistic" else "train R^2"
    print(f"fit {type(model).__name__} on {args.data}: {X.shape[0]} x {X.shape[1]} in {seconds:.3f} s; "
          f"backend {model.backend_}, solver {model.solver_}, {model.n_iter_} iterations, "
          f"converged {model.converged_}, objective {model.objective_:.10g}, relative duality gap "
          f"{model.duality_gap_:.2e}, {what} {score:.4f}")
    print(f"wrote {args.model}")
    return EXIT_OK


def _predict(args):
    from ._io import ModelFileError, load_model
    from .bench.problems import load_data_file, parse_dtype

    _check_backend(args.backend)
    try:
        model = load_model(args.model)
    except (ModelFileError, FileNotFoundError) as exc:
        print(f"tikhon predict: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.backend is not None:
        model.set_params(backend=args.backend)
    X, y = load_data_file(args.data, dtype=parse_dtype(args.dtype), n_features=model.n_features_in_,
                          need_labels=False)
    if X.shape[1] != model.n_features_in_:
        from .bench import BenchArgumentError

        raise BenchArgumentError(f"{args.data} has {X.shape[1]} features, the model expects {model.n_features_in_}")
    if args.proba:
        if not hasattr(model, "predict_proba"):
            from .bench import BenchArgumentError

            raise BenchArgumentError("--proba needs a logistic regression model")
        values = model.predict_proba(X)[:, 1]
    else:
        values = model.predict(X)
    if args.out == "-":
        np.savetxt(sys.stdout, values, fmt="%s" if values.dtype.kind in "OUS" else "%.10g")
    elif args.out.endswith(".npy"):
        np.save(args.out, np.asarray(values), allow_pickle=False)
    else:
        np.savetxt(args.out, values, fmt="%s" if values.dtype.kind in "OUS" else "%.10g")
    if y is not None:
        what = "accuracy" if hasattr(model, "classes_") else "R^2"
        try:
            print(f"{what} on {args.data}: {model.score(X, y):.4f}", file=sys.stderr)
        except (ValueError, TypeError):
            pass
    if args.out != "-":
        print(f"wrote {len(values)} predictions to {args.out}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------- plot
def _grid_values(tokens, name):
    """``--C 0.1 1,10`` -> array; ``None`` -> 20 values log-spaced in [1e-4, 1e4]."""
    from .bench import BenchArgumentError

    if not tokens:
        return np.logspace(-4, 4, 20)
    values = []
    for token in " ".join(tokens).replace(",", " ").split():
        try:
            values.append(_positive_float(token))
        except argparse.ArgumentTypeError as exc:
            raise BenchArgumentError(f"--{name}: {exc}") from None
    return np.array(values)


def _plot(args):
    import tikhon
    from . import plot
    from . import solvers as registry
    from .bench import BenchArgumentError
    from .bench.problems import load_data_file, parse_dtype

    _check_backend(args.backend)
    dtype = parse_dtype(args.dtype)
    wanted = args.solvers.split(",") if args.kind == "history" else [args.solver]
    for solver in wanted:
        if solver not in ("auto", *registry.SOLVERS):
            raise BenchArgumentError(f"unknown solver {solver!r}; valid solvers are auto, "
                                     f"{', '.join(registry.SOLVERS)}")
    if args.data == "a9a" and not os.path.exists(args.data):
        X, y = tikhon.datasets.load_a9a()
        X = X.astype(dtype)
    else:
        X, y = load_data_file(args.data, dtype=dtype, labels=args.labels)
    logistic = args.task == "logistic"
    if os.path.dirname(args.out):
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
    common = dict(backend=args.backend, tol=args.tol, max_iter=args.max_iter, fit_intercept=not args.no_intercept)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            if args.kind == "path":
                grid = _grid_values(args.C if logistic else args.alpha, "C" if logistic else "alpha")
                result = tikhon.regularization_path(X, y, **({"Cs": grid} if logistic else {"alphas": grid}),
                                                    model=args.task, solver=args.solver, **common)
                plot.plot_path(result, top=args.top, out=args.out)
                note = f"{grid.size} grid values by {result.method} in {result.total_seconds:.2f} s"
            elif args.kind == "cv":
                grid = _grid_values(args.C if logistic else args.alpha, "C" if logistic else "alpha")
                if logistic:
                    model = tikhon.LogisticRegressionCV(Cs=grid, cv=args.cv, scoring=args.scoring,
                                                        n_jobs=args.n_jobs, solver=args.solver, **common)
                else:
                    model = tikhon.RidgeCV(alphas=grid, cv=args.cv, scoring=args.scoring, n_jobs=args.n_jobs,
                                           solver=args.solver, **common)
                model.fit(X, y)
                plot.plot_cv(model, out=args.out)
                chosen = f"C = {model.C_[0]:.4g}" if logistic else f"alpha = {model.alpha_:.4g}"
                note = f"{args.cv}-fold CV over {grid.size} values chosen {chosen}"
            else:
                fits = {}
                for solver in wanted:
                    est = (tikhon.LogisticRegression(C=args.C, solver=solver, **common) if logistic
                           else tikhon.Ridge(alpha=args.alpha, solver=solver, **common))
                    fits[solver] = est.fit(X, y)
                plot.plot_history(fits, x=args.x, out=args.out)
                note = ", ".join(f"{s}: {f.n_iter_} iterations" for s, f in fits.items())
    except ImportError as exc:  # matplotlib missing (the message names the extra), or a backend
        raise BenchArgumentError(str(exc)) from None
    except ValueError as exc:  # data or grid the models refuse, e.g. three classes
        raise BenchArgumentError(str(exc)) from None
    print(f"plot {args.kind} on {args.data} ({X.shape[0]} x {X.shape[1]}): {note}")
    print(f"wrote {args.out}")
    return EXIT_OK


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 failed run, 2 bad arguments)."""
    from .bench import BenchArgumentError

    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    command = {"bench": _bench, "fit": _fit, "predict": _predict, "plot": _plot}[args.command]
    try:
        return command(args)
    except BenchArgumentError as exc:
        print(f"tikhon {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("tikhon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
