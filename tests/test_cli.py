"""The command line: `tikhon bench` end to end on tiny data, `fit` / `predict`, and bad arguments."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tikhon
from conftest import _require
from tikhon.cli import main

TINY = ["--data", "synthetic:n=400,d=8,seed=1", "--C", "1", "--anchor-budget", "0.5",
        "--kernel-seconds", "0.005", "--no-warmup"]


def _command():
    exe = shutil.which("tikhon")
    return [exe] if exe else [sys.executable, "-m", "tikhon.cli"]


def test_bench_console_script_end_to_end(tmp_path):
    """`tikhon bench` as installed (console script), every available backend, on tiny data."""
    out = tmp_path / "bench"
    proc = subprocess.run([*_command(), "bench", *TINY, "--out", str(out)], capture_output=True, text=True,
                          timeout=240)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "numpy/newton" in proc.stdout and "baseline" in proc.stdout
    assert "kernels: one loss+gradient pass" in proc.stdout
    assert "elapsed" in proc.stderr  # the progress display
    result = json.loads((out / "results.json").read_text())
    for key in ("format", "environment", "config", "levels", "memory_method", "anchors", "datasets", "total_seconds"):
        assert key in result, key
    assert result["levels"] == ["1e-03", "1e-06", "1e-08"]
    (ds,) = result["datasets"]
    assert ds["n_samples"] == 400 and ds["format"] == "dense"
    assert set(ds["kernels"]) == {"floor", "logistic"}
    numpy_kernel = ds["kernels"]["logistic"]["numpy"]
    assert numpy_kernel["speedup_vs_numpy"] == 1.0 and 0 < numpy_kernel["of_floor"]
    assert ds["kernels"]["floor"]["GBps"] > 0
    (problem,) = ds["problems"]
    assert problem["param"] == "C" and problem["value"] == 1.0
    records = {r["label"]: r for r in problem["records"]}
    base = records["numpy/newton"]
    assert base["error"] is None
    for key in ("time_to", "final_objective", "iterations", "peak_memory_bytes", "trace", "relative_suboptimality"):
        assert key in base, key
    assert all(base["time_to"][k] is not None for k in result["levels"])
    assert problem["reference_objective"] <= base["final_objective"]
    backends = {r["backend"] for r in problem["records"] if r["kind"] == "tikhon"}
    skipped = {key.split("/")[0] for key in ds["skipped"]}
    for name in tikhon.available_backends():  # each one run, or its skip explained
        assert name in backends or name in skipped, (name, ds["skipped"])
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "plots skipped: matplotlib cannot be imported" in proc.stdout
        return
    for png in ("suboptimality_synthetic-400x8-dense-float64.png", "kernels.png"):
        path = out / png
        assert path.exists() and path.stat().st_size > 1000
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_ridge_csr_float32_in_process(tmp_path, capsys):
    out = tmp_path / "b"
    code = main(["bench", "--data", "synthetic:n=300,d=40,density=0.2,dtype=float32", "--alpha", "1,10",
                 "--backend", "numpy", "--solver", "newton,lbfgs", "--anchors", "sklearn", "--memory", "rss",
                 "--anchor-budget", "0.3", "--kernel-seconds", "0.005", "--repeat", "2", "--out", str(out),
                 "--no-plots", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads((out / "results.json").read_text())
    (ds,) = result["datasets"]
    assert ds["format"] == "csr" and ds["dtype"] == "float32"
    assert [p["value"] for p in ds["problems"]] == [1.0, 10.0]
    labels = [r["label"] for r in ds["problems"][0]["records"]]
    assert labels[:2] == ["numpy/newton", "numpy/lbfgs"] and any(lb.startswith("sklearn/") for lb in labels)
    assert len(ds["problems"][0]["records"][0]["seconds_all"]) == 2
    assert not list(out.glob("*.png"))
    assert "squared alpha=10" in captured.out


def test_unknown_backend_lists_valid_ones(capsys):
    assert main(["bench", "--backend", "numpy,cuda"]) == 2
    err = capsys.readouterr().err
    assert "unknown backend 'cuda'" in err
    for name in tikhon.backend_names():
        assert name in err
    assert main(["fit", "nowhere.svm", "--backend", "cuda"]) == 2
    assert "valid backends are" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    ([], "required"),
    (["frobnicate"], "invalid choice"),
    (["bench", "--repeat", "0"], "positive integer"),
    (["bench", "--C", "-1"], "finite positive"),
    (["bench", "--C", "abc"], "takes numbers"),
    (["bench", "--solver", "magic"], "valid solvers are auto"),
    (["bench", "--anchors", "matlab"], "valid anchors are sklearn, liblinear"),
    (["bench", "--levels", "2"], "in (0, 1)"),
    (["bench", "--data", "synthetic:n=abc"], "not a number"),
    (["bench", "--data", "synthetic:q=3"], "synthetic:n=...,d="),
    (["bench", "--data", "/no/such/file.svm"], "not a file"),
    (["bench", "--dtype", "int8"], "unknown dtype"),
    (["bench", "--memory", "psychic"], "invalid choice"),
    (["fit", "/no/such/file.svm"], "does not exist"),
    (["fit", "x.svm", "--C", "0"], "finite positive"),
])
def test_bad_arguments_exit_2_with_message(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err


def test_help_exits_0(capsys):
    assert main(["bench", "--help"]) == 0
    assert "--backend" in capsys.readouterr().out


@pytest.fixture
def svm_files(tmp_path):
    from sklearn.datasets import dump_svmlight_file

    X, y = tikhon.datasets.make_classification(300, 6, seed=4)
    train, test = tmp_path / "train.svm", tmp_path / "test.svm"
    dump_svmlight_file(X[:200], y[:200], str(train), zero_based=False)
    dump_svmlight_file(X[200:, :5], y[200:], str(test), zero_based=False)  # mentions fewer features
    return X, y, train, test


def test_fit_predict_svmlight(tmp_path, svm_files, capsys):
    X, y, train, test = svm_files
    model_path = tmp_path / "model.npz"
    assert main(["fit", str(train), "--C", "2", "--backend", "numpy", "--model", str(model_path)]) == 0
    assert "backend numpy" in capsys.readouterr().out
    from tikhon._io import load_model

    model = load_model(model_path)
    assert model.C == 2.0 and model.backend_ == "numpy"
    pred = tmp_path / "pred.txt"
    assert main(["predict", str(model_path), str(test), "--out", str(pred)]) == 0
    assert "accuracy" in capsys.readouterr().err
    values = np.loadtxt(pred)
    assert values.shape == (100,) and set(np.unique(values)) <= {-1.0, 1.0}
    assert main(["predict", str(model_path), str(test), "--proba", "--out", str(tmp_path / "p.npy")]) == 0
    proba = np.load(tmp_path / "p.npy")
    assert np.all((proba >= 0) & (proba <= 1))


def test_fit_predict_npz_npy_ridge(tmp_path, capsys):
    X, y = tikhon.datasets.make_classification(150, 5, seed=2)
    np.savez(tmp_path / "data.npz", X=X, y=y * 3.0)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y * 3.0)
    assert main(["fit", str(tmp_path / "data.npz"), "--task", "ridge", "--alpha", "0.5",
                 "-o", str(tmp_path / "r.npz")]) == 0
    assert main(["fit", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"), "--task", "ridge",
                 "--alpha", "0.5", "-o", str(tmp_path / "r2.npz")]) == 0
    assert "train R^2" in capsys.readouterr().out
    assert main(["predict", str(tmp_path / "r.npz"), str(tmp_path / "X.npy"), "-o", str(tmp_path / "out.npy")]) == 0
    expected = tikhon.Ridge(alpha=0.5).fit(X, y * 3.0).predict(X)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, rtol=1e-6, atol=1e-8)
    # .npy data without labels cannot be fitted
    assert main(["fit", str(tmp_path / "X.npy")]) == 2
    assert "--labels" in capsys.readouterr().err


def test_predict_with_bad_model_file(tmp_path, svm_files, capsys):
    """A model file that cannot be read is the user's input: exit 2 (it was 1), one line."""
    _, _, train, test = svm_files
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK\x03\x04 not really")
    assert main(["predict", str(bad), str(test)]) == 2
    err = capsys.readouterr().err
    assert "cannot read model file" in err and len(err.strip().splitlines()) == 1


def test_bench_svmlight_file_and_skipped_anchor(tmp_path, svm_files, monkeypatch, capsys):
    """A data file path works, and an anchor that is not installed is skipped with the reason."""
    import importlib.util

    from tikhon.bench import anchors

    real = importlib.util.find_spec
    monkeypatch.setattr(anchors.importlib.util, "find_spec",
                        lambda name, *a: None if name == "liblinear" else real(name, *a))
    _, _, train, _ = svm_files
    code = main(["bench", "--data", str(train), "--backend", "numpy", "--anchors", "liblinear", "--C", "1",
                 "--kernel-seconds", "0.005", "--out", str(tmp_path / "o"), "--no-plots", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "anchor liblinear skipped: liblinear is not installed (pip install liblinear-official)" in captured.out
    result = json.loads((tmp_path / "o" / "results.json").read_text())
    assert result["anchors"] == {"run": [], "skipped": {"liblinear": result["anchors"]["skipped"]["liblinear"]}}
    assert result["datasets"][0]["name"] == "train" and result["datasets"][0]["n_samples"] == 200


# ---------------------------------------------------------------- tikhon plot
def test_plot_commands_write_pngs(tmp_path, svm_files, capsys):
    """`tikhon plot path|cv|history` on a data file: PNG files with the expected lines."""
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    _, _, train, _ = svm_files
    out = tmp_path / "pics"
    runs = {
        "path": ["--C", "0.01,0.1", "1", "10", "--backend", "numpy"],
        "cv": ["--C", "0.01", "1", "100", "--cv", "3", "--backend", "numpy"],
        "history": ["--solvers", "newton,lbfgs", "--backend", "numpy", "--x", "iteration"],
    }
    for kind, extra in runs.items():
        png = out / f"{kind}.png"
        assert main(["plot", kind, str(train), *extra, "--out", str(png)]) == 0, kind
        assert f"wrote {png}" in capsys.readouterr().out
        assert png.stat().st_size > 5000 and imread(str(png)).shape[2] in (3, 4)
    png = tmp_path / "ridge.png"
    assert main(["plot", "path", str(train), "--task", "ridge", "--alpha", "1", "10", "--out", str(png)]) == 0
    assert "by eigh" in capsys.readouterr().out  # small data: the closed form


@pytest.mark.parametrize("args, message", [
    (["plot", "path", "missing.svm"], "does not exist"),
    (["plot", "path", "TRAIN", "--C", "0"], "must be a finite positive number"),
    (["plot", "cv", "TRAIN", "--solver", "magic"], "unknown solver 'magic'"),
    (["plot", "history", "TRAIN", "--backend", "nope"], "unknown backend 'nope'"),
    (["plot", "scatter", "TRAIN"], "invalid choice"),
])
def test_plot_bad_arguments_exit_2(args, message, svm_files, tmp_path, capsys):
    _, _, train, _ = svm_files
    args = [str(train) if a == "TRAIN" else a for a in args]
    assert main([*args, "--out", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err


# ---------------------------------------------------------------- fit / predict on real files (issue 17)
def _run(argv, capsys):
    """``(exit code, stdout, stderr lines)`` of ``tikhon ARGV`` in process."""
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip().splitlines()


def _notes(err):
    return "\n".join(err)


def test_a9a_train_test_pair(tmp_path, capsys):
    """LIBSVM's a9a / a9a.t: the test file's largest index is 122 of 123; predict reads it at
    the model's width, as LIBLINEAR does (it failed when the widths differed)."""
    from sklearn.datasets import load_svmlight_file

    from tikhon._io import load_model

    train, test = _require("a9a.xz"), _require("a9a.t")
    model_path, pred = tmp_path / "a9a.npz", tmp_path / "pred.txt"
    code, out, err = _run(["fit", train, "--backend", "numpy", "--model", model_path], capsys)
    assert code == 0, err
    assert "task auto chose logistic: the labels are 2 classes (-1, 1)" in _notes(err)
    model = load_model(model_path)
    assert model.n_features_in_ == 123
    code, out, err = _run(["predict", model_path, test, "--out", pred], capsys)
    assert code == 0, err
    X_test, y_test = load_svmlight_file(str(test), n_features=123)
    expected = model.predict(X_test)
    np.testing.assert_array_equal(np.loadtxt(pred), expected)
    assert f"accuracy on {test}: {np.mean(expected == y_test):.4f}" in _notes(err)
    # a test file that names a feature beyond the model's width: ignored, and said so
    wider = tmp_path / "a9a_wider.t"
    lines = test.read_text().splitlines()
    wider.write_text("\n".join(line + " 130:1 200:0.5" if k % 3 == 0 else line for k, line in enumerate(lines)) + "\n")
    code, out, err = _run(["predict", model_path, wider], capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.loadtxt(out.splitlines()), expected)
    dropped = 2 * len(range(0, len(lines), 3))
    assert f"{wider} has features up to 200; {dropped} values of features beyond 123 ignored" in _notes(err)


@pytest.mark.parametrize("width", [4, 6, 9])
def test_predict_reads_svmlight_of_any_width(tmp_path, capsys, width):
    """A model of 6 features on svmlight test files of 4 (missing features are 0), 6 and 9
    (features 7..9 ignored) columns: the predictions of the model on the first 6 columns."""
    from sklearn.datasets import dump_svmlight_file

    from tikhon._io import load_model

    X, y = tikhon.datasets.make_classification(120, 9, seed=5)
    train, test, model_path = tmp_path / "train.svm", tmp_path / "test.svm", tmp_path / "m.npz"
    dump_svmlight_file(X[:80, :6], y[:80], str(train), zero_based=False)
    dump_svmlight_file(X[80:, :width], y[80:], str(test), zero_based=False)
    assert _run(["fit", train, "--model", model_path], capsys)[0] == 0
    code, out, err = _run(["predict", model_path, test, "--decision"], capsys)
    assert code == 0, err
    model = load_model(model_path)
    seen = np.zeros((40, 6))
    seen[:, :min(width, 6)] = X[80:, :min(width, 6)]
    np.testing.assert_allclose(np.loadtxt(out.splitlines()), model.decision_function(seen), rtol=1e-9)
    assert ("ignored (as LIBLINEAR does)" in _notes(err)) == (width > 6)


def test_fit_n_features(tmp_path, capsys):
    """``--n-features`` widens a narrow training file (a9a.t: 122 -> 123) and cuts a wide one."""
    from tikhon._io import load_model

    test = _require("a9a.t")
    for n, noted in ((123, False), (100, True)):
        path = tmp_path / f"m{n}.npz"
        code, out, err = _run(["fit", test, "--n-features", n, "--model", path], capsys)
        assert code == 0, err
        assert load_model(path).n_features_in_ == n and f"x {n} in" in out
        assert ("features beyond 100 ignored" in _notes(err)) == noted
    code, out, err = _run(["fit", test, "--model", tmp_path / "m.npz"], capsys)
    assert load_model(tmp_path / "m.npz").n_features_in_ == 122


def _write_table(path, X, y, sep=",", header=None, opener=open):
    """A dense text file: the label first, then the features."""
    with opener(path, "wt") as f:
        if header:
            f.write(sep.join(header) + "\n")
        for label, row in zip(y, X):
            f.write(sep.join([str(label), *(repr(float(v)) for v in row)]) + "\n")


@pytest.mark.parametrize("name, sep, header, opener", [
    ("data.csv", ",", True, open),
    ("data.txt", " ", False, open),
    ("data.tsv", "\t", True, open),
    ("data.csv.gz", ",", True, __import__("gzip").open),
    ("data.csv.bz2", ",", False, __import__("bz2").open),
    ("data.txt.xz", " ", True, __import__("lzma").open),
    ("data.svm", ",", True, open),  # the content decides, not the name
])
def test_fit_dense_text(tmp_path, capsys, name, sep, header, opener):
    """Dense text, label first, comma- or whitespace-separated, with or without a header
    line, compressed or not: the model fitted on the same arrays (it crashed with "need
    more than 1 value to unpack")."""
    from tikhon._io import load_model

    X, y = tikhon.datasets.make_classification(60, 3, seed=7)
    _write_table(tmp_path / name, X, y.astype(int), sep, ["label", "a", "b", "c"] if header else None, opener)
    code, out, err = _run(["fit", tmp_path / name, "--backend", "numpy", "--model", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "60 x 3" in out and ("the column 'label'" in _notes(err)) == header
    expected = tikhon.LogisticRegression(backend="numpy").fit(X, y)
    np.testing.assert_allclose(load_model(tmp_path / "m.npz").coef_, expected.coef_, rtol=1e-8)


def test_cal_housing_csv_label_last(tmp_path, capsys):
    """The shared CSV with a header and the target last: --label-column last or by name;
    --task auto chooses ridge (real-valued labels)."""
    from tikhon._io import load_model

    path = _require("cal_housing.data")
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    expected = tikhon.Ridge(alpha=3.0).fit(data[:, :-1], data[:, -1])
    for column in ("last", "median_house_value"):
        code, out, err = _run(["fit", path, "--label-column", column, "--alpha", "3",
                               "--model", tmp_path / "m.npz"], capsys)
        assert code == 0, err
        assert "fit Ridge" in out and "20640 x 8" in out
        assert "the column 'median_house_value'" in _notes(err) and "task auto chose ridge" in _notes(err)
        np.testing.assert_allclose(load_model(tmp_path / "m.npz").coef_, expected.coef_, rtol=1e-6)


def test_text_labels_csv_fit_predict(tmp_path, capsys):
    """Text labels: logistic regression, predictions written as the labels themselves."""
    X, y = tikhon.datasets.make_classification(50, 2, seed=8)
    labels = np.where(y > 0, "spam", "ham")
    _write_table(tmp_path / "mail.csv", X, labels)
    code, out, err = _run(["fit", tmp_path / "mail.csv", "-o", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "the labels are 2 classes (ham, spam)" in _notes(err)
    code, out, err = _run(["predict", tmp_path / "m.npz", tmp_path / "mail.csv"], capsys)
    assert code == 0, err
    expected = tikhon.LogisticRegression().fit(X, labels).predict(X)
    assert out.split() == list(expected)


@pytest.mark.parametrize("labels, task, reason", [
    ([-1.0, 1.0] * 10, "logistic", "2 classes (-1, 1)"),
    (["b", "a", "c"] * 10, "logistic", "3 classes (a, b, c)"),
    ([1, 2, 3] * 40, "logistic", "3 classes (1, 2, 3)"),
    ([0.5, 1.25, 3.0] * 10, "ridge", "real numbers in [0.5, 3]"),
    (list(range(150)) + [0] * 50, "ridge", "150 distinct integers, 149 of them on fewer than 1% of the rows"),
])
def test_auto_task_from_labels(labels, task, reason):
    from tikhon.cli import _auto_task

    chosen, why = _auto_task(np.array(labels))
    assert chosen == task and reason in why, why


def test_auto_task_on_shared_files(tmp_path, capsys):
    """abalone (integer ages 1..29, some on a row or two) is a regression; a9a two classes."""
    code, out, err = _run(["fit", _require("abalone_scale.bz2"), "-o", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    assert "fit Ridge" in out and "task auto chose ridge: the labels are 28 distinct integers" in _notes(err)
    code, out, err = _run(["fit", _require("abalone_scale.bz2"), "--task", "ridge", "-o", tmp_path / "m.npz"],
                          capsys)
    assert code == 0 and "task auto" not in _notes(err)


def test_options_that_do_not_apply_are_warned(tmp_path, capsys):
    """One line on stderr each, exit 0, and the fit the same as without them."""
    from tikhon._io import load_model

    X, y = tikhon.datasets.make_classification(80, 4, seed=9)
    np.savez(tmp_path / "r.npz", X=X, y=X @ np.arange(1.0, 5.0))
    code, out, err = _run(["fit", tmp_path / "r.npz", "--class-weight", "balanced", "--batch-size", "8",
                           "--seed", "3", "--learning-rate", "0.1", "--label-column", "last",
                           "-o", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    ran = load_model(tmp_path / "m.npz").solver_  # --solver auto: the warnings name the solver the fit ran
    for line in ("tikhon fit: warning: --class-weight applies to logistic regression only; ignored for ridge",
                 f"tikhon fit: warning: --batch-size applies to solver sgd only; ignored by {ran}",
                 f"tikhon fit: warning: --seed applies to solver sgd, dual_cd only; ignored by {ran}",
                 f"tikhon fit: warning: --learning-rate applies to solver gd, sgd only; ignored by {ran}",
                 f"tikhon fit: warning: --label-column applies to dense text; {tmp_path / 'r.npz'} is npz: ignored"):
        assert line in err, err
    plain = tikhon.Ridge().fit(X, X @ np.arange(1.0, 5.0))
    np.testing.assert_allclose(load_model(tmp_path / "m.npz").coef_, plain.coef_, rtol=1e-8)
    # the options a solver takes are passed on, and not warned about
    code, out, err = _run(["fit", tmp_path / "r.npz", "--solver", "sgd", "--batch-size", "8", "--seed", "3",
                           "--max-iter", "3", "-o", tmp_path / "s.npz"], capsys)
    assert code == 0 and "--batch-size" not in _notes(err)
    model = load_model(tmp_path / "s.npz")
    assert model.batch_size == 8 and model.random_state == 3
    assert "tikhon fit: warning: tikhon sgd" in _notes(err)  # the ConvergenceWarning, as one line


@pytest.mark.parametrize("spec, expected", [
    ("balanced", "balanced"),
    ("1:2,-1:1", {1.0: 2.0, -1.0: 1.0}),
    ("+1:0.5", {1.0: 0.5}),
])
def test_class_weight(tmp_path, capsys, spec, expected):
    """--class-weight: the fit of LogisticRegression(class_weight=...) with the data's labels."""
    from tikhon._io import load_model

    X, y = tikhon.datasets.make_classification(100, 3, seed=10)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    code, out, err = _run(["fit", tmp_path / "d.npz", "--class-weight", spec, "-o", tmp_path / "m.npz"], capsys)
    assert code == 0, err
    reference = tikhon.LogisticRegression(class_weight=expected).fit(X, y)
    assert not np.allclose(reference.coef_, tikhon.LogisticRegression().fit(X, y).coef_)  # the weights matter
    np.testing.assert_allclose(load_model(tmp_path / "m.npz").coef_, reference.coef_, rtol=1e-7)


def test_every_option_has_help_with_its_default():
    """fit, predict and plot: each option says what it is, and its default when it has one."""
    import argparse

    from tikhon.cli import _build_parser

    def subparsers(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                yield from action.choices.items()

    commands = dict(subparsers(_build_parser()))
    parsers = [(name, commands[name]) for name in ("fit", "predict")]
    parsers += [(f"plot {kind}", p) for kind, p in subparsers(commands["plot"])]
    assert len(parsers) == 5
    for name, parser in parsers:
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            assert action.help, (name, action.dest)
            if action.default not in (None, False) and action.option_strings:
                assert "default" in action.help, (name, action.dest, action.help)


def test_predict_labels_proba_decision(tmp_path, capsys):
    """Labels by default; --proba one column per class (in classes_ order); --decision x.w + b."""
    from tikhon._io import load_model

    X, y = tikhon.datasets.make_classification(70, 3, seed=11)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    assert main(["fit", str(tmp_path / "d.npz"), "-o", str(tmp_path / "m.npz")]) == 0
    model = load_model(tmp_path / "m.npz")
    capsys.readouterr()
    outputs = {}
    for flag in ("", "--proba", "--decision"):
        for out in ("-", tmp_path / "p.txt", tmp_path / "p.npy"):
            code, text, err = _run(["predict", tmp_path / "m.npz", tmp_path / "d.npz", *filter(None, [flag]),
                                    "--out", out], capsys)
            assert code == 0, err
            values = (np.loadtxt(text.splitlines()) if out == "-" else np.load(out) if str(out).endswith(".npy")
                      else np.loadtxt(out))
            outputs.setdefault(flag, []).append(values)
    for flag, expected in (("", model.predict(X)), ("--proba", model.predict_proba(X)),
                           ("--decision", model.decision_function(X))):
        for values in outputs[flag]:
            assert values.shape == expected.shape
            np.testing.assert_allclose(values, expected, rtol=1e-9)
    assert outputs["--proba"][0].shape == (70, 2)
    code, text, err = _run(["predict", tmp_path / "m.npz", tmp_path / "d.npz", "--proba"], capsys)
    assert "columns: the probabilities of classes -1, 1" in _notes(err)


def _multinomial_available():
    try:
        tikhon.LogisticRegression().fit(np.eye(3).repeat(2, axis=0), [0, 0, 1, 1, 2, 2])
    except ValueError:
        return False
    return True


def test_multiclass_labels_reach_the_estimator_unchanged(tmp_path, capsys, monkeypatch):
    """dna.scale (classes 1, 2, 3): the CLI chooses logistic regression and hands the
    estimator the file's labels as they are, so that multinomial support needs no CLI change."""
    from sklearn.datasets import load_svmlight_file

    path = _require("dna.scale")
    seen = {}

    def record(self, X, y, sample_weight=None):
        seen["y"] = y
        raise ValueError("recorded")

    monkeypatch.setattr(tikhon.LogisticRegression, "fit", record)
    code, out, err = _run(["fit", path, "-o", tmp_path / "m.npz"], capsys)
    assert code == 2 and "recorded" in err[0]
    np.testing.assert_array_equal(seen["y"], load_svmlight_file(str(path))[1])


def test_multiclass_dna_end_to_end(tmp_path, capsys):
    """`tikhon fit dna.scale`: a 3-class model once the estimator has multinomial regression;
    until then the estimator's own error, one line, exit 2, saying what auto chose."""
    path, model = _require("dna.scale"), tmp_path / "m.npz"
    code, out, err = _run(["fit", path, "-o", model], capsys)
    if not _multinomial_available():
        assert code == 2 and len(err) == 1, err
        assert "got 3 classes" in err[0] and "task auto chose logistic: the labels are 3 classes (1, 2, 3)" in err[0]
        return
    assert code == 0, err
    code, out, err = _run(["predict", model, _require("dna.scale.t"), "--proba"], capsys)
    assert code == 0, err
    proba = np.loadtxt(out.splitlines())
    assert proba.shape == (1186, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)


def test_plot_task_auto(tmp_path, capsys):
    """`tikhon plot` chooses the task from the labels too (a real target: a ridge path)."""
    pytest.importorskip("matplotlib")
    X, _ = tikhon.datasets.make_classification(60, 3, seed=12)
    _write_table(tmp_path / "r.csv", X, X @ np.array([1.0, -2.0, 0.5]) + 0.25)
    code, out, err = _run(["plot", "path", tmp_path / "r.csv", "--alpha", "1", "10", "--out", tmp_path / "p.png"],
                          capsys)
    assert code == 0, err
    assert "task auto chose ridge" in _notes(err) and "by eigh" in out
