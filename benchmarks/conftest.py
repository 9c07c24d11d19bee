"""Shared fixtures of the pytest-benchmark suite (``pytest benchmarks/ --benchmark-only``).

Not part of the default test run (pyproject's ``testpaths`` is ``tests``). Every
benchmark is put in a comparison *group* that also holds the NumPy reference (and, for
kernels, the one-read floor ``X @ w``), so pytest-benchmark's group table shows each
backend next to NumPy in the same run. Backends and solvers are discovered through
``tikhon.available_backends()`` and ``tikhon.solvers.SOLVERS``: a benchmark file of
another backend joins a group by using :func:`kernel_group` / :func:`fit_group`.

Sizes can be scaled with ``TIKHON_BENCH_SCALE`` (default 1: dense 100k x 100, CSR
100k x 20k with 20 nonzeros per row, and a9a).
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest

import tikhon
from tikhon.objective import LOSSES

SCALE = float(os.environ.get("TIKHON_BENCH_SCALE", "1"))
KERNEL_CASES = [(fmt, dtype) for fmt in ("dense", "csr") for dtype in ("float64", "float32")]


def kernel_group(fmt, dtype, loss="logistic"):
    """Group name of the loss+grad kernels on one layout and dtype."""
    return f"loss_grad {loss} {fmt} {dtype}"


def fit_group(data, solver, loss="logistic"):
    return f"fit {loss} {data} {solver}"


@functools.lru_cache(maxsize=None)
def kernel_data(fmt, dtype):
    """``(X, y_signed)`` for a kernel case (cached for the session)."""
    n = int(100_000 * SCALE)
    if fmt == "dense":
        X, y = tikhon.datasets.make_classification(n, 100, dtype=np.dtype(dtype).type, seed=0)
    else:
        X, y = tikhon.datasets.make_sparse_classification(n, 20_000, 1e-3, dtype=np.dtype(dtype).type, seed=0)
    return X, np.where(y > 0, 1.0, -1.0)


@functools.lru_cache(maxsize=None)
def a9a(dtype="float64"):
    return tikhon.datasets.load_a9a(dtype=np.dtype(dtype).type)


def make_backend(name, X, y_signed, loss="logistic"):
    """An instance of backend ``name`` built for ``X`` (skips when it cannot read X)."""
    from tikhon.backends import get_backend

    try:
        cls = get_backend(name, X)
    except (ImportError, ValueError) as exc:
        pytest.skip(str(exc))
    return cls(X, y_signed, np.ones(X.shape[0]), LOSSES[loss])


def backends():
    """Available backends, NumPy (the reference) first."""
    names = tikhon.available_backends()
    return ["numpy"] + [b for b in names if b != "numpy"]


@pytest.fixture(params=KERNEL_CASES, ids=[f"{f}-{d}" for f, d in KERNEL_CASES])
def kernel_case(request):
    fmt, dtype = request.param
    X, y = kernel_data(fmt, dtype)
    return fmt, dtype, X, y


class Helpers:
    """What the benchmark files use, handed over as the ``helpers`` fixture (no
    ``import conftest``: that name is ambiguous next to tests/conftest.py)."""

    kernel_group = staticmethod(kernel_group)
    fit_group = staticmethod(fit_group)
    make_backend = staticmethod(make_backend)
    a9a = staticmethod(a9a)


@pytest.fixture
def helpers():
    return Helpers


def fit_cases():
    """``(data, solver, backend, group solver)`` ids for whole-fit benchmarks. A solver that
    is a backend's own loop (``dual_cd``) has no NumPy run, so its group gets NumPy's
    default solver instead. SGD is left out (its epochs are not comparable)."""
    from tikhon import solvers as registry

    default = registry.choose_solver("auto", "logistic")
    for data in ("a9a", "dense50k"):
        for solver in registry.SOLVERS:
            if solver == "sgd":
                continue
            for backend in backends():
                yield pytest.param(data, solver, backend, solver, id=f"{data}-{solver}-{backend}")
            if solver in registry.BACKEND_LOOPS:
                yield pytest.param(data, default, "numpy", solver, id=f"{data}-{default}-numpy-vs-{solver}")


def pytest_generate_tests(metafunc):
    """``any_backend`` runs over the available backends (NumPy first); ``fit_case`` over
    fit_cases(). (Distinct names, so a file's own ``backend`` parameter is left alone.)"""
    if "any_backend" in metafunc.fixturenames:
        metafunc.parametrize("any_backend", backends())
    if "fit_case" in metafunc.fixturenames:
        cases = list(fit_cases())
        metafunc.parametrize("fit_case", [c.values for c in cases], ids=[c.id for c in cases])
