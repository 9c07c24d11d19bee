"""Benchmark inputs: data specifications (``a9a``, a file, ``synthetic:...``) and data files.

``--data`` accepts

* ``a9a``: the embedded default data set (CSR 32561 x 123);
* a path: svmlight/LIBSVM text (plain, .bz2, .gz, .xz), or ``.npz`` / ``.npy`` (see
  :func:`load_data_file`);
* ``synthetic:n=...,d=...,density=...,dtype=...[,seed=...]``: seeded two-class data,
  dense when ``density`` is 1 (the default), CSR otherwise. Sizes accept ``1e6``,
  ``200k``, ``2M``.

Every data set passes the estimators' validation gate once, when its :class:`Dataset`
is made (:func:`load_dataset`): the runner builds backends on it directly.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

__all__ = ["BenchArgumentError", "Dataset", "checked_X", "describe", "load_data_file", "load_dataset",
           "parse_data_spec", "x_bytes"]

_DTYPES = {"float64": np.float64, "f64": np.float64, "float32": np.float32, "f32": np.float32}


class BenchArgumentError(ValueError):
    """A command-line value that cannot be used; the CLI prints it and exits with code 2."""


@dataclass
class Dataset:
    """One benchmark data set. ``X`` passes the estimators' validation gate when the
    Dataset is made (:func:`checked_X`): the runner builds backends on it directly."""

    name: str
    X: object
    y: np.ndarray
    spec: dict = field(default_factory=dict)
    load_seconds: float = 0.0

    def __post_init__(self):
        self.X = checked_X(self.X, self.name)


def parse_dtype(text):
    try:
        return _DTYPES[str(text).lower()]
    except KeyError:
        raise BenchArgumentError(f"unknown dtype {text!r}; use float64 or float32") from None


def _size(text, key):
    t = str(text).strip().lower()
    scale = 1
    if t and t[-1] in "km":
        scale = 1000 if t[-1] == "k" else 1000000
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        raise BenchArgumentError(f"synthetic: {key}={text!r} is not a number") from None
    if value < 1 or value != int(value):
        raise BenchArgumentError(f"synthetic: {key}={text!r} must be a positive integer")
    return int(value)


def parse_data_spec(text, default_dtype=np.float64):
    """``--data`` value -> a spec dict (``kind`` a9a / file / synthetic). Raises BenchArgumentError."""
    text = str(text).strip()
    if text == "a9a":
        return {"kind": "a9a", "name": "a9a", "dtype": np.dtype(default_dtype).name}
    if text.startswith("synthetic"):
        body = text[len("synthetic"):].lstrip(":")
        spec = {"kind": "synthetic", "n": 10000, "d": 100, "density": 1.0,
                "dtype": np.dtype(default_dtype).name, "seed": 0}
        for item in filter(None, body.split(",")):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in spec or key == "kind":
                raise BenchArgumentError(
                    f"synthetic: cannot read {item!r}; expected synthetic:n=...,d=...,density=...,dtype=...,seed=...")
            if key in ("n", "d"):
                spec[key] = _size(value, key)
            elif key == "density":
                try:
                    spec[key] = float(value)
                except ValueError:
                    raise BenchArgumentError(f"synthetic: density={value!r} is not a number") from None
                if not 0 < spec[key] <= 1:
                    raise BenchArgumentError(f"synthetic: density must be in (0, 1], got {value}")
            elif key == "dtype":
                spec[key] = np.dtype(parse_dtype(value)).name
            else:
                spec[key] = _size(value, key) if value.strip() != "0" else 0
        layout = "dense" if spec["density"] >= 1 else f"csr{spec['density']:g}"
        spec["name"] = f"synthetic-{spec['n']}x{spec['d']}-{layout}-{spec['dtype']}"
        return spec
    if not os.path.exists(text):
        raise BenchArgumentError(
            f"--data {text!r}: not a file, 'a9a' or 'synthetic:n=...,d=...,density=...,dtype=...'")
    base = os.path.basename(text)
    return {"kind": "file", "path": text, "name": base.split(".")[0] or base,
            "dtype": np.dtype(default_dtype).name}


def load_data_file(path, dtype=np.float64, n_features=None, labels=None, need_labels=True):
    """Read ``(X, y)`` from a data file; ``y`` is ``None`` when the file holds none.

    * ``.npz``: arrays ``X`` and ``y`` (dense), or a CSR matrix written by
      ``scipy.sparse.save_npz`` (keys ``data, indices, indptr, shape``) with an optional
      ``y`` array added; read with ``allow_pickle=False``;
    * ``.npy``: the 2-D feature matrix only (labels from ``labels``, another .npy file);
    * anything else: svmlight/LIBSVM text (plain, .bz2, .gz, .xz); ``n_features`` pads a
      test file that mentions fewer features than the model has.
    """
    from ..datasets import load_svmlight

    path = os.fspath(path)
    if not os.path.exists(path):
        raise BenchArgumentError(f"data file {path!r} does not exist")
    y = None
    try:
        if path.endswith(".npz"):
            with np.load(path, allow_pickle=False) as npz:
                keys = set(npz.files)
                if {"data", "indices", "indptr", "shape"} <= keys:
                    for name in ("indices", "indptr", "shape"):  # scipy would cast float indices silently
                        if npz[name].dtype.kind not in "iu":
                            raise BenchArgumentError(f"{path}: CSR {name} must be integers, got {npz[name].dtype}")
                    X = sp.csr_matrix((npz["data"], npz["indices"], npz["indptr"]), shape=tuple(npz["shape"]))
                elif "X" in keys:
                    X = npz["X"]
                else:
                    raise BenchArgumentError(
                        f"{path}: an .npz data file holds arrays X and y, or a CSR matrix (scipy.sparse.save_npz) "
                        f"plus y; found {sorted(keys)}")
                y = npz["y"] if "y" in keys else None
        elif path.endswith(".npy"):
            X = np.load(path, allow_pickle=False, mmap_mode="r")
        else:
            X, y = load_svmlight(path, n_features=n_features, dtype=dtype)
    except BenchArgumentError:
        raise
    except (ValueError, TypeError, OSError, EOFError) as exc:  # TypeError: e.g. an .npz shape of floats
        raise BenchArgumentError(f"cannot read data file {path!r}: {exc}") from None
    if labels is not None:
        try:
            y = np.load(labels, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise BenchArgumentError(f"cannot read labels file {labels!r}: {exc}") from None
    if X.ndim != 2:
        raise BenchArgumentError(f"{path}: the feature matrix must be 2-D, got shape {X.shape}")
    if sp.issparse(X):
        X = X.tocsr().astype(dtype, copy=False)
    else:
        X = np.asarray(X, dtype=dtype)
    if n_features is not None and X.shape[1] < n_features and sp.issparse(X):
        X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], n_features))
    if y is not None:
        y = np.asarray(y).ravel()
        if y.shape[0] != X.shape[0]:
            raise BenchArgumentError(f"{path}: {X.shape[0]} rows but {y.shape[0]} labels")
    elif need_labels:
        raise BenchArgumentError(f"{path}: no labels (a .npy file holds X only: give --labels FILE.npy)")
    return X, y


def load_dataset(spec) -> Dataset:
    """Materialize a spec from :func:`parse_data_spec`."""
    from .. import datasets

    t0 = time.perf_counter()
    dtype = np.dtype(spec["dtype"]).type
    if spec["kind"] == "a9a":
        X, y = datasets.load_a9a(dtype=dtype)
    elif spec["kind"] == "synthetic":
        if spec["density"] >= 1:
            X, y = datasets.make_classification(spec["n"], spec["d"], dtype=dtype, seed=spec["seed"])
        else:
            X, y = datasets.make_sparse_classification(spec["n"], spec["d"], spec["density"], dtype=dtype,
                                                       seed=spec["seed"])
    else:
        X, y = load_data_file(spec["path"], dtype=dtype)
    dataset = Dataset(spec["name"], X, np.asarray(y), dict(spec))  # X checked here
    dataset.load_seconds = time.perf_counter() - t0
    return dataset


def checked_X(X, name):
    """``X`` through the estimators' validation gate (:func:`tikhon._validation.check_X`):
    the benchmark builds backends and runs solvers on it directly, so a broken CSR
    structure (an index past ``n_features``, a decreasing ``indptr``), NaN or a layout the
    kernels cannot read must be refused or converted here, once. ``BenchArgumentError``
    (the CLI's exit 2) names the data set."""
    from .._validation import check_X

    try:
        return check_X(X, fitting=True)
    except (ValueError, TypeError) as exc:
        raise BenchArgumentError(f"data {name!r}: {exc}") from None


def x_bytes(X) -> int:
    """Bytes one full read of ``X`` touches (data + indices + indptr for CSR)."""
    if sp.issparse(X):
        return int(X.data.nbytes + X.indices.nbytes + X.indptr.nbytes)
    return int(np.asarray(X).nbytes)


def describe(X) -> dict:
    """Shape, layout, dtype, nonzeros and bytes of ``X`` (JSON-ready)."""
    sparse = sp.issparse(X)
    return {
        "n_samples": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "format": "csr" if sparse else "dense",
        "dtype": np.dtype(X.dtype).name,
        "nnz": int(X.nnz) if sparse else int(X.shape[0] * X.shape[1]),
        "index_dtype": np.dtype(X.indices.dtype).name if sparse else None,
        "bytes": x_bytes(X),
    }
