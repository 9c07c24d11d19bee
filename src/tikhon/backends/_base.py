"""What every backend offers, and the generic data-term kernels built on two products.

A backend is built for one data set ``(X, y, s)`` and one pointwise loss. It computes
the *data term* ``sum_i s_i loss(y_i, x_i w + b)`` and its derivatives; the penalty,
certificates and dual live in :mod:`tikhon.objective`. A subclass must provide
``matvec`` (``X w``) and ``rmatvec`` (``X^T r``); it may override ``loss_grad`` and
``hessian`` with fused kernels, and declare whole solver loops it owns in ``loops``.
"""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp

from ..objective import row_blocks, row_totals

__all__ = ["Backend", "input_format"]


def input_format(X) -> str:
    """``"csr"``, ``"dense"`` or ``"dask"``: the layout families backends declare support for."""
    if sp.issparse(X):
        return "csr" if X.format == "csr" else X.format
    if type(X).__module__.startswith("dask"):
        return "dask"
    return "dense"


class Backend:
    """Base class: the data-term kernels expressed with ``matvec`` and ``rmatvec``.

    Class attributes a backend declares (the registry checks them):

    * ``name``: registry name;
    * ``formats``: input layouts it reads, among ``"dense"``, ``"csr"``, ``"dask"``;
    * ``dtypes``: dtypes of ``X`` it computes in (no conversion);
    * ``loops``: solver names whose whole loop the backend runs itself (e.g. ``"dual_cd"``);
    * ``multi_output``: whether it fits several outputs (``n_outputs > 1``: a multinomial
      model, a multi-target ridge); then ``w`` is a ``K x d`` matrix ``W``, ``b`` has
      ``K`` entries, margins are ``n x K``, and ``matvec``/``rmatvec`` take and give
      matrices (``X W^T``, ``R^T X``).
    """

    name = "base"
    formats = frozenset()
    dtypes = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
    loops = frozenset()
    multi_output = False

    @classmethod
    def availability(cls):
        """``None`` if usable here, else a message naming the fix."""
        return None

    @classmethod
    def supports(cls, X) -> bool:
        return input_format(X) in cls.formats and np.dtype(X.dtype) in cls.dtypes

    def __init__(self, X, y, sample_weight, loss, n_outputs=1):
        if n_outputs > 1 and not self.multi_output:
            raise ValueError(f"backend {self.name!r} fits one output; {n_outputs} outputs need another "
                             "backend (numpy fits any number)")
        self.X = X
        self.y = y
        self.s = sample_weight
        self.loss = loss
        self.n_outputs = int(n_outputs)
        self.n_samples, self.n_features = X.shape
        self.weight_sum = float(sample_weight.sum())

    @staticmethod
    def _row_sums(r):
        """``sum_i r_i``: a float for one output, a vector of ``K`` for several."""
        return float(r.sum()) if r.ndim == 1 else r.sum(axis=0)

    def solving(self):
        """Context manager held around a whole solve (default: nothing to set up)."""
        return nullcontext()

    # ---- the two products a subclass provides ----
    def matvec(self, w):
        """``X @ w`` as float64 (computed in X's dtype)."""
        raise NotImplementedError

    def rmatvec(self, r):
        """``X.T @ r`` as float64 (computed in X's dtype)."""
        raise NotImplementedError

    # ---- data-term kernels ----
    def decision(self, w, b):
        """Margins ``X w + b`` (float64)."""
        return self.matvec(w) + b

    def _pointwise(self, z, b, curvature=None):
        """``sum s loss`` at margins ``z + b``; overwrites ``z`` with ``s loss'`` and, if
        given, ``curvature`` with what defines the Hessian: ``s loss''`` (a diagonal, for
        every loss but the multinomial, whose rows need the probabilities ``p``; see
        :meth:`_hessian_product`). By row blocks (cache-sized temporaries): beyond the
        margins no n-vector is made."""
        y, s, loss = self.y, self.s, self.loss
        multinomial = loss.name == "multinomial"
        value = 0.0
        for k in row_blocks(len(z)):
            zk = z[k] + b
            value += float(np.dot(s[k], row_totals(loss.value(y[k], zk))))
            first, second = loss.derivative_curvature(y[k], zk)
            sk = s[k][:, None] if z.ndim == 2 else s[k]
            z[k] = sk * first
            if curvature is not None:
                curvature[k] = second if multinomial else sk * second
        return value

    def _hessian_product(self, curvature, t):
        """The data Hessian's row terms applied to ``t`` (overwritten): ``s loss'' t``, or
        for the multinomial ``s (diag(p) - p p^T) t`` row by row."""
        if self.loss.name == "multinomial":
            return self.loss.hessian_product(curvature, self.s, t)
        t *= curvature
        return t

    def loss_grad(self, w, b):
        """``(sum s loss, X^T (s loss'), sum s loss')`` at ``(w, b)``."""
        r = self.matvec(w)
        value = self._pointwise(r, b)
        return value, self.rmatvec(r), self._row_sums(r)

    def loss_grad_hessian(self, w, b):
        """``loss_grad`` plus the data term's Hessian at ``(w, b)`` as a product
        ``(v, vb) -> (H_ww v + h_wb vb, h_bw v + h_bb vb)``; shares the pass that
        computes the margins. Each product is one pass over X each way."""
        r = self.matvec(w)
        d = np.empty_like(r)
        value = self._pointwise(r, b, d)

        def product(v, vb=0.0):
            t = self.matvec(v)
            t += vb
            t = self._hessian_product(d, t)
            return self.rmatvec(t), self._row_sums(t)

        return value, self.rmatvec(r), self._row_sums(r), product

    def _block_rows(self):
        """Rows per block of X for blockwise work: dense blocks of about 16k values stay
        in cache (large temporaries cost page faults on every block); CSR blocks of about
        64k nonzeros bound the temporaries (squared values, and the int32 copy of int64
        indices scipy makes) to about 1 MB."""
        X = self.X
        if input_format(X) == "csr":
            width, target = X.nnz / max(1, self.n_samples), 1 << 16
        else:
            width, target = self.n_features, 1 << 14
        return int(max(64, target // max(1.0, width)))

    def _curvature_weights(self, w, b):
        """``d_i = s_i loss''(y_i, x_i w + b)``: one pass for the margins, overwritten by row blocks."""
        d = self.matvec(w)
        for k in row_blocks(len(d)):
            if self.loss.name == "multinomial":
                p = self.loss.probabilities(d[k] + b)
                d[k] = self.s[k][:, None] * p * (1.0 - p)
            elif d.ndim == 2:
                d[k] = self.s[k][:, None]
            else:
                d[k] = self.s[k] * self.loss.curvature(self.y[k], d[k] + b)
        return d

    def _float64_blocks(self, square=False, rows=None):
        """``(start, stop, block)``: consecutive row blocks of X (``rows``, default
        ``_block_rows()``, rows each) as float64 matrices, squared entry by entry if asked;
        CSR blocks are built over views of X's index arrays, so at most one block's values
        is ever copied."""
        X, sparse = self.X, input_format(self.X) == "csr"
        chunk = rows or self._block_rows()
        for start in range(0, self.n_samples, chunk):
            stop = min(start + chunk, self.n_samples)
            if sparse:
                ptr = X.indptr
                lo, hi = ptr[start], ptr[stop]
                values = X.data[lo:hi].astype(np.float64)
                block = sp.csr_matrix((np.square(values, out=values) if square else values, X.indices[lo:hi],
                                       ptr[start:stop + 1] - lo), shape=(stop - start, self.n_features))
            else:
                block = np.asarray(X[start:stop], dtype=np.float64)
                if square:
                    block = np.square(block)
            yield start, stop, block

    def loss_grad_gram(self, w, b):
        """``loss_grad`` plus the data term's Hessian at ``(w, b)`` as Gram matrices: the
        ``(d + 1) x (d + 1)`` ``[X 1]^T diag(s loss'') [X 1]`` (:meth:`gram`); for several
        outputs a dict ``{(k, l): Gram}`` over the Hessian's blocks ``k <= l``: the
        multinomial's weights ``s (p_k [k = l] - p_k p_l)``, ``K (K + 1) / 2`` Grams; the
        squared loss's diagonal blocks share one Gram."""
        r = self.matvec(w)
        c = np.empty_like(r)
        value = self._pointwise(r, b, c)
        grad = self.rmatvec(r), self._row_sums(r)
        if r.ndim == 1:
            return value, *grad, self.gram(c)
        if self.loss.name == "squared":
            shared = self.gram(self.s)
            return value, *grad, {(k, k): shared for k in range(self.n_outputs)}
        grams = {}
        for k in range(self.n_outputs):
            for l in range(k, self.n_outputs):
                weights = (c[:, k] if k == l else 0.0) - c[:, k] * c[:, l]
                grams[(k, l)] = self.gram(self.s * weights)
        return value, *grad, grams

    def gram_count(self):
        """How many :meth:`gram` calls one Hessian matrix takes."""
        K = self.n_outputs
        return 1 if (K == 1 or self.loss.name == "squared") else K * (K + 1) // 2

    # Rows per block of the Gram matrix: BLAS-3 calls of about 1M values (compute bound,
    # so larger than the cache-sized blocks of the passes; a float32 X is converted to
    # float64 one such block at a time).
    GRAM_BLOCK_VALUES = 1 << 20

    def gram_cost(self):
        """The cost of one :meth:`gram` in passes over X (the cost model of
        :func:`tikhon.solvers.choose_solver`): ``0.15 d`` for dense X (BLAS syrk against a
        streamed pass), ``9`` nonzeros a row for scipy's CSR product."""
        if input_format(self.X) == "csr":
            return 9.0 * self.X.nnz / max(1, self.n_samples)
        return 0.15 * self.n_features

    def gram(self, c):
        """``[X 1]^T diag(c) [X 1]`` for weights ``c``, a ``(d + 1) x (d + 1)`` float64
        matrix (the last row and column are those of the intercept's constant column).
        Dense X: tikhon's compiled kernel on the fit's threads (:func:`_dense_gram`);
        CSR: a sparse product per block of rows (``sum_i nnz_i^2`` work). X is never
        copied whole."""
        if input_format(self.X) != "csr":
            return self._dense_gram(c)
        d = self.n_features
        G = np.zeros((d + 1, d + 1))
        width = self.X.nnz / max(1, self.n_samples)
        rows = int(max(256, self.GRAM_BLOCK_VALUES // max(1.0, width)))
        for start, stop, block in self._float64_blocks(rows=rows):
            ck = c[start:stop]
            scaled = sp.csr_matrix((block.data * np.repeat(ck, np.diff(block.indptr)), block.indices,
                                    block.indptr), shape=block.shape)
            G[:d, :d] += (block.T @ scaled).toarray()
        G[:d, d] = G[d, :d] = self.rmatvec(c)
        G[d, d] = float(c.sum())
        return G

    # Dense Gram of 1e6 x 100 beside 2 busy processes on 2 cores: BLAS dsyrk per row block
    # (OpenBLAS's 2 threads) 2.8 to 28 s, tikhon's kernel 0.2 to 1.5 s (see tikhon.backends._blas).
    def _dense_gram(self, c):
        """The dense Gram by :func:`tikhon.backends._blas.dense_gram` on the threads the
        fit's budget and the cores free grant (one under load; counted as a Numba pass's
        threads are); BLAS ``syrk``/``gemm`` per row block where no compiled kernel runs
        (``NUMBA_DISABLE_JIT``)."""
        from . import _blas

        if not _blas.available():
            return self._blas_gram(c)
        with _blas.threads_for(_blas.chunk_count(self.n_samples, self.n_features)) as granted:
            return _blas.dense_gram(self.X, c, granted)

    def _blas_gram(self, c):
        """The dense Gram by BLAS: ``syrk`` on ``sqrt(c) X`` per block of rows (weights of
        both signs: a ``gemm`` with ``c X``); BLAS's own threads."""
        from scipy.linalg.blas import dsyrk

        signed = bool(np.any(c < 0))
        d = self.n_features
        G = np.zeros((d + 1, d + 1))
        upper = np.zeros((d, d), order="F")
        rows = int(max(256, self.GRAM_BLOCK_VALUES // max(1, d)))
        for start, stop, block in self._float64_blocks(rows=rows):
            ck = c[start:stop]
            if signed:
                G[:d, :d] += block.T @ (block * ck[:, None])
            else:
                scaled = block * np.sqrt(ck)[:, None]
                upper = dsyrk(1.0, scaled.T, beta=1.0, c=upper, trans=0, lower=0, overwrite_c=1)
        if not signed:
            G[:d, :d] = np.triu(upper) + np.triu(upper, 1).T
        G[:d, d] = G[d, :d] = self.rmatvec(c)
        G[d, d] = float(c.sum())
        return G

    def hessian_diagonal(self, w, b):
        """Diagonal of the data term's Hessian at ``(w, b)``: ``(sum_i d_i x_ij^2, sum_i d_i)``
        with ``d_i = s_i loss''(y_i, z_i)`` (several outputs: ``d`` is ``n x K``, the
        multinomial's ``s p (1 - p)``). One pass for the margins, one over row blocks of X
        for the squares (a block at a time is squared, never all of X)."""
        d = self._curvature_weights(w, b)
        out = np.zeros((self.n_features,) + d.shape[1:])
        for start, stop, block in self._float64_blocks(square=True):
            out += block.T @ d[start:stop]
        return (out.T if d.ndim == 2 else out), self._row_sums(d)

    # ---- products for the final certificate ----
    exact = True  # matvec and rmatvec accumulate in float64 whatever X's dtype

    def certified_products(self):
        """``(matvec, rmatvec)`` accumulating in float64, for the duality gap a fit is
        certified by (:meth:`tikhon.solvers.Problem.duality_gap`): the backend's own
        products when ``exact``, else (float32 BLAS) row blocks of X in float64."""
        if self.exact:
            return self.matvec, self.rmatvec

        def matvec(w):
            w = np.asarray(w, dtype=np.float64).T  # several outputs: X W^T
            out = np.empty((self.n_samples,) + w.shape[1:])
            for start, stop, block in self._float64_blocks():
                out[start:stop] = block @ w
            return out

        def rmatvec(r):
            out = np.zeros((self.n_features,) + r.shape[1:])
            for start, stop, block in self._float64_blocks():
                out += block.T @ r[start:stop]
            return out.T

        return matvec, rmatvec

    def batch_loss_grad(self, w, b, rows):
        """``loss_grad`` restricted to the given rows (copies only those rows)."""
        Xb = self.X[rows]
        w = np.asarray(w, dtype=Xb.dtype)
        z = np.asarray(Xb @ w.T, dtype=np.float64).reshape(len(rows), *w.shape[:-1]) + b
        y, s = self.y[rows], self.s[rows]
        r = (s[:, None] if z.ndim == 2 else s) * self.loss.derivative(y, z)
        gw = np.asarray(Xb.T @ r.astype(Xb.dtype), dtype=np.float64)
        gw = gw.T if z.ndim == 2 else gw.ravel()
        return float(np.dot(s, row_totals(self.loss.value(y, z)))), gw, self._row_sums(r)

    def row_norms_sq(self, chunk=8192):
        """``||x_i||^2`` per row (float64), by row blocks so that no copy of X is made."""
        X = self.X
        if input_format(X) == "csr":
            sq = np.concatenate(([0.0], np.cumsum(np.square(X.data, dtype=np.float64))))
            return sq[X.indptr[1:]] - sq[X.indptr[:-1]]
        out = np.empty(self.n_samples)
        for start in range(0, self.n_samples, chunk):
            block = np.asarray(X[start:start + chunk], dtype=np.float64)
            out[start:start + chunk] = np.einsum("ij,ij->i", block, block)
        return out

    def curvature_norm(self, n_iter=30, seed=0):
        """Estimate ``||[X 1]^T S [X 1]||_2`` by power iteration (from below; callers add margin)."""
        rng = np.random.default_rng(seed)
        v = rng.standard_normal(self.n_features)
        vb = 1.0
        estimate = 0.0
        for _ in range(n_iter):
            norm = np.sqrt(np.dot(v, v) + vb * vb)
            if norm == 0:
                return 0.0
            v, vb = self.weighted_product(v / norm, vb / norm)
            estimate = np.sqrt(np.dot(v, v) + vb * vb)
        return float(estimate)

    def weighted_product(self, v, vb):
        """``(X^T t, sum t)`` with ``t = s * (X v + vb)``: the product with ``[X 1]^T S [X 1]``."""
        t = self.s * (self.matvec(v) + vb)
        return self.rmatvec(t), float(t.sum())
