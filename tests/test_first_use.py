"""First use of the numba backend: kernels compile once, say so on the ``tikhon``
logger, and a second process loads them from the cache.

Before: a first fit sat silent for the seconds its kernels took to compile. Now the
compilation of each kernel entry point (per input layout) is announced once, at INFO on
``logging.getLogger("tikhon")``, with the cache directory; a fit compiles only the one
entry point and layout it uses.

Each process runs in a subprocess with its own empty ``NUMBA_CACHE_DIR`` (never the
shared cache beside the package).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("numba")

_FIT = textwrap.dedent(r"""
    import json, logging
    import numpy as np
    import tikhon

    class Keep(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.records = []
        def emit(self, record):
            self.records.append((record.levelname, record.getMessage()))

    keep = Keep()
    logger = logging.getLogger("tikhon")
    logger.addHandler(keep)
    logger.setLevel(logging.DEBUG)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = np.where(X[:, 0] + rng.standard_normal(300) > 0, 1, -1)
    model = tikhon.LogisticRegression(backend="numba", solver="newton").fit(X, y)
    from tikhon.backends import _numba_kernels as k
    print(json.dumps({"records": keep.records, "score": model.score(X, y),
                      "compiled": {name: len(getattr(k, name).signatures)
                                   for name in sorted(k.ENTRY_POINTS)}}))
""")


def _run(cache_dir):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    env.pop("NUMBA_DISABLE_JIT", None)
    out = subprocess.run([sys.executable, "-c", _FIT], env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_first_fit_announces_the_compilation_once_and_a_second_process_loads_the_cache(tmp_path):
    cold = _run(tmp_path)
    infos = [message for level, message in cold["records"] if level == "INFO"]
    assert len(infos) == 1, cold["records"]
    assert "one_pass" in infos[0] and "dense float64 (C order)" in infos[0], infos[0]
    assert str(tmp_path) in infos[0] and "one-time" in infos[0], infos[0]
    assert any(level == "DEBUG" and "compiled one_pass" in message for level, message in cold["records"])
    # as few specializations as the fit needs: the one entry point, for the one layout
    assert cold["compiled"] == {"batch_loss_grad": 0, "gd_loop": 0, "loss_grad": 0, "one_pass": 1,
                                "sgd_loop": 0}, cold["compiled"]

    warm = _run(tmp_path)
    assert warm["records"] == [], warm["records"]  # loaded from the cache: nothing to say
    assert warm["compiled"]["one_pass"] == 1 and warm["score"] == cold["score"]
