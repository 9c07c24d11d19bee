"""tikhon's command line: ``tikhon bench`` (the main job), ``tikhon fit``, ``tikhon predict``.

    tikhon bench                                   # a9a, C in {0.1, 1, 10}, every available backend
    tikhon bench --backend numpy,numba --data synthetic:n=1e6,d=100 --anchors none
    tikhon fit train.svm --C 1 --backend auto --model model.npz
    tikhon predict model.npz test.svm --out predictions.txt
    tikhon plot path a9a --out path.png            # also: plot cv, plot history (PNG; needs matplotlib)

Exit codes: 0 success; 1 a run failed (a benchmark cell raised, out of memory, a bug:
then the traceback follows); 2 a user error: bad arguments, a data or model file that
cannot be read or that the estimators refuse, an output path that cannot be written.
A user error is one line on stderr, ``tikhon COMMAND: error: ...``, saying what is
wrong; :data:`USER_ERRORS` is the table of exception types that mean one.
"""
from __future__ import annotations

import argparse
import contextlib
import lzma
import os
import sys
import time
import warnings

import numpy as np

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Exception types that mean "the input is wrong", not "tikhon is": ValueError (tikhon's
# validation, ModelFileError, BenchArgumentError, scikit-learn's parameter checks),
# OSError (a file missing, a directory, not writable, a bad gzip/bz2 stream), EOFError
# (a truncated compressed file), LZMAError (not an xz file), OverflowError (the svmlight
# parser on a feature index >= 2**31), ImportError (a missing optional dependency or an
# unavailable backend: the message names what to install). Anything else is a bug: its
# traceback is shown.
USER_ERRORS = (ValueError, OSError, EOFError, lzma.LZMAError, OverflowError, ImportError)
_FAILURES = (MemoryError,)  # the run failed, not the input: one line, exit 1


class _Parser(argparse.ArgumentParser):
    """argparse, but ``error`` raises a one-line message instead of printing usage and exiting."""

    def error(self, message):
        raise _UsageError(f"{self.prog}: error: {message} (see {self.prog} --help)")


class _UsageError(Exception):
    pass


@contextlib.contextmanager
def _about(name, kinds=Exception):
    """Errors of type ``kinds`` raised inside are about ``name`` (a file, or an option and its file):
    their one-line message names it."""
    try:
        yield
    except kinds as exc:
        if not hasattr(exc, "_tikhon_about"):  # the innermost step names it
            exc._tikhon_about = os.fspath(name)
        raise


def _one_line(exc):
    """``exc`` as one line, prefixed by what it is about unless the message names that already."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    about = getattr(exc, "_tikhon_about", None)
    if about and isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror  # "[Errno 2] ...: 'model.npz.tmp'" names an internal file; `about` names the user's
    if about and about not in text:
        text = f"{about}: {text}"
    return text


def _check_output_file(path, option, make_folder=False):
    """Refuse, before any work, an output file that is a directory or whose folder does not
    exist (``make_folder``: create that folder instead)."""
    from .bench import BenchArgumentError

    if os.path.isdir(path):
        raise BenchArgumentError(f"{option} {path!r} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if make_folder:
        with _about(f"{option} {path!r}", OSError):
            os.makedirs(folder, exist_ok=True)
    if not os.path.isdir(folder):
        raise BenchArgumentError(f"{option} {path!r}: the folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK):
        raise BenchArgumentError(f"{option} {path!r}: the folder {folder!r} is not writable")


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
        "bench", help="benchmark backends against NumPy and the other libraries (the main job)",
        description="Time to relative suboptimality 1e-3/1e-6/1e-8 per (data, C, backend, solver), the anchors "
                    "(scikit-learn, LIBLINEAR, scikit-learn-intelex, glum, snapml, skglm where installed), kernel "
                    "throughput against one read of X, and a verdict line per problem; writes a table, "
                    "OUT/results.json and PNG plots. With no arguments: a9a, C in {0.1, 1, 10}, every available "
                    "backend, under 2 minutes. --suite runs a named suite (tikhon.bench.suites).")
    from .bench.cli import add_arguments

    add_arguments(bench, _positive_float, _positive_int, backends)

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
    """``tikhon bench``: see :mod:`tikhon.bench.cli`."""
    from .bench.cli import command

    return command(args, _about)


# ---------------------------------------------------------------- fit / predict
def _check_backend(name):
    """Refuse an unknown backend name, given by ``--backend`` or by ``TIKHON_BACKEND``."""
    import tikhon
    from ._config import resolve_backend
    from .bench import BenchArgumentError

    chosen = resolve_backend(name)
    if chosen not in tikhon.backend_names():
        source = "" if name is not None else " (from the TIKHON_BACKEND environment variable)"
        raise BenchArgumentError(f"unknown backend {chosen!r}{source}; valid backends are "
                                 f"{', '.join(tikhon.backend_names())}")


def _check_solver(name):
    """Refuse a solver name that is not registered, listing the valid ones."""
    from . import solvers as registry
    from .bench import BenchArgumentError

    if name not in ("auto", *registry.SOLVERS):
        raise BenchArgumentError(f"unknown solver {name!r}; valid solvers are auto, {', '.join(registry.SOLVERS)}")


def _read_data(path, dtype, **options):
    """``(X, y)`` of a data file (see :func:`tikhon.bench.problems.load_data_file`)."""
    from .bench.problems import load_data_file, parse_dtype

    dtype = parse_dtype(dtype)
    with _about(path):
        return load_data_file(path, dtype=dtype, **options)


def _fit(args):
    import tikhon
    from ._io import save_model

    _check_backend(args.backend)
    _check_solver(args.solver)
    _check_output_file(args.model, "--model")
    X, y = _read_data(args.data, args.dtype, labels=args.labels)
    common = dict(solver=args.solver, backend=args.backend, tol=args.tol, max_iter=args.max_iter,
                  fit_intercept=not args.no_intercept)
    if args.task == "logistic":
        model = tikhon.LogisticRegression(C=args.C, **common)
    else:
        model = tikhon.Ridge(alpha=args.alpha, **common)
    t0 = time.perf_counter()
    with _about(args.data), warnings.catch_warnings():
        warnings.simplefilter("default")
        model.fit(X, y)
    seconds = time.perf_counter() - t0
    with _about(f"--model {args.model!r}", OSError):
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
    from ._io import load_model
    from .bench import BenchArgumentError

    _check_backend(args.backend)
    if args.out != "-":
        _check_output_file(args.out, "--out")
    with _about(args.model):
        model = load_model(args.model)
    if args.backend is not None:
        model.set_params(backend=args.backend)
    if args.proba and not hasattr(model, "predict_proba"):
        raise BenchArgumentError("--proba needs a logistic regression model")
    X, y = _read_data(args.data, args.dtype, n_features=model.n_features_in_, need_labels=False)
    if X.shape[1] != model.n_features_in_:
        raise BenchArgumentError(f"{args.data} has {X.shape[1]} features, the model expects {model.n_features_in_}")
    with _about(args.data):
        values = model.predict_proba(X)[:, 1] if args.proba else model.predict(X)
    fmt = "%s" if values.dtype.kind in "OUS" else "%.10g"
    if args.out == "-":
        np.savetxt(sys.stdout, values, fmt=fmt)
    else:
        with _about(f"--out {args.out!r}", OSError):
            if args.out.endswith(".npy"):
                np.save(args.out, np.asarray(values), allow_pickle=False)
            else:
                np.savetxt(args.out, values, fmt=fmt)
    if y is not None:
        what = "accuracy" if hasattr(model, "classes_") else "R^2"
        try:
            print(f"{what} on {args.data}: {model.score(X, y):.4f}", file=sys.stderr)
        except (ValueError, TypeError):  # labels that do not fit the model: no score, predictions stand
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

    _check_backend(args.backend)
    wanted = [s.strip() for s in args.solvers.split(",")] if args.kind == "history" else [args.solver]
    for solver in wanted:
        _check_solver(solver)
    grid = _grid(args) if args.kind != "history" else None
    _check_output_file(args.out, "--out", make_folder=True)
    if args.data == "a9a" and not os.path.exists(args.data):
        from .bench.problems import parse_dtype

        X, y = tikhon.datasets.load_a9a(dtype=parse_dtype(args.dtype))
    else:
        X, y = _read_data(args.data, args.dtype, labels=args.labels)
    draw = {"path": _plot_path, "cv": _plot_cv, "history": _plot_history}[args.kind]
    common = dict(backend=args.backend, tol=args.tol, max_iter=args.max_iter, fit_intercept=not args.no_intercept)
    with _about(args.data), warnings.catch_warnings():
        warnings.simplefilter("default")
        note = draw(args, X, y, common, grid=grid, solvers=wanted)
    print(f"plot {args.kind} on {args.data} ({X.shape[0]} x {X.shape[1]}): {note}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _grid(args):
    """The C (logistic) or alpha (ridge) grid of ``plot path`` / ``plot cv``."""
    logistic = args.task == "logistic"
    return _grid_values(args.C if logistic else args.alpha, "C" if logistic else "alpha")


def _plot_path(args, X, y, common, grid, solvers):
    import tikhon
    from . import plot

    key = "Cs" if args.task == "logistic" else "alphas"
    result = tikhon.regularization_path(X, y, **{key: grid}, model=args.task, solver=args.solver, **common)
    with _about(f"--out {args.out!r}", OSError):
        plot.plot_path(result, top=args.top, out=args.out)
    return f"{grid.size} grid values by {result.method} in {result.total_seconds:.2f} s"


def _plot_cv(args, X, y, common, grid, solvers):
    import tikhon
    from . import plot

    options = dict(cv=args.cv, scoring=args.scoring, n_jobs=args.n_jobs, solver=args.solver, **common)
    if args.task == "logistic":
        model = tikhon.LogisticRegressionCV(Cs=grid, **options).fit(X, y)
        chosen = f"C = {model.C_[0]:.4g}"
    else:
        model = tikhon.RidgeCV(alphas=grid, **options).fit(X, y)
        chosen = f"alpha = {model.alpha_:.4g}"
    with _about(f"--out {args.out!r}", OSError):
        plot.plot_cv(model, out=args.out)
    return f"{args.cv}-fold CV over {grid.size} values chosen {chosen}"


def _plot_history(args, X, y, common, grid, solvers):
    import tikhon
    from . import plot

    fits = {}
    for solver in solvers:
        est = (tikhon.LogisticRegression(C=args.C, solver=solver, **common) if args.task == "logistic"
               else tikhon.Ridge(alpha=args.alpha, solver=solver, **common))
        fits[solver] = est.fit(X, y)
    with _about(f"--out {args.out!r}", OSError):
        plot.plot_history(fits, x=args.x, out=args.out)
    return ", ".join(f"{s}: {f.n_iter_} iterations" for s, f in fits.items())


def _exit_code(exc):
    """The exit code of an exception that escaped a command, or ``None`` (a bug: re-raise it)."""
    if isinstance(exc, USER_ERRORS):
        return EXIT_USAGE
    if isinstance(exc, _FAILURES):
        return EXIT_FAILED
    return None


def main(argv=None):
    """Run the command line; returns the exit code (0 ok, 1 failed run, 2 user error)."""
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
    except KeyboardInterrupt:
        print("tikhon: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        what = "error" if code == EXIT_USAGE else "failed"
        print(f"tikhon {args.command}: {what}: {_one_line(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
