"""The one definition of the problem tikhon solves.

For features ``X`` (n x d), targets ``y``, sample weights ``s`` (default 1),
coefficients ``w`` and intercept ``b``::

    P(w, b) = sum_i s_i * loss(y_i, x_i . w + b)  +  (lam / 2) * ||w||^2

with ``lam = 1 / C`` for logistic regression and ``lam = alpha`` for ridge. The
intercept is never penalized. This is exactly the problem of scikit-learn's
``LogisticRegression(C)`` and ``Ridge(alpha)``.

The "seed" convention ``mean loss + lam / (2 m) ||w||^2`` is ``P / m`` with
``m = sum_i s_i`` (``m = n`` without weights): the same minimizer. Gradient descent
with weight decay, ``w <- w (1 - step * lam / m) - step * grad(mean loss)``, is a
gradient step on ``P / m`` (see :meth:`Objective.weight_decay`).

Losses (pointwise, overflow-safe in float32 and float64; computed in float64):

* ``logistic``: ``log(1 + exp(-y z))`` with ``y`` in {-1, +1}, evaluated as
  ``log1p(exp(-|t|)) + max(-t, 0)`` with ``t = y z``;
* ``squared``: ``(y - z)^2 / 2``;
* ``multinomial``: ``logsumexp_k(z_k) - z_y`` for a row of ``K`` margins and a class
  index ``y`` (scikit-learn's symmetric multinomial problem: all ``K`` rows of ``W``).

Several outputs (``n_outputs = K > 1``: the classes of a multinomial model, or the
targets of a multi-target ridge, each with its own ``lam``) extend the same problem:
``W`` is ``K x d``, ``b`` has ``K`` entries, margins are rows of ``K`` numbers,
``P = sum_i s_i loss(y_i, W x_i + b) + sum_k lam_k / 2 ||W_k||^2``, and the parameter
vector is ``theta = [W.ravel(), b]`` (for ``K = 1`` exactly the binary ``[w, b]``).

Backends compute the *data term* (the weighted sum of losses and its derivatives,
one pass over ``X``); this module adds the penalty, defines the stopping
certificate and the Fenchel dual used for the duality-gap certificate.

Stopping rule and certificate (one definition, used by every solver)::

    relative gap = (P(w, b) - D(u)) / D(u)

for a dual-feasible point ``u``: an upper bound on the relative suboptimality
``(P - P*) / P*``, scale-free (sample weights of any size, any C). A fit has
converged when it is ``<= tol``; ``converged_`` means exactly that (a gap that is
infinite or above ``tol`` is reported with a ``ConvergenceWarning``).

The primal solvers get it almost free at every iterate (:meth:`Objective.gradient_gap`):
the dual point is the derivative of the loss at the margins of the gradient pass,
``u_i = s_i loss'(y_i, z_i)``, whose ``X^T u`` is the data term's gradient and whose
conjugates follow from the Fenchel-Young equality ``f*(u) = u z - f(z)``. Without an
intercept the gap is then exactly ``||grad_w P||^2 / (2 lam)`` -- no pass over X, no
O(n) work, no cancellation. With an intercept the dual constraint ``sum(u) = 0`` is
restored by a correction whose ``X^T`` part is fixed per problem (one pass, once; see
:func:`gap_from_gradient`). :meth:`Objective.duality_gap` builds a tighter dual point
(at the best intercept for ``w``, two passes); it is the check of last resort.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import entr, expit

__all__ = ["DEFAULT_TOL", "Objective", "LOSSES", "LogisticLoss", "MultinomialLoss", "SquaredLoss", "dot", "gap_from_gradient", "relative_gap"]


class LogisticLoss:
    """``loss(y, z) = log(1 + exp(-y z))`` for labels ``y`` in {-1, +1}."""

    name = "logistic"
    max_curvature = 0.25  # sup of loss''(z): bounds the Lipschitz constant

    @staticmethod
    def value(y, z):
        t = y * z
        return np.log1p(np.exp(-np.abs(t))) + np.maximum(-t, 0.0)

    @staticmethod
    def derivative(y, z):
        """d loss / dz = -y * sigmoid(-y z)."""
        return -y * expit(-y * z)

    @staticmethod
    def curvature(y, z):
        """d2 loss / dz2 = sigmoid(z) sigmoid(-z) = e / (1 + e)^2 with ``e = exp(-|z|)``
        (no cancellation where the margin is large)."""
        e = np.exp(-np.abs(z))
        return e / np.square(1.0 + e)

    @staticmethod
    def derivative_curvature(y, z):
        """``(derivative, curvature)`` from one exponential ``e = exp(-|z|)`` (``|y z| = |z|``):
        ``sigmoid(-y z)`` is ``e / (1 + e)`` where ``y z >= 0``, else ``1 / (1 + e)``."""
        e = np.exp(-np.abs(z))
        inv = 1.0 / (1.0 + e)
        return -y * np.where(y * z >= 0, e * inv, inv), e * np.square(inv)

    @staticmethod
    def conjugate_sum(y, s, u):
        """sum_i (s_i loss_i)^*(u_i); requires ``a = -y u`` in ``[0, s]``."""
        a = np.clip(-y * u, 0.0, s)
        # (s loss)^*(-y a) = a log(a / s) + (s - a) log((s - a) / s), with entr(x) = -x log x
        return float(np.sum(entr(s) - entr(a) - entr(s - a)))

    @staticmethod
    def center_dual(y, s, u):
        """Make ``sum(u) == 0`` (the intercept's dual constraint) **in place** while keeping
        ``-y u`` in ``[0, s]``: shrink the side whose total is larger; returns ``u``. (With
        ``a = -y u >= 0`` and ``y = +-1``, the class totals are ``(sum a +- sum a y) / 2``.)"""
        a_sum, ay_sum = -float(dot(y, u)), -float(np.sum(u))  # sum a, sum a y (y y = 1)
        total_pos, total_neg = 0.5 * (a_sum + ay_sum), 0.5 * (a_sum - ay_sum)
        if total_pos > total_neg and total_pos > 0:
            factor, side = total_neg / total_pos, 1.0
        elif total_neg > total_pos and total_neg > 0:
            factor, side = total_pos / total_neg, -1.0
        else:
            return u
        for k in row_blocks(len(u)):
            np.multiply(u[k], factor, out=u[k], where=y[k] == side)
        return u


class SquaredLoss:
    """``loss(y, z) = (y - z)^2 / 2``."""

    name = "squared"
    max_curvature = 1.0

    @staticmethod
    def value(y, z):
        r = y - z
        return 0.5 * r * r

    @staticmethod
    def derivative(y, z):
        return z - y

    @staticmethod
    def curvature(y, z):
        return np.ones_like(z)

    @staticmethod
    def derivative_curvature(y, z):
        return z - y, np.ones_like(z)

    @staticmethod
    def conjugate_sum(y, s, u):
        """sum_i (s_i loss_i)^*(u_i) = sum u y + u^2 / (2 s); rows with s == 0 need u == 0.
        (Several targets: ``y``, ``u`` are n x T, summed over both.)"""
        positive = s > 0
        up, sp = u[positive], s[positive]
        if up.ndim == 2:
            sp = sp[:, None]
        return float(np.sum(up * y[positive] + up * up / (2.0 * sp)))

    @staticmethod
    def center_dual(y, s, u):
        """Make ``sum(u) == 0`` (per target) in place by a shift proportional to ``s``
        (keeps u == 0 where s == 0); returns ``u``."""
        shift = u.sum(axis=0) / s.sum()
        for k in row_blocks(len(u)):
            u[k] -= np.multiply.outer(s[k], shift) if u.ndim == 2 else s[k] * shift
        return u


class MultinomialLoss:
    """``loss(y, z) = logsumexp_k(z_k) - z_y`` for a row ``z`` of ``K`` margins and a class
    index ``y`` in ``0..K-1`` (stored as floats); overflow-safe (shifted by ``max_k z_k``)."""

    name = "multinomial"
    max_curvature = 0.5  # the largest eigenvalue of diag(p) - p p^T

    @staticmethod
    def probabilities(z):
        """Row-wise softmax of ``z`` (n x K), stable."""
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    @staticmethod
    def _index(y):
        return np.asarray(y).astype(np.intp, copy=False)

    @staticmethod
    def value(y, z):
        top = z.max(axis=1)
        lse = top + np.log(np.exp(z - top[:, None]).sum(axis=1))
        return lse - z[np.arange(z.shape[0]), MultinomialLoss._index(y)]

    @staticmethod
    def derivative(y, z):
        """``softmax(z) - e_y``, row by row."""
        p = MultinomialLoss.probabilities(z)
        p[np.arange(z.shape[0]), MultinomialLoss._index(y)] -= 1.0
        return p

    @staticmethod
    def derivative_curvature(y, z):
        """``(softmax(z) - e_y, softmax(z))``: the probabilities define the Hessian,
        ``diag(p) - p p^T`` (see :meth:`hessian_product`)."""
        p = MultinomialLoss.probabilities(z)
        d1 = p.copy()
        d1[np.arange(z.shape[0]), MultinomialLoss._index(y)] -= 1.0
        return d1, p

    @staticmethod
    def hessian_product(p, s, t):
        """``s_i (diag(p_i) - p_i p_i^T) t_i`` for every row (``p``, ``t``: n x K)."""
        pt = p * t
        return s[:, None] * (pt - p * pt.sum(axis=1, keepdims=True))

    @staticmethod
    def conjugate_sum(y, s, u):
        """``sum_i (s_i loss_i)^*(u_i) = sum_i s_i sum_k q_ik log q_ik`` with
        ``q_i = u_i / s_i + e_{y_i}`` on the simplex (negative entropy); rows of weight
        0 need ``u_i = 0``."""
        live = s > 0
        q = u[live] / s[live, None]
        q[np.arange(q.shape[0]), MultinomialLoss._index(y[live])] += 1.0
        return -float(np.sum(s[live] * entr(np.clip(q, 0.0, 1.0)).sum(axis=1)))


LOSSES = {cls.name: cls for cls in (LogisticLoss, SquaredLoss, MultinomialLoss)}


def row_totals(v):
    """Per-row sums of a pointwise loss's values (the identity for one output)."""
    return v if v.ndim == 1 else v.sum(axis=1)

_EMPTY = np.zeros(0)
ROW_BLOCK = 1 << 13  # rows: a block's float64 temporaries are 64 KiB (in L2 cache)


def row_blocks(n, block=ROW_BLOCK):
    """Slices of ``block`` consecutive rows covering ``range(n)``."""
    return (slice(start, min(start + block, n)) for start in range(0, n, block))


# Long dot products go in chunks of this many entries: OpenBLAS runs a level-1 call above
# 10000 entries on several threads, which then spin for a while and take the cores from
# the numba backend's threads (Newton-CG on the 200k x 100k text CSR: 2.8x slower), and
# its sum then depends on the BLAS thread count.
DOT_CHUNK = 8192


def dot(a, b):
    """``a . b`` of 1-D vectors by single-threaded BLAS calls on chunks of ``DOT_CHUNK``
    entries summed in order: the same result whatever the BLAS thread count, and no BLAS
    thread woken. Plain ``np.dot`` arithmetic (the Numba loops compile it too)."""
    n = a.shape[0]
    if n <= DOT_CHUNK:
        return np.dot(a, b)
    total = 0.0
    for i in range(0, n, DOT_CHUNK):
        total += np.dot(a[i:i + DOT_CHUNK], b[i:i + DOT_CHUNK])
    return total


# The default relative duality gap. 1e-8 rather than 1e-6: the gap bounds the objective,
# and coefficients (hence predicted probabilities) are accurate to about its square
# root; at 1e-6, fits of the same problem (weighted rows against repeated rows) differed
# by 2e-6 relative in predict_proba, failing scikit-learn's sample-weight equivalence
# check. Measured cost (a9a, reuters, dense 7000x28, 2000x500, 2e5x100; C = 0.1..100;
# one thread): 1.25x the time of 1e-6 over the 20 default fits, 0 or 1 more Newton step.
DEFAULT_TOL = 1e-8


def gap_from_gradient(lam, logistic, fit_intercept, data_loss, w, b, grad_w, grad_b, anchor, anchor_sum):
    """The duality gap ``P(w, b) - D(u)`` at the dual point of the gradient pass (absolute).

    ``grad_w`` is ``grad_w P = X^T u + lam w`` and ``grad_b = sum(u)`` with
    ``u_i = s_i loss'(y_i, x_i w + b)``; ``data_loss = sum_i s_i loss_i``. Every term is
    a sum of non-negative parts (no cancellation between P and D):

    * no intercept (or ``sum(u) = 0``): ``u`` is feasible and, by Fenchel-Young,
      ``P - D(u) = ||grad_w P||^2 / (2 lam)``;
    * squared loss: ``u' = u - sum(u) s / m`` is feasible (``anchor = X^T s``,
      ``anchor_sum = m``) and ``P - D(u') = sum(u)^2 / (2 m) + ||grad_w P - sum(u) X^T s / m||^2 / (2 lam)``;
    * logistic: each ``-y_i u_i`` must stay in ``[0, s_i]``, so ``u' = (1 - t) u + t v``
      mixes in a feasible ``v`` whose sum has the other sign: ``v = s`` on the negative
      rows (``sum(u) < 0``) or ``v = -s`` on the positive rows, with ``anchor = X^T v``,
      ``anchor_sum = sum(v)`` and ``t = sum(u) / (sum(u) - sum(v))``. The conjugates are
      convex and vanish at ``v``, so ``P - D(u') <= t (data_loss - v . z) +
      ||(1 - t) grad_w P + t (lam w + X^T v)||^2 / (2 lam)``, which is returned.

    Plain float and :func:`dot` arithmetic, so that the Numba loops compile this very
    function (:mod:`tikhon.backends._numba_kernels`) instead of a copy.
    """
    if not fit_intercept or grad_b == 0.0:
        return dot(grad_w, grad_w) / (2.0 * lam)
    if not logistic:
        shift = grad_b / anchor_sum
        r = grad_w - shift * anchor
        return 0.5 * grad_b * shift + dot(r, r) / (2.0 * lam)
    t = grad_b / (grad_b - anchor_sum)
    vz = dot(anchor, w) + b * anchor_sum
    r = (1.0 - t) * grad_w + t * (lam * w + anchor)
    return t * max(data_loss - vz, 0.0) + dot(r, r) / (2.0 * lam)


def relative_gap(primal, gap):
    """``(P - D) / D`` from ``P`` and the gap ``P - D``: 0 for a gap ``<= 0`` (optimal,
    even when ``D = P* = 0``), infinite when ``D <= 0`` or the gap is NaN."""
    if math.isnan(gap):
        return math.inf  # not certified
    if gap <= 0.0:  # P <= D: optimal (a negative gap is rounding)
        return 0.0
    dual = primal - gap
    return gap / dual if dual > 0.0 else math.inf


@dataclass
class BlockDiagonal:
    """A Hessian of independent outputs (several ridge targets): ``blocks[k]`` acts on the
    theta entries ``index[k]``; never assembled (``K`` factorizations of ``d + 1`` rows
    instead of one of ``K (d + 1)``)."""

    blocks: list
    index: list

    def __matmul__(self, v):
        out = np.zeros_like(v)
        for block, idx in zip(self.blocks, self.index):
            out[idx] = block @ v[idx]
        return out


@dataclass(frozen=True)
class Objective:
    """``P(W, b) = sum_i s_i loss(y_i, W x_i + b) + sum_k lam_k / 2 ||W_k||^2``.

    Parameters
    ----------
    loss : {"logistic", "squared", "multinomial"}
    lam : float, or one float per output (multi-target ridge)
        Penalty strength, ``1 / C`` or ``alpha``. Must be > 0.
    fit_intercept : bool
        Whether the unpenalized intercept ``b`` is a variable (else ``b = 0``).
    n_outputs : int
        ``K``, the rows of ``W``: 1 for binary logistic regression and single-target
        ridge (then ``w`` is a vector and ``b`` a float), the classes of a multinomial
        model, the targets of a multi-target ridge.
    """

    loss: str
    lam: object
    fit_intercept: bool = True
    n_outputs: int = 1

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; expected one of {sorted(LOSSES)}")
        lams = np.broadcast_to(np.asarray(self.lam, dtype=np.float64), (self.n_outputs,))
        if not np.all(np.isfinite(lams) & (lams > 0)):
            raise ValueError(f"the penalty strength must be a finite positive number, got {self.lam!r}")
        if self.loss == "multinomial" and self.n_outputs < 3:
            raise ValueError("the multinomial loss needs at least 3 classes (2 classes: the logistic loss)")
        if self.n_outputs == 1 and np.ndim(self.lam) == 0:
            object.__setattr__(self, "lam", float(self.lam))
        object.__setattr__(self, "lams", lams.copy())  # one lam per row of W

    @property
    def multi(self) -> bool:
        """Whether ``W`` has several rows (``K > 1``)."""
        return self.n_outputs > 1

    def _row_lams(self):
        """``lam`` shaped to scale ``W``: a float for one output, else a ``(K, 1)`` column."""
        return self.lams[:, None] if self.multi else self.lam

    @property
    def pointwise(self):
        """The pointwise loss (value, derivative, curvature, conjugate)."""
        return LOSSES[self.loss]

    # ---- parameter vector theta = [W.ravel(), b] (b present only with an intercept) ----
    def n_params(self, n_features: int) -> int:
        return self.n_outputs * (n_features + int(self.fit_intercept))

    def split(self, theta):
        """``theta -> (W, b)``: ``(w, float b)`` for one output, else ``W`` (K x d) and
        ``b`` (K,); ``b`` is zero without an intercept."""
        K = self.n_outputs
        if not self.multi:
            if self.fit_intercept:
                return theta[:-1], float(theta[-1])
            return theta, 0.0
        d = theta.shape[0] // K - int(self.fit_intercept)
        W = theta[:K * d].reshape(K, d)
        return W, (theta[K * d:] if self.fit_intercept else np.zeros(K))

    def canonical(self, theta):
        """``theta`` with the multinomial's intercepts centred, in place (the softmax does
        not change when every intercept moves by the same amount, so ``P`` and the gap do
        not either): the solution reported is then unique, and scikit-learn's (whose
        gradient steps from zero keep the intercepts' sum at 0). Other models: as given."""
        if self.multi and self.loss == "multinomial" and self.fit_intercept:
            b = self.split(theta)[1]
            b -= b.mean()
        return theta

    def join(self, w, b):
        """``(W, b) -> theta``, a new float64 vector."""
        w = np.asarray(w, dtype=np.float64).ravel()
        if self.fit_intercept:
            return np.concatenate([w, np.atleast_1d(np.asarray(b, dtype=np.float64))])
        return w.copy()

    # ---- primal: data term (from a backend) + penalty ----
    def penalty(self, w) -> float:
        """``sum_k lam_k / 2 ||W_k||^2``."""
        if not self.multi:
            return 0.5 * self.lam * float(dot(w, w))
        return 0.5 * float(np.dot(self.lams, np.einsum("kj,kj->k", w, w)))

    def value(self, data_loss: float, w) -> float:
        """``P`` given the data term ``sum_i s_i loss_i``."""
        return float(data_loss) + self.penalty(w)

    def gradient(self, data_grad_w, data_grad_b, w):
        """Gradient of ``P`` as a theta-vector, from the data term's gradient."""
        return self.join(data_grad_w + self._row_lams() * w, data_grad_b)

    def hess_vec(self, data_hv_w, data_hv_b, v_w):
        """Hessian of ``P`` times ``v`` as a theta-vector, from the data term's product."""
        return self.gradient(data_hv_w, data_hv_b, v_w)

    def hessian_matrix(self, data_gram):
        """Hessian of ``P`` as a theta-matrix from the data term's Gram matrices
        ``[X 1]^T diag(c) [X 1]`` (``(d + 1) x (d + 1)``, the last row the intercept's):
        one for one output; for several, a dict ``{(k, l): Gram of the (k, l) block}``
        over ``k <= l`` (absent blocks are zero: the squared loss has ``k == l`` only, and
        its Hessian is then a :class:`BlockDiagonal`).

        Multinomial with an intercept: ``P`` is flat along ``b + c 1`` (softmax ignores a
        common shift), so the projector on that direction, scaled like the intercepts'
        curvature, is added: every gradient is orthogonal to it, so Newton steps are
        unchanged, and the matrix is positive definite for Cholesky."""
        if not self.multi:
            d = data_gram.shape[0] - 1
            H = data_gram if self.fit_intercept else data_gram[:d, :d].copy()
            H[np.arange(d), np.arange(d)] += self.lam
            return H
        K, fi = self.n_outputs, self.fit_intercept
        d = next(iter(data_gram.values())).shape[0] - 1
        index = [np.r_[k * d:(k + 1) * d, [K * d + k] if fi else []].astype(np.intp) for k in range(K)]
        if all(k == l for k, l in data_gram):  # separable outputs (several ridge targets)
            blocks = []
            for k in range(K):
                block = (data_gram[(k, k)] if fi else data_gram[(k, k)][:d, :d]).copy()
                block[np.arange(d), np.arange(d)] += self.lams[k]
                blocks.append(block)
            return BlockDiagonal(blocks, index)
        H = np.zeros((self.n_params(d), self.n_params(d)))
        for (k, l), G in data_gram.items():
            block = G if fi else G[:d, :d]
            H[np.ix_(index[k], index[l])] = block
            if k != l:
                H[np.ix_(index[l], index[k])] = block.T
        diag = np.arange(K * d)
        H[diag, diag] += np.repeat(self.lams, d)
        if fi and self.loss == "multinomial":
            shift = np.arange(K * d, K * d + K)
            scale = max(float(np.trace(H[np.ix_(shift, shift)])), np.finfo(np.float64).tiny)
            H[np.ix_(shift, shift)] += scale / (K * K)
        return H

    # ---- the seeds' scaling ----
    def weight_decay(self, step, weight_sum: float):
        """The factor ``1 - step * lam / m`` of the seeds' update
        ``w <- w (1 - step lam / m) - step grad(mean loss)`` (a ``(K, 1)`` column of
        factors for several outputs)."""
        return 1.0 - step * self._row_lams() / weight_sum

    def lipschitz_bound(self, data_curvature_norm: float, weight_sum: float) -> float:
        """Lipschitz constant of ``grad(P / m)`` given ``||[X 1]^T S [X 1]||_2``
        (the data term's Hessian norm divided by the loss's max curvature)."""
        return (self.pointwise.max_curvature * data_curvature_norm + float(self.lams.max())) / weight_sum

    # ---- the stopping rule: relative duality gap from the gradient pass ----
    def intercept_anchor(self, y, s, side, rmatvec):
        """``(X^T v, sum(v))`` of the fixed dual direction :func:`gap_from_gradient` uses
        to restore ``sum(u) = 0`` (one pass over X): ``v = s`` for the squared loss;
        for the logistic loss ``v = s`` on the negative rows (``side = -1``, used when
        ``sum(u) < 0``) or ``v = -s`` on the positive rows (``side = +1``)."""
        if self.loss == "squared":
            v = np.asarray(s, dtype=np.float64)
        elif self.loss == "multinomial":  # X^T (s e_{y_i}) per class and the class weights
            onehot = np.zeros((len(y), self.n_outputs))
            onehot[np.arange(len(y)), MultinomialLoss._index(y)] = s
            return np.asarray(rmatvec(onehot), dtype=np.float64), onehot.sum(axis=0)
        else:
            v = np.where(y == side, -side * s, 0.0)
        return np.asarray(rmatvec(v), dtype=np.float64), float(v.sum())

    def anchor_side(self, grad_b) -> int:
        """Which :meth:`intercept_anchor` a gradient needs (0: the only one there is)."""
        return 1 if (self.loss == "logistic" and grad_b > 0) else (-1 if self.loss == "logistic" else 0)

    def needs_anchor(self, grad_b) -> bool:
        """Whether the gap at a gradient with this ``grad_b`` needs the intercept's anchor."""
        return self.fit_intercept and bool(np.any(np.asarray(grad_b) != 0.0))

    def gradient_gap(self, primal, grad, w, b, anchor=None):
        """``(P, D, relative gap)`` at ``(w, b)`` from the gradient pass: ``primal = P``,
        ``grad`` the theta-gradient of ``P`` and, with an intercept and a non-zero
        ``grad_b``, ``anchor = intercept_anchor(..., anchor_side(grad_b), ...)``
        (see :func:`gap_from_gradient`). O(d) work."""
        grad_w, grad_b = self.split(np.asarray(grad, dtype=np.float64))
        data_loss = primal - self.penalty(w)
        if anchor is None:
            if self.needs_anchor(grad_b):
                raise ValueError("the intercept's gap needs intercept_anchor(...) for this gradient")
            anchor = (_EMPTY, 0.0)
        if self.multi:
            gap = self._multi_gap(data_loss, np.asarray(w, dtype=np.float64), b, grad_w, grad_b, *anchor)
        else:
            xv, v_sum = anchor
            gap = float(gap_from_gradient(self.lam, self.loss == "logistic", self.fit_intercept, data_loss,
                                          np.asarray(w, dtype=np.float64), float(b), grad_w, grad_b, xv, v_sum))
        rel = relative_gap(primal, gap)
        return primal, primal - gap, rel

    def _multi_gap(self, data_loss, W, b, G, gb, anchor, anchor_sum):
        """:func:`gap_from_gradient` for several outputs (``G = grad_W P``, ``gb = sum_i u_i``):

        * no intercept (or ``gb = 0``): ``sum_k ||G_k||^2 / (2 lam_k)``;
        * squared: per target, as for one (``anchor = X^T s``, ``anchor_sum = m``);
        * multinomial: ``u' = (1 - t) u + t v`` with ``v_i = s_i (q - e_{y_i})`` for one
          ``q`` on the simplex chosen so that ``sum(u') = 0``: ``q = (S - a gb) / m`` with
          ``S`` the class weights (``anchor_sum``), ``a`` the largest step keeping ``q >= 0``
          and ``t = 1 / (1 + a)``; ``X^T v = q (X^T s) - B`` with ``B = X^T (s e_y)``
          (``anchor``). The conjugates are convex, ``sum_i (s_i loss_i)^*(v_i) = m sum_k
          q_k log q_k``, so ``P - D(u') <= t (data_loss + m q.log q - v . z) +
          sum_k ||(1 - t) G_k + t (lam W_k + (X^T v)_k)||^2 / (2 lam)``."""
        lams = self.lams
        if not self.fit_intercept or not np.any(gb != 0.0):
            return float(np.sum(np.einsum("kj,kj->k", G, G) / (2.0 * lams)))
        if self.loss == "squared":
            shift = gb / anchor_sum
            R = G - shift[:, None] * anchor[None, :]
            return float(np.sum(0.5 * gb * shift + np.einsum("kj,kj->k", R, R) / (2.0 * lams)))
        B, S = anchor, anchor_sum
        m = float(S.sum())
        positive = gb > 0
        if not positive.any():  # sum_k gb_k = 0: only rounding left
            return float(np.sum(np.einsum("kj,kj->k", G, G) / (2.0 * lams)))
        a = float(np.min(S[positive] / gb[positive]))
        t = 1.0 / (1.0 + a)
        q = np.clip(S - a * gb, 0.0, None) / m
        XTv = np.outer(q, B.sum(axis=0)) - B
        v_sum = m * q - S
        conj_v = -m * float(np.sum(entr(q)))
        vz = float(np.sum(XTv * W)) + float(np.dot(b, v_sum))
        R = (1.0 - t) * G + t * (lams[:, None] * W + XTv)
        return t * max(data_loss + conj_v - vz, 0.0) + float(np.sum(np.einsum("kj,kj->k", R, R) / (2.0 * lams)))

    # ---- dual and duality gap ----
    # Their O(n) work runs over row blocks (``row_blocks``): cache-sized temporaries are
    # 1.5x to 2x faster than n-vector ones at n = 1e6, and use O(block) memory; the only
    # n-vector made is the dual point u (and the margins, given).
    def data_loss(self, margins, y, s, b: float = 0.0) -> float:
        """``sum_i s_i loss(y_i, margins_i + b)`` (no pass over X)."""
        loss = self.pointwise
        return sum(float(dot(s[k], row_totals(loss.value(y[k], margins[k] + b)))) for k in row_blocks(len(y)))

    def constant_intercept(self, y, s) -> float:
        """The best constant model's intercept, ``argmin_b sum_i s_i loss(y_i, b)``, in
        closed form: the weighted mean of ``y`` (squared loss) or ``log(S+ / S-)``, the log
        odds of the classes' total weights (logistic)."""
        total = float(s.sum())
        if self.loss == "squared":
            return (s @ y) / total if self.multi else float(dot(s, y)) / total
        if self.loss == "multinomial":  # log class weights, centred (a common shift is free)
            weights = np.bincount(MultinomialLoss._index(y), weights=s, minlength=self.n_outputs)
            logs = np.log(np.maximum(weights, np.finfo(np.float64).tiny))
            return logs - logs.mean()
        positive = 0.5 * (total + float(dot(s, y)))  # y = +-1
        negative = total - positive
        if positive <= 0 or negative <= 0:
            return 0.0  # one class has no weight: no finite minimizer (the estimators refuse it)
        return float(np.log(positive / negative))

    def best_intercept(self, margins, y, s, b0: float = 0.0, tol: float = 1e-13) -> float:
        """Minimize ``sum_i s_i loss(y_i, margins_i + b)`` over ``b`` (O(n) per step,
        no pass over X): safeguarded Newton on the monotone derivative."""
        loss = self.pointwise
        if self.loss == "squared":
            return (s @ (y - margins)) / s.sum() if self.multi else float(dot(s, y - margins) / s.sum())
        if self.loss == "multinomial":
            return self._best_multinomial_intercept(margins, y, s, b0, tol)

        def slope(b):
            first = second = 0.0
            for k in row_blocks(len(y)):
                d1, d2 = loss.derivative_curvature(y[k], margins[k] + b)
                first += float(dot(s[k], d1))
                second += float(dot(s[k], d2))
            return first, second

        lo, hi, b = -np.inf, np.inf, float(b0)
        scale = float(s.sum())
        for _ in range(200):
            g, h = slope(b)
            if abs(g) <= tol * scale:
                break
            if g > 0:
                hi = b
            else:
                lo = b
            step = b - g / h if h > 0 else np.nan
            if np.isfinite(lo) and np.isfinite(hi):
                b = step if lo < step < hi else 0.5 * (lo + hi)
            elif np.isfinite(step) and lo <= step <= hi:
                b = step
            else:  # no bracket yet on that side: move out geometrically
                b = b + (1.0 + abs(b)) * (1.0 if g < 0 else -1.0)
        return b

    def _best_multinomial_intercept(self, margins, y, s, b0, tol):
        """Newton on the ``K`` intercepts with the margins fixed (O(n K^2) a step), the
        common shift held at that of ``b0`` (the problem ignores it)."""
        K, m = self.n_outputs, float(s.sum())
        b = np.array(b0, dtype=np.float64)
        onehot_w = np.bincount(MultinomialLoss._index(y), weights=s, minlength=K)
        for _ in range(50):
            g, H = -onehot_w.copy(), np.zeros((K, K))
            for k in row_blocks(len(y)):
                p = MultinomialLoss.probabilities(margins[k] + b)
                sp = s[k][:, None] * p
                g += sp.sum(axis=0)
                H += np.diag(sp.sum(axis=0)) - p.T @ sp
            if np.max(np.abs(g)) <= tol * m:
                break
            H += np.full((K, K), max(np.trace(H), np.finfo(np.float64).tiny) / (K * K))
            step = np.linalg.solve(H, -g)
            b = b + step - step.mean()
        return b

    def dual_value(self, y, s, u, XTu) -> float:
        """``D(u) = -sum_i (s_i loss_i)^*(u_i) - ||X^T u||^2 / (2 lam)``, for feasible ``u``."""
        conjugate = self.pointwise.conjugate_sum
        rows = sum(conjugate(y[k], s[k], u[k]) for k in row_blocks(len(y)))
        if self.multi:
            return -rows - float(np.sum(np.einsum("kj,kj->k", XTu, XTu) / (2.0 * self.lams)))
        return -rows - float(dot(XTu, XTu)) / (2.0 * self.lam)

    def duality_gap(self, w, b, margins, y, s, rmatvec, anchor=None):
        """Primal value, dual value and relative gap ``(P - D) / D`` at ``(w, b)``.

        ``margins = X w`` (without ``b``); ``rmatvec(u)`` returns ``X^T u`` (one pass).
        The dual point is ``u_i = s_i loss'(y_i, z_i)`` at the best intercept for
        this ``w``, recentred so that ``sum(u) = 0`` when there is an intercept. The
        gap bounds the relative suboptimality ``(P(w, b) - P*) / P*``. Multinomial: the
        intercepts' rounding-level residual ``sum(u)`` is absorbed by the gradient gap's
        correction, which needs ``anchor`` (:meth:`intercept_anchor`).
        """
        loss = self.pointwise
        if self.loss == "multinomial":
            margins = np.asarray(margins, dtype=np.float64)
            primal = self.value(self.data_loss(margins, y, s, b), w)
            b_dual = self.best_intercept(margins, y, s, b) if self.fit_intercept else b
            u = np.empty_like(margins)
            for k in row_blocks(len(y)):
                u[k] = s[k][:, None] * loss.derivative(y[k], margins[k] + b_dual)
            grad = self.gradient(np.asarray(rmatvec(u)), u.sum(axis=0), w)
            at_best = self.value(self.data_loss(margins, y, s, b_dual), w)
            _, dual, _ = self.gradient_gap(at_best, grad, w, b_dual, anchor if self.needs_anchor(u.sum(axis=0)) else None)
            return primal, dual, relative_gap(primal, primal - dual)
        margins = np.asarray(margins, dtype=np.float64)
        primal = self.value(self.data_loss(margins, y, s, b), w)
        b_dual = self.best_intercept(margins, y, s, b) if self.fit_intercept else 0.0
        u = np.empty_like(margins)
        scale = (lambda sk: sk[:, None]) if self.multi else (lambda sk: sk)
        for k in row_blocks(len(y)):
            u[k] = scale(s[k]) * loss.derivative(y[k], margins[k] + b_dual)
        if self.fit_intercept:
            loss.center_dual(y, s, u)
        dual = self.dual_value(y, s, u, rmatvec(u))
        return primal, dual, relative_gap(primal, primal - dual)
