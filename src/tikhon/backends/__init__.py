"""Backend registry: names -> kernel sets, and the ``"auto"`` rule.

Adding a backend is one line in ``_REGISTRY`` (and, if ``auto`` may pick it, one in
``_AUTO_ORDER``). Backend modules are imported only when asked for, so importing
tikhon never imports numba, the compiled extension or dask.
"""
from __future__ import annotations

import importlib

import numpy as np

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

# ...except that "auto" reads small float64 dense X with the NumPy backend: a pass over at
# most SMALL_DENSE_ENTRIES values (1.6 MB) takes microseconds, and the Numba backend's fixed
# cost per call (thread count, launch) then outweighs its fused kernel. Default fits, numba
# against numpy, interleaved repeats (/work/scratch/h16/cross.py, 2026-12-01, load 6.5 on 2
# cores): logistic 1.24x (1000x10), 1.13x (5000x20), 1.14x (7000x28), 1.03x (2000x100), 1.33x
# (50000x8), ridge 1.07-1.20x up to 4e5 values; at 1e6 values numba wins under load (0.05-0.85x:
# OpenBLAS's threads wait for the busy cores). Quiet (load 1.2): 1.1-1.4x on the cells up
# to 1e6 values. float32 stays on numba: the NumPy backend's float32 products round, so its
# final certificate takes two more float64 passes. Solvers whose whole loop a faster backend
# runs (numba's gd, sgd) keep that backend.
SMALL_DENSE_ENTRIES = 200_000
# ...and CSR for L-BFGS with the Numba backend: its fused loss-and-gradient pass (a row's
# margin and scatter in one visit, the loss in the same loop) beats the compiled
# extension's two products (reuters 7770 x 8315: numba/lbfgs 2.7-7.8 ms against
# cython/lbfgs 3.8-11.3 ms to 1e-4, C = 0.1..10). A Cython version of that pass was
# measured and not kept: its scalar exp/log1p cost more than the second read saves
# (0.87-1.45x the two products on reuters, a9a and text CSR, 1 and 2 threads).
NUMBA_FIRST_CSR_SOLVERS = frozenset({"lbfgs", "lbfgs_newton"})


class BackendUnavailableError(ImportError):
    """An explicitly requested backend cannot run here; the message names the fix."""


def backend_names():
    """All registered backend names (available here or not), plus ``"auto"``."""
    return ("auto", *_REGISTRY)


_loaded = {}  # name -> class: a fit asks for up to three per "auto" choice


def _load(name) -> type[Backend]:
    if name not in _loaded:
        module, cls = _REGISTRY[name]
        _loaded[name] = getattr(importlib.import_module(module), cls)
    return _loaded[name]


def available_backends():
    """Names of the registered backends that can run on this machine."""
    return tuple(name for name in _REGISTRY if _load(name).availability() is None)


def _describe(X):
    return f"{input_format(X)} input of dtype {X.dtype}"


def _small_dense(X, solver):
    """Whether "auto" reads ``X`` with the NumPy backend first (see SMALL_DENSE_ENTRIES)."""
    if input_format(X) != "dense" or np.dtype(X.dtype) != np.float64 or X.shape[0] * X.shape[1] > SMALL_DENSE_ENTRIES:
        return False
    faster = _AUTO_ORDER[:_AUTO_ORDER.index("numpy")]
    return not any(solver in _load(candidate).loops for candidate in faster)


def get_backend(name, X, loop=None, n_outputs=1, solver="auto") -> type[Backend]:
    """The backend class for ``name`` and input ``X``.

    ``loop``: a solver whose whole loop the backend must run (e.g. ``"dual_cd"``);
    ``n_outputs > 1``: the backend must fit several outputs (``multi_output``);
    ``solver``: the solver the fit will run (a backend's own ``gd``/``sgd`` loops keep it).
    An explicit name that is unavailable raises :class:`BackendUnavailableError`
    naming the fix; one that cannot read ``X`` raises ``ValueError``. ``"auto"`` picks
    the first suitable backend in ``_AUTO_ORDER`` (NumPy first for small float64 dense
    ``X``: SMALL_DENSE_ENTRIES).
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
    order = ("numpy", *_AUTO_ORDER) if _small_dense(X, solver) else _AUTO_ORDER
    if input_format(X) == "csr" and solver in NUMBA_FIRST_CSR_SOLVERS:
        order = ("numba", *order)
    for candidate in order:
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
