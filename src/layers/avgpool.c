/* AdaptiveAvgPool2d(1): the mean of each channel, c x h x w to c x 1 x 1. */
#include "layers.h"

static ae_status avg_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    (void)sp;
    (void)err;
    L->out_shape = (ae_shape){L->in_shape.c, 1, 1};
    L->w_count = L->b_count = 0;
    return AE_OK;
}

static size_t avg_scratch(const ae_layer *L, size_t batch) {
    (void)L;
    (void)batch;
    return 0;
}

static void avg_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void avg_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t HW = L->in_shape.h * L->in_shape.w, planes = io->batch * L->in_shape.c;
    float inv = 1.0f / (float)HW;
    for (size_t pl = 0; pl < planes; pl++) {
        const float *x = io->x + pl * HW;
        float acc = 0.0f;
        for (size_t j = 0; j < HW; j++) acc += x[j];
        io->y[pl] = acc * inv;
    }
}

static void avg_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                         int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (!io->dx) return;
    size_t HW = L->in_shape.h * L->in_shape.w, planes = io->batch * L->in_shape.c;
    float inv = 1.0f / (float)HW;
    for (size_t pl = 0; pl < planes; pl++) {
        float g = io->dy[pl] * inv, *dx = io->dx + pl * HW;
        for (size_t j = 0; j < HW; j++) dx[j] = g;
    }
}

static const ae_layer_desc avg_desc = {
    .kind = AE_LAYER_AVGPOOL_1X1,
    .name = "avgpool_1x1",
    .flags = 0,
};

const ae_layer_ops ae_avgpool_ops = {
    .desc = &avg_desc,
    .setup = avg_setup,
    .scratch_floats = avg_scratch,
    .init = avg_init,
    .forward = avg_forward,
    .backward = avg_backward,
};
