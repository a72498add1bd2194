/* Convolutions on oneDNN's own primitives (conv_onednn.c): a plan made once
 * per layer and batch size, owned by the model (ae_layer_ops.plan_make),
 * holding the forward, backward-data and backward-weights primitives and
 * the reorders between libae's plain layouts (NCHW images, PyTorch's
 * [out, in, k, k] weights) and the blocked layouts oneDNN's kernels choose. Its blocked
 * buffers live in the layer's scratch (ae_conv_plan_floats floats).
 * Internal to src/layers. */
#ifndef AE_CONV_PLAN_H
#define AE_CONV_PLAN_H

#include "layers.h"

typedef struct ae_conv_plan ae_conv_plan;

/* A convolution from [Ci, H, W] to [Co, Ho, Wo]; square kernel k, stride
 * s, padding p on every side. (Transposed convolutions stay on their GEMM
 * path: oneDNN 2.6's strided deconvolution forward pass measured up to 15x
 * slower, docs/performance.md.) */
typedef struct ae_conv_shape {
    int bias;
    size_t Ci, H, W, Co, Ho, Wo, k, s, p;
} ae_conv_shape;

/* Makes the plan for `batch` samples into *out, or sets *out NULL (AE_OK)
 * when oneDNN is not built in or has no primitive for the shape: then the
 * layer runs its GEMM path. AE_ERR_OUT_OF_MEMORY when oneDNN could not
 * allocate. The plan's own memory comes from `a`. */
ae_status ae_conv_plan_make(const ae_conv_shape *cs, size_t batch, const ae_allocator *a,
                            ae_conv_plan **out, ae_errbuf *err);
void ae_conv_plan_free(ae_conv_plan *p, const ae_allocator *a);
/* The scratch the plan computes in, in floats. */
size_t ae_conv_plan_floats(const ae_conv_plan *p);

/* pre [B, Co, Ho, Wo] = conv(x, W) + bias (bias NULL: none). Keeps what the
 * backward pass needs in scratch. */
void ae_conv_plan_forward(ae_conv_plan *p, float *scratch, const float *x, const float *W,
                          const float *bias, float *pre);
/* From d = dL/dpre [B, Co, Ho, Wo] after the forward pass on x: dW (NULL:
 * not wanted; accumulate: added to what dW holds) and dx (NULL: not wanted). */
void ae_conv_plan_backward(ae_conv_plan *p, float *scratch, const float *x, const float *W,
                           const float *d, float *dW, int accumulate, float *dx);

#endif
