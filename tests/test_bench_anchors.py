"""Each anchor's conversion of its library's parameterization to tikhon's objective, checked
numerically: at a tight tolerance the anchor's solution scores (by tikhon's evaluator)
within 1e-6 relative of tikhon's optimum, for logistic and ridge, with and without the
intercept, dense and CSR. A library that is not installed is skipped with the reason; a
variant that cannot state tikhon's problem (a penalized intercept) must say so."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import tikhon
from tikhon.bench import anchors as A
from tikhon.bench.measure import Evaluator

LAM = {"logistic": 0.5, "ridge": 3.0}


def _data(fmt):
    X, y = tikhon.datasets.make_classification(240, 6, seed=11)
    if fmt == "csr":
        X = sp.csr_matrix(np.where(np.abs(X) > 0.4, X, 0.0))
    return X, np.where(y > 0, 1.0, -1.0)


def _targets(task, X, y):
    if task == "logistic":
        return y
    w = np.arange(1, X.shape[1] + 1) / X.shape[1]
    return np.asarray(X @ w).ravel() + 0.3 * np.sin(np.arange(X.shape[0])) + 0.7


def _optimum(task, X, t, fit_intercept):
    est = (tikhon.LogisticRegression(C=1 / LAM[task]) if task == "logistic" else tikhon.Ridge(alpha=LAM[task]))
    est.set_params(tol=1e-12, max_iter=1000, fit_intercept=fit_intercept, backend="numpy").fit(X, t)
    evaluate = Evaluator(X, t, "logistic" if task == "logistic" else "squared", LAM[task], fit_intercept)
    return evaluate(est.coef_, est.intercept_), evaluate


CASES = [(family, variant, task)
         for family in A.ANCHORS
         for task in ("logistic", "ridge")
         for variant in A._ADAPTERS[family].solvers[task]]


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("family, variant, task", CASES, ids=[f"{f}/{v}/{t}" for f, v, t in CASES])
def test_anchor_conversion_reaches_tikhons_optimum(family, variant, task, fit_intercept, fmt):
    why = A.anchor_status(family)
    if why is not None:
        pytest.skip(why)
    X, y = _data(fmt)
    t = _targets(task, X, y)
    problem = A.AnchorProblem(task, LAM[task], fit_intercept, X, t, t, 2 if task == "logistic" else 0)
    found, skipped = A.variants(family, problem, [variant])
    label = f"{family}/{variant}"
    if label in skipped:
        reason = skipped[label]
        assert fit_intercept or fmt == "csr", reason  # only intercept and layout skips here
        pytest.skip(f"{label}: {reason}")
    (v,) = found.values()
    p_star, evaluate = _optimum(task, X, t, fit_intercept)
    try:
        coef, intercept = v.run(v.tols[-1])[:2]
    finally:
        v.close()
    value = evaluate(coef, intercept)
    assert abs(value - p_star) <= 1e-6 * abs(p_star), (label, value, p_star, v.notes)


def test_penalized_intercept_variants_say_so():
    X, y = _data("dense")
    problem = A.AnchorProblem("logistic", 1.0, True, X, y, y)
    for family, variant in (("sklearn", "liblinear"), ("liblinear", "-s7"), ("snapml", "sdca"), ("skglm", "LBFGS")):
        _, skipped = A.variants(family, problem, [variant])
        assert "runs only without an intercept" in skipped[f"{family}/{variant}"]


def test_two_class_only_variants_skip_multiclass():
    X, y = _data("dense")
    labels = np.arange(X.shape[0]) % 3
    problem = A.AnchorProblem("logistic", 1.0, False, X, y, labels, n_classes=3)
    _, skipped = A.variants("liblinear", problem, ["-s0"])
    assert "two-class problems only" in skipped["liblinear/-s0"]


def test_missing_library_names_the_pip_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(A.importlib.util, "find_spec", lambda name, *a: None if name == "glum" else real(name, *a))
    assert A.anchor_status("glum") == "glum is not installed (pip install glum)"


@pytest.mark.parametrize("text, expected", [
    ("none", {}),
    ("sklearn", {"sklearn": None}),
    ("sklearn/saga,liblinear", {"sklearn": ["saga"], "liblinear": None}),
    ("glum/all", {"glum": "all"}),
    ("all", {name: "all" for name in A.ANCHORS}),
    ("default", {name: None for name in A.DEFAULT_ANCHORS}),
])
def test_parse_anchors(text, expected):
    assert A.parse_anchors(text) == expected


@pytest.mark.parametrize("text, message", [("matlab", "valid anchors are sklearn, liblinear"),
                                           ("sklearn/adam", "unknown sklearn variant 'adam'")])
def test_parse_anchors_refuses(text, message):
    with pytest.raises(ValueError, match=message):
        A.parse_anchors(text)


def test_sweep_stops_on_budget_and_says_so():
    """A variant whose runs take longer than the budget allows is cut off with stop 'budget'."""
    import time

    calls = []

    def run(tol):
        calls.append(tol)
        time.sleep(0.05)
        return np.zeros(2), 0.0, 0

    objective = iter([3.0, 2.0, 1.0, 0.5, 0.25])
    v = A.Variant("fake", "fake/slow", run, (1e-1, 1e-2, 1e-3, 1e-4, 1e-5))
    runs, stop = A.run_variant(v, lambda c, b: next(objective), None, 1e-8, budget=0.12)
    assert stop == "budget" and len(runs) == len(calls) < 5
    runs, stop = A.run_variant(A.Variant("fake", "fake/flat", lambda tol: (np.zeros(2), 0.0, 0), (1e-1, 1e-2)),
                               lambda c, b: 1.0, None, 1e-8, budget=10)
    assert stop == "stalled" and len(runs) == 2


# ---------------------------------------------------------------- the bench process's floating-point state
_FP_SCRIPT = r"""
import json, sys, threading
import numpy as np
import tikhon
from tikhon.bench import BenchConfig, validate
from tikhon.bench import anchors as A
from tikhon.bench.isolated import subnormals_kept
from tikhon.bench.problems import Dataset
from tikhon.bench.report import Progress
from tikhon.bench.runner import _run_anchor, run_dataset

mode = sys.argv[1]
records = []
if mode == "import-snapml":  # what the bench did before: the library in the bench's own process
    import snapml
elif mode == "guard":  # an anchor that flushes subnormals during its run: the bench must say so
    def run(tol):
        import snapml
        return np.zeros(2), 0.0, 0
    config = validate(BenchConfig(anchors="none"))
    records.append(dict(_run_anchor(config, A.Variant("fake", "fake/ftz", run, (1e-2,)), lambda c, b: 1.0, None),
                        task="logistic"))
else:
    X, y = tikhon.datasets.make_classification(120, 4, seed=3)
    import scipy.sparse as sp
    # every variant runs in one of these (those of a penalized intercept or dense X only in the first)
    Xs = sp.csr_matrix(np.where(np.abs(X) > 0.3, X, 0.0))
    for name, data, fit_intercept in (("dense", X, False), ("csr", Xs, True)):
        config = validate(BenchConfig(C=[1.0], alpha=[1.0], backends="numpy", solvers="newton",
                                      fit_intercept=fit_intercept, kernels=False, warmup=False, anchors="all",
                                      anchor_budget=0.2, levels="1e-3"))
        out = run_dataset(config, Dataset(name, data, y), Progress(enabled=False))
        records += [dict(r, task=p["task"]) for p in out["problems"] for r in p["records"] if r["kind"] == "anchor"]
seen = []
thread = threading.Thread(target=lambda: seen.append(subnormals_kept()))
thread.start(); thread.join()
print(json.dumps({"main": subnormals_kept(), "thread": seen[0], "snapml_imported": "snapml" in sys.modules,
                  "variants": sorted({f"{r['label']} {r['task']}" for r in records}),
                  "errors": {r["label"]: r["error"] for r in records if r["error"]}}))
"""


def _fp_state_after(mode):
    """Run the bench's anchors (or ``mode``) in a fresh interpreter (a flushed state cannot
    leak into this test process) and return what it found."""
    import json
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _FP_SCRIPT, mode], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_every_installed_anchor_leaves_the_bench_process_with_subnormals():
    """snapml's import sets flush-to-zero for the whole process (built with -ffast-math): the
    bench runs it in a child process, so after every installed anchor has run (logistic and
    ridge, dense and CSR, with and without intercept) the bench's process, and threads it
    starts, still compute subnormals, and snapml was never imported into it. (Before: every
    fit after the snapml rows ran flushed, and pytest's later tests failed.)"""
    found = _fp_state_after("bench")
    expected = sorted(f"{family}/{variant} {task}" for family in A.ANCHORS if A.anchor_status(family) is None
                      for task, names in A._ADAPTERS[family].solvers.items() for variant in names)
    assert found["variants"] == expected, found
    assert found["errors"] == {}, found["errors"]
    assert found["main"] and found["thread"], found
    assert not found["snapml_imported"]


def test_the_subnormal_probe_sees_snapml_in_the_process():
    """The check above can fail: with snapml imported into the bench's process (as the
    snapml anchor did before it ran in a child) the probe reports subnormals flushed."""
    if A.anchor_status("snapml") is not None:
        pytest.skip(A.anchor_status("snapml"))
    found = _fp_state_after("import-snapml")
    assert not found["main"] and not found["thread"] and found["snapml_imported"], found


def test_an_anchor_that_flushes_subnormals_is_an_error_of_its_row():
    """A library new to this (not known to need a child process) that flushes subnormals
    while it runs: its row says so, instead of the later fits silently running flushed."""
    if A.anchor_status("snapml") is not None:
        pytest.skip(A.anchor_status("snapml"))
    found = _fp_state_after("guard")
    assert "switched this process to flush subnormals to zero" in found["errors"]["fake/ftz"], found


# ---------------------------------------------------------------- K >= 3 classes: multinomial
MULTI = [(family, variant) for family in A.ANCHORS for variant in A._ADAPTERS[family].solvers["logistic"]]


@pytest.mark.parametrize("fmt", ["dense", "csr"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("family, variant", MULTI, ids=[f"{f}/{v}" for f, v in MULTI])
def test_multinomial_anchor_reaches_tikhons_optimum(family, variant, fit_intercept, fmt):
    """Three classes: each anchor that solves them is multinomial with tikhon's scaling (its
    solution scores within 1e-6 of tikhon's multinomial optimum); the others say they solve
    two-class problems only."""
    from tikhon.bench.measure import MultinomialEvaluator

    why = A.anchor_status(family)
    if why is not None:
        pytest.skip(why)
    X, _ = _data(fmt)
    labels = np.array(["b", "c", "a"])[np.digitize(np.asarray(X[:, 0].todense()).ravel() if fmt == "csr" else X[:, 0],
                                                   [-0.3, 0.3])]
    classes, index = np.unique(labels, return_inverse=True)
    signed = np.where(index == classes.size - 1, 1.0, -1.0)
    problem = A.AnchorProblem("logistic", LAM["logistic"], fit_intercept, X, signed, labels, n_classes=3)
    found, skipped = A.variants(family, problem, [variant])
    label = f"{family}/{variant}"
    if label in skipped:
        assert "two-class problems only" in skipped[label] or "intercept" in skipped[label], skipped[label]
        pytest.skip(f"{label}: {skipped[label]}")
    (v,) = found.values()
    est = tikhon.LogisticRegression(C=1 / LAM["logistic"], tol=1e-12, max_iter=1000, fit_intercept=fit_intercept,
                                    backend="numpy").fit(X, labels)
    evaluate = MultinomialEvaluator(X, index, LAM["logistic"], fit_intercept)
    p_star = evaluate(est.coef_, est.intercept_)
    try:
        coef, intercept = v.run(v.tols[-1])[:2]
    finally:
        v.close()
    assert np.shape(coef) == (3, X.shape[1])
    value = evaluate(coef, intercept)
    assert abs(value - p_star) <= 1e-6 * abs(p_star), (label, value, p_star, v.notes)
