/* ONNX import: the sequential graphs torch.onnx.export writes for
 * autoencoders (and those onnx_export.c writes) into a model.
 *
 * The file is first checked against the schema without recursion deeper
 * than a fixed limit (protobuf-c's own parser has none), then unpacked into
 * an arena. One walk over the nodes, in their (topological) order, follows
 * the chain from the graph input: every node either reads the chain's last
 * tensor and becomes a layer (or fuses into the one before, as an
 * activation or a bias does), or computes a constant (weights, shape
 * arithmetic with the batch size left symbolic), or is a step of a known
 * subgraph (top-k, GELU's erf form, a VAE's two heads). Anything else is
 * refused with the node's name and op type. The layers are then added
 * through the config builder, the model created, and its parameters and
 * state set through the public calls. The walk runs twice: the first finds
 * the chain's tensors so the code can be chosen, the second builds. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "model/model.h"
#include "onnx.h"

/* ---- the schema check: nesting depth and wire format, before unpack ---- */

#define MAX_DEPTH 24

static int read_varint(const uint8_t *p, size_t n, size_t *pos, uint64_t *v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (*pos >= n) return -1;
        uint8_t b = p[(*pos)++];
        r |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = r;
            return 0;
        }
    }
    return -1;
}

/* 0 when [p, p+n) parses as message `d` with sub-messages nested at most
 * MAX_DEPTH deep (unknown fields are skipped by their wire type). */
static int check_wire(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n, int depth) {
    if (depth > MAX_DEPTH) return -1;
    size_t pos = 0;
    while (pos < n) {
        uint64_t key, len;
        if (read_varint(p, n, &pos, &key)) return -1;
        unsigned wt = (unsigned)(key & 7);
        uint64_t num = key >> 3;
        switch (wt) {
        case 0:
            if (read_varint(p, n, &pos, &len)) return -1;
            break;
        case 1:
            if (n - pos < 8) return -1;
            pos += 8;
            break;
        case 5:
            if (n - pos < 4) return -1;
            pos += 4;
            break;
        case 2: {
            if (read_varint(p, n, &pos, &len) || len > n - pos) return -1;
            const ProtobufCFieldDescriptor *f = NULL;
            for (unsigned i = 0; i < d->n_fields; i++)
                if (d->fields[i].id == num) f = &d->fields[i];
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE &&
                check_wire(f->descriptor, p + pos, (size_t)len, depth + 1))
                return -1;
            pos += (size_t)len;
            break;
        }
        default: return -1; /* groups are not in the schema */
        }
    }
    return 0;
}

/* ---- tensors known to the walk ---- */

/* A symbolic int64: coef · batch + val (coef 0: a plain number). */
typedef struct sym {
    int64_t coef, val;
} sym;

enum {
    K_NONE = 0,
    K_FLOAT,    /* a float constant */
    K_INT,      /* an int64 constant, maybe with the batch in it */
    K_MAIN,     /* a tensor of the chain: chain[ref] */
    K_ZEROS,    /* zeros shaped as chain[ref] (ConstantOfShape(Shape(x))) */
    K_TOPK_V,   /* TopK of chain[ref]: values, k in k */
    K_TOPK_I,   /* ... indices */
    K_GELU_DIV, /* GELU's steps on chain[ref]: x / sqrt 2 */
    K_GELU_ERF, /* erf(x / sqrt 2) */
    K_GELU_ADD, /* 1 + erf(...) */
    K_GELU_MUL, /* x (1 + erf(...)) */
    K_GREATER,  /* chain[ref] > threshold f */
    K_FLATB,    /* chain[ref] reshaped to [1, batch·n] */
    K_FLATB_Z,  /* zeros shaped as that */
    K_FLATB_V,  /* TopK over it: values (k per sample in k) */
    K_FLATB_I,
    K_FLATB_SEL, /* the selection scattered back, [1, batch·n] */
    K_HEAD2,     /* a VAE's second head (layer ref's other Gemm) */
    K_UNUSED,    /* an output nobody may read (a VAE's log-variance) */
    K_STALE,     /* a tensor of the chain replaced by a later one (before a bias) */
    K_OTHER      /* a constant of a type libae does not read */
};

typedef struct tval {
    const char *name;
    int kind;
    size_t ndims;
    int64_t dims[8];
    size_t n;          /* elements (constants) */
    const float *f;    /* K_FLOAT data */
    const sym *iv;     /* K_INT data */
    const char *src;   /* K_FLOAT: the initializer it is, or whose transpose it is */
    int transposed;    /* K_FLOAT: the transpose of src */
    size_t ref;        /* K_MAIN etc.: the chain entry; K_HEAD2: the layer */
    int64_t k;
    float fval;
} tval;

/* A tensor of the chain and where it stands. */
typedef struct chain_t {
    const char *name;
    ae_shape shape;
    int rank;        /* 2 or 4 */
    size_t nlayers;  /* layers that produce it */
    int consumed;    /* a later node read it as the chain's input */
} chain_t;

/* A layer being built. */
typedef struct imp_layer {
    ae_layer_spec spec;
    const char *node;          /* the node that made it, for messages */
    const float *w, *b, *w2, *b2; /* weight [as libae lays it out], bias; a VAE's second head */
    int w_transpose;           /* w is [in, out]: transpose it */
    const float *mean, *var;   /* BatchNorm's running statistics */
    int has_state;
    float theta;               /* batch top-k threshold (has_state) */
    const char *w_src;         /* the initializer of its weight, for tying */
    int w_src_transposed;
    int tie_to;                /* the encoder layer whose weight it reads transposed, or -1 */
    int act_set;               /* an activation was fused into it */
    ae_shape in_shape;
} imp_layer;

typedef struct importer {
    ae_arena arena;
    ae_errbuf err;
    const AeOnnx__GraphProto *g;
    tval *vals;
    size_t nvals, capvals;
    size_t *hash;
    size_t hcap;
    chain_t *chain;
    size_t nchain, capchain;
    imp_layer *layers;
    size_t nlayers, caplayers;
    size_t main; /* the chain's last tensor */
    const char *code_name; /* second walk: the code's tensor (do not fuse across it) */
    const AeOnnx__NodeProto *node; /* the node being read, for messages */
} importer;

static ae_status fail(importer *im, ae_status st, const char *fmt, ...) AE_PRINTF(3, 4);
static ae_status fail(importer *im, ae_status st, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (im->node)
        return ae_error(&im->err, st, "node '%s' (%s): %s", im->node->name ? im->node->name : "",
                        im->node->op_type ? im->node->op_type : "", msg);
    return ae_error(&im->err, st, "%s", msg);
}

static ae_status oom(importer *im) {
    return ae_error(&im->err, AE_ERR_OUT_OF_MEMORY, "out of memory importing the ONNX model");
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static tval *lookup(importer *im, const char *name) {
    if (!name || !*name) return NULL;
    size_t mask = im->hcap - 1;
    for (size_t i = hash_str(name) & mask;; i = (i + 1) & mask) {
        size_t v = im->hash[i];
        if (v == 0) return NULL;
        if (strcmp(im->vals[v - 1].name, name) == 0) return &im->vals[v - 1];
    }
}

/* A new tensor (or the existing one of that name, overwritten: an SSA
 * graph defines each name once; a second definition is refused). */
static tval *define(importer *im, const char *name) {
    if (!name) name = "";
    if (*name && lookup(im, name)) {
        fail(im, AE_ERR_FORMAT, "tensor '%s' is defined twice", name);
        return NULL;
    }
    if (im->nvals == im->capvals) {
        fail(im, AE_ERR_FORMAT, "more tensors than the graph declares");
        return NULL;
    }
    tval *t = &im->vals[im->nvals++];
    memset(t, 0, sizeof *t);
    t->name = name;
    if (*name) {
        size_t mask = im->hcap - 1, i = hash_str(name) & mask;
        while (im->hash[i]) i = (i + 1) & mask;
        im->hash[i] = im->nvals;
    }
    return t;
}

/* ---- reading constants ---- */

static int mul_dims(const int64_t *dims, size_t nd, size_t *n) {
    size_t r = 1;
    for (size_t i = 0; i < nd; i++) {
        if (dims[i] < 0 || (uint64_t)dims[i] > SIZE_MAX) return -1;
        if (ae_mul_overflow(r, (size_t)dims[i], &r)) return -1;
    }
    *n = r;
    return 0;
}

static uint64_t rd_le(const uint8_t *p, size_t bytes) {
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A TensorProto into t (float32 as K_FLOAT, int64/int32 as K_INT). */
static ae_status read_tensor(importer *im, const AeOnnx__TensorProto *tp, tval *t) {
    const char *nm = tp->name ? tp->name : "";
    if (tp->n_dims > 8) return fail(im, AE_ERR_UNSUPPORTED, "tensor '%s' has %zu dimensions", nm, tp->n_dims);
    if (tp->has_data_location && tp->data_location == AE_ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return fail(im, AE_ERR_UNSUPPORTED, "tensor '%s' keeps its data in an external file", nm);
    size_t n;
    if (mul_dims(tp->dims, tp->n_dims, &n))
        return fail(im, AE_ERR_FORMAT, "tensor '%s' has invalid dimensions", nm);
    t->ndims = tp->n_dims;
    for (size_t i = 0; i < tp->n_dims; i++) t->dims[i] = tp->dims[i];
    t->n = n;
    int type = tp->has_data_type ? tp->data_type : 0;
    size_t raw = tp->has_raw_data ? tp->raw_data.len : 0;
    if (type == AE_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        float *f = ae_arena_alloc(&im->arena, (n ? n : 1) * sizeof *f);
        if (!f) return oom(im);
        if (tp->has_raw_data) {
            if (raw / 4 != n || raw % 4)
                return fail(im, AE_ERR_FORMAT, "tensor '%s': %zu bytes of data for %zu floats", nm, raw, n);
            for (size_t i = 0; i < n; i++) {
                uint32_t u = (uint32_t)rd_le(tp->raw_data.data + 4 * i, 4);
                memcpy(&f[i], &u, 4);
            }
        } else {
            if (tp->n_float_data != n)
                return fail(im, AE_ERR_FORMAT, "tensor '%s': %zu floats for %zu elements", nm,
                            tp->n_float_data, n);
            if (n) memcpy(f, tp->float_data, n * sizeof *f);
        }
        t->kind = K_FLOAT;
        t->f = f;
        t->src = tp->name;
        return AE_OK;
    }
    if (type == AE_ONNX__TENSOR_PROTO__DATA_TYPE__INT64 || type == AE_ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
        size_t bytes = type == AE_ONNX__TENSOR_PROTO__DATA_TYPE__INT64 ? 8 : 4;
        sym *v = ae_arena_alloc(&im->arena, (n ? n : 1) * sizeof *v);
        if (!v) return oom(im);
        if (tp->has_raw_data) {
            if (raw / bytes != n || raw % bytes)
                return fail(im, AE_ERR_FORMAT, "tensor '%s': %zu bytes of data for %zu integers", nm, raw, n);
            for (size_t i = 0; i < n; i++) {
                uint64_t u = rd_le(tp->raw_data.data + bytes * i, bytes);
                v[i].val = bytes == 8 ? (int64_t)u : (int64_t)(int32_t)(uint32_t)u;
            }
        } else if (bytes == 8) {
            if (tp->n_int64_data != n)
                return fail(im, AE_ERR_FORMAT, "tensor '%s': %zu integers for %zu elements", nm,
                            tp->n_int64_data, n);
            for (size_t i = 0; i < n; i++) v[i].val = tp->int64_data[i];
        } else {
            if (tp->n_int32_data != n)
                return fail(im, AE_ERR_FORMAT, "tensor '%s': %zu integers for %zu elements", nm,
                            tp->n_int32_data, n);
            for (size_t i = 0; i < n; i++) v[i].val = tp->int32_data[i];
        }
        t->kind = K_INT;
        t->iv = v;
        return AE_OK;
    }
    if (type == AE_ONNX__TENSOR_PROTO__DATA_TYPE__BOOL) {
        /* Dropout's training_mode: read as integers */
        sym *v = ae_arena_alloc(&im->arena, (n ? n : 1) * sizeof *v);
        if (!v) return oom(im);
        if (tp->has_raw_data ? raw != n : tp->n_int32_data != n)
            return fail(im, AE_ERR_FORMAT, "tensor '%s': data for %zu booleans do not fit", nm, n);
        for (size_t i = 0; i < n; i++)
            v[i].val = tp->has_raw_data ? tp->raw_data.data[i] != 0 : tp->int32_data[i] != 0;
        t->kind = K_INT;
        t->iv = v;
        return AE_OK;
    }
    /* another type: an error only where a node reads it */
    t->kind = K_OTHER;
    return AE_OK;
}

/* ---- attributes ---- */

static const AeOnnx__AttributeProto *find_attr(const AeOnnx__NodeProto *n, const char *name) {
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && strcmp(n->attribute[i]->name, name) == 0) return n->attribute[i];
    return NULL;
}

static int64_t attr_int(const AeOnnx__NodeProto *n, const char *name, int64_t def) {
    const AeOnnx__AttributeProto *a = find_attr(n, name);
    return a && a->has_i ? a->i : def;
}

static float attr_float(const AeOnnx__NodeProto *n, const char *name, float def) {
    const AeOnnx__AttributeProto *a = find_attr(n, name);
    return a && a->has_f ? a->f : def;
}

/* A string attribute equals `want` (def when absent). */
static int attr_is(const AeOnnx__NodeProto *n, const char *name, const char *def, const char *want) {
    const AeOnnx__AttributeProto *a = find_attr(n, name);
    if (!a || !a->has_s) return strcmp(def, want) == 0;
    return a->s.len == strlen(want) && memcmp(a->s.data, want, a->s.len) == 0;
}

static const char *attr_str(importer *im, const AeOnnx__NodeProto *n, const char *name, const char *def) {
    const AeOnnx__AttributeProto *a = find_attr(n, name);
    if (!a || !a->has_s) return def;
    char *s = ae_arena_alloc(&im->arena, a->s.len + 1);
    if (!s) return def;
    memcpy(s, a->s.data, a->s.len);
    return s;
}

/* ints attribute `name`: all its values equal (count `count` when given,
 * else any count >= 1) into *v; absent: def. -1 when they differ. */
static int attr_same_ints(const AeOnnx__NodeProto *n, const char *name, size_t count, int64_t def,
                          int64_t *v) {
    const AeOnnx__AttributeProto *a = find_attr(n, name);
    if (!a) {
        *v = def;
        return 0;
    }
    if (a->n_ints == 0 || (count && a->n_ints != count)) return -1;
    for (size_t i = 1; i < a->n_ints; i++)
        if (a->ints[i] != a->ints[0]) return -1;
    *v = a->ints[0];
    return 0;
}

/* The shortest decimal (up to 9 digits) that rounds to f: a float attribute
 * back to the double it was written from (1e-5, not 9.99999974738e-06). */
static double shortest(float f) {
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)f);
        double d = strtod(buf, NULL);
        if ((float)d == f) return d;
    }
    return (double)f;
}

/* ---- the chain ---- */

static int push_chain(importer *im, const char *name, ae_shape s, int rank) {
    if (im->nchain == im->capchain) {
        size_t nc = im->capchain ? 2 * im->capchain : 32;
        chain_t *c = ae_arena_alloc(&im->arena, nc * sizeof *c);
        if (!c) return -1;
        if (im->nchain) memcpy(c, im->chain, im->nchain * sizeof *c);
        im->chain = c;
        im->capchain = nc;
    }
    chain_t *c = &im->chain[im->nchain++];
    c->name = name;
    c->shape = s;
    c->rank = rank;
    c->nlayers = im->nlayers;
    c->consumed = 0;
    return 0;
}

static imp_layer *new_layer(importer *im, ae_layer_kind kind) {
    if (im->nlayers == im->caplayers) {
        size_t nc = im->caplayers ? 2 * im->caplayers : 16;
        imp_layer *l = ae_arena_alloc(&im->arena, nc * sizeof *l);
        if (!l) return NULL;
        if (im->nlayers) memcpy(l, im->layers, im->nlayers * sizeof *l);
        im->layers = l;
        im->caplayers = nc;
    }
    imp_layer *L = &im->layers[im->nlayers++];
    memset(L, 0, sizeof *L);
    ae_layer_spec_init(&L->spec, kind);
    L->node = im->node && im->node->name ? im->node->name : "";
    L->tie_to = -1;
    L->in_shape = im->chain[im->main].shape;
    return L;
}

/* The descriptor attribute `name` of a layer's kind set to v. */
static void set_attr(ae_layer_spec *spec, const char *name, double v) {
    const ae_layer_desc *d = ae_layer_desc_for(spec->kind);
    for (size_t i = 0; d && i < d->nattrs; i++)
        if (strcmp(d->attrs[i].name, name) == 0) {
            if (d->attrs[i].type == AE_ATTR_FLOAT)
                ae_spec_set_float(spec, &d->attrs[i], v);
            else
                ae_spec_set_int(spec, &d->attrs[i], v > 9.2e18 ? INT64_MAX : v < -9.2e18 ? INT64_MIN : (int64_t)v);
        }
}

/* The node's output `out` becomes the chain's last tensor, of shape s and rank. */
static ae_status advance(importer *im, const char *out, ae_shape s, int rank) {
    tval *t = define(im, out);
    if (!t) return AE_ERR_FORMAT;
    if (push_chain(im, out, s, rank)) return oom(im);
    im->chain[im->main].consumed = 1;
    t->kind = K_MAIN;
    t->ref = im->nchain - 1;
    im->main = t->ref;
    return AE_OK;
}

static const chain_t *cur(const importer *im) { return &im->chain[im->main]; }

/* The node's input i as a tensor, or NULL (missing or empty). */
static tval *input(importer *im, size_t i) {
    const AeOnnx__NodeProto *n = im->node;
    return i < n->n_input ? lookup(im, n->input[i]) : NULL;
}

/* Input i must be the chain's last tensor. */
static ae_status want_main(importer *im, size_t i) {
    tval *t = input(im, i);
    if (!t) return fail(im, AE_ERR_FORMAT, "input %zu is missing or unknown", i);
    if (t->kind != K_MAIN)
        return fail(im, AE_ERR_UNSUPPORTED, "input '%s' is not the output of the layer before",
                    t->name);
    if (t->ref != im->main)
        return fail(im, AE_ERR_UNSUPPORTED,
                    "reads '%s', which a later node already read: the graph branches (libae "
                    "models are sequential)", t->name);
    return AE_OK;
}

static const tval *want_float(importer *im, size_t i, size_t n, const char *what) {
    tval *t = input(im, i);
    if (!t || t->kind != K_FLOAT) {
        fail(im, AE_ERR_UNSUPPORTED, "its %s (input %zu) is not a float constant", what, i);
        return NULL;
    }
    if (n && t->n != n) {
        fail(im, AE_ERR_SHAPE, "its %s has %zu values, expected %zu", what, t->n, n);
        return NULL;
    }
    return t;
}

static int is_scalar_value(const tval *t, float v) {
    return t && t->kind == K_FLOAT && t->n == 1 && t->f[0] == v;
}

static int is_scalar_near(const tval *t, float v, float tol) {
    return t && t->kind == K_FLOAT && t->n == 1 && fabsf(t->f[0] - v) <= tol;
}

/* The last layer, when the node may fuse into it (its output is the
 * chain's last tensor, it is not the code, and it has no activation yet). */
static imp_layer *fusable(importer *im, ae_layer_kind kind) {
    if (!im->nlayers || cur(im)->nlayers != im->nlayers) return NULL;
    imp_layer *L = &im->layers[im->nlayers - 1];
    if (kind != (ae_layer_kind)-1 && L->spec.kind != kind) return NULL;
    if (im->code_name && strcmp(cur(im)->name, im->code_name) == 0) return NULL;
    /* the layer made this tensor (not a Flatten or Reshape that added none) */
    if (im->main == 0 || im->chain[im->main - 1].nlayers == im->nlayers) return NULL;
    return L;
}

/* ---- ops on the chain ---- */

static ae_status op_activation(importer *im, ae_activation act, float slope) {
    ae_status st = want_main(im, 0);
    if (st) return st;
    imp_layer *L = fusable(im, (ae_layer_kind)-1);
    if (L && (ae_layer_desc_for(L->spec.kind)->flags & AE_LK_ACT) && !L->act_set) {
        L->spec.act = act;
        L->spec.slope = slope;
        L->act_set = 1;
    } else {
        if (!(L = new_layer(im, AE_LAYER_ACTIVATION))) return oom(im);
        L->spec.act = act;
        L->spec.slope = slope;
        L->act_set = 1;
    }
    return advance(im, im->node->output[0], cur(im)->shape, cur(im)->rank);
}

/* The chain's last tensor as [batch, n] (Gemm, MatMul need rank 2). */
static ae_status need_rank2(importer *im) {
    if (cur(im)->rank != 2)
        return fail(im, AE_ERR_UNSUPPORTED, "its input has rank 4 (flatten it first)");
    return AE_OK;
}

static ae_status need_rank4(importer *im) {
    if (cur(im)->rank != 4) return fail(im, AE_ERR_UNSUPPORTED, "its input is not an NCHW image");
    return AE_OK;
}

static ae_status add_dense(importer *im, const tval *w, int w_is_in_out, const float *bias) {
    size_t in = ae_shape_size(cur(im)->shape);
    if (w->ndims != 2) return fail(im, AE_ERR_SHAPE, "its weight is not a matrix");
    size_t rows = (size_t)w->dims[0], cols = (size_t)w->dims[1];
    size_t win = w_is_in_out ? rows : cols, out = w_is_in_out ? cols : rows;
    if (win != in)
        return fail(im, AE_ERR_SHAPE, "its weight takes %zu inputs; the layer before gives %zu",
                    win, in);
    imp_layer *L = new_layer(im, AE_LAYER_DENSE);
    if (!L) return oom(im);
    L->spec.units = out;
    L->spec.bias = bias != NULL;
    L->w = w->f;
    L->w_transpose = w_is_in_out;
    L->b = bias;
    L->w_src = w->src;
    /* The weight read as [out, in]: the initializer itself, or its transpose. */
    L->w_src_transposed = w->transposed ^ w_is_in_out;
    return advance(im, im->node->output[0], (ae_shape){out, 1, 1}, 2);
}

/* The dense layer just made as a VAE's Gaussian layer of `dim`. */
static void make_gaussian(imp_layer *L, size_t dim) {
    ae_layer_spec_init(&L->spec, AE_LAYER_GAUSSIAN);
    L->spec.units = dim;
    L->spec.bias = 1;
    L->act_set = 1;
}

static ae_status op_gemm(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    if (attr_int(n, "transA", 0) != 0 || attr_float(n, "alpha", 1.0f) != 1.0f ||
        attr_float(n, "beta", 1.0f) != 1.0f)
        return fail(im, AE_ERR_UNSUPPORTED, "only Gemm with alpha 1, beta 1, transA 0 is a dense layer");
    tval *x = input(im, 0);
    /* A VAE's second head: another Gemm on the input of the dense layer just made. */
    if (x && x->kind == K_MAIN && im->nlayers && x->ref + 1 == im->main &&
        cur(im)->nlayers == im->nlayers && !im->layers[im->nlayers - 1].act_set &&
        im->layers[im->nlayers - 1].spec.kind == AE_LAYER_DENSE &&
        im->chain[x->ref].nlayers + 1 == im->nlayers) {
        imp_layer *L = &im->layers[im->nlayers - 1];
        int tb = attr_int(n, "transB", 0) != 0;
        const tval *w = input(im, 1), *b = n->n_input > 2 ? input(im, 2) : NULL;
        size_t rows = w && w->kind == K_FLOAT && w->ndims == 2 ? (size_t)w->dims[0] : 0,
               cols = w && w->kind == K_FLOAT && w->ndims == 2 ? (size_t)w->dims[1] : 0;
        size_t out = tb ? rows : cols, in = tb ? cols : rows;
        /* anything else reading that tensor is a branch (refused below) */
        if (out == L->spec.units && in == ae_shape_size(im->chain[x->ref].shape) && b &&
            b->kind == K_FLOAT && b->n == out && L->b && L->w_transpose == !tb) {
            L->w2 = w->f;
            L->b2 = b->f;
            make_gaussian(L, L->spec.units);
            tval *t = define(im, n->output[0]);
            if (!t) return AE_ERR_FORMAT;
            t->kind = K_HEAD2;
            t->ref = im->nlayers - 1;
            return AE_OK;
        }
    }
    ae_status st = want_main(im, 0);
    if (!st) st = need_rank2(im);
    if (st) return st;
    const tval *w = want_float(im, 1, 0, "weight");
    if (!w) return AE_ERR_UNSUPPORTED;
    const tval *b = NULL;
    if (n->n_input > 2 && n->input[2][0]) {
        size_t out = w->ndims == 2 ? (size_t)w->dims[attr_int(n, "transB", 0) ? 0 : 1] : 0;
        if (!(b = want_float(im, 2, out, "bias"))) return AE_ERR_SHAPE;
    }
    return add_dense(im, w, attr_int(n, "transB", 0) == 0, b ? b->f : NULL);
}

static ae_status op_matmul(importer *im) {
    ae_status st = want_main(im, 0);
    if (!st) st = need_rank2(im);
    if (st) return st;
    const tval *w = want_float(im, 1, 0, "weight");
    if (!w) return AE_ERR_UNSUPPORTED;
    return add_dense(im, w, 1, NULL);
}

/* Add after MatMul: the dense layer's bias. */
static ae_status op_add(importer *im) {
    tval *a = input(im, 0), *b = input(im, 1);
    if (a && a->kind == K_GELU_ERF && is_scalar_value(b, 1.0f)) {
        tval *t = define(im, im->node->output[0]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = K_GELU_ADD;
        t->ref = a->ref;
        return AE_OK;
    }
    if (b && b->kind == K_MAIN && (!a || a->kind != K_MAIN)) {
        tval *s = a;
        a = b;
        b = s;
    }
    if (!a || a->kind != K_MAIN || a->ref != im->main)
        return fail(im, AE_ERR_UNSUPPORTED, "an Add that is not a dense layer's bias");
    imp_layer *L = fusable(im, AE_LAYER_DENSE);
    if (!L || L->b || L->act_set || L->w2)
        return fail(im, AE_ERR_UNSUPPORTED, "an Add that does not follow a MatMul or Gemm without bias");
    if (!b || b->kind != K_FLOAT || b->n != L->spec.units || b->ndims > 2 ||
        (b->ndims == 2 && b->dims[0] != 1))
        return fail(im, AE_ERR_UNSUPPORTED, "its other input is not a bias of %zu values", L->spec.units);
    L->b = b->f;
    L->spec.bias = 1;
    /* the layer's output is now this node's; the one before the bias is gone */
    tval *t = define(im, im->node->output[0]);
    if (!t) return AE_ERR_FORMAT;
    a->kind = K_STALE;
    t->kind = K_MAIN;
    chain_t *c = &im->chain[im->main];
    c->name = t->name;
    t->ref = im->main;
    return AE_OK;
}

static ae_status conv_attrs(importer *im, int64_t *k, int64_t *s, int64_t *p) {
    const AeOnnx__NodeProto *n = im->node;
    int64_t d, g;
    if (attr_same_ints(n, "kernel_shape", 2, 0, k) || attr_same_ints(n, "strides", 2, 1, s) ||
        attr_same_ints(n, "pads", 4, 0, p) || attr_same_ints(n, "dilations", 2, 1, &d))
        return fail(im, AE_ERR_UNSUPPORTED,
                    "kernel, stride and padding must be square and padding symmetric");
    g = attr_int(n, "group", 1);
    if (d != 1 || g != 1) return fail(im, AE_ERR_UNSUPPORTED, "dilation and groups must be 1");
    if (!attr_is(n, "auto_pad", "NOTSET", "NOTSET"))
        return fail(im, AE_ERR_UNSUPPORTED, "auto_pad is not supported (give pads)");
    return AE_OK;
}

static ae_status op_conv(importer *im, int transpose) {
    const AeOnnx__NodeProto *n = im->node;
    ae_status st = want_main(im, 0);
    if (!st) st = need_rank4(im);
    if (st) return st;
    const tval *w = want_float(im, 1, 0, "weight");
    if (!w) return AE_ERR_UNSUPPORTED;
    int64_t k = 0, s = 1, p = 0, op = 0;
    if ((st = conv_attrs(im, &k, &s, &p)) != AE_OK) return st;
    ae_shape in = cur(im)->shape;
    if (w->ndims != 4 || w->dims[2] != w->dims[3] || (k && w->dims[2] != k) ||
        (size_t)w->dims[transpose ? 0 : 1] != in.c)
        return fail(im, AE_ERR_SHAPE, "its weight does not fit %zu input channels (a square kernel)", in.c);
    k = w->dims[2];
    size_t co = (size_t)w->dims[transpose ? 1 : 0];
    if (k < 1 || k > AE_MAX_KERNEL || s < 1 || s > AE_MAX_KERNEL || p < 0 || p > AE_MAX_KERNEL)
        return fail(im, AE_ERR_UNSUPPORTED, "kernel %lld, stride %lld, padding %lld out of range",
                    (long long)k, (long long)s, (long long)p);
    if (transpose) {
        if (find_attr(n, "output_shape"))
            return fail(im, AE_ERR_UNSUPPORTED, "output_shape is not supported (give pads)");
        if (attr_same_ints(n, "output_padding", 2, 0, &op) || op < 0 || op > AE_MAX_KERNEL)
            return fail(im, AE_ERR_UNSUPPORTED, "output_padding must be the same in both dimensions");
    }
    const tval *b = NULL;
    if (n->n_input > 2 && n->input[2][0] && !(b = want_float(im, 2, co, "bias"))) return AE_ERR_SHAPE;
    imp_layer *L = new_layer(im, transpose ? AE_LAYER_CONV_TRANSPOSE2D : AE_LAYER_CONV2D);
    if (!L) return oom(im);
    L->spec.units = co;
    set_attr(&L->spec, "kernel", (double)k);
    set_attr(&L->spec, "stride", (double)s);
    set_attr(&L->spec, "padding", (double)p);
    if (transpose) set_attr(&L->spec, "output_padding", (double)op);
    L->spec.bias = b != NULL;
    L->w = w->f;
    L->b = b ? b->f : NULL;
    /* the output shape: PyTorch's formulas, checked again by the builder */
    int64_t h = (int64_t)in.h, wd = (int64_t)in.w, ho, wo;
    if (transpose) {
        ho = (h - 1) * s - 2 * p + k + op;
        wo = (wd - 1) * s - 2 * p + k + op;
    } else {
        ho = s > 0 ? (h + 2 * p - k) / s + 1 : 0;
        wo = s > 0 ? (wd + 2 * p - k) / s + 1 : 0;
    }
    if (ho < 1 || wo < 1 || (!transpose && (h + 2 * p < k || wd + 2 * p < k)))
        return fail(im, AE_ERR_SHAPE, "the kernel does not fit the input %zux%zu", in.h, in.w);
    return advance(im, n->output[0], (ae_shape){co, (size_t)ho, (size_t)wo}, 4);
}

static ae_status op_maxpool(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    ae_status st = want_main(im, 0);
    if (!st) st = need_rank4(im);
    if (st) return st;
    int64_t k = 0, s = 1, p = 0, d = 1;
    if (attr_same_ints(n, "kernel_shape", 2, 0, &k) || attr_same_ints(n, "strides", 2, 1, &s) ||
        attr_same_ints(n, "pads", 4, 0, &p) || attr_same_ints(n, "dilations", 2, 1, &d) || k < 1 ||
        k > AE_MAX_KERNEL || s < 1 || s > AE_MAX_KERNEL || p < 0 || p > AE_MAX_KERNEL)
        return fail(im, AE_ERR_UNSUPPORTED, "kernel, stride and padding must be square and padding symmetric");
    if (d != 1 || attr_int(n, "ceil_mode", 0) != 0 || attr_int(n, "storage_order", 0) != 0 ||
        !attr_is(n, "auto_pad", "NOTSET", "NOTSET"))
        return fail(im, AE_ERR_UNSUPPORTED, "only floor mode, dilation 1, explicit pads are supported");
    if (n->n_output > 1 && n->output[1][0])
        return fail(im, AE_ERR_UNSUPPORTED, "its Indices output is not supported");
    imp_layer *L = new_layer(im, AE_LAYER_MAXPOOL2D);
    if (!L) return oom(im);
    set_attr(&L->spec, "kernel", (double)k);
    set_attr(&L->spec, "stride", (double)s);
    set_attr(&L->spec, "padding", (double)p);
    ae_shape in = cur(im)->shape;
    int64_t ho = s > 0 ? ((int64_t)in.h + 2 * p - k) / s + 1 : 0,
            wo = s > 0 ? ((int64_t)in.w + 2 * p - k) / s + 1 : 0;
    if (ho < 1 || wo < 1 || (int64_t)in.h + 2 * p < k || (int64_t)in.w + 2 * p < k)
        return fail(im, AE_ERR_SHAPE, "the kernel does not fit the input %zux%zu", in.h, in.w);
    return advance(im, n->output[0], (ae_shape){in.c, (size_t)ho, (size_t)wo}, 4);
}

/* AveragePool over the whole map and GlobalAveragePool: avgpool_1x1. */
static ae_status op_avgpool(importer *im, int global) {
    const AeOnnx__NodeProto *n = im->node;
    ae_status st = want_main(im, 0);
    if (!st) st = need_rank4(im);
    if (st) return st;
    ae_shape in = cur(im)->shape;
    if (!global) {
        const AeOnnx__AttributeProto *ks = find_attr(n, "kernel_shape");
        int64_t p;
        if (!ks || ks->n_ints != 2 || ks->ints[0] != (int64_t)in.h || ks->ints[1] != (int64_t)in.w ||
            attr_same_ints(n, "pads", 4, 0, &p) || p != 0 || attr_int(n, "ceil_mode", 0) != 0 ||
            !attr_is(n, "auto_pad", "NOTSET", "NOTSET"))
            return fail(im, AE_ERR_UNSUPPORTED,
                        "only an average over the whole %zux%zu map is supported", in.h, in.w);
    }
    if (!new_layer(im, AE_LAYER_AVGPOOL_1X1)) return oom(im);
    return advance(im, n->output[0], (ae_shape){in.c, 1, 1}, 4);
}

/* Pad with zero pads: nothing (torch writes one before AveragePool). */
static ae_status op_pad(importer *im) {
    ae_status st = want_main(im, 0);
    if (st) return st;
    tval *p = input(im, 1);
    int zero = p && p->kind == K_INT;
    for (size_t i = 0; zero && i < p->n; i++) zero = p->iv[i].coef == 0 && p->iv[i].val == 0;
    const AeOnnx__AttributeProto *a = find_attr(im->node, "pads");
    if (!p && a) {
        zero = 1;
        for (size_t i = 0; i < a->n_ints; i++) zero &= a->ints[i] == 0;
    }
    if (!zero) return fail(im, AE_ERR_UNSUPPORTED, "only a Pad of zero width is supported");
    return advance(im, im->node->output[0], cur(im)->shape, cur(im)->rank);
}

static ae_status op_resize(importer *im, int legacy) {
    const AeOnnx__NodeProto *n = im->node;
    ae_status st = want_main(im, 0);
    if (!st) st = need_rank4(im);
    if (st) return st;
    ae_shape in = cur(im)->shape;
    /* scales [1, 1, s, s] (Resize input 2, Upsample input 1), or sizes */
    tval *sc = input(im, legacy ? 1 : 2), *sz = legacy ? NULL : input(im, 3);
    double s = 0;
    if (sc && sc->kind == K_FLOAT && sc->n == 4) {
        if (sc->f[0] == 1.0f && sc->f[1] == 1.0f && sc->f[2] == sc->f[3]) s = sc->f[2];
    } else if (sz && sz->kind == K_INT && sz->n == 4 && sz->iv[1].coef == 0 && sz->iv[2].coef == 0 &&
               sz->iv[3].coef == 0 && (size_t)sz->iv[1].val == in.c && in.h && in.w &&
               sz->iv[2].val % (int64_t)in.h == 0 && sz->iv[2].val / (int64_t)in.h == sz->iv[3].val / (int64_t)in.w &&
               sz->iv[3].val % (int64_t)in.w == 0) {
        s = (double)(sz->iv[2].val / (int64_t)in.h);
    }
    if (!(s >= 1 && s <= AE_MAX_KERNEL && s == floor(s)))
        return fail(im, AE_ERR_UNSUPPORTED, "only the same integer scale in height and width is supported");
    int mode;
    const char *m = attr_str(im, n, "mode", "nearest");
    const char *ct = attr_str(im, n, "coordinate_transformation_mode", legacy ? "asymmetric" : "half_pixel");
    const char *nm = attr_str(im, n, "nearest_mode", legacy ? "floor" : "round_prefer_floor");
    if (strcmp(m, "nearest") == 0 &&
        ((strcmp(ct, "asymmetric") == 0 && strcmp(nm, "floor") == 0) ||
         ((strcmp(ct, "half_pixel") == 0 || strcmp(ct, "pytorch_half_pixel") == 0) &&
          (strcmp(nm, "round_prefer_floor") == 0 || strcmp(nm, "round_prefer_ceil") == 0))))
        mode = AE_UPSAMPLE_NEAREST; /* all give y[o] = x[floor(o / s)] at an integer scale */
    else if (!legacy && strcmp(m, "linear") == 0 && strcmp(ct, "align_corners") == 0)
        mode = AE_UPSAMPLE_BILINEAR;
    else
        return fail(im, AE_ERR_UNSUPPORTED,
                    "mode '%s' with coordinate_transformation_mode '%s' (nearest_mode '%s') is not "
                    "supported: nearest, or linear with align_corners",
                    m, ct, nm);
    imp_layer *L = new_layer(im, AE_LAYER_UPSAMPLE);
    if (!L) return oom(im);
    set_attr(&L->spec, "scale", s);
    set_attr(&L->spec, "mode", mode);
    return advance(im, n->output[0], (ae_shape){in.c, in.h * (size_t)s, in.w * (size_t)s}, 4);
}

static ae_status op_batchnorm(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    ae_status st = want_main(im, 0);
    if (st) return st;
    ae_shape in = cur(im)->shape;
    const tval *g = want_float(im, 1, in.c, "scale"), *b = g ? want_float(im, 2, in.c, "bias") : NULL;
    const tval *mean = b ? want_float(im, 3, in.c, "mean") : NULL;
    const tval *var = mean ? want_float(im, 4, in.c, "variance") : NULL;
    if (!var) return AE_ERR_SHAPE;
    if (attr_int(n, "training_mode", 0) != 0 || attr_int(n, "spatial", 1) != 1)
        return fail(im, AE_ERR_UNSUPPORTED, "training_mode and spatial=0 are not supported");
    for (size_t i = 1; i < n->n_output; i++)
        if (n->output[i][0]) return fail(im, AE_ERR_UNSUPPORTED, "its training outputs are not supported");
    imp_layer *L = new_layer(im, AE_LAYER_BATCHNORM);
    if (!L) return oom(im);
    set_attr(&L->spec, "eps", shortest(attr_float(n, "epsilon", 1e-5f)));
    /* ONNX's momentum weighs the running value; libae's (PyTorch's) the batch's */
    char buf[32];
    snprintf(buf, sizeof buf, "%.15g", 1.0 - shortest(attr_float(n, "momentum", 0.9f)));
    set_attr(&L->spec, "momentum", strtod(buf, NULL));
    L->w = g->f;
    L->b = b->f;
    L->mean = mean->f;
    L->var = var->f;
    L->has_state = 1;
    return advance(im, n->output[0], in, cur(im)->rank);
}

static ae_status op_flatten(importer *im) {
    ae_status st = want_main(im, 0);
    if (st) return st;
    if (attr_int(im->node, "axis", 1) != 1) return fail(im, AE_ERR_UNSUPPORTED, "only axis 1 is supported");
    ae_shape s = cur(im)->shape;
    if (cur(im)->rank == 4 && !new_layer(im, AE_LAYER_FLATTEN)) return oom(im);
    return advance(im, im->node->output[0], (ae_shape){ae_shape_size(s), 1, 1}, 2);
}

/* ---- shape arithmetic ---- */

static ae_status int_result(importer *im, size_t n, const sym *v, size_t ndims, const int64_t *dims) {
    tval *t = define(im, im->node->output[0]);
    if (!t) return AE_ERR_FORMAT;
    sym *c = ae_arena_alloc(&im->arena, (n ? n : 1) * sizeof *c);
    if (!c) return oom(im);
    if (n) memcpy(c, v, n * sizeof *c);
    t->kind = K_INT;
    t->iv = c;
    t->n = n;
    t->ndims = ndims;
    for (size_t i = 0; i < ndims; i++) t->dims[i] = dims[i];
    return AE_OK;
}

static const tval *want_int(importer *im, size_t i) {
    tval *t = input(im, i);
    if (!t || t->kind != K_INT) {
        fail(im, AE_ERR_UNSUPPORTED, "input %zu is not an integer constant", i);
        return NULL;
    }
    return t;
}

/* Axes from input 1 (opset 13) or the attribute. */
static int get_axes(importer *im, int64_t *axes, size_t *n) {
    tval *t = input(im, 1);
    if (t && t->kind == K_INT) {
        if (t->n > 8) return -1;
        for (size_t i = 0; i < t->n; i++) {
            if (t->iv[i].coef) return -1;
            axes[i] = t->iv[i].val;
        }
        *n = t->n;
        return 0;
    }
    const AeOnnx__AttributeProto *a = find_attr(im->node, "axes");
    if (!a || a->n_ints > 8) return -1;
    for (size_t i = 0; i < a->n_ints; i++) axes[i] = a->ints[i];
    *n = a->n_ints;
    return 0;
}

static ae_status op_shape(importer *im) {
    tval *x = input(im, 0);
    if (!x || (x->kind != K_MAIN && x->kind != K_FLATB && x->kind != K_INT && x->kind != K_FLOAT))
        return fail(im, AE_ERR_UNSUPPORTED, "the Shape of something libae does not know");
    sym v[8];
    size_t nd = 0;
    if (x->kind == K_MAIN) {
        const chain_t *c = &im->chain[x->ref];
        v[nd++] = (sym){1, 0};
        if (c->rank == 2) {
            v[nd++] = (sym){0, (int64_t)ae_shape_size(c->shape)};
        } else {
            v[nd++] = (sym){0, (int64_t)c->shape.c};
            v[nd++] = (sym){0, (int64_t)c->shape.h};
            v[nd++] = (sym){0, (int64_t)c->shape.w};
        }
    } else if (x->kind == K_FLATB) {
        v[nd++] = (sym){0, 1};
        v[nd++] = (sym){(int64_t)ae_shape_size(im->chain[x->ref].shape), 0};
    } else {
        for (size_t i = 0; i < x->ndims; i++) v[nd++] = (sym){0, x->dims[i]};
    }
    /* opset 15: start and end */
    int64_t start = attr_int(im->node, "start", 0), end = attr_int(im->node, "end", (int64_t)nd);
    if (start < 0) start += (int64_t)nd;
    if (end < 0) end += (int64_t)nd;
    if (start < 0) start = 0;
    if (end > (int64_t)nd) end = (int64_t)nd;
    if (end < start) end = start;
    if (x->kind == K_MAIN || x->kind == K_FLATB) {
        /* ConstantOfShape(Shape(x)) is zeros shaped as x: remember x */
        ae_status st = int_result(im, (size_t)(end - start), v + start, 1, (int64_t[]){end - start});
        if (st) return st;
        tval *t = lookup(im, im->node->output[0]);
        t->ref = x->ref;
        t->k = x->kind == K_FLATB ? 2 : 1; /* whose shape it is */
        t->src = x->name;
        return AE_OK;
    }
    return int_result(im, (size_t)(end - start), v + start, 1, (int64_t[]){end - start});
}

static ae_status op_gather(importer *im) {
    const tval *d = want_int(im, 0), *ix = d ? want_int(im, 1) : NULL;
    if (!ix) return AE_ERR_UNSUPPORTED;
    if (attr_int(im->node, "axis", 0) != 0 || d->ndims != 1)
        return fail(im, AE_ERR_UNSUPPORTED, "only a Gather from a 1-D integer tensor is supported");
    sym v[8];
    if (ix->n > 8) return fail(im, AE_ERR_UNSUPPORTED, "too many indices");
    for (size_t i = 0; i < ix->n; i++) {
        int64_t j = ix->iv[i].val;
        if (ix->iv[i].coef) return fail(im, AE_ERR_UNSUPPORTED, "a symbolic index");
        if (j < 0) j += (int64_t)d->n;
        if (j < 0 || j >= (int64_t)d->n) return fail(im, AE_ERR_FORMAT, "index %lld out of range", (long long)ix->iv[i].val);
        v[i] = d->iv[j];
    }
    return int_result(im, ix->n, v, ix->ndims, ix->dims);
}

static ae_status op_unsqueeze(importer *im, int squeeze) {
    const tval *d = want_int(im, 0);
    if (!d) return AE_ERR_UNSUPPORTED;
    int64_t axes[8];
    size_t na = 0;
    if (get_axes(im, axes, &na)) return fail(im, AE_ERR_UNSUPPORTED, "unreadable axes");
    /* only the shapes change: rank 0 <-> rank 1 of the same values */
    int64_t dims[8];
    size_t nd = 0;
    if (!squeeze) {
        if (d->ndims + na > 1 && !(d->ndims == 1 && na == 0))
            return fail(im, AE_ERR_UNSUPPORTED, "only scalars become vectors here");
        dims[nd++] = (int64_t)d->n;
    } else if (!(d->ndims == 1 && d->n == 1)) {
        return fail(im, AE_ERR_UNSUPPORTED, "only one-element vectors become scalars here");
    }
    return int_result(im, d->n, d->iv, nd, dims);
}

/* Concat of 1-D float constants (torch builds Resize's scales so). */
static ae_status concat_floats(importer *im) {
    size_t n = 0;
    for (size_t i = 0; i < im->node->n_input; i++) {
        tval *d = input(im, i);
        if (!d || d->kind != K_FLOAT || d->ndims != 1 || d->n > 16 || n + d->n > 16)
            return fail(im, AE_ERR_UNSUPPORTED, "only short 1-D constant vectors are concatenated");
        n += d->n;
    }
    float *f = ae_arena_alloc(&im->arena, (n ? n : 1) * sizeof *f);
    if (!f) return oom(im);
    n = 0;
    for (size_t i = 0; i < im->node->n_input; i++) {
        tval *d = input(im, i);
        memcpy(f + n, d->f, d->n * sizeof *f);
        n += d->n;
    }
    tval *t = define(im, im->node->output[0]);
    if (!t) return AE_ERR_FORMAT;
    t->kind = K_FLOAT;
    t->f = f;
    t->n = n;
    t->ndims = 1;
    t->dims[0] = (int64_t)n;
    t->src = t->name;
    return AE_OK;
}

static ae_status op_concat(importer *im) {
    tval *first = input(im, 0);
    if (first && first->kind == K_FLOAT) return concat_floats(im);
    sym v[16];
    size_t n = 0;
    for (size_t i = 0; i < im->node->n_input; i++) {
        const tval *d = want_int(im, i);
        if (!d) return AE_ERR_UNSUPPORTED;
        if (d->ndims != 1 || n + d->n > 16)
            return fail(im, AE_ERR_UNSUPPORTED, "only short 1-D integer vectors are concatenated");
        memcpy(v + n, d->iv, d->n * sizeof *v);
        n += d->n;
    }
    return int_result(im, n, v, 1, (int64_t[]){(int64_t)n});
}

static ae_status op_int_mul(importer *im) {
    const tval *a = want_int(im, 0), *b = a ? want_int(im, 1) : NULL;
    if (!b) return AE_ERR_UNSUPPORTED;
    size_t n = a->n > b->n ? a->n : b->n;
    if ((a->n != n && a->n != 1) || (b->n != n && b->n != 1) || n > 16)
        return fail(im, AE_ERR_UNSUPPORTED, "shapes that do not broadcast");
    sym v[16];
    for (size_t i = 0; i < n; i++) {
        sym x = a->iv[a->n == 1 ? 0 : i], y = b->iv[b->n == 1 ? 0 : i];
        if (x.coef && y.coef) return fail(im, AE_ERR_UNSUPPORTED, "the batch size squared");
        if (x.coef) v[i] = (sym){x.coef * y.val, x.val * y.val};
        else v[i] = (sym){y.coef * x.val, x.val * y.val};
        if (llabs(v[i].coef) > ((int64_t)1 << 40) || llabs(v[i].val) > ((int64_t)1 << 40))
            return fail(im, AE_ERR_UNSUPPORTED, "values out of range");
    }
    const tval *big = a->n >= b->n ? a : b;
    return int_result(im, n, v, big->ndims, big->dims);
}

static ae_status op_constant(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    tval *t = define(im, n->output[0]);
    if (!t) return AE_ERR_FORMAT;
    const AeOnnx__AttributeProto *a;
    if ((a = find_attr(n, "value")) && a->t) {
        ae_status st = read_tensor(im, a->t, t);
        t->src = t->name; /* the attribute's own name need not be unique */
        return st;
    }
    if ((a = find_attr(n, "value_float")) && a->has_f) {
        float *f = ae_arena_alloc(&im->arena, sizeof *f);
        if (!f) return oom(im);
        *f = a->f;
        t->kind = K_FLOAT;
        t->f = f;
        t->n = 1;
        return AE_OK;
    }
    if ((a = find_attr(n, "value_int")) || (a = find_attr(n, "value_ints"))) {
        size_t cnt = a->has_i ? 1 : a->n_ints;
        sym *v = ae_arena_alloc(&im->arena, (cnt ? cnt : 1) * sizeof *v);
        if (!v) return oom(im);
        for (size_t i = 0; i < cnt; i++) v[i].val = a->has_i ? a->i : a->ints[i];
        t->kind = K_INT;
        t->iv = v;
        t->n = cnt;
        t->ndims = a->has_i ? 0 : 1;
        t->dims[0] = (int64_t)cnt;
        return AE_OK;
    }
    return fail(im, AE_ERR_UNSUPPORTED, "a Constant without a float or integer value");
}

static ae_status op_transpose(importer *im) {
    tval *x = input(im, 0);
    const AeOnnx__AttributeProto *perm = find_attr(im->node, "perm");
    if (!x || x->kind != K_FLOAT || x->ndims != 2 ||
        (perm && (perm->n_ints != 2 || perm->ints[0] != 1 || perm->ints[1] != 0)))
        return fail(im, AE_ERR_UNSUPPORTED, "only the transpose of a weight matrix is supported");
    size_t r = (size_t)x->dims[0], c = (size_t)x->dims[1];
    float *f = ae_arena_alloc(&im->arena, (x->n ? x->n : 1) * sizeof *f);
    if (!f) return oom(im);
    for (size_t i = 0; i < r; i++)
        for (size_t j = 0; j < c; j++) f[j * r + i] = x->f[i * c + j];
    tval *t = define(im, im->node->output[0]);
    if (!t) return AE_ERR_FORMAT;
    *t = *x;
    t->name = im->node->output[0];
    t->f = f;
    t->dims[0] = (int64_t)c;
    t->dims[1] = (int64_t)r;
    t->transposed = !x->transposed;
    return AE_OK;
}

/* Identity and Cast of constants, Identity and Dropout on the chain. */
static ae_status op_identity(importer *im, int dropout) {
    const AeOnnx__NodeProto *n = im->node;
    tval *x = input(im, 0);
    if (dropout) {
        for (size_t i = 1; i < n->n_output; i++)
            if (n->output[i][0]) return fail(im, AE_ERR_UNSUPPORTED, "its mask output is not supported");
        tval *tm = input(im, 2);
        if (tm && !(tm->kind == K_INT && tm->n == 1 && tm->iv[0].coef == 0 && tm->iv[0].val == 0))
            return fail(im, AE_ERR_UNSUPPORTED, "a training_mode that is not a constant false");
    }
    if (x && x->kind == K_MAIN) {
        ae_status st = want_main(im, 0);
        if (st) return st;
        return advance(im, n->output[0], cur(im)->shape, cur(im)->rank);
    }
    if (!dropout && x && (x->kind == K_FLOAT || x->kind == K_INT)) {
        if (strcmp(n->op_type, "Cast") == 0) {
            int64_t to = attr_int(n, "to", 0);
            if (x->kind != K_INT || (to != AE_ONNX__TENSOR_PROTO__DATA_TYPE__INT64 &&
                                     to != AE_ONNX__TENSOR_PROTO__DATA_TYPE__INT32))
                return fail(im, AE_ERR_UNSUPPORTED, "only casts between integer types are supported");
        }
        tval *t = define(im, n->output[0]);
        if (!t) return AE_ERR_FORMAT;
        *t = *x;
        t->name = n->output[0];
        return AE_OK;
    }
    return fail(im, AE_ERR_UNSUPPORTED, "its input is not the chain's or a constant");
}

static ae_status op_reshape(importer *im) {
    tval *x = input(im, 0), *sh = input(im, 1);
    const AeOnnx__NodeProto *n = im->node;
    if (!sh || sh->kind != K_INT || sh->n < 1 || sh->n > 4)
        return fail(im, AE_ERR_UNSUPPORTED, "its shape is not a constant libae can read");
    if (attr_int(n, "allowzero", 0) != 0) return fail(im, AE_ERR_UNSUPPORTED, "allowzero is not supported");
    /* the batch top-k subgraph: back from [1, batch·n] to the chain's shape */
    if (x && x->kind == K_FLATB_SEL) {
        if (sh->k != 1 || sh->ref != x->ref || x->ref != im->main)
            return fail(im, AE_ERR_UNSUPPORTED, "a batch selection reshaped to another shape");
        imp_layer *L = new_layer(im, AE_LAYER_BATCH_TOPK);
        if (!L) return oom(im);
        set_attr(&L->spec, "k", (double)x->k);
        return advance(im, n->output[0], cur(im)->shape, cur(im)->rank);
    }
    ae_status st = want_main(im, 0);
    if (st) return st;
    size_t width = ae_shape_size(cur(im)->shape);
    /* [1, -1] (or [1, batch·n]): the whole batch in one row */
    if (sh->n == 2 && sh->iv[0].coef == 0 && sh->iv[0].val == 1 &&
        ((sh->iv[1].coef == 0 && sh->iv[1].val == -1) ||
         (sh->iv[1].coef == (int64_t)width && sh->iv[1].val == 0))) {
        tval *t = define(im, n->output[0]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = K_FLATB;
        t->ref = im->main;
        return AE_OK;
    }
    /* otherwise the batch first: batch, 0 or -1 */
    sym b = sh->iv[0];
    if (!((b.coef == 1 && b.val == 0) || (b.coef == 0 && (b.val == 0 || b.val == -1))))
        return fail(im, AE_ERR_UNSUPPORTED, "a reshape that does not keep the batch first");
    int64_t rest[3];
    size_t nr = sh->n - 1, infer = 3;
    size_t known = 1;
    for (size_t i = 0; i < nr; i++) {
        sym v = sh->iv[1 + i];
        if (v.coef) return fail(im, AE_ERR_UNSUPPORTED, "the batch size in a feature dimension");
        if (v.val == -1 && infer == 3) {
            infer = i;
            rest[i] = 1;
            continue;
        }
        if (v.val == 0 && i + 1 < (size_t)(cur(im)->rank)) {
            /* 0 copies the input's dimension */
            const chain_t *c = cur(im);
            v.val = c->rank == 2 ? (int64_t)width : (int64_t)(i == 0 ? c->shape.c : i == 1 ? c->shape.h : c->shape.w);
        }
        if (v.val < 1 || v.val > (int64_t)AE_MAX_DIM)
            return fail(im, AE_ERR_UNSUPPORTED, "dimension %lld", (long long)v.val);
        rest[i] = v.val;
        if (ae_mul_overflow(known, (size_t)v.val, &known)) return fail(im, AE_ERR_SHAPE, "too large");
    }
    if (b.coef == 0 && b.val == -1 && infer != 3)
        return fail(im, AE_ERR_UNSUPPORTED, "two dimensions to infer");
    if (infer != 3) {
        if (known == 0 || width % known) return fail(im, AE_ERR_SHAPE, "%zu values do not fit the shape", width);
        rest[infer] = (int64_t)(width / known);
        known = width;
    }
    if (known != width)
        return fail(im, AE_ERR_SHAPE, "a reshape of %zu values into %zu", width, known);
    if (nr == 1) {
        if (cur(im)->rank == 4 && !new_layer(im, AE_LAYER_FLATTEN)) return oom(im);
        return advance(im, n->output[0], (ae_shape){width, 1, 1}, 2);
    }
    if (nr != 3) return fail(im, AE_ERR_UNSUPPORTED, "only [batch, n] and [batch, c, h, w] shapes are supported");
    ae_shape s = {(size_t)rest[0], (size_t)rest[1], (size_t)rest[2]};
    const chain_t *c = cur(im);
    if (!(c->rank == 4 && c->shape.c == s.c && c->shape.h == s.h && c->shape.w == s.w)) {
        imp_layer *L = new_layer(im, AE_LAYER_UNFLATTEN);
        if (!L) return oom(im);
        set_attr(&L->spec, "channels", (double)s.c);
        set_attr(&L->spec, "height", (double)s.h);
        set_attr(&L->spec, "width", (double)s.w);
    }
    return advance(im, n->output[0], s, 4);
}

/* ---- subgraphs ---- */

static ae_status op_constant_of_shape(importer *im) {
    tval *s = input(im, 0);
    const AeOnnx__AttributeProto *a = find_attr(im->node, "value");
    int zero = 1;
    if (a && a->t) {
        tval v;
        memset(&v, 0, sizeof v);
        ae_status st = read_tensor(im, a->t, &v);
        if (st) return st;
        zero = v.kind == K_FLOAT && v.n == 1 && v.f[0] == 0.0f;
    }
    if (!s || s->kind != K_INT || !s->k || !zero)
        return fail(im, AE_ERR_UNSUPPORTED, "only zeros shaped as a layer's output are supported");
    tval *t = define(im, im->node->output[0]);
    if (!t) return AE_ERR_FORMAT;
    t->kind = s->k == 2 ? K_FLATB_Z : K_ZEROS;
    t->ref = s->ref;
    return AE_OK;
}

static ae_status op_topk(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    tval *x = input(im, 0), *k = input(im, 1);
    if (n->n_output != 2 || !x || (x->kind != K_MAIN && x->kind != K_FLATB) || !k || k->kind != K_INT ||
        k->n != 1 || attr_int(n, "largest", 1) != 1 || attr_int(n, "sorted", 1) != 1)
        return fail(im, AE_ERR_UNSUPPORTED, "only the largest k of the chain's tensor are supported");
    int64_t axis = attr_int(n, "axis", -1);
    if (axis != 1 && axis != -1) return fail(im, AE_ERR_UNSUPPORTED, "only TopK along the features is supported");
    if (x->ref != im->main || (x->kind == K_MAIN && cur(im)->rank != 2))
        return fail(im, AE_ERR_UNSUPPORTED, "TopK of a tensor that is not the last layer's [batch, n] output");
    int64_t kv;
    if (x->kind == K_FLATB) {
        /* k per sample of the whole batch: k = coef (val 0) */
        if (k->iv[0].val != 0) return fail(im, AE_ERR_UNSUPPORTED, "a batch selection of a fixed count");
        kv = k->iv[0].coef;
    } else {
        if (k->iv[0].coef) return fail(im, AE_ERR_UNSUPPORTED, "a k that depends on the batch");
        kv = k->iv[0].val;
    }
    if (kv < 1 || kv > (int64_t)ae_shape_size(im->chain[x->ref].shape))
        return fail(im, AE_ERR_RANGE, "k %lld out of range", (long long)kv);
    for (int o = 0; o < 2; o++) {
        tval *t = define(im, n->output[o]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = x->kind == K_FLATB ? (o ? K_FLATB_I : K_FLATB_V) : (o ? K_TOPK_I : K_TOPK_V);
        t->ref = x->ref;
        t->k = kv;
    }
    return AE_OK;
}

static ae_status op_scatter(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    tval *z = input(im, 0), *ix = input(im, 1), *v = input(im, 2);
    int64_t axis = attr_int(n, "axis", 0);
    if (!z || !ix || !v || !attr_is(n, "reduction", "none", "none") || (axis != 1 && axis != -1))
        return fail(im, AE_ERR_UNSUPPORTED, "only a top-k scattered into zeros is supported");
    if (z->kind == K_ZEROS && ix->kind == K_TOPK_I && v->kind == K_TOPK_V && z->ref == ix->ref &&
        ix->ref == v->ref && ix->k == v->k && z->ref == im->main) {
        imp_layer *L = new_layer(im, AE_LAYER_TOPK);
        if (!L) return oom(im);
        set_attr(&L->spec, "k", (double)ix->k);
        return advance(im, n->output[0], cur(im)->shape, cur(im)->rank);
    }
    if (z->kind == K_FLATB_Z && ix->kind == K_FLATB_I && v->kind == K_FLATB_V && z->ref == ix->ref &&
        ix->ref == v->ref && ix->k == v->k) {
        tval *t = define(im, n->output[0]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = K_FLATB_SEL;
        t->ref = z->ref;
        t->k = ix->k;
        return AE_OK;
    }
    return fail(im, AE_ERR_UNSUPPORTED, "only a top-k scattered into zeros is supported");
}

/* GELU's erf form, x (1 + erf(x / sqrt 2)) / 2, and Mul of shape numbers. */
static ae_status op_div(importer *im) {
    tval *x = input(im, 0), *c = input(im, 1);
    if (x && x->kind == K_MAIN && x->ref == im->main && is_scalar_near(c, 1.41421356f, 1e-6f)) {
        tval *t = define(im, im->node->output[0]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = K_GELU_DIV;
        t->ref = x->ref;
        return AE_OK;
    }
    return fail(im, AE_ERR_UNSUPPORTED, "a Div that is not part of GELU");
}

static ae_status op_erf(importer *im) {
    tval *x = input(im, 0);
    if (!x || x->kind != K_GELU_DIV) return fail(im, AE_ERR_UNSUPPORTED, "an Erf that is not part of GELU");
    tval *t = define(im, im->node->output[0]);
    if (!t) return AE_ERR_FORMAT;
    t->kind = K_GELU_ERF;
    t->ref = x->ref;
    return AE_OK;
}

static ae_status op_mul(importer *im) {
    tval *a = input(im, 0), *b = input(im, 1);
    if (a && b && a->kind == K_INT && b->kind == K_INT) return op_int_mul(im);
    if (b && b->kind == K_MAIN) {
        tval *s = a;
        a = b;
        b = s;
    }
    if (a && b && a->kind == K_MAIN && b->kind == K_GELU_ADD && b->ref == a->ref && a->ref == im->main) {
        tval *t = define(im, im->node->output[0]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = K_GELU_MUL;
        t->ref = a->ref;
        return AE_OK;
    }
    a = input(im, 0);
    b = input(im, 1);
    if (b && b->kind == K_GELU_MUL) {
        tval *s = a;
        a = b;
        b = s;
    }
    if (a && a->kind == K_GELU_MUL && is_scalar_value(b, 0.5f) && a->ref == im->main) {
        /* the GELU ends here: an activation of the chain's last tensor */
        imp_layer *L = fusable(im, (ae_layer_kind)-1);
        if (L && (ae_layer_desc_for(L->spec.kind)->flags & AE_LK_ACT) && !L->act_set) {
            L->spec.act = AE_ACT_GELU;
            L->act_set = 1;
        } else {
            if (!(L = new_layer(im, AE_LAYER_ACTIVATION))) return oom(im);
            L->spec.act = AE_ACT_GELU;
            L->act_set = 1;
        }
        return advance(im, im->node->output[0], cur(im)->shape, cur(im)->rank);
    }
    return fail(im, AE_ERR_UNSUPPORTED, "a Mul that is not part of GELU or of shape arithmetic");
}

/* Greater(x, θ) and Where(x > θ, x, 0): batch top-k at inference. */
static ae_status op_greater(importer *im) {
    tval *x = input(im, 0), *c = input(im, 1);
    if (x && x->kind == K_MAIN && x->ref == im->main && c && c->kind == K_FLOAT && c->n == 1 &&
        isfinite(c->f[0])) {
        tval *t = define(im, im->node->output[0]);
        if (!t) return AE_ERR_FORMAT;
        t->kind = K_GREATER;
        t->ref = x->ref;
        t->fval = c->f[0];
        return AE_OK;
    }
    return fail(im, AE_ERR_UNSUPPORTED, "a Greater that is not a batch top-k threshold");
}

static ae_status op_where(importer *im) {
    tval *m = input(im, 0), *x = input(im, 1), *z = input(im, 2);
    if (!m || m->kind != K_GREATER || !x || x->kind != K_MAIN || x->ref != m->ref ||
        !is_scalar_value(z, 0.0f) || x->ref != im->main)
        return fail(im, AE_ERR_UNSUPPORTED, "a Where that is not a batch top-k threshold");
    imp_layer *L = new_layer(im, AE_LAYER_BATCH_TOPK);
    if (!L) return oom(im);
    /* k only matters in training; onnx_export.c notes it in the node's doc_string */
    long long k = 1;
    const char *doc = im->node->doc_string;
    if (!doc || sscanf(doc, "libae batch_topk k=%lld", &k) != 1 || k < 1 ||
        k > (long long)ae_shape_size(cur(im)->shape))
        k = 1;
    set_attr(&L->spec, "k", (double)k);
    L->has_state = 1;
    L->theta = m->fval;
    return advance(im, im->node->output[0], cur(im)->shape, cur(im)->rank);
}

/* Split of [mu | logvar] in halves (onnx_export.c's VAE). */
static ae_status op_split(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    ae_status st = want_main(im, 0);
    if (st) return st;
    imp_layer *L = fusable(im, AE_LAYER_DENSE);
    size_t w = ae_shape_size(cur(im)->shape);
    int64_t axis = attr_int(n, "axis", 0);
    tval *sp = input(im, 1);
    int halves = w % 2 == 0;
    if (sp && sp->kind == K_INT)
        halves &= sp->n == 2 && sp->iv[0].coef == 0 && sp->iv[1].coef == 0 &&
                  sp->iv[0].val == (int64_t)(w / 2) && sp->iv[1].val == (int64_t)(w / 2);
    if (!L || L->act_set || !L->b || n->n_output != 2 || (axis != 1 && axis != -1) || !halves)
        return fail(im, AE_ERR_UNSUPPORTED,
                    "only a Split of a dense layer's output in two halves (a VAE) is supported");
    make_gaussian(L, w / 2);
    tval *lv = define(im, n->output[1]);
    if (!lv) return AE_ERR_FORMAT;
    lv->kind = K_UNUSED;
    return advance(im, n->output[0], (ae_shape){w / 2, 1, 1}, 2);
}

/* ---- the walk ---- */

static ae_status node_step(importer *im) {
    const AeOnnx__NodeProto *n = im->node;
    const char *op = n->op_type ? n->op_type : "";
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
        return fail(im, AE_ERR_UNSUPPORTED, "domain '%s' is not supported", n->domain);
    if (n->n_output < 1 || !n->output[0][0]) return fail(im, AE_ERR_FORMAT, "no output");
    for (size_t i = 0; i < n->n_input; i++) {
        if (!n->input[i][0]) continue; /* an omitted optional input */
        tval *t = lookup(im, n->input[i]);
        if (!t) return fail(im, AE_ERR_FORMAT, "input '%s' is not defined before", n->input[i]);
        if (t->kind == K_UNUSED)
            return fail(im, AE_ERR_UNSUPPORTED, "reads '%s', a VAE's log-variance", t->name);
        if (t->kind == K_STALE)
            return fail(im, AE_ERR_UNSUPPORTED, "reads '%s', a dense layer's output before its bias",
                        t->name);
        if (t->kind == K_HEAD2) {
            /* the second head is read on: it is the mean, the first the log-variance */
            imp_layer *L = &im->layers[t->ref];
            if (im->chain[im->main].consumed || t->ref + 1 != im->nlayers)
                return fail(im, AE_ERR_UNSUPPORTED, "both heads of '%s' are read", t->name);
            const float *w = L->w, *b = L->b;
            L->w = L->w2;
            L->b = L->b2;
            L->w2 = w;
            L->b2 = b;
            /* the mean's tensor becomes the chain's last */
            tval *first = lookup(im, im->chain[im->main].name);
            if (first) first->kind = K_UNUSED;
            im->chain[im->main].name = t->name;
            t->kind = K_MAIN;
            t->ref = im->main;
        }
    }
    static const struct {
        const char *op;
        ae_activation act;
    } acts[] = {{"Relu", AE_ACT_RELU}, {"Sigmoid", AE_ACT_SIGMOID}, {"Tanh", AE_ACT_TANH},
                {"Softplus", AE_ACT_SOFTPLUS}};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (strcmp(op, acts[i].op) == 0) return op_activation(im, acts[i].act, 0.01f);
    if (strcmp(op, "LeakyRelu") == 0) return op_activation(im, AE_ACT_LEAKY_RELU, attr_float(n, "alpha", 0.01f));
    if (strcmp(op, "Elu") == 0) {
        if (attr_float(n, "alpha", 1.0f) != 1.0f) return fail(im, AE_ERR_UNSUPPORTED, "only alpha 1 is supported");
        return op_activation(im, AE_ACT_ELU, 0.01f);
    }
    if (strcmp(op, "Gelu") == 0) {
        if (!attr_is(n, "approximate", "none", "none"))
            return fail(im, AE_ERR_UNSUPPORTED, "only the exact (erf) GELU is supported");
        return op_activation(im, AE_ACT_GELU, 0.01f);
    }
    if (strcmp(op, "Gemm") == 0) return op_gemm(im);
    if (strcmp(op, "MatMul") == 0) return op_matmul(im);
    if (strcmp(op, "Add") == 0) return op_add(im);
    if (strcmp(op, "Conv") == 0) return op_conv(im, 0);
    if (strcmp(op, "ConvTranspose") == 0) return op_conv(im, 1);
    if (strcmp(op, "MaxPool") == 0) return op_maxpool(im);
    if (strcmp(op, "AveragePool") == 0) return op_avgpool(im, 0);
    if (strcmp(op, "GlobalAveragePool") == 0) return op_avgpool(im, 1);
    if (strcmp(op, "Pad") == 0) return op_pad(im);
    if (strcmp(op, "Resize") == 0) return op_resize(im, 0);
    if (strcmp(op, "Upsample") == 0) return op_resize(im, 1);
    if (strcmp(op, "BatchNormalization") == 0) return op_batchnorm(im);
    if (strcmp(op, "Flatten") == 0) return op_flatten(im);
    if (strcmp(op, "Reshape") == 0) return op_reshape(im);
    if (strcmp(op, "Identity") == 0 || strcmp(op, "Cast") == 0) return op_identity(im, 0);
    if (strcmp(op, "Dropout") == 0) return op_identity(im, 1);
    if (strcmp(op, "Constant") == 0) return op_constant(im);
    if (strcmp(op, "Shape") == 0) return op_shape(im);
    if (strcmp(op, "Gather") == 0) return op_gather(im);
    if (strcmp(op, "Unsqueeze") == 0) return op_unsqueeze(im, 0);
    if (strcmp(op, "Squeeze") == 0) return op_unsqueeze(im, 1);
    if (strcmp(op, "Concat") == 0) return op_concat(im);
    if (strcmp(op, "Transpose") == 0) return op_transpose(im);
    if (strcmp(op, "ConstantOfShape") == 0) return op_constant_of_shape(im);
    if (strcmp(op, "TopK") == 0) return op_topk(im);
    if (strcmp(op, "ScatterElements") == 0) return op_scatter(im);
    if (strcmp(op, "Div") == 0) return op_div(im);
    if (strcmp(op, "Erf") == 0) return op_erf(im);
    if (strcmp(op, "Mul") == 0) return op_mul(im);
    if (strcmp(op, "Greater") == 0) return op_greater(im);
    if (strcmp(op, "Where") == 0) return op_where(im);
    if (strcmp(op, "Split") == 0) return op_split(im);
    return fail(im, AE_ERR_UNSUPPORTED, "op type '%s' has no libae layer", op);
}

/* The graph input: its name and shape. */
static ae_status graph_input(importer *im, const char **name, ae_shape *s, int *rank) {
    const AeOnnx__GraphProto *g = im->g;
    const AeOnnx__ValueInfoProto *in = NULL;
    for (size_t i = 0; i < g->n_input; i++) {
        const char *nm = g->input[i]->name;
        if (!nm || lookup(im, nm)) continue; /* an initializer listed as input (IR < 4) */
        if (in) return fail(im, AE_ERR_UNSUPPORTED, "the graph has more than one input ('%s', '%s')", in->name, nm);
        in = g->input[i];
    }
    if (!in) return fail(im, AE_ERR_FORMAT, "the graph has no input");
    const AeOnnx__TypeProto *t = in->type;
    if (!t || t->value_case != AE_ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !t->tensor_type ||
        t->tensor_type->elem_type != AE_ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT || !t->tensor_type->shape)
        return fail(im, AE_ERR_UNSUPPORTED, "the input '%s' is not a float32 tensor of known shape", in->name);
    const AeOnnx__TensorShapeProto *sh = t->tensor_type->shape;
    if (sh->n_dim != 2 && sh->n_dim != 4)
        return fail(im, AE_ERR_UNSUPPORTED, "the input '%s' has rank %zu ([batch, n] or [batch, c, h, w])",
                    in->name, sh->n_dim);
    size_t d[4] = {1, 1, 1, 1};
    for (size_t i = 1; i < sh->n_dim; i++) {
        const AeOnnx__TensorShapeProto__Dimension *dm = sh->dim[i];
        if (dm->value_case != AE_ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE || dm->dim_value < 1 ||
            dm->dim_value > (int64_t)AE_MAX_DIM)
            return fail(im, AE_ERR_UNSUPPORTED, "the input '%s' has no fixed size in dimension %zu", in->name, i);
        d[i] = (size_t)dm->dim_value;
    }
    *name = in->name;
    *rank = (int)sh->n_dim;
    *s = sh->n_dim == 2 ? (ae_shape){d[1], 1, 1} : (ae_shape){d[1], d[2], d[3]};
    if (s->c > AE_MAX_DIM / s->h / s->w)
        return fail(im, AE_ERR_UNSUPPORTED, "the input '%s' is too large", in->name);
    return AE_OK;
}

static ae_status walk(importer *im) {
    const AeOnnx__GraphProto *g = im->g;
    im->nvals = im->nchain = im->nlayers = 0;
    memset(im->hash, 0, im->hcap * sizeof *im->hash);
    im->node = NULL;
    for (size_t i = 0; i < g->n_initializer; i++) {
        const AeOnnx__TensorProto *tp = g->initializer[i];
        if (!tp->name || !tp->name[0]) return fail(im, AE_ERR_FORMAT, "an initializer without a name");
        tval *t = define(im, tp->name);
        if (!t) return AE_ERR_FORMAT;
        ae_status st = read_tensor(im, tp, t);
        if (st) return st;
    }
    const char *in_name = NULL;
    ae_shape s = {0, 0, 0};
    int rank = 0;
    ae_status st = graph_input(im, &in_name, &s, &rank);
    if (st) return st;
    tval *t = define(im, in_name);
    if (!t) return AE_ERR_FORMAT;
    if (push_chain(im, in_name, s, rank)) return oom(im);
    t->kind = K_MAIN;
    t->ref = 0;
    im->main = 0;
    for (size_t i = 0; i < g->n_node; i++) {
        im->node = g->node[i];
        if ((st = node_step(im)) != AE_OK) return st;
    }
    im->node = NULL;
    if (g->n_output < 1 || !g->output[0]->name) return fail(im, AE_ERR_FORMAT, "the graph has no output");
    if (strcmp(g->output[0]->name, cur(im)->name) != 0)
        return fail(im, AE_ERR_UNSUPPORTED,
                    "the graph's first output '%s' is not the end of the chain of layers ('%s')",
                    g->output[0]->name, cur(im)->name);
    if (!im->nlayers) return fail(im, AE_ERR_UNSUPPORTED, "the graph has no layer");
    return AE_OK;
}

/* The code's chain entry: named, the graph's second output, or the last
 * of the first run of narrowest tensors. */
static ae_status find_code(importer *im, const char *want, size_t *at) {
    const char *name = want;
    if (!name && im->g->n_output >= 2 && im->g->output[1]->name) {
        for (size_t i = 1; i < im->nchain; i++)
            if (strcmp(im->chain[i].name, im->g->output[1]->name) == 0) name = im->chain[i].name;
    }
    if (name) {
        for (size_t i = 0; i < im->nchain; i++)
            if (strcmp(im->chain[i].name, name) == 0) {
                *at = i;
                return AE_OK;
            }
        return fail(im, AE_ERR_INVALID_ARG, "no tensor '%s' between the layers of the graph", name);
    }
    size_t best = 0, bw = SIZE_MAX;
    for (size_t i = 1; i + 1 < im->nchain; i++) {
        size_t w = ae_shape_size(im->chain[i].shape);
        if (w < bw) {
            bw = w;
            best = i;
            while (best + 2 < im->nchain && ae_shape_size(im->chain[best + 1].shape) == w) best++;
        }
    }
    if (!best) return fail(im, AE_ERR_UNSUPPORTED, "no tensor between the layers could be the code");
    *at = best;
    return AE_OK;
}

/* ---- building the model ---- */

static ae_status set_floats(importer *im, ae_model *m, size_t li, int what, const float *src, size_t n,
                            int transpose, size_t rows, size_t cols) {
    float *tmp = NULL;
    if (transpose) {
        /* src [cols = in... as rows x cols]: dst [cols, rows] */
        tmp = ae_arena_alloc(&im->arena, (n ? n : 1) * sizeof *tmp);
        if (!tmp) return oom(im);
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) tmp[j * rows + i] = src[i * cols + j];
        src = tmp;
    }
    ae_status st = what == 0 ? ae_model_set_weights(m, li, src, n)
                   : what == 1 ? ae_model_set_bias(m, li, src, n)
                               : ae_model_set_state(m, li, src, n);
    if (st)
        return ae_error(&im->err, st == AE_ERR_NUMERIC ? AE_ERR_FORMAT : st, "layer %zu (from node '%s'): %s",
                        li, im->layers[li].node, ae_model_last_error(m));
    return AE_OK;
}

/* A weight as [out, in] into dst, from src [out, in], or [in, out] (transpose). */
static void as_out_in(const float *src, int transpose, size_t out, size_t in, float *dst) {
    if (!transpose) {
        memcpy(dst, src, out * in * sizeof *dst);
        return;
    }
    for (size_t i = 0; i < in; i++)
        for (size_t o = 0; o < out; o++) dst[o * in + i] = src[i * out + o];
}

static ae_status build_model(importer *im, size_t code_at, const ae_onnx_import_options *o,
                             const ae_allocator *alloc, ae_model **out) {
    ae_config *cfg = NULL;
    if (ae_config_create(&cfg, alloc) != AE_OK) return oom(im);
    if (o && o->settings) {
        cfg->s = o->settings->s;
        cfg->backend = o->settings->backend;
    }
    ae_status st;
    const chain_t *in = &im->chain[0];
    if (in->rank == 2)
        st = ae_config_set_input_size(cfg, ae_shape_size(in->shape));
    else
        st = ae_config_set_input_shape(cfg, in->shape.c, in->shape.h, in->shape.w);
    size_t ncode = im->chain[code_at].nlayers;
    if (!st && (ncode == 0 || ncode >= im->nlayers))
        st = ae_error(&im->err, AE_ERR_UNSUPPORTED,
                      "the code '%s' leaves no encoder or no decoder layer", im->chain[code_at].name);
    for (size_t i = 0; !st && i < im->nlayers; i++) {
        if (i == ncode && im->layers[i - 1].spec.kind != AE_LAYER_GAUSSIAN) st = ae_config_mark_code(cfg);
        if (st) break;
        ae_layer_spec spec = im->layers[i].spec;
        st = ae_config_add_spec(cfg, &spec);
        if (st)
            st = ae_error(&im->err, st, "layer %zu (from node '%s'): %s", i, im->layers[i].node,
                          ae_config_last_error(cfg));
    }
    ae_model *m = NULL;
    if (!st && (st = ae_model_create(&m, cfg)) != AE_OK)
        st = ae_error(&im->err, st, "%s", ae_config_last_error(cfg));
    ae_config_destroy(cfg);
    /* Tying: a decoder layer reading an encoder layer's initializer transposed. */
    for (size_t i = 0; !st && i < im->nlayers; i++) {
        imp_layer *L = &im->layers[i];
        if (L->spec.kind != AE_LAYER_DENSE || !L->w_src) continue;
        for (size_t j = 0; j < i; j++) {
            imp_layer *P = &im->layers[j];
            if (P->spec.kind != AE_LAYER_DENSE || !P->w_src || strcmp(P->w_src, L->w_src) != 0 ||
                P->w_src_transposed == L->w_src_transposed)
                continue;
            if (j >= ncode || i != im->nlayers - 1 - j || ae_model_tie_layers(m, j, j) != AE_OK)
                st = ae_error(&im->err, AE_ERR_UNSUPPORTED,
                              "layers %zu and %zu (nodes '%s', '%s') share a weight, but libae ties "
                              "only an encoder layer and its mirror decoder layer",
                              j, i, P->node, L->node);
            else
                L->tie_to = (int)j;
            break;
        }
    }
    for (size_t i = 0; !st && i < im->nlayers; i++) {
        imp_layer *L = &im->layers[i];
        ae_layer_info info = {.struct_size = sizeof info};
        ae_model_layer_info(m, i, &info);
        if (L->w && L->tie_to < 0) {
            if (L->spec.kind == AE_LAYER_GAUSSIAN) {
                /* [mu | logvar] heads: one weight [2 dim, in] (a Split), or two */
                size_t d = info.out_size, in = info.in_size, half = d * in;
                float *w = ae_arena_alloc(&im->arena, (half ? 2 * half : 1) * sizeof *w);
                float *b = ae_arena_alloc(&im->arena, 2 * d * sizeof *b);
                if (!w || !b) {
                    st = oom(im);
                    break;
                }
                if (L->w2) {
                    as_out_in(L->w, L->w_transpose, d, in, w);
                    as_out_in(L->w2, L->w_transpose, d, in, w + half);
                    memcpy(b, L->b, d * sizeof *b);
                    memcpy(b + d, L->b2, d * sizeof *b);
                } else {
                    as_out_in(L->w, L->w_transpose, 2 * d, in, w);
                    memcpy(b, L->b, 2 * d * sizeof *b);
                }
                st = set_floats(im, m, i, 0, w, 2 * half, 0, 0, 0);
                if (!st) st = set_floats(im, m, i, 1, b, 2 * d, 0, 0, 0);
                continue;
            }
            st = set_floats(im, m, i, 0, L->w, info.weight_count, L->w_transpose, info.in_size,
                            info.out_size);
        }
        if (!st && L->b) st = set_floats(im, m, i, 1, L->b, info.bias_count, 0, 0, 0);
        if (!st && L->has_state) {
            float *s = ae_arena_alloc(&im->arena, (info.state_count ? info.state_count : 1) * sizeof *s);
            if (!s) {
                st = oom(im);
                break;
            }
            if (L->spec.kind == AE_LAYER_BATCHNORM) {
                size_t C = info.state_count / 2;
                memcpy(s, L->mean, C * sizeof *s);
                memcpy(s + C, L->var, C * sizeof *s);
            } else {
                s[0] = L->theta;
                s[1] = 1.0f;
            }
            st = set_floats(im, m, i, 2, s, info.state_count, 0, 0, 0);
        }
    }
    if (st) {
        ae_model_destroy(m);
        return st;
    }
    *out = m;
    return AE_OK;
}

/* ---- the value convention of the input ---- */

static const char *find_prop(const AeOnnx__ModelProto *mp, const char *key) {
    for (size_t i = 0; i < mp->n_metadata_props; i++) {
        const AeOnnx__StringStringEntryProto *e = mp->metadata_props[i];
        if (e->key && e->value && strcmp(e->key, key) == 0) return e->value;
    }
    return NULL;
}

/* Comma-separated finite numbers, at most cap of them, into v (their
 * count in *got); -1 when malformed or more. */
static int parse_numbers(const char *s, double *v, size_t cap, size_t *got) {
    size_t k = 0;
    for (const char *p = s;; p++) {
        char *end;
        errno = 0;
        double d = strtod(p, &end);
        if (end == p || errno || !isfinite(d) || k == cap || (*end != ',' && *end != '\0')) return -1;
        v[k++] = d;
        p = end;
        if (!*p) break;
    }
    *got = k;
    return 0;
}

/* The convention an export wrote (AE_ONNX_DATA_* in metadata_props), or
 * for a graph from elsewhere the one PyTorch models have: the input is
 * taken as given (float data, scale 1, offset 0, no standardisation, its
 * range unknown), so an 8-bit file is read as v/255 and a float file as
 * it is (docs/data.md). */
static ae_status import_convention(importer *im, const AeOnnx__ModelProto *mp, ae_model *m) {
    ae_data_convention c;
    ae_data_convention_init(&c);
    c.elem = AE_ELEM_FLOAT;
    const char *elem = find_prop(mp, AE_ONNX_DATA_ELEM);
    float *mean = NULL, *std = NULL;
    if (elem) {
        static const char *const elems[] = {"unknown", "float", "uint8"};
        const char *key = AE_ONNX_DATA_ELEM, *v = elem;
        int bad = 1;
        for (int i = 0; i < 3; i++)
            if (strcmp(elem, elems[i]) == 0) c.elem = (ae_elem_type)i, bad = 0;
        double num[2];
        size_t got = 0;
        if (!bad && (v = find_prop(mp, key = AE_ONNX_DATA_SCALE)) != NULL)
            bad = parse_numbers(v, &c.scale, 1, &got);
        if (!bad && (v = find_prop(mp, key = AE_ONNX_DATA_OFFSET)) != NULL)
            bad = parse_numbers(v, &c.offset, 1, &got);
        if (!bad && (v = find_prop(mp, key = AE_ONNX_DATA_RANGE)) != NULL) {
            bad = parse_numbers(v, num, 2, &got) || got != 2;
            c.lo = num[0], c.hi = num[1];
        }
        const char *ms = find_prop(mp, AE_ONNX_DATA_MEAN), *ss = find_prop(mp, AE_ONNX_DATA_STD);
        if (!bad && (ms || ss)) {
            /* Both lists, of one length that a standardisation can have. */
            key = ms ? AE_ONNX_DATA_STD : AE_ONNX_DATA_MEAN, v = ms ? ss : ms;
            bad = !ms || !ss;
            size_t n = 1;
            for (const char *p = ms; !bad && *p; p++) n += *p == ',';
            if (!bad) key = AE_ONNX_DATA_MEAN, v = ms, bad = n > m->in_size;
            double *d = bad ? NULL : ae_arena_alloc(&im->arena, 2 * n * sizeof *d);
            mean = bad ? NULL : ae_arena_alloc(&im->arena, 2 * n * sizeof *mean);
            if (!bad && (!d || !mean)) return oom(im);
            bad = bad || parse_numbers(ms, d, n, &got) || got != n;
            if (!bad) key = AE_ONNX_DATA_STD, v = ss;
            bad = bad || parse_numbers(ss, d + n, n, &got) || got != n;
            for (size_t i = 0; !bad && i < 2 * n; i++) {
                mean[i] = (float)d[i];
                bad = !isfinite(mean[i]);
            }
            std = mean ? mean + n : NULL;
            c.std_count = n;
        }
        if (bad && !v)
            return ae_error(&im->err, AE_ERR_FORMAT, "metadata '%s' is missing: the value convention "
                            "of %s needs it", key, AE_ONNX_DATA_ELEM);
        if (bad)
            return ae_error(&im->err, AE_ERR_FORMAT, "metadata '%s': '%.64s' is not what the value "
                            "convention of %s needs", key, v, AE_ONNX_DATA_ELEM);
    }
    ae_status st = ae_model_set_data_convention(m, &c, mean, std);
    if (st == AE_ERR_OUT_OF_MEMORY) return oom(im);
    if (st) return ae_error(&im->err, AE_ERR_FORMAT, "metadata ae.data.*: %s", ae_model_last_error(m));
    return AE_OK;
}

static ae_status import_mem(ae_model **out, const uint8_t *p, size_t size,
                            const ae_onnx_import_options *o, const ae_allocator *alloc, ae_errbuf *err) {
    importer im;
    memset(&im, 0, sizeof im);
    ae_status st = AE_OK;
    /* protobuf-c's structs for a file take a bounded multiple of its size */
    size_t limit = size > (SIZE_MAX - ((size_t)64 << 20)) / 64 ? SIZE_MAX : 64 * size + ((size_t)64 << 20);
    ae_arena_init(&im.arena, alloc, limit);
    if (check_wire(&ae_onnx__model_proto__descriptor, p, size, 0)) {
        ae_error(err, AE_ERR_FORMAT, "not an ONNX model: the protobuf data are malformed or nested too deep");
        ae_arena_free(&im.arena);
        return AE_ERR_FORMAT;
    }
    ProtobufCAllocator pa = ae_arena_protobuf(&im.arena);
    AeOnnx__ModelProto *mp = ae_onnx__model_proto__unpack(&pa, size, p);
    if (!mp) {
        st = im.arena.failed ? ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory reading the ONNX model")
                             : ae_error(err, AE_ERR_FORMAT, "not an ONNX model: the protobuf data are malformed");
        ae_arena_free(&im.arena);
        return st;
    }
    if (!mp->graph) {
        ae_error(err, AE_ERR_FORMAT, "not an ONNX model: no graph");
        ae_arena_free(&im.arena);
        return AE_ERR_FORMAT;
    }
    im.g = mp->graph;
    /* room for every tensor name the graph can define */
    size_t nv = im.g->n_initializer + im.g->n_input + 1, hc = 16;
    for (size_t i = 0; i < im.g->n_node; i++) nv += im.g->node[i]->n_output;
    while (hc < 2 * nv && hc < SIZE_MAX / 4) hc *= 2;
    im.capvals = nv;
    im.vals = ae_arena_alloc(&im.arena, nv * sizeof *im.vals);
    im.hash = ae_arena_alloc(&im.arena, hc * sizeof *im.hash);
    im.hcap = hc;
    if (!im.vals || !im.hash) st = oom(&im);
    size_t code_at = 0;
    if (!st) st = walk(&im);
    if (!st) st = find_code(&im, o ? o->code : NULL, &code_at);
    if (!st) {
        /* again, not fusing an activation across the code */
        im.code_name = im.chain[code_at].name;
        st = walk(&im);
        if (!st) st = find_code(&im, im.code_name, &code_at);
    }
    if (!st) st = build_model(&im, code_at, o, alloc, out);
    /* The metadata, but for the value convention an export wrote: that
       becomes the model's own. */
    int conv = find_prop(mp, AE_ONNX_DATA_ELEM) != NULL;
    for (size_t i = 0; !st && i < mp->n_metadata_props; i++) {
        const AeOnnx__StringStringEntryProto *e = mp->metadata_props[i];
        if (!e->key || !e->value || (conv && ae_onnx_convention_key(e->key))) continue;
        st = ae_model_set_meta(*out, e->key, e->value);
        if (st) st = ae_error(&im.err, AE_ERR_FORMAT, "metadata '%.64s': %s", e->key, ae_model_last_error(*out));
    }
    if (!st) st = import_convention(&im, mp, *out);
    if (st && *out) {
        ae_model_destroy(*out);
        *out = NULL;
    }
    if (st) ae_error(err, st, "%s", im.err.msg);
    ae_arena_free(&im.arena);
    return st;
}

/* Names in a file may hold any byte: the message stays one printable line. */
static void one_line(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

void ae_onnx_import_options_init(ae_onnx_import_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
}

static ae_status begin(ae_model **out, const ae_onnx_import_options *opts, char *err, size_t err_size,
                       ae_allocator *a, ae_errbuf *e) {
    memset(e, 0, sizeof *e);
    if (err && err_size) err[0] = '\0';
    ae_status st = AE_OK;
    if (!out)
        st = ae_error(e, AE_ERR_INVALID_ARG, "out is NULL");
    else if (opts && opts->struct_size != sizeof *opts)
        st = ae_error(e, AE_ERR_INVALID_ARG,
                      "opts->struct_size is %zu, expected %zu (use ae_onnx_import_options_init)",
                      opts->struct_size, sizeof *opts);
    else if (ae_allocator_init(a, opts ? opts->alloc : NULL) != AE_OK)
        st = ae_error(e, AE_ERR_INVALID_ARG, "malformed allocator");
    if (out) *out = NULL;
    if (st && err && err_size) snprintf(err, err_size, "%s", e->msg);
    return st;
}

ae_status ae_model_import_onnx_buffer(ae_model **out, const void *buf, size_t size,
                                      const ae_onnx_import_options *opts, char *err, size_t err_size) {
    ae_allocator a;
    ae_errbuf e;
    ae_status st = begin(out, opts, err, err_size, &a, &e);
    if (st) return st;
    if (!buf && size) st = ae_error(&e, AE_ERR_INVALID_ARG, "buf is NULL");
    if (!st) st = import_mem(out, buf ? buf : (const void *)"", size, opts, &a, &e);
    one_line(e.msg);
    if (st && err && err_size) snprintf(err, err_size, "%s", e.msg);
    return st;
}

ae_status ae_model_import_onnx(ae_model **out, const char *path, const ae_onnx_import_options *opts,
                               char *err, size_t err_size) {
    ae_allocator a;
    ae_errbuf e;
    ae_status st = begin(out, opts, err, err_size, &a, &e);
    if (st) return st;
    if (!path) {
        st = ae_error(&e, AE_ERR_INVALID_ARG, "path is NULL");
        if (err && err_size) snprintf(err, err_size, "%s", e.msg);
        return st;
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    st = ae_read_whole_file(&a, &e, path, &buf, &len);
    if (!st) st = import_mem(out, buf, len, opts, &a, &e);
    ae_free(&a, buf);
    one_line(e.msg);
    if (st && err && err_size) snprintf(err, err_size, "%s: %s", path, e.msg);
    return st;
}
