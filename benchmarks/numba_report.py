"""Speed ratios of the Numba backend, each measured against its reference in the same run.

    python benchmarks/numba_report.py [p1] [gd] [p2] [cold] [interleaved] [--quick]

P1   fused dense loss+grad (1e6 x 100 float64) / one BLAS ``X @ w`` on the same X (C order,
     and the same for an F-order copy);
     fused CSR loss+grad (200k x 100k, 7.5M nnz) / one scipy CSR ``X @ w``;
     float32 / float64 loss+grad time; numpy-backend / numba-backend loss+grad time.
GD   the seeds' GD loop: NumPy epoch time / Numba epoch time (200k x 100 dense).
P2   dense L2 logistic fit to 1e-8 relative suboptimality: tikhon (numba backend,
     newton) / best of sklearn lbfgs and newton-cholesky, on a subset of the grid.
COLD first fit in a fresh process with a warm cache minus the steady-state fit time.

Timings are the median (or minimum, said so) of repeated runs; on a shared machine
only the ratios mean something. Speed is never asserted in a unit test.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np

from synthetic import text_csr


def _best(fn, repeat=7):
    """Minimum wall time of ``repeat`` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), float(np.median(times))


def _logistic_data(n, d, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d), dtype=np.float64)
    X /= np.sqrt(d)
    w = rng.standard_normal(d)
    p = 1.0 / (1.0 + np.exp(-(X @ w)))
    y = np.where(rng.random(n) < p, 1.0, -1.0)
    return X.astype(dtype, copy=False), y


def p1(quick=False):
    from tikhon.backends.numba import NumbaBackend
    from tikhon.backends.numpy import NumpyBackend
    from tikhon.objective import LogisticLoss

    n = 200_000 if quick else 1_000_000
    X, y = _logistic_data(n, 100)
    s = np.ones(n)
    w = np.random.default_rng(1).standard_normal(100) * 0.1
    nb = NumbaBackend(X, y, s, LogisticLoss)
    npb = NumpyBackend(X, y, s, LogisticLoss)
    t_gemv, _ = _best(lambda: X @ w)
    t_fused, _ = _best(lambda: nb.loss_grad(w, 0.1))
    t_numpy, _ = _best(lambda: npb.loss_grad(w, 0.1))
    X32 = X.astype(np.float32)
    nb32 = NumbaBackend(X32, y, s, LogisticLoss)
    t_f32, _ = _best(lambda: nb32.loss_grad(w, 0.1))
    print(f"P1 dense {n}x100 float64 (min of 7): X@w {t_gemv*1e3:.1f} ms, numba loss+grad {t_fused*1e3:.1f} ms, "
          f"numpy loss+grad {t_numpy*1e3:.1f} ms, numba float32 loss+grad {t_f32*1e3:.1f} ms")
    print(f"  fused/gemv = {t_fused / t_gemv:.2f}  (goal <= 1.15)")
    print(f"  float32/float64 = {t_f32 / t_fused:.2f}  (goal <= 0.6)")
    print(f"  numpy/numba loss+grad = {t_numpy / t_fused:.2f}x  (goal >= 2.5)")
    del X32, nb32
    XF = np.asfortranarray(X)
    nbF = NumbaBackend(XF, y, s, LogisticLoss)
    t_F, _ = _best(lambda: nbF.loss_grad(w, 0.1))
    t_gemvF, _ = _best(lambda: XF @ w)
    print(f"  F order: numba loss+grad {t_F*1e3:.1f} ms, X@w {t_gemvF*1e3:.1f} ms -> F/C loss+grad = "
          f"{t_F / t_fused:.2f}, fused/gemv = {t_F / t_gemvF:.2f}")
    del XF, nbF

    Xs, ys = text_csr(n=40_000, d=20_000, nnz=1_500_000) if quick else text_csr()
    ss = np.ones(Xs.shape[0])
    ws = np.random.default_rng(2).standard_normal(Xs.shape[1]) * 0.1
    nbs = NumbaBackend(Xs, ys, ss, LogisticLoss)
    nps = NumpyBackend(Xs, ys, ss, LogisticLoss)
    t_spmv, _ = _best(lambda: Xs @ ws)
    t_sfused, _ = _best(lambda: nbs.loss_grad(ws, 0.1))
    t_snumpy, _ = _best(lambda: nps.loss_grad(ws, 0.1))
    Xs32 = Xs.astype(np.float32)
    nbs32 = NumbaBackend(Xs32, ys, ss, LogisticLoss)
    t_s32, _ = _best(lambda: nbs32.loss_grad(ws, 0.1))
    print(f"P1 CSR {Xs.shape[0]}x{Xs.shape[1]} nnz {Xs.nnz}: X@w {t_spmv*1e3:.1f} ms, numba loss+grad "
          f"{t_sfused*1e3:.1f} ms, numpy loss+grad {t_snumpy*1e3:.1f} ms, numba float32 {t_s32*1e3:.1f} ms")
    print(f"  fused/spmv = {t_sfused / t_spmv:.2f}  (goal <= 1.15)")
    print(f"  float32/float64 = {t_s32 / t_sfused:.2f}  (goal <= 0.6)")
    print(f"  numpy/numba loss+grad = {t_snumpy / t_sfused:.2f}x  (goal >= 2.5)")


def gd(quick=False):
    """Marginal epoch time: (fit with 2k epochs - fit with k epochs) / k, per backend, so that
    input validation, set-up and the final certificate cancel out."""
    import tikhon
    from sklearn.exceptions import ConvergenceWarning

    n = 50_000 if quick else 200_000
    X, y = _logistic_data(n, 100)
    k = 20
    times = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for backend in ("numba", "numpy"):
            def fit(epochs):
                model = tikhon.LogisticRegression(C=1.0, solver="gd", backend=backend, max_iter=epochs,
                                                  learning_rate=1.0, tol=1e-12)
                t = time.perf_counter()
                model.fit(X, y)
                return time.perf_counter() - t

            fit(2)  # compile / warm up
            short = min(fit(k) for _ in range(3))
            long = min(fit(2 * k) for _ in range(3))
            times[backend] = (long - short) / k
    print(f"GD {n}x100 float64, lr=1, marginal epoch time ((fit {2 * k} - fit {k} epochs) / {k}, min of 3): "
          f"numpy {times['numpy']*1e3:.1f} ms/epoch, numba {times['numba']*1e3:.1f} ms/epoch -> "
          f"numpy/numba = {times['numpy']/times['numba']:.2f}x")


def interleaved(quick=False):
    """Interleaved medians (robust to a busy machine): CSR loss+grad numba with 1 and 2
    threads vs numpy vs one SpMV; GD fits of 30 epochs numba vs numpy."""
    import tikhon
    from sklearn.exceptions import ConvergenceWarning
    from tikhon.backends.numba import NumbaBackend
    from tikhon.backends.numpy import NumpyBackend
    from tikhon.objective import LogisticLoss

    Xs, ys = text_csr()
    ss = np.ones(Xs.shape[0])
    ws = np.random.default_rng(2).standard_normal(Xs.shape[1]) * 0.1
    nbs, nps = NumbaBackend(Xs, ys, ss, LogisticLoss), NumpyBackend(Xs, ys, ss, LogisticLoss)

    def numba_threads(k):
        def run():
            with tikhon.config_context(n_threads=k):
                nbs.loss_grad(ws, 0.1)
        return run

    cases = {"spmv": lambda: Xs @ ws, "numba-1thread": numba_threads(1), "numba-2threads": numba_threads(2),
             "numpy": lambda: nps.loss_grad(ws, 0.1)}
    times = {k: [] for k in cases}
    for fn in cases.values():
        fn()
    for _ in range(15):
        for k, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    print("CSR loss+grad, interleaved medians of 15: " + ", ".join(f"{k} {v*1e3:.1f} ms" for k, v in med.items()))
    print(f"  numba(1 thread)/spmv = {med['numba-1thread']/med['spmv']:.2f}, numba(2)/spmv = "
          f"{med['numba-2threads']/med['spmv']:.2f}, numpy/numba(best) = "
          f"{med['numpy']/min(med['numba-1thread'], med['numba-2threads']):.2f}x")

    X, y = _logistic_data(200_000, 100)
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for backend in ("numba", "numpy"):
            fits[backend] = tikhon.LogisticRegression(solver="gd", backend=backend, max_iter=30,
                                                      learning_rate=1.0, tol=1e-12)
            fits[backend].fit(X[:1000], y[:1000])
        gd_times = {k: [] for k in fits}
        for _ in range(3):
            for k, model in fits.items():
                t = time.perf_counter()
                model.fit(X, y)
                gd_times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in gd_times.items()}
    print(f"GD 200000x100, 30 epochs, whole fit, interleaved medians of 3: numpy {med['numpy']:.2f}s, numba "
          f"{med['numba']:.2f}s -> numpy/numba = {med['numpy']/med['numba']:.2f}x")


def _reference_optimum(X, y, C):
    """P* to ~1e-12 relative: tikhon newton at a very tight tolerance."""
    import tikhon

    model = tikhon.LogisticRegression(C=C, backend="numba", tol=1e-12, max_iter=200).fit(X, y)
    return model.objective_


def _primal(X, y, C, coef, intercept):
    z = X @ coef + intercept
    t = y * z
    return float(np.sum(np.log1p(np.exp(-np.abs(t))) + np.maximum(-t, 0.0))) + 0.5 / C * float(coef @ coef)


def _time_to(fit, X, y, C, p_star, target=1e-8, tols=(1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10)):
    """Seconds of the loosest ``tol`` whose solution is within ``target`` relative suboptimality."""
    for tol in tols:
        t = time.perf_counter()
        coef, intercept = fit(tol)
        elapsed = time.perf_counter() - t
        if (_primal(X, y, C, coef, intercept) - p_star) / p_star <= target:
            return elapsed, tol
    return np.inf, None


def p2(quick=False, grid=None):
    import tikhon
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression as SkLR

    warnings.simplefilter("ignore", ConvergenceWarning)
    grid = grid or ([(1.0, 200_000, 100)] if quick else
                    [(0.01, 200_000, 100), (1.0, 200_000, 100), (100.0, 200_000, 100),
                     (1.0, 1_000_000, 100), (1.0, 200_000, 1000)])
    for C, n, d in grid:
        X, y = _logistic_data(n, d)
        ysk = (y > 0).astype(int)
        tikhon.LogisticRegression(C=C, backend="numba").fit(X[:2000], y[:2000])  # warm up
        p_star = _reference_optimum(X, y, C)

        def fit_tikhon(tol):
            m = tikhon.LogisticRegression(C=C, backend="numba", tol=tol, max_iter=200).fit(X, y)
            return m.coef_.ravel(), m.intercept_[0]

        def fit_sk(solver):
            def fit(tol):
                m = SkLR(C=C, solver=solver, tol=tol, max_iter=2000).fit(X, ysk)
                return m.coef_.ravel(), m.intercept_[0]
            return fit

        t_tk, tol_tk = _time_to(fit_tikhon, X, y, C, p_star)
        t_lb, tol_lb = _time_to(fit_sk("lbfgs"), X, y, C, p_star)
        t_nc, tol_nc = _time_to(fit_sk("newton-cholesky"), X, y, C, p_star)
        best = min(t_lb, t_nc)
        print(f"P2 C={C:g} n={n} d={d}: tikhon numba newton {t_tk:.2f}s (tol {tol_tk}), sklearn lbfgs {t_lb:.2f}s "
              f"(tol {tol_lb}), newton-cholesky {t_nc:.2f}s (tol {tol_nc}) -> tikhon/best = {t_tk / best:.2f}  "
              f"(goal <= 0.5)")


_COLD = textwrap.dedent("""
    import time, warnings
    import numpy as np
    import tikhon
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 50)); y = np.where(X[:, 0] + rng.standard_normal(20000) > 0, 1.0, -1.0)
    t = time.perf_counter(); tikhon.LogisticRegression(backend="numba").fit(X, y); first = time.perf_counter() - t
    steady = min((lambda t0: (tikhon.LogisticRegression(backend="numba").fit(X, y), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(5))
    print(first, steady)
""")


def cold():
    subprocess.run([sys.executable, "-c", _COLD], check=True, capture_output=True)  # warm the cache
    firsts, steadies = [], []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", _COLD], check=True, capture_output=True, text=True)
        first, steady = map(float, out.stdout.split())
        firsts.append(first)
        steadies.append(steady)
    extra = [f - s for f, s in zip(firsts, steadies)]
    print(f"COLD (fresh process, warm cache, dense 20000x50 newton fit; 3 processes): first fit "
          f"{np.median(firsts):.3f}s, steady fit {np.median(steadies):.3f}s -> start-up cost "
          f"{np.median(extra):.3f}s (median; goal <= 1 s)")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    quick = "--quick" in sys.argv
    parts = args or ["p1", "gd", "p2", "cold"]
    print(f"numba report: {os.cpu_count()} cpus, NUMBA_NUM_THREADS={os.environ.get('NUMBA_NUM_THREADS', 'default')}")
    for part in parts:
        {"p1": p1, "gd": gd, "p2": p2, "cold": cold, "interleaved": interleaved}[part](**({} if part == "cold" else {"quick": quick}))
        sys.stdout.flush()
