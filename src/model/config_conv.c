/* The builder calls of <libae/conv.h>: input shapes and the convolutional
 * layer kinds. Each call fills a spec; ae_config_add_spec checks it against
 * the kind's descriptor and the sample shape reached so far, so that a
 * layer that cannot fit is refused when it is added. */
#include <string.h>

#include "model.h"

static ae_layer_spec new_spec(ae_layer_kind kind) {
    ae_layer_spec s;
    ae_layer_spec_init(&s, kind);
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

ae_status ae_config_add_conv2d(ae_config *cfg, size_t out_channels, size_t kernel, size_t stride,
                               size_t padding, ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_CONV2D);
    s.units = out_channels;
    s.act = act;
    s.iparam[0] = ae_size_attr(kernel);
    s.iparam[1] = ae_size_attr(stride);
    s.iparam[2] = ae_size_attr(padding);
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_conv_transpose2d(ae_config *cfg, size_t out_channels, size_t kernel,
                                         size_t stride, size_t padding, size_t output_padding,
                                         ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_CONV_TRANSPOSE2D);
    s.units = out_channels;
    s.act = act;
    s.iparam[0] = ae_size_attr(kernel);
    s.iparam[1] = ae_size_attr(stride);
    s.iparam[2] = ae_size_attr(padding);
    s.iparam[3] = ae_size_attr(output_padding);
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_maxpool2d(ae_config *cfg, size_t kernel, size_t stride, size_t padding) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_MAXPOOL2D);
    s.iparam[0] = ae_size_attr(kernel);
    s.iparam[1] = ae_size_attr(stride);
    s.iparam[2] = ae_size_attr(padding);
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_upsample(ae_config *cfg, size_t scale, ae_upsample_mode mode) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_UPSAMPLE);
    s.iparam[0] = ae_size_attr(scale);
    s.iparam[1] = (int64_t)mode;
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_batchnorm(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_BATCHNORM); /* affine: gamma and beta */
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_avgpool_1x1(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_AVGPOOL_1X1);
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_flatten(ae_config *cfg) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_FLATTEN);
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_unflatten(ae_config *cfg, size_t channels, size_t height, size_t width) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_UNFLATTEN);
    s.iparam[0] = ae_size_attr(channels);
    s.iparam[1] = ae_size_attr(height);
    s.iparam[2] = ae_size_attr(width);
    return ae_config_add_spec(cfg, &s);
}

ae_status ae_config_add_activation(ae_config *cfg, ae_activation act) {
    if (!cfg) return AE_ERR_INVALID_ARG;
    ae_layer_spec s = new_spec(AE_LAYER_ACTIVATION);
    s.act = act;
    return ae_config_add_spec(cfg, &s);
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

ae_status ae_model_sample_shape(const ae_model *m, size_t *channels, size_t *height,
                                size_t *width) {
    if (!m) return AE_ERR_INVALID_ARG;
    ae_shape s = m->in_shape;
    /* A vector input read as an image at once (nn.Unflatten first) has that image's shape. */
    if (s.h == 1 && s.w == 1 && m->nlayers && m->layers[0].kind == AE_LAYER_UNFLATTEN)
        s = m->layers[0].out_shape;
    if (channels) *channels = s.c;
    if (height) *height = s.h;
    if (width) *width = s.w;
    return AE_OK;
}
