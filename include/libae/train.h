/*
 * libae training loop. Included by <libae/ae.h>; do not include it alone.
 *
 * ae_fit trains a model on a dataset for a number of epochs: it batches
 * (shuffled from a seed, with or without the last partial batch), calls
 * ae_train_step on each batch, evaluates a validation set after each epoch
 * with ae_evaluate, sets the learning rate from a schedule and a warm-up,
 * stops early when the monitored loss stops improving, reports each epoch
 * to a callback, and records every epoch in an ae_history. It uses only
 * what every model kind has (train step, evaluate, learning rate), so it
 * serves every kind of autoencoder. Denoising is a model setting
 * (AE_P_NOISE_KIND): the training steps corrupt their input afresh; the
 * validation input is corrupted once per fit with the same settings (a
 * fixed seed, so epochs compare) and evaluated against the clean data,
 * unless val_corrupt is 0.
 *
 * Checkpoints and resume. The model carries the position of its last
 * ae_fit run (epoch, batch, step, the schedule and early-stopping state,
 * the shuffle RNG and, with restore_best, the best epoch's copy),
 * updated after every step; ae_model_save with AE_SAVE_CHECKPOINT stores
 * it with the model (docs/file-format.md, section FITS), and ae_fit with
 * `resume` set continues a loaded checkpoint's run: stopped at any
 * checkpoint and resumed with the same data and options, the run ends
 * bitwise as the run that was not interrupted. ae_fit writes checkpoints
 * itself every N steps or epochs (checkpoint_path, checkpoint_every).
 */
#ifndef LIBAE_TRAIN_H
#define LIBAE_TRAIN_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Learning-rate schedules, applied at the start of each epoch (numbers frozen). Since 0.1.0. */
typedef enum ae_schedule {
    /* The model's learning rate throughout. */
    AE_SCHED_CONSTANT = 0,
    /* PyTorch's StepLR: lr * gamma^floor(epoch / step_size). */
    AE_SCHED_STEP = 1,
    /* PyTorch's CosineAnnealingLR: min_lr + (lr - min_lr)(1 + cos(pi e / T)) / 2
       for epoch e (0-based), T = cosine_epochs (0: the number of epochs). */
    AE_SCHED_COSINE = 2,
    /* PyTorch's ReduceLROnPlateau (mode "min", relative threshold): after
       more than plateau_patience epochs without the monitored loss falling
       below best * (1 - plateau_threshold), lr = max(lr * plateau_factor,
       min_lr), then plateau_cooldown epochs without counting. */
    AE_SCHED_PLATEAU = 3
} ae_schedule;

/** Why ae_fit stopped, as ae_history_stop_reason reports it (numbers frozen). Since 0.1.0. */
typedef enum ae_fit_stop {
    AE_FIT_NOT_RUN = 0,       /* the history has not been filled by ae_fit */
    AE_FIT_COMPLETED = 1,     /* all epochs ran */
    AE_FIT_EARLY_STOPPED = 2, /* early stopping */
    AE_FIT_CALLBACK = 3,      /* the callback asked to stop */
    AE_FIT_FAILED = 4         /* a step or evaluation failed (ae_fit returned its error) */
} ae_fit_stop;

/**
 * One epoch, as the callback and ae_history_get report it. The caller of
 * ae_history_get sets struct_size; fields added later go at the end.
 * Since 0.1.0.
 */
typedef struct ae_epoch_stats {
    size_t struct_size;
    size_t epoch;         /* 1 for the first epoch */
    double train_loss;    /* mean of the epoch's batch losses weighted by batch size
                             (AE_REDUCE_SUM: their sum divided by the sample count) */
    double val_loss;      /* the same over the validation set; NaN without one */
    double learning_rate; /* the rate of the epoch's last step */
    double seconds;       /* wall time of the epoch, training and validation */
    uint64_t steps;       /* the model's step count at the end of the epoch */
    int best;             /* 1 when the monitored loss (validation if any, else
                             training) improved on the best by more than min_delta */
} ae_epoch_stats;

/**
 * Called after each epoch with its statistics (valid during the call) and
 * the options' user pointer. Return 0 to continue, non-zero to stop.
 * Since 0.1.0.
 */
typedef int (*ae_fit_callback)(const ae_epoch_stats *stats, void *user);

/**
 * One training step of ae_fit, as the batch callback sees it (valid during
 * the call). Fields added later go at the end. Since 0.1.0.
 */
typedef struct ae_batch_stats {
    size_t struct_size;
    size_t epoch, epochs;    /* this epoch (1-based) of the run's epochs */
    size_t batch, batches;   /* this batch (1-based) of the epoch's batches */
    uint64_t step;           /* the run's steps so far, this one included (a resumed
                                run counts from its start) */
    uint64_t total_steps;    /* the run's steps when every epoch runs */
    double loss;             /* this batch's loss */
    double epoch_loss;       /* the epoch's mean training loss so far */
    double learning_rate;    /* the rate of this step */
    double samples_per_second; /* training samples per wall second in this call,
                                  validation included */
    double elapsed;          /* seconds since this call started */
    double eta;              /* estimated seconds until the last epoch ends */
} ae_batch_stats;

/**
 * Called after each training step of ae_fit with its statistics and the
 * options' user pointer. Return 0 to continue, non-zero to stop the run
 * there: the model keeps that step (a consistent state, as after any
 * step), the history stops with AE_FIT_CALLBACK, and a checkpoint is
 * written when checkpoint_path and checkpoint_on_stop are set. The
 * callback may read the model and save it; a training step or an
 * evaluation of its own changes the run. Since 0.1.0.
 */
typedef int (*ae_batch_callback)(const ae_batch_stats *stats, void *user);

/** What checkpoint_every counts (numbers frozen). Since 0.1.0. */
typedef enum ae_checkpoint_unit {
    AE_CHECKPOINT_STEPS = 0, /* training steps of the run */
    AE_CHECKPOINT_EPOCHS = 1 /* finished epochs (after validation and the epoch callback) */
} ae_checkpoint_unit;

/** The recorded epochs of a fit. Since 0.1.0. */
typedef struct ae_history ae_history;

/**
 * Options of ae_fit. Fill with ae_fit_options_init, then change fields.
 * Fields added later go at the end. Since 0.1.0.
 */
typedef struct ae_fit_options {
    size_t struct_size;      /* sizeof(ae_fit_options) */
    size_t epochs;           /* [1, 2^24], default 10 */
    size_t batch_size;       /* [1, 2^24], default 32 */
    const ae_dataset *val;   /* validation set, or NULL (default) */
    int shuffle;             /* 1 (default): a new order every epoch */
    uint64_t shuffle_seed;   /* seeds the order, default 0 */
    int drop_last;           /* 1: skip the last partial batch; default 0 */
    ae_schedule schedule;    /* default AE_SCHED_CONSTANT */
    size_t step_size;        /* AE_SCHED_STEP: epochs per decay, >= 1, default 10 */
    double gamma;            /* AE_SCHED_STEP: factor, (0, 1], default 0.1 */
    size_t cosine_epochs;    /* AE_SCHED_COSINE: T, 0 (default) = epochs */
    double min_lr;           /* cosine and plateau floor, >= 0, default 0 */
    double plateau_factor;   /* (0, 1), default 0.1 */
    size_t plateau_patience; /* default 10 */
    double plateau_threshold;/* [0, 1), default 1e-4 */
    size_t plateau_cooldown; /* default 0 */
    size_t warmup_steps;     /* linear warm-up over the first steps (PyTorch's
                                LinearLR stepped per batch), 0 (default) = none */
    double warmup_start;     /* factor at the first step, (0, 1], default 1/3 */
    size_t patience;         /* early stopping: stop after this many epochs
                                without improvement; 0 (default) = off */
    double min_delta;        /* improvement must exceed this, >= 0, default 0 */
    int restore_best;        /* 1: end with the parameters of the best epoch; default 0 */
    ae_fit_callback callback;/* may be NULL */
    void *user;              /* passed to the callback */
    ae_history *history;     /* filled with every epoch when not NULL */
    int val_corrupt;         /* 1 (default): for a denoising model, validate on
                                a corrupted copy of val against the clean data;
                                0: validate on the clean input */
    uint64_t val_noise_seed; /* seeds that copy's noise, default 0 */
    ae_batch_callback batch_callback; /* after every step, may be NULL (default) */
    const char *checkpoint_path; /* ae_fit writes checkpoints here (ae_model_save,
                                    AE_SAVE_CHECKPOINT: atomic); NULL (default): none */
    size_t checkpoint_every;  /* with a path: every this many steps or epochs;
                                 0 (default): only when a callback stops the run */
    ae_checkpoint_unit checkpoint_unit; /* default AE_CHECKPOINT_STEPS */
    int checkpoint_on_stop;   /* 1 (default): with a path, also write one when a
                                 callback stops the run */
    int resume;               /* 1: continue the run whose position the model
                                 carries (see ae_fit); 0 (default): start anew */
} ae_fit_options;

/** Fills `opts` with struct_size and the defaults. Accepts NULL. Since 0.1.0. */
AE_API void ae_fit_options_init(ae_fit_options *opts);

/**
 * Trains `m` on `train` (whose sample size must equal the model's input
 * size; labels are ignored) as `opts` says (NULL: the defaults). The
 * learning rate is the model's AE_P_LEARNING_RATE at the call, scheduled
 * per epoch and warmed up per step; the model's setting is restored when
 * ae_fit returns. The monitored loss is the validation loss when `val` is
 * set, else the training loss. Same model, data, options and seeds: the
 * same run, bitwise. The datasets must not change during the call.
 * Returns AE_OK also when early stopping or the callback ended the run
 * (see ae_history_stop_reason).
 * Errors (message in ae_model_last_error(m)): AE_ERR_INVALID_ARG (NULL, a
 * wrong struct_size, an unknown schedule), AE_ERR_RANGE (an option out of
 * its range, or a noise level out of its kind's range), AE_ERR_SHAPE (a dataset's sample size differs from the
 * model's), AE_ERR_STATE (an empty dataset, or no full batch with
 * drop_last), AE_ERR_OUT_OF_MEMORY (everything, the model's workspace for
 * the batch size included, is allocated before the first step): nothing has
 * changed. Errors of a training step or an evaluation (e.g.
 * AE_ERR_NUMERIC) stop the run: the
 * model keeps the parameters of its last successful step, the history the
 * finished epochs, and the message says which epoch and batch failed.
 * File-backed datasets (ae_dataset_open_npy) are read a batch at a time;
 * a read error or a non-finite value there stops the fit with AE_ERR_IO
 * or AE_ERR_FORMAT and the dataset's message. A checkpoint that cannot be
 * written stops the run likewise (AE_ERR_IO, the model as after the step).
 *
 * Resume: with opts->resume set, a model that carries the position of an
 * ae_fit run (a checkpoint ae_fit wrote, or saved during or after a run,
 * loaded with ae_model_load; or the same handle after a stopped run)
 * continues it: the epochs, batches and steps already done are not
 * repeated, and the schedule, warm-up, early stopping, best copy and
 * shuffle order go on from where they were. The history records the
 * epochs this call ran (their `epoch` numbers count from the run's
 * start). The training set's size, batch_size, shuffle, shuffle_seed,
 * drop_last and restore_best must be those of the run (AE_ERR_STATE
 * otherwise, naming the first that differs); epochs may be larger, to
 * train longer. A model that trained outside ae_fit since the position
 * was recorded is refused (AE_ERR_STATE); one without a position starts
 * from the beginning. When restore_best puts the best epoch's parameters
 * back at the end, the run's position is dropped (the model no longer is
 * where the run stopped). Since 0.1.0.
 */
AE_API ae_status ae_fit(ae_model *m, const ae_dataset *train, const ae_fit_options *opts);

/**
 * The position of the ae_fit run that `m` carries: the epochs it has
 * finished and the batches of the next epoch it has finished (either
 * pointer may be NULL). Errors: AE_ERR_INVALID_ARG (m NULL), AE_ERR_STATE
 * (no position, or the model trained outside ae_fit since). Since 0.1.0.
 */
AE_API ae_status ae_fit_resume_point(const ae_model *m, size_t *epochs_done, size_t *batches_done);

/**
 * Creates an empty history. `alloc` may be NULL. Errors: AE_ERR_INVALID_ARG,
 * AE_ERR_OUT_OF_MEMORY; *out is NULL on failure. Since 0.1.0.
 */
AE_API ae_status ae_history_create(ae_history **out, const ae_allocator *alloc);
/** Frees a history. Accepts NULL. Since 0.1.0. */
AE_API void ae_history_destroy(ae_history *h);
/** Number of epochs recorded (by the last ae_fit that used it). 0 for NULL. Since 0.1.0. */
AE_API size_t ae_history_count(const ae_history *h);
/**
 * Copies the statistics of recorded epoch `index` (0-based) into `out`,
 * whose struct_size the caller sets. Errors: AE_ERR_INVALID_ARG (NULL, a
 * struct_size smaller than the 0.1.0 struct), AE_ERR_RANGE. Since 0.1.0.
 */
AE_API ae_status ae_history_get(const ae_history *h, size_t index, ae_epoch_stats *out);
/** The epoch number (1-based) of the best monitored loss; 0 when none. Since 0.1.0. */
AE_API size_t ae_history_best_epoch(const ae_history *h);
/** Why the last ae_fit stopped; AE_FIT_NOT_RUN for NULL or before any fit. Since 0.1.0. */
AE_API ae_fit_stop ae_history_stop_reason(const ae_history *h);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_TRAIN_H */
