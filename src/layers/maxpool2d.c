/* MaxPool2d (floor mode, padding reads as -inf): each output is the largest
 * value of its window; the backward pass routes the gradient to the first
 * maximum of the window (PyTorch's rule: a later value wins only when it is
 * greater, or NaN). Scratch: the argmax of every output, as int32 plane
 * offsets, kept from forward to backward. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "layers.h"

enum { I_KERNEL = 0, I_STRIDE = 1, I_PAD = 2 };

static ae_status pool_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    size_t k = (size_t)sp->iparam[I_KERNEL], s = (size_t)sp->iparam[I_STRIDE],
           p = (size_t)sp->iparam[I_PAD];
    ae_shape in = L->in_shape;
    if (in.h + 2 * p < k || in.w + 2 * p < k)
        return ae_error(err, AE_ERR_SHAPE,
                        "maxpool2d kernel %zu does not fit the input %zux%zux%zu padded by %zu", k,
                        in.c, in.h, in.w, p);
    L->out_shape = (ae_shape){in.c, (in.h + 2 * p - k) / s + 1, (in.w + 2 * p - k) / s + 1};
    L->w_count = L->b_count = 0;
    return AE_OK;
}

static size_t pool_scratch(const ae_layer *L, size_t batch) {
    return batch * ae_shape_size(L->out_shape); /* one int32 per output */
}

static void pool_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void pool_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t k = (size_t)L->spec.iparam[I_KERNEL], s = (size_t)L->spec.iparam[I_STRIDE],
           p = (size_t)L->spec.iparam[I_PAD];
    size_t H = L->in_shape.h, W = L->in_shape.w, Ho = L->out_shape.h, Wo = L->out_shape.w;
    size_t planes = io->batch * L->in_shape.c;
    int32_t *arg = (int32_t *)io->scratch;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = io->x + pl * H * W;
        float *y = io->y + pl * Ho * Wo;
        int32_t *a = arg + pl * Ho * Wo;
        for (size_t oh = 0; oh < Ho; oh++) {
            size_t h0 = oh * s, h1 = h0 + k; /* window rows [h0, h1) in padded coordinates */
            h0 = h0 < p ? 0 : h0 - p;
            h1 = h1 - p > H ? H : h1 - p;
            for (size_t ow = 0; ow < Wo; ow++) {
                size_t w0 = ow * s, w1 = w0 + k;
                w0 = w0 < p ? 0 : w0 - p;
                w1 = w1 - p > W ? W : w1 - p;
                size_t best_i = h0 * W + w0;
                float best = -INFINITY;
                for (size_t ih = h0; ih < h1; ih++)
                    for (size_t iw = w0; iw < w1; iw++) {
                        float v = x[ih * W + iw];
                        if (v > best || isnan(v)) {
                            best = v;
                            best_i = ih * W + iw;
                        }
                    }
                y[oh * Wo + ow] = best;
                a[oh * Wo + ow] = (int32_t)best_i;
            }
        }
    }
}

static void pool_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                          int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (!io->dx) return;
    size_t HW = L->in_shape.h * L->in_shape.w, P = L->out_shape.h * L->out_shape.w;
    size_t planes = io->batch * L->in_shape.c;
    const int32_t *arg = (const int32_t *)io->scratch;
    memset(io->dx, 0, planes * HW * sizeof *io->dx);
    for (size_t pl = 0; pl < planes; pl++) {
        float *dx = io->dx + pl * HW;
        const float *dy = io->dy + pl * P;
        const int32_t *a = arg + pl * P;
        for (size_t j = 0; j < P; j++) dx[a[j]] += dy[j];
    }
}

/* Stride 0 is PyTorch's default, the kernel; padding at most half the
 * kernel, as PyTorch requires. */
static ae_status pool_check(ae_layer_spec *sp, ae_errbuf *err) {
    if (sp->iparam[I_STRIDE] == 0) sp->iparam[I_STRIDE] = sp->iparam[I_KERNEL];
    if (sp->iparam[I_PAD] > sp->iparam[I_KERNEL] / 2)
        return ae_error(err, AE_ERR_RANGE,
                        "maxpool2d padding must be at most half the kernel (%lld), got %lld",
                        (long long)(sp->iparam[I_KERNEL] / 2), (long long)sp->iparam[I_PAD]);
    return AE_OK;
}

static const ae_layer_attr pool_attrs[] = {
    {.name = "kernel", .type = AE_ATTR_INT, .slot = I_KERNEL, .lo = 1, .hi = (double)AE_MAX_KERNEL},
    {.name = "stride", .type = AE_ATTR_INT, .slot = I_STRIDE,
     .lo = 0, .hi = (double)AE_MAX_KERNEL, .has_default = 1, .def = 0},
    {.name = "padding", .type = AE_ATTR_INT, .slot = I_PAD,
     .lo = 0, .hi = (double)AE_MAX_KERNEL, .has_default = 1, .def = 0},
};

static const ae_layer_desc pool_desc = {
    .kind = AE_LAYER_MAXPOOL2D,
    .name = "maxpool2d",
    .flags = 0,
    .attrs = pool_attrs,
    .nattrs = sizeof pool_attrs / sizeof pool_attrs[0],
    .check = pool_check,
};

const ae_layer_ops ae_maxpool2d_ops = {
    .desc = &pool_desc,
    .setup = pool_setup,
    .scratch_floats = pool_scratch,
    .init = pool_init,
    .forward = pool_forward,
    .backward = pool_backward,
};
