"""Whole fits per backend and solver on a9a (CSR) and a dense problem, each group with
the NumPy backend's fit of the same solver as the reference; the seeds' GD as a fixed
number of epochs (``solver="gd"``, a backend's own jitted loop when it has one)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import tikhon
from tikhon import solvers as registry

from conftest import a9a, backends, fit_group

GD_EPOCHS = 20


def _dense():
    X, y = tikhon.datasets.make_classification(50_000, 50, seed=2)
    return X, y


DATA = {"a9a": a9a, "dense50k": _dense}


def _cases():
    """``(data, solver, backend, group solver)``: a solver that is a backend's own loop
    (``dual_cd``) has no NumPy run, so its group gets NumPy's default solver instead."""
    for data in DATA:
        for solver in registry.SOLVERS:
            if solver == "sgd":
                continue
            for backend in backends():
                yield pytest.param(data, solver, backend, solver, id=f"{data}-{solver}-{backend}")
            if solver in registry.BACKEND_LOOPS:
                default = registry.choose_solver("auto", "logistic")
                yield pytest.param(data, default, "numpy", solver, id=f"{data}-{default}-numpy-vs-{solver}")


def _fit(X, y, solver, backend):
    kwargs = dict(solver=solver, backend=backend, tol=1e-8)
    if solver == "gd":
        kwargs.update(max_iter=GD_EPOCHS, tol=1e-12)
    model = tikhon.LogisticRegression(C=1.0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


@pytest.mark.parametrize("data, solver, backend, group", list(_cases()))
def test_fit(benchmark, data, solver, backend, group):
    from tikhon.backends import get_backend

    X, y = DATA[data]()
    loop = solver if solver in registry.BACKEND_LOOPS else None
    try:
        get_backend(backend, X, loop=loop)
    except (ImportError, ValueError) as exc:
        pytest.skip(str(exc))
    name = f"gd {GD_EPOCHS} epochs" if solver == "gd" else group
    benchmark.group = fit_group(data, name)
    _fit(X[:500], y[:500], solver, backend)  # JIT warm-up outside the timing
    model = benchmark.pedantic(_fit, args=(X, y, solver, backend), rounds=3, iterations=1)
    assert model.backend_ == backend and np.isfinite(model.objective_)
