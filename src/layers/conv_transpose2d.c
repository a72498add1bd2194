/* ConvTranspose2d: W [in, out, k, k] as PyTorch's nn.ConvTranspose2d. It is
 * the adjoint of the convolution that maps the output shape back to the
 * input shape (same k, stride, padding), so it runs as col2im of a GEMM:
 *   forward   col [out*k*k, B*Pi] = Wᵀ X',  y = col2im(col) + b
 *   backward  dcol = im2col(dy),  dW = X' dcolᵀ,  dX' = W dcol
 * with X' [in, B*Pi] the input reordered channel-major and Pi = Hi*Wi.
 * A 1x1 input without padding or output_padding (the k x k output is the
 * whole kernel) is a dense layer and runs as one. Scratch: X' [in, B*Pi]
 * (kept from forward to backward) and col [out*k*k, B*Pi]. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "im2col.h"
#include "layers.h"

enum { I_KERNEL = 0, I_STRIDE = 1, I_PAD = 2, I_OUTPAD = 3 };

/* The convolution from the output [out, Ho, Wo] to the input's [Hi, Wi]. */
static ae_conv_geom geom(const ae_layer *L) {
    const ae_layer_spec *sp = &L->spec;
    ae_conv_geom g = {L->out_shape.c, L->out_shape.h, L->out_shape.w, (size_t)sp->iparam[I_KERNEL],
                      (size_t)sp->iparam[I_STRIDE], (size_t)sp->iparam[I_PAD], L->in_shape.h,
                      L->in_shape.w};
    return g;
}

static int is_dense(const ae_layer *L) {
    ae_conv_geom g = geom(L);
    return g.Ho == 1 && g.Wo == 1 && g.p == 0 && g.H == g.k && g.W == g.k;
}

static ae_status convt_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    size_t k = (size_t)sp->iparam[I_KERNEL], s = (size_t)sp->iparam[I_STRIDE],
           p = (size_t)sp->iparam[I_PAD], op = (size_t)sp->iparam[I_OUTPAD];
    ae_shape in = L->in_shape;
    /* (in - 1) s + k + op - 2p, each term small enough not to overflow */
    size_t hf = (in.h - 1) * s + k + op, wf = (in.w - 1) * s + k + op;
    if (hf <= 2 * p || wf <= 2 * p)
        return ae_error(err, AE_ERR_SHAPE,
                        "conv_transpose2d output of input %zux%zux%zu with padding %zu is empty",
                        in.c, in.h, in.w, p);
    L->out_shape = (ae_shape){sp->units, hf - 2 * p, wf - 2 * p};
    size_t Kc = sp->units * k * k, Po = 0;
    if (Kc > AE_MAX_DIM || ae_mul_overflow(L->out_shape.h, L->out_shape.w, &Po) || Po > AE_MAX_DIM)
        return ae_error(err, AE_ERR_SHAPE,
                        "conv_transpose2d with %zu output channels, kernel %zu, output %zux%zu is "
                        "too large",
                        sp->units, k, L->out_shape.h, L->out_shape.w);
    L->w_count = in.c * Kc;
    if (L->w_count > ((size_t)1 << 31))
        return ae_error(err, AE_ERR_SHAPE, "conv_transpose2d has %zu weights, too many",
                        L->w_count);
    L->b_count = sp->bias ? sp->units : 0;
    L->keep_pre = ae_act_needs_pre(sp->act);
    size_t Pi = in.h * in.w;
    L->max_batch = (size_t)INT_MAX / (Pi > Po ? Pi : Po);
    return AE_OK;
}

static size_t convt_scratch(const ae_layer *L, size_t batch) {
    if (is_dense(L)) return 0;
    ae_conv_geom g = geom(L);
    size_t N = batch * g.Ho * g.Wo;
    return (L->in_shape.c + g.C * g.k * g.k) * N;
}

static void convt_init(const ae_layer *L, float *params, ae_rng *rng) {
    /* PyTorch computes fan_in from the weight's dimension 1 (out) times k*k. */
    ae_conv_geom g = geom(L);
    float bound = 1.0f / sqrtf((float)(g.C * g.k * g.k));
    float *w = params + L->w_off;
    for (size_t i = 0; i < L->w_count; i++) w[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
    float *b = params + L->b_off;
    for (size_t i = 0; i < L->b_count; i++) b[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
}

static void convt_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    const float *W = params + L->w_off;
    const float *bias = L->has_bias ? params + L->b_off : NULL;
    float *pre = io->pre ? io->pre : io->y;
    ae_conv_geom g = geom(L);
    size_t B = io->batch, Ci = L->in_shape.c, Co = g.C, Kc = Co * g.k * g.k, Pi = g.Ho * g.Wo,
           N = B * Pi, Po = g.H * g.W;
    int dense = is_dense(L);
    if (dense) {
        ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, B, Kc, Ci, 1.0f, io->x, Ci, W, Kc, 0.0f,
                 pre, Kc);
    } else {
        float *xc = io->scratch, *col = io->scratch + Ci * N;
        ae_bcp_to_cbp(io->x, B, Ci, Pi, xc);
        ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, Kc, N, Ci, 1.0f, W, Kc, xc, N, 0.0f, col, N);
        /* The output starts as the bias; col2im adds the columns onto it. */
        for (size_t b = 0; b < B; b++)
            for (size_t c = 0; c < Co; c++) {
                float *pr = pre + (b * Co + c) * Po, bc = bias ? bias[c] : 0.0f;
                for (size_t j = 0; j < Po; j++) pr[j] = bc;
            }
        ae_col2im(&g, B, col, pre, io->threads);
    }
    for (size_t b = 0; b < B && dense && bias; b++)
        for (size_t c = 0; c < Co; c++) {
            float *pr = pre + (b * Co + c) * Po, bc = bias[c];
            for (size_t j = 0; j < Po; j++) pr[j] += bc;
        }
    ae_act_forward_mt(io->threads, L->act, L->slope, pre, io->y, B * Co * Po);
}

static void convt_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                           int accumulate_w) {
    ae_conv_geom g = geom(L);
    size_t B = io->batch, Ci = L->in_shape.c, Co = g.C, Kc = Co * g.k * g.k, Pi = g.Ho * g.Wo,
           N = B * Pi, Po = g.H * g.W;
    float *d = io->dy;
    float *db = (!L->frozen && L->has_bias) ? grads + L->b_off : NULL;
    if (!io->dy_is_dpre)
        ae_act_backward_mt(io->threads, L->act, L->slope, io->pre, io->y, d, B * Co * Po);
    if (db) ae_bias_grad_planes(d, B, Co, Po, db, io->threads);
    const float *W = params + L->w_off;
    float *dW = L->frozen ? NULL : grads + L->w_off;
    float beta = accumulate_w ? 1.0f : 0.0f;
    if (is_dense(L)) {
        if (dW)
            ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, Ci, Kc, B, 1.0f, io->x, Ci, d, Kc, beta,
                     dW, Kc);
        if (io->dx)
            ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, B, Ci, Kc, 1.0f, d, Kc, W, Kc, 0.0f,
                     io->dx, Ci);
        return;
    }
    float *xc = io->scratch, *col = io->scratch + Ci * N;
    ae_im2col(&g, B, d, col, io->threads);
    if (dW)
        ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, Ci, Kc, N, 1.0f, xc, N, col, N, beta, dW, Kc);
    if (io->dx) {
        ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, Ci, N, Kc, 1.0f, W, Kc, col, N, 0.0f, xc,
                 N);
        ae_cbp_to_bcp(xc, B, Ci, Pi, io->dx);
    }
}

/* PyTorch requires output_padding < stride. */
static ae_status convt_check(ae_layer_spec *sp, ae_errbuf *err) {
    if (sp->iparam[I_OUTPAD] >= sp->iparam[I_STRIDE])
        return ae_error(err, AE_ERR_RANGE,
                        "conv_transpose2d output_padding must be smaller than the stride %lld, "
                        "got %lld",
                        (long long)sp->iparam[I_STRIDE], (long long)sp->iparam[I_OUTPAD]);
    return AE_OK;
}

static const ae_layer_attr convt_attrs[] = {
    {.name = "out_channels", .type = AE_ATTR_INT, .slot = AE_ATTR_UNITS,
     .lo = 1, .hi = (double)AE_MAX_DIM},
    {.name = "kernel", .type = AE_ATTR_INT, .slot = I_KERNEL, .lo = 1, .hi = (double)AE_MAX_KERNEL},
    /* PyTorch's defaults, for the text format (src/model/arch.c). */
    {.name = "stride", .type = AE_ATTR_INT, .slot = I_STRIDE, .lo = 1, .hi = (double)AE_MAX_KERNEL,
     .has_default = 1, .def = 1},
    {.name = "padding", .type = AE_ATTR_INT, .slot = I_PAD, .lo = 0, .hi = (double)AE_MAX_KERNEL,
     .has_default = 1, .def = 0},
    {.name = "output_padding", .type = AE_ATTR_INT, .slot = I_OUTPAD,
     .lo = 0, .hi = (double)AE_MAX_KERNEL, .has_default = 1, .def = 0},
};

static const ae_layer_desc convt_desc = {
    .kind = AE_LAYER_CONV_TRANSPOSE2D,
    .name = "conv_transpose2d",
    .flags = AE_LK_BIAS | AE_LK_ACT | AE_LK_WEIGHTS,
    .attrs = convt_attrs,
    .nattrs = sizeof convt_attrs / sizeof convt_attrs[0],
    .check = convt_check,
};

const ae_layer_ops ae_conv_transpose2d_ops = {
    .desc = &convt_desc,
    .setup = convt_setup,
    .scratch_floats = convt_scratch,
    .init = convt_init,
    .forward = convt_forward,
    .backward = convt_backward,
};
