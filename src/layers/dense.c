/* Dense layer: y = act(x Wᵀ + b), W [out, in] as PyTorch's nn.Linear.
 * A tied decoder layer reads its encoder partner's weight transposed
 * (w_transposed): W_dec = W_encᵀ, stored [in, out]. */
#include <math.h>
#include <string.h>

#include "layers.h"

static ae_status dense_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    (void)err;
    L->out_shape = (ae_shape){spec->units, 1, 1};
    L->w_count = L->in * spec->units; /* both at most 2^24: no overflow */
    L->b_count = spec->bias ? spec->units : 0;
    L->keep_pre = ae_act_needs_pre(spec->act);
    return AE_OK;
}

/* With a sparse input (in_sparse_k > 0): the gathered values and the
 * gradient at the kept entries, [batch, k] each. With a sparse dy
 * (out_sparse_k > 0): then the per-unit lists, out + 1 + batch·k ints. */
static size_t dense_scratch(const ae_layer *L, size_t batch) {
    return 2 * batch * L->in_sparse_k + (L->out_sparse_k ? L->out + 1 + batch * L->out_sparse_k : 0);
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

/* Adds the bias and applies the activation in one pass over the output. */
static void bias_act(const ae_layer *L, const float *bias, float *pre, float *y, size_t batch) {
    size_t n = L->out;
    for (size_t r = 0; r < batch; r++) {
        float *p = pre + r * n;
        if (bias)
            for (size_t j = 0; j < n; j++) p[j] += bias[j];
        ae_act_forward(L->act, L->slope, p, y + r * n, n);
    }
}

/* ---- sparse paths ----
 * After a top-k layer the input has k nonzeros per row at io->in_idx:
 * pre[r, o] = Σ_t x[r, j_t] W[o, j_t]. Blocks of 4 rows of W are walked
 * against every sample's k entries, so W is read once per block. */
static int sparse_input(const ae_layer *L, const ae_layer_io *io) {
    return io->in_idx && !L->w_transposed && io->in_k == L->in_sparse_k && io->in_k > 0;
}

static void gather_values(const ae_layer *L, const ae_layer_io *io, float *vals) {
    size_t B = io->batch, k = io->in_k, in = L->in;
    for (size_t r = 0; r < B; r++)
        for (size_t t = 0; t < k; t++) vals[r * k + t] = io->x[r * in + (size_t)io->in_idx[r * k + t]];
}

static void sparse_forward(const ae_layer *L, const float *W, const ae_layer_io *io, float *pre) {
    size_t B = io->batch, k = io->in_k, in = L->in, out = L->out;
    float *vals = io->scratch;
    gather_values(L, io, vals);
    size_t o = 0;
    for (; o + 4 <= out; o += 4) {
        const float *w0 = W + o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        for (size_t r = 0; r < B; r++) {
            const int32_t *ix = io->in_idx + r * k;
            const float *v = vals + r * k;
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            for (size_t t = 0; t < k; t++) {
                size_t j = (size_t)ix[t];
                float vt = v[t];
                a0 += vt * w0[j];
                a1 += vt * w1[j];
                a2 += vt * w2[j];
                a3 += vt * w3[j];
            }
            float *p = pre + r * out + o;
            p[0] = a0;
            p[1] = a1;
            p[2] = a2;
            p[3] = a3;
        }
    }
    for (; o < out; o++) {
        const float *w0 = W + o * in;
        for (size_t r = 0; r < B; r++) {
            const int32_t *ix = io->in_idx + r * k;
            const float *v = vals + r * k;
            float a0 = 0.0f;
            for (size_t t = 0; t < k; t++) a0 += v[t] * w0[(size_t)ix[t]];
            pre[r * out + o] = a0;
        }
    }
}

/* Backward with a sparse input: dW touches only the kept columns of each
 * row, and dx is computed at the kept entries only (the top-k layer before
 * passes nothing else). d is dL/dpre [batch, out]. Blocks of 4 rows of W
 * and dW are walked against every sample's k entries; each block of dW is
 * zeroed just before (unless accumulating), while it is in cache. */
static void sparse_in_backward(const ae_layer *L, const float *W, float *dW, int accumulate_w,
                               const float *d, ae_layer_io *io) {
    size_t B = io->batch, k = io->in_k, in = L->in, out = L->out;
    const float *vals = io->scratch; /* gathered by the forward pass */
    float *dxk = io->dx ? io->scratch + B * k : NULL;
    if (dxk) memset(dxk, 0, B * k * sizeof *dxk);
    size_t o = 0;
    for (; o + 4 <= out; o += 4) {
        const float *w0 = W + o * in, *w1 = w0 + in, *w2 = w1 + in, *w3 = w2 + in;
        float *g0 = dW ? dW + o * in : NULL, *g1 = g0 + in, *g2 = g1 + in, *g3 = g2 + in;
        if (g0 && !accumulate_w) memset(g0, 0, 4 * in * sizeof *g0);
        for (size_t r = 0; r < B; r++) {
            const float *dr = d + r * out + o;
            float d0 = dr[0], d1 = dr[1], d2 = dr[2], d3 = dr[3];
            if (d0 == 0.0f && d1 == 0.0f && d2 == 0.0f && d3 == 0.0f) continue;
            const int32_t *ix = io->in_idx + r * k;
            const float *v = vals + r * k;
            if (g0) {
                for (size_t t = 0; t < k; t++) {
                    size_t j = (size_t)ix[t];
                    float vt = v[t];
                    g0[j] += d0 * vt;
                    g1[j] += d1 * vt;
                    g2[j] += d2 * vt;
                    g3[j] += d3 * vt;
                }
            }
            if (dxk) {
                float *dk = dxk + r * k;
                for (size_t t = 0; t < k; t++) {
                    size_t j = (size_t)ix[t];
                    dk[t] += d0 * w0[j] + d1 * w1[j] + d2 * w2[j] + d3 * w3[j];
                }
            }
        }
    }
    for (; o < out; o++) {
        const float *w0 = W + o * in;
        float *g0 = dW ? dW + o * in : NULL;
        if (g0 && !accumulate_w) memset(g0, 0, in * sizeof *g0);
        for (size_t r = 0; r < B; r++) {
            float dr = d[r * out + o];
            if (dr == 0.0f) continue;
            const int32_t *ix = io->in_idx + r * k;
            const float *v = vals + r * k;
            if (g0)
                for (size_t t = 0; t < k; t++) g0[(size_t)ix[t]] += dr * v[t];
            if (dxk) {
                float *dk = dxk + r * k;
                for (size_t t = 0; t < k; t++) dk[t] += dr * w0[(size_t)ix[t]];
            }
        }
    }
    if (dxk) {
        memset(io->dx, 0, B * in * sizeof(float));
        for (size_t r = 0; r < B; r++)
            for (size_t t = 0; t < k; t++) io->dx[r * in + (size_t)io->in_idx[r * k + t]] = dxk[r * k + t];
    }
}

/* Backward when dy is nonzero only at io->out_idx (the layer feeds a top-k
 * layer): the activation's derivative, the bias gradient, dW = dᵀx and
 * dx = d W use only those k entries per row. The entries are first sorted
 * by unit (a counting sort into the scratch), so each row of dW is written
 * once: zeroed when no sample used the unit, else the sum of d·x over the
 * samples that did, in sample order. */
static void sparse_out_backward(const ae_layer *L, const float *W, float *grads, ae_layer_io *io,
                                int accumulate_w) {
    size_t B = io->batch, k = io->out_k, in = L->in, out = L->out;
    float *d = io->dy;
    float *db = (!L->frozen && L->has_bias) ? grads + L->b_off : NULL;
    float *dW = (!L->frozen && !L->w_frozen) ? grads + L->w_off : NULL;
    int32_t *start = (int32_t *)(io->scratch + 2 * B * L->in_sparse_k); /* out + 1 */
    int32_t *rows = start + out + 1;                                     /* B * k */
    memset(start, 0, (out + 1) * sizeof *start);
    for (size_t r = 0; r < B; r++) {
        const int32_t *ix = io->out_idx + r * k;
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
        const int32_t *ix = io->out_idx + r * k;
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
                for (size_t i = 0; i < in; i++) g[i] = dj * x[i];
            else
                for (size_t i = 0; i < in; i++) g[i] += dj * x[i];
            first = 0;
        }
        if (g && first) memset(g, 0, in * sizeof *g);
        if (db) db[j] = bsum;
        begin = end;
    }
    if (io->dx) {
        memset(io->dx, 0, B * in * sizeof(float));
        for (size_t r = 0; r < B; r++) {
            const int32_t *ix = io->out_idx + r * k;
            float *dx = io->dx + r * in;
            for (size_t t = 0; t < k; t++) {
                size_t j = (size_t)ix[t];
                float dj = d[r * out + j];
                const float *w = W + j * in;
                for (size_t i = 0; i < in; i++) dx[i] += dj * w[i];
            }
        }
    }
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
            ae_sgemv(AE_TRANS, L->in, L->out, 1.0f, W, L->out, io->x, 0.0f, pre);
        else
            ae_sgemv(AE_NO_TRANS, L->out, L->in, 1.0f, W, L->in, io->x, 0.0f, pre);
    } else if (L->w_transposed) {
        ae_sgemm(AE_NO_TRANS, AE_NO_TRANS, B, L->out, L->in, 1.0f, io->x, L->in, W, L->out, 0.0f,
                 pre, L->out);
    } else {
        ae_sgemm(AE_NO_TRANS, AE_TRANS, B, L->out, L->in, 1.0f, io->x, L->in, W, L->in, 0.0f, pre,
                 L->out);
    }
    bias_act(L, bias, pre, io->y, B);
}

static void dense_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                           int accumulate_w) {
    size_t B = io->batch, n = L->out;
    if (io->out_idx && !L->w_transposed && io->out_k == L->out_sparse_k && io->out_k > 0) {
        sparse_out_backward(L, params + L->w_off, grads, io, accumulate_w);
        return;
    }
    float *d = io->dy;
    /* d <- dL/dpre, and the bias gradient, in one pass over d. */
    float *db = (!L->frozen && L->has_bias) ? grads + L->b_off : NULL;
    if (db) memset(db, 0, n * sizeof *db);
    for (size_t r = 0; r < B; r++) {
        float *dr = d + r * n;
        if (!io->dy_is_dpre)
            ae_act_backward(L->act, L->slope, io->pre ? io->pre + r * n : NULL, io->y + r * n, dr,
                            n);
        if (db)
            for (size_t j = 0; j < n; j++) db[j] += dr[j];
    }
    const float *W = params + L->w_off;
    if (sparse_input(L, io)) {
        sparse_in_backward(L, W, (L->frozen || L->w_frozen) ? NULL : grads + L->w_off, accumulate_w, d, io);
        return;
    }
    if (!L->frozen && !L->w_frozen) {
        float *dW = grads + L->w_off;
        float beta = accumulate_w ? 1.0f : 0.0f;
        if (L->w_transposed) /* dW_enc [out_enc=in, in_enc=out] += xᵀ d */
            ae_sgemm(AE_TRANS, AE_NO_TRANS, L->in, n, B, 1.0f, io->x, L->in, d, n, beta, dW, n);
        else /* dW [out, in] = dᵀ x */
            ae_sgemm(AE_TRANS, AE_NO_TRANS, n, L->in, B, 1.0f, d, n, io->x, L->in, beta, dW, L->in);
    }
    if (io->dx) {
        if (L->w_transposed) /* dx = d W_decᵀ... W_dec = W_encᵀ [in, out]: dx = d W_enc^T^T */
            ae_sgemm(AE_NO_TRANS, AE_TRANS, B, L->in, n, 1.0f, d, n, W, n, 0.0f, io->dx, L->in);
        else
            ae_sgemm(AE_NO_TRANS, AE_NO_TRANS, B, L->in, n, 1.0f, d, n, W, L->in, 0.0f, io->dx,
                     L->in);
    }
}

const ae_layer_ops ae_dense_ops = {
    .name = "dense",
    .setup = dense_setup,
    .scratch_floats = dense_scratch,
    .init = dense_init,
    .forward = dense_forward,
    .backward = dense_backward,
};
