"""L1 vs L2 logistic regression on a9a: how the two penalties shrink the weights.

L2 (tikhon, a warm-started path) shrinks every weight smoothly towards zero and keeps
them all; L1 (scikit-learn's liblinear, ``l1_ratio=1``) sets weights exactly to zero,
more of them the stronger the penalty. The figure shows both coefficient paths, the
number of non-zero weights and the held-out accuracy against ``C``.

    python docs/examples/l1_vs_l2.py                    # full a9a, 10 values of C -> l1_vs_l2.png
    python docs/examples/l1_vs_l2.py --quick --out x.png  # 5000 rows, 3 values (seconds)

Notes: liblinear penalizes its intercept (a constant column of weight 1); tikhon's
intercept is free. Liblinear's L1 solver is slow for large C, so the grid stops at 1.
Needs matplotlib (``pip install "tikhon[plot]"``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

import tikhon


def run(out="l1_vs_l2.png", n_Cs=10, n_samples=None, seed=0):
    """Fit both paths, draw the figure to ``out``; returns ``(figure, summary dict)``."""
    from matplotlib.figure import Figure

    X, y = tikhon.datasets.load_a9a()
    # liblinear reads 32-bit CSR indices only
    X = sp.csr_matrix((X.data, X.indices.astype(np.int32), X.indptr.astype(np.int32)), shape=X.shape)
    if n_samples is not None:
        rows = np.random.default_rng(seed).choice(X.shape[0], n_samples, replace=False)
        X, y = X[rows], y[rows]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, stratify=y, random_state=seed)
    Cs = np.logspace(-3, 0, n_Cs)

    t0 = time.perf_counter()
    l2 = tikhon.regularization_path(X_train, y_train, Cs=Cs)
    l2_seconds = time.perf_counter() - t0
    l2_coefs = l2.coefs
    l2_acc = (l2.classes[(l2.decision_function(X_test) > 0).astype(int)] == y_test[:, None]).mean(axis=0)

    t0 = time.perf_counter()
    l1_coefs, l1_acc = [], []
    for C in Cs:
        model = LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", tol=1e-3).fit(X_train, y_train)
        l1_coefs.append(model.coef_[0])
        l1_acc.append(model.score(X_test, y_test))
    l1_seconds = time.perf_counter() - t0
    l1_coefs, l1_acc = np.array(l1_coefs), np.array(l1_acc)

    fig = Figure(figsize=(13, 4), layout="constrained")
    ax_l2, ax_l1, ax_sum = fig.subplots(1, 3)
    for ax, coefs, title in ((ax_l2, l2_coefs, "L2 (tikhon): every weight shrinks, none vanishes"),
                             (ax_l1, l1_coefs, "L1 (liblinear): weights vanish one by one")):
        ax.plot(Cs, coefs, lw=0.8)
        ax.set_xscale("log")
        ax.set_xlabel("C  (weaker penalty →)")
        ax.set_ylabel("coefficient")
        ax.set_title(title, fontsize=10)
    ax_sum.plot(Cs, (np.abs(l2_coefs) > 0).sum(axis=1), "o-", label="L2 non-zero weights")
    ax_sum.plot(Cs, (np.abs(l1_coefs) > 0).sum(axis=1), "s-", label="L1 non-zero weights")
    ax_sum.set_xscale("log")
    ax_sum.set_xlabel("C")
    ax_sum.set_ylabel("non-zero weights")
    acc = ax_sum.twinx()
    acc.plot(Cs, l2_acc, "o--", color="tab:green", label="L2 test accuracy")
    acc.plot(Cs, l1_acc, "s--", color="tab:red", label="L1 test accuracy")
    acc.set_ylabel("test accuracy")
    handles = ax_sum.get_legend_handles_labels()[0] + acc.get_legend_handles_labels()[0]
    ax_sum.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="lower right")
    ax_sum.set_title(f"a9a, {X_train.shape[0]} training rows", fontsize=10)
    fig.savefig(out, dpi=100)
    summary = {"Cs": Cs, "l2_nonzero": (np.abs(l2_coefs) > 0).sum(axis=1),
               "l1_nonzero": (np.abs(l1_coefs) > 0).sum(axis=1), "l2_accuracy": l2_acc, "l1_accuracy": l1_acc,
               "l2_seconds": l2_seconds, "l1_seconds": l1_seconds}
    return fig, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="l1_vs_l2.png")
    parser.add_argument("--quick", action="store_true", help="5000 rows and 3 values of C")
    args = parser.parse_args(argv)
    _, summary = run(args.out, n_Cs=3 if args.quick else 10, n_samples=5000 if args.quick else None)
    for k, C in enumerate(summary["Cs"]):
        print(f"C={C:8.4f}  non-zero L2 {summary['l2_nonzero'][k]:3d}  L1 {summary['l1_nonzero'][k]:3d}   "
              f"test accuracy L2 {summary['l2_accuracy'][k]:.4f}  L1 {summary['l1_accuracy'][k]:.4f}")
    print(f"L2 path (tikhon) {summary['l2_seconds']:.2f} s, L1 fits (liblinear) {summary['l1_seconds']:.2f} s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
