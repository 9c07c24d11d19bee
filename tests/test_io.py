"""Model files: round trip without pickle, and clear errors for bad files."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp

import tikhon
from tikhon._io import FORMAT_VERSION, ModelFileError, load_model, save_model


@pytest.fixture(scope="module")
def data():
    X, y = tikhon.datasets.make_classification(300, 7, seed=3)
    return X, y


def _fitted_logistic(data, **params):
    X, y = data
    return tikhon.LogisticRegression(backend="numpy", **params).fit(X, y)


def _rewrite(path, target, edit_metadata=None, drop=None, replace=None):
    """Copy a model file, editing its metadata or members."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            if item.filename == drop:
                continue
            raw = src.read(item.filename)
            if replace and item.filename in replace:
                raw = replace[item.filename]
            if item.filename == "metadata.json" and edit_metadata:
                meta = json.loads(raw)
                edit_metadata(meta)
                raw = json.dumps(meta).encode()
            dst.writestr(item.filename, raw)
    return target


def test_logistic_round_trip(tmp_path, data):
    X, y = data
    model = _fitted_logistic(data, C=0.5, class_weight={-1.0: 2.0, 1.0: 1.0})
    path = save_model(model, tmp_path / "model.npz")
    loaded = load_model(path)
    assert type(loaded) is tikhon.LogisticRegression
    assert loaded.get_params() == model.get_params()
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    np.testing.assert_array_equal(loaded.intercept_, model.intercept_)
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert loaded.classes_.dtype == model.classes_.dtype
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    for attr in ("n_iter_", "converged_", "backend_", "solver_", "objective_", "duality_gap_", "n_features_in_"):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    assert loaded.history_ == [tuple(map(float, h)) for h in model.history_]


def test_string_classes_and_sparse_input(tmp_path):
    X, y = tikhon.datasets.make_sparse_classification(200, 30, 0.2, seed=1)
    labels = np.where(y > 0, "spam", "ham")
    model = tikhon.LogisticRegression(backend="numpy").fit(X, labels)
    loaded = load_model(save_model(model, tmp_path / "m.npz"))
    assert loaded.classes_.tolist() == ["ham", "spam"]
    np.testing.assert_array_equal(loaded.predict(sp.csr_matrix(X)), model.predict(X))


def test_ridge_round_trip(tmp_path, data):
    X, y = data
    model = tikhon.Ridge(alpha=3.0, backend="numpy").fit(X, y * 2.0 + 1.0)
    loaded = load_model(save_model(model, tmp_path / "ridge.npz"))
    assert type(loaded) is tikhon.Ridge
    assert isinstance(loaded.intercept_, float)
    assert loaded.coef_.shape == model.coef_.shape
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_file_is_plain_zip_with_json_metadata(tmp_path, data):
    path = save_model(_fitted_logistic(data), tmp_path / "m.npz")
    with zipfile.ZipFile(path) as archive:
        meta = json.loads(archive.read("metadata.json"))
        assert meta["format"] == "tikhon-model" and meta["format_version"] == FORMAT_VERSION
        assert meta["estimator"] == "LogisticRegression"
        for name in archive.namelist():
            if name.endswith(".npy"):  # every array loads without pickle
                np.lib.format.read_array(io.BytesIO(archive.read(name)), allow_pickle=False)
    assert not (tmp_path / "m.npz.tmp").exists()


def test_unfitted_and_foreign_estimators_refused(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(NotFittedError):
        save_model(tikhon.LogisticRegression(), tmp_path / "x.npz")
    with pytest.raises(TypeError, match="tikhon estimators"):
        save_model(LogisticRegression(), tmp_path / "x.npz")


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0, 10, 200, -30])
def test_truncated_file(tmp_path, data, keep):
    path = save_model(_fitted_logistic(data), tmp_path / "m.npz")
    raw = open(path, "rb").read()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(raw[:keep] if keep >= 0 else raw[:len(raw) + keep])
    with pytest.raises(ModelFileError, match="cannot read model file"):
        load_model(bad)


def test_corrupt_member_detected(tmp_path, data):
    path = save_model(_fitted_logistic(data), tmp_path / "m.npz")
    raw = bytearray(open(path, "rb").read())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("coef_.npy")
    # flip bytes inside coef_.npy's compressed data (after its local header)
    start = info.header_offset + 30 + len(info.filename) + 8
    for i in range(start, start + 4):
        raw[i] ^= 0xFF
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(raw))
    with pytest.raises(ModelFileError, match="coef_"):
        load_model(bad)


def test_wrong_format_and_version(tmp_path, data):
    path = save_model(_fitted_logistic(data), tmp_path / "m.npz")

    def newer(meta):
        meta["format_version"] = FORMAT_VERSION + 1

    with pytest.raises(ModelFileError, match="newer than this tikhon reads"):
        load_model(_rewrite(path, tmp_path / "v.npz", newer))

    def other(meta):
        meta["format"] = "something-else"

    with pytest.raises(ModelFileError, match="expected 'tikhon-model'"):
        load_model(_rewrite(path, tmp_path / "f.npz", other))

    def evil(meta):
        meta["estimator"] = "os.system"

    with pytest.raises(ModelFileError, match="unknown estimator"):
        load_model(_rewrite(path, tmp_path / "e.npz", evil))

    with pytest.raises(ModelFileError, match="coef_.npy is missing"):
        load_model(_rewrite(path, tmp_path / "d.npz", drop="coef_.npy"))

    with pytest.raises(ModelFileError, match="not a tikhon model"):
        load_model(_rewrite(path, tmp_path / "n.npz", drop="metadata.json"))

    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_model(_rewrite(path, tmp_path / "j.npz", replace={"metadata.json": b"{oops"}))


def test_pickled_array_refused(tmp_path, data):
    path = save_model(_fitted_logistic(data), tmp_path / "m.npz")
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([object()], dtype=object), allow_pickle=True)
    with pytest.raises(ModelFileError, match=r"coef_.npy holds \|O"):
        load_model(_rewrite(path, tmp_path / "p.npz", replace={"coef_.npy": buffer.getvalue()}))


def test_not_a_zip(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_text("hello")
    with pytest.raises(ModelFileError, match="not a tikhon model file or truncated"):
        load_model(bad)


# ---- the estimators' API: model.save(path) / tikhon.load(path) ----
BACKENDS = [b for b in ("numpy", "numba", "cython", "dask") if b in tikhon.available_backends()]


def _native(backend, X, request):
    if backend == "cython":
        return sp.csr_matrix(X)
    if backend == "dask":
        request.getfixturevalue("dask_client")
        import dask.array as da

        return da.from_array(np.asarray(X), chunks=(X.shape[0] // 2, X.shape[1]))
    return X


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("estimator", ["LogisticRegression", "Ridge"])
def test_save_load_round_trip_every_backend(tmp_path, data, backend, estimator, request):
    X, y = data
    X32 = X.astype(np.float32)  # float32 data: the model (float64) predicts identically
    model = getattr(tikhon, estimator)(backend=backend).fit(_native(backend, X32, request), y)
    path = model.save(tmp_path / "model.tikhon")
    assert path == str(tmp_path / "model.tikhon")
    loaded = tikhon.load(path)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    for Xp in (X, X32, sp.csr_matrix(X)):
        np.testing.assert_array_equal(loaded.predict(Xp), model.predict(Xp))
        if estimator == "LogisticRegression":
            np.testing.assert_array_equal(loaded.decision_function(Xp), model.decision_function(Xp))
            np.testing.assert_array_equal(loaded.predict_proba(Xp), model.predict_proba(Xp))
    np.testing.assert_array_equal(np.asarray(loaded.predict(_native(backend, X32, request))),
                                  np.asarray(model.predict(_native(backend, X32, request))))
    for attr in ("backend_", "solver_", "n_iter_", "converged_", "certificate_", "duality_gap_"):
        assert getattr(loaded, attr) == getattr(model, attr), attr
    with pytest.raises(ValueError, match="X has 3 features"):
        loaded.predict(X[:, :3])


@pytest.mark.parametrize("labels", [[False, True], [0, 7], [-1.0, 2.0], ["no", "yes"]])
def test_label_types_round_trip(tmp_path, data, labels):
    X, y = data
    named = np.where(y > 0, labels[1], labels[0])
    model = tikhon.LogisticRegression(backend="numpy").fit(X, named)
    loaded = tikhon.load(model.save(tmp_path / "m.npz"))
    assert loaded.classes_.dtype == model.classes_.dtype
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_loading_never_unpickles_or_evaluates(tmp_path, data, monkeypatch):
    """Loading reads JSON and pickle-free .npy members only: with pickle and eval made
    to fail, a model still loads; a file naming code is refused without running it."""
    import builtins
    import pickle

    path = _fitted_logistic(data).save(tmp_path / "m.npz")

    def forbidden(*args, **kwargs):
        raise AssertionError("model loading must not unpickle or evaluate")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, forbidden)
    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    loaded = tikhon.load(path)
    np.testing.assert_array_equal(loaded.predict(data[0]), _fitted_logistic(data).predict(data[0]))

    marker = tmp_path / "pwned"

    def evil_params(meta):
        meta["params"]["C"] = {"__reduce__": f"os.system('touch {marker}')"}

    with pytest.raises(ModelFileError):
        tikhon.load(_rewrite(path, tmp_path / "e.npz", evil_params))
    assert not marker.exists()


def test_every_truncation_and_byte_flip_is_a_clear_error(tmp_path, data):
    """Cut the file at every 13th byte, or flip bytes all over it: the load either fails
    with ModelFileError or (a flip in bytes the reader ignores) gives the same model."""
    model = _fitted_logistic(data)
    path = model.save(tmp_path / "m.npz")
    raw = open(path, "rb").read()
    bad = tmp_path / "bad.npz"
    for cut in range(0, len(raw), 13):
        bad.write_bytes(raw[:cut])
        with pytest.raises(ModelFileError):
            tikhon.load(bad)
    rng = np.random.default_rng(0)
    expected = model.decision_function(data[0])
    outcomes = {"error": 0, "same": 0}
    for pos in rng.choice(len(raw), size=min(300, len(raw)), replace=False):
        flipped = bytearray(raw)
        flipped[pos] ^= 0xFF
        bad.write_bytes(bytes(flipped))
        try:
            loaded = tikhon.load(bad)
        except ModelFileError:
            outcomes["error"] += 1
            continue
        np.testing.assert_array_equal(loaded.decision_function(data[0]), expected)
        outcomes["same"] += 1
    assert outcomes["error"] > 0


def test_newer_version_via_public_api(tmp_path, data):
    path = _fitted_logistic(data).save(tmp_path / "m.npz")

    def newer(meta):
        meta["format_version"] = FORMAT_VERSION + 1

    with pytest.raises(ModelFileError, match="newer than this tikhon reads"):
        tikhon.load(_rewrite(path, tmp_path / "v.npz", newer))
    with pytest.raises(ModelFileError, match="format_version 'one' is not an integer"):
        tikhon.load(_rewrite(path, tmp_path / "w.npz", lambda m: m.update(format_version="one")))


# ---- every kind round trips: the loaded object equals the saved one and predicts the same
def _assert_same(a, b, where="model"):
    """``a`` and ``b`` are equal: same types, arrays with the same dtype, shape and values,
    estimators with the same parameters and fitted attributes, path results field by field."""
    import dataclasses

    from sklearn.base import BaseEstimator

    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, BaseEstimator):
        params_a, params_b = a.get_params(), b.get_params()
        assert params_a.keys() == params_b.keys()
        for key in params_a:  # splitters compare by their repr (their parameters)
            same = repr(params_a[key]) == repr(params_b[key]) if key == "cv" else None
            if same is None:
                _assert_same(params_a[key], params_b[key], f"{where}.{key}")
            else:
                assert same, f"{where}.{key}"
        fitted_a = {k: v for k, v in vars(a).items() if k.endswith("_") and not k.startswith("_")}
        fitted_b = {k: v for k, v in vars(b).items() if k.endswith("_") and not k.startswith("_")}
        assert fitted_a.keys() == fitted_b.keys(), where
        for key in fitted_a:
            _assert_same(fitted_a[key], fitted_b[key], f"{where}.{key}")
    elif dataclasses.is_dataclass(a):
        for field in dataclasses.fields(a):
            _assert_same(getattr(a, field.name), getattr(b, field.name), f"{where}.{field.name}")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape} != {b.dtype}{b.shape}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _several_outputs(data):
    """Three classes and three targets on the same X (the fixture's y is binary)."""
    X, _ = data
    score = X @ np.linspace(-1.0, 1.0, X.shape[1])
    classes = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    targets = np.column_stack([score, X[:, 0] - 2.0 * X[:, 1], 3.0 * X[:, 2] + 1.0])
    return classes, targets


def _fitted(kind, data):
    from sklearn.model_selection import StratifiedKFold

    X, y = data
    y3, Y = _several_outputs(data)
    makers = {
        "LogisticRegression": lambda: tikhon.LogisticRegression(C=0.5, backend="numpy").fit(X, y),
        "LogisticRegression balanced": lambda: tikhon.LogisticRegression(class_weight="balanced").fit(X, y),
        "Ridge": lambda: tikhon.Ridge(alpha=3.0, backend="numpy").fit(X, 2 * y + 1),
        "LogisticRegressionCV": lambda: tikhon.LogisticRegressionCV(Cs=4, cv=3).fit(X, y),
        "LogisticRegressionCV splitter": lambda: tikhon.LogisticRegressionCV(
            Cs=np.logspace(-2, 2, 3), cv=StratifiedKFold(3, shuffle=True, random_state=0),
            class_weight={-1.0: 2.0, 1.0: 1.0}, scoring="roc_auc").fit(X, y),
        "LogisticRegressionCV no refit": lambda: tikhon.LogisticRegressionCV(Cs=[0.1, 1.0], cv=3,
                                                                             refit=False).fit(X, y),
        "RidgeCV loo": lambda: tikhon.RidgeCV(alphas=(0.1, 1.0, 10.0)).fit(X, 2 * y + 1),
        "RidgeCV kfold": lambda: tikhon.RidgeCV(alphas=[0.1, 10.0], cv=3, scoring="r2").fit(X, 2 * y + 1),
        "PathResult logistic": lambda: tikhon.regularization_path(X, y, Cs=[0.01, 0.1, 1.0, 10.0]),
        "PathResult ridge eigh": lambda: tikhon.regularization_path(X, y, alphas=[0.1, 1.0], model="ridge"),
        "PathResult ridge warm start": lambda: tikhon.regularization_path(
            X, y, alphas=[0.1, 1.0], model="ridge", method="warm_start"),
        "LogisticRegressionCV multinomial": lambda: tikhon.LogisticRegressionCV(Cs=3, cv=3).fit(X, y3),
        "LogisticRegressionCV multinomial no refit": lambda: tikhon.LogisticRegressionCV(
            Cs=[0.1, 1.0], cv=3, refit=False, fit_intercept=False).fit(X, np.array(["a", "b", "c"])[y3]),
        "RidgeCV multi-target loo": lambda: tikhon.RidgeCV(alphas=(0.1, 1.0, 10.0)).fit(X, Y),
        "RidgeCV alpha_per_target": lambda: tikhon.RidgeCV(alphas=(0.01, 1.0, 100.0), alpha_per_target=True).fit(X, Y),
        "RidgeCV multi-target kfold": lambda: tikhon.RidgeCV(alphas=[0.1, 10.0], cv=3).fit(X, Y),
        "PathResult multinomial": lambda: tikhon.regularization_path(X, y3, Cs=[0.1, 1.0, 10.0]),
        "PathResult multi-target eigh": lambda: tikhon.regularization_path(X, Y, alphas=[0.1, 1.0], model="ridge"),
        "PathResult multi-target warm start": lambda: tikhon.regularization_path(
            X, Y, alphas=[0.1, 1.0], model="ridge", method="warm_start"),
    }
    return makers[kind]()


KINDS = ["LogisticRegression", "LogisticRegression balanced", "Ridge", "LogisticRegressionCV",
         "LogisticRegressionCV splitter", "LogisticRegressionCV no refit", "RidgeCV loo", "RidgeCV kfold",
         "PathResult logistic", "PathResult ridge eigh", "PathResult ridge warm start",
         # several outputs (before: a multinomial CV or multi-output path could not be saved, "a stored path
         # has 3 features" / "coefs has shape (n_grid, 3, 7)"; a per-target alpha_ was not a real number)
         "LogisticRegressionCV multinomial", "LogisticRegressionCV multinomial no refit", "RidgeCV multi-target loo",
         "RidgeCV alpha_per_target", "RidgeCV multi-target kfold", "PathResult multinomial",
         "PathResult multi-target eigh", "PathResult multi-target warm start"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_round_trips(tmp_path, data, kind):
    """Loading returns an equal object that decides exactly like the saved one (the CV
    estimators' save raised TypeError before; PathResult had no file format)."""
    import warnings

    X, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a path point may not converge at large C: not the subject here
        obj = _fitted(kind, data)
    path = obj.save(tmp_path / "m.npz") if hasattr(obj, "save") else save_model(obj, tmp_path / "m.npz")
    loaded = tikhon.load(path)
    _assert_same(obj, loaded)
    np.testing.assert_array_equal(loaded.decision_function(X) if hasattr(loaded, "decision_function")
                                  else loaded.predict(X),
                                  obj.decision_function(X) if hasattr(obj, "decision_function") else obj.predict(X))
    if hasattr(obj, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), obj.predict(X))
    if hasattr(obj, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), obj.predict_proba(X))
    if kind.startswith("LogisticRegressionCV") and "no refit" not in kind:
        assert loaded.scores_[loaded.classes_[1]] is loaded.cv_scores_  # stored once, aliased as fitted
    if kind == "RidgeCV alpha_per_target":
        assert loaded.alpha_.shape == (3,) and loaded.refit_path_.lams.shape == (1, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_path_result_save_function_and_format(tmp_path, data):
    """PathResult files: one member per field array, names readable in `unzip -l`."""
    path = save_model(_fitted("PathResult logistic", data), tmp_path / "path.npz")
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        meta = json.loads(archive.read("metadata.json"))
    assert meta["estimator"] == "PathResult" and meta["format_version"] == FORMAT_VERSION
    assert {"metadata.json", "coefs.npy", "intercepts.npy", "grid.npy"} <= names


def test_stored_attributes_cover_what_fits_set(data):
    """Every public fitted attribute of every kind has a role in tikhon._io (a new one,
    added without one, would be dropped by save), and so does every PathResult field."""
    import dataclasses

    from tikhon._io import _FITTED, _PATH_FIELDS

    for kind in KINDS:
        obj = _fitted(kind, data)
        if dataclasses.is_dataclass(obj):
            assert {f.name for f in dataclasses.fields(obj)} <= set(_PATH_FIELDS), kind
        else:
            public = {k for k in vars(obj) if k.endswith("_") and not k.startswith("_")}
            assert public <= set(_FITTED[type(obj).__name__]), (kind, public - set(_FITTED[type(obj).__name__]))


def _with_attributes(model, **attrs):
    for key, value in attrs.items():
        setattr(model, key, value)
    return model


@pytest.mark.parametrize("case", ["multiclass K=3", "binary (1, d)", "float32 coef", "ridge multi-target",
                                  "ridge one target 2-D", "ridge 0-d intercept", "ridge numpy scalar intercept",
                                  "ridge float intercept", "n_iter_ array", "feature names"])
def test_shapes_of_coming_estimators_round_trip(tmp_path, data, case):
    """The rules are multiclass (K, d) with K >= 3 labels or (1, d) for two, multi-target
    ridge (T, d) and (T,), single-target (d,) and a scalar: such models save and load."""
    X, y = data
    rng = np.random.default_rng(0)
    logistic = tikhon.LogisticRegression(backend="numpy").fit(X, y)
    ridge = tikhon.Ridge(backend="numpy").fit(X, y)
    model = {
        "multiclass K=3": lambda: _with_attributes(logistic, classes_=np.array([0, 1, 2]),
                                                   coef_=rng.normal(size=(3, 7)), intercept_=rng.normal(size=3)),
        "binary (1, d)": lambda: logistic,
        "float32 coef": lambda: _with_attributes(logistic, coef_=logistic.coef_.astype(np.float32),
                                                 intercept_=logistic.intercept_.astype(np.float32)),
        "ridge multi-target": lambda: _with_attributes(ridge, coef_=rng.normal(size=(4, 7)), intercept_=np.zeros(4)),
        "ridge one target 2-D": lambda: _with_attributes(ridge, coef_=rng.normal(size=(1, 7)), intercept_=np.ones(1)),
        "ridge 0-d intercept": lambda: _with_attributes(ridge, intercept_=np.array(0.25)),
        "ridge numpy scalar intercept": lambda: _with_attributes(ridge, intercept_=np.float64(0.25)),
        "ridge float intercept": lambda: _with_attributes(ridge, intercept_=0.25),
        "n_iter_ array": lambda: _with_attributes(ridge, n_iter_=np.array([3])),
        "feature names": lambda: _with_attributes(logistic, feature_names_in_=np.array(list("abcdefg"), dtype=object)),
    }[case]()
    loaded = tikhon.load(model.save(tmp_path / "m.npz"))
    if case == "feature names":  # stored as text, given back as scikit-learn keeps them: object
        assert loaded.feature_names_in_.dtype == object
        model.feature_names_in_ = model.feature_names_in_.astype(object)
    _assert_same(model, loaded)


def test_save_refuses_what_load_would_refuse(tmp_path, data):
    X, y = data
    model = tikhon.LogisticRegression(backend="numpy").fit(X, y)
    model.coef_ = np.full_like(model.coef_, np.nan)
    with pytest.raises(ValueError, match="coef_ holds NaN"):
        model.save(tmp_path / "nan.npz")
    model.coef_ = np.zeros((2, 7))
    with pytest.raises(ValueError, match="do not fit 2 classes"):
        model.save(tmp_path / "shape.npz")
    with pytest.raises(TypeError, match="parameter 'scoring'"):
        tikhon.LogisticRegressionCV(Cs=2, cv=2, scoring=lambda est, X, y: 0.0).fit(X, y).save(tmp_path / "s.npz")
    assert list(tmp_path.iterdir()) == []


def test_inconsistent_multi_output_paths_are_refused(tmp_path, data):
    """A multinomial path's coefs must have one row per class, and intercepts the coefs'
    leading shape: save refuses what load would."""
    import dataclasses

    path = _fitted("PathResult multinomial", data)
    with pytest.raises(ValueError, match=r"coefs has shape \(3, 7\) for 3 classes"):
        save_model(dataclasses.replace(path, coefs=path.coefs[:, 0], intercepts=path.intercepts[:, 0]),
                   tmp_path / "a.npz")
    with pytest.raises(ValueError, match=r"intercepts has shape \(3,\), expected \(3, 3\)"):
        save_model(dataclasses.replace(path, intercepts=path.intercepts[:, 0]), tmp_path / "b.npz")
    ridge = _fitted("PathResult multi-target eigh", data)
    with pytest.raises(ValueError, match=r"grid has shape \(2, 2\)"):
        save_model(dataclasses.replace(ridge, grid=np.ones((2, 2))), tmp_path / "c.npz")
    assert list(tmp_path.iterdir()) == []


# ---- format 1 files (LogisticRegression and Ridge, before CV and paths) still load
def _save_format_1(model, path):
    """The writer of format 1, as it was."""
    arrays = {a: np.asarray(getattr(model, a)) for a in ("coef_", "intercept_", "history_") if hasattr(model, a)}
    meta = {
        "format": "tikhon-model", "format_version": 1, "estimator": type(model).__name__, "tikhon_version": "0.1.0",
        "params": {k: v for k, v in model.get_params().items()},
        # format 1 stored n_iter_ as the int it then was (now an int32 array of one entry, as scikit-learn's)
        "fitted": {a: (int(np.ravel(getattr(model, a))[0]) if a == "n_iter_" else getattr(model, a))
                   for a in ("n_features_in_", "n_iter_", "converged_", "backend_", "solver_", "certificate_",
                             "objective_", "duality_gap_")},
        "classes": ({"dtype": model.classes_.dtype.str, "values": model.classes_.tolist()}
                    if hasattr(model, "classes_") else None),
        "arrays": {k: {"dtype": a.dtype.str, "shape": list(a.shape),
                       "scalar": k == "intercept_" and np.ndim(getattr(model, k)) == 0} for k, a in arrays.items()},
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("metadata.json", json.dumps(meta))
        for key, value in arrays.items():
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, value)
            archive.writestr(f"{key}.npy", buffer.getvalue())
    return path


@pytest.mark.parametrize("estimator", ["LogisticRegression", "Ridge"])
def test_format_1_files_load(tmp_path, data, estimator):
    X, y = data
    model = getattr(tikhon, estimator)(backend="numpy").fit(X, y)
    loaded = tikhon.load(_save_format_1(model, tmp_path / "v1.npz"))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert loaded.history_ == model.history_ and loaded.n_iter_ == model.n_iter_
    if estimator == "Ridge":
        assert isinstance(loaded.intercept_, float) and loaded.intercept_ == model.intercept_


# ---- atomic save: a unique temporary file beside the target, fsynced, renamed; nothing else touched
def test_save_leaves_the_users_tmp_file_alone(tmp_path, data):
    """Before: save(p) wrote p + '.tmp' and removed it, destroying a user's own p.tmp."""
    (tmp_path / "m.npz.tmp").write_text("my notes")
    _fitted_logistic(data).save(tmp_path / "m.npz")
    assert (tmp_path / "m.npz.tmp").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz", "m.npz.tmp"]


def test_failed_save_keeps_the_old_file_and_leaves_no_temporary(tmp_path, data, monkeypatch):
    model = _fitted_logistic(data)
    target = tmp_path / "m.npz"
    model.save(target)
    before = target.read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(np.lib.format, "write_array", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        model.save(target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_save_fsyncs_the_file_before_renaming(tmp_path, data, monkeypatch):
    import os

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))[1])
    _fitted_logistic(data).save(tmp_path / "m.npz")
    assert events[:2] == ["fsync", "replace"]


def test_saved_file_has_the_usual_permissions(tmp_path, data):
    """mkstemp makes 0600 files; a model file gets what open() would give (0666 & ~umask),
    or keeps the mode of the file it replaces."""
    import os
    import stat

    from tikhon._io import _umask

    path = _fitted_logistic(data).save(tmp_path / "m.npz")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~_umask()
    os.chmod(path, 0o640)
    _fitted_logistic(data).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.parametrize("where", ["a directory", "missing parent", "parent is a file", "unwritable parent"])
def test_save_errors_name_the_path(tmp_path, data, where):
    import os

    model = _fitted_logistic(data)
    (tmp_path / "file.txt").write_text("x")
    target = {"a directory": tmp_path, "missing parent": tmp_path / "nope" / "m.npz",
              "parent is a file": tmp_path / "file.txt" / "m.npz",
              "unwritable parent": tmp_path / "ro" / "m.npz"}[where]
    if where == "unwritable parent":
        if os.geteuid() == 0:
            pytest.skip("root writes to read-only directories")
        (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(OSError) as info:
        model.save(target)
    assert str(target) in str(info.value) and "\n" not in str(info.value)
    assert ".tmp" not in str(info.value)  # the user's path, not a temporary's
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"] + (["ro"] if where == "unwritable parent" else [])


# ---- fuzzing: a mutated file loads as the same model or fails with ModelFileError, never otherwise
@pytest.fixture(scope="module")
def cv_model_file(tmp_path_factory, data):
    X, y = data
    model = tikhon.LogisticRegressionCV(Cs=2, cv=2).fit(X[:80], y[:80])
    return model, model.save(tmp_path_factory.mktemp("fuzz") / "cv.npz")


def _mutation_outcome(raw, model, bad):
    bad.write_bytes(raw)
    try:
        loaded = tikhon.load(bad)
    except ModelFileError as exc:
        assert str(bad) in str(exc) and "\n" not in str(exc)
        return "error"
    _assert_same(model, loaded)
    return "same"


def _hypothesis_mutation_test(kind):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
           cut=st.one_of(st.none(), st.floats(0, 1)))
    def test(tmp_path, data, request, edits, cut):
        if kind == "cv":
            model, path = request.getfixturevalue("cv_model_file")
        else:
            model = _fitted_logistic(data)
            path = model.save(tmp_path / "m.npz")
        raw = bytearray(open(path, "rb").read())
        for where, byte in edits:
            raw[int(where * len(raw))] = byte
        if cut is not None:
            raw = raw[:int(cut * len(raw))]
        _mutation_outcome(bytes(raw), model, tmp_path / "bad.npz")

    return test


test_mutated_logistic_file_loads_same_or_fails_cleanly = _hypothesis_mutation_test("logistic")
test_mutated_cv_file_loads_same_or_fails_cleanly = _hypothesis_mutation_test("cv")


def test_mutations_of_the_metadata_text(tmp_path, data):
    """Mutations inside metadata.json itself (rewritten with a valid CRC, so the JSON
    parser and the checks see them): same model or ModelFileError."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    model = _fitted_logistic(data)
    path = model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    text = members["metadata.json"]

    @settings(max_examples=300, deadline=None)
    @given(edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.sampled_from(
        list(b'{}[]",:0123456789-.eE ntrufalsNI_x\\') + [0, 0xFF])), min_size=1, max_size=3))
    def check(edits):
        raw = bytearray(text)
        for where, byte in edits:
            raw[int(where * len(raw))] = byte
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("metadata.json", bytes(raw))
            for name, value in members.items():
                if name != "metadata.json":
                    archive.writestr(name, value)
        try:
            loaded = tikhon.load(bad)
        except ModelFileError:
            return
        # a mutation the checks allow (a parameter or a scalar changed): still a valid model
        np.testing.assert_array_equal(loaded.coef_, model.coef_)
        assert loaded.classes_.size == 2

    check()


def test_mutations_of_an_npy_header(tmp_path, data):
    """Mutations inside coef_.npy's header (rewritten with a valid CRC, so numpy's header
    parser and the checks see them): the same model or ModelFileError."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    model = _fitted_logistic(data)
    path = model.save(tmp_path / "m.npz")
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    npy = members["coef_.npy"]
    header_length = len(npy) - model.coef_.nbytes

    @settings(max_examples=300, deadline=None)
    @given(edits=st.lists(st.tuples(st.integers(0, header_length - 1), st.sampled_from(
        list(b"{}()[]',:0123456789<>|fiubUOSV TrueFalse\n") + [0, 0xFF])), min_size=1, max_size=3))
    def check(edits):
        raw = bytearray(npy)
        for where, byte in edits:
            raw[where] = byte
        bad = tmp_path / "bad.npz"
        with zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, value in members.items():
                archive.writestr(name, bytes(raw) if name == "coef_.npy" else value)
        _mutation_outcome(bad.read_bytes(), model, bad)

    check()
