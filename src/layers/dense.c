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

static size_t dense_scratch(const ae_layer *L, size_t batch) {
    (void)L;
    (void)batch;
    return 0;
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

static void dense_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    const float *W = params + L->w_off;
    const float *bias = L->has_bias ? params + L->b_off : NULL;
    float *pre = io->pre ? io->pre : io->y;
    size_t B = io->batch;
    if (B == 1) {
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
