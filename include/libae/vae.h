/*
 * libae variational autoencoders. Included by <libae/ae.h>; do not include
 * it alone.
 *
 * A Gaussian layer ends the encoder: two dense heads read the previous
 * layer's output h and give mu = h W_muᵀ + b_mu and logvar = h W_lvᵀ + b_lv
 * (log sigma²), and the code is z = mu + exp(logvar / 2) · eps with
 * eps ~ N(0, I) drawn from the model's RNG. The loss is
 *   reconstruction + beta · KL,  KL = -1/2 Σ_j (1 + logvar_j - mu_j² - exp(logvar_j))
 * summed over the latent dimensions and reduced over the batch as the
 * reconstruction is (AE_P_REDUCTION): with AE_REDUCE_SUM the batch's sum
 * (PyTorch's VAE example: BCE summed plus KL summed); with AE_REDUCE_MEAN
 * the batch mean, while the reconstruction is the mean over every element
 * (F.mse_loss(x̂, x) + KL.sum(1).mean()), so the KL weighs d times more per
 * feature than in the sum form. Formulas and advice: docs/vae.md.
 *
 * When it samples: ae_train_step always; ae_evaluate and ae_reconstruct
 * only in AE_MODE_TRAIN (<libae/sparse.h>); in AE_MODE_INFER (the default)
 * they use z = mu. ae_encode always gives mu.
 *
 * ae_model_layer_info reports the Gaussian layer as AE_LAYER_GAUSSIAN with
 * out_size = dim, weight_count = 2·dim·in and bias_count = 2·dim; its
 * weight through ae_model_get_weights is [2·dim, in]: the rows of W_mu,
 * then those of W_lv (its bias likewise b_mu then b_lv).
 */
#ifndef LIBAE_VAE_H
#define LIBAE_VAE_H

#include <libae/ae.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Appends the Gaussian latent after the current last layer (or the input):
 * the mu and logvar heads, each a dense layer of `dim` units from the
 * previous layer's output with PyTorch's nn.Linear initialisation, and the
 * sampling z = mu + exp(logvar/2)·eps. z is the code: this call marks it
 * (ae_model_code_size == dim; a later ae_config_mark_code right after it is
 * accepted and does nothing). Decoder layers follow, or
 * ae_config_mirror_decoder mirrors the dense layers before it
 * (784-400-[gaussian 20] mirrors to 20-400-784).
 * `dim` from 1 to 2^24. Errors: AE_ERR_INVALID_ARG (cfg NULL), AE_ERR_RANGE
 * (dim), AE_ERR_STATE (no input size, the code already marked, or a
 * mirrored decoder added). Since 0.1.0.
 */
AE_API ae_status ae_config_add_gaussian(ae_config *cfg, size_t dim);

/**
 * Runs the encoder on `x` [batch, input_size] and writes mu [batch, dim]
 * and, when `logvar` is not NULL, logvar [batch, dim]. Never samples.
 * Errors: AE_ERR_INVALID_ARG (NULL x or mu, batch 0), AE_ERR_RANGE (batch),
 * AE_ERR_NUMERIC (non-finite input), AE_ERR_STATE (no Gaussian layer),
 * AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_vae_encode(ae_model *m, const float *x, size_t batch, float *mu,
                               float *logvar);

/**
 * Generates: draws n codes z ~ N(0, I) from the model's RNG (row by row)
 * and decodes them into `out` [n, output_size]. `z_out` may be NULL, else
 * it receives the codes [n, dim]. The decoder runs in the model's mode.
 * Errors: AE_ERR_INVALID_ARG (out NULL, n 0), AE_ERR_RANGE (n over 2^24),
 * AE_ERR_STATE (no Gaussian layer), AE_ERR_OUT_OF_MEMORY; a failed call
 * leaves the RNG as it was. Since 0.1.0.
 */
AE_API ae_status ae_vae_sample(ae_model *m, size_t n, float *out, float *z_out);

/**
 * Decodes `steps` (2 to 2^24) codes evenly spaced on the segment from z0 to
 * z1 (each [dim]), both included: code t is (1 - a) z0 + a z1 with
 * a = t / (steps - 1). `out` is [steps, output_size]. Codes are usually
 * mu's of ae_vae_encode. Errors: AE_ERR_INVALID_ARG (NULL), AE_ERR_RANGE
 * (steps), AE_ERR_NUMERIC (non-finite code), AE_ERR_STATE (no Gaussian
 * layer), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_vae_interpolate(ae_model *m, const float *z0, const float *z1, size_t steps,
                                    float *out);

/**
 * The negative ELBO of a batch, a mean per sample: for each sample the
 * reconstruction summed over its features (BCE, in nats for a Bernoulli
 * decoder; or for MSE the squared error, which is a Gaussian decoder's
 * negative log-likelihood only up to a factor 1/2 and a constant), plus KL
 * summed over the latent dimensions, with beta 1 (whatever AE_P_REDUCTION,
 * AE_P_VAE_BETA and the warm-up say); then averaged over the batch. The
 * decoder reads one sample z = mu + sigma·eps, eps drawn from a private RNG
 * seeded with AE_P_SEED xor 0x454c424f ("ELBO") afresh at every call, so
 * the same model and batch give the same value and the model's RNG is not
 * touched: sample r of the batch gets the r-th vector of that stream. Over
 * a data set, weight each batch's result by its size. Other layers run in
 * the model's mode, as in ae_evaluate. Neither
 * the loss statistics nor fixed eps (ae_vae_set_fixed_eps) are used or
 * changed. `neg_elbo` receives the sum of the mean terms `recon` and `kl`
 * (each may be NULL).
 * Errors: AE_ERR_INVALID_ARG (x or neg_elbo NULL, batch 0), AE_ERR_RANGE
 * (also an input outside [0, 1] with AE_LOSS_BCE, as ae_train_step),
 * AE_ERR_NUMERIC (non-finite input or result), AE_ERR_STATE (no Gaussian
 * layer), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_vae_neg_elbo(ae_model *m, const float *x, size_t batch, double *neg_elbo,
                                 double *recon, double *kl);

/**
 * The reconstruction and KL terms of the last ae_train_step or ae_evaluate,
 * each reduced over the batch as AE_P_REDUCTION says (see above), the KL
 * without beta; the loss was recon + beta_t · kl (+ sparsity penalties).
 * Also AE_STAT_LOSS_RECON and AE_STAT_LOSS_VAE_KL of ae_model_get_stat.
 * Either pointer may be NULL. Errors: AE_ERR_INVALID_ARG (m NULL),
 * AE_ERR_STATE (no Gaussian layer, or no step or evaluation yet).
 * Since 0.1.0.
 */
AE_API ae_status ae_vae_loss_terms(const ae_model *m, double *recon, double *kl);

/**
 * For tests and parity with other implementations: from now on every
 * forward pass that samples (training steps; ae_evaluate and ae_reconstruct
 * in AE_MODE_TRAIN) uses these eps [batch, dim] (`count` = batch·dim
 * values, all finite, copied) instead of drawing from the RNG, which is
 * then left alone; a call with another batch size fails with AE_ERR_SHAPE.
 * `eps` NULL restores sampling from the RNG (count ignored).
 * Errors: AE_ERR_INVALID_ARG (m NULL), AE_ERR_SHAPE (count 0 or not a
 * multiple of dim, or over 2^24 rows), AE_ERR_NUMERIC, AE_ERR_STATE (no
 * Gaussian layer), AE_ERR_OUT_OF_MEMORY. Since 0.1.0.
 */
AE_API ae_status ae_vae_set_fixed_eps(ae_model *m, const float *eps, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* LIBAE_VAE_H */
