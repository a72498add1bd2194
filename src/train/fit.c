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
 * - m->fit, the run's position (ae_fit_state, model.h): this loop keeps
 *   its counters there, updated after every step, so that a checkpoint
 *   saved at any point between steps resumes the run (src/io/io.c saves
 *   it);
 * - m->conv (read) and ae_convention_reserve before the first step, so
 *   that recording the training set's value convention (with the
 *   dataset's st_mean and st_std) before a checkpoint and after the last
 *   step cannot fail;
 * - m->share_fn, share_rank, share_size (ae_model_set_fit_share, sync.c):
 *   a run of several processes; each trains on its slice of every global
 *   batch, and they agree through the hook at fixed points (share()). */
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
    o->checkpoint_unit = AE_CHECKPOINT_STEPS;
    o->checkpoint_on_stop = 1;
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
    if ((unsigned)o->checkpoint_unit > AE_CHECKPOINT_EPOCHS)
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_fit: unknown checkpoint_unit %d",
                        (int)o->checkpoint_unit);
    if (o->checkpoint_every && !o->checkpoint_path)
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_fit: checkpoint_every is %zu but checkpoint_path is NULL",
                        o->checkpoint_every);
    if (o->checkpoint_path && !*o->checkpoint_path)
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_fit: checkpoint_path is empty");
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

/* The options that fix the order of the batches, as a run records them. */
static uint32_t run_flags(const ae_fit_options *o) {
    return (o->shuffle ? AE_FITS_SHUFFLE : 0) | (o->drop_last ? AE_FITS_DROP_LAST : 0) |
           (o->restore_best ? AE_FITS_BEST : 0);
}

/* The state a run starts from: a copy of the model's (resume), or fresh. */
static ae_status start_state(ae_model *m, const ae_fit_options *o, size_t n, ae_fit_state **out) {
    ae_errbuf *e = &m->err;
    const ae_fit_state *old = o->resume ? m->fit : NULL;
    uint32_t flags = run_flags(o);
    if (old) {
        if (old->model_steps != m->steps)
            return ae_error(e, AE_ERR_STATE,
                            "ae_fit: cannot resume: the model took %llu steps, its recorded run "
                            "ended at step %llu (it trained outside ae_fit since)",
                            (unsigned long long)m->steps, (unsigned long long)old->model_steps);
        const char *diff = NULL;
        if (old->samples != n)
            diff = "the training set's size";
        else if (old->batch_size != o->batch_size)
            diff = "batch_size";
        else if ((old->flags ^ flags) & AE_FITS_SHUFFLE)
            diff = "shuffle";
        else if (o->shuffle && old->shuffle_seed != o->shuffle_seed)
            diff = "shuffle_seed";
        else if ((old->flags ^ flags) & AE_FITS_DROP_LAST)
            diff = "drop_last";
        else if ((old->flags ^ flags) & AE_FITS_BEST)
            diff = "restore_best";
        else if ((flags & AE_FITS_BEST) && (old->nbest_p != m->nparams || old->nbest_b != m->nbuffers))
            diff = "the number of parameters";
        if (diff)
            return ae_error(e, AE_ERR_STATE,
                            "ae_fit: cannot resume: %s differs from the recorded run's", diff);
    }
    int best = o->restore_best != 0;
    ae_fit_state *fs = ae_fit_state_new(&m->alloc, best ? m->nparams : 0, best ? m->nbuffers : 0);
    if (!fs) return ae_error(e, AE_ERR_OUT_OF_MEMORY, "ae_fit: out of memory for the run's state");
    if (old) {
        float *bp = fs->best_p, *bb = fs->best_b;
        *fs = *old;
        fs->best_p = bp;
        fs->best_b = bb;
        if (best) {
            memcpy(bp, old->best_p, m->nparams * sizeof(float));
            memcpy(bb, old->best_b, m->nbuffers * sizeof(float));
        }
    } else {
        fs->flags = flags;
        fs->model_steps = m->steps;
        fs->samples = n;
        fs->batch_size = o->batch_size;
        fs->shuffle_seed = o->shuffle ? o->shuffle_seed : 0;
        ae_rng r;
        ae_rng_seed(&r, o->shuffle_seed);
        memcpy(fs->order, r.s, sizeof fs->order);
        fs->last_lr = m->s.lr;
        fs->best = INFINITY;
        fs->lr_plateau = m->s.lr;
        fs->plateau_best = INFINITY;
    }
    *out = fs;
    return AE_OK;
}

/* The training set's value convention and the range of its inputs read
 * so far (lo > hi: none yet). */
typedef struct conv_rec {
    const ae_dataset *train;
    ae_data_convention dc;
    float lo, hi;
} conv_rec;

/* A run's record starts from the model's range when the model records
 * the training set's convention already (a resumed run, whose checkpoint
 * holds the range read before it; another run on data of the same
 * meaning): the range of every training input. */
static conv_rec start_range(const ae_model *m, const ae_dataset *train) {
    conv_rec r = {.train = train, .lo = INFINITY, .hi = -INFINITY};
    r.dc.struct_size = sizeof r.dc;
    ae_dataset_convention(train, &r.dc);
    const ae_data_convention *c = &m->conv;
    size_t n = r.dc.std_count;
    int same = c->struct_size && c->elem == r.dc.elem && c->scale == r.dc.scale &&
               c->offset == r.dc.offset && c->std_count == n && !isnan(c->lo);
    for (size_t i = 0; same && i < n; i++)
        same = m->conv_stats[i] == train->st_mean[i] && m->conv_stats[m->conv_cap + i] == train->st_std[i];
    if (same) r.lo = (float)c->lo, r.hi = (float)c->hi;
    return r;
}

/* Records the convention in the model (room reserved: cannot fail). */
static void record_convention(ae_model *m, const conv_rec *r) {
    ae_data_convention dc = r->dc;
    dc.lo = r->lo <= r->hi ? r->lo : NAN;
    dc.hi = r->lo <= r->hi ? r->hi : NAN;
    ae_model_set_data_convention(m, &dc, r->train->st_mean, r->train->st_std);
}

/* A checkpoint of the run as it is, with the model's own learning rate
 * (not the scheduled one) and the value convention of what it trained on
 * in the file. */
static ae_status write_checkpoint(ae_model *m, const ae_fit_options *o, double base_lr,
                                  const conv_rec *cv) {
    m->s.lr = base_lr;
    record_convention(m, cv);
    ae_status st = ae_model_save(m, o->checkpoint_path, AE_SAVE_CHECKPOINT);
    if (st) {
        char msg[sizeof m->err.msg];
        memcpy(msg, m->err.msg, sizeof msg);
        const ae_fit_state *fs = m->fit;
        ae_error(&m->err, st, "ae_fit: epoch %llu, batch %llu: checkpoint: %s",
                 (unsigned long long)fs->epoch + (fs->batch ? 1 : 0), (unsigned long long)fs->batch, msg);
    }
    return st;
}

/* A point where the processes of a distributed run agree (hook.h): the
 * values become process 0's, and the status the first error in process
 * order. `st` is this process's; another process's error gets a message
 * here (this process's keeps its own). Alone: st. */
static ae_status share(ae_model *m, ae_fit_point point, double *v, size_t n, ae_status st,
                       const char *where) {
    if (!m->share_fn) return st;
    ae_status all = m->share_fn(m->share_ctx, point, v, n, st);
    if (all && !st)
        ae_error(&m->err, all, "ae_fit: %s: another process failed (%s); this one stopped with it",
                 where, ae_status_name(all));
    return st ? st : all;
}

ae_status ae_fit_resume_point(const ae_model *m, size_t *epochs_done, size_t *batches_done) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!ae_fit_state_current(m))
        return ae_error((ae_errbuf *)&m->err, AE_ERR_STATE,
                        m->fit ? "the model trained outside ae_fit since its run was recorded"
                               : "the model carries no ae_fit run");
    if (epochs_done) *epochs_done = (size_t)m->fit->epoch;
    if (batches_done) *batches_done = (size_t)m->fit->batch;
    return AE_OK;
}

ae_status ae_fit(ae_model *m, const ae_dataset *train, const ae_fit_options *opts) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_fit_options defaults;
    ae_fit_options_init(&defaults);
    const ae_fit_options *o = opts ? opts : &defaults;
    /* Every way out before the first step meets the other processes' too. */
    ae_status st = check_options(m, train, o);
    if (st) return share(m, AE_FIT_POINT_START, NULL, 0, st, "start");

    size_t n = ae_dataset_count(train), d = m->in_size, bs = o->batch_size;
    size_t nbatch = o->drop_last ? n / bs : (n + bs - 1) / bs;
    /* Distributed: this process trains rows [nb·r/P, nb·(r+1)/P) of each
       global batch of nb (at most lbs), and only process 0 validates, calls
       back and writes checkpoints. */
    const size_t P = m->share_fn ? (size_t)m->share_size : 1, r = m->share_fn ? (size_t)m->share_rank : 0;
    const int root = r == 0;
    const size_t lbs = (bs + P - 1) / P;
    size_t last = o->drop_last || n % bs == 0 ? bs : n % bs;
    if (P > 1 && (bs < P || last < P))
        st = ae_error(&m->err, AE_ERR_STATE,
                      "ae_fit: a batch of %zu samples is smaller than the %zu processes (batch_size "
                      "%zu, %zu samples%s)",
                      bs < P ? bs : last, P, bs, n,
                      bs < P ? "" : "; drop_last would leave out the last partial batch");
    ae_fit_state *fs = NULL;
    if (!st) st = start_state(m, o, n, &fs);
    if (st) return share(m, AE_FIT_POINT_START, NULL, 0, st, "start");
    ae_history *h = o->history;
    const ae_allocator *a = &m->alloc;
    size_t *idx = o->shuffle ? ae_alloc(a, n * sizeof *idx) : NULL;
    /* One batch of rows: the gathered (shuffled) or file-backed ones. */
    int need_batch = o->shuffle || ae_dataset_file_backed(train);
    float *batch = need_batch ? ae_alloc(a, lbs * d * sizeof *batch) : NULL;
    int keep_best = o->restore_best != 0;
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
              (h && h->cap < o->epochs && !rec) || (val_noisy && !val_file && !vnoisy) ||
              (val_file && !vbuf);
    if (oom) st = ae_error(&m->err, AE_ERR_OUT_OF_MEMORY, "ae_fit: out of memory for the batch buffers");
    /* The workspace for the batch size, so that no step fails for memory. */
    if (!oom) st = ae_model_reserve(m, o->val && root ? bs : lbs);
    /* Room for the training data's convention, recorded after the steps. */
    if (!st) st = ae_convention_reserve(m, train->st_n);
    if (!st && ns.kind != AE_NOISE_NONE) st = ae_noise_check(&ns, &m->err, 1);
    if (!st && ns.kind != AE_NOISE_NONE) st = ae_model_reserve_noisy(m, lbs);
    st = share(m, AE_FIT_POINT_START, NULL, 0, st, "start");
    if (st) {
        ae_free(a, vbuf);
        ae_free(a, vnoisy);
        ae_free(a, idx);
        ae_free(a, batch);
        ae_fit_state_free(a, fs);
        if (h) ae_free(&h->alloc, rec);
        return st;
    }
    /* Nothing fails from here on but a step, an evaluation or a checkpoint. */
    ae_fit_state_free(a, m->fit);
    m->fit = fs;
    if (rec) {
        ae_free(&h->alloc, h->e);
        h->e = rec;
        h->cap = o->epochs;
    }
    if (h) {
        h->n = 0;
        h->best = (size_t)fs->best_epoch;
        h->stop = AE_FIT_COMPLETED;
    }

    if (vnoisy) {
        ae_rng vr;
        ae_rng_seed(&vr, o->val_noise_seed);
        ae_noise_apply(&ns, &vr, ae_dataset_data(o->val), vnoisy, nval, d);
    }
    const double base_lr = m->s.lr;
    const int sum_reduce = m->s.reduction == AE_REDUCE_SUM;
    const int ckpt_steps = o->checkpoint_every && o->checkpoint_unit == AE_CHECKPOINT_STEPS;
    const int ckpt_epochs = o->checkpoint_every && o->checkpoint_unit == AE_CHECKPOINT_EPOCHS;
    ae_fit_stop stop = AE_FIT_COMPLETED;
    conv_rec cv = start_range(m, train);
    char msg[sizeof m->err.msg];
    /* Progress: this call's samples and time, and the run's planned steps. */
    const double t_call = now_seconds();
    const size_t per_epoch = o->drop_last ? nbatch * bs : n;
    const uint64_t total_steps = (uint64_t)o->epochs * nbatch;
    double call_samples = 0.0;

    /* A run that stopped early stays stopped (as the run that was not
       interrupted did not go on). */
    if (fs->batch == 0 && o->patience && fs->epoch && fs->wait >= o->patience)
        stop = AE_FIT_EARLY_STOPPED;
    int stopped = stop != AE_FIT_COMPLETED;
    int written = 0; /* a checkpoint was written at the current point */
    while (!stopped && fs->epoch < o->epochs) {
        size_t ep = (size_t)fs->epoch;
        double t0 = now_seconds();
        double lr_epoch = o->schedule == AE_SCHED_PLATEAU ? fs->lr_plateau : scheduled(o, base_lr, ep);
        /* The order of this epoch, redrawn from the RNG state at its start;
           `next` is the state the next epoch starts from. */
        ae_rng next;
        memcpy(next.s, fs->order, sizeof next.s);
        if (o->shuffle) permute(&next, idx, n);
        for (size_t b = (size_t)fs->batch; b < nbatch; b++) {
            size_t i0 = b * bs, nb = n - i0 < bs ? n - i0 : bs;
            size_t lo = nb * r / P, ln = nb * (r + 1) / P - lo;
            const float *x = batch;
            /* In memory these cannot fail (indices in range, buffer sized);
               file-backed rows can meet a read error or a non-finite value. */
            st = o->shuffle ? ae_dataset_gather((ae_dataset *)(uintptr_t)train, idx + i0 + lo, ln, batch, NULL)
                            : ae_dataset_rows_view(train, i0 + lo, ln, batch, &x);
            if (st) {
                ae_error(&m->err, st, "ae_fit: epoch %zu, batch %zu: %s", ep + 1, b + 1,
                         ae_dataset_last_error(train));
                break;
            }
            double lr = lr_epoch;
            if (fs->step < o->warmup_steps)
                lr *= o->warmup_start + (1.0 - o->warmup_start) * (double)fs->step / (double)o->warmup_steps;
            m->s.lr = lr;
            float l;
            st = ae_train_step(m, x, NULL, ln, &l);
            m->s.lr = base_lr; /* callbacks and saves see the model's own rate */
            if (st) {
                memcpy(msg, m->err.msg, sizeof msg);
                ae_error(&m->err, st, "ae_fit: epoch %zu, batch %zu: %s", ep + 1, b + 1, msg);
                break;
            }
            /* The range of the inputs, before a checkpoint or a stop. */
            for (size_t i = 0; ep == 0 && i < ln * d; i++) {
                cv.lo = x[i] < cv.lo ? x[i] : cv.lo;
                cv.hi = x[i] > cv.hi ? x[i] : cv.hi;
            }
            fs->acc += sum_reduce ? (double)l : (double)l * (double)nb;
            fs->seen += nb;
            fs->step++;
            fs->batch = b + 1;
            fs->last_lr = lr;
            fs->model_steps = m->steps;
            call_samples += (double)nb;
            written = 0;
            if (ckpt_steps && fs->step % o->checkpoint_every == 0 && root) {
                st = write_checkpoint(m, o, base_lr, &cv);
                written = st == AE_OK;
            }
            int cb_stop = 0;
            if (!st && o->batch_callback && root) {
                ae_batch_stats bst;
                memset(&bst, 0, sizeof bst);
                bst.struct_size = sizeof bst;
                bst.epoch = ep + 1;
                bst.epochs = o->epochs;
                bst.batch = b + 1;
                bst.batches = nbatch;
                bst.step = fs->step;
                bst.total_steps = total_steps;
                bst.loss = (double)l;
                bst.epoch_loss = fs->acc / (double)fs->seen;
                bst.learning_rate = lr;
                bst.elapsed = now_seconds() - t_call;
                bst.samples_per_second = bst.elapsed > 0.0 ? call_samples / bst.elapsed : 0.0;
                double left = (double)(o->epochs - ep - 1) * (double)per_epoch +
                              (double)(per_epoch > fs->seen ? per_epoch - fs->seen : 0);
                bst.eta = bst.samples_per_second > 0.0 ? left / bst.samples_per_second : 0.0;
                cb_stop = o->batch_callback(&bst, o->user) != 0;
            }
            double v = cb_stop;
            st = share(m, AE_FIT_POINT_STEP, &v, 1, st, "step");
            if (st) break;
            if (v != 0.0) {
                stop = AE_FIT_CALLBACK;
                stopped = 1;
                break;
            }
        }
        if (st || stopped) break;
        ae_epoch_stats es;
        memset(&es, 0, sizeof es);
        es.struct_size = sizeof es;
        es.epoch = ep + 1;
        es.train_loss = fs->acc / (double)fs->seen;
        es.val_loss = NAN;
        es.learning_rate = fs->last_lr;
        if (o->val) {
            if (root)
                st = evaluate_set(m, o->val, vnoisy, val_noisy ? &ns : NULL, o->val_noise_seed, vbuf,
                                  vbuf ? vbuf + bs * d : NULL, bs, sum_reduce, &es.val_loss);
            if (st) {
                memcpy(msg, m->err.msg, sizeof msg);
                ae_error(&m->err, st, "ae_fit: epoch %zu, validation: %s", ep + 1, msg);
            }
            st = share(m, AE_FIT_POINT_VALIDATION, &es.val_loss, 1, st, "validation");
            if (st) break;
        }
        es.seconds = now_seconds() - t0;
        es.steps = m->steps;
        double mon = o->val ? es.val_loss : es.train_loss;
        if (mon < fs->best - o->min_delta) {
            es.best = 1;
            fs->best = mon;
            fs->best_epoch = ep + 1;
            fs->wait = 0;
            if (keep_best) {
                memcpy(fs->best_p, m->params, m->nparams * sizeof(float));
                memcpy(fs->best_b, m->buffers, m->nbuffers * sizeof(float));
            }
        } else {
            fs->wait++;
        }
        if (o->schedule == AE_SCHED_PLATEAU) {
            /* torch.optim.lr_scheduler.ReduceLROnPlateau, mode "min", threshold "rel". */
            if (mon < fs->plateau_best * (1.0 - o->plateau_threshold)) {
                fs->plateau_best = mon;
                fs->bad_epochs = 0;
            } else {
                fs->bad_epochs++;
            }
            if (fs->cooldown > 0) {
                fs->cooldown--;
                fs->bad_epochs = 0;
            }
            if (fs->bad_epochs > o->plateau_patience) {
                double nl = fs->lr_plateau * o->plateau_factor;
                if (nl < o->min_lr) nl = o->min_lr;
                if (fs->lr_plateau - nl > 1e-8) fs->lr_plateau = nl;
                fs->cooldown = o->plateau_cooldown;
                fs->bad_epochs = 0;
            }
        }
        /* The epoch is done: the run's position moves to the next one. */
        fs->epoch = ep + 1;
        fs->batch = 0;
        fs->acc = 0.0;
        fs->seen = 0;
        memcpy(fs->order, next.s, sizeof fs->order);
        written = 0;
        if (h) {
            h->e[h->n++] = es;
            h->best = (size_t)fs->best_epoch;
        }
        double cb_stop = o->callback && root && o->callback(&es, o->user);
        if (ckpt_epochs && fs->epoch % o->checkpoint_every == 0 && root) {
            st = write_checkpoint(m, o, base_lr, &cv);
            written = st == AE_OK;
        }
        st = share(m, AE_FIT_POINT_EPOCH, &cb_stop, 1, st, "end of epoch");
        if (cb_stop != 0.0) {
            stop = AE_FIT_CALLBACK;
            stopped = 1;
        } else if (o->patience && fs->wait >= o->patience) {
            stop = AE_FIT_EARLY_STOPPED;
            stopped = 1;
        }
        if (st || stopped) break;
    }
    /* A callback's stop: a checkpoint of where it stopped, when asked (one
       written at this very point already is that checkpoint). */
    if (!st && stop == AE_FIT_CALLBACK && o->checkpoint_path && o->checkpoint_on_stop && !written &&
        root)
        st = write_checkpoint(m, o, base_lr, &cv);
    /* Every process restores the best copy or none. */
    st = share(m, AE_FIT_POINT_END, NULL, 0, st, "end");
    if (st) stop = AE_FIT_FAILED;
    /* The model now means what its training data mean (room reserved
       above, so this cannot fail). */
    if (fs->step > 0) record_convention(m, &cv);
    if (keep_best && fs->best_epoch && st == AE_OK) {
        memcpy(m->params, fs->best_p, m->nparams * sizeof(float));
        memcpy(m->buffers, fs->best_b, m->nbuffers * sizeof(float));
        ae_model_params_written(m);
        /* The model is no longer where the run stopped. */
        ae_fit_state_free(a, m->fit);
        m->fit = NULL;
    }
    m->s.lr = base_lr;
    if (h) h->stop = stop;
    ae_free(a, vbuf);
    ae_free(a, vnoisy);
    ae_free(a, idx);
    ae_free(a, batch);
    return st;
}
