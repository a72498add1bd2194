/* The builder calls of <libae/conv.h>: input shapes and the convolutional
 * layer kinds. Each call checks its arguments, then the new layer against
 * the sample shape reached so far (running the layers' setup ops), so that
 * a layer that cannot fit is refused when it is added. */
#include <string.h>

#include "model.h"

#define MAX_KERNEL 64

/* The sample shape after the config's layers so far. */
static ae_status current_shape(ae_config *cfg, ae_shape *out) {
    ae_shape shape = cfg->input_shape;
    for (size_t i = 0; i < cfg->nlayers; i++) {
        ae_layer L;
        memset(&L, 0, sizeof L);
        L.in_shape = shape;
        L.in = ae_shape_size(shape);
        ae_status st = ae_layer_ops_for(cfg->layers[i].kind)->setup(&L, &cfg->layers[i], &cfg->err);
        if (st) return st;
        shape = L.out_shape;
    }
    *out = shape;
    return AE_OK;
}

/* Checks that a layer may be added now and fits the current shape; appends it. */
static ae_status add_layer(ae_config *cfg, const ae_layer_spec *spec) {
    if (!cfg->input_size)
        return ae_error(&cfg->err, AE_ERR_STATE, "set the input shape before adding layers");
    if (cfg->mirrored)
        return ae_error(&cfg->err, AE_ERR_STATE,
                        "the decoder was mirrored from the encoder; no layer can follow it");
    ae_shape in;
    ae_status st = current_shape(cfg, &in);
    if (st) return st;
    ae_layer L;
    memset(&L, 0, sizeof L);
    L.in_shape = in;
    L.in = ae_shape_size(in);
    st = ae_layer_ops_for(spec->kind)->setup(&L, spec, &cfg->err);
    if (st) return st;
    size_t out = ae_shape_size(L.out_shape);
    if (out == 0 || out > AE_MAX_DIM)
        return ae_error(&cfg->err, AE_ERR_SHAPE,
                        "a %s layer on %zux%zux%zu gives %zux%zux%zu: outside [1, %zu] values",
                        ae_layer_kind_name(spec->kind), in.c, in.h, in.w, L.out_shape.c,
                        L.out_shape.h, L.out_shape.w, AE_MAX_DIM);
    return ae_config_push_layer(cfg, spec);
}

static ae_layer_spec new_spec(ae_layer_kind kind) {
    ae_layer_spec s;
    memset(&s, 0, sizeof s);
    s.kind = kind;
    s.act = AE_ACT_IDENTITY;
    s.slope = 0.01f;
    return s;
}

ae_status ae_config_set_input_shape(ae_config *cfg, size_t channels, size_t height, size_t width) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (cfg->nlayers)
        return ae_error(&cfg->err, AE_ERR_STATE, "the input shape must be set before adding layers");
    size_t n;
    if (channels == 0 || height == 0 || width == 0 || ae_mul_overflow(channels, height, &n) ||
        ae_mul_overflow(n, width, &n) || n > AE_MAX_DIM)
        return ae_error(&cfg->err, AE_ERR_RANGE,
                        "input shape %zux%zux%zu: each dimension must be at least 1 and their "
                        "product at most %zu",
                        channels, height, width, AE_MAX_DIM);
    cfg->input_size = n;
    cfg->input_shape = (ae_shape){channels, height, width};
    return AE_OK;
}

static ae_status check_conv_args(ae_config *cfg, const char *what, size_t out_channels,
                                 size_t kernel, size_t stride, size_t padding, ae_activation act) {
    if (!ae_act_valid((int)act))
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown activation %d", (int)act);
    if (out_channels == 0 || out_channels > AE_MAX_DIM)
        return ae_error(&cfg->err, AE_ERR_RANGE, "%s out_channels must be in [1, %zu], got %zu",
                        what, AE_MAX_DIM, out_channels);
    if (kernel == 0 || kernel > MAX_KERNEL)
        return ae_error(&cfg->err, AE_ERR_RANGE, "%s kernel must be in [1, %d], got %zu", what,
                        MAX_KERNEL, kernel);
    if (stride == 0 || stride > MAX_KERNEL)
        return ae_error(&cfg->err, AE_ERR_RANGE, "%s stride must be in [1, %d], got %zu", what,
                        MAX_KERNEL, stride);
    if (padding > MAX_KERNEL)
        return ae_error(&cfg->err, AE_ERR_RANGE, "%s padding must be in [0, %d], got %zu", what,
                        MAX_KERNEL, padding);
    return AE_OK;
}

ae_status ae_config_add_conv2d(ae_config *cfg, size_t out_channels, size_t kernel, size_t stride,
                               size_t padding, ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_status st = check_conv_args(cfg, "conv2d", out_channels, kernel, stride, padding, act);
    if (st) return st;
    ae_layer_spec s = new_spec(AE_LAYER_CONV2D);
    s.units = out_channels;
    s.act = act;
    s.bias = 1;
    s.iparam[0] = (int64_t)kernel;
    s.iparam[1] = (int64_t)stride;
    s.iparam[2] = (int64_t)padding;
    return add_layer(cfg, &s);
}

ae_status ae_config_add_conv_transpose2d(ae_config *cfg, size_t out_channels, size_t kernel,
                                         size_t stride, size_t padding, size_t output_padding,
                                         ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_status st =
        check_conv_args(cfg, "conv_transpose2d", out_channels, kernel, stride, padding, act);
    if (st) return st;
    if (output_padding >= stride)
        return ae_error(&cfg->err, AE_ERR_RANGE,
                        "conv_transpose2d output_padding must be smaller than the stride %zu, got %zu",
                        stride, output_padding);
    ae_layer_spec s = new_spec(AE_LAYER_CONV_TRANSPOSE2D);
    s.units = out_channels;
    s.act = act;
    s.bias = 1;
    s.iparam[0] = (int64_t)kernel;
    s.iparam[1] = (int64_t)stride;
    s.iparam[2] = (int64_t)padding;
    s.iparam[3] = (int64_t)output_padding;
    return add_layer(cfg, &s);
}

ae_status ae_config_add_maxpool2d(ae_config *cfg, size_t kernel, size_t stride, size_t padding) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (kernel == 0 || kernel > MAX_KERNEL)
        return ae_error(&cfg->err, AE_ERR_RANGE, "maxpool2d kernel must be in [1, %d], got %zu",
                        MAX_KERNEL, kernel);
    if (stride == 0) stride = kernel;
    if (stride > MAX_KERNEL)
        return ae_error(&cfg->err, AE_ERR_RANGE, "maxpool2d stride must be in [0, %d], got %zu",
                        MAX_KERNEL, stride);
    if (padding > kernel / 2)
        return ae_error(&cfg->err, AE_ERR_RANGE,
                        "maxpool2d padding must be at most half the kernel (%zu), got %zu",
                        kernel / 2, padding);
    ae_layer_spec s = new_spec(AE_LAYER_MAXPOOL2D);
    s.iparam[0] = (int64_t)kernel;
    s.iparam[1] = (int64_t)stride;
    s.iparam[2] = (int64_t)padding;
    return add_layer(cfg, &s);
}

ae_status ae_config_add_upsample(ae_config *cfg, size_t scale, ae_upsample_mode mode) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (mode != AE_UPSAMPLE_NEAREST && mode != AE_UPSAMPLE_BILINEAR)
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown upsample mode %d", (int)mode);
    if (scale == 0 || scale > MAX_KERNEL)
        return ae_error(&cfg->err, AE_ERR_RANGE, "upsample scale must be in [1, %d], got %zu",
                        MAX_KERNEL, scale);
    ae_layer_spec s = new_spec(AE_LAYER_UPSAMPLE);
    s.iparam[0] = (int64_t)scale;
    s.iparam[1] = (int64_t)mode;
    return add_layer(cfg, &s);
}

ae_status ae_config_add_batchnorm(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_BATCHNORM);
    s.bias = 1; /* affine: gamma and beta */
    s.fparam[0] = 0.1;  /* momentum */
    s.fparam[1] = 1e-5; /* eps */
    return add_layer(cfg, &s);
}

ae_status ae_config_add_avgpool_1x1(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_AVGPOOL_1X1);
    return add_layer(cfg, &s);
}

ae_status ae_config_add_flatten(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_FLATTEN);
    return add_layer(cfg, &s);
}

ae_status ae_config_add_unflatten(ae_config *cfg, size_t channels, size_t height, size_t width) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (channels == 0 || height == 0 || width == 0 || channels > AE_MAX_DIM ||
        height > AE_MAX_DIM || width > AE_MAX_DIM)
        return ae_error(&cfg->err, AE_ERR_RANGE,
                        "unflatten dimensions must be in [1, %zu], got %zux%zux%zu", AE_MAX_DIM,
                        channels, height, width);
    ae_layer_spec s = new_spec(AE_LAYER_UNFLATTEN);
    s.iparam[0] = (int64_t)channels;
    s.iparam[1] = (int64_t)height;
    s.iparam[2] = (int64_t)width;
    return add_layer(cfg, &s);
}

ae_status ae_config_add_activation(ae_config *cfg, ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    if (!ae_act_valid((int)act))
        return ae_error(&cfg->err, AE_ERR_INVALID_ARG, "unknown activation %d", (int)act);
    ae_layer_spec s = new_spec(AE_LAYER_ACTIVATION);
    s.act = act;
    return add_layer(cfg, &s);
}

ae_status ae_model_layer_shape(const ae_model *m, size_t layer, size_t in[3], size_t out[3]) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (layer >= m->nlayers) return AE_ERR_RANGE;
    const ae_layer *L = &m->layers[layer];
    if (in) {
        in[0] = L->in_shape.c;
        in[1] = L->in_shape.h;
        in[2] = L->in_shape.w;
    }
    if (out) {
        out[0] = L->out_shape.c;
        out[1] = L->out_shape.h;
        out[2] = L->out_shape.w;
    }
    return AE_OK;
}
