/* Upsample by an integer factor: nearest (y[oh, ow] = x[oh / s, ow / s]) or
 * bilinear with align_corners=True (source row oh (H-1)/(Ho-1), PyTorch's
 * index and weight rule). No parameters. Bilinear is separable: each input
 * row is interpolated along the width once (a gather by a column table
 * computed once per pass), then output rows mix two such rows, a loop that
 * vectorises; the backward pass is the same in reverse. Scratch (bilinear):
 * the column table (source columns and weights, 4 floats an output column)
 * and one plane of width-interpolated rows [H, Wo] for each of the pass's
 * threads (planes are independent: any split gives the same bits). */
#include <string.h>

#include "core/pool.h"
#include "layers.h"

enum { I_SCALE = 0, I_MODE = 1 };

static ae_status up_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    size_t s = (size_t)sp->iparam[I_SCALE];
    ae_shape in = L->in_shape;
    size_t n;
    if (ae_mul_overflow(in.h * s, in.w * s, &n) || ae_mul_overflow(n, in.c, &n) || n > AE_MAX_DIM)
        return ae_error(err, AE_ERR_SHAPE, "upsample by %zu of %zux%zux%zu has over %zu values", s,
                        in.c, in.h, in.w, AE_MAX_DIM);
    L->out_shape = (ae_shape){in.c, in.h * s, in.w * s};
    L->w_count = L->b_count = 0;
    return AE_OK;
}

static size_t up_scratch(const ae_layer *L, size_t batch) {
    (void)batch;
    if (L->spec.iparam[I_MODE] == AE_UPSAMPLE_NEAREST) return 0;
    return L->out_shape.w * 4 + AE_POOL_SLOTS * L->in_shape.h * L->out_shape.w;
}

static void up_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

/* Source index and weights of output o for bilinear, align_corners=True. */
static void lin_index(size_t o, size_t in, float scale, size_t *i0, size_t *i1, float *l0,
                      float *l1) {
    float src = scale * (float)o;
    size_t i = (size_t)src;
    if (i > in - 1) i = in - 1;
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l1 = src - (float)i;
    *l0 = 1.0f - *l1;
}

static float lin_scale(size_t in, size_t out) {
    return out > 1 ? (float)(in - 1) / (float)(out - 1) : 0.0f;
}

/* The column table of a pass: for output column ow its source columns
 * c0[ow], c1[ow] and weights b0[ow], b1[ow]; and the row buffers after it
 * (AE_POOL_SLOTS of H x Wo). */
typedef struct col_table {
    uint32_t *c0, *c1;
    float *b0, *b1, *rows;
} col_table;

static col_table columns(const ae_layer *L, float *scratch) {
    size_t W = L->in_shape.w, Wo = L->out_shape.w;
    col_table t = {(uint32_t *)(void *)scratch, (uint32_t *)(void *)(scratch + Wo),
                   scratch + 2 * Wo, scratch + 3 * Wo, scratch + 4 * Wo};
    float sw = lin_scale(W, Wo);
    for (size_t ow = 0; ow < Wo; ow++) {
        size_t w0, w1;
        lin_index(ow, W, sw, &w0, &w1, &t.b0[ow], &t.b1[ow]);
        t.c0[ow] = (uint32_t)w0;
        t.c1[ow] = (uint32_t)w1;
    }
    return t;
}

/* y = a0 r0 + a1 r1 over n values. */
AE_HOT static void mix_rows(float a0, const float *r0, float a1, const float *r1, float *y,
                            size_t n) {
    for (size_t i = 0; i < n; i++) y[i] = a0 * r0[i] + a1 * r1[i];
}

/* r0 += a0 g, r1 += a1 g over n values (r0 and r1 may be the same row). */
AE_HOT static void spread_rows(float a0, float *r0, float a1, float *r1, const float *g,
                               size_t n) {
    if (r0 == r1) {
        for (size_t i = 0; i < n; i++) r0[i] += (a0 + a1) * g[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        r0[i] += a0 * g[i];
        r1[i] += a1 * g[i];
    }
}

/* A pass over planes [lo, hi) with row buffer k (core/pool.h). */
typedef struct up_job {
    const ae_layer *L;
    col_table t;
    const float *src;
    float *dst;
} up_job;

static void bilinear_forward(void *ctx, size_t k, size_t lo, size_t hi) {
    const up_job *j = ctx;
    const ae_layer *L = j->L;
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    const col_table t = j->t;
    float *rows = t.rows + k * H * Wo;
    float sh = lin_scale(H, Ho);
    for (size_t pl = lo; pl < hi; pl++) {
        const float *x = j->src + pl * H * W;
        float *y = j->dst + pl * Ho * Wo;
        for (size_t h = 0; h < H; h++) {
            const float *xr = x + h * W;
            float *r = rows + h * Wo;
            for (size_t ow = 0; ow < Wo; ow++)
                r[ow] = t.b0[ow] * xr[t.c0[ow]] + t.b1[ow] * xr[t.c1[ow]];
        }
        for (size_t oh = 0; oh < Ho; oh++) {
            size_t h0, h1;
            float a0, a1;
            lin_index(oh, H, sh, &h0, &h1, &a0, &a1);
            mix_rows(a0, rows + h0 * Wo, a1, rows + h1 * Wo, y + oh * Wo, Wo);
        }
    }
}

static void bilinear_backward(void *ctx, size_t k, size_t lo, size_t hi) {
    const up_job *j = ctx;
    const ae_layer *L = j->L;
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    const col_table t = j->t;
    float *rows = t.rows + k * H * Wo;
    float sh = lin_scale(H, Ho);
    for (size_t pl = lo; pl < hi; pl++) {
        const float *dy = j->src + pl * Ho * Wo;
        float *dx = j->dst + pl * H * W;
        memset(dx, 0, H * W * sizeof *dx);
        memset(rows, 0, H * Wo * sizeof *rows);
        for (size_t oh = 0; oh < Ho; oh++) {
            size_t h0, h1;
            float a0, a1;
            lin_index(oh, H, sh, &h0, &h1, &a0, &a1);
            spread_rows(a0, rows + h0 * Wo, a1, rows + h1 * Wo, dy + oh * Wo, Wo);
        }
        for (size_t h = 0; h < H; h++) {
            const float *r = rows + h * Wo;
            float *xr = dx + h * W;
            for (size_t ow = 0; ow < Wo; ow++) {
                xr[t.c0[ow]] += t.b0[ow] * r[ow];
                xr[t.c1[ow]] += t.b1[ow] * r[ow];
            }
        }
    }
}

static void nearest_forward(void *ctx, size_t k, size_t lo, size_t hi) {
    (void)k;
    const up_job *j = ctx;
    const ae_layer *L = j->L;
    size_t s = (size_t)L->spec.iparam[I_SCALE];
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    for (size_t pl = lo; pl < hi; pl++) {
        const float *x = j->src + pl * H * W;
        float *y = j->dst + pl * Ho * Wo;
        for (size_t oh = 0; oh < Ho; oh++) {
            const float *xr = x + (oh / s) * W;
            float *yr = y + oh * Wo;
            if (oh % s) {
                memcpy(yr, yr - Wo, Wo * sizeof *yr);
                continue;
            }
            for (size_t iw = 0; iw < W; iw++)
                for (size_t q = 0; q < s; q++) yr[iw * s + q] = xr[iw];
        }
    }
}

static void nearest_backward(void *ctx, size_t k, size_t lo, size_t hi) {
    (void)k;
    const up_job *j = ctx;
    const ae_layer *L = j->L;
    size_t s = (size_t)L->spec.iparam[I_SCALE];
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    for (size_t pl = lo; pl < hi; pl++) {
        float *dx = j->dst + pl * H * W;
        const float *dy = j->src + pl * Ho * Wo;
        memset(dx, 0, H * W * sizeof *dx);
        for (size_t oh = 0; oh < Ho; oh++) {
            const float *dr = dy + oh * Wo;
            float *xr = dx + (oh / s) * W;
            for (size_t ow = 0; ow < Wo; ow++) xr[ow / s] += dr[ow];
        }
    }
}

static void run_planes(const ae_layer *L, const ae_layer_io *io, const float *src, float *dst,
                       int backward) {
    up_job j = {.L = L, .src = src, .dst = dst};
    size_t planes = io->batch * L->in_shape.c, Po = L->out_shape.h * L->out_shape.w;
    ae_pool_slot_fn fn;
    if (L->spec.iparam[I_MODE] == AE_UPSAMPLE_NEAREST) {
        fn = backward ? nearest_backward : nearest_forward;
    } else {
        j.t = columns(L, io->scratch);
        fn = backward ? bilinear_backward : bilinear_forward;
    }
    ae_pool_for_slots(io->threads, planes, ae_pool_units(AE_POOL_MIN_VALUES, Po), fn, &j);
}

static void up_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    run_planes(L, io, io->x, io->y, 0);
}

static void up_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                        int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (io->dx) run_planes(L, io, io->dy, io->dx, 1);
}

static const char *const up_modes[] = {"nearest", "bilinear", NULL};

static const ae_layer_attr up_attrs[] = {
    {.name = "scale", .type = AE_ATTR_INT, .slot = I_SCALE, .lo = 1, .hi = (double)AE_MAX_KERNEL},
    {.name = "mode", .type = AE_ATTR_ENUM, .slot = I_MODE,
     .lo = AE_UPSAMPLE_NEAREST, .hi = AE_UPSAMPLE_BILINEAR,
     .has_default = 1, .def = AE_UPSAMPLE_NEAREST, .values = up_modes},
};

static const ae_layer_desc up_desc = {
    .kind = AE_LAYER_UPSAMPLE,
    .name = "upsample",
    .flags = 0,
    .attrs = up_attrs,
    .nattrs = sizeof up_attrs / sizeof up_attrs[0],
};

const ae_layer_ops ae_upsample_ops = {
    .desc = &up_desc,
    .setup = up_setup,
    .scratch_floats = up_scratch,
    .init = up_init,
    .forward = up_forward,
    .backward = up_backward,
};
