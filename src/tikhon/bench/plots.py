"""PNG plots of a benchmark result (matplotlib, non-interactive Agg backend).

* ``suboptimality_<data>[_<part>].png``: relative suboptimality ``(P - P*)/P*`` (``P*``:
  the lowest objective of the run) against wall-clock seconds, both on log scales, one
  panel per C / alpha titled with the data set and the parameter, one line per
  backend/solver, anchors as dashed lines with markers (each marker one run at one
  tolerance; "cut off by its budget" where the time budget ended the sweep), the timed
  levels as labelled dotted lines;
* ``kernels.png``: effective bandwidth of one loss+gradient pass per backend next to the
  best possible bandwidth (one read of X by ``X @ w``), one panel per data set.
"""
from __future__ import annotations

import os
import re

__all__ = ["write_plots"]

_FLOOR = 1e-16  # suboptimalities below this (and exact zeros) are drawn at this value


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(name):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def _panel_title(ds, problem):
    part = f" [{ds['part']}]" if ds.get("part") else ""
    if problem["param"] == "C":
        what = f"logistic, C = {problem['value']:g}"
    else:
        what = f"ridge, alpha = {problem['value']:g}"
    return f"{ds['name']}{part}: {what}"


def _suboptimality_figure(plt, ds):
    from matplotlib.ticker import NullFormatter

    from .measure import suboptimality

    problems = [p for p in ds["problems"] if p.get("reference_objective") is not None]
    n = max(1, len(problems))
    fig, axes = plt.subplots(1, n, figsize=(5.4 * n, 4.6), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        ref = problem["reference_objective"]
        for r in problem["records"]:
            if r["error"] is not None or not r.get("trace"):
                continue
            t = [max(p[0], 1e-6) for p in r["trace"]]
            s = [max(suboptimality(p[1], ref), _FLOOR) for p in r["trace"]]
            if r["kind"] == "anchor":
                cut = " (cut off by its budget)" if r.get("stop") == "budget" else ""
                ax.plot(t, s, "--o", ms=4, lw=1, label=r["label"] + cut)
            else:
                ax.plot(t, s, "-", lw=1.6, marker=".", ms=3, label=r["label"])
        for key in problem.get("verdicts", {}):
            level = float(key)
            ax.axhline(level, color="0.55", lw=0.7, ls=":")
            ax.annotate(f"level {key}", xy=(1.0, level), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7, color="0.35")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
        ax.set_ylim(_FLOOR / 2, None)
        ax.set_xlabel("seconds (whole fit call)")
        ax.set_ylabel("relative suboptimality (P - P*) / P*\nP* = lowest objective of the run")
        ax.set_title(_panel_title(ds, problem), fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.035 * (len(labels) // 4), 1, 1))
    return fig


def _kernel_figure(plt, datasets):
    n = max(1, len(datasets))
    cols = min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6.2 * cols, 4.6 * rows), squeeze=False)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    for ax, ds in zip(axes.ravel(), datasets):
        k = ds["kernels"]
        names, values = [], []
        for loss in [key for key in k if key != "floor"]:
            for name, fig_ in k[loss].items():
                if "GBps" in fig_:
                    names.append(f"{name}\n{loss}")
                    values.append(fig_["GBps"])
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.set_xticks(range(len(values)), names, fontsize=8)
        best = k["floor"]["GBps"]
        ax.axhline(best, color="tab:red", ls="--",
                   label=f"best possible: one read of X, {k['floor']['what']} ({best:.2f} GB/s)")
        ax.set_ylim(0, 1.3 * max([best, *values]))  # room for the legend above the bars
        ax.set_ylabel("effective bandwidth, GB/s\n(bytes of X / time of one loss+gradient pass)")
        part = f" [{ds['part']}]" if ds.get("part") else ""
        ax.set_title(f"{ds['name']}{part}: {ds['format']} {ds['dtype']}", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def _file_name(ds):
    part = f"_{_slug(ds['part'])}" if ds.get("part") else ""
    return f"suboptimality_{_slug(ds['name'])}{part}.png"


def write_plots(result, out_dir):
    """Write the PNGs; returns their paths."""
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for ds in result["datasets"]:
        if not any(p.get("reference_objective") is not None for p in ds["problems"]):
            continue
        fig = _suboptimality_figure(plt, ds)
        path = os.path.join(out_dir, _file_name(ds))
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    with_kernels = [ds for ds in result["datasets"] if ds["kernels"].get("floor")]
    if with_kernels:
        fig = _kernel_figure(plt, with_kernels)
        path = os.path.join(out_dir, "kernels.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
