"""Verdicts: per problem, who reached a suboptimality level first, and why the others did not.

    fastest to 1e-06 here: cython/newton_cholesky (0.040 s), then sklearn/newton-cholesky
    (0.094 s, 2.4x), numpy/newton (0.134 s, 3.4x); not reached: sklearn/lbfgs (cut off by
    its 3 s budget)

over the tikhon cells and the anchors of one problem. Why a row did not reach a level
(:func:`not_reached`): ``budget`` (an anchor's tolerance sweep was cut off by its time
budget: not a failure, a run with a larger ``--anchor-budget`` may reach it), ``cap``
(the iteration cap), ``tol`` (stopped at its own tolerance above the level), ``stalled``
(a tighter tolerance gave no better objective), ``tols`` (every tolerance of the sweep
was run), ``error``. In a ``defaults`` part the ranking is by whole-fit seconds, each
with the suboptimality it stopped at. Each level's verdict ends with the ratios of
:func:`standings` (the default fit against tikhon's fastest row and the fastest anchor).
"""
from __future__ import annotations

from .measure import level_key

__all__ = ["REASONS", "add_verdicts", "not_reached", "reason_text", "standings", "verdict"]

REASONS = {
    "budget": "cut off by its {budget:g} s budget",
    "cap": "iteration cap",
    "tol": "stopped at its tolerance",
    "stalled": "stalled (a tighter tolerance gave nothing better)",
    "tols": "its tightest tolerance was not enough",
    "error": "error",
}


def not_reached(record):
    """Why ``record`` (a scored tikhon cell or anchor) missed a level: a key of :data:`REASONS`."""
    if record.get("error") is not None:
        return "error"
    if record["kind"] == "anchor":
        return record.get("stop") if record.get("stop") in REASONS else "tols"
    max_iter = record.get("max_iter")
    if not record.get("converged") and max_iter is not None and record.get("iterations", 0) >= max_iter:
        return "cap"
    return "tol"


def reason_text(record, reason):
    return REASONS[reason].format(budget=record.get("budget_seconds") or 0.0)


SHOWN = 6  # rows named in a verdict line; the JSON ranking holds them all


def _seconds(value):
    if value >= 1:
        return f"{value:.3g} s"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} ms"
    return f"{value * 1e6:.3g} us"


def verdict(problem, level):
    """``{"level", "ranking": [{label, seconds, ratio}], "not_reached": {label: reason}, "text"}``
    for one level (a key such as ``"1e-06"``)."""
    ok = [r for r in problem["records"] if r.get("error") is None and "time_to" in r]
    reached = sorted(((r["time_to"][level], r["label"]) for r in ok if r["time_to"].get(level) is not None))
    ranking = []
    for seconds, label in reached:
        ratio = seconds / reached[0][0] if reached[0][0] > 0 else 1.0
        ranking.append({"label": label, "seconds": seconds, "ratio": ratio})
    missed = {r["label"]: r["not_reached"].get(level, "tol") for r in ok if r["time_to"].get(level) is None}
    missed.update({r["label"]: "error" for r in problem["records"] if r.get("error") is not None})
    by_label = {r["label"]: r for r in problem["records"]}
    if ranking:
        first = ranking[0]
        text = f"fastest to {level} here: {first['label']} ({_seconds(first['seconds'])})"
        rest = [f"{e['label']} ({_seconds(e['seconds'])}, {e['ratio']:.1f}x)" for e in ranking[1:SHOWN]]
        if rest:
            text += ", then " + ", ".join(rest)
        if len(ranking) > SHOWN:
            text += f" and {len(ranking) - SHOWN} more"
    else:
        text = f"nobody reached {level} here"
    if missed:
        text += "; not reached: " + ", ".join(f"{label} ({reason_text(by_label[label], why)})"
                                             for label, why in missed.items())
    ratios = standings(ranking, by_label)
    if ratios["text"]:
        text += "; " + ratios["text"]
    return {"level": level, "ranking": ranking, "not_reached": missed, "ratios": ratios, "text": text}


AUTO = "tikhon/auto"  # the runner's row of the user's default: backend and solver "auto"


def standings(ranking, by_label):
    """The ratios of issues 15 and 18 at one level, from a ``ranking`` of the rows that
    reached it: ``auto / tikhon best`` (the default against tikhon's fastest named
    backend/solver), ``auto / best competitor`` and ``tikhon best / best competitor``
    (the fastest anchor). A ratio is None when one side did not reach the level."""
    seconds = {e["label"]: e["seconds"] for e in ranking}

    def fastest(kind):
        rows = [e for e in ranking if by_label[e["label"]]["kind"] == kind and e["label"] != AUTO]
        return rows[0] if rows else None

    best, rival, auto = fastest("tikhon"), fastest("anchor"), seconds.get(AUTO)

    def ratio(a, b):
        return a / b if a is not None and b and b > 0 else None

    out = {"auto_vs_tikhon_best": ratio(auto, best and best["seconds"]),
           "auto_vs_competitor": ratio(auto, rival and rival["seconds"]),
           "tikhon_best_vs_competitor": ratio(best and best["seconds"], rival and rival["seconds"]),
           "tikhon_best": best and best["label"], "competitor": rival and rival["label"]}
    parts = []
    if out["auto_vs_tikhon_best"] is not None:
        parts.append(f"auto/tikhon best {out['auto_vs_tikhon_best']:.2f} ({best['label']})")
    if out["auto_vs_competitor"] is not None:
        parts.append(f"auto/best competitor {out['auto_vs_competitor']:.2f} ({rival['label']})")
    if out["tikhon_best_vs_competitor"] is not None:
        parts.append(f"tikhon best/best competitor {out['tikhon_best_vs_competitor']:.2f}")
    out["text"] = ", ".join(parts)
    return out


def _entry(e, first):
    ratio = "" if first else f", {e['ratio']:.1f}x"
    subopt = e["relative_suboptimality"]
    return f"{e['label']} ({_seconds(e['seconds'])}{ratio}, subopt {subopt:.0e})" if subopt is not None \
        else f"{e['label']} ({_seconds(e['seconds'])}{ratio})"


def verdict_by_seconds(problem):
    """Ranking of whole-fit seconds (``defaults`` parts), with the suboptimality reached."""
    ok = sorted((r for r in problem["records"] if r.get("error") is None and "seconds" in r),
                key=lambda r: r["seconds"])
    ranking = [{"label": r["label"], "seconds": r["seconds"], "ratio": r["seconds"] / ok[0]["seconds"],
                "relative_suboptimality": r.get("relative_suboptimality")} for r in ok]
    parts = [_entry(e, first=i == 0) for i, e in enumerate(ranking)]
    text = "fastest default fit here: " + (parts[0] + (", then " + ", ".join(parts[1:]) if parts[1:] else "")
                                           if parts else "none")
    errors = [r["label"] for r in problem["records"] if r.get("error") is not None]
    if errors:
        text += "; failed: " + ", ".join(errors)
    return {"level": "fit", "ranking": ranking, "not_reached": {label: "error" for label in errors}, "text": text}


def add_verdicts(problem, levels, verdict_level, by_seconds=False):
    """Store ``problem["verdicts"]`` (one per level) and ``problem["verdict"]`` (the level of
    the headline: ``verdict_level`` if timed, else the tightest timed level)."""
    keys = [level_key(v) for v in levels]
    problem["verdicts"] = {k: verdict(problem, k) for k in keys}
    if by_seconds:
        problem["verdict"] = verdict_by_seconds(problem)
        return
    key = level_key(verdict_level)
    problem["verdict"] = problem["verdicts"][key if key in problem["verdicts"] else keys[-1]]
