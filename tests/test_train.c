/* Tests of src/train (ae_fit: batching, shuffling, validation, schedules,
 * warm-up, early stopping, callback, history, refusals, failing
 * allocations) and of the denoising training step (corruption from the
 * model's RNG, clean target, caller's data untouched, no allocation after
 * the first step, a failed step changes nothing). */
#include "test_util.h"

#include <stdio.h>
#include <unistd.h>

#include "core/noise.h"
#include "model/model.h"

#define OK(call) assert_int_equal((call), AE_OK)

enum { IN = 12, N = 40 };

static ae_model *make_model(const ae_allocator *alloc, int64_t seed, ae_optimizer opt) {
    ae_config *c = NULL;
    if (ae_config_create(&c, alloc) != AE_OK) return NULL;
    ae_model *m = NULL;
    if (ae_config_set_input_size(c, IN) == AE_OK && ae_config_add_dense(c, 8, AE_ACT_TANH) == AE_OK &&
        ae_config_add_dense(c, 3, AE_ACT_IDENTITY) == AE_OK &&
        ae_config_mirror_decoder(c, AE_ACT_SIGMOID) == AE_OK &&
        ae_config_set_int(c, AE_P_OPTIMIZER, opt) == AE_OK &&
        ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-2) == AE_OK &&
        ae_config_set_int(c, AE_P_SEED, seed) == AE_OK)
        ae_model_create(&m, c);
    ae_config_destroy(c);
    return m;
}

static void params_of(const ae_model *m, float *dst) { memcpy(dst, m->params, m->nparams * sizeof(float)); }

static ae_dataset *make_data(size_t n, uint32_t seed, float *x) {
    test_fill(x, n * IN, seed, 0.0f, 1.0f);
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_from_memory(ds, x, NULL, n, IN, 1, 1, AE_DATA_COPY));
    return ds;
}

/* ---- denoising training step ---- */

static void test_denoising_step_matches_manual(void **state) {
    (void)state;
    ae_noise_kind kinds[5] = {AE_NOISE_GAUSSIAN, AE_NOISE_MASK, AE_NOISE_BERNOULLI,
                              AE_NOISE_DROPOUT, AE_NOISE_SALT_PEPPER};
    for (int k = 0; k < 5; k++) {
        ae_model *a = make_model(NULL, 5, AE_OPT_ADAM), *b = make_model(NULL, 5, AE_OPT_ADAM);
        OK(ae_model_set_int(a, AE_P_NOISE_KIND, kinds[k]));
        OK(ae_model_set_float(a, AE_P_NOISE_LEVEL, 0.3));
        OK(ae_model_set_int(a, AE_P_NOISE_CLIP, 1));
        OK(ae_model_set_float(a, AE_P_NOISE_CLIP_LO, 0.1));
        OK(ae_model_set_float(a, AE_P_NOISE_CLIP_HI, 0.9));
        OK(ae_model_set_float(a, AE_P_NOISE_VALUE, 0.5));
        OK(ae_model_set_float(a, AE_P_NOISE_MEAN, 0.01));
        float x[8 * IN], copy[8 * IN], noisy[8 * IN], la, lb;
        test_fill(x, 8 * IN, 3, 0.0f, 1.0f);
        memcpy(copy, x, sizeof x);
        for (int step = 0; step < 3; step++) {
            /* The step corrupts from the model's RNG; model b gets the same
             * corrupted input with the clean input as the target. */
            ae_noise_spec ns = {kinds[k], 0.3, 0.01, 0.5, 1, 0.1, 0.9};
            ae_rng r = a->rng;
            ae_noise_apply(&ns, &r, x, noisy, 8, IN);
            OK(ae_train_step(a, x, NULL, 8, &la));
            OK(ae_train_step(b, noisy, x, 8, &lb));
            assert_true(la == lb);
            assert_memory_equal(&r, &a->rng, sizeof r);
            assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
        }
        assert_memory_equal(x, copy, sizeof x); /* the caller's data is never modified */
        /* Evaluation does not corrupt. */
        OK(ae_evaluate(a, x, NULL, 8, &la));
        OK(ae_evaluate(b, x, NULL, 8, &lb));
        assert_true(la == lb);
        ae_model_destroy(a);
        ae_model_destroy(b);
    }
}

static void test_denoising_settings(void **state) {
    (void)state;
    ae_model *m = make_model(NULL, 1, AE_OPT_SGD);
    double lo, hi;
    int is_int, ch;
    OK(ae_param_bounds(AE_P_NOISE_KIND, &is_int, &lo, &hi, &ch));
    assert_true(is_int && lo == 0 && hi == 5 && ch);
    int64_t iv;
    double fv;
    OK(ae_model_get_int(m, AE_P_NOISE_KIND, &iv));
    assert_int_equal(iv, AE_NOISE_NONE);
    OK(ae_model_get_float(m, AE_P_NOISE_CLIP_HI, &fv));
    assert_true(fv == 1.0);
    assert_int_equal(ae_model_set_int(m, AE_P_NOISE_KIND, 6), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "AE_P_NOISE_KIND"));
    assert_int_equal(ae_model_set_float(m, AE_P_NOISE_LEVEL, -1), AE_ERR_RANGE);
    assert_int_equal(ae_model_set_int(m, AE_P_NOISE_LEVEL, 1), AE_ERR_INVALID_ARG);

    /* The level's range depends on the kind: checked at the step, nothing changes. */
    float x[4 * IN], loss;
    test_fill(x, 4 * IN, 1, 0, 1);
    float before[512];
    assert_true(m->nparams <= 512);
    params_of(m, before);
    ae_rng r0 = m->rng;
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_DROPOUT));
    OK(ae_model_set_float(m, AE_P_NOISE_LEVEL, 1.0));
    assert_int_equal(ae_train_step(m, x, NULL, 4, &loss), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "AE_P_NOISE_LEVEL"));
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
    OK(ae_model_set_int(m, AE_P_NOISE_CLIP, 1));
    OK(ae_model_set_float(m, AE_P_NOISE_CLIP_LO, 2.0));
    assert_int_equal(ae_train_step(m, x, NULL, 4, &loss), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "AE_P_NOISE_CLIP_LO"));
    OK(ae_model_set_float(m, AE_P_NOISE_CLIP_LO, 0.0));
    /* NaN in the input: refused before any draw. */
    x[5] = NAN;
    assert_int_equal(ae_train_step(m, x, NULL, 4, &loss), AE_ERR_NUMERIC);
    x[5] = 0.5f;
    /* A loss that overflows: the RNG is rewound with the parameters. */
    OK(ae_model_set_float(m, AE_P_NOISE_LEVEL, 1e6));
    OK(ae_model_set_int(m, AE_P_NOISE_CLIP, 0));
    float tgt[4 * IN];
    for (int i = 0; i < 4 * IN; i++) tgt[i] = 1e30f;
    assert_int_equal(ae_train_step(m, x, tgt, 4, &loss), AE_ERR_NUMERIC);
    assert_memory_equal(&r0, &m->rng, sizeof r0);
    assert_memory_equal(before, m->params, m->nparams * sizeof(float));
    assert_int_equal(ae_model_step_count(m), 0);
    ae_model_destroy(m);
}

static void test_denoising_no_allocation_after_first_step(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = make_model(&a, 1, AE_OPT_ADAMW);
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_MASK));
    OK(ae_model_set_float(m, AE_P_NOISE_LEVEL, 0.5));
    float x[32 * IN], loss;
    test_fill(x, 32 * IN, 2, 0, 1);
    OK(ae_train_step(m, x, NULL, 32, &loss));
    long after_first = t.count;
    for (int i = 0; i < 10; i++) OK(ae_train_step(m, x, NULL, 32 - (size_t)i, &loss));
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
    for (int i = 0; i < 10; i++) OK(ae_train_step(m, x, NULL, 32, &loss));
    assert_int_equal(t.count, after_first);
    /* A failing allocation of the corrupted copy: AE_ERR_OUT_OF_MEMORY, nothing changes. */
    float big[64 * IN];
    test_fill(big, 64 * IN, 3, 0, 1);
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_NONE));
    OK(ae_train_step(m, big, NULL, 64, &loss)); /* the workspace for 64 */
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
    float before[512];
    params_of(m, before);
    t.fail_at = t.count;
    assert_int_equal(ae_train_step(m, big, NULL, 64, &loss), AE_ERR_OUT_OF_MEMORY);
    assert_memory_equal(before, m->params, m->nparams * sizeof(float));
    t.fail_at = -1;
    OK(ae_train_step(m, big, NULL, 64, &loss));
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
}

/* ---- ae_fit ---- */

typedef struct recorder {
    int calls;
    ae_epoch_stats e[64];
    int stop_at;
    float params[8][200];
} recorder;

static int record(const ae_epoch_stats *s, void *user) {
    recorder *r = user;
    assert_true(r->calls < 64);
    r->e[r->calls] = *s;
    r->calls++;
    return r->stop_at && r->calls >= r->stop_at;
}

static void test_fit_matches_manual_loop(void **state) {
    (void)state;
    float x[N * IN];
    ae_dataset *ds = make_data(N, 7, x);
    for (int shuffle = 0; shuffle < 2; shuffle++)
        for (int drop = 0; drop < 2; drop++) {
            ae_model *a = make_model(NULL, 3, AE_OPT_ADAM), *b = make_model(NULL, 3, AE_OPT_ADAM);
            ae_fit_options o;
            ae_fit_options_init(&o);
            o.epochs = 3;
            o.batch_size = 16;
            o.shuffle = shuffle;
            o.shuffle_seed = 99;
            o.drop_last = drop;
            OK(ae_fit(a, ds, &o));
            /* The same by hand: a permutation per epoch from one RNG seeded once. */
            ae_rng r;
            ae_rng_seed(&r, 99);
            size_t idx[N];
            float batch[16 * IN], loss;
            for (int ep = 0; ep < 3; ep++) {
                for (size_t i = 0; i < N; i++) idx[i] = i;
                if (shuffle)
                    for (size_t i = N; i-- > 1;) {
                        size_t j = (size_t)ae_rng_below(&r, i + 1), t = idx[i];
                        idx[i] = idx[j];
                        idx[j] = t;
                    }
                for (size_t i0 = 0; i0 < N; i0 += 16) {
                    size_t nb = N - i0 < 16 ? N - i0 : 16;
                    if (drop && nb < 16) break;
                    OK(ae_dataset_gather(ds, idx + i0, nb, batch, NULL));
                    OK(ae_train_step(b, batch, NULL, nb, &loss));
                }
            }
            assert_int_equal(ae_model_step_count(a), drop ? 6 : 9);
            assert_int_equal(ae_model_step_count(a), ae_model_step_count(b));
            assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
            double lr;
            OK(ae_model_get_float(a, AE_P_LEARNING_RATE, &lr));
            assert_true(lr == 1e-2);
            ae_model_destroy(a);
            ae_model_destroy(b);
        }
    ae_dataset_destroy(ds);
}

static void test_fit_history_callback_validation(void **state) {
    (void)state;
    float x[N * IN], v[10 * IN];
    ae_dataset *ds = make_data(N, 7, x), *val = make_data(10, 8, v);
    ae_history *h = NULL;
    OK(ae_history_create(&h, NULL));
    assert_int_equal(ae_history_count(h), 0);
    assert_int_equal(ae_history_stop_reason(h), AE_FIT_NOT_RUN);
    ae_model *m = make_model(NULL, 3, AE_OPT_ADAM);
    recorder rec;
    memset(&rec, 0, sizeof rec);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 6;
    o.batch_size = 8;
    o.val = val;
    o.callback = record;
    o.user = &rec;
    o.history = h;
    OK(ae_fit(m, ds, &o));
    assert_int_equal(rec.calls, 6);
    assert_int_equal(ae_history_count(h), 6);
    assert_int_equal(ae_history_stop_reason(h), AE_FIT_COMPLETED);
    double best = INFINITY;
    size_t best_ep = 0;
    for (size_t i = 0; i < 6; i++) {
        ae_epoch_stats s = {.struct_size = sizeof s};
        OK(ae_history_get(h, i, &s));
        assert_memory_equal(&s, &rec.e[i], sizeof s);
        assert_int_equal(s.epoch, i + 1);
        assert_int_equal(s.steps, 5 * (i + 1));
        assert_true(s.seconds >= 0.0 && s.seconds < 10.0);
        assert_true(s.learning_rate == 1e-2);
        assert_true(isfinite(s.train_loss) && isfinite(s.val_loss));
        assert_int_equal(s.best, s.val_loss < best);
        if (s.val_loss < best) {
            best = s.val_loss;
            best_ep = i + 1;
        }
    }
    assert_int_equal(ae_history_best_epoch(h), best_ep);
    assert_true(rec.e[5].train_loss < rec.e[0].train_loss);
    /* The validation loss is that of ae_evaluate over the whole set. */
    float l;
    OK(ae_evaluate(m, ae_dataset_data(val), NULL, 10, &l));
    assert_true(fabs(l - rec.e[5].val_loss) < 1e-6);
    ae_epoch_stats s = {.struct_size = 8};
    assert_int_equal(ae_history_get(h, 0, &s), AE_ERR_INVALID_ARG);
    s.struct_size = sizeof s;
    assert_int_equal(ae_history_get(h, 6, &s), AE_ERR_RANGE);

    /* The callback stops the run; a second fit replaces the history. */
    memset(&rec, 0, sizeof rec);
    rec.stop_at = 2;
    o.val = NULL;
    OK(ae_fit(m, ds, &o));
    assert_int_equal(ae_history_count(h), 2);
    assert_int_equal(ae_history_stop_reason(h), AE_FIT_CALLBACK);
    OK(ae_history_get(h, 1, &s));
    assert_true(isnan(s.val_loss));

    /* Same everything: bitwise the same run. */
    ae_model *a = make_model(NULL, 4, AE_OPT_SGD), *b = make_model(NULL, 4, AE_OPT_SGD);
    o.callback = NULL;
    o.history = NULL;
    o.val = val;
    OK(ae_fit(a, ds, &o));
    OK(ae_fit(b, ds, &o));
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    ae_model_destroy(a);
    ae_model_destroy(b);
    ae_model_destroy(m);
    ae_history_destroy(h);
    ae_history_destroy(NULL);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(val);
}

/* Learning rates per epoch (one step per epoch: batch = the whole set). */
static void rates(ae_fit_options *o, double base, double *out, size_t epochs, const ae_dataset *val) {
    float x[N * IN];
    ae_dataset *ds = make_data(N, 7, x);
    ae_model *m = make_model(NULL, 3, AE_OPT_SGD);
    OK(ae_model_set_float(m, AE_P_LEARNING_RATE, base));
    recorder rec;
    memset(&rec, 0, sizeof rec);
    o->epochs = epochs;
    o->batch_size = N;
    o->callback = record;
    o->user = &rec;
    o->val = val;
    OK(ae_fit(m, ds, o));
    assert_int_equal(rec.calls, (int)epochs);
    for (size_t i = 0; i < epochs; i++) out[i] = rec.e[i].learning_rate;
    double lr;
    OK(ae_model_get_float(m, AE_P_LEARNING_RATE, &lr));
    assert_true(lr == base);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
}

static void test_fit_schedules(void **state) {
    (void)state;
    double r[12];
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.schedule = AE_SCHED_STEP;
    o.step_size = 2;
    o.gamma = 0.5;
    rates(&o, 0.1, r, 5, NULL);
    double want_step[5] = {0.1, 0.1, 0.05, 0.05, 0.025};
    for (int i = 0; i < 5; i++) assert_true(fabs(r[i] - want_step[i]) < 1e-12);

    ae_fit_options_init(&o);
    o.schedule = AE_SCHED_COSINE;
    o.min_lr = 0.01;
    rates(&o, 0.1, r, 4, NULL);
    for (int i = 0; i < 4; i++)
        assert_true(fabs(r[i] - (0.01 + 0.09 * (1 + cos(3.141592653589793 * i / 4)) / 2)) < 1e-12);

    /* Warm-up (LinearLR per step) on top of the schedule. */
    ae_fit_options_init(&o);
    o.warmup_steps = 4;
    o.warmup_start = 0.25;
    rates(&o, 0.1, r, 6, NULL);
    double want_warm[6] = {0.025, 0.04375, 0.0625, 0.08125, 0.1, 0.1};
    for (int i = 0; i < 6; i++) assert_true(fabs(r[i] - want_warm[i]) < 1e-12);

    /* Reduce on plateau: with a relative threshold of 0.5 no epoch counts as
     * an improvement after the first, so after patience + 1 bad epochs the
     * rate drops, then cooldown epochs pass before counting again. */
    ae_fit_options_init(&o);
    o.schedule = AE_SCHED_PLATEAU;
    o.plateau_patience = 1;
    o.plateau_factor = 0.5;
    o.plateau_cooldown = 1;
    o.plateau_threshold = 0.5;
    o.min_lr = 0.02;
    rates(&o, 0.1, r, 10, NULL);
    /* epoch 1 improves (from infinity); 2, 3 bad -> reduce after 3; 4 in
       cooldown; 5, 6 bad -> reduce after 6; 7 cooldown; 8, 9 bad -> floor. */
    double want_pl[10] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.02};
    for (int i = 0; i < 10; i++) {
        if (fabs(r[i] - want_pl[i]) > 1e-15) {
            print_error("epoch %d: lr %g, expected %g\n", i + 1, r[i], want_pl[i]);
            fail();
        }
    }
}

static void test_fit_early_stopping(void **state) {
    (void)state;
    float x[N * IN], v[10 * IN];
    ae_dataset *ds = make_data(N, 7, x), *val = make_data(10, 8, v);
    ae_history *h = NULL;
    OK(ae_history_create(&h, NULL));
    ae_model *m = make_model(NULL, 3, AE_OPT_ADAM);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 20;
    o.batch_size = 8;
    o.val = val;
    o.patience = 2;
    o.min_delta = 1.0; /* nothing improves by that much after the first epoch */
    o.restore_best = 1;
    o.history = h;
    OK(ae_fit(m, ds, &o));
    assert_int_equal(ae_history_count(h), 3);
    assert_int_equal(ae_history_stop_reason(h), AE_FIT_EARLY_STOPPED);
    assert_int_equal(ae_history_best_epoch(h), 1);
    ae_epoch_stats s = {.struct_size = sizeof s};
    OK(ae_history_get(h, 0, &s));
    /* restore_best: the parameters are those after epoch 1, whose
     * validation loss ae_evaluate reproduces. */
    float l;
    OK(ae_evaluate(m, v, NULL, 10, &l));
    assert_true(fabs(l - s.val_loss) < 1e-7);
    ae_model *b = make_model(NULL, 3, AE_OPT_ADAM);
    o.epochs = 1;
    o.patience = 0;
    o.history = NULL;
    OK(ae_fit(b, ds, &o));
    assert_memory_equal(m->params, b->params, m->nparams * sizeof(float));
    ae_model_destroy(b);
    ae_model_destroy(m);
    ae_history_destroy(h);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(val);
}

static void test_fit_refusals(void **state) {
    (void)state;
    float x[N * IN], w[N * 5];
    ae_dataset *ds = make_data(N, 7, x), *wrong = NULL, *empty = NULL;
    OK(ae_dataset_create(&empty, NULL));
    OK(ae_dataset_create(&wrong, NULL));
    test_fill(w, N * 5, 1, 0, 1);
    OK(ae_dataset_from_memory(wrong, w, NULL, N, 5, 1, 1, AE_DATA_COPY));
    ae_model *m = make_model(NULL, 3, AE_OPT_ADAM);
    float before[512];
    params_of(m, before);
    ae_fit_options o;
    ae_fit_options_init(&o);
    assert_int_equal(ae_fit(NULL, ds, &o), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_fit(m, NULL, &o), AE_ERR_INVALID_ARG);
    ae_fit_options bad = o;
    bad.struct_size = 16;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "struct_size"));
    bad = o;
    bad.epochs = 0;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_RANGE);
    bad = o;
    bad.batch_size = 0;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_RANGE);
    bad = o;
    bad.schedule = (ae_schedule)9;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_INVALID_ARG);
    bad = o;
    bad.schedule = AE_SCHED_STEP;
    bad.gamma = 0;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_RANGE);
    bad = o;
    bad.schedule = AE_SCHED_PLATEAU;
    bad.plateau_factor = 1.0;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_RANGE);
    bad = o;
    bad.warmup_steps = 3;
    bad.warmup_start = 0;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_RANGE);
    bad = o;
    bad.min_delta = -1;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_RANGE);
    assert_int_equal(ae_fit(m, wrong, &o), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(m), "training set has 5 values per sample"));
    bad = o;
    bad.val = wrong;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_SHAPE);
    assert_int_equal(ae_fit(m, empty, &o), AE_ERR_STATE);
    bad = o;
    bad.batch_size = N + 1;
    bad.drop_last = 1;
    assert_int_equal(ae_fit(m, ds, &bad), AE_ERR_STATE);
    assert_memory_equal(before, m->params, m->nparams * sizeof(float));
    assert_int_equal(ae_model_step_count(m), 0);

    /* NULL options: the defaults (10 epochs of batch 32). */
    OK(ae_fit(m, ds, NULL));
    assert_int_equal(ae_model_step_count(m), 20);

    /* A step that fails mid-run stops it with the epoch and batch named. A
     * borrowed array changed behind the dataset's back is the way in. */
    float xb[N * IN];
    memcpy(xb, x, sizeof xb);
    ae_dataset *borrowed = NULL;
    OK(ae_dataset_create(&borrowed, NULL));
    OK(ae_dataset_from_memory(borrowed, xb, NULL, N, IN, 1, 1, AE_DATA_BORROW));
    xb[25 * IN] = NAN;
    ae_history *h = NULL;
    OK(ae_history_create(&h, NULL));
    bad = o;
    bad.shuffle = 0;
    bad.batch_size = 10;
    bad.history = h;
    bad.warmup_steps = 2;
    assert_int_equal(ae_fit(m, borrowed, &bad), AE_ERR_NUMERIC);
    assert_non_null(strstr(ae_model_last_error(m), "ae_fit: epoch 1, batch 3: the input"));
    assert_int_equal(ae_history_stop_reason(h), AE_FIT_FAILED);
    assert_int_equal(ae_history_count(h), 0);
    double lr;
    OK(ae_model_get_float(m, AE_P_LEARNING_RATE, &lr));
    assert_true(lr == 1e-2);
    ae_history_destroy(h);
    ae_dataset_destroy(borrowed);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(wrong);
    ae_dataset_destroy(empty);
}

static void test_fit_failing_allocator(void **state) {
    (void)state;
    float x[N * IN], v[10 * IN];
    ae_dataset *ds = make_data(N, 7, x), *val = make_data(10, 8, v);
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_history *h = NULL;
    OK(ae_history_create(&h, &a));
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 2;
    o.batch_size = 8;
    o.val = val;
    o.restore_best = 1;
    o.history = h;
    ae_model *m = make_model(&a, 3, AE_OPT_ADAM);
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
    t.count = 0;
    OK(ae_fit(m, ds, &o));
    long needed = t.count;
    assert_true(needed >= 7); /* history, order, batch, best x2, noisy val, workspace, noisy input */
    ae_model_destroy(m);
    for (long k = 0; k < needed; k++) {
        ae_history_destroy(h);
        OK(ae_history_create(&h, &a));
        o.history = h;
        m = make_model(&a, 3, AE_OPT_ADAM);
        OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN));
        float before[512];
        params_of(m, before);
        long live0 = t.live;
        t.count = 0;
        t.fail_at = k;
        ae_status st = ae_fit(m, ds, &o);
        t.fail_at = -1;
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        /* Every allocation happens before the first step: nothing changed. */
        assert_memory_equal(before, m->params, m->nparams * sizeof(float));
        assert_int_equal(ae_model_step_count(m), 0);
        assert_int_equal(ae_history_stop_reason(h), AE_FIT_NOT_RUN);
        ae_model_destroy(m);
        assert_true(t.live <= live0); /* ae_fit's own buffers are all freed */
    }
    ae_history_destroy(h);
    assert_int_equal(t.live, 0);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(val);
}

static void test_fit_denoising(void **state) {
    (void)state;
    float x[N * IN];
    ae_dataset *ds = make_data(N, 7, x);
    ae_model *m = make_model(NULL, 3, AE_OPT_ADAM);
    OK(ae_model_set_int(m, AE_P_NOISE_KIND, AE_NOISE_MASK));
    OK(ae_model_set_float(m, AE_P_NOISE_LEVEL, 0.25));
    recorder rec;
    memset(&rec, 0, sizeof rec);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 30;
    o.batch_size = 10;
    o.val = ds;
    o.val_noise_seed = 5;
    o.callback = record;
    o.user = &rec;
    OK(ae_fit(m, ds, &o));
    assert_true(rec.e[29].train_loss < rec.e[0].train_loss);
    assert_true(rec.e[29].val_loss < rec.e[0].val_loss);
    /* Validation: the input corrupted once (as ae_corrupt with the seed),
     * the target clean. */
    ae_noise nz;
    ae_noise_init(&nz, AE_NOISE_MASK, 0.25);
    float noisy[N * IN], l;
    OK(ae_corrupt(&nz, x, noisy, N, IN, 5));
    OK(ae_evaluate(m, noisy, x, N, &l));
    assert_true(fabs(l - rec.e[29].val_loss) < 1e-7);
    assert_memory_equal(ae_dataset_data(ds), x, sizeof x);
    /* val_corrupt 0: the clean input. */
    memset(&rec, 0, sizeof rec);
    o.epochs = 1;
    o.val_corrupt = 0;
    OK(ae_fit(m, ds, &o));
    OK(ae_evaluate(m, x, NULL, N, &l));
    assert_true(fabs(l - rec.e[0].val_loss) < 1e-7);
    /* A noise level out of its kind's range is refused before any step. */
    OK(ae_model_set_float(m, AE_P_NOISE_LEVEL, 2.0));
    uint64_t steps = ae_model_step_count(m);
    assert_int_equal(ae_fit(m, ds, &o), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "AE_P_NOISE_LEVEL"));
    assert_int_equal(ae_model_step_count(m), steps);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
}

/* ae_fit only needs what every model has: a convolutional model with
 * BatchNorm (running statistics in the state arena) and denoising trains
 * as by hand, and restore_best brings back the running statistics too. */
static ae_model *conv_bn_model(void) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&c, NULL) != AE_OK) return NULL;
    if (ae_config_set_input_shape(c, 1, 6, 6) == AE_OK &&
        ae_config_add_conv2d(c, 3, 3, 1, 1, AE_ACT_IDENTITY) == AE_OK &&
        ae_config_add_batchnorm(c) == AE_OK && ae_config_add_activation(c, AE_ACT_RELU) == AE_OK &&
        ae_config_add_maxpool2d(c, 2, 2, 0) == AE_OK && ae_config_add_flatten(c) == AE_OK &&
        ae_config_add_dense(c, 6, AE_ACT_IDENTITY) == AE_OK && ae_config_mark_code(c) == AE_OK &&
        ae_config_add_dense(c, 27, AE_ACT_RELU) == AE_OK &&
        ae_config_add_unflatten(c, 3, 3, 3) == AE_OK &&
        ae_config_add_upsample(c, 2, AE_UPSAMPLE_NEAREST) == AE_OK &&
        ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_SIGMOID) == AE_OK &&
        ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-2) == AE_OK &&
        ae_config_set_int(c, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN) == AE_OK &&
        ae_config_set_float(c, AE_P_NOISE_LEVEL, 0.05) == AE_OK)
        ae_model_create(&m, c);
    ae_config_destroy(c);
    return m;
}

static void test_fit_conv_batchnorm_model(void **state) {
    (void)state;
    enum { NS = 24, D = 36 };
    float x[NS * D], v[8 * D];
    test_fill(x, NS * D, 21, 0, 1);
    test_fill(v, 8 * D, 22, 0, 1);
    ae_dataset *ds = NULL, *val = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_create(&val, NULL));
    OK(ae_dataset_from_memory(ds, x, NULL, NS, 1, 6, 6, AE_DATA_BORROW));
    OK(ae_dataset_from_memory(val, v, NULL, 8, 1, 6, 6, AE_DATA_BORROW));
    ae_model *a = conv_bn_model(), *b = conv_bn_model();
    assert_non_null(a);
    assert_true(a->nbuffers > 0);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 3;
    o.batch_size = 8;
    o.shuffle = 0;
    OK(ae_fit(a, ds, &o));
    float loss;
    for (int ep = 0; ep < 3; ep++)
        for (int i = 0; i < NS; i += 8) OK(ae_train_step(b, x + i * D, NULL, 8, &loss));
    assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
    assert_memory_equal(a->buffers, b->buffers, a->nbuffers * sizeof(float));
    assert_memory_equal(&a->rng, &b->rng, sizeof a->rng);

    /* restore_best: with a huge min_delta the best epoch is the first. */
    ae_model *c = conv_bn_model();
    ae_history *h = NULL;
    OK(ae_history_create(&h, NULL));
    o.epochs = 4;
    o.val = val;
    o.val_corrupt = 0;
    o.min_delta = 1e3;
    o.restore_best = 1;
    o.history = h;
    OK(ae_fit(c, ds, &o));
    assert_int_equal(ae_history_count(h), 4);
    assert_int_equal(ae_history_best_epoch(h), 1);
    ae_epoch_stats s = {.struct_size = sizeof s};
    OK(ae_history_get(h, 0, &s));
    OK(ae_evaluate(c, v, NULL, 8, &loss));
    assert_true(fabs(loss - s.val_loss) < 1e-7);
    ae_history_destroy(h);
    ae_model_destroy(a);
    ae_model_destroy(b);
    ae_model_destroy(c);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(val);
}

/* ---- checkpoints and resume ---- */

typedef struct stopper {
    uint64_t at_step;   /* the batch callback stops after this step (0: never) */
    size_t at_epoch;    /* the epoch callback stops after this epoch (0: never) */
    uint64_t calls;
    double last_eta;
} stopper;

static int stop_batch(const ae_batch_stats *s, void *user) {
    stopper *t = user;
    t->calls++;
    assert_int_equal(s->struct_size, sizeof *s);
    assert_true(s->batch >= 1 && s->batch <= s->batches && s->epoch >= 1 && s->epoch <= s->epochs);
    assert_true(s->step <= s->total_steps);
    assert_true(s->eta >= 0.0 && s->samples_per_second >= 0.0 && isfinite(s->epoch_loss));
    t->last_eta = s->eta;
    return t->at_step && s->step == t->at_step;
}

static int stop_epoch(const ae_epoch_stats *s, void *user) {
    stopper *t = user;
    return t->at_epoch && s->epoch == t->at_epoch;
}

/* The whole model as a checkpoint writes it: parameters, layer state,
 * optimizer state, RNG, step count, statistics and the fit's position. */
static unsigned char *model_bytes(const ae_model *m, size_t *n) {
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, n, AE_SAVE_CHECKPOINT), AE_ERR_RANGE);
    unsigned char *p = malloc(*n);
    assert_non_null(p);
    OK(ae_model_save_buffer(m, p, *n, n, AE_SAVE_CHECKPOINT));
    return p;
}

static const char *ckpt_path(void) {
    static char buf[64];
    snprintf(buf, sizeof buf, "/tmp/ae_test_train_%ld.aem", (long)getpid());
    return buf;
}

typedef ae_model *(*model_maker)(void);
static ae_model *dense_adam(void) { return make_model(NULL, 5, AE_OPT_ADAM); }

/* Runs `o` on a fresh model from `make` to the end, then for each stop
 * point: stops there (batch callback at a step, or epoch callback at an
 * epoch), loads the checkpoint written, resumes it, and compares the end
 * bitwise with the uninterrupted run (the whole checkpoint and the
 * history of the epochs each part ran). */
static void check_resume(model_maker make, const ae_dataset *ds, ae_fit_options o,
                         const uint64_t *steps, size_t nsteps, size_t stop_epoch_at) {
    ae_history *h = NULL;
    OK(ae_history_create(&h, NULL));
    stopper t = {0, 0, 0, 0.0};
    o.user = &t;
    o.batch_callback = stop_batch;
    o.callback = stop_epoch;
    o.history = h;
    ae_model *ref = make();
    OK(ae_fit(ref, ds, &o));
    size_t nref;
    unsigned char *want = model_bytes(ref, &nref);
    size_t ne = ae_history_count(h);
    ae_epoch_stats *eref = calloc(ne, sizeof *eref);
    for (size_t e = 0; e < ne; e++) {
        eref[e].struct_size = sizeof eref[e];
        OK(ae_history_get(h, e, &eref[e]));
    }
    ae_fit_stop ref_stop = ae_history_stop_reason(h);
    size_t best_ref = ae_history_best_epoch(h);
    assert_int_equal(t.calls, ref->steps);
    if (ref_stop == AE_FIT_COMPLETED) assert_true(t.last_eta == 0.0);
    for (size_t k = 0; k <= nsteps; k++) {
        t = (stopper){k < nsteps ? steps[k] : 0, k < nsteps ? 0 : stop_epoch_at, 0, 0.0};
        /* Stop points within the reference run (early stopping may end it sooner). */
        if (t.at_step > ref->steps || t.at_epoch > ne || (!t.at_step && !t.at_epoch)) continue;
        ae_fit_options a = o;
        a.checkpoint_path = ckpt_path();
        ae_model *m = make();
        OK(ae_fit(m, ds, &a));
        assert_int_equal(ae_history_stop_reason(h), AE_FIT_CALLBACK);
        size_t done = ae_history_count(h);
        ae_model_destroy(m);
        m = NULL;
        OK(ae_model_load(&m, ckpt_path(), NULL));
        size_t ep_done = 99, b_done = 99;
        OK(ae_fit_resume_point(m, &ep_done, &b_done));
        assert_int_equal(ep_done, done);
        t = (stopper){0, 0, 0, 0.0};
        a.resume = 1;
        OK(ae_fit(m, ds, &a));
        assert_int_equal(ae_history_stop_reason(h), ref_stop);
        /* The epochs the resumed part ran: the rest of the reference's. */
        assert_int_equal(done + ae_history_count(h), ne);
        for (size_t e = 0; e < ae_history_count(h); e++) {
            ae_epoch_stats s = {.struct_size = sizeof s};
            OK(ae_history_get(h, e, &s));
            assert_int_equal(s.epoch, eref[done + e].epoch);
            assert_int_equal(s.steps, eref[done + e].steps);
            assert_memory_equal(&s.train_loss, &eref[done + e].train_loss, sizeof(double));
            assert_memory_equal(&s.val_loss, &eref[done + e].val_loss, sizeof(double));
            assert_memory_equal(&s.learning_rate, &eref[done + e].learning_rate, sizeof(double));
            assert_int_equal(s.best, eref[done + e].best);
        }
        assert_int_equal(ae_history_best_epoch(h), best_ref);
        size_t ngot;
        unsigned char *got = model_bytes(m, &ngot);
        assert_int_equal(ngot, nref);
        assert_memory_equal(got, want, nref);
        free(got);
        ae_model_destroy(m);
        unlink(ckpt_path());
    }
    free(eref);
    free(want);
    ae_model_destroy(ref);
    ae_history_destroy(h);
}

static void test_fit_resume_dense(void **state) {
    (void)state;
    enum { NS = 37 };
    float x[NS * IN], v[10 * IN];
    ae_dataset *ds = make_data(NS, 31, x), *val = make_data(10, 32, v);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 6;
    o.batch_size = 8; /* 5 batches, the last of 5 samples */
    o.shuffle_seed = 9;
    o.warmup_steps = 7;
    o.val = val;
    /* Step schedule, warm-up across an epoch boundary. Stops: the first
       step, mid-epoch, the last batch of an epoch (before its validation),
       later epochs, the last step. */
    o.schedule = AE_SCHED_STEP;
    o.step_size = 2;
    o.gamma = 0.5;
    const uint64_t steps[] = {1, 3, 5, 6, 12, 23, 30};
    check_resume(dense_adam, ds, o, steps, 7, 2);
    /* Plateau with early stopping and restore_best: the plateau counters,
       the best copy and the patience travel with the checkpoint. */
    o.schedule = AE_SCHED_PLATEAU;
    o.plateau_patience = 0;
    o.plateau_threshold = 0.5; /* reduces nearly every epoch */
    o.plateau_factor = 0.5;
    o.min_delta = 1e-3;
    o.patience = 2;
    o.restore_best = 1;
    o.epochs = 12;
    check_resume(dense_adam, ds, o, steps, 7, 3);
    /* Without shuffling, and with drop_last. */
    o.shuffle = 0;
    o.drop_last = 1;
    check_resume(dense_adam, ds, o, steps, 3, 1);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(val);
}

static void test_fit_resume_conv(void **state) {
    (void)state;
    enum { NS = 20, D = 36 };
    float x[NS * D], v[8 * D];
    test_fill(x, NS * D, 41, 0, 1);
    test_fill(v, 8 * D, 42, 0, 1);
    ae_dataset *ds = NULL, *val = NULL;
    OK(ae_dataset_create(&ds, NULL));
    OK(ae_dataset_create(&val, NULL));
    OK(ae_dataset_from_memory(ds, x, NULL, NS, 1, 6, 6, AE_DATA_BORROW));
    OK(ae_dataset_from_memory(val, v, NULL, 8, 1, 6, 6, AE_DATA_BORROW));
    /* BatchNorm's running statistics, denoising from the model's RNG and a
       corrupted validation copy. */
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 4;
    o.batch_size = 6; /* 4 batches, the last of 2 */
    o.val = val;
    o.schedule = AE_SCHED_STEP;
    o.step_size = 1;
    o.gamma = 0.7;
    o.warmup_steps = 3;
    const uint64_t steps[] = {2, 4, 9, 15};
    check_resume(conv_bn_model, ds, o, steps, 4, 2);
    o.schedule = AE_SCHED_PLATEAU;
    o.plateau_patience = 0;
    o.plateau_threshold = 0.9;
    o.restore_best = 1;
    check_resume(conv_bn_model, ds, o, steps, 4, 3);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(val);
}

/* ae_fit writes checkpoints every N steps or epochs through the atomic
 * writer; the last one written resumes to the same end. */
static void test_fit_checkpoint_interval(void **state) {
    (void)state;
    enum { NS = 24 };
    float x[NS * IN];
    ae_dataset *ds = make_data(NS, 51, x);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 5;
    o.batch_size = 8; /* 3 steps an epoch */
    ae_model *ref = dense_adam();
    OK(ae_fit(ref, ds, &o));
    size_t nref, ngot;
    unsigned char *want = model_bytes(ref, &nref);
    const char *p = ckpt_path();
    /* Every 4 steps, stopped at step 10 without a checkpoint on the stop:
       the file holds step 8. */
    stopper t = {10, 0, 0, 0.0};
    ae_fit_options a = o;
    a.checkpoint_path = p;
    a.checkpoint_every = 4;
    a.checkpoint_on_stop = 0;
    a.batch_callback = stop_batch;
    a.user = &t;
    ae_model *m = dense_adam();
    OK(ae_fit(m, ds, &a));
    assert_int_equal(m->steps, 10);
    ae_model_destroy(m);
    OK(ae_model_load(&m, p, NULL));
    assert_int_equal(m->steps, 8);
    size_t e = 0, b = 0;
    OK(ae_fit_resume_point(m, &e, &b));
    assert_int_equal(e, 2);
    assert_int_equal(b, 2);
    a.resume = 1;
    a.checkpoint_every = 0;
    t.at_step = 0;
    OK(ae_fit(m, ds, &a));
    unsigned char *got = model_bytes(m, &ngot);
    assert_int_equal(ngot, nref);
    assert_memory_equal(got, want, nref);
    free(got);
    ae_model_destroy(m);
    /* Every 2 epochs: the last is written after epoch 4. */
    a = o;
    a.checkpoint_path = p;
    a.checkpoint_every = 2;
    a.checkpoint_unit = AE_CHECKPOINT_EPOCHS;
    m = dense_adam();
    OK(ae_fit(m, ds, &a));
    ae_model_destroy(m);
    OK(ae_model_load(&m, p, NULL));
    OK(ae_fit_resume_point(m, &e, &b));
    assert_int_equal(e, 4);
    assert_int_equal(b, 0);
    assert_int_equal(m->steps, 12);
    a.resume = 1;
    OK(ae_fit(m, ds, &a));
    got = model_bytes(m, &ngot);
    assert_memory_equal(got, want, nref);
    free(got);
    /* A resumed run that is complete runs nothing; a longer one goes on. */
    OK(ae_fit(m, ds, &a));
    assert_int_equal(m->steps, 15);
    a.epochs = 6;
    OK(ae_fit(m, ds, &a));
    assert_int_equal(m->steps, 18);
    ae_model_destroy(m);
    /* A checkpoint that cannot be written stops the run with the error. */
    a = o;
    a.checkpoint_path = "/nonexistent-dir/c.aem";
    a.checkpoint_every = 2;
    m = dense_adam();
    assert_int_equal(ae_fit(m, ds, &a), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "checkpoint"));
    assert_int_equal(m->steps, 2);
    ae_model_destroy(m);
    unlink(p);
    free(want);
    ae_model_destroy(ref);
    ae_dataset_destroy(ds);
}

/* Resuming checks that the run is the same and the model did not train
 * since; a model file (not a checkpoint) holds no position. */
static void test_fit_resume_refusals(void **state) {
    (void)state;
    enum { NS = 16 };
    float x[NS * IN];
    ae_dataset *ds = make_data(NS, 61, x), *small = make_data(NS - 1, 62, x);
    ae_fit_options o;
    ae_fit_options_init(&o);
    o.epochs = 3;
    o.batch_size = 4;
    stopper t = {5, 0, 0, 0.0};
    o.batch_callback = stop_batch;
    o.user = &t;
    ae_model *m = dense_adam();
    assert_int_equal(ae_fit_resume_point(m, NULL, NULL), AE_ERR_STATE);
    assert_int_equal(ae_fit_resume_point(NULL, NULL, NULL), AE_ERR_INVALID_ARG);
    OK(ae_fit(m, ds, &o));
    size_t e, b;
    OK(ae_fit_resume_point(m, &e, &b));
    assert_int_equal(e, 1);
    assert_int_equal(b, 1);
    t.at_step = 0;
    o.resume = 1;
    size_t n0;
    unsigned char *before = model_bytes(m, &n0);
    struct { const char *what; ae_fit_options o; const ae_dataset *ds; } bad[6];
    for (int i = 0; i < 6; i++) bad[i].o = o, bad[i].ds = ds;
    bad[0].what = "batch_size", bad[0].o.batch_size = 8;
    bad[1].what = "shuffle_seed", bad[1].o.shuffle_seed = 3;
    bad[2].what = "shuffle", bad[2].o.shuffle = 0;
    bad[3].what = "drop_last", bad[3].o.drop_last = 1;
    bad[4].what = "restore_best", bad[4].o.restore_best = 1;
    bad[5].what = "size", bad[5].ds = small;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(ae_fit(m, bad[i].ds, &bad[i].o), AE_ERR_STATE);
        assert_non_null(strstr(ae_model_last_error(m), bad[i].what));
        size_t n1;
        unsigned char *after = model_bytes(m, &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(before, after, n0); /* nothing changed */
        free(after);
    }
    free(before);
    /* A model file has no position; a step outside the fit makes it stale. */
    size_t n;
    assert_int_equal(ae_model_save_buffer(m, NULL, 0, &n, AE_SAVE_MODEL), AE_ERR_RANGE);
    unsigned char *p = malloc(n);
    OK(ae_model_save_buffer(m, p, n, &n, AE_SAVE_MODEL));
    ae_model *f = NULL;
    OK(ae_model_load_buffer(&f, p, n, NULL));
    assert_int_equal(ae_fit_resume_point(f, NULL, NULL), AE_ERR_STATE);
    ae_model_destroy(f);
    free(p);
    float loss;
    OK(ae_train_step(m, x, NULL, 4, &loss));
    assert_int_equal(ae_fit_resume_point(m, NULL, NULL), AE_ERR_STATE);
    assert_int_equal(ae_fit(m, ds, &o), AE_ERR_STATE);
    assert_non_null(strstr(ae_model_last_error(m), "outside ae_fit"));
    /* A stale position is not saved: the checkpoint loads without one. */
    unsigned char *q = model_bytes(m, &n);
    OK(ae_model_load_buffer(&f, q, n, NULL));
    assert_int_equal(ae_fit_resume_point(f, NULL, NULL), AE_ERR_STATE);
    ae_model_destroy(f);
    free(q);
    /* resume without a position starts from the beginning; without resume
       a new run replaces the old position. */
    o.resume = 0;
    OK(ae_fit(m, ds, &o));
    OK(ae_fit_resume_point(m, &e, &b));
    assert_int_equal(e, 3);
    assert_int_equal(b, 0);
    ae_model_destroy(m);
    /* Option checks. */
    m = dense_adam();
    ae_fit_options c = o;
    c.checkpoint_every = 3;
    assert_int_equal(ae_fit(m, ds, &c), AE_ERR_INVALID_ARG);
    c.checkpoint_path = "";
    assert_int_equal(ae_fit(m, ds, &c), AE_ERR_INVALID_ARG);
    c.checkpoint_path = ckpt_path();
    c.checkpoint_unit = (ae_checkpoint_unit)7;
    assert_int_equal(ae_fit(m, ds, &c), AE_ERR_INVALID_ARG);
    assert_int_equal(m->steps, 0);
    ae_model_destroy(m);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(small);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_denoising_step_matches_manual),
        cmocka_unit_test(test_denoising_settings),
        cmocka_unit_test(test_denoising_no_allocation_after_first_step),
        cmocka_unit_test(test_fit_matches_manual_loop),
        cmocka_unit_test(test_fit_history_callback_validation),
        cmocka_unit_test(test_fit_schedules),
        cmocka_unit_test(test_fit_early_stopping),
        cmocka_unit_test(test_fit_refusals),
        cmocka_unit_test(test_fit_failing_allocator),
        cmocka_unit_test(test_fit_denoising),
        cmocka_unit_test(test_fit_conv_batchnorm_model),
        cmocka_unit_test(test_fit_resume_dense),
        cmocka_unit_test(test_fit_resume_conv),
        cmocka_unit_test(test_fit_checkpoint_interval),
        cmocka_unit_test(test_fit_resume_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
