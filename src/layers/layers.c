/* The registry of layer kinds. */
#include "layers.h"

extern const ae_layer_ops ae_dense_ops;
extern const ae_layer_ops ae_conv2d_ops;
extern const ae_layer_ops ae_conv_transpose2d_ops;
extern const ae_layer_ops ae_maxpool2d_ops;
extern const ae_layer_ops ae_upsample_ops;
extern const ae_layer_ops ae_batchnorm_ops;
extern const ae_layer_ops ae_avgpool_ops;
extern const ae_layer_ops ae_flatten_ops;
extern const ae_layer_ops ae_unflatten_ops;
extern const ae_layer_ops ae_activation_ops;
extern const ae_layer_ops ae_topk_ops;
extern const ae_layer_ops ae_lifetime_topk_ops;
extern const ae_layer_ops ae_batch_topk_ops;
extern const ae_layer_ops ae_gaussian_ops;

const ae_layer_ops *ae_layer_ops_for(ae_layer_kind kind) {
    switch (kind) {
    case AE_LAYER_DENSE: return &ae_dense_ops;
    case AE_LAYER_CONV2D: return &ae_conv2d_ops;
    case AE_LAYER_CONV_TRANSPOSE2D: return &ae_conv_transpose2d_ops;
    case AE_LAYER_MAXPOOL2D: return &ae_maxpool2d_ops;
    case AE_LAYER_UPSAMPLE: return &ae_upsample_ops;
    case AE_LAYER_BATCHNORM: return &ae_batchnorm_ops;
    case AE_LAYER_AVGPOOL_1X1: return &ae_avgpool_ops;
    case AE_LAYER_FLATTEN: return &ae_flatten_ops;
    case AE_LAYER_UNFLATTEN: return &ae_unflatten_ops;
    case AE_LAYER_ACTIVATION: return &ae_activation_ops;
    case AE_LAYER_TOPK: return &ae_topk_ops;
    case AE_LAYER_LIFETIME_TOPK: return &ae_lifetime_topk_ops;
    case AE_LAYER_BATCH_TOPK: return &ae_batch_topk_ops;
    case AE_LAYER_GAUSSIAN: return &ae_gaussian_ops;
    }
    return NULL;
}

const char *ae_layer_kind_name(ae_layer_kind kind) {
    const ae_layer_ops *ops = ae_layer_ops_for(kind);
    return ops ? ops->name : "unknown";
}
