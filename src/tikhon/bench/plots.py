"""PNG plots of a benchmark result (matplotlib, non-interactive Agg backend).

* ``suboptimality_<data>.png``: relative suboptimality against wall-clock seconds,
  both on log scales, one panel per C / alpha, one line per backend/solver, anchors as
  dashed lines with markers (each marker one run at one tolerance);
* ``kernels.png``: effective bandwidth of one loss+gradient pass per backend next to the
  floor (one read of X by ``X @ w``), one panel per data set.
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


def _suboptimality_figure(plt, ds, levels):
    from matplotlib.ticker import NullFormatter

    from .measure import suboptimality

    problems = [p for p in ds["problems"] if p.get("reference_objective") is not None]
    n = max(1, len(problems))
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n, 4.4), squeeze=False)
    for ax, problem in zip(axes[0], problems):
        ref = problem["reference_objective"]
        for r in problem["records"]:
            if r["error"] is not None or not r.get("trace"):
                continue
            t = [max(p[0], 1e-6) for p in r["trace"]]
            s = [max(suboptimality(p[1], ref), _FLOOR) for p in r["trace"]]
            if r["kind"] == "anchor":
                ax.plot(t, s, "--o", ms=4, lw=1, label=r["label"])
            else:
                ax.plot(t, s, "-", lw=1.6, marker=".", ms=3, label=r["label"])
        for level in levels:
            ax.axhline(float(level), color="0.6", lw=0.7, ls=":")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels of a short log axis overlap
        ax.set_ylim(_FLOOR / 2, None)
        ax.set_xlabel("seconds (whole fit)")
        ax.set_ylabel("relative suboptimality (P - P*) / P*")
        ax.set_title(f"{ds['name']}: {problem['loss']} {problem['param']}={problem['value']:g}", fontsize=10)
        ax.grid(True, which="major", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06 + 0.03 * (len(labels) // 5), 1, 1))
    return fig


def _kernel_figure(plt, datasets):
    n = max(1, len(datasets))
    fig, axes = plt.subplots(1, n, figsize=(max(4.5, 1.2 * 6) * n, 4.2), squeeze=False)
    for ax, ds in zip(axes[0], datasets):
        k = ds["kernels"]
        names, values = [], []
        for loss in [key for key in k if key != "floor"]:
            for name, fig_ in k[loss].items():
                if "GBps" in fig_:
                    names.append(f"{name}\n{loss}")
                    values.append(fig_["GBps"])
        ax.bar(range(len(values)), values, color="tab:blue")
        ax.set_xticks(range(len(values)), names, fontsize=8)
        floor = k["floor"]["GBps"]
        ax.axhline(floor, color="tab:red", ls="--", label=f"floor: {k['floor']['what']} ({floor:.2f} GB/s)")
        ax.set_ylabel("effective bandwidth, GB/s (bytes of X / pass time)")
        ax.set_title(f"{ds['name']}: {ds['format']} {ds['dtype']}", fontsize=10)
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def write_plots(result, out_dir):
    """Write the PNGs; returns their paths."""
    plt = _pyplot()
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for ds in result["datasets"]:
        fig = _suboptimality_figure(plt, ds, result["levels"])
        path = os.path.join(out_dir, f"suboptimality_{_slug(ds['name'])}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    fig = _kernel_figure(plt, result["datasets"])
    path = os.path.join(out_dir, "kernels.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)
    return paths
