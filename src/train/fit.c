/* The fit loop: epochs of shuffled batches through ae_train_step,
 * validation through ae_evaluate, learning-rate schedules (step, cosine,
 * reduce-on-plateau) with a linear warm-up, early stopping, a progress
 * callback and the recorded history. Training and validation go through
 * the public calls only, so every model kind is served. Besides them it
 * reads and writes these parts of the model (src/model/model.h), for what
 * the public API does not offer cheaply:
 * - m->err and m->alloc: its messages go to the model's last error, its
 *   buffers come from the model's allocator;
 * - m->in_size, m->steps, m->s.reduction and m->s.noise (read), m->s.lr
 *   (written each step by the schedule and restored at the end, without
 *   the checks of ae_model_set_float);
 * - ae_model_reserve, ae_model_reserve_noisy and ae_noise_check before the
 *   first step, so that no step fails for memory or a bad noise level;
 * - m->params and m->buffers with m->nparams and m->nbuffers: the best
 *   epoch's parameters and layer state are copied out and back whole
 *   (restore_best), bypassing the per-layer get/set calls, and
 *   ae_model_params_written after writing them back;
 * - ae_convention_reserve before the first step, so that recording the
 *   training set's value convention (with the dataset's st_mean and st_std)
 *   after the last one cannot fail. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "core/noise.h"
#include "data/data.h"
#include "model/model.h"

struct ae_history {
    ae_allocator alloc;
    ae_epoch_stats *e;
    size_t n, cap;
    size_t best;
    ae_fit_stop stop;
};

ae_status ae_history_create(ae_history **out, const ae_allocator *alloc) {
    if (!out) return AE_ERR_INVALID_ARG;
    *out = NULL;
    ae_allocator a;
    if (ae_allocator_init(&a, alloc) != AE_OK) return AE_ERR_INVALID_ARG;
    ae_history *h = ae_calloc(&a, 1, sizeof *h);
    if (!h) return AE_ERR_OUT_OF_MEMORY;
    h->alloc = a;
    *out = h;
    return AE_OK;
}

void ae_history_destroy(ae_history *h) {
    if (!h) return;
    ae_allocator a = h->alloc;
    ae_free(&a, h->e);
    ae_free(&a, h);
}

size_t ae_history_count(const ae_history *h) { return h ? h->n : 0; }
size_t ae_history_best_epoch(const ae_history *h) { return h ? h->best : 0; }
ae_fit_stop ae_history_stop_reason(const ae_history *h) { return h ? h->stop : AE_FIT_NOT_RUN; }

/* The 0.1.0 struct ends after `best`. */
#define EPOCH_STATS_V1_SIZE (offsetof(ae_epoch_stats, best) + sizeof(int))

ae_status ae_history_get(const ae_history *h, size_t index, ae_epoch_stats *out) {
    if (!h || !out || out->struct_size < EPOCH_STATS_V1_SIZE) return AE_ERR_INVALID_ARG;
    if (index >= h->n) return AE_ERR_RANGE;
    size_t sz = out->struct_size < sizeof *out ? out->struct_size : sizeof *out;
    ae_epoch_stats v = h->e[index];
    v.struct_size = sz;
    memcpy(out, &v, sz);
    return AE_OK;
}

void ae_fit_options_init(ae_fit_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->epochs = 10;
    o->batch_size = 32;
    o->shuffle = 1;
    o->schedule = AE_SCHED_CONSTANT;
    o->step_size = 10;
    o->gamma = 0.1;
    o->plateau_factor = 0.1;
    o->plateau_patience = 10;
    o->plateau_threshold = 1e-4;
    o->warmup_start = 1.0 / 3.0;
    o->val_corrupt = 1;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static ae_status check_options(ae_model *m, const ae_dataset *train, const ae_fit_options *o) {
    ae_errbuf *e = &m->err;
    if (o->struct_size != sizeof *o)
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "ae_fit: opts->struct_size is %zu, expected sizeof(ae_fit_options) = %zu "
                        "(use ae_fit_options_init)",
                        o->struct_size, sizeof *o);
    if (o->epochs < 1 || o->epochs > AE_MAX_DIM)
        return ae_error(e, AE_ERR_RANGE, "ae_fit: epochs must be in [1, %zu], got %zu", AE_MAX_DIM,
                        o->epochs);
    if (o->batch_size < 1 || o->batch_size > AE_MAX_DIM)
        return ae_error(e, AE_ERR_RANGE, "ae_fit: batch_size must be in [1, %zu], got %zu",
                        AE_MAX_DIM, o->batch_size);
    if ((unsigned)o->schedule > AE_SCHED_PLATEAU)
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_fit: unknown schedule %d", (int)o->schedule);
    if (o->schedule == AE_SCHED_STEP && (o->step_size < 1 || !(o->gamma > 0.0 && o->gamma <= 1.0)))
        return ae_error(e, AE_ERR_RANGE,
                        "ae_fit: step schedule needs step_size >= 1 (got %zu) and gamma in (0, 1] (got %g)",
                        o->step_size, o->gamma);
    if (!(o->min_lr >= 0.0 && o->min_lr <= 1e6))
        return ae_error(e, AE_ERR_RANGE, "ae_fit: min_lr must be in [0, 1e6], got %g", o->min_lr);
    if (o->schedule == AE_SCHED_PLATEAU &&
        (!(o->plateau_factor > 0.0 && o->plateau_factor < 1.0) ||
         !(o->plateau_threshold >= 0.0 && o->plateau_threshold < 1.0)))
        return ae_error(e, AE_ERR_RANGE,
                        "ae_fit: plateau_factor must be in (0, 1) (got %g), plateau_threshold in [0, 1) (got %g)",
                        o->plateau_factor, o->plateau_threshold);
    if (o->warmup_steps && !(o->warmup_start > 0.0 && o->warmup_start <= 1.0))
        return ae_error(e, AE_ERR_RANGE, "ae_fit: warmup_start must be in (0, 1], got %g",
                        o->warmup_start);
    if (!(o->min_delta >= 0.0 && o->min_delta < 1e30))
        return ae_error(e, AE_ERR_RANGE, "ae_fit: min_delta must be >= 0 and finite, got %g",
                        o->min_delta);
    if (!train) return ae_error(e, AE_ERR_INVALID_ARG, "ae_fit: the training set is NULL");
    const ae_dataset *sets[2] = {train, o->val};
    const char *names[2] = {"training", "validation"};
    for (int i = 0; i < 2; i++) {
        if (!sets[i]) continue;
        if (!ae_dataset_count(sets[i]))
            return ae_error(e, AE_ERR_STATE, "ae_fit: the %s set is empty", names[i]);
        if (ae_dataset_dim(sets[i]) != m->in_size)
            return ae_error(e, AE_ERR_SHAPE,
                            "ae_fit: the %s set has %zu values per sample, the model's input %zu",
                            names[i], ae_dataset_dim(sets[i]), m->in_size);
    }
    if (o->drop_last && ae_dataset_count(train) < o->batch_size)
        return ae_error(e, AE_ERR_STATE,
                        "ae_fit: drop_last with %zu samples and batch_size %zu leaves no batch",
                        ae_dataset_count(train), o->batch_size);
    return AE_OK;
}

/* The scheduled rate of epoch `ep` (0-based) for step and cosine. */
static double scheduled(const ae_fit_options *o, double base, size_t ep) {
    switch (o->schedule) {
    case AE_SCHED_STEP: return base * pow(o->gamma, (double)(ep / o->step_size));
    case AE_SCHED_COSINE: {
        size_t T = o->cosine_epochs ? o->cosine_epochs : o->epochs;
        return o->min_lr + (base - o->min_lr) * (1.0 + cos(3.141592653589793 * (double)ep / (double)T)) / 2.0;
    }
    default: return base;
    }
}

/* Mean loss of `ds` in batches, no update; the input is a corrupted copy
 * of the data when `ns` is not NULL (`noisy`: the whole copy, drawn once,
 * for data in memory; else each batch is corrupted into `nbuf` from `vr`,
 * seeded anew per evaluation so that every epoch sees the same noise),
 * the target the clean data. File-backed rows are read into `buf`. */
static ae_status evaluate_set(ae_model *m, const ae_dataset *ds, const float *noisy,
                              const ae_noise_spec *ns, uint64_t seed, float *buf, float *nbuf,
                              size_t bs, int sum_reduce, double *out) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds);
    double acc = 0.0;
    ae_rng vr;
    ae_rng_seed(&vr, seed);
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        float l;
        const float *x;
        ae_status st = ae_dataset_rows_view(ds, i, b, buf, &x);
        if (st) return ae_error(&m->err, st, "%s", ae_dataset_last_error(ds));
        const float *in = noisy ? noisy + i * d : NULL;
        if (ns && !noisy) {
            ae_noise_apply(ns, &vr, x, nbuf, b, d);
            in = nbuf;
        }
        st = in ? ae_evaluate(m, in, x, b, &l) : ae_evaluate(m, x, NULL, b, &l);
        if (st) return st;
        acc += sum_reduce ? (double)l : (double)l * (double)b;
    }
    *out = acc / (double)n;
    return AE_OK;
}

static void permute(ae_rng *r, size_t *idx, size_t n) {
    for (size_t i = 0; i < n; i++) idx[i] = i;
    for (size_t i = n; i-- > 1;) {
        size_t j = (size_t)ae_rng_below(r, (uint64_t)i + 1);
        size_t t = idx[i];
        idx[i] = idx[j];
        idx[j] = t;
    }
}

ae_status ae_fit(ae_model *m, const ae_dataset *train, const ae_fit_options *opts) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_fit_options defaults;
    ae_fit_options_init(&defaults);
    const ae_fit_options *o = opts ? opts : &defaults;
    ae_status st = check_options(m, train, o);
    if (st) return st;

    size_t n = ae_dataset_count(train), d = m->in_size, bs = o->batch_size;
    size_t nbatch = o->drop_last ? n / bs : (n + bs - 1) / bs;
    ae_history *h = o->history;
    const ae_allocator *a = &m->alloc;
    size_t *idx = o->shuffle ? ae_alloc(a, n * sizeof *idx) : NULL;
    /* One batch of rows: the gathered (shuffled) or file-backed ones. */
    int need_batch = o->shuffle || ae_dataset_file_backed(train);
    float *batch = need_batch ? ae_alloc(a, bs * d * sizeof *batch) : NULL;
    int keep_best = o->restore_best != 0;
    float *best_p = keep_best ? ae_alloc(a, (m->nparams + 1) * sizeof(float)) : NULL;
    float *best_b = keep_best ? ae_alloc(a, (m->nbuffers + 1) * sizeof(float)) : NULL;
    ae_epoch_stats *rec = NULL;
    if (h && h->cap < o->epochs) rec = ae_alloc(&h->alloc, o->epochs * sizeof *rec);
    /* A denoising model validates on a corrupted copy, drawn once. */
    const ae_noise_spec ns = m->s.noise;
    int val_noisy = o->val && o->val_corrupt && ns.kind != AE_NOISE_NONE;
    size_t nval = o->val ? ae_dataset_count(o->val) : 0;
    /* A file-backed validation set is read (and corrupted) batch by batch. */
    int val_file = o->val && ae_dataset_file_backed(o->val);
    float *vnoisy = val_noisy && !val_file ? ae_alloc(a, nval * d * sizeof *vnoisy) : NULL;
    size_t vb = val_file ? (val_noisy ? 2 : 1) * bs * d : 0;
    float *vbuf = val_file ? ae_alloc(a, vb * sizeof *vbuf) : NULL;
    int oom = (need_batch && (!idx && o->shuffle)) || (need_batch && !batch) ||
              (keep_best && (!best_p || !best_b)) || (h && h->cap < o->epochs && !rec) ||
              (val_noisy && !val_file && !vnoisy) || (val_file && !vbuf);
    if (oom) st = ae_error(&m->err, AE_ERR_OUT_OF_MEMORY, "ae_fit: out of memory for the batch buffers");
    /* The workspace for the batch size, so that no step fails for memory. */
    if (!oom) st = ae_model_reserve(m, bs);
    /* Room for the training data's convention, recorded after the steps. */
    if (!st) st = ae_convention_reserve(m, train->st_n);
    if (!st && ns.kind != AE_NOISE_NONE) st = ae_noise_check(&ns, &m->err, 1);
    if (!st && ns.kind != AE_NOISE_NONE) st = ae_model_reserve_noisy(m, bs);
    if (st) {
        ae_free(a, vbuf);
        ae_free(a, vnoisy);
        ae_free(a, idx);
        ae_free(a, batch);
        ae_free(a, best_p);
        ae_free(a, best_b);
        if (h) ae_free(&h->alloc, rec);
        return st;
    }
    if (rec) {
        ae_free(&h->alloc, h->e);
        h->e = rec;
        h->cap = o->epochs;
    }
    if (h) {
        h->n = 0;
        h->best = 0;
        h->stop = AE_FIT_COMPLETED;
    }

    if (vnoisy) {
        ae_rng vr;
        ae_rng_seed(&vr, o->val_noise_seed);
        ae_noise_apply(&ns, &vr, ae_dataset_data(o->val), vnoisy, nval, d);
    }
    const double base_lr = m->s.lr;
    const int sum_reduce = m->s.reduction == AE_REDUCE_SUM;
    ae_rng order;
    ae_rng_seed(&order, o->shuffle_seed);
    double best = INFINITY, plateau_best = INFINITY, lr_plateau = base_lr;
    size_t bad_epochs = 0, wait = 0, cooldown = 0, best_epoch = 0;
    uint64_t step = 0;
    ae_fit_stop stop = AE_FIT_COMPLETED;
    float in_lo = INFINITY, in_hi = -INFINITY; /* the inputs of the first epoch */
    char msg[sizeof m->err.msg];

    for (size_t ep = 0; ep < o->epochs && st == AE_OK; ep++) {
        double t0 = now_seconds(), acc = 0.0;
        double lr_epoch = o->schedule == AE_SCHED_PLATEAU ? lr_plateau : scheduled(o, base_lr, ep);
        double lr = lr_epoch;
        size_t seen = 0;
        if (o->shuffle) permute(&order, idx, n);
        for (size_t b = 0; b < nbatch; b++) {
            size_t i0 = b * bs, nb = n - i0 < bs ? n - i0 : bs;
            const float *x = batch;
            /* In memory these cannot fail (indices in range, buffer sized);
               file-backed rows can meet a read error or a non-finite value. */
            st = o->shuffle ? ae_dataset_gather((ae_dataset *)(uintptr_t)train, idx + i0, nb, batch, NULL)
                            : ae_dataset_rows_view(train, i0, nb, batch, &x);
            if (st) {
                ae_error(&m->err, st, "ae_fit: epoch %zu, batch %zu: %s", ep + 1, b + 1,
                         ae_dataset_last_error(train));
                break;
            }
            lr = lr_epoch;
            if (step < o->warmup_steps)
                lr *= o->warmup_start + (1.0 - o->warmup_start) * (double)step / (double)o->warmup_steps;
            m->s.lr = lr;
            float l;
            st = ae_train_step(m, x, NULL, nb, &l);
            if (st) {
                memcpy(msg, m->err.msg, sizeof msg);
                ae_error(&m->err, st, "ae_fit: epoch %zu, batch %zu: %s", ep + 1, b + 1, msg);
                break;
            }
            acc += sum_reduce ? (double)l : (double)l * (double)nb;
            seen += nb;
            step++;
            for (size_t i = 0; ep == 0 && i < nb * d; i++) {
                in_lo = x[i] < in_lo ? x[i] : in_lo;
                in_hi = x[i] > in_hi ? x[i] : in_hi;
            }
        }
        if (st) break;
        ae_epoch_stats es;
        memset(&es, 0, sizeof es);
        es.struct_size = sizeof es;
        es.epoch = ep + 1;
        es.train_loss = acc / (double)seen;
        es.val_loss = NAN;
        es.learning_rate = lr;
        if (o->val) {
            st = evaluate_set(m, o->val, vnoisy, val_noisy ? &ns : NULL, o->val_noise_seed, vbuf,
                              vbuf ? vbuf + bs * d : NULL, bs, sum_reduce, &es.val_loss);
            if (st) {
                memcpy(msg, m->err.msg, sizeof msg);
                ae_error(&m->err, st, "ae_fit: epoch %zu, validation: %s", ep + 1, msg);
                break;
            }
        }
        es.seconds = now_seconds() - t0;
        es.steps = m->steps;
        double mon = o->val ? es.val_loss : es.train_loss;
        if (mon < best - o->min_delta) {
            es.best = 1;
            best = mon;
            best_epoch = ep + 1;
            wait = 0;
            if (keep_best) {
                memcpy(best_p, m->params, m->nparams * sizeof(float));
                memcpy(best_b, m->buffers, m->nbuffers * sizeof(float));
            }
        } else {
            wait++;
        }
        if (o->schedule == AE_SCHED_PLATEAU) {
            /* torch.optim.lr_scheduler.ReduceLROnPlateau, mode "min", threshold "rel". */
            if (mon < plateau_best * (1.0 - o->plateau_threshold)) {
                plateau_best = mon;
                bad_epochs = 0;
            } else {
                bad_epochs++;
            }
            if (cooldown > 0) {
                cooldown--;
                bad_epochs = 0;
            }
            if (bad_epochs > o->plateau_patience) {
                double nl = lr_plateau * o->plateau_factor;
                if (nl < o->min_lr) nl = o->min_lr;
                if (lr_plateau - nl > 1e-8) lr_plateau = nl;
                cooldown = o->plateau_cooldown;
                bad_epochs = 0;
            }
        }
        if (h) {
            h->e[h->n++] = es;
            h->best = best_epoch;
        }
        if (o->callback && o->callback(&es, o->user)) {
            stop = AE_FIT_CALLBACK;
            break;
        }
        if (o->patience && wait >= o->patience) {
            stop = AE_FIT_EARLY_STOPPED;
            break;
        }
    }
    if (st) stop = AE_FIT_FAILED;
    if (step > 0) {
        /* The model now means what its training data mean (room reserved
           above, so this cannot fail). */
        ae_data_convention dc;
        dc.struct_size = sizeof dc;
        ae_dataset_convention(train, &dc);
        dc.lo = in_lo;
        dc.hi = in_hi;
        ae_model_set_data_convention(m, &dc, train->st_mean, train->st_std);
    }
    if (keep_best && best_epoch && st == AE_OK) {
        memcpy(m->params, best_p, m->nparams * sizeof(float));
        memcpy(m->buffers, best_b, m->nbuffers * sizeof(float));
        ae_model_params_written(m);
    }
    m->s.lr = base_lr;
    if (h) h->stop = stop;
    ae_free(a, vbuf);
    ae_free(a, vnoisy);
    ae_free(a, idx);
    ae_free(a, batch);
    ae_free(a, best_p);
    ae_free(a, best_b);
    return st;
}
