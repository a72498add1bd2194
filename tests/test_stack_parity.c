/*
 * PyTorch parity of weight tying, freezing and untying, through the public
 * API only.
 *
 * Each case generates the initial parameters (test_fill, as the generator
 * does), replays a schedule of tie / untie / freeze / unfreeze calls and
 * training steps on the fixture's batches, and compares every loss and the
 * stored parameters with PyTorch 1.13's. Fixtures and format:
 * tests/fixtures/README.md ("Stacking parity fixtures"), written by
 * tests/fixtures/gen_stack_parity.py.
 */
#include "test_util.h"

#include "fixture.h"

#define LOSS_TOL 1e-4
#define PARAM_TOL 1e-4
#define UPDATE_TOL 1e-3
#define MAX_LAYERS 4

typedef enum { EV_TIE, EV_UNTIE, EV_FREEZE, EV_UNFREEZE } ev_kind;

typedef struct event {
    size_t step; /* happens before this step (1-based) */
    ev_kind kind;
    size_t first, last; /* encoder layers for tie/untie, any layers for freeze */
} event;

typedef struct stack_case {
    const char *file;
    size_t layers, encoder_layers;
    size_t sizes[MAX_LAYERS + 1];
    ae_activation act[MAX_LAYERS];
    int tied; /* ae_config_tie */
    size_t batch, steps;
    ae_loss loss;
    ae_optimizer opt;
    double lr, momentum, weight_decay;
    event ev[6];
    size_t nev;
} stack_case;

#define SMALL_SIZES {20, 12, 6, 12, 20}
#define SMALL_ACTS {AE_ACT_TANH, AE_ACT_IDENTITY, AE_ACT_TANH, AE_ACT_SIGMOID}

/* 784-128-784 tied at creation, Adam, 5 steps. */
static const stack_case case_tied_adam = {
    .file = "stack_tied_adam", .layers = 2, .encoder_layers = 1,
    .sizes = {784, 128, 784}, .act = {AE_ACT_RELU, AE_ACT_SIGMOID}, .tied = 1,
    .batch = 8, .steps = 5, .loss = AE_LOSS_MSE, .opt = AE_OPT_ADAM, .lr = 1e-3,
};

/* Outer layers frozen from the start, Adam with L2 weight decay, 5 steps. */
static const stack_case case_frozen_adam = {
    .file = "stack_frozen_adam", .layers = 4, .encoder_layers = 2,
    .sizes = SMALL_SIZES, .act = SMALL_ACTS,
    .batch = 8, .steps = 5, .loss = AE_LOSS_MSE, .opt = AE_OPT_ADAM, .lr = 1e-2,
    .weight_decay = 1e-2,
    .ev = {{1, EV_FREEZE, 0, 0}, {1, EV_FREEZE, 3, 3}}, .nev = 2,
};

/* Tied at creation, 3 steps; untied; 3 steps (fresh Adam state for the decoder). */
static const stack_case case_tie_untie_adam = {
    .file = "stack_tie_untie_adam", .layers = 4, .encoder_layers = 2,
    .sizes = SMALL_SIZES, .act = SMALL_ACTS, .tied = 1,
    .batch = 8, .steps = 6, .loss = AE_LOSS_BCE, .opt = AE_OPT_ADAM, .lr = 1e-2,
    .ev = {{4, EV_UNTIE, 0, 1}}, .nev = 1,
};

/* The greedy stages: outer frozen and inner pair tied for 3 steps, then all
 * unfrozen and untied for 3 steps; SGD with momentum. */
static const stack_case case_greedy_sgd = {
    .file = "stack_greedy_sgd", .layers = 4, .encoder_layers = 2,
    .sizes = SMALL_SIZES, .act = SMALL_ACTS,
    .batch = 8, .steps = 6, .loss = AE_LOSS_MSE, .opt = AE_OPT_SGD, .lr = 0.5, .momentum = 0.9,
    .ev = {{1, EV_FREEZE, 0, 0}, {1, EV_FREEZE, 3, 3}, {1, EV_TIE, 1, 1},
           {4, EV_UNFREEZE, 0, 3}, {4, EV_UNTIE, 1, 1}},
    .nev = 5,
};

typedef struct state {
    fixture fx;
    ae_config *cfg;
    ae_model *m;
    float *init[2 * MAX_LAYERS];  /* generated initial parameters */
    float *start[2 * MAX_LAYERS]; /* where each tensor's trajectory started */
    float *buf, *buf2;
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
        for (size_t i = 0; i < 2 * MAX_LAYERS; i++) {
            free(s->init[i]);
            free(s->start[i]);
        }
        free(s->buf);
        free(s->buf2);
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

/* Array indices (tests/fixtures/README.md). */
static size_t ix_batch(size_t step) { return 1 + step; }
static size_t ix_losses(const stack_case *c) { return 1 + c->steps; }
static size_t ix_stored(const stack_case *c, size_t k, size_t layer, int bias) {
    return ix_losses(c) + 1 + 2 * c->layers * k + 2 * layer + (size_t)bias;
}

static size_t meta_int(const fixture *fx, size_t i) {
    if (i >= fx->count[0]) fail_msg("fixture meta array too short");
    float v = fx->array[0][i];
    if (!(v >= 0.0f && v <= 16777216.0f && v == floorf(v)))
        fail_msg("fixture meta[%zu] = %g is not a count", i, (double)v);
    return (size_t)v;
}

static size_t check_fixture(const fixture *fx, const stack_case *c, size_t *stored, size_t max) {
    size_t L = c->layers;
    if (meta_int(fx, 0) != c->batch || meta_int(fx, 1) != c->steps || meta_int(fx, 2) != L)
        fail_msg("%s: batch/steps/layers in the fixture differ from the test's", c->file);
    for (size_t l = 0; l <= L; l++)
        if (meta_int(fx, 3 + l) != c->sizes[l])
            fail_msg("%s: width %zu differs from the test's", c->file, l);
    size_t k = meta_int(fx, 4 + L);
    if (k == 0 || k > max || fx->count[0] != 5 + L + k) fail_msg("%s: bad stored-step list", c->file);
    for (size_t i = 0; i < k; i++) {
        stored[i] = meta_int(fx, 5 + L + i);
        if (stored[i] < 1 || stored[i] > c->steps || (i > 0 && stored[i] <= stored[i - 1]))
            fail_msg("%s: bad stored step %zu", c->file, stored[i]);
    }
    if (fx->n != 2 + c->steps + 2 * L * k) fail_msg("%s: %zu arrays", c->file, fx->n);
    for (size_t s = 0; s < c->steps; s++)
        assert_int_equal(fx->count[ix_batch(s)], c->batch * c->sizes[0]);
    assert_int_equal(fx->count[ix_losses(c)], c->steps);
    for (size_t i = 0; i < k; i++)
        for (size_t l = 0; l < L; l++) {
            size_t wc = fx->count[ix_stored(c, i, l, 0)];
            /* A tied decoder layer's weight is not stored (it is its partner's). */
            if (wc != 0) assert_int_equal(wc, c->sizes[l + 1] * c->sizes[l]);
            assert_int_equal(fx->count[ix_stored(c, i, l, 1)], c->sizes[l + 1]);
        }
    return k;
}

static void build(state *s, const stack_case *c) {
    CFG_OK(NULL, ae_config_create(&s->cfg, NULL));
    ae_config *cfg = s->cfg;
    CFG_OK(cfg, ae_config_set_input_size(cfg, c->sizes[0]));
    for (size_t l = 0; l < c->layers; l++) {
        if (l == c->encoder_layers) CFG_OK(cfg, ae_config_mark_code(cfg));
        CFG_OK(cfg, ae_config_add_dense(cfg, c->sizes[l + 1], c->act[l]));
    }
    CFG_OK(cfg, ae_config_set_int(cfg, AE_P_LOSS, c->loss));
    CFG_OK(cfg, ae_config_set_int(cfg, AE_P_OPTIMIZER, c->opt));
    CFG_OK(cfg, ae_config_set_float(cfg, AE_P_LEARNING_RATE, c->lr));
    CFG_OK(cfg, ae_config_set_float(cfg, AE_P_MOMENTUM, c->momentum));
    CFG_OK(cfg, ae_config_set_float(cfg, AE_P_WEIGHT_DECAY, c->weight_decay));
    if (c->tied) CFG_OK(cfg, ae_config_tie(cfg));
    CFG_OK(cfg, ae_model_create(&s->m, cfg));

    /* The generator's initial parameters: layer l's weight from seed 100 + 2l,
     * its bias from 101 + 2l, U[-1/√in, 1/√in). */
    size_t maxw = 0;
    for (size_t l = 0; l < c->layers; l++) {
        size_t in = c->sizes[l], out = c->sizes[l + 1];
        float bound = 1.0f / sqrtf((float)in);
        for (int b = 0; b < 2; b++) {
            size_t n = b ? out : out * in;
            s->init[2 * l + b] = malloc(n * sizeof(float));
            s->start[2 * l + b] = malloc(n * sizeof(float));
            assert_true(s->init[2 * l + b] && s->start[2 * l + b]);
            test_fill(s->init[2 * l + b], n, (uint32_t)(100 + 2 * l + (size_t)b), -bound, bound);
            memcpy(s->start[2 * l + b], s->init[2 * l + b], n * sizeof(float));
        }
        if (out * in > maxw) maxw = out * in;
        /* A tied decoder layer's own initial weight is not used. */
        if (!(l >= c->encoder_layers && ae_model_is_tied(s->m, l)))
            MODEL_OK(s->m, ae_model_set_weights(s->m, l, s->init[2 * l], out * in));
        MODEL_OK(s->m, ae_model_set_bias(s->m, l, s->init[2 * l + 1], out));
    }
    s->buf = malloc(maxw * sizeof(float));
    s->buf2 = malloc(maxw * sizeof(float));
    assert_true(s->buf && s->buf2);
}

static void apply_events(state *s, const stack_case *c, size_t step) {
    ae_model *m = s->m;
    for (size_t i = 0; i < c->nev; i++) {
        const event *e = &c->ev[i];
        if (e->step != step) continue;
        switch (e->kind) {
        case EV_TIE: MODEL_OK(m, ae_model_tie_layers(m, e->first, e->last)); break;
        case EV_FREEZE: MODEL_OK(m, ae_model_freeze(m, e->first, e->last)); break;
        case EV_UNFREEZE: MODEL_OK(m, ae_model_unfreeze(m, e->first, e->last)); break;
        case EV_UNTIE:
            MODEL_OK(m, ae_model_untie_layers(m, e->first, e->last));
            /* The decoder's new weight starts as its partner's, transposed. */
            for (size_t enc = e->first; enc <= e->last; enc++) {
                size_t dec = c->layers - 1 - enc;
                MODEL_OK(m, ae_model_get_weights(m, dec, s->start[2 * dec],
                                                 c->sizes[dec] * c->sizes[dec + 1]));
            }
            break;
        }
    }
}

static int compare(const stack_case *c, size_t step, size_t layer, int bias, const float *got,
                   const float *ref, const float *start, size_t n) {
    double err2 = 0, ref2 = 0, moved2 = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i], mv = (double)ref[i] - start[i];
        err2 += d * d;
        ref2 += (double)ref[i] * ref[i];
        moved2 += mv * mv;
    }
    double rel = ref2 > 0 ? sqrt(err2 / ref2) : sqrt(err2);
    double rel_update = moved2 > 0 ? sqrt(err2 / moved2) : 0.0;
    if (rel <= PARAM_TOL && rel_update <= UPDATE_TOL && rel == rel) return 0;
    print_error("%s step %zu layer %zu %s: rel L2 error %.3g (tol %g), relative to the update "
                "%.3g (tol %g)\n",
                c->file, step, layer, bias ? "bias" : "weight", rel, PARAM_TOL, rel_update,
                UPDATE_TOL);
    return 1;
}

static int check_params(state *s, const stack_case *c, size_t step, size_t k) {
    ae_model *m = s->m;
    const fixture *fx = &s->fx;
    int bad = 0;
    for (size_t l = 0; l < c->layers; l++) {
        for (int b = 0; b < 2; b++) {
            size_t ix = ix_stored(c, k, l, b), n = fx->count[ix];
            size_t want = b ? c->sizes[l + 1] : c->sizes[l + 1] * c->sizes[l];
            if (n == 0) {
                /* PyTorch's decoder uses its partner's weight: so must libae's. */
                size_t p = c->layers - 1 - l;
                if (!ae_model_is_tied(m, l) || l < c->encoder_layers)
                    fail_msg("%s step %zu: layer %zu is tied in PyTorch, not in libae", c->file,
                             step, l);
                MODEL_OK(m, ae_model_get_weights(m, l, s->buf, want));
                MODEL_OK(m, ae_model_get_weights(m, p, s->buf2, want));
                for (size_t r = 0; r < c->sizes[l + 1]; r++)
                    for (size_t q = 0; q < c->sizes[l]; q++)
                        if (s->buf[r * c->sizes[l] + q] != s->buf2[q * c->sizes[l + 1] + r])
                            fail_msg("%s step %zu: layer %zu is not layer %zu's transpose",
                                     c->file, step, l, p);
                continue;
            }
            if (!b && l >= c->encoder_layers && ae_model_is_tied(m, l))
                fail_msg("%s step %zu: layer %zu is tied in libae, not in PyTorch", c->file, step, l);
            if (b)
                MODEL_OK(m, ae_model_get_bias(m, l, s->buf, n));
            else
                MODEL_OK(m, ae_model_get_weights(m, l, s->buf, n));
            if (ae_model_is_frozen(m, l)) {
                /* Every frozen layer of these cases is frozen from the start:
                 * its parameters are the initial ones, bit for bit, on both sides. */
                assert_memory_equal(s->buf, s->init[2 * l + b], n * sizeof(float));
                assert_memory_equal(fx->array[ix], s->init[2 * l + b], n * sizeof(float));
                continue;
            }
            bad |= compare(c, step, l, b, s->buf, fx->array[ix], s->start[2 * l + b], n);
        }
    }
    return bad;
}

static void run_case(void **st, const stack_case *c) {
    state *s = *st;
    if (fixture_load(&s->fx, c->file) != 0) fail_msg("cannot load fixture %s", c->file);
    size_t stored[16];
    size_t nstored = check_fixture(&s->fx, c, stored, 16);
    build(s, c);
    ae_model *m = s->m;
    const float *ref_loss = s->fx.array[ix_losses(c)];
    size_t k = 0;
    for (size_t step = 1; step <= c->steps; step++) {
        apply_events(s, c, step);
        float loss = NAN;
        MODEL_OK(m, ae_train_step(m, s->fx.array[ix_batch(step - 1)], NULL, c->batch, &loss));
        double want = ref_loss[step - 1];
        int bad = 0;
        if (!(fabs((double)loss - want) <= LOSS_TOL * fabs(want))) {
            print_error("%s step %zu: loss %.9g, PyTorch %.9g\n", c->file, step, (double)loss, want);
            bad = 1;
        }
        if (k < nstored && stored[k] == step) bad |= check_params(s, c, step, k++);
        if (bad) fail_msg("%s: step %zu differs from PyTorch (details above)", c->file, step);
    }
    assert_int_equal(k, nstored);
    assert_int_equal(ae_model_step_count(m), c->steps);
}

static void test_tied_adam(void **st) {
    run_case(st, &case_tied_adam);
    /* One weight, counted once: 784*128 + 128 + 784. */
    assert_int_equal(ae_model_param_count(((state *)*st)->m), 784 * 128 + 128 + 784);
}
static void test_frozen_adam(void **st) { run_case(st, &case_frozen_adam); }
static void test_tie_untie_adam(void **st) { run_case(st, &case_tie_untie_adam); }
static void test_greedy_sgd(void **st) { run_case(st, &case_greedy_sgd); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tied_adam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frozen_adam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tie_untie_adam, setup, teardown),
        cmocka_unit_test_setup_teardown(test_greedy_sgd, setup, teardown),
    };
    return cmocka_run_group_tests_name("stack_parity", tests, NULL, NULL);
}
