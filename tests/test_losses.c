/* Tests of src/losses: values against hand-computed references, gradients by finite differences. */
#include "test_util.h"

#include "losses/losses.h"

enum { N = 12 };

static double loss_at(ae_loss kind, ae_reduction red, ae_activation act, const float *pre,
                      const float *t, int use_pre) {
    float y[N];
    ae_act_forward(act, 0.01f, pre, y, N);
    ae_loss_input in = {kind, red, act, 0.01f, y, use_pre ? pre : NULL, t, N};
    return ae_loss_eval(&in, NULL);
}

static void check_grad(ae_loss kind, ae_reduction red, ae_activation act, int use_pre) {
    float pre[N], t[N], y[N], g[N];
    test_fill(pre, N, 21, -2.5f, 2.5f);
    test_fill(t, N, 22, 0.0f, 1.0f);
    ae_act_forward(act, 0.01f, pre, y, N);
    ae_loss_input in = {kind, red, act, 0.01f, y, use_pre ? pre : NULL, t, N};
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
    ae_loss_input in = {AE_LOSS_MSE, AE_REDUCE_MEAN, AE_ACT_IDENTITY, 0, y, NULL, t, 3};
    assert_true(fabs(ae_loss_eval(&in, NULL) - (0.04 + 0.25 + 0.16) / 3) < 1e-7);
    in.reduction = AE_REDUCE_SUM;
    assert_true(fabs(ae_loss_eval(&in, NULL) - 0.45) < 1e-6);
    /* BCE on probabilities, and the log clamp at -100 for y = 0 with t = 1. */
    in.kind = AE_LOSS_BCE;
    in.reduction = AE_REDUCE_MEAN;
    double ref = -(log(0.8) + log(0.5) + 0.5 * log(0.9) + 0.5 * log(0.1)) / 3;
    assert_true(fabs(ae_loss_eval(&in, NULL) - ref) < 1e-6);
    float y0[1] = {0.0f}, t1[1] = {1.0f};
    ae_loss_input c = {AE_LOSS_BCE, AE_REDUCE_SUM, AE_ACT_IDENTITY, 0, y0, NULL, t1, 1};
    assert_true(fabs(ae_loss_eval(&c, NULL) - 100.0) < 1e-6);
    /* Outside [0, 1] BCE is undefined: non-finite, which the model reports. */
    float bad[1] = {1.5f};
    c.y = bad;
    assert_false(isfinite(ae_loss_eval(&c, NULL)));
    /* The logits form agrees with the probabilities form where both are accurate. */
    float z[4] = {-3.0f, -0.2f, 0.7f, 2.5f}, p[4], tt[4] = {0.1f, 0.9f, 0.4f, 1.0f};
    ae_act_forward(AE_ACT_SIGMOID, 0, z, p, 4);
    ae_loss_input lg = {AE_LOSS_BCE, AE_REDUCE_MEAN, AE_ACT_SIGMOID, 0, p, z, tt, 4};
    ae_loss_input pr = lg;
    pr.pre = NULL;
    assert_true(fabs(ae_loss_eval(&lg, NULL) - ae_loss_eval(&pr, NULL)) < 1e-6);
    /* With saturated logits the stable form stays finite and exact. */
    float zs[1] = {-200.0f}, ps[1], ts[1] = {1.0f};
    ae_act_forward(AE_ACT_SIGMOID, 0, zs, ps, 1);
    ae_loss_input sat = {AE_LOSS_BCE, AE_REDUCE_SUM, AE_ACT_SIGMOID, 0, ps, zs, ts, 1};
    assert_true(fabs(ae_loss_eval(&sat, NULL) - 200.0) < 1e-4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
