/*
 * libae metrics. Included by <libae/ae.h>; do not include it alone.
 *
 * Plain functions on caller-owned float arrays (row-major, batch first):
 * reconstruction errors (MSE, PSNR, SSIM, normalised MSE and the fraction of
 * variance unexplained), per-sample anomaly scores with a percentile
 * threshold, statistics of a batch of codes, the k-nearest-neighbour
 * accuracy of codes with labels, and a principal component analysis (for
 * 2-D pictures of codes). Definitions are in docs/metrics.md.
 *
 * Every function checks its arguments and returns a status without writing
 * any output on failure: AE_ERR_INVALID_ARG for a NULL pointer,
 * AE_ERR_RANGE for a zero size or a setting out of range, AE_ERR_NUMERIC
 * for a NaN or infinity in the data, AE_ERR_OUT_OF_MEMORY when a scratch
 * buffer cannot be had (the C library's malloc). Sums are accumulated in
 * double. They keep no state and are safe to call from several threads.
 */
#ifndef LIBAE_METRICS_H
#define LIBAE_METRICS_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Mean squared error of `count` values: mean of (x - y)². Since 0.1.0.
 */
AE_API ae_status ae_metric_mse(const float *x, const float *y, size_t count, double *mse);

/**
 * Per-sample mean squared error: scores[i] = mean over the `dim` values of
 * sample i of (x - y)², for `n` samples. This is the anomaly score of a
 * reconstruction. Since 0.1.0.
 */
AE_API ae_status ae_metric_mse_per_sample(const float *x, const float *y, size_t n, size_t dim,
                                          double *scores);

/**
 * Peak signal-to-noise ratio in decibels: 10 log10(range² / MSE) over
 * `count` values, with `data_range` the span of the data (1 for [0, 1],
 * 255 for bytes), in [1e-45, 1e39] (any span float data can have; outside
 * it L² leaves double's range: AE_ERR_RANGE). Identical arrays give
 * +infinity. Since 0.1.0.
 */
AE_API ae_status ae_metric_psnr(const float *x, const float *y, size_t count, double data_range,
                                double *psnr);

/**
 * Mean structural similarity (Wang, Bovik, Sheikh and Simoncelli, 2004) of
 * `n` images of channels x height x width (NCHW). Each channel of each
 * image is compared on its own with an 11x11 Gaussian window (σ = 1.5,
 * weights normalised to sum 1), K1 = 0.01, K2 = 0.03, L = `data_range`:
 * at each window position where the window lies wholly inside the image,
 * SSIM = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2))
 * with C1 = (K1 L)², C2 = (K2 L)², L in [1e-45, 1e39] as for
 * ae_metric_psnr (AE_ERR_RANGE otherwise), the moments weighted by the window
 * (σ² = E[x²] - μ², no sample correction); the result is the mean over
 * positions, channels and images. This is the reference MATLAB ssim_index
 * and skimage's structural_similarity(gaussian_weights=True, sigma=1.5,
 * use_sample_covariance=False). Errors: AE_ERR_SHAPE (height or width
 * under 11), and those above. Since 0.1.0.
 */
AE_API ae_status ae_metric_ssim(const float *x, const float *y, size_t n, size_t channels,
                                size_t height, size_t width, double data_range, double *ssim);

/**
 * Normalised MSE: Σ (x - y)² / Σ x² over `count` values, with `x` the
 * reference. AE_ERR_NUMERIC when x is all zeros. Since 0.1.0.
 */
AE_API ae_status ae_metric_nmse(const float *x, const float *y, size_t count, double *nmse);

/**
 * Fraction of variance unexplained: Σ (x - y)² / Σ (x - x̄)² over `n`
 * samples of `dim` values, with x̄ the per-feature mean of the reference
 * `x` (1 - R²; 0 for a perfect reconstruction, 1 for predicting the mean).
 * AE_ERR_NUMERIC when x has no variance. Since 0.1.0.
 */
AE_API ae_status ae_metric_fvu(const float *x, const float *y, size_t n, size_t dim,
                               double *fvu);

/**
 * The q-th percentile (q in [0, 100]) of `n` values, with linear
 * interpolation between the closest ranks (numpy.percentile's default):
 * the value at position q/100 · (n - 1) of the sorted values. Since 0.1.0.
 */
AE_API ae_status ae_metric_percentile(const double *values, size_t n, double q, double *out);

/**
 * Anomaly threshold: *threshold = the `percentile`-th percentile of the
 * `n` scores (ae_metric_percentile), and every score strictly above it is
 * flagged: flags[i] = 1 or 0 when `flags` is not NULL, and *flagged (may
 * be NULL) counts them. Since 0.1.0.
 */
AE_API ae_status ae_metric_anomaly_threshold(const double *scores, size_t n, double percentile,
                                             double *threshold, unsigned char *flags,
                                             size_t *flagged);

/**
 * Statistics of `n` codes of `dim` units, as ae_metric_latent_stats
 * fills them. The caller sets struct_size to sizeof(ae_latent_stats);
 * fields added later go at the end. Since 0.1.0.
 */
typedef struct ae_latent_stats {
    size_t struct_size;
    size_t dims;            /* units per code */
    size_t active;          /* units whose variance over the samples exceeds
                               the threshold (Burda et al.'s active units) */
    size_t dead;            /* units that are exactly 0 in every sample */
    double mean_activation; /* mean of every entry */
    double mean_abs;        /* mean of |entry| */
    double total_variance;  /* sum over units of their variance over the samples */
    double l0;              /* mean over samples of the nonzero entries */
} ae_latent_stats;

/**
 * Fills `out` for `n` codes of `dim` units. Variances are population
 * variances (divided by n). `active_threshold` >= 0 (0.01 is usual).
 * Errors: AE_ERR_INVALID_ARG also for a struct_size smaller than the 0.1.0
 * struct. Since 0.1.0.
 */
AE_API ae_status ae_metric_latent_stats(const float *codes, size_t n, size_t dim,
                                        double active_threshold, ae_latent_stats *out);

/**
 * k-nearest-neighbour accuracy of codes: each query code gets the majority
 * label of its `k` nearest reference codes (Euclidean distance; equal
 * distances: the lower reference index is nearer; a tied vote: the label
 * whose nearest member is nearest), and *accuracy is the fraction of
 * queries whose label it matches. With `query` NULL (and `query_labels`
 * NULL, `n_query` ignored) it is leave-one-out on the reference set: each
 * reference code is classified by the others. `k` from 1 to the number of
 * candidates (n_ref, or n_ref - 1 leaving one out) and at most 1024.
 * Takes O(n_query · n_ref · dim) time. Since 0.1.0.
 */
AE_API ae_status ae_metric_knn_accuracy(const float *ref, const int32_t *ref_labels, size_t n_ref,
                                        const float *query, const int32_t *query_labels,
                                        size_t n_query, size_t dim, size_t k, double *accuracy);

/**
 * Options of ae_metric_linear_probe. Fill with ae_probe_options_init, then
 * change fields; fields added later go at the end. Since 0.1.0.
 */
typedef struct ae_probe_options {
    size_t struct_size; /* sizeof(ae_probe_options) */
    double l2;          /* [0, 1e6], default 1e-4: the weight of (1/2)||W||² on the
                           mean cross-entropy; scikit-learn's C is
                           1 / (l2 · n_train) */
    size_t max_iter;    /* L-BFGS iterations, [1, 100000], default 1000 */
    double tol;         /* (0, 1), default 1e-6: stop when no gradient entry
                           is larger */
} ae_probe_options;

/** Fills `o` with struct_size and the defaults. Accepts NULL. Since 0.1.0. */
AE_API void ae_probe_options_init(ae_probe_options *o);

/**
 * A linear probe of codes: multinomial logistic regression with an
 * intercept, softmax(W x + b), fitted to `n_train` codes `train` [n_train,
 * dim] and their labels by minimising the mean cross-entropy plus
 * (l2 / 2)·||W||² (the intercept is not penalised) with L-BFGS, the
 * objective of scikit-learn's LogisticRegression(C = 1 / (l2 · n_train))
 * up to a constant factor; *accuracy receives the fraction of the `n_test`
 * codes `test` whose label is the predicted one (the largest logit, the
 * smaller label on a tie; a label absent from the training labels is never
 * predicted). The classes are the distinct training labels, at least 2.
 * `opts` may be NULL (the defaults). Deterministic. Takes
 * O(iterations · n_train · classes · dim) time. Errors (by code only):
 * AE_ERR_INVALID_ARG (NULL, a wrong struct_size), AE_ERR_RANGE (a count
 * of 0, fewer than 2 classes, classes · (dim + 1) over 2^24, an option out
 * of range), AE_ERR_NUMERIC (a value that is not finite),
 * AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_metric_linear_probe(const float *train, const int32_t *train_labels,
                                        size_t n_train, const float *test,
                                        const int32_t *test_labels, size_t n_test, size_t dim,
                                        const ae_probe_options *opts, double *accuracy);

/**
 * Principal component analysis of `n` samples (n >= 2) of `dim` features
 * (1 to 4096): the `k` (1 to dim) leading eigenvectors of the sample
 * covariance (divided by n - 1), by power iteration with deflation. Each
 * component's sign makes its largest-magnitude entry positive (the first
 * such entry on a tie). Outputs, each optional (NULL): `components`
 * [k, dim], `projected` [n, k] = (x - mean) · componentsᵀ, `variance` [k]
 * the eigenvalues (explained variances), largest first. Since 0.1.0.
 */
AE_API ae_status ae_metric_pca(const float *x, size_t n, size_t dim, size_t k, float *components,
                               float *projected, double *variance);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_METRICS_H */
