"""Anchors that run in a child process: libraries whose import changes the process's
floating-point state.

snapml (1.17, built with ``-ffast-math``) sets flush-to-zero / denormals-are-zero for the
whole process that imports it: after ``import snapml``, ``np.finfo(np.float64).tiny / 4``
is 0.0, so every later tikhon fit, evaluation and test in that process would run with
subnormals flushed (neither fair nor correct). Such an anchor is never imported by the
bench's process. It runs in a fresh interpreter (``python -m tikhon.bench.isolated``)
that reads ``X`` once per data set from a temporary ``.npz`` file, builds its variants
there with the same adapter code, and answers one message per run: the solution, and the
seconds of the fit itself measured in the child (as the in-process anchors are timed).
Starting the child and reading ``X`` are its set-up, reported apart.

Checked here (import, then every variant on logistic/ridge, dense/CSR, with and without
intercept): scikit-learn, LIBLINEAR, scikit-learn-intelex, glum and skglm leave subnormals
alone in the main thread and in Numba's worker threads; only snapml flushes them.

The protocol: pickled tuples over the child's stdin and a duplicate of its stdout (the
child's own stdout goes to its log, so a library that prints cannot garble it). Replies
are ``("ok", value)``, ``("skip", why)`` or ``("error", type_name, message)``: values are
numbers, strings and NumPy arrays only (unpickling an exception of the library's would
import the library into the bench's process).
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import weakref

import numpy as np
import scipy.sparse as sp

__all__ = ["ChildError", "Child", "Workspace", "import_status", "subnormals_kept"]

_START_SECONDS = 300  # an import that hangs fails the status probe instead of the bench


def subnormals_kept():
    """Whether this thread computes subnormal numbers (``False`` under flush-to-zero /
    denormals-are-zero, the state a ``-ffast-math`` library may set)."""
    tiny = np.finfo(np.float64).tiny
    return bool(np.divide(np.float64(tiny), np.float64(4.0)) > 0.0
                and np.multiply(np.float64(tiny), np.float64(0.25)) > 0.0)


class ChildError(RuntimeError):
    """A run in an anchor's child process failed (the message names the library's error),
    or the child ended."""


_STATUS = {}


def import_status(module):
    """``None`` if ``module`` imports in a fresh interpreter, else why not (one line);
    probed once per bench process, without importing it here."""
    if module not in _STATUS:
        try:
            proc = subprocess.run([sys.executable, "-c", f"import {module}"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  timeout=_START_SECONDS)
            lines = proc.stderr.strip().splitlines()
            _STATUS[module] = None if proc.returncode == 0 else (lines[-1] if lines else f"exit code {proc.returncode}")
        except subprocess.TimeoutExpired:
            _STATUS[module] = f"import {module} did not finish in {_START_SECONDS} s"
    return _STATUS[module]


# ---------------------------------------------------------------- the bench's side
def _write_X(X, path):
    """``X`` as an uncompressed ``.npz`` (CSR parts, or the dense array in its own order)."""
    if sp.issparse(X):
        np.savez(path, data=X.data, indices=X.indices, indptr=X.indptr, shape=np.asarray(X.shape))
    else:
        np.savez(path, X=np.asarray(X))


def _read_X(path):
    with np.load(path, allow_pickle=False) as f:
        if "X" in f:
            return f["X"]
        return sp.csr_matrix((f["data"], f["indices"], f["indptr"]), shape=tuple(f["shape"]))


class Workspace:
    """One data set's ``X`` for child processes: written once to a temporary folder when
    the first child needs it, and one child per anchor family (:meth:`child`).
    :meth:`close` (or the end of a ``with`` block) stops the children and removes the folder."""

    def __init__(self, X):
        self.X = X
        self.folder = None
        self.children = {}
        self._finalizer = weakref.finalize(self, _cleanup, self.children, [None])

    def child(self, family):
        """The running child of anchor family ``family`` (started, and ``X`` written, on first use)."""
        if family not in self.children:
            if self.folder is None:
                self.folder = tempfile.mkdtemp(prefix="tikhon-bench-")
                self._finalizer.detach()
                self._finalizer = weakref.finalize(self, _cleanup, self.children, [self.folder])
                _write_X(self.X, os.path.join(self.folder, "X.npz"))
            self.children[family] = Child(family, os.path.join(self.folder, "X.npz"),
                                          os.path.join(self.folder, f"{family}.log"))
        return self.children[family]

    def close(self):
        self._finalizer()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _cleanup(children, folders):
    for child in list(children.values()):
        child.stop()
    children.clear()
    for folder in folders:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


class Child:
    """A fresh interpreter serving anchor family ``family`` on the ``X`` stored at ``data``;
    ``seconds``: its start, imports and the read of ``X``. :meth:`call` sends one message and
    returns the reply's value (raising what the child raised)."""

    def __init__(self, family, data, log):
        from .measure import clock

        self.family, self.log = family, log
        t0 = clock()
        with open(log, "wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "tikhon.bench.isolated", family, data],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        self._receive()
        self.seconds = clock() - t0

    def call(self, *message):
        try:
            pickle.dump(message, self.proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._ended() from None
        return self._receive()

    def _receive(self):
        from .anchors import _Skip

        try:
            reply = pickle.load(self.proc.stdout)
        except (EOFError, pickle.UnpicklingError, OSError):
            raise self._ended() from None
        if reply[0] == "skip":
            raise _Skip(reply[1])
        if reply[0] == "error":
            raise ChildError(f"{reply[1]}: {reply[2]} (in the {self.family} child process)")
        return reply[1]

    def _ended(self):
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        try:
            with open(self.log, errors="replace") as f:
                tail = " ".join(f.read().split()[-40:])
        except OSError:
            tail = ""
        return ChildError(f"the {self.family} child process ended (exit code {code})" + (f": {tail}" if tail else ""))

    def stop(self):
        """End the child: close its input (it exits), then terminate, then kill."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


# ---------------------------------------------------------------- the child's side
def _plain(value):
    """A run's result as numbers and float64 arrays only (nothing of the library's types)."""
    coef, intercept, n_iter = value
    intercept = np.asarray(intercept, dtype=np.float64)
    return (np.array(coef, dtype=np.float64), float(intercept) if intercept.ndim == 0 else intercept.copy(),
            int(n_iter))


def _serve(family, data, inbox, send):
    """The child's loop: ``build`` (a variant of ``family`` on a problem), ``run`` (one
    timed fit at a tolerance), ``drop``; ends at the end of its input."""
    import importlib
    import warnings

    from .anchors import _ADAPTERS, AnchorProblem, _Skip
    from .measure import clock

    adapter = _ADAPTERS[family]
    X = _read_X(data)
    importlib.import_module(adapter.module)
    send(("ok", None))
    runs = {}
    while True:
        try:
            message = pickle.load(inbox)
        except EOFError:
            return
        try:
            if message[0] == "build":
                _, key, fields, solver = message
                run, notes, setup = adapter.build(AnchorProblem(X=X, **fields), solver)
                runs[key] = run
                reply = ([str(n) for n in notes], float(setup))
            elif message[0] == "run":
                _, key, tol = message
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    t0 = clock()
                    value = runs[key](tol)
                    seconds = clock() - t0
                reply = (*_plain(value), seconds)
            elif message[0] == "drop":
                runs.pop(message[1], None)
                reply = None
            else:
                raise ValueError(f"unknown message {message[0]!r}")
            send(("ok", reply))
        except _Skip as why:
            send(("skip", str(why)))
        except Exception as exc:
            send(("error", type(exc).__name__, " ".join(str(exc).split())))


def _main(argv):
    family, data = argv
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # the library's own prints go to the log, not into the replies
    sys.stdout = sys.stderr

    def send(reply):
        pickle.dump(reply, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        _serve(family, data, sys.stdin.buffer, send)
    except Exception as exc:  # the start failed: say why, then end
        send(("error", type(exc).__name__, " ".join(str(exc).split())))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
