"""Numba's on-disk kernel cache never fails a fit: with no writable cache directory
(a read-only install) or with damaged cache files, the default dense fit compiles in
memory, warns once (``NumbaCacheWarning``) and gives the usual result.

Each case runs in a subprocess on a temporary copy of the package (its own
``__pycache__``), never on the cache beside the installed sources."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

import tikhon  # noqa: E402

_FIT = textwrap.dedent("""
    import json, sys, warnings
    import numpy as np
    import tikhon
    assert tikhon.__file__.startswith(sys.argv[1]), tikhon.__file__  # the copy, not the install
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(300) > 0, 1, -1)
    model = tikhon.LogisticRegression(backend="numba").fit(X, y)  # auto reads data this small with numpy
    print(json.dumps({"backend": model.backend_, "coef": model.coef_.ravel().tolist(),
                      "intercept": float(np.ravel(model.intercept_)[0])}))
""")


def _reference():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 5))
    y = np.where(X[:, 0] + 0.5 * rng.standard_normal(300) > 0, 1, -1)
    model = tikhon.LogisticRegression(backend="numba").fit(X, y)
    return model.coef_.ravel().tolist(), float(np.ravel(model.intercept_)[0])


def _copy_package(root, with_cache):
    """A copy of the tikhon package under ``root``; with its in-tree Numba cache files
    (copied, so that they may be damaged) or without any ``__pycache__``."""
    source = Path(tikhon.__file__).parent
    ignore = None if with_cache else shutil.ignore_patterns("__pycache__")
    shutil.copytree(source, root / "tikhon", ignore=ignore)
    return root / "tikhon"


def _fit(root, env):
    """Run the default dense fit with the copy at ``root``: (result, NumbaCacheWarning count)."""
    out = subprocess.run([sys.executable, "-W", "default", "-c", _FIT, str(root)], env=env,
                         cwd=root, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1]), out.stderr.count("NumbaCacheWarning")


def _env(root, **extra):
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME")}
    env["PYTHONPATH"] = str(root)
    env.pop("TIKHON_BACKEND", None)
    env.update(extra)
    return env


def _set_writable(path, writable):
    for p in [path, *path.rglob("*")]:
        if p.is_symlink():
            continue
        mode = p.stat().st_mode
        bits = stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~bits)


def test_read_only_install_without_writable_cache_dir_compiles_in_memory(tmp_path):
    """Before: ``RuntimeError: cannot cache function 'pointwise': no locator available``
    raised by the default dense fit."""
    root = tmp_path / "site"
    package = _copy_package(root, with_cache=False)
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    # No cache directory can be made: a file where each would go (this also holds for
    # root, whom permission bits do not stop), then the whole copy read-only.
    for folder in (package, package / "backends"):
        (folder / "__pycache__").write_text("")
    env = _env(root, HOME=str(blocked), XDG_CACHE_HOME=str(blocked / "cache"),
               NUMBA_CACHE_DIR=str(blocked / "numba"))
    _set_writable(root, False)
    try:
        result, warnings_seen = _fit(root, env)
    finally:
        _set_writable(root, True)
    coef, intercept = _reference()
    assert result["backend"] == "numba"
    assert warnings_seen == 1
    assert result["coef"] == coef and result["intercept"] == intercept


def _damage(paths, how):
    assert paths, "no cache file to damage"
    for path in paths:
        data = path.read_bytes()
        if how == "garbage":
            path.write_bytes(bytes(range(256)) * 4)
        else:
            path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("suffix, how", [("nbi", "garbage"), ("nbc", "truncated")])
def test_damaged_cache_file_is_replaced_with_one_warning(tmp_path, suffix, how):
    """Before: ``UnpicklingError`` raised by the default dense fit (an empty index gave
    ``EOFError``). Now: one warning, the same result, and the next process loads a good
    file again (no warning)."""
    root = tmp_path / "site"
    package = _copy_package(root, with_cache=True)
    env = _env(root)
    first, _ = _fit(root, env)  # the copy's cache now holds this fit's kernels
    cache = package / "backends" / "__pycache__"
    _damage(sorted(cache.glob(f"_numba_kernels.one_pass-*.{suffix}")), how)
    damaged, warnings_seen = _fit(root, env)
    assert warnings_seen == 1
    assert damaged == first
    again, warnings_seen = _fit(root, env)
    assert warnings_seen == 0
    assert again == first
