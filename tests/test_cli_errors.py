"""Every user error of the command line is one line on stderr, no traceback, exit code 2.

Each invocation runs in its own process, so that a crash (segfault, abort) fails its
case instead of killing pytest. To keep the run short, one driver process imports
tikhon once and forks a child per invocation (``os.fork``: the child inherits the
imports); each child's file descriptors 1 and 2 go to files, and an exception that
escapes ``main`` is printed as the interpreter would (a traceback, exit 1). Where
``fork`` is missing, each case runs as ``python -m tikhon.cli``. A few invocations
also run through the installed ``tikhon`` console script, end to end.
"""
from __future__ import annotations

import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# ---------------------------------------------------------------- the data and model files
N, D = 40, 4


def _svm(path, rows):
    Path(path).write_text("".join(f"{line}\n" for line in rows))


def _csr_npz(path, data, indices, indptr, shape, y):
    np.savez(path, data=np.asarray(data, float), indices=np.asarray(indices, np.int32),
             indptr=np.asarray(indptr, np.int32), shape=np.asarray(shape), y=np.asarray(y, float))


def make_files(d):
    """Write every file the cases name into the folder ``d``."""
    import scipy.sparse as sp
    from sklearn.datasets import dump_svmlight_file

    import tikhon
    from tikhon._io import save_model

    d = Path(d)
    X, y = tikhon.datasets.make_classification(N, D, seed=3)
    dump_svmlight_file(X, y, str(d / "good.svm"), zero_based=False)
    np.savez(d / "good.npz", X=X, y=y)
    np.save(d / "X.npy", X)
    np.save(d / "y.npy", y)
    M = sp.csr_matrix(X)
    _csr_npz(d / "good_csr.npz", M.data, M.indices, M.indptr, M.shape, y)
    text = (d / "good.svm").read_bytes()
    for name, opener in (("good.svm.xz", lzma.open), ("good.svm.bz2", bz2.open), ("good.svm.gz", gzip.open)):
        with opener(d / name, "wb") as f:
            f.write(text)
    model = tikhon.LogisticRegression(backend="numpy").fit(X, y)
    save_model(model, d / "model.npz")
    save_model(tikhon.Ridge(backend="numpy").fit(X, y), d / "ridge.npz")
    save_model(tikhon.LogisticRegression(backend="numpy").fit(X[:, :2], y), d / "model2.npz")
    save_model(tikhon.LogisticRegression(backend="numpy").fit(np.hstack([X, X]), y), d / "model8.npz")
    raw = (d / "model.npz").read_bytes()
    (d / "model_truncated.npz").write_bytes(raw[: len(raw) // 2])
    flipped = bytearray(raw)
    for k in range(60, 90):  # inside the first member's compressed bytes: the CRC check fails
        flipped[k] ^= 0xFF
    (d / "model_corrupt.npz").write_bytes(bytes(flipped))
    (d / "not_a_model.npz").write_text("just text\n")
    np.savez(d / "arrays.npz", a=np.arange(3))  # a valid zip, but not a tikhon model
    (d / "adir").mkdir()
    (d / "out").mkdir()  # where the valid invocations write

    # data the estimators refuse
    (d / "empty.svm").write_bytes(b"")
    _svm(d / "nan.svm", ["1 1:nan 2:1", "-1 1:1 2:2", "1 1:2", "-1 2:3"])
    _svm(d / "inf.svm", ["1 1:1e400 2:1", "-1 1:1 2:2", "1 1:2", "-1 2:3"])
    _svm(d / "nan_label.svm", ["nan 1:1", "1 1:2", "-1 2:3"])
    _svm(d / "one_class.svm", ["1 1:1", "1 2:1", "1 1:2"])
    _svm(d / "three_classes.svm", ["1 1:1", "2 2:1", "3 1:2", "1 2:2"])
    Xn = X.copy()
    Xn[3, 1] = np.nan
    np.savez(d / "nan.npz", X=Xn, y=y)
    np.savez(d / "string_y.npz", X=X, y=np.array(["a", "b"] * (N // 2)))
    np.save(d / "y_short.npy", y[:-1])
    np.save(d / "X3d.npy", X.reshape(N, 2, 2))
    np.save(d / "object.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (d / "not.npy").write_text("not an npy file\n")

    # broken CSR structure in an .npz (3 x 4, 5 nonzeros)
    data, ind, ptr, yy = [1, 2, 3, 4, 5], [0, 2, 1, 3, 0], [0, 2, 4, 5], [1, -1, 1]
    _csr_npz(d / "csr_index_oob.npz", data, [0, 4, 1, 3, 0], ptr, (3, 4), yy)
    _csr_npz(d / "csr_index_negative.npz", data, [0, -1, 1, 3, 0], ptr, (3, 4), yy)
    _csr_npz(d / "csr_indptr_decreasing.npz", data, ind, [0, 4, 2, 5], (3, 4), yy)
    _csr_npz(d / "csr_indptr_rise_fall.npz", data, ind, [0, 2, 9, 5], (3, 4), yy)
    _csr_npz(d / "csr_indptr_short.npz", data, ind, [0, 2, 5], (3, 4), yy)
    _csr_npz(d / "csr_indices_short.npz", data, ind[:4], ptr, (3, 4), yy)
    _csr_npz(d / "csr_bad_shape.npz", data, ind, ptr, (3, -4), yy)

    # files that are not what their name says, or break the svmlight parser
    rng = np.random.default_rng(0)
    for ext in ("xz", "bz2", "gz"):
        (d / f"garbage.svm.{ext}").write_bytes(rng.bytes(300))
    xz = (d / "good.svm.xz").read_bytes()
    (d / "truncated.svm.xz").write_bytes(xz[: len(xz) // 2])
    _svm(d / "truncated_line.svm", ["1 1:0.5 2:1", "-1 1:"])
    _svm(d / "no_colon.svm", ["1 1:0.5 2:1", "-1 3"])
    _svm(d / "huge_index.svm", ["1 1:0.5", "-1 2147483648:1"])
    _svm(d / "zero_index_one_based.svm", ["1 -1:0.5", "-1 2:1"])
    _svm(d / "text_label.svm", ["spam 1:0.5", "ham 2:1"])
    (d / "binary.svm").write_bytes(rng.bytes(300))

    # dense text (issue 17): label first, an optional header
    rows = [f"{label:g}," + ",".join(f"{v:.6f}" for v in row) for label, row in zip(y, X)]
    (d / "good.csv").write_text("label,a,b,c,d\n" + "\n".join(rows) + "\n")
    (d / "nohdr.csv").write_text("\n".join(rows) + "\n")
    (d / "real_y.csv").write_text("\n".join(f"{0.1 + k / 7:.4f}," + r.split(",", 1)[1] for k, r in
                                           enumerate(rows)) + "\n")
    (d / "ragged.csv").write_text("1,2,3\n-1,4\n1,5,6\n")
    (d / "bad_field.csv").write_text("y,a,b\n1,2,3\n-1,4,x\n")
    (d / "header_only.csv").write_text("y,a,b\n")
    (d / "labels_only.txt").write_text("label\n1\n-1\n")
    with gzip.open(d / "X.npy.gz", "wb") as f:
        f.write((d / "X.npy").read_bytes())


# ---------------------------------------------------------------- the cases
def case(name, *argv, match, env=None, needs=None):
    """One invocation: ``{d}`` in an argument is the folder of :func:`make_files`; ``match`` a
    (case-insensitive) part of the one-line message; ``needs``: the fix outside the CLI it waits for."""
    marks = [pytest.mark.xfail(strict=True, reason=f"waits for: {needs}")] if needs else []
    return pytest.param(list(argv), env or {}, match, id=name, marks=marks)


G = "{d}/good.svm"
CHEAP_BENCH = ["--backend", "numpy", "--anchors", "none", "--no-warmup", "--kernel-seconds", "0.001", "--C", "1",
               "--no-plots", "--quiet"]
BAD = [
    # fit: data the estimators refuse
    case("fit-empty-file", "fit", "{d}/empty.svm", match="empty.svm: Found array with 0 sample"),
    case("fit-nan-svm", "fit", "{d}/nan.svm", match="nan.svm: Input X contains NaN"),
    case("fit-inf-svm", "fit", "{d}/inf.svm", match="inf.svm: Input X contains NaN or infinity"),
    case("fit-nan-npz", "fit", "{d}/nan.npz", match="nan.npz: Input X contains NaN"),
    case("fit-nan-label-ridge", "fit", "{d}/nan_label.svm", "--task", "ridge", match="y contains NaN"),
    case("fit-one-class", "fit", "{d}/one_class.svm", match="two classes; got 1 class"),
    case("fit-string-labels-ridge", "fit", "{d}/string_y.npz", "--task", "ridge",
         match="--task ridge needs numeric labels; {d}/string_y.npz has text labels (a, b): use --task logistic"),
    case("fit-labels-too-short", "fit", "{d}/X.npy", "--labels", "{d}/y_short.npy", match="40 rows but 39 labels"),
    case("fit-labels-missing", "fit", "{d}/X.npy", "--labels", "{d}/nowhere.npy",
         match="cannot read labels file"),
    case("fit-npy-no-labels", "fit", "{d}/X.npy", match="give --labels"),
    case("fit-npy-3d", "fit", "{d}/X3d.npy", "--labels", "{d}/y.npy", match="must be 2-D"),
    case("fit-npy-object", "fit", "{d}/object.npy", "--labels", "{d}/y.npy", match="cannot read data file"),
    case("fit-npy-not-npy", "fit", "{d}/not.npy", "--labels", "{d}/y.npy",
         match="the name ends in .npy but the content is not an .npy file"),
    case("fit-npy-gzipped", "fit", "{d}/X.npy.gz", "--labels", "{d}/y.npy", match="decompress it first"),
    case("fit-npz-no-arrays", "fit", "{d}/arrays.npz", match="holds arrays X and y"),
    # fit: broken CSR in an .npz
    case("fit-csr-index-out-of-range", "fit", "{d}/csr_index_oob.npz", match="column index 4 in row 0 is out of range"),
    case("fit-csr-index-negative", "fit", "{d}/csr_index_negative.npz", match="index -1 in row 0 is out of range"),
    case("fit-csr-indptr-decreasing", "fit", "{d}/csr_indptr_decreasing.npz", match="non-decreasing"),
    case("fit-csr-indptr-rise-fall", "fit", "{d}/csr_indptr_rise_fall.npz", match="non-decreasing"),
    case("fit-csr-indptr-short", "fit", "{d}/csr_indptr_short.npz", match="index pointer size 3 should be 4"),
    case("fit-csr-indices-short", "fit", "{d}/csr_indices_short.npz", match="same size"),
    case("fit-csr-negative-shape", "fit", "{d}/csr_bad_shape.npz", match="negative"),
    case("fit-csr-cython-index-out-of-range", "fit", "{d}/csr_index_oob.npz", "--backend", "cython",
         match="out of range"),
    case("fit-csr-cython-rise-fall", "fit", "{d}/csr_indptr_rise_fall.npz", "--backend", "cython",
         "--solver", "dual_cd", match="non-decreasing"),
    case("fit-csr-numba-index-negative", "fit", "{d}/csr_index_negative.npz", "--backend", "numba",
         match="out of range"),
    # fit: files that cannot be read
    case("fit-missing-file", "fit", "{d}/nowhere.svm", match="nowhere.svm' does not exist"),
    case("fit-data-is-directory", "fit", "{d}/adir", match="adir': [Errno 21] Is a directory"),
    case("fit-garbage-xz", "fit", "{d}/garbage.svm.xz", match="garbage.svm.xz"),
    case("fit-garbage-bz2", "fit", "{d}/garbage.svm.bz2", match="garbage.svm.bz2"),
    case("fit-garbage-gz", "fit", "{d}/garbage.svm.gz", match="garbage.svm.gz"),
    case("fit-truncated-xz", "fit", "{d}/truncated.svm.xz", match="truncated.svm.xz"),
    case("fit-truncated-line", "fit", "{d}/truncated_line.svm", match="truncated_line.svm"),
    case("fit-no-colon", "fit", "{d}/no_colon.svm", match="no_colon.svm"),
    case("fit-index-2^31", "fit", "{d}/huge_index.svm", match="huge_index.svm: value too large"),
    case("fit-negative-index", "fit", "{d}/zero_index_one_based.svm", match="invalid index -1"),
    case("fit-text-labels", "fit", "{d}/text_label.svm", match="spam"),
    case("fit-binary-file", "fit", "{d}/binary.svm", match="binary.svm': binary content"),
    case("fit-garbage-named-xz", "fit", "{d}/garbage.svm.xz", match="not xz-compressed although the name ends in .xz"),
    # fit: dense text
    case("fit-csv-ragged", "fit", "{d}/ragged.csv", match="every line needs the same number of fields"),
    case("fit-csv-bad-field", "fit", "{d}/bad_field.csv", match="could not convert string 'x'"),
    case("fit-csv-header-only", "fit", "{d}/header_only.csv", match="no data rows"),
    case("fit-text-labels-only", "fit", "{d}/labels_only.txt",
         match="one field per line, and 'label' is not a label: no features"),
    case("fit-label-column-no-header", "fit", "{d}/nohdr.csv", "--label-column", "label",
         match="--label-column 'label' needs a header line"),
    case("fit-label-column-unknown", "fit", "{d}/good.csv", "--label-column", "y",
         match="no column 'y' in the header; columns: label, a, b, c, d"),
    case("fit-n-features-dense", "fit", "{d}/good.csv", "--n-features", "7",
         match="has 4 features, --n-features says 7 (dense data is not padded or cut"),
    case("fit-n-features-zero", "fit", G, "--n-features", "0", match="argument --n-features: '0' must be a positive"),
    # fit: the task and the options of the other task
    case("fit-ridge-with-C", "fit", G, "--task", "ridge", "--C", "5",
         match="--C is logistic regression's inverse penalty; ridge takes --alpha (lambda = alpha)"),
    case("fit-logistic-with-alpha", "fit", G, "--task", "logistic", "--alpha", "5",
         match="logistic regression takes --C (lambda = 1/C)"),
    case("fit-auto-ridge-with-C", "fit", "{d}/real_y.csv", "--C", "5",
         match="ridge takes --alpha (lambda = alpha) (task auto chose ridge: the labels are real numbers"),
    case("fit-auto-logistic-with-alpha", "fit", G, "--alpha", "2",
         match="takes --C (lambda = 1/C) (task auto chose logistic: the labels are 2 classes (-1, 1))"),
    # fit: class weights and solver options
    case("fit-class-weight-syntax", "fit", G, "--class-weight", "1=2", match="'1=2' is not LABEL:WEIGHT"),
    case("fit-class-weight-empty", "fit", G, "--class-weight", ",", match="give 'balanced' or LABEL:WEIGHT"),
    case("fit-class-weight-not-number", "fit", G, "--class-weight", "1:heavy",
         match="the weight 'heavy' of label '1' is not a number"),
    case("fit-class-weight-negative", "fit", G, "--class-weight", "1:-2", match="finite non-negative"),
    case("fit-class-weight-unknown-label", "fit", G, "--class-weight", "3:2",
         match="--class-weight: '3' is not a label of the data; the labels are -1, 1"),
    case("fit-class-weight-text-label", "fit", G, "--class-weight", "spam:2", match="'spam' is not a label"),
    case("fit-class-weight-twice", "fit", G, "--class-weight", "1:2,1.0:3", match="gives label '1.0' twice"),
    case("fit-class-weight-zero-class", "fit", G, "--class-weight", "1:0",
         match="every sample of class 1.0 has zero weight"),
    case("fit-seed-negative", "fit", G, "--seed", "-1", match="argument --seed: '-1' must be a non-negative"),
    case("fit-batch-size-zero", "fit", G, "--batch-size", "0", match="argument --batch-size: '0' must be a positive"),
    case("fit-learning-rate-zero", "fit", G, "--learning-rate", "0", match="argument --learning-rate: '0'"),
    # fit: where the model goes (checked before the data is read)
    case("fit-model-is-directory", "fit", G, "--model", "{d}/adir", match="--model '{d}/adir' is a directory"),
    case("fit-model-dir-missing", "fit", G, "--model", "{d}/no/such/dir/model.npz",
         match="the folder '{d}/no/such/dir' does not exist"),
    case("fit-model-under-a-file", "fit", G, "--model", "{d}/good.svm/model.npz",
         match="the folder '{d}/good.svm' does not exist"),
    case("fit-model-unwritable", "fit", G, "--model", "/proc/tikhon-model.npz",
         match="--model '/proc/tikhon-model.npz': "),
    # fit: backends and solvers
    case("fit-env-backend-bogus", "fit", G, env={"TIKHON_BACKEND": "bogus"},
         match="unknown backend 'bogus' (from the TIKHON_BACKEND environment variable); valid backends are"),
    case("fit-backend-unknown", "fit", G, "--backend", "cuda", match="unknown backend 'cuda'; valid backends are"),
    case("fit-backend-dask-on-file", "fit", G, "--backend", "dask", match="'dask'"),
    case("fit-cython-on-dense", "fit", "{d}/good.npz", "--backend", "cython", match="cannot read dense input"),
    case("fit-dual_cd-numba", "fit", G, "--solver", "dual_cd", "--backend", "numba",
         match="backend 'numba' does not run the 'dual_cd' solver"),
    case("fit-dual_cd-numpy", "fit", G, "--solver", "dual_cd", "--backend", "numpy", match="does not run"),
    case("fit-dual_cd-dense-auto", "fit", "{d}/good.npz", "--solver", "dual_cd", match="dual_cd"),
    case("fit-solver-unknown", "fit", G, "--solver", "magic", match="unknown solver 'magic'; valid solvers are"),
    case("fit-dtype-unknown", "fit", G, "--dtype", "float16", match="unknown dtype 'float16'"),
    # fit: numbers
    *[case(f"fit-{opt[2:]}={value}", "fit", G, opt, value, match=f"argument {opt}: '{value}'")
      for opt, values in (("--C", ("-1", "0", "nan", "inf", "abc")), ("--tol", ("0", "-0.001", "nan")),
                          ("--max-iter", ("0", "-5", "1.5")))
      for value in values],
    case("fit-alpha=0", "fit", G, "--task", "ridge", "--alpha", "0", match="argument --alpha: '0'"),
    case("fit-task-unknown", "fit", G, "--task", "poisson", match="invalid choice: 'poisson'"),
    # predict
    case("predict-model-missing", "predict", "{d}/nowhere.npz", G, match="nowhere.npz' does not exist"),
    case("predict-model-is-text", "predict", "{d}/not_a_model.npz", G, match="cannot read model file"),
    case("predict-model-is-other-npz", "predict", "{d}/arrays.npz", G, match="not a tikhon model file"),
    case("predict-model-truncated", "predict", "{d}/model_truncated.npz", G, match="cannot read model file"),
    case("predict-model-corrupt", "predict", "{d}/model_corrupt.npz", G, match="cannot read model file"),
    case("predict-model-is-data", "predict", G, G, match="cannot read model file"),
    case("predict-model-is-directory", "predict", "{d}/adir", G, match="adir"),
    case("predict-narrower-model-dense", "predict", "{d}/model2.npz", "{d}/good.npz",
         match="has 4 features, the model expects 2"),
    case("predict-wider-model-dense", "predict", "{d}/model8.npz", "{d}/good.npz",
         match="has 4 features, the model expects 8"),
    case("predict-data-missing", "predict", "{d}/model.npz", "{d}/nowhere.svm", match="does not exist"),
    case("predict-data-nan", "predict", "{d}/model.npz", "{d}/nan.npz", match="nan.npz: Input X contains NaN"),
    case("predict-data-empty", "predict", "{d}/model.npz", "{d}/empty.svm", match="empty.svm: Found array with 0"),
    case("predict-data-garbage-xz", "predict", "{d}/model.npz", "{d}/garbage.svm.xz", match="garbage.svm.xz"),
    case("predict-data-csr-oob", "predict", "{d}/model.npz", "{d}/csr_index_oob.npz", match="out of range"),
    case("predict-data-csr-rise-fall", "predict", "{d}/model.npz", "{d}/csr_indptr_rise_fall.npz",
         match="non-decreasing"),
    case("predict-proba-ridge", "predict", "{d}/ridge.npz", G, "--proba", match="--proba needs a logistic"),
    case("predict-decision-ridge", "predict", "{d}/ridge.npz", G, "--decision",
         match="--decision needs a logistic regression model; {d}/ridge.npz holds Ridge"),
    case("predict-proba-and-decision", "predict", "{d}/model.npz", G, "--proba", "--decision",
         match="argument --decision: not allowed with argument --proba"),
    case("predict-n-features-not-the-model's", "predict", "{d}/model.npz", G, "--n-features", "5",
         match="--n-features 5, but the model was fitted on 4 features"),
    case("predict-narrower-model-csv", "predict", "{d}/model2.npz", "{d}/good.csv",
         match="has 4 features, the model expects 2"),
    case("predict-label-column-unknown", "predict", "{d}/model.npz", "{d}/good.csv", "--label-column", "z",
         match="no column 'z'"),
    case("predict-out-is-directory", "predict", "{d}/model.npz", G, "--out", "{d}/adir",
         match="--out '{d}/adir' is a directory"),
    case("predict-out-dir-missing", "predict", "{d}/model.npz", G, "--out", "{d}/no/such/p.txt",
         match="the folder '{d}/no/such' does not exist"),
    case("predict-out-unwritable", "predict", "{d}/model.npz", G, "--out", "/proc/tikhon-p.npy",
         match="--out '/proc/tikhon-p.npy': No such file or directory"),
    case("predict-backend-unknown", "predict", "{d}/model.npz", G, "--backend", "cuda",
         match="unknown backend 'cuda'"),
    case("predict-env-backend-bogus", "predict", "{d}/model.npz", G, env={"TIKHON_BACKEND": "bogus"},
         match="unknown backend 'bogus' (from the TIKHON_BACKEND environment variable)"),
    # plot
    case("plot-kind-unknown", "plot", "scatter", G, match="invalid choice: 'scatter'"),
    case("plot-data-missing", "plot", "path", "{d}/nowhere.svm", match="does not exist"),
    case("plot-C-zero", "plot", "path", G, "--C", "0", match="tikhon plot: error: --C: '0' must be a finite positive"),
    case("plot-C-text", "plot", "cv", G, "--C", "1,abc", match="--C: 'abc' is not a number"),
    case("plot-top-zero", "plot", "path", G, "--top", "0", match="argument --top: '0' must be a positive integer"),
    case("plot-cv-one-fold", "plot", "cv", G, "--cv", "1", match="n_splits=1"),
    case("plot-cv-more-folds-than-rows", "plot", "cv", G, "--cv", "1000", match="n_splits=1000"),
    case("plot-scoring-unknown", "plot", "cv", G, "--scoring", "happiness", match="'happiness'"),
    case("plot-solvers-empty", "plot", "history", G, "--solvers", ",", match="unknown solver ''"),
    case("plot-solver-unknown", "plot", "history", G, "--solvers", "newton,magic", match="unknown solver 'magic'"),
    case("plot-dual_cd-numba", "plot", "history", G, "--solvers", "dual_cd", "--backend", "numba",
         match="backend 'numba' does not run the 'dual_cd' solver"),
    case("plot-x-unknown", "plot", "history", G, "--x", "memory", match="invalid choice: 'memory'"),
    case("plot-ridge-with-C", "plot", "path", "{d}/real_y.csv", "--C", "1",
         match="ridge takes --alpha (lambda = alpha) (task auto chose ridge"),
    case("plot-history-logistic-with-alpha", "plot", "history", G, "--task", "logistic", "--alpha", "1",
         match="logistic regression takes --C"),
    case("plot-garbage-xz", "plot", "path", "{d}/garbage.svm.xz", match="garbage.svm.xz"),
    case("plot-index-2^31", "plot", "path", "{d}/huge_index.svm", match="huge_index.svm: value too large"),
    case("plot-csr-rise-fall", "plot", "path", "{d}/csr_indptr_rise_fall.npz", match="non-decreasing"),
    case("plot-out-is-directory", "plot", "path", G, "--C", "1", "--out", "{d}/adir",
         match="--out '{d}/adir' is a directory"),
    case("plot-out-unwritable", "plot", "path", G, "--C", "1", "--out", "/proc/tikhon/path.png",
         match="--out '/proc/tikhon/path.png': No such file or directory"),
    case("plot-env-backend-bogus", "plot", "path", G, "--C", "1", env={"TIKHON_BACKEND": "bogus"},
         match="unknown backend 'bogus'"),
    # bench
    case("bench-data-unknown-name", "bench", "--data", "a10a", match="--data 'a10a': not a file"),
    case("bench-synthetic-n-zero", "bench", "--data", "synthetic:n=0", match="n='0' must be a positive integer"),
    case("bench-synthetic-density-2", "bench", "--data", "synthetic:n=100,d=5,density=2",
         match="density must be in (0, 1]"),
    case("bench-synthetic-dtype", "bench", "--data", "synthetic:dtype=int8", match="unknown dtype 'int8'"),
    case("bench-synthetic-unknown-key", "bench", "--data", "synthetic:rows=10", match="cannot read 'rows=10'"),
    case("bench-data-garbage-xz", "bench", "--data", "{d}/garbage.svm.xz", *CHEAP_BENCH,
         match="garbage.svm.xz': not xz-compressed although the name ends in .xz"),
    case("bench-data-truncated-xz", "bench", "--data", "{d}/truncated.svm.xz", *CHEAP_BENCH,
         match="truncated.svm.xz"),
    case("bench-data-index-2^31", "bench", "--data", "{d}/huge_index.svm", *CHEAP_BENCH, match="value too large"),
    case("bench-data-nan", "bench", "--data", "{d}/nan.npz", *CHEAP_BENCH, match="NaN"),
    case("bench-csr-index-out-of-range", "bench", "--data", "{d}/csr_index_oob.npz", *CHEAP_BENCH,
         match="out of range"),
    case("bench-csr-index-negative", "bench", "--data", "{d}/csr_index_negative.npz", *CHEAP_BENCH,
         match="out of range"),
    case("bench-csr-indptr-rise-fall", "bench", "--data", "{d}/csr_indptr_rise_fall.npz", *CHEAP_BENCH,
         match="non-decreasing"),
    case("bench-out-is-a-file", "bench", "--data", "synthetic:n=50,d=3", *CHEAP_BENCH, "--out", G,
         match="--out '{d}/good.svm' is a file"),
    case("bench-out-unwritable", "bench", "--data", "synthetic:n=50,d=3", *CHEAP_BENCH, "--out",
         "/proc/tikhon-bench", match="--out '/proc/tikhon-bench': No such file or directory"),
    case("bench-backend-unknown", "bench", "--backend", "numpy,cuda", match="unknown backend 'cuda'"),
    case("bench-levels", "bench", "--levels", "2", match="--levels must be"),
    case("bench-C-nan", "bench", "--C", "nan", match="--C values must be finite positive numbers"),
    # the command line itself
    case("no-command", match="the following arguments are required"),
    case("command-unknown", "frobnicate", match="invalid choice: 'frobnicate'"),
    case("fit-no-data", "fit", match="tikhon fit: error: the following arguments are required: data"),
    case("fit-option-unknown", "fit", G, "--lambda", "1", match="unrecognized arguments: --lambda 1"),
]

# Valid invocations, so that the harness can fail for the right reason: (argv, a part of stdout or stderr).
GOOD = [
    pytest.param(["fit", G, "--backend", "numpy", "--model", "{d}/out/m1.npz"], "wrote {d}/out/m1.npz",
                 id="fit-svm-numpy"),
    pytest.param(["fit", "{d}/good_csr.npz", "--model", "{d}/out/m2.npz"], "wrote {d}/out/m2.npz", id="fit-csr-auto"),
    pytest.param(["fit", "{d}/good.svm.xz", "--task", "ridge", "--solver", "lbfgs", "--model", "{d}/out/m3.npz"],
                 "train R^2", id="fit-xz-ridge"),
    pytest.param(["predict", "{d}/model.npz", "{d}/good.svm.bz2", "--out", "{d}/out/p.txt"],
                 "wrote 40 predictions", id="predict-bz2"),
    pytest.param(["predict", "{d}/model.npz", "{d}/good.npz", "--proba"], "accuracy on", id="predict-proba-stdout"),
    pytest.param(["plot", "path", G, "--C", "0.1,1", "--backend", "numpy", "--out", "{d}/out/path.png"],
                 "wrote {d}/out/path.png", id="plot-path"),
    pytest.param(["predict", "{d}/model2.npz", G], "values of features beyond 2 ignored (as LIBLINEAR does)",
                 id="predict-narrower-model-svm"),
    pytest.param(["predict", "{d}/model8.npz", G], "accuracy on", id="predict-wider-model-svm"),
    pytest.param(["fit", "{d}/good.csv", "--model", "{d}/out/m4.npz"], "the column 'label' of", id="fit-csv"),
    pytest.param(["fit", "{d}/real_y.csv", "--class-weight", "balanced", "--model", "{d}/out/m5.npz"],
                 "tikhon fit: warning: --class-weight applies to logistic regression only; ignored for ridge",
                 id="fit-ridge-class-weight-warns"),
    pytest.param(["fit", G, "--batch-size", "8", "--solver", "newton", "--model", "{d}/out/m6.npz"],
                 "tikhon fit: warning: --batch-size applies to solver sgd only; ignored by newton",
                 id="fit-batch-size-newton-warns"),
    pytest.param(["fit", G, "--label-column", "last", "--model", "{d}/out/m7.npz"],
                 "warning: --label-column applies to dense text; {d}/good.svm is svmlight: ignored",
                 id="fit-label-column-svmlight-warns"),
    pytest.param(["fit", G, "--class-weight", "1:2,-1:1", "--model", "{d}/out/m8.npz"],
                 "wrote {d}/out/m8.npz", id="fit-class-weight-dict"),
    pytest.param(["bench", "--data", "synthetic:n=60,d=3", *CHEAP_BENCH, "--out", "{d}/out/bench"],
                 "results.json", id="bench-tiny"),
    # three classes: a multinomial problem
    pytest.param(["bench", "--data", "{d}/three_classes.svm", *CHEAP_BENCH, "--out", "{d}/out/bench3"],
                 "logistic C=1, 3 classes", id="bench-three-classes"),
]


# ---------------------------------------------------------------- the driver
CASE_TIMEOUT = 60  # seconds; a case that takes longer is killed and reported as hung


def _child(argv, env, out_path, err_path):
    """In the forked child: run ``main`` as ``python -m tikhon.cli`` would, never return."""
    code = 1
    try:
        os.environ.update(env)
        for fd, path in ((1, out_path), (2, err_path)):
            target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(target, fd)
            os.close(target)
        from tikhon.cli import main

        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # what the interpreter does with an uncaught exception
            import traceback

            traceback.print_exc()
            code = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code if isinstance(code, int) else 1)


def _wait(pid, deadline):
    """The exit code of child ``pid`` (``-N``: killed by signal N), or ``"timeout"`` (killed after ``deadline``)."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return "timeout"
        time.sleep(0.005)


def drive(cases, workdir):
    """Run each ``(name, argv, env)`` in a forked child of this process; returns their outcomes."""
    import sklearn.datasets  # noqa: F401  the imports the children share
    import tikhon
    import tikhon.bench.report  # noqa: F401
    import tikhon.bench.runner  # noqa: F401
    import tikhon.cli  # noqa: F401

    tikhon.available_backends()  # imports every backend module (numba, dask) once

    results = {}
    for name, argv, env in cases:
        out_path, err_path = os.path.join(workdir, "out.txt"), os.path.join(workdir, "err.txt")
        sys.stdout.flush()
        sys.stderr.flush()
        for path in (out_path, err_path):  # nothing left from the previous case
            Path(path).write_text("")
        t0 = time.monotonic()
        pid = os.fork()
        if pid == 0:
            _child(argv, env, out_path, err_path)
        code = _wait(pid, t0 + CASE_TIMEOUT)
        results[name] = {"code": code, "stdout": Path(out_path).read_text(errors="replace"),
                         "stderr": Path(err_path).read_text(errors="replace"), "seconds": time.monotonic() - t0}
    return results


def _run_one(argv, env, workdir):
    proc = subprocess.run([sys.executable, "-m", "tikhon.cli", *argv], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=workdir, timeout=CASE_TIMEOUT)
    return {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


def run_cases(cases, workdir):
    """Outcomes of ``cases`` (``(name, argv, env)``), each in its own process, cwd ``workdir``."""
    if not hasattr(os, "fork"):
        return {name: _run_one(argv, env, workdir) for name, argv, env in cases}
    spec = Path(workdir) / "cases.json"
    spec.write_text(json.dumps({"workdir": str(workdir), "cases": cases}))
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    proc = subprocess.run([sys.executable, __file__, str(spec)], capture_output=True, text=True, cwd=workdir,
                          env=env, timeout=CASE_TIMEOUT * 2 + 30 * len(cases))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def _expand(params, d):
    """``(name, argv, env)`` of each case (BAD's or GOOD's), ``{d}`` replaced by the folder ``d``."""
    return [(p.id, [a.format(d=d) for a in p.values[0]], p.values[1] if len(p.values) == 3 else {})
            for p in params]


# ---------------------------------------------------------------- the tests
@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """``(folder, {case id: {"code", "stdout", "stderr"}})`` of every case, run once."""
    d = tmp_path_factory.mktemp("cli_errors")
    make_files(d)
    return d, run_cases(_expand(BAD, d) + _expand(GOOD, d), d)


def _describe(outcome):
    code = outcome["code"]
    what = "hung" if code == "timeout" else f"killed by signal {-code}" if code < 0 else f"exit {code}"
    return f"{what}; stderr: {outcome['stderr'][-2000:]!r}"


@pytest.mark.parametrize("argv, env, match", BAD)
def test_user_error_is_one_line_and_exit_2(outcomes, request, argv, env, match):
    d, results = outcomes
    outcome = results[request.node.callspec.id]
    err = outcome["stderr"]
    assert outcome["code"] == 2, _describe(outcome)
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("tikhon") and ": error: " in lines[0], lines[0]
    assert match.format(d=d).lower() in lines[0].lower(), lines[0]


@pytest.mark.parametrize("argv, expected", GOOD)
def test_valid_invocations_exit_0(outcomes, request, argv, expected):
    if "plot" in argv:
        pytest.importorskip("matplotlib")
    d, results = outcomes
    outcome = results[request.node.callspec.id]
    assert outcome["code"] == 0, _describe(outcome)
    assert "Traceback" not in outcome["stderr"]
    assert expected.format(d=d) in outcome["stdout"] + outcome["stderr"], outcome


# ---------------------------------------------------------------- the installed entry point
@pytest.mark.parametrize("argv, env, code, expected", [
    pytest.param(["fit", "{d}/garbage.svm.xz"], {}, 2, "garbage.svm.xz", id="garbage-xz"),
    pytest.param(["predict", "{d}/model.npz", G], {"TIKHON_BACKEND": "bogus"}, 2, "TIKHON_BACKEND", id="env"),
    pytest.param(["fit", G, "--model", "{d}/m.npz"], {}, 0, "wrote {d}/m.npz", id="valid-fit"),
])
def test_console_script(tmp_path, argv, env, code, expected):
    """The real interpreter behind ``tikhon`` (or ``python -m tikhon.cli``), not the driver's emulation."""
    make_files(tmp_path)
    exe = shutil.which("tikhon")
    command = [exe] if exe else [sys.executable, "-m", "tikhon.cli"]
    proc = subprocess.run([*command, *[a.format(d=tmp_path) for a in argv]], capture_output=True, text=True,
                          env={**os.environ, **env}, cwd=tmp_path, timeout=CASE_TIMEOUT)
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    assert expected.format(d=tmp_path) in proc.stdout + proc.stderr
    if code == 2:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# ---------------------------------------------------------------- the table, in process
def _raising(exc):
    def command(args):
        raise exc
    return command


@pytest.mark.parametrize("exc, code, line", [
    (ValueError("bad\n  value"), 2, "tikhon fit: error: bad value"),
    (OSError(13, "Permission denied", "x.npz"), 2, "tikhon fit: error: [Errno 13] Permission denied: 'x.npz'"),
    (lzma.LZMAError("Input format not supported by decoder"), 2, "error: Input format not supported by decoder"),
    (OverflowError("value too large to convert to int"), 2, "error: value too large"),
    (EOFError("Compressed file ended"), 2, "error: Compressed file ended"),
    (ImportError("backend 'numba' is not available: pip install numba"), 2, "error: backend 'numba'"),
    (MemoryError("Unable to allocate 8.00 TiB"), 1, "tikhon fit: failed: Unable to allocate 8.00 TiB"),
])
def test_exception_table(monkeypatch, capsys, exc, code, line):
    """User errors exit 2 and running out of memory 1, each with one line and no traceback."""
    from tikhon import cli

    monkeypatch.setattr(cli, "_fit", _raising(exc))
    assert cli.main(["fit", "data.svm"]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and line in err, err


def test_a_bug_keeps_its_traceback(monkeypatch):
    """An exception outside the table is a bug: it propagates (the interpreter prints it, exit 1)."""
    from tikhon import cli

    monkeypatch.setattr(cli, "_fit", _raising(ZeroDivisionError("a bug")))
    with pytest.raises(ZeroDivisionError):
        cli.main(["fit", "data.svm"])


def test_the_message_names_the_file_once():
    """An error about a file is prefixed by its name, unless the message names it already; an
    OSError keeps only its reason (its own file name may be a temporary one)."""
    from tikhon.cli import _about, _one_line

    def caught(exc, name, kinds=Exception):
        try:
            with _about(name, kinds):
                raise exc
        except Exception as raised:
            return _one_line(raised)

    assert caught(ValueError("Input X contains NaN"), "a.svm") == "a.svm: Input X contains NaN"
    assert caught(ValueError("cannot read data file 'a.svm': x"), "a.svm") == "cannot read data file 'a.svm': x"
    assert caught(FileNotFoundError(2, "No such file or directory", "/p/m.npz.tmp"), "--model '/p/m.npz'",
                  OSError) == "--model '/p/m.npz': No such file or directory"
    assert caught(ValueError("not about the output"), "--out 'x.png'", OSError) == "not about the output"


if __name__ == "__main__":  # the driver process of run_cases
    spec = json.loads(Path(sys.argv[1]).read_text())
    os.chdir(spec["workdir"])
    outcome = drive(spec["cases"], spec["workdir"])
    print(json.dumps(outcome))
