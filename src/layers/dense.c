/* Dense layer: y = act(x Wᵀ + b), W [out, in] as PyTorch's nn.Linear.
 * A tied decoder layer reads its encoder partner's weight transposed
 * (w_transposed): W_dec = W_encᵀ, stored [in, out]. */
#include <math.h>
#include <string.h>

#include "core/pool.h"
#include "layers.h"
#include "optim/optim.h"

static ae_status dense_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    (void)err;
    L->out_shape = (ae_shape){spec->units, 1, 1};
    L->w_count = L->in * spec->units; /* both at most 2^24: no overflow */
    L->b_count = spec->bias ? spec->units : 0;
    L->keep_pre = ae_act_needs_pre(spec->act);
    return AE_OK;
}

/* With a sparse input (in_sparse_k > 0): see sparse_in_scratch. With a
 * sparse dy (out_sparse_k > 0): then the per-unit lists, out + 1 + batch·k
 * ints, and the used-row flags (out bytes). */
static size_t sparse_in_scratch(const ae_layer *L, size_t batch);
static size_t dense_scratch(const ae_layer *L, size_t batch) {
    return (L->in_sparse_k ? sparse_in_scratch(L, batch) : 0) +
           (L->out_sparse_k ? L->out + 1 + batch * L->out_sparse_k + (L->out + 3) / 4 : 0);
}

static void dense_init(const ae_layer *L, float *params, ae_rng *rng) {
    /* nn.Linear: kaiming_uniform(a=√5) gives U(-1/√in, 1/√in) for W, and b alike. */
    float bound = 1.0f / sqrtf((float)L->in);
    if (!L->w_transposed) {
        float *w = params + L->w_off;
        for (size_t i = 0; i < L->w_count; i++) w[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
    }
    float *b = params + L->b_off;
    for (size_t i = 0; i < L->b_count; i++) b[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
}

/* y += x, in the vector width of the machine (the same sums as a plain loop). */
AE_HOT static void add_to(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* Cheap passes: half the usual share is worth a thread. */
#define DENSE_MIN_EACH (AE_POOL_MIN_VALUES / 2)

typedef struct bias_act_job {
    const ae_layer *L;
    const float *bias;
    float *pre, *y;
} bias_act_job;

static void bias_act_rows(void *ctx, size_t lo, size_t hi) {
    const bias_act_job *j = ctx;
    size_t n = j->L->out;
    for (size_t r = lo; r < hi; r++) {
        float *p = j->pre + r * n;
        if (j->bias) add_to(p, j->bias, n);
        ae_act_forward(j->L->act, j->L->slope, p, j->y + r * n, n);
    }
}

/* Adds the bias and applies the activation, row by row (rows on the
 * pass's threads). */
static void bias_act(const ae_layer *L, const float *bias, float *pre, float *y, size_t batch,
                     int threads) {
    bias_act_job j = {L, bias, pre, y};
    ae_pool_for(threads, batch, 1, ae_pool_units(DENSE_MIN_EACH, L->out), bias_act_rows, &j);
}

typedef struct dpre_job {
    const ae_layer *L;
    const ae_layer_io *io;
    float *db;
} dpre_job;

/* Columns [lo, hi) of every row: d <- dL/dpre and the bias gradient, its
 * rows summed in order (so any split of the columns gives the same bits). */
static void dpre_cols(void *ctx, size_t lo, size_t hi) {
    const dpre_job *j = ctx;
    const ae_layer *L = j->L;
    const ae_layer_io *io = j->io;
    size_t n = L->out, w = hi - lo;
    for (size_t r = 0; r < io->batch; r++) {
        size_t o = r * n + lo;
        float *dr = io->dy + o;
        if (!io->dy_is_dpre)
            ae_act_backward(L->act, L->slope, io->pre ? io->pre + o : NULL, io->y + o, dr, w);
        if (j->db) add_to(j->db + lo, dr, w);
    }
}

/* ---- sparse paths ----
 * After a top-k layer the input has k nonzeros per row at io->sparse->in_idx. The
 * kept entries are sorted by column (a counting sort); the columns some row
 * uses (few in a wide code: the same features win for most samples) are
 * walked in groups of AE_COLS: the group's columns of W (or of dW) are read
 * (written) row by row and turned into contiguous columns, so each column's
 * work is a vector axpy or dot over the output width:
 *   forward  pre[r, :] += x[r, j] W[:, j]
 *   backward dW[:, j] = Σ_r x[r, j] d[r, :],  dx[r, j] = d[r, :]·W[:, j].
 * Columns no row uses are never read, and their gradient is zero. */
#define AE_COLS 16

static int sparse_input(const ae_layer *L, const ae_layer_io *io) {
    const ae_sparse_io *sp = io->sparse;
    return sp && sp->in_idx && !L->w_transposed && sp->in_k == L->in_sparse_k && sp->in_k > 0;
}

/* At most this many columns can be used: min(in, B·k). */
static size_t max_used(const ae_layer *L, size_t batch) {
    size_t bk = batch * L->in_sparse_k;
    return bk < L->in ? bk : L->in;
}

/* Scratch of the sparse-input paths: the [B, k] values and [B, k] dx, column
 * starts (in + 1 ints), entries (B·k ints), the gradient block (AE_COLS·out
 * floats), the used columns and the columns to clear (in ints each), the
 * used flags (in bytes), then the used columns of W, contiguous
 * (max_used·out floats). */
static size_t sparse_in_scratch(const ae_layer *L, size_t batch) {
    size_t k = L->in_sparse_k;
    return 2 * batch * k + L->in + 1 + batch * k + AE_COLS * L->out + 2 * L->in +
           (L->in + 3) / 4 + max_used(L, batch) * L->out;
}

typedef struct col_lists {
    const float *vals; /* [B, k] gathered input values */
    float *dxk;        /* [B, k] */
    int32_t *start;    /* in + 1: entries of column j are ent[start[j] .. start[j+1]) */
    int32_t *ent;      /* B·k flat positions r·k + t, by column, rows ascending */
    float *gcols;
    float *wcols;      /* wcols[l·out + o] = W[o, used[l]], gathered by the forward pass */
    int32_t *used;     /* the columns with entries, ascending */
    size_t nused;
    int32_t *clear;    /* in: columns of dW to zero */
    unsigned char *flags; /* in: 1 for a used column */
} col_lists;

static void build_lists(const ae_layer *L, const ae_layer_io *io, col_lists *c, int gather) {
    size_t B = io->batch, k = io->sparse->in_k, in = L->in;
    float *vals = io->scratch;
    c->vals = vals;
    c->dxk = io->scratch + B * k;
    c->start = (int32_t *)(io->scratch + 2 * B * k);
    c->ent = c->start + in + 1;
    c->gcols = (float *)(c->ent + B * k);
    c->used = (int32_t *)(c->gcols + AE_COLS * L->out);
    c->clear = c->used + in;
    c->flags = (unsigned char *)(c->clear + in);
    c->wcols = io->scratch + 2 * B * k + in + 1 + B * k + AE_COLS * L->out + 2 * in + (in + 3) / 4;
    if (gather)
        for (size_t r = 0; r < B; r++)
            for (size_t t = 0; t < k; t++)
                vals[r * k + t] = io->x[r * in + (size_t)io->sparse->in_idx[r * k + t]];
    int32_t *start = c->start;
    memset(start, 0, (in + 1) * sizeof *start);
    for (size_t p = 0; p < B * k; p++) start[io->sparse->in_idx[p] + 1]++;
    size_t nu = 0;
    for (size_t j = 0; j < in; j++) {
        c->flags[j] = start[j + 1] != 0;
        if (start[j + 1]) c->used[nu++] = (int32_t)j;
        start[j + 1] += start[j];
    }
    c->nused = nu;
    /* Fill using start[j] as a cursor, then shift back. */
    for (size_t p = 0; p < B * k; p++) c->ent[start[io->sparse->in_idx[p]]++] = (int32_t)p;
    for (size_t j = in; j > 0; j--) start[j] = start[j - 1];
    start[0] = 0;
}

/* cols[l * out + o] = W[o, cj[l]] for l < nc: in blocks of 16 rows of W,
 * so each write fills a cache line and the rows' lines stay cached. */
static void load_cols(const float *W, size_t in, size_t out, const int32_t *cj, size_t nc,
                      float *cols) {
    for (size_t o0 = 0; o0 < out; o0 += 16) {
        size_t ob = out - o0 < 16 ? out - o0 : 16;
        for (size_t l = 0; l < nc; l++) {
            const float *src = W + o0 * in + (size_t)cj[l];
            float *dst = cols + l * out + o0;
            for (size_t o = 0; o < ob; o++) dst[o] = src[o * in];
        }
    }
}

AE_HOT static void axpy(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += a * x[i];
}

AE_HOT static void scale_copy(float *y, float a, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a * x[i];
}

AE_HOT static float dot(const float *a, const float *b, size_t n) {
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t l = 0; l < 16; l++) acc[l] += a[i + l] * b[i + l];
    float s = 0.0f;
    for (; i < n; i++) s += a[i] * b[i];
    for (size_t l = 0; l < 16; l++) s += acc[l];
    return s;
}

static void sparse_forward(const ae_layer *L, const float *W, const ae_layer_io *io, float *pre) {
    size_t B = io->batch, k = io->sparse->in_k, in = L->in, out = L->out;
    col_lists c;
    build_lists(L, io, &c, 1);
    /* Kept for the backward pass (W does not change in between). */
    load_cols(W, in, out, c.used, c.nused, c.wcols);
    memset(pre, 0, B * out * sizeof *pre);
    for (size_t l = 0; l < c.nused; l++) {
        size_t j = (size_t)c.used[l];
        for (int32_t e = c.start[j]; e < c.start[j + 1]; e++) {
            size_t p = (size_t)c.ent[e];
            axpy(pre + (p / k) * out, c.vals[p], c.wcols + l * out, out);
        }
    }
}

/* Backward with a sparse input: dW gets only the used columns (the others
 * are zero: written as zeros unless io->sparse->w_zero says they are already), dx
 * only the kept entries (the top-k layer before passes nothing else; the
 * rest is zeroed unless io->sparse->dx_kept_only).
 * d is dL/dpre [batch, out]. */
static void sparse_in_backward(const ae_layer *L, float *dW, int accumulate_w, const float *d,
                               ae_layer_io *io) {
    size_t B = io->batch, k = io->sparse->in_k, in = L->in, out = L->out;
    col_lists c;
    build_lists(L, io, &c, 0); /* the values and wcols were gathered by the forward pass */
    int want_dx = io->dx != NULL;
    /* The flags are per column unless the layer also has a sparse dy path
     * (then per row: ae_sparse_zero_flags). */
    int flag =
        dW && !accumulate_w && io->sparse->sparse_grads && io->sparse->w_zero && !L->out_sparse_k;
    if (dW && !accumulate_w && !flag) memset(dW, 0, in * out * sizeof *dW);
    if (flag) {
        /* Zero the columns used last time and not now; the rest of the
         * unused columns are zero already. */
        size_t nc = 0;
        for (size_t j = 0; j < in; j++) {
            if (!c.flags[j] && !io->sparse->w_zero[j]) c.clear[nc++] = (int32_t)j;
            io->sparse->w_zero[j] = (unsigned char)!c.flags[j];
        }
        if (nc)
            for (size_t o = 0; o < out; o++)
                for (size_t q = 0; q < nc; q++) dW[o * in + (size_t)c.clear[q]] = 0.0f;
    }
    double sq = 0.0;
    for (size_t g0 = 0; g0 < c.nused; g0 += AE_COLS) {
        size_t jb = c.nused - g0 < AE_COLS ? c.nused - g0 : AE_COLS;
        const int32_t *cj = c.used + g0;
        if (dW) memset(c.gcols, 0, jb * out * sizeof(float));
        for (size_t l = 0; l < jb; l++)
            for (int32_t e = c.start[cj[l]]; e < c.start[cj[l] + 1]; e++) {
                size_t p = (size_t)c.ent[e];
                const float *dr = d + (p / k) * out;
                if (dW) axpy(c.gcols + l * out, c.vals[p], dr, out);
                if (want_dx) c.dxk[p] = dot(dr, c.wcols + (g0 + l) * out, out);
            }
        if (!dW) continue;
        for (size_t o = 0; o < out; o++) {
            float *row = dW + o * in;
            if (accumulate_w)
                for (size_t l = 0; l < jb; l++) row[cj[l]] += c.gcols[l * out + o];
            else
                for (size_t l = 0; l < jb; l++) row[cj[l]] = c.gcols[l * out + o];
        }
        if (flag) sq += ae_optim_sqnorm(c.gcols, jb * out);
    }
    if (flag) {
        io->sparse->w_used = c.flags;
        io->sparse->w_used_cols = 1;
        io->sparse->w_sqnorm = sq;
    }
    if (want_dx) {
        if (!io->sparse->dx_kept_only) memset(io->dx, 0, B * in * sizeof(float));
        for (size_t p = 0; p < B * k; p++)
            io->dx[(p / k) * in + (size_t)io->sparse->in_idx[p]] = c.dxk[p];
    }
}

/* Backward when dy is nonzero only at io->sparse->out_idx (the layer feeds a top-k
 * layer): the activation's derivative, the bias gradient, dW = dᵀx and
 * dx = d W use only those k entries per row. The entries are first sorted
 * by unit (a counting sort into the scratch), so each row of dW is written
 * once: zeroed when no sample used the unit, else the sum of d·x over the
 * samples that did, in sample order. */
static void sparse_out_backward(const ae_layer *L, const float *W, float *grads, ae_layer_io *io,
                                int accumulate_w) {
    size_t B = io->batch, k = io->sparse->out_k, in = L->in, out = L->out;
    float *d = io->dy;
    float *db = (!L->frozen && L->has_bias) ? grads + L->b_off : NULL;
    float *dW = (!L->frozen && !L->w_frozen) ? grads + L->w_off : NULL;
    int32_t *start = (int32_t *)(io->scratch + (L->in_sparse_k ? sparse_in_scratch(L, B) : 0));
    int32_t *rows = start + out + 1;                                     /* B * k */
    unsigned char *used = (unsigned char *)(rows + B * k);              /* out */
    /* Rows of dW no sample uses are zeroed only when not zero already. */
    int flag = dW && !accumulate_w && io->sparse->sparse_grads && io->sparse->w_zero;
    double sq = 0.0;
    memset(start, 0, (out + 1) * sizeof *start);
    for (size_t r = 0; r < B; r++) {
        const int32_t *ix = io->sparse->out_idx + r * k;
        for (size_t t = 0; t < k; t++) {
            size_t j = (size_t)ix[t], pos = r * out + j;
            if (!io->dy_is_dpre)
                ae_act_backward(L->act, L->slope, io->pre ? io->pre + pos : NULL, io->y + pos,
                                d + pos, 1);
            start[j + 1]++;
        }
    }
    for (size_t j = 0; j < out; j++) start[j + 1] += start[j];
    for (size_t r = 0; r < B; r++) {
        const int32_t *ix = io->sparse->out_idx + r * k;
        for (size_t t = 0; t < k; t++) rows[start[ix[t]]++] = (int32_t)r;
    }
    /* start[j] now ends unit j's list; the list begins at start[j - 1]. */
    for (size_t j = 0, begin = 0; j < out; j++) {
        size_t end = (size_t)start[j];
        float bsum = 0.0f;
        float *g = dW ? dW + j * in : NULL;
        int first = !accumulate_w;
        for (size_t e = begin; e < end; e++) {
            size_t r = (size_t)rows[e];
            float dj = d[r * out + j];
            bsum += dj;
            if (!g) continue;
            const float *x = io->x + r * in;
            if (first)
                scale_copy(g, dj, x, in);
            else
                axpy(g, dj, x, in);
            first = 0;
        }
        if (flag) {
            used[j] = !first;
            if (!first)
                sq += ae_optim_sqnorm(g, in);
            else if (!io->sparse->w_zero[j])
                memset(g, 0, in * sizeof *g);
            io->sparse->w_zero[j] = (unsigned char)first;
        } else if (g && first) {
            memset(g, 0, in * sizeof *g);
        }
        if (db) db[j] = bsum;
        begin = end;
    }
    if (flag) {
        io->sparse->w_used = used;
        io->sparse->w_used_cols = 0;
        io->sparse->w_sqnorm = sq;
    }
    if (io->dx) {
        memset(io->dx, 0, B * in * sizeof(float));
        for (size_t r = 0; r < B; r++) {
            const int32_t *ix = io->sparse->out_idx + r * k;
            float *dx = io->dx + r * in;
            for (size_t t = 0; t < k; t++) {
                size_t j = (size_t)ix[t];
                float dj = d[r * out + j];
                axpy(dx, dj, W + j * in, in);
            }
        }
    }
}

/* Inference on oneDNN keeps Wᵀ: dnnl_sgemm packs its B operand at every
 * call, and from [in, out] (x W) that copy is cheaper than from [out, in]
 * (x Wᵀ): measured 3-5% faster on model a's encoder shapes at batch 256
 * and bitwise the same product (docs/performance.md). A tied decoder
 * layer's weight is its partner's [in, out] already: it reads none. */
static size_t dense_pack_floats(const ae_layer *L, ae_backend be) {
    return be == AE_BACKEND_ONEDNN && !L->in_sparse_k ? L->w_count : 0;
}

static void dense_pack(const ae_layer *L, const float *params, float *packed) {
    ae_transpose(params + L->w_off, L->out, L->in, packed);
}

static void dense_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    const float *W = params + L->w_off;
    const float *bias = L->has_bias ? params + L->b_off : NULL;
    float *pre = io->pre ? io->pre : io->y;
    size_t B = io->batch;
    if (sparse_input(L, io)) {
        sparse_forward(L, W, io, pre);
    } else if (B == 1) {
        /* sgemv beats sgemm at batch 1 (inference of a single sample). */
        if (L->w_transposed)
            ae_sgemv(io->backend, AE_TRANS, L->in, L->out, 1.0f, W, L->out, io->x, 0.0f, pre);
        else
            ae_sgemv(io->backend, AE_NO_TRANS, L->out, L->in, 1.0f, W, L->in, io->x, 0.0f, pre);
    } else if (io->packed && !L->w_transposed) {
        /* Inference on Wᵀ [in, out], kept by the model (dense_pack): the
         * same product, bitwise, with a cheaper packing inside sgemm. */
        if (io->packed_stale) {
            dense_pack(L, params, io->packed);
            io->packed_stale = 0;
        }
        ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, B, L->out, L->in, 1.0f, io->x, L->in,
                 io->packed, L->out, 0.0f, pre, L->out);
    } else if (L->w_transposed) {
        ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, B, L->out, L->in, 1.0f, io->x, L->in, W,
                 L->out, 0.0f, pre, L->out);
    } else {
        ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, B, L->out, L->in, 1.0f, io->x, L->in, W, L->in,
                 0.0f, pre, L->out);
    }
    bias_act(L, bias, pre, io->y, B, io->threads);
}

static void dense_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                           int accumulate_w) {
    size_t B = io->batch, n = L->out;
    const ae_sparse_io *sp = io->sparse;
    if (sp && sp->out_idx && !L->w_transposed && sp->out_k == L->out_sparse_k && sp->out_k > 0) {
        sparse_out_backward(L, params + L->w_off, grads, io, accumulate_w);
        return;
    }
    float *d = io->dy;
    /* d <- dL/dpre, and the bias gradient, in one pass over d. */
    float *db = (!L->frozen && L->has_bias) ? grads + L->b_off : NULL;
    if (db) memset(db, 0, n * sizeof *db);
    dpre_job dj = {L, io, db};
    ae_pool_for(io->threads, n, 16, ae_pool_units(DENSE_MIN_EACH, B), dpre_cols, &dj);
    const float *W = params + L->w_off;
    if (sparse_input(L, io)) {
        sparse_in_backward(L, (L->frozen || L->w_frozen) ? NULL : grads + L->w_off, accumulate_w, d, io);
        return;
    }
    if (!L->frozen && !L->w_frozen) {
        float *dW = grads + L->w_off;
        float beta = accumulate_w ? 1.0f : 0.0f;
        if (L->w_transposed) /* dW_enc [out_enc=in, in_enc=out] += xᵀ d */
            ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, L->in, n, B, 1.0f, io->x, L->in, d, n,
                     beta, dW, n);
        else /* dW [out, in] = dᵀ x */
            ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, n, L->in, B, 1.0f, d, n, io->x, L->in,
                     beta, dW, L->in);
    }
    if (io->dx) {
        if (L->w_transposed) /* dx = d W_decᵀ... W_dec = W_encᵀ [in, out]: dx = d W_enc^T^T */
            ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, B, L->in, n, 1.0f, d, n, W, n, 0.0f,
                     io->dx, L->in);
        else
            ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, B, L->in, n, 1.0f, d, n, W, L->in, 0.0f,
                     io->dx, L->in);
    }
}

static const ae_layer_attr dense_attrs[] = {
    {.name = "units", .type = AE_ATTR_INT, .slot = AE_ATTR_UNITS,
     .lo = 1, .hi = (double)AE_MAX_DIM},
};

static const ae_layer_desc dense_desc = {
    .kind = AE_LAYER_DENSE,
    .name = "dense",
    .flags = AE_LK_BIAS | AE_LK_ACT | AE_LK_WEIGHTS,
    .attrs = dense_attrs,
    .nattrs = sizeof dense_attrs / sizeof dense_attrs[0],
};

const ae_layer_ops ae_dense_ops = {
    .desc = &dense_desc,
    .setup = dense_setup,
    .scratch_floats = dense_scratch,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
    .pack_floats = dense_pack_floats,
    .pack = dense_pack,
};
