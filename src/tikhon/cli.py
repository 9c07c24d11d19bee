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
wrong; :data:`USER_ERRORS` is the table of exception types that mean one. Notes (the
task ``--task auto`` chose, options that do not apply and are ignored, a score) are
lines ``tikhon COMMAND: ...`` on stderr too, printed once the command has succeeded, so
that a failure stays one line.
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
TASKS = ("auto", "logistic", "ridge")
# --task auto: integer labels with three or more values are classes when each labels this
# share of the rows at least (dna: 23%, letter: 4%); else a numeric target (abalone's ages 1..29)
MIN_CLASS_SHARE = 0.01

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
    note = getattr(exc, "_tikhon_note", None)  # e.g. what --task auto chose
    return f"{text}; {note}" if note else text


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


def _int_at_least(minimum, kind):
    """An argparse type: an integer ``>= minimum``, else "must be ``kind``"."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be {kind}")
        return value
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "a non-negative integer")


def _class_weight_arg(text):
    """``--class-weight``: ``"balanced"``, or ``LABEL:WEIGHT,...`` as a tuple of (label text, weight);
    the labels are matched to the data's when it is read (:func:`_class_weights`)."""
    if text.strip() == "balanced":
        return "balanced"
    pairs = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        label, sep, weight = item.rpartition(":")  # the last colon: a label may hold one
        if not sep or not label.strip():
            raise argparse.ArgumentTypeError(f"{item!r} is not LABEL:WEIGHT; give 'balanced' or pairs such as "
                                             f"1:2,-1:1")
        try:
            value = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"the weight {weight!r} of label {label!r} is not a number") from None
        if not (np.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(f"the weight {weight!r} of label {label!r} must be a finite "
                                             f"non-negative number")
        pairs.append((label.strip(), value))
    if not pairs:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'balanced' or LABEL:WEIGHT pairs such as 1:2,-1:1")
    return tuple(pairs)


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

    _add_fit_parser(sub, backends)
    _add_predict_parser(sub, backends)
    _add_plot_parser(sub, backends)
    return parser


# ---------------------------------------------------------------- shared options of fit, predict, plot
DATA_HELP = ("a9a (the embedded data set, unless a file of that name exists) or a data file: svmlight/LIBSVM, "
             "or dense text with the label first (CSV or whitespace-separated, optional header line), plain or "
             "gzip/bz2/xz compressed; .npz (X and y, or CSR and y) or .npy (X only); the format is read from "
             "the content")
TASK_HELP = ("auto (default): logistic when the labels are text, two classes, or integers each on at least "
             "1%% of the rows; ridge when they are real numbers or integers with rare values; "
             "logistic: L2 logistic regression (--C); ridge: L2 least squares (--alpha)")


def _add_data_options(p, labels_help):
    """How the data file is read: --labels, --label-column, --n-features, --dtype."""
    p.add_argument("--labels", metavar="FILE.npy", help=labels_help)
    p.add_argument("--label-column", metavar="first|last|NAME",
                   help="dense text: the column holding the labels, first (default), last, or its header name")
    p.add_argument("--n-features", type=_positive_int, metavar="N",
                   help="sparse data (svmlight, CSR .npz): its width, as LIBLINEAR reads files: features beyond "
                        "N are ignored, missing ones are zero (default: the file's largest index; predict: the "
                        "model's width)")
    p.add_argument("--dtype", default="float64", help="float64 (default) or float32")


def _add_solve_options(p, backends, task=True, penalty=True):
    """The problem and how it is solved: --task, --C, --alpha, --backend, --tol, --max-iter, --no-intercept."""
    if task:
        p.add_argument("--task", choices=TASKS, default="auto", help=TASK_HELP)
    if penalty:
        p.add_argument("--C", type=_positive_float, default=None,
                       help="logistic: inverse penalty strength, lambda = 1/C (default 1); ridge takes --alpha")
        p.add_argument("--alpha", type=_positive_float, default=None,
                       help="ridge: penalty strength lambda = alpha (default 1); logistic takes --C")
    p.add_argument("--backend", default=None,
                   help=f"kernel set: {backends} (default: tikhon's configuration, TIKHON_BACKEND, then auto)")
    defaults = _estimator_defaults()
    p.add_argument("--tol", type=_positive_float, default=None,
                   help="stop when the relative duality gap, an upper bound on the relative suboptimality "
                        f"(P - P*)/P*, is at most TOL (default {defaults['tol']:g}, the estimators')")
    p.add_argument("--max-iter", type=_positive_int, default=None,
                   help=f"iteration cap of the solver (epochs for sgd; default {defaults['max_iter']})")
    p.add_argument("--no-intercept", action="store_true",
                   help="fit without the intercept b (default: an unpenalized intercept)")


def _estimator_defaults():
    """The estimators' own defaults, which the CLI's help shows and its options leave alone."""
    import tikhon

    return tikhon.LogisticRegression().get_params()


def _solve_params(args):
    """--tol, --max-iter and --no-intercept as estimator parameters; options not given keep
    the estimators' defaults."""
    params = {"tol": args.tol, "max_iter": args.max_iter}
    return {"fit_intercept": not args.no_intercept, **{k: v for k, v in params.items() if v is not None}}


def _solver_help():
    from .solvers import SOLVERS

    return f"auto (default: tikhon's choice for the data), {', '.join(SOLVERS)}; see the README's solver table"


def _add_fit_parser(sub, backends):
    fit = sub.add_parser("fit", help="fit a model on a data file and write it (JSON + npz, no pickle)",
                         description="Fit L2-regularized logistic regression or ridge on a data file and write "
                                     "the model. Notes (the task chosen by --task auto, options that do not "
                                     "apply) go to stderr.")
    fit.add_argument("data", help=DATA_HELP)
    _add_data_options(fit, "labels as .npy: for .npy data, or to replace the file's")
    fit.add_argument("--model", "-o", default="model.npz", help="model file to write (default model.npz)")
    _add_solve_options(fit, backends)
    fit.add_argument("--class-weight", type=_class_weight_arg, metavar="balanced|LABEL:W,...",
                     help="logistic: weight of each class, 'balanced' (n / (K n_k)) or LABEL:WEIGHT pairs such as "
                          "1:2,-1:1 (unlisted labels weigh 1); default: every class weighs 1")
    fit.add_argument("--solver", default="auto", help=_solver_help())
    fit.add_argument("--learning-rate", type=_positive_float, default=None,
                     help="gd: fixed step, sgd: initial step (default: from a Lipschitz bound)")
    fit.add_argument("--batch-size", type=_positive_int, default=None, help="sgd: rows per step (default 256)")
    fit.add_argument("--seed", type=_nonnegative_int, default=None,
                     help="sgd, dual_cd: seed of the shuffling (default 0: fits are repeatable)")


def _add_predict_parser(sub, backends):
    predict = sub.add_parser("predict", help="predict with a model file",
                             description="Write predictions of a model on a data file: labels (default), "
                                         "probabilities or decision values; the score goes to stderr when the "
                                         "file has labels. Sparse files are read at the model's width.")
    predict.add_argument("model", help="model file written by tikhon fit")
    predict.add_argument("data", help=DATA_HELP + " (labels, when present, give a score on stderr)")
    _add_data_options(predict, "labels as .npy, for the score")
    predict.add_argument("--out", "-o", default="-", help="predictions: .npy, or text, one row per sample "
                                                         "(default '-': standard output)")
    what = predict.add_mutually_exclusive_group()
    what.add_argument("--proba", action="store_true",
                      help="logistic: the probability of each class, one column per class in the model's order")
    what.add_argument("--decision", action="store_true",
                      help="logistic: decision values x.w + b (positive predicts the second class)")
    predict.add_argument("--backend", default=None, help=f"backend name ({backends}); checked and recorded on "
                                                         "the model (prediction itself is one X @ w product)")


def _add_plot_parser(sub, backends):
    """``tikhon plot path|cv|history DATA``: the pictures of :mod:`tikhon.plot` as PNG files."""
    plot = sub.add_parser("plot", help="draw a regularization path, a CV curve or a convergence plot (PNG)",
                          description="Pictures of L2 regularization (needs matplotlib: pip install "
                                      "\"tikhon[plot]\"). DATA is a data file as for tikhon fit, or a9a.")
    kinds = plot.add_subparsers(dest="kind", required=True, metavar="{path,cv,history}", parser_class=_Parser)
    helps = {"path": "coefficients against C (logistic) or alpha (ridge) over a grid (warm-started path)",
             "cv": "training and validation score against C (logistic) or alpha (ridge), the chosen value "
                   "marked (k-fold CV)",
             "history": "convergence of one fit per solver: relative suboptimality against time"}
    for kind, text in helps.items():
        p = kinds.add_parser(kind, help=text, description=text)
        p.add_argument("data", help=DATA_HELP)
        _add_data_options(p, "labels as .npy: for .npy data, or to replace the file's")
        p.add_argument("--task", choices=TASKS, default="auto", help=TASK_HELP)
        if kind == "history":
            p.add_argument("--C", type=_positive_float, default=None,
                           help="logistic: inverse penalty, lambda = 1/C (default 1); ridge takes --alpha")
            p.add_argument("--alpha", type=_positive_float, default=None,
                           help="ridge: penalty lambda = alpha (default 1); logistic takes --C")
            p.add_argument("--solvers", default="newton,lbfgs,gd",
                           help="comma-separated solvers, one line each (default newton,lbfgs,gd)")
            p.add_argument("--x", choices=["time", "iteration"], default="time", help="x axis (default time)")
        else:
            p.add_argument("--C", nargs="+", help="logistic C grid, commas or spaces (default: 20 values "
                                                   "log-spaced in [1e-4, 1e4])")
            p.add_argument("--alpha", nargs="+", help="ridge alpha grid (default as --C)")
            p.add_argument("--solver", default="auto", help=_solver_help())
        if kind == "path":
            p.add_argument("--top", type=_positive_int, help="draw only the TOP largest coefficients "
                                                             "(default: all)")
        if kind == "cv":
            p.add_argument("--cv", type=_positive_int, default=5, help="number of folds (default 5)")
            p.add_argument("--scoring", help="a scikit-learn scorer name (default accuracy / R^2)")
            p.add_argument("--n-jobs", type=int, default=None, help="threads over folds (default one; -1: every core)")
        _add_solve_options(p, backends, task=False, penalty=False)
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


def _note(args, text):
    """A line for stderr, printed when the command succeeds (a failure prints its one line only)."""
    args.notes.append(text)


def _read_data(args, n_features=None, need_labels=True):
    """The :class:`tikhon._datafiles.DataFile` of ``args.data``, read as the data options say;
    notes for what the file's format ignores and for features cut at ``n_features``."""
    import tikhon
    from ._datafiles import DataFile, read_data_file, set_width
    from .bench.problems import parse_dtype

    dtype = parse_dtype(args.dtype)
    if args.data == "a9a" and not os.path.exists(args.data):  # the embedded data set
        found = DataFile(*tikhon.datasets.load_a9a(dtype=dtype), "svmlight")
        if n_features is not None:
            found.X, found.ignored = set_width(found.X, n_features)
    else:
        with _about(args.data):
            found = read_data_file(args.data, dtype=dtype, n_features=n_features, labels=args.labels,
                                   need_labels=need_labels, label_column=args.label_column)
    if args.label_column is not None and found.format not in ("csv", "text"):
        _note(args, f"warning: --label-column applies to dense text; {args.data} is {found.format}: ignored")
    if found.ignored is not None:
        width, dropped = found.ignored
        _note(args, f"note: {args.data} has features up to {width}; {dropped} value{'s' * (dropped != 1)} of "
                    f"features beyond {n_features} ignored (as LIBLINEAR does)")
    if found.label_name is not None:
        _note(args, f"note: the labels are the column {found.label_name!r} of {args.data} (--label-column "
                    f"first|last|NAME to choose)")
    return found


def _check_dense_width(data, X, expected, what):
    """Dense data has no indices: a width other than ``expected`` is refused, not padded or cut."""
    from .bench import BenchArgumentError

    if X.shape[1] != expected:
        raise BenchArgumentError(f"{data} has {X.shape[1]} features, {what} {expected} (dense data is not padded "
                                 f"or cut: its columns have no indices)")


def _show_labels(classes, limit=5):
    """The first ``limit`` labels as text, numbers as ``%g`` (svmlight's -1.0 is -1)."""
    shown = ", ".join(f"{c:g}" if isinstance(c, (float, np.floating)) else str(c) for c in classes[:limit])
    return shown + (", ..." if len(classes) > limit else "")


def _auto_task(y):
    """``(task, reason)`` of ``--task auto``: the rule is :func:`tikhon._datafiles.infer_task`
    (the bench's too); the reason says what the labels are."""
    from ._datafiles import MIN_CLASS_SHARE, infer_task

    y = np.asarray(y)
    found = infer_task(y)
    if found.task == "logistic":
        return "logistic", f"the labels are {found.classes.size} classes ({_show_labels(found.classes)})"
    if found.classes is None:
        low, high = np.nanmin(y.real), np.nanmax(y.real)
        return "ridge", f"the labels are real numbers in [{low:.4g}, {high:.4g}]"
    rare = int(np.sum(found.counts < MIN_CLASS_SHARE * y.size))
    return "ridge", (f"the labels are {found.classes.size} distinct integers, {rare} of them on fewer than "
                     f"{MIN_CLASS_SHARE:.0%} of the rows: a numeric target")


def _choose_task(args, y):
    """``args.task``, or for ``auto`` the task the labels say (noted on stderr, and kept in
    ``args.auto_reason`` for the error of a fit that fails)."""
    if args.task != "auto":
        return args.task
    task, reason = _auto_task(y)
    args.auto_reason = f"task auto chose {task}: {reason}"
    _note(args, f"{args.auto_reason} (--task logistic|ridge to choose)")
    return task


def _check_penalty(args, task):
    """The penalty of the other task is refused: --C for ridge, --alpha for logistic (the two
    are not the same number, and ignoring one would fit another problem than asked)."""
    from .bench import BenchArgumentError

    chosen = f" ({args.auto_reason})" if getattr(args, "auto_reason", None) else ""
    if task == "ridge" and args.C is not None:
        raise BenchArgumentError(f"--C is logistic regression's inverse penalty; ridge takes --alpha "
                                 f"(lambda = alpha){chosen}")
    if task == "logistic" and args.alpha is not None:
        raise BenchArgumentError(f"--alpha is ridge's penalty; logistic regression takes --C (lambda = 1/C){chosen}")


def _check_task_options(args, task, y):
    """The options of ``args`` against the task and the labels ``y``: the other task's penalty
    and ridge on text labels are refused; --class-weight for ridge is noted and ignored."""
    from .bench import BenchArgumentError

    _check_penalty(args, task)
    if task == "ridge" and np.asarray(y).dtype.kind not in "iufc":
        raise BenchArgumentError(f"--task ridge needs numeric labels; {args.data} has text labels "
                                 f"({_show_labels(np.unique(y))}): use --task logistic")
    if task == "ridge" and getattr(args, "class_weight", None) is not None:
        _note(args, "warning: --class-weight applies to logistic regression only; ignored for ridge")


def _check_solver_options(args, solver):
    """Options the solver that ran (``solver``: ``auto`` resolved by the fit) does not take
    are noted on stderr: the estimator ignored them."""
    from .estimators import _SOLVER_OPTIONS

    given = {"learning_rate": args.learning_rate, "batch_size": args.batch_size, "random_state": args.seed}
    for param, value in given.items():
        if value is not None and param not in _SOLVER_OPTIONS.get(solver, ()):
            takers = ", ".join(s for s, params in _SOLVER_OPTIONS.items() if param in params)
            option = "--seed" if param == "random_state" else "--" + param.replace("_", "-")
            _note(args, f"warning: {option} applies to solver {takers} only; ignored by {solver}")


def _class_weights(pairs, y):
    """``--class-weight`` for the labels ``y``: ``"balanced"``, ``None``, or a dict keyed by
    the data's own label values (a label text matched as a number when the labels are numbers)."""
    from .bench import BenchArgumentError

    if pairs is None or pairs == "balanced":
        return pairs
    classes = np.unique(y)
    numeric = classes.dtype.kind in "iufb"
    weights = {}
    for text, weight in pairs:
        try:
            match = classes[classes == (float(text) if numeric else text)]
        except ValueError:
            match = classes[:0]
        if match.size == 0:
            raise BenchArgumentError(f"--class-weight: {text!r} is not a label of the data; the labels are "
                                     f"{_show_labels(classes)}")
        key = match[0].item()
        if key in weights:
            raise BenchArgumentError(f"--class-weight gives label {text!r} twice")
        weights[key] = weight
    return weights


def _estimator(args, task, y):
    """The estimator of ``args``: the penalty of its task (default 1), the solver options given."""
    import tikhon

    common = dict(solver=args.solver, backend=args.backend, **_solve_params(args))
    for param, value in (("learning_rate", args.learning_rate), ("batch_size", args.batch_size),
                         ("random_state", args.seed)):
        if value is not None:
            common[param] = value
    if task == "logistic":
        return tikhon.LogisticRegression(C=1.0 if args.C is None else args.C,
                                         class_weight=_class_weights(args.class_weight, y), **common)
    return tikhon.Ridge(alpha=1.0 if args.alpha is None else args.alpha, **common)


def _summary(model):
    """The fit report of ``model``: attributes it has, numbers as one line."""
    n_iter = np.ravel(getattr(model, "n_iter_", []))
    parts = [f"backend {getattr(model, 'backend_', '?')}", f"solver {getattr(model, 'solver_', '?')}",
             f"{int(n_iter.max()) if n_iter.size else '?'} iterations",
             f"converged {getattr(model, 'converged_', '?')}"]
    if hasattr(model, "objective_"):
        parts.append(f"objective {float(np.sum(model.objective_)):.10g}")
    if hasattr(model, "duality_gap_"):
        parts.append(f"relative duality gap {float(np.max(model.duality_gap_)):.2e}")
    return ", ".join(parts)


@contextlib.contextmanager
def _warnings_as_notes(args):
    """Warnings raised inside (a ConvergenceWarning, ...) become one-line notes, each once."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        yield
    for text in dict.fromkeys(" ".join(str(w.message).split()) for w in caught):
        _note(args, "warning: " + text)


@contextlib.contextmanager
def _auto_explained(args):
    """A user error raised inside, after ``--task auto`` chose, says what it chose (and so
    how to choose otherwise)."""
    try:
        yield
    except USER_ERRORS as exc:
        if getattr(args, "auto_reason", None) and not hasattr(exc, "_tikhon_note"):
            exc._tikhon_note = args.auto_reason
        raise


def _fit(args):
    import scipy.sparse as sp

    from ._io import save_model

    _check_backend(args.backend)
    _check_solver(args.solver)
    _check_output_file(args.model, "--model")
    if args.task != "auto":  # before the data is read
        _check_penalty(args, args.task)
    found = _read_data(args, n_features=args.n_features)
    X, y = found.X, found.y
    if args.n_features is not None and not sp.issparse(X):
        _check_dense_width(args.data, X, args.n_features, "--n-features says")
    task = _choose_task(args, y)
    _check_task_options(args, task, y)
    model = _estimator(args, task, y)
    t0 = time.perf_counter()
    with _auto_explained(args), _about(args.data), _warnings_as_notes(args):
        model.fit(X, y)
    seconds = time.perf_counter() - t0
    _check_solver_options(args, model.solver_)
    with _about(f"--model {args.model!r}", OSError):
        save_model(model, args.model)
    score = model.score(X, y)
    what = "train accuracy" if task == "logistic" else "train R^2"
    print(f"fit {type(model).__name__} on {args.data}: {X.shape[0]} x {X.shape[1]} in {seconds:.3f} s; "
          f"{_summary(model)}, {what} {score:.4f}")
    print(f"wrote {args.model}")
    return EXIT_OK


def _predictions(args, model, X):
    """Labels, probabilities (one column per class) or decision values of ``model`` on ``X``."""
    with _about(args.data):
        if args.proba:
            values = model.predict_proba(X)
            _note(args, "columns: the probabilities of classes " + _show_labels(model.classes_, limit=100))
        elif args.decision:
            values = model.decision_function(X)
            if np.ndim(values) == 1:
                _note(args, f"decision values: positive predicts class {_show_labels(model.classes_[1:])}")
            else:
                _note(args, "columns: the decision values of classes " + _show_labels(model.classes_, limit=100))
        else:
            values = model.predict(X)
    return np.asarray(values)


def _write_predictions(out, values):
    fmt = "%s" if values.dtype.kind in "OUS" else "%.10g"
    if out == "-":
        np.savetxt(sys.stdout, values, fmt=fmt)
        return
    with _about(f"--out {out!r}", OSError):
        if out.endswith(".npy"):
            np.save(out, values, allow_pickle=False)
        else:
            np.savetxt(out, values, fmt=fmt)


def _predict(args):
    import scipy.sparse as sp

    from ._io import load_model
    from .bench import BenchArgumentError

    _check_backend(args.backend)
    if args.out != "-":
        _check_output_file(args.out, "--out")
    with _about(args.model):
        model = load_model(args.model)
    if args.backend is not None:
        model.set_params(backend=args.backend)
    for flag in ("proba", "decision"):
        if getattr(args, flag) and not hasattr(model, "predict_proba"):
            raise BenchArgumentError(f"--{flag} needs a logistic regression model; {args.model} holds "
                                     f"{type(model).__name__}, whose predictions are its values")
    width = model.n_features_in_
    if args.n_features is not None and args.n_features != width:
        raise BenchArgumentError(f"--n-features {args.n_features}, but the model was fitted on {width} features; "
                                 f"data is read at the model's width: drop --n-features")
    found = _read_data(args, n_features=width, need_labels=False)
    X, y = found.X, found.y
    if not sp.issparse(X):
        _check_dense_width(args.data, X, width, "the model expects")
    values = _predictions(args, model, X)
    _write_predictions(args.out, values)
    if y is not None:
        what = "accuracy" if hasattr(model, "classes_") else "R^2"
        try:
            _note(args, f"{what} on {args.data}: {model.score(X, y):.4f}")
        except (ValueError, TypeError):  # labels that do not fit the model: no score, predictions stand
            pass
    if args.out != "-":
        _note(args, f"wrote {len(values)} predictions to {args.out}")
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
    _check_backend(args.backend)
    wanted = [s.strip() for s in args.solvers.split(",")] if args.kind == "history" else [args.solver]
    for solver in wanted:
        _check_solver(solver)
    if args.kind != "history":  # both grids' values, before the data is read
        _grid_values(args.C, "C")
        _grid_values(args.alpha, "alpha")
    if args.task != "auto":
        _check_penalty(args, args.task)
    _check_output_file(args.out, "--out", make_folder=True)
    found = _read_data(args, n_features=args.n_features)
    X, y = found.X, found.y
    args.task = _choose_task(args, y)
    _check_task_options(args, args.task, y)
    grid = _grid(args) if args.kind != "history" else None
    draw = {"path": _plot_path, "cv": _plot_cv, "history": _plot_history}[args.kind]
    common = dict(backend=args.backend, **_solve_params(args))
    with _auto_explained(args), _about(args.data), _warnings_as_notes(args):
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
        plot.plot_path(result, top=args.top, data=os.path.basename(args.data), out=args.out)
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
        plot.plot_cv(model, data=os.path.basename(args.data), out=args.out)
    return f"{args.cv}-fold CV over {grid.size} values chosen {chosen}"


def _plot_history(args, X, y, common, grid, solvers):
    import tikhon
    from . import plot

    fits = {}
    for solver in solvers:
        est = (tikhon.LogisticRegression(C=1.0 if args.C is None else args.C, solver=solver, **common)
               if args.task == "logistic" else tikhon.Ridge(alpha=1.0 if args.alpha is None else args.alpha,
                                                            solver=solver, **common))
        fits[solver] = est.fit(X, y)
    with _about(f"--out {args.out!r}", OSError):
        plot.plot_history(fits, x=args.x, data=os.path.basename(args.data), out=args.out)
    return ", ".join(f"{s}: {int(np.max(f.n_iter_))} iterations" for s, f in fits.items())


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
    args.notes = []  # lines for stderr once the command succeeds (see _note)
    try:
        code = command(args)
        for note in args.notes:
            print(f"tikhon {args.command}: {note}", file=sys.stderr)
        return code
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
