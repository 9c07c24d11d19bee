"""tikhon.plot: each function returns a Figure with the expected lines and writes a non-empty PNG."""
from __future__ import annotations

import builtins
import sys

import numpy as np
import pytest

import tikhon

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from tikhon import plot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def small():
    X, y = tikhon.datasets.load_a9a()
    rows = np.random.default_rng(0).choice(X.shape[0], 2000, replace=False)
    return X[rows], y[rows]


def _png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    return data


def _lines(fig):
    (ax,) = fig.axes
    return ax.get_lines()


def test_plot_path(tmp_path, small):
    X, y = small
    result = tikhon.regularization_path(X, y, Cs=[0.01, 0.1, 1.0, 10.0], backend="numpy")
    fig = plot.plot_path(result, out=tmp_path / "path.png")
    lines = _lines(fig)
    assert len(lines) == X.shape[1]  # one per feature
    xs = lines[0].get_xdata()
    np.testing.assert_allclose(xs, np.sort(result.grid))  # C, increasing: one parameterization everywhere
    np.testing.assert_allclose(lines[5].get_ydata(), result.coefs[np.argsort(result.grid), 5])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_xlabel().startswith("C ") and "1/C" in ax.get_xlabel()
    _png(tmp_path / "path.png")
    top = plot.plot_path(result, top=7)
    assert len(_lines(top)) == 7
    biggest = np.sort(np.argsort(-np.abs(result.coefs).max(axis=0))[:7])
    drawn = [line.get_ydata() for line in _lines(top)]
    np.testing.assert_allclose(drawn, result.coefs[np.argsort(result.grid)][:, biggest].T)


def test_plot_path_of_many_features_labels_the_largest_few(small):
    """123 features: a legend naming the 8 largest by max |w_j| (largest first), the rest grey."""
    X, y = small
    result = tikhon.regularization_path(X, y, Cs=[0.01, 1.0, 100.0], backend="numpy")
    fig = plot.plot_path(result, data="a9a")
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    largest = np.argsort(-np.abs(result.coefs).max(axis=0), kind="stable")[:plot.LABELLED]
    assert legend == [f"feature {j}" for j in largest]
    assert ax.get_title().startswith("a9a: logistic regularization path over C")
    assert sum(line.get_label().startswith("feature") for line in ax.get_lines()) == plot.LABELLED


def test_plot_cv_logistic_and_ridge(tmp_path, small):
    X, y = small
    model = tikhon.LogisticRegressionCV(Cs=5, cv=3, backend="numpy").fit(X, y)
    fig = plot.plot_cv(model, out=tmp_path / "cv.png")
    train, valid, mark = _lines(fig)
    assert train.get_label() == "training" and valid.get_label() == "validation"
    order = np.argsort(model.Cs_)
    np.testing.assert_allclose(valid.get_xdata(), model.Cs_[order])  # C, as every plot
    np.testing.assert_allclose(valid.get_ydata(), model.cv_scores_.mean(axis=0)[order])
    assert mark.get_xdata()[0] == pytest.approx(model.C_[0])
    assert f"chosen C = {model.C_[0]:.3g}" in fig.axes[0].get_title()
    _png(tmp_path / "cv.png")

    rng = np.random.default_rng(1)
    Xr = rng.standard_normal((80, 4))
    yr = Xr @ np.ones(4) + rng.standard_normal(80)
    ridge = tikhon.RidgeCV(alphas=[0.1, 1.0, 10.0, 100.0]).fit(Xr, yr)
    fig = plot.plot_cv(ridge, out=tmp_path / "ridge_cv.png")
    assert len(_lines(fig)) == 3
    assert _lines(fig)[2].get_xdata()[0] == pytest.approx(ridge.alpha_)
    _png(tmp_path / "ridge_cv.png")


def test_plot_weight_decay(tmp_path, small):
    """Stronger decay keeps w smaller; the curves are the gd solver's iterates."""
    X, y = small
    lams = [1.0, 100.0, 1000.0]
    norms = plot.weight_decay_norms(X, y, lams, n_iter=40)
    assert norms.shape == (3, 41) and np.all(norms[:, 0] == 0)
    assert norms[0, -1] > norms[1, -1] > norms[2, -1] > 0
    # the same update as the gd solver with the same fixed step: same w after 40 steps
    step = 0.5
    norms = plot.weight_decay_norms(X, y, [100.0], n_iter=40, learning_rate=step)
    gd = tikhon.LogisticRegression(C=1 / 100.0, solver="gd", learning_rate=step, max_iter=40, tol=1e-12,
                                   backend="numpy")
    with pytest.warns(Warning):  # 40 steps do not converge
        gd.fit(X, y)
    assert norms[0, -1] == pytest.approx(np.linalg.norm(gd.coef_), rel=1e-10)
    fig = plot.plot_weight_decay(X, y, lams, n_iter=20, out=tmp_path / "decay.png")
    assert len(_lines(fig)) == 3 and len(_lines(fig)[0].get_xdata()) == 21
    _png(tmp_path / "decay.png")


def test_plot_history(tmp_path, small):
    X, y = small
    fits = {s: tikhon.LogisticRegression(solver=s, backend="numpy").fit(X, y) for s in ("newton", "lbfgs")}
    fig = plot.plot_history(fits, out=tmp_path / "history.png")
    lines = _lines(fig)
    assert [line.get_label() for line in lines] == ["newton", "lbfgs"]
    assert "P^*$ = lowest objective of these runs" in fig.axes[0].get_ylabel()
    assert plot.plot_history(fits, data="a9a").axes[0].get_title() == "a9a: convergence, C = 1"
    assert len(lines[0].get_xdata()) == len(fits["newton"].history_)
    assert fig.axes[0].get_yscale() == "log"
    _png(tmp_path / "history.png")
    assert len(_lines(plot.plot_history(fits["newton"], x="iteration"))) == 1
    assert len(_lines(plot.plot_history(list(fits.values())))) == 2
    with pytest.raises(ValueError, match="x must be"):
        plot.plot_history(fits, x="epochs")


def test_missing_matplotlib_names_the_extra(monkeypatch, small):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    for name in [m for m in sys.modules if m.startswith("matplotlib")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(ImportError, match=r'pip install "tikhon\[plot\]"'):
        plot.plot_history([(0.0, 2.0), (1.0, 1.0)])


def test_l1_vs_l2_example_quick(tmp_path):
    """docs/examples/l1_vs_l2.py, reduced (5000 rows, 3 values of C): its figure and its claims."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "docs" / "examples" / "l1_vs_l2.py"
    spec = importlib.util.spec_from_file_location("l1_vs_l2", script)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    out = tmp_path / "l1_vs_l2.png"
    fig, summary = example.run(str(out), n_Cs=3, n_samples=5000)
    _png(out)
    ax_l2, ax_l1 = fig.axes[:2]
    assert len(ax_l2.get_lines()) == len(ax_l1.get_lines()) == 123  # one line per a9a feature
    l1, l2 = summary["l1_nonzero"], summary["l2_nonzero"]
    assert np.all(np.diff(l1) >= 0) and l1[0] < l1[-1]  # L1 adds weights as the penalty weakens
    assert np.all(l1 < l2)  # and keeps fewer than L2 at every C


def test_path_plot_of_several_outputs_names_class_and_feature(tmp_path):
    """A multinomial path (coefs n_grid x K x d) draws one line per (class, feature)
    and names the largest in the legend (it raised before)."""
    import matplotlib
    matplotlib.use("Agg")
    from tikhon import plot

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((200, 4)), rng.integers(0, 3, 200)
    path = tikhon.regularization_path(X, y, Cs=[0.1, 1.0, 10.0])
    fig = plot.plot_path(path, labelled=3, out=None)
    ax = fig.axes[0]
    assert len(ax.lines) == 3 * 4
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(labels) == 3 and all(label.startswith("class ") and ", feature " in label for label in labels)
