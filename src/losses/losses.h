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
} ae_loss_input;

/* 1 when the loss is computed from the logits, so the output layer must keep
 * its pre-activation. */
int ae_loss_wants_logits(ae_loss kind, ae_activation out_act);

/* The loss value; when dpre is not NULL it receives the gradient with respect
 * to the output layer's pre-activation (the activation's derivative folded in).
 * Returns a non-finite value when the outputs are outside the loss's domain. */
double ae_loss_eval(const ae_loss_input *in, float *dpre);

#endif
