/* Internal model: the config builder's spec, the settings table, and the
 * model struct with its arenas and workspace. */
#ifndef AE_MODEL_H
#define AE_MODEL_H

#include <libae/hook.h>

#include "core/core.h"
#include "core/noise.h"
#include "layers/layers.h"
#include "losses/losses.h"
#include "optim/optim.h"

/* Every setting of ae_param, in one struct shared by config and model. */
typedef struct ae_settings {
    int64_t loss, reduction, optimizer, seed, nesterov, dead_window;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps, clip_norm;
    ae_noise_spec noise; /* denoising: the AE_P_NOISE_* settings (core/noise.h) */
    double vae_beta; /* VAE: KL weight and its warm-up in steps */
    int64_t vae_warmup;
    /* AE_P_WEIGHT_DECAY was set explicitly: choosing the optimizer no longer
       picks its default (PyTorch's: 1e-2 for AdamW, 0 otherwise). */
    int weight_decay_set;
} ae_settings;

void ae_settings_default(ae_settings *s);
/* Generic typed access through the parameter table; messages go to err. */
ae_status ae_settings_set(ae_settings *s, ae_errbuf *err, ae_param p, int is_int, int64_t iv,
                          double fv, int created);
ae_status ae_settings_get(const ae_settings *s, ae_errbuf *err, ae_param p, int is_int,
                          int64_t *iv, double *fv);
void ae_settings_to_optim(const ae_settings *s, ae_optim_settings *o);

struct ae_config {
    ae_allocator alloc;
    ae_errbuf err;
    size_t input_size; /* features: c * h * w */
    ae_shape input_shape;
    ae_layer_spec *layers;
    size_t nlayers, cap;
    size_t code_at; /* number of encoder layers once marked */
    int code_marked;
    int mirrored;
    int tied; /* ae_config_tie: every encoder-decoder pair is tied at creation */
    ae_settings s;
    /* ae_config_set_backend; not a setting of the table, since it belongs to
       the machine, not to the model, and model files do not keep it. */
    ae_backend backend;
};

struct ae_model {
    ae_allocator alloc;
    ae_errbuf err;
    ae_settings s;
    ae_backend backend; /* resolved at creation (never AUTO), fixed for the model's life */
    int threads;        /* ae_model_set_threads: 0 (default) OpenMP's count */

    ae_layer *layers;
    size_t nlayers, code_layer; /* layers [0, code_layer) form the encoder */
    ae_shape in_shape;
    size_t in_size, out_size, max_width;

    /* One contiguous arena each: parameters, their gradients, optimizer state. */
    size_t nparams;
    float *params, *grads, *state1, *state2;
    size_t nbuffers;
    float *buffers; /* non-trainable layer state (running statistics, thresholds) */
    float *buffers_saved; /* buffers before the current training step, restored when it fails */
    ae_param_block *blocks;
    size_t nblocks;
    ae_block_bound *bounds; /* per block (same capacity): the checked update's bounds */
    ae_grad_shape *grad_shapes; /* per block (same capacity), set by each backward pass */
    /* Per layer, for dense layers with sparse paths (else NULL): which rows
     * or columns of the weight gradient are all zero in the arena
     * (ae_sparse_io.w_zero), valid when grad_zero_ok. */
    unsigned char **grad_zero;
    unsigned char *grad_zero_ok;
    unsigned char *accumulate_w; /* per layer: its weight gradient adds to a range already written */
    /* Per layer: the offset of its own weight range. A tied decoder layer reads
     * its partner's range (w_off) while its own stays reserved, unused and
     * outside the blocks, for untying (src/model/stack.c). */
    size_t *w_own;

    /* The gradient-reduce hook (<libae/hook.h>), called by ae_train_step
     * between computing the gradients and the update; NULL: none. */
    ae_grad_reduce_fn reduce_fn;
    void *reduce_ctx;
    /* The batch-statistics hook (sync.c); sync_buf holds sync_room doubles
     * for the layers' sums. `sync` is set during ae_train_step's passes
     * only, when the hook is set and a layer synchronises. */
    ae_batch_reduce_fn sync_fn;
    void *sync_ctx;
    double *sync_buf;
    size_t sync_room;
    ae_batch_sync *sync;

    /* ae_fit's distributed hook (sync.c, used by src/train/fit.c): this
     * process is share_rank of share_size; NULL: ae_fit runs alone. */
    ae_fit_share_fn share_fn;
    void *share_ctx;
    int share_rank, share_size;

    ae_rng rng;
    uint64_t steps;
    double last_loss;

    /* Workspace for the largest batch seen. */
    float *ws;
    size_t ws_batch;
    float **y, **pre, **scratch; /* per layer */
    size_t *scratch_n;           /* per layer: floats of its scratch */
    /* Layer plans (plan.c): AE_PLAN_SLOTS per layer, NULL when no layer
     * makes plans on the model's backend. */
    struct ae_plan_slot *plans;
    uint64_t plan_clock;
    /* The parameters' generation, never 0: every write of m->params bumps
     * it (the optimizer's update, ae_model_params_written). Per layer with
     * ops->pack (else NULL): its packed parameters (ae_layer_io.packed)
     * and the generation they hold (0: none). */
    uint64_t params_gen;
    float **packed;
    uint64_t *packed_gen;
    int stepping; /* a training step's forward pass runs: it reads no packed parameters */
    float *grad_a, *grad_b;      /* ping-pong gradient buffers [batch, max_width] */

    float *noisy; /* corrupted copy of the input [noisy_batch, in_size] (denoising) */
    size_t noisy_batch;
    /* Sparse models (sparse.c). */
    int mode;                 /* ae_mode of the calls other than ae_train_step */
    const int32_t **out_idx;  /* per layer: kept indices of its output in the last forward */
    size_t *out_k;            /* per layer: entries per row of out_idx */
    uint64_t *last_active;    /* per code unit: last training step it was active, 0 never */
    float *pen_tmp;           /* max_width floats for penalty gradients */
    int has_stats;            /* a step or an evaluation has set the stat_* values */
    double stat_loss, stat_recon, stat_kl, stat_l1, stat_l0;
    size_t stat_kept_all;
    /* Variational autoencoders (vae.c). */
    int has_vae;
    size_t vae_layer;        /* the Gaussian layer, code_layer - 1 */
    float *vae_eps;          /* fixed eps [vae_eps_count], or NULL */
    size_t vae_eps_count;
    double stat_vae_kl;      /* the KL term of the last step or evaluation, reduced */
    ae_gaussian_in vae_in;   /* the Gaussian layer's inputs (its gauss_in) */
    /* Metadata (meta.c): key/value strings in the order first set. */
    struct ae_meta_entry *meta;
    size_t nmeta, meta_cap;
    /* The value convention of the training data (convention.c): conv,
     * and conv.std_count means then stds in conv_stats (room for
     * conv_cap values each). */
    ae_data_convention conv;
    float *conv_stats;
    size_t conv_cap;
    /* The position of the last ae_fit run (fit_state.c), or NULL. */
    struct ae_fit_state *fit;
};

/* ---- layer plans (plan.c) ---- */
#define AE_PLAN_SLOTS 4
typedef struct ae_plan_slot {
    size_t batch; /* 0: empty */
    void *plan;   /* NULL: the layer runs without a plan at this batch size */
    uint64_t used;
} ae_plan_slot;
/* At creation: the slots, when a layer makes plans on the model's backend,
 * and the packed parameters' buffers. */
ae_status ae_plans_setup(ae_model *m, ae_errbuf *err);
void ae_plans_free(ae_model *m);
/* Makes the plans of `batch` that are not kept yet (ae_model_reserve). */
ae_status ae_plans_for(ae_model *m, size_t batch);
/* Layer i's packed parameters for an inference pass (ae_layer_io.packed),
 * NULL: none; *stale: they are not those of the current generation. */
float *ae_plans_packed(const ae_model *m, size_t i, int *stale);
/* Layer i's plan for `batch` (ae_layer_io.plan), NULL: none. */
void *ae_model_layer_plan(const ae_model *m, size_t i, size_t batch);
/* The scratch layer i needs at `batch` (the largest batch) for every kept plan. */
size_t ae_plans_scratch(const ae_model *m, size_t i, size_t batch);
/* ---- the position of an ae_fit run (fit_state.c) ---- */
/* What ae_fit (src/train/fit.c) needs besides the model to continue a run
 * exactly where it stopped. Kept with the model and updated after every
 * step of the run; a checkpoint holds it (section FITS, src/io/io.c) while
 * it describes the model (ae_fit_state_current). */
#define AE_FITS_SHUFFLE 1u   /* the run shuffles */
#define AE_FITS_DROP_LAST 2u /* the run drops the last partial batch */
#define AE_FITS_BEST 4u      /* the run keeps the best epoch's parameters (best_p, best_b) */
typedef struct ae_fit_state {
    uint32_t flags;
    uint64_t model_steps;            /* the model's step count when last updated */
    uint64_t samples, batch_size, shuffle_seed; /* the run's data and batching */
    uint64_t epoch, batch, step;     /* epochs finished, batches of the next epoch
                                        finished, steps of the run taken */
    uint64_t order[4];               /* the shuffle RNG at the start of epoch `epoch` */
    double acc;                      /* the epoch's batch losses so far (weighted) */
    uint64_t seen;                   /* and its samples so far */
    double last_lr;                  /* the rate of the last step */
    double best;                     /* best monitored loss, +inf before any epoch */
    uint64_t best_epoch, wait;       /* its epoch (1-based, 0 none); epochs since */
    double lr_plateau, plateau_best; /* ReduceLROnPlateau's rate and best */
    uint64_t bad_epochs, cooldown;
    size_t nbest_p, nbest_b;         /* AE_FITS_BEST: the arenas' sizes, else 0 */
    float *best_p, *best_b;
} ae_fit_state;
/* A state with room for a best copy of np parameters and nb state values
 * (both 0 without AE_FITS_BEST), zeroed; NULL when out of memory. */
ae_fit_state *ae_fit_state_new(const ae_allocator *a, size_t np, size_t nb);
void ae_fit_state_free(const ae_allocator *a, ae_fit_state *fs);
/* 1 when m->fit describes the model as it is (no step since, arenas of the
 * recorded sizes), so that a checkpoint may hold it. */
int ae_fit_state_current(const ae_model *m);

/* ---- metadata (meta.c) ---- */
typedef struct ae_meta_entry {
    char *key, *value;
    size_t key_len, value_len;
} ae_meta_entry;
#define AE_META_KEY_MAX 255
#define AE_META_VALUE_MAX ((size_t)1 << 20)
/* Sets (value != NULL) or removes a key of given lengths; checks lengths,
 * NUL bytes and UTF-8. Messages go to err. */
ae_status ae_meta_set(ae_model *m, ae_errbuf *err, const char *key, size_t key_len,
                      const char *value, size_t value_len);
void ae_meta_free(ae_model *m);

/* ---- the training data's value convention (convention.c) ---- */
/* Room for n mean/std values, so that setting a convention of n values
 * (ae_fit, after its last step) cannot fail for memory. */
ae_status ae_convention_reserve(ae_model *m, size_t n);
void ae_convention_free(ae_model *m);

/* The settings table in order, for saving: the id and type of row i; 0
 * past the end. */
int ae_settings_row(size_t i, ae_param *id, int *is_int);
/* Row i of the settings table in full (for the text format, arch.c); 0 past the end. */
typedef struct ae_setting_info {
    ae_param id;
    const char *name; /* "AE_P_LEARNING_RATE" */
    int is_int;
    double lo, hi;
    int lo_open, hi_open;
    const char *const *values; /* an int setting's value names lo..hi, or NULL */
} ae_setting_info;
int ae_settings_info(size_t i, ae_setting_info *out);

/* Appends a layer spec to a config (growing its array); errors name the cause. */
ae_status ae_config_push_layer(ae_config *cfg, const ae_layer_spec *spec);
/* Every builder call that adds a layer ends here: checks that a layer may
 * be added now, the spec against its kind's descriptor (activation, slope,
 * attribute bounds, the kind's own check, which may canonicalise the spec),
 * and that it fits the shape reached so far; then appends it (a layer that
 * is the code, AE_LK_CODE, also marks the code). Errors change nothing. */
ae_status ae_config_add_spec(ae_config *cfg, ae_layer_spec *spec);

/* Architecture descriptions (arch.c). ae_config_from_arch on `len` bytes
 * (a NUL among them is an error). */
ae_status ae_arch_parse(ae_config *cfg, const char *text, size_t len);
/* A config as a description (snprintf-style, as ae_model_describe). */
ae_status ae_arch_print_config(const ae_config *cfg, char *buf, size_t capacity, size_t *size);
/* The reference part of docs/arch.md (every kind, statement and setting),
 * generated from the tables; snprintf-style, AE_ERR_RANGE when it does not fit. */
ae_status ae_arch_reference(char *buf, size_t capacity, size_t *size);

/* Tying (src/model/stack.c). Ties encoder layers [first, last] to their
 * mirror partners (decoder layer nlayers-1-i); errors go to err and change
 * nothing. */
ae_status ae_stack_tie(ae_model *m, size_t first, size_t last, ae_errbuf *err);
/* Derives each layer's w_frozen and each block's frozen flag from the
 * layers' frozen flags and the tying; call after changing layer->frozen. */
void ae_stack_sync_frozen(ae_model *m);
/* A layer's weight as [out, in] into dst, or from src (the partner's weight,
 * transposed, for a tied decoder layer). */
void ae_stack_read_weight(const ae_model *m, const ae_layer *L, float *dst);
void ae_stack_write_weight(ae_model *m, const ae_layer *L, const float *src);

/* Runs layers [from, to) on x and returns the last output. A Gaussian layer
 * among them samples eps from rng, or copies eps when not NULL; with both
 * NULL it outputs mu. In training mode layers update their state
 * (m->buffers): see ae_model_check_state. */
const float *ae_model_forward(ae_model *m, size_t from, size_t to, const float *x, size_t batch,
                              int train, ae_rng *rng, const float *eps);
/* After a forward pass in training mode: AE_OK when the layer state is
 * finite; else it is restored from m->buffers_saved (which the caller
 * filled before the pass) and the call fails with AE_ERR_NUMERIC. */
ae_status ae_model_check_state(ae_model *m);
/* ae_model_forward in training mode with the state saved before and
 * checked after (ae_model_check_state); *y is the last output. */
ae_status ae_model_forward_train(ae_model *m, size_t from, size_t to, const float *x,
                                 size_t batch, ae_rng *rng, const float *eps, const float **y);
/* Parameters or optimizer state were written outside a training step
 * (ae_model_set_weights, copying layers, restoring the best epoch, loading,
 * tying): the optimizer's bounds on them are forgotten
 * (ae_optim_step_checked) and the parameters' generation moves on, so
 * that packed parameters are packed again before they are read. */
void ae_model_params_written(ae_model *m);
/* Checks a batch (pointers, size, per-layer limits), that `x` holds finite
 * values (batch·width) and reserves the workspace; messages go to m->err. */
ae_status ae_model_prepare(ae_model *m, const float *x, const void *out, size_t batch,
                           size_t width);
/* AE_ERR_RANGE naming the first of the batch's targets outside the loss's
 * domain (BCE: [0, 1]); `what` names the array ("the target"). */
ae_status ae_model_check_target(ae_model *m, const float *t, size_t batch, const char *what);

/* The first layer the backward pass of a training step reaches (the
 * lowest that trains); nlayers when none trains. */
size_t ae_model_first_trained(const ae_model *m);

/* ---- the batch-statistics hook (sync.c) ---- */
/* Starts a training step's synchronisation in *s (m->sync = s when the
 * hook is set and some layer synchronises; else m->sync stays NULL). */
void ae_sync_begin(ae_model *m, ae_batch_sync *s, size_t batch);
/* Ends it after the passes (`local`: their status): makes the calls of
 * the step's sequence the passes did not make (with `local`), clears
 * m->sync, and returns the status of the step so far (the hook's error
 * first, with its message). */
ae_status ae_sync_end(ae_model *m, ae_status local);

/* Grows the workspace to hold `batch` samples and makes the layers' plans
 * for `batch`; allocates only when larger than before, or at a batch size
 * not among the last AE_PLAN_SLOTS of a layer with plans. */
ae_status ae_model_reserve(ae_model *m, size_t batch);
/* Grows the buffer of the corrupted input (denoising) likewise. */
ae_status ae_model_reserve_noisy(ae_model *m, size_t batch);
/* AE_ERR_RANGE with a message when a layer caps its batch below `batch`. */
ae_status ae_model_check_layer_batch(ae_model *m, size_t batch);

/* ---- sparse models (sparse.c) ---- */
/* At creation, after every layer's setup: checks the penalties, sets the
 * dense layers' sparsity hints and allocates the sparse bookkeeping. */
ae_status ae_sparse_setup(ae_model *m, ae_errbuf *err);
void ae_sparse_free(ae_model *m);
/* Records layer i's kept-index list after its forward (from = first layer run). */
void ae_sparse_after_forward(ae_model *m, size_t i, size_t from);
/* The sparse-path hints of layer i's forward pass (from = first layer
 * run) in *sp: sp, or NULL when the layer has none (ae_layer_io.sparse). */
ae_sparse_io *ae_sparse_hints(const ae_model *m, size_t i, size_t from, size_t batch,
                              ae_sparse_io *sp);
/* The same for layer i's backward pass (first = the lowest layer the pass
 * reaches, want_dx: it writes dx), with the weight gradient's zero flags;
 * after the layer's backward, ae_sparse_after_backward keeps what it
 * reported (the flags, and the gradient's shape for the optimizer). */
ae_sparse_io *ae_sparse_before_backward(ae_model *m, size_t i, size_t first, size_t batch,
                                        int want_dx, ae_sparse_io *sp);
void ae_sparse_after_backward(ae_model *m, size_t i, const ae_sparse_io *sp);
/* The number of zero flags of a dense layer with sparse paths. */
size_t ae_sparse_zero_flags(const ae_layer *L);
/* The penalties of the last forward (values of every layer's penalties). */
void ae_sparse_penalties(const ae_model *m, size_t batch, double *kl, double *l1);
/* Adds the penalty gradients of layer i's output to dy. */
void ae_sparse_penalty_grad(ae_model *m, size_t i, size_t batch, float *dy);
/* Records the loss terms and the code's L0 of a finished forward. */
void ae_sparse_record(ae_model *m, size_t batch, double recon, double kl, double l1);
/* Updates the training statistics after a successful training step. */
void ae_sparse_after_step(ae_model *m, size_t batch);

/* ---- variational autoencoders (vae.c) ---- */
/* At creation: finds the Gaussian layer and checks where it is. */
ae_status ae_vae_setup(ae_model *m, ae_errbuf *err);
void ae_vae_free(ae_model *m);
/* The sampling of a forward pass: fixed eps (when set; AE_ERR_SHAPE when
 * they are not batch·dim values) or the model's RNG. */
ae_status ae_vae_sampling(ae_model *m, size_t batch, ae_rng **rng, const float **eps);
/* The KL weight beta_t of the next training step (warm-up applied). */
double ae_vae_beta_now(const ae_model *m);
/* The KL term of the last forward, reduced over the batch as AE_P_REDUCTION
 * says (0 without a Gaussian layer). */
double ae_vae_kl_term(const ae_model *m, size_t batch);
/* Sets the Gaussian layer's kl_coef for the backward pass of a training
 * step on `batch`. */
void ae_vae_before_backward(ae_model *m, size_t batch);
/* Sets the Gaussian layer's sampling for a forward pass (see ae_model_forward). */
void ae_vae_before_forward(ae_model *m, ae_rng *rng, const float *eps);

#endif
