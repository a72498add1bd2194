/*
 * Tests of the convolutional layers (src/layers: conv2d, conv_transpose2d,
 * maxpool2d, upsample, batchnorm, avgpool, reshape, act_layer) and of
 * <libae/conv.h>:
 * - every layer's forward pass against a direct reference or known values,
 *   and its backward pass against finite differences (odd sizes, stride 2,
 *   padding, output_padding, the dense fast paths);
 * - the builder's refusals, shapes and parameter counts;
 * - whole-model gradients of a conv/dense mix, BatchNorm training vs
 *   inference, a failed step restoring the running statistics, no
 *   allocation after the first step;
 * - PyTorch parity of the seeds' conv autoencoder and of a model with
 *   BatchNorm, MaxPool and Upsample (tests/fixtures/conv_*.bin, written by
 *   tests/fixtures/gen_conv_parity.py).
 */
#include "test_util.h"

#include <stdio.h>

#include "fixture.h"
#include "layers/layers.h"

#define OK(call) assert_int_equal((call), AE_OK)

/* ------------------------------------------------------------------------
 * A layer on its own
 * ------------------------------------------------------------------------ */

typedef struct lt {
    ae_layer L;
    size_t B, np;
    float *params, *grads, *state, *scratch, *x, *y, *pre, *dy, *dx, *r;
    void *plan; /* the layer's plan on the tests' backend, as a model would make it */
    ae_allocator alloc;
} lt;

static void lt_free(lt *t) {
    if (t->plan) t->L.ops->plan_free(t->plan, &t->alloc);
    free(t->params);
    free(t->grads);
    free(t->state);
    free(t->scratch);
    free(t->x);
    free(t->y);
    free(t->pre);
    free(t->dy);
    free(t->dx);
    free(t->r);
}

static float *fcalloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

/* Sets up a layer of `kind` on samples of shape `in`, batch B, with random
 * parameters, input and output weights r. */
static void lt_make(lt *t, const ae_layer_spec *sp, ae_shape in, size_t B, uint32_t seed) {
    memset(t, 0, sizeof *t);
    ae_layer *L = &t->L;
    L->ops = ae_layer_ops_for(sp->kind);
    assert_non_null(L->ops);
    L->kind = sp->kind;
    L->spec = *sp;
    L->in_shape = in;
    L->in = ae_shape_size(in);
    L->act = sp->act;
    L->slope = sp->slope;
    L->has_bias = sp->bias;
    ae_errbuf err;
    ae_status st = L->ops->setup(L, sp, &err);
    if (st != AE_OK) fail_msg("setup: %s", err.msg);
    L->out = ae_shape_size(L->out_shape);
    L->w_off = 0;
    L->b_off = L->w_count;
    t->np = L->w_count + L->b_count;
    t->B = B;
    t->params = fcalloc(t->np);
    t->grads = fcalloc(t->np);
    t->state = fcalloc(L->s_count);
    ae_allocator_init(&t->alloc, NULL);
    if (L->ops->plan_make &&
        L->ops->plan_make(L, test_layer_backend(), B, &t->alloc, &t->plan, &err) != AE_OK)
        fail_msg("plan_make: %s", err.msg);
    t->scratch = fcalloc(t->plan ? L->ops->plan_floats(t->plan) : L->ops->scratch_floats(L, B));
    t->x = fcalloc(B * L->in);
    t->dx = fcalloc(B * L->in);
    t->y = fcalloc(B * L->out);
    t->pre = fcalloc(B * L->out);
    t->dy = fcalloc(B * L->out);
    t->r = fcalloc(B * L->out);
    ae_rng rng;
    ae_rng_seed(&rng, seed);
    L->ops->init(L, t->params, &rng);
    if (L->ops->init_state) L->ops->init_state(L, t->state);
    test_fill(t->params, t->np, seed + 1, -0.6f, 0.6f);
    test_fill(t->x, B * L->in, seed + 2, -1.5f, 1.5f);
    test_fill(t->r, B * L->out, seed + 3, -1.0f, 1.0f);
}

static void lt_forward(lt *t, int train) {
    ae_layer_io io = {.batch = t->B, .train = train, .x = t->x,
                      .pre = t->L.keep_pre ? t->pre : NULL, .y = t->y, .scratch = t->scratch,
                      .state = t->L.s_count ? t->state : NULL, .backend = test_layer_backend(),
                      .plan = t->plan};
    t->L.ops->forward(&t->L, t->params, &io);
}

static double lt_objective(lt *t) {
    lt_forward(t, 1);
    double f = 0;
    for (size_t i = 0; i < t->B * t->L.out; i++) f += (double)t->r[i] * t->y[i];
    return f;
}

/* The analytic gradients of f = Σ r ⊙ y against central differences, for
 * every parameter and every input element. */
static void lt_check_grad(lt *t, double h, const char *what) {
    ae_layer *L = &t->L;
    lt_forward(t, 1);
    memcpy(t->dy, t->r, t->B * L->out * sizeof(float));
    for (size_t i = 0; i < t->np; i++) t->grads[i] = 12345.0f;
    ae_layer_io io = {.batch = t->B, .train = 1, .x = t->x, .pre = L->keep_pre ? t->pre : NULL,
                      .y = t->y, .dy = t->dy, .dx = t->dx, .scratch = t->scratch,
                      .state = L->s_count ? t->state : NULL, .backend = test_layer_backend(),
                      .plan = t->plan};
    L->ops->backward(L, t->params, t->grads, &io, 0);
    float *g = malloc((t->np ? t->np : 1) * sizeof *g);
    float *dx = malloc(t->B * L->in * sizeof *dx);
    memcpy(g, t->grads, t->np * sizeof *g);
    memcpy(dx, t->dx, t->B * L->in * sizeof *dx);
    for (int part = 0; part < 2; part++) {
        float *v = part ? t->x : t->params;
        const float *an = part ? dx : g;
        size_t n = part ? t->B * L->in : t->np;
        for (size_t i = 0; i < n; i++) {
            float s = v[i];
            v[i] = s + (float)h;
            double fp = lt_objective(t);
            v[i] = s - (float)h;
            double fm = lt_objective(t);
            v[i] = s;
            double fd = (fp - fm) / (2 * h);
            if (fabs(fd - an[i]) > 2e-3 + 1e-2 * fabs(fd)) {
                free(g);
                free(dx);
                fail_msg("%s: %s[%zu] analytic %.6g, finite difference %.6g", what,
                         part ? "dx" : "dparam", i, (double)an[i], fd);
            }
        }
    }
    free(g);
    free(dx);
}

static ae_layer_spec conv_spec(ae_layer_kind kind, size_t out, size_t k, size_t s, size_t p,
                               size_t op, ae_activation act, int bias) {
    ae_layer_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.kind = kind;
    sp.units = out;
    sp.act = act;
    sp.slope = 0.01f;
    sp.bias = bias;
    sp.iparam[0] = (int64_t)k;
    sp.iparam[1] = (int64_t)s;
    sp.iparam[2] = (int64_t)p;
    sp.iparam[3] = (int64_t)op;
    return sp;
}

/* Direct convolution, the definition. */
static void ref_conv2d(const float *x, const float *W, const float *b, size_t B, size_t C,
                       size_t H, size_t Wd, size_t Co, size_t k, size_t s, size_t p, size_t Ho,
                       size_t Wo, float *y) {
    for (size_t n = 0; n < B; n++)
        for (size_t co = 0; co < Co; co++)
            for (size_t oh = 0; oh < Ho; oh++)
                for (size_t ow = 0; ow < Wo; ow++) {
                    double acc = b ? b[co] : 0.0;
                    for (size_t ci = 0; ci < C; ci++)
                        for (size_t ki = 0; ki < k; ki++)
                            for (size_t kj = 0; kj < k; kj++) {
                                long ih = (long)(oh * s + ki) - (long)p;
                                long iw = (long)(ow * s + kj) - (long)p;
                                if (ih < 0 || iw < 0 || ih >= (long)H || iw >= (long)Wd) continue;
                                acc += (double)W[((co * C + ci) * k + ki) * k + kj] *
                                       x[((n * C + ci) * H + (size_t)ih) * Wd + (size_t)iw];
                            }
                    y[((n * Co + co) * Ho + oh) * Wo + ow] = (float)acc;
                }
}

/* Direct transposed convolution: every input scatters its kernel. */
static void ref_conv_t(const float *x, const float *W, const float *b, size_t B, size_t C,
                       size_t H, size_t Wd, size_t Co, size_t k, size_t s, size_t p, size_t Ho,
                       size_t Wo, float *y) {
    for (size_t i = 0; i < B * Co * Ho * Wo; i++) y[i] = b ? b[(i / (Ho * Wo)) % Co] : 0.0f;
    for (size_t n = 0; n < B; n++)
        for (size_t ci = 0; ci < C; ci++)
            for (size_t ih = 0; ih < H; ih++)
                for (size_t iw = 0; iw < Wd; iw++)
                    for (size_t co = 0; co < Co; co++)
                        for (size_t ki = 0; ki < k; ki++)
                            for (size_t kj = 0; kj < k; kj++) {
                                long oh = (long)(ih * s + ki) - (long)p;
                                long ow = (long)(iw * s + kj) - (long)p;
                                if (oh < 0 || ow < 0 || oh >= (long)Ho || ow >= (long)Wo) continue;
                                y[((n * Co + co) * Ho + (size_t)oh) * Wo + (size_t)ow] +=
                                    W[((ci * Co + co) * k + ki) * k + kj] *
                                    x[((n * C + ci) * H + ih) * Wd + iw];
                            }
}

typedef struct conv_case {
    size_t C, H, W, Co, k, s, p, op, Ho, Wo;
    int bias;
    ae_activation act;
} conv_case;

static void check_conv_layer(ae_layer_kind kind, const conv_case *c, size_t B) {
    char what[160];
    snprintf(what, sizeof what, "%s %zux%zux%zu -> %zu k%zu s%zu p%zu op%zu bias %d act %s",
             kind == AE_LAYER_CONV2D ? "conv2d" : "conv_transpose2d", c->C, c->H, c->W, c->Co,
             c->k, c->s, c->p, c->op, c->bias, ae_act_name(c->act));
    /* forward against the definition, identity activation */
    ae_layer_spec sp = conv_spec(kind, c->Co, c->k, c->s, c->p, c->op, AE_ACT_IDENTITY, c->bias);
    lt t;
    lt_make(&t, &sp, (ae_shape){c->C, c->H, c->W}, B, 41);
    if (t.L.out_shape.c != c->Co || t.L.out_shape.h != c->Ho || t.L.out_shape.w != c->Wo)
        fail_msg("%s: output %zux%zux%zu", what, t.L.out_shape.c, t.L.out_shape.h,
                 t.L.out_shape.w);
    assert_int_equal(t.L.w_count, c->Co * c->C * c->k * c->k);
    assert_int_equal(t.L.b_count, c->bias ? c->Co : 0);
    lt_forward(&t, 1);
    float *ref = fcalloc(B * t.L.out);
    const float *bias = c->bias ? t.params + t.L.b_off : NULL;
    if (kind == AE_LAYER_CONV2D)
        ref_conv2d(t.x, t.params, bias, B, c->C, c->H, c->W, c->Co, c->k, c->s, c->p, c->Ho, c->Wo,
                   ref);
    else
        ref_conv_t(t.x, t.params, bias, B, c->C, c->H, c->W, c->Co, c->k, c->s, c->p, c->Ho,
                   c->Wo, ref);
    assert_close_arrays(t.y, ref, B * t.L.out, 1e-5, 1e-5, what);
    free(ref);
    lt_free(&t);
    /* gradients, with the activation */
    sp = conv_spec(kind, c->Co, c->k, c->s, c->p, c->op, c->act, c->bias);
    lt_make(&t, &sp, (ae_shape){c->C, c->H, c->W}, B, 43);
    lt_check_grad(&t, 1e-2, what);
    /* a weight gradient added to what the arena holds (a second user's) */
    float *g1 = malloc(t.np * sizeof *g1);
    memcpy(g1, t.grads, t.np * sizeof *g1);
    lt_forward(&t, 1);
    memcpy(t.dy, t.r, B * t.L.out * sizeof(float));
    ae_layer_io io = {.batch = B, .train = 1, .x = t.x, .pre = t.L.keep_pre ? t.pre : NULL,
                      .y = t.y, .dy = t.dy, .dx = t.dx, .scratch = t.scratch,
                      .backend = test_layer_backend(), .plan = t.plan};
    t.L.ops->backward(&t.L, t.params, t.grads, &io, 1);
    for (size_t i = 0; i < t.L.w_count; i++) g1[i] *= 2;
    assert_close_arrays(t.grads, g1, t.L.w_count, 1e-5, 1e-6, what);
    free(g1);
    lt_free(&t);
}

static void test_conv2d_layer(void **state) {
    (void)state;
    static const conv_case cases[] = {
        /* C H  W  Co k s p op Ho Wo */
        {2, 5, 6, 3, 3, 2, 1, 0, 3, 3, 1, AE_ACT_TANH},    /* odd, stride 2, padding */
        {1, 7, 7, 4, 3, 2, 1, 0, 4, 4, 1, AE_ACT_SIGMOID}, /* the seeds' first layer, smaller */
        {3, 4, 5, 2, 2, 1, 0, 0, 3, 4, 0, AE_ACT_GELU},    /* no bias, GELU keeps pre */
        {2, 5, 5, 3, 5, 1, 2, 0, 5, 5, 1, AE_ACT_ELU},     /* large padding */
        {2, 6, 7, 2, 3, 3, 0, 0, 2, 2, 1, AE_ACT_SOFTPLUS}, /* stride 3, leftover rows */
        {3, 3, 3, 4, 3, 1, 0, 0, 1, 1, 1, AE_ACT_TANH},    /* kernel = input: the dense path */
        {2, 1, 1, 3, 1, 1, 0, 0, 1, 1, 1, AE_ACT_TANH},    /* 1x1 */
        /* stride 1 to at most 4 channels, the direct path: rows of 2 x 16
         * outputs, then 16, then the last 5; every padding up to k - 1 */
        {3, 4, 53, 3, 3, 1, 1, 0, 4, 53, 1, AE_ACT_SIGMOID},
        {2, 3, 21, 4, 4, 1, 3, 0, 6, 24, 0, AE_ACT_TANH},
        {5, 6, 18, 1, 6, 1, 2, 0, 5, 17, 1, AE_ACT_ELU},
        {2, 5, 5, 2, 2, 1, 2, 0, 8, 8, 1, AE_ACT_TANH}, /* padding >= k: not direct */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv_layer(AE_LAYER_CONV2D, &cases[i], 3);
}

static void test_conv_transpose2d_layer(void **state) {
    (void)state;
    static const conv_case cases[] = {
        /* C H  W  Co k s p op Ho Wo */
        {3, 4, 3, 2, 3, 2, 1, 1, 8, 6, 1, AE_ACT_TANH},    /* the seeds' decoder geometry */
        {2, 3, 5, 3, 3, 2, 1, 0, 5, 9, 1, AE_ACT_SIGMOID}, /* odd, no output_padding */
        {2, 3, 3, 2, 3, 1, 0, 0, 5, 5, 0, AE_ACT_GELU},    /* stride 1, no bias */
        {3, 1, 1, 2, 3, 1, 0, 0, 3, 3, 1, AE_ACT_TANH},    /* 1x1 input: the dense path */
        {2, 1, 1, 2, 3, 2, 0, 1, 4, 4, 1, AE_ACT_TANH},    /* 1x1 input with output_padding */
        {2, 2, 3, 2, 2, 3, 0, 2, 7, 10, 1, AE_ACT_ELU},    /* stride > kernel: gaps, op 2 */
        {1, 3, 3, 2, 4, 2, 2, 1, 5, 5, 1, AE_ACT_SOFTPLUS}, /* padding 2 */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_conv_layer(AE_LAYER_CONV_TRANSPOSE2D, &cases[i], 3);
}

/* Distinct values, far apart, so that max pooling's finite differences do
 * not cross a tie. */
static void distinct_fill(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((i * 37 + 11) % n) * 0.05f - 1.0f;
}

static void test_maxpool2d_layer(void **state) {
    (void)state;
    /* known values: 1x4x4, k 2 */
    ae_layer_spec sp = conv_spec(AE_LAYER_MAXPOOL2D, 0, 2, 2, 0, 0, AE_ACT_IDENTITY, 0);
    lt t;
    lt_make(&t, &sp, (ae_shape){1, 4, 4}, 1, 5);
    const float x[16] = {1, 5, 2, 0, 3, 4, 8, 8, -1, -2, -3, -4, -9, -2, 0, -4};
    memcpy(t.x, x, sizeof x);
    lt_forward(&t, 1);
    const float want[4] = {5, 8, -1, 0};
    assert_close_arrays(t.y, want, 4, 0, 0, "maxpool values");
    /* ties: the first maximum gets the gradient (8 at [6], not [7]; -2 at [9], not [13]) */
    const float ones[4] = {1, 1, 1, 1};
    memcpy(t.dy, ones, sizeof ones);
    ae_layer_io io = {.batch = 1, .train = 1, .x = t.x, .y = t.y, .dy = t.dy, .dx = t.dx,
                      .scratch = t.scratch, .backend = test_layer_backend()};
    t.L.ops->backward(&t.L, t.params, t.grads, &io, 0);
    const float wdx[16] = {0, 1, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0};
    assert_close_arrays(t.dx, wdx, 16, 0, 0, "maxpool gradient routing");
    lt_free(&t);

    static const size_t geo[][5] = {
        /* H W k s p */
        {5, 5, 2, 2, 0}, {6, 5, 3, 2, 1}, {7, 4, 3, 1, 1}, {4, 6, 2, 1, 0}, {5, 7, 4, 3, 2}};
    for (size_t i = 0; i < sizeof geo / sizeof geo[0]; i++) {
        sp = conv_spec(AE_LAYER_MAXPOOL2D, 0, geo[i][2], geo[i][3], geo[i][4], 0, AE_ACT_IDENTITY,
                       0);
        lt_make(&t, &sp, (ae_shape){2, geo[i][0], geo[i][1]}, 2, 7);
        size_t Ho = (geo[i][0] + 2 * geo[i][4] - geo[i][2]) / geo[i][3] + 1;
        assert_int_equal(t.L.out_shape.h, Ho);
        distinct_fill(t.x, 2 * t.L.in);
        lt_check_grad(&t, 1e-3, "maxpool2d");
        lt_free(&t);
    }
}

static void test_upsample_layer(void **state) {
    (void)state;
    ae_layer_spec sp = conv_spec(AE_LAYER_UPSAMPLE, 0, 0, 0, 0, 0, AE_ACT_IDENTITY, 0);
    sp.iparam[0] = 2;
    sp.iparam[1] = AE_UPSAMPLE_BILINEAR;
    lt t;
    lt_make(&t, &sp, (ae_shape){1, 2, 2}, 1, 5);
    const float x[4] = {0, 1, 2, 3};
    memcpy(t.x, x, sizeof x);
    lt_forward(&t, 1);
    /* torch.nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True) */
    const float want[16] = {0,         1.f / 3,   2.f / 3,   1,         2.f / 3,   1,
                            4.f / 3,   5.f / 3,   4.f / 3,   5.f / 3,   2,         7.f / 3,
                            2,         7.f / 3,   8.f / 3,   3};
    assert_close_arrays(t.y, want, 16, 1e-6, 1e-6, "bilinear values");
    lt_free(&t);
    sp.iparam[1] = AE_UPSAMPLE_NEAREST;
    sp.iparam[0] = 3;
    lt_make(&t, &sp, (ae_shape){1, 1, 2}, 1, 5);
    t.x[0] = 4;
    t.x[1] = 7;
    lt_forward(&t, 1);
    assert_int_equal(t.L.out_shape.h, 3);
    assert_int_equal(t.L.out_shape.w, 6);
    for (size_t i = 0; i < 18; i++) assert_true(t.y[i] == ((i % 6) < 3 ? 4.0f : 7.0f));
    lt_free(&t);
    for (int mode = 0; mode < 2; mode++)
        for (size_t s = 1; s <= 3; s++) {
            sp.iparam[0] = (int64_t)s;
            sp.iparam[1] = mode;
            lt_make(&t, &sp, (ae_shape){2, 3, 4}, 2, 9);
            lt_check_grad(&t, 1e-2, mode ? "upsample bilinear" : "upsample nearest");
            lt_free(&t);
        }
}

static void test_batchnorm_layer(void **state) {
    (void)state;
    static const ae_shape shapes[] = {{3, 3, 2}, {5, 1, 1}, {2, 1, 3}};
    for (size_t si = 0; si < 3; si++) {
        ae_layer_spec sp = conv_spec(AE_LAYER_BATCHNORM, 0, 0, 0, 0, 0, AE_ACT_IDENTITY, 1);
        sp.fparam[0] = 0.1;
        sp.fparam[1] = 1e-5;
        lt t;
        size_t B = 4;
        lt_make(&t, &sp, shapes[si], B, 13);
        size_t C = shapes[si].c, HW = shapes[si].h * shapes[si].w;
        assert_int_equal(t.L.w_count, C);
        assert_int_equal(t.L.b_count, C);
        assert_int_equal(t.L.s_count, 2 * C);
        assert_int_equal(t.L.min_train_batch, HW == 1 ? 2 : 1);
        assert_true(t.state[0] == 0.0f && t.state[C] == 1.0f); /* running mean 0, var 1 */
        lt_forward(&t, 1);
        /* training: per channel, (y - beta) / gamma has mean 0 and variance 1 */
        const float *gamma = t.params, *beta = t.params + C;
        for (size_t c = 0; c < C; c++) {
            double m = 0, v = 0, xm = 0, xv = 0, n = (double)(B * HW);
            for (size_t b = 0; b < B; b++)
                for (size_t j = 0; j < HW; j++) {
                    double z = ((double)t.y[(b * C + c) * HW + j] - beta[c]) / gamma[c];
                    m += z;
                    v += z * z;
                    xm += t.x[(b * C + c) * HW + j];
                }
            xm /= n;
            for (size_t b = 0; b < B; b++)
                for (size_t j = 0; j < HW; j++) {
                    double d = t.x[(b * C + c) * HW + j] - xm;
                    xv += d * d;
                }
            assert_true(fabs(m / n) < 1e-5);
            assert_true(fabs(v / n - 1.0) < 1e-3); /* eps 1e-5 against variances ~0.5 */
            /* running statistics: momentum 0.1, unbiased variance */
            assert_true(fabs(t.state[c] - 0.1 * xm) < 1e-6);
            assert_true(fabs(t.state[C + c] - (0.9 + 0.1 * xv / (n - 1))) < 1e-5);
        }
        /* inference: the running statistics */
        float rm[8], rv[8];
        memcpy(rm, t.state, C * sizeof *rm);
        memcpy(rv, t.state + C, C * sizeof *rv);
        lt_forward(&t, 0);
        for (size_t b = 0; b < B; b++)
            for (size_t c = 0; c < C; c++)
                for (size_t j = 0; j < HW; j++) {
                    size_t i = (b * C + c) * HW + j;
                    double want = (t.x[i] - rm[c]) / sqrt(rv[c] + 1e-5) * gamma[c] + beta[c];
                    assert_true(fabs(t.y[i] - want) < 1e-5);
                }
        assert_memory_equal(rm, t.state, C * sizeof *rm); /* inference changes no statistic */
        lt_check_grad(&t, 1e-2, "batchnorm");
        lt_free(&t);
    }
}

static void test_small_layers(void **state) {
    (void)state;
    lt t;
    /* avgpool */
    ae_layer_spec sp = conv_spec(AE_LAYER_AVGPOOL_1X1, 0, 0, 0, 0, 0, AE_ACT_IDENTITY, 0);
    lt_make(&t, &sp, (ae_shape){3, 3, 5}, 2, 3);
    lt_forward(&t, 1);
    for (size_t pl = 0; pl < 6; pl++) {
        double acc = 0;
        for (size_t j = 0; j < 15; j++) acc += t.x[pl * 15 + j];
        assert_true(fabs(t.y[pl] - acc / 15) < 1e-6);
    }
    assert_int_equal(t.L.out_shape.c, 3);
    assert_int_equal(t.L.out, 3);
    lt_check_grad(&t, 1e-2, "avgpool");
    lt_free(&t);
    /* flatten and unflatten */
    sp = conv_spec(AE_LAYER_FLATTEN, 0, 0, 0, 0, 0, AE_ACT_IDENTITY, 0);
    lt_make(&t, &sp, (ae_shape){2, 3, 2}, 2, 3);
    assert_int_equal(t.L.out_shape.c, 12);
    assert_int_equal(t.L.out_shape.h * t.L.out_shape.w, 1);
    lt_forward(&t, 1);
    assert_memory_equal(t.y, t.x, 24 * sizeof(float));
    lt_check_grad(&t, 1e-2, "flatten");
    lt_free(&t);
    sp = conv_spec(AE_LAYER_UNFLATTEN, 0, 0, 0, 0, 0, AE_ACT_IDENTITY, 0);
    sp.iparam[0] = 3;
    sp.iparam[1] = 2;
    sp.iparam[2] = 2;
    lt_make(&t, &sp, (ae_shape){12, 1, 1}, 2, 3);
    assert_int_equal(t.L.out_shape.h, 2);
    lt_check_grad(&t, 1e-2, "unflatten");
    lt_free(&t);
    ae_errbuf err;
    ae_layer bad = {0};
    bad.in_shape = (ae_shape){11, 1, 1};
    bad.in = 11;
    assert_int_equal(ae_layer_ops_for(AE_LAYER_UNFLATTEN)->setup(&bad, &sp, &err), AE_ERR_SHAPE);
    /* activation layer; GELU needs its input as the pre-activation */
    static const ae_activation acts[] = {AE_ACT_GELU, AE_ACT_SIGMOID, AE_ACT_TANH, AE_ACT_SOFTPLUS,
                                         AE_ACT_ELU};
    for (size_t i = 0; i < 5; i++) {
        sp = conv_spec(AE_LAYER_ACTIVATION, 0, 0, 0, 0, 0, acts[i], 0);
        lt_make(&t, &sp, (ae_shape){2, 2, 3}, 2, 3);
        lt_forward(&t, 1);
        for (size_t j = 0; j < 24; j++)
            assert_true(t.y[j] == ae_act_value(acts[i], 0.01f, t.x[j]));
        lt_check_grad(&t, 1e-2, ae_act_name(acts[i]));
        lt_free(&t);
    }
}

/* ------------------------------------------------------------------------
 * The builder and models
 * ------------------------------------------------------------------------ */

/* The seeds' conv autoencoder. */
static ae_config *seed_config(void) {
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, 1, 28, 28));
    OK(ae_config_add_conv2d(c, 16, 3, 2, 1, AE_ACT_RELU));
    OK(ae_config_add_conv2d(c, 32, 3, 2, 1, AE_ACT_RELU));
    OK(ae_config_add_conv2d(c, 64, 7, 1, 0, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_conv_transpose2d(c, 32, 7, 1, 0, 0, AE_ACT_RELU));
    OK(ae_config_add_conv_transpose2d(c, 16, 3, 2, 1, 1, AE_ACT_RELU));
    OK(ae_config_add_conv_transpose2d(c, 1, 3, 2, 1, 1, AE_ACT_SIGMOID));
    return c;
}

static void test_seed_model_shapes(void **state) {
    (void)state;
    ae_config *c = seed_config();
    ae_model *m;
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    static const size_t shapes[7][3] = {{1, 28, 28}, {16, 14, 14}, {32, 7, 7}, {64, 1, 1},
                                        {32, 7, 7},  {16, 14, 14}, {1, 28, 28}};
    static const size_t weights[6] = {16 * 1 * 9, 32 * 16 * 9, 64 * 32 * 49,
                                      64 * 32 * 49, 32 * 16 * 9, 16 * 1 * 9};
    static const size_t biases[6] = {16, 32, 64, 32, 16, 1};
    size_t total = 0;
    for (size_t l = 0; l < 6; l++) {
        size_t in[3], out[3];
        OK(ae_model_layer_shape(m, l, in, out));
        for (int d = 0; d < 3; d++) {
            assert_int_equal(in[d], shapes[l][d]);
            assert_int_equal(out[d], shapes[l + 1][d]);
        }
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        assert_int_equal(info.kind, l < 3 ? AE_LAYER_CONV2D : AE_LAYER_CONV_TRANSPOSE2D);
        assert_int_equal(info.weight_count, weights[l]);
        assert_int_equal(info.bias_count, biases[l]);
        total += weights[l] + biases[l];
    }
    assert_int_equal(ae_model_param_count(m), total);
    assert_int_equal(total, 210369); /* sum(p.numel() for p in model.parameters()) */
    assert_int_equal(ae_model_input_size(m), 784);
    assert_int_equal(ae_model_code_size(m), 64);
    assert_int_equal(ae_model_layer_shape(m, 6, NULL, NULL), AE_ERR_RANGE);
    assert_int_equal(ae_model_layer_shape(NULL, 0, NULL, NULL), AE_ERR_INVALID_ARG);
    /* PyTorch's init bounds: 1/sqrt(in*k*k) for Conv2d, 1/sqrt(out*k*k) for ConvTranspose2d */
    const double bound[6] = {1.0 / 3, 1.0 / 12, 1.0 / sqrt(32 * 49.0),
                             1.0 / sqrt(32 * 49.0), 1.0 / 12, 1.0 / 3};
    for (size_t l = 0; l < 6; l++) {
        float *w = malloc(weights[l] * sizeof *w);
        OK(ae_model_get_weights(m, l, w, weights[l]));
        float mx = 0;
        for (size_t i = 0; i < weights[l]; i++) mx = fmaxf(mx, fabsf(w[i]));
        assert_true(mx <= bound[l] && mx > 0.9 * bound[l]);
        free(w);
    }
    ae_model_destroy(m);
}

static void test_builder_errors(void **state) {
    (void)state;
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    assert_int_equal(ae_config_add_conv2d(c, 4, 3, 1, 1, AE_ACT_RELU), AE_ERR_STATE);
    assert_int_equal(ae_config_set_input_shape(c, 0, 28, 28), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_input_shape(c, 1 << 12, 1 << 12, 2), AE_ERR_RANGE);
    assert_int_equal(ae_config_set_input_shape(NULL, 1, 1, 1), AE_ERR_INVALID_ARG);
    OK(ae_config_set_input_shape(c, 2, 9, 7));
    assert_int_equal(ae_config_add_conv2d(c, 0, 3, 1, 1, AE_ACT_RELU), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_conv2d(c, 4, 0, 1, 1, AE_ACT_RELU), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_conv2d(c, 4, 65, 1, 1, AE_ACT_RELU), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_conv2d(c, 4, 3, 0, 1, AE_ACT_RELU), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_conv2d(c, 4, 3, 1, 65, AE_ACT_RELU), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_conv2d(c, 4, 3, 1, 1, (ae_activation)99), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_conv2d(c, 4, 10, 1, 0, AE_ACT_RELU), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_config_last_error(c), "does not fit"));
    assert_int_equal(ae_config_add_conv_transpose2d(c, 4, 3, 2, 1, 2, AE_ACT_RELU), AE_ERR_RANGE);
    assert_non_null(strstr(ae_config_last_error(c), "output_padding"));
    assert_int_equal(ae_config_add_conv_transpose2d(c, 4, 1, 1, 5, 0, AE_ACT_RELU), AE_ERR_SHAPE);
    assert_int_equal(ae_config_add_maxpool2d(c, 3, 1, 2), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_maxpool2d(c, 0, 1, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_maxpool2d(c, 11, 1, 0), AE_ERR_SHAPE);
    assert_int_equal(ae_config_add_upsample(c, 2, (ae_upsample_mode)7), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_upsample(c, 0, AE_UPSAMPLE_NEAREST), AE_ERR_RANGE);
    /* 2x9x7 by 64 is 2x576x448 (516096 values); by 64 again, too many */
    OK(ae_config_add_upsample(c, 64, AE_UPSAMPLE_NEAREST));
    assert_int_equal(ae_config_add_upsample(c, 64, AE_UPSAMPLE_NEAREST), AE_ERR_SHAPE);
    assert_int_equal(ae_config_add_conv2d(NULL, 4, 3, 1, 1, AE_ACT_RELU), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_batchnorm(NULL), AE_ERR_INVALID_ARG);
    ae_config_destroy(c);

    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, 2, 9, 7));
    OK(ae_config_add_conv2d(c, 4, 3, 2, 1, AE_ACT_RELU)); /* 4x5x4 */
    assert_int_equal(ae_config_set_input_shape(c, 1, 2, 3), AE_ERR_STATE);
    assert_int_equal(ae_config_set_input_size(c, 6), AE_ERR_STATE);
    assert_int_equal(ae_config_add_unflatten(c, 4, 4, 4), AE_ERR_SHAPE);
    assert_int_equal(ae_config_add_unflatten(c, 0, 4, 4), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_activation(c, (ae_activation)-1), AE_ERR_INVALID_ARG);
    OK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2));
    OK(ae_config_add_maxpool2d(c, 2, 0, 0)); /* 4x2x2 */
    assert_int_equal(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0),
                     AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_config_last_error(c), "maxpool2d"));
    assert_int_equal(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.5),
                     AE_ERR_INVALID_ARG);
    OK(ae_config_add_batchnorm(c));
    assert_int_equal(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 1.5),
                     AE_ERR_RANGE);
    assert_int_equal(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_EPS, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BN_EPS, 1),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_layer_set_float(c, AE_LAST_LAYER, (ae_layer_param)99, 1),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2),
                     AE_ERR_INVALID_ARG);
    OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.3));
    OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_BN_EPS, 1e-3));
    OK(ae_config_add_flatten(c)); /* 16 */
    assert_int_equal(ae_config_add_conv2d(c, 4, 3, 1, 0, AE_ACT_RELU), AE_ERR_SHAPE);
    OK(ae_config_add_dense(c, 8, AE_ACT_TANH));
    assert_int_equal(ae_config_mirror_decoder(c, AE_ACT_SIGMOID), AE_ERR_STATE);
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 16, AE_ACT_RELU));
    OK(ae_config_add_unflatten(c, 4, 2, 2));
    OK(ae_config_add_upsample(c, 2, AE_UPSAMPLE_BILINEAR));              /* 4x4x4 */
    OK(ae_config_add_conv_transpose2d(c, 2, 3, 2, 1, 0, AE_ACT_SIGMOID)); /* 2x7x7 */
    ae_model *m = NULL;
    assert_int_equal(ae_model_create(&m, c), AE_ERR_SHAPE); /* 98 outputs for 126 inputs */
    assert_null(m);
    assert_non_null(strstr(ae_config_last_error(c), "2x7x7"));
    OK(ae_config_add_flatten(c));
    OK(ae_config_add_dense(c, 126, AE_ACT_SIGMOID)); /* a dense output layer fixes it */
    OK(ae_model_create(&m, c));
    assert_int_equal(ae_model_output_size(m), 126);
    assert_int_equal(ae_model_layer_count(m), 11);
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, 0, &info));
    assert_int_equal(info.bias_count, 0);
    OK(ae_model_layer_info(m, 2, &info));
    assert_int_equal(info.kind, AE_LAYER_BATCHNORM);
    assert_int_equal(info.weight_count, 4);
    assert_int_equal(info.bias_count, 4);
    ae_model_destroy(m);
    ae_config_destroy(c);
}

/* A model mixing every layer kind but BatchNorm (whose training and
 * inference differ), 2x6x6 -> 5 -> 2x6x6. */
static ae_model *mixed_model(const ae_allocator *alloc, ae_optimizer opt, double lr,
                             ae_loss loss) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&c, alloc) != AE_OK) return NULL;
    if (ae_config_set_input_shape(c, 2, 6, 6) == AE_OK &&
        ae_config_add_conv2d(c, 3, 3, 1, 1, AE_ACT_TANH) == AE_OK &&       /* 3x6x6 */
        ae_config_add_maxpool2d(c, 2, 0, 0) == AE_OK &&                    /* 3x3x3 */
        ae_config_add_conv2d(c, 4, 3, 2, 1, AE_ACT_ELU) == AE_OK &&        /* 4x2x2 */
        ae_config_add_avgpool_1x1(c) == AE_OK &&                           /* 4x1x1 */
        ae_config_add_dense(c, 5, AE_ACT_TANH) == AE_OK && ae_config_mark_code(c) == AE_OK &&
        ae_config_add_dense(c, 12, AE_ACT_SOFTPLUS) == AE_OK &&
        ae_config_add_unflatten(c, 3, 2, 2) == AE_OK &&
        ae_config_add_upsample(c, 2, AE_UPSAMPLE_BILINEAR) == AE_OK &&     /* 3x4x4 */
        ae_config_add_conv_transpose2d(c, 3, 3, 1, 0, 0, AE_ACT_GELU) == AE_OK && /* 3x6x6 */
        ae_config_add_upsample(c, 2, AE_UPSAMPLE_NEAREST) == AE_OK &&      /* 3x12x12 */
        ae_config_add_conv2d(c, 2, 3, 2, 1, AE_ACT_IDENTITY) == AE_OK &&   /* 2x6x6 */
        ae_config_add_activation(c, AE_ACT_SIGMOID) == AE_OK &&
        ae_config_set_int(c, AE_P_OPTIMIZER, opt) == AE_OK &&
        ae_config_set_int(c, AE_P_LOSS, loss) == AE_OK &&
        ae_config_set_float(c, AE_P_LEARNING_RATE, lr) == AE_OK &&
        ae_config_set_int(c, AE_P_SEED, 5) == AE_OK)
        ae_model_create(&m, c);
    ae_config_destroy(c);
    return m;
}

static size_t total_params(const ae_model *m) {
    size_t n = 0;
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        n += info.weight_count + info.bias_count;
    }
    return n;
}

/* The whole model's gradient against finite differences of ae_evaluate: one
 * SGD step with learning rate 1 moves every parameter by minus its gradient.
 * MSE and BCE (from the logits of the final activation layer). */
static void check_mixed_gradient(ae_loss loss) {
    ae_model *m = mixed_model(NULL, AE_OPT_SGD, 1.0, loss);
    assert_non_null(m);
    enum { B = 3, D = 72 };
    float x[B * D];
    test_fill(x, B * D, 17, 0.05f, 0.95f);
    size_t n = total_params(m);
    float *p0 = malloc(n * sizeof *p0), *p1 = malloc(n * sizeof *p1), *p = malloc(n * sizeof *p);
    test_get_params(m, p0);
    float l0;
    OK(ae_train_step(m, x, NULL, B, &l0));
    test_get_params(m, p1);
    memcpy(p, p0, n * sizeof *p);
    test_set_params(m, p);
    for (size_t i = 0; i < n; i++) {
        double h = 1e-3;
        float lp, lm, s = p[i];
        p[i] = s + (float)h;
        test_set_params(m, p);
        OK(ae_evaluate(m, x, NULL, B, &lp));
        p[i] = s - (float)h;
        test_set_params(m, p);
        OK(ae_evaluate(m, x, NULL, B, &lm));
        p[i] = s;
        double fd = ((double)lp - (double)lm) / (2 * h);
        double an = (double)p0[i] - (double)p1[i];
        if (fabs(fd - an) > 2e-4 + 3e-2 * fabs(fd)) {
            free(p0);
            free(p1);
            free(p);
            ae_model_destroy(m);
            fail_msg("loss %d parameter %zu: analytic %g, finite difference %g", loss, i, an, fd);
        }
    }
    free(p0);
    free(p1);
    free(p);
    ae_model_destroy(m);
}

/* Padding wider than the input (3 around a 2x2 image): most kernel taps
 * see only padding. The code equals a direct convolution, and training and
 * the backward pass run; the sanitizer build checks that no pointer is formed
 * outside the image. */
static void test_padding_wider_than_input(void **state) {
    (void)state;
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, 1, 2, 2));
    OK(ae_config_add_conv2d(c, 1, 3, 1, 3, AE_ACT_IDENTITY)); /* 2x2 -> 6x6 */
    OK(ae_config_mark_code(c));
    OK(ae_config_add_conv2d(c, 1, 5, 1, 0, AE_ACT_IDENTITY)); /* 6x6 -> 2x2 */
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    enum { B = 3 };
    float x[B * 4], code[B * 36], w[9], bias, loss;
    test_fill(x, B * 4, 9, -1, 1);
    OK(ae_model_get_weights(m, 0, w, 9));
    OK(ae_model_get_bias(m, 0, &bias, 1));
    OK(ae_encode(m, x, B, code));
    for (int b = 0; b < B; b++)
        for (int oh = 0; oh < 6; oh++)
            for (int ow = 0; ow < 6; ow++) {
                double ref = bias;
                for (int ki = 0; ki < 3; ki++)
                    for (int kj = 0; kj < 3; kj++) {
                        int ih = oh + ki - 3, iw = ow + kj - 3;
                        if (ih >= 0 && ih < 2 && iw >= 0 && iw < 2)
                            ref += (double)w[ki * 3 + kj] * x[b * 4 + ih * 2 + iw];
                    }
                assert_float_equal(code[b * 36 + oh * 6 + ow], ref, 1e-5);
            }
    for (int step = 0; step < 3; step++) {
        OK(ae_train_step(m, x, NULL, B, &loss));
        assert_true(isfinite(loss));
    }
    ae_model_destroy(m);
}

static void test_mixed_model_gradient(void **state) {
    (void)state;
    check_mixed_gradient(AE_LOSS_MSE);
    check_mixed_gradient(AE_LOSS_BCE);
}

/* Conv - BatchNorm2d - ReLU - MaxPool | dense code with BatchNorm1d | back up. */
static ae_model *bn_model(const ae_allocator *alloc) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&c, alloc) != AE_OK) return NULL;
    if (ae_config_set_input_shape(c, 1, 6, 6) == AE_OK &&
        ae_config_add_conv2d(c, 3, 3, 1, 1, AE_ACT_IDENTITY) == AE_OK &&
        ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0) == AE_OK &&
        ae_config_add_batchnorm(c) == AE_OK && ae_config_add_activation(c, AE_ACT_RELU) == AE_OK &&
        ae_config_add_maxpool2d(c, 2, 2, 0) == AE_OK && ae_config_add_flatten(c) == AE_OK &&
        ae_config_add_dense(c, 6, AE_ACT_IDENTITY) == AE_OK && ae_config_add_batchnorm(c) == AE_OK &&
        ae_config_mark_code(c) == AE_OK && ae_config_add_dense(c, 27, AE_ACT_RELU) == AE_OK &&
        ae_config_add_unflatten(c, 3, 3, 3) == AE_OK &&
        ae_config_add_upsample(c, 2, AE_UPSAMPLE_NEAREST) == AE_OK &&
        ae_config_add_conv2d(c, 1, 3, 1, 1, AE_ACT_SIGMOID) == AE_OK &&
        ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-2) == AE_OK)
        ae_model_create(&m, c);
    ae_config_destroy(c);
    return m;
}

static void test_batchnorm_model(void **state) {
    (void)state;
    ae_model *m = bn_model(NULL);
    assert_non_null(m);
    enum { B = 5, D = 36 };
    float x[B * D], out0[B * D], out1[B * D], out2[B * D], loss, ev;
    test_fill(x, B * D, 3, 0, 1);
    /* inference before training: running mean 0 and var 1 */
    OK(ae_reconstruct(m, x, B, out0));
    OK(ae_reconstruct(m, x, B, out1));
    assert_memory_equal(out0, out1, sizeof out0); /* inference changes nothing */
    /* a training step reports the training-mode loss; evaluate uses running stats */
    OK(ae_train_step(m, x, NULL, B, &loss));
    OK(ae_reconstruct(m, x, B, out1));
    assert_memory_not_equal(out0, out1, sizeof out0);
    OK(ae_evaluate(m, x, NULL, B, &ev));
    double mse = 0;
    for (size_t i = 0; i < B * D; i++) mse += ((double)out1[i] - x[i]) * ((double)out1[i] - x[i]);
    assert_true(fabs(mse / (B * D) - ev) < 1e-6);
    /* a batch of one: BatchNorm1d cannot train on it, inference can run it */
    assert_int_equal(ae_train_step(m, x, NULL, 1, &loss), AE_ERR_SHAPE);
    assert_non_null(strstr(ae_model_last_error(m), "batchnorm"));
    OK(ae_reconstruct(m, x, 1, out2));
    assert_close_arrays(out2, out1, D, 1e-5, 1e-6, "batch-1 inference");
    /* a step that fails after its forward pass leaves the running statistics alone */
    OK(ae_reconstruct(m, x, B, out1));
    float big[B * D];
    for (size_t i = 0; i < B * D; i++) big[i] = 3e38f; /* finite, but its squared error is not */
    assert_int_equal(ae_train_step(m, x, big, B, &loss), AE_ERR_NUMERIC);
    OK(ae_reconstruct(m, x, B, out2));
    assert_memory_equal(out1, out2, sizeof out1);
    assert_int_equal(ae_model_step_count(m), 1);
    /* it learns */
    float first;
    OK(ae_evaluate(m, x, NULL, B, &first));
    for (int i = 0; i < 200; i++) OK(ae_train_step(m, x, NULL, B, &loss));
    OK(ae_evaluate(m, x, NULL, B, &ev));
    assert_true(ev < 0.5f * first);
    ae_model_destroy(m);
}

/* The seed blog's mix: the conv encoder with a dense decoder, and a dense
 * layer reading a c x h x w tensor directly (flattened, as nn.Flatten then
 * nn.Linear). */
static void test_conv_encoder_dense_decoder(void **state) {
    (void)state;
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, 1, 28, 28));
    OK(ae_config_add_conv2d(c, 16, 3, 2, 1, AE_ACT_RELU));
    OK(ae_config_add_conv2d(c, 32, 3, 2, 1, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 64, AE_ACT_IDENTITY)); /* on 32x7x7 = 1568 values */
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 256, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 784, AE_ACT_SIGMOID));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 3e-3));
    ae_model *m;
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    size_t in[3], out[3];
    OK(ae_model_layer_shape(m, 2, in, out));
    assert_true(in[0] == 32 && in[1] == 7 && in[2] == 7);
    assert_true(out[0] == 64 && out[1] == 1 && out[2] == 1);
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, 2, &info));
    assert_int_equal(info.weight_count, 64 * 1568); /* nn.Linear(1568, 64) */
    assert_int_equal(ae_model_code_size(m), 64);
    enum { B = 8 };
    float *x = malloc(B * 784 * sizeof *x), code[B * 64], loss, first = 0;
    assert_non_null(x);
    for (size_t i = 0; i < B * 784; i++) x[i] = (float)(((i % 28) / 7 + (i / 28 % 28) / 7) % 2);
    for (int i = 0; i < 60; i++) {
        OK(ae_train_step(m, x, NULL, B, &loss));
        if (i == 0) first = loss;
    }
    assert_true(loss < 0.5f * first);
    OK(ae_encode(m, x, B, code));
    free(x);
    ae_model_destroy(m);
}

/* A batch whose convolution would exceed a BLAS dimension (int) is refused
 * before any data is read or memory allocated. */
static void test_batch_limit(void **state) {
    (void)state;
    ae_config *c;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_shape(c, 1, 4096, 4096));
    OK(ae_config_add_conv2d(c, 1, 1, 1, 0, AE_ACT_IDENTITY));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_conv2d(c, 1, 1, 1, 0, AE_ACT_SIGMOID));
    ae_model *m;
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    float dummy[4] = {0}, loss;
    assert_int_equal(ae_train_step(m, dummy, NULL, 128, &loss), AE_ERR_RANGE);
    assert_non_null(strstr(ae_model_last_error(m), "at most 127"));
    assert_int_equal(ae_reconstruct(m, dummy, 200, dummy), AE_ERR_RANGE);
    assert_int_equal(ae_model_step_count(m), 0);
    ae_model_destroy(m);
}

static void test_allocation(void **state) {
    (void)state;
    /* every allocation of creation and the first step may fail, cleanly */
    for (long fail = 0;; fail++) {
        test_alloc ta = {0, 0, fail};
        ae_allocator a = test_allocator(&ta);
        ae_model *m = bn_model(&a);
        if (!m) {
            assert_int_equal(ta.live, 0);
            continue;
        }
        float x[4 * 36], loss;
        test_fill(x, 4 * 36, 1, 0, 1);
        ae_status st = ae_train_step(m, x, NULL, 4, &loss);
        ae_model_destroy(m);
        assert_int_equal(ta.live, 0);
        if (st == AE_OK && ta.count <= fail) break;
        assert_true(st == AE_OK || st == AE_ERR_OUT_OF_MEMORY);
    }
    /* After the first step at a batch size, steps allocate nothing; on
     * OpenBLAS neither at a smaller batch, while on oneDNN the first pass at
     * a new batch size makes its convolution primitives (their plans). */
    test_alloc ta = {0, 0, -1};
    ae_allocator a = test_allocator(&ta);
    ae_model *m = mixed_model(&a, AE_OPT_ADAM, 1e-3, AE_LOSS_MSE);
    assert_non_null(m);
    float x[8 * 72], out[8 * 72], loss;
    test_fill(x, 8 * 72, 2, 0, 1);
    OK(ae_train_step(m, x, NULL, 8, &loss));
    long count = ta.count;
    for (int i = 0; i < 3; i++) OK(ae_train_step(m, x, NULL, 8, &loss));
    assert_int_equal(ta.count, count);
    OK(ae_train_step(m, x, NULL, 5, &loss));
    if (ae_model_backend(m) != AE_BACKEND_ONEDNN) assert_int_equal(ta.count, count);
    count = ta.count;
    OK(ae_train_step(m, x, NULL, 5, &loss));
    OK(ae_train_step(m, x, NULL, 8, &loss));
    OK(ae_reconstruct(m, x, 8, out));
    OK(ae_evaluate(m, x, NULL, 8, &loss));
    OK(ae_evaluate(m, x, NULL, 5, &loss));
    assert_int_equal(ta.count, count);
    ae_model_destroy(m);
    assert_int_equal(ta.live, 0);
}

/* ------------------------------------------------------------------------
 * PyTorch parity (tests/fixtures/README.md, "Convolutional parity fixtures")
 * ------------------------------------------------------------------------ */

#define LOSS_TOL 1e-4
#define PARAM_TOL 1e-4
#define UPDATE_TOL 1e-3
/* Eval-mode output, absolute: a float64 replay is within 1.5e-7; a running
 * variance of BatchNorm1d 0.5% off moves it by 5e-5. */
#define OUT_TOL 1e-5

typedef struct pstate {
    fixture fx;
    ae_config *cfg;
    ae_model *m;
    float *buf, *init, *out;
} pstate;

static int psetup(void **st) {
    pstate *s = calloc(1, sizeof *s);
    *st = s;
    return s ? 0 : -1;
}

static int pteardown(void **st) {
    pstate *s = *st;
    if (s) {
        fixture_free(&s->fx);
        ae_model_destroy(s->m);
        ae_config_destroy(s->cfg);
        free(s->buf);
        free(s->init);
        free(s->out);
        free(s);
    }
    return 0;
}

#define CFG(call)                                                                                 \
    do {                                                                                          \
        ae_status st_ = (call);                                                                   \
        if (st_ != AE_OK)                                                                         \
            fail_msg("%s: %s: %s", #call, ae_status_name(st_), ae_config_last_error(cfg));        \
    } while (0)

static void build_seed(ae_config *cfg) {
    CFG(ae_config_set_input_shape(cfg, 1, 28, 28));
    CFG(ae_config_add_conv2d(cfg, 16, 3, 2, 1, AE_ACT_RELU));
    CFG(ae_config_add_conv2d(cfg, 32, 3, 2, 1, AE_ACT_RELU));
    CFG(ae_config_add_conv2d(cfg, 64, 7, 1, 0, AE_ACT_IDENTITY));
    CFG(ae_config_mark_code(cfg));
    CFG(ae_config_add_conv_transpose2d(cfg, 32, 7, 1, 0, 0, AE_ACT_RELU));
    CFG(ae_config_add_conv_transpose2d(cfg, 16, 3, 2, 1, 1, AE_ACT_RELU));
    CFG(ae_config_add_conv_transpose2d(cfg, 1, 3, 2, 1, 1, AE_ACT_SIGMOID));
    CFG(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-3));
}

/* gen_conv_parity.py's bn_model. */
static void build_bn(ae_config *cfg) {
    CFG(ae_config_set_input_shape(cfg, 1, 12, 12));
    CFG(ae_config_add_conv2d(cfg, 4, 3, 1, 1, AE_ACT_IDENTITY));
    CFG(ae_config_layer_set_int(cfg, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CFG(ae_config_add_batchnorm(cfg));
    CFG(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.5));
    CFG(ae_config_add_activation(cfg, AE_ACT_RELU));
    CFG(ae_config_add_maxpool2d(cfg, 2, 0, 0));
    CFG(ae_config_add_conv2d(cfg, 8, 3, 2, 1, AE_ACT_RELU));
    CFG(ae_config_add_flatten(cfg));
    CFG(ae_config_add_dense(cfg, 16, AE_ACT_TANH));
    CFG(ae_config_mark_code(cfg));
    CFG(ae_config_add_dense(cfg, 72, AE_ACT_IDENTITY));
    CFG(ae_config_layer_set_int(cfg, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CFG(ae_config_add_batchnorm(cfg));
    CFG(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.5));
    CFG(ae_config_add_activation(cfg, AE_ACT_RELU));
    CFG(ae_config_add_unflatten(cfg, 8, 3, 3));
    CFG(ae_config_add_upsample(cfg, 2, AE_UPSAMPLE_NEAREST));
    CFG(ae_config_add_conv2d(cfg, 4, 3, 1, 1, AE_ACT_IDENTITY));
    CFG(ae_config_layer_set_int(cfg, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
    CFG(ae_config_add_batchnorm(cfg));
    CFG(ae_config_layer_set_float(cfg, AE_LAST_LAYER, AE_LAYER_BN_MOMENTUM, 0.5));
    CFG(ae_config_add_activation(cfg, AE_ACT_LEAKY_RELU));
    CFG(ae_config_add_upsample(cfg, 2, AE_UPSAMPLE_BILINEAR));
    CFG(ae_config_add_conv2d(cfg, 1, 3, 1, 1, AE_ACT_SIGMOID));
    CFG(ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-2));
}

static size_t meta(const fixture *fx, size_t a, size_t i) {
    if (i >= fx->count[a]) fail_msg("fixture array %zu too short", a);
    float v = fx->array[a][i];
    if (!(v >= 0.0f && v <= 16777216.0f && v == floorf(v)))
        fail_msg("fixture array %zu [%zu] = %g is not a count", a, i, (double)v);
    return (size_t)v;
}

/* A parameter tensor of the model: (layer, weight or bias), in PyTorch's order. */
typedef struct tensor_ref {
    size_t layer;
    int bias;
    size_t count;
} tensor_ref;

static void run_parity(void **st, const char *file, void (*build)(ae_config *)) {
    pstate *s = *st;
    if (fixture_load(&s->fx, file) != 0) fail_msg("cannot load fixture %s", file);
    const fixture *fx = &s->fx;
    size_t B = meta(fx, 0, 0), S = meta(fx, 0, 1), C = meta(fx, 0, 2), H = meta(fx, 0, 3),
           W = meta(fx, 0, 4), T = meta(fx, 0, 5), D = C * H * W;
    if (fx->count[1] != 5 * T || fx->n != 2 + S + 1 + T + 1)
        fail_msg("%s: %zu arrays, expected %zu", file, fx->n, 2 + S + 1 + T + 1);
    OK(ae_config_create(&s->cfg, NULL));
    ae_config *cfg = s->cfg;
    build(cfg);
    CFG(ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM));
    CFG(ae_model_create(&s->m, cfg));
    ae_model *m = s->m;
    assert_int_equal(ae_model_input_size(m), D);
    /* the model's tensors, in order, against the fixture's table */
    tensor_ref refs[64];
    size_t nt = 0, total = 0;
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        OK(ae_model_layer_info(m, l, &info));
        if (info.weight_count && nt < 64) refs[nt++] = (tensor_ref){l, 0, info.weight_count};
        if (info.bias_count && nt < 64) refs[nt++] = (tensor_ref){l, 1, info.bias_count};
    }
    assert_int_equal(nt, T);
    s->init = malloc(ae_model_param_count(m) * sizeof(float));
    s->buf = malloc(ae_model_param_count(m) * sizeof(float));
    s->out = malloc(B * D * sizeof(float));
    assert_non_null(s->init);
    assert_non_null(s->buf);
    assert_non_null(s->out);
    float *init = s->init;
    for (size_t t = 0; t < T; t++) {
        const float *row = fx->array[1] + 5 * t;
        assert_int_equal(meta(fx, 1, 5 * t), refs[t].count);
        float *p = init + total;
        test_fill(p, refs[t].count, (uint32_t)row[1], row[2], row[3]);
        if (refs[t].bias)
            OK(ae_model_set_bias(m, refs[t].layer, p, refs[t].count));
        else
            OK(ae_model_set_weights(m, refs[t].layer, p, refs[t].count));
        total += refs[t].count;
    }
    assert_int_equal(total, ae_model_param_count(m));
    const float *losses = fx->array[2 + S];
    assert_int_equal(fx->count[2 + S], S);
    for (size_t step = 0; step < S; step++) {
        assert_int_equal(fx->count[2 + step], B * D);
        float loss = NAN;
        ae_status st2 = ae_train_step(m, fx->array[2 + step], NULL, B, &loss);
        if (st2) fail_msg("%s step %zu: %s", file, step + 1, ae_model_last_error(m));
        double want = losses[step];
        if (!(fabs((double)loss - want) <= LOSS_TOL * fabs(want)))
            fail_msg("%s step %zu: loss %.9g, PyTorch %.9g", file, step + 1, (double)loss, want);
    }
    /* parameters after the last step, every stride-th element */
    int bad = 0;
    total = 0;
    for (size_t t = 0; t < T; t++) {
        size_t n = refs[t].count, stride = meta(fx, 1, 5 * t + 4);
        const float *ref = fx->array[3 + S + t];
        if (stride == 0 || fx->count[3 + S + t] != (n + stride - 1) / stride)
            fail_msg("%s: tensor %zu stored with a bad stride", file, t);
        if (refs[t].bias)
            OK(ae_model_get_bias(m, refs[t].layer, s->buf, n));
        else
            OK(ae_model_get_weights(m, refs[t].layer, s->buf, n));
        double e2 = 0, r2 = 0, u2 = 0;
        for (size_t i = 0, j = 0; i < n; i += stride, j++) {
            double d = (double)s->buf[i] - ref[j], u = (double)ref[j] - init[total + i];
            e2 += d * d;
            r2 += (double)ref[j] * ref[j];
            u2 += u * u;
        }
        double rel = sqrt(e2 / r2), rel_u = u2 > 0 ? sqrt(e2 / u2) : 0;
        if (!(rel <= PARAM_TOL && rel_u <= UPDATE_TOL)) {
            print_error("%s: layer %zu %s: rel L2 error %.3g (tol %g), relative to the update %.3g "
                        "(tol %g)\n",
                        file, refs[t].layer, refs[t].bias ? "bias" : "weight", rel, PARAM_TOL,
                        rel_u, UPDATE_TOL);
            bad = 1;
        }
        total += n;
    }
    if (bad) fail_msg("%s: parameters differ from PyTorch (details above)", file);
    /* inference on the first batch: BatchNorm with its running statistics */
    assert_int_equal(fx->count[3 + S + T], B * D);
    OK(ae_reconstruct(m, fx->array[2], B, s->out));
    assert_close_arrays(s->out, fx->array[3 + S + T], B * D, 0, OUT_TOL, "eval-mode output");
    assert_int_equal(ae_model_step_count(m), S);
}

static void test_parity_seed_conv_ae(void **st) {
    run_parity(st, "conv_seed_adam", build_seed);
}

static void test_parity_bn_pool_upsample(void **st) {
    run_parity(st, "conv_bn_pool_up", build_bn);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d_layer),
        cmocka_unit_test(test_conv_transpose2d_layer),
        cmocka_unit_test(test_maxpool2d_layer),
        cmocka_unit_test(test_upsample_layer),
        cmocka_unit_test(test_batchnorm_layer),
        cmocka_unit_test(test_small_layers),
        cmocka_unit_test(test_seed_model_shapes),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_mixed_model_gradient),
        cmocka_unit_test(test_batchnorm_model),
        cmocka_unit_test(test_conv_encoder_dense_decoder),
        cmocka_unit_test(test_batch_limit),
        cmocka_unit_test(test_allocation),
        cmocka_unit_test(test_padding_wider_than_input),
        cmocka_unit_test_setup_teardown(test_parity_seed_conv_ae, psetup, pteardown),
        cmocka_unit_test_setup_teardown(test_parity_bn_pool_upsample, psetup, pteardown),
    };
    return cmocka_run_group_tests_name("conv", tests, NULL, NULL);
}
