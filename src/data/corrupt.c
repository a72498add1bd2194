/* The public corruption calls: ae_corrupt on a caller's buffer with a seed
 * or a caller-held RNG state, through the kernels of core/noise.c. */
#include <string.h>

#include "core/noise.h"

void ae_noise_init(ae_noise *noise, ae_noise_kind kind, double level) {
    if (!noise) return;
    memset(noise, 0, sizeof *noise);
    noise->struct_size = sizeof *noise;
    noise->kind = kind;
    noise->level = level;
    noise->clip_lo = 0.0;
    noise->clip_hi = 1.0;
}

void ae_rng_state_seed(uint64_t state[4], uint64_t seed) {
    if (!state) return;
    ae_rng r;
    ae_rng_seed(&r, seed);
    memcpy(state, r.s, sizeof r.s);
}

ae_status ae_corrupt_rng(const ae_noise *noise, uint64_t state[4], const float *in, float *out,
                         size_t count, size_t dim) {
    if (!noise || !state || noise->struct_size != sizeof(ae_noise)) return AE_ERR_INVALID_ARG;
    size_t total;
    if (ae_mul_overflow(count, dim, &total) || total > SIZE_MAX / sizeof(float)) return AE_ERR_RANGE;
    if (total && (!in || !out)) return AE_ERR_INVALID_ARG;
    /* clip is a flag, as AE_P_NOISE_CLIP: 0 or 1. */
    if (noise->clip != 0 && noise->clip != 1) return AE_ERR_RANGE;
    ae_noise_spec ns = {(int)noise->kind, noise->level, noise->mean, noise->value, noise->clip,
                        noise->clip_lo, noise->clip_hi};
    ae_status st = ae_noise_check(&ns, NULL, 0);
    if (st != AE_OK || total == 0) return st;
    /* Partial overlap would read values already corrupted. */
    const char *a = (const char *)in, *b = (const char *)out;
    size_t bytes = total * sizeof(float);
    if (a != b && a < b + bytes && b < a + bytes) return AE_ERR_INVALID_ARG;
    /* NaN or infinity would come out corrupted as if it were data. */
    if (!ae_all_finite(in, total)) return AE_ERR_NUMERIC;
    ae_rng r;
    memcpy(r.s, state, sizeof r.s);
    ae_noise_apply(&ns, &r, in, out, count, dim);
    memcpy(state, r.s, sizeof r.s);
    return AE_OK;
}

ae_status ae_corrupt(const ae_noise *noise, const float *in, float *out, size_t count, size_t dim,
                     uint64_t seed) {
    uint64_t state[4];
    ae_rng_state_seed(state, seed);
    return ae_corrupt_rng(noise, state, in, out, count, dim);
}
