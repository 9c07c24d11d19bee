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
