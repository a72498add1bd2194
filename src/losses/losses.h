/* Reconstruction losses. */
#ifndef AE_LOSSES_H
#define AE_LOSSES_H

#include "core/core.h"
#include "layers/layers.h"

/* What the output layer produced: its activation, the output y and (when
 * kept) the pre-activation. */
typedef struct ae_loss_input {
    ae_loss kind;
    ae_reduction reduction;
    ae_activation out_act;
    float out_slope;
    const float *y;   /* [n] */
    const float *pre; /* [n] or NULL */
    const float *target;
    size_t n;         /* elements in the batch */
    int threads;      /* of the pass (core/pool.h); 0: the calling thread */
} ae_loss_input;

/* 1 when the loss is computed from the logits, so the output layer must keep
 * its pre-activation. */
int ae_loss_wants_logits(ae_loss kind, ae_activation out_act);

/* The loss value; when dpre is not NULL it receives the gradient with respect
 * to the output layer's pre-activation (the activation's derivative folded in).
 * Returns a non-finite value when the outputs are outside the loss's domain. */
double ae_loss_eval(const ae_loss_input *in, float *dpre);

/* The index of the first of the n targets outside the loss's domain (BCE:
 * [0, 1], NaN included), or n when there is none. */
size_t ae_loss_bad_target(ae_loss kind, const float *t, size_t n);

/* ---- sparsity penalties (sparsity.c) on a layer output z [batch, n] ---- */

/* ρ̂ is clamped to [AE_KL_RHO_MIN, 1 - AE_KL_RHO_MIN]. */
#define AE_KL_RHO_MIN 1e-6

/* λ · R_j KL(ρ || ρ̂_j), R the mean over units (or the sum when p->kl_sum). */
double ae_kl_penalty(const ae_penalty_spec *p, const float *z, size_t batch, size_t n);
/* Adds the KL penalty's gradient to dz. `tmp` holds n floats. */
void ae_kl_penalty_grad(const ae_penalty_spec *p, const float *z, size_t batch, size_t n,
                        float *dz, float *tmp);
/* λ · mean over the batch of Σ_j |z_j|. */
double ae_l1_penalty(const ae_penalty_spec *p, const float *z, size_t batch, size_t n);
/* Adds the L1 penalty's gradient (λ sign(z) / batch) to dz. */
void ae_l1_penalty_grad(const ae_penalty_spec *p, const float *z, size_t batch, size_t n, float *dz);

/* ---- VAE (vae.c) ---- */
/* Σ over the batch and the dim latents of -1/2 (1 + logvar - mu² - exp(logvar)),
 * from rows [mu | logvar] of 2·dim floats (the Gaussian layer's scratch). */
double ae_vae_kl(const float *ml, size_t batch, size_t dim);

#endif
