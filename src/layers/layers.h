/* Internal layer interface. Each layer kind implements ae_layer_ops in its
 * own file and is listed in the registry (layers.c). Parameters and their
 * gradients live in the model's arenas; a layer holds offsets into them. */
#ifndef AE_LAYERS_H
#define AE_LAYERS_H

#include "core/core.h"

/* ---- activations ---- */
/* y = act(pre). pre and y may alias. */
void ae_act_forward(ae_activation act, float slope, const float *pre, float *y, size_t n);
/* d *= act'(pre) given pre and y = act(pre) (pre may be NULL unless
 * ae_act_needs_pre(act)). */
void ae_act_backward(ae_activation act, float slope, const float *pre, const float *y, float *d,
                     size_t n);
/* The same on up to `threads` threads (core/pool.h): the same bits. */
void ae_act_forward_mt(int threads, ae_activation act, float slope, const float *pre, float *y,
                       size_t n);
void ae_act_backward_mt(int threads, ae_activation act, float slope, const float *pre,
                        const float *y, float *d, size_t n);
/* 1 when the derivative cannot be computed from the output alone. */
int ae_act_needs_pre(ae_activation act);
/* Scalar forms, for tests and the loss. */
float ae_act_value(ae_activation act, float slope, float x);
/* ae_activation_name, "unknown" instead of NULL (for messages). */
const char *ae_act_name(ae_activation act);
int ae_act_valid(int act);

typedef struct ae_layer ae_layer;

/* A sample's shape: channels x height x width (a vector of n features is n x 1 x 1). */
typedef struct ae_shape {
    size_t c, h, w;
} ae_shape;

static inline size_t ae_shape_size(ae_shape s) { return s.c * s.h * s.w; }

/* The largest kernel, stride, padding and scale of the image layers. */
#define AE_MAX_KERNEL 64

/* A size argument as an integer attribute (larger values fail the bounds). */
static inline int64_t ae_size_attr(size_t v) { return v > INT64_MAX ? INT64_MAX : (int64_t)v; }

/* Sparsity penalties attached to a layer's output (src/losses/sparsity.c). */
typedef struct ae_penalty_spec {
    int kl_on, kl_sum;        /* KL penalty; kl_sum: sum over units instead of mean */
    double kl_rho, kl_lambda;
    int l1_on;
    double l1_lambda;
} ae_penalty_spec;

/* What the config builder records for one layer; each kind reads its own
 * fields, where its descriptor (ae_layer_desc) says they are. */
typedef struct ae_layer_spec {
    ae_layer_kind kind;
    size_t units;      /* dense: outputs */
    ae_activation act; /* applied to the layer's output */
    float slope;       /* LeakyReLU slope */
    int bias;
    int64_t iparam[8]; /* kind-specific integers (kernel, stride, k, ...) */
    double fparam[4];  /* kind-specific reals */
    ae_penalty_spec penalty; /* sparsity penalties on the layer's output */
} ae_layer_spec;

/* ---- layer kind descriptors ----
 * What is known about a layer kind, in one place (its own file): its text
 * name, its attributes and where the spec keeps them, and what it has. The
 * builder checks a spec against it (src/model/config.c), the model file
 * reads and writes a layer record from it (src/io/io.c), and names are
 * printed and parsed through it (ae_layer_kind_name). */

/* An attribute of a layer kind. Integer and enum attributes live in
 * spec->iparam[slot] (or spec->units when slot is AE_ATTR_UNITS), real ones
 * in spec->fparam[slot]. In the model file's layer record the integer
 * attributes fill iv[] and the real ones fv[], each in the order listed. */
#define AE_ATTR_UNITS (-1)
typedef enum ae_attr_type { AE_ATTR_INT, AE_ATTR_ENUM, AE_ATTR_FLOAT } ae_attr_type;
typedef struct ae_layer_attr {
    const char *name; /* "kernel", as PyTorch's argument */
    ae_attr_type type;
    int slot;
    double lo, hi;  /* bounds, inclusive; an enum's are its first and last value */
    int lo_open;    /* lo itself excluded (reals) */
    int has_default;
    double def;     /* the value when omitted (has_default) */
    const char *const *values; /* an enum's value names, lo..hi; NULL otherwise */
    ae_layer_param setting;    /* the per-layer setting that changes it, or 0 */
} ae_layer_attr;

/* What a layer kind has. */
#define AE_LK_BIAS 1u    /* a bias, which AE_LAYER_BIAS can turn off */
#define AE_LK_ACT 2u     /* an activation on its output (and AE_LAYER_LEAKY_SLOPE) */
#define AE_LK_WEIGHTS 4u /* trainable parameters */
#define AE_LK_STATE 8u   /* non-trainable state (running statistics, thresholds) */
#define AE_LK_SELECT 16u /* a selection layer: no parameters, keeps the shape */
#define AE_LK_CODE 32u   /* it is the code: adding it ends the encoder */

typedef struct ae_layer_desc {
    ae_layer_kind kind;
    const char *name; /* PyTorch-like: "conv_transpose2d" */
    unsigned flags;   /* AE_LK_* */
    const ae_layer_attr *attrs;
    size_t nattrs;
    /* Optional: checks between attributes once each is within its bounds,
     * and puts the spec in canonical form (e.g. a stride 0 meaning "the
     * kernel"). Messages go to err. */
    ae_status (*check)(ae_layer_spec *spec, ae_errbuf *err);
} ae_layer_desc;

/* What the model tells a layer on the sparse paths (src/model/sparse.c),
 * and what the layer tells back. */
typedef struct ae_sparse_io {
    /* Hints (see ae_layer.in_sparse_k): the input's only nonzero columns,
     * in_k ascending indices per row; and in backward the only columns
     * where dy is nonzero, out_k per row. NULL when not known. */
    const int32_t *in_idx, *out_idx;
    size_t in_k, out_k;
    /* Backward, set by the caller: the optimizer and the finiteness check
     * read w_used and w_sqnorm (below). w_zero (NULL: not kept) flags, per
     * row (sparse dy) or column (sparse input) of the weight gradient, those
     * already all zero in the arena; a sparse path then writes only what
     * changed and updates the flags (or, when it cannot, the caller forgets them). */
    int sparse_grads;
    unsigned char *w_zero;
    /* Backward, set by the caller: the layer may write only part of dx (a
     * dense layer its in_idx entries, a top-k layer its kept entries) and
     * leave the rest unwritten. The caller sets it only when that part
     * covers every entry the layer before reads (src/model/sparse.c). */
    int dx_kept_only;
    /* Backward, set by the layer when it kept w_zero up to date: the weight
     * gradient is zero outside the rows (w_used_cols 0) or columns (1)
     * flagged in w_used; w_sqnorm is the sum of its squares. NULL: not known. */
    const unsigned char *w_used;
    int w_used_cols;
    double w_sqnorm;
} ae_sparse_io;

/* The inputs of a Gaussian layer (gaussian.c), owned by the model and set
 * before each pass (src/model/vae.c): forward samples eps from rng, or
 * copies eps when it is set; with neither, z = mu. backward adds kl_coef
 * times the KL term's gradient (kl_coef = beta / batch or beta). */
typedef struct ae_gaussian_in {
    ae_rng *rng;
    const float *eps;
    float kl_coef;
} ae_gaussian_in;

/* Batch statistics summed over processes (ae_model_set_batch_reduce,
 * <libae/hook.h>), during one training step: set by the model, NULL
 * otherwise. A layer with sync_fwd / sync_bwd sizes (below) makes exactly
 * those calls of ae_batch_sync_sum in its forward / backward pass. */
typedef struct ae_batch_sync {
    ae_status (*fn)(void *ctx, double *values, size_t n, ae_status local);
    void *ctx;
    double *buf;       /* room for every layer's calls of one pass (ae_batch_sync_room) */
    double grad_scale; /* backward sums are multiplied by it before the sum and divided
                          after: the batch for a mean loss, 1 for a sum (so that the sum
                          is of the one loss over all samples, in this process's scale) */
    size_t calls;      /* calls made in this step */
    ae_status status;  /* the first error the hook returned */
} ae_batch_sync;
/* Replaces v[0..n) by its sums over the processes; when the hook fails
 * (now or earlier in the step) the values become NaN. */
void ae_batch_sync_sum(ae_batch_sync *s, double *v, size_t n);
/* Doubles of ae_batch_sync.buf a layer uses (0 for layers that do not sync). */
size_t ae_batch_sync_room(const ae_layer *L);

/* One layer's view of a forward or backward pass over a batch. */
typedef struct ae_layer_io {
    size_t batch;
    int train;
    const float *x; /* input [batch, in] */
    float *pre;     /* pre-activation [batch, out], or NULL when not kept */
    float *y;       /* output [batch, out] */
    float *dy;      /* backward: gradient w.r.t. y (or pre, see dy_is_dpre); overwritten */
    float *dx;      /* backward: gradient w.r.t. x [batch, in]; NULL when not needed */
    int dy_is_dpre; /* backward: dy already holds the gradient w.r.t. pre */
    float *scratch; /* ops->scratch_floats(batch) floats */
    /* The layer's non-trainable state (m->buffers + L->s_off), NULL when
     * s_count is 0; forward may update it in training mode. */
    float *state;
    /* Sparse paths (a dense layer beside a top-k, and the top-k itself):
     * hints and bookkeeping, set by the model; NULL for ordinary layers. */
    ae_sparse_io *sparse;
    /* The model's backend: every matrix product of the pass goes through
     * ae_sgemm / ae_sgemv with it (0, AUTO, when a layer runs alone: OpenBLAS). */
    ae_backend backend;
    /* The threads libae's own loops of the pass may use (core/pool.h);
     * 0 or 1: the calling thread only. */
    int threads;
    /* The layer's plan for this batch size (ops->plan_make), NULL: none;
     * with a plan, scratch holds ops->plan_floats(plan) floats instead. */
    void *plan;
    /* Inference passes of a layer with ops->pack: a buffer of
     * ops->pack_floats floats the model keeps for it, NULL otherwise.
     * packed_stale: it does not hold the current parameters; a layer that
     * reads it rewrites it first (ops->pack) and clears the flag, and the
     * model then keeps it until the parameters are next written. */
    float *packed;
    int packed_stale;
    /* Training steps with a batch-statistics hook; NULL otherwise. */
    ae_batch_sync *sync;
} ae_layer_io;

typedef struct ae_layer_ops {
    const ae_layer_desc *desc;
    /* From the spec and the input shape: sets out_shape, w_count, b_count,
     * s_count (non-trainable state floats) and keep_pre. Shape errors go to err. */
    ae_status (*setup)(ae_layer *L, const ae_layer_spec *spec, ae_errbuf *err);
    /* Extra floats of workspace the layer needs at this batch size. */
    size_t (*scratch_floats)(const ae_layer *L, size_t batch);
    /* Draws initial parameters into params (the model's arena). */
    void (*init)(const ae_layer *L, float *params, ae_rng *rng);
    void (*forward)(const ae_layer *L, const float *params, ae_layer_io *io);
    /* Writes the parameter gradients into grads (accumulating into a weight
     * range when accumulate_w is set, as a tied weight's second user does)
     * unless the layer is frozen, and dx when io->dx is set. */
    void (*backward)(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                     int accumulate_w);
    /* Optional (NULL when s_count is 0): sets the initial non-trainable state. */
    void (*init_state)(const ae_layer *L, float *state);
    /* Optional: checks a state the caller wants to set (finite already);
     * AE_ERR_RANGE with a message for one the layer cannot hold. */
    ae_status (*check_state)(const ae_layer *L, const float *state, ae_errbuf *err);
    /* Selection layers with exactly L->sparse_k kept entries per row: the
     * kept column indices of the last forward (ascending in each row), kept
     * in the scratch. NULL in the ops of other kinds. */
    const int32_t *(*kept_index)(const ae_layer *L, const float *scratch);
    /* Optional (NULL: never): the layer computes with the backend's own
     * primitives, made once per batch size into a plan the model owns and
     * hands back in ae_layer_io.plan. plan_make sets *plan NULL when the
     * backend has none for the layer (it then runs as without). */
    ae_status (*plan_make)(const ae_layer *L, ae_backend be, size_t batch, const ae_allocator *a,
                           void **plan, ae_errbuf *err);
    size_t (*plan_floats)(const void *plan);
    void (*plan_free)(void *plan, const ae_allocator *a);
    /* Optional (NULL: never): the layer's parameters in a layout of its
     * own for inference on backend `be` (ae_layer_io.packed), pack_floats
     * floats of it (0: none on that backend), allocated with the model;
     * pack writes it from params. */
    size_t (*pack_floats)(const ae_layer *L, ae_backend be);
    void (*pack)(const ae_layer *L, const float *params, float *packed);
} ae_layer_ops;

struct ae_layer {
    const ae_layer_ops *ops;
    ae_layer_kind kind;
    ae_layer_spec spec; /* as built; kept for saving and for kind-specific settings */
    ae_shape in_shape, out_shape;
    size_t in, out;    /* features per sample */
    ae_activation act; /* applied to the layer's output */
    float slope;       /* LeakyReLU slope */
    int has_bias;
    size_t w_off, w_count; /* weight range in the parameter arena */
    size_t b_off, b_count; /* bias range (b_count 0 without bias) */
    size_t s_off, s_count; /* non-trainable state (e.g. running statistics) in the state arena */
    int w_transposed;      /* the weight is read transposed (a tied decoder layer) */
    int frozen;            /* parameters receive no gradient and no update */
    int w_frozen;          /* the weight receives no gradient: the layer is frozen, or it
                              shares the weight with a frozen partner (tying) */
    int keep_pre;          /* the forward pass stores the pre-activation */
    size_t min_train_batch; /* smallest batch a training step accepts (0: any) */
    size_t max_batch;       /* largest batch the layer accepts (0: any up to AE_MAX_DIM) */
    /* Sparsity (set by setup for selection layers, by the model for dense):
     * sparse_k: the output has at most sparse_k nonzeros per row, listed by
     * ops->kept_index; keeps_zeros: a zero input stays a zero output;
     * in_sparse_k / out_sparse_k: a dense layer may receive in_idx / out_idx
     * hints with that many entries per row. */
    size_t sparse_k;
    int keeps_zeros;
    size_t in_sparse_k, out_sparse_k;
    ae_gaussian_in *gauss_in; /* a Gaussian layer's inputs (model-owned); NULL for other kinds */
    /* Layers with batch statistics (BatchNorm): the sizes of the calls of
     * ae_batch_sync_sum their forward makes (0: none) and their backward. */
    size_t sync_fwd[2], sync_bwd;
};

/* Selection helpers (topk.c). Indices of the k largest of the n values
 * x[0], x[stride], ... (ties: the lower index wins), ascending, into idx
 * (k entries; it is also the heap). Returns -1 when a value is NaN, else 0. */
int ae_select_topk(const float *x, size_t n, size_t stride, size_t k, int32_t *idx);
/* dx = dy where mask is nonzero, 0 elsewhere (lifetime_topk.c). */
void ae_mask_backward(const unsigned char *mask, const float *dy, float *dx, size_t n);
/* The k of a lifetime top-k layer at this batch size (lifetime_topk.c). */
size_t ae_lifetime_k(const ae_layer *L, size_t batch);
/* The inference threshold of a batch top-k layer from its state; 0 when it
 * has not trained (batch_topk.c). */
int ae_batch_topk_threshold(const ae_layer *L, const float *state, double *theta);

/* Gaussian layer (gaussian.c). Its scratch starts with [batch, 2·dim]: per
 * row mu then logvar of the last forward; then eps [batch, dim] (zeros when
 * it did not sample). */
static inline const float *ae_gaussian_mu_logvar(const float *scratch) { return scratch; }
static inline const float *ae_gaussian_eps(const float *scratch, size_t batch, size_t dim) {
    return scratch + 2 * batch * dim;
}

/* The ops of a kind; NULL for a number that is no kind. (The names of
 * kinds, ae_layer_kind_name, are public: <libae/ae.h>.) */
const ae_layer_ops *ae_layer_ops_for(ae_layer_kind kind);
/* The descriptor of a kind; NULL for a number that is no kind. */
const ae_layer_desc *ae_layer_desc_for(ae_layer_kind kind);
/* The descriptors of every kind, i = 0, 1, ... (for lists and docs); NULL past the last. */
const ae_layer_desc *ae_layer_desc_at(size_t i);
/* A spec of `kind` with every attribute at its default (0 without one),
 * identity activation, slope 0.01, and a bias when the kind has trainable
 * weights. */
void ae_layer_spec_init(ae_layer_spec *spec, ae_layer_kind kind);
/* An attribute's value in a spec (integers and enums as int64, reals as double). */
int64_t ae_spec_get_int(const ae_layer_spec *spec, const ae_layer_attr *a);
double ae_spec_get_float(const ae_layer_spec *spec, const ae_layer_attr *a);
void ae_spec_set_int(ae_layer_spec *spec, const ae_layer_attr *a, int64_t v);
void ae_spec_set_float(ae_layer_spec *spec, const ae_layer_attr *a, double v);
/* Checks every attribute of `spec` against its bounds (AE_ERR_RANGE, or
 * AE_ERR_INVALID_ARG for an unknown enum value), then the kind's check. */
ae_status ae_layer_spec_check(ae_layer_spec *spec, ae_errbuf *err);

#endif
