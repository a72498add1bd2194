#include <math.h>

#include "core/pool.h"
#include "losses.h"

int ae_loss_wants_logits(ae_loss kind, ae_activation out_act) {
    return kind == AE_LOSS_BCE && out_act == AE_ACT_SIGMOID;
}

/* Σ (y - t)² over [lo, hi), and dpre there. */
AE_HOT static double mse_range(const ae_loss_input *in, float *dpre, size_t lo, size_t hi) {
    /* Sixteen partial sums keep the reduction vectorisable. */
    float lanes[16] = {0};
    float scale = in->reduction == AE_REDUCE_MEAN ? 2.0f / (float)in->n : 2.0f;
    const float *y = in->y, *t = in->target;
    size_t i = lo;
    /* A sigmoid output's derivative is folded into the same pass. */
    const int sig = in->out_act == AE_ACT_SIGMOID;
    for (; i + 16 <= hi; i += 16)
        for (size_t j = 0; j < 16; j++) {
            float yi = y[i + j], e = yi - t[i + j];
            lanes[j] += e * e;
            if (dpre) dpre[i + j] = sig ? scale * e * (yi * (1.0f - yi)) : scale * e;
        }
    double acc = 0.0;
    for (size_t j = 0; j < 16; j++) acc += lanes[j];
    for (; i < hi; i++) {
        float yi = y[i], e = yi - t[i];
        acc += (double)(e * e);
        if (dpre) dpre[i] = sig ? scale * e * (yi * (1.0f - yi)) : scale * e;
    }
    if (dpre && !sig)
        ae_act_backward(in->out_act, in->out_slope, in->pre ? in->pre + lo : NULL, y + lo,
                        dpre + lo, hi - lo);
    return acc;
}

/* BCE from the logits z over [lo, hi): max(z,0) - z t + log(1 + e^-|z|);
 * d/dz = σ(z) - t. */
static double bce_logits_range(const ae_loss_input *in, float *dpre, size_t lo, size_t hi) {
    double acc = 0.0;
    float scale = in->reduction == AE_REDUCE_MEAN ? 1.0f / (float)in->n : 1.0f;
    const float *z = in->pre, *y = in->y, *t = in->target;
    for (size_t i = lo; i < hi; i++) {
        float zi = z[i];
        acc += (double)(fmaxf(zi, 0.0f) - zi * t[i] + log1pf(expf(-fabsf(zi))));
        if (dpre) dpre[i] = scale * (y[i] - t[i]);
    }
    return acc;
}

/* BCE on probabilities over [lo, hi), log clamped at -100 as PyTorch's
 * BCELoss; NaN for an output outside [0, 1]. */
static double bce_probs_range(const ae_loss_input *in, float *dpre, size_t lo, size_t hi) {
    double acc = 0.0;
    float scale = in->reduction == AE_REDUCE_MEAN ? 1.0f / (float)in->n : 1.0f;
    const float *y = in->y, *t = in->target;
    for (size_t i = lo; i < hi; i++) {
        float yi = y[i];
        if (!(yi >= 0.0f && yi <= 1.0f)) return NAN;
        float ly = fmaxf(logf(yi), -100.0f), l1y = fmaxf(logf(1.0f - yi), -100.0f);
        acc -= (double)(t[i] * ly + (1.0f - t[i]) * l1y);
        if (dpre) dpre[i] = scale * (yi - t[i]) / fmaxf((1.0f - yi) * yi, 1e-12f);
    }
    if (dpre)
        ae_act_backward(in->out_act, in->out_slope, in->pre ? in->pre + lo : NULL, y + lo,
                        dpre + lo, hi - lo);
    return acc;
}

typedef double (*loss_range_fn)(const ae_loss_input *in, float *dpre, size_t lo, size_t hi);

typedef struct loss_job {
    const ae_loss_input *in;
    float *dpre;
    loss_range_fn fn;
    size_t chunk;
    double part[AE_POOL_CHUNKS];
} loss_job;

static void loss_chunks(void *ctx, size_t lo, size_t hi) {
    loss_job *j = ctx;
    for (size_t c = lo; c < hi; c++) {
        size_t a = c * j->chunk, b = a + j->chunk < j->in->n ? a + j->chunk : j->in->n;
        j->part[c] = j->fn(j->in, j->dpre, a, b);
    }
}

/* The loss in chunks set by the length alone, summed in order: the same
 * bits on any number of threads. */
static double chunked(const ae_loss_input *in, float *dpre, loss_range_fn fn) {
    loss_job j = {.in = in, .dpre = dpre, .fn = fn};
    size_t nc = ae_pool_chunks(in->n, &j.chunk);
    ae_pool_for(in->threads, nc, 1, 2, loss_chunks, &j);
    double acc = 0.0;
    for (size_t c = 0; c < nc; c++) acc += j.part[c];
    return in->reduction == AE_REDUCE_MEAN ? acc / (double)in->n : acc;
}

double ae_loss_eval(const ae_loss_input *in, float *dpre) {
    switch (in->kind) {
    case AE_LOSS_MSE: return chunked(in, dpre, mse_range);
    case AE_LOSS_BCE:
        return chunked(in, dpre,
                       ae_loss_wants_logits(in->kind, in->out_act) && in->pre ? bce_logits_range
                                                                              : bce_probs_range);
    }
    return NAN;
}

size_t ae_loss_bad_target(ae_loss kind, const float *t, size_t n) {
    if (kind != AE_LOSS_BCE) return n;
    /* One pass, branch-free, in blocks so the first bad index is found
     * without a test per element (NaN fails both comparisons). */
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        int bad = 0;
        for (size_t j = 0; j < 64; j++) bad |= !(t[i + j] >= 0.0f && t[i + j] <= 1.0f);
        if (bad) break;
    }
    for (; i < n; i++)
        if (!(t[i] >= 0.0f && t[i] <= 1.0f)) return i;
    return n;
}
