/* A standalone element-wise activation, y = act(x), shape unchanged. Its
 * input serves as the pre-activation; the layer stores a copy in io->pre
 * only when the driver asks for one (the loss reads logits). */
#include <string.h>

#include "layers.h"

static ae_status act_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    (void)sp;
    (void)err;
    L->out_shape = L->in_shape;
    L->w_count = L->b_count = 0;
    L->keep_pre = 0;
    return AE_OK;
}

static size_t act_scratch(const ae_layer *L, size_t batch) {
    (void)L;
    (void)batch;
    return 0;
}

static void act_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void act_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t n = io->batch * L->in;
    if (io->pre) memcpy(io->pre, io->x, n * sizeof *io->pre);
    ae_act_forward_mt(io->threads, L->act, L->slope, io->x, io->y, n);
}

static void act_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                         int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (!io->dx) return;
    size_t n = io->batch * L->in;
    memcpy(io->dx, io->dy, n * sizeof *io->dx);
    if (!io->dy_is_dpre) ae_act_backward_mt(io->threads, L->act, L->slope, io->x, io->y, io->dx, n);
}

static const ae_layer_desc act_desc = {
    .kind = AE_LAYER_ACTIVATION,
    .name = "activation",
    .flags = AE_LK_ACT,
};

const ae_layer_ops ae_activation_ops = {
    .desc = &act_desc,
    .setup = act_setup,
    .scratch_floats = act_scratch,
    .init = act_init,
    .forward = act_forward,
    .backward = act_backward,
};
