/* Per-sample top-k: in each row keep the k largest values (ties: the lower
 * index wins), zero the rest; the gradient flows through the kept entries.
 * The kept indices of each row (ascending) stay in the scratch, where the
 * next dense layer and the previous one read them (ops->kept_index). */
#include <math.h>
#include <string.h>

#include "layers.h"
#include "select.h"

AE_DEFINE_SELECT(select32, int32_t)

int ae_select_topk(const float *x, size_t n, size_t stride, size_t k, int32_t *idx) {
    return select32(x, n, stride, k, idx);
}

static ae_status topk_setup(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err) {
    size_t k = (size_t)spec->iparam[0];
    if (k < 1 || k > L->in)
        return ae_error(err, AE_ERR_RANGE, "top-k: k must be in [1, %zu] (the width of its input), got %zu",
                        L->in, k);
    L->out_shape = L->in_shape;
    L->sparse_k = k;
    L->keeps_zeros = 1;
    return AE_OK;
}

static size_t topk_scratch(const ae_layer *L, size_t batch) { return batch * L->sparse_k; }

static void no_init(const ae_layer *L, float *params, ae_rng *rng) {
    (void)L;
    (void)params;
    (void)rng;
}

static void topk_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    (void)params;
    size_t n = L->in, k = L->sparse_k;
    int32_t *idx = (int32_t *)io->scratch;
    for (size_t r = 0; r < io->batch; r++) {
        const float *x = io->x + r * n;
        float *y = io->y + r * n;
        int32_t *ix = idx + r * k;
        if (select32(x, n, 1, k, ix) != 0) {
            /* A NaN row stays NaN, so the loss check refuses the step. */
            for (size_t j = 0; j < n; j++) y[j] = NAN;
            continue;
        }
        memset(y, 0, n * sizeof *y);
        for (size_t t = 0; t < k; t++) y[ix[t]] = x[ix[t]];
    }
}

static void topk_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                          int accumulate_w) {
    (void)params;
    (void)grads;
    (void)accumulate_w;
    if (!io->dx) return;
    size_t n = L->in, k = L->sparse_k;
    const int32_t *idx = (const int32_t *)io->scratch;
    for (size_t r = 0; r < io->batch; r++) {
        const float *dy = io->dy + r * n;
        float *dx = io->dx + r * n;
        const int32_t *ix = idx + r * k;
        memset(dx, 0, n * sizeof *dx);
        for (size_t t = 0; t < k; t++) dx[ix[t]] = dy[ix[t]];
    }
}

static const int32_t *topk_kept_index(const ae_layer *L, const float *scratch) {
    (void)L;
    return (const int32_t *)scratch;
}

const ae_layer_ops ae_topk_ops = {
    .name = "topk",
    .setup = topk_setup,
    .scratch_floats = topk_scratch,
    .init = no_init,
    .forward = topk_forward,
    .backward = topk_backward,
    .kept_index = topk_kept_index,
};
