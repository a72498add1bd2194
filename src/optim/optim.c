#include <float.h>
#include <math.h>

#include "optim.h"

/* Sixteen independent partial sums: a plain float reduction would not vectorise. */
AE_HOT static double sqnorm(const float *g, size_t n) {
    float lanes[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (size_t j = 0; j < 16; j++) lanes[j] += g[i + j] * g[i + j];
    double total = 0.0;
    for (size_t j = 0; j < 16; j++) total += lanes[j];
    for (; i < n; i++) total += (double)g[i] * g[i];
    return total;
}

double ae_optim_grad_sqnorm(const float *grads, const ae_param_block *blocks, size_t nblocks) {
    double total = 0.0;
    for (size_t b = 0; b < nblocks; b++)
        if (!blocks[b].frozen) total += sqnorm(grads + blocks[b].off, blocks[b].len);
    return total;
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
AE_HOT static void adam_block(const ae_optim_settings *s, float *p, const float *g, float *m, float *v,
                       size_t n, uint64_t step, float gs) {
    const double t = (double)(step + 1);
    const double bc1 = 1.0 - pow(s->beta1, t), bc2 = 1.0 - pow(s->beta2, t);
    const float step_size = (float)(s->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float b1 = (float)s->beta1, b2 = (float)s->beta2, eps = (float)s->eps;
    const float one_b1 = (float)(1.0 - s->beta1), one_b2 = (float)(1.0 - s->beta2);
    const int adamw = s->kind == AE_OPT_ADAMW;
    const float wd = (float)s->weight_decay;
    const float decay = (float)(1.0 - s->lr * s->weight_decay);
    for (size_t i = 0; i < n; i++) {
        float d = g[i] * gs;
        float pi = p[i];
        if (adamw)
            pi *= decay;
        else if (wd != 0.0f)
            d += wd * pi;
        float mi = m[i] * b1 + one_b1 * d;
        float vi = v[i] * b2 + one_b2 * (d * d);
        /* Moments that decay below FLT_MIN (a parameter whose gradient
         * stays 0, e.g. a dead latent's weights under top-k) are flushed
         * to 0: denormal arithmetic costs ~100 cycles an operation, and the
         * update they make is below 1e-30. */
        mi = fabsf(mi) < FLT_MIN ? 0.0f : mi;
        vi = vi < FLT_MIN ? 0.0f : vi;
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

void ae_optim_step(const ae_optim_settings *s, float *params, const float *grads, float *state1,
                   float *state2, ae_param_block *blocks, size_t nblocks, float grad_scale) {
    for (size_t b = 0; b < nblocks; b++) {
        ae_param_block *blk = &blocks[b];
        if (blk->frozen) continue;
        size_t o = blk->off;
        if (s->kind == AE_OPT_SGD)
        {
            sgd_block(s, params + o, grads + o, state1 + o, blk->len, !blk->momentum_ready,
                      grad_scale);
            if (s->momentum != 0.0) blk->momentum_ready = 1;
        }
        else
            adam_block(s, params + o, grads + o, state1 + o, state2 + o, blk->len, blk->step,
                       grad_scale);
        blk->step++;
    }
}
