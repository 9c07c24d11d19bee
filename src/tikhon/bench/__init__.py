"""The benchmark behind ``tikhon bench``: backends against the NumPy baseline and against
scikit-learn / LIBLINEAR, on the same objective.

Modules: :mod:`.problems` (data specifications and files), :mod:`.runner` (the plan and
the timed runs), :mod:`.anchors` (scikit-learn, LIBLINEAR, ...; :mod:`.isolated` runs
those that change the process's floating-point state in a child process), :mod:`.kernels`
(loss+gradient pass against the one-read floor), :mod:`.measure` (memory, suboptimality,
the common objective evaluator), :mod:`.report` (progress, tables, JSON) and
:mod:`.plots` (PNGs).
"""
from .problems import BenchArgumentError
from .runner import BenchConfig, run, validate

__all__ = ["BenchArgumentError", "BenchConfig", "run", "validate"]
