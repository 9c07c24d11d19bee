"""Backend registry: names -> kernel sets, and the ``"auto"`` rule.

Adding a backend is one line in ``_REGISTRY`` (and, if ``auto`` may pick it, one in
``_AUTO_ORDER``). Backend modules are imported only when asked for, so importing
tikhon never imports numba, the compiled extension or dask.
"""
from __future__ import annotations

import importlib

from ._base import Backend, input_format

__all__ = [
    "Backend",
    "BackendUnavailableError",
    "available_backends",
    "backend_names",
    "get_backend",
    "input_format",
]

_REGISTRY = {
    "numpy": ("tikhon.backends.numpy", "NumpyBackend"),
    "numba": ("tikhon.backends.numba", "NumbaBackend"),
    "cython": ("tikhon.backends.cython", "CythonBackend"),
    "dask": ("tikhon.backends.dask", "DaskBackend"),
}

# "auto" takes the first backend in this order that is available, reads the input and
# runs the requested loop. Faster first; numpy, the reference, reads everything in memory.
# Dask input goes to "dask" (the only backend that reads it; last, so that "auto" on
# in-memory data never imports dask).
_AUTO_ORDER = ("cython", "numba", "numpy", "dask")


class BackendUnavailableError(ImportError):
    """An explicitly requested backend cannot run here; the message names the fix."""


def backend_names():
    """All registered backend names (available here or not), plus ``"auto"``."""
    return ("auto", *_REGISTRY)


def _load(name) -> type[Backend]:
    module, cls = _REGISTRY[name]
    return getattr(importlib.import_module(module), cls)


def available_backends():
    """Names of the registered backends that can run on this machine."""
    return tuple(name for name in _REGISTRY if _load(name).availability() is None)


def _describe(X):
    return f"{input_format(X)} input of dtype {X.dtype}"


def get_backend(name, X, loop=None, n_outputs=1) -> type[Backend]:
    """The backend class for ``name`` and input ``X``.

    ``loop``: a solver whose whole loop the backend must run (e.g. ``"dual_cd"``);
    ``n_outputs > 1``: the backend must fit several outputs (``multi_output``).
    An explicit name that is unavailable raises :class:`BackendUnavailableError`
    naming the fix; one that cannot read ``X`` raises ``ValueError``. ``"auto"`` picks
    the first suitable backend in ``_AUTO_ORDER``.
    """
    if name not in backend_names():
        raise ValueError(f"unknown backend {name!r}; valid backends are {', '.join(backend_names())}")
    if name == "auto" and input_format(X) == "dask":
        name = "dask"  # the only reader of dask input: unavailable -> the error naming the fix
    if name != "auto":
        cls = _load(name)
        problem = cls.availability()
        if problem is not None:
            raise BackendUnavailableError(f"backend {name!r} is not available: {problem}")
        if not cls.supports(X):
            raise ValueError(
                f"backend {name!r} cannot read {_describe(X)}; it reads {sorted(cls.formats)} "
                f"in {sorted(str(d) for d in cls.dtypes)}"
            )
        if loop is not None and loop not in cls.loops:
            raise ValueError(f"backend {name!r} does not run the {loop!r} solver")
        if n_outputs > 1 and not cls.multi_output:
            raise ValueError(f"backend {name!r} fits one output; this model has {n_outputs} "
                             "(a multinomial model or several targets): use backend='auto' or 'numpy'")
        return cls
    for candidate in _AUTO_ORDER:
        cls = _load(candidate)
        if (
            cls.availability() is None
            and cls.supports(X)
            and (loop is None or loop in cls.loops)
            and (n_outputs == 1 or cls.multi_output)
        ):
            return cls
    what = f" running the {loop!r} solver" if loop else ""
    raise ValueError(f"no available backend reads {_describe(X)}{what}")
