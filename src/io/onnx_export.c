/* ONNX export (opset 17, float32) of a model, or of its encoder or
 * decoder, in inference mode. The graph is built as protobuf-c messages in
 * an arena, packed once, and written through the one atomic writer
 * (ae_file_replace).
 *
 * Each layer kind maps to a few standard nodes (docs/interop.md); the
 * mapping reads the kind's descriptor: attributes by their names, the bias
 * and activation by its flags, the state through the layer's state range.
 * Tensors between layers are [batch, features] (rank 2) or NCHW (rank 4);
 * a layer that needs the other rank gets a Flatten or Reshape before it. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "onnx.h"

typedef struct exporter {
    const ae_model *m;
    ae_arena arena;
    ae_errbuf *err;
    AeOnnx__NodeProto **nodes;
    size_t nnodes, capnodes;
    AeOnnx__TensorProto **inits;
    size_t ninits, capinits;
    unsigned serial; /* for unique tensor names */
    /* The current tensor: its name, rank (2 or 4) and the node writing it
     * (NULL for a graph input). */
    char *cur;
    int rank;
    ae_shape shape;
    AeOnnx__NodeProto *cur_node;
    size_t cur_out;
    const char *layer_name; /* prefix of the current layer's names: "layer3" */
    char *logvar;           /* a VAE's log-variance tensor, when exported */
} exporter;

/* ---- building blocks ---- */

static int oom(exporter *e) { return e->arena.failed; }

static char *ex_strdup(exporter *e, const char *s) {
    size_t n = strlen(s) + 1;
    char *p = ae_arena_alloc(&e->arena, n);
    if (p) memcpy(p, s, n);
    return p;
}

static char *ex_name(exporter *e, const char *fmt, ...) AE_PRINTF(2, 3);
static char *ex_name(exporter *e, const char *fmt, ...) {
    char buf[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return ex_strdup(e, buf);
}

/* Appends p to a growing pointer array in the arena. */
static int push_ptr(exporter *e, void ***arr, size_t *n, size_t *cap, void *p) {
    if (!p) return -1;
    if (*n == *cap) {
        size_t nc = *cap ? 2 * *cap : 32;
        void **na = ae_arena_alloc(&e->arena, nc * sizeof *na);
        if (!na) return -1;
        if (*n) memcpy(na, *arr, *n * sizeof *na);
        *arr = na;
        *cap = nc;
    }
    (*arr)[(*n)++] = p;
    return 0;
}

/* A node of `op` reading `nin` tensors (a NULL or "" one is an omitted
 * optional input) and writing `nout` new tensors, whose names it returns
 * in out[] (when out is not NULL). */
static AeOnnx__NodeProto *node(exporter *e, const char *op, size_t nin, char *const *in,
                               size_t nout, char **out) {
    AeOnnx__NodeProto *n = ae_arena_alloc(&e->arena, sizeof *n);
    char **ins = ae_arena_alloc(&e->arena, (nin ? nin : 1) * sizeof *ins);
    char **outs = ae_arena_alloc(&e->arena, nout * sizeof *outs);
    if (!n || !ins || !outs) return NULL;
    ae_onnx__node_proto__init(n);
    unsigned id = e->serial++;
    n->op_type = ex_strdup(e, op);
    n->name = ex_name(e, "%s/%s_%u", e->layer_name, op, id);
    for (size_t i = 0; i < nin; i++) ins[i] = in[i] ? in[i] : ex_strdup(e, "");
    for (size_t i = 0; i < nout; i++) {
        outs[i] = ex_name(e, "%s/%s_%u:%zu", e->layer_name, op, id, i);
        if (out) out[i] = outs[i];
    }
    n->n_input = nin;
    n->input = ins;
    n->n_output = nout;
    n->output = outs;
    if (oom(e) || push_ptr(e, (void ***)&e->nodes, &e->nnodes, &e->capnodes, n)) return NULL;
    return n;
}

static AeOnnx__AttributeProto *attr(exporter *e, AeOnnx__NodeProto *n, const char *name,
                                    AeOnnx__AttributeProto__AttributeType type) {
    if (!n) return NULL;
    AeOnnx__AttributeProto *a = ae_arena_alloc(&e->arena, sizeof *a);
    AeOnnx__AttributeProto **arr =
        ae_arena_alloc(&e->arena, (n->n_attribute + 1) * sizeof *arr);
    if (!a || !arr) return NULL;
    ae_onnx__attribute_proto__init(a);
    a->name = ex_strdup(e, name);
    a->has_type = 1;
    a->type = type;
    if (n->n_attribute) memcpy(arr, n->attribute, n->n_attribute * sizeof *arr);
    arr[n->n_attribute++] = a;
    n->attribute = arr;
    return a;
}

static void attr_int(exporter *e, AeOnnx__NodeProto *n, const char *name, int64_t v) {
    AeOnnx__AttributeProto *a = attr(e, n, name, AE_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (a) {
        a->has_i = 1;
        a->i = v;
    }
}

static void attr_float(exporter *e, AeOnnx__NodeProto *n, const char *name, float v) {
    AeOnnx__AttributeProto *a = attr(e, n, name, AE_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (a) {
        a->has_f = 1;
        a->f = v;
    }
}

static void attr_ints(exporter *e, AeOnnx__NodeProto *n, const char *name, size_t count,
                      const int64_t *v) {
    AeOnnx__AttributeProto *a = attr(e, n, name, AE_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *p = ae_arena_alloc(&e->arena, count * sizeof *p);
    if (!a || !p) return;
    memcpy(p, v, count * sizeof *p);
    a->n_ints = count;
    a->ints = p;
}

/* The same value twice (kernel_shape, strides), or four times (pads). */
static void attr_ints2(exporter *e, AeOnnx__NodeProto *n, const char *name, int64_t v, size_t k) {
    int64_t vals[4] = {v, v, v, v};
    attr_ints(e, n, name, k, vals);
}

static void attr_string(exporter *e, AeOnnx__NodeProto *n, const char *name, const char *s) {
    AeOnnx__AttributeProto *a = attr(e, n, name, AE_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
    char *p = ex_strdup(e, s);
    if (!a || !p) return;
    a->has_s = 1;
    a->s.data = (uint8_t *)p;
    a->s.len = strlen(s);
}

/* A tensor message with raw little-endian data (copied). */
static AeOnnx__TensorProto *tensor(exporter *e, const char *name, int32_t type, size_t ndims,
                                   const int64_t *dims, const void *data, size_t bytes) {
    AeOnnx__TensorProto *t = ae_arena_alloc(&e->arena, sizeof *t);
    int64_t *d = ae_arena_alloc(&e->arena, (ndims ? ndims : 1) * sizeof *d);
    uint8_t *raw = ae_arena_alloc(&e->arena, bytes ? bytes : 1);
    if (!t || !d || !raw) return NULL;
    ae_onnx__tensor_proto__init(t);
    t->name = ex_strdup(e, name);
    if (ndims) memcpy(d, dims, ndims * sizeof *d);
    t->n_dims = ndims;
    t->dims = d;
    t->has_data_type = 1;
    t->data_type = type;
    if (bytes) memcpy(raw, data, bytes);
    t->has_raw_data = 1;
    t->raw_data.data = raw;
    t->raw_data.len = bytes;
    return t;
}

/* An initializer: its name (stored in the arena) or NULL. */
static char *init_tensor(exporter *e, const char *name, int32_t type, size_t ndims,
                         const int64_t *dims, const void *data, size_t bytes) {
    AeOnnx__TensorProto *t = tensor(e, name, type, ndims, dims, data, bytes);
    if (!t || push_ptr(e, (void ***)&e->inits, &e->ninits, &e->capinits, t)) return NULL;
    return t->name;
}

static char *init_floats(exporter *e, const char *name, size_t ndims, const int64_t *dims,
                         const float *data, size_t count) {
    return init_tensor(e, name, AE_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, ndims, dims, data,
                       count * sizeof(float));
}

static char *init_ints(exporter *e, const char *name, size_t ndims, const int64_t *dims,
                       const int64_t *data, size_t count) {
    return init_tensor(e, name, AE_ONNX__TENSOR_PROTO__DATA_TYPE__INT64, ndims, dims, data,
                       count * sizeof(int64_t));
}

/* A float scalar initializer (rank 0). */
static char *init_scalar(exporter *e, const char *suffix, float v) {
    if (!suffix) return NULL;
    return init_floats(e, ex_name(e, "%s.%s", e->layer_name, suffix), 0, NULL, &v, 1);
}

/* A 1-D int64 initializer. */
static char *init_vec(exporter *e, const char *suffix, size_t n, const int64_t *v) {
    if (!suffix) return NULL;
    int64_t dim = (int64_t)n;
    return init_ints(e, ex_name(e, "%s.%s", e->layer_name, suffix), 1, &dim, v, n);
}

/* A one-input, one-output node on the current tensor, which becomes its output. */
static AeOnnx__NodeProto *step1(exporter *e, const char *op, size_t nextra, char *const *extra) {
    char *in[6] = {e->cur};
    for (size_t i = 0; i < nextra && i < 5; i++) in[1 + i] = extra[i];
    char *out;
    AeOnnx__NodeProto *n = node(e, op, 1 + nextra, in, 1, &out);
    if (!n) return NULL;
    e->cur = out;
    e->cur_node = n;
    e->cur_out = 0;
    return n;
}

/* Binary node out = op(a, b), not touching the current tensor. */
static char *binary(exporter *e, const char *op, char *a, char *b) {
    char *in[2] = {a, b}, *out = NULL;
    return node(e, op, 2, in, 1, &out) ? out : NULL;
}

/* ---- ranks ---- */

static void to_rank2(exporter *e) {
    if (e->rank == 2) return;
    attr_int(e, step1(e, "Flatten", 0, NULL), "axis", 1);
    e->rank = 2;
}

/* [batch, c, h, w] from any tensor of the current shape (0 keeps the batch). */
static void reshape4(exporter *e, ae_shape s) {
    int64_t dims[4] = {0, (int64_t)s.c, (int64_t)s.h, (int64_t)s.w};
    char suffix[32];
    snprintf(suffix, sizeof suffix, "shape%u", e->serial);
    char *shape = init_vec(e, suffix, 4, dims);
    step1(e, "Reshape", 1, &shape);
    e->rank = 4;
}

static void to_rank4(exporter *e) {
    if (e->rank == 4) return;
    reshape4(e, e->shape);
}

/* ---- what the descriptors say ---- */

static const ae_layer_attr *find_attr(const ae_layer *L, const char *name) {
    const ae_layer_desc *d = L->ops->desc;
    for (size_t i = 0; i < d->nattrs; i++)
        if (strcmp(d->attrs[i].name, name) == 0) return &d->attrs[i];
    return NULL;
}

static int64_t attr_i(const ae_layer *L, const char *name) {
    const ae_layer_attr *a = find_attr(L, name);
    return a ? ae_spec_get_int(&L->spec, a) : 0;
}

static double attr_f(const ae_layer *L, const char *name) {
    const ae_layer_attr *a = find_attr(L, name);
    return a ? ae_spec_get_float(&L->spec, a) : 0.0;
}

/* An enum attribute's value name ("bilinear"). */
static const char *attr_value_name(const ae_layer *L, const char *name) {
    const ae_layer_attr *a = find_attr(L, name);
    if (!a || !a->values) return "";
    return a->values[ae_spec_get_int(&L->spec, a) - (int64_t)a->lo];
}

/* ---- parameters ---- */

static size_t layer_index(const exporter *e, const ae_layer *L) {
    return (size_t)(L - e->m->layers);
}

/* The layer's weight with the given dims, as ae_model_get_weights reads it. */
static char *weight(exporter *e, const ae_layer *L, size_t ndims, const int64_t *dims) {
    float *w = ae_arena_alloc(&e->arena, L->w_count * sizeof *w);
    if (!w) return NULL;
    ae_model_get_weights(e->m, layer_index(e, L), w, L->w_count);
    return init_floats(e, ex_name(e, "%s.weight", e->layer_name), ndims, dims, w, L->w_count);
}

static char *bias(exporter *e, const ae_layer *L) {
    if (!L->b_count) return NULL;
    int64_t dim = (int64_t)L->b_count;
    return init_floats(e, ex_name(e, "%s.bias", e->layer_name), 1, &dim, e->m->params + L->b_off,
                       L->b_count);
}

/* ---- activations ---- */

static ae_status activation(exporter *e, ae_activation act, float slope) {
    switch (act) {
    case AE_ACT_IDENTITY: return AE_OK;
    case AE_ACT_RELU: step1(e, "Relu", 0, NULL); return AE_OK;
    case AE_ACT_LEAKY_RELU: attr_float(e, step1(e, "LeakyRelu", 0, NULL), "alpha", slope); return AE_OK;
    case AE_ACT_SIGMOID: step1(e, "Sigmoid", 0, NULL); return AE_OK;
    case AE_ACT_TANH: step1(e, "Tanh", 0, NULL); return AE_OK;
    case AE_ACT_SOFTPLUS: step1(e, "Softplus", 0, NULL); return AE_OK;
    case AE_ACT_ELU: attr_float(e, step1(e, "Elu", 0, NULL), "alpha", 1.0f); return AE_OK;
    case AE_ACT_GELU: {
        /* Opset 17 has no Gelu: the erf form torch.onnx.export writes,
           x * (1 + erf(x / sqrt 2)) * 0.5. */
        char *x = e->cur;
        char *t = binary(e, "Div", x, init_scalar(e, ex_name(e, "sqrt2_%u", e->serial), 1.41421356f));
        char *in1[1] = {t}, *erf = NULL;
        node(e, "Erf", 1, in1, 1, &erf);
        char *p1 = binary(e, "Add", erf, init_scalar(e, ex_name(e, "one_%u", e->serial), 1.0f));
        char *xp = binary(e, "Mul", x, p1);
        char *in2[2] = {xp, init_scalar(e, ex_name(e, "half_%u", e->serial), 0.5f)}, *out = NULL;
        AeOnnx__NodeProto *n = node(e, "Mul", 2, in2, 1, &out);
        if (!n) return AE_ERR_OUT_OF_MEMORY;
        e->cur = out;
        e->cur_node = n;
        e->cur_out = 0;
        return AE_OK;
    }
    }
    return ae_error(e->err, AE_ERR_UNSUPPORTED, "%s: activation %d has no ONNX form", e->layer_name,
                    (int)act);
}

/* ---- layer kinds ---- */

static ae_status ex_dense(exporter *e, const ae_layer *L) {
    to_rank2(e);
    char *w;
    int transposed = 0;
    if (L->w_transposed) {
        /* A tied decoder layer: its partner's initializer, read untransposed
           (the importer ties them again). */
        const ae_layer *p = NULL;
        for (const ae_layer *q = e->m->layers; q < L; q++)
            if (q->kind == AE_LAYER_DENSE && !q->w_transposed && q->w_off == L->w_off) p = q;
        if (!p)
            return ae_error(e->err, AE_ERR_UNSUPPORTED,
                            "%s (dense) is tied to a layer outside the exported part", e->layer_name);
        w = ex_name(e, "layer%zu.weight", layer_index(e, p));
        /* the partner is in this export only when it was exported before */
        int found = 0;
        for (size_t i = 0; i < e->ninits; i++) found |= strcmp(e->inits[i]->name, w) == 0;
        if (!found) {
            int64_t dims[2] = {(int64_t)L->in, (int64_t)L->out};
            float *t = ae_arena_alloc(&e->arena, L->w_count * sizeof *t);
            if (!t) return AE_ERR_OUT_OF_MEMORY;
            ae_model_get_weights(e->m, layer_index(e, p), t, p->w_count);
            w = init_floats(e, w, 2, dims, t, L->w_count);
        }
        transposed = 1;
    } else {
        int64_t dims[2] = {(int64_t)L->out, (int64_t)L->in};
        w = weight(e, L, 2, dims);
    }
    char *in[2] = {w, bias(e, L)};
    AeOnnx__NodeProto *n = step1(e, "Gemm", in[1] ? 2 : 1, in);
    attr_int(e, n, "transB", transposed ? 0 : 1);
    return AE_OK;
}

static ae_status ex_conv(exporter *e, const ae_layer *L) {
    to_rank4(e);
    int64_t k = attr_i(L, "kernel");
    int transpose = L->kind == AE_LAYER_CONV_TRANSPOSE2D;
    int64_t dims[4] = {(int64_t)(transpose ? L->in_shape.c : L->out_shape.c),
                       (int64_t)(transpose ? L->out_shape.c : L->in_shape.c), k, k};
    char *in[2] = {weight(e, L, 4, dims), bias(e, L)};
    AeOnnx__NodeProto *n = step1(e, transpose ? "ConvTranspose" : "Conv", in[1] ? 2 : 1, in);
    attr_ints2(e, n, "kernel_shape", k, 2);
    attr_ints2(e, n, "strides", attr_i(L, "stride"), 2);
    attr_ints2(e, n, "pads", attr_i(L, "padding"), 4);
    attr_ints2(e, n, "dilations", 1, 2);
    attr_int(e, n, "group", 1);
    if (transpose) attr_ints2(e, n, "output_padding", attr_i(L, "output_padding"), 2);
    return AE_OK;
}

static ae_status ex_maxpool(exporter *e, const ae_layer *L) {
    to_rank4(e);
    AeOnnx__NodeProto *n = step1(e, "MaxPool", 0, NULL);
    attr_ints2(e, n, "kernel_shape", attr_i(L, "kernel"), 2);
    attr_ints2(e, n, "strides", attr_i(L, "stride"), 2);
    attr_ints2(e, n, "pads", attr_i(L, "padding"), 4);
    return AE_OK;
}

static ae_status ex_upsample(exporter *e, const ae_layer *L) {
    to_rank4(e);
    float s = (float)attr_i(L, "scale");
    const float scales[4] = {1.0f, 1.0f, s, s};
    int64_t four = 4;
    char *in[2] = {NULL, init_floats(e, ex_name(e, "%s.scales", e->layer_name), 1, &four, scales, 4)};
    AeOnnx__NodeProto *n = step1(e, "Resize", 2, in);
    if (strcmp(attr_value_name(L, "mode"), "bilinear") == 0) {
        attr_string(e, n, "mode", "linear");
        attr_string(e, n, "coordinate_transformation_mode", "align_corners");
    } else {
        /* y[o] = x[floor(o / s)], as nn.Upsample(mode="nearest") is exported */
        attr_string(e, n, "mode", "nearest");
        attr_string(e, n, "coordinate_transformation_mode", "asymmetric");
        attr_string(e, n, "nearest_mode", "floor");
    }
    return AE_OK;
}

static ae_status ex_batchnorm(exporter *e, const ae_layer *L) {
    /* [batch, C] or [batch, C, H, W]: ONNX's BatchNormalization takes both. */
    if (L->in_shape.h * L->in_shape.w > 1) to_rank4(e);
    int64_t C = (int64_t)L->in_shape.c;
    const float *state = e->m->buffers + L->s_off;
    char *in[4] = {weight(e, L, 1, &C), bias(e, L),
                   init_floats(e, ex_name(e, "%s.running_mean", e->layer_name), 1, &C, state,
                               (size_t)C),
                   init_floats(e, ex_name(e, "%s.running_var", e->layer_name), 1, &C, state + C,
                               (size_t)C)};
    AeOnnx__NodeProto *n = step1(e, "BatchNormalization", 4, in);
    attr_float(e, n, "epsilon", (float)attr_f(L, "eps"));
    /* ONNX's momentum weighs the running value (PyTorch's, the batch's). */
    attr_float(e, n, "momentum", (float)(1.0 - attr_f(L, "momentum")));
    return AE_OK;
}

static ae_status ex_avgpool(exporter *e, const ae_layer *L) {
    (void)L;
    to_rank4(e);
    step1(e, "GlobalAveragePool", 0, NULL);
    return AE_OK;
}

static ae_status ex_flatten(exporter *e, const ae_layer *L) {
    (void)L;
    to_rank2(e);
    return AE_OK;
}

static ae_status ex_unflatten(exporter *e, const ae_layer *L) {
    reshape4(e, L->out_shape);
    return AE_OK;
}

static ae_status ex_activation_layer(exporter *e, const ae_layer *L) {
    (void)e;
    (void)L;
    return AE_OK; /* the activation follows, as for every kind with AE_LK_ACT */
}

/* zeros shaped as `like`, with `values` scattered at `idx` along axis 1. */
static char *scatter_into_zeros(exporter *e, char *like, char *idx, char *values) {
    char *in0[1] = {like}, *shape = NULL, *zeros = NULL;
    node(e, "Shape", 1, in0, 1, &shape);
    char *in1[1] = {shape};
    AeOnnx__NodeProto *z = node(e, "ConstantOfShape", 1, in1, 1, &zeros);
    AeOnnx__AttributeProto *a = attr(e, z, "value", AE_ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR);
    int64_t one = 1;
    float zero = 0.0f;
    if (a) a->t = tensor(e, "zero", AE_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 1, &one, &zero, 4);
    char *in2[3] = {zeros, idx, values}, *out = NULL;
    AeOnnx__NodeProto *n = node(e, "ScatterElements", 3, in2, 1, &out);
    attr_int(e, n, "axis", 1);
    e->cur_node = n;
    e->cur_out = 0;
    return out;
}

/* Selection layers keep the shape; ONNX's TopK works on rank 2 here. */
static void selection_begin(exporter *e) { to_rank2(e); }
static void selection_end(exporter *e, const ae_layer *L) {
    if (L->in_shape.h * L->in_shape.w > 1) reshape4(e, L->in_shape);
}

static ae_status ex_topk(exporter *e, const ae_layer *L) {
    selection_begin(e);
    /* TopK keeps the k largest of each row; for equal values the lower
       index comes first, as libae's rule. */
    int64_t k = attr_i(L, "k");
    char *in[2] = {e->cur, init_vec(e, "k", 1, &k)}, *out[2] = {NULL, NULL};
    AeOnnx__NodeProto *n = node(e, "TopK", 2, in, 2, out);
    attr_int(e, n, "axis", 1);
    attr_int(e, n, "largest", 1);
    attr_int(e, n, "sorted", 1);
    e->cur = scatter_into_zeros(e, e->cur, out[1], out[0]);
    selection_end(e, L);
    return AE_OK;
}

static ae_status ex_lifetime_topk(exporter *e, const ae_layer *L) {
    (void)e;
    (void)L;
    return AE_OK; /* inference: the input passes through */
}

static ae_status ex_batch_topk(exporter *e, const ae_layer *L) {
    double theta;
    if (ae_batch_topk_threshold(L, e->m->buffers + L->s_off, &theta)) {
        /* Inference after training: keep what exceeds the threshold. */
        char *mask = binary(e, "Greater", e->cur, init_scalar(e, "threshold", (float)theta));
        char *in[3] = {mask, e->cur, init_scalar(e, "zero", 0.0f)}, *out = NULL;
        AeOnnx__NodeProto *n = node(e, "Where", 3, in, 1, &out);
        if (!n) return AE_ERR_OUT_OF_MEMORY;
        /* k is not in the graph (only training uses it): the importer reads it here */
        n->doc_string = ex_name(e, "libae batch_topk k=%lld", (long long)attr_i(L, "k"));
        e->cur = out;
        e->cur_node = n;
        e->cur_out = 0;
        return AE_OK;
    }
    /* Before any training, inference selects as training does: the
       batch·k largest values of the whole batch (lower position first). */
    char *x = e->cur, *in0[1] = {x}, *shape = NULL;
    node(e, "Shape", 1, in0, 1, &shape);
    const int64_t flat_dims[2] = {1, -1}, zero = 0, k = attr_i(L, "k");
    char *flat = binary(e, "Reshape", x, init_vec(e, "flat_shape", 2, flat_dims));
    char *in1[2] = {shape, init_vec(e, "batch_axis", 1, &zero)}, *b = NULL;
    attr_int(e, node(e, "Gather", 2, in1, 1, &b), "axis", 0);
    char *kk = binary(e, "Mul", b, init_vec(e, "k", 1, &k));
    char *in2[2] = {flat, kk}, *out[2] = {NULL, NULL};
    AeOnnx__NodeProto *n = node(e, "TopK", 2, in2, 2, out);
    attr_int(e, n, "axis", 1);
    attr_int(e, n, "largest", 1);
    attr_int(e, n, "sorted", 1);
    char *y = scatter_into_zeros(e, flat, out[1], out[0]);
    char *in3[2] = {y, shape}, *res = NULL;
    AeOnnx__NodeProto *r = node(e, "Reshape", 2, in3, 1, &res);
    if (!r) return AE_ERR_OUT_OF_MEMORY;
    e->cur = res;
    e->cur_node = r;
    e->cur_out = 0;
    return AE_OK;
}

static ae_status ex_gaussian(exporter *e, const ae_layer *L) {
    /* [mu | logvar] = x Wᵀ + b, split in halves; the code is mu. */
    to_rank2(e);
    int64_t dims[2] = {(int64_t)(2 * L->out), (int64_t)L->in};
    char *in[2] = {weight(e, L, 2, dims), bias(e, L)};
    attr_int(e, step1(e, "Gemm", 2, in), "transB", 1);
    int64_t halves[2] = {(int64_t)L->out, (int64_t)L->out};
    char *sin[2] = {e->cur, init_vec(e, "split", 2, halves)}, *out[2] = {NULL, NULL};
    AeOnnx__NodeProto *n = node(e, "Split", 2, sin, 2, out);
    if (!n) return AE_ERR_OUT_OF_MEMORY;
    attr_int(e, n, "axis", 1);
    e->cur = out[0];
    e->cur_node = n;
    e->cur_out = 0;
    e->logvar = out[1];
    return AE_OK;
}

typedef struct kind_map {
    ae_layer_kind kind;
    ae_status (*fn)(exporter *e, const ae_layer *L);
} kind_map;

/* Every kind that has a faithful ONNX form; any other is refused by name. */
static const kind_map kinds[] = {
    {AE_LAYER_DENSE, ex_dense},
    {AE_LAYER_CONV2D, ex_conv},
    {AE_LAYER_CONV_TRANSPOSE2D, ex_conv},
    {AE_LAYER_MAXPOOL2D, ex_maxpool},
    {AE_LAYER_UPSAMPLE, ex_upsample},
    {AE_LAYER_BATCHNORM, ex_batchnorm},
    {AE_LAYER_AVGPOOL_1X1, ex_avgpool},
    {AE_LAYER_FLATTEN, ex_flatten},
    {AE_LAYER_UNFLATTEN, ex_unflatten},
    {AE_LAYER_ACTIVATION, ex_activation_layer},
    {AE_LAYER_TOPK, ex_topk},
    {AE_LAYER_LIFETIME_TOPK, ex_lifetime_topk},
    {AE_LAYER_BATCH_TOPK, ex_batch_topk},
    {AE_LAYER_GAUSSIAN, ex_gaussian},
};

static const kind_map *kind_for(ae_layer_kind k) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (kinds[i].kind == k) return &kinds[i];
    return NULL;
}

/* ---- the graph ---- */

/* Gives the current tensor the name `name` (a graph output): renames the
 * output of the node writing it, or adds an Identity. */
static char *name_current(exporter *e, const char *name) {
    if (!e->cur_node) step1(e, "Identity", 0, NULL);
    if (!e->cur_node || oom(e)) return NULL;
    char *s = ex_strdup(e, name);
    if (!s) return NULL;
    e->cur_node->output[e->cur_out] = s;
    e->cur = s;
    /* a later rename of the same tensor goes through an Identity */
    e->cur_node = NULL;
    return s;
}

static AeOnnx__ValueInfoProto *value_info(exporter *e, const char *name, int rank, ae_shape s) {
    AeOnnx__ValueInfoProto *v = ae_arena_alloc(&e->arena, sizeof *v);
    AeOnnx__TypeProto *t = ae_arena_alloc(&e->arena, sizeof *t);
    AeOnnx__TypeProto__Tensor *tt = ae_arena_alloc(&e->arena, sizeof *tt);
    AeOnnx__TensorShapeProto *sh = ae_arena_alloc(&e->arena, sizeof *sh);
    AeOnnx__TensorShapeProto__Dimension **dims = ae_arena_alloc(&e->arena, 4 * sizeof *dims);
    if (!v || !t || !tt || !sh || !dims) return NULL;
    ae_onnx__value_info_proto__init(v);
    ae_onnx__type_proto__init(t);
    ae_onnx__type_proto__tensor__init(tt);
    ae_onnx__tensor_shape_proto__init(sh);
    size_t vals[4] = {0, rank == 4 ? s.c : ae_shape_size(s), s.h, s.w};
    for (int i = 0; i < rank; i++) {
        AeOnnx__TensorShapeProto__Dimension *d = ae_arena_alloc(&e->arena, sizeof *d);
        if (!d) return NULL;
        ae_onnx__tensor_shape_proto__dimension__init(d);
        if (i == 0) {
            d->value_case = AE_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = ex_strdup(e, "batch");
        } else {
            d->value_case = AE_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = (int64_t)vals[i];
        }
        dims[i] = d;
    }
    sh->n_dim = (size_t)rank;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = AE_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    t->value_case = AE_ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    t->tensor_type = tt;
    v->name = ex_strdup(e, name);
    v->type = t;
    return v;
}

/* The rank of the tensor entering layer `i`: the model input's (4 when it
 * is an image), then as the layers before leave it. Computed by a dry run
 * of the rank rules, so an encoder's output and a decoder's input agree. */
static int rank_of(const ae_layer *L) {
    switch (L->kind) {
    case AE_LAYER_DENSE:
    case AE_LAYER_GAUSSIAN:
    case AE_LAYER_FLATTEN: return 2;
    case AE_LAYER_TOPK: return L->in_shape.h * L->in_shape.w > 1 ? 4 : 2;
    case AE_LAYER_CONV2D:
    case AE_LAYER_CONV_TRANSPOSE2D:
    case AE_LAYER_MAXPOOL2D:
    case AE_LAYER_UPSAMPLE:
    case AE_LAYER_AVGPOOL_1X1:
    case AE_LAYER_UNFLATTEN: return 4;
    case AE_LAYER_BATCHNORM: return L->in_shape.h * L->in_shape.w > 1 ? 4 : 0;
    default: return 0; /* keeps the rank */
    }
}

static int input_rank(const ae_model *m, size_t layer) {
    int r = m->in_shape.h * m->in_shape.w > 1 ? 4 : 2;
    for (size_t i = 0; i < layer; i++) {
        int k = rank_of(&m->layers[i]);
        if (k) r = k;
    }
    return r;
}

/* A metadata entry; NULL when value is (out of memory). */
static AeOnnx__StringStringEntryProto *meta_prop(exporter *e, const char *key, char *value) {
    AeOnnx__StringStringEntryProto *p = value ? ae_arena_alloc(&e->arena, sizeof *p) : NULL;
    if (!p) return NULL;
    ae_onnx__string_string_entry_proto__init(p);
    p->key = ex_strdup(e, key);
    p->value = value;
    return p->key ? p : NULL;
}

/* "a,b,c": n floats, each printed so that it reads back exactly. */
static char *float_list(exporter *e, const float *v, size_t n) {
    char *s = ae_arena_alloc(&e->arena, n * 18 + 1), *q = s;
    if (!s) return NULL;
    for (size_t i = 0; i < n; i++) q += sprintf(q, "%s%.9g", i ? "," : "", (double)v[i]);
    return s;
}

static ae_status build(exporter *e, ae_onnx_part part, AeOnnx__ModelProto *mp) {
    const ae_model *m = e->m;
    size_t from = part == AE_ONNX_DECODER ? m->code_layer : 0;
    size_t to = part == AE_ONNX_ENCODER ? m->code_layer : m->nlayers;
    e->layer_name = "graph";
    e->cur = ex_strdup(e, from ? "code" : "input");
    e->rank = input_rank(m, from);
    e->shape = from ? m->layers[from].in_shape : m->in_shape;
    int in_rank = e->rank;
    ae_shape in_shape = e->shape;
    int code_rank = 0;
    ae_shape code_shape = {0, 0, 0};
    char layer_name[32];
    for (size_t i = from; i < to; i++) {
        const ae_layer *L = &m->layers[i];
        snprintf(layer_name, sizeof layer_name, "layer%zu", i);
        e->layer_name = layer_name;
        const kind_map *k = kind_for(L->kind);
        if (!k)
            return ae_error(e->err, AE_ERR_UNSUPPORTED, "layer %zu (%s) has no ONNX form", i,
                            ae_layer_kind_name(L->kind) ? ae_layer_kind_name(L->kind) : "unknown");
        ae_status st = k->fn(e, L);
        if (!st && (L->ops->desc->flags & AE_LK_ACT)) st = activation(e, L->act, L->slope);
        if (st) return st;
        if (oom(e)) return AE_ERR_OUT_OF_MEMORY;
        e->shape = L->out_shape;
        if (i + 1 == m->code_layer && part != AE_ONNX_DECODER) {
            code_rank = e->rank;
            code_shape = e->shape;
            if (!name_current(e, "code")) return AE_ERR_OUT_OF_MEMORY;
        }
    }
    e->layer_name = "graph";
    if (part != AE_ONNX_ENCODER && !name_current(e, "reconstruction")) return AE_ERR_OUT_OF_MEMORY;
    if (e->logvar) {
        /* The Split's second output. */
        AeOnnx__NodeProto *split = NULL;
        for (size_t i = 0; i < e->nnodes; i++)
            if (e->nodes[i]->n_output == 2 && e->nodes[i]->output[1] == e->logvar) split = e->nodes[i];
        char *s = ex_strdup(e, "logvar");
        if (!split || !s) return AE_ERR_OUT_OF_MEMORY;
        split->output[1] = s;
    }

    AeOnnx__GraphProto *g = ae_arena_alloc(&e->arena, sizeof *g);
    AeOnnx__ValueInfoProto **ins = ae_arena_alloc(&e->arena, sizeof *ins);
    AeOnnx__ValueInfoProto **outs = ae_arena_alloc(&e->arena, 3 * sizeof *outs);
    if (!g || !ins || !outs) return AE_ERR_OUT_OF_MEMORY;
    ae_onnx__graph_proto__init(g);
    g->name = ex_strdup(e, part == AE_ONNX_FULL ? "autoencoder"
                           : part == AE_ONNX_ENCODER ? "encoder" : "decoder");
    ins[0] = value_info(e, from ? "code" : "input", in_rank, in_shape);
    size_t nout = 0;
    if (part != AE_ONNX_ENCODER) outs[nout++] = value_info(e, "reconstruction", e->rank, e->shape);
    if (part != AE_ONNX_DECODER) outs[nout++] = value_info(e, "code", code_rank, code_shape);
    if (e->logvar) outs[nout++] = value_info(e, "logvar", 2, code_shape);
    g->n_input = 1;
    g->input = ins;
    g->n_output = nout;
    g->output = outs;
    g->n_node = e->nnodes;
    g->node = e->nodes;
    g->n_initializer = e->ninits;
    g->initializer = e->inits;

    AeOnnx__OperatorSetIdProto *ops = ae_arena_alloc(&e->arena, sizeof *ops);
    AeOnnx__OperatorSetIdProto **opsv = ae_arena_alloc(&e->arena, sizeof *opsv);
    if (!ops || !opsv || oom(e)) return AE_ERR_OUT_OF_MEMORY;
    ae_onnx__operator_set_id_proto__init(ops);
    ops->domain = ex_strdup(e, "");
    ops->has_version = 1;
    ops->version = AE_ONNX_OPSET;
    opsv[0] = ops;
    ae_onnx__model_proto__init(mp);
    mp->has_ir_version = 1;
    mp->ir_version = AE_ONNX_IR_VERSION;
    mp->n_opset_import = 1;
    mp->opset_import = opsv;
    mp->producer_name = ex_strdup(e, "libae");
    mp->producer_version = ex_strdup(e, ae_version_string());
    mp->graph = g;
    /* The model's metadata travels along, and the value convention of its
       training data (for the graphs whose input is the data), which
       replaces any metadata of the same keys. */
    const ae_data_convention *c = &m->conv;
    int conv = c->struct_size && part != AE_ONNX_DECODER;
    size_t cap = m->nmeta + (conv ? 6 : 0), np = 0;
    AeOnnx__StringStringEntryProto **props = cap ? ae_arena_alloc(&e->arena, cap * sizeof *props) : NULL;
    if (cap && !props) return AE_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < m->nmeta; i++) {
        AeOnnx__StringStringEntryProto *p = ae_arena_alloc(&e->arena, sizeof *p);
        char *k = ae_arena_alloc(&e->arena, m->meta[i].key_len + 1);
        char *v = ae_arena_alloc(&e->arena, m->meta[i].value_len + 1);
        if (!p || !k || !v) return AE_ERR_OUT_OF_MEMORY;
        ae_onnx__string_string_entry_proto__init(p);
        memcpy(k, m->meta[i].key, m->meta[i].key_len);
        memcpy(v, m->meta[i].value, m->meta[i].value_len);
        if (conv && ae_onnx_convention_key(k)) continue;
        p->key = k;
        p->value = v;
        props[np++] = p;
    }
    if (conv) {
        static const char *const elems[] = {"unknown", "float", "uint8"};
        char buf[80];
        props[np++] = meta_prop(e, AE_ONNX_DATA_ELEM, ex_strdup(e, elems[c->elem]));
        snprintf(buf, sizeof buf, "%.17g", c->scale);
        props[np++] = meta_prop(e, AE_ONNX_DATA_SCALE, ex_strdup(e, buf));
        snprintf(buf, sizeof buf, "%.17g", c->offset);
        props[np++] = meta_prop(e, AE_ONNX_DATA_OFFSET, ex_strdup(e, buf));
        if (!isnan(c->lo)) {
            snprintf(buf, sizeof buf, "%.17g,%.17g", c->lo, c->hi);
            props[np++] = meta_prop(e, AE_ONNX_DATA_RANGE, ex_strdup(e, buf));
        }
        if (c->std_count) {
            props[np++] = meta_prop(e, AE_ONNX_DATA_MEAN, float_list(e, m->conv_stats, c->std_count));
            props[np++] = meta_prop(e, AE_ONNX_DATA_STD,
                                    float_list(e, m->conv_stats + m->conv_cap, c->std_count));
        }
        for (size_t i = 0; i < np; i++)
            if (!props[i]) return AE_ERR_OUT_OF_MEMORY;
    }
    mp->n_metadata_props = np;
    mp->metadata_props = props;
    return oom(e) ? AE_ERR_OUT_OF_MEMORY : AE_OK;
}

static ae_errbuf *export_err(const ae_model *m) { return (ae_errbuf *)&m->err; }

/* Builds the graph of `part` into e and *mp; the caller frees e->arena. */
static ae_status export_begin(exporter *e, const ae_model *m, ae_onnx_part part,
                              AeOnnx__ModelProto *mp, size_t *size) {
    memset(e, 0, sizeof *e);
    e->m = m;
    e->err = export_err(m);
    ae_arena_init(&e->arena, &m->alloc, 0);
    if (part != AE_ONNX_FULL && part != AE_ONNX_ENCODER && part != AE_ONNX_DECODER)
        return ae_error(e->err, AE_ERR_INVALID_ARG, "unknown ONNX part %d", (int)part);
    ae_status st = build(e, part, mp);
    if (st == AE_ERR_OUT_OF_MEMORY || (!st && oom(e)))
        return ae_error(e->err, AE_ERR_OUT_OF_MEMORY, "out of memory building the ONNX graph");
    if (st) return st;
    *size = ae_onnx__model_proto__get_packed_size(mp);
    /* protobuf's own limit: readers refuse messages over 2 GiB */
    if (*size > INT32_MAX)
        return ae_error(e->err, AE_ERR_UNSUPPORTED,
                        "the ONNX model would take %zu bytes, over protobuf's 2 GiB limit", *size);
    return AE_OK;
}

ae_status ae_model_export_onnx_buffer(const ae_model *m, void *buf, size_t capacity, size_t *size,
                                      ae_onnx_part part) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!size) return ae_error(export_err(m), AE_ERR_INVALID_ARG, "size is NULL");
    if (!buf && capacity)
        return ae_error(export_err(m), AE_ERR_INVALID_ARG, "buf is NULL but capacity is %zu",
                        capacity);
    exporter e;
    AeOnnx__ModelProto mp;
    size_t n = 0;
    ae_status st = export_begin(&e, m, part, &mp, &n);
    if (!st) {
        *size = n;
        if (capacity < n)
            st = ae_error(export_err(m), AE_ERR_RANGE,
                          "the ONNX model needs %zu bytes; the buffer holds %zu", n, capacity);
        else
            ae_onnx__model_proto__pack(&mp, buf);
    }
    ae_arena_free(&e.arena);
    return st;
}

ae_status ae_model_export_onnx(const ae_model *m, const char *path, ae_onnx_part part) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!path || !*path)
        return ae_error(export_err(m), AE_ERR_INVALID_ARG, "the path is NULL or empty");
    exporter e;
    AeOnnx__ModelProto mp;
    size_t n = 0;
    ae_status st = export_begin(&e, m, part, &mp, &n);
    unsigned char *buf = NULL;
    if (!st && !(buf = ae_alloc(&m->alloc, n ? n : 1)))
        st = ae_error(export_err(m), AE_ERR_OUT_OF_MEMORY,
                      "out of memory packing the ONNX model (%zu bytes)", n);
    if (!st) {
        ae_onnx__model_proto__pack(&mp, buf);
        ae_span span = {buf, n};
        ae_errbuf why;
        st = ae_file_save(&m->alloc, path, &span, 1, &why);
        if (st) ae_error(export_err(m), st, "cannot export to '%s': %s", path, why.msg);
    }
    ae_free(&m->alloc, buf);
    ae_arena_free(&e.arena);
    return st;
}
