"""Benchmark inputs: data specifications (``a9a``, a file, ``synthetic:...``) and data files.

``--data`` accepts

* ``a9a``: the embedded default data set (CSR 32561 x 123);
* a path: svmlight/LIBSVM or dense (CSV, whitespace-separated) text, plain or
  gzip/bz2/xz compressed, or ``.npz`` / ``.npy`` (see :mod:`tikhon._datafiles`);
* a shared data set by name (``reuters``, ``abalone``, ``dna``, ``cal_housing``, see
  :mod:`.data`), and ``text:n=...,d=...,nnz=...`` (seeded text-like CSR);
* ``synthetic:n=...,d=...,density=...,dtype=...[,seed=...][,classes=K]``: seeded data
  of two classes (or ``K``: a multinomial problem), dense when ``density`` is 1 (the
  default), CSR otherwise; ``text:...,classes=K`` likewise. Sizes accept ``1e6``,
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

from .._datafiles import load_data_file  # re-exported: the reader lives in tikhon._datafiles

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
    from .data import SHARED, parse_text_spec

    text = str(text).strip()
    if text == "a9a":
        return {"kind": "a9a", "name": "a9a", "dtype": np.dtype(default_dtype).name}
    if text in SHARED:
        return {"kind": "named", "name": text, "dtype": np.dtype(default_dtype).name}
    if text.startswith("text:") or text == "text":
        return parse_text_spec(text[len("text"):].lstrip(":"), default_dtype, _size)
    if text.startswith("synthetic"):
        body = text[len("synthetic"):].lstrip(":")
        spec = {"kind": "synthetic", "n": 10000, "d": 100, "density": 1.0,
                "dtype": np.dtype(default_dtype).name, "seed": 0, "classes": 2}
        for item in filter(None, body.split(",")):
            key, sep, value = item.partition("=")
            key = key.strip()
            if not sep or key not in spec or key == "kind":
                raise BenchArgumentError(
                    f"synthetic: cannot read {item!r}; expected synthetic:n=...,d=...,density=...,dtype=...,seed=...,classes=...")
            if key in ("n", "d", "classes"):
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
        if spec["classes"] < 2:
            raise BenchArgumentError(f"synthetic: classes must be at least 2, got {spec['classes']}")
        layout = "dense" if spec["density"] >= 1 else f"csr{spec['density']:g}"
        classes = f"-K{spec['classes']}" if spec["classes"] != 2 else ""
        spec["name"] = f"synthetic-{spec['n']}x{spec['d']}-{layout}{classes}-{spec['dtype']}"
        return spec
    if not os.path.exists(text):
        raise BenchArgumentError(
            f"--data {text!r}: not a file, 'a9a', a shared data set ({', '.join(SHARED)}), "
            "'synthetic:n=...,d=...,density=...,dtype=...' or 'text:n=...,d=...,nnz=...'")
    base = os.path.basename(text)
    return {"kind": "file", "path": text, "name": base.split(".")[0] or base,
            "dtype": np.dtype(default_dtype).name}


def load_dataset(spec) -> Dataset:
    """Materialize a spec from :func:`parse_data_spec`."""
    from .. import datasets

    t0 = time.perf_counter()
    dtype = np.dtype(spec["dtype"]).type
    if spec["kind"] == "a9a":
        X, y = datasets.load_a9a(dtype=dtype)
    elif spec["kind"] == "named":
        from .data import load_named

        X, y = load_named(spec["name"], dtype)
    elif spec["kind"] == "text":
        from .data import text_csr

        X, y = text_csr(spec["n"], spec["d"], spec["nnz"], spec["seed"], spec.get("classes", 2))
        X = X.astype(dtype, copy=False)
    elif spec["kind"] == "synthetic":
        if spec["density"] >= 1:
            X, y = datasets.make_classification(spec["n"], spec["d"], dtype=dtype, seed=spec["seed"],
                                                n_classes=spec.get("classes", 2))
        else:
            X, y = datasets.make_sparse_classification(spec["n"], spec["d"], spec["density"], dtype=dtype,
                                                       seed=spec["seed"], n_classes=spec.get("classes", 2))
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
