#include <stdint.h>
#include <string.h>

#include "conv_direct.h"
#include "core/pool.h"
#include "layers.h"

/* At most this many output channels: the GEMM of im2col then has at most
 * 4 rows (32 -> 3 channels at 64x64: im2col + GEMM and oneDNN's primitives
 * measured 4-10x slower than this, docs/performance.md). */
enum { DIRECT_MAX_CO = 4 };

/* 16 floats: the compiler maps them to one AVX-512 register, two AVX2 or
 * four SSE ones (a GNU C vector; loads and stores through memcpy, which
 * compile to unaligned vector moves). */
typedef float v16 __attribute__((vector_size(64)));
enum { VL = 16, CO_BLOCK = 4, KJ_BLOCK = 8, DW_ROWS = 16 };

int ae_conv_direct_fits(const ae_conv_geom *g, size_t Co) {
    /* p <= k - 1: the data gradient's padding k - 1 - p is not negative. */
    return g->s == 1 && Co <= DIRECT_MAX_CO && g->k <= KJ_BLOCK && g->p < g->k &&
           !(g->p == 0 && g->k == g->H && g->k == g->W);
}

/* The padded input planes (*xp) and padded gradient planes (*dyp) of one sample. */
static void pad_floats(const ae_conv_geom *g, size_t Co, size_t *xp, size_t *dyp) {
    size_t q = g->k - 1 - g->p;
    *xp = g->C * (g->H + 2 * g->p) * (g->W + 2 * g->p);
    *dyp = Co * (g->Ho + 2 * q) * (g->Wo + 2 * q);
}

/* The padded planes of one sample in either pass: the room of each thread
 * but the first, whose planes are in the scratch of base_floats. */
static size_t pad_room(const ae_conv_geom *g, size_t Co) {
    size_t xp, dyp;
    pad_floats(g, Co, &xp, &dyp);
    return xp > dyp ? xp : dyp;
}

/* The scratch of one thread's passes; the other threads' padded planes
 * follow it (pad_room each). */
static size_t base_floats(const ae_conv_geom *g, size_t Co) {
    size_t kk = g->k * g->k, xp, dyp;
    pad_floats(g, Co, &xp, &dyp);
    size_t c4 = (g->C + CO_BLOCK - 1) / CO_BLOCK * CO_BLOCK;
    size_t o4 = (Co + CO_BLOCK - 1) / CO_BLOCK * CO_BLOCK;
    /* padded input, padded gradient, the flipped kernel, it blocked, dW's
     * sum; the forward pass: padded input, blocked kernel */
    size_t sums = Co * g->C * kk * (VL + 1), fwt = o4 * g->C * kk;
    return xp + dyp + g->C * Co * kk + c4 * Co * kk + (sums > fwt ? sums : fwt) + VL;
}

size_t ae_conv_direct_floats(const ae_conv_geom *g, size_t Co) {
    return base_floats(g, Co) + (AE_POOL_SLOTS - 1) * pad_room(g, Co);
}

/* dst [C][H+2p][W+2p]: the planes src [C][H][W] inside a zero border p. */
static void pad_planes(const float *src, size_t C, size_t H, size_t W, size_t p, float *dst) {
    size_t Wp = W + 2 * p;
    for (size_t c = 0; c < C; c++) {
        const float *s = src + c * H * W;
        float *d = dst + c * (H + 2 * p) * Wp;
        memset(d, 0, p * Wp * sizeof *d);
        d += p * Wp;
        for (size_t h = 0; h < H; h++, d += Wp) {
            for (size_t j = 0; j < p; j++) d[j] = d[p + W + j] = 0.0f;
            memcpy(d + p, s + h * W, W * sizeof *d);
        }
        memset(d, 0, p * Wp * sizeof *d);
    }
}


#define LOAD16(v, p) memcpy(&(v), (p), sizeof(v16))

/* The hot loops may fuse multiply and add where the CPU can (the AVX-512
 * clone): a pass is still bitwise the same run after run on one machine. */
#if defined(__GNUC__) && !defined(__clang__)
#define AE_CONTRACT __attribute__((optimize("fp-contract=fast")))
#else
#define AE_CONTRACT
#endif

/* wt [ceil(Co/4)][Ci][k][k][4] from w [Co][Ci][k][k]: 4 output channels'
 * weights side by side, zeros past Co. */
static void block_weights(const float *w, size_t Co, size_t Ci, size_t kk, float *wt) {
    size_t nb = (Co + CO_BLOCK - 1) / CO_BLOCK;
    for (size_t cb = 0; cb < nb; cb++)
        for (size_t i = 0; i < Ci * kk; i++)
            for (size_t j = 0; j < CO_BLOCK; j++) {
                size_t co = cb * CO_BLOCK + j;
                wt[(cb * Ci * kk + i) * CO_BLOCK + j] = co < Co ? w[co * Ci * kk + i] : 0.0f;
            }
}

/* y [Co][Ho][Wo] = init[co] (NULL: 0) + the valid correlation of the padded planes xp
 * [Ci][Hp][Wp] with the kernel w [Co][Ci][k][k], given blocked as wt
 * (block_weights), Ho = Hp - k + 1, Wo = Wp - k + 1:
 * y[co][oh][ow] = init[co] + w[co][ci][ki][kj] xp[ci][oh + ki][ow + kj], summed over
 * ci, ki, kj in that order for every output. 32 (then 16) outputs of a
 * row of 4 channels stay in registers across the whole sum, 8 independent
 * sums against the adds' latency. */
AE_HOT AE_CONTRACT static void correlate(size_t Ci, size_t Hp, size_t Wp, size_t k, size_t Co,
                                         const float *xp, const float *wt, const float *init,
                                         float *y) {
    size_t Ho = Hp - k + 1, Wo = Wp - k + 1, kk = k * k, P = Ho * Wo;
    for (size_t oh = 0; oh < Ho; oh++)
        for (size_t c0 = 0; c0 < Co; c0 += CO_BLOCK) {
            size_t nc = Co - c0 < CO_BLOCK ? Co - c0 : CO_BLOCK;
            float y0[CO_BLOCK] = {0};
            for (size_t j = 0; init && j < nc; j++) y0[j] = init[c0 + j];
            const float *wc = wt + c0 * Ci * kk;
            float *yr = y + c0 * P + oh * Wo;
            size_t ow = 0;
            for (; ow + 2 * VL <= Wo; ow += 2 * VL) {
                v16 a0[CO_BLOCK], a1[CO_BLOCK];
                for (size_t j = 0; j < CO_BLOCK; j++) a0[j] = a1[j] = (v16){0} + y0[j];
                for (size_t ci = 0; ci < Ci; ci++)
                    for (size_t ki = 0; ki < k; ki++) {
                        const float *xr = xp + (ci * Hp + oh + ki) * Wp + ow;
                        const float *wr = wc + (ci * k + ki) * k * CO_BLOCK;
                        for (size_t kj = 0; kj < k; kj++, wr += CO_BLOCK) {
                            v16 x0, x1;
                            LOAD16(x0, xr + kj);
                            LOAD16(x1, xr + kj + VL);
                            for (size_t j = 0; j < CO_BLOCK; j++) {
                                a0[j] += wr[j] * x0;
                                a1[j] += wr[j] * x1;
                            }
                        }
                    }
                for (size_t j = 0; j < nc; j++) {
                    memcpy(yr + j * P + ow, &a0[j], sizeof a0[j]);
                    memcpy(yr + j * P + ow + VL, &a1[j], sizeof a1[j]);
                }
            }
            for (; ow + VL <= Wo; ow += VL) {
                v16 a0[CO_BLOCK];
                for (size_t j = 0; j < CO_BLOCK; j++) a0[j] = (v16){0} + y0[j];
                for (size_t ci = 0; ci < Ci; ci++)
                    for (size_t ki = 0; ki < k; ki++) {
                        const float *xr = xp + (ci * Hp + oh + ki) * Wp + ow;
                        const float *wr = wc + (ci * k + ki) * k * CO_BLOCK;
                        for (size_t kj = 0; kj < k; kj++, wr += CO_BLOCK) {
                            v16 x0;
                            LOAD16(x0, xr + kj);
                            for (size_t j = 0; j < CO_BLOCK; j++) a0[j] += wr[j] * x0;
                        }
                    }
                for (size_t j = 0; j < nc; j++) memcpy(yr + j * P + ow, &a0[j], sizeof a0[j]);
            }
            for (; ow < Wo; ow++) /* the row's last Wo % 16 outputs */
                for (size_t j = 0; j < nc; j++) {
                    float a = y0[j];
                    for (size_t ci = 0; ci < Ci; ci++)
                        for (size_t ki = 0; ki < k; ki++) {
                            const float *xr = xp + (ci * Hp + oh + ki) * Wp + ow;
                            const float *wr = wc + (ci * k + ki) * k * CO_BLOCK + j;
                            for (size_t kj = 0; kj < k; kj++) a += wr[kj * CO_BLOCK] * xr[kj];
                        }
                    yr[j * P + ow] = a;
                }
        }
}

/* For co < Co (<= 4) and kj < k (<= 8), over oh < Ho, ow < Wo:
 * va[co * cs + kj] (16 lanes: ow % 16) and ta[co * cs + kj] (the last
 * Wo % 16 columns) += d[co][oh][ow] xq[oh][ow + kj], d's planes P apart,
 * xq's rows Wp apart: a few padded input rows against every output
 * channel's gradient rows, each shifted load feeding Co multiply-adds. The
 * caller keeps the rows few enough for d's to stay in L1. Co and k
 * constants where inlined with them. */
static inline __attribute__((always_inline)) void dw_rows_k(const float *d, const float *xq,
                                                            size_t Ho, size_t Wo, size_t Wp,
                                                            size_t P, size_t Co, size_t k,
                                                            v16 *va, float *ta, size_t cs) {
    v16 acc[CO_BLOCK][KJ_BLOCK];
    float tail[CO_BLOCK][KJ_BLOCK];
    for (size_t co = 0; co < Co; co++)
        for (size_t kj = 0; kj < k; kj++) {
            acc[co][kj] = va[co * cs + kj];
            tail[co][kj] = ta[co * cs + kj];
        }
    size_t nv = Wo / VL * VL;
    for (size_t oh = 0; oh < Ho; oh++) {
        const float *dr = d + oh * Wo, *xr = xq + oh * Wp;
        for (size_t ow = 0; ow < nv; ow += VL) {
            v16 xv[KJ_BLOCK];
            for (size_t kj = 0; kj < k; kj++) LOAD16(xv[kj], xr + ow + kj);
            for (size_t co = 0; co < Co; co++) {
                v16 dv;
                LOAD16(dv, dr + co * P + ow);
                for (size_t kj = 0; kj < k; kj++) acc[co][kj] += dv * xv[kj];
            }
        }
        for (size_t ow = nv; ow < Wo; ow++)
            for (size_t co = 0; co < Co; co++)
                for (size_t kj = 0; kj < k; kj++) tail[co][kj] += dr[co * P + ow] * xr[ow + kj];
    }
    for (size_t co = 0; co < Co; co++)
        for (size_t kj = 0; kj < k; kj++) {
            va[co * cs + kj] = acc[co][kj];
            ta[co * cs + kj] = tail[co][kj];
        }
}

/* Co and k constants in the common cases, so that the sums stay in registers. */
AE_HOT AE_CONTRACT static void dw_rows(const float *d, const float *xq, size_t Ho, size_t Wo,
                                       size_t Wp, size_t P, size_t Co, size_t k, v16 *va,
                                       float *ta, size_t cs) {
#define DW_K(CO)                                                                                   \
    do {                                                                                           \
        if (k == 3)                                                                                \
            dw_rows_k(d, xq, Ho, Wo, Wp, P, CO, 3, va, ta, cs);                                    \
        else                                                                                       \
            dw_rows_k(d, xq, Ho, Wo, Wp, P, CO, k, va, ta, cs);                                    \
    } while (0)
    switch (Co) {
    case 1: DW_K(1); break;
    case 2: DW_K(2); break;
    case 3: DW_K(3); break;
    default: DW_K(4); break;
    }
#undef DW_K
}

/* Samples [lo, hi) of a correlation pass on padded-plane buffer k: the
 * forward pass (src x, dst pre) or the data gradient (src d, dst dx). */
typedef struct direct_job {
    const ae_conv_geom *g;
    size_t Ci, Hs, Ws, pad, Co; /* the source planes, their padding, the outputs */
    const float *src, *wt, *bias;
    float *dst, *pad0, *pads; /* buffer 0, then buffers 1.. (pad_room apart) */
    size_t room;
} direct_job;

static void correlate_samples(void *ctx, size_t k, size_t lo, size_t hi) {
    const direct_job *j = ctx;
    size_t Hp = j->Hs + 2 * j->pad, Wp = j->Ws + 2 * j->pad, k1 = Hp - j->g->k + 1,
           k2 = Wp - j->g->k + 1;
    float *buf = k ? j->pads + (k - 1) * j->room : j->pad0;
    for (size_t b = lo; b < hi; b++) {
        pad_planes(j->src + b * j->Ci * j->Hs * j->Ws, j->Ci, j->Hs, j->Ws, j->pad, buf);
        correlate(j->Ci, Hp, Wp, j->g->k, j->Co, buf, j->wt, j->bias, j->dst + b * j->Co * k1 * k2);
    }
}

void ae_conv_direct_forward(const ae_conv_geom *g, size_t B, size_t Co, const float *x,
                            const float *W, const float *bias, float *pre, float *scratch,
                            int threads) {
    size_t Hp = g->H + 2 * g->p, Wp = g->W + 2 * g->p, P = g->Ho * g->Wo;
    float *wt = scratch + g->C * Hp * Wp;
    block_weights(W, Co, g->C, g->k * g->k, wt);
    direct_job j = {g, g->C, g->H, g->W, g->p, Co, x, wt, bias, pre, scratch,
                    scratch + base_floats(g, Co), pad_room(g, Co)};
    ae_pool_for_slots(threads, B, ae_pool_units(AE_POOL_MIN_VALUES, Co * P), correlate_samples, &j);
}

void ae_conv_direct_backward(const ae_conv_geom *g, size_t B, size_t Co, const float *x,
                             const float *d, const float *W, float *dW, int accumulate, float *dx,
                             float *scratch, int threads) {
    size_t C = g->C, H = g->H, Wd = g->W, k = g->k, p = g->p, Ho = g->Ho, Wo = g->Wo;
    size_t q = k - 1 - p, kk = k * k, Hp = H + 2 * p, Wp = Wd + 2 * p;
    size_t Hq = Ho + 2 * q, Wq = Wo + 2 * q, P = Ho * Wo;
    size_t c4 = (C + CO_BLOCK - 1) / CO_BLOCK * CO_BLOCK;
    float *xp = scratch, *dyp = xp + C * Hp * Wp, *wf = dyp + Co * Hq * Wq, *wt = wf + C * Co * kk;
    float *acc = wt + c4 * Co * kk;
    /* dW's lane sums are vectors: aligned to 64 bytes within the scratch. */
    acc += (VL - ((uintptr_t)(void *)acc / sizeof(float)) % VL) % VL;
    if (dW) {
        /* Lane sums va and column-tail sums ta per weight, added up at the
         * end; 16 output rows at a time keep the gradient's rows in L1
         * while every input channel and kernel row passes over them. */
        v16 *va = (v16 *)(void *)acc;
        float *ta = acc + Co * C * kk * VL;
        memset(acc, 0, Co * C * kk * (VL + 1) * sizeof *acc);
        for (size_t b = 0; b < B; b++) {
            pad_planes(x + b * C * H * Wd, C, H, Wd, p, xp);
            for (size_t o0 = 0; o0 < Ho; o0 += DW_ROWS) {
                size_t nr = Ho - o0 < DW_ROWS ? Ho - o0 : DW_ROWS;
                for (size_t ci = 0; ci < C; ci++)
                    for (size_t ki = 0; ki < k; ki++) {
                        size_t w0 = (ci * k + ki) * k;
                        dw_rows(d + b * Co * P + o0 * Wo, xp + (ci * Hp + ki + o0) * Wp, nr, Wo,
                                Wp, P, Co, k, va + w0, ta + w0, C * kk);
                    }
            }
        }
        for (size_t i = 0; i < Co * C * kk; i++) {
            float l[VL];
            memcpy(l, &va[i], sizeof l);
            for (size_t j = 0; j < 8; j++) l[j] += l[j + 8];
            for (size_t j = 0; j < 4; j++) l[j] += l[j + 4];
            float v = ((l[0] + l[2]) + (l[1] + l[3])) + ta[i];
            dW[i] = accumulate ? dW[i] + v : v;
        }
    }
    if (dx) {
        /* wf [C][Co][k][k]: the kernel transposed and turned by 180 degrees. */
        for (size_t co = 0; co < Co; co++)
            for (size_t ci = 0; ci < C; ci++)
                for (size_t i = 0; i < kk; i++)
                    wf[(ci * Co + co) * kk + i] = W[(co * C + ci) * kk + kk - 1 - i];
        block_weights(wf, C, Co, kk, wt);
        direct_job j = {g, Co, Ho, Wo, q, C, d, wt, NULL, dx, dyp,
                        scratch + base_floats(g, Co), pad_room(g, Co)};
        ae_pool_for_slots(threads, B, ae_pool_units(AE_POOL_MIN_VALUES, C * H * Wd),
                          correlate_samples, &j);
    }
}
