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
from libc.math cimport exp, fabs, log
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


# Chunks. The products reducing over rows (X^T r, the Hessian products, the Gram) take
# ``bounds``: m + 1 row offsets cutting the rows into m contiguous chunks, and write one
# partial result per chunk (row c of ``parts``), which the caller reduces in chunk order;
# so a result depends on the chunks (chosen from the data by tikhon.backends.cython),
# never on how many threads ran them. The row-wise products (X w, X W^T) take a row range.
cdef long long[::1] _chunk_bounds(object bounds, Py_ssize_t n, Py_ssize_t m):
    """``bounds`` as int64 offsets of ``m`` chunks within ``[0, n]`` (None: one chunk, all rows)."""
    cdef long long[::1] b
    cdef Py_ssize_t c
    if bounds is None:
        if m != 1:
            raise ValueError(f"{m} chunk outputs need bounds of {m + 1} row offsets")
        return np.array([0, n], dtype=np.int64)
    b = np.ascontiguousarray(bounds, dtype=np.int64)
    if b.shape[0] != m + 1:
        raise ValueError(f"bounds has {b.shape[0]} row offsets, expected {m + 1} (one more than the chunks)")
    if b[0] < 0 or b[m] > n:
        raise ValueError(f"bounds must lie within [0, {n}], got [{b[0]}, {b[m]}]")
    for c in range(m):
        if b[c + 1] < b[c]:
            raise ValueError("bounds must be non-decreasing")
    return b


cdef _row_range(Py_ssize_t n, Py_ssize_t* start, Py_ssize_t* stop):
    if stop[0] < 0:
        stop[0] = n
    if not (0 <= start[0] <= stop[0] <= n):
        raise ValueError(f"row range [{start[0]}, {stop[0]}) not within [0, {n}]")


def csr_matvec(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
               const double[::1] w, double[::1] out, Py_ssize_t start=0, Py_ssize_t stop=-1):
    """``out[start:stop] = X[start:stop] @ w`` accumulated in double (X read in its own
    dtype); ``stop = -1``: to the last row. Other entries of ``out`` are left as they are."""
    cdef Py_ssize_t n = indptr.shape[0] - 1
    cdef Py_ssize_t i, k
    cdef double acc
    if out.shape[0] != n:
        raise ValueError(f"out has {out.shape[0]} entries, expected {n}")
    _row_range(n, &start, &stop)
    with nogil:
        for i in range(start, stop):
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                acc = acc + <double>data[k] * w[indices[k]]
            out[i] = acc


cdef void _scatter_rows(const floating* data, const integral* indices, const integral* indptr, const double* r,
                        Py_ssize_t start, Py_ssize_t stop, double* o) noexcept nogil:
    """``o += X[start:stop].T @ r[start:stop]`` (rows with ``r_i = 0`` skipped)."""
    cdef Py_ssize_t i, k
    cdef double ri
    for i in range(start, stop):
        ri = r[i]
        if ri == 0.0:
            continue
        for k in range(indptr[i], indptr[i + 1]):
            o[indices[k]] += ri * <double>data[k]


def csr_rmatvec(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                const double[::1] r, double[:, ::1] parts, bounds=None, bint squares=False):
    """``parts[c] = X[rows of chunk c].T @ r[same rows]`` accumulated in double, for the
    chunks of ``bounds`` (None: one chunk of all rows); ``parts`` (chunks x d) is
    overwritten. ``squares``: ``(X * X).T @ r`` instead, entries squared (with no
    repeated column index in a row, the Hessian diagonal ``sum_i r_i x_ij^2``, without
    squaring X into a temporary). Rows with ``r_i = 0`` are skipped."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, m = parts.shape[0], d = parts.shape[1]
    cdef Py_ssize_t i, k, c, nk
    cdef const floating* vals
    cdef const integral* cols
    cdef double ri, x
    cdef double* o
    if r.shape[0] != n:
        raise ValueError(f"r has {r.shape[0]} entries, expected {n}")
    cdef long long[::1] b = _chunk_bounds(bounds, n, m)
    if d == 0:
        return
    with nogil:  # rows read through pointers (get_row): measured faster than indexing the memoryviews here
        for c in range(m):
            o = &parts[c, 0]
            for k in range(d):
                o[k] = 0.0
            if squares:
                for i in range(b[c], b[c + 1]):
                    ri = r[i]
                    if ri == 0.0:
                        continue
                    nk = get_row(&data[0], &indices[0], &indptr[0], i, &vals, &cols)
                    for k in range(nk):
                        x = <double>vals[k]
                        o[cols[k]] += ri * x * x
            else:
                _scatter_rows(&data[0], &indices[0], &indptr[0], &r[0], <Py_ssize_t>b[c], <Py_ssize_t>b[c + 1], o)


def csr_hessian_product(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                        const double[::1] c, const double[::1] v, double vb, double[:, ::1] parts,
                        double[::1] totals, bounds=None):
    """The one-output data Hessian times ``(v, vb)`` in one pass, per chunk of ``bounds``
    (None: one chunk of all rows): overwrites ``parts[k]`` with ``X^T t`` and ``totals[k]``
    with ``sum_i t_i`` over chunk ``k``'s rows, ``t_i = c_i (x_i v + vb)`` (``c``: the
    curvature weights ``s_i loss''_i``). Each row is read once: its dot product brings it
    into cache for its scatter (two passes, ``X v`` then ``X^T t``, read X twice). Per row
    the arithmetic is that of :func:`csr_matvec` then :func:`csr_rmatvec`; rows of weight
    0 are skipped."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, nc = parts.shape[0], d = parts.shape[1], i, k, m, ch
    cdef const floating* vals
    cdef const integral* cols
    cdef double t, ci, total
    cdef double* o
    if c.shape[0] != n:
        raise ValueError(f"c has {c.shape[0]} entries, expected {n}")
    if d != v.shape[0]:
        raise ValueError(f"parts has rows of {d} entries, expected {v.shape[0]}")
    if totals.shape[0] != nc:
        raise ValueError(f"totals has {totals.shape[0]} entries, expected {nc} (one per chunk)")
    cdef long long[::1] b = _chunk_bounds(bounds, n, nc)
    with nogil:
        for ch in range(nc):
            o = &parts[ch, 0] if d else NULL
            for k in range(d):
                o[k] = 0.0
            total = 0.0
            for i in range(b[ch], b[ch + 1]):
                ci = c[i]
                if ci == 0.0:
                    continue
                m = get_row(&data[0], &indices[0], &indptr[0], i, &vals, &cols)
                t = 0.0
                for k in range(m):
                    t = t + <double>vals[k] * v[cols[k]]
                t = (t + vb) * ci
                total = total + t
                if t != 0.0:
                    for k in range(m):
                        o[cols[k]] += t * <double>vals[k]
            totals[ch] = total


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
                   const double[::1] c, double[:, ::1] parts, Py_ssize_t n_features, bounds=None):
    """The upper triangle of ``X^T diag(c) X`` per chunk of ``bounds`` (None: one chunk
    of all rows), in double: ``parts[k]`` (``d * d`` values, a C-order ``d x d`` block,
    ``d = n_features``) is overwritten with chunk ``k``'s rows' sum. Each row adds
    ``c_i x_ij x_il`` at ``(min(j, l), max(j, l))`` for each pair of its entries,
    ``nnz_i (nnz_i + 1) / 2`` products, sorted indices or not (a repeated column index
    adds its cross products twice to the diagonal, as their sum squared would). The
    caller reduces the chunks and mirrors the strict upper triangle."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, nc = parts.shape[0], d = n_features
    cdef Py_ssize_t i, p, q, j, l, start, stop, ch, k
    cdef double ci, xp, v
    cdef double* o
    if c.shape[0] != n:
        raise ValueError(f"c has {c.shape[0]} entries, expected {n}")
    if parts.shape[1] != d * d:
        raise ValueError(f"parts has rows of {parts.shape[1]} entries, expected {d * d} (a d x d block)")
    cdef long long[::1] b = _chunk_bounds(bounds, n, nc)
    if d == 0:
        return
    with nogil:
        for ch in range(nc):
            o = &parts[ch, 0]
            for k in range(d * d):
                o[k] = 0.0
            for i in range(b[ch], b[ch + 1]):
                ci = c[i]
                if ci == 0.0:
                    continue
                start = indptr[i]
                stop = indptr[i + 1]
                for p in range(start, stop):
                    j = indices[p]
                    xp = ci * <double>data[p]
                    o[j * d + j] += xp * <double>data[p]
                    for q in range(p + 1, stop):
                        l = indices[q]
                        v = xp * <double>data[q]
                        if j < l:
                            o[j * d + l] += v
                        elif l < j:
                            o[l * d + j] += v
                        else:
                            o[j * d + j] += 2.0 * v


# ---------------------------------------------------------------------------
# K-column products (several outputs: a multinomial model, a multi-target ridge).
# One pass over X serves all K columns: each stored entry of a row is read once and
# meets the K contiguous coefficients of its column in a (d, K) C-order block (W^T, or
# the (d, K) accumulator of R^T X), instead of K passes each gathering one double.
# Per column the arithmetic is that of csr_matvec / csr_rmatvec, in the same order.
# ---------------------------------------------------------------------------
cdef inline void gather_8(const floating* vals, const integral* cols, Py_ssize_t m,
                          const double* WT, Py_ssize_t K, double* z) noexcept nogil:
    """``z[0:8] = x_i W^T[:, 0:8]`` (``WT`` offset to the first column, row stride ``K``),
    the 8 sums in registers: one read of the row (in L1) per 8 columns."""
    cdef Py_ssize_t k
    cdef const double* wj
    cdef double v, a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0, a4 = 0.0, a5 = 0.0, a6 = 0.0, a7 = 0.0
    for k in range(m):
        v = <double>vals[k]
        wj = WT + <Py_ssize_t>cols[k] * K
        a0 = a0 + v * wj[0]
        a1 = a1 + v * wj[1]
        a2 = a2 + v * wj[2]
        a3 = a3 + v * wj[3]
        a4 = a4 + v * wj[4]
        a5 = a5 + v * wj[5]
        a6 = a6 + v * wj[6]
        a7 = a7 + v * wj[7]
    z[0] = a0; z[1] = a1; z[2] = a2; z[3] = a3; z[4] = a4; z[5] = a5; z[6] = a6; z[7] = a7


cdef inline void gather_4(const floating* vals, const integral* cols, Py_ssize_t m,
                          const double* WT, Py_ssize_t K, double* z) noexcept nogil:
    """As :func:`gather_8` for 4 columns."""
    cdef Py_ssize_t k
    cdef const double* wj
    cdef double v, a0 = 0.0, a1 = 0.0, a2 = 0.0, a3 = 0.0
    for k in range(m):
        v = <double>vals[k]
        wj = WT + <Py_ssize_t>cols[k] * K
        a0 = a0 + v * wj[0]
        a1 = a1 + v * wj[1]
        a2 = a2 + v * wj[2]
        a3 = a3 + v * wj[3]
    z[0] = a0; z[1] = a1; z[2] = a2; z[3] = a3


cdef inline void gather_2(const floating* vals, const integral* cols, Py_ssize_t m,
                          const double* WT, Py_ssize_t K, double* z) noexcept nogil:
    """As :func:`gather_8` for 2 columns."""
    cdef Py_ssize_t k
    cdef const double* wj
    cdef double v, a0 = 0.0, a1 = 0.0
    for k in range(m):
        v = <double>vals[k]
        wj = WT + <Py_ssize_t>cols[k] * K
        a0 = a0 + v * wj[0]
        a1 = a1 + v * wj[1]
    z[0] = a0; z[1] = a1


cdef inline void row_gather(const floating* vals, const integral* cols, Py_ssize_t m,
                            const double* WT, Py_ssize_t K, double* z) noexcept nogil:
    """``z = x_i W^T`` (``K`` entries, overwritten) for the row ``(vals, cols, m)``: by
    chunks of 8, 4, 2 and 1 columns whose sums stay in registers (a loop over K inside
    the loop over entries keeps them in memory: 1.2x to 3x slower, K = 20 to 3)."""
    cdef Py_ssize_t k, c = 0
    cdef double a
    while c + 8 <= K:
        gather_8(vals, cols, m, WT + c, K, z + c)
        c += 8
    if c + 4 <= K:
        gather_4(vals, cols, m, WT + c, K, z + c)
        c += 4
    if c + 2 <= K:
        gather_2(vals, cols, m, WT + c, K, z + c)
        c += 2
    if c < K:
        a = 0.0
        for k in range(m):
            a = a + <double>vals[k] * WT[<Py_ssize_t>cols[k] * K + c]
        z[c] = a


cdef inline void row_scatter(const floating* vals, const integral* cols, Py_ssize_t m,
                             const double* r, Py_ssize_t K, double* G) noexcept nogil:
    """``G[j, :] += x_ij r`` (``G``: d x K, C order) for the row ``(vals, cols, m)``."""
    cdef Py_ssize_t k, c
    cdef double* gj
    cdef double v
    for k in range(m):
        v = <double>vals[k]
        gj = G + <Py_ssize_t>cols[k] * K
        for c in range(K):
            gj[c] += r[c] * v


cdef inline bint all_zero(const double* r, Py_ssize_t K) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(K):
        if r[c] != 0.0:
            return False
    return True


cdef _check_block(name, shape, Py_ssize_t rows, Py_ssize_t K):
    if shape[0] != rows or shape[1] != K:
        raise ValueError(f"{name} has shape ({shape[0]}, {shape[1]}), expected ({rows}, {K})")


def csr_matmat(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
               const double[:, ::1] WT, double[:, ::1] out, Py_ssize_t start=0, Py_ssize_t stop=-1):
    """``out[start:stop] = X[start:stop] @ WT`` (n x K) accumulated in double, for
    ``WT = W^T`` of shape ``(n_features, K)`` in C order (X read in its own dtype, once);
    ``stop = -1``: to the last row, other rows of ``out`` left as they are. The caller
    checked the CSR structure against ``WT.shape[0]`` features (``check_csr``)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, K = WT.shape[1], i, m
    cdef const floating* vals
    cdef const integral* cols
    _check_block("out", out.shape, n, K)
    _row_range(n, &start, &stop)
    if start == stop or K == 0:
        return
    if data.shape[0] == 0 or WT.shape[0] == 0:  # no stored entry (or no feature to hold one)
        out[start:stop, :] = 0.0
        return
    with nogil:
        for i in range(start, stop):
            m = get_row(&data[0], &indices[0], &indptr[0], i, &vals, &cols)
            row_gather(vals, cols, m, &WT[0, 0], K, &out[i, 0])


def csr_rmatmat(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                const double[:, ::1] R, double[:, ::1] parts, Py_ssize_t n_features, bounds=None,
                bint squares=False):
    """``X.T @ R`` (n_features x K) accumulated in double for ``R`` (n x K, C order), per
    chunk of ``bounds`` (None: one chunk of all rows): ``parts[c]`` (``d * K`` values, a
    C-order ``d x K`` block) is overwritten with chunk ``c``'s rows' sum. Each row
    scatters ``x_ij R[i, :]`` into row ``j`` of the block; rows of ``R`` that are all zero
    are skipped. ``squares``: ``(X * X).T @ R`` instead (with no repeated column index in
    a row, the K-output Hessian diagonal ``sum_i R_ik x_ij^2``, without squaring X into a
    temporary)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, K = R.shape[1], d = n_features, nc = parts.shape[0]
    cdef Py_ssize_t i, k, c, ch, m
    cdef const floating* vals
    cdef const integral* cols
    cdef const double* r
    cdef double* oj
    cdef double* o
    cdef double x
    _check_block("R", R.shape, n, K)
    _check_block("parts", parts.shape, nc, d * K)
    cdef long long[::1] b = _chunk_bounds(bounds, n, nc)
    if d == 0 or K == 0:
        return
    parts[:, :] = 0.0
    if n == 0 or data.shape[0] == 0:
        return
    with nogil:
        for ch in range(nc):
            o = &parts[ch, 0]
            for i in range(b[ch], b[ch + 1]):
                r = &R[i, 0]
                if all_zero(r, K):
                    continue
                m = get_row(&data[0], &indices[0], &indptr[0], i, &vals, &cols)
                if squares:
                    for k in range(m):
                        x = <double>vals[k]
                        x = x * x
                        oj = o + <Py_ssize_t>cols[k] * K
                        for c in range(K):
                            oj[c] += r[c] * x
                else:
                    row_scatter(vals, cols, m, r, K, o)


# ---------------------------------------------------------------------------
# Fused multinomial passes: each row's margins, softmax and contribution to X^T R in
# one visit of the row (X read once per gradient, once per Hessian product), with the
# formulas of tikhon.objective.MultinomialLoss and Backend._pointwise, in their order.
# ---------------------------------------------------------------------------
cdef inline bint class_index(double yv, Py_ssize_t K, Py_ssize_t* c) noexcept nogil:
    """``c = yv`` if ``yv`` is one of ``0, 1, ..., K - 1``; else False."""
    if not (yv >= 0.0 and yv < <double>K):
        return False
    c[0] = <Py_ssize_t>yv
    return <double>c[0] == yv


def multinomial_loss_grad(const floating[::1] data, const integral[::1] indices, const integral[::1] indptr,
                          const double[:, ::1] WT, const double[::1] b, const double[::1] y,
                          const double[::1] s, double[:, ::1] grad, double[:, ::1] grad_b,
                          double[::1] values, double[:, ::1] proba=None, bounds=None):
    """One pass of the multinomial data term at the margins ``z_i = x_i W^T + b``, per
    chunk of ``bounds`` (None: one chunk of all rows).

    Overwrites, for each chunk ``c`` and over its rows, ``values[c]`` with
    ``sum_i s_i (logsumexp(z_i) - z_{i, y_i})``, ``grad[c]`` (``d * K`` values, a C-order
    ``d x K`` block) with ``X^T R`` and ``grad_b[c]`` (K) with ``sum_i r_i``, where
    ``r_i = s_i (softmax(z_i) - e_{y_i})``; ``proba`` (n x K, optional) receives the
    chunks' softmax rows, for :func:`multinomial_hessian_product`. ``WT = W^T`` (d x K,
    C order); ``y`` holds class indices ``0..K-1`` as floats. Rows of weight 0 add
    nothing and are skipped (their ``proba`` row is zero)."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, K = WT.shape[1], d = WT.shape[0], nc = values.shape[0]
    cdef Py_ssize_t i, c, cy, m, ch, bad = -1
    cdef const floating* vals
    cdef const integral* cols
    cdef double si, top, zy, total, p, value
    cdef double* gb
    cdef double* g
    cdef bint keep = proba is not None
    _check_block("grad", grad.shape, nc, d * K)
    _check_block("grad_b", grad_b.shape, nc, K)
    if b.shape[0] != K:
        raise ValueError(f"b needs {K} entries (one per class)")
    if y.shape[0] != n or s.shape[0] != n:
        raise ValueError(f"y and s need {n} entries (one per row)")
    if keep:
        _check_block("proba", proba.shape, n, K)
    cdef long long[::1] bd = _chunk_bounds(bounds, n, nc)
    values[:] = 0.0
    if K == 0:
        return
    cdef double[::1] zbuf = np.empty(K)
    cdef double* z = &zbuf[0]
    grad_b[:, :] = 0.0
    if d:
        grad[:, :] = 0.0
    if keep and bd[nc] > bd[0]:
        proba[bd[0]:bd[nc], :] = 0.0
    if n == 0:
        return
    with nogil:
        for ch in range(nc):
            value = 0.0
            gb = &grad_b[ch, 0]
            g = &grad[ch, 0] if d else NULL
            for i in range(bd[ch], bd[ch + 1]):
                si = s[i]
                if si == 0.0:
                    continue
                if not class_index(y[i], K, &cy):
                    bad = i
                    break
                m = get_row(&data[0], &indices[0], &indptr[0], i, &vals, &cols)
                row_gather(vals, cols, m, &WT[0, 0], K, z)
                top = z[0] + b[0]
                for c in range(K):
                    z[c] = z[c] + b[c]
                    if z[c] > top:
                        top = z[c]
                zy = z[cy]
                total = 0.0
                for c in range(K):
                    z[c] = exp(z[c] - top)
                    total = total + z[c]
                value = value + si * (top + log(total) - zy)
                for c in range(K):
                    p = z[c] / total
                    if keep:
                        proba[i, c] = p
                    z[c] = si * (p - 1.0 if c == cy else p)
                    gb[c] += z[c]
                row_scatter(vals, cols, m, z, K, g)
            values[ch] = value
            if bad >= 0:
                break
    if bad >= 0:
        raise ValueError(f"y[{bad}] = {y[bad]} is not a class index in 0..{K - 1}")


def multinomial_hessian_product(const floating[::1] data, const integral[::1] indices,
                                const integral[::1] indptr, const double[:, ::1] VT, const double[::1] vb,
                                const double[:, ::1] proba, const double[::1] s, double[:, ::1] out,
                                double[:, ::1] out_b, bounds=None):
    """The multinomial data Hessian times ``(V, vb)`` in one pass, per chunk of ``bounds``
    (None: one chunk of all rows): overwrites ``out[c]`` (``d * K`` values, a C-order
    ``d x K`` block) with ``X^T U`` and ``out_b[c]`` with ``sum_i u_i`` over chunk ``c``'s
    rows, where ``u_i = s_i (diag(p_i) - p_i p_i^T) (x_i V^T + vb)`` and ``p_i`` is row
    ``i`` of ``proba`` (from :func:`multinomial_loss_grad`). ``VT = V^T`` (d x K, C order).
    Rows of weight 0 are skipped."""
    cdef Py_ssize_t n = indptr.shape[0] - 1, K = VT.shape[1], d = VT.shape[0], nc = out.shape[0]
    cdef Py_ssize_t i, c, m, ch
    cdef const floating* vals
    cdef const integral* cols
    cdef const double* p
    cdef double* ob
    cdef double* o
    cdef double si, total
    _check_block("out", out.shape, nc, d * K)
    _check_block("out_b", out_b.shape, nc, K)
    _check_block("proba", proba.shape, n, K)
    if vb.shape[0] != K:
        raise ValueError(f"vb needs {K} entries (one per class)")
    if s.shape[0] != n:
        raise ValueError(f"s needs {n} entries (one per row)")
    cdef long long[::1] bd = _chunk_bounds(bounds, n, nc)
    if K == 0:
        return
    cdef double[::1] tbuf = np.empty(K)
    cdef double* t = &tbuf[0]
    out_b[:, :] = 0.0
    if d:
        out[:, :] = 0.0
    if n == 0:
        return
    with nogil:
        for ch in range(nc):
            ob = &out_b[ch, 0]
            o = &out[ch, 0] if d else NULL
            for i in range(bd[ch], bd[ch + 1]):
                si = s[i]
                if si == 0.0:
                    continue
                m = get_row(&data[0], &indices[0], &indptr[0], i, &vals, &cols)
                row_gather(vals, cols, m, &VT[0, 0], K, t)
                p = &proba[i, 0]
                total = 0.0
                for c in range(K):
                    t[c] = t[c] + vb[c]
                    t[c] = p[c] * t[c]
                    total = total + t[c]
                for c in range(K):
                    t[c] = si * (t[c] - p[c] * total)
                    ob[c] += t[c]
                row_scatter(vals, cols, m, t, K, o)
