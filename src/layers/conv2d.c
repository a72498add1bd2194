/* Conv2d: y = act(W * x + b), W [out, in, k, k] as PyTorch's nn.Conv2d.
 * im2col over the whole batch and one GEMM per pass:
 *   forward   Y' [out, B*P] = W [out, K] col [K, B*P]
 *   backward  dW = dY' colᵀ,  dcol = Wᵀ dY',  dx = col2im(dcol)
 * with K = in*k*k and P = Ho*Wo. When the kernel covers the whole unpadded
 * input (P = 1) the convolution is a dense layer on the flattened input and
 * runs as one (no im2col). Scratch: col [K, B*P] (kept from forward to
 * backward) and Y' [out, B*P]. Stride 1 to at most 4 channels runs
 * directly on the planes on either backend (conv_direct.h); on the oneDNN
 * backend the other shapes run on oneDNN's convolution primitives
 * (conv_plan.h). */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "conv_direct.h"
#include "conv_plan.h"
#include "im2col.h"
#include "core/pool.h"
#include "layers.h"

enum { I_KERNEL = 0, I_STRIDE = 1, I_PAD = 2 };

static ae_conv_geom geom(const ae_layer *L) {
    const ae_layer_spec *sp = &L->spec;
    ae_conv_geom g = {L->in_shape.c, L->in_shape.h, L->in_shape.w, (size_t)sp->iparam[I_KERNEL],
                      (size_t)sp->iparam[I_STRIDE], (size_t)sp->iparam[I_PAD], L->out_shape.h,
                      L->out_shape.w};
    return g;
}

/* The kernel covers the whole input without padding: a dense layer. */
static int is_dense(const ae_layer *L) {
    ae_conv_geom g = geom(L);
    return g.p == 0 && g.k == g.H && g.k == g.W;
}

static ae_status conv_setup(ae_layer *L, const ae_layer_spec *sp, ae_errbuf *err) {
    size_t k = (size_t)sp->iparam[I_KERNEL], s = (size_t)sp->iparam[I_STRIDE],
           p = (size_t)sp->iparam[I_PAD];
    ae_shape in = L->in_shape;
    if (in.h + 2 * p < k || in.w + 2 * p < k)
        return ae_error(err, AE_ERR_SHAPE,
                        "conv2d kernel %zu does not fit the input %zux%zux%zu padded by %zu", k,
                        in.c, in.h, in.w, p);
    size_t K = in.c * k * k; /* c <= 2^24, k <= 64: no overflow */
    if (K > AE_MAX_DIM)
        return ae_error(err, AE_ERR_SHAPE, "conv2d has %zu inputs per output (in_channels*k*k), over %zu",
                        K, AE_MAX_DIM);
    L->out_shape = (ae_shape){sp->units, (in.h + 2 * p - k) / s + 1, (in.w + 2 * p - k) / s + 1};
    size_t P = L->out_shape.h * L->out_shape.w;
    if (ae_mul_overflow(sp->units, K, &L->w_count) || L->w_count > ((size_t)1 << 31) ||
        P > AE_MAX_DIM)
        return ae_error(err, AE_ERR_SHAPE, "conv2d with %zu outputs of %zu inputs is too large",
                        sp->units, K);
    L->b_count = sp->bias ? sp->units : 0;
    L->keep_pre = ae_act_needs_pre(sp->act);
    /* Keeps B*P (a GEMM dimension) and the scratch within int and size_t. */
    size_t PI = in.h * in.w > P ? in.h * in.w : P;
    L->max_batch = (size_t)INT_MAX / PI;
    return AE_OK;
}

static int is_direct(const ae_layer *L) {
    ae_conv_geom g = geom(L);
    return ae_conv_direct_fits(&g, L->out_shape.c);
}

static size_t conv_scratch(const ae_layer *L, size_t batch) {
    if (is_dense(L)) return 0;
    ae_conv_geom g = geom(L);
    if (is_direct(L)) return ae_conv_direct_floats(&g, L->out_shape.c);
    size_t N = batch * g.Ho * g.Wo;
    return (g.C * g.k * g.k + L->out_shape.c) * N;
}

static void conv_init(const ae_layer *L, float *params, ae_rng *rng) {
    /* kaiming_uniform(a=√5) with fan_in = in*k*k: U(-1/√fan_in, 1/√fan_in); the bias alike. */
    ae_conv_geom g = geom(L);
    float bound = 1.0f / sqrtf((float)(g.C * g.k * g.k));
    float *w = params + L->w_off;
    for (size_t i = 0; i < L->w_count; i++) w[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
    float *b = params + L->b_off;
    for (size_t i = 0; i < L->b_count; i++) b[i] = (2.0f * ae_rng_uniform(rng) - 1.0f) * bound;
}

/* On the oneDNN backend, oneDNN's convolution primitives where they were
 * measured faster than im2col + GEMM (docs/performance.md): all but the
 * smallest outputs (at most 4x4: 4096 -> 512 channels at 8x8 -> 4x4 ran
 * 1.4x slower), where the GEMMs are large and the direct kernels are not. */
static ae_status conv_plan_make(const ae_layer *L, ae_backend be, size_t batch,
                                const ae_allocator *a, void **plan, ae_errbuf *err) {
    *plan = NULL;
    if (be != AE_BACKEND_ONEDNN || is_dense(L) || is_direct(L) ||
        L->out_shape.h * L->out_shape.w <= 16)
        return AE_OK;
    ae_conv_geom g = geom(L);
    ae_conv_shape cs = {.bias = L->has_bias, .Ci = g.C, .H = g.H, .W = g.W, .Co = L->out_shape.c,
                        .Ho = g.Ho, .Wo = g.Wo, .k = g.k, .s = g.s, .p = g.p};
    return ae_conv_plan_make(&cs, batch, a, (ae_conv_plan **)plan, err);
}

static size_t conv_plan_floats(const void *plan) { return ae_conv_plan_floats(plan); }
static void conv_plan_free(void *plan, const ae_allocator *a) { ae_conv_plan_free(plan, a); }

static void conv_forward(const ae_layer *L, const float *params, ae_layer_io *io) {
    const float *W = params + L->w_off;
    const float *bias = L->has_bias ? params + L->b_off : NULL;
    float *pre = io->pre ? io->pre : io->y;
    ae_conv_geom g = geom(L);
    size_t B = io->batch, K = g.C * g.k * g.k, Co = L->out_shape.c, P = g.Ho * g.Wo, N = B * P;
    if (io->plan) {
        ae_conv_plan_forward(io->plan, io->scratch, io->x, W, bias, pre);
        ae_act_forward_mt(io->threads, L->act, L->slope, pre, io->y, B * Co * P);
        return;
    }
    if (is_direct(L)) {
        ae_conv_direct_forward(&g, B, Co, io->x, W, bias, pre, io->scratch, io->threads);
        ae_act_forward_mt(io->threads, L->act, L->slope, pre, io->y, B * Co * P);
        return;
    }
    if (is_dense(L)) {
        ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, B, Co, K, 1.0f, io->x, K, W, K, 0.0f, pre, Co);
        ae_bias_act_planes(L->act, L->slope, bias, pre, Co, 1, pre, io->y, B, Co, 1, io->threads);
        return;
    }
    float *col = io->scratch, *yb = io->scratch + K * N;
    ae_im2col(&g, B, io->x, col, io->threads);
    ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, Co, N, K, 1.0f, W, K, col, N, 0.0f, yb, N);
    ae_bias_act_planes(L->act, L->slope, bias, yb, P, N, pre, io->y, B, Co, P, io->threads);
}

static void conv_backward(const ae_layer *L, const float *params, float *grads, ae_layer_io *io,
                          int accumulate_w) {
    ae_conv_geom g = geom(L);
    size_t B = io->batch, K = g.C * g.k * g.k, Co = L->out_shape.c, P = g.Ho * g.Wo, N = B * P;
    float *d = io->dy;
    if (!io->dy_is_dpre)
        ae_act_backward_mt(io->threads, L->act, L->slope, io->pre, io->y, d, B * Co * P);
    float *db = (!L->frozen && L->has_bias) ? grads + L->b_off : NULL;
    if (db) memset(db, 0, Co * sizeof *db);
    const float *W = params + L->w_off;
    float *dW = L->frozen ? NULL : grads + L->w_off;
    float beta = accumulate_w ? 1.0f : 0.0f;
    if (is_dense(L)) {
        if (db)
            for (size_t b = 0; b < B; b++)
                for (size_t c = 0; c < Co; c++) db[c] += d[b * Co + c];
        if (dW)
            ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, Co, K, B, 1.0f, d, Co, io->x, K, beta, dW,
                     K);
        if (io->dx)
            ae_sgemm(io->backend, AE_NO_TRANS, AE_NO_TRANS, B, K, Co, 1.0f, d, Co, W, K, 0.0f,
                     io->dx, K);
        return;
    }
    if (io->plan || is_direct(L)) {
        if (db) ae_bias_grad_planes(d, B, Co, P, db, io->threads);
        if (io->plan)
            ae_conv_plan_backward(io->plan, io->scratch, io->x, W, d, dW, accumulate_w, io->dx);
        else
            ae_conv_direct_backward(&g, B, Co, io->x, d, W, dW, accumulate_w, io->dx, io->scratch,
                                    io->threads);
        return;
    }
    float *col = io->scratch, *yb = io->scratch + K * N;
    /* dY' [Co, B*P] from d [B, Co, P], with the bias gradient in the same pass. */
    for (size_t b = 0; b < B; b++)
        for (size_t c = 0; c < Co; c++) {
            const float *s = d + (b * Co + c) * P;
            memcpy(yb + c * N + b * P, s, P * sizeof *s);
            if (db) db[c] += ae_plane_sum(s, P);
        }
    if (dW)
        ae_sgemm(io->backend, AE_NO_TRANS, AE_TRANS, Co, K, N, 1.0f, yb, N, col, N, beta, dW, K);
    if (io->dx) {
        ae_sgemm(io->backend, AE_TRANS, AE_NO_TRANS, K, N, Co, 1.0f, W, K, yb, N, 0.0f, col, N);
        memset(io->dx, 0, B * L->in * sizeof *io->dx);
        ae_col2im(&g, B, col, io->dx, io->threads);
    }
}

static const ae_layer_attr conv2d_attrs[] = {
    {.name = "out_channels", .type = AE_ATTR_INT, .slot = AE_ATTR_UNITS,
     .lo = 1, .hi = (double)AE_MAX_DIM},
    {.name = "kernel", .type = AE_ATTR_INT, .slot = I_KERNEL, .lo = 1, .hi = (double)AE_MAX_KERNEL},
    /* PyTorch's defaults, for the text format (src/model/arch.c). */
    {.name = "stride", .type = AE_ATTR_INT, .slot = I_STRIDE, .lo = 1, .hi = (double)AE_MAX_KERNEL,
     .has_default = 1, .def = 1},
    {.name = "padding", .type = AE_ATTR_INT, .slot = I_PAD, .lo = 0, .hi = (double)AE_MAX_KERNEL,
     .has_default = 1, .def = 0},
};

static const ae_layer_desc conv2d_desc = {
    .kind = AE_LAYER_CONV2D,
    .name = "conv2d",
    .flags = AE_LK_BIAS | AE_LK_ACT | AE_LK_WEIGHTS,
    .attrs = conv2d_attrs,
    .nattrs = sizeof conv2d_attrs / sizeof conv2d_attrs[0],
};

const ae_layer_ops ae_conv2d_ops = {
    .desc = &conv2d_desc,
    .setup = conv_setup,
    .scratch_floats = conv_scratch,
    .init = conv_init,
    .forward = conv_forward,
    .backward = conv_backward,
    .plan_make = conv_plan_make,
    .plan_floats = conv_plan_floats,
    .plan_free = conv_plan_free,
};
