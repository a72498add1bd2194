/*
 * libae sparse autoencoders. Included by <libae/ae.h>; do not include it alone.
 *
 * Selection layers (top-k per sample, lifetime top-k per feature, batch
 * top-k) and sparsity penalties (KL divergence, L1) on the code or after any
 * layer. The training/inference mode (ae_model_set_mode) and the statistics
 * a sparse model's user watches (AE_STAT_LOSS_KL, AE_STAT_CODE_L0,
 * AE_STAT_DEAD_LATENTS, ...) are in <libae/ae.h>, as every model has them.
 * What each operator computes is in docs/sparse.md.
 *
 * Selection layers have no parameters; ae_model_layer_info reports them with
 * their kind, AE_ACT_IDENTITY and equal input and output sizes.
 */
#ifndef LIBAE_SPARSE_H
#define LIBAE_SPARSE_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * Selection layers
 * ------------------------------------------------------------------------ */

/**
 * Appends a per-sample top-k layer: in each row it keeps the k largest
 * values (signed) and zeroes the rest; the gradient flows only through the
 * kept entries. Ties: the lower index wins. Active in training and
 * inference. When k is at most 1/4 of the width, a dense layer right after
 * it uses only the k kept entries of each row (forward and backward), and
 * the dense layer right before it computes its gradients from those
 * entries only (denser codes are faster through the GEMMs).
 * `k` must be at least 1 and at most the width of the previous layer's
 * output (the input size when it is the first layer).
 * Errors: AE_ERR_INVALID_ARG (cfg NULL), AE_ERR_STATE (no input size, or a
 * mirrored decoder was added), AE_ERR_RANGE (k 0 or over the width; a
 * width that is only known at creation is checked by ae_model_create).
 * Since 0.1.0.
 */
AE_API ae_status ae_config_add_topk(ae_config *cfg, size_t k);

/**
 * Appends a lifetime top-k layer (winner-take-all across the batch): in
 * each column (feature) it keeps the k largest values over the batch and
 * zeroes the rest; the gradient flows only through the kept entries.
 * Training only: in inference it passes its input through. When the batch
 * is no larger than k it keeps everything (AE_STAT_LIFETIME_KEPT_ALL counts
 * this). Ties: the lower sample index wins. `k` from 1 to 2^24.
 * Errors as ae_config_add_topk. Since 0.1.0.
 */
AE_API ae_status ae_config_add_lifetime_topk(ae_config *cfg, size_t k);

/**
 * As ae_config_add_lifetime_topk, with k a fraction of the batch:
 * k = ceil(fraction · batch) computed in double precision for each batch
 * (as Python's math.ceil(f * B)). `fraction` in (0, 1].
 * Errors as ae_config_add_topk (AE_ERR_RANGE for the fraction). Since 0.1.0.
 */
AE_API ae_status ae_config_add_lifetime_topk_fraction(ae_config *cfg, double fraction);

/**
 * Appends a batch top-k layer: in training it keeps the batch·k largest
 * values of the whole batch (ties: the lower row-major position wins), so
 * rows keep k values on average; the gradient flows only through the kept
 * entries. Every training forward updates a threshold θ, a running average
 * (momentum 0.1, the first batch sets it) of the smallest kept value. In
 * inference it keeps the values greater than θ (before any training
 * forward it selects as in training). `k` from 1 to the width of the
 * previous layer's output. Errors as ae_config_add_topk. Since 0.1.0.
 */
AE_API ae_status ae_config_add_batch_topk(ae_config *cfg, size_t k);

/* ------------------------------------------------------------------------
 * Sparsity penalties
 * ------------------------------------------------------------------------ */

/**
 * Attaches a KL-divergence sparsity penalty to the output z of layer
 * `layer` (0-based, or AE_LAST_LAYER): with ρ̂_j the batch mean of z_j,
 * clamped to [1e-6, 1 - 1e-6] (no gradient where the clamp acts),
 * penalty = λ · R_j [ρ log(ρ/ρ̂_j) + (1-ρ) log((1-ρ)/(1-ρ̂_j))], where R is
 * the mean over units j (`units` AE_REDUCE_MEAN, the seeds' form and the
 * one to choose by default) or the sum (AE_REDUCE_SUM, Ng's notes). It is
 * added to the loss and its gradient; AE_STAT_LOSS_KL reports it. `rho` in (0, 1),
 * `lambda` in [0, 1e6]. Replaces an earlier KL penalty on the same layer.
 * The layer's values must lie in (0, 1): ae_model_create refuses a layer
 * whose activation is not sigmoid (AE_ERR_STATE), and a penalty on the
 * output layer. Errors: AE_ERR_INVALID_ARG (cfg NULL, unknown reduction),
 * AE_ERR_RANGE (rho, lambda, layer), AE_ERR_STATE (no layer yet).
 * Since 0.1.0.
 */
AE_API ae_status ae_config_add_kl_sparsity(ae_config *cfg, size_t layer, double rho,
                                           double lambda, ae_reduction units);

/**
 * Attaches an L1 penalty λ · mean over the batch of Σ_j |z_j| to the output
 * z of layer `layer` (or AE_LAST_LAYER); d|z|/dz is sign(z), 0 at 0.
 * AE_STAT_LOSS_L1 reports it. `lambda` in [0, 1e6]. Replaces an earlier L1
 * penalty on the same layer; not allowed on the output layer (checked by
 * ae_model_create). Errors as ae_config_add_kl_sparsity. Since 0.1.0.
 */
AE_API ae_status ae_config_add_l1_sparsity(ae_config *cfg, size_t layer, double lambda);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_SPARSE_H */
