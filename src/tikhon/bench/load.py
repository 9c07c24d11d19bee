"""Contention mode (``tikhon bench --load N``): N busy processes beside the timed runs.

Each busy process is a fresh interpreter running a tight floating-point loop in pure
Python (one core each, no BLAS, no threads, nothing imported). It is bounded three ways:
it exits by itself at its deadline (``seconds``), and when its parent (the bench) is
gone; and the bench stops it in the ``finally`` of :func:`busy_load` (terminate, then
kill). The figures of the load are recorded in the JSON (:meth:`BusyLoad.describe`).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

__all__ = ["BusyLoad", "DEFAULT_LOAD_SECONDS", "busy_load"]

DEFAULT_LOAD_SECONDS = 3600.0

# The loop checks the clock and its parent every ~1e5 multiply-adds (a few milliseconds).
_LOOP = """
import os, sys, time
deadline, parent = time.monotonic() + float(sys.argv[1]), int(sys.argv[2])
x = 1.0
while time.monotonic() < deadline and os.getppid() == parent:
    for _ in range(100000):
        x = x * 1.0000001 + 1e-9
        if x > 1e6:
            x = 1.0
"""


class BusyLoad:
    """``n`` busy processes; :meth:`start` / :meth:`stop` (idempotent)."""

    def __init__(self, n, seconds=DEFAULT_LOAD_SECONDS):
        if int(n) != n or n < 0:
            raise ValueError(f"--load must be a non-negative integer, got {n!r}")
        if not seconds > 0:
            raise ValueError(f"--load-seconds must be positive, got {seconds!r}")
        self.n, self.seconds = int(n), float(seconds)
        self.processes = []
        self.started = self.stopped = None

    def start(self):
        parent = os.getpid()
        for _ in range(self.n):
            self.processes.append(subprocess.Popen(
                [sys.executable, "-c", _LOOP, repr(self.seconds), str(parent)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        self.started = time.time()
        return self

    def alive(self):
        """Pids of the busy processes still running."""
        return [p.pid for p in self.processes if p.poll() is None]

    def stop(self):
        for p in self.processes:
            if p.poll() is None:
                p.terminate()
        for p in self.processes:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if self.stopped is None and self.processes:
            self.stopped = time.time()

    def describe(self):
        """What the JSON records: how many, what, the bound, and when they ran."""
        return {"processes": self.n, "what": "tight pure-Python floating-point loop, one core each",
                "bounded_seconds": self.seconds, "pids": [p.pid for p in self.processes],
                "started_unix": self.started, "stopped_unix": self.stopped,
                "exit_codes": [p.returncode for p in self.processes]}


@contextlib.contextmanager
def busy_load(n, seconds=DEFAULT_LOAD_SECONDS):
    """Run the block beside ``n`` busy processes (none for ``n == 0``); they are stopped
    when the block ends, however it ends."""
    load = BusyLoad(n, seconds)
    try:
        yield load.start()
    finally:
        load.stop()
