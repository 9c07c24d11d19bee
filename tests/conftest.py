"""Shared fixtures: the real LIBSVM data sets in ../shared/data (skipped when absent)."""
from __future__ import annotations

import functools
import lzma
from pathlib import Path

import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _require(name):
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real data set {name} not found: {path} (the ../shared/data folder beside the project root)")
    return path


@functools.lru_cache(maxsize=None)
def _load_svm(name, n_features=None):
    from sklearn.datasets import load_svmlight_file

    path = _require(name)
    if name.endswith(".xz"):
        with lzma.open(path) as f:
            return load_svmlight_file(f, n_features=n_features)
    return load_svmlight_file(str(path), n_features=n_features)


def load_shared(name):
    """``(X_csr_float64, y)`` for a shared data set: a9a, reuters, abalone, cal_housing."""
    if name == "a9a":
        return _load_svm("a9a.xz", 123)
    if name == "reuters":
        return _load_svm("reuters.trn.bz2", 8315)
    if name == "abalone":
        return _load_svm("abalone_scale.bz2", 8)
    if name == "cal_housing":
        return _load_cal_housing()
    raise KeyError(name)


@functools.lru_cache(maxsize=None)
def _load_cal_housing():
    import scipy.sparse as sp

    data = np.loadtxt(_require("cal_housing.data"), delimiter=",", skiprows=1)
    X, y = data[:, :-1], data[:, -1]
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # raw scales span 1e0..1e4; standardize once
    return sp.csr_matrix(X), y / 1e5


@pytest.fixture
def a9a():
    X, y = load_shared("a9a")
    return X.copy(), y.copy()


# For in-process dask clusters (processes=False): a worker's memory monitor measures the
# whole pytest process, hundreds of MB after the earlier test files, so past the pause
# threshold it pauses and runs no task. Workers read this when they are created.
IN_PROCESS_DASK_CONFIG = {f"distributed.worker.memory.{k}": False for k in ("target", "spill", "pause", "terminate")}


@pytest.fixture(scope="module")
def dask_client():
    """One in-process dask.distributed client per test module that asks for it
    (threads: cheap to start; memory thresholds off, see IN_PROCESS_DASK_CONFIG);
    skipped when distributed is not installed."""
    distributed = pytest.importorskip("distributed")
    import dask

    with dask.config.set(IN_PROCESS_DASK_CONFIG):
        client = distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0")
    with client:
        yield client
