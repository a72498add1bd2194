/* Tests of src/train (ae_fit: batching, shuffling, validation, schedules,
 * warm-up, early stopping, callback, history, refusals, failing
 * allocations) and of the denoising training step (corruption from the
 * model's RNG, clean target, caller's data untouched, no allocation after
 * the first step, a failed step changes nothing). */
#include "test_util.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
