#include <string.h>

#include "core/pool.h"
#include "im2col.h"
#include "layers.h"

/* The output columns ow whose input column ow*s - p + kj lies in [0, W). */
static void valid_range(size_t W, size_t Wo, size_t s, size_t p, size_t kj, size_t *lo,
                        size_t *hi) {
    /* ow*s + kj >= p  <=>  ow >= ceil((p - kj) / s) */
    size_t l = kj >= p ? 0 : (p - kj + s - 1) / s;
    /* ow*s + kj - p <= W - 1  <=>  ow <= (W - 1 + p - kj) / s */
    size_t h = (W - 1 + p < kj) ? 0 : (W - 1 + p - kj) / s + 1;
    if (h > Wo) h = Wo;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

/* One pass's arguments, for its samples [b0, b1) (core/pool.h). */
typedef struct cols_job {
    const ae_conv_geom *g;
    size_t B;
    const float *src;
    float *dst;
} cols_job;

static void im2col_samples(void *ctx, size_t b0, size_t b1) {
    const cols_job *j = ctx;
    const ae_conv_geom *g = j->g;
    const float *img = j->src;
    float *col = j->dst;
    size_t C = g->C, H = g->H, W = g->W, k = g->k, s = g->s, p = g->p, Ho = g->Ho, Wo = g->Wo;
    size_t P = Ho * Wo, N = j->B * P, HW = H * W;
    for (size_t c = 0; c < C; c++)
        for (size_t ki = 0; ki < k; ki++)
            for (size_t kj = 0; kj < k; kj++) {
                float *row = col + ((c * k + ki) * k + kj) * N;
                size_t lo, hi;
                valid_range(W, Wo, s, p, kj, &lo, &hi);
                /* No column inside (padding wider than the input): the loops
                 * below would form pointers before the row, lo + kj < p. */
                if (lo == hi) {
                    memset(row + b0 * P, 0, (b1 - b0) * P * sizeof *row);
                    continue;
                }
                for (size_t b = b0; b < b1; b++) {
                    const float *src = img + (b * C + c) * HW;
                    float *d = row + b * P;
                    for (size_t oh = 0; oh < Ho; oh++, d += Wo) {
                        size_t ih = oh * s + ki;
                        if (ih < p || ih - p >= H) {
                            memset(d, 0, Wo * sizeof *d);
                            continue;
                        }
                        /* For ow in [lo, hi): ow*s + kj >= p, and the column is inside. */
                        const float *sr = src + (ih - p) * W;
                        for (size_t ow = 0; ow < lo; ow++) d[ow] = 0.0f;
                        if (s == 1) {
                            memcpy(d + lo, sr + (lo + kj - p), (hi - lo) * sizeof *d);
                        } else if (s == 2) { /* a constant stride the compiler can vectorise */
                            const float *q = sr + (2 * lo + kj - p);
                            for (size_t ow = lo; ow < hi; ow++) d[ow] = q[2 * (ow - lo)];
                        } else {
                            for (size_t ow = lo; ow < hi; ow++) d[ow] = sr[ow * s + kj - p];
                        }
                        for (size_t ow = hi; ow < Wo; ow++) d[ow] = 0.0f;
                    }
                }
            }
}

/* Each element of a sample's planes takes its terms in the order (ki, kj,
 * oh) whatever the split of the samples: the same bits on any count. */
static void col2im_samples(void *ctx, size_t b0, size_t b1) {
    const cols_job *j = ctx;
    const ae_conv_geom *g = j->g;
    const float *col = j->src;
    float *img = j->dst;
    size_t C = g->C, H = g->H, W = g->W, k = g->k, s = g->s, p = g->p, Ho = g->Ho, Wo = g->Wo;
    size_t P = Ho * Wo, N = j->B * P, HW = H * W;
    for (size_t c = 0; c < C; c++)
        for (size_t ki = 0; ki < k; ki++)
            for (size_t kj = 0; kj < k; kj++) {
                const float *row = col + ((c * k + ki) * k + kj) * N;
                size_t lo, hi;
                valid_range(W, Wo, s, p, kj, &lo, &hi);
                if (lo == hi) continue; /* as in ae_im2col: nothing lands inside */
                for (size_t b = b0; b < b1; b++) {
                    float *dst = img + (b * C + c) * HW;
                    const float *d = row + b * P;
                    for (size_t oh = 0; oh < Ho; oh++, d += Wo) {
                        size_t ih = oh * s + ki;
                        if (ih < p || ih - p >= H) continue;
                        float *dr = dst + (ih - p) * W;
                        if (s == 1) {
                            float *dd = dr + (lo + kj - p);
                            for (size_t ow = lo; ow < hi; ow++) dd[ow - lo] += d[ow];
                        } else if (s == 2) {
                            float *q = dr + (2 * lo + kj - p);
                            for (size_t ow = lo; ow < hi; ow++) q[2 * (ow - lo)] += d[ow];
                        } else {
                            for (size_t ow = lo; ow < hi; ow++) dr[ow * s + kj - p] += d[ow];
                        }
                    }
                }
            }
}

static size_t samples_each(const ae_conv_geom *g) {
    return ae_pool_units(AE_POOL_MIN_VALUES, g->C * g->k * g->k * g->Ho * g->Wo);
}

void ae_im2col(const ae_conv_geom *g, size_t B, const float *img, float *col, int threads) {
    cols_job j = {g, B, img, col};
    ae_pool_for(threads, B, 1, samples_each(g), im2col_samples, &j);
}

void ae_col2im(const ae_conv_geom *g, size_t B, const float *col, float *img, int threads) {
    cols_job j = {g, B, col, img};
    ae_pool_for(threads, B, 1, samples_each(g), col2im_samples, &j);
}

void ae_bcp_to_cbp(const float *src, size_t B, size_t C, size_t P, float *dst) {
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++)
            memcpy(dst + c * B * P + b * P, src + (b * C + c) * P, P * sizeof *dst);
}

void ae_cbp_to_bcp(const float *src, size_t B, size_t C, size_t P, float *dst) {
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < C; c++)
            memcpy(dst + (b * C + c) * P, src + c * B * P + b * P, P * sizeof *dst);
}

AE_HOT float ae_plane_sum(const float *s, size_t n) {
    float l[16] = {0};
    size_t nv = n / 16 * 16;
    for (size_t i = 0; i < nv; i += 16)
        for (size_t j = 0; j < 16; j++) l[j] += s[i + j];
    for (size_t i = nv; i < n; i++) l[i - nv] += s[i];
    for (size_t j = 0; j < 8; j++) l[j] += l[j + 8];
    for (size_t j = 0; j < 4; j++) l[j] += l[j + 4];
    return (l[0] + l[2]) + (l[1] + l[3]);
}

typedef struct planes_job {
    ae_activation act;
    float slope;
    const float *bias, *src;
    size_t sb, sc, C, P;
    float *pre, *y;
} planes_job;

static void bias_act_samples(void *ctx, size_t lo, size_t hi) {
    const planes_job *j = ctx;
    size_t C = j->C, P = j->P;
    for (size_t b = lo; b < hi; b++) {
        for (size_t c = 0; c < C; c++) {
            const float *s = j->src + b * j->sb + c * j->sc;
            float *pr = j->pre + (b * C + c) * P;
            float bc = j->bias ? j->bias[c] : 0.0f;
            for (size_t q = 0; q < P; q++) pr[q] = s[q] + bc;
        }
        ae_act_forward(j->act, j->slope, j->pre + b * C * P, j->y + b * C * P, C * P);
    }
}

/* Each sample alone, so any split over the threads gives the same bits. */
void ae_bias_act_planes(ae_activation act, float slope, const float *bias, const float *src,
                        size_t sb, size_t sc, float *pre, float *y, size_t B, size_t C, size_t P,
                        int threads) {
    planes_job j = {act, slope, bias, src, sb, sc, C, P, pre, y};
    ae_pool_for(threads, B, 1, ae_pool_units(AE_POOL_MIN_VALUES, C * P), bias_act_samples, &j);
}

typedef struct bias_grad_job {
    const float *d;
    size_t B, C, P;
    float *db;
} bias_grad_job;

static void bias_grad_channels(void *ctx, size_t lo, size_t hi) {
    const bias_grad_job *j = ctx;
    for (size_t c = lo; c < hi; c++) {
        float s = 0.0f;
        for (size_t b = 0; b < j->B; b++) s += ae_plane_sum(j->d + (b * j->C + c) * j->P, j->P);
        j->db[c] = s;
    }
}

/* Each channel's samples in order, whatever the split. */
void ae_bias_grad_planes(const float *d, size_t B, size_t C, size_t P, float *db, int threads) {
    bias_grad_job j = {d, B, C, P, db};
    ae_pool_for(threads, C, 1, ae_pool_units(AE_POOL_MIN_VALUES, B * P), bias_grad_channels, &j);
}
