# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled kernels for CSR input: dual coordinate descent (rows are the coordinates).

Fused over float32/float64 data and int32/int64 indices; the caller's arrays are
read in place, never cast or copied. Every accumulation is in double.

Scaling. tikhon minimizes ``P(w, b) = sum_i s_i loss(y_i, x_i w + b) + lam/2 ||w||^2``.
``P / lam`` is the LIBLINEAR primal ``1/2 ||w||^2 + sum_i C_i loss_i`` with
``C_i = s_i / lam`` (``= C s_i`` for logistic regression), same minimizer. The
intercept enters as ``b = offset + rho * sum_i y_i alpha_i`` (ridge: ``rho * sum_i beta_i``):
with ``rho = 0`` it is fixed at ``offset``; with ``rho > 0`` the pass solves the
augmented-Lagrangian sub-problem of the unpenalized intercept, i.e. LIBLINEAR's bias
column of value ``sqrt(rho)`` (added to every ``||x_i||^2``, the running sum kept as a
scalar: no copy of X) whose penalty is centered at ``offset``. The solver driver
(``tikhon.solvers.dual_cd``) moves ``offset`` (the multiplier step).

Logistic (Yu, Huang & Lin 2011; LIBLINEAR ``-s 7``). Dual variable
``alpha_i in [0, C_i]``, ``w = sum_i alpha_i y_i x_i``. The state stores, per row,
one double: the *logit* ``t_i = log(alpha_i / (C_i - alpha_i))``, from which both
``alpha_i = C_i sigmoid(t_i)`` and ``C_i - alpha_i = C_i sigmoid(-t_i)`` are recovered
to full relative precision (what LIBLINEAR gets by storing the pair), at half the
memory, and the entropy's derivative ``log(alpha_i / (C_i - alpha_i))`` is ``t_i``
itself: no logarithm in the hot loop. The 1-D sub-problem on ``alpha_i`` is solved by
Newton's method in ``t``, safeguarded by bisection on a bracket known in closed form.
At the optimum ``t_i = -y_i (x_i w + b)``.

Ridge. Dual variable ``beta_i`` (``= C_i`` times the residual at the optimum),
``w = sum_i beta_i x_i``; each coordinate step is the exact closed-form minimizer.
"""
cimport cython
from libc.math cimport exp, fabs
from libc.stdint cimport uint64_t, uint32_t

import numpy as np

ctypedef fused floating:
    float
    double

ctypedef fused integral:
    int
    long long


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define TIKHON_PREFETCH(p) __builtin_prefetch((const void*)(p), 0, 3)
    #else
    #define TIKHON_PREFETCH(p) ((void)0)
    #endif
    """
    void prefetch "TIKHON_PREFETCH"(const void* p) noexcept nogil

# Rows are visited in random order: each row's values, indices and per-row state are
# cache misses. The passes prefetch them a few rows ahead (the permutation is known).
DEF AHEAD = 6
DEF LINES = 4  # cache lines of a row's values/indices fetched ahead; the hardware follows
# Logistic passes read each row's label from the permutation itself (bit 31 of its entry:
# set for y_i = +1), read sequentially, instead of y[i], one more random cache line a row.
DEF LABEL_BIT = 0x80000000
DEF ROW_MASK = 0x7FFFFFFF


cdef inline void prefetch_ahead(const floating* data, const integral* indices, const integral* indptr,
                                const uint32_t* order, Py_ssize_t pos, Py_ssize_t n,
                                const double* a, const double* b, const double* c) noexcept nogil:
    """Prefetch row ``order[pos + AHEAD]``: its values, indices and its entries of the
    per-row arrays ``a``, ``b``, ``c`` (each may be NULL); ``indptr`` twice as far ahead."""
    cdef Py_ssize_t j, start, stop, k
    if pos + 2 * AHEAD < n:
        prefetch(indptr + (order[pos + 2 * AHEAD] & ROW_MASK))
    if pos + AHEAD < n:
        j = order[pos + AHEAD] & ROW_MASK
        if a != NULL:
            prefetch(a + j)
        if b != NULL:
            prefetch(b + j)
        if c != NULL:
            prefetch(c + j)
        start = <Py_ssize_t>indptr[j]
        stop = <Py_ssize_t>indptr[j + 1]
        k = 0
        while start + k < stop and k < LINES * 64 // sizeof(floating):
            prefetch(data + start + k)
            k += 64 // sizeof(floating)
        k = 0
        while start + k < stop and k < LINES * 64 // sizeof(integral):
            prefetch(indices + start + k)
            k += 64 // sizeof(integral)


# ---------------------------------------------------------------------------
# the row accessor: pointer + length, no Python, no copy
# ---------------------------------------------------------------------------
cdef inline Py_ssize_t get_row(const floating* data, const integral* indices, const integral* indptr,
                               Py_ssize_t i, const floating** values,
                               const integral** columns) noexcept nogil:
    cdef Py_ssize_t start = <Py_ssize_t>indptr[i]
    values[0] = data + start
    columns[0] = indices + start
    return <Py_ssize_t>indptr[i + 1] - start


cdef inline double row_dot(const floating* vals, const integral* cols, Py_ssize_t m,
                           const double* w, double* sqnorm) noexcept nogil:
    """``x_i . w`` for the row ``(vals, cols, m)``; ``||x_i||^2`` into ``sqnorm`` (same loop)."""
    cdef double dot = 0.0, sq = 0.0, val
    cdef Py_ssize_t k
    for k in range(m):
        val = vals[k]
        dot = dot + val * w[cols[k]]
        sq = sq + val * val
    sqnorm[0] = sq
    return dot


cdef inline void row_axpy(double a, const floating* vals, const integral* cols, Py_ssize_t m,
                          double* w) noexcept nogil:
    """``w += a x_i`` for the row ``(vals, cols, m)``."""
    cdef Py_ssize_t k
    for k in range(m):
        w[cols[k]] += a * vals[k]


# ---------------------------------------------------------------------------
# seeded RNG (xorshift64*) and the per-pass permutation
# ---------------------------------------------------------------------------
cdef inline uint64_t xorshift(uint64_t* state) noexcept nogil:
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * <uint64_t>2685821657736338717ULL


cdef inline void shuffle(uint32_t* order, Py_ssize_t n, uint64_t* state) noexcept nogil:
    """Fisher-Yates; the bias of ``% (i + 1)`` is below 2**-32 for n < 2**32."""
    cdef Py_ssize_t i, j
    cdef uint32_t tmp
    for i in range(n - 1, 0, -1):
        j = <Py_ssize_t>(xorshift(state) % <uint64_t>(i + 1))
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


cdef struct Work:
    const double* y
    const double* s
    double* v
    double* w
    uint32_t* order
    const double* sqnorm  # NULL: squared row norms are computed on the fly (no duplicates)
    double s_uniform  # > 0: every s_i equals it (s is not read in the passes); else 0
    uint64_t rng
    double C
    double offset
    double rho
    double innereps
    double innereps_min
    long long steps
    long long updates


cdef class DualState:
    """What a dual CD run carries between calls (owned by the solver driver).

    ``y``, ``s``: labels/targets and sample weights (float64, the estimator's arrays,
    read only); ``v``: the dual variables (logits for logistic, ``beta`` for ridge);
    ``w``: ``sum_i`` (dual_i) ``x_i`` in float64; ``order``: the permutation buffer.
    Scalars: ``C`` (``1 / lam``), ``offset`` (the intercept ``b``), ``innereps``
    (logistic: sub-problems with ``|gradient| <= innereps`` are skipped; LIBLINEAR's
    schedule divides it by 10 after a pass with fewer than n/10 Newton steps, down to
    ``innereps_min``), ``seed``. ``sqnorm`` (optional): exact squared row norms, needed
    only when some row repeats a column index (else they are computed on the fly).
    ``labels``: ``y`` holds +-1 labels (logistic), carried in the permutation's entries.
    """
    cdef const double[::1] y
    cdef const double[::1] s
    cdef double[::1] v
    cdef double[::1] w
    cdef uint32_t[::1] order
    cdef double[::1] sqnorm
    cdef bint has_sqnorm
    cdef readonly bint labels
    cdef double s_uniform
    cdef uint64_t rng
    cdef public double C
    cdef public double offset
    cdef public double rho
    cdef public double innereps
    cdef public double innereps_min
    cdef public long long newton_steps
    cdef public long long updates

    def __init__(self, const double[::1] y, const double[::1] s, double[::1] v, double[::1] w,
                 double C, unsigned long long seed=0, double[::1] sqnorm=None, bint labels=False):
        cdef Py_ssize_t n = y.shape[0], i
        if s.shape[0] != n or v.shape[0] != n:
            raise ValueError("y, s and the dual variables must have one entry per row")
        if n > ROW_MASK:
            raise ValueError("dual CD supports fewer than 2**31 rows")
        self.y = y
        self.s = s
        self.v = v
        self.w = w
        self.C = C
        self.offset = 0.0
        self.rho = 0.0
        self.innereps = 1e-2
        self.innereps_min = 1e-12
        self.has_sqnorm = sqnorm is not None
        if self.has_sqnorm:
            if sqnorm.shape[0] != n:
                raise ValueError("sqnorm must have one entry per row")
            self.sqnorm = sqnorm
        self.newton_steps = 0
        self.updates = 0
        self.order = np.arange(n, dtype=np.uint32)
        self.labels = labels
        if labels:
            for i in range(n):
                if y[i] == 1.0:
                    self.order[i] |= LABEL_BIT
                elif y[i] != -1.0:
                    raise ValueError(f"labels must be -1 or +1, got y[{i}] = {y[i]}")
        self.s_uniform = 0.0
        if n > 0 and np.min(s) == np.max(s) and s[0] > 0:
            self.s_uniform = s[0]
        # splitmix64 of the seed: a non-zero, well-mixed xorshift state
        cdef uint64_t z = <uint64_t>seed + <uint64_t>0x9E3779B97F4A7C15ULL
        z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9ULL
        z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EBULL
        z = z ^ (z >> 31)
        self.rng = z if z != 0 else 1

    cdef Work work(self):
        cdef Work wk
        wk.y = &self.y[0]
        wk.s = &self.s[0]
        wk.v = &self.v[0]
        wk.w = &self.w[0] if self.w.shape[0] > 0 else NULL
        wk.order = &self.order[0]
        wk.sqnorm = &self.sqnorm[0] if self.has_sqnorm else NULL
        wk.s_uniform = self.s_uniform
        wk.rng = self.rng
        wk.C = self.C
        wk.offset = self.offset
        wk.rho = self.rho
        wk.innereps = self.innereps
        wk.innereps_min = self.innereps_min
        wk.steps = 0
        wk.updates = 0
        return wk

    cdef void store(self, Work* wk):
        self.rng = wk.rng
        self.innereps = wk.innereps
        self.newton_steps += wk.steps
        self.updates += wk.updates


cdef inline void sigmoid_pair(double t, double* p, double* q) noexcept nogil:
    """``p = sigmoid(t)``, ``q = sigmoid(-t) = 1 - p``, both to full relative precision."""
    cdef double e = exp(-fabs(t))
    cdef double r = 1.0 / (1.0 + e)
    if t >= 0:
        p[0] = r
        q[0] = e * r
    else:
        p[0] = e * r
        q[0] = r


cdef double _logistic_epochs(const floating* data, const integral* indices, const integral* indptr,
                             Work* st, Py_ssize_t n, int n_epochs) noexcept nogil:
    cdef const double* y = st.y
    cdef const double* s = st.s
    cdef double* t = st.v
    cdef double* w = st.w
    cdef uint32_t* order = st.order
    cdef const double* sqnorm = st.sqnorm
    cdef double C = st.C, b = st.offset, eps = st.innereps
    cdef const floating* vals
    cdef const integral* cols
    cdef Py_ssize_t m, i, pos
    cdef int epoch, it
    cdef double Ci, dot, sq, yi, g, gmax = 0.0, aC, c0, lo, hi, tt, tn, phi, dphi
    cdef double p_old, q_old, p, q, delta
    cdef double rho = st.rho, sy = 0.0, c = st.offset, Cu = C * st.s_uniform
    cdef const double* s_read = NULL if Cu > 0.0 else s  # uniform weights: s is not read
    cdef long long steps = 0, updates = 0, epoch_steps
    cdef uint32_t entry
    if rho != 0.0:  # sum_i y_i alpha_i, exact at the start of every call
        for i in range(n):
            if s[i] > 0.0:
                sigmoid_pair(t[i], &p, &q)
                sy = sy + y[i] * C * s[i] * p
    b = c + rho * sy
    for epoch in range(n_epochs):
        shuffle(order, n, &st.rng)
        gmax = 0.0
        epoch_steps = steps
        for pos in range(n):
            prefetch_ahead(data, indices, indptr, order, pos, n, t, s_read, NULL)
            entry = order[pos]
            i = entry & ROW_MASK
            Ci = Cu if s_read == NULL else C * s[i]
            if Ci <= 0.0:
                continue
            m = get_row(data, indices, indptr, i, &vals, &cols)
            dot = row_dot(vals, cols, m, w, &sq)
            if sqnorm != NULL:
                sq = sqnorm[i]
            yi = 1.0 if entry >> 31 else -1.0  # the label bit
            # gradient of the dual in alpha_i: y_i (x_i w + b) + log(alpha_i / (C_i - alpha_i))
            g = yi * (dot + b) + t[i]
            if fabs(g) > gmax:
                gmax = fabs(g)
            if fabs(g) <= eps:
                continue
            # phi(u) = u + c0 + aC sigmoid(u): the same gradient as a function of the logit u
            aC = (sq + rho) * Ci
            sigmoid_pair(t[i], &p_old, &q_old)
            c0 = yi * (dot + b) - aC * p_old
            lo = -c0 - aC
            hi = -c0
            tt = t[i]
            if g > 0:
                if tt < hi:
                    hi = tt
            elif tt > lo:
                lo = tt
            phi = g
            p = p_old
            q = q_old
            for it in range(100):
                dphi = 1.0 + aC * p * q
                tn = tt - phi / dphi
                if not (lo < tn < hi):
                    tn = 0.5 * (lo + hi)
                tt = tn
                sigmoid_pair(tt, &p, &q)
                phi = tt + c0 + aC * p
                steps += 1
                if fabs(phi) <= eps or hi - lo <= 1e-15 * (1.0 + fabs(tt)):
                    break
                if phi > 0:
                    hi = tt
                else:
                    lo = tt
            # alpha_new - alpha_old, from the side that is small (no cancellation)
            if t[i] < 0:
                delta = Ci * (p - p_old)
            else:
                delta = Ci * (q_old - q)
            t[i] = tt
            if delta != 0.0:
                delta = delta * yi
                if rho != 0.0:
                    sy = sy + delta
                    b = c + rho * sy
                row_axpy(delta, vals, cols, m, w)
                updates += 1
        # LIBLINEAR's schedule: tighten the sub-problem tolerance once few Newton steps are taken
        if steps - epoch_steps <= n // 10 and eps > st.innereps_min:
            eps = max(st.innereps_min, 0.1 * eps)
    st.innereps = eps
    st.steps += steps
    st.updates += updates
    return gmax


cdef double _ridge_epochs(const floating* data, const integral* indices, const integral* indptr,
                          Work* st, Py_ssize_t n, int n_epochs) noexcept nogil:
    cdef const double* y = st.y
    cdef const double* s = st.s
    cdef double* beta = st.v
    cdef double* w = st.w
    cdef uint32_t* order = st.order
    cdef const double* sqnorm = st.sqnorm
    cdef double C = st.C, b = st.offset
    cdef const floating* vals
    cdef const integral* cols
    cdef Py_ssize_t m, i, pos
    cdef int epoch
    cdef double Ci, dot, sq, g, gmax = 0.0, delta
    cdef double rho = st.rho, sb = 0.0, c = st.offset, Cu = C * st.s_uniform
    cdef const double* s_read = NULL if Cu > 0.0 else s  # uniform weights: s is not read
    if rho != 0.0:  # sum_i beta_i, exact at the start of every call
        for i in range(n):
            sb = sb + beta[i]
    b = c + rho * sb
    for epoch in range(n_epochs):
        shuffle(order, n, &st.rng)
        gmax = 0.0
        for pos in range(n):
            prefetch_ahead(data, indices, indptr, order, pos, n, y, beta, s_read)
            i = order[pos]
            Ci = Cu if s_read == NULL else C * s[i]
            if Ci <= 0.0:
                continue
            m = get_row(data, indices, indptr, i, &vals, &cols)
            dot = row_dot(vals, cols, m, w, &sq)
            if sqnorm != NULL:
                sq = sqnorm[i]
            # gradient of the dual in beta_i: x_i w + b + beta_i / C_i - y_i
            g = dot + b + beta[i] / Ci - y[i]
            if fabs(g) > gmax:
                gmax = fabs(g)
            if g == 0.0:
                continue
            delta = -g / (sq + rho + 1.0 / Ci)
            beta[i] += delta
            if rho != 0.0:
                sb = sb + delta
                b = c + rho * sb
            row_axpy(delta, vals, cols, m, w)
    return gmax


def logistic_epochs(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                    DualState state, int n_epochs):
    """Run ``n_epochs`` passes (each over a fresh seeded permutation of the rows) of
    logistic dual CD; returns the largest ``|dual gradient|`` met in the last pass.
    The GIL is released. Rows with ``s_i = 0`` are skipped. The caller checked the
    CSR structure (``check_csr``) and that it has no duplicate column in a row."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef double gmax
    _check_state(state, n)
    if not state.labels:
        raise ValueError("logistic dual CD needs a DualState made with labels=True")
    if n == 0 or n_epochs <= 0:
        return 0.0
    cdef Work wk = state.work()
    with nogil:
        gmax = _logistic_epochs(&data[0], &indices[0], &indptr[0], &wk, n, n_epochs)
    state.store(&wk)
    return gmax


def ridge_epochs(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                 DualState state, int n_epochs):
    """Ridge dual CD (closed-form coordinate steps), as :func:`logistic_epochs`."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef double gmax
    _check_state(state, n)
    if state.labels:
        raise ValueError("ridge dual CD needs a DualState made with labels=False")
    if n == 0 or n_epochs <= 0:
        return 0.0
    cdef Work wk = state.work()
    with nogil:
        gmax = _ridge_epochs(&data[0], &indices[0], &indptr[0], &wk, n, n_epochs)
    state.store(&wk)
    return gmax


cdef _check_state(DualState state, Py_ssize_t n):
    if state.y.shape[0] != n:
        raise ValueError(f"the dual state has {state.y.shape[0]} rows, X has {n}")


# ---------------------------------------------------------------------------
# structure check and products (double accumulation whatever X's dtype)
# ---------------------------------------------------------------------------
def check_csr(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
              Py_ssize_t n_features):
    """Validate a CSR structure before any unchecked read; returns the number of rows
    that contain a repeated column index (0 for canonical or merely unsorted CSR).

    Raises ``ValueError`` for a malformed ``indptr`` or a column index out of range,
    and reads nothing out of bounds whatever the arrays hold: each row's end is checked
    against its start and against the number of stored values before the row is read
    (an ``indptr`` that rises past the end and falls back, e.g. ``[0, 100, 5]`` with 5
    values, is refused at its first row). Uses a work array of ``n_features`` int64 (no
    copy of X).
    """
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t i, k, j, start, stop, nnz = data.shape[0], dup_rows = 0, bad = -1
    cdef bint dup
    if n < 0:
        raise ValueError("indptr is empty")
    if indices.shape[0] != nnz:
        raise ValueError(f"CSR indices has {indices.shape[0]} entries, data has {nnz}")
    if indptr[0] != 0 or indptr[n] > nnz:
        raise ValueError(f"malformed CSR indptr: starts at {indptr[0]}, ends at {indptr[n]} with {nnz} stored values")
    cdef long long[::1] stamp = np.full(max(n_features, 1), -1, dtype=np.int64)
    with nogil:
        for i in range(n):
            start = indptr[i]
            stop = indptr[i + 1]
            if stop < start or stop > nnz:
                bad = i
                break
            dup = False
            for k in range(start, stop):
                j = indices[k]
                if j < 0 or j >= n_features:
                    bad = -2 - k
                    break
                if stamp[j] == i:
                    dup = True
                stamp[j] = i
            if bad != -1:
                break
            if dup:
                dup_rows += 1
    if bad >= 0:
        raise ValueError(f"malformed CSR indptr: row {bad} spans [{indptr[bad]}, {indptr[bad + 1]}), "
                         f"not within [{indptr[bad]}, {nnz}] (indptr must be non-decreasing and end "
                         f"within the {nnz} stored values)")
    if bad < -1:
        raise ValueError(f"CSR column index {indices[-2 - bad]} out of range [0, {n_features})")
    return dup_rows


def csr_matvec(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
               const double[::1] w, double[::1] out):
    """``out = X @ w`` accumulated in double (X read in its own dtype)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t i, k
    cdef double acc
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} entries, expected {n}")
    with nogil:
        for i in range(n):
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                acc = acc + <double>data[k] * w[indices[k]]
            out[i] = acc


def csr_rmatvec(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                const double[::1] r, double[::1] out, bint squares=False):
    """``out = X.T @ r`` accumulated in double; ``out`` is overwritten. ``squares``:
    ``(X * X).T @ r`` instead, entries squared (with no repeated column index in a row,
    the Hessian diagonal ``sum_i r_i x_ij^2``, without squaring X into a temporary)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t i, k
    cdef double ri, x
    if r.shape[0] != n:
        raise ValueError(f"r has {r.shape[0]} entries, expected {n}")
    with nogil:
        for k in range(out.shape[0]):
            out[k] = 0.0
        for i in range(n):
            ri = r[i]
            if ri == 0.0:
                continue
            if squares:
                for k in range(indptr[i], indptr[i + 1]):
                    x = <double>data[k]
                    out[indices[k]] += ri * x * x
            else:
                for k in range(indptr[i], indptr[i + 1]):
                    out[indices[k]] += ri * <double>data[k]


def csr_row_norms_sq_merged(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                            Py_ssize_t n_features, double[::1] out):
    """``out[i] = ||x_i||^2`` where repeated column indices in a row are summed first
    (scipy's meaning of duplicates). Work array: ``n_features`` doubles."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t i, k, j
    cdef double acc, v
    cdef double[::1] buf = np.zeros(max(n_features, 1))
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} entries, expected {n}")
    with nogil:
        for i in range(n):
            for k in range(indptr[i], indptr[i + 1]):
                buf[indices[k]] += <double>data[k]
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                j = indices[k]
                v = buf[j]
                acc = acc + v * v
                buf[j] = 0.0
            out[i] = acc


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


def csr_gram_upper(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                   const double[::1] c, double[:, ::1] out):
    """Add the upper triangle of ``X^T diag(c) X`` to ``out`` (``d x d``, C order), in
    double: each row adds ``c_i x_ij x_il`` at ``(min(j, l), max(j, l))`` for each pair of
    its entries, ``nnz_i (nnz_i + 1) / 2`` products, sorted indices or not (a repeated
    column index adds its cross products twice to the diagonal, as their sum squared
    would). The caller mirrors the strict upper triangle."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t d = out.shape[0]
    cdef Py_ssize_t i, p, q, j, l, start, stop
    cdef double ci, xp, v
    if c.shape[0] != n:
        raise ValueError(f"c has {c.shape[0]} entries, expected {n}")
    if out.shape[1] != d:
        raise ValueError("out must be square")
    with nogil:
        for i in range(n):
            ci = c[i]
            if ci == 0.0:
                continue
            start = indptr[i]
            stop = indptr[i + 1]
            for p in range(start, stop):
                j = indices[p]
                xp = ci * <double>data[p]
                out[j, j] += xp * <double>data[p]
                for q in range(p + 1, stop):
                    l = indices[q]
                    v = xp * <double>data[q]
                    if j < l:
                        out[j, l] += v
                    elif l < j:
                        out[l, j] += v
                    else:
                        out[j, j] += 2.0 * v
