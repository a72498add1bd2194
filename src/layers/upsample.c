/* Upsample by an integer factor: nearest (y[oh, ow] = x[oh / s, ow / s]) or
 * bilinear with align_corners=True (source row oh (H-1)/(Ho-1), PyTorch's
 * index and weight rule). No parameters, no scratch. */
#include <string.h>

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
    (void)L;
    (void)batch;
    return 0;
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

static void up_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t s = (size_t)L->spec.iparam[I_SCALE];
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    size_t planes = io->batch * L->in_shape.c;
    if (L->spec.iparam[I_MODE] == AE_UPSAMPLE_NEAREST) {
        for (size_t pl = 0; pl < planes; pl++) {
            const float *x = io->x + pl * H * W;
            float *y = io->y + pl * Ho * Wo;
            for (size_t oh = 0; oh < Ho; oh++) {
                const float *xr = x + (oh / s) * W;
                float *yr = y + oh * Wo;
                if (oh % s) {
                    memcpy(yr, yr - Wo, Wo * sizeof *yr);
                    continue;
                }
                for (size_t iw = 0; iw < W; iw++)
                    for (size_t j = 0; j < s; j++) yr[iw * s + j] = xr[iw];
            }
        }
        return;
    }
    float sh = lin_scale(H, Ho), sw = lin_scale(W, Wo);
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = io->x + pl * H * W;
        float *y = io->y + pl * Ho * Wo;
        for (size_t oh = 0; oh < Ho; oh++) {
            size_t h0, h1;
            float a0, a1;
            lin_index(oh, H, sh, &h0, &h1, &a0, &a1);
            for (size_t ow = 0; ow < Wo; ow++) {
                size_t w0, w1;
                float b0, b1;
                lin_index(ow, W, sw, &w0, &w1, &b0, &b1);
                y[oh * Wo + ow] = a0 * (b0 * x[h0 * W + w0] + b1 * x[h0 * W + w1]) +
                                  a1 * (b0 * x[h1 * W + w0] + b1 * x[h1 * W + w1]);
            }
        }
    }
}

static void up_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                        int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (!io->dx) return;
    size_t s = (size_t)L->spec.iparam[I_SCALE];
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    size_t planes = io->batch * L->in_shape.c;
    memset(io->dx, 0, planes * H * W * sizeof *io->dx);
    int nearest = L->spec.iparam[I_MODE] == AE_UPSAMPLE_NEAREST;
    float sh = lin_scale(H, Ho), sw = lin_scale(W, Wo);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = io->dx + pl * H * W;
        const float *dy = io->dy + pl * Ho * Wo;
        for (size_t oh = 0; oh < Ho; oh++) {
            const float *dr = dy + oh * Wo;
            if (nearest) {
                float *xr = dx + (oh / s) * W;
                for (size_t ow = 0; ow < Wo; ow++) xr[ow / s] += dr[ow];
                continue;
            }
            size_t h0, h1;
            float a0, a1;
            lin_index(oh, H, sh, &h0, &h1, &a0, &a1);
            for (size_t ow = 0; ow < Wo; ow++) {
                size_t w0, w1;
                float b0, b1;
                lin_index(ow, W, sw, &w0, &w1, &b0, &b1);
                float g = dr[ow];
                dx[h0 * W + w0] += a0 * b0 * g;
                dx[h0 * W + w1] += a0 * b1 * g;
                dx[h1 * W + w0] += a1 * b0 * g;
                dx[h1 * W + w1] += a1 * b1 * g;
            }
        }
    }
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
