/* Tests of src/metrics: every metric against values computed by hand or
 * with numpy (the script is in the comment of each block; SSIM also agrees
 * with skimage 0.19's structural_similarity(gaussian_weights=True,
 * sigma=1.5, use_sample_covariance=False) to 1e-15), and the refusals of
 * bad input, which leave the outputs untouched. */
#include "test_util.h"
#include "fixture.h"

/* x and y of the reconstruction-error block, as float32. */
static const float X3[12] = {0.1f, 0.5f, 0.9f, 0.3f, 0.2f, 0.2f, 0.8f, 0.7f, 1.0f, 0.0f, 0.4f, 0.6f};
static const float Y3[12] = {0.15f, 0.45f, 0.8f, 0.3f, 0.1f, 0.3f, 0.85f, 0.6f, 0.9f, 0.1f, 0.5f, 0.55f};

/* numpy, float64 of the float32 values:
 *   mse = ((x-y)**2).mean(); per = ((x-y)**2).mean(axis=1)
 *   psnr = 10*log10(L**2/mse); nmse = sse/(x**2).sum()
 *   fvu = sse/((x-x.mean(axis=0))**2).sum() */
static void test_errors(void **state) {
    (void)state;
    double v = 0;
    assert_int_equal(ae_metric_mse(X3, Y3, 12, &v), AE_OK);
    assert_true(fabs(v - 0.0066666663065555786) < 1e-15);
    double per[3];
    assert_int_equal(ae_metric_mse_per_sample(X3, Y3, 3, 4, per), AE_OK);
    assert_true(fabs(per[0] - 0.0037499986216429498) < 1e-15);
    assert_true(fabs(per[1] - 0.0081249990314248982) < 1e-15);
    assert_true(fabs(per[2] - 0.0081250012665988885) < 1e-15);
    assert_int_equal(ae_metric_psnr(X3, Y3, 12, 1.0, &v), AE_OK);
    assert_true(fabs(v - 21.76091282514821) < 1e-11);
    assert_int_equal(ae_metric_psnr(X3, Y3, 12, 255.0, &v), AE_OK);
    assert_true(fabs(v - 69.891716433827312) < 1e-11);
    assert_int_equal(ae_metric_psnr(X3, X3, 12, 1.0, &v), AE_OK);
    assert_true(isinf(v) && v > 0);
    assert_int_equal(ae_metric_nmse(X3, Y3, 12, &v), AE_OK);
    assert_true(fabs(v - 0.020565551574166018) < 1e-14);
    assert_int_equal(ae_metric_fvu(X3, Y3, 3, 4, &v), AE_OK);
    assert_true(fabs(v - 0.095238092323756643) < 1e-14);
    /* Predicting the per-feature mean leaves all the variance unexplained. */
    float mean[12];
    for (int j = 0; j < 4; j++) {
        float m = (X3[j] + X3[4 + j] + X3[8 + j]) / 3.0f;
        mean[j] = mean[4 + j] = mean[8 + j] = m;
    }
    assert_int_equal(ae_metric_fvu(X3, mean, 3, 4, &v), AE_OK);
    assert_true(fabs(v - 1.0) < 1e-6);
}

static void test_errors_refused(void **state) {
    (void)state;
    double v = -7.0, per[3] = {-7, -7, -7};
    float nan_y[12];
    memcpy(nan_y, Y3, sizeof nan_y);
    nan_y[5] = NAN;
    float zeros[4] = {0, 0, 0, 0};
    assert_int_equal(ae_metric_mse(NULL, Y3, 12, &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_mse(X3, NULL, 12, &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_mse(X3, Y3, 12, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_mse(X3, Y3, 0, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_mse(X3, nan_y, 12, &v), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_mse_per_sample(X3, Y3, 0, 4, per), AE_ERR_RANGE);
    assert_int_equal(ae_metric_mse_per_sample(X3, Y3, 3, 0, per), AE_ERR_RANGE);
    assert_int_equal(ae_metric_mse_per_sample(X3, Y3, SIZE_MAX, 4, per), AE_ERR_RANGE);
    assert_int_equal(ae_metric_mse_per_sample(X3, nan_y, 3, 4, per), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_psnr(X3, Y3, 12, 0.0, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_psnr(X3, Y3, 12, -1.0, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_psnr(X3, Y3, 12, NAN, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_psnr(X3, Y3, 12, INFINITY, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_nmse(zeros, zeros, 4, &v), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_nmse(X3, nan_y, 12, &v), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_fvu(zeros, zeros, 2, 2, &v), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_fvu(X3, Y3, 3, 0, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_fvu(NULL, Y3, 3, 4, &v), AE_ERR_INVALID_ARG);
    assert_true(v == -7.0);
    for (int i = 0; i < 3; i++) assert_true(per[i] == -7.0);
}

/* numpy.percentile([3.5, -1, 2, 7.25, 0.5, 2, 10], q) for q = 0, 37.5, 50, 90, 100:
 * -1, 2, 2, 8.35, 10. */
static void test_percentile_anomaly(void **state) {
    (void)state;
    const double vals[7] = {3.5, -1.0, 2.0, 7.25, 0.5, 2.0, 10.0};
    const double q[5] = {0, 37.5, 50, 90, 100}, want[5] = {-1, 2, 2, 8.3500000000000014, 10};
    for (int i = 0; i < 5; i++) {
        double v = 0;
        assert_int_equal(ae_metric_percentile(vals, 7, q[i], &v), AE_OK);
        assert_true(fabs(v - want[i]) < 1e-12);
    }
    double one = 4.5, v = 0;
    assert_int_equal(ae_metric_percentile(&one, 1, 73.0, &v), AE_OK);
    assert_true(v == 4.5);
    /* Threshold at the 90th percentile (8.35): only 10 lies above. */
    double t = 0;
    unsigned char flags[7];
    size_t flagged = 0;
    assert_int_equal(ae_metric_anomaly_threshold(vals, 7, 90.0, &t, flags, &flagged), AE_OK);
    assert_true(fabs(t - 8.35) < 1e-12);
    assert_int_equal(flagged, 1);
    for (int i = 0; i < 7; i++) assert_int_equal(flags[i], i == 6);
    /* At the 50th (2.0): 3.5, 7.25 and 10 lie strictly above. */
    assert_int_equal(ae_metric_anomaly_threshold(vals, 7, 50.0, &t, NULL, &flagged), AE_OK);
    assert_true(t == 2.0);
    assert_int_equal(flagged, 3);
    assert_int_equal(ae_metric_anomaly_threshold(vals, 7, 100.0, &t, NULL, NULL), AE_OK);
    assert_true(t == 10.0);

    double bad[3] = {1.0, NAN, 2.0};
    v = -7.0;
    t = -7.0;
    flagged = 99;
    assert_int_equal(ae_metric_percentile(vals, 7, -0.5, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_percentile(vals, 7, 100.5, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_percentile(vals, 7, NAN, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_percentile(vals, 0, 50, &v), AE_ERR_RANGE);
    assert_int_equal(ae_metric_percentile(NULL, 7, 50, &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_percentile(bad, 3, 50, &v), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_anomaly_threshold(bad, 3, 50, &t, flags, &flagged), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_anomaly_threshold(vals, 7, 50, NULL, flags, &flagged),
                     AE_ERR_INVALID_ARG);
    assert_true(v == -7.0 && t == -7.0 && flagged == 99);
}

/* Codes [[0,1.5,0,0.2],[0,-0.5,0,0.2],[0,2,0.3,0.2]] (float32): per-unit
 * population variances 0, 1.1666667, 0.0200000016, 0; numpy gives total
 * 1.186666668256124, mean 0.32500000173846882, mean |z| 0.40833333507180214,
 * L0 7/3. Unit 0 is dead; units 1 and 2 exceed the 0.01 threshold. */
static void test_latent_stats(void **state) {
    (void)state;
    const float codes[12] = {0, 1.5f, 0, 0.2f, 0, -0.5f, 0, 0.2f, 0, 2.0f, 0.3f, 0.2f};
    ae_latent_stats s = {sizeof s, 0, 0, 0, 0, 0, 0, 0};
    assert_int_equal(ae_metric_latent_stats(codes, 3, 4, 0.01, &s), AE_OK);
    assert_int_equal(s.struct_size, sizeof s);
    assert_int_equal(s.dims, 4);
    assert_int_equal(s.active, 2);
    assert_int_equal(s.dead, 1);
    assert_true(fabs(s.total_variance - 1.186666668256124) < 1e-12);
    assert_true(fabs(s.mean_activation - 0.32500000173846882) < 1e-12);
    assert_true(fabs(s.mean_abs - 0.40833333507180214) < 1e-12);
    assert_true(fabs(s.l0 - 7.0 / 3.0) < 1e-12);
    /* A higher threshold leaves only unit 1 active. */
    assert_int_equal(ae_metric_latent_stats(codes, 3, 4, 0.5, &s), AE_OK);
    assert_int_equal(s.active, 1);

    ae_latent_stats before = s;
    ae_latent_stats small = s;
    small.struct_size = sizeof s - 1;
    float nan_codes[12];
    memcpy(nan_codes, codes, sizeof nan_codes);
    nan_codes[3] = INFINITY;
    assert_int_equal(ae_metric_latent_stats(codes, 3, 4, 0.01, &small), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_latent_stats(NULL, 3, 4, 0.01, &s), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_latent_stats(codes, 3, 4, 0.01, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_latent_stats(codes, 0, 4, 0.01, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_latent_stats(codes, 3, 4, -1.0, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_latent_stats(codes, 3, 4, NAN, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_latent_stats(nan_codes, 3, 4, 0.01, &s), AE_ERR_NUMERIC);
    assert_memory_equal(&s, &before, sizeof s);
}

/* Two clusters in 2-D with a mislabelled point (index 6, label 1) inside
 * cluster 0. Worked by hand, leaving one out:
 *   k=1: the three cluster-0 points have the stray as nearest: 3/7 wrong
 *        plus the stray itself: accuracy 3/7.
 *   k=2: the cluster-0 points see the stray and one own point, a tied
 *        vote won by the nearer (the stray): wrong; accuracy 3/7. (A rule
 *        "smallest label wins ties" would give 6/7.)
 *   k=3: two own points outvote the stray: only the stray is wrong: 6/7. */
static const float KP[14] = {0, 0, 0.1f, 0, 0, 0.1f, 5, 5, 5.1f, 5, 5, 5.2f, 0.05f, 0.05f};
static const int32_t KL[7] = {0, 0, 0, 1, 1, 1, 1};

static void test_knn(void **state) {
    (void)state;
    double acc = 0;
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 7, NULL, NULL, 0, 2, 1, &acc), AE_OK);
    assert_true(fabs(acc - 3.0 / 7.0) < 1e-15);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 7, NULL, NULL, 0, 2, 2, &acc), AE_OK);
    assert_true(fabs(acc - 3.0 / 7.0) < 1e-15);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 7, NULL, NULL, 0, 2, 3, &acc), AE_OK);
    assert_true(fabs(acc - 6.0 / 7.0) < 1e-15);
    /* Queries against the first six (clean) references. */
    const float q[4] = {4.9f, 5.0f, 0.2f, 0.2f};
    const int32_t ql[2] = {1, 0}, qbad[2] = {1, 1};
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, ql, 2, 2, 1, &acc), AE_OK);
    assert_true(acc == 1.0);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, qbad, 2, 2, 3, &acc), AE_OK);
    assert_true(acc == 0.5);
    /* Six neighbours: a 3-3 tie each time, won by the nearer cluster. */
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, ql, 2, 2, 6, &acc), AE_OK);
    assert_true(acc == 1.0);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, qbad, 2, 2, 6, &acc), AE_OK);
    assert_true(acc == 0.5);

    float nanq[4] = {NAN, 0, 0, 0};
    acc = -7.0;
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 7, NULL, NULL, 0, 2, 7, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, ql, 2, 2, 7, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 7, NULL, NULL, 0, 2, 0, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 1, NULL, NULL, 0, 2, 1, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 7, NULL, NULL, 0, 0, 1, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_knn_accuracy(KP, NULL, 7, NULL, NULL, 0, 2, 1, &acc),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, NULL, 2, 2, 1, &acc),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, ql, 0, 2, 1, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, nanq, ql, 2, 2, 1, &acc), AE_ERR_NUMERIC);
    assert_int_equal(ae_metric_knn_accuracy(KP, KL, 6, q, ql, 2, 2, 1, NULL), AE_ERR_INVALID_ARG);
    assert_true(acc == -7.0);
}

/* numpy: pc = p - p.mean(0); C = pc.T @ pc / (n-1); w, V = eigh(C), sorted
 * descending, each column's largest-|.| entry made positive. */
static void test_pca(void **state) {
    (void)state;
    const float p[18] = {2, 0, 1, 1, 1, 0.5f, 0, 2, -1, 3, -1, 0, -1, 0.5f, 2, 0.5f, 0.5f, 0.5f};
    const double eig[3] = {2.6649265338624453, 1.2731190083664283, 0.10362112443779287};
    const double vecs[9] = {0.8621048313989297,  -0.49619032873437324, -0.1028125349804075,
                            -0.1715559075582354, -0.47671166092696315, 0.862156924763773,
                            0.4768058622337743,  0.7256315525159656,   0.49609980823698785};
    const double proj[12] = {1.1306357975591568,  0.48358205965727974, -0.17625309508394243,
                             -0.2526521560933345, -1.380329452746634,  -1.8510432966077217,
                             2.591743492672867,   -0.07341911173776561, -1.8065863959852264,
                             1.6220508766322774,  -0.3592103464162207, 0.07148162814926474};
    float comp[9], pr[12];
    double var[3];
    assert_int_equal(ae_metric_pca(p, 6, 3, 3, comp, NULL, var), AE_OK);
    for (int i = 0; i < 3; i++) assert_true(fabs(var[i] - eig[i]) < 1e-9);
    for (int i = 0; i < 9; i++) assert_true(fabs(comp[i] - vecs[i]) < 1e-5);
    assert_int_equal(ae_metric_pca(p, 6, 3, 2, NULL, pr, NULL), AE_OK);
    for (int i = 0; i < 12; i++) assert_true(fabs(pr[i] - proj[i]) < 1e-5);
    /* Data on a line: one component carries everything, the second none. */
    const float line[8] = {1, 2, 2, 4, 3, 6, 4, 8};
    assert_int_equal(ae_metric_pca(line, 4, 2, 2, comp, pr, var), AE_OK);
    assert_true(fabs(var[0] - (5.0 / 3.0) * 5.0) < 1e-9); /* var(x)+var(2x) = 5·var(x) */
    assert_true(fabs(var[1]) < 1e-9);
    assert_true(fabs(comp[0] - 1.0 / sqrt(5.0)) < 1e-6 && fabs(comp[1] - 2.0 / sqrt(5.0)) < 1e-6);

    float nanp[18];
    memcpy(nanp, p, sizeof nanp);
    nanp[4] = NAN;
    comp[0] = -7.0f;
    assert_int_equal(ae_metric_pca(NULL, 6, 3, 2, comp, pr, var), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_pca(p, 1, 3, 1, comp, pr, var), AE_ERR_RANGE);
    assert_int_equal(ae_metric_pca(p, 6, 3, 0, comp, pr, var), AE_ERR_RANGE);
    assert_int_equal(ae_metric_pca(p, 6, 3, 4, comp, pr, var), AE_ERR_RANGE);
    assert_int_equal(ae_metric_pca(p, 1, 5000, 1, comp, pr, var), AE_ERR_RANGE);
    assert_int_equal(ae_metric_pca(nanp, 6, 3, 2, comp, pr, var), AE_ERR_NUMERIC);
    assert_true(comp[0] == -7.0f);
}

/* img[k,i,j] = float32(0.5 + 0.4 sin(0.37 i + 0.23 j (k+1) + phase)). */
static void make_img(float *dst, size_t n, size_t h, size_t w, double phase) {
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < h; i++)
            for (size_t j = 0; j < w; j++)
                dst[(k * h + i) * w + j] =
                    (float)(0.5 + 0.4 * sin(0.37 * (double)i + 0.23 * (double)j * (double)(k + 1) +
                                            phase));
}

/* Reference values from a direct numpy implementation of Wang et al. (the
 * 11x11 window applied at each valid position), equal to skimage's to 1e-15:
 *   2 images 12x13, phases 0 and 0.3, L = 1: 0.93067450214531666
 *   1 image 16x14, y = clip(0.8 x + 0.05, 0, 1), L = 2: 0.97634472049014054 */
static void test_ssim(void **state) {
    (void)state;
    float x[2 * 12 * 13], y[2 * 12 * 13];
    make_img(x, 2, 12, 13, 0.0);
    make_img(y, 2, 12, 13, 0.3);
    double s = 0;
    assert_int_equal(ae_metric_ssim(x, y, 2, 1, 12, 13, 1.0, &s), AE_OK);
    assert_true(fabs(s - 0.93067450214531666) < 1e-9);
    /* The same pairs as 1 image of 2 channels: the same mean. */
    assert_int_equal(ae_metric_ssim(x, y, 1, 2, 12, 13, 1.0, &s), AE_OK);
    assert_true(fabs(s - 0.93067450214531666) < 1e-9);
    assert_int_equal(ae_metric_ssim(x, x, 2, 1, 12, 13, 1.0, &s), AE_OK);
    assert_true(fabs(s - 1.0) < 1e-12);
    float a[16 * 14], b[16 * 14];
    make_img(a, 1, 16, 14, 0.0);
    for (int i = 0; i < 16 * 14; i++) {
        float v = a[i] * 0.8f + 0.05f;
        b[i] = v < 0 ? 0 : v > 1 ? 1 : v;
    }
    assert_int_equal(ae_metric_ssim(a, b, 1, 1, 16, 14, 2.0, &s), AE_OK);
    assert_true(fabs(s - 0.97634472049014054) < 1e-6); /* b rounded in float, not double */

    s = -7.0;
    assert_int_equal(ae_metric_ssim(x, y, 2, 1, 10, 13, 1.0, &s), AE_ERR_SHAPE);
    assert_int_equal(ae_metric_ssim(x, y, 2, 1, 13, 10, 1.0, &s), AE_ERR_SHAPE);
    assert_int_equal(ae_metric_ssim(x, y, 0, 1, 12, 13, 1.0, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_ssim(x, y, 2, 0, 12, 13, 1.0, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_ssim(x, y, 2, 1, 12, 13, 0.0, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_ssim(x, y, SIZE_MAX, 2, 12, 13, 1.0, &s), AE_ERR_RANGE);
    assert_int_equal(ae_metric_ssim(NULL, y, 2, 1, 12, 13, 1.0, &s), AE_ERR_INVALID_ARG);
    y[7] = NAN;
    assert_int_equal(ae_metric_ssim(x, y, 2, 1, 12, 13, 1.0, &s), AE_ERR_NUMERIC);
    assert_true(s == -7.0);
}

/* The linear probe against scikit-learn 1.2's LogisticRegression (C = 1,
 * lbfgs, multinomial, run to convergence) on codes of 6000 Fashion-MNIST
 * training images and 2000 test images (tests/fixtures/gen_probe.py):
 * the same test accuracy within 0.5 points. */
static void test_linear_probe_sklearn(void **state) {
    (void)state;
    fixture fx;
    assert_int_equal(fixture_load(&fx, "probe_fmnist"), 0);
    assert_int_equal(fx.n, 5);
    size_t ntr = (size_t)fx.array[0][0], nte = (size_t)fx.array[0][1], dim = (size_t)fx.array[0][2];
    double want = fx.array[0][4];
    assert_int_equal(fx.count[1], ntr * dim);
    assert_int_equal(fx.count[3], nte * dim);
    int32_t *ytr = malloc(ntr * sizeof *ytr), *yte = malloc(nte * sizeof *yte);
    for (size_t i = 0; i < ntr; i++) ytr[i] = (int32_t)fx.array[2][i];
    for (size_t i = 0; i < nte; i++) yte[i] = (int32_t)fx.array[4][i];
    ae_probe_options o;
    ae_probe_options_init(&o);
    o.l2 = 1.0 / (double)ntr; /* C = 1 */
    double acc = -1;
    assert_int_equal(ae_metric_linear_probe(fx.array[1], ytr, ntr, fx.array[3], yte, nte, dim, &o, &acc),
                     AE_OK);
    if (!(fabs(acc - want) <= 0.005)) print_error("probe accuracy %.4f, scikit-learn %.4f\n", acc, want);
    assert_true(fabs(acc - want) <= 0.005);
    free(ytr);
    free(yte);
    fixture_free(&fx);
}

/* Separable classes are learnt exactly; labels need not be 0..C-1; a test
 * label unseen in training is never right; refusals leave *accuracy. */
static void test_linear_probe(void **state) {
    (void)state;
    enum { NP = 60 };
    float x[NP * 2];
    int32_t y[NP];
    for (int i = 0; i < NP; i++) {
        int c = i % 3;
        x[2 * i] = (float)(c == 1 ? 3 : c == 2 ? -3 : 0) + 0.1f * (float)((i * 7) % 5 - 2);
        x[2 * i + 1] = (float)(c == 0 ? 3 : 0) + 0.1f * (float)((i * 3) % 5 - 2);
        y[i] = c == 0 ? -5 : c == 1 ? 40 : 7;
    }
    double acc = -1, again = -2;
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, NULL, &acc), AE_OK);
    assert_true(acc == 1.0);
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, NULL, &again), AE_OK);
    assert_true(again == acc);
    int32_t other[NP];
    memcpy(other, y, sizeof other);
    for (int i = 0; i < NP; i += 2) other[i] = 99; /* never in training */
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, other, NP, 2, NULL, &acc), AE_OK);
    assert_true(acc == 0.5);
    ae_probe_options o;
    ae_probe_options_init(&o);
    acc = -7;
    assert_int_equal(ae_metric_linear_probe(NULL, y, NP, x, y, NP, 2, NULL, &acc), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, NULL, NULL), AE_ERR_INVALID_ARG);
    o.struct_size = 4;
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, &o, &acc), AE_ERR_INVALID_ARG);
    ae_probe_options_init(&o);
    o.l2 = -1;
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, &o, &acc), AE_ERR_RANGE);
    ae_probe_options_init(&o);
    o.max_iter = 0;
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, &o, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_linear_probe(x, y, 0, x, y, NP, 2, NULL, &acc), AE_ERR_RANGE);
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 0, NULL, &acc), AE_ERR_RANGE);
    int32_t one[NP] = {0};
    assert_int_equal(ae_metric_linear_probe(x, one, NP, x, y, NP, 2, NULL, &acc), AE_ERR_RANGE);
    x[5] = NAN;
    assert_int_equal(ae_metric_linear_probe(x, y, NP, x, y, NP, 2, NULL, &acc), AE_ERR_NUMERIC);
    assert_true(acc == -7);
}

/* The data range of PSNR and SSIM: one whose square overflows or
 * underflows a double (1e200, 1e-200) is refused without writing the
 * result; the ends of the accepted range give finite values even on
 * extreme data. */
static void test_data_range(void **state) {
    (void)state;
    float x[12 * 12], y[12 * 12], big[12 * 12], zero[12 * 12], tiny[12 * 12];
    make_img(x, 1, 12, 12, 0.0);
    make_img(y, 1, 12, 12, 0.3);
    for (int i = 0; i < 12 * 12; i++) {
        big[i] = i % 2 ? 3e38f : -3e38f;
        zero[i] = 0.0f;
        tiny[i] = i % 3 ? 0.0f : 1e-45f; /* the smallest subnormal */
    }
    static const double bad[] = {1e200, 1e-200, 1.1e39, 9e-46, 1e308, 5e-324};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        double v = -7.0;
        assert_int_equal(ae_metric_psnr(x, y, 144, bad[i], &v), AE_ERR_RANGE);
        assert_int_equal(ae_metric_ssim(x, y, 1, 1, 12, 12, bad[i], &v), AE_ERR_RANGE);
        assert_true(v == -7.0);
    }
    static const double good[] = {1e-45, 1e39};
    for (size_t i = 0; i < 2; i++) {
        double v;
        assert_int_equal(ae_metric_psnr(x, y, 144, good[i], &v), AE_OK);
        assert_true(isfinite(v));
        assert_int_equal(ae_metric_psnr(big, zero, 144, good[i], &v), AE_OK);
        assert_true(isfinite(v));
        assert_int_equal(ae_metric_psnr(tiny, zero, 144, good[i], &v), AE_OK);
        assert_true(isfinite(v));
        assert_int_equal(ae_metric_ssim(x, y, 1, 1, 12, 12, good[i], &v), AE_OK);
        assert_true(isfinite(v));
        assert_int_equal(ae_metric_ssim(big, zero, 1, 1, 12, 12, good[i], &v), AE_OK);
        assert_true(isfinite(v));
        assert_int_equal(ae_metric_ssim(zero, zero, 1, 1, 12, 12, good[i], &v), AE_OK);
        assert_true(v == 1.0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors),          cmocka_unit_test(test_errors_refused),
        cmocka_unit_test(test_percentile_anomaly), cmocka_unit_test(test_latent_stats),
        cmocka_unit_test(test_knn),             cmocka_unit_test(test_pca),
        cmocka_unit_test(test_ssim),            cmocka_unit_test(test_data_range),
        cmocka_unit_test(test_linear_probe),    cmocka_unit_test(test_linear_probe_sklearn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
