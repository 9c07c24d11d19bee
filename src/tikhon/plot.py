"""Pictures of what L2 does: coefficient paths, train/validation scores, weight decay, convergence.

One parameterization everywhere: ``C`` for logistic regression (the penalty is
``lambda = 1/C``) and ``alpha`` for ridge (``lambda = alpha``), said in each axis label;
``data=`` puts the data set's name in a title.

matplotlib is optional (``pip install "tikhon[plot]"``) and imported only when a
function here is called. Figures are built with ``matplotlib.figure.Figure`` (no
pyplot, no global state, no display needed); each function returns the Figure and,
given ``out``, also writes it as a PNG.
"""
from __future__ import annotations

import numpy as np

__all__ = ["plot_path", "plot_cv", "plot_weight_decay", "plot_history", "weight_decay_norms"]

_HINT = 'tikhon\'s plots need matplotlib: pip install "tikhon[plot]"'


def _figure(ax=None, size=(6.4, 4.4)):
    """``(figure, axes)``: a new Figure, or the one holding the given axes."""
    if ax is not None:
        return ax.figure, ax
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError(f"{_HINT} ({exc})") from exc
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def _finish(fig, out):
    if out is not None:
        fig.savefig(out, format="png", dpi=110)
    return fig


def _param(model):
    """The one parameterization of every plot: ``C`` for logistic, ``alpha`` for ridge."""
    return "C" if model == "logistic" else "alpha"


def _param_label(model):
    if model == "logistic":
        return r"C  (penalty $\lambda = 1/C$; larger C = weaker penalty $\rightarrow$)"
    return r"alpha  (penalty $\lambda = \alpha$; larger alpha = stronger penalty $\rightarrow$)"


def _title(text, data):
    return f"{data}: {text}" if data else text


LABELLED = 8  # a path of more features than this labels only its largest ones


def plot_path(result, *, top=None, labelled=LABELLED, data=None, ax=None, out=None):
    """Coefficients against ``C`` (logistic) or ``alpha`` (ridge), log scale: one line per feature.

    ``result``: a :class:`tikhon.path.PathResult`. ``top``: draw only the ``top``
    features of largest ``max |w_j|`` along the path (all by default). The ``labelled``
    largest drawn features are named in the legend (``feature j``); with more features
    than that, the others are thin grey lines. ``data``: the data set's name, for the title.
    """
    fig, ax = _figure(ax)
    order = np.argsort(result.grid)
    grid, coefs = np.asarray(result.grid)[order], np.asarray(result.coefs)[order]
    outputs = coefs.shape[1] if coefs.ndim == 3 else 1  # several classes or targets: one line per (k, j)
    coefs = coefs.reshape(len(grid), -1)
    name = (lambda j: f"feature {j}") if outputs == 1 else \
        (lambda j: f"{'class' if result.model == 'logistic' else 'target'} {j // (coefs.shape[1] // outputs)}, "
                   f"feature {j % (coefs.shape[1] // outputs)}")
    size = np.abs(coefs).max(axis=0)
    ranked = np.argsort(-size, kind="stable")
    features = np.arange(coefs.shape[1])
    if top is not None and top < features.size:
        features = np.sort(ranked[:top])
    named = set(ranked[:labelled].tolist()) if features.size > labelled else set(features.tolist())
    colors = iter([f"C{k}" for k in (0, 1, 2, 3, 4, 5, 6, 8, 9)] * (len(named) // 9 + 1))  # no grey C7
    for j in features:
        if j in named:
            ax.plot(grid, coefs[:, j], lw=1.4, label=name(j), zorder=3, color=next(colors))
        else:
            ax.plot(grid, coefs[:, j], lw=0.6, color="0.7", zorder=2)
    ax.set_xscale("log")
    ax.grid(True, which="major", color="0.9", lw=0.6)
    ax.set_xlabel(_param_label(result.model))
    ax.set_ylabel("coefficient $w_j$")
    lines = "coefficients" if outputs > 1 else "features"
    shown = f"{features.size} of {coefs.shape[1]} {lines}" if features.size < coefs.shape[1] \
        else f"{coefs.shape[1]} {lines}"
    ax.set_title(_title(f"{result.model} regularization path over {_param(result.model)} ({shown}; "
                        f"{result.method})", data), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    index = {name(j): j for j in features}
    order = sorted(range(len(labels)), key=lambda i: -size[index[labels[i]]])
    title = f"largest {len(named)} by max |w_j|" if features.size > len(named) else None
    ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7, title=title,
              title_fontsize=7, loc="best")
    return _finish(fig, out)


def plot_cv(estimator, *, data=None, ax=None, out=None):
    """Mean training and validation score against ``C`` (logistic) or ``alpha`` (ridge),
    +-1 std bands, the chosen value marked.

    ``estimator``: a fitted :class:`tikhon.LogisticRegressionCV` or :class:`tikhon.RidgeCV`.
    Three lines: training, validation, and the vertical mark at the chosen value.
    """
    fig, ax = _figure(ax)
    if hasattr(estimator, "Cs_"):
        grid, chosen, model = np.asarray(estimator.Cs_), float(np.ravel(estimator.C_)[0]), "logistic"
    else:
        grid, chosen, model = np.asarray(estimator.alphas_), float(np.ravel(estimator.alpha_)[0]), "ridge"
    order = np.argsort(grid)
    grid = grid[order]
    for scores, label, color in ((estimator.train_scores_, "training", "tab:blue"),
                                 (estimator.cv_scores_, "validation", "tab:orange")):
        scores = np.asarray(scores)[:, order]
        mean, std = scores.mean(axis=0), scores.std(axis=0)
        ax.plot(grid, mean, marker="o", ms=3, color=color, label=label)
        if scores.shape[0] > 1:
            ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.15, lw=0)
    ax.axvline(chosen, color="k", ls="--", lw=1.0, label=f"chosen {_param(model)} = {chosen:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel(_param_label(model))
    scoring = getattr(estimator, "scoring", None)
    ax.set_ylabel(str(scoring) if scoring is not None else
                  ("accuracy" if model == "logistic" else
                   ("R$^2$" if getattr(estimator, "cv_method_", "") == "kfold" else "minus mean squared error")))
    what = "leave-one-out" if getattr(estimator, "cv_method_", "") == "loo" else \
        f"{np.asarray(estimator.cv_scores_).shape[0]}-fold"
    ax.set_title(_title(f"training vs validation score ({what}), chosen {_param(model)} = {chosen:.3g}", data),
                 fontsize=10)
    ax.legend(fontsize=8)
    return _finish(fig, out)


def weight_decay_norms(X, y, lams, *, model="logistic", n_iter=200, learning_rate=None, backend="numpy",
                       fit_intercept=True):
    """``||w||`` after each of ``n_iter`` gradient-descent steps, for each penalty in ``lams``.

    The seeds' update on the mean-scaled problem, exactly as the ``gd`` solver:
    ``w <- w (1 - step lam / m) - (step / m) grad_w(data term)``, from ``w = 0`` (and the
    best constant intercept, as the estimators start). One step
    for every ``lam`` (``learning_rate``, or ``1 / L`` of the largest ``lam``, which is
    stable for all), so the curves differ only by the decay factor. Returns an array
    (len(lams), n_iter + 1).
    """
    from .backends import get_backend
    from .objective import Objective
    from .path import _validate
    from .solvers import Problem
    from .solvers.gd import default_step

    loss = "logistic" if model == "logistic" else "squared"
    X, t, s, _ = _validate(X, y, model, None, None)
    lams = np.asarray(lams, dtype=np.float64)
    be = get_backend(backend, X)(X, t, s, Objective(loss, 1.0).pointwise)
    m = be.weight_sum
    if learning_rate is None:
        step = default_step(Problem(Objective(loss, float(lams.max()), fit_intercept), be))
    else:
        step = float(learning_rate)
    norms = np.zeros((lams.size, n_iter + 1))
    for i, lam in enumerate(lams):
        objective = Objective(loss, float(lam), fit_intercept)
        decay = objective.weight_decay(step, m)
        w, b = np.zeros(X.shape[1]), 0.0
        if fit_intercept:  # the estimators' start: w = 0 and the best constant model
            b = objective.constant_intercept(t, s)
        for k in range(n_iter):
            _, gw, gb = be.loss_grad(w, b)
            w = w * decay - (step / m) * gw
            if fit_intercept:
                b -= (step / m) * gb
            norms[i, k + 1] = np.linalg.norm(w)
    return norms


def plot_weight_decay(X, y, lams, *, model="logistic", n_iter=200, learning_rate=None, backend="numpy",
                      ax=None, out=None):
    """The seeds' weight-decay view: ``||w||`` over gradient-descent iterations, one line per ``lam``
    (see :func:`weight_decay_norms`)."""
    norms = weight_decay_norms(X, y, lams, model=model, n_iter=n_iter, learning_rate=learning_rate,
                               backend=backend)
    fig, ax = _figure(ax)
    for lam, curve in zip(np.asarray(lams, dtype=np.float64), norms):
        name = f"C = {1.0 / lam:.3g}" if model == "logistic" else f"alpha = {lam:.3g}"
        ax.plot(np.arange(curve.size), curve, label=f"{name} ($\\lambda$ = {lam:g})")
    ax.set_xlabel("gradient-descent iteration")
    ax.set_ylabel(r"$\|w\|_2$")
    ax.set_title(r"weight decay: $w \leftarrow w(1 - \eta\lambda/m) - \eta\,\nabla L$", fontsize=10)
    ax.legend(fontsize=8)
    return _finish(fig, out)


def _records(item):
    history = getattr(item, "history_", item)
    records = np.asarray(history, dtype=np.float64).reshape(-1, 2)
    if records.shape[0] == 0:
        raise ValueError("empty history: nothing to plot")
    return records


def _shared_setting(items):
    """``"C = 1"`` / ``"alpha = 1"`` when every fitted estimator in ``items`` has the same one."""
    values = {(name, getattr(item, name)) for item in items for name in ("C", "alpha") if hasattr(item, name)}
    if len(values) == 1:
        name, value = values.pop()
        return f"{name} = {value:g}"
    return None


def plot_history(histories, *, labels=None, x="time", data=None, ax=None, out=None):
    """Convergence: relative suboptimality ``(P - P*) / P*`` against time or iteration.

    ``histories``: a fitted estimator (its ``history_``), a list of ``(seconds,
    objective)`` records, or a dict ``label -> either``, or a list of those. ``P*`` is the
    smallest objective over all histories (so the best run ends at the floor, 1e-16).
    One line per history. ``x``: ``"time"`` (seconds) or ``"iteration"``.
    """
    if x not in ("time", "iteration"):
        raise ValueError(f"x must be 'time' or 'iteration', got {x!r}")
    if isinstance(histories, dict):
        labels, items = list(histories), list(histories.values())
    elif isinstance(histories, (list, tuple)) and histories and not np.isscalar(histories[0]) \
            and (hasattr(histories[0], "history_") or np.ndim(histories[0]) == 2):
        items = list(histories)
    else:
        items = [histories]
    records = [_records(item) for item in items]
    if labels is None:
        labels = [getattr(item, "solver_", f"run {i}") for i, item in enumerate(items)]
    best = min(r[:, 1].min() for r in records)
    fig, ax = _figure(ax)
    for r, label in zip(records, labels):
        gap = np.maximum((r[:, 1] - best) / max(abs(best), np.finfo(float).tiny), 1e-16)
        xs = r[:, 0] if x == "time" else np.arange(r.shape[0])
        ax.plot(xs, gap, marker=".", ms=3, label=str(label))
    ax.set_yscale("log")
    ax.set_xlabel("seconds" if x == "time" else "iteration")
    ax.set_ylabel("relative suboptimality $(P - P^*) / P^*$\n$P^*$ = lowest objective of these runs")
    setting = _shared_setting(items)
    ax.set_title(_title("convergence" + (f", {setting}" if setting else ""), data), fontsize=10)
    ax.legend(fontsize=8)
    return _finish(fig, out)
