"""Backend and thread selection.

Precedence for the backend: the estimator's ``backend=`` argument, then the innermost
:func:`config_context` / :func:`set_config`, then the ``TIKHON_BACKEND`` environment
variable, then ``"auto"``. Settings are thread-local (as in scikit-learn).
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

__all__ = ["config_context", "get_config", "set_config", "resolve_backend", "resolve_threads"]

_DEFAULTS = {"backend": None, "n_threads": None}
_local = threading.local()


def _settings():
    if not hasattr(_local, "settings"):
        _local.settings = dict(_DEFAULTS)
    return _local.settings


def get_config():
    """A copy of the current settings: ``{"backend": ..., "n_threads": ...}``
    (``None`` means not set here: the environment or the default decides)."""
    return dict(_settings())


def _check(backend, n_threads):
    if backend is not None and not isinstance(backend, str):
        raise TypeError(f"backend must be a string, got {type(backend).__name__}")
    if n_threads is not None and (isinstance(n_threads, bool) or not isinstance(n_threads, int) or n_threads < 1):
        raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")


def set_config(backend=None, n_threads=None):
    """Set the backend name and/or thread count for this thread (``None`` leaves a setting as is)."""
    _check(backend, n_threads)
    settings = _settings()
    if backend is not None:
        settings["backend"] = backend
    if n_threads is not None:
        settings["n_threads"] = n_threads


@contextmanager
def config_context(*, backend=None, n_threads=None):
    """Temporarily set the backend and/or thread count; restored on exit, even on error.

    >>> import tikhon
    >>> with tikhon.config_context(backend="numpy"):
    ...     tikhon.get_config()["backend"]
    'numpy'
    """
    _check(backend, n_threads)
    saved = get_config()
    try:
        set_config(backend=backend, n_threads=n_threads)
        yield
    finally:
        _settings().update(saved)


def resolve_backend(explicit=None) -> str:
    """The backend name in force: argument > context > ``TIKHON_BACKEND`` > ``"auto"``."""
    if explicit is not None:
        return explicit
    configured = _settings()["backend"]
    if configured is not None:
        return configured
    return os.environ.get("TIKHON_BACKEND", "").strip() or "auto"


def resolve_threads() -> int | None:
    """The thread count in force (``None``: the libraries' default)."""
    return _settings()["n_threads"]
