"""Model files without pickle: ``model.save(path)`` / ``tikhon.load(path)`` (the same as
``save_model(estimator, path)`` / ``load_model(path)`` here).

A model file is one ZIP archive (the ``.npz`` container NumPy writes) holding

* ``metadata.json``: ``{"format": "tikhon-model", "format_version": 1, "estimator":
  "LogisticRegression" | "Ridge", "tikhon_version", "params": {...}, "fitted": {...},
  "classes": {...} | null, "arrays": {name: {"dtype", "shape"}}}`` -- human readable
  (``unzip -p model.npz metadata.json``);
* one ``NAME.npy`` member per array (``coef_``, ``intercept_``, ``history_``, ...),
  read back with ``allow_pickle=False``.

Nothing in a model file is executed or unpickled: the estimator class is looked up
in a fixed table, parameters are plain JSON values, and arrays are numeric. A file
that is truncated, corrupt (the ZIP CRC of each member is checked), of another
format, or written by a newer format version raises :class:`ModelFileError` naming
the file and the problem.
"""
from __future__ import annotations

import io
import json
import os
import struct
import zipfile
import zlib

import numpy as np

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "ModelFileError", "load_model", "save_model"]

FORMAT_NAME = "tikhon-model"
FORMAT_VERSION = 1
_METADATA = "metadata.json"

# Fitted attributes stored as arrays / as JSON scalars (those present are saved).
_ARRAY_ATTRS = ("coef_", "intercept_", "history_", "feature_names_in_")
_SCALAR_ATTRS = ("n_features_in_", "n_iter_", "converged_", "backend_", "solver_",
                 "certificate_", "objective_", "duality_gap_")


class ModelFileError(ValueError):
    """A model file cannot be read: truncated, corrupt, not a tikhon model, or a newer version."""


# What a damaged ZIP member can raise on reading: CRC mismatch, truncation, a flipped
# flag bit (NotImplementedError: "compressed patched data"; RuntimeError: "encrypted").
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, NotImplementedError,
               RuntimeError, struct.error)


def _estimator_classes():
    from .estimators import LogisticRegression, Ridge

    return {"LogisticRegression": LogisticRegression, "Ridge": Ridge}


# ---- JSON encoding of parameters and scalars (no arbitrary objects) ----
def _to_json(value, what):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if np.isfinite(value):
            return value
        return {"__float__": repr(value)}  # nan / inf / -inf, which JSON cannot hold
    if isinstance(value, dict):  # e.g. class_weight {label: weight}: keys may be non-strings
        return {"__dict__": [[_to_json(k, what), _to_json(v, what)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [_to_json(v, what) for v in value]
    raise TypeError(f"cannot save {what} of type {type(value).__name__} in a model file "
                    "(only None, bool, int, float, str, lists and dicts are stored)")


def _from_json(value):
    if isinstance(value, dict):
        if "__float__" in value:
            return float(value["__float__"])
        if "__dict__" in value:
            return {_hashable(_from_json(k)): _from_json(v) for k, v in value["__dict__"]}
        raise ModelFileError(f"unexpected JSON object {value!r}")
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def _encode_classes(classes):
    classes = np.asarray(classes)
    if classes.dtype.kind not in "biufUO":
        raise TypeError(f"cannot save classes_ of dtype {classes.dtype}")
    values = [_to_json(c.item() if hasattr(c, "item") else c, "a class label") for c in classes]
    return {"dtype": classes.dtype.str if classes.dtype.kind != "O" else "object", "values": values}


def _decode_classes(entry):
    values = [_from_json(v) for v in entry["values"]]
    if entry["dtype"] == "object":
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out
    return np.asarray(values, dtype=np.dtype(entry["dtype"]))


# ---- save ----
def save_model(estimator, path):
    """Write a fitted tikhon estimator to ``path`` (a ZIP/npz file, see the module docstring).

    The file is written to ``path + ".tmp"`` first and renamed, so an interrupted save
    never leaves a half-written model under ``path``.
    """
    from sklearn.utils.validation import check_is_fitted

    from . import __version__

    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(f"save_model writes tikhon estimators ({', '.join(classes)}), got {type(estimator).__name__}")
    check_is_fitted(estimator)

    params = {key: _to_json(value, f"parameter {key!r}") for key, value in estimator.get_params().items()}
    fitted = {attr: _to_json(getattr(estimator, attr), attr) for attr in _SCALAR_ATTRS if hasattr(estimator, attr)}
    arrays = {}
    for attr in _ARRAY_ATTRS:
        if hasattr(estimator, attr):
            value = np.asarray(getattr(estimator, attr))
            if value.dtype.kind == "O":  # feature names: strings
                value = value.astype(str)
            arrays[attr] = value
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "estimator": name,
        "tikhon_version": __version__,
        "params": params,
        "fitted": fitted,
        "classes": _encode_classes(estimator.classes_) if hasattr(estimator, "classes_") else None,
        "arrays": {key: {"dtype": a.dtype.str, "shape": list(a.shape), "scalar": key == "intercept_"
                         and np.ndim(getattr(estimator, key)) == 0} for key, a in arrays.items()},
    }

    path = os.fspath(path)
    tmp = path + ".tmp"
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(_METADATA, json.dumps(metadata, indent=2, sort_keys=True))
            for key, value in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.asarray(value, order="C"), allow_pickle=False)
                archive.writestr(f"{key}.npy", buffer.getvalue())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


# ---- load ----
def _fail(path, problem):
    raise ModelFileError(f"cannot read model file {path!r}: {problem}")


def load_model(path):
    """Read a model written by :func:`save_model`; returns a fitted estimator.

    Raises :class:`ModelFileError` (a ``ValueError``) for a missing member, a
    truncated or corrupt file, another format, or a newer format version;
    ``FileNotFoundError`` when ``path`` does not exist.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path!r} does not exist")
    try:
        archive = zipfile.ZipFile(path)
    except _ZIP_ERRORS as exc:
        _fail(path, f"not a tikhon model file or truncated ({exc})")
    with archive:
        try:
            raw = archive.read(_METADATA)
        except KeyError:
            _fail(path, f"no {_METADATA} inside: not a tikhon model file")
        except _ZIP_ERRORS as exc:  # CRC mismatch, truncated member, damaged header
            _fail(path, f"corrupt {_METADATA} ({exc})")
        try:
            metadata = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            _fail(path, f"{_METADATA} is not valid JSON ({exc})")
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
            _fail(path, f"format is {metadata.get('format') if isinstance(metadata, dict) else None!r}, "
                        f"expected {FORMAT_NAME!r}")
        version = metadata.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool):
            _fail(path, f"format_version {version!r} is not an integer")
        if version > FORMAT_VERSION:
            _fail(path, f"format version {version} is newer than this tikhon reads ({FORMAT_VERSION}); "
                        f"it was written by tikhon {metadata.get('tikhon_version', '?')}: upgrade tikhon")
        if version < 1:
            _fail(path, f"format version {version} is not valid")
        try:
            return _build(archive, metadata, path)
        except ModelFileError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            _fail(path, f"malformed model ({type(exc).__name__}: {exc})")


def _read_array(archive, key, spec, path):
    member = f"{key}.npy"
    try:
        raw = archive.read(member)
    except KeyError:
        _fail(path, f"array {member} is missing")
    except _ZIP_ERRORS as exc:
        _fail(path, f"array {member} is corrupt ({exc})")
    try:
        value = np.lib.format.read_array(io.BytesIO(raw), allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        _fail(path, f"array {member} cannot be read ({exc})")
    if value.dtype.str != spec["dtype"] or list(value.shape) != list(spec["shape"]):
        _fail(path, f"array {member} is {value.dtype.str} {list(value.shape)}, "
                    f"metadata says {spec['dtype']} {spec['shape']}")
    return value


def _build(archive, metadata, path):
    classes = _estimator_classes()
    name = metadata["estimator"]
    if name not in classes:
        _fail(path, f"unknown estimator {name!r}; expected one of {', '.join(classes)}")
    cls = classes[name]
    params = {key: _from_json(value) for key, value in metadata["params"].items()}
    unknown = set(params) - set(cls().get_params())
    if unknown:
        _fail(path, f"unknown {name} parameters {sorted(unknown)}")
    estimator = cls(**params)
    for attr, value in metadata["fitted"].items():
        if attr not in _SCALAR_ATTRS:
            _fail(path, f"unexpected fitted attribute {attr!r}")
        setattr(estimator, attr, _from_json(value))
    for key, spec in metadata["arrays"].items():
        if key not in _ARRAY_ATTRS:
            _fail(path, f"unexpected array {key!r}")
        value = _read_array(archive, key, spec, path)
        if key == "history_":
            value = [(float(t), float(v)) for t, v in value.reshape(-1, 2)]
        elif key == "intercept_" and spec.get("scalar"):
            value = float(value)
        elif key == "feature_names_in_":
            value = value.astype(object)
        setattr(estimator, key, value)
    if metadata.get("classes") is not None:
        estimator.classes_ = _decode_classes(metadata["classes"])
    for required in ("coef_", "intercept_"):
        if not hasattr(estimator, required):
            _fail(path, f"array {required} is missing")
    n_features = np.asarray(estimator.coef_).shape[-1]
    if getattr(estimator, "n_features_in_", n_features) != n_features:
        _fail(path, f"coef_ has {n_features} features but n_features_in_ is {estimator.n_features_in_}")
    if name == "LogisticRegression" and getattr(estimator, "classes_", np.empty(0)).size != 2:
        _fail(path, "a LogisticRegression model needs exactly two classes_")
    return estimator
