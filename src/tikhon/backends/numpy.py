"""The NumPy reference backend: BLAS and scipy.sparse products, the baseline of every benchmark.

Dense ``X`` (C or F order) and CSR (int32 or int64 indices), float32 or float64,
memory-mapped or not: the products run in X's dtype on X itself (no copy, no upcast);
the O(n) pointwise work runs in float64.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from . import _blas
from ._base import Backend, input_format


class NumpyBackend(Backend):
    """Reference kernels: ``X @ w`` and ``X.T @ r`` by numpy/scipy."""

    name = "numpy"
    formats = frozenset({"dense", "csr"})

    def __init__(self, X, y, sample_weight, loss, n_outputs=1):
        super().__init__(X, y, sample_weight, loss, n_outputs)
        self._dtype = X.dtype
        # float32 X: BLAS and scipy sum in float32 (~1e-7 relative), so the final
        # certificate is computed with float64 products (Backend.certified_products)
        self.exact = X.dtype == np.float64
        self._dense = input_format(X) == "dense"

    @cached_property
    def _XT(self):
        """``X.T``, made on first use: a view (CSC for CSR input), except that scipy
        copies int64 index arrays whose values fit int32 (subclasses with their own
        ``rmatvec`` never pay for it)."""
        return self.X.T

    multi_output = True

    def matvec(self, w):
        """``X w``, or ``X W^T`` (n x K) for a K x d ``W`` (dense X: by row blocks that
        OpenBLAS keeps on one thread, on the fit's threads: :func:`_blas.times_columns`)."""
        w = np.asarray(w, dtype=self._dtype)
        if w.ndim == 2:
            if self._dense:
                with _blas.threads_for(_blas.product_chunks(self.n_samples, *w.shape)) as granted:
                    return _blas.times_columns(self.X, w.T, granted)
            return np.asarray(self.X @ w.T, dtype=np.float64)
        return np.asarray(self.X @ w, dtype=np.float64).ravel()

    def rmatvec(self, r):
        """``X^T r``, or ``R^T X`` (K x d) for an n x K ``R`` (dense X: as :meth:`matvec`,
        :func:`_blas.columns_times`)."""
        r = np.asarray(r, dtype=self._dtype)
        if r.ndim == 2:
            if self._dense:
                with _blas.threads_for(_blas.product_chunks(*r.shape, self.n_features)) as granted:
                    return _blas.columns_times(r, self.X, granted)
            return np.asarray(self._XT @ r, dtype=np.float64).T
        return np.asarray(self._XT @ r, dtype=np.float64).ravel()
