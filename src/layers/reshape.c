/* Flatten and Unflatten: the same data under a new sample shape. Flatten
 * gives (c*h*w) x 1 x 1; Unflatten reads the sample as iparam c x h x w. */
#include <string.h>

#include "layers.h"

static ae_status flatten_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    (void)sp;
    (void)err;
    L->out_shape = (ae_shape){L->in, 1, 1};
    L->w_count = L->b_count = 0;
    return AE_OK;
}

static ae_status unflatten_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    ae_shape s = {(size_t)sp->iparam[0], (size_t)sp->iparam[1], (size_t)sp->iparam[2]};
    size_t n;
    if (ae_mul_overflow(s.c, s.h, &n) || ae_mul_overflow(n, s.w, &n) || n != L->in)
        return ae_error(err, AE_ERR_SHAPE, "unflatten to %zux%zux%zu needs %zu values per sample, "
                        "not the %zu it gets", s.c, s.h, s.w, s.c * s.h * s.w, L->in);
    L->out_shape = s;
    L->w_count = L->b_count = 0;
    return AE_OK;
}

static size_t reshape_scratch(const ae_layer *L, size_t batch) {
    (void)L;
    (void)batch;
    return 0;
}

static void reshape_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void reshape_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    memcpy(io->y, io->x, io->batch * L->in * sizeof *io->y);
}

static void reshape_backward(const ae_layer *L, const float *params, float *grads,
                             ae_layer_io *io, int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (io->dx) memcpy(io->dx, io->dy, io->batch * L->in * sizeof *io->dx);
}

static const ae_layer_desc flatten_desc = {
    .kind = AE_LAYER_FLATTEN,
    .name = "flatten",
    .flags = 0,
};

const ae_layer_ops ae_flatten_ops = {
    .desc = &flatten_desc,
    .setup = flatten_setup,
    .scratch_floats = reshape_scratch,
    .init = reshape_init,
    .forward = reshape_forward,
    .backward = reshape_backward,
};

static const ae_layer_attr unflatten_attrs[] = {
    {.name = "channels", .type = AE_ATTR_INT, .slot = 0, .lo = 1, .hi = (double)AE_MAX_DIM},
    {.name = "height", .type = AE_ATTR_INT, .slot = 1, .lo = 1, .hi = (double)AE_MAX_DIM},
    {.name = "width", .type = AE_ATTR_INT, .slot = 2, .lo = 1, .hi = (double)AE_MAX_DIM},
};

static const ae_layer_desc unflatten_desc = {
    .kind = AE_LAYER_UNFLATTEN,
    .name = "unflatten",
    .flags = 0,
    .attrs = unflatten_attrs,
    .nattrs = sizeof unflatten_attrs / sizeof unflatten_attrs[0],
};

const ae_layer_ops ae_unflatten_ops = {
    .desc = &unflatten_desc,
    .setup = unflatten_setup,
    .scratch_floats = reshape_scratch,
    .init = reshape_init,
    .forward = reshape_forward,
    .backward = reshape_backward,
};
