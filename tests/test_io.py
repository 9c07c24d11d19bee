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
    with pytest.raises(ModelFileError, match="coef_.npy cannot be read"):
        load_model(_rewrite(path, tmp_path / "p.npz", replace={"coef_.npy": buffer.getvalue()}))


def test_not_a_zip(tmp_path):
    bad = tmp_path / "model.npz"
    bad.write_text("hello")
    with pytest.raises(ModelFileError, match="not a tikhon model file or truncated"):
        load_model(bad)
