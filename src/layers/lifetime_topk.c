/* Lifetime top-k (winner-take-all across the batch): in each column keep
 * the k largest values over the batch (ties: the lower row wins), zero the
 * rest; gradient through the kept entries. Training only; in inference the
 * input passes through. k is a count (iparam[0]) or ceil(fraction · batch)
 * (fparam[0] > 0). With batch ≤ k everything is kept.
 * Scratch: the keep mask, one byte per element, then a heap of batch ints. */
#include <math.h>
#include <string.h>

#include "layers.h"

size_t ae_lifetime_k(const ae_layer *L, size_t batch) {
    double f = L->spec.fparam[0];
    if (f > 0.0) {
        double k = ceil(f * (double)batch);
        return k < 1.0 ? 1 : (size_t)k;
    }
    return (size_t)L->spec.iparam[0];
}

static ae_status lifetime_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    (void)spec;
    (void)err;
    L->out_shape = L->in_shape;
    L->keeps_zeros = 1;
    return AE_OK;
}

static size_t mask_floats(size_t elems) { return (elems + sizeof(float) - 1) / sizeof(float); }

static size_t lifetime_scratch(const ae_layer *L, size_t batch) {
    return mask_floats(batch * L->in) + batch;
}

static void no_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void lifetime_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t n = L->in, B = io->batch, total = B * n;
    unsigned char *mask = (unsigned char *)io->scratch;
    int32_t *heap = (int32_t *)(io->scratch + mask_floats(total));
    size_t k = ae_lifetime_k(L, B);
    if (!io->train || B <= k) {
        if (io->y != io->x) memcpy(io->y, io->x, total * sizeof(float));
        memset(mask, 1, total);
        return;
    }
    memset(mask, 0, total);
    for (size_t j = 0; j < n; j++) {
        if (ae_select_topk(io->x + j, B, n, k, heap) != 0) {
            for (size_t r = 0; r < B; r++) mask[r * n + j] = 2; /* NaN column */
            continue;
        }
        for (size_t t = 0; t < k; t++) mask[(size_t)heap[t] * n + j] = 1;
    }
    for (size_t i = 0; i < total; i++)
        io->y[i] = mask[i] == 1 ? io->x[i] : mask[i] ? NAN : 0.0f;
}

AE_HOT void ae_mask_backward(const unsigned char *mask, const float *dy, float *dx, size_t n) {
    for (size_t i = 0; i < n; i++) dx[i] = mask[i] ? dy[i] : 0.0f;
}

static void lifetime_backward(const ae_layer *L, const float *params, float *grads,
                              ae_layer_io *io, int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (io->dx)
        ae_mask_backward((const unsigned char *)io->scratch, io->dy, io->dx, io->batch * L->in);
}

/* k is a count or a fraction of the batch: exactly one of them is set. */
static ae_status lifetime_check(ae_layer_spec *sp, ae_errbuf *err) {
    if (sp->fparam[0] == 0.0 && sp->iparam[0] == 0)
        return ae_error(err, AE_ERR_RANGE, "lifetime_topk k must be in [1, %zu], got 0",
                        AE_MAX_DIM);
    if (sp->fparam[0] != 0.0 && sp->iparam[0] != 0)
        return ae_error(err, AE_ERR_RANGE,
                        "lifetime_topk takes k or a fraction of the batch, not both (k %lld, "
                        "fraction %g)",
                        (long long)sp->iparam[0], sp->fparam[0]);
    return AE_OK;
}

static const ae_layer_attr lifetime_attrs[] = {
    {.name = "k", .type = AE_ATTR_INT, .slot = 0,
     .lo = 0, .hi = (double)AE_MAX_DIM, .has_default = 1, .def = 0},
    {.name = "fraction", .type = AE_ATTR_FLOAT, .slot = 0,
     .lo = 0, .hi = 1, .has_default = 1, .def = 0},
};

static const ae_layer_desc lifetime_desc = {
    .kind = AE_LAYER_LIFETIME_TOPK,
    .name = "lifetime_topk",
    .flags = AE_LK_SELECT,
    .attrs = lifetime_attrs,
    .nattrs = sizeof lifetime_attrs / sizeof lifetime_attrs[0],
    .check = lifetime_check,
};

const ae_layer_ops ae_lifetime_topk_ops = {
    .desc = &lifetime_desc,
    .setup = lifetime_setup,
    .scratch_floats = lifetime_scratch,
    .init = no_init,
    .forward = lifetime_forward,
    .backward = lifetime_backward,
    .kept_index = NULL,
};
