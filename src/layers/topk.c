/* Per-sample top-k: in each row keep the k largest values (ties: the lower
 * index wins), zero the rest; the gradient flows through the kept entries.
 * The kept indices of each row (ascending) stay in the scratch, where the
 * next dense layer and the previous one read them (ops->kept_index). */
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "layers.h"
#include "select.h"

AE_DEFINE_SELECT(select32, int32_t)

int ae_select_topk(const float *x, size_t n, size_t stride, size_t k, int32_t *idx) {
    return select32(x, n, stride, k, idx);
}

/* The k-th largest (k >= 1) of v[0..n-1], which it reorders: quickselect
 * with a median-of-3 pivot and Hoare partitioning, descending. No NaN. */
static float kth_largest(float *v, ptrdiff_t n, ptrdiff_t k) {
    ptrdiff_t lo = 0, hi = n - 1, target = k - 1;
    while (lo < hi) {
        float a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        float pivot = a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
        ptrdiff_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] > pivot) i++;
            while (v[j] < pivot) j--;
            if (i <= j) {
                float t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        /* [lo, j] >= pivot, (j, i) == pivot, [i, hi] <= pivot */
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            return v[target];
    }
    return v[target];
}

/* Rows of at most 128: each value's rank (how many values beat it, ties to
 * the lower index) by comparisons that vectorise; n² but branch-free. */
AE_HOT static void rank_select(const float *x, size_t n, size_t k, int32_t *idx, float *y) {
    int32_t greater[128];
    for (size_t i = 0; i < n; i++) greater[i] = 0;
    /* Vectorised over i: no horizontal sums. */
    for (size_t j = 0; j < n; j++) {
        float xj = x[j];
        for (size_t i = 0; i < n; i++) greater[i] += xj > x[i];
    }
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t g = greater[i];
        if (g < (int32_t)k)
            /* Equal values before i also beat it (rarely any). */
            for (size_t j = 0; j < i; j++) g += x[j] == x[i];
        int keep = g < (int32_t)k;
        y[i] = keep ? x[i] : 0.0f;
        if (keep) idx[c++] = (int32_t)i;
    }
}

AE_HOT static int has_nan(const float *x, size_t n) {
    int nan = 0;
    for (size_t i = 0; i < n; i++) nan |= x[i] != x[i];
    return nan;
}

/* Wide rows (k ≤ n/16): the row is split into nc = ⌈n/16⌉ groups of up to
 * 16 values, group c holding x[c], x[c + nc], x[c + 2nc], ... The k-th
 * largest of the group maxima is a lower bound τ of the row's k-th largest
 * value (k groups reach it), so only values ≥ τ can be kept; they go
 * through the heap. Strided groups make the maxima (and the NaN test) an
 * element-wise pass over 16 contiguous slices, which vectorises. */
AE_HOT static int group_maxima(const float *x, size_t n, size_t nc, float *maxima) {
    int nan = 0;
    for (size_t c = 0; c < nc; c++) maxima[c] = -INFINITY;
    for (size_t i = 0; i * nc < n; i++) {
        const float *s = x + i * nc;
        size_t len = n - i * nc < nc ? n - i * nc : nc;
        for (size_t c = 0; c < len; c++) {
            float v = s[c];
            nan |= v != v;
            maxima[c] = v > maxima[c] ? v : maxima[c];
        }
    }
    return nan;
}

static int select_wide(const float *x, size_t n, size_t k, int32_t *idx, float *tmp) {
    size_t nc = (n + 15) / 16;
    float *vals = tmp + n;
    int32_t *pos = (int32_t *)(tmp + 2 * n);
    if (group_maxima(x, n, nc, tmp)) {
        for (size_t t = 0; t < k; t++) idx[t] = (int32_t)t;
        return -1;
    }
    /* The quickselect reorders its copy; the maxima stay to pick the groups
     * (3·nc ≤ n since n ≥ 16). */
    float *sel = tmp + nc;
    int32_t *groups = (int32_t *)(tmp + 2 * nc);
    memcpy(sel, tmp, nc * sizeof *sel);
    float tau = kth_largest(sel, (ptrdiff_t)nc, (ptrdiff_t)k);
    size_t ng = 0;
    for (size_t c = 0; c < nc; c++)
        if (tmp[c] >= tau) groups[ng++] = (int32_t)c;
    /* Only groups whose maximum reaches τ hold candidates; walking slice by
     * slice, then group by group, visits them in index order (i·nc + c). */
    size_t m = 0;
    for (size_t i = 0; i * nc < n; i++) {
        const float *s = x + i * nc;
        size_t len = n - i * nc;
        for (size_t g = 0; g < ng; g++) {
            size_t c = (size_t)groups[g];
            if (c >= len) break;
            if (s[c] >= tau) {
                vals[m] = s[c];
                pos[m++] = (int32_t)(i * nc + c);
            }
        }
    }
    select32(vals, m, 1, k, idx); /* m ≥ k: positions in the candidate list */
    for (size_t t = 0; t < k; t++) idx[t] = pos[idx[t]];
    return 0;
}

/* Per-row selection: chunk maxima for wide sparse rows, ranks for short
 * rows, else a quickselect of the k-th largest value τ and one pass keeping
 * the values above τ and the first values equal to it — the same set, with
 * the lower index winning ties, already in ascending order.
 * Returns -1 for a NaN row, 1 when y is already written, else 0. */
static int select_row(const float *x, size_t n, size_t k, int32_t *idx, float *tmp, float *y) {
    if (k * 16 <= n) return select_wide(x, n, k, idx, tmp);
    if (has_nan(x, n)) {
        for (size_t t = 0; t < k; t++) idx[t] = (int32_t)t;
        return -1;
    }
    if (n <= 128) {
        rank_select(x, n, k, idx, y);
        return 1;
    }
    memcpy(tmp, x, n * sizeof *tmp);
    float tau = kth_largest(tmp, (ptrdiff_t)n, (ptrdiff_t)k);
    size_t above = 0;
    for (size_t i = 0; i < n; i++) above += x[i] > tau;
    size_t equal = k - above, c = 0;
    for (size_t i = 0; i < n && c < k; i++) {
        if (x[i] > tau)
            idx[c++] = (int32_t)i;
        else if (x[i] == tau && equal) {
            idx[c++] = (int32_t)i;
            equal--;
        }
    }
    return 0;
}

static ae_status topk_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    size_t k = (size_t)spec->iparam[0];
    if (k < 1 || k > L->in)
        return ae_error(err, AE_ERR_RANGE, "top-k: k must be in [1, %zu] (the width of its input), got %zu",
                        L->in, k);
    L->out_shape = L->in_shape;
    L->sparse_k = k;
    L->keeps_zeros = 1;
    return AE_OK;
}

/* The kept indices [batch, k], then three rows' worth of floats for the
 * selection. */
static size_t topk_scratch(const ae_layer *L, size_t batch) {
    return batch * L->sparse_k + 3 * L->in;
}

static void no_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void topk_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t n = L->in, k = L->sparse_k;
    int32_t *idx = (int32_t *)io->scratch;
    for (size_t r = 0; r < io->batch; r++) {
        const float *x = io->x + r * n;
        float *y = io->y + r * n;
        int32_t *ix = idx + r * k;
        int st = select_row(x, n, k, ix, io->scratch + io->batch * k, y);
        if (st < 0) {
            /* A NaN row stays NaN, so the loss check refuses the step. */
            for (size_t j = 0; j < n; j++) y[j] = NAN;
            continue;
        }
        if (st > 0) continue;
        if (x != y) memset(y, 0, n * sizeof *y);
        for (size_t t = 0; t < k; t++) y[ix[t]] = x[ix[t]];
        if (x == y) /* in place: zero the gaps between the kept entries */
            for (size_t t = 0, j = 0; t <= k; t++) {
                size_t end = t < k ? (size_t)ix[t] : n;
                for (; j < end; j++) y[j] = 0.0f;
                j = end + 1;
            }
    }
}

/* dx = dy at the kept entries, 0 elsewhere; with io->sparse->dx_kept_only the layer
 * before reads only the kept entries, so the zeros are not written. */
static void topk_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                          int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (!io->dx) return;
    size_t n = L->in, k = L->sparse_k;
    const int32_t *idx = (const int32_t *)io->scratch;
    if (!(io->sparse && io->sparse->dx_kept_only)) memset(io->dx, 0, io->batch * n * sizeof(float));
    for (size_t r = 0; r < io->batch; r++) {
        const int32_t *ix = idx + r * k;
        const float *dy = io->dy + r * n;
        float *dx = io->dx + r * n;
        for (size_t t = 0; t < k; t++) dx[ix[t]] = dy[ix[t]];
    }
}

static const int32_t *topk_kept_index(const ae_layer *L, const float *scratch) {
    (void)L;
    return (const int32_t *)scratch;
}

static const ae_layer_attr topk_attrs[] = {
    {.name = "k", .type = AE_ATTR_INT, .slot = 0, .lo = 1, .hi = (double)AE_MAX_DIM},
};

static const ae_layer_desc topk_desc = {
    .kind = AE_LAYER_TOPK,
    .name = "topk",
    .flags = AE_LK_SELECT,
    .attrs = topk_attrs,
    .nattrs = sizeof topk_attrs / sizeof topk_attrs[0],
};

const ae_layer_ops ae_topk_ops = {
    .desc = &topk_desc,
    .setup = topk_setup,
    .scratch_floats = topk_scratch,
    .init = no_init,
    .forward = topk_forward,
    .backward = topk_backward,
    .kept_index = topk_kept_index,
};
