"""Data sets: the embedded default (a9a), svmlight files, and seeded synthetic problems."""
from __future__ import annotations

import lzma
from importlib import resources

import numpy as np
import scipy.sparse as sp

__all__ = ["load_a9a", "load_svmlight", "make_classification", "make_sparse_classification"]

A9A_FEATURES = 123


def load_a9a(dtype=np.float64):
    """The a9a (Adult census) training set shipped with tikhon: CSR (32561 x 123), labels in {-1, +1}.

    LIBSVM's a9a, binary one-hot features; about 150 KB compressed inside the package.
    """
    from sklearn.datasets import load_svmlight_file

    with resources.files("tikhon").joinpath("data/a9a.xz").open("rb") as raw, lzma.open(raw) as f:
        X, y = load_svmlight_file(f, n_features=A9A_FEATURES, dtype=dtype)
    return X, y


def load_svmlight(path, n_features=None, dtype=np.float64):
    """Read an svmlight/LIBSVM file (plain, or gzip/bz2/xz compressed: recognized by its
    content, whatever its name) into ``(X_csr, y)``."""
    from sklearn.datasets import load_svmlight_file

    from ._datafiles import compression_of, open_data

    with open_data(path, compression_of(path)) as f:
        return load_svmlight_file(f, n_features=n_features, dtype=dtype)


def _labels(rng, X, n_features, noise):
    w = rng.standard_normal(n_features) / np.sqrt(n_features)
    z = np.asarray(X @ w).ravel() * 3.0 + 0.5
    flip = rng.random(X.shape[0]) < noise
    y = np.where(z + 0.5 * rng.standard_normal(X.shape[0]) > 0, 1.0, -1.0)
    y[flip] = -y[flip]
    return y


def make_classification(n_samples, n_features, dtype=np.float64, noise=0.05, seed=0, order="C"):
    """Dense two-class data from a seeded linear model with label noise; labels in {-1, +1}."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float64 if dtype == np.float64 else np.float32)
    X = np.asarray(X, dtype=dtype, order=order)
    return X, _labels(rng, X, n_features, noise)


def make_sparse_classification(n_samples, n_features, density, dtype=np.float64, noise=0.05, seed=0,
                               index_dtype=np.int32):
    """Sparse CSR two-class data (uniformly placed nonzeros, positive tf-idf-like values)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", dtype=dtype, random_state=rng,
                  data_rvs=lambda k: rng.exponential(1.0, k))
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    X = X.multiply(1.0 / np.sqrt(max(density * n_features, 1.0))).tocsr().astype(dtype)
    return X, _labels(rng, X, n_features, noise)
