# cython: language_level=3
"""Compiled kernels for CSR input (rows are the coordinates of the dual solver).

Fused over float32/float64 data and int32/int64 indices; the caller's arrays are
read in place, never cast or copied.
"""
cimport cython

ctypedef fused floating:
    float
    double

ctypedef fused integral:
    int
    long long


def csr_row_norms_sq(const floating[::1] data, const integral[::1] indptr, double[::1] out):
    """Write ``out[i] = sum_j X[i, j]**2`` for a CSR matrix given by ``data`` and ``indptr``.

    Accumulates in double whatever the data dtype. ``out`` must have ``len(indptr) - 1`` entries.
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t i, k
    cdef double acc
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} entries, expected {n}")
    with nogil:
        for i in range(n):
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                acc = acc + <double>data[k] * <double>data[k]
            out[i] = acc
