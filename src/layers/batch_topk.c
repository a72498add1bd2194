/* Batch top-k: in training keep the batch·k largest values of the whole
 * batch (ties: the lower row-major position wins), zero the rest; gradient
 * through the kept entries. Each training forward updates the inference
 * threshold θ (state[0]), a running average with momentum 0.1 of the
 * smallest kept value; state[1] is 1 once θ is set. In inference the values
 * greater than θ are kept (before any training forward: as in training).
 * Scratch: the keep mask, one byte per element, then a heap of batch·k
 * positions (size_t). */
#include <math.h>
#include <string.h>

#include "layers.h"
#include "select.h"

AE_DEFINE_SELECT(select_flat, size_t)

#define THETA_MOMENTUM 0.1

int ae_batch_topk_threshold(const ae_layer *L, const float *state, double *theta) {
    (void)L;
    if (!state || state[1] == 0.0f) return 0;
    *theta = state[0];
    return 1;
}

static ae_status batch_topk_check_state(const ae_layer *L, const float *state, ae_errbuf *err) {
    (void)L;
    if (state[1] != 0.0f && state[1] != 1.0f)
        return ae_error(err, AE_ERR_RANGE,
                        "batch top-k: the state's second value (threshold set) must be 0 or 1, "
                        "got %g",
                        (double)state[1]);
    return AE_OK;
}

static ae_status batch_topk_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    size_t k = (size_t)spec->iparam[0];
    if (k < 1 || k > L->in)
        return ae_error(err, AE_ERR_RANGE,
                        "batch top-k: k must be in [1, %zu] (the width of its input), got %zu",
                        L->in, k);
    L->out_shape = L->in_shape;
    L->keeps_zeros = 1;
    L->s_count = 2;
    return AE_OK;
}

/* Mask bytes rounded to 64 so the heap after them is aligned. */
static size_t mask_floats(size_t elems) { return (elems + 63) / 64 * 16; }

static size_t batch_topk_scratch(const ae_layer *L, size_t batch) {
    size_t k = (size_t)L->spec.iparam[0];
    return mask_floats(batch * L->in) + batch * k * (sizeof(size_t) / sizeof(float));
}

static void no_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void batch_topk_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t total = io->batch * L->in, kk = io->batch * (size_t)L->spec.iparam[0];
    unsigned char *mask = (unsigned char *)io->scratch;
    float *state = io->state;
    const float *x = io->x;
    float *y = io->y;
    if (!io->train && state[1] != 0.0f) {
        float theta = state[0];
        for (size_t i = 0; i < total; i++) {
            mask[i] = x[i] > theta;
            y[i] = x[i] > theta ? x[i] : x[i] != x[i] ? NAN : 0.0f;
        }
        return;
    }
    size_t *heap = (size_t *)(void *)(io->scratch + mask_floats(total));
    if (select_flat(x, total, 1, kk, heap) != 0) {
        for (size_t i = 0; i < total; i++) y[i] = NAN;
        memset(mask, 0, total);
        return;
    }
    memset(mask, 0, total);
    float smallest = INFINITY;
    for (size_t t = 0; t < kk; t++) {
        mask[heap[t]] = 1;
        if (x[heap[t]] < smallest) smallest = x[heap[t]];
    }
    for (size_t i = 0; i < total; i++) y[i] = mask[i] ? x[i] : 0.0f;
    /* An overflowed batch (an infinite k-th value) must not leave θ infinite
       for every later inference. */
    if (io->train && isfinite(smallest)) {
        if (state[1] == 0.0f) {
            state[0] = smallest;
            state[1] = 1.0f;
        } else {
            state[0] = (float)((1.0 - THETA_MOMENTUM) * state[0] + THETA_MOMENTUM * smallest);
        }
    }
}

static void batch_topk_backward(const ae_layer *L, const float *params, float *grads,
                                ae_layer_io *io, int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (io->dx)
        ae_mask_backward((const unsigned char *)io->scratch, io->dy, io->dx, io->batch * L->in);
}

static const ae_layer_attr batch_topk_attrs[] = {
    {.name = "k", .type = AE_ATTR_INT, .slot = 0, .lo = 1, .hi = (double)AE_MAX_DIM},
};

static const ae_layer_desc batch_topk_desc = {
    .kind = AE_LAYER_BATCH_TOPK,
    .name = "batch_topk",
    .flags = AE_LK_SELECT | AE_LK_STATE,
    .attrs = batch_topk_attrs,
    .nattrs = sizeof batch_topk_attrs / sizeof batch_topk_attrs[0],
};

const ae_layer_ops ae_batch_topk_ops = {
    .desc = &batch_topk_desc,
    .setup = batch_topk_setup,
    .scratch_floats = batch_topk_scratch,
    .init = no_init,
    .forward = batch_topk_forward,
    .backward = batch_topk_backward,
    .kept_index = NULL,
    .check_state = batch_topk_check_state,
};
