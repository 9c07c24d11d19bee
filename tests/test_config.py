"""The backend selection flag: estimator parameter > config_context > TIKHON_BACKEND > auto,
unknown names and unavailable backends, thread settings."""
from __future__ import annotations

import threading

import numpy as np
import pytest

import tikhon
from tikhon import BackendUnavailableError
from tikhon._config import _settings, resolve_backend
from tikhon.backends import get_backend
from tikhon.backends.numba import NumbaBackend


@pytest.fixture
def data():
    return tikhon.datasets.make_classification(300, 5, seed=3)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    monkeypatch.delenv("TIKHON_BACKEND", raising=False)


def fitted_backend(X, y, **params):
    return tikhon.LogisticRegression(solver="lbfgs", **params).fit(X, y).backend_


def test_each_route_selects_the_backend(data, monkeypatch):
    X, y = data
    assert fitted_backend(X, y, backend="numpy") == "numpy"
    with tikhon.config_context(backend="numpy"):
        assert fitted_backend(X, y) == "numpy"
    monkeypatch.setenv("TIKHON_BACKEND", "numpy")
    assert fitted_backend(X, y) == "numpy"


def test_auto_is_the_default_and_picks_an_available_backend(data):
    X, y = data
    assert resolve_backend() == "auto"
    assert fitted_backend(X, y) in tikhon.available_backends()
    assert fitted_backend(X, y) == get_backend("auto", X).name


def test_precedence_parameter_over_context_over_environment(monkeypatch):
    monkeypatch.setenv("TIKHON_BACKEND", "numba")
    assert resolve_backend() == "numba"
    with tikhon.config_context(backend="cython"):
        assert resolve_backend() == "cython"
        assert resolve_backend("numpy") == "numpy"
        with tikhon.config_context(backend="numpy"):
            assert resolve_backend() == "numpy"
        assert resolve_backend() == "cython"
    assert resolve_backend() == "numba"
    monkeypatch.setenv("TIKHON_BACKEND", "  ")  # blank means unset
    assert resolve_backend() == "auto"


def test_precedence_reaches_the_fitted_estimator(data, monkeypatch):
    X, y = data
    monkeypatch.setenv("TIKHON_BACKEND", "no-such-backend")  # would fail if consulted
    with tikhon.config_context(backend="numpy"):
        assert fitted_backend(X, y) == "numpy"
        assert fitted_backend(X, y, backend="numba") == "numba"
    with pytest.raises(ValueError, match="unknown backend 'no-such-backend'"):
        fitted_backend(X, y)


@pytest.mark.parametrize("route", ["param", "context", "env"])
def test_unknown_name_lists_the_valid_ones(data, route, monkeypatch):
    X, y = data
    with pytest.raises(ValueError) as info:
        if route == "param":
            fitted_backend(X, y, backend="cuda")
        elif route == "context":
            with tikhon.config_context(backend="cuda"):
                fitted_backend(X, y)
        else:
            monkeypatch.setenv("TIKHON_BACKEND", "cuda")
            fitted_backend(X, y)
    message = str(info.value)
    assert "unknown backend 'cuda'" in message
    for name in tikhon.backend_names():
        assert name in message


def test_an_unavailable_backend_raises_naming_the_fix_and_auto_skips_it(data, monkeypatch):
    X, y = data
    fix = "numba cannot be imported; install it with `pip install numba`"
    monkeypatch.setattr(NumbaBackend, "availability", classmethod(lambda cls: fix))
    with pytest.raises(BackendUnavailableError, match="pip install numba"):
        fitted_backend(X, y, backend="numba")
    assert "numba" not in tikhon.available_backends()
    assert fitted_backend(X, y) not in ("numba",)  # auto never picks it
    assert issubclass(BackendUnavailableError, ImportError)


def test_a_backend_that_cannot_read_the_input_says_what_it_reads(data):
    X, y = data
    if "cython" not in tikhon.available_backends():
        pytest.skip("the compiled extension is not built")
    with pytest.raises(ValueError, match=r"backend 'cython' cannot read dense input .*\['csr'\]"):
        fitted_backend(X, y, backend="cython")


def test_config_context_restores_on_error_and_is_thread_local():
    with pytest.raises(RuntimeError):
        with tikhon.config_context(backend="numpy", n_threads=1):
            assert tikhon.get_config() == {"backend": "numpy", "n_threads": 1}
            raise RuntimeError
    assert tikhon.get_config() == {"backend": None, "n_threads": None}

    seen = {}
    with tikhon.config_context(backend="numpy"):
        thread = threading.Thread(target=lambda: seen.update(tikhon.get_config()))
        thread.start()
        thread.join()
    assert seen["backend"] is None


def test_set_config_persists_until_changed():
    saved = tikhon.get_config()
    try:
        tikhon.set_config(backend="numpy")
        assert resolve_backend() == "numpy"
        tikhon.set_config(n_threads=2)  # None leaves the backend as is
        assert tikhon.get_config() == {"backend": "numpy", "n_threads": 2}
    finally:
        _settings().update(saved)


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="n_threads must be a positive integer"):
        with tikhon.config_context(n_threads=bad):
            pass


def test_backend_must_be_a_string():
    with pytest.raises(TypeError, match="backend must be a string"):
        tikhon.set_config(backend=3)


def test_thread_count_reaches_the_numba_backend(data):
    import numba

    X, y = data
    before = numba.get_num_threads()
    with tikhon.config_context(n_threads=1):
        one = tikhon.LogisticRegression(backend="numba", solver="newton", tol=1e-10).fit(X, y)
    assert numba.get_num_threads() == before  # restored after each call
    two = tikhon.LogisticRegression(backend="numba", solver="newton", tol=1e-10).fit(X, y)
    assert np.allclose(one.coef_, two.coef_, rtol=1e-9, atol=1e-12)


# ---- the thread budget -------------------------------------------------------------
from tikhon import _config  # noqa: E402
from tikhon._config import available_cores, sharing_cores, thread_budget  # noqa: E402


@pytest.fixture(autouse=True)
def _cores_read_afresh(monkeypatch):
    """available_cores() keeps its reading for LOAD_WINDOW seconds: start each test afresh."""
    monkeypatch.setattr(_config, "_cores_seen", (None, 0))


def _cpus():
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def test_the_budget_is_the_cores_by_default_and_an_explicit_count_wins(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert thread_budget() == available_cores() == _cpus()
    with tikhon.config_context(n_threads=3):
        assert thread_budget() == 3


@pytest.mark.parametrize("value, expected", [("1", 1), ("1,1", 1), ("", None), ("lots", None), ("0", None)])
def test_omp_num_threads_caps_the_cores(monkeypatch, value, expected):
    """joblib's loky workers and dask's worker processes say so with OMP_NUM_THREADS."""
    monkeypatch.setenv("OMP_NUM_THREADS", value)
    monkeypatch.setattr(_config, "LOAD_WINDOW", 0.0)  # read the environment at each call
    assert available_cores() == (expected if expected is not None else _cpus())
    assert thread_budget() == available_cores()
    with tikhon.config_context(n_threads=2):
        assert thread_budget() == 2  # explicit still wins


def test_fits_running_at_once_share_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = available_cores()
    with sharing_cores():
        assert thread_budget() == cores
        seen = []
        with sharing_cores():
            thread = threading.Thread(target=lambda: seen.append(thread_budget()))
            thread.start()
            thread.join()
            assert thread_budget() == max(1, cores // 2)
        assert seen == [max(1, cores // 2)]  # the count is process-wide, not per thread
        assert thread_budget() == cores
    with pytest.raises(RuntimeError):
        with sharing_cores():
            raise RuntimeError
    assert thread_budget() == cores  # released on error


def test_a_dask_worker_thread_gets_its_share(monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2,
                            dashboard_address=None) as client:
        budget = client.submit(thread_budget, pure=False).result()
    assert budget == max(1, available_cores() // 2)
