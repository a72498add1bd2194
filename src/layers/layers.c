/* The registry of layer kinds. */
#include "layers.h"

extern const ae_layer_ops ae_dense_ops;

const ae_layer_ops *ae_layer_ops_for(ae_layer_kind kind) {
    switch (kind) {
    case AE_LAYER_DENSE: return &ae_dense_ops;
    }
    return NULL;
}

const char *ae_layer_kind_name(ae_layer_kind kind) {
    const ae_layer_ops *ops = ae_layer_ops_for(kind);
    return ops ? ops->name : "unknown";
}
