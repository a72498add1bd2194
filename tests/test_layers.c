/* Tests of src/layers: activations and the dense layer by finite differences;
 * the kinds' descriptors and names. */
#include "test_util.h"

#include "layers/layers.h"

enum { IN = 5, OUT = 4, B = 3 };

/* f = Σ r ⊙ y for a dense layer, evaluated in double from a float forward. */
static double objective(const ae_layer *L, const float *params, const float *x, const float *r) {
    float pre[B * OUT], y[B * OUT];
    ae_layer_io io = {.batch = B, .train = 1, .x = x, .pre = L->keep_pre ? pre : NULL, .y = y,
                      .backend = test_layer_backend()};
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
    ae_layer_io io = {.batch = B, .train = 1, .x = x, .pre = L.keep_pre ? pre : NULL, .y = y,
                      .backend = test_layer_backend()};
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
        ae_layer_io io = {.batch = 2, .x = x, .y = y2, .backend = test_layer_backend()};
        L.ops->forward(&L, params, &io);
        ae_layer_io io1 = {.batch = 1, .x = x + IN, .y = y1, .backend = test_layer_backend()};
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

/* Every kind has one descriptor, reached through its ops, whose name is
 * the public name and parses back; its attributes fit the model file's
 * layer record and their defaults their bounds. */
static void test_layer_descriptors(void **state) {
    (void)state;
    static const ae_layer_kind kinds[] = {
        AE_LAYER_DENSE,     AE_LAYER_CONV2D,     AE_LAYER_CONV_TRANSPOSE2D, AE_LAYER_MAXPOOL2D,
        AE_LAYER_UPSAMPLE,  AE_LAYER_BATCHNORM,  AE_LAYER_AVGPOOL_1X1,      AE_LAYER_FLATTEN,
        AE_LAYER_UNFLATTEN, AE_LAYER_ACTIVATION, AE_LAYER_TOPK,             AE_LAYER_LIFETIME_TOPK,
        AE_LAYER_BATCH_TOPK, AE_LAYER_GAUSSIAN};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        const ae_layer_desc *d = ae_layer_desc_for(kinds[i]);
        assert_non_null(d);
        assert_ptr_equal(d, ae_layer_ops_for(kinds[i])->desc);
        assert_int_equal(d->kind, kinds[i]);
        assert_string_equal(ae_layer_kind_name(kinds[i]), d->name);
        ae_layer_kind k = (ae_layer_kind)-1;
        assert_int_equal(ae_layer_kind_from_name(d->name, &k), AE_OK);
        assert_int_equal(k, kinds[i]);
        size_t ni = 0, nf = 0;
        ae_layer_spec sp;
        ae_layer_spec_init(&sp, kinds[i]);
        assert_int_equal(sp.bias, (d->flags & AE_LK_WEIGHTS) != 0);
        for (size_t j = 0; j < d->nattrs; j++) {
            const ae_layer_attr *a = &d->attrs[j];
            if (a->type == AE_ATTR_FLOAT) nf++; else ni++;
            assert_true(a->lo <= a->hi);
            if (a->has_default) assert_true(a->def >= a->lo && a->def <= a->hi);
            if (a->type == AE_ATTR_ENUM) {
                assert_non_null(a->values);
                for (int v = (int)a->lo; v <= (int)a->hi; v++)
                    assert_non_null(a->values[v - (int)a->lo]);
            }
            for (size_t q = 0; q < j; q++) assert_string_not_equal(a->name, d->attrs[q].name);
        }
        assert_true(ni <= 6 && nf <= 4); /* the layer record's iv[6] and fv[4] */
    }
    ae_layer_kind k = AE_LAYER_DENSE;
    assert_null(ae_layer_kind_name((ae_layer_kind)99));
    assert_null(ae_layer_desc_for((ae_layer_kind)99));
    assert_int_equal(ae_layer_kind_from_name("conv-transpose2d", &k), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_layer_kind_from_name(NULL, &k), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_layer_kind_from_name("dense", NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(k, AE_LAYER_DENSE);
    assert_string_equal(ae_layer_kind_name(AE_LAYER_CONV_TRANSPOSE2D), "conv_transpose2d");

    for (int a = AE_ACT_IDENTITY; a <= AE_ACT_ELU; a++) {
        ae_activation back = (ae_activation)-1;
        assert_non_null(ae_activation_name((ae_activation)a));
        const char *name = ae_activation_name((ae_activation)a);
        assert_int_equal(ae_activation_from_name(name, &back), AE_OK);
        assert_int_equal(back, a);
    }
    ae_activation act = AE_ACT_RELU;
    assert_string_equal(ae_activation_name(AE_ACT_LEAKY_RELU), "leaky_relu");
    assert_null(ae_activation_name((ae_activation)8));
    assert_int_equal(ae_activation_from_name("Relu", &act), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_activation_from_name(NULL, &act), AE_ERR_INVALID_ARG);
    assert_int_equal(act, AE_ACT_RELU);
}

/* The descriptor's bounds and the kinds' own checks, on specs. */
static void test_layer_spec_check(void **state) {
    (void)state;
    ae_errbuf err;
    ae_layer_spec sp;
    ae_layer_spec_init(&sp, AE_LAYER_CONV2D);
    sp.units = 4;
    sp.iparam[0] = 3;
    sp.iparam[1] = 1;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_OK);
    sp.iparam[0] = 65;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    assert_string_equal(err.msg, "conv2d kernel must be in [1, 64], got 65");
    ae_layer_spec_init(&sp, AE_LAYER_UPSAMPLE);
    sp.iparam[0] = 2;
    sp.iparam[1] = 5;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_INVALID_ARG);
    assert_string_equal(err.msg, "unknown upsample mode 5");
    /* maxpool2d: stride 0 becomes the kernel */
    ae_layer_spec_init(&sp, AE_LAYER_MAXPOOL2D);
    sp.iparam[0] = 3;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_OK);
    assert_int_equal(sp.iparam[1], 3);
    sp.iparam[2] = 2;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    /* batchnorm defaults; eps is a positive normal float (1e-40 is subnormal) */
    ae_layer_spec_init(&sp, AE_LAYER_BATCHNORM);
    assert_true(sp.fparam[0] == 0.1 && sp.fparam[1] == 1e-5);
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_OK);
    sp.fparam[1] = 0.0;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    assert_non_null(strstr(err.msg, "[1.17549e-38, 1]"));
    sp.fparam[1] = 1e-40;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    /* lifetime top-k: k or a fraction, exactly one */
    ae_layer_spec_init(&sp, AE_LAYER_LIFETIME_TOPK);
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    sp.iparam[0] = 2;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_OK);
    sp.fparam[0] = 0.5;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    sp.iparam[0] = 0;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_OK);
    /* conv_transpose2d: output_padding below the stride */
    ae_layer_spec_init(&sp, AE_LAYER_CONV_TRANSPOSE2D);
    sp.units = 1;
    sp.iparam[0] = 3;
    sp.iparam[1] = 2;
    sp.iparam[3] = 2;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    sp.iparam[3] = 1;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_OK);
    /* units over 2^63 are out of bounds, not negative */
    ae_layer_spec_init(&sp, AE_LAYER_DENSE);
    sp.units = (size_t)-1;
    assert_int_equal(ae_layer_spec_check(&sp, &err), AE_ERR_RANGE);
    assert_null(strstr(err.msg, "got -"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_gradients),
        cmocka_unit_test(test_dense_frozen_still_passes_gradient),
        cmocka_unit_test(test_dense_batch1_matches_gemm),
        cmocka_unit_test(test_activation_values),
        cmocka_unit_test(test_layer_descriptors),
        cmocka_unit_test(test_layer_spec_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
