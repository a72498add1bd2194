/* Optimizers over the model's parameter arena. The arena is divided into
 * blocks (one per weight or bias tensor); each block keeps its own step count
 * so a block that was frozen, or created by untying, starts its state fresh,
 * as PyTorch's per-parameter state does. */
#ifndef AE_OPTIM_H
#define AE_OPTIM_H

#include "core/core.h"

typedef struct ae_param_block {
    size_t off, len;
    uint64_t step; /* updates this block has received */
    int frozen;
    int momentum_ready; /* SGD's momentum buffer exists (PyTorch creates it at first use) */
} ae_param_block;

/* One step's shape of a block's gradient, set by the backward pass of a
 * sparse layer. used NULL: nothing known. Else the gradient is zero outside
 * the rows (used_cols 0) or the columns (1) of row_len floats flagged in
 * used (the optimizer need not read it there); used_sq is its sum of squares. */
typedef struct ae_grad_shape {
    const unsigned char *used;
    size_t row_len;
    int used_cols;
    double used_sq;
} ae_grad_shape;

typedef struct ae_optim_settings {
    ae_optimizer kind;
    double lr, momentum, dampening, weight_decay, beta1, beta2, eps;
    int nesterov;
    double clip_norm; /* 0: off */
    int threads;      /* of the update (core/pool.h); 0: the calling thread */
} ae_optim_settings;

/* Number of state floats per parameter (SGD with momentum 1, Adam 2). The
 * model allocates 2 always, so changing momentum between steps is safe. */
#define AE_OPTIM_STATE_PER_PARAM 2

/* Σ g² of n floats, summed the way every finiteness check and clipping
 * norm of a step sums (layers that report their sums use it too, so the
 * totals agree bit for bit). */
double ae_optim_sqnorm(const float *g, size_t n);
/* Squared L2 norm of the gradient over the blocks that are not frozen
 * (non-finite when some gradient is). */
double ae_optim_grad_sqnorm(const float *grads, const ae_param_block *blocks, size_t nblocks);
/* The same with shapes[b] describing block b (shapes may be NULL). */
double ae_optim_grad_sqnorm_shaped(const float *grads, const ae_param_block *blocks,
                                   const ae_grad_shape *shapes, size_t nblocks);

/* Kept beside the block table, entry b for block b: upper bounds on
 * |param|, |state1| and state2 over the block (max[]), valid while
 * `bounded` and the block at index b is the one they were taken of (same
 * off, len and step count: a block inserted, removed or reset by tying
 * is not). Whoever writes params or optimizer state outside the optimizer
 * forgets them (ae_optim_forget_bounds); zeroed entries are unknown. */
typedef struct ae_block_bound {
    size_t off, len;
    uint64_t step;
    int bounded;
    double max[3];
    double sq;      /* this step's Σg² of the block (ae_optim_grad_sqnorm_blocks) */
    double next[3]; /* scratch of ae_optim_step_checked */
} ae_block_bound;

/* The same, also writing each block's own sum (0 for a frozen block) to
 * bb[b].sq (bb may be NULL). */
double ae_optim_grad_sqnorm_blocks(const float *grads, const ae_param_block *blocks,
                                   const ae_grad_shape *shapes, size_t nblocks, ae_block_bound *bb);

/* One update of every block that is not frozen. `grad_scale` multiplies the
 * gradient (gradient clipping); state1/state2 are the optimizer state arenas.
 * Fresh blocks (step 0) must have zeroed state. */
void ae_optim_step(const ae_optim_settings *s, float *params, const float *grads, float *state1,
                   float *state2, ae_param_block *blocks, size_t nblocks, float grad_scale);
/* The same with shapes[b] describing block b's gradient (shapes may be
 * NULL); the result is the same, bit for bit. */
void ae_optim_step_shaped(const ae_optim_settings *s, float *params, const float *grads,
                          float *state1, float *state2, ae_param_block *blocks,
                          const ae_grad_shape *shapes, size_t nblocks, float grad_scale);

/* ae_optim_step_shaped when it leaves every parameter and optimizer state
 * value finite; otherwise it writes nothing (not even a block's step
 * count) and returns AE_ERR_NUMERIC with the first offending block in
 * *bad_block. bb[b].sq is block b's Σg², finite (set by
 * ae_optim_grad_sqnorm_blocks); the bounds in bb are used and kept. The
 * values it writes are the same, bit for bit. */
ae_status ae_optim_step_checked(const ae_optim_settings *s, float *params, const float *grads,
                                float *state1, float *state2, ae_param_block *blocks,
                                const ae_grad_shape *shapes, ae_block_bound *bb, size_t nblocks,
                                float grad_scale, size_t *bad_block);
/* Marks the n bounds unknown: params or optimizer state were written
 * outside the optimizer. */
void ae_optim_forget_bounds(ae_block_bound *bb, size_t n);

#endif
