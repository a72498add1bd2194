/* The registry of layer kinds. */
#include <math.h>
#include <string.h>

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

const ae_layer_desc *ae_layer_desc_for(ae_layer_kind kind) {
    const ae_layer_ops *ops = ae_layer_ops_for(kind);
    return ops ? ops->desc : NULL;
}

static const ae_layer_kind all_kinds[] = {
    AE_LAYER_DENSE,        AE_LAYER_CONV2D,   AE_LAYER_CONV_TRANSPOSE2D, AE_LAYER_MAXPOOL2D,
    AE_LAYER_UPSAMPLE,     AE_LAYER_BATCHNORM, AE_LAYER_AVGPOOL_1X1,     AE_LAYER_FLATTEN,
    AE_LAYER_UNFLATTEN,    AE_LAYER_ACTIVATION, AE_LAYER_TOPK,           AE_LAYER_LIFETIME_TOPK,
    AE_LAYER_BATCH_TOPK,   AE_LAYER_GAUSSIAN,
};

const ae_layer_desc *ae_layer_desc_at(size_t i) {
    return i < sizeof all_kinds / sizeof all_kinds[0] ? ae_layer_desc_for(all_kinds[i]) : NULL;
}

const char *ae_layer_kind_name(ae_layer_kind kind) {
    const ae_layer_desc *d = ae_layer_desc_for(kind);
    return d ? d->name : NULL;
}

ae_status ae_layer_kind_from_name(const char *name, ae_layer_kind *kind) {
    if (!name || !kind) return AE_ERR_INVALID_ARG;
    for (size_t i = 0; i < sizeof all_kinds / sizeof all_kinds[0]; i++)
        if (strcmp(name, ae_layer_desc_for(all_kinds[i])->name) == 0) {
            *kind = all_kinds[i];
            return AE_OK;
        }
    return AE_ERR_INVALID_ARG;
}

void ae_layer_spec_init(ae_layer_spec *spec, ae_layer_kind kind) {
    memset(spec, 0, sizeof *spec);
    spec->kind = kind;
    const ae_layer_desc *d = ae_layer_desc_for(kind);
    if (!d) return;
    spec->act = AE_ACT_IDENTITY;
    spec->slope = 0.01f;
    spec->bias = (d->flags & AE_LK_WEIGHTS) != 0;
    for (size_t i = 0; i < d->nattrs; i++) {
        const ae_layer_attr *a = &d->attrs[i];
        if (!a->has_default) continue;
        if (a->type == AE_ATTR_FLOAT)
            ae_spec_set_float(spec, a, a->def);
        else
            ae_spec_set_int(spec, a, (int64_t)a->def);
    }
}

int64_t ae_spec_get_int(const ae_layer_spec *spec, const ae_layer_attr *a) {
    return a->slot == AE_ATTR_UNITS ? ae_size_attr(spec->units) : spec->iparam[a->slot];
}

double ae_spec_get_float(const ae_layer_spec *spec, const ae_layer_attr *a) {
    return spec->fparam[a->slot];
}

void ae_spec_set_int(ae_layer_spec *spec, const ae_layer_attr *a, int64_t v) {
    if (a->slot == AE_ATTR_UNITS)
        spec->units = v < 0 ? 0 : (size_t)v;
    else
        spec->iparam[a->slot] = v;
}

void ae_spec_set_float(ae_layer_spec *spec, const ae_layer_attr *a, double v) {
    spec->fparam[a->slot] = v;
}

ae_status ae_layer_spec_check(ae_layer_spec *spec, ae_errbuf *err) {
    const ae_layer_desc *d = ae_layer_desc_for(spec->kind);
    if (!d) return ae_error(err, AE_ERR_INVALID_ARG, "unknown layer kind %d", (int)spec->kind);
    for (size_t i = 0; i < d->nattrs; i++) {
        const ae_layer_attr *a = &d->attrs[i];
        if (a->type == AE_ATTR_FLOAT) {
            double v = ae_spec_get_float(spec, a);
            if (!((a->lo_open ? v > a->lo : v >= a->lo) && v <= a->hi))
                return ae_error(err, AE_ERR_RANGE, "%s %s must be in %c%g, %g], got %g", d->name,
                                a->name, a->lo_open ? '(' : '[', a->lo, a->hi, v);
            continue;
        }
        int64_t v = ae_spec_get_int(spec, a);
        if ((double)v >= a->lo && (double)v <= a->hi) continue;
        if (a->type == AE_ATTR_ENUM)
            return ae_error(err, AE_ERR_INVALID_ARG, "unknown %s %s %lld", d->name, a->name,
                            (long long)v);
        return ae_error(err, AE_ERR_RANGE, "%s %s must be in [%.0f, %.0f], got %lld", d->name,
                        a->name, a->lo, a->hi, (long long)v);
    }
    return d->check ? d->check(spec, err) : AE_OK;
}

void ae_batch_sync_sum(ae_batch_sync *s, double *v, size_t n) {
    /* The hook is called even after it failed: the other processes make
     * the same call and must not be left waiting. */
    ae_status st = s->fn(s->ctx, v, n, s->status);
    s->calls++;
    if (st && !s->status) s->status = st;
    if (s->status)
        for (size_t i = 0; i < n; i++) v[i] = NAN;
}

size_t ae_batch_sync_room(const ae_layer *L) {
    /* Enough for every call of one pass side by side. */
    return L->sync_fwd[0] + L->sync_fwd[1] + L->sync_bwd;
}
