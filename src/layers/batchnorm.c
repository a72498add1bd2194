/* BatchNorm over the channels of c x h x w: nn.BatchNorm1d for h = w = 1,
 * nn.BatchNorm2d otherwise. Parameters: gamma (the weight) and beta (the
 * bias), c each. State: running mean and running variance, c each.
 * Training (io->train) normalises with the batch's mean and biased variance
 * over batch x h x w, and updates running = (1 - m) running + m batch with
 * the unbiased variance; inference uses the running statistics. Scratch:
 * the batch mean and 1/sqrt(var + eps) per channel, kept for backward.
 * With a batch-statistics hook (io->sync, training steps only) the batch
 * is every process's: the statistics and the backward's sums are summed
 * over the processes (SyncBatchNorm). */
#include <float.h>
#include <math.h>
#include <string.h>

#include "core/pool.h"
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
    L->sync_fwd[0] = L->in_shape.c + 1;
    L->sync_fwd[1] = L->in_shape.c;
    L->sync_bwd = 2 * L->in_shape.c;
    return AE_OK;
}

static size_t bn_scratch(const ae_layer *L, size_t batch) {
    (void)batch;
    /* The mean and 1/std per channel, then the sample count as a double
     * (at an even offset, kept 8-byte aligned). */
    return 2 * L->in_shape.c + 4;
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

/* Normalises channel c with the batch's mean mu and sum of squared
 * deviations sq over n values, and updates the running statistics. */
static void bn_train_channel(const ae_layer *L, const float *params, ae_layer_io *io, size_t c,
                             double mu, double sq, double n) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w, B = io->batch;
    const float *gamma = params + L->w_off, *beta = params + L->b_off;
    float *rmean = io->state, *rvar = io->state + C;
    double eps = L->spec.fparam[F_EPS], mom = L->spec.fparam[F_MOMENTUM];
    double var = sq / n;
    float mean = (float)mu, istd = (float)(1.0 / sqrt(var + eps));
    io->scratch[c] = mean;
    io->scratch[C + c] = istd;
    double unbiased = n > 1.0 ? sq / (n - 1.0) : var;
    rmean[c] = (float)((1.0 - mom) * rmean[c] + mom * mu);
    rvar[c] = (float)((1.0 - mom) * rvar[c] + mom * unbiased);
    float a = gamma[c] * istd, sh = beta[c] - mean * a;
    for (size_t b = 0; b < B; b++) {
        const float *x = io->x + (b * C + c) * HW;
        float *y = io->y + (b * C + c) * HW;
        for (size_t j = 0; j < HW; j++) y[j] = x[j] * a + sh;
    }
}

/* The channel sums below run in 8 double lanes (lane j % 8 of a plane),
 * added in a fixed order at the end: one chain of dependent adds was 4
 * cycles a value. */
enum { BN_LANES = 8 };

static double lanes_total(const double *l) {
    return ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]));
}

/* l[j % 8] += x[j] (mu == 0) or (x[j] - mu)^2 (sq), j < n. */
AE_HOT static void plane_moments(const float *x, size_t n, int sq, double mu, double *l) {
    size_t nv = n / BN_LANES * BN_LANES;
    if (sq) {
        for (size_t i = 0; i < nv; i += BN_LANES)
            for (size_t j = 0; j < BN_LANES; j++) {
                double v = (double)x[i + j] - mu;
                l[j] += v * v;
            }
        for (size_t i = nv; i < n; i++) l[i - nv] += ((double)x[i] - mu) * ((double)x[i] - mu);
    } else {
        for (size_t i = 0; i < nv; i += BN_LANES)
            for (size_t j = 0; j < BN_LANES; j++) l[j] += (double)x[i + j];
        for (size_t i = nv; i < n; i++) l[i - nv] += (double)x[i];
    }
}

static double channel_sum(const ae_layer *L, const ae_layer_io *io, size_t c) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w;
    double l[BN_LANES] = {0};
    for (size_t b = 0; b < io->batch; b++) plane_moments(io->x + (b * C + c) * HW, HW, 0, 0.0, l);
    return lanes_total(l);
}

static double channel_sq(const ae_layer *L, const ae_layer_io *io, size_t c, double mu) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w;
    double l[BN_LANES] = {0};
    for (size_t b = 0; b < io->batch; b++) plane_moments(io->x + (b * C + c) * HW, HW, 1, mu, l);
    return lanes_total(l);
}

/* The sample count of the last training forward (over every process when
 * synchronised), kept after the mean and 1/std in the scratch. */
static double *count_slot(const ae_layer *L, float *scratch) {
    return (double *)(void *)(scratch + 2 * L->in_shape.c + 2);
}

/* Channels are independent in the passes without a batch-statistics
 * hook: they are split over the pass's threads (core/pool.h), each
 * channel computed as alone (the same bits on any count). */
typedef struct bn_job {
    const ae_layer *L;
    const float *params;
    float *grads;
    ae_layer_io *io;
    double n;
} bn_job;

static size_t channels_each(const ae_layer *L, size_t batch) {
    return ae_pool_units(AE_POOL_MIN_VALUES, batch * L->in_shape.h * L->in_shape.w);
}

static void train_channels(void *ctx, size_t lo, size_t hi) {
    const bn_job *j = ctx;
    for (size_t c = lo; c < hi; c++) {
        double mu = channel_sum(j->L, j->io, c) / j->n;
        bn_train_channel(j->L, j->params, j->io, c, mu, channel_sq(j->L, j->io, c, mu), j->n);
    }
}

static void infer_channels(void *ctx, size_t lo, size_t hi) {
    const bn_job *j = ctx;
    const ae_layer *L = j->L;
    const ae_layer_io *io = j->io;
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w, B = io->batch;
    const float *gamma = j->params + L->w_off, *beta = j->params + L->b_off;
    const float *rmean = io->state, *rvar = io->state + C;
    double eps = L->spec.fparam[F_EPS];
    for (size_t c = lo; c < hi; c++) {
        float mean = rmean[c], istd = (float)(1.0 / sqrt((double)rvar[c] + eps));
        float a = gamma[c] * istd, sh = beta[c] - mean * a;
        for (size_t b = 0; b < B; b++) {
            const float *x = io->x + (b * C + c) * HW;
            float *y = io->y + (b * C + c) * HW;
            for (size_t q = 0; q < HW; q++) y[q] = x[q] * a + sh;
        }
    }
}

/* Synchronised (io->sync): the sums and the count over every process
 * first, then the squared deviations from that mean, as one batch would. */
static void bn_forward_sync(const ae_layer *L, const float *params, ae_layer_io *io) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w;
    double *v = io->sync->buf, *mu = v + C + 1, *sq = mu + C;
    for (size_t c = 0; c < C; c++) v[c] = channel_sum(L, io, c);
    v[C] = (double)io->batch * (double)HW;
    ae_batch_sync_sum(io->sync, v, C + 1);
    double n = v[C];
    for (size_t c = 0; c < C; c++) mu[c] = v[c] / n;
    for (size_t c = 0; c < C; c++) sq[c] = channel_sq(L, io, c, mu[c]);
    ae_batch_sync_sum(io->sync, sq, C);
    memcpy(count_slot(L, io->scratch), &n, sizeof n);
    for (size_t c = 0; c < C; c++) bn_train_channel(L, params, io, c, mu[c], sq[c], n);
}

static void bn_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w, B = io->batch;
    double n = (double)B * (double)HW;
    if (io->train && io->sync) {
        bn_forward_sync(L, params, io);
        return;
    }
    bn_job j = {L, params, NULL, io, n};
    if (io->train) memcpy(count_slot(L, io->scratch), &n, sizeof n);
    ae_pool_for(io->threads, C, 1, channels_each(L, B), io->train ? train_channels : infer_channels,
                &j);
}

/* dx = gamma istd (dy - mdy - xhat mdyx), mdy and mdyx the means of dy
 * and dy xhat over the batch. */
static void bn_dx(const ae_layer *L, const float *params, ae_layer_io *io, size_t c, float mdy,
                  float mdyx) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w, B = io->batch;
    float mean = io->scratch[c], istd = io->scratch[C + c];
    float k = params[L->w_off + c] * istd;
    for (size_t b = 0; b < B; b++) {
        const float *x = io->x + (b * C + c) * HW, *dy = io->dy + (b * C + c) * HW;
        float *dx = io->dx + (b * C + c) * HW;
        for (size_t j = 0; j < HW; j++) {
            float xh = (x[j] - mean) * istd;
            dx[j] = k * (dy[j] - mdy - xh * mdyx);
        }
    }
}

/* Σ dy and Σ dy xhat of channel c over this batch. */
/* la[j % 8] += dy[j], lb[j % 8] += dy[j] xhat[j], j < n. */
AE_HOT static void plane_grad_sums(const float *x, const float *dy, size_t n, float mean,
                                   float istd, double *la, double *lb) {
    size_t nv = n / BN_LANES * BN_LANES;
    for (size_t i = 0; i < nv; i += BN_LANES)
        for (size_t j = 0; j < BN_LANES; j++) {
            la[j] += dy[i + j];
            lb[j] += (double)dy[i + j] * (double)((x[i + j] - mean) * istd);
        }
    for (size_t i = nv; i < n; i++) {
        la[i - nv] += dy[i];
        lb[i - nv] += (double)dy[i] * (double)((x[i] - mean) * istd);
    }
}

static void channel_grad_sums(const ae_layer *L, const ae_layer_io *io, size_t c, double *sdy,
                              double *sdyx) {
    size_t C = L->in_shape.c, HW = L->in_shape.h * L->in_shape.w;
    float mean = io->scratch[c], istd = io->scratch[C + c];
    double la[BN_LANES] = {0}, lb[BN_LANES] = {0};
    for (size_t b = 0; b < io->batch; b++)
        plane_grad_sums(io->x + (b * C + c) * HW, io->dy + (b * C + c) * HW, HW, mean, istd, la,
                        lb);
    *sdy = lanes_total(la);
    *sdyx = lanes_total(lb);
}

/* The parameter gradients and dx of channels [lo, hi), without a hook. */
static void grad_channels(void *ctx, size_t lo, size_t hi) {
    const bn_job *j = ctx;
    const ae_layer *L = j->L;
    for (size_t c = lo; c < hi; c++) {
        double sdy, sdyx;
        channel_grad_sums(L, j->io, c, &sdy, &sdyx);
        if (!L->frozen) {
            j->grads[L->w_off + c] = (float)sdyx;
            j->grads[L->b_off + c] = (float)sdy;
        }
        if (j->io->dx) bn_dx(L, j->params, j->io, c, (float)(sdy / j->n), (float)(sdyx / j->n));
    }
}

static void bn_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                        int accumulate_w) {
    (void)accumulate_w;
    size_t C = L->in_shape.c;
    double n;
    memcpy(&n, count_slot(L, io->scratch), sizeof n);
    /* The parameter gradients are this process's own: the gradient-reduce
     * hook combines them. dx needs the sums over every process (io->sync),
     * in this process's scale (ae_batch_sync.grad_scale). */
    double *v = io->sync ? io->sync->buf : NULL;
    if (!v) {
        bn_job j = {L, params, grads, io, n};
        ae_pool_for(io->threads, C, 1, channels_each(L, io->batch), grad_channels, &j);
        return;
    }
    for (size_t c = 0; c < C; c++) {
        double sdy, sdyx;
        channel_grad_sums(L, io, c, &sdy, &sdyx);
        if (!L->frozen) {
            grads[L->w_off + c] = (float)sdyx;
            grads[L->b_off + c] = (float)sdy;
        }
        if (v) {
            v[c] = sdy * io->sync->grad_scale;
            v[C + c] = sdyx * io->sync->grad_scale;
        } else if (io->dx) {
            bn_dx(L, params, io, c, (float)(sdy / n), (float)(sdyx / n));
        }
    }
    if (!v) return;
    ae_batch_sync_sum(io->sync, v, 2 * C);
    if (!io->dx) return;
    double g = io->sync->grad_scale;
    for (size_t c = 0; c < C; c++)
        bn_dx(L, params, io, c, (float)(v[c] / g / n), (float)(v[C + c] / g / n));
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
