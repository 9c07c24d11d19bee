"""Backend and thread selection.

Precedence for the backend: the estimator's ``backend=`` argument, then the innermost
:func:`config_context` / :func:`set_config`, then the ``TIKHON_BACKEND`` environment
variable, then ``"auto"``. Settings are thread-local (as in scikit-learn).

Threads are a budget, not a global: :func:`thread_budget` is the number of threads a
fit may use now, and the kernels take it per call (no fit changes process-wide state).
It is, from the first that applies:

1. ``config_context(n_threads=...)`` / ``set_config(n_threads=...)`` in this thread
   (``LogisticRegressionCV(n_jobs=k)`` and ``RidgeCV(n_jobs=k)`` give each fold thread
   its share this way);
2. else the cores left: the CPUs this process may run on (``os.sched_getaffinity``),
   at most ``OMP_NUM_THREADS`` when it is set (the OpenMP convention scikit-learn's own
   OpenMP code follows; joblib sets it, with ``NUMBA_NUM_THREADS``, in its loky
   workers to ``inner_max_num_threads`` or ``cpu_count // n_jobs``, and dask's nanny
   to 1 in worker processes), shared among the fits running in this process at once
   (user threads, joblib's threading backend, in-process dask workers:
   :func:`sharing_cores`) and, in a dask worker thread, among that worker's threads.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from contextlib import contextmanager

__all__ = ["config_context", "get_config", "set_config", "resolve_backend", "resolve_threads",
           "thread_budget", "sharing_cores", "available_cores", "cores_free", "thread_pool"]

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
    """The thread count set with :func:`config_context` / :func:`set_config` in this
    thread (``None``: not set; :func:`thread_budget` then decides)."""
    return _settings()["n_threads"]


# ---- the thread budget --------------------------------------------------------------
_active_lock = threading.Lock()
_active_fits = 0  # fits inside sharing_cores() in this process, all threads


@contextmanager
def sharing_cores():
    """Held around a whole solve: while ``k`` solves hold it, each one's
    :func:`thread_budget` (when no explicit count is set) is ``cores // k``."""
    global _active_fits
    with _active_lock:
        _active_fits += 1
    try:
        yield
    finally:
        with _active_lock:
            _active_fits -= 1


def _positive_int(text):
    """The leading integer of an environment value such as ``"4"`` or ``"4,2"``, or None."""
    try:
        value = int(str(text).split(",")[0].strip())
    except ValueError:
        return None
    return value if value >= 1 else None


_cores_seen = (None, 0)  # (monotonic time, available_cores()): read again after LOAD_WINDOW


def available_cores() -> int:
    """CPUs this process may run on, at most ``OMP_NUM_THREADS`` when it is set (read
    at most every LOAD_WINDOW seconds: each pass asks)."""
    global _cores_seen
    now = time.monotonic()
    seen, cores = _cores_seen
    if seen is not None and now - seen < LOAD_WINDOW:
        return cores
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    limit = _positive_int(os.environ.get("OMP_NUM_THREADS", ""))
    cores = max(1, min(cores, limit) if limit else cores)
    _cores_seen = (now, cores)
    return cores


# ---- the cores actually free ----------------------------------------------------------
# Other processes' work, sampled from /proc/stat (Linux) at most every LOAD_WINDOW
# seconds by the passes that want more than one thread: the busy time of this process's
# CPUs minus this process's own CPU time, over the last window. A parallel region whose
# threads must wait for a core runs at the pace of its slowest thread (measured, 2 cores,
# 2 busy processes beside: a 2000 x 128 Newton-Cholesky fit took 660 ms with two Numba
# threads a pass, passive waits; see tikhon.backends.numba for the figures).
LOAD_WINDOW = 0.1
_load_lock = threading.Lock()
_load = {"time": None, "busy": 0.0, "own": 0.0, "others": 0.0}


def _busy_seconds(cpus):
    """Seconds the CPUs ``cpus`` have been busy since boot (all processes), or None."""
    try:
        with open("/proc/stat", "rb") as stat:
            lines = stat.read().splitlines()
        ticks = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, AttributeError):
        return None
    busy = 0
    for line in lines[1:]:
        if not line.startswith(b"cpu"):
            break
        name, *fields = line.split()
        if int(name[3:]) in cpus:
            user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
            busy += user + nice + system + irq + softirq + steal
    return busy / ticks


def _others_load():
    """Cores used by other processes over the last window (0.0 when unknown)."""
    now = time.monotonic()
    if _load["time"] is not None and now - _load["time"] < LOAD_WINDOW:
        return _load["others"]
    if not _load_lock.acquire(blocking=False):  # another thread is sampling
        return _load["others"]
    try:
        try:
            cpus = os.sched_getaffinity(0)
        except (AttributeError, OSError):
            return 0.0
        busy, own = _busy_seconds(cpus), time.process_time()
        if busy is None:
            return 0.0
        if _load["time"] is not None:
            elapsed = now - _load["time"]
            _load["others"] = max(0.0, (busy - _load["busy"]) - (own - _load["own"])) / elapsed
        _load.update(time=now, busy=busy, own=own)
        return _load["others"]
    finally:
        _load_lock.release()


def cores_free() -> int:
    """:func:`available_cores` less those other processes kept busy over the last
    window (at least 1): the cores this process's threads can run on without waiting."""
    cores = available_cores()
    return max(1, min(cores, int(cores - _others_load() + 0.5)))


def _dask_worker_threads():
    """The thread count of the dask worker running this thread, or None."""
    if "distributed" not in sys.modules:
        return None
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except Exception:  # not in a worker thread (ValueError), or an unknown version
        return None


def thread_budget() -> int:
    """The number of threads a fit started now may use (see the module docstring)."""
    explicit = _settings()["n_threads"]
    if explicit is not None:
        return explicit
    cores = available_cores()
    siblings = max(1, _active_fits, _dask_worker_threads() or 1)
    return max(1, cores // siblings)


# The persistent helper threads of tikhon's chunked passes, one pool per name prefix.
_pools = {}
_pools_lock = threading.Lock()


def _forget_pools():
    """In a child made by fork the pools' threads do not exist (and a lock held at the fork
    stays held): start afresh there, else the first threaded call would wait forever."""
    global _pools_lock
    _pools.clear()
    _pools_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)


def thread_pool(prefix):
    """This process's pool of ``cpu_count - 1`` threads named ``prefix`` (idle ones sleep),
    made on first use: the threads that run a pass's chunks beside the calling thread."""
    with _pools_lock:
        pool = _pools.get(prefix)
        if pool is None:
            from concurrent.futures import ThreadPoolExecutor

            pool = _pools[prefix] = ThreadPoolExecutor(max(1, (os.cpu_count() or 1) - 1), thread_name_prefix=prefix)
        return pool
