"""Data sets: the embedded a9a, svmlight files, seeded synthetic makers."""
from __future__ import annotations

import bz2

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.datasets import dump_svmlight_file

import tikhon


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedded_a9a(dtype):
    X, y = tikhon.datasets.load_a9a(dtype=dtype)
    assert sp.isspmatrix_csr(X) and X.shape == (32561, 123) and X.dtype == dtype
    assert set(np.unique(y)) == {-1.0, 1.0} and X.nnz == 451592
    assert set(np.unique(X.data)) == {1.0}  # one-hot features


@pytest.mark.parametrize("suffix", ["", ".bz2", ".xz"])
def test_load_svmlight_round_trip(tmp_path, suffix):
    X, y = tikhon.datasets.make_sparse_classification(50, 20, 0.2, seed=1)
    plain = tmp_path / "data.svm"
    dump_svmlight_file(X, y, str(plain))
    path = tmp_path / f"data.svm{suffix}"
    if suffix == ".bz2":
        path.write_bytes(bz2.compress(plain.read_bytes()))
    elif suffix == ".xz":
        import lzma

        path.write_bytes(lzma.compress(plain.read_bytes()))
    X2, y2 = tikhon.datasets.load_svmlight(path, n_features=20)
    assert np.array_equal(y2, y) and abs(X2 - X).max() <= 1e-12 * abs(X).max()


def test_synthetic_makers_are_seeded():
    a = tikhon.datasets.make_classification(100, 5, seed=3, dtype=np.float32, order="F")
    b = tikhon.datasets.make_classification(100, 5, seed=3, dtype=np.float32, order="F")
    c = tikhon.datasets.make_classification(100, 5, seed=4)
    assert a[0].dtype == np.float32 and a[0].flags.f_contiguous
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and not np.array_equal(a[1], c[1])
    X, y = tikhon.datasets.make_sparse_classification(200, 50, 0.1, seed=0)
    assert sp.isspmatrix_csr(X) and abs(X.nnz - 1000) < 150 and set(np.unique(y)) == {-1.0, 1.0}
