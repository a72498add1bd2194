/* Corruption kernels: Gaussian, masking of an exact count, Bernoulli mask,
 * dropout noise, salt and pepper; optional clipping. Every kernel reads
 * in[i] before writing out[i], so in-place use works. */
#include <math.h>
#include <string.h>

#include "noise.h"
#include "pool.h"

ae_status ae_noise_check(const ae_noise_spec *n, ae_errbuf *e, int settings) {
    const char *lv = settings ? "AE_P_NOISE_LEVEL" : "level";
    const char *lo = settings ? "AE_P_NOISE_CLIP_LO" : "clip_lo";
    const char *hi = settings ? "AE_P_NOISE_CLIP_HI" : "clip_hi";
    double p = n->level;
    switch (n->kind) {
    case AE_NOISE_NONE: return AE_OK;
    case AE_NOISE_GAUSSIAN:
        if (!(p >= 0.0 && p <= 1e6))
            return ae_error(e, AE_ERR_RANGE,
                            "%s is a standard deviation for Gaussian noise: must be in [0, 1e6], got %g",
                            lv, p);
        if (!(fabs(n->mean) <= 1e6))
            return ae_error(e, AE_ERR_RANGE, "%s must be in [-1e6, 1e6], got %g",
                            settings ? "AE_P_NOISE_MEAN" : "mean", n->mean);
        break;
    case AE_NOISE_MASK:
    case AE_NOISE_BERNOULLI:
    case AE_NOISE_SALT_PEPPER:
        if (!(p >= 0.0 && p <= 1.0))
            return ae_error(e, AE_ERR_RANGE, "%s is a %s: must be in [0, 1], got %g", lv,
                            n->kind == AE_NOISE_MASK ? "rate for masking noise"
                                                     : "probability for this noise",
                            p);
        if (n->kind == AE_NOISE_MASK && !(fabs(n->value) <= 1e30))
            return ae_error(e, AE_ERR_RANGE, "%s must be a finite value in [-1e30, 1e30], got %g",
                            settings ? "AE_P_NOISE_VALUE" : "value", n->value);
        break;
    case AE_NOISE_DROPOUT:
        /* The kernel draws against p as a float: 1 - 1e-10 would be 1. */
        if (!(p >= 0.0 && p < 1.0 && (float)p < 1.0f))
            return ae_error(e, AE_ERR_RANGE,
                            "%s is a probability for dropout noise: must be in [0, 1) as a "
                            "float, got %.10g", lv, p);
        break;
    default:
        return ae_error(e, AE_ERR_INVALID_ARG, "unknown noise kind %lld", (long long)n->kind);
    }
    if (n->clip) {
        if (!(fabs(n->lo) <= 1e30) || !(fabs(n->hi) <= 1e30))
            return ae_error(e, AE_ERR_RANGE, "%s (%g) and %s (%g) must be finite, in [-1e30, 1e30]",
                            lo, n->lo, hi, n->hi);
        if (n->lo > n->hi)
            return ae_error(e, AE_ERR_RANGE, "%s (%g) is above %s (%g)", lo, n->lo, hi, n->hi);
    }
    return AE_OK;
}

/* The Gaussian pair at i, i + 1 from one 64-bit draw v (two 32-bit
 * uniforms; the second value is dropped past `total`). */
static void gauss_pair(const ae_noise_spec *n, uint64_t v, const float *in, float *out, size_t i,
                       size_t total) {
    double mean = n->mean, sd = n->level; /* a standard deviation: x + sigma * randn */
    double u1 = ((double)(v >> 32) + 1.0) * 0x1.0p-32; /* (0, 1]: log is finite */
    double u2 = (double)(v & 0xffffffffu) * 0x1.0p-32;
    double rad = sd * sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    out[i] = (float)(in[i] + mean + rad * cos(th));
    if (i + 1 < total) out[i + 1] = (float)(in[i + 1] + mean + rad * sin(th));
}

/* The clip of a spec with clip set, over out[0..total). */
static void clip_values(const ae_noise_spec *n, float *out, size_t total) {
    float lo = (float)n->lo, hi = (float)n->hi;
    for (size_t i = 0; i < total; i++) out[i] = out[i] < lo ? lo : out[i] > hi ? hi : out[i];
}

void ae_noise_apply(const ae_noise_spec *n, ae_rng *r, const float *in, float *out, size_t count,
                    size_t dim) {
    size_t total = count * dim;
    float p = (float)n->level;
    switch (n->kind) {
    case AE_NOISE_GAUSSIAN: {
        /* Box-Muller, both values of each pair used: two normals per two
         * uniforms (32 bits each, from one 64-bit draw). */
        for (size_t i = 0; i < total; i += 2) gauss_pair(n, ae_rng_next(r), in, out, i, total);
        break;
    }
    case AE_NOISE_MASK: {
        /* Selection sampling (Knuth's algorithm S): exactly k of the dim
         * entries, every k-subset equally likely, no scratch memory. */
        size_t k = (size_t)floor((double)dim * n->level);
        if (k > dim) k = dim;
        float c = (float)n->value;
        for (size_t s = 0; s < count; s++) {
            const float *x = in + s * dim;
            float *y = out + s * dim;
            size_t left = k;
            for (size_t j = 0; j < dim; j++) {
                /* Picked with probability left / (dim - j): exactly k in all,
                 * since the last `left` entries are taken with certainty. */
                int pick = left > 0 && ae_rng_uniform_double(r) * (double)(dim - j) < (double)left;
                y[j] = pick ? c : x[j];
                left -= (size_t)pick;
            }
        }
        break;
    }
    case AE_NOISE_BERNOULLI:
        for (size_t i = 0; i < total; i++) out[i] = ae_rng_uniform(r) < p ? 0.0f : in[i];
        break;
    case AE_NOISE_DROPOUT: {
        float keep = (float)(1.0 / (1.0 - n->level));
        for (size_t i = 0; i < total; i++) out[i] = ae_rng_uniform(r) < p ? 0.0f : in[i] * keep;
        break;
    }
    case AE_NOISE_SALT_PEPPER:
        for (size_t i = 0; i < total; i++) {
            float u = ae_rng_uniform(r);
            out[i] = u < 0.5f * p ? 0.0f : u < p ? 1.0f : in[i];
        }
        break;
    default:
        if (out != in)
            for (size_t i = 0; i < total; i++) out[i] = in[i];
        break;
    }
    if (n->clip) clip_values(n, out, total);
}

/* Gaussian noise on threads: the draws stay one stream, taken in order on
 * the calling thread and parked in `out` (a pair's two floats hold its
 * 64-bit draw), then each pair is transformed where it lies, on any
 * thread: the same values as ae_noise_apply. */
typedef struct gauss_job {
    const ae_noise_spec *n;
    const float *in;
    float *out;
    size_t total;
} gauss_job;

static void gauss_pairs(void *ctx, size_t lo, size_t hi) {
    const gauss_job *j = ctx;
    for (size_t p = lo; p < hi; p++) {
        uint64_t v;
        memcpy(&v, j->out + 2 * p, sizeof v);
        gauss_pair(j->n, v, j->in, j->out, 2 * p, j->total);
    }
}

void ae_noise_apply_mt(int threads, const ae_noise_spec *n, ae_rng *r, const float *in, float *out,
                       size_t count, size_t dim) {
    size_t total = count * dim, pairs = total / 2, min_each = ae_pool_units(AE_POOL_MIN_VALUES / 2, 2);
    /* One share only: the two passes would cost more than the plain loop. */
    if (n->kind != AE_NOISE_GAUSSIAN || threads <= 1 || in == out || pairs < 2 * min_each) {
        ae_noise_apply(n, r, in, out, count, dim);
        return;
    }
    for (size_t p = 0; p < pairs; p++) {
        uint64_t v = ae_rng_next(r);
        memcpy(out + 2 * p, &v, sizeof v);
    }
    gauss_job j = {n, in, out, total};
    ae_pool_for(threads, pairs, 16, min_each, gauss_pairs, &j);
    /* An odd last value takes the next draw, as in the serial loop. */
    if (total % 2) gauss_pair(n, ae_rng_next(r), in, out, total - 1, total);
    if (n->clip) clip_values(n, out, total);
}
