"""Benchmark data beyond ``a9a``, files and ``synthetic:``: the real LIBSVM sets in the
shared data folder by name, the seeded text-like CSR generator, and size scaling.

* named sets (``--data reuters``): :data:`SHARED` maps a name to its file in the shared
  data folder (``$TIKHON_DATA``, else ``../shared/data`` from the current folder or from
  the project root); a missing file is a :class:`~.problems.BenchArgumentError` naming
  the folder (a suite lists that data set as skipped, with the reason);
* ``text:n=200k,d=100k,nnz=7.5M,seed=0``: text-like CSR (Zipf column frequencies,
  tf-idf-like values, unit rows, labels from a sparse linear model), :func:`text_csr`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import scipy.sparse as sp

__all__ = ["SHARED", "data_folder", "load_named", "parse_text_spec", "scaled_rows", "text_csr"]

# name -> (file in the shared folder, n_features or None for the dense CSV, what it is)
SHARED = {
    "reuters": ("reuters.trn.bz2", 8315, "Reuters-21578 text, 7770 x 8315 CSR, two classes"),
    "a9a-file": ("a9a.xz", 123, "a9a read from the shared folder (the embedded a9a is the same data)"),
    "abalone": ("abalone_scale.bz2", 8, "abalone, 4177 x 8, real target (ridge)"),
    "dna": ("dna.scale", 180, "StatLog DNA, 2000 x 180, three classes"),
    "cal_housing": ("cal_housing.data", None, "California housing, 20640 x 8 dense, real target (ridge)"),
}


def data_folder():
    """The shared data folder: ``$TIKHON_DATA``, else the first ``../shared/data`` that
    exists beside the current folder or beside the project root; ``None`` if none does."""
    env = os.environ.get("TIKHON_DATA")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for root in (Path.cwd(), *here.parents[2:4]):  # cwd; src/ and the project root of a source checkout
        candidate = root.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def load_named(name, dtype):
    """``(X, y)`` of a named shared data set."""
    from .problems import BenchArgumentError

    filename, n_features, _ = SHARED[name]
    folder = data_folder()
    path = None if folder is None else folder / filename
    if path is None or not path.exists():
        where = "no shared data folder found (set TIKHON_DATA)" if folder is None else f"{path} not found"
        raise BenchArgumentError(f"data set {name!r}: {where}")
    if n_features is None:  # cal_housing: CSV with a header, target last; raw scales 1..1e4, standardized
        data = np.loadtxt(path, delimiter=",", skiprows=1)
        X, y = data[:, :-1], data[:, -1] / 1e5
        X = (X - X.mean(axis=0)) / X.std(axis=0)
        return np.ascontiguousarray(X, dtype=dtype), y
    from ..datasets import load_svmlight

    return load_svmlight(str(path), n_features=n_features, dtype=dtype)


def parse_text_spec(body, default_dtype, size):
    """``text:n=...,d=...,nnz=...,seed=...,dtype=...`` -> a spec dict (``size`` parses numbers)."""
    from .problems import BenchArgumentError, parse_dtype

    spec = {"kind": "text", "n": 200_000, "d": 100_000, "nnz": 7_500_000, "seed": 0, "classes": 2,
            "dtype": np.dtype(default_dtype).name}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in spec or key == "kind":
            raise BenchArgumentError(f"text: cannot read {item!r}; expected text:n=...,d=...,nnz=...,seed=...,classes=...,dtype=...")
        if key == "dtype":
            spec[key] = np.dtype(parse_dtype(value)).name
        elif key == "seed":
            spec[key] = 0 if value.strip() == "0" else size(value, key)
        else:
            spec[key] = size(value, key)
    if spec["classes"] < 2:
        raise BenchArgumentError(f"text: classes must be at least 2, got {spec['classes']}")
    classes = f"-K{spec['classes']}" if spec["classes"] != 2 else ""
    spec["name"] = f"text-{spec['n']}x{spec['d']}-nnz{spec['nnz']}{classes}-{spec['dtype']}"
    return spec


def scaled_rows(n, scale, minimum=50):
    """``n`` rows times ``scale`` (a suite at a smaller size), at least ``minimum``."""
    return max(minimum, int(round(n * scale)))


def text_csr(n=200_000, d=100_000, nnz=7_500_000, seed=0, classes=2):
    """A text-like CSR with about ``nnz`` nonzeros (row lengths are Poisson draws of mean
    ``nnz / n``; 7,499,335 for the defaults).

    Columns are drawn from Zipf-like frequencies and appear at most once per row (a
    document's distinct words), values are tf-idf-like and rows have unit norm. Labels
    come from a sparse linear model with logistic noise (``classes`` > 2: K sparse linear
    scores with Gumbel noise, the multinomial model). Returns ``(X, y)``: canonical CSR
    float64 with int32 indices, and ``y`` in {-1, +1} (or ``0 .. classes - 1``).
    """
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.poisson(nnz / n, n), d)
    p = 1.0 / np.arange(1, d + 1) ** 1.1
    p /= p.sum()
    keys = _distinct_columns(rng, lengths, p)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    cols = (keys % d).astype(np.int32)
    idf = np.log(n / (1.0 + np.bincount(cols, minlength=d)))
    data = (rng.exponential(1.0, keys.size) + 0.1) * idf[cols]
    norms = np.sqrt(np.bincount(keys // d, weights=data * data, minlength=n))
    data /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
    X = sp.csr_matrix((data, cols, indptr), shape=(n, d))
    if classes > 2:
        W = rng.standard_normal((d, classes)) * (rng.random((d, classes)) < 0.05) * 20
        return X, np.argmax(X @ W + rng.gumbel(size=(n, classes)), axis=1).astype(np.float64)
    w = rng.standard_normal(d) * (rng.random(d) < 0.05) * 20
    z = X @ w
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-(z - np.median(z)))), 1.0, -1.0)
    return X, y


def _distinct_columns(rng, lengths, p):
    """Sorted keys ``row * d + column``: ``lengths[i]`` distinct columns for row ``i``,
    the first distinct ones of a stream of draws from ``p`` (rows that run short of
    distinct draws are drawn again with a longer stream)."""
    n, d = lengths.size, p.size
    todo = np.arange(n, dtype=np.int64)
    found = []
    factor = 2
    while todo.size:
        rows = np.repeat(todo, lengths[todo] * factor + 8)
        keys, first = np.unique(rows * d + rng.choice(d, size=rows.size, p=p), return_index=True)
        keys = keys[np.argsort(first)]          # each row's distinct draws, in draw order
        row = keys // d
        rank = np.arange(keys.size) - np.searchsorted(row, row)
        short = np.bincount(row, minlength=n)[todo] < lengths[todo]
        keep = (rank < lengths[row]) & ~np.isin(row, todo[short])
        found.append(keys[keep])
        todo = todo[short]
        factor *= 2
    return np.sort(np.concatenate(found))
