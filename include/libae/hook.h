/*
 * libae - the gradient-reduce hook, for distributed (data-parallel) training.
 *
 * Not included by <libae/ae.h>: ordinary programs do not need it. A library
 * that trains one model on several processes (each with its own ae_model
 * of the same architecture, seed and tying, and its own share of the data)
 * includes it, sets a hook on each process's model, and trains through
 * ae_train_step or ae_fit as usual. The hook is where the processes agree
 * on the step: it replaces the gradient and the step's loss terms by their
 * reduction over the processes (typically an MPI_Allreduce and a division
 * by the number of processes), so that every process applies the same
 * update and the parameters stay identical.
 *
 * A step (ae_train_step) runs in this order:
 *   1. forward pass, loss, backward pass: the gradient of every parameter
 *      is written into one array, the gradient arena (with a
 *      batch-statistics hook, ae_model_set_batch_reduce, BatchNorm layers
 *      sum their batch statistics over the processes during the passes);
 *   2. the hook, on the complete arena, before anything reads it;
 *   3. the gradient's finiteness check and global norm, gradient clipping
 *      (AE_P_GRAD_CLIP_NORM), on what the hook left;
 *   4. the optimizer's update of the parameters.
 * A step fails and changes nothing (parameters, optimizer and layer state,
 * RNG, step count, statistics) when any part fails, the hook included.
 */
#ifndef LIBAE_HOOK_H
#define LIBAE_HOOK_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * What the `scalars` passed to a gradient-reduce hook hold, by index
 * (numbers frozen; later versions may append more, so a hook reduces all
 * `nscalars` of them or reads them by these names). Since 0.1.0.
 */
typedef enum ae_grad_scalar {
    AE_GRAD_SCALAR_LOSS = 0,   /* the step's loss, as ae_train_step reports it */
    AE_GRAD_SCALAR_RECON = 1,  /* its reconstruction term (AE_STAT_LOSS_RECON) */
    AE_GRAD_SCALAR_KL = 2,     /* the KL sparsity penalties (AE_STAT_LOSS_KL) */
    AE_GRAD_SCALAR_L1 = 3,     /* the L1 penalties (AE_STAT_LOSS_L1) */
    AE_GRAD_SCALAR_VAE_KL = 4, /* a VAE's KL term, without beta (AE_STAT_LOSS_VAE_KL) */
    AE_GRAD_SCALAR_BATCH = 5,  /* the number of samples in this process's batch (read only) */
    AE_GRAD_SCALAR_STATUS = 6, /* AE_OK, or the ae_status of this process's failed part of
                                  the step (read only; see ae_model_set_grad_reduce) */
    AE_GRAD_SCALAR_COUNT = 7   /* the number of scalars of this version */
} ae_grad_scalar;

/**
 * A gradient-reduce hook. `grads` is the model's gradient arena, `n`
 * floats, laid out the same way in every model of the same architecture
 * and tying (the layout is otherwise unspecified: reduce it as a whole).
 * Entries of frozen layers, and the unused weight range of a tied decoder
 * layer, are not gradients of this step and are ignored by the update.
 * `scalars` holds `nscalars` values indexed by ae_grad_scalar. The hook
 * may rewrite both arrays in place (but not keep the pointers beyond the
 * call); the step then uses what it left: the update reads the gradients
 * and the reported loss and statistics read the scalars (except
 * AE_GRAD_SCALAR_BATCH and AE_GRAD_SCALAR_STATUS). The statistics that are not scalars here
 * (AE_STAT_CODE_L0, the dead-unit and selection statistics) stay this
 * process's own. Return AE_OK, or an error code that ae_train_step then
 * returns (the step changes nothing). Since 0.1.0.
 */
typedef ae_status (*ae_grad_reduce_fn)(void *ctx, float *grads, size_t n, double *scalars,
                                       size_t nscalars);

/**
 * Sets the gradient-reduce hook of `m` (NULL removes it); `ctx` is passed
 * to every call and is kept, not owned, by the model. The hook is not
 * saved in model files. It is called, on the calling thread, exactly once
 * by every ae_train_step (so also by ae_fit) that gets past the argument
 * checks (model, pointers, batch size and the layers' batch limits), and
 * never by the other calls: so every process calls it the same number of
 * times, in the same order, as a collective operation needs. When this
 * process's part of the step fails before the hook (a non-finite input,
 * loss or layer state, a noise level out of range, out of memory), the
 * hook is still called, with every gradient and scalar set to NaN
 * (AE_GRAD_SCALAR_STATUS holds the local error), so that a reducer that
 * sums makes the step fail with AE_ERR_NUMERIC on every process alike (a
 * reducer may also pass the status on); its result is then ignored and
 * the step returns the local error. Non-finite values the hook leaves fail the step with
 * AE_ERR_NUMERIC. Errors: AE_ERR_INVALID_ARG (m NULL). Since 0.1.0.
 */
AE_API ae_status ae_model_set_grad_reduce(ae_model *m, ae_grad_reduce_fn fn, void *ctx);

/**
 * A batch-statistics hook, for the layers whose training forward pass uses
 * statistics of the whole batch. `values` holds `n` sums over this
 * process's samples; the hook replaces each by its sum over all the
 * processes (in an order that does not depend on timing, for runs that
 * repeat bitwise). `local` is AE_OK, or the error of this process's part
 * of the step: then `values` are NaN, and the call is made only so that
 * the other processes, which make the same call, are not left waiting.
 * Return AE_OK or an error code: the step then fails with it (and changes
 * nothing); the values are then ignored (NaN). Since 0.1.0.
 */
typedef ae_status (*ae_batch_reduce_fn)(void *ctx, double *values, size_t n, ae_status local);

/**
 * Sets the batch-statistics hook of `m` (NULL removes it); `ctx` as in
 * ae_model_set_grad_reduce. With a hook, BatchNorm layers normalise a
 * training step's batch with the mean and variance over every process's
 * samples (PyTorch's SyncBatchNorm), and update their running statistics
 * from them, so that the statistics stay the same in every process; their
 * backward pass sums its two per-channel terms over the processes too. So
 * N processes with batches B1..BN train as one process with their union
 * (with a reducer that combines the gradients as that process would).
 * Every ae_train_step that gets past its argument checks calls the hook in
 * a fixed sequence that depends only on the architecture and on which
 * layers are frozen: for each BatchNorm layer, in forward order, two calls
 * (C + 1 values: the per-channel sums and the sample count; then C values:
 * the sums of squared deviations from the mean over all processes); then,
 * for each BatchNorm layer the backward pass reaches, in backward order,
 * one call (2 C values). All come before the gradient-reduce hook. When
 * this process's part of the step fails, the remaining calls of the
 * sequence are still made, with `local` set. The other calls (ae_evaluate,
 * ae_encode, ... in AE_MODE_TRAIN) use this process's statistics and never
 * call the hook. A model without BatchNorm layers never calls it. The hook
 * is not saved in model files. Errors: AE_ERR_INVALID_ARG (m NULL),
 * AE_ERR_OUT_OF_MEMORY (the model's buffer for the sums). Since 0.1.0.
 */
AE_API ae_status ae_model_set_batch_reduce(ae_model *m, ae_batch_reduce_fn fn, void *ctx);

/**
 * The points of an ae_fit run where distributed processes agree (numbers
 * frozen). At each, ae_fit passes a few values and its own status to the
 * fit-share hook. Since 0.1.0.
 */
typedef enum ae_fit_point {
    AE_FIT_POINT_START = 0,      /* after ae_fit's checks and allocations, before the first
                                    step: no values */
    AE_FIT_POINT_STEP = 1,       /* after every step, its checkpoint and the batch callback:
                                    values[0] is 1 when the batch callback asked to stop */
    AE_FIT_POINT_VALIDATION = 2, /* after the validation of an epoch: values[0] is the
                                    validation loss */
    AE_FIT_POINT_EPOCH = 3,      /* after the epoch callback and the epoch's checkpoint:
                                    values[0] is 1 when the callback asked to stop */
    AE_FIT_POINT_END = 4         /* after the run (and its checkpoint on stop), before
                                    restore_best: no values */
} ae_fit_point;

/**
 * A fit-share hook: makes `n` values (n <= 4) the same on every process
 * (process 0's replace the others'), and agrees on a status: it returns
 * the first error of `local` in process order, AE_OK when every process
 * passed AE_OK (or an error of its own, e.g. a transport failure). Every
 * process calls it at the same points of a run in the same order; a
 * process that left the run (an error before a step) is not there, and
 * the hook must then fail rather than wait. Since 0.1.0.
 */
typedef ae_status (*ae_fit_share_fn)(void *ctx, ae_fit_point point, double *values, size_t n,
                                     ae_status local);

/**
 * Makes ae_fit on `m` one of `size` processes' run (this one is `rank`):
 * every process calls ae_fit with the whole training set and the same
 * options, and `batch_size` is the global batch. Each epoch's order is one
 * permutation of the whole set (from shuffle_seed, the same on every
 * process), cut into global batches as one process would; process r
 * trains on its slice of each global batch, samples [lo, hi) of it with
 * lo = nb·r / size and hi = nb·(r + 1) / size for a batch of nb, and reads
 * only those rows. With a gradient-reduce hook that combines the processes
 * as one process with the global batch (libae_mpi's), the run is that
 * process's run, and the run's position (checkpoints, resume) is the same
 * for any number of processes. Process 0 alone validates (the others take
 * its loss through the hook), calls the callbacks (their answer stops
 * every process) and writes checkpoints; every process fills its history.
 * Every batch must hold at least `size` samples (AE_ERR_STATE otherwise).
 * `fn` NULL removes the hook (rank and size are then ignored); `ctx` is
 * kept, not owned; the hook is not saved in model files. Errors:
 * AE_ERR_INVALID_ARG (m NULL, size < 1, rank outside [0, size)). Since 0.1.0.
 */
AE_API ae_status ae_model_set_fit_share(ae_model *m, ae_fit_share_fn fn, void *ctx, int rank,
                                        int size);

/**
 * The parts of a model's training state that ae_model_visit_state passes,
 * by number (frozen; later versions may append parts). Since 0.1.0.
 */
typedef enum ae_state_part {
    AE_STATE_PARAMS = 0,   /* float: the parameter arena (layout as the gradient arena's) */
    AE_STATE_OPTIM_1 = 1,  /* float: the optimizer's first state (momentum, Adam's m) */
    AE_STATE_OPTIM_2 = 2,  /* float: the optimizer's second state (Adam's v) */
    AE_STATE_LAYERS = 3,   /* float: non-trainable layer state (BatchNorm's running
                              statistics, the batch top-k threshold) */
    AE_STATE_STEPS = 4,    /* uint64_t[1]: the step count */
    AE_STATE_RNG = 5,      /* uint64_t[4]: the model's random number generator
                              (xoshiro256**: s[0..3]; not all zero) */
    AE_STATE_ACTIVITY = 6, /* uint64_t, one per code unit: the step count at which the
                              unit was last active, 0 never (AE_STAT_DEAD_LATENTS) */
    AE_STATE_OPTIM_BLOCKS = 7, /* uint64_t, two per block the optimizer updates (a layer's
                              weight or bias): the updates it has received (Adam's bias
                              correction), and 1 once SGD's momentum buffer exists, else 0 */
    AE_STATE_PART_COUNT = 8
} ae_state_part;

/** The callback of ae_model_visit_state. Since 0.1.0. */
typedef ae_status (*ae_state_fn)(void *ctx, ae_state_part part, void *data, size_t bytes);

/**
 * Passes every part of the training state of `m` to `fn`, once each, in
 * the order of ae_state_part: `data` is a copy of the part (`bytes` long,
 * 0 for an empty part: the call is still made), which `fn` may read and
 * rewrite in place (not keep). The sizes depend only on the architecture
 * and the tying, so the calls are the same in every such model: a
 * distributed trainer broadcasts one process's state into the others
 * this way. When every call returns AE_OK, the model takes the copies as
 * `fn` left them; otherwise, or when a float part holds a non-finite value,
 * the RNG part is all zero or a momentum flag is not 0 or 1, the model
 * changes nothing and the call fails. The settings, the metadata, the
 * hooks, fixed VAE eps and the statistics of the last step
 * (ae_model_get_stat, which the next step sets) are not part of it. Errors (message in ae_model_last_error(m)):
 * AE_ERR_INVALID_ARG (NULL), AE_ERR_OUT_OF_MEMORY, AE_ERR_NUMERIC, AE_ERR_RANGE
 * (an all-zero RNG, a flag not 0 or 1), or the error `fn` returned. Since 0.1.0.
 */
AE_API ae_status ae_model_visit_state(ae_model *m, ae_state_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
