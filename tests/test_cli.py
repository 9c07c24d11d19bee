"""The command line: `tikhon bench` end to end on tiny data, `fit` / `predict`, and bad arguments."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import tikhon
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
