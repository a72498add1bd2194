/* BatchNorm over the channels of c x h x w: nn.BatchNorm1d for h = w = 1,
 * nn.BatchNorm2d otherwise. Parameters: gamma (the weight) and beta (the
 * bias), c each. State: running mean and running variance, c each.
 * Training (io->train) normalises with the batch's mean and biased variance
 * over batch x h x w, and updates running = (1 - m) running + m batch with
 * the unbiased variance; inference uses the running statistics. Scratch:
 * the batch mean and 1/sqrt(var + eps) per channel, kept for backward. */
#include <float.h>
#include <math.h>
#include <string.h>

#include "layers.h"

enum { F_MOMENTUM = 0, F_EPS = 1 };

static ae_status bn_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    (void)sp;
    (void)err;
    L->out_shape = L->in_shape;
    L->w_count = L->in_shape.c;
    L->b_count = L->in_shape.c;
    L->s_count = 2 * L->in_shape.c;
    /* PyTorch: "Expected more than 1 value per channel when training". */
    L->min_train_batch = L->in_shape.h * L->in_shape.w == 1 ? 2 : 1;
    return AE_OK;
}

static size_t bn_scratch(const ae_layer *L, size_t batch) {
    (void)batch;
    return 2 * L->in_shape.c;
}

static void bn_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)rng;
    for (size_t c = 0; c < L->w_count; c++) params[L->w_off + c] = 1.0f;
    for (size_t c = 0; c < L->b_count; c++) params[L->b_off + c] = 0.0f;
}

static void bn_init_state(const ae_layer *L, float *state) {
    size_t C = L->in_shape.c;
    for (size_t c = 0; c < C; c++) {
        state[c] = 0.0f;     /* running mean */
        state[C + c] = 1.0f; /* running variance */
    }
}

static ae_status bn_check_state(const ae_layer *L, const float *state, ae_errbuf *err) {
    size_t C = L->in_shape.c;
    for (size_t c = 0; c < C; c++)
        if (state[C + c] < 0.0f)
            return ae_error(err, AE_ERR_RANGE,
                            "batchnorm: the running variance of channel %zu is negative (%g)", c,
                            (double)state[C + c]);
    return AE_OK;
}

static void bn_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w, B = io->batch;
    const float *gamma = params + L->w_off, *beta = params + L->b_off;
    float *rmean = io->state, *rvar = io->state + C;
    float *mean_s = io->scratch, *istd_s = io->scratch + C;
    double eps = L->spec.fparam[F_EPS], mom = L->spec.fparam[F_MOMENTUM];
    double n = (double)B * (double)HW;
    for (size_t c = 0; c < C; c++) {
        float mean, istd;
        if (io->train) {
            double sum = 0.0, sq = 0.0;
            for (size_t b = 0; b < B; b++) {
                const float *x = io->x + (b * C + c) * HW;
                for (size_t j = 0; j < HW; j++) sum += x[j];
            }
            double mu = sum / n;
            for (size_t b = 0; b < B; b++) {
                const float *x = io->x + (b * C + c) * HW;
                for (size_t j = 0; j < HW; j++) sq += ((double)x[j] - mu) * ((double)x[j] - mu);
            }
            double var = sq / n;
            mean = (float)mu;
            istd = (float)(1.0 / sqrt(var + eps));
            mean_s[c] = mean;
            istd_s[c] = istd;
            double unbiased = n > 1.0 ? sq / (n - 1.0) : var;
            rmean[c] = (float)((1.0 - mom) * rmean[c] + mom * mu);
            rvar[c] = (float)((1.0 - mom) * rvar[c] + mom * unbiased);
        } else {
            mean = rmean[c];
            istd = (float)(1.0 / sqrt((double)rvar[c] + eps));
        }
        float a = gamma[c] * istd, sh = beta[c] - mean * a;
        for (size_t b = 0; b < B; b++) {
            const float *x = io->x + (b * C + c) * HW;
            float *y = io->y + (b * C + c) * HW;
            for (size_t j = 0; j < HW; j++) y[j] = x[j] * a + sh;
        }
    }
}

static void bn_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                        int accumulate_w) {
    (void)accumulate_w;
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w, B = io->batch;
    const float *gamma = params + L->w_off;
    const float *mean_s = io->scratch, *istd_s = io->scratch + C;
    double n = (double)B * (double)HW;
    for (size_t c = 0; c < C; c++) {
        float mean = mean_s[c], istd = istd_s[c];
        double sdy = 0.0, sdyx = 0.0;
        for (size_t b = 0; b < B; b++) {
            const float *x = io->x + (b * C + c) * HW, *dy = io->dy + (b * C + c) * HW;
            for (size_t j = 0; j < HW; j++) {
                sdy += dy[j];
                sdyx += (double)dy[j] * (double)((x[j] - mean) * istd);
            }
        }
        if (!L->frozen) {
            grads[L->w_off + c] = (float)sdyx;
            grads[L->b_off + c] = (float)sdy;
        }
        if (!io->dx) continue;
        /* dx = gamma istd / n (n dy - Σdy - xhat Σ(dy xhat)) */
        float k = gamma[c] * istd, mdy = (float)(sdy / n), mdyx = (float)(sdyx / n);
        for (size_t b = 0; b < B; b++) {
            const float *x = io->x + (b * C + c) * HW, *dy = io->dy + (b * C + c) * HW;
            float *dx = io->dx + (b * C + c) * HW;
            for (size_t j = 0; j < HW; j++) {
                float xh = (x[j] - mean) * istd;
                dx[j] = k * (dy[j] - mdy - xh * mdyx);
            }
        }
    }
}

static const ae_layer_attr bn_attrs[] = {
    {.name = "momentum", .type = AE_ATTR_FLOAT, .slot = F_MOMENTUM,
     .lo = 0, .hi = 1, .has_default = 1, .def = 0.1, .setting = AE_LAYER_BN_MOMENTUM},
    /* 1/sqrt(var + eps) becomes a float: a positive normal float keeps it
     * finite (PyTorch adds eps in float). */
    {.name = "eps", .type = AE_ATTR_FLOAT, .slot = F_EPS,
     .lo = FLT_MIN, .hi = 1, .has_default = 1, .def = 1e-5, .setting = AE_LAYER_BN_EPS},
};

static const ae_layer_desc bn_desc = {
    .kind = AE_LAYER_BATCHNORM,
    .name = "batchnorm",
    .flags = AE_LK_WEIGHTS | AE_LK_STATE,
    .attrs = bn_attrs,
    .nattrs = sizeof bn_attrs / sizeof bn_attrs[0],
};

const ae_layer_ops ae_batchnorm_ops = {
    .desc = &bn_desc,
    .setup = bn_setup,
    .scratch_floats = bn_scratch,
    .init = bn_init,
    .forward = bn_forward,
    .backward = bn_backward,
    .init_state = bn_init_state,
    .check_state = bn_check_state,
};
