/* Tests of variational autoencoders: the builder (Gaussian code, mirroring,
 * conv encoders), the gradient through the reparameterisation and the KL
 * term by finite differences (dense and convolutional, fixed eps), the
 * statistics of the sampled z, generation, interpolation, the negative
 * ELBO, the loss terms and the warm-up of beta, fixed eps, refusal of bad
 * input, and PyTorch parity (tests/fixtures/vae_*.bin, written by
 * gen_vae_parity.py). */
#include "test_util.h"

#include "fixture.h"

#define OK(call) assert_int_equal((call), AE_OK)

/* ---- helpers ---- */

/* in-h(act)-[gaussian dz]-h(act)-in(sigmoid), mirrored. */
static ae_model *mlp_vae_with(const ae_allocator *a, size_t in, size_t h, size_t dz,
                              ae_activation act, ae_loss loss, ae_reduction red, ae_optimizer opt,
                              double lr, int64_t seed) {
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, a));
    OK(ae_config_set_input_size(cfg, in));
    OK(ae_config_add_dense(cfg, h, act));
    OK(ae_config_add_gaussian(cfg, dz));
    OK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID));
    OK(ae_config_set_int(cfg, AE_P_LOSS, loss));
    OK(ae_config_set_int(cfg, AE_P_REDUCTION, red));
    OK(ae_config_set_int(cfg, AE_P_OPTIMIZER, opt));
    OK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, lr));
    OK(ae_config_set_int(cfg, AE_P_SEED, seed));
    ae_model *m = NULL;
    ae_status st = ae_model_create(&m, cfg);
    if (st) print_error("%s\n", ae_config_last_error(cfg));
    OK(st);
    ae_config_destroy(cfg);
    return m;
}

static ae_model *mlp_vae(size_t in, size_t h, size_t dz, ae_activation act, ae_loss loss,
                         ae_reduction red, ae_optimizer opt, double lr, int64_t seed) {
    return mlp_vae_with(NULL, in, h, dz, act, loss, red, opt, lr, seed);
}

static size_t total_params(ae_model *m) {
    size_t n = 0;
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        n += info.weight_count + info.bias_count;
    }
    return n;
}

static double stat(ae_model *m, ae_stat s) {
    double v = NAN;
    OK(ae_model_get_stat(m, s, &v));
    return v;
}

/* ---- builder ---- */

static void test_builder(void **state) {
    (void)state;
    assert_int_equal(ae_config_add_gaussian(NULL, 4), AE_ERR_INVALID_ARG);
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    assert_int_equal(ae_config_add_gaussian(cfg, 4), AE_ERR_STATE); /* no input size */
    assert_non_null(strstr(ae_config_last_error(cfg), "input size"));
    OK(ae_config_set_input_size(cfg, 10));
    OK(ae_config_add_dense(cfg, 6, AE_ACT_RELU));
    assert_int_equal(ae_config_add_gaussian(cfg, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_gaussian(cfg, ((size_t)1 << 24) + 1), AE_ERR_RANGE);
    OK(ae_config_add_gaussian(cfg, 3));
    OK(ae_config_mark_code(cfg)); /* right after the Gaussian layer: nothing to do */
    assert_int_equal(ae_config_add_gaussian(cfg, 3), AE_ERR_STATE); /* code already marked */
    OK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID));
    assert_int_equal(ae_config_add_gaussian(cfg, 3), AE_ERR_STATE); /* after a mirror */
    assert_int_equal(ae_config_mark_code(cfg), AE_ERR_STATE);
    ae_model *m = NULL;
    OK(ae_model_create(&m, cfg));
    assert_int_equal(ae_model_layer_count(m), 4);
    assert_int_equal(ae_model_code_layer(m), 2);
    assert_int_equal(ae_model_code_size(m), 3);
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, 1, &info));
    assert_int_equal(info.kind, AE_LAYER_GAUSSIAN);
    assert_int_equal(info.in_size, 6);
    assert_int_equal(info.out_size, 3);
    assert_int_equal(info.weight_count, 2 * 3 * 6);
    assert_int_equal(info.bias_count, 6);
    OK(ae_model_layer_info(m, 2, &info));
    assert_int_equal(info.kind, AE_LAYER_DENSE);
    assert_int_equal(info.in_size, 3);
    assert_int_equal(info.out_size, 6);
    assert_int_equal(info.activation, AE_ACT_RELU);
    OK(ae_model_layer_info(m, 3, &info));
    assert_int_equal(info.out_size, 10);
    assert_int_equal(info.activation, AE_ACT_SIGMOID);
    assert_int_equal(ae_model_param_count(m), 10 * 6 + 6 + 2 * (6 * 3 + 3) + 3 * 6 + 6 + 6 * 10 + 10);
    ae_model_destroy(m);
    ae_config_destroy(cfg);

    /* A Gaussian code straight on the input mirrors to one dense layer. */
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, 5));
    OK(ae_config_add_gaussian(cfg, 2));
    OK(ae_config_mirror_decoder(cfg, AE_ACT_IDENTITY));
    OK(ae_model_create(&m, cfg));
    assert_int_equal(ae_model_layer_count(m), 2);
    ae_model_destroy(m);
    ae_config_destroy(cfg);

    /* Marking the code first leaves no room for the Gaussian layer. */
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, 5));
    OK(ae_config_add_dense(cfg, 4, AE_ACT_RELU));
    OK(ae_config_mark_code(cfg));
    assert_int_equal(ae_config_add_gaussian(cfg, 2), AE_ERR_STATE);
    assert_non_null(strstr(ae_config_last_error(cfg), "already marked"));
    ae_config_destroy(cfg);

    /* A conv layer before the code still cannot be mirrored. */
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_shape(cfg, 1, 4, 4));
    OK(ae_config_add_conv2d(cfg, 2, 3, 1, 1, AE_ACT_RELU));
    OK(ae_config_add_gaussian(cfg, 2));
    assert_int_equal(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID), AE_ERR_STATE);
    assert_non_null(strstr(ae_config_last_error(cfg), "conv2d"));
    ae_config_destroy(cfg);
}

/* Tying and freezing around a Gaussian code: the outer dense pair ties, the
 * Gaussian layer does not; a frozen Gaussian layer keeps its parameters. */
static void test_stacking(void **state) {
    (void)state;
    enum { B = 4, D = 8 };
    float x[B * D];
    test_fill(x, B * D, 53, 0.0f, 1.0f);
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, D));
    OK(ae_config_add_dense(cfg, 5, AE_ACT_TANH));
    OK(ae_config_add_gaussian(cfg, 2));
    OK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID));
    OK(ae_config_tie(cfg));
    ae_model *m = NULL;
    assert_int_equal(ae_model_create(&m, cfg), AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(ae_config_last_error(cfg), "gaussian"));
    ae_config_destroy(cfg);

    m = mlp_vae(D, 5, 2, AE_ACT_TANH, AE_LOSS_BCE, AE_REDUCE_SUM, AE_OPT_ADAM, 1e-2, 6);
    OK(ae_model_tie_layers(m, 0, 0));
    assert_int_equal(ae_model_tie_layers(m, 1, 1), AE_ERR_UNSUPPORTED);
    OK(ae_model_freeze(m, 1, 1));
    float g0[20], g1[20];
    OK(ae_model_get_weights(m, 1, g0, 20));
    for (int s = 0; s < 3; s++) OK(ae_train_step(m, x, NULL, B, NULL));
    OK(ae_model_get_weights(m, 1, g1, 20));
    assert_memory_equal(g0, g1, sizeof g0);
    OK(ae_model_unfreeze(m, 1, 1));
    OK(ae_train_step(m, x, NULL, B, NULL));
    OK(ae_model_get_weights(m, 1, g1, 20));
    assert_true(memcmp(g0, g1, sizeof g0) != 0);
    ae_model_destroy(m);
}

/* ae_fit trains a VAE with a warm-up of beta; the validation loss is that
 * of z = mu (inference mode) and restore_best brings the best epoch back. */
static void test_fit(void **state) {
    (void)state;
    enum { N = 64, D = 12 };
    float x[N * D];
    test_fill(x, N * D, 59, 0.0f, 1.0f);
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_from_memory(ds, x, NULL, N, D, 1, 1, AE_DATA_BORROW));
    ae_model *m = mlp_vae(D, 8, 3, AE_ACT_RELU, AE_LOSS_BCE, AE_REDUCE_SUM, AE_OPT_ADAM, 1e-2, 14);
    /* Warm-up within the first epoch, so that every epoch's validation loss
     * has the full beta (docs/vae.md: warm-up and early stopping). */
    OK(ae_model_set_int(m, AE_P_VAE_BETA_WARMUP_STEPS, 4));
    ae_history *h = NULL;
    OK(ae_history_create(&h, NULL));
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 6;
    o.batch_size = 16;
    o.val = ds;
    o.restore_best = 1;
    o.history = h;
    OK(ae_fit(m, ds, &o));
    assert_int_equal(ae_history_count(h), 6);
    assert_int_equal(ae_model_step_count(m), 24);
    ae_epoch_stats first = {.struct_size = sizeof first}, best = {.struct_size = sizeof best};
    OK(ae_history_get(h, 0, &first));
    assert_true(ae_history_best_epoch(h) >= 1);
    OK(ae_history_get(h, ae_history_best_epoch(h) - 1, &best));
    assert_true(best.val_loss < first.val_loss);
    /* The restored model evaluates (z = mu) to the best validation loss (per
     * sample: ae_fit divides the batch sums by the count), with the beta_t of
     * that epoch's end (1: past the warm-up). */
    double beta = (double)best.steps / 4.0 < 1.0 ? (double)best.steps / 4.0 : 1.0;
    double sum = 0, r, k;
    for (size_t i = 0; i < N; i += 16) {
        OK(ae_evaluate(m, x + i * D, NULL, 16, NULL));
        OK(ae_vae_loss_terms(m, &r, &k));
        sum += r + beta * k; /* summed over the batch (AE_REDUCE_SUM) */
    }
    assert_true(fabs(sum / N - best.val_loss) < 1e-5 * best.val_loss);
    ae_history_destroy(h);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
}

static void test_settings(void **state) {
    (void)state;
    int is_int = -1, ch = -1;
    double lo, hi;
    OK(ae_param_bounds(AE_P_VAE_BETA, &is_int, &lo, &hi, &ch));
    assert_int_equal(is_int, 0);
    assert_int_equal(ch, 1);
    OK(ae_param_bounds(AE_P_VAE_BETA_WARMUP_STEPS, &is_int, &lo, &hi, &ch));
    assert_int_equal(is_int, 1);
    assert_true(lo == 0.0);
    ae_model *m = mlp_vae(6, 4, 2, AE_ACT_TANH, AE_LOSS_MSE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-3, 1);
    double beta = 0;
    int64_t w = -1;
    OK(ae_model_get_float(m, AE_P_VAE_BETA, &beta));
    OK(ae_model_get_int(m, AE_P_VAE_BETA_WARMUP_STEPS, &w));
    assert_true(beta == 1.0);
    assert_int_equal(w, 0);
    assert_int_equal(ae_model_set_float(m, AE_P_VAE_BETA, -0.1), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "AE_P_VAE_BETA"));
    assert_int_equal(ae_model_set_float(m, AE_P_VAE_BETA, NAN), AE_ERR_RANGE);
    assert_int_equal(ae_model_set_int(m, AE_P_VAE_BETA_WARMUP_STEPS, -1), AE_ERR_RANGE);
    assert_int_equal(ae_model_set_int(m, AE_P_VAE_BETA, 1), AE_ERR_INVALID_ARG);
    OK(ae_model_set_float(m, AE_P_VAE_BETA, 0.25));
    OK(ae_model_set_int(m, AE_P_VAE_BETA_WARMUP_STEPS, 10));
    ae_model_destroy(m);
}

/* Every VAE call on a model without a Gaussian layer: AE_ERR_STATE and a message. */
static void test_not_a_vae(void **state) {
    (void)state;
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, 4));
    OK(ae_config_add_dense(cfg, 2, AE_ACT_TANH));
    OK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID));
    ae_model *m = NULL;
    OK(ae_model_create(&m, cfg));
    ae_config_destroy(cfg);
    float x[8] = {0}, out[8], z[4];
    double v, r, k;
    assert_int_equal(ae_vae_encode(m, x, 2, z, NULL), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "Gaussian"));
    assert_int_equal(ae_vae_sample(m, 2, out, NULL), AE_ERR_STATE);
    assert_int_equal(ae_vae_interpolate(m, z, z, 2, out), AE_ERR_STATE);
    assert_int_equal(ae_vae_neg_elbo(m, x, 2, &v, NULL, NULL), AE_ERR_STATE);
    assert_int_equal(ae_vae_loss_terms(m, &r, &k), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "Gaussian"));
    assert_int_equal(ae_vae_set_fixed_eps(m, z, 2), AE_ERR_STATE);
    OK(ae_train_step(m, x, NULL, 2, NULL));
    assert_int_equal(ae_model_get_stat(m, AE_STAT_LOSS_VAE_KL, &v), AE_ERR_STATE);
    ae_model_destroy(m);
    assert_int_equal(ae_vae_encode(NULL, x, 2, z, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_sample(NULL, 2, out, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_interpolate(NULL, z, z, 2, out), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_neg_elbo(NULL, x, 2, &v, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_loss_terms(NULL, &r, &k), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_set_fixed_eps(NULL, z, 2), AE_ERR_INVALID_ARG);
}

/* ---- gradients by finite differences ---- */

/* One SGD step with learning rate 1 moves every parameter by minus its
 * gradient; the finite differences are of the loss ae_evaluate computes in
 * AE_MODE_TRAIN with the same fixed eps (double, from AE_STAT_LOSS). */
static void check_gradient(ae_model *m, const float *x, size_t B, const char *what) {
    size_t dz = ae_model_code_size(m);
    float *eps = malloc(B * dz * sizeof *eps);
    test_fill(eps, B * dz, 5, -1.5f, 1.5f);
    OK(ae_vae_set_fixed_eps(m, eps, B * dz));
    size_t n = total_params(m);
    float *p0 = malloc(n * sizeof *p0), *p1 = malloc(n * sizeof *p1), *p = malloc(n * sizeof *p);
    test_get_params(m, p0);
    OK(ae_train_step(m, x, NULL, B, NULL));
    test_get_params(m, p1);
    memcpy(p, p0, n * sizeof *p);
    test_set_params(m, p);
    OK(ae_model_set_mode(m, AE_MODE_TRAIN));
    /* The KL term contributes: its value is positive and in the loss. */
    OK(ae_evaluate(m, x, NULL, B, NULL));
    assert_true(stat(m, AE_STAT_LOSS_VAE_KL) > 0.0);
    size_t checked = 0;
    for (size_t i = 0; i < n; i++) {
        double h = 1e-3;
        float s = p[i];
        p[i] = s + (float)h;
        test_set_params(m, p);
        OK(ae_evaluate(m, x, NULL, B, NULL));
        double lp = stat(m, AE_STAT_LOSS);
        p[i] = s - (float)h;
        test_set_params(m, p);
        OK(ae_evaluate(m, x, NULL, B, NULL));
        double lm = stat(m, AE_STAT_LOSS);
        p[i] = s;
        double fd = (lp - lm) / (2 * h);
        double an = (double)p0[i] - (double)p1[i];
        if (fabs(fd - an) > 1e-3 * (1.0 + fabs(fd))) {
            print_error("%s: parameter %zu: analytic %g, finite difference %g\n", what, i, an, fd);
            fail();
        }
        checked += fabs(an) > 1e-4;
    }
    /* Most gradients are not tiny, so the check is not vacuous. */
    assert_true(checked > n / 2);
    free(p0);
    free(p1);
    free(p);
    free(eps);
}

static void test_gradient_dense(void **state) {
    (void)state;
    enum { B = 3, D = 7 };
    float x[B * D];
    test_fill(x, B * D, 17, 0.05f, 0.95f);
    /* MSE mean with beta 0.7; BCE summed with beta 1.3. */
    ae_model *m = mlp_vae(D, 5, 3, AE_ACT_TANH, AE_LOSS_MSE, AE_REDUCE_MEAN, AE_OPT_SGD, 1.0, 3);
    OK(ae_model_set_float(m, AE_P_VAE_BETA, 0.7));
    check_gradient(m, x, B, "MSE mean");
    ae_model_destroy(m);
    m = mlp_vae(D, 5, 3, AE_ACT_TANH, AE_LOSS_BCE, AE_REDUCE_SUM, AE_OPT_SGD, 1.0, 4);
    OK(ae_model_set_float(m, AE_P_VAE_BETA, 1.3));
    check_gradient(m, x, B, "BCE sum");
    ae_model_destroy(m);
}

/* conv encoder - flatten - gaussian - dense - unflatten - conv-transpose decoder. */
static ae_model *conv_vae(ae_loss loss, ae_optimizer opt, double lr) {
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_shape(cfg, 1, 6, 6));
    OK(ae_config_add_conv2d(cfg, 2, 3, 2, 1, AE_ACT_TANH)); /* 2x3x3 */
    OK(ae_config_add_flatten(cfg));
    OK(ae_config_add_gaussian(cfg, 3));
    OK(ae_config_add_dense(cfg, 18, AE_ACT_TANH));
    OK(ae_config_add_unflatten(cfg, 2, 3, 3));
    OK(ae_config_add_conv_transpose2d(cfg, 1, 3, 2, 1, 1, AE_ACT_SIGMOID)); /* 1x6x6 */
    OK(ae_config_set_int(cfg, AE_P_LOSS, loss));
    OK(ae_config_set_int(cfg, AE_P_OPTIMIZER, opt));
    OK(ae_config_set_float(cfg, AE_P_LEARNING_RATE, lr));
    OK(ae_config_set_int(cfg, AE_P_SEED, 9));
    ae_model *m = NULL;
    ae_status st = ae_model_create(&m, cfg);
    if (st) print_error("%s\n", ae_config_last_error(cfg));
    OK(st);
    ae_config_destroy(cfg);
    return m;
}

static void test_gradient_conv(void **state) {
    (void)state;
    enum { B = 2, D = 36 };
    float x[B * D];
    test_fill(x, B * D, 23, 0.05f, 0.95f);
    ae_model *m = conv_vae(AE_LOSS_BCE, AE_OPT_SGD, 1.0);
    assert_int_equal(ae_model_code_size(m), 3);
    check_gradient(m, x, B, "conv BCE");
    ae_model_destroy(m);
    m = conv_vae(AE_LOSS_MSE, AE_OPT_SGD, 1.0);
    check_gradient(m, x, B, "conv MSE");
    ae_model_destroy(m);
}

/* A conv VAE trains: the loss falls, and the code is mu in inference. */
static void test_conv_trains(void **state) {
    (void)state;
    enum { B = 8, D = 36 };
    float x[B * D], mu[B * 3], code[B * 3];
    test_fill(x, B * D, 29, 0.0f, 1.0f);
    ae_model *m = conv_vae(AE_LOSS_BCE, AE_OPT_ADAM, 1e-2);
    float first = 0, last = 0;
    for (int s = 0; s < 200; s++) OK(ae_train_step(m, x, NULL, B, s ? &last : &first));
    assert_true(last < first);
    OK(ae_vae_encode(m, x, B, mu, NULL));
    OK(ae_encode(m, x, B, code));
    assert_memory_equal(mu, code, sizeof mu);
    ae_model_destroy(m);
}

/* ---- sampling ---- */

/* z = mu + sigma eps through a model whose heads give constant mu and
 * logvar (zero weights) and whose decoder is the identity: in training
 * mode ae_reconstruct returns z. */
static void test_sampled_z_statistics(void **state) {
    (void)state;
    ae_config *cfg = NULL;
    OK(ae_config_create(&cfg, NULL));
    OK(ae_config_set_input_size(cfg, 2));
    OK(ae_config_add_gaussian(cfg, 2));
    OK(ae_config_add_dense(cfg, 2, AE_ACT_IDENTITY));
    OK(ae_config_set_int(cfg, AE_P_SEED, 77));
    ae_model *m = NULL;
    OK(ae_model_create(&m, cfg));
    ae_config_destroy(cfg);
    float w[8] = {0}, b[4] = {1.0f, -2.0f, logf(4.0f), logf(0.25f)};
    float eye[4] = {1, 0, 0, 1}, zero[2] = {0};
    OK(ae_model_set_weights(m, 0, w, 8));
    OK(ae_model_set_bias(m, 0, b, 4));
    OK(ae_model_set_weights(m, 1, eye, 4));
    OK(ae_model_set_bias(m, 1, zero, 2));
    enum { N = 20000 };
    float *x = calloc(2 * N, sizeof *x), *z = malloc(2 * N * sizeof *z);
    test_fill(x, 2 * N, 3, -1.0f, 1.0f); /* the input does not matter */
    /* Inference: z is mu exactly. */
    OK(ae_reconstruct(m, x, 4, z));
    for (int i = 0; i < 4; i++) {
        assert_true(z[2 * i] == 1.0f);
        assert_true(z[2 * i + 1] == -2.0f);
    }
    OK(ae_model_set_mode(m, AE_MODE_TRAIN));
    OK(ae_reconstruct(m, x, N, z));
    double s0 = 0, s1 = 0, q0 = 0, q1 = 0, c = 0;
    for (int i = 0; i < N; i++) {
        s0 += z[2 * i];
        s1 += z[2 * i + 1];
    }
    double m0 = s0 / N, m1 = s1 / N;
    for (int i = 0; i < N; i++) {
        double a = z[2 * i] - m0, d = z[2 * i + 1] - m1;
        q0 += a * a;
        q1 += d * d;
        c += a * d;
    }
    double v0 = q0 / (N - 1), v1 = q1 / (N - 1), corr = c / sqrt(q0 * q1);
    /* Five standard errors: mean sigma/sqrt(N), variance sigma² sqrt(2/N). */
    assert_true(fabs(m0 - 1.0) < 5 * 2.0 / sqrt(N));
    assert_true(fabs(m1 + 2.0) < 5 * 0.5 / sqrt(N));
    assert_true(fabs(v0 - 4.0) < 5 * 4.0 * sqrt(2.0 / N));
    assert_true(fabs(v1 - 0.25) < 5 * 0.25 * sqrt(2.0 / N));
    assert_true(fabs(corr) < 5.0 / sqrt(N));
    /* Another draw differs: the RNG moves on. */
    float z2[8];
    OK(ae_reconstruct(m, x, 4, z2));
    assert_true(memcmp(z, z2, sizeof z2) != 0);

    /* ae_vae_sample: z ~ N(0, I), decoded. */
    float *out = malloc(2 * N * sizeof *out);
    OK(ae_model_set_mode(m, AE_MODE_INFER));
    OK(ae_vae_sample(m, N, out, z));
    assert_memory_equal(out, z, 2 * N * sizeof *z); /* identity decoder */
    double s = 0, q = 0;
    for (int i = 0; i < 2 * N; i++) s += z[i];
    double mean = s / (2 * N);
    for (int i = 0; i < 2 * N; i++) q += (z[i] - mean) * (z[i] - mean);
    assert_true(fabs(mean) < 5.0 / sqrt(2 * N));
    assert_true(fabs(q / (2 * N - 1) - 1.0) < 5 * sqrt(2.0 / (2 * N)));
    free(x);
    free(z);
    free(out);
    ae_model_destroy(m);
}

static void test_sample_and_interpolate(void **state) {
    (void)state;
    enum { D = 9, DZ = 3, N = 5 };
    ae_model *m = mlp_vae(D, 6, DZ, AE_ACT_RELU, AE_LOSS_BCE, AE_REDUCE_SUM, AE_OPT_ADAM, 1e-3, 8);
    ae_model *twin = mlp_vae(D, 6, DZ, AE_ACT_RELU, AE_LOSS_BCE, AE_REDUCE_SUM, AE_OPT_ADAM, 1e-3, 8);
    float out[N * D], z[N * DZ], dec[N * D], out2[N * D];
    OK(ae_vae_sample(m, N, out, z));
    OK(ae_decode(m, z, N, dec));
    assert_memory_equal(out, dec, sizeof out);
    /* Same seed, same samples; without z_out too. */
    OK(ae_vae_sample(twin, N, out2, NULL));
    assert_memory_equal(out, out2, sizeof out);
    /* The next call draws new codes. */
    OK(ae_vae_sample(m, N, out2, NULL));
    assert_true(memcmp(out, out2, sizeof out) != 0);
    assert_int_equal(ae_vae_sample(m, 0, out, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_sample(m, N, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_sample(m, ((size_t)1 << 24) + 1, out, NULL), AE_ERR_RANGE);

    /* Interpolation: the ends decode z0 and z1, the middle their mean. */
    float z0[DZ] = {-1.0f, 0.5f, 2.0f}, z1[DZ] = {1.0f, -0.5f, 0.0f}, zm[DZ];
    for (int j = 0; j < DZ; j++) zm[j] = 0.5f * (z0[j] + z1[j]);
    float strip[N * D], e0[D], e1[D], em[D];
    OK(ae_vae_interpolate(m, z0, z1, N, strip));
    OK(ae_decode(m, z0, 1, e0));
    OK(ae_decode(m, z1, 1, e1));
    OK(ae_decode(m, zm, 1, em));
    assert_close_arrays(strip, e0, D, 1e-6, 1e-7, "interpolation start");
    assert_close_arrays(strip + 4 * D, e1, D, 1e-6, 1e-7, "interpolation end");
    assert_close_arrays(strip + 2 * D, em, D, 1e-6, 1e-7, "interpolation middle");
    OK(ae_vae_interpolate(m, z0, z1, 2, strip));
    assert_close_arrays(strip + D, e1, D, 1e-6, 1e-7, "2-step end");
    assert_int_equal(ae_vae_interpolate(m, z0, z1, 1, strip), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "steps"));
    assert_int_equal(ae_vae_interpolate(m, NULL, z1, 3, strip), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_interpolate(m, z0, z1, 3, NULL), AE_ERR_INVALID_ARG);
    z1[1] = NAN;
    assert_int_equal(ae_vae_interpolate(m, z0, z1, 3, strip), AE_ERR_NUMERIC);
    ae_model_destroy(m);
    ae_model_destroy(twin);
}

/* ---- encode, losses, negative ELBO ---- */

static void test_encode_and_terms(void **state) {
    (void)state;
    enum { B = 4, D = 10, DZ = 3 };
    float x[B * D], mu[B * DZ], lv[B * DZ], code[B * DZ], mu2[B * DZ];
    test_fill(x, B * D, 31, 0.0f, 1.0f);
    ae_model *m = mlp_vae(D, 6, DZ, AE_ACT_TANH, AE_LOSS_BCE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 5);
    double r, k;
    assert_int_equal(ae_vae_loss_terms(m, &r, &k), AE_ERR_STATE); /* nothing yet */
    OK(ae_vae_encode(m, x, B, mu, lv));
    OK(ae_vae_encode(m, x, B, mu2, NULL));
    assert_memory_equal(mu, mu2, sizeof mu);
    OK(ae_encode(m, x, B, code));
    assert_memory_equal(mu, code, sizeof mu);
    OK(ae_model_set_mode(m, AE_MODE_TRAIN)); /* ae_encode never samples */
    OK(ae_encode(m, x, B, code));
    assert_memory_equal(mu, code, sizeof mu);
    OK(ae_model_set_mode(m, AE_MODE_INFER));
    assert_int_equal(ae_vae_encode(m, x, 0, mu, lv), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_encode(m, x, B, NULL, lv), AE_ERR_INVALID_ARG);

    /* In inference ae_evaluate uses z = mu: its KL is that of the heads. */
    float loss;
    OK(ae_evaluate(m, x, NULL, B, &loss));
    double kl = 0;
    for (int i = 0; i < B * DZ; i++)
        kl += -0.5 * (1.0 + lv[i] - (double)mu[i] * mu[i] - exp(lv[i]));
    OK(ae_vae_loss_terms(m, &r, &k));
    assert_true(fabs(k - kl / B) < 1e-6 * (1 + kl)); /* mean: divided by the batch */
    assert_true(fabs(stat(m, AE_STAT_LOSS_VAE_KL) - k) == 0.0);
    assert_true(fabs(stat(m, AE_STAT_LOSS_RECON) - r) == 0.0);
    assert_true(fabs(stat(m, AE_STAT_LOSS) - (r + k)) < 1e-12);
    assert_true(fabs((double)loss - (r + k)) < 1e-5 * (r + k));
    OK(ae_vae_loss_terms(m, NULL, NULL));
    /* Evaluating twice in inference gives the same loss. */
    float loss2;
    OK(ae_evaluate(m, x, NULL, B, &loss2));
    assert_true(loss == loss2);

    /* Warm-up: beta_t = beta · min(1, t / W) for the step taken at count t. */
    OK(ae_model_set_float(m, AE_P_VAE_BETA, 2.0));
    OK(ae_model_set_int(m, AE_P_VAE_BETA_WARMUP_STEPS, 4));
    const double expect[] = {0.0, 0.5, 1.0, 1.5, 2.0, 2.0};
    for (int s = 0; s < 6; s++) {
        OK(ae_train_step(m, x, NULL, B, &loss));
        OK(ae_vae_loss_terms(m, &r, &k));
        double want = r + expect[s] * k;
        if (fabs(stat(m, AE_STAT_LOSS) - want) > 1e-9 * (1 + want)) {
            print_error("step %d: loss %.9g, recon %.9g + %.2f KL %.9g\n", s,
                        stat(m, AE_STAT_LOSS), r, expect[s], k);
            fail();
        }
    }
    ae_model_destroy(m);
}

static void test_neg_elbo(void **state) {
    (void)state;
    enum { B = 6, D = 10, DZ = 3 };
    float x[B * D], mu[B * DZ], lv[B * DZ];
    test_fill(x, B * D, 37, 0.0f, 1.0f);
    ae_model *m = mlp_vae(D, 6, DZ, AE_ACT_TANH, AE_LOSS_BCE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 5);
    ae_model *twin = mlp_vae(D, 6, DZ, AE_ACT_TANH, AE_LOSS_BCE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 5);
    double e1, r1, k1, e2, r2, k2;
    OK(ae_vae_neg_elbo(m, x, B, &e1, &r1, &k1));
    OK(ae_vae_neg_elbo(m, x, B, &e2, NULL, NULL));
    assert_true(e1 == e2); /* repeatable */
    assert_true(fabs(e1 - (r1 + k1)) < 1e-12 * e1);
    /* KL summed over the latents, mean over the batch, beta ignored. */
    OK(ae_model_set_float(m, AE_P_VAE_BETA, 3.0));
    OK(ae_vae_neg_elbo(m, x, B, &e2, &r2, &k2));
    assert_true(e1 == e2);
    OK(ae_vae_encode(m, x, B, mu, lv));
    double kl = 0;
    for (int i = 0; i < B * DZ; i++)
        kl += -0.5 * (1.0 + lv[i] - (double)mu[i] * mu[i] - exp(lv[i]));
    assert_true(fabs(k1 - kl / B) < 1e-6 * (1 + kl));
    /* The recon term is a per-sample sum: about D times the mean BCE. */
    float loss;
    OK(ae_evaluate(m, x, NULL, B, &loss));
    double r_eval;
    OK(ae_vae_loss_terms(m, &r_eval, NULL));
    assert_true(fabs(r1 / D - r_eval) < 0.2 * r_eval); /* one sample of z vs z = mu */
    /* The model's RNG is untouched: the twin samples the same afterwards. */
    float s1[2 * D], s2[2 * D];
    OK(ae_vae_sample(m, 2, s1, NULL));
    OK(ae_vae_sample(twin, 2, s2, NULL));
    assert_memory_equal(s1, s2, sizeof s1);
    /* A half batch gives the first half's eps: different data, same stream. */
    OK(ae_vae_neg_elbo(m, x, B / 2, &e2, NULL, NULL));
    assert_true(isfinite(e2));
    assert_int_equal(ae_vae_neg_elbo(m, x, B, NULL, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_neg_elbo(m, NULL, B, &e2, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_vae_neg_elbo(m, x, 0, &e2, NULL, NULL), AE_ERR_INVALID_ARG);
    x[3] = NAN;
    assert_int_equal(ae_vae_neg_elbo(m, x, B, &e2, NULL, NULL), AE_ERR_NUMERIC);
    ae_model_destroy(m);
    ae_model_destroy(twin);
}

/* ---- fixed eps and failures ---- */

static void test_fixed_eps_and_failures(void **state) {
    (void)state;
    enum { B = 4, D = 8, DZ = 2 };
    float x[B * D], eps[B * DZ];
    test_fill(x, B * D, 41, 0.0f, 1.0f);
    test_fill(eps, B * DZ, 43, -2.0f, 2.0f);
    ae_model *a = mlp_vae(D, 5, DZ, AE_ACT_TANH, AE_LOSS_MSE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 12);
    ae_model *b = mlp_vae(D, 5, DZ, AE_ACT_TANH, AE_LOSS_MSE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 99);
    size_t n = total_params(a);
    float *p = malloc(n * sizeof *p), *q = malloc(n * sizeof *q);
    test_get_params(a, p);
    test_set_params(b, p);
    /* Fixed eps make the steps independent of the seed. */
    OK(ae_vae_set_fixed_eps(a, eps, B * DZ));
    OK(ae_vae_set_fixed_eps(b, eps, B * DZ));
    float la, lb;
    for (int s = 0; s < 3; s++) {
        OK(ae_train_step(a, x, NULL, B, &la));
        OK(ae_train_step(b, x, NULL, B, &lb));
        assert_true(la == lb);
    }
    test_get_params(a, p);
    test_get_params(b, q);
    assert_memory_equal(p, q, n * sizeof *p);
    /* Bad eps are refused and change nothing. */
    assert_int_equal(ae_vae_set_fixed_eps(a, eps, 3), AE_ERR_SHAPE);
    assert_int_equal(ae_vae_set_fixed_eps(a, eps, 0), AE_ERR_SHAPE);
    float bad[B * DZ];
    memcpy(bad, eps, sizeof bad);
    bad[5] = INFINITY;
    assert_int_equal(ae_vae_set_fixed_eps(a, bad, B * DZ), AE_ERR_NUMERIC);
    OK(ae_train_step(a, x, NULL, B, &la));
    OK(ae_train_step(b, x, NULL, B, &lb));
    assert_true(la == lb);
    /* Another batch size with fixed eps: AE_ERR_SHAPE, nothing changed. */
    test_get_params(a, p);
    uint64_t steps = ae_model_step_count(a);
    assert_int_equal(ae_train_step(a, x, NULL, B - 1, &la), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(a), "fixed eps"));
    test_get_params(a, q);
    assert_memory_equal(p, q, n * sizeof *p);
    assert_int_equal(ae_model_step_count(a), steps);
    /* Cleared: the RNG samples again, and any batch size goes. */
    OK(ae_vae_set_fixed_eps(a, NULL, 0));
    OK(ae_train_step(a, x, NULL, B - 1, &la));

    /* A step that meets a non-finite loss (logvar overflowing exp) changes
     * neither the parameters nor the RNG. */
    ae_model *c = mlp_vae(D, 5, DZ, AE_ACT_TANH, AE_LOSS_MSE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 12);
    ae_model *twin = mlp_vae(D, 5, DZ, AE_ACT_TANH, AE_LOSS_MSE, AE_REDUCE_MEAN, AE_OPT_ADAM, 1e-2, 12);
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(c, 1, &info));
    float *gb = malloc(info.bias_count * sizeof *gb);
    OK(ae_model_get_bias(c, 1, gb, info.bias_count));
    float saved = gb[DZ];
    gb[DZ] = 500.0f; /* logvar of latent 0: exp(250) overflows */
    OK(ae_model_set_bias(c, 1, gb, info.bias_count));
    OK(ae_model_set_bias(twin, 1, gb, info.bias_count));
    size_t nc = total_params(c);
    float *pc = malloc(nc * sizeof *pc), *pc2 = malloc(nc * sizeof *pc2);
    test_get_params(c, pc);
    assert_int_equal(ae_train_step(c, x, NULL, B, &la), AE_ERR_NUMERIC);
    test_get_params(c, pc2);
    assert_memory_equal(pc, pc2, nc * sizeof *pc);
    assert_int_equal(ae_model_step_count(c), 0);
    gb[DZ] = saved;
    OK(ae_model_set_bias(c, 1, gb, info.bias_count));
    OK(ae_model_set_bias(twin, 1, gb, info.bias_count));
    float s1[D], s2[D];
    OK(ae_vae_sample(c, 1, s1, NULL));
    OK(ae_vae_sample(twin, 1, s2, NULL));
    assert_memory_equal(s1, s2, sizeof s1);
    /* NaN in the data: refused, nothing changed. */
    x[0] = NAN;
    test_get_params(c, pc);
    assert_int_equal(ae_train_step(c, x, NULL, B, &la), AE_ERR_NUMERIC);
    test_get_params(c, pc2);
    assert_memory_equal(pc, pc2, nc * sizeof *pc);
    free(gb);
    free(pc);
    free(pc2);
    free(p);
    free(q);
    ae_model_destroy(a);
    ae_model_destroy(b);
    ae_model_destroy(c);
    ae_model_destroy(twin);
}

/* Every allocation of creating, training and sampling a VAE may fail:
 * clean errors, no leak. */
static void test_out_of_memory(void **state) {
    (void)state;
    enum { B = 3, D = 6, DZ = 2 };
    float x[B * D], out[B * D], eps[B * DZ];
    test_fill(x, B * D, 47, 0.0f, 1.0f);
    test_fill(eps, B * DZ, 48, -1.0f, 1.0f);
    int completed = 0;
    for (long fail_at = 0; fail_at < 200 && !completed; fail_at++) {
        test_alloc t = {0, 0, fail_at};
        ae_allocator a = test_allocator(&t);
        ae_config *cfg = NULL;
        ae_model *m = NULL;
        ae_status st = ae_config_create(&cfg, &a);
        if (!st) st = ae_config_set_input_size(cfg, D);
        if (!st) st = ae_config_add_dense(cfg, 4, AE_ACT_RELU);
        if (!st) st = ae_config_add_gaussian(cfg, DZ);
        if (!st) st = ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID);
        if (!st) st = ae_model_create(&m, cfg);
        if (!st) st = ae_vae_set_fixed_eps(m, eps, B * DZ);
        if (!st) st = ae_train_step(m, x, NULL, B, NULL);
        if (!st) st = ae_vae_sample(m, B, out, NULL);
        if (!st) st = ae_vae_interpolate(m, eps, eps + DZ, B, out);
        if (st) assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        completed = st == AE_OK;
        ae_model_destroy(m);
        ae_config_destroy(cfg);
        assert_int_equal(t.live, 0);
    }
    assert_true(completed);
}

/* After the first step of a batch size, steps of that size or smaller
 * allocate nothing: sampling from the RNG or from fixed eps, during and
 * after the beta warm-up, and the calls that read a batch (evaluate in
 * both modes, encode, neg_elbo, reconstruct). Setting fixed eps copies
 * them (one allocation, by the setter, not by a step). A larger batch
 * grows the workspace once. */
static void test_no_allocation_after_first_step(void **state) {
    (void)state;
    enum { D = 20, H = 12, DZ = 4, BIG = 16, BIGGER = 24 };
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = mlp_vae_with(&a, D, H, DZ, AE_ACT_TANH, AE_LOSS_BCE, AE_REDUCE_SUM, AE_OPT_ADAM,
                               1e-3, 50);
    OK(ae_model_set_float(m, AE_P_VAE_BETA, 0.5));
    OK(ae_model_set_int(m, AE_P_VAE_BETA_WARMUP_STEPS, 6));
    float x[BIGGER * D], out[BIGGER * D], mu[BIGGER * DZ], lv[BIGGER * DZ], z[BIGGER * DZ];
    float eps[8 * DZ], loss;
    double elbo, r, k;
    test_fill(x, BIGGER * D, 51, 0.0f, 1.0f);
    test_fill(eps, 8 * DZ, 52, -1.0f, 1.0f);
    OK(ae_train_step(m, x, NULL, BIG, &loss));
    long planned = t.count;
    static const size_t sizes[] = {BIG, 8, 3, 1, BIG, 5, BIG, BIG}; /* across the warm-up's end */
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        OK(ae_train_step(m, x, NULL, sizes[i], &loss));
    assert_true(ae_model_step_count(m) > 6);
    for (int mode = 0; mode < 2; mode++) {
        OK(ae_model_set_mode(m, mode ? AE_MODE_TRAIN : AE_MODE_INFER));
        OK(ae_evaluate(m, x, NULL, BIG, &loss));
        OK(ae_vae_encode(m, x, BIG, mu, lv));
        OK(ae_vae_neg_elbo(m, x, BIG, &elbo, &r, &k));
        OK(ae_vae_loss_terms(m, &r, &k));
        OK(ae_reconstruct(m, x, 3, out));
        OK(ae_vae_sample(m, BIG, out, z)); /* with z_out: no buffer of its own */
    }
    OK(ae_model_set_mode(m, AE_MODE_INFER));
    assert_int_equal(t.count, planned);
    /* Fixed eps for batch 8: the setter copies them, the steps do not allocate. */
    OK(ae_vae_set_fixed_eps(m, eps, 8 * DZ));
    assert_int_equal(t.count, planned + 1);
    for (int i = 0; i < 3; i++) OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_model_set_mode(m, AE_MODE_TRAIN));
    OK(ae_evaluate(m, x, NULL, 8, &loss));
    OK(ae_reconstruct(m, x, 8, out));
    OK(ae_model_set_mode(m, AE_MODE_INFER));
    OK(ae_vae_set_fixed_eps(m, NULL, 0)); /* back to the RNG: frees only */
    OK(ae_train_step(m, x, NULL, BIG, &loss));
    assert_int_equal(t.count, planned + 1);
    /* A larger batch grows the workspace once; then nothing again. */
    OK(ae_train_step(m, x, NULL, BIGGER, &loss));
    assert_int_equal(t.count, planned + 2);
    OK(ae_train_step(m, x, NULL, 2, &loss));
    OK(ae_train_step(m, x, NULL, BIG, &loss));
    OK(ae_train_step(m, x, NULL, BIGGER, &loss));
    OK(ae_vae_neg_elbo(m, x, BIGGER, &elbo, NULL, NULL));
    assert_int_equal(t.count, planned + 2);
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
}

/* ---- PyTorch parity ---- */

/* Fixture layout: tests/fixtures/README.md ("VAE parity fixtures"). */
static void run_parity(const char *name) {
    fixture fx;
    assert_int_equal(fixture_load(&fx, name), 0);
    const float *meta = fx.array[0];
    size_t B = (size_t)meta[0], S = (size_t)meta[1], d0 = (size_t)meta[2], d1 = (size_t)meta[3],
           dz = (size_t)meta[4], T = (size_t)meta[13];
    ae_activation act = (ae_activation)meta[5];
    uint32_t seed_param = (uint32_t)meta[11], seed_data = (uint32_t)meta[12];
    assert_int_equal(T, 10);
    assert_int_equal(fx.n, 1 + S + 3 + T);
    ae_model *m = mlp_vae(d0, d1, dz, act, (ae_loss)meta[6], (ae_reduction)meta[7], AE_OPT_ADAM,
                          (double)meta[10], 1);
    OK(ae_model_set_float(m, AE_P_VAE_BETA, (double)meta[8]));
    OK(ae_model_set_int(m, AE_P_VAE_BETA_WARMUP_STEPS, (int64_t)meta[9]));
    /* The PyTorch tensors in order: fc1 W, b; fc21 W, b; fc22 W, b; fc3 W, b; fc4 W, b.
     * libae's Gaussian layer holds [fc21; fc22] in one weight and one bias. */
    size_t counts[10] = {d1 * d0, d1, dz * d1, dz, dz * d1, dz, d1 * dz, d1, d0 * d1, d0};
    size_t fan_in[10] = {d0, d0, d1, d1, d1, d1, dz, dz, d1, d1};
    float *t[10];
    for (int i = 0; i < 10; i++) {
        t[i] = malloc(counts[i] * sizeof(float));
        float bound = 1.0f / sqrtf((float)fan_in[i]);
        test_fill(t[i], counts[i], seed_param + (uint32_t)i, -bound, bound);
    }
    float *gw = malloc(2 * dz * d1 * sizeof *gw), *gb = malloc(2 * dz * sizeof *gb);
    memcpy(gw, t[2], counts[2] * sizeof *gw);
    memcpy(gw + counts[2], t[4], counts[4] * sizeof *gw);
    memcpy(gb, t[3], dz * sizeof *gb);
    memcpy(gb + dz, t[5], dz * sizeof *gb);
    OK(ae_model_set_weights(m, 0, t[0], counts[0]));
    OK(ae_model_set_bias(m, 0, t[1], counts[1]));
    OK(ae_model_set_weights(m, 1, gw, 2 * dz * d1));
    OK(ae_model_set_bias(m, 1, gb, 2 * dz));
    OK(ae_model_set_weights(m, 2, t[6], counts[6]));
    OK(ae_model_set_bias(m, 2, t[7], counts[7]));
    OK(ae_model_set_weights(m, 3, t[8], counts[8]));
    OK(ae_model_set_bias(m, 3, t[9], counts[9]));

    float *x = malloc(B * d0 * sizeof *x);
    const float *losses = fx.array[1 + S], *recons = fx.array[2 + S], *kls = fx.array[3 + S];
    for (size_t s = 0; s < S; s++) {
        test_fill(x, B * d0, seed_data + (uint32_t)s, 0.0f, 1.0f);
        assert_int_equal(fx.count[1 + s], B * dz);
        OK(ae_vae_set_fixed_eps(m, fx.array[1 + s], B * dz));
        float loss;
        OK(ae_train_step(m, x, NULL, B, &loss));
        double r, k;
        OK(ae_vae_loss_terms(m, &r, &k));
        if (fabs(loss - losses[s]) > 1e-4 * fabs(losses[s]) ||
            fabs(r - recons[s]) > 1e-4 * fabs(recons[s]) ||
            fabs(k - kls[s]) > 1e-4 * fabs(kls[s]) + 1e-6) {
            print_error("%s step %zu: loss %.8g / %.8g, recon %.8g / %.8g, KL %.8g / %.8g\n", name,
                        s + 1, (double)loss, (double)losses[s], r, (double)recons[s], k,
                        (double)kls[s]);
            fail();
        }
    }
    /* Parameters after the last step, subsampled as the fixture stores them. */
    OK(ae_model_get_weights(m, 0, t[0], counts[0]));
    OK(ae_model_get_bias(m, 0, t[1], counts[1]));
    OK(ae_model_get_weights(m, 1, gw, 2 * dz * d1));
    OK(ae_model_get_bias(m, 1, gb, 2 * dz));
    memcpy(t[2], gw, counts[2] * sizeof *gw);
    memcpy(t[4], gw + counts[2], counts[4] * sizeof *gw);
    memcpy(t[3], gb, dz * sizeof *gb);
    memcpy(t[5], gb + dz, dz * sizeof *gb);
    OK(ae_model_get_weights(m, 2, t[6], counts[6]));
    OK(ae_model_get_bias(m, 2, t[7], counts[7]));
    OK(ae_model_get_weights(m, 3, t[8], counts[8]));
    OK(ae_model_get_bias(m, 3, t[9], counts[9]));
    for (int i = 0; i < 10; i++) {
        size_t stride = (counts[i] + 2047) / 2048, n = (counts[i] + stride - 1) / stride;
        const float *ref = fx.array[4 + S + (size_t)i];
        assert_int_equal(fx.count[4 + S + (size_t)i], n);
        double num = 0, den = 0;
        for (size_t j = 0; j < n; j++) {
            double dlt = (double)t[i][j * stride] - (double)ref[j];
            num += dlt * dlt;
            den += (double)ref[j] * ref[j];
        }
        if (sqrt(num / den) > 1e-4) {
            print_error("%s tensor %d: relative L2 distance %.3g\n", name, i, sqrt(num / den));
            fail();
        }
    }
    for (int i = 0; i < 10; i++) free(t[i]);
    free(gw);
    free(gb);
    free(x);
    ae_model_destroy(m);
    fixture_free(&fx);
}

static void test_parity_mlp_bce_sum(void **state) {
    (void)state;
    run_parity("vae_mlp_bce_sum");
}

static void test_parity_small_mse_mean(void **state) {
    (void)state;
    run_parity("vae_small_mse_mean");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builder),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_stacking),
        cmocka_unit_test(test_fit),
        cmocka_unit_test(test_not_a_vae),
        cmocka_unit_test(test_gradient_dense),
        cmocka_unit_test(test_gradient_conv),
        cmocka_unit_test(test_conv_trains),
        cmocka_unit_test(test_sampled_z_statistics),
        cmocka_unit_test(test_no_allocation_after_first_step),
        cmocka_unit_test(test_sample_and_interpolate),
        cmocka_unit_test(test_encode_and_terms),
        cmocka_unit_test(test_neg_elbo),
        cmocka_unit_test(test_fixed_eps_and_failures),
        cmocka_unit_test(test_out_of_memory),
        cmocka_unit_test(test_parity_mlp_bce_sum),
        cmocka_unit_test(test_parity_small_mse_mean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
