"""Thin wrapper over the compiled extension ``tikhon._cd``: dual coordinate descent on CSR.

Reads CSR ``X`` in place (float32 or float64 data, int32 or int64 indices, sorted or
not), as the validation gate :func:`tikhon._validation.check_X` hands it over: structure
checked (indices in range, ``indptr`` monotone) and arrays contiguous. Rows that repeat
a column index are handled (their values are summed, as scipy does).
The products ``X w`` and ``X^T r`` used for the certificate accumulate in float64
whatever X's dtype. The whole ``dual_cd`` loop runs in the extension with the GIL
released; the driver is :mod:`tikhon.solvers.dual_cd`.

Several outputs (``K > 1``: a multinomial model, a multi-target ridge): ``X W^T`` and
``R^T X`` are one compiled pass over X for all K columns (each stored entry read once,
meeting K contiguous coefficients of a ``(d, K)`` block), and the multinomial's gradient
and Hessian products are fused passes (margins, softmax and ``X^T R`` in one visit of
each row), so a gradient reads X once instead of ``2 K`` times. With one output, a
Hessian product is one pass too (a row's dot product and its scatter in one visit:
0.83-0.99x the time of the two passes on a9a, reuters and text-like CSR).
"""
from __future__ import annotations

import numpy as np

from .numpy import NumpyBackend

_FIX = ("the compiled extension tikhon._cd is missing; reinstall tikhon with "
        "`pip install .` (or `pip install -e .`), which needs a C compiler, Cython>=3 and numpy")


def _extension():
    from tikhon import _cd

    return _cd


class CythonBackend(NumpyBackend):
    """CSR kernels of ``tikhon._cd``; runs the ``dual_cd`` solver loop."""

    name = "cython"
    formats = frozenset({"csr"})
    loops = frozenset({"dual_cd"})
    multi_output = True  # several outputs: the compiled K-column products and fused multinomial passes

    @classmethod
    def availability(cls):
        try:
            _extension()
        except ImportError as exc:
            return f"{_FIX} ({exc})"
        return None

    def __init__(self, X, y, sample_weight, loss, n_outputs=1):
        from .._validation import readable_csr

        # X comes from the validation gate (tikhon._validation.check_X), which checked its
        # structure and made its arrays readable in place; readable_csr is then O(1). On X
        # that skipped the gate it converts strided arrays or mixed index types (a copy),
        # so that "auto" never picks this backend for a layout it then refuses.
        X = readable_csr(X)
        super().__init__(X, y, sample_weight, loss, n_outputs)
        self._cd = _extension()
        self._parts = (X.data, X.indices, X.indptr)
        # rows repeating a column index (for X that skipped the gate: it sums them);
        # canonical CSR (scipy's flag, read after the gate's structure check) has none,
        # so the O(nnz) count is skipped
        self.duplicate_rows = 0 if X.has_canonical_format else int(
            self._cd.check_csr(*self._parts, self.n_features))

    # ---- products in float64 (the certificate needs them exact for float32 data) ----
    def matvec(self, w):
        """``X w``, or ``X W^T`` (n x K) for a K x d ``W``: one pass for all K columns."""
        if np.ndim(w) == 2:
            out = np.empty((self.n_samples, w.shape[0]))
            self._cd.csr_matmat(*self._parts, self._columns(w), out)
            return out
        out = np.empty(self.n_samples)
        self._cd.csr_matvec(*self._parts, np.ascontiguousarray(w, dtype=np.float64), out)
        return out

    def rmatvec(self, r):
        """``X^T r``, or ``R^T X`` (K x d) for an n x K ``R``: one pass for all K columns."""
        if np.ndim(r) == 2:
            return self._rows(self._rmatmat(r))
        out = np.empty(self.n_features)
        self._cd.csr_rmatvec(*self._parts, np.ascontiguousarray(r, dtype=np.float64), out)
        return out

    @staticmethod
    def _columns(w):
        """``W^T`` as the ``(d, K)`` C-order float64 block the K-column kernels gather
        from (one copy of W a call: a row's entry then reads K contiguous doubles)."""
        return np.ascontiguousarray(np.asarray(w, dtype=np.float64).T)

    @staticmethod
    def _rows(block):
        """A ``(d, K)`` accumulator of the kernels as the ``(K, d)`` C-order result."""
        return np.ascontiguousarray(block.T)

    def _rmatmat(self, r, squares=False):
        """``X^T R`` (or ``(X * X)^T R``) as the ``(d, K)`` block the extension scatters into."""
        out = np.empty((self.n_features, r.shape[1]))
        self._cd.csr_rmatmat(*self._parts, np.ascontiguousarray(r, dtype=np.float64), out, squares=squares)
        return out

    def loss_grad_hessian(self, w, b):
        """As the base class, with each Hessian product one pass over X
        (``_cd.csr_hessian_product``: a row's dot product and its scatter in one visit;
        two passes in the base class); the multinomial's is fused too (below). The
        curvature weights are kept for a :meth:`hessian_diagonal` at the same point
        (Newton-CG's preconditioner), which then needs no pass for the margins."""
        if self.n_outputs > 1:
            return self._multinomial_hessian(w, b) if self._fused() else super().loss_grad_hessian(w, b)
        r = self.matvec(w)
        c = np.empty_like(r)
        value = self._pointwise(r, b, c)
        self._curvature_at = (np.array(w, dtype=np.float64), float(b), c)

        def product(v, vb=0.0):
            out = np.empty(self.n_features)
            total = self._cd.csr_hessian_product(*self._parts, c, np.ascontiguousarray(v, dtype=np.float64),
                                                 float(vb), out)
            return out, float(total)

        return value, self.rmatvec(r), self._row_sums(r), product

    def _curvature_weights(self, w, b):
        """The weights kept by :meth:`loss_grad_hessian` at the same ``(w, b)``, else the
        base class's pass."""
        kept = getattr(self, "_curvature_at", None)
        if kept is not None and np.ndim(b) == 0 and kept[1] == b and np.array_equal(kept[0], w):
            return kept[2].copy()
        return super()._curvature_weights(w, b)

    def hessian_diagonal(self, w, b):
        """As the base class, with the squares accumulated by the extension (no squared
        copy of X's blocks; K outputs in one pass); rows repeating a column index take
        the base class's way."""
        if self.duplicate_rows:
            return super().hessian_diagonal(w, b)
        d = self._curvature_weights(w, b)
        if d.ndim == 2:
            return self._rows(self._rmatmat(d, squares=True)), d.sum(axis=0)
        out = np.empty(self.n_features)
        self._cd.csr_rmatvec(*self._parts, d, out, squares=True)
        return out, float(d.sum())

    # ---- fused multinomial passes (K >= 3 classes) ----
    def _fused(self):
        return self.n_outputs > 1 and self.loss.name == "multinomial"

    def _multinomial_pass(self, w, b, proba=None):
        """``(value, X^T R as (K, d), sum_i r_i)``: one pass, ``proba`` filled if given."""
        grad, grad_b = np.empty((self.n_features, self.n_outputs)), np.empty(self.n_outputs)
        y, s = (np.ascontiguousarray(a, dtype=np.float64) for a in (self.y, self.s))  # no copy from the estimators
        value = self._cd.multinomial_loss_grad(*self._parts, self._columns(w), self._vector(b), y, s,
                                               grad, grad_b, proba)
        return float(value), self._rows(grad), grad_b

    def _vector(self, b):
        """``b`` as K contiguous float64 (a scalar, e.g. ``vb = 0``, broadcast)."""
        return np.ascontiguousarray(np.broadcast_to(np.asarray(b, dtype=np.float64), (self.n_outputs,)))

    def loss_grad(self, w, b):
        """As the base class; the multinomial's is one fused pass over X."""
        if not self._fused():
            return super().loss_grad(w, b)
        return self._multinomial_pass(w, b)

    def _multinomial_hessian(self, w, b):
        """The multinomial's gradient is one fused pass that keeps the probabilities
        (n x K), and each Hessian product one fused pass."""
        proba = np.empty((self.n_samples, self.n_outputs))
        value, grad, grad_b = self._multinomial_pass(w, b, proba)
        s = np.ascontiguousarray(self.s, dtype=np.float64)

        def product(v, vb=0.0):
            out, out_b = np.empty((self.n_features, self.n_outputs)), np.empty(self.n_outputs)
            self._cd.multinomial_hessian_product(*self._parts, self._columns(v), self._vector(vb), proba, s, out, out_b)
            return self._rows(out), out_b

        return value, grad, grad_b, product

    def gram_cost(self):
        """A compiled CSR Gram costs about a third of a pass per nonzero of a row (a9a:
        1.5 ms against 0.3 ms for a pass)."""
        return 0.33 * self.X.nnz / max(1, self.n_samples)

    def gram(self, c):
        """As the base class, with the CSR Gram ``X^T diag(c) X`` accumulated by the
        extension (``sum_i nnz_i (nnz_i + 1) / 2`` products, no temporary)."""
        d = self.n_features
        G = np.zeros((d + 1, d + 1))
        upper = np.zeros((d, d))
        self._cd.csr_gram_upper(*self._parts, np.ascontiguousarray(c, dtype=np.float64), upper)
        G[:d, :d] = upper + np.triu(upper, 1).T
        G[:d, d] = G[d, :d] = self.rmatvec(c)
        G[d, d] = float(np.sum(c))
        return G

    def row_norms_sq(self, chunk=8192):
        out = np.empty(self.n_samples)
        if self.duplicate_rows:
            self._cd.csr_row_norms_sq_merged(*self._parts, self.n_features, out)
        else:
            self._cd.csr_row_norms_sq(self._parts[0], self._parts[2], out)
        return out

    # ---- the dual CD loop ----
    def dual_state(self, dual, w, C, seed=0):
        """A ``DualState`` over the estimator's ``y`` and ``s`` with the caller's
        dual variables ``dual`` (n,) and ``w`` (d,), both float64, updated in place."""
        sqnorm = self.row_norms_sq() if self.duplicate_rows else None
        return self._cd.DualState(self.y, self.s, dual, w, float(C), int(seed), sqnorm,
                                  labels=self.loss.name == "logistic")

    def dual_epochs(self, state, n_epochs):
        """Run ``n_epochs`` passes of dual CD for this backend's loss; returns the largest
        dual gradient magnitude of the last pass."""
        run = self._cd.logistic_epochs if self.loss.name == "logistic" else self._cd.ridge_epochs
        return run(*self._parts, state, int(n_epochs))
