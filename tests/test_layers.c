/* Tests of src/layers: activations and the dense layer, by finite differences. */
#include "test_util.h"

#include "layers/layers.h"

enum { IN = 5, OUT = 4, B = 3 };

/* f = Σ r ⊙ y for a dense layer, evaluated in double from a float forward. */
static double objective(const ae_layer *L, const float *params, const float *x, const float *r) {
    float pre[B * OUT], y[B * OUT];
    ae_layer_io io = {.batch = B, .train = 1, .x = x, .pre = L->keep_pre ? pre : NULL, .y = y};
    L->ops->forward(L, params, &io);
    double f = 0;
    for (int i = 0; i < B * OUT; i++) f += (double)r[i] * y[i];
    return f;
}

static void check_dense(ae_activation act, int bias, int transposed, int frozen) {
    ae_layer L = {0};
    L.ops = ae_layer_ops_for(AE_LAYER_DENSE);
    L.kind = AE_LAYER_DENSE;
    L.in = IN;
    L.out = OUT;
    L.act = act;
    L.slope = 0.1f;
    L.has_bias = bias;
    L.w_off = 0;
    L.w_count = IN * OUT;
    L.b_off = IN * OUT;
    L.b_count = bias ? OUT : 0;
    L.w_transposed = transposed;
    L.frozen = frozen;
    L.keep_pre = ae_act_needs_pre(act);
    enum { NP = IN * OUT + OUT };
    float params[NP], grads[NP], x[B * IN], r[B * OUT];
    ae_rng rng;
    ae_rng_seed(&rng, 11);
    L.ops->init(&L, params, &rng);
    if (transposed) test_fill(params, IN * OUT, 5, -0.5f, 0.5f); /* init leaves a shared weight alone */
    test_fill(x, B * IN, 7, -2.0f, 2.0f);
    test_fill(r, B * OUT, 9, -1.0f, 1.0f);
    for (int i = 0; i < NP; i++) grads[i] = 12345.0f;

    float pre[B * OUT], y[B * OUT], dy[B * OUT], dx[B * IN];
    ae_layer_io io = {.batch = B, .train = 1, .x = x, .pre = L.keep_pre ? pre : NULL, .y = y};
    L.ops->forward(&L, params, &io);
    memcpy(dy, r, sizeof dy);
    io.dy = dy;
    io.dx = dx;
    L.ops->backward(&L, params, grads, &io, 0);

    const float h = 1e-3f;
    for (int i = 0; i < IN * OUT + (bias ? OUT : 0); i++) {
        float save = params[i];
        params[i] = save + h;
        double fp = objective(&L, params, x, r);
        params[i] = save - h;
        double fm = objective(&L, params, x, r);
        params[i] = save;
        double fd = (fp - fm) / (2.0 * h);
        if (frozen) {
            assert_true(grads[i] == 12345.0f); /* a frozen layer writes no gradient */
        } else if (fabs(fd - grads[i]) > 5e-3 + 1e-2 * fabs(fd)) {
            print_error("act %s bias %d transposed %d param %d: analytic %g fd %g\n",
                        ae_act_name(act), bias, transposed, i, (double)grads[i], fd);
            fail();
        }
    }
    for (int i = 0; i < B * IN; i++) {
        float save = x[i];
        x[i] = save + h;
        double fp = objective(&L, params, x, r);
        x[i] = save - h;
        double fm = objective(&L, params, x, r);
        x[i] = save;
        double fd = (fp - fm) / (2.0 * h);
        if (fabs(fd - dx[i]) > 5e-3 + 1e-2 * fabs(fd)) {
            print_error("act %s bias %d transposed %d dx[%d]: analytic %g fd %g\n",
                        ae_act_name(act), bias, transposed, i, (double)dx[i], fd);
            fail();
        }
    }
}

static void test_dense_gradients(void **state) {
    (void)state;
    for (int act = AE_ACT_IDENTITY; act <= AE_ACT_ELU; act++)
        for (int bias = 0; bias <= 1; bias++)
            for (int tr = 0; tr <= 1; tr++) check_dense((ae_activation)act, bias, tr, 0);
}

static void test_dense_frozen_still_passes_gradient(void **state) {
    (void)state;
    check_dense(AE_ACT_TANH, 1, 0, 1);
    check_dense(AE_ACT_RELU, 1, 1, 1);
}

static void test_dense_batch1_matches_gemm(void **state) {
    (void)state;
    /* Batch 1 takes the sgemv path; it must agree with the batched sgemm path. */
    for (int tr = 0; tr <= 1; tr++) {
        ae_layer L = {.ops = ae_layer_ops_for(AE_LAYER_DENSE), .in = IN, .out = OUT,
                      .act = AE_ACT_SIGMOID, .has_bias = 1, .w_count = IN * OUT,
                      .b_off = IN * OUT, .b_count = OUT, .w_transposed = tr};
        float params[IN * OUT + OUT], x[2 * IN], y2[2 * OUT], y1[OUT];
        test_fill(params, IN * OUT + OUT, 3, -1, 1);
        test_fill(x, 2 * IN, 4, -1, 1);
        ae_layer_io io = {.batch = 2, .x = x, .y = y2};
        L.ops->forward(&L, params, &io);
        ae_layer_io io1 = {.batch = 1, .x = x + IN, .y = y1};
        L.ops->forward(&L, params, &io1);
        assert_close_arrays(y1, y2 + OUT, OUT, 1e-5, 1e-6, "y");
    }
}

static void test_activation_values(void **state) {
    (void)state;
    /* Reference values from PyTorch's definitions. */
    assert_true(fabsf(ae_act_value(AE_ACT_LEAKY_RELU, 0.01f, -2.0f) + 0.02f) < 1e-7f);
    assert_true(fabsf(ae_act_value(AE_ACT_SIGMOID, 0, 0.5f) - 0.62245933f) < 1e-6f);
    assert_true(fabsf(ae_act_value(AE_ACT_GELU, 0, 1.0f) - 0.84134475f) < 1e-6f);
    assert_true(fabsf(ae_act_value(AE_ACT_SOFTPLUS, 0, 1.0f) - 1.31326169f) < 1e-6f);
    assert_true(fabsf(ae_act_value(AE_ACT_SOFTPLUS, 0, 30.0f) - 30.0f) < 1e-6f);
    assert_true(fabsf(ae_act_value(AE_ACT_ELU, 0, -1.0f) + 0.63212056f) < 1e-6f);
    assert_true(fabsf(ae_act_value(AE_ACT_TANH, 0, 0.3f) - 0.29131261f) < 1e-6f);
    assert_true(ae_act_value(AE_ACT_RELU, 0, -3.0f) == 0.0f);
    /* Scalar and vector forms agree; the derivative at a point by finite differences. */
    for (int a = AE_ACT_IDENTITY; a <= AE_ACT_ELU; a++) {
        float xs[6] = {-3.1f, -0.7f, -0.05f, 0.2f, 1.3f, 4.0f}, ys[6], d[6];
        ae_act_forward((ae_activation)a, 0.2f, xs, ys, 6);
        for (int i = 0; i < 6; i++) {
            assert_true(ys[i] == ae_act_value((ae_activation)a, 0.2f, xs[i]));
            d[i] = 1.0f;
        }
        ae_act_backward((ae_activation)a, 0.2f, xs, ys, d, 6);
        for (int i = 0; i < 6; i++) {
            double h = 1e-3;
            double fd = ((double)ae_act_value((ae_activation)a, 0.2f, xs[i] + (float)h) -
                         (double)ae_act_value((ae_activation)a, 0.2f, xs[i] - (float)h)) / (2 * h);
            if (fabs(fd - d[i]) > 2e-3) {
                print_error("%s'(%g): %g vs fd %g\n", ae_act_name((ae_activation)a), (double)xs[i],
                            (double)d[i], fd);
                fail();
            }
        }
    }
    assert_string_equal(ae_act_name((ae_activation)42), "unknown");
    assert_string_equal(ae_layer_kind_name(AE_LAYER_DENSE), "dense");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_gradients),
        cmocka_unit_test(test_dense_frozen_still_passes_gradient),
        cmocka_unit_test(test_dense_batch1_matches_gemm),
        cmocka_unit_test(test_activation_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
