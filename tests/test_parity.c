/*
 * PyTorch parity of dense autoencoders, through the public API only.
 *
 * Each case loads PyTorch's initial parameters into a libae model, trains it
 * on the same 5 batches and compares every loss and the parameters after each
 * stored step with PyTorch 1.13's. The fixtures and their format are
 * described in tests/fixtures/README.md (tests/fixtures/gen_dense_parity.py
 * writes them).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <libae/ae.h>

/* Loss: relative error. Parameters: per tensor ||w - w_ref|| / ||w_ref||. */
#define LOSS_TOL 1e-4
#define PARAM_TOL 1e-4
/* Per tensor ||w - w_ref|| / ||w_ref - w_init||: the error relative to what
 * the steps changed. The small SGD model moves its weights by only 0.4% in
 * its first step, so the check above alone would let an update that is a few
 * percent wrong pass. A float64 replay of the cases stays within 1.1e-5. */
#define UPDATE_TOL 1e-3

#define MAX_LAYERS 4

#include "fixture.h"
#include "test_util.h" /* the backend the tests run on */

/* ---- cases ---- */

typedef struct parity_case {
    const char *file;
    size_t layers;                    /* dense layers */
    size_t sizes[MAX_LAYERS + 1];     /* widths d0..dL */
    ae_activation act[MAX_LAYERS];    /* activation of each layer */
    size_t encoder_layers;            /* layers before the code */
    int mirror;                       /* build the decoder with ae_config_mirror_decoder */
    size_t batch, steps;
    ae_loss loss;
    ae_optimizer opt;
    double lr, momentum, weight_decay;
    int nesterov;
} parity_case;

static const parity_case case_mlp_adam = {
    .file = "dense_mlp_adam",
    .layers = 4,
    .sizes = {784, 256, 32, 256, 784},
    .act = {AE_ACT_RELU, AE_ACT_IDENTITY, AE_ACT_RELU, AE_ACT_SIGMOID},
    .encoder_layers = 2,
    .batch = 16,
    .steps = 5,
    .loss = AE_LOSS_MSE,
    .opt = AE_OPT_ADAM,
    .lr = 1e-3,
};

static const parity_case case_small_sgd = {
    .file = "dense_small_sgd",
    .layers = 2,
    .sizes = {20, 8, 20},
    .act = {AE_ACT_TANH, AE_ACT_SIGMOID},
    .encoder_layers = 1,
    .batch = 8,
    .steps = 5,
    .loss = AE_LOSS_BCE,
    .opt = AE_OPT_SGD,
    .lr = 0.1,
    .momentum = 0.9,
    .nesterov = 1,
    .weight_decay = 1e-3,
};

static const parity_case case_small_adamw = {
    .file = "dense_small_adamw",
    .layers = 2,
    .sizes = {20, 8, 20},
    .act = {AE_ACT_TANH, AE_ACT_SIGMOID},
    .encoder_layers = 1,
    .batch = 8,
    .steps = 5,
    .loss = AE_LOSS_BCE,
    .opt = AE_OPT_ADAMW,
    .lr = 1e-2,
    .weight_decay = 1e-2,
};

/* Everything a test allocates, so the teardown frees it even after a failed
 * assertion. */
typedef struct state {
    fixture fx;
    ae_config *cfg;
    ae_model *m;
    float *buf;
} state;

static int setup(void **st) {
    state *s = calloc(1, sizeof *s);
    if (!s) return -1;
    *st = s;
    return 0;
}

static int teardown(void **st) {
    state *s = *st;
    if (s) {
        fixture_free(&s->fx);
        ae_model_destroy(s->m);
        ae_config_destroy(s->cfg);
        free(s->buf);
        free(s);
    }
    return 0;
}

#define CFG_OK(cfg, call)                                                                         \
    do {                                                                                          \
        ae_status st_ = (call);                                                                   \
        if (st_ != AE_OK)                                                                         \
            fail_msg("%s: %s: %s", #call, ae_status_name(st_), ae_config_last_error(cfg));        \
    } while (0)

#define MODEL_OK(m, call)                                                                         \
    do {                                                                                          \
        ae_status st_ = (call);                                                                   \
        if (st_ != AE_OK)                                                                         \
            fail_msg("%s: %s: %s", #call, ae_status_name(st_), ae_model_last_error(m));           \
    } while (0)

/* Index of the arrays of the fixture (see tests/fixtures/README.md). */
static size_t ix_init(size_t layer, int bias) { return 1 + 2 * layer + (size_t)bias; }
static size_t ix_batch(const parity_case *c, size_t step) { return 1 + 2 * c->layers + step; }
static size_t ix_losses(const parity_case *c) { return 1 + 2 * c->layers + c->steps; }
static size_t ix_stored(const parity_case *c, size_t k, size_t layer, int bias) {
    return ix_losses(c) + 1 + 2 * c->layers * k + 2 * layer + (size_t)bias;
}

static size_t meta_int(const fixture *fx, size_t i) {
    if (i >= fx->count[0]) fail_msg("fixture meta array too short");
    float v = fx->array[0][i];
    if (!(v >= 0.0f && v <= 16777216.0f && v == floorf(v)))
        fail_msg("fixture meta[%zu] = %g is not a count", i, (double)v);
    return (size_t)v;
}

/* Checks that the fixture holds what the case expects; returns the number of
 * stored steps and their step numbers (1-based) in stored[]. */
static size_t check_fixture(const fixture *fx, const parity_case *c, size_t *stored,
                            size_t max_stored) {
    size_t L = c->layers;
    if (meta_int(fx, 0) != c->batch || meta_int(fx, 1) != c->steps || meta_int(fx, 2) != L)
        fail_msg("%s: batch/steps/layers in the fixture differ from the test's", c->file);
    for (size_t l = 0; l <= L; l++)
        if (meta_int(fx, 3 + l) != c->sizes[l])
            fail_msg("%s: width %zu is %zu in the fixture, %zu in the test", c->file, l,
                     meta_int(fx, 3 + l), c->sizes[l]);
    size_t k = meta_int(fx, 4 + L);
    if (k == 0 || k > max_stored || fx->count[0] != 5 + L + k)
        fail_msg("%s: bad stored-step list", c->file);
    for (size_t i = 0; i < k; i++) {
        stored[i] = meta_int(fx, 5 + L + i);
        if (stored[i] < 1 || stored[i] > c->steps || (i > 0 && stored[i] <= stored[i - 1]))
            fail_msg("%s: bad stored step %zu", c->file, stored[i]);
    }
    if (fx->n != 2 + 2 * L + c->steps + 2 * L * k)
        fail_msg("%s: %zu arrays, expected %zu", c->file, fx->n, 2 + 2 * L + c->steps + 2 * L * k);
    for (size_t l = 0; l < L; l++) {
        size_t wc = c->sizes[l + 1] * c->sizes[l], bc = c->sizes[l + 1];
        assert_int_equal(fx->count[ix_init(l, 0)], wc);
        assert_int_equal(fx->count[ix_init(l, 1)], bc);
        for (size_t i = 0; i < k; i++) {
            assert_int_equal(fx->count[ix_stored(c, i, l, 0)], wc);
            assert_int_equal(fx->count[ix_stored(c, i, l, 1)], bc);
        }
    }
    for (size_t s = 0; s < c->steps; s++)
        assert_int_equal(fx->count[ix_batch(c, s)], c->batch * c->sizes[0]);
    assert_int_equal(fx->count[ix_losses(c)], c->steps);
    return k;
}

static void build_model(state *s, const parity_case *c) {
    CFG_OK(NULL, ae_config_create(&s->cfg, NULL));
    ae_config *cfg = s->cfg;
    CFG_OK(cfg, ae_config_set_input_size(cfg, c->sizes[0]));
    for (size_t l = 0; l < c->encoder_layers; l++)
        CFG_OK(cfg, ae_config_add_dense(cfg, c->sizes[l + 1], c->act[l]));
    if (c->mirror) {
        CFG_OK(cfg, ae_config_mirror_decoder(cfg, c->act[c->layers - 1]));
    } else {
        CFG_OK(cfg, ae_config_mark_code(cfg));
        for (size_t l = c->encoder_layers; l < c->layers; l++)
            CFG_OK(cfg, ae_config_add_dense(cfg, c->sizes[l + 1], c->act[l]));
    }
    CFG_OK(cfg, ae_config_set_int(cfg, AE_P_LOSS, c->loss));
    CFG_OK(cfg, ae_config_set_int(cfg, AE_P_REDUCTION, AE_REDUCE_MEAN));
    CFG_OK(cfg, ae_config_set_int(cfg, AE_P_OPTIMIZER, c->opt));
    CFG_OK(cfg, ae_config_set_int(cfg, AE_P_SEED, 12345));
    CFG_OK(cfg, ae_config_set_float(cfg, AE_P_LEARNING_RATE, c->lr));
    if (c->opt == AE_OPT_SGD) {
        CFG_OK(cfg, ae_config_set_float(cfg, AE_P_MOMENTUM, c->momentum));
        CFG_OK(cfg, ae_config_set_int(cfg, AE_P_NESTEROV, c->nesterov));
    }
    CFG_OK(cfg, ae_config_set_float(cfg, AE_P_WEIGHT_DECAY, c->weight_decay));
    CFG_OK(cfg, ae_model_create(&s->m, cfg));
    assert_non_null(s->m);
}

/* The model's shapes and parameter count against the case and PyTorch's
 * (the fixture's initial arrays are exactly model.parameters()). */
static void check_shapes(const state *s, const parity_case *c) {
    const ae_model *m = s->m;
    assert_int_equal(ae_model_layer_count(m), c->layers);
    assert_int_equal(ae_model_code_layer(m), c->encoder_layers);
    assert_int_equal(ae_model_input_size(m), c->sizes[0]);
    assert_int_equal(ae_model_output_size(m), c->sizes[c->layers]);
    assert_int_equal(ae_model_code_size(m), c->sizes[c->encoder_layers]);
    size_t torch_params = 0;
    for (size_t l = 0; l < c->layers; l++) {
        ae_layer_info info;
        memset(&info, 0, sizeof info);
        info.struct_size = sizeof info;
        MODEL_OK(m, ae_model_layer_info(m, l, &info));
        assert_int_equal(info.kind, AE_LAYER_DENSE);
        assert_int_equal(info.activation, c->act[l]);
        assert_int_equal(info.in_size, c->sizes[l]);
        assert_int_equal(info.out_size, c->sizes[l + 1]);
        assert_int_equal(info.weight_count, s->fx.count[ix_init(l, 0)]);
        assert_int_equal(info.bias_count, s->fx.count[ix_init(l, 1)]);
        torch_params += s->fx.count[ix_init(l, 0)] + s->fx.count[ix_init(l, 1)];
    }
    assert_int_equal(ae_model_param_count(m), torch_params);
    assert_int_equal(ae_model_step_count(m), 0);
}

/* Compares one tensor; prints and returns 1 when it is off. */
static int compare_tensor(const parity_case *c, size_t step, size_t layer, int bias,
                          const float *got, const float *ref, const float *init, size_t n) {
    double err2 = 0, ref2 = 0, moved2 = 0, max_abs = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - (double)ref[i];
        double mv = (double)ref[i] - (double)init[i];
        err2 += d * d;
        ref2 += (double)ref[i] * ref[i];
        moved2 += mv * mv;
        /* The first NaN is the worst error. */
        if (isnan(max_abs)) continue;
        if (isnan(d) || fabs(d) > max_abs) {
            max_abs = fabs(d);
            worst = i;
        }
    }
    double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    double rel_update = moved2 > 0 ? sqrt(err2 / moved2) : 0.0;
    if (rel <= PARAM_TOL && rel_update <= UPDATE_TOL) return 0;
    print_error("%s step %zu layer %zu %s: rel L2 error %.3g (tol %g), relative to the update "
                "%.3g (tol %g), max abs error %.3g at [%zu]: libae %.9g, PyTorch %.9g "
                "(initial %.9g)\n",
                c->file, step, layer, bias ? "bias" : "weight", rel, PARAM_TOL, rel_update,
                UPDATE_TOL, max_abs, worst, (double)got[worst], (double)ref[worst],
                (double)init[worst]);
    return 1;
}

static void run_case(void **st, const parity_case *c) {
    state *s = *st;
    if (fixture_load(&s->fx, c->file) != 0) fail_msg("cannot load fixture %s", c->file);
    const fixture *fx = &s->fx;
    size_t stored[16];
    size_t nstored = check_fixture(fx, c, stored, 16);

    build_model(s, c);
    check_shapes(s, c);
    ae_model *m = s->m;

    size_t maxw = 0;
    for (size_t l = 0; l < c->layers; l++)
        if (fx->count[ix_init(l, 0)] > maxw) maxw = fx->count[ix_init(l, 0)];
    s->buf = malloc(maxw * sizeof(float));
    assert_non_null(s->buf);

    for (size_t l = 0; l < c->layers; l++) {
        MODEL_OK(m, ae_model_set_weights(m, l, fx->array[ix_init(l, 0)], fx->count[ix_init(l, 0)]));
        MODEL_OK(m, ae_model_set_bias(m, l, fx->array[ix_init(l, 1)], fx->count[ix_init(l, 1)]));
    }

    const float *ref_loss = fx->array[ix_losses(c)];
    size_t k = 0;
    int bad = 0;
    for (size_t step = 1; step <= c->steps; step++) {
        float loss = NAN;
        MODEL_OK(m, ae_train_step(m, fx->array[ix_batch(c, step - 1)], NULL, c->batch, &loss));
        double want = ref_loss[step - 1];
        if (!(fabs((double)loss - want) <= LOSS_TOL * fabs(want))) {
            print_error("%s step %zu: loss %.9g, PyTorch %.9g (rel error %.3g, tol %g)\n", c->file,
                        step, (double)loss, want, fabs((double)loss - want) / fabs(want),
                        LOSS_TOL);
            bad = 1;
        }
        if (k < nstored && stored[k] == step) {
            for (size_t l = 0; l < c->layers; l++) {
                for (int b = 0; b < 2; b++) {
                    size_t n = fx->count[ix_init(l, b)];
                    if (b)
                        MODEL_OK(m, ae_model_get_bias(m, l, s->buf, n));
                    else
                        MODEL_OK(m, ae_model_get_weights(m, l, s->buf, n));
                    bad |= compare_tensor(c, step, l, b, s->buf, fx->array[ix_stored(c, k, l, b)],
                                          fx->array[ix_init(l, b)], n);
                }
            }
            k++;
        }
        /* Report every mismatch of the first bad step: later steps only
         * inherit its error. */
        if (bad) fail_msg("%s: step %zu differs from PyTorch (details above)", c->file, step);
    }
    assert_int_equal(k, nstored);
    assert_int_equal(ae_model_step_count(m), c->steps);
}

static void test_mlp_adam(void **st) { run_case(st, &case_mlp_adam); }

/* The same model with the decoder from ae_config_mirror_decoder: 32-256 gets
 * the ReLU of the encoder's 256-wide layer, the output layer the sigmoid. */
static void test_mlp_adam_mirrored(void **st) {
    parity_case c = case_mlp_adam;
    c.mirror = 1;
    run_case(st, &c);
}

static void test_small_sgd_nesterov(void **st) { run_case(st, &case_small_sgd); }

static void test_small_adamw(void **st) { run_case(st, &case_small_adamw); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_mlp_adam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mlp_adam_mirrored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_sgd_nesterov, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_adamw, setup, teardown),
    };
    return cmocka_run_group_tests_name("parity", tests, NULL, NULL);
}
