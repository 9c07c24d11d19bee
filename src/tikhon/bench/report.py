"""Terminal output of ``tikhon bench``: the progress line, the tables, the JSON file."""
from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np

__all__ = ["Progress", "format_tables", "write_json"]


class Progress:
    """Which cell is running and the elapsed time, on stderr (one updating line on a terminal,
    one line per step otherwise)."""

    def __init__(self, stream=None, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.total, self.count, self.title = 0, 0, ""
        self._open = False

    def _elapsed(self):
        return time.perf_counter() - self.t0

    def _write(self, text, final):
        if not self.enabled:
            return
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
            self._open = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, total, title):
        self.total, self.count, self.title = total, 0, title

    def step(self, label):
        self.count += 1
        self._write(f"[{self.count:>3}/{self.total}] {self.title}: {label}  (elapsed {self._elapsed():6.1f} s)", False)

    def note(self, text):
        if self._open:
            self._write("", True)  # keep the progress line, start a fresh one
        self._write(f"  {text}  (elapsed {self._elapsed():.1f} s)", True)

    def finish(self):
        if self.tty and self._open:
            self._write(f"[{self.total:>3}/{self.total}] {self.title}: done  (elapsed {self._elapsed():6.1f} s)", True)


def _seconds(value):
    if value is None:
        return "-"
    if value < 1e-3:
        return f"{value * 1e6:.0f}us"
    if value < 1:
        return f"{value * 1e3:.1f}ms"
    return f"{value:.2f}s"


# what a t(level) cell shows when the row did not reach that level (see tikhon.bench.verdict)
_MISSED = {"budget": "budget", "cap": "cap", "tol": "tol", "stalled": "stall", "tols": "tols", "error": "error"}


def _time_cell(record, key):
    value = record["time_to"].get(key)
    if value is not None:
        return _seconds(value)
    return _MISSED.get(record.get("not_reached", {}).get(key), "-")


def _speedup(record, levels):
    if record.get("baseline") is None:
        return "baseline" if record["kind"] == "tikhon" and record.get("requested_backend") == "numpy" else "-"
    for key in reversed(levels):  # tightest level both reached
        ratio = record["speedup_vs_numpy"].get(key)
        if ratio:
            return f"{ratio:.2f}x@{key}"
    return "-"


def _table(header, rows, align):
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(row):
        return "  ".join(str(c).rjust(w) if a == ">" else str(c).ljust(w) for c, w, a in zip(row, widths, align))

    return [line(header), line(["-" * w for w in widths]), *[line(r) for r in rows]]


def _dataset_title(ds):
    mb = ds["bytes"] / 1e6
    nnz = f", {ds['nnz']} nonzeros" if ds["format"] == "csr" else ""
    part = f" [{ds['part']}]" if ds.get("part") else ""
    load = ds.get("load", {}).get("processes")
    loaded = f", beside {load} busy processes" if load else ""
    return (f"== {ds['name']}{part}: {ds['n_samples']} x {ds['n_features']} {ds['format'].upper()} "
            f"{ds['dtype']}{nnz}, X = {mb:.1f} MB{loaded} ==")


def _problem_lines(problem, levels):
    ref = problem.get("reference_objective")
    tag = f"{problem['loss']} {problem['param']}={problem['value']:g}"
    classes = f", {problem['n_classes']} classes" if problem.get("n_classes", 0) > 2 else ""
    out = [""]
    out.append(f"{tag}{classes}: P* = {ref:.10g} (P* = lowest objective of the run: {problem.get('reference_from')})"
               if ref is not None else f"{tag}: no result")
    header = ["backend/solver", *[f"t({k})" for k in levels], "whole fit", "vs numpy", "objective", "rel.subopt",
              "iters", "peak MB"]
    rows = []
    for r in problem["records"]:
        label = r["label"] + (" *" if r["kind"] == "anchor" else "")
        if r["kind"] == "tikhon" and r["label"].startswith("tikhon/") and not r.get("error"):
            label += f" ({r['backend']}/{r['solver']})"  # what the default (auto) chose
        if r["error"] is not None:
            rows.append([label, *["error"] * len(levels), "-", "-", "error: " + r["error"][:60], "", "", ""])
            continue
        peak = r.get("peak_memory_bytes")
        iters = r.get("iterations")
        conv = "" if r["kind"] != "tikhon" or r.get("converged") else "+"
        rows.append([label, *[_time_cell(r, k) for k in levels], _seconds(r.get("seconds")), _speedup(r, levels),
                     f"{r['final_objective']:.10g}", f"{r['relative_suboptimality']:.1e}",
                     f"{iters}{conv}" if iters else "-",
                     f"{peak / 1e6:.1f}" if peak is not None else "-"])
    out.extend("  " + s for s in _table(header, rows, "<" + ">" * (len(header) - 1)))
    for label, why in problem.get("skipped_anchors", {}).items():
        out.append(f"  anchor {label} not run: {why}")
    if problem.get("verdict"):
        out.append("  " + problem["verdict"]["text"])
    return out


def _kernel_lines(ds):
    out = []
    k = ds["kernels"]
    floor = k.get("floor")
    mb = ds["bytes"] / 1e6
    for loss in [key for key in k if key != "floor"]:
        out.append("")
        out.append(f"kernels: one loss+gradient pass ({loss}); bandwidth = bytes of X ({mb:.1f} MB) / time; "
                   "the best possible is one read of X")
        header = ["backend", "time/pass", "GB/s", "of best", "vs numpy", "Hv product"]
        rows = [[f"one read of X: {floor['what']}", _seconds(floor["seconds"]), f"{floor['GBps']:.2f}", "1.00", "",
                 ""]]
        base = k[loss].get("numpy", {}).get("seconds_per_pass")
        for name, fig in k[loss].items():
            if "error" in fig:
                rows.append([name, "error: " + fig["error"][:60], "", "", "", ""])
                continue
            ratio = "baseline" if name == "numpy" else (f"{base / fig['seconds_per_pass']:.2f}x" if base else "-")
            rows.append([name, _seconds(fig["seconds_per_pass"]), f"{fig['GBps']:.2f}",
                         f"{fig['GBps'] / floor['GBps']:.2f}", ratio,
                         _seconds(fig.get("seconds_per_hessian_product")) if "seconds_per_hessian_product" in fig
                         else ""])
        out.extend("  " + s for s in _table(header, rows, "<>>>>>"))
    return out


def _dataset_lines(ds, levels):
    out = [_dataset_title(ds)]
    for problem in ds["problems"]:
        out.extend(_problem_lines(problem, [lv for lv in problem.get("verdicts", {})] or levels))
    for tag, why in ds.get("skipped_problems", {}).items():
        out.append("")
        out.append(f"{tag}: skipped problem: {why}")
    out.extend(_kernel_lines(ds))
    if ds["dtype"] != "float64":
        out.append("")
        out.append(f"note: {ds['dtype']} data; final objectives are scored in float64, but a fit's history is "
                   "computed by its backend and may be float32-rounded (about 1e-7 relative): levels below "
                   "that are not meaningful for those traces.")
    if ds["warmup_seconds"]:
        out.append("")
        out.append("warm-up before timing (JIT compilation, caches): " + ", ".join(
            f"{key} {sec:.2f}s" for key, sec in ds["warmup_seconds"].items()))
    for what, why in ds["skipped"].items():
        out.append(f"skipped {what}: {why}")
    out.append("")
    return out


def _path_lines(entry):
    out = [f"== {entry['name']} [{entry.get('part') or 'path'}]: regularization path, {len(entry['grid'])} C in "
           f"[{min(entry['grid']):g}, {max(entry['grid']):g}], tol {entry['tol']:g} =="]
    header = ["run", "wall", "CPU", "unconverged", "worst rel.subopt", "iterations"]
    rows = []
    for r in entry["runs"]:
        if "error" in r:
            rows.append([r["label"], "error: " + r["error"][:60], "", "", "", ""])
            continue
        rows.append([r["label"], _seconds(r["seconds"]), _seconds(r["cpu_seconds"]), r["unconverged"],
                     f"{r['max_relative_suboptimality']:.1e}", r["iterations"]])
    out.extend("  " + s for s in _table(header, rows, "<>>>>>"))
    for what, why in entry.get("skipped", {}).items():
        out.append(f"  skipped {what}: {why}")
    if entry.get("verdict"):
        out.append("  " + entry["verdict"]["text"])
    out.append("")
    return out


def _gridsearch_lines(entry):
    load = entry.get("load", {}).get("processes")
    out = [f"== {entry['name']} [{entry.get('part') or 'gridsearch'}]: GridSearchCV(LogisticRegression(), "
           f"{{'C': {entry['grid']}}}, n_jobs={entry['n_jobs']}){', beside %d busy processes' % load if load else ''} =="]
    header = ["estimator", "whole search", "mean fit", "best C", "best score"]
    rows = [[r["label"], "error: " + r["error"][:60], "", "", ""] if "error" in r else
            [r["label"], _seconds(r["seconds"]), _seconds(r["mean_fit_seconds"]), f"{r['best_C']:g}",
             f"{r['best_score']:.4f}"] for r in entry["runs"]]
    out.extend("  " + s for s in _table(header, rows, "<>>>>"))
    out.append("  " + entry["verdict"]["text"])
    out.append("")
    return out


def verdict_lines(result):
    """One line per problem: the headline verdicts of the run."""
    out = []
    for ds in result["datasets"]:
        part = f" [{ds['part']}]" if ds.get("part") else ""
        for problem in ds["problems"]:
            if problem.get("verdict"):
                out.append(f"  {ds['name']}{part} {problem['loss']} {problem['param']}={problem['value']:g}: "
                           f"{problem['verdict']['text']}")
        for tag, why in ds.get("skipped_problems", {}).items():
            out.append(f"  {ds['name']}{part} {tag}: skipped: {why}")
    for entry in result.get("paths", []) + result.get("gridsearch", []):
        if entry.get("verdict"):
            out.append(f"  {entry['name']} [{entry.get('part')}]: {entry['verdict']['text']}")
    return out


def format_tables(result) -> str:
    """The report printed at the end of ``tikhon bench``."""
    levels = result["levels"]
    out = []
    for ds in result["datasets"]:
        out.extend(_dataset_lines(ds, levels))
    for entry in result.get("paths", []):
        out.extend(_path_lines(entry))
    for entry in result.get("gridsearch", []):
        out.extend(_gridsearch_lines(entry))
    for what, why in result.get("skipped_data", {}).items():
        out.append(f"skipped data set {what}: {why}")
    notes = [
        "t(level): seconds of the whole fit call until the relative suboptimality (P - P*)/P* <= level, P* = the "
        "lowest objective any run of the problem reached. Not reached: 'budget' = an anchor's tolerance sweep cut "
        "off by its time budget (--anchor-budget), 'cap' = iteration cap, 'tol' = stopped at its own tolerance, "
        "'stall' = a tighter tolerance gave nothing better, 'tols' = its tightest tolerance was not enough.",
        "vs numpy: NumPy backend's time / this row's time at the tightest level both reached (same solver; "
        "anchors and backend-only solvers against numpy's default solver).",
        "* anchor: external solver swept over its own tolerances, each run timed as a whole, scored with "
        "tikhon's objective.  iters '+' = stopped before meeting tol (iteration cap or solver stall).",
        f"peak MB: extra memory at the peak of the fit, {result['memory_method']['name']}: "
        f"{result['memory_method']['what']}.",
    ]
    for name, why in result["anchors"]["skipped"].items():
        notes.append(f"anchor {name} skipped: {why}")
    for part in result.get("parts", []):
        for note in part.get("notes", []):
            notes.append(f"note: {note}")
    for load in result.get("loads", []):
        notes.append(f"load [{load['part']}]: {load['processes']} busy processes ({load['what']}), bounded to "
                     f"{load['bounded_seconds']:g} s, stopped by the bench")
    if result.get("dask"):
        d = result["dask"]
        notes.append(f"dask: {d['workers']} workers x {d['threads_per_worker']} threads at {d['scheduler']} "
                     f"({'started by the bench' if d['started_by_bench'] else 'given by --dask-scheduler'})")
    env = result["environment"]
    load = [env.get("load_average_start"), env.get("load_average_end")]
    load_text = (f"; 1-min load average {load[0]:.1f} at start, {load[1]:.1f} at end on {env['cpu_count']} cores "
                 "(a shared machine: compare ratios within one run)") if None not in load else ""
    notes.append(f"total {result['total_seconds']:.1f} s{load_text}")
    verdicts = verdict_lines(result)
    if verdicts:
        notes += ["", f"verdicts (P* = the lowest objective of each problem's runs):", *verdicts]
    return "\n".join(out + notes)


def _clean(value):
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, type):
        return value.__name__
    return value


def write_json(result, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(_clean(result), f, indent=1, allow_nan=False)
    return path
