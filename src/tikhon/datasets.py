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


def _labels(rng, X, n_features, noise, n_classes=2):
    if n_classes != 2:
        return _class_labels(rng, X, n_features, noise, n_classes)
    w = rng.standard_normal(n_features) / np.sqrt(n_features)
    z = np.asarray(X @ w).ravel() * 3.0 + 0.5
    flip = rng.random(X.shape[0]) < noise
    y = np.where(z + 0.5 * rng.standard_normal(X.shape[0]) > 0, 1.0, -1.0)
    y[flip] = -y[flip]
    return y


def make_classification(n_samples, n_features, dtype=np.float64, noise=0.05, seed=0, order="C", n_classes=2):
    """Dense data from a seeded linear model with label noise: labels in {-1, +1} for
    two classes, ``0 .. n_classes - 1`` (floats) for more."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, n_features), dtype=np.float64 if dtype == np.float64 else np.float32)
    X = np.asarray(X, dtype=dtype, order=order)
    return X, _labels(rng, X, n_features, noise, n_classes)


def make_sparse_classification(n_samples, n_features, density, dtype=np.float64, noise=0.05, seed=0,
                               index_dtype=np.int32, n_classes=2):
    """Sparse CSR data (uniformly placed nonzeros, positive tf-idf-like values), labels as
    :func:`make_classification`'s."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", dtype=dtype, random_state=rng,
                  data_rvs=lambda k: rng.exponential(1.0, k))
    X.indices = X.indices.astype(index_dtype)
    X.indptr = X.indptr.astype(index_dtype)
    X = X.multiply(1.0 / np.sqrt(max(density * n_features, 1.0))).tocsr().astype(dtype)
    return X, _labels(rng, X, n_features, noise, n_classes)


def _class_labels(rng, X, n_features, noise, n_classes):
    """Labels ``0 .. K - 1``: the argmax of K seeded linear scores plus Gumbel noise (a
    multinomial model), a fraction ``noise`` of them redrawn uniformly."""
    if int(n_classes) != n_classes or n_classes < 2:
        raise ValueError(f"n_classes must be an integer >= 2, got {n_classes!r}")
    K = int(n_classes)
    W = rng.standard_normal((n_features, K)) * (3.0 / np.sqrt(n_features))
    scores = np.asarray(X @ W) + rng.gumbel(size=(X.shape[0], K))
    y = np.argmax(scores, axis=1).astype(np.float64)
    redraw = rng.random(X.shape[0]) < noise
    y[redraw] = rng.integers(0, K, int(redraw.sum()))
    return y
