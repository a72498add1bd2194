/* Tests of src/model through the public API: builder, creation, training,
 * refusal of bad input (and that nothing changes), allocation failures,
 * determinism, threads, whole-model gradients by finite differences, and
 * the gradient-reduce hook (against the gradient arena, white-box). */
#include <pthread.h>
#include <unistd.h>

#include <libae/hook.h>

#include "model/model.h"
#include "test_util.h"

#define OK(call) assert_int_equal((call), AE_OK)

/* in-h-code-h-in dense model; the decoder mirrors the encoder. */
static ae_model *make_model(const ae_allocator *alloc, size_t in, size_t h, size_t code,
                            ae_activation hidden, ae_activation out_act, ae_loss loss,
                            ae_optimizer opt, int64_t seed) {
    ae_config *c = NULL;
    if (ae_config_create(&c, alloc) != AE_OK) return NULL;
    ae_model *m = NULL;
    if (ae_config_set_input_size(c, in) == AE_OK && ae_config_add_dense(c, h, hidden) == AE_OK &&
        ae_config_add_dense(c, code, AE_ACT_IDENTITY) == AE_OK &&
        ae_config_mirror_decoder(c, out_act) == AE_OK &&
        ae_config_set_int(c, AE_P_LOSS, loss) == AE_OK &&
        ae_config_set_int(c, AE_P_OPTIMIZER, opt) == AE_OK &&
        ae_config_set_int(c, AE_P_SEED, seed) == AE_OK)
        ae_model_create(&m, c);
    ae_config_destroy(c);
    return m;
}

/* All parameters of a model, concatenated; caller frees. */
static float *snapshot(const ae_model *m, size_t *n_out) {
    size_t total = 0;
    ae_layer_info info = {.struct_size = sizeof info};
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        OK(ae_model_layer_info(m, l, &info));
        total += info.weight_count + info.bias_count;
    }
    float *p = malloc(total * sizeof *p), *q = p;
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        OK(ae_model_layer_info(m, l, &info));
        OK(ae_model_get_weights(m, l, q, info.weight_count));
        q += info.weight_count;
        if (info.bias_count) OK(ae_model_get_bias(m, l, q, info.bias_count));
        q += info.bias_count;
    }
    *n_out = total;
    return p;
}

static void assert_unchanged(const ae_model *m, const float *before, size_t n) {
    size_t n2;
    float *now = snapshot(m, &n2);
    assert_int_equal(n, n2);
    assert_memory_equal(now, before, n * sizeof(float));
    free(now);
}

static void test_shapes_and_counts(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, 784, 256, 32, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE,
                             AE_OPT_ADAM, 1);
    assert_non_null(m);
    assert_int_equal(ae_model_input_size(m), 784);
    assert_int_equal(ae_model_output_size(m), 784);
    assert_int_equal(ae_model_code_size(m), 32);
    assert_int_equal(ae_model_layer_count(m), 4);
    assert_int_equal(ae_model_code_layer(m), 2);
    assert_int_equal(ae_model_param_count(m), 419120); /* PyTorch's count for this model */
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, 2, &info));
    assert_int_equal(info.kind, AE_LAYER_DENSE);
    assert_int_equal(info.activation, AE_ACT_RELU);
    assert_int_equal(info.in_size, 32);
    assert_int_equal(info.out_size, 256);
    assert_int_equal(info.weight_count, 32 * 256);
    OK(ae_model_layer_info(m, 3, &info));
    assert_int_equal(info.activation, AE_ACT_SIGMOID);
    assert_int_equal(ae_model_layer_info(m, 4, &info), AE_ERR_RANGE);
    info.struct_size = 4;
    assert_int_equal(ae_model_layer_info(m, 0, &info), AE_ERR_INVALID_ARG);
    /* Initialisation: U(-1/√in, 1/√in) for W and b, as nn.Linear. */
    float *w = malloc(784 * 256 * sizeof *w);
    OK(ae_model_get_weights(m, 0, w, 784 * 256));
    float bound = 1.0f / sqrtf(784.0f), mx = 0;
    double mean = 0;
    for (int i = 0; i < 784 * 256; i++) {
        assert_true(fabsf(w[i]) <= bound);
        mx = fmaxf(mx, fabsf(w[i]));
        mean += w[i];
    }
    assert_true(mx > 0.99f * bound);
    assert_true(fabs(mean / (784 * 256)) < 1e-3);
    free(w);
    assert_int_equal(ae_model_input_size(NULL), 0);
    assert_int_equal(ae_model_param_count(NULL), 0);
    assert_string_equal(ae_model_last_error(NULL), "model is NULL");
    ae_model_destroy(m);
    ae_model_destroy(NULL);
}

static void test_builder_explicit_decoder_and_bias(void **state) {
    (void)state;
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 10));
    OK(ae_config_add_dense(c, 6, AE_ACT_LEAKY_RELU));
    OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2));
    OK(ae_config_layer_set_int(c, 0, AE_LAYER_BIAS, 0));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 10, AE_ACT_IDENTITY));
    ae_model *m;
    OK(ae_model_create(&m, c));
    assert_int_equal(ae_model_param_count(m), 60 + 60 + 10);
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, 0, &info));
    assert_int_equal(info.bias_count, 0);
    float b[6];
    assert_int_equal(ae_model_get_bias(m, 0, b, 6), AE_ERR_SHAPE);
    OK(ae_model_get_bias(m, 0, b, 0));
    float x[20];
    test_fill(x, 20, 3, 0, 1);
    float l0, l1;
    OK(ae_train_step(m, x, NULL, 2, &l0));
    for (int i = 0; i < 50; i++) OK(ae_train_step(m, x, NULL, 2, &l1));
    assert_true(l1 < l0);
    ae_model_destroy(m);
    ae_config_destroy(c);
}

static void test_config_errors(void **state) {
    (void)state;
    assert_int_equal(ae_config_create(NULL, NULL), AE_ERR_INVALID_ARG);
    ae_allocator bad = {1, NULL, NULL, NULL};
    ae_config *c = (ae_config *)1;
    assert_int_equal(ae_config_create(&c, &bad), AE_ERR_INVALID_ARG);
    assert_null(c);
    OK(ae_config_create(&c, NULL));
    assert_string_equal(ae_config_last_error(c), "");
    assert_int_equal(ae_config_add_dense(c, 4, AE_ACT_RELU), AE_ERR_STATE);
    assert_int_equal(ae_config_set_input_size(c, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_input_size(c, (size_t)1 << 30), AE_ERR_RANGE);
    assert_int_equal(ae_config_mark_code(c), AE_ERR_STATE);
    assert_int_equal(ae_config_mirror_decoder(c, AE_ACT_SIGMOID), AE_ERR_STATE);
    OK(ae_config_set_input_size(c, 8));
    assert_int_equal(ae_config_add_dense(c, 0, AE_ACT_RELU), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_dense(c, 4, (ae_activation)99), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0), AE_ERR_STATE);
    OK(ae_config_add_dense(c, 4, AE_ACT_RELU));
    assert_int_equal(ae_config_set_input_size(c, 9), AE_ERR_STATE);
    assert_int_equal(ae_config_layer_set_int(c, 3, AE_LAYER_BIAS, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_layer_set_int(c, 0, AE_LAYER_BIAS, 2), AE_ERR_RANGE);
    assert_int_equal(ae_config_layer_set_int(c, 0, AE_LAYER_LEAKY_SLOPE, 2), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_layer_set_float(c, 0, AE_LAYER_LEAKY_SLOPE, -1.0), AE_ERR_RANGE);
    assert_int_equal(ae_config_layer_set_float(c, 0, AE_LAYER_LEAKY_SLOPE, NAN), AE_ERR_RANGE);
    /* Settings: wrong type, out of range (the message names the setting and its range). */
    assert_int_equal(ae_config_set_int(c, AE_P_LEARNING_RATE, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_set_float(c, AE_P_LEARNING_RATE, -0.1), AE_ERR_RANGE);
    assert_non_null(strstr(ae_config_last_error(c), "AE_P_LEARNING_RATE"));
    assert_non_null(strstr(ae_config_last_error(c), "[0, 1e+06]"));
    assert_int_equal(ae_config_set_float(c, AE_P_LEARNING_RATE, NAN), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_float(c, AE_P_BETA2, 1.0), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_float(c, AE_P_EPSILON, 0.0), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_int(c, AE_P_OPTIMIZER, 7), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_int(c, (ae_param)999, 1), AE_ERR_INVALID_ARG);
    int64_t iv;
    double fv;
    OK(ae_config_get_float(c, AE_P_LEARNING_RATE, &fv));
    assert_true(fv == 1e-3); /* unchanged by the refused calls */
    OK(ae_config_get_int(c, AE_P_OPTIMIZER, &iv));
    assert_int_equal(iv, AE_OPT_ADAM);
    int is_int, ch;
    double lo, hi;
    OK(ae_param_bounds(AE_P_MOMENTUM, &is_int, &lo, &hi, &ch));
    assert_int_equal(is_int, 0);
    assert_true(lo == 0 && hi == 1 && ch == 1);
    assert_int_equal(ae_param_bounds((ae_param)0, NULL, NULL, NULL, NULL), AE_ERR_INVALID_ARG);
    /* Creation refuses incomplete or inconsistent architectures. */
    ae_model *m = (ae_model *)1;
    assert_int_equal(ae_model_create(&m, c), AE_ERR_STATE); /* no code */
    assert_null(m);
    OK(ae_config_mark_code(c));
    assert_int_equal(ae_config_mark_code(c), AE_ERR_STATE);
    assert_int_equal(ae_model_create(&m, c), AE_ERR_STATE); /* empty decoder */
    OK(ae_config_add_dense(c, 7, AE_ACT_SIGMOID));
    assert_int_equal(ae_model_create(&m, c), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_config_last_error(c), "7"));
    ae_config_destroy(c);

    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 8));
    OK(ae_config_add_dense(c, 4, AE_ACT_RELU));
    OK(ae_config_mirror_decoder(c, AE_ACT_IDENTITY));
    assert_int_equal(ae_config_mirror_decoder(c, AE_ACT_IDENTITY), AE_ERR_STATE);
    assert_int_equal(ae_config_add_dense(c, 4, AE_ACT_RELU), AE_ERR_STATE);
    OK(ae_config_set_int(c, AE_P_LOSS, AE_LOSS_BCE));
    assert_int_equal(ae_model_create(&m, c), AE_ERR_STATE); /* BCE needs a sigmoid output */
    assert_non_null(strstr(ae_config_last_error(c), "sigmoid"));
    assert_int_equal(ae_model_create(NULL, c), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_create(&m, NULL), AE_ERR_INVALID_ARG);
    ae_config_destroy(c);
    ae_config_destroy(NULL);
    assert_int_equal(ae_config_set_input_size(NULL, 3), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_dense(NULL, 3, AE_ACT_RELU), AE_ERR_INVALID_ARG);
}

static void test_mirror_architecture(void **state) {
    (void)state;
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 30));
    OK(ae_config_add_dense(c, 20, AE_ACT_TANH));
    OK(ae_config_add_dense(c, 10, AE_ACT_ELU));
    OK(ae_config_layer_set_int(c, 1, AE_LAYER_BIAS, 0));
    OK(ae_config_add_dense(c, 5, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    ae_model *m;
    OK(ae_model_create(&m, c));
    const size_t outs[6] = {20, 10, 5, 10, 20, 30};
    const ae_activation acts[6] = {AE_ACT_TANH, AE_ACT_ELU, AE_ACT_IDENTITY,
                                   AE_ACT_ELU,  AE_ACT_TANH, AE_ACT_SIGMOID};
    const size_t bias[6] = {20, 0, 5, 10, 0, 30}; /* decoder layer 4 mirrors encoder layer 1 */
    for (size_t l = 0; l < 6; l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        assert_int_equal(info.out_size, outs[l]);
        assert_int_equal(info.activation, acts[l]);
        assert_int_equal(info.bias_count, bias[l]);
    }
    assert_int_equal(ae_model_code_layer(m), 3);
    ae_model_destroy(m);
    ae_config_destroy(c);
}

static void test_step_refuses_bad_input_and_changes_nothing(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, 12, 8, 3, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, 3);
    float x[4 * 12], t[4 * 12], loss;
    test_fill(x, 48, 1, 0, 1);
    memcpy(t, x, sizeof t);
    OK(ae_train_step(m, x, NULL, 4, &loss));
    size_t n;
    float *before = snapshot(m, &n);
    uint64_t steps = ae_model_step_count(m);
    assert_int_equal(ae_train_step(m, NULL, NULL, 4, &loss), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_train_step(m, x, NULL, 0, &loss), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "batch"));
    assert_int_equal(ae_train_step(m, x, NULL, (size_t)1 << 25, &loss), AE_ERR_RANGE);
    x[17] = NAN;
    assert_int_equal(ae_train_step(m, x, NULL, 4, &loss), AE_ERR_NUMERIC);
    assert_non_null(strstr(ae_model_last_error(m), "element 17"));
    x[17] = 0.5f;
    t[3] = INFINITY;
    assert_int_equal(ae_train_step(m, x, t, 4, &loss), AE_ERR_NUMERIC);
    assert_int_equal(ae_evaluate(m, x, t, 4, &loss), AE_ERR_NUMERIC);
    assert_int_equal(ae_train_step(NULL, x, NULL, 4, &loss), AE_ERR_INVALID_ARG);
    assert_unchanged(m, before, n);
    assert_int_equal(ae_model_step_count(m), steps);
    /* Changing a fixed setting after creation is refused; changeable ones work. */
    assert_int_equal(ae_model_set_int(m, AE_P_OPTIMIZER, AE_OPT_SGD), AE_ERR_STATE);
    assert_int_equal(ae_model_set_int(m, AE_P_LOSS, AE_LOSS_BCE), AE_ERR_STATE);
    assert_int_equal(ae_model_set_float(m, AE_P_LEARNING_RATE, -1), AE_ERR_RANGE);
    OK(ae_model_set_float(m, AE_P_LEARNING_RATE, 0.0));
    OK(ae_train_step(m, x, NULL, 4, &loss)); /* lr 0: nothing moves */
    assert_unchanged(m, before, n);
    double lr;
    OK(ae_model_get_float(m, AE_P_LEARNING_RATE, &lr));
    assert_true(lr == 0.0);
    /* Weight access: wrong count, NULL, NaN are refused and write nothing. */
    float w[96];
    assert_int_equal(ae_model_get_weights(m, 0, w, 95), AE_ERR_SHAPE);
    assert_int_equal(ae_model_get_weights(m, 9, w, 96), AE_ERR_RANGE);
    assert_int_equal(ae_model_set_weights(m, 0, NULL, 96), AE_ERR_INVALID_ARG);
    OK(ae_model_get_weights(m, 0, w, 96));
    w[5] = NAN;
    assert_int_equal(ae_model_set_weights(m, 0, w, 96), AE_ERR_NUMERIC);
    assert_unchanged(m, before, n);
    free(before);
    ae_model_destroy(m);
}

static void test_nonfinite_loss_changes_nothing(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, 6, 4, 2, AE_ACT_IDENTITY, AE_ACT_IDENTITY, AE_LOSS_MSE,
                             AE_OPT_SGD, 5);
    /* Huge but finite weights overflow the forward pass to infinity. */
    float w[24];
    for (int i = 0; i < 24; i++) w[i] = 1e20f;
    OK(ae_model_set_weights(m, 0, w, 24));
    OK(ae_model_set_weights(m, 3, w, 24));
    size_t n;
    float *before = snapshot(m, &n), x[12], loss = 7.0f;
    test_fill(x, 12, 2, 1, 2);
    assert_int_equal(ae_train_step(m, x, NULL, 2, &loss), AE_ERR_NUMERIC);
    assert_true(loss == 7.0f);
    assert_non_null(strstr(ae_model_last_error(m), "not finite"));
    assert_unchanged(m, before, n);
    assert_int_equal(ae_model_step_count(m), 0);
    free(before);
    ae_model_destroy(m);
}

/* A loss finite in double but beyond float's range is infinite to the
 * caller, who receives a float: refused as a non-finite loss. */
static void test_loss_overflowing_float_refused(void **state) {
    (void)state;
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 4));
    OK(ae_config_add_dense(c, 2, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 4, AE_ACT_IDENTITY));
    OK(ae_config_set_int(c, AE_P_REDUCTION, AE_REDUCE_SUM));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    /* Each output is 1.5e19 against a target of 0: four squared errors of
     * 2.25e38 (each a float) sum to 9e38. */
    float w[8] = {0}, b[4] = {1.5e19f, 1.5e19f, 1.5e19f, 1.5e19f}, x[4] = {0}, loss = 7.0f;
    OK(ae_model_set_weights(m, 1, w, 8));
    OK(ae_model_set_bias(m, 1, b, 4));
    assert_int_equal(ae_evaluate(m, x, NULL, 1, &loss), AE_ERR_NUMERIC);
    assert_true(loss == 7.0f);
    assert_non_null(strstr(ae_model_last_error(m), "not finite"));
    double v;
    assert_int_equal(ae_model_get_stat(m, AE_STAT_LOSS, &v), AE_ERR_STATE);
    assert_int_equal(ae_train_step(m, x, NULL, 1, &loss), AE_ERR_NUMERIC);
    assert_true(loss == 7.0f);
    assert_int_equal(ae_model_step_count(m), 0);
    ae_model_destroy(m);
}

/* Builds a model, trains two batch sizes (the second larger, so the workspace
 * grows), encodes and decodes; returns the first failing status. */
static ae_status alloc_walk_once(test_alloc *t) {
    ae_allocator a = test_allocator(t);
    ae_config *c = NULL;
    ae_model *m = NULL;
    float x[8 * 10], code[8 * 6], out[8 * 10], loss;
    test_fill(x, 80, 4, 0, 1);
    ae_status st = ae_config_create(&c, &a);
    if (!st) st = ae_config_set_input_size(c, 10);
    if (!st) st = ae_config_add_dense(c, 6, AE_ACT_RELU);
    if (!st) st = ae_config_add_dense(c, 3, AE_ACT_IDENTITY);
    if (!st) st = ae_config_add_dense(c, 6, AE_ACT_RELU);
    if (!st) st = ae_config_mark_code(c);
    if (!st) st = ae_config_add_dense(c, 5, AE_ACT_TANH);
    if (!st) st = ae_config_add_dense(c, 10, AE_ACT_SIGMOID);
    if (!st) st = ae_model_create(&m, c);
    size_t n = 0;
    float *before = NULL;
    if (!st) st = ae_train_step(m, x, NULL, 4, &loss);
    if (!st) {
        before = snapshot(m, &n);
        st = ae_train_step(m, x, NULL, 8, &loss);
        if (st) { /* a failed step leaves the model as it was, and usable */
            assert_unchanged(m, before, n);
            assert_int_equal(ae_model_step_count(m), 1);
            OK(ae_train_step(m, x, NULL, 4, &loss));
        }
    }
    if (!st) st = ae_encode(m, x, 8, code);
    if (!st) st = ae_decode(m, code, 8, out);
    free(before);
    ae_model_destroy(m);
    ae_config_destroy(c);
    return st;
}

static void test_failing_allocator_every_index(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    assert_int_equal(alloc_walk_once(&t), AE_OK);
    long total = t.count;
    assert_true(total > 5);
    for (long k = 0; k < total; k++) {
        test_alloc f = {0, 0, k};
        ae_status st = alloc_walk_once(&f);
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_int_equal(f.live, 0); /* nothing leaked */
    }
}

/* ---- inference reads packed parameters (plan.c): every write refreshes them ---- */

enum { PK_IN = 20, PK_H = 12, PK_CODE = 4, PK_B = 8 };

/* m's encode and reconstruct at batch PK_B against those of a fresh model
 * given m's parameters through the setters: bitwise equal, so that no
 * inference pass of m read parameters packed before a write. */
static void check_as_fresh(ae_model *m, const float *x) {
    ae_model *f = make_model(NULL, PK_IN, PK_H, PK_CODE, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE,
                             AE_OPT_ADAM, 99);
    assert_non_null(f);
    size_t n;
    float *p = snapshot(m, &n), *q = p;
    ae_layer_info info = {.struct_size = sizeof info};
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        OK(ae_model_layer_info(m, l, &info));
        OK(ae_model_set_weights(f, l, q, info.weight_count));
        q += info.weight_count;
        OK(ae_model_set_bias(f, l, q, info.bias_count));
        q += info.bias_count;
    }
    float c1[PK_B * PK_CODE], c2[PK_B * PK_CODE], r1[PK_B * PK_IN], r2[PK_B * PK_IN];
    OK(ae_encode(m, x, PK_B, c1));
    OK(ae_encode(f, x, PK_B, c2));
    assert_memory_equal(c1, c2, sizeof c1);
    OK(ae_reconstruct(m, x, PK_B, r1));
    OK(ae_reconstruct(f, x, PK_B, r2));
    assert_memory_equal(r1, r2, sizeof r1);
    free(p);
    ae_model_destroy(f);
}

static ae_status scale_params(void *ctx, ae_state_part part, void *data, size_t bytes) {
    (void)ctx;
    if (part == AE_STATE_PARAMS)
        for (size_t i = 0; i < bytes / sizeof(float); i++) ((float *)data)[i] *= 0.5f;
    return AE_OK;
}

static void test_inference_after_every_write(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, PK_IN, PK_H, PK_CODE, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE,
                             AE_OPT_ADAM, 5);
    assert_non_null(m);
    float x[PK_B * PK_IN], code[PK_B * PK_CODE], loss;
    test_fill(x, PK_B * PK_IN, 77, 0, 1);
    check_as_fresh(m, x); /* packs at the first inference */
    OK(ae_encode(m, x, PK_B, code)); /* and again unchanged */
    check_as_fresh(m, x);
    float w[PK_H * PK_IN], b[PK_H];
    OK(ae_model_get_weights(m, 0, w, PK_H * PK_IN));
    w[3] += 0.25f;
    OK(ae_model_set_weights(m, 0, w, PK_H * PK_IN));
    check_as_fresh(m, x);
    OK(ae_model_get_bias(m, 0, b, PK_H));
    b[1] -= 0.25f;
    OK(ae_model_set_bias(m, 0, b, PK_H));
    check_as_fresh(m, x);
    OK(ae_train_step(m, x, NULL, PK_B, &loss));
    check_as_fresh(m, x);
    OK(ae_evaluate(m, x, NULL, PK_B, &loss));
    OK(ae_train_step(m, x, NULL, PK_B, &loss));
    check_as_fresh(m, x);
    OK(ae_model_visit_state(m, scale_params, NULL));
    check_as_fresh(m, x);
    OK(ae_model_tie(m));
    check_as_fresh(m, x);
    OK(ae_model_untie(m)); /* the decoder's own weight is rewritten */
    check_as_fresh(m, x);
    OK(ae_model_tie(m));
    OK(ae_train_step(m, x, NULL, PK_B, &loss));
    check_as_fresh(m, x);
    OK(ae_model_untie(m));
    check_as_fresh(m, x);
    ae_model *src = make_model(NULL, PK_IN, PK_H, PK_CODE, AE_ACT_RELU, AE_ACT_SIGMOID,
                               AE_LOSS_MSE, AE_OPT_ADAM, 6);
    assert_non_null(src);
    OK(ae_model_copy_outer(m, src));
    check_as_fresh(m, x);
    size_t n = 0;
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, &n, AE_SAVE_MODEL), AE_ERR_RANGE);
    void *buf = malloc(n);
    OK(ae_model_save_buffer(m, buf, n, &n, AE_SAVE_MODEL));
    ae_model *loaded = NULL;
    OK(ae_model_load_buffer(&loaded, buf, n, NULL));
    check_as_fresh(loaded, x);
    free(buf);
    ae_model_destroy(loaded);
    ae_model_destroy(src);
    ae_model_destroy(m);
}

static void test_no_allocation_after_first_step(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = make_model(&a, 50, 20, 5, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_BCE, AE_OPT_ADAMW, 1);
    assert_non_null(m);
    float x[64 * 50], out[64 * 50], code[64 * 5], loss;
    test_fill(x, 64 * 50, 5, 0, 1);
    OK(ae_train_step(m, x, NULL, 64, &loss));
    long after_first = t.count;
    for (int i = 0; i < 20; i++) OK(ae_train_step(m, x, NULL, 64 - (size_t)i, &loss));
    OK(ae_train_step(m, x, NULL, 64, &loss)); /* back to the largest: already planned */
    OK(ae_evaluate(m, x, NULL, 64, &loss));
    OK(ae_encode(m, x, 64, code));
    OK(ae_decode(m, code, 64, out));
    OK(ae_reconstruct(m, x, 1, out));
    assert_int_equal(t.count, after_first);
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
}

static void train_n(ae_model *m, int steps, uint32_t seed) {
    float x[16 * 20], loss;
    for (int s = 0; s < steps; s++) {
        test_fill(x, 16 * 20, seed + (uint32_t)s, 0, 1);
        OK(ae_train_step(m, x, NULL, 16, &loss));
    }
}

static void test_determinism(void **state) {
    (void)state;
    ae_model *a = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_BCE, AE_OPT_ADAM, 9);
    ae_model *b = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_BCE, AE_OPT_ADAM, 9);
    ae_model *c = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_BCE, AE_OPT_ADAM, 10);
    train_n(a, 25, 100);
    train_n(b, 25, 100);
    train_n(c, 25, 100);
    size_t na, nb, nc;
    float *pa = snapshot(a, &na), *pb = snapshot(b, &nb), *pc = snapshot(c, &nc);
    assert_memory_equal(pa, pb, na * sizeof(float));
    assert_memory_not_equal(pa, pc, na * sizeof(float));
    free(pa);
    free(pb);
    free(pc);
    ae_model_destroy(a);
    ae_model_destroy(b);
    ae_model_destroy(c);
}

/* A dense model of make_model's shape on `backend`, through the library's
 * own ae_model_create (the parenthesised name: not the tests' wrapper,
 * which would force AE_TEST_BACKEND's choice). */
static ae_model *make_on(ae_backend backend, int64_t seed) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 20));
    OK(ae_config_add_dense(c, 12, AE_ACT_TANH));
    OK(ae_config_add_dense(c, 4, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_SEED, seed));
    OK(ae_config_set_backend(c, backend));
    OK((ae_model_create)(&m, c));
    ae_config_destroy(c);
    return m;
}

/* The rule of AE_BACKEND_AUTO, a forced backend, and loading: the loader's
 * config chooses (the file keeps no backend: models on either backend
 * save the same bytes). */
static void test_backend_of_model(void **state) {
    (void)state;
    int dnnl = ae_backend_available(AE_BACKEND_ONEDNN);
    ae_backend rule = dnnl ? AE_BACKEND_ONEDNN : AE_BACKEND_OPENBLAS;
    ae_model *a = make_on(AE_BACKEND_AUTO, 3), *o = make_on(AE_BACKEND_OPENBLAS, 3);
    assert_int_equal(ae_model_backend(a), rule);
    assert_int_equal(ae_model_backend(o), AE_BACKEND_OPENBLAS);
    assert_int_equal(ae_model_backend(NULL), AE_BACKEND_AUTO);
    size_t na = 0, no = 0;
    assert_int_equal(ae_model_save_buffer(a, NULL, 0, &na, AE_SAVE_MODEL), AE_ERR_RANGE);
    assert_int_equal(ae_model_save_buffer(o, NULL, 0, &no, AE_SAVE_MODEL), AE_ERR_RANGE);
    unsigned char *ba = malloc(na), *bo = malloc(no);
    OK(ae_model_save_buffer(a, ba, na, &na, AE_SAVE_MODEL));
    OK(ae_model_save_buffer(o, bo, no, &no, AE_SAVE_MODEL));
    assert_int_equal(na, no);
    assert_memory_equal(ba, bo, na);
    ae_model *back = NULL;
    OK((ae_model_load_buffer)(&back, bo, no, NULL));
    assert_int_equal(ae_model_backend(back), rule);
    ae_model_destroy(back);
    ae_config *lc = NULL;
    OK(ae_config_create(&lc, NULL));
    for (int b = AE_BACKEND_OPENBLAS; b <= AE_BACKEND_ONEDNN; b++) {
        if (!ae_backend_available((ae_backend)b)) continue;
        OK(ae_config_set_backend(lc, (ae_backend)b));
        OK((ae_model_load_buffer)(&back, ba, na, lc));
        assert_int_equal(ae_model_backend(back), b);
        ae_model_destroy(back);
    }
    ae_config_destroy(lc);
    free(ba);
    free(bo);
    ae_model_destroy(a);
    ae_model_destroy(o);
}

/* The two backends round differently but compute the same model: 30 Adam
 * steps from one seed agree to float rounding. */
static void test_backends_agree(void **state) {
    (void)state;
    if (!ae_backend_available(AE_BACKEND_ONEDNN)) skip();
    ae_model *o = make_on(AE_BACKEND_OPENBLAS, 5), *d = make_on(AE_BACKEND_ONEDNN, 5);
    train_n(o, 30, 40);
    train_n(d, 30, 40);
    size_t no, nd;
    float *po = snapshot(o, &no), *pd = snapshot(d, &nd);
    assert_int_equal(no, nd);
    assert_close_arrays(pd, po, no, 1e-3, 1e-5, "parameters, oneDNN vs OpenBLAS");
    free(po);
    free(pd);
    ae_model_destroy(o);
    ae_model_destroy(d);
}

/* The seed is all 64 bits of AE_P_SEED: seeds that differ only in the top
 * bit (0 and 2^63), or are negative as int64, initialise differently, the
 * model reports the value it was given, and it survives a save and load. */
static void test_seed_uses_64_bits(void **state) {
    (void)state;
    const int64_t seeds[] = {0, INT64_MIN, -1, INT64_MAX, 1, INT64_MIN + 1};
    enum { NS = sizeof seeds / sizeof *seeds };
    float *p[NS];
    size_t n = 0;
    for (size_t i = 0; i < NS; i++) {
        ae_model *m = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_BCE,
                                 AE_OPT_ADAM, seeds[i]);
        assert_non_null(m);
        int64_t got;
        OK(ae_model_get_int(m, AE_P_SEED, &got));
        assert_true(got == seeds[i]);
        p[i] = snapshot(m, &n);
        for (size_t j = 0; j < i; j++) assert_memory_not_equal(p[i], p[j], n * sizeof(float));
        size_t size = 0;
        assert_int_equal(ae_model_save_buffer(m, NULL, 0, &size, AE_SAVE_MODEL), AE_ERR_RANGE);
        unsigned char *buf = malloc(size);
        assert_non_null(buf);
        OK(ae_model_save_buffer(m, buf, size, &size, AE_SAVE_MODEL));
        ae_model *back = NULL;
        OK(ae_model_load_buffer(&back, buf, size, NULL));
        OK(ae_model_get_int(back, AE_P_SEED, &got));
        assert_true(got == seeds[i]);
        free(buf);
        ae_model_destroy(back);
        ae_model_destroy(m);
    }
    for (size_t i = 0; i < NS; i++) free(p[i]);
    double lo, hi;
    OK(ae_param_bounds(AE_P_SEED, NULL, &lo, &hi, NULL));
    assert_true(lo == -9223372036854775808.0 && hi == 9223372036854775807.0);
}

typedef struct thread_job {
    ae_model *m;
    uint32_t seed;
} thread_job;

static void *thread_train(void *arg) {
    thread_job *j = arg;
    float x[16 * 20], loss;
    for (int s = 0; s < 40; s++) {
        test_fill(x, 16 * 20, j->seed + (uint32_t)s, 0, 1);
        if (ae_train_step(j->m, x, NULL, 16, &loss) != AE_OK) return (void *)1;
    }
    return NULL;
}

static void test_two_threads_match_sequential(void **state) {
    (void)state;
    ae_model *seq[2], *par[2];
    for (int i = 0; i < 2; i++) {
        seq[i] = make_model(NULL, 20, 12, 4, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, i);
        par[i] = make_model(NULL, 20, 12, 4, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, i);
    }
    thread_job js[2] = {{seq[0], 1}, {seq[1], 500}};
    assert_null(thread_train(&js[0]));
    assert_null(thread_train(&js[1]));
    thread_job jp[2] = {{par[0], 1}, {par[1], 500}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&th[i], NULL, thread_train, &jp[i]), 0);
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(th[i], &r);
        assert_null(r);
    }
    for (int i = 0; i < 2; i++) {
        size_t n1, n2;
        float *a = snapshot(seq[i], &n1), *b = snapshot(par[i], &n2);
        assert_memory_equal(a, b, n1 * sizeof(float));
        free(a);
        free(b);
        ae_model_destroy(seq[i]);
        ae_model_destroy(par[i]);
    }
}

static void test_encode_decode_consistent(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, 20, 12, 4, AE_ACT_GELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, 2);
    train_n(m, 5, 7);
    float x[5 * 20], code[5 * 4], dec[5 * 20], rec[5 * 20], one[20], loss_eval, loss_step;
    test_fill(x, 100, 8, 0, 1);
    OK(ae_encode(m, x, 5, code));
    OK(ae_decode(m, code, 5, dec));
    OK(ae_reconstruct(m, x, 5, rec));
    assert_memory_equal(dec, rec, sizeof dec);
    OK(ae_reconstruct(m, x + 40, 1, one)); /* batch 1 takes the sgemv path */
    assert_close_arrays(one, rec + 40, 20, 1e-5, 1e-6, "batch-1 reconstruction");
    assert_int_equal(ae_encode(m, NULL, 5, code), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_decode(m, code, 0, dec), AE_ERR_INVALID_ARG);
    /* evaluate = the loss a step reports before its update, and changes nothing */
    size_t n;
    float *before = snapshot(m, &n);
    OK(ae_evaluate(m, x, NULL, 5, &loss_eval));
    assert_unchanged(m, before, n);
    OK(ae_train_step(m, x, NULL, 5, &loss_step));
    assert_true(loss_eval == loss_step);
    double mse = 0;
    for (int i = 0; i < 100; i++) mse += ((double)rec[i] - x[i]) * ((double)rec[i] - x[i]);
    assert_true(fabs(mse / 100 - loss_eval) < 1e-6);
    free(before);
    ae_model_destroy(m);
}

/* The whole model's gradient against finite differences of ae_evaluate:
 * one SGD step with lr 1 moves every parameter by minus its gradient. */
static void check_model_gradient(ae_loss loss, ae_reduction red, ae_activation hidden,
                                 ae_activation out_act, int with_target) {
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 7));
    OK(ae_config_add_dense(c, 5, hidden));
    OK(ae_config_add_dense(c, 3, AE_ACT_TANH));
    OK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    OK(ae_config_mirror_decoder(c, out_act));
    OK(ae_config_set_int(c, AE_P_LOSS, loss));
    OK(ae_config_set_int(c, AE_P_REDUCTION, red));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_SGD));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1.0));
    OK(ae_config_set_int(c, AE_P_SEED, 77));
    ae_model *m;
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    float x[3 * 7], t[3 * 7], loss_v;
    test_fill(x, 21, 31, 0.05f, 0.95f);
    test_fill(t, 21, 32, 0.05f, 0.95f);
    const float *tgt = with_target ? t : NULL;
    size_t n;
    float *p0 = snapshot(m, &n);
    OK(ae_train_step(m, x, tgt, 3, &loss_v));
    float *p1 = snapshot(m, &n);
    /* Restore every layer, then probe each parameter. */
    size_t L = ae_model_layer_count(m), base = 0;
    for (size_t l = 0, off = 0; l < L; l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        OK(ae_model_set_weights(m, l, p0 + off, info.weight_count));
        off += info.weight_count;
        OK(ae_model_set_bias(m, l, p0 + off, info.bias_count));
        off += info.bias_count;
    }
    for (size_t l = 0; l < L; l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        for (int part = 0; part < 2; part++) {
            size_t cnt = part ? info.bias_count : info.weight_count;
            float *buf = malloc((cnt ? cnt : 1) * sizeof *buf);
            memcpy(buf, p0 + base, cnt * sizeof *buf);
            for (size_t k = 0; k < cnt; k++) {
                double h = 1e-3, fp, fm;
                float lp, lm, s = buf[k];
                buf[k] = s + (float)h;
                OK(part ? ae_model_set_bias(m, l, buf, cnt) : ae_model_set_weights(m, l, buf, cnt));
                OK(ae_evaluate(m, x, tgt, 3, &lp));
                buf[k] = s - (float)h;
                OK(part ? ae_model_set_bias(m, l, buf, cnt) : ae_model_set_weights(m, l, buf, cnt));
                OK(ae_evaluate(m, x, tgt, 3, &lm));
                buf[k] = s;
                OK(part ? ae_model_set_bias(m, l, buf, cnt) : ae_model_set_weights(m, l, buf, cnt));
                fp = lp;
                fm = lm;
                double fd = (fp - fm) / (2 * h);
                double analytic = (double)p0[base + k] - (double)p1[base + k];
                double scale = red == AE_REDUCE_SUM ? 1.0 : 0.05;
                if (fabs(fd - analytic) > 2e-3 * scale + 2e-2 * fabs(fd)) {
                    print_error("loss %d red %d layer %zu %s[%zu]: analytic %g fd %g\n", loss, red, l,
                                part ? "b" : "W", k, analytic, fd);
                    fail();
                }
            }
            base += cnt;
            free(buf);
        }
    }
    free(p0);
    free(p1);
    ae_model_destroy(m);
}

static void test_model_gradient_fd(void **state) {
    (void)state;
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_SUM, AE_ACT_TANH, AE_ACT_SIGMOID, 0);
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_MEAN, AE_ACT_TANH, AE_ACT_SIGMOID, 0);
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_SUM, AE_ACT_TANH, AE_ACT_IDENTITY, 0);
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_SUM, AE_ACT_SOFTPLUS, AE_ACT_SIGMOID, 0);
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_SUM, AE_ACT_TANH, AE_ACT_SIGMOID, 1);
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_SUM, AE_ACT_SOFTPLUS, AE_ACT_IDENTITY, 1);
    check_model_gradient(AE_LOSS_MSE, AE_REDUCE_MEAN, AE_ACT_SOFTPLUS, AE_ACT_IDENTITY, 1);
    check_model_gradient(AE_LOSS_BCE, AE_REDUCE_SUM, AE_ACT_ELU, AE_ACT_SIGMOID, 1);
    check_model_gradient(AE_LOSS_BCE, AE_REDUCE_MEAN, AE_ACT_GELU, AE_ACT_SIGMOID, 0);
}

static void test_grad_clip_and_settings(void **state) {
    (void)state;
    ae_model *a = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_SGD, 4);
    ae_model *b = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_SGD, 4);
    OK(ae_model_set_float(a, AE_P_LEARNING_RATE, 0.1));
    OK(ae_model_set_float(b, AE_P_LEARNING_RATE, 0.1));
    OK(ae_model_set_float(b, AE_P_GRAD_CLIP_NORM, 1e-4)); /* far below the real norm */
    size_t n;
    float *p0 = snapshot(a, &n);
    train_n(a, 1, 3);
    train_n(b, 1, 3);
    float *pa = snapshot(a, &n), *pb = snapshot(b, &n);
    double da = 0, db = 0;
    for (size_t i = 0; i < n; i++) {
        da += ((double)pa[i] - p0[i]) * ((double)pa[i] - p0[i]);
        db += ((double)pb[i] - p0[i]) * ((double)pb[i] - p0[i]);
    }
    /* With SGD the step is lr * clipped gradient: its norm is lr * 1e-4. */
    assert_true(fabs(sqrt(db) - 0.1 * 1e-4) < 0.1 * 1e-4 * 0.02);
    assert_true(sqrt(da) > 10 * sqrt(db));
    free(p0);
    free(pa);
    free(pb);
    ae_model_destroy(a);
    ae_model_destroy(b);
}

/* PyTorch's defaults: AdamW decays by 1e-2 unless told otherwise; SGD and
   Adam by 0; a value set explicitly survives a later change of optimizer. */
static void test_weight_decay_defaults(void **state) {
    (void)state;
    ae_config *c = NULL;
    double wd = -1;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_get_float(c, AE_P_WEIGHT_DECAY, &wd));
    assert_true(wd == 0.0);
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAMW));
    OK(ae_config_get_float(c, AE_P_WEIGHT_DECAY, &wd));
    assert_true(wd == 1e-2);
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_SGD));
    OK(ae_config_get_float(c, AE_P_WEIGHT_DECAY, &wd));
    assert_true(wd == 0.0);
    OK(ae_config_set_float(c, AE_P_WEIGHT_DECAY, 0.0));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAMW));
    OK(ae_config_get_float(c, AE_P_WEIGHT_DECAY, &wd));
    assert_true(wd == 0.0);
    ae_config_destroy(c);

    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_float(c, AE_P_WEIGHT_DECAY, 0.5));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAMW));
    OK(ae_config_get_float(c, AE_P_WEIGHT_DECAY, &wd));
    assert_true(wd == 0.5);
    ae_config_destroy(c);

    ae_model *m = make_model(NULL, 20, 12, 4, AE_ACT_TANH, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAMW, 4);
    OK(ae_model_get_float(m, AE_P_WEIGHT_DECAY, &wd));
    assert_true(wd == 1e-2);
    ae_model_destroy(m);
}

/* Every activation as the output, fused into the last dense layer or as a
 * standalone activation layer, with MSE and (for sigmoid) BCE: the model
 * trains, and the two forms give the same losses step by step. */
static void test_every_output_activation(void **state) {
    (void)state;
    enum { N = 6, D = 5 };
    float x[N * D];
    for (size_t i = 0; i < N * D; i++) x[i] = (float)((i * 7) % 11) / 10.0f;
    for (int act = AE_ACT_IDENTITY; act <= AE_ACT_ELU; act++)
        for (int loss = AE_LOSS_MSE; loss <= AE_LOSS_BCE; loss++) {
            if (loss == AE_LOSS_BCE && act != AE_ACT_SIGMOID) continue;
            float losses[2][4];
            for (int standalone = 0; standalone < 2; standalone++) {
                ae_config *c = NULL;
                ae_model *m = NULL;
                OK(ae_config_create(&c, NULL));
                OK(ae_config_set_input_size(c, D));
                OK(ae_config_add_dense(c, 3, AE_ACT_TANH));
                OK(ae_config_mark_code(c));
                OK(ae_config_add_dense(c, D, standalone ? AE_ACT_IDENTITY : (ae_activation)act));
                if (standalone) OK(ae_config_add_activation(c, (ae_activation)act));
                OK(ae_config_set_int(c, AE_P_LOSS, loss));
                OK(ae_config_set_int(c, AE_P_SEED, 5));
                OK(ae_model_create(&m, c));
                ae_config_destroy(c);
                for (int step = 0; step < 4; step++) {
                    OK(ae_train_step(m, x, NULL, N, &losses[standalone][step]));
                    assert_true(isfinite(losses[standalone][step]));
                }
                ae_model_destroy(m);
            }
            for (int step = 0; step < 4; step++)
                assert_float_equal(losses[0][step], losses[1][step],
                                   1e-5 * (1.0 + fabs(losses[0][step])));
        }
}

static void test_learns(void **state) {
    (void)state;
    /* Data on a 3-D subspace of 24-D is compressed well by a 4-D code. */
    enum { D = 24, S = 64 };
    float basis[3 * D], x[S * D], z[S * 3];
    test_fill(basis, 3 * D, 1, -0.3f, 0.3f);
    test_fill(z, S * 3, 2, 0, 1);
    for (int s = 0; s < S; s++)
        for (int d = 0; d < D; d++)
            x[s * D + d] = 0.5f + z[s * 3] * basis[d] + z[s * 3 + 1] * basis[D + d] + z[s * 3 + 2] * basis[2 * D + d];
    ae_model *m = make_model(NULL, D, 16, 4, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, 6);
    OK(ae_model_set_float(m, AE_P_LEARNING_RATE, 1e-2));
    float l0, l;
    OK(ae_evaluate(m, x, NULL, S, &l0));
    for (int i = 0; i < 400; i++) OK(ae_train_step(m, x, NULL, S, &l));
    OK(ae_evaluate(m, x, NULL, S, &l));
    assert_true(l < 0.1f * l0);
    ae_model_destroy(m);
}

/* ae_model_workspace_size is the workspace an inference call allocates:
 * the largest block a reconstruction of a new largest batch asks for. */
static size_t g_largest;
static void *largest_alloc(void *ud, size_t n) {
    (void)ud;
    if (n > g_largest) g_largest = n;
    return malloc(n);
}
static void largest_free(void *ud, void *p) {
    (void)ud;
    free(p);
}

static void test_workspace_size(void **state) {
    (void)state;
    ae_allocator a = {sizeof a, largest_alloc, largest_free, NULL};
    ae_config *c = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&c, &a), AE_OK);
    assert_int_equal(ae_config_set_input_shape(c, 2, 8, 8), AE_OK);
    assert_int_equal(ae_config_add_conv2d(c, 6, 3, 2, 1, AE_ACT_RELU), AE_OK);
    assert_int_equal(ae_config_add_flatten(c), AE_OK);
    assert_int_equal(ae_config_add_dense(c, 5, AE_ACT_IDENTITY), AE_OK);
    assert_int_equal(ae_config_mark_code(c), AE_OK);
    assert_int_equal(ae_config_add_dense(c, 128, AE_ACT_SIGMOID), AE_OK);
    assert_int_equal(ae_model_create(&m, c), AE_OK);
    size_t w1, w2, w64;
    assert_int_equal(ae_model_workspace_size(m, 1, &w1), AE_OK);
    assert_int_equal(ae_model_workspace_size(m, 2, &w2), AE_OK);
    assert_int_equal(ae_model_workspace_size(m, 64, &w64), AE_OK);
    assert_true(w1 > 0 && w2 > w1 && w64 > 32 * w2 / 2);
    float *x = calloc(64 * 128, sizeof *x), *y = malloc(64 * 128 * sizeof *y);
    g_largest = 0;
    assert_int_equal(ae_reconstruct(m, x, 64, y), AE_OK);
    /* The block holds the workspace and the allocator's alignment slack. */
    assert_true(g_largest >= w64 && g_largest <= w64 + 128);
    assert_int_equal(ae_model_workspace_size(m, 0, &w1), AE_ERR_RANGE);
    assert_int_equal(ae_model_workspace_size(m, (size_t)1 << 25, &w1), AE_ERR_RANGE);
    assert_int_equal(ae_model_workspace_size(NULL, 1, &w1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_workspace_size(m, 1, NULL), AE_ERR_INVALID_ARG);
    free(x);
    free(y);
    ae_model_destroy(m);
    ae_config_destroy(c);
}

/* Non-trainable state through the API: a BatchNorm's running statistics set
 * from outside (as from PyTorch) give its inference output, and a batch
 * top-k's threshold; bad values are refused and change nothing. */
static void test_layer_state(void **state) {
    (void)state;
    enum { C = 3, HW = 4, B = 2, D = C * HW };
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, C, 2, 2));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_flatten(c));
    OK(ae_config_add_batch_topk(c, 2));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, D, AE_ACT_IDENTITY));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);

    ae_layer_info info = {.struct_size = sizeof info};
    size_t counts[4] = {2 * C, 0, 2, 0};
    for (size_t l = 0; l < 4; l++) {
        OK(ae_model_layer_info(m, l, &info));
        assert_int_equal(info.state_count, counts[l]);
    }
    float st[2 * C], back[2 * C];
    OK(ae_model_get_state(m, 0, st, 2 * C));
    for (size_t i = 0; i < C; i++) assert_true(st[i] == 0.0f && st[C + i] == 1.0f);
    OK(ae_model_get_state(m, 1, st, 0)); /* a layer without state: count 0 */

    /* BatchNorm inference with set statistics: gamma (x - mean) / sqrt(var + eps) + beta */
    const float mean[C] = {0.5f, -1.0f, 2.0f}, var[C] = {4.0f, 0.25f, 1.0f};
    const float gamma[C] = {2.0f, 1.0f, -1.0f}, beta[C] = {0.0f, 1.0f, 0.5f};
    for (size_t i = 0; i < C; i++) {
        st[i] = mean[i];
        st[C + i] = var[i];
    }
    OK(ae_model_set_state(m, 0, st, 2 * C));
    OK(ae_model_set_weights(m, 0, gamma, C));
    OK(ae_model_set_bias(m, 0, beta, C));
    OK(ae_model_get_state(m, 0, back, 2 * C));
    assert_memory_equal(back, st, sizeof st);
    /* the threshold: inference keeps what exceeds it */
    const float theta[2] = {0.75f, 1.0f};
    OK(ae_model_set_state(m, 2, theta, 2));
    float x[B * D], code[B * D];
    test_fill(x, B * D, 9, -3, 3);
    OK(ae_encode(m, x, B, code));
    for (size_t b = 0; b < B; b++)
        for (size_t ch = 0; ch < C; ch++)
            for (size_t j = 0; j < HW; j++) {
                size_t i = b * D + ch * HW + j;
                double y = gamma[ch] * (x[i] - mean[ch]) / sqrt(var[ch] + 1e-5) + beta[ch];
                double want = y > 0.75 ? y : 0.0;
                assert_true(fabs(code[i] - want) <= 1e-5 * (1 + fabs(want)));
            }

    /* refusals: nothing is written */
    float bad[2 * C];
    memcpy(bad, st, sizeof bad);
    bad[C + 1] = -0.5f;
    assert_int_equal(ae_model_set_state(m, 0, bad, 2 * C), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "variance"));
    bad[C + 1] = NAN;
    assert_int_equal(ae_model_set_state(m, 0, bad, 2 * C), AE_ERR_NUMERIC);
    assert_int_equal(ae_model_set_state(m, 0, st, C), AE_ERR_SHAPE);
    assert_int_equal(ae_model_get_state(m, 0, back, 2 * C + 1), AE_ERR_SHAPE);
    assert_int_equal(ae_model_set_state(m, 3, st, 1), AE_ERR_SHAPE);
    assert_int_equal(ae_model_set_state(m, 9, st, 0), AE_ERR_RANGE);
    assert_int_equal(ae_model_get_state(m, 0, NULL, 2 * C), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_state(NULL, 0, st, 2 * C), AE_ERR_INVALID_ARG);
    const float flag2[2] = {0.5f, 2.0f};
    assert_int_equal(ae_model_set_state(m, 2, flag2, 2), AE_ERR_RANGE);
    OK(ae_model_get_state(m, 0, back, 2 * C));
    assert_memory_equal(back, st, sizeof st);
    float th[2];
    OK(ae_model_get_state(m, 2, th, 2));
    assert_memory_equal(th, theta, sizeof th);
    double v;
    OK(ae_model_get_stat(m, AE_STAT_BATCH_TOPK_THRESHOLD, &v));
    assert_true(v == 0.75);
    ae_model_destroy(m);
}

/* ---- float settings, checked in the precision they are used in ---- */

/* 1 - 1e-10: below 1 as a double, 1 as a float. */
#define FS_ONE_MINUS 0.9999999999
#define FS_NPROBES 5
static const double fs_probes[FS_NPROBES] = {1e-50, 1e-40, 1e39, -0.0, FS_ONE_MINUS};

typedef struct float_case {
    int layer; /* 0: an ae_param; 1: an ae_layer_param of layer `at` */
    int param;
    const char *name;
    size_t at;
    signed char ok[FS_NPROBES]; /* accepted (1) or refused (0), per probe */
} float_case;

static const float_case fs_cases[] = {
    {0, AE_P_LEARNING_RATE, "AE_P_LEARNING_RATE", 0, {1, 1, 0, 1, 1}},
    /* nonzero but 0 or subnormal as a float: on in double, off in float */
    {0, AE_P_MOMENTUM, "AE_P_MOMENTUM", 0, {0, 0, 0, 1, 0}},
    {0, AE_P_WEIGHT_DECAY, "AE_P_WEIGHT_DECAY", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_BETA1, "AE_P_BETA1", 0, {1, 1, 0, 1, 0}},
    {0, AE_P_BETA2, "AE_P_BETA2", 0, {1, 1, 0, 1, 0}},
    /* Adam divides by it in float: 1e-50 is 0 there (0/0) */
    {0, AE_P_EPSILON, "AE_P_EPSILON", 0, {0, 0, 0, 0, 1}},
    {0, AE_P_GRAD_CLIP_NORM, "AE_P_GRAD_CLIP_NORM", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_DAMPENING, "AE_P_DAMPENING", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_NOISE_LEVEL, "AE_P_NOISE_LEVEL", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_NOISE_MEAN, "AE_P_NOISE_MEAN", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_NOISE_CLIP_LO, "AE_P_NOISE_CLIP_LO", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_NOISE_CLIP_HI, "AE_P_NOISE_CLIP_HI", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_NOISE_VALUE, "AE_P_NOISE_VALUE", 0, {1, 1, 0, 1, 1}},
    {0, AE_P_VAE_BETA, "AE_P_VAE_BETA", 0, {1, 1, 0, 1, 1}},
    {1, AE_LAYER_LEAKY_SLOPE, "AE_LAYER_LEAKY_SLOPE", 0, {1, 1, 0, 1, 1}},
    {1, AE_LAYER_BN_MOMENTUM, "AE_LAYER_BN_MOMENTUM", 1, {1, 1, 0, 1, 1}},
    /* 1/sqrt(var + eps) becomes a float */
    {1, AE_LAYER_BN_EPS, "AE_LAYER_BN_EPS", 1, {0, 0, 0, 0, 1}},
};

/* 6 - dense 5 (leaky ReLU) - batchnorm - dense 3 - dense 6 (sigmoid), with
 * the optimizer and noise that make setting `fc` matter. */
static ae_config *fs_config(const float_case *fc) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 6));
    OK(ae_config_add_dense(c, 5, AE_ACT_LEAKY_RELU));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 6, AE_ACT_SIGMOID));
    int p = fc->layer ? 0 : fc->param;
    int sgd = p == AE_P_MOMENTUM || p == AE_P_DAMPENING;
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, sgd ? AE_OPT_SGD : AE_OPT_ADAM));
    if (p == AE_P_DAMPENING) OK(ae_config_set_float(c, AE_P_MOMENTUM, 0.9));
    if (p == AE_P_WEIGHT_DECAY) OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAMW));
    if (p >= AE_P_NOISE_LEVEL && p <= AE_P_NOISE_VALUE) {
        OK(ae_config_set_int(c, AE_P_NOISE_KIND, p == AE_P_NOISE_VALUE ? AE_NOISE_MASK
                                                                       : AE_NOISE_GAUSSIAN));
        OK(ae_config_set_float(c, AE_P_NOISE_LEVEL, p == AE_P_NOISE_VALUE ? 0.25 : 0.01));
        OK(ae_config_set_int(c, AE_P_NOISE_CLIP, 1));
    }
    return c;
}

static ae_status fs_set(ae_config *c, const float_case *fc, double v) {
    return fc->layer ? ae_config_layer_set_float(c, fc->at, (ae_layer_param)fc->param, v)
                     : ae_config_set_float(c, (ae_param)fc->param, v);
}

/* A model with an accepted value trains to finite parameters, and what it
 * saves loads; 0 when it does, else 1 with the reason printed. */
static int fs_train(ae_config *c, const float_case *fc, double v) {
    ae_model *m = NULL;
    OK(ae_model_create(&m, c));
    float x[4 * 6], loss;
    int bad = 0;
    for (int step = 0; step < 3 && !bad; step++) {
        test_fill(x, 4 * 6, 60 + (uint32_t)step, 0.0f, 1.0f);
        if (ae_train_step(m, x, NULL, 4, &loss) != AE_OK || !isfinite(loss)) {
            print_error("%s = %g: step %d: %s\n", fc->name, v, step, ae_model_last_error(m));
            bad = 1;
        }
    }
    size_t np = ae_model_param_count(m);
    float *p = malloc(np * sizeof *p);
    assert_non_null(p);
    test_get_params(m, p);
    for (size_t i = 0; i < np && !bad; i++)
        if (!isfinite(p[i])) {
            print_error("%s = %g: parameter %zu is %g\n", fc->name, v, i, (double)p[i]);
            bad = 1;
        }
    free(p);
    size_t size = 0;
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, &size, AE_SAVE_CHECKPOINT), AE_ERR_RANGE);
    void *buf = malloc(size);
    assert_non_null(buf);
    OK(ae_model_save_buffer(m, buf, size, &size, AE_SAVE_CHECKPOINT));
    ae_model *back = NULL;
    ae_config *lc = NULL;
    OK(ae_config_create(&lc, NULL));
    if (!bad && ae_model_load_buffer(&back, buf, size, lc) != AE_OK) {
        print_error("%s = %g: the saved model does not load: %s\n", fc->name, v,
                    ae_config_last_error(lc));
        bad = 1;
    }
    ae_config_destroy(lc);
    ae_model_destroy(back);
    free(buf);
    ae_model_destroy(m);
    return bad;
}

/* Every float setting with values that are fine as doubles and not as the
 * floats they are used as (1e-50 is 0, 1e-40 subnormal, 1e39 infinite,
 * 1 - 1e-10 is 1), and -0.0: refused with the setting's name, or accepted,
 * trained and saved without a non-finite number. */
static void test_float_settings_precision(void **state) {
    (void)state;
    int bad = 0;
    for (size_t k = 0; k < sizeof fs_cases / sizeof fs_cases[0]; k++) {
        const float_case *fc = &fs_cases[k];
        for (int j = 0; j < FS_NPROBES; j++) {
            double v = fs_probes[j];
            ae_config *c = fs_config(fc);
            ae_status st = fs_set(c, fc, v);
            if (fc->ok[j]) {
                double got = v;
                if (st == AE_OK && !fc->layer) OK(ae_config_get_float(c, (ae_param)fc->param, &got));
                if (st != AE_OK) {
                    print_error("%s = %g refused: %s\n", fc->name, v, ae_config_last_error(c));
                    bad = 1;
                } else if (got != v || (!fc->layer && signbit(got))) { /* -0.0 is kept as 0 */
                    print_error("%s = %g reads back as %g\n", fc->name, v, got);
                    bad = 1;
                } else {
                    bad |= fs_train(c, fc, v);
                }
            } else if (st != AE_ERR_RANGE) {
                print_error("%s = %g: expected AE_ERR_RANGE, got %d\n", fc->name, v, (int)st);
                bad = 1;
            } else if (!strstr(ae_config_last_error(c), fc->name)) {
                print_error("%s = %g: the message does not name it: %s\n", fc->name, v,
                            ae_config_last_error(c));
                bad = 1;
            }
            ae_config_destroy(c);
        }
    }
    if (bad) fail();
    /* Dropout draws against its probability as a float: 1 - 1e-10 is 1
     * there, refused at the step (the level's range depends on the kind)
     * and by ae_corrupt; the step changes nothing. */
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 6));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 6, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_DROPOUT));
    OK(ae_config_set_float(c, AE_P_NOISE_LEVEL, FS_ONE_MINUS));
    ae_model *m = NULL;
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    float x[2 * 6], loss, p0[64], p1[64];
    test_fill(x, 2 * 6, 7, 0.0f, 1.0f);
    assert_true(ae_model_param_count(m) <= 64);
    test_get_params(m, p0);
    assert_int_equal(ae_train_step(m, x, NULL, 2, &loss), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "AE_P_NOISE_LEVEL"));
    test_get_params(m, p1);
    assert_memory_equal(p0, p1, ae_model_param_count(m) * sizeof(float));
    OK(ae_model_set_float(m, AE_P_NOISE_LEVEL, 0.5));
    OK(ae_train_step(m, x, NULL, 2, &loss));
    ae_model_destroy(m);
    ae_noise nz;
    ae_noise_init(&nz, AE_NOISE_DROPOUT, FS_ONE_MINUS);
    float out[2 * 6];
    assert_int_equal(ae_corrupt(&nz, x, out, 2, 6, 1), AE_ERR_RANGE);
}

/* ---- the gradient-reduce hook (<libae/hook.h>) ---- */

/* Everything a step may change, bitwise: a checkpoint (parameters, layer
 * and optimizer state, RNG, step count, statistics). Caller frees. */
static unsigned char *checkpoint(const ae_model *m, size_t *n) {
    size_t size = 0;
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, &size, AE_SAVE_CHECKPOINT), AE_ERR_RANGE);
    unsigned char *buf = malloc(size);
    assert_non_null(buf);
    OK(ae_model_save_buffer(m, buf, size, n, AE_SAVE_CHECKPOINT));
    return buf;
}

static void assert_checkpoint(const ae_model *m, const unsigned char *before, size_t n) {
    size_t n2;
    unsigned char *now = checkpoint(m, &n2);
    assert_int_equal(n2, n);
    assert_memory_equal(now, before, n);
    free(now);
}

typedef struct hook_log {
    int calls;
    float *copy; /* the arena as the hook received it (copy_n floats) */
    size_t copy_n;
    double batch;
    int all_nan;     /* every gradient and loss scalar was NaN at the last call */
    float scale;     /* multiplies every gradient */
    float add;       /* then added to every gradient */
    double loss;     /* when not 0, replaces the loss scalar */
    size_t poison;   /* when not 0, gradient poison - 1 becomes NaN */
    ae_status ret;
} hook_log;

static ae_status log_hook(void *ctx, float *g, size_t n, double *sc, size_t ns) {
    hook_log *h = ctx;
    h->calls++;
    assert_int_equal(ns, AE_GRAD_SCALAR_COUNT);
    free(h->copy);
    h->copy = malloc(n * sizeof *g);
    assert_non_null(h->copy);
    memcpy(h->copy, g, n * sizeof *g);
    h->copy_n = n;
    h->batch = sc[AE_GRAD_SCALAR_BATCH];
    int nan = 1;
    for (size_t i = 0; i < n; i++) nan &= isnan(g[i]) != 0;
    for (int k = 0; k < AE_GRAD_SCALAR_BATCH; k++) nan &= isnan(sc[k]) != 0;
    h->all_nan = nan;
    for (size_t i = 0; i < n; i++) g[i] = g[i] * h->scale + h->add;
    if (h->loss != 0.0) sc[AE_GRAD_SCALAR_LOSS] = h->loss;
    if (h->poison) g[h->poison - 1] = NAN;
    return h->ret;
}

static hook_log new_log(void) {
    hook_log h;
    memset(&h, 0, sizeof h);
    h.scale = 1.0f;
    return h;
}

/* 24 - 32 (leaky ReLU) - top-4 | 24: the dense layers take their sparse
 * paths (zero rows of the weight gradient kept across steps). */
static ae_model *topk_model(ae_optimizer opt) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 24));
    OK(ae_config_add_dense(c, 32, AE_ACT_LEAKY_RELU));
    OK(ae_config_add_topk(c, 4));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 24, AE_ACT_IDENTITY));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, opt));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 0.05));
    OK(ae_config_set_int(c, AE_P_SEED, 5));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* 10 - 8 BatchNorm (ReLU) - 3 | 8 - 10 (sigmoid), Gaussian noise: a step
 * writes layer state and draws from the RNG. */
static ae_model *bn_noise_model(void) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 10));
    OK(ae_config_add_dense(c, 8, AE_ACT_IDENTITY));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_activation(c, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 8, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 10, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM));
    OK(ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
    OK(ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.01));
    OK(ae_config_set_int(c, AE_P_SEED, 8));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* A hook that changes nothing sees exactly the arena a step without hook
 * computes (the sparse paths' zero rows included), and training is bitwise
 * the same, also after a failed step in between; the batch size is one of
 * its scalars. */
static void test_grad_reduce_sees_complete_arena(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        ae_model *a, *b;
        if (kind == 0) {
            a = make_model(NULL, 12, 8, 3, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, 3);
            b = make_model(NULL, 12, 8, 3, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_ADAM, 3);
        } else if (kind == 1) {
            a = topk_model(AE_OPT_ADAM);
            b = topk_model(AE_OPT_ADAM);
        } else {
            a = bn_noise_model();
            b = bn_noise_model();
        }
        hook_log h = new_log();
        OK(ae_model_set_grad_reduce(a, log_hook, &h));
        size_t in = ae_model_input_size(a);
        float x[5 * 24], la, lb;
        for (int step = 0; step < 4; step++) {
            test_fill(x, 5 * in, 60 + (uint32_t)step, 0.0f, 1.0f);
            if (step == 2) {
                /* A failed step (the hook gets NaN) leaves nothing behind. */
                float keep = x[1];
                x[1] = NAN;
                assert_int_equal(ae_train_step(a, x, NULL, 5, &la), AE_ERR_NUMERIC);
                assert_true(h.all_nan);
                x[1] = keep;
            }
            OK(ae_train_step(a, x, NULL, 5, &la));
            OK(ae_train_step(b, x, NULL, 5, &lb));
            assert_int_equal(h.calls, step + 1 + (step >= 2));
            assert_true(h.batch == 5.0);
            assert_true(la == lb);
            assert_int_equal(h.copy_n, b->nparams);
            assert_memory_equal(h.copy, b->grads, b->nparams * sizeof(float));
            size_t na, nb;
            unsigned char *ca = checkpoint(a, &na), *cb = checkpoint(b, &nb);
            assert_int_equal(na, nb);
            assert_memory_equal(ca, cb, na);
            free(ca);
            free(cb);
        }
        free(h.copy);
        ae_model_destroy(a);
        ae_model_destroy(b);
    }
}

/* The update reads what the hook left: gradients scaled by 0 leave SGD
 * (no momentum, no decay) where it was, while the step counts; a loss the
 * hook replaces is the step's loss. */
static void test_grad_reduce_result_is_used(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, 12, 8, 3, AE_ACT_RELU, AE_ACT_SIGMOID, AE_LOSS_MSE, AE_OPT_SGD, 3);
    OK(ae_model_set_float(m, AE_P_LEARNING_RATE, 0.5));
    hook_log h = new_log();
    h.scale = 0.0f;
    h.loss = 42.0;
    OK(ae_model_set_grad_reduce(m, log_hook, &h));
    float x[4 * 12], loss = 0.0f;
    test_fill(x, 48, 1, 0, 1);
    size_t n;
    float *before = snapshot(m, &n);
    OK(ae_train_step(m, x, NULL, 4, &loss));
    assert_unchanged(m, before, n);
    assert_int_equal(ae_model_step_count(m), 1);
    assert_true(loss == 42.0f);
    double v;
    OK(ae_model_get_stat(m, AE_STAT_LOSS, &v));
    assert_true(v == 42.0);
    /* Removed: the step trains again. */
    OK(ae_model_set_grad_reduce(m, NULL, &h));
    OK(ae_train_step(m, x, NULL, 4, &loss));
    assert_int_equal(h.calls, 1);
    float *after = snapshot(m, &n);
    assert_true(memcmp(after, before, n * sizeof(float)) != 0);
    free(after);
    free(before);
    free(h.copy);
    ae_model_destroy(m);
    assert_int_equal(ae_model_set_grad_reduce(NULL, log_hook, NULL), AE_ERR_INVALID_ARG);
}

/* A hook that fails, or leaves a non-finite gradient or loss, fails the
 * step, which changes nothing (layer state and RNG included). A step whose
 * own part fails still calls the hook, on NaN (so a summing reducer fails
 * it on every process); a step refused for its arguments does not. */
static void test_grad_reduce_failures_change_nothing(void **state) {
    (void)state;
    ae_model *m = bn_noise_model();
    float x[6 * 10], loss = 7.0f;
    test_fill(x, 60, 2, 0, 1);
    OK(ae_train_step(m, x, NULL, 6, &loss));
    hook_log h = new_log();
    OK(ae_model_set_grad_reduce(m, log_hook, &h));
    size_t n;
    unsigned char *before = checkpoint(m, &n);

    h.ret = AE_ERR_IO;
    assert_int_equal(ae_train_step(m, x, NULL, 6, &loss), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "gradient-reduce hook failed"));
    assert_checkpoint(m, before, n);
    h.ret = AE_OK;

    h.poison = 3;
    assert_int_equal(ae_train_step(m, x, NULL, 6, &loss), AE_ERR_NUMERIC);
    assert_non_null(strstr(ae_model_last_error(m), "gradient is not finite"));
    assert_checkpoint(m, before, n);
    h.poison = 0;

    h.loss = INFINITY;
    assert_int_equal(ae_train_step(m, x, NULL, 6, &loss), AE_ERR_NUMERIC);
    assert_non_null(strstr(ae_model_last_error(m), "non-finite loss"));
    assert_checkpoint(m, before, n);
    h.loss = 0.0;
    assert_int_equal(h.calls, 3);

    x[7] = NAN;
    assert_int_equal(ae_train_step(m, x, NULL, 6, &loss), AE_ERR_NUMERIC);
    assert_non_null(strstr(ae_model_last_error(m), "element 7"));
    assert_int_equal(h.calls, 4);
    assert_true(h.all_nan);
    assert_checkpoint(m, before, n);
    x[7] = 0.5f;

    assert_int_equal(ae_train_step(m, x, NULL, 0, &loss), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_train_step(m, x, NULL, 1, &loss), AE_ERR_SHAPE); /* BatchNorm needs 2 */
    assert_int_equal(h.calls, 4);
    assert_true(loss == 7.0f || isfinite(loss));
    assert_checkpoint(m, before, n);

    /* Still usable: the next step with a good hook trains. */
    OK(ae_train_step(m, x, NULL, 6, &loss));
    assert_int_equal(h.calls, 5);
    assert_false(h.all_nan);
    assert_int_equal(ae_model_step_count(m), 2);
    free(before);
    free(h.copy);
    ae_model_destroy(m);
}

/* A hook that rewrites every gradient, on a model whose sparse paths keep
 * zero rows of the weight gradient across steps, trains as the same model
 * on the GEMM paths with the same hook: after the hook, the library
 * forgets what it knew about the arena. */
static void test_grad_reduce_rewrites_sparse_rows(void **state) {
    (void)state;
    for (int opt = 0; opt < 2; opt++) {
        ae_model *a = topk_model(opt ? AE_OPT_ADAM : AE_OPT_SGD);
        ae_model *b = topk_model(opt ? AE_OPT_ADAM : AE_OPT_SGD);
        assert_int_equal(a->layers[0].out_sparse_k, 4);
        for (size_t i = 0; i < b->nlayers; i++) b->layers[i].in_sparse_k = b->layers[i].out_sparse_k = 0;
        hook_log ha = new_log(), hb = new_log();
        ha.add = hb.add = 0.01f;
        OK(ae_model_set_grad_reduce(a, log_hook, &ha));
        OK(ae_model_set_grad_reduce(b, log_hook, &hb));
        float x[3 * 24], la, lb;
        for (int step = 0; step < 6; step++) {
            test_fill(x, 3 * 24, 700 + (uint32_t)step, -1.0f, 1.0f);
            OK(ae_train_step(a, x, NULL, 3, &la));
            OK(ae_train_step(b, x, NULL, 3, &lb));
            assert_close_arrays(ha.copy, hb.copy, a->nparams, 1e-4, 1e-6, "gradient the hook saw");
            assert_close_arrays(a->params, b->params, a->nparams, 1e-4, 1e-6, "parameter");
        }
        free(ha.copy);
        free(hb.copy);
        ae_model_destroy(a);
        ae_model_destroy(b);
    }
}

/* ---- the batch-statistics hook and the state visit (<libae/hook.h>) ---- */

typedef struct sync_log {
    int calls;
    size_t sizes[16];
    ae_status locals[16];
    int nan[16];
    ae_status ret; /* returned by every call */
} sync_log;

static ae_status log_sync(void *ctx, double *v, size_t n, ae_status local) {
    sync_log *h = ctx;
    if (h->calls < 16) {
        h->sizes[h->calls] = n;
        h->locals[h->calls] = local;
        int nan = 1;
        for (size_t i = 0; i < n; i++) nan &= isnan(v[i]) != 0;
        h->nan[h->calls] = nan;
    }
    h->calls++;
    return h->ret;
}

/* 6 - 8 BatchNorm (ReLU) - 3 | 5 (tanh) BatchNorm - 6, Adam, no noise.
 * No parameter whose gradient is zero but for rounding (a bias right
 * before a BatchNorm, or before a linear map into one), which Adam would
 * scale up to whole steps. */
static ae_model *bn2_model(ae_reduction red) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 6));
    OK(ae_config_add_dense(c, 8, AE_ACT_IDENTITY));
    OK(ae_config_layer_set_int(c, 0, AE_LAYER_BIAS, 0));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_activation(c, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 5, AE_ACT_TANH));
    OK(ae_config_layer_set_int(c, 4, AE_LAYER_BIAS, 0));
    OK(ae_config_add_batchnorm(c));
    OK(ae_config_add_dense(c, 6, AE_ACT_IDENTITY));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM));
    OK(ae_config_set_int(c, AE_P_REDUCTION, red));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 0.01));
    OK(ae_config_set_int(c, AE_P_SEED, 12));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* One process: a hook that leaves the sums as they are trains as without
 * hook; each step makes the documented calls (C + 1, C per BatchNorm
 * forward, 2 C per backward, in backward order); a failed part still makes
 * them all (NaN, with the local error), a failing hook fails the step, and
 * neither changes anything. */
static void test_batch_reduce_sequence(void **state) {
    (void)state;
    ae_model *a = bn2_model(AE_REDUCE_MEAN), *b = bn2_model(AE_REDUCE_MEAN);
    sync_log h;
    memset(&h, 0, sizeof h);
    OK(ae_model_set_batch_reduce(a, log_sync, &h));
    float x[5 * 6], la, lb;
    const size_t want[6] = {9, 8, 6, 5, 10, 16};
    for (int step = 0; step < 5; step++) {
        test_fill(x, 30, 900 + (uint32_t)step, -1.0f, 1.0f);
        h.calls = 0;
        OK(ae_train_step(a, x, NULL, 5, &la));
        OK(ae_train_step(b, x, NULL, 5, &lb));
        assert_int_equal(h.calls, 6);
        for (int k = 0; k < 6; k++) {
            assert_int_equal(h.sizes[k], want[k]);
            assert_int_equal(h.locals[k], AE_OK);
            assert_false(h.nan[k]);
        }
        assert_close_arrays(a->params, b->params, a->nparams, 1e-6, 1e-9, "parameter");
        assert_close_arrays(a->buffers, b->buffers, a->nbuffers, 1e-6, 1e-9, "running statistic");
    }
    size_t n;
    unsigned char *before = checkpoint(a, &n);
    /* The local part fails before the forward pass: every call is made. */
    x[4] = NAN;
    h.calls = 0;
    assert_int_equal(ae_train_step(a, x, NULL, 5, &la), AE_ERR_NUMERIC);
    assert_int_equal(h.calls, 6);
    for (int k = 0; k < 6; k++) {
        assert_int_equal(h.sizes[k], want[k]);
        assert_int_equal(h.locals[k], AE_ERR_NUMERIC);
        assert_true(h.nan[k]);
    }
    assert_checkpoint(a, before, n);
    x[4] = 0.25f;
    /* The hook fails at its first call: the others are still made. */
    h.calls = 0;
    h.ret = AE_ERR_IO;
    assert_int_equal(ae_train_step(a, x, NULL, 5, &la), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(a), "batch-statistics hook failed"));
    assert_int_equal(h.calls, 6);
    assert_int_equal(h.locals[0], AE_OK);
    assert_int_equal(h.locals[5], AE_ERR_IO);
    assert_checkpoint(a, before, n);
    h.ret = AE_OK;
    /* Frozen first layers: the backward reaches the second BatchNorm only. */
    OK(ae_model_freeze(a, 0, 3));
    h.calls = 0;
    OK(ae_train_step(a, x, NULL, 5, &la));
    assert_int_equal(h.calls, 5);
    assert_int_equal(h.sizes[4], 10);
    /* Outside a training step, and once removed, no call. */
    OK(ae_model_set_mode(a, AE_MODE_TRAIN));
    OK(ae_evaluate(a, x, NULL, 5, &la));
    assert_int_equal(h.calls, 5);
    OK(ae_model_set_batch_reduce(a, NULL, NULL));
    OK(ae_train_step(a, x, NULL, 5, &la));
    assert_int_equal(h.calls, 5);
    assert_int_equal(ae_model_set_batch_reduce(NULL, log_sync, &h), AE_ERR_INVALID_ARG);
    free(before);
    ae_model_destroy(a);
    ae_model_destroy(b);
}

/* Two "processes" as two threads, each with its own model and half of
 * each batch, summing through shared memory: the batch-statistics hook
 * sums, the gradient hook takes the mean weighted by the batch sizes (mean
 * reduction) or the sum. They train as one model on the whole batch. */
typedef struct pair {
    pthread_barrier_t bar;
    double *v[2];
    float *g[2];
    double *sc[2];
    size_t n;
    ae_reduction red;
} pair;
typedef struct pair_rank {
    pair *p;
    int rank;
    ae_model *m;
    const float *x; /* [steps, batch, 6] of this rank */
    size_t batch, steps;
    ae_status st;
} pair_rank;

static ae_status pair_sync(void *ctx, double *v, size_t n, ae_status local) {
    (void)local;
    pair_rank *r = ctx;
    r->p->v[r->rank] = v;
    pthread_barrier_wait(&r->p->bar);
    double *sum = malloc(n * sizeof *sum);
    assert_non_null(sum);
    for (size_t i = 0; i < n; i++) sum[i] = r->p->v[0][i] + r->p->v[1][i];
    pthread_barrier_wait(&r->p->bar);
    memcpy(v, sum, n * sizeof *sum);
    free(sum);
    return AE_OK;
}

static ae_status pair_grad(void *ctx, float *g, size_t n, double *sc, size_t ns) {
    (void)ns;
    pair_rank *r = ctx;
    pair *p = r->p;
    p->g[r->rank] = g;
    p->sc[r->rank] = sc;
    pthread_barrier_wait(&p->bar);
    double b0 = p->sc[0][AE_GRAD_SCALAR_BATCH], b1 = p->sc[1][AE_GRAD_SCALAR_BATCH];
    double w0 = p->red == AE_REDUCE_MEAN ? b0 / (b0 + b1) : 1.0;
    double w1 = p->red == AE_REDUCE_MEAN ? b1 / (b0 + b1) : 1.0;
    float *out = malloc(n * sizeof *out);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) out[i] = (float)(w0 * p->g[0][i] + w1 * p->g[1][i]);
    double s[AE_GRAD_SCALAR_BATCH];
    for (int k = 0; k < AE_GRAD_SCALAR_BATCH; k++) s[k] = w0 * p->sc[0][k] + w1 * p->sc[1][k];
    pthread_barrier_wait(&p->bar);
    memcpy(g, out, n * sizeof *out);
    memcpy(sc, s, sizeof s);
    free(out);
    return AE_OK;
}

static void *pair_train(void *arg) {
    pair_rank *r = arg;
    for (size_t t = 0; t < r->steps && !r->st; t++)
        r->st = ae_train_step(r->m, r->x + t * r->batch * 6, NULL, r->batch, NULL);
    return NULL;
}

/* |a - b| <= rtol · max |b|: relative to the array's scale, since Adam
 * turns rounding in small gradients into differences of a few 1e-7 of
 * the largest value (SGD: about one float ulp). */
static void assert_close_scaled(const float *a, const float *b, size_t n, double rtol,
                                const char *what) {
    double mx = 0.0;
    for (size_t i = 0; i < n; i++) mx = fmax(mx, fabs((double)b[i]));
    assert_close_arrays(a, b, n, 0.0, rtol * mx, what);
}

static void test_batch_reduce_two_threads(void **state) {
    (void)state;
    for (int red = 0; red < 2; red++) {
        ae_reduction reduction = red ? AE_REDUCE_SUM : AE_REDUCE_MEAN;
        enum { STEPS = 20, B0 = 3, B1 = 4 };
        float full[STEPS * (B0 + B1) * 6], x0[STEPS * B0 * 6], x1[STEPS * B1 * 6];
        test_fill(full, sizeof full / sizeof full[0], 77, -1.0f, 1.0f);
        for (size_t t = 0; t < STEPS; t++) {
            memcpy(x0 + t * B0 * 6, full + t * (B0 + B1) * 6, B0 * 6 * sizeof(float));
            memcpy(x1 + t * B1 * 6, full + (t * (B0 + B1) + B0) * 6, B1 * 6 * sizeof(float));
        }
        ae_model *ref = bn2_model(reduction);
        for (size_t t = 0; t < STEPS; t++) OK(ae_train_step(ref, full + t * (B0 + B1) * 6, NULL, B0 + B1, NULL));
        pair p;
        memset(&p, 0, sizeof p);
        p.red = reduction;
        pthread_barrier_init(&p.bar, NULL, 2);
        pair_rank r[2] = {{&p, 0, bn2_model(reduction), x0, B0, STEPS, AE_OK},
                          {&p, 1, bn2_model(reduction), x1, B1, STEPS, AE_OK}};
        pthread_t th[2];
        for (int k = 0; k < 2; k++) {
            OK(ae_model_set_batch_reduce(r[k].m, pair_sync, &r[k]));
            OK(ae_model_set_grad_reduce(r[k].m, pair_grad, &r[k]));
            assert_int_equal(pthread_create(&th[k], NULL, pair_train, &r[k]), 0);
        }
        for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
        for (int k = 0; k < 2; k++) {
            OK(r[k].st);
            assert_close_scaled(r[k].m->params, ref->params, ref->nparams, 1e-6, "parameter");
            assert_close_scaled(r[k].m->buffers, ref->buffers, ref->nbuffers, 1e-6,
                                "running statistic");
        }
        assert_memory_equal(r[0].m->params, r[1].m->params, ref->nparams * sizeof(float));
        pthread_barrier_destroy(&p.bar);
        for (int k = 0; k < 2; k++) ae_model_destroy(r[k].m);
        ae_model_destroy(ref);
    }
}

typedef struct state_log {
    unsigned char *data[AE_STATE_PART_COUNT];
    size_t bytes[AE_STATE_PART_COUNT];
    int write;       /* write data[] into the parts instead of reading them */
    int fail_part;   /* return AE_ERR_IO at this part, -1 never */
    int nan_part;    /* write a NaN into this float part, -1 never */
    int zero_rng;
} state_log;

static ae_status state_cb(void *ctx, ae_state_part part, void *data, size_t bytes) {
    state_log *h = ctx;
    if ((int)part == h->fail_part) return AE_ERR_IO;
    if (h->write) {
        assert_int_equal(bytes, h->bytes[part]);
        if (bytes) memcpy(data, h->data[part], bytes);
    } else {
        h->bytes[part] = bytes;
        h->data[part] = malloc(bytes ? bytes : 1);
        assert_non_null(h->data[part]);
        if (bytes) memcpy(h->data[part], data, bytes);
    }
    if ((int)part == h->nan_part && bytes) ((float *)data)[0] = NAN;
    if (part == AE_STATE_RNG && h->zero_rng) memset(data, 0, bytes);
    return AE_OK;
}

/* The state of a trained model, read and written into a fresh model of
 * the same architecture, makes the two the same model: they train alike
 * and their checkpoints are then bitwise equal. A failing callback, a NaN or an
 * all-zero RNG change nothing. */
static void test_visit_state(void **state) {
    (void)state;
    ae_model *a = bn2_model(AE_REDUCE_MEAN), *b = bn2_model(AE_REDUCE_MEAN);
    float x[5 * 6], la, lb;
    for (int step = 0; step < 3; step++) {
        test_fill(x, 30, 40 + (uint32_t)step, -1.0f, 1.0f);
        OK(ae_train_step(a, x, NULL, 5, &la));
    }
    state_log h;
    memset(&h, 0, sizeof h);
    h.fail_part = h.nan_part = -1;
    OK(ae_model_visit_state(a, state_cb, &h));
    assert_int_equal(h.bytes[AE_STATE_PARAMS], a->nparams * sizeof(float));
    assert_int_equal(h.bytes[AE_STATE_STEPS], 8);
    assert_int_equal(h.bytes[AE_STATE_RNG], 32);
    assert_int_equal(h.bytes[AE_STATE_ACTIVITY], 3 * 8);
    h.write = 1;
    size_t n;
    unsigned char *before = checkpoint(b, &n);
    for (int k = 0; k < 3; k++) {
        h.fail_part = k == 0 ? AE_STATE_RNG : -1;
        h.nan_part = k == 1 ? AE_STATE_LAYERS : -1;
        h.zero_rng = k == 2;
        ae_status want = k == 0 ? AE_ERR_IO : k == 1 ? AE_ERR_NUMERIC : AE_ERR_RANGE;
        assert_int_equal(ae_model_visit_state(b, state_cb, &h), want);
        assert_checkpoint(b, before, n);
    }
    h.fail_part = h.nan_part = -1;
    h.zero_rng = 0;
    OK(ae_model_visit_state(b, state_cb, &h));
    assert_int_equal(ae_model_step_count(b), 3);
    for (int step = 0; step < 3; step++) {
        test_fill(x, 30, 50 + (uint32_t)step, -1.0f, 1.0f);
        OK(ae_train_step(a, x, NULL, 5, &la));
        OK(ae_train_step(b, x, NULL, 5, &lb));
        assert_true(la == lb);
    }
    free(before);
    before = checkpoint(a, &n);
    assert_checkpoint(b, before, n);
    assert_int_equal(ae_model_visit_state(a, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_visit_state(NULL, state_cb, &h), AE_ERR_INVALID_ARG);
    for (int k = 0; k < AE_STATE_PART_COUNT; k++) free(h.data[k]);
    free(before);
    ae_model_destroy(a);
    ae_model_destroy(b);
}

/* ---- the numeric battery: finite in, finite state out, or nothing changed ---- */

typedef struct numeric_case {
    const char *name;
    int arch;          /* 0 dense MLP, 1 BatchNorm on the input, 2 conv + BatchNorm, 3 VAE */
    ae_optimizer opt;
    double lr, wd, momentum, eps; /* wd, momentum, eps: < 0 keeps the default */
    float lo, hi;      /* the input's range */
    int own_target;    /* the target is in [0, 1], not the input */
    float big;         /* when not 0: every weight of layer 0 set to it */
} numeric_case;

static ae_model *numeric_model(const numeric_case *k) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    switch (k->arch) {
    case 0:
        OK(ae_config_set_input_size(c, 16));
        OK(ae_config_add_dense(c, 8, AE_ACT_TANH));
        OK(ae_config_add_dense(c, 4, AE_ACT_IDENTITY));
        OK(ae_config_mirror_decoder(c, AE_ACT_IDENTITY));
        break;
    case 1:
        OK(ae_config_set_input_shape(c, 1, 4, 4));
        OK(ae_config_add_conv2d(c, 2, 1, 1, 0, AE_ACT_IDENTITY));
        OK(ae_config_add_batchnorm(c));
        OK(ae_config_mark_code(c));
        OK(ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_IDENTITY));
        break;
    case 2:
        OK(ae_config_set_input_shape(c, 1, 4, 4));
        OK(ae_config_add_batchnorm(c));
        OK(ae_config_add_conv2d(c, 2, 3, 1, 1, AE_ACT_RELU));
        OK(ae_config_add_batchnorm(c));
        OK(ae_config_mark_code(c));
        OK(ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_IDENTITY));
        break;
    default:
        OK(ae_config_set_input_size(c, 16));
        OK(ae_config_add_dense(c, 8, AE_ACT_TANH));
        OK(ae_config_add_gaussian(c, 3));
        OK(ae_config_mirror_decoder(c, AE_ACT_IDENTITY));
        break;
    }
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, k->opt));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, k->lr));
    if (k->wd >= 0) OK(ae_config_set_float(c, AE_P_WEIGHT_DECAY, k->wd));
    if (k->momentum >= 0) OK(ae_config_set_float(c, AE_P_MOMENTUM, k->momentum));
    /* An epsilon that is 0 in float may be refused by the settings' range. */
    if (k->eps >= 0) (void)ae_config_set_float(c, AE_P_EPSILON, k->eps);
    OK(ae_config_set_int(c, AE_P_SEED, 21));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    if (k->big != 0.0f) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, 0, &info));
        float *w = malloc(info.weight_count * sizeof *w);
        for (size_t i = 0; i < info.weight_count; i++) w[i] = (i % 2 ? -1.0f : 1.0f) * k->big;
        OK(ae_model_set_weights(m, 0, w, info.weight_count));
        free(w);
    }
    return m;
}

static int arrays_finite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

/* Every value a step can write is finite (white-box), and the model
 * survives a checkpoint round trip bit for bit. */
static void assert_finite_and_round_trips(const ae_model *m, const char *name, int step) {
    if (!arrays_finite(m->params, m->nparams) || !arrays_finite(m->state1, m->nparams) ||
        !arrays_finite(m->state2, m->nparams) || !arrays_finite(m->buffers, m->nbuffers) ||
        !isfinite(m->last_loss)) {
        print_error("%s, step %d: a successful call left a non-finite value\n", name, step);
        fail();
    }
    for (unsigned flags = 0; flags <= AE_SAVE_CHECKPOINT; flags++) {
        size_t n = 0, n2 = 0;
        assert_int_equal(ae_model_save_buffer(m, NULL, 0, &n, flags), AE_ERR_RANGE);
        unsigned char *buf = malloc(n), *buf2 = malloc(n);
        OK(ae_model_save_buffer(m, buf, n, &n, flags));
        ae_model *back = NULL;
        ae_config *lc = NULL;
        OK(ae_config_create(&lc, NULL));
        ae_status st = ae_model_load_buffer(&back, buf, n, lc);
        if (st) {
            print_error("%s, step %d: the saved model does not load: %s\n", name, step,
                        ae_config_last_error(lc));
            fail();
        }
        ae_config_destroy(lc);
        OK(ae_model_save_buffer(back, buf2, n, &n2, flags));
        assert_int_equal(n2, n);
        assert_memory_equal(buf, buf2, n);
        ae_model_destroy(back);
        free(buf);
        free(buf2);
    }
}

/* Runs one call of the battery: AE_OK with everything finite, or
 * AE_ERR_NUMERIC with the model bitwise as before. Returns the status. */
static ae_status numeric_call(ae_model *m, int call, const float *x, const float *t, size_t batch,
                              const char *name, int step) {
    size_t n;
    unsigned char *before = checkpoint(m, &n);
    float loss = -1.0f, out[8 * 16];
    ae_status st = call == 0   ? ae_train_step(m, x, t, batch, &loss)
                   : call == 1 ? ae_evaluate(m, x, t, batch, &loss)
                               : ae_reconstruct(m, x, batch, out);
    if (st == AE_OK) {
        assert_finite_and_round_trips(m, name, step);
    } else {
        if (st != AE_ERR_NUMERIC) {
            print_error("%s, step %d, call %d: %s (%s)\n", name, step, call, ae_status_name(st),
                        ae_model_last_error(m));
            fail();
        }
        assert_true(loss == -1.0f);
        assert_checkpoint(m, before, n);
    }
    free(before);
    return st;
}

/* Huge inputs, huge learning rates and decays, huge weights set by the
 * caller, overflowing BatchNorm statistics, an epsilon that is 0 in float:
 * every step either trains to finite parameters, optimizer state and layer
 * state, or fails with AE_ERR_NUMERIC and changes nothing; and whatever
 * happened, the model saves and loads. Evaluation and reconstruction in
 * training mode (they update BatchNorm's running statistics) too. */
static void test_numeric_battery(void **state) {
    (void)state;
    static const numeric_case cases[] = {
        {"dense, Adam, inputs 1e18", 0, AE_OPT_ADAM, 1e-3, -1, -1, -1, -1e18f, 1e18f, 0, 0},
        {"dense, Adam, inputs 3e37", 0, AE_OPT_ADAM, 1e-3, -1, -1, -1, -3e37f, 3e37f, 0, 0},
        {"dense, SGD, inputs 1e30, target", 0, AE_OPT_SGD, 1e-3, -1, -1, -1, -1e30f, 1e30f, 1, 0},
        {"dense, SGD, lr 1e6", 0, AE_OPT_SGD, 1e6, -1, -1, -1, 0, 1, 0, 0},
        {"dense, SGD momentum, lr 1e6, decay 1e6", 0, AE_OPT_SGD, 1e6, 1e6, 0.9, -1, 0, 1, 0, 0},
        {"dense, Adam, lr 1e6, decay 1e6", 0, AE_OPT_ADAM, 1e6, 1e6, -1, -1, 0, 1, 0, 0},
        {"dense, AdamW, lr 1e6, decay 1e6", 0, AE_OPT_ADAMW, 1e6, 1e6, -1, -1, 0, 1, 0, 0},
        {"dense, Adam, lr 1e6", 0, AE_OPT_ADAM, 1e6, -1, -1, -1, 0, 1, 0, 0},
        {"dense, Adam, eps 1e-50", 0, AE_OPT_ADAM, 1e-3, -1, -1, 1e-50, 0, 1, 0, 0},
        {"dense, SGD, weights 1e38", 0, AE_OPT_SGD, 1e-2, -1, -1, -1, 0, 1, 0, 1e38f},
        {"dense, SGD, weights 3e38, decay 2", 0, AE_OPT_SGD, 1e-2, 2, 0.9, -1, 0, 1, 0, 3e38f},
        {"dense, AdamW, weights 3e38, lr 1, decay 3", 0, AE_OPT_ADAMW, 1, 3, -1, -1, 0, 1, 0, 3e38f},
        {"dense, Adam, weights 3e38, decay 1", 0, AE_OPT_ADAM, 1e-2, 1, -1, -1, 0, 1, 0, 3e38f},
        {"conv + BatchNorm, weights 1e38", 1, AE_OPT_ADAM, 1e-3, -1, -1, -1, 0, 1, 0, 1e38f},
        {"conv + BatchNorm, weights 1e38, SGD", 1, AE_OPT_SGD, 1e-2, -1, -1, -1, 0, 1, 1, 1e38f},
        {"BatchNorm, inputs 6e19", 2, AE_OPT_ADAM, 1e-3, -1, -1, -1, -6e19f, 6e19f, 1, 0},
        {"BatchNorm, inputs 2e19", 2, AE_OPT_ADAM, 1e-3, -1, -1, -1, -2e19f, 2e19f, 1, 0},
        {"BatchNorm, Adam, lr 1e6", 2, AE_OPT_ADAM, 1e6, -1, -1, -1, 0, 1, 0, 0},
        {"VAE, inputs 1e18", 3, AE_OPT_ADAM, 1e-3, -1, -1, -1, -1e18f, 1e18f, 0, 0},
        {"VAE, Adam, lr 1e6", 3, AE_OPT_ADAM, 1e6, -1, -1, -1, 0, 1, 0, 0},
        {"VAE, SGD, lr 1e6", 3, AE_OPT_SGD, 1e6, -1, -1, -1, 0, 1, 0, 0},
        {"VAE, weights 1e38", 3, AE_OPT_ADAM, 1e-3, -1, -1, -1, 0, 1, 0, 1e38f},
    };
    enum { B = 8, IN = 16, STEPS = 6 };
    int failed = 0, trained = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const numeric_case *c = &cases[k];
        ae_model *m = numeric_model(c);
        assert_finite_and_round_trips(m, c->name, -1);
        float x[B * IN], t[B * IN];
        for (int step = 0; step < STEPS; step++) {
            /* In [0, 1) first: test_fill's arithmetic would overflow near FLT_MAX. */
            test_fill(x, B * IN, 300 + (uint32_t)(k * 16 + (size_t)step), 0.0f, 1.0f);
            for (size_t i = 0; i < B * IN; i++)
                x[i] = (float)(c->lo + ((double)c->hi - c->lo) * x[i]);
            test_fill(t, B * IN, 900 + (uint32_t)step, 0.0f, 1.0f);
            ae_status st = numeric_call(m, 0, x, c->own_target ? t : NULL, B, c->name, step);
            /* An update refused names its block: here the huge weight. */
            if (st && c->big > 1e38f && strstr(ae_model_last_error(m), "the update"))
                assert_non_null(strstr(ae_model_last_error(m), "layer 0's weight"));
            if (st) failed++;
            else trained++;
        }
        OK(ae_model_set_mode(m, AE_MODE_TRAIN));
        numeric_call(m, 1, x, c->own_target ? t : NULL, B, c->name, STEPS);
        numeric_call(m, 2, x, NULL, B, c->name, STEPS);
        assert_finite_and_round_trips(m, c->name, STEPS);
        ae_model_destroy(m);
    }
    /* The battery reaches both outcomes. */
    assert_true(failed > 0 && trained > 0);
}

/* A model that saves loads: a value the loader would refuse (injected,
 * white-box: no call leaves one) makes the save fail with AE_ERR_NUMERIC
 * and write nothing. */
static void test_save_refuses_non_finite(void **state) {
    (void)state;
    ae_model *m = bn_noise_model();
    float x[6 * 10], loss;
    test_fill(x, 60, 2, 0, 1);
    OK(ae_train_step(m, x, NULL, 6, &loss));
    char path[] = "/tmp/ae-test-numeric-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
    float *sites[] = {&m->params[3], &m->buffers[1], &m->state2[2]};
    for (int k = 0; k < 4; k++) {
        float keep = k < 3 ? *sites[k] : 0.0f;
        double keep_loss = m->stat_recon;
        if (k < 3)
            *sites[k] = k == 1 ? NAN : INFINITY;
        else
            m->stat_recon = NAN;
        size_t n = 0;
        unsigned char buf[1];
        /* The optimizer state and the statistics are saved in checkpoints only. */
        assert_int_equal(ae_model_save_buffer(m, buf, sizeof buf, &n, AE_SAVE_MODEL),
                         k < 2 ? AE_ERR_NUMERIC : AE_ERR_RANGE);
        assert_int_equal(ae_model_save_buffer(m, NULL, 0, &n, AE_SAVE_CHECKPOINT), AE_ERR_NUMERIC);
        assert_non_null(strstr(ae_model_last_error(m), "not finite"));
        assert_int_equal(ae_model_save(m, path, AE_SAVE_CHECKPOINT), AE_ERR_NUMERIC);
        assert_int_equal(access(path, F_OK), -1);
        if (k < 3)
            *sites[k] = keep;
        else
            m->stat_recon = keep_loss;
    }
    OK(ae_model_save(m, path, AE_SAVE_CHECKPOINT));
    unlink(path);
    ae_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes_and_counts),
        cmocka_unit_test(test_builder_explicit_decoder_and_bias),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_mirror_architecture),
        cmocka_unit_test(test_step_refuses_bad_input_and_changes_nothing),
        cmocka_unit_test(test_nonfinite_loss_changes_nothing),
        cmocka_unit_test(test_loss_overflowing_float_refused),
        cmocka_unit_test(test_failing_allocator_every_index),
        cmocka_unit_test(test_no_allocation_after_first_step),
        cmocka_unit_test(test_inference_after_every_write),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_backend_of_model),
        cmocka_unit_test(test_backends_agree),
        cmocka_unit_test(test_seed_uses_64_bits),
        cmocka_unit_test(test_two_threads_match_sequential),
        cmocka_unit_test(test_encode_decode_consistent),
        cmocka_unit_test(test_model_gradient_fd),
        cmocka_unit_test(test_grad_clip_and_settings),
        cmocka_unit_test(test_weight_decay_defaults),
        cmocka_unit_test(test_learns),
        cmocka_unit_test(test_every_output_activation),
        cmocka_unit_test(test_workspace_size),
        cmocka_unit_test(test_layer_state),
        cmocka_unit_test(test_float_settings_precision),
        cmocka_unit_test(test_grad_reduce_sees_complete_arena),
        cmocka_unit_test(test_grad_reduce_result_is_used),
        cmocka_unit_test(test_grad_reduce_failures_change_nothing),
        cmocka_unit_test(test_grad_reduce_rewrites_sparse_rows),
        cmocka_unit_test(test_batch_reduce_sequence),
        cmocka_unit_test(test_batch_reduce_two_threads),
        cmocka_unit_test(test_visit_state),
        cmocka_unit_test(test_numeric_battery),
        cmocka_unit_test(test_save_refuses_non_finite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
