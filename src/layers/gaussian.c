/* Gaussian layer, the latent of a variational autoencoder: two dense heads
 * [mu | logvar] = x Wᵀ + b with W [2·dim, in] (the mu head's rows first),
 * then z = mu + exp(logvar / 2) · eps. The backward pass adds the gradient
 * of kl_coef · KL, KL = -1/2 Σ (1 + logvar - mu² - exp(logvar)), so the
 * model only adds the KL value to the loss (src/losses/vae.c).
 * Scratch: [B, 2·dim] mu | logvar, [B, dim] eps, [B, 2·dim] their gradient. */
#include <math.h>
#include <string.h>

#include "layers.h"

static ae_status gaussian_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    (void)err;
    L->out_shape = (ae_shape){spec->units, 1, 1};
    L->w_count = 2 * spec->units * L->in;
    L->b_count = 2 * spec->units;
    L->has_bias = 1;
    L->act = AE_ACT_IDENTITY;
    L->keep_pre = 0;
    return AE_OK;
}

static size_t gaussian_scratch(const ae_layer *L, size_t batch) { return 5 * batch * L->out; }

static void gaussian_init(const ae_layer *L, float *params, ae_rng *rng) {
    /* Two nn.Linear(in, dim) created in turn: W_mu, b_mu, then W_lv, b_lv. */
    float bound = 1.0f / sqrtf((float)L->in);
    size_t d = L->out, wn = d * L->in;
    for (size_t head = 0; head < 2; head++) {
        float *w = params + L->w_off + head * wn, *b = params + L->b_off + head * d;
        for (size_t i = 0; i < wn; i++) w[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
        for (size_t i = 0; i < d; i++) b[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
    }
}

static void gaussian_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    size_t B = io->batch, d = L->out, d2 = 2 * d;
    const float *W = params + L->w_off, *bias = params + L->b_off;
    float *ml = io->scratch, *eps = io->scratch + d2 * B;
    ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, B, d2, L->in, 1.0f, io->x, L->in, W, L->in, 0.0f,
             ml, d2);
    const ae_gaussian_in *gin = L->gauss_in;
    const float *eps_in = gin ? gin->eps : NULL;
    ae_rng *rng = gin ? gin->rng : NULL;
    int sample = eps_in || rng;
    for (size_t r = 0; r < B; r++) {
        float *row = ml + r * d2, *e = eps + r * d, *z = io->y + r * d;
        for (size_t j = 0; j < d2; j++) row[j] += bias[j];
        if (eps_in)
            memcpy(e, eps_in + r * d, d * sizeof *e);
        else if (rng)
            for (size_t j = 0; j < d; j++) e[j] = ae_rng_normal(rng);
        else
            memset(e, 0, d * sizeof *e);
        /* Without sampling z is mu exactly (no exp that could overflow). */
        if (sample)
            for (size_t j = 0; j < d; j++) z[j] = row[j] + expf(0.5f * row[d + j]) * e[j];
        else
            memcpy(z, row, d * sizeof *z);
    }
}

static void gaussian_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                              int accumulate_w) {
    size_t B = io->batch, d = L->out, d2 = 2 * d;
    const float *ml = io->scratch, *eps = io->scratch + d2 * B;
    float *dml = io->scratch + 3 * d * B, c = L->gauss_in ? L->gauss_in->kl_coef : 0.0f;
    /* dz/dmu = 1, dz/dlogvar = sigma·eps/2; dKL/dmu = mu, dKL/dlogvar = (exp(logvar) - 1)/2. */
    for (size_t r = 0; r < B; r++) {
        const float *row = ml + r * d2, *e = eps + r * d, *dz = io->dy + r * d;
        float *g = dml + r * d2;
        for (size_t j = 0; j < d; j++) {
            float lv = row[d + j], s = e[j] != 0.0f ? expf(0.5f * lv) * e[j] : 0.0f;
            g[j] = dz[j] + c * row[j];
            g[d + j] = 0.5f * (dz[j] * s + c * (expf(lv) - 1.0f));
        }
    }
    if (!L->frozen) {
        float *db = grads + L->b_off;
        memset(db, 0, d2 * sizeof *db);
        for (size_t r = 0; r < B; r++)
            for (size_t j = 0; j < d2; j++) db[j] += dml[r * d2 + j];
    }
    const float *W = params + L->w_off;
    if (!L->frozen && !L->w_frozen)
        ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, d2, L->in, B, 1.0f, dml, d2, io->x, L->in,
                 accumulate_w ? 1.0f : 0.0f, grads + L->w_off, L->in);
    if (io->dx)
        ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, B, L->in, d2, 1.0f, dml, d2, W, L->in, 0.0f,
                 io->dx, L->in);
}

static const ae_layer_attr gaussian_attrs[] = {
    {.name = "dim", .type = AE_ATTR_INT, .slot = AE_ATTR_UNITS, .lo = 1, .hi = (double)AE_MAX_DIM},
};

static const ae_layer_desc gaussian_desc = {
    .kind = AE_LAYER_GAUSSIAN,
    .name = "gaussian",
    .flags = AE_LK_WEIGHTS | AE_LK_CODE,
    .attrs = gaussian_attrs,
    .nattrs = sizeof gaussian_attrs / sizeof gaussian_attrs[0],
};

const ae_layer_ops ae_gaussian_ops = {
    .desc = &gaussian_desc,
    .setup = gaussian_setup,
    .scratch_floats = gaussian_scratch,
    .init = gaussian_init,
    .forward = gaussian_forward,
    .backward = gaussian_backward,
};
