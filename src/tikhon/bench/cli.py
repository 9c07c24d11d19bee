"""The ``tikhon bench`` sub-command: its options (:func:`add_arguments`) and what it runs
(:func:`command`). ``tikhon.cli`` holds the command line itself and calls these two.

An option given on the command line overrides that setting in every part of the chosen
suite (``--suite``, default ``default``); options left out keep the suite's settings.
The JSON of a run is ``OUT/results.json``, beside the PNG plots; ``--out`` defaults to
``bench-out`` for the default suite and ``bench-out/SUITE`` for the others.
"""
from __future__ import annotations

import os
import sys

__all__ = ["RESULTS_FILE", "add_arguments", "command", "output_folder"]

RESULTS_FILE = "results.json"


def add_arguments(bench, positive_float, positive_int, backends):
    """The options of ``tikhon bench`` on the argparse parser ``bench``."""
    from .load import DEFAULT_LOAD_SECONDS
    from .suites import SUITES

    bench.add_argument("--suite", default="default", choices=list(SUITES),
                       help="a named suite of parts (default: default, the main job on a9a); see "
                            "tikhon.bench.suites: " + ", ".join(SUITES))
    bench.add_argument("--scale", type=positive_float, default=1.0,
                       help="multiply the rows of the suite's generated data sets (default 1)")
    bench.add_argument("--backend", help=f"comma-separated backends (default: every available one); "
                                         f"registered: {backends}. NumPy, the baseline, is always run.")
    bench.add_argument("--solver", help="comma-separated solvers (default: every registered solver except the "
                                        "first-order lbfgs, gd and sgd, to stay under 2 minutes)")
    bench.add_argument("--data", action="append",
                       help="a9a (default) | PATH (svmlight, dense text/CSV, .npz, .npy) | reuters, abalone, dna, "
                            "cal_housing (the shared data folder, $TIKHON_DATA) | synthetic:n=...,d=...,density=...,"
                            "dtype=...,seed=...,classes=K | text:n=...,d=...,nnz=...,classes=K (K >= 3: multinomial) ; repeat the option for several data sets")
    bench.add_argument("--dtype", default=None, help="dtype of a9a and file data: float64 (default) or float32")
    bench.add_argument("--task", choices=["auto", "logistic", "ridge"], default=None,
                       help="logistic or ridge; auto (default) decides from the labels: two values or a few "
                            "integer classes are logistic, a real target is ridge")
    bench.add_argument("--C", nargs="+", help="logistic regression C grid (default 0.1 1 10); commas or spaces")
    bench.add_argument("--alpha", nargs="+", help="ridge regression alpha grid (default 0.1 1 10 with --task ridge)")
    bench.add_argument("--levels", default=None, help="relative suboptimality levels to time "
                                                      "(default 1e-3,1e-6,1e-8)")
    bench.add_argument("--verdict-level", type=positive_float, default=None,
                       help="the level of each problem's verdict line (default 1e-6)")
    bench.add_argument("--tol", type=positive_float, default=None,
                       help="solver tolerance of every tikhon fit (default: a tenth of the tightest level)")
    bench.add_argument("--max-iter", type=positive_int, help="iteration cap of every fit (default per solver: "
                                                             "newton 100, lbfgs 200, gd 300, sgd 20, others 300)")
    bench.add_argument("--repeat", type=positive_int, default=None, help="timed runs per cell; the best is kept")
    bench.add_argument("--anchors", default=None,
                       help="external solvers, each used only where installed: FAMILY (its default variants), "
                            "FAMILY/VARIANT, FAMILY/all, all, default or none; families: sklearn, liblinear, "
                            "sklearnex, glum, snapml, skglm (default: default)")
    bench.add_argument("--anchor-budget", type=positive_float, default=None,
                       help="seconds per anchor variant for its tolerance sweep (default 3)")
    bench.add_argument("--memory", default=None, choices=["tracemalloc", "rss", "off"],
                       help="how peak extra memory is measured (default tracemalloc)")
    bench.add_argument("--no-intercept", action="store_true", help="fit without the intercept")
    bench.add_argument("--kernel-seconds", type=positive_float, default=None,
                       help="minimum seconds per kernel timing round (default 0.2)")
    bench.add_argument("--no-warmup", action="store_true", help="skip the untimed warm-up (JIT) fits")
    bench.add_argument("--dask-workers", type=positive_int, default=None,
                       help="start a dask LocalCluster of N worker processes (1 thread each) inside the bench and "
                            "add dask rows (the data chunked by rows)")
    bench.add_argument("--dask-scheduler", default=None, metavar="ADDRESS",
                       help="add dask rows on the running cluster at ADDRESS (e.g. tcp://host:8786)")
    bench.add_argument("--dask-chunk-rows", type=positive_int, default=None,
                       help="rows per dask chunk (default: two chunks per worker)")
    bench.add_argument("--load", type=int, default=None, metavar="N",
                       help="run beside N busy processes (a tight numeric loop each), started and stopped by the "
                            "bench (contention, issue 15); the load suite's loaded parts use N (default 2)")
    bench.add_argument("--load-seconds", type=positive_float, default=DEFAULT_LOAD_SECONDS,
                       help=f"upper bound on the busy processes' lifetime (default {DEFAULT_LOAD_SECONDS:g} s)")
    bench.add_argument("--no-plots", action="store_true", help="write no PNG")
    bench.add_argument("--out", default=None, help="output folder (default ./bench-out, ./bench-out/SUITE for a "
                                                   "suite other than default)")
    bench.add_argument("--quiet", action="store_true", help="no progress display")


# option name -> BenchConfig field (options whose value None means "the suite's")
_OVERRIDES = {"backend": "backends", "solver": "solvers", "dtype": "dtype", "task": "task", "C": "C",
              "alpha": "alpha", "levels": "levels", "verdict_level": "verdict_level", "tol": "tol",
              "max_iter": "max_iter", "repeat": "repeat", "anchors": "anchors", "anchor_budget": "anchor_budget",
              "memory": "memory", "kernel_seconds": "kernel_seconds", "dask_workers": "dask_workers",
              "dask_scheduler": "dask_scheduler", "dask_chunk_rows": "dask_chunk_rows"}


def build_parts(args):
    """The validated parts of the run that ``args`` asks for."""
    from . import validate
    from .problems import BenchArgumentError
    from .suites import build_suite

    if args.load is not None and args.load < 0:
        raise BenchArgumentError(f"--load must be a non-negative integer, got {args.load}")
    parts = build_suite(args.suite, args.scale, load=args.load if args.load is not None else 2)
    for part in parts:
        for option, name in _OVERRIDES.items():
            value = getattr(args, option)
            if value is not None:
                setattr(part, name, value)
        if args.data:
            part.data, part.optional_data = list(args.data), False
        if args.no_intercept:
            part.fit_intercept = False
        if args.no_warmup:
            part.warmup = False
        if args.load is not None and args.suite != "load":
            part.load = args.load
        part.load_seconds = args.load_seconds
        validate(part)
    return parts


def output_folder(args):
    if args.out is not None:
        return args.out
    return "bench-out" if args.suite == "default" else os.path.join("bench-out", args.suite)


def command(args, about):
    """Run ``tikhon bench``; ``about(name, kinds)`` is the CLI's context naming what an
    error is about. Returns the exit code."""
    from . import run
    from .plots import write_plots
    from .problems import BenchArgumentError
    from .report import Progress, format_tables, write_json

    parts = build_parts(args)
    out = output_folder(args)
    if os.path.exists(out) and not os.path.isdir(out):
        raise BenchArgumentError(f"--out {out!r} is a file; give a folder name")
    with about(f"--out {out!r}", OSError):
        os.makedirs(out, exist_ok=True)  # before the run, which may take minutes
    progress = Progress(enabled=not args.quiet)
    result = run(parts, progress, suite=args.suite)
    json_path = write_json(result, os.path.join(out, RESULTS_FILE))
    print(format_tables(result))
    written = [json_path]
    if not args.no_plots:
        try:
            written += write_plots(result, out)
        except ImportError as exc:
            print(f"plots skipped: matplotlib cannot be imported ({exc}); pip install matplotlib")
    print("wrote " + ", ".join(written))
    failed = [r["label"] for ds in result["datasets"] for p in ds["problems"] for r in p["records"]
              if r["error"] is not None]
    if failed:
        print(f"tikhon bench: {len(failed)} run(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
