#include <float.h>
#include <math.h>

#include "optim.h"

/* Sixteen independent partial sums: a plain float reduction would not vectorise. */
AE_HOT double ae_optim_sqnorm(const float *g, size_t n) {
    float lanes[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++) lanes[j] += g[i + j] * g[i + j];
    double total = 0.0;
    for (size_t j = 0; j < 16; j++) total += lanes[j];
    for (; i < n; i++) total += (double)g[i] * g[i];
    return total;
}

double ae_optim_grad_sqnorm_shaped(const float *grads, const ae_param_block *blocks,
                                   const ae_grad_shape *shapes, size_t nblocks) {
    double total = 0.0;
    for (size_t b = 0; b < nblocks; b++)
        if (!blocks[b].frozen)
            total += shapes && shapes[b].used ? shapes[b].used_sq
                                              : ae_optim_sqnorm(grads + blocks[b].off, blocks[b].len);
    return total;
}

double ae_optim_grad_sqnorm(const float *grads, const ae_param_block *blocks, size_t nblocks) {
    return ae_optim_grad_sqnorm_shaped(grads, blocks, NULL, nblocks);
}

/* PyTorch 1.13 _single_tensor_sgd. */
AE_HOT static void sgd_block(const ae_optim_settings *s, float *p, const float *g, float *buf, size_t n,
                      int fresh_buf, float gs) {
    const float lr = (float)s->lr, wd = (float)s->weight_decay, mom = (float)s->momentum;
    const float damp = 1.0f - (float)s->dampening;
    for (size_t i = 0; i < n; i++) {
        float d = g[i] * gs;
        if (wd != 0.0f) d += wd * p[i];
        if (mom != 0.0f) {
            buf[i] = fresh_buf ? d : buf[i] * mom + damp * d;
            d = s->nesterov ? d + mom * buf[i] : buf[i];
        }
        p[i] -= lr * d;
    }
}

/* PyTorch 1.13 _single_tensor_adam (AdamW: decoupled decay first). */
typedef struct adam_consts {
    float step_size, bc2_sqrt, b1, b2, eps, one_b1, one_b2, wd, decay;
    int adamw;
} adam_consts;

static adam_consts adam_setup(const ae_optim_settings *s, uint64_t step) {
    const double t = (double)(step + 1);
    const double bc1 = 1.0 - pow(s->beta1, t), bc2 = 1.0 - pow(s->beta2, t);
    adam_consts c = {(float)(s->lr / bc1),
                     (float)sqrt(bc2),
                     (float)s->beta1,
                     (float)s->beta2,
                     (float)s->eps,
                     (float)(1.0 - s->beta1),
                     (float)(1.0 - s->beta2),
                     (float)s->weight_decay,
                     (float)(1.0 - s->lr * s->weight_decay),
                     s->kind == AE_OPT_ADAMW};
    return c;
}

/* One element; d is the (scaled) gradient. */
static inline void adam_one(const adam_consts *c, float *p, float *m, float *v, float d) {
    float pi = *p;
    if (c->adamw)
        pi *= c->decay;
    else if (c->wd != 0.0f)
        d += c->wd * pi;
    float mi = *m * c->b1 + c->one_b1 * d;
    float vi = *v * c->b2 + c->one_b2 * (d * d);
    /* Moments that decay below FLT_MIN (a parameter whose gradient
     * stays 0, e.g. a dead latent's weights under top-k) are flushed
     * to 0: denormal arithmetic costs ~100 cycles an operation, and the
     * update they make is below 1e-30. */
    mi = fabsf(mi) < FLT_MIN ? 0.0f : mi;
    vi = vi < FLT_MIN ? 0.0f : vi;
    *m = mi;
    *v = vi;
    float denom = sqrtf(vi) / c->bc2_sqrt + c->eps;
    *p = pi - c->step_size * (mi / denom);
}

/* Each copies the constants to a local, which the stores cannot alias. */
AE_HOT static void adam_block(const adam_consts *cp, float *p, const float *g, float *m, float *v,
                              size_t n, float gs) {
    const adam_consts c = *cp;
    for (size_t i = 0; i < n; i++) adam_one(&c, p + i, m + i, v + i, g[i] * gs);
}

/* A zero gradient (0 · gs, exactly what the general loop computes), not read. */
AE_HOT static void adam_block_zero(const adam_consts *cp, float *p, float *m, float *v, size_t n) {
    const adam_consts c = *cp;
    for (size_t i = 0; i < n; i++) adam_one(&c, p + i, m + i, v + i, 0.0f);
}

static void adam_sparse(const adam_consts *c, const ae_param_block *blk, const ae_grad_shape *sh,
                        float *p, const float *g, float *m, float *v, float gs) {
    size_t w = sh->row_len, rows = blk->len / w;
    for (size_t r = 0; r < rows; r++) {
        size_t o = r * w;
        if (sh->used[r])
            adam_block(c, p + o, g + o, m + o, v + o, w, gs);
        else
            adam_block_zero(c, p + o, m + o, v + o, w);
    }
}

void ae_optim_step_shaped(const ae_optim_settings *s, float *params, const float *grads,
                          float *state1, float *state2, ae_param_block *blocks,
                          const ae_grad_shape *shapes, size_t nblocks, float grad_scale) {
    for (size_t b = 0; b < nblocks; b++) {
        ae_param_block *blk = &blocks[b];
        if (blk->frozen) continue;
        size_t o = blk->off;
        if (s->kind == AE_OPT_SGD) {
            sgd_block(s, params + o, grads + o, state1 + o, blk->len, !blk->momentum_ready,
                      grad_scale);
            if (s->momentum != 0.0) blk->momentum_ready = 1;
        } else {
            adam_consts c = adam_setup(s, blk->step);
            /* Zero rows are not read; zero columns are (a masked loop is slower
             * than reading them). */
            if (shapes && shapes[b].used && !shapes[b].used_cols)
                adam_sparse(&c, blk, &shapes[b], params + o, grads + o, state1 + o, state2 + o,
                            grad_scale);
            else
                adam_block(&c, params + o, grads + o, state1 + o, state2 + o, blk->len,
                           grad_scale);
        }
        blk->step++;
    }
}

void ae_optim_step(const ae_optim_settings *s, float *params, const float *grads, float *state1,
                   float *state2, ae_param_block *blocks, size_t nblocks, float grad_scale) {
    ae_optim_step_shaped(s, params, grads, state1, state2, blocks, NULL, nblocks, grad_scale);
}
