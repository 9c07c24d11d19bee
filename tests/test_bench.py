"""The benchmark engine at a small scale: verdicts, labelled cut-offs, the ridge bench and
``--task``, skipped problems, the load mode, dask rows and every named suite. Speed is
never asserted: only what is measured and how it is reported."""
from __future__ import annotations

import importlib.util
import json
import time

import numpy as np
import pytest

import tikhon
from tikhon.bench import BenchConfig, run, validate
from tikhon.bench.anchors import anchor_status
from tikhon.bench.load import BusyLoad, busy_load
from tikhon.bench.report import Progress, _time_cell, format_tables
from tikhon._datafiles import infer_task
from tikhon.bench.suites import SUITES, build_suite
from tikhon.bench.verdict import verdict
from tikhon.cli import main

CHEAP = ["--anchor-budget", "0.3", "--kernel-seconds", "0.002", "--no-warmup", "--no-plots", "--quiet"]


def _bench(tmp_path, *argv, code=0):
    out = tmp_path / "out"
    got = main(["bench", *argv, *CHEAP, "--out", str(out)])
    assert got == code
    return json.loads((out / "results.json").read_text())


# ---------------------------------------------------------------- verdicts
def _record(label, t, reason=None, kind="tikhon", **extra):
    return {"label": label, "kind": kind, "error": None, "time_to": {"1e-06": t},
            "not_reached": {} if t is not None else {"1e-06": reason}, **extra}


def test_verdict_orders_by_time_with_ratios_and_says_why_others_missed():
    problem = {"records": [
        _record("numpy/newton", 0.30),
        _record("liblinear/-s0", 0.10, kind="anchor"),
        _record("sklearn/lbfgs", None, "budget", kind="anchor", budget_seconds=3.0),
        _record("numba/gd", None, "cap"),
        {"label": "glum/irls-cd", "kind": "anchor", "error": "RuntimeError: boom"},
    ]}
    v = verdict(problem, "1e-06")
    assert v["text"] == ("fastest to 1e-06 here: liblinear/-s0 (100 ms), then numpy/newton (300 ms, 3.0x); "
                         "not reached: sklearn/lbfgs (cut off by its 3 s budget), numba/gd (iteration cap), "
                         "glum/irls-cd (error); tikhon best/best competitor 3.00")
    assert [e["label"] for e in v["ranking"]] == ["liblinear/-s0", "numpy/newton"]
    assert v["ranking"][1]["ratio"] == pytest.approx(3.0)
    assert v["not_reached"] == {"sklearn/lbfgs": "budget", "numba/gd": "cap", "glum/irls-cd": "error"}



def test_verdict_ratios_of_the_default_fit():
    """auto against tikhon's fastest named row and the fastest anchor (issues 15 and 18)."""
    problem = {"records": [_record("cython/newton", 0.04), _record("tikhon/auto", 0.05),
                           _record("numpy/newton", 0.2), _record("sklearn/lbfgs", 0.1, kind="anchor"),
                           _record("liblinear/-s0", 0.08, kind="anchor")]}
    ratios = verdict(problem, "1e-06")["ratios"]
    assert ratios["auto_vs_tikhon_best"] == pytest.approx(1.25) and ratios["tikhon_best"] == "cython/newton"
    assert ratios["auto_vs_competitor"] == pytest.approx(0.625) and ratios["competitor"] == "liblinear/-s0"
    assert ratios["tikhon_best_vs_competitor"] == pytest.approx(0.5)
    assert ratios["text"] == ("auto/tikhon best 1.25 (cython/newton), auto/best competitor 0.62 (liblinear/-s0), "
                              "tikhon best/best competitor 0.50")
    problem["records"][1]["time_to"]["1e-06"] = None  # the default missed the level: no ratio for it
    problem["records"][1]["not_reached"] = {"1e-06": "cap"}
    ratios = verdict(problem, "1e-06")["ratios"]
    assert ratios["auto_vs_tikhon_best"] is None and ratios["auto_vs_competitor"] is None
    assert ratios["tikhon_best_vs_competitor"] == pytest.approx(0.5)


def test_table_cell_of_a_cut_off_says_budget_not_dash():
    assert _time_cell(_record("sklearn/lbfgs", None, "budget", kind="anchor"), "1e-06") == "budget"
    assert _time_cell(_record("numpy/gd", None, "cap"), "1e-06") == "cap"
    assert _time_cell(_record("numpy/newton", 0.002), "1e-06") == "2.0ms"


def test_bench_verdict_in_table_and_json(tmp_path, capsys):
    result = _bench(tmp_path, "--data", "synthetic:n=300,d=6,seed=2", "--C", "1,10", "--backend", "numpy",
                    "--anchors", "sklearn/lbfgs")
    out = capsys.readouterr().out
    (ds,) = result["datasets"]
    for problem in ds["problems"]:
        assert set(problem["verdicts"]) == {"1e-03", "1e-06", "1e-08"}
        text = problem["verdict"]["text"]
        assert text.startswith("fastest to 1e-06 here: ") and text in out
        labels = {r["label"] for r in problem["records"]}
        ranked = {e["label"] for e in problem["verdict"]["ranking"]} | set(problem["verdict"]["not_reached"])
        assert ranked == labels  # every tikhon cell and anchor is ranked or said to have missed
    assert "verdicts (P* = the lowest objective" in out
    assert result["verdict_level"] == "1e-06"


# ---------------------------------------------------------------- the task
def test_infer_task():
    assert infer_task(np.array([-1.0, 1.0, 1.0]))[:1] == ("logistic",)
    assert infer_task(np.array([-1.0, 1.0, 1.0])).n_classes == 2
    assert infer_task(np.array(["a", "b", "c"])).n_classes == 3
    assert infer_task(np.repeat([1, 2, 3], 50)).n_classes == 3
    assert infer_task(np.linspace(0, 1, 50)).task == "ridge"
    assert infer_task(np.concatenate([np.repeat([1, 2], 500), np.arange(3, 30)])).task == "ridge"  # rare values


LABELS = {  # labels on which the bench's task must be tikhon fit's (the bench had its own rule)
    "two": np.array([-1.0, 1.0] * 20),
    "text": np.array(["a", "b", "c"] * 20),
    "classes": np.repeat([1, 2, 3], 50),
    "real": np.linspace(0, 1, 50),
    "rare-integers": np.concatenate([np.repeat([1, 2], 500), np.arange(3, 30)]),
    "infinite": np.array([0.0, 1.0, np.inf] * 20),  # the bench's rule said 3 classes, the CLI's ridge
    "bool": np.array([True, False] * 20),
}


@pytest.mark.parametrize("name", list(LABELS))
def test_bench_task_is_the_cli_task(name):
    """One rule for ``--task auto``: the bench's problems are those ``tikhon fit`` would fit."""
    from tikhon.bench.runner import _problems
    from tikhon.cli import _auto_task

    y = LABELS[name]
    problems, skipped = _problems(validate(BenchConfig(anchors="none")), y)
    assert {p["task"] for p in problems} == {_auto_task(y)[0]}, (problems, skipped)


@pytest.fixture
def regression_file(tmp_path):
    from sklearn.datasets import dump_svmlight_file

    rng = np.random.default_rng(3)
    X = rng.standard_normal((200, 5))
    y = X @ np.arange(1.0, 6.0) + 0.1 * rng.standard_normal(200)
    path = tmp_path / "reg.svm"
    dump_svmlight_file(X, y, str(path), zero_based=False)
    return path


def test_ridge_bench_on_a_regression_file_task_auto(tmp_path, regression_file, capsys):
    """A continuous target benches ridge by itself (it used to stop on 'needs two classes')."""
    result = _bench(tmp_path, "--data", str(regression_file), "--backend", "numpy", "--anchors", "sklearn")
    (ds,) = result["datasets"]
    assert [(p["loss"], p["param"], p["value"]) for p in ds["problems"]] == [
        ("squared", "alpha", 0.1), ("squared", "alpha", 1.0), ("squared", "alpha", 10.0)]
    for problem in ds["problems"]:
        assert problem["records"][0]["label"] == "numpy/newton" and problem["records"][0]["error"] is None
        assert any(r["label"].startswith("sklearn/") for r in problem["records"])
        assert problem["verdict"]["text"].startswith("fastest to 1e-06 here:")
    assert set(ds["kernels"]) == {"floor", "squared"}



def test_kernels_of_several_classes_time_the_multinomial_pass(tmp_path, capsys):
    """K >= 3 classes: the kernel rows time the multinomial pass (W of shape (K, d)) against
    X @ W^T with K columns (they timed the two-class pass against X @ w before)."""
    result = _bench(tmp_path, "--data", "synthetic:n=300,d=5,classes=3", "--backend", "numpy", "--anchors", "none",
                    "--solver", "newton", "--C", "1")
    (ds,) = result["datasets"]
    assert set(ds["kernels"]) == {"floor", "multinomial"} and "K=3 columns" in ds["kernels"]["floor"]["what"]
    assert ds["kernels"]["multinomial"]["numpy"]["seconds_per_pass"] > 0
    assert "one loss+gradient pass (multinomial)" in capsys.readouterr().out

def test_task_ridge_alpha_and_the_C_that_does_not_apply(tmp_path, capsys):
    result = _bench(tmp_path, "--data", "synthetic:n=200,d=4", "--task", "ridge", "--alpha", "2", "--C", "5",
                    "--backend", "numpy", "--anchors", "none")
    (problem,) = result["datasets"][0]["problems"]
    assert (problem["loss"], problem["value"]) == ("squared", 2.0)
    assert "--C does not apply to --task ridge" in capsys.readouterr().out


def test_logistic_on_a_regression_target_is_a_skipped_problem(tmp_path, regression_file):
    result = _bench(tmp_path, "--data", str(regression_file), "--task", "logistic", "--C", "1",
                    "--backend", "numpy", "--anchors", "none")
    ds = result["datasets"][0]
    assert ds["problems"] == []
    assert "regression target" in ds["skipped_problems"]["logistic C=1"]


def test_three_classes_skipped_with_the_reason_or_run(tmp_path):
    """K >= 3: the bench's problem does not assume two classes. While the estimators refuse
    them, the problem is skipped with their reason; once they fit them, it runs."""
    X, y = tikhon.datasets.make_classification(300, 4, seed=5)
    labels = np.digitize(X[:, 0], [-0.4, 0.4])  # 3 classes
    np.savez(tmp_path / "three.npz", X=X, y=labels)
    result = _bench(tmp_path, "--data", str(tmp_path / "three.npz"), "--C", "1", "--backend", "numpy",
                    "--anchors", "sklearn/lbfgs")
    ds = result["datasets"][0]
    try:
        tikhon.LogisticRegression().fit(X, labels)
    except ValueError as exc:
        why = ds["skipped_problems"]["logistic C=1"]
        assert "refuse 3 classes" in why and str(exc).split()[0] in why
        assert ds["problems"] == []
    else:
        (problem,) = ds["problems"]
        assert problem["n_classes"] == 3 and all(r["error"] is None for r in problem["records"])


# ---------------------------------------------------------------- load mode
def _running(pid):
    psutil = pytest.importorskip("psutil")
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_busy_load_starts_and_stops_its_processes():
    with busy_load(2, seconds=60) as load:
        pids = load.alive()
        assert len(pids) == 2 and all(_running(p) for p in pids)
    assert load.alive() == [] and not any(_running(p) for p in pids)
    info = load.describe()
    assert info["processes"] == 2 and info["pids"] == pids and None not in info["exit_codes"]


def test_busy_load_stopped_when_the_block_raises():
    with pytest.raises(RuntimeError):
        with busy_load(1, seconds=60) as load:
            (pid,) = load.alive()
            raise RuntimeError("a failing bench")
    assert not _running(pid)


def test_busy_process_ends_by_itself_at_its_bound():
    load = BusyLoad(1, seconds=0.3).start()
    try:
        (process,) = load.processes
        assert process.wait(timeout=30) == 0  # the deadline, not the bench, ended it
    finally:
        load.stop()


def test_bench_load_recorded_in_json_and_nothing_left_running(tmp_path, capsys):
    result = _bench(tmp_path, "--data", "synthetic:n=200,d=4", "--C", "1", "--backend", "numpy",
                    "--anchors", "none", "--load", "1")
    (load,) = result["loads"]
    assert load["processes"] == 1 and load["exit_codes"][0] is not None
    assert result["datasets"][0]["load"] == {"processes": 1}
    assert not any(_running(p) for p in load["pids"])
    assert "busy processes" in capsys.readouterr().out


# ---------------------------------------------------------------- data and suites
def test_missing_shared_data_is_skipped_in_a_suite(tmp_path, monkeypatch):
    monkeypatch.setenv("TIKHON_DATA", str(tmp_path))
    part = validate(BenchConfig(data=["reuters"], optional_data=True, label="x", anchors="none", backends="numpy"))
    result = run([part], Progress(enabled=False), suite="test")
    (why,) = result["skipped_data"].values()
    assert "reuters" in why and str(tmp_path) in why
    with pytest.raises(ValueError, match="not found"):  # the user's own --data: an error
        run([validate(BenchConfig(data=["reuters"], anchors="none"))], Progress(enabled=False))


def test_text_spec_is_the_text_like_generator():
    from tikhon.bench.problems import load_dataset, parse_data_spec

    ds = load_dataset(parse_data_spec("text:n=300,d=2000,nnz=6000,seed=1"))
    assert ds.X.shape == (300, 2000) and abs(ds.X.nnz - 6000) < 600 and set(np.unique(ds.y)) == {-1.0, 1.0}



@pytest.mark.parametrize("text", ["synthetic:n=400,d=6,classes=5", "synthetic:n=400,d=50,density=0.2,classes=3",
                                  "text:n=400,d=2000,nnz=8000,classes=4"])
def test_specs_with_several_classes_are_multinomial_problems(text):
    from tikhon.bench.problems import load_dataset, parse_data_spec

    spec = parse_data_spec(text)
    K = spec["classes"]
    ds = load_dataset(spec)
    assert f"-K{K}-" in ds.name and set(np.unique(ds.y)) == set(range(K))  # every class present
    assert parse_data_spec(text.replace(f"classes={K}", "classes=2"))["name"] == ds.name.replace(f"-K{K}", "")
    with pytest.raises(ValueError, match="classes must be at least 2"):
        parse_data_spec(text.replace(f"classes={K}", "classes=1"))

def test_every_suite_is_built_from_valid_parts():
    for name in SUITES:
        parts = build_suite(name, scale=0.001)
        assert parts, name
        for part in parts:
            validate(part)
    assert [p.load for p in build_suite("load", load=3)][:2] == [0, 3]  # quiet, then loaded


TINY = {  # each suite on data small enough for a test (the suite's own parts and settings otherwise)
    "default": ["--data", "synthetic:n=200,d=5", "--C", "1", "--anchors", "sklearn/lbfgs"],
    "kernels": ["--data", "synthetic:n=300,d=5", "--data", "text:n=300,d=1000,nnz=3000"],
    "fits": ["--data", "synthetic:n=200,d=5", "--C", "1", "--anchors", "liblinear,sklearn/lbfgs"],
    "liblinear": ["--data", "text:n=300,d=1000,nnz=3000", "--C", "1", "--anchors", "liblinear"],
    "path": ["--data", "synthetic:n=200,d=5"],
    "dask": ["--data", "synthetic:n=400,d=5", "--dask-workers", "1"],
    "load": ["--data", "synthetic:n=150,d=4", "--load", "1"],
}


@pytest.mark.parametrize("suite", list(SUITES))
def test_each_suite_runs_at_a_small_scale(tmp_path, suite, capsys):
    if suite == "dask":
        pytest.importorskip("distributed")
    result = _bench(tmp_path, "--suite", suite, *TINY[suite])
    assert result["suite"] == suite
    assert [p["label"] for p in result["parts"]] == [p.label for p in build_suite(suite, load=1)]
    out = capsys.readouterr().out
    if suite == "kernels":
        assert all(ds["problems"] == [] and ds["kernels"]["floor"]["GBps"] > 0 for ds in result["datasets"])
        assert all("seconds_per_hessian_product" in fig for ds in result["datasets"]
                   for fig in ds["kernels"]["logistic"].values())
        return
    if suite == "path":
        (entry,) = result["paths"]
        assert entry["runs"][0]["label"].startswith("tikhon/") and len(entry["runs"]) >= 2
        assert entry["verdict"]["text"].startswith("fastest whole path") and entry["verdict"]["text"] in out
        return
    if suite == "load":
        assert len(result["gridsearch"]) == 2 and {r["label"] for r in result["gridsearch"][0]["runs"]} == {
            "tikhon", "sklearn"}
        assert [ds["load"]["processes"] for ds in result["datasets"]] == [0, 1] * 5
        assert [g["load"]["processes"] for g in result["gridsearch"]] == [0, 1]
        for ds in result["datasets"]:
            for problem in ds["problems"]:
                labels = [r["label"] for r in problem["records"]]
                assert labels == ["tikhon/default", "numpy/default", "sklearn/default"], labels
                assert problem["verdict"]["text"].startswith("fastest default fit here:")
        assert len(result["loads"]) == 6
        return
    problems = [p for ds in result["datasets"] for p in ds["problems"]]
    assert problems and all(p["verdict"]["text"] in out for p in problems)
    records = [r for p in problems for r in p["records"]]
    assert all(r["error"] is None for r in records), [r["error"] for r in records if r["error"]]
    # LIBLINEAR is an optional anchor (pip install ".[bench]"): its rows only where installed
    liblinear = {"liblinear/-s0", "liblinear/-s7"} if importlib.util.find_spec("liblinear") else set()
    if suite == "fits":
        assert [ds["settings"]["fit_intercept"] for ds in result["datasets"]] == [True, False]
        labels = {r["label"] for r in result["datasets"][1]["problems"][0]["records"]}
        assert "liblinear/-s7" in labels if liblinear else "sklearn/lbfgs" in labels
    if suite == "liblinear":
        assert {r["label"] for r in records} >= {"numpy/newton", "cython/dual_cd", *liblinear}
    if suite == "dask":
        assert result["dask"]["workers"] == 1 and result["dask"]["started_by_bench"]
        assert {r["backend"] for r in records} >= {"numpy", "dask"}
        assert "dask" in result["datasets"][0]["kernels"]["logistic"]


def test_suboptimality_plot_labels_levels_and_titles(tmp_path):
    pytest.importorskip("matplotlib")
    from tikhon.bench.plots import _pyplot, _suboptimality_figure

    result = _bench(tmp_path, "--data", "synthetic:n=200,d=5", "--C", "2", "--backend", "numpy", "--anchors", "none")
    fig = _suboptimality_figure(_pyplot(), result["datasets"][0])
    (ax,) = fig.axes
    assert "C = 2" in ax.get_title() and "synthetic-200x5" in ax.get_title()
    assert {t.get_text() for t in ax.texts} == {"level 1e-03", "level 1e-06", "level 1e-08"}
    assert "P* = lowest objective" in ax.get_ylabel()


def test_report_of_a_run_is_text(tmp_path):
    result = _bench(tmp_path, "--data", "synthetic:n=200,d=5", "--C", "1", "--backend", "numpy", "--anchors", "none")
    text = format_tables(result)
    assert "one read of X" in text and "floor" not in text.split("verdicts")[0].lower().replace("floor of", "")
    assert time.time() > 0


def test_dense_hessian_solvers_skip_wide_data_with_the_reason():
    """newton_cholesky forms a d x d Gram: on 6000 features (288 MB) the bench skips it, saying so."""
    import scipy.sparse as sp

    from tikhon.bench.runner import _plan_cells

    X = sp.random(50, 6000, density=0.01, format="csr", random_state=0)
    config = validate(BenchConfig(backends="numpy", solvers="newton,newton_cholesky", anchors="none"))
    cells, skipped = _plan_cells(config, X, "logistic")
    assert [c[3] for c in cells] == ["newton"]
    assert "forms the d x d Hessian (6000 features, 0.29 GB)" in skipped["numpy/newton_cholesky"]


def test_anchors_read_csr_with_int64_indices():
    """The embedded a9a has int64 indices, which scikit-learn's sag/saga/liblinear refuse: the
    anchors get an int32 copy (every sag/saga/liblinear row of the fits suite failed before)."""
    import scipy.sparse as sp

    from tikhon.bench.problems import Dataset
    from tikhon.bench.runner import run_dataset

    X, y = tikhon.datasets.make_sparse_classification(300, 20, 0.3, seed=2)
    X = sp.csr_matrix(X)
    X.indices, X.indptr = X.indices.astype(np.int64), X.indptr.astype(np.int64)  # as svmlight gives a9a's
    config = validate(BenchConfig(C=[1.0], backends="numpy", fit_intercept=False, kernels=False, warmup=False,
                                  anchors="sklearn/saga,sklearn/liblinear", anchor_budget=0.3))
    out = run_dataset(config, Dataset("csr64", X, y), Progress(enabled=False))
    assert out["index_dtype"] == "int64"
    (problem,) = out["problems"]
    anchors = [r for r in problem["records"] if r["kind"] == "anchor"]
    assert [r["label"] for r in anchors] == ["sklearn/saga", "sklearn/liblinear"]
    assert all(r["error"] is None for r in anchors), [r["error"] for r in anchors]


# ---------------------------------------------------------------- tikhon plot: its call into tikhon.plot
@pytest.mark.parametrize("kind, extra", [("path", ["--C", "0.1", "10"]), ("cv", ["--C", "0.1", "10", "--cv", "2"]),
                                         ("history", ["--solvers", "newton"])])
def test_plot_command_titles_name_the_data(tmp_path, monkeypatch, kind, extra):
    """``tikhon plot`` passes ``data=`` (the data file's name) to tikhon.plot: the title names it."""
    pytest.importorskip("matplotlib")
    import tikhon.plot

    X, y = tikhon.datasets.make_classification(120, 3, seed=4)
    np.savez(tmp_path / "tiny.npz", X=X, y=y)
    figures = []
    real = getattr(tikhon.plot, f"plot_{kind}")
    monkeypatch.setattr(tikhon.plot, f"plot_{kind}", lambda *a, **k: figures.append(real(*a, **k)) or figures[-1])
    assert main(["plot", kind, str(tmp_path / "tiny.npz"), *extra, "--out", str(tmp_path / "p.png")]) == 0
    (fig,) = figures
    assert fig.axes[0].get_title().startswith("tiny.npz: "), fig.axes[0].get_title()


def test_plot_help_says_C_or_alpha_not_lambda(capsys):
    for kind in ("path", "cv"):
        assert main(["plot", kind, "--help"]) == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "against lambda" not in text and "against C (logistic) or alpha (ridge)" in text


# ---------------------------------------------------------------- K >= 3 classes: multinomial
def _three_classes(fmt, seed=5):
    import scipy.sparse as sp

    X, _ = tikhon.datasets.make_classification(300, 5, seed=seed)
    labels = np.array(["b", "c", "a"])[np.digitize(X[:, 0] + 0.5 * np.sin(np.arange(300)), [-0.4, 0.4])]
    return (sp.csr_matrix(np.where(np.abs(X) > 0.3, X, 0.0)) if fmt == "csr" else X), labels


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
def test_multinomial_score_is_tikhons_objective(fmt, fit_intercept):
    """K = 3: the bench scores a solution by tikhon's multinomial objective (summed log-loss +
    (1/(2C)) ||W||_F^2 over all K rows, intercepts free): each tikhon fit's objective_ equals
    the bench's score of its coef_/intercept_ to 1e-10 relative; dual_cd (two classes only)
    is skipped with the reason, not a failed run."""
    from tikhon.bench.problems import Dataset
    from tikhon.bench.runner import run_dataset

    X, labels = _three_classes(fmt)
    config = validate(BenchConfig(C=[0.01, 1.0, 100.0], backends="numpy", solvers="newton,newton_cholesky,lbfgs,dual_cd",
                                  fit_intercept=fit_intercept, kernels=False, warmup=False, anchors="none"))
    out = run_dataset(config, Dataset("three", X, labels), Progress(enabled=False))
    assert "fits two-class logistic regression only; the data has 3 classes" in out["skipped"]["dual_cd"]
    assert len(out["problems"]) == 3
    for problem in out["problems"]:
        assert problem["n_classes"] == 3
        records = problem["records"]
        assert {r["solver"] for r in records} == {"newton", "newton_cholesky", "lbfgs"}
        for r in records:
            assert r["error"] is None, r["error"]
            assert r["final_objective"] == pytest.approx(r["reported_objective"], rel=1e-10), r["label"]


def test_multinomial_bench_against_sklearn_multinomial():
    """Three classes in the bench: scikit-learn's multinomial solvers are its anchors and reach
    tikhon's optimum; the two-class anchors are listed as skipped with the reason."""
    from tikhon.bench.problems import Dataset
    from tikhon.bench.runner import run_dataset

    X, labels = _three_classes("dense")
    config = validate(BenchConfig(C=[1.0], backends="numpy", solvers="newton", kernels=False, warmup=False,
                                  anchors="sklearn/lbfgs,sklearn/newton-cg,sklearn/liblinear,liblinear",
                                  anchor_budget=2.0))
    (problem,) = run_dataset(config, Dataset("three", X, labels), Progress(enabled=False))["problems"]
    anchors = {r["label"]: r for r in problem["records"] if r["kind"] == "anchor"}
    assert set(anchors) == {"sklearn/lbfgs", "sklearn/newton-cg"}
    for r in anchors.values():
        assert r["error"] is None and r["relative_suboptimality"] <= 1e-6, r
    if anchor_status("liblinear") is None:
        assert "two-class problems only" in problem["skipped_anchors"]["liblinear/-s0"]


def test_dna_is_a_named_data_set_of_the_fits_suite():
    parts = [validate(p) for p in build_suite("fits")]
    assert all("dna" in [d["name"] for d in p.data] for p in parts)


def test_dna_bench_is_multinomial():
    """The shared dna.scale (2000 x 180, 3 classes) by name: a multinomial problem."""
    from conftest import _require

    _require("dna.scale")
    from tikhon.bench.problems import load_dataset, parse_data_spec
    from tikhon.bench.runner import run_dataset

    dataset = load_dataset(parse_data_spec("dna"))
    assert dataset.X.shape == (2000, 180) and np.unique(dataset.y).size == 3
    config = validate(BenchConfig(C=[1.0], backends="numpy", solvers="newton", kernels=False, warmup=False,
                                  anchors="sklearn/newton-cg", anchor_budget=5.0))
    (problem,) = run_dataset(config, dataset, Progress(enabled=False))["problems"]
    assert problem["n_classes"] == 3
    tikhon_row, sklearn_row = problem["records"]
    assert tikhon_row["final_objective"] == pytest.approx(tikhon_row["reported_objective"], rel=1e-10)
    assert sklearn_row["label"] == "sklearn/newton-cg" and sklearn_row["relative_suboptimality"] <= 1e-6
