"""The benchmarks' synthetic text-like data set (one generator, shared by every report)."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def text_csr(n=200_000, d=100_000, nnz=7_500_000, seed=0):
    """A text-like CSR with about ``nnz`` nonzeros (the row lengths are Poisson draws of
    mean ``nnz / n``, and every drawn entry is kept: 7,499,335 for the defaults).

    Columns are drawn from Zipf-like frequencies and a column
    appears at most once per row (repeats are redrawn: a document's distinct words),
    values are tf-idf-like and rows have unit norm. Labels come from a sparse linear
    model with logistic noise. Returns ``(X, y)``: canonical CSR float64 with int32
    indices, and ``y`` in {-1, +1}.
    """
    rng = np.random.default_rng(seed)
    lengths = np.minimum(rng.poisson(nnz / n, n), d)
    p = 1.0 / np.arange(1, d + 1) ** 1.1
    p /= p.sum()
    keys = _distinct_columns(rng, lengths, p)
    indptr = np.concatenate(([0], np.cumsum(lengths))).astype(np.int32)
    cols = (keys % d).astype(np.int32)
    idf = np.log(n / (1.0 + np.bincount(cols, minlength=d)))
    data = (rng.exponential(1.0, keys.size) + 0.1) * idf[cols]
    norms = np.sqrt(np.bincount(keys // d, weights=data * data, minlength=n))
    data /= np.repeat(np.where(norms > 0, norms, 1.0), lengths)
    X = sp.csr_matrix((data, cols, indptr), shape=(n, d))
    w = rng.standard_normal(d) * (rng.random(d) < 0.05) * 20
    z = X @ w
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-(z - np.median(z)))), 1.0, -1.0)
    return X, y


def _distinct_columns(rng, lengths, p):
    """Sorted keys ``row * d + column``: ``lengths[i]`` distinct columns for row ``i``,
    the first distinct ones of a stream of draws from ``p`` (rows that run short of
    distinct draws are drawn again with a longer stream)."""
    n, d = lengths.size, p.size
    todo = np.arange(n, dtype=np.int64)
    found = []
    factor = 2
    while todo.size:
        rows = np.repeat(todo, lengths[todo] * factor + 8)
        keys, first = np.unique(rows * d + rng.choice(d, size=rows.size, p=p), return_index=True)
        keys = keys[np.argsort(first)]          # each row's distinct draws, in draw order
        row = keys // d
        rank = np.arange(keys.size) - np.searchsorted(row, row)
        short = np.bincount(row, minlength=n)[todo] < lengths[todo]
        keep = (rank < lengths[row]) & ~np.isin(row, todo[short])
        found.append(keys[keep])
        todo = todo[short]
        factor *= 2
    return np.sort(np.concatenate(found))
