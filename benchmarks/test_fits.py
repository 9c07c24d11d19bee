"""Whole fits per backend and solver on a9a (CSR) and a dense problem, each group with
the NumPy backend's fit of the same solver as the reference; the seeds' GD as a fixed
number of epochs (``solver="gd"``, a backend's own jitted loop when it has one).

The cases (``fit_case``) and ``helpers`` come from conftest.py.
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

import tikhon
from tikhon import solvers as registry

GD_EPOCHS = 20


@functools.lru_cache(maxsize=None)
def _dense():
    return tikhon.datasets.make_classification(50_000, 50, seed=2)


def _data(name, helpers):
    return helpers.a9a() if name == "a9a" else _dense()


def _fit(X, y, solver, backend):
    kwargs = dict(solver=solver, backend=backend, tol=1e-8)
    if solver == "gd":
        kwargs.update(max_iter=GD_EPOCHS, tol=1e-12)
    model = tikhon.LogisticRegression(C=1.0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def test_fit(benchmark, fit_case, helpers):
    from tikhon.backends import get_backend

    data, solver, backend, group = fit_case
    X, y = _data(data, helpers)
    loop = solver if solver in registry.BACKEND_LOOPS else None
    try:
        get_backend(backend, X, loop=loop)
        if group in registry.BACKEND_LOOPS:  # the reference of a loop solver: only where some backend runs it
            if not any(group in get_backend(b, X).loops for b in tikhon.available_backends()
                       if _reads(b, X)):
                pytest.skip(f"no available backend runs {group!r} on {data}")
    except (ImportError, ValueError) as exc:
        pytest.skip(str(exc))
    name = f"gd {GD_EPOCHS} epochs" if solver == "gd" else group
    benchmark.group = helpers.fit_group(data, name)
    _fit(X[:500], y[:500], solver, backend)  # JIT warm-up outside the timing
    model = benchmark.pedantic(_fit, args=(X, y, solver, backend), rounds=3, iterations=1)
    assert model.backend_ == backend and np.isfinite(model.objective_)


def _reads(name, X):
    from tikhon.backends import get_backend

    try:
        get_backend(name, X)
        return True
    except (ImportError, ValueError):
        return False
