/* Internal corruption kernels (SPEC.md "Corruption"): shared by the model's
 * denoising training step and the public ae_corrupt. They live in core/
 * because model/ and data/ both use them and neither may include the other. */
#ifndef AE_NOISE_H
#define AE_NOISE_H

#include "core.h"

/* The one description of a corruption inside the library: a model keeps
 * its AE_P_NOISE_* settings as this struct (ae_settings.noise), and the
 * public ae_noise of ae_corrupt is converted to it at that call. The
 * integers are int64_t because the settings table stores them so. */
typedef struct ae_noise_spec {
    int64_t kind; /* ae_noise_kind (AE_P_NOISE_KIND) */
    double level; /* standard deviation (Gaussian), rate (masking), probability (others) */
    double mean;  /* Gaussian mean */
    double value; /* masking constant */
    int64_t clip; /* clip the result to [lo, hi] */
    double lo, hi;
} ae_noise_spec;

/* Checks a spec: the kind, the level's range for that kind, the clip
 * bounds. `who` prefixes messages ("AE_P_NOISE_LEVEL" style names are used
 * when `settings` is 1, ae_noise field names otherwise). */
ae_status ae_noise_check(const ae_noise_spec *n, ae_errbuf *e, int settings);

/* out[i] = corrupted in[i] for `count` samples of `dim` floats, drawing from
 * r. in == out is allowed; otherwise the arrays must not overlap. */
void ae_noise_apply(const ae_noise_spec *n, ae_rng *r, const float *in, float *out, size_t count,
                    size_t dim);
/* The same values, Gaussian noise transformed on up to `threads` threads
 * (core/pool.h) when in and out differ. */
void ae_noise_apply_mt(int threads, const ae_noise_spec *n, ae_rng *r, const float *in, float *out,
                       size_t count, size_t dim);

#endif
