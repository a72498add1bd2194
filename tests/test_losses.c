/* Tests of src/losses: values against hand-computed references, gradients by finite differences. */
#include <stdio.h>

#include "test_util.h"

#include "losses/losses.h"

enum { N = 12 };

static double loss_at(ae_loss kind, ae_reduction red, ae_activation act, const float *pre,
                      const float *t, int use_pre) {
    float y[N];
    ae_act_forward(act, 0.01f, pre, y, N);
    ae_loss_input in = {kind, red, act, 0.01f, y, use_pre ? pre : NULL, t, N, 1};
    return ae_loss_eval(&in, NULL);
}

static void check_grad(ae_loss kind, ae_reduction red, ae_activation act, int use_pre) {
    float pre[N], t[N], y[N], g[N];
    test_fill(pre, N, 21, -2.5f, 2.5f);
    test_fill(t, N, 22, 0.0f, 1.0f);
    ae_act_forward(act, 0.01f, pre, y, N);
    ae_loss_input in = {kind, red, act, 0.01f, y, use_pre ? pre : NULL, t, N, 1};
    double l = ae_loss_eval(&in, g);
    assert_true(isfinite(l));
    double h = 1e-3;
    for (int i = 0; i < N; i++) {
        float s = pre[i];
        pre[i] = s + (float)h;
        double lp = loss_at(kind, red, act, pre, t, use_pre);
        pre[i] = s - (float)h;
        double lm = loss_at(kind, red, act, pre, t, use_pre);
        pre[i] = s;
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd - g[i]) > 1e-4 + 2e-3 * fabs(fd)) {
            print_error("loss %d red %d act %d pre %d: [%d] analytic %g fd %g\n", kind, red, act,
                        use_pre, i, (double)g[i], fd);
            fail();
        }
    }
}

static void test_gradients(void **state) {
    (void)state;
    for (int red = 0; red <= 1; red++) {
        check_grad(AE_LOSS_MSE, (ae_reduction)red, AE_ACT_IDENTITY, 0);
        check_grad(AE_LOSS_MSE, (ae_reduction)red, AE_ACT_SIGMOID, 0);
        check_grad(AE_LOSS_MSE, (ae_reduction)red, AE_ACT_TANH, 0);
        check_grad(AE_LOSS_MSE, (ae_reduction)red, AE_ACT_GELU, 1);
        check_grad(AE_LOSS_BCE, (ae_reduction)red, AE_ACT_SIGMOID, 1); /* logits form */
        check_grad(AE_LOSS_BCE, (ae_reduction)red, AE_ACT_SIGMOID, 0); /* probabilities form */
    }
}

static void test_values(void **state) {
    (void)state;
    float y[3] = {0.2f, 0.5f, 0.9f}, t[3] = {0.0f, 1.0f, 0.5f};
    ae_loss_input in = {AE_LOSS_MSE, AE_REDUCE_MEAN, AE_ACT_IDENTITY, 0, y, NULL, t, 3, 1};
    assert_true(fabs(ae_loss_eval(&in, NULL) - (0.04 + 0.25 + 0.16) / 3) < 1e-7);
    in.reduction = AE_REDUCE_SUM;
    assert_true(fabs(ae_loss_eval(&in, NULL) - 0.45) < 1e-6);
    /* BCE on probabilities, and the log clamp at -100 for y = 0 with t = 1. */
    in.kind = AE_LOSS_BCE;
    in.reduction = AE_REDUCE_MEAN;
    double ref = -(log(0.8) + log(0.5) + 0.5 * log(0.9) + 0.5 * log(0.1)) / 3;
    assert_true(fabs(ae_loss_eval(&in, NULL) - ref) < 1e-6);
    float y0[1] = {0.0f}, t1[1] = {1.0f};
    ae_loss_input c = {AE_LOSS_BCE, AE_REDUCE_SUM, AE_ACT_IDENTITY, 0, y0, NULL, t1, 1, 1};
    assert_true(fabs(ae_loss_eval(&c, NULL) - 100.0) < 1e-6);
    /* Outside [0, 1] BCE is undefined: non-finite, which the model reports. */
    float bad[1] = {1.5f};
    c.y = bad;
    assert_false(isfinite(ae_loss_eval(&c, NULL)));
    /* The logits form agrees with the probabilities form where both are accurate. */
    float z[4] = {-3.0f, -0.2f, 0.7f, 2.5f}, p[4], tt[4] = {0.1f, 0.9f, 0.4f, 1.0f};
    ae_act_forward(AE_ACT_SIGMOID, 0, z, p, 4);
    ae_loss_input lg = {AE_LOSS_BCE, AE_REDUCE_MEAN, AE_ACT_SIGMOID, 0, p, z, tt, 4, 1};
    ae_loss_input pr = lg;
    pr.pre = NULL;
    assert_true(fabs(ae_loss_eval(&lg, NULL) - ae_loss_eval(&pr, NULL)) < 1e-6);
    /* With saturated logits the stable form stays finite and exact. */
    float zs[1] = {-200.0f}, ps[1], ts[1] = {1.0f};
    ae_act_forward(AE_ACT_SIGMOID, 0, zs, ps, 1);
    ae_loss_input sat = {AE_LOSS_BCE, AE_REDUCE_SUM, AE_ACT_SIGMOID, 0, ps, zs, ts, 1, 1};
    assert_true(fabs(ae_loss_eval(&sat, NULL) - 200.0) < 1e-4);
}

/* The first target outside the loss's domain: BCE's is [0, 1] (NaN is
 * outside, -0.0 inside); MSE has none. */
static void test_bad_target_index(void **state) {
    (void)state;
    enum { M = 200 };
    float t[M];
    test_fill(t, M, 5, 0.0f, 1.0f);
    t[0] = 0.0f;
    t[1] = 1.0f;
    t[2] = -0.0f;
    assert_int_equal(ae_loss_bad_target(AE_LOSS_BCE, t, M), M);
    static const float bad[] = {-1e-7f, 1.0000001f, 2.0f, -INFINITY, NAN};
    static const size_t at[] = {0, 63, 64, 130, M - 1};
    for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++)
        for (size_t a = 0; a < sizeof at / sizeof at[0]; a++) {
            float u[M];
            memcpy(u, t, sizeof u);
            u[at[a]] = bad[b];
            if (at[a] + 7 < M) u[at[a] + 7] = bad[b]; /* a later one is not reported */
            assert_int_equal(ae_loss_bad_target(AE_LOSS_BCE, u, M), at[a]);
            assert_int_equal(ae_loss_bad_target(AE_LOSS_MSE, u, M), M);
        }
    assert_int_equal(ae_loss_bad_target(AE_LOSS_BCE, t, 0), 0);
}

enum { TB = 4, TD = 8 };

/* TD - 5 - 3 (the code, or a Gaussian code) - 5 - TD (sigmoid), BCE, Adam. */
static ae_model *bce_model(int vae, int noise) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&c, NULL), AE_OK);
    assert_int_equal(ae_config_set_input_size(c, TD), AE_OK);
    assert_int_equal(ae_config_add_dense(c, 5, AE_ACT_TANH), AE_OK);
    if (vae) {
        assert_int_equal(ae_config_add_gaussian(c, 3), AE_OK);
    } else {
        assert_int_equal(ae_config_add_dense(c, 3, AE_ACT_IDENTITY), AE_OK);
        assert_int_equal(ae_config_mark_code(c), AE_OK);
    }
    assert_int_equal(ae_config_add_dense(c, 5, AE_ACT_TANH), AE_OK);
    assert_int_equal(ae_config_add_dense(c, TD, AE_ACT_SIGMOID), AE_OK);
    assert_int_equal(ae_config_set_int(c, AE_P_LOSS, AE_LOSS_BCE), AE_OK);
    assert_int_equal(ae_config_set_int(c, AE_P_SEED, 3), AE_OK);
    if (noise) {
        assert_int_equal(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN), AE_OK);
        assert_int_equal(ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.01), AE_OK);
    }
    assert_int_equal(ae_model_create(&m, c), AE_OK);
    ae_config_destroy(c);
    return m;
}

static void expect_refused(ae_model *m, ae_status st, const char *value, size_t element) {
    assert_int_equal(st, AE_ERR_RANGE);
    char want[64];
    snprintf(want, sizeof want, "%s at element %zu", value, element);
    const char *msg = ae_model_last_error(m);
    if (!strstr(msg, want) || !strstr(msg, "[0, 1]"))
        fail_msg("expected \"%s\" and the range in: %s", want, msg);
}

/* BCE targets outside [0, 1] (training on them ran the loss to -2e9) are
 * refused by the step, ae_evaluate and ae_vae_neg_elbo with the first bad
 * element named; the refused calls change nothing: the model then trains
 * bitwise as its twin that never saw them. */
static void test_bce_targets_refused(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) { /* plain, denoising, VAE */
        ae_model *m = bce_model(kind == 2, kind == 1), *twin = bce_model(kind == 2, kind == 1);
        float x[TB * TD], bad[TB * TD], loss, lt;
        test_fill(x, TB * TD, 11, 0.0f, 1.0f);
        memcpy(bad, x, sizeof bad);
        bad[13] = 1.5f;
        bad[20] = -2.0f;
        expect_refused(m, ae_train_step(m, bad, NULL, TB, &loss), "1.5", 13);
        assert_non_null(strstr(ae_model_last_error(m), "sample 1, value 5"));
        /* An explicit target. */
        float t[TB * TD];
        memcpy(t, x, sizeof t);
        t[TB * TD - 1] = -0.25f;
        expect_refused(m, ae_train_step(m, x, t, TB, &loss), "-0.25", (size_t)TB * TD - 1);
        assert_non_null(strstr(ae_model_last_error(m), "the target"));
        expect_refused(m, ae_evaluate(m, x, t, TB, &loss), "-0.25", (size_t)TB * TD - 1);
        expect_refused(m, ae_evaluate(m, bad, NULL, TB, &loss), "1.5", 13);
        if (kind == 2) {
            double ne;
            expect_refused(m, ae_vae_neg_elbo(m, bad, TB, &ne, NULL, NULL), "1.5", 13);
        }
        assert_int_equal(ae_model_step_count(m), 0);
        for (int step = 0; step < 3; step++) {
            test_fill(x, TB * TD, 30 + (uint32_t)step, 0.0f, 1.0f);
            assert_int_equal(ae_train_step(m, x, NULL, TB, &loss), AE_OK);
            assert_int_equal(ae_train_step(twin, x, NULL, TB, &lt), AE_OK);
            assert_memory_equal(&loss, &lt, sizeof loss);
        }
        size_t np = ae_model_param_count(m);
        float *p = malloc(np * sizeof *p), *q = malloc(np * sizeof *q);
        assert_non_null(p);
        assert_non_null(q);
        test_get_params(m, p);
        test_get_params(twin, q);
        assert_memory_equal(p, q, np * sizeof *p);
        free(p);
        free(q);
        ae_model_destroy(m);
        ae_model_destroy(twin);
    }
    /* MSE takes any finite target. */
    ae_config *c = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&c, NULL), AE_OK);
    assert_int_equal(ae_config_set_input_size(c, TD), AE_OK);
    assert_int_equal(ae_config_add_dense(c, 3, AE_ACT_IDENTITY), AE_OK);
    assert_int_equal(ae_config_mark_code(c), AE_OK);
    assert_int_equal(ae_config_add_dense(c, TD, AE_ACT_IDENTITY), AE_OK);
    assert_int_equal(ae_model_create(&m, c), AE_OK);
    ae_config_destroy(c);
    float x[TB * TD], loss;
    test_fill(x, TB * TD, 12, -3.0f, 3.0f);
    assert_int_equal(ae_train_step(m, x, NULL, TB, &loss), AE_OK);
    ae_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_bad_target_index),
        cmocka_unit_test(test_bce_targets_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
