"""The NumPy reference backend: BLAS and scipy.sparse products, the baseline of every benchmark.

Dense ``X`` (C or F order) and CSR (int32 or int64 indices), float32 or float64,
memory-mapped or not: the products run in X's dtype on X itself (no copy, no upcast);
the O(n) pointwise work runs in float64.
"""
from __future__ import annotations

from functools import cached_property

import numpy as np

from ._base import Backend


class NumpyBackend(Backend):
    """Reference kernels: ``X @ w`` and ``X.T @ r`` by numpy/scipy."""

    name = "numpy"
    formats = frozenset({"dense", "csr"})

    def __init__(self, X, y, sample_weight, loss):
        super().__init__(X, y, sample_weight, loss)
        self._dtype = X.dtype
        # float32 X: BLAS and scipy sum in float32 (~1e-7 relative), so the final
        # certificate is computed with float64 products (Backend.certified_products)
        self.exact = X.dtype == np.float64

    @cached_property
    def _XT(self):
        """``X.T``, made on first use: a view (CSC for CSR input), except that scipy
        copies int64 index arrays whose values fit int32 (subclasses with their own
        ``rmatvec`` never pay for it)."""
        return self.X.T

    def matvec(self, w):
        return np.asarray(self.X @ np.asarray(w, dtype=self._dtype), dtype=np.float64).ravel()

    def rmatvec(self, r):
        return np.asarray(self._XT @ np.asarray(r, dtype=self._dtype), dtype=np.float64).ravel()
