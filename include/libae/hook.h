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
 *      is written into one array, the gradient arena;
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
    AE_GRAD_SCALAR_COUNT = 6   /* the number of scalars of this version */
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
 * AE_GRAD_SCALAR_BATCH). The statistics that are not scalars here
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
 * hook is still called, with every gradient and scalar set to NaN, so
 * that a reducer that sums makes the step fail with AE_ERR_NUMERIC on
 * every process alike; its result is then ignored and the step returns
 * the local error. Non-finite values the hook leaves fail the step with
 * AE_ERR_NUMERIC. Errors: AE_ERR_INVALID_ARG (m NULL). Since 0.1.0.
 */
AE_API ae_status ae_model_set_grad_reduce(ae_model *m, ae_grad_reduce_fn fn, void *ctx);

#ifdef __cplusplus
}
#endif

#endif
