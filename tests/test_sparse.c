/* Tests of the sparse autoencoder operators: exact masks of the selection
 * layers (ties, k = width, k > width refused, batch smaller than k, NaN),
 * their gradients, the KL and L1 penalties by finite differences, the
 * sparse dense paths against the dense ones, the mode, the statistics,
 * refusal of bad input, mirrored decoders around selection layers (the
 * same model as written by hand, tied too), and PyTorch parity over 3 Adam steps
 * (tests/fixtures/sparse_*.bin, written by gen_sparse_parity.py). */
#include "test_util.h"

#include "fixture.h"
#include "layers/layers.h"
#include "losses/losses.h"
#include "model/model.h"

#define OK(call) assert_int_equal((call), AE_OK)

/* ---- selection layers, directly through their ops ---- */

typedef struct layer_run {
    ae_layer L;
    float scratch[8192];
    float state[2];
} layer_run;

static ae_status make_layer(layer_run *r, ae_layer_kind kind, size_t width, int64_t k,
                            double fraction) {
    memset(r, 0, sizeof *r);
    ae_layer_spec spec = {.kind = kind, .act = AE_ACT_IDENTITY};
    spec.iparam[0] = k;
    spec.fparam[0] = fraction;
    r->L.ops = ae_layer_ops_for(kind);
    r->L.kind = kind;
    r->L.spec = spec;
    r->L.in_shape = (ae_shape){width, 1, 1};
    r->L.in = width;
    r->L.act = AE_ACT_IDENTITY;
    ae_errbuf err;
    ae_status st = r->L.ops->setup(&r->L, &spec, &err);
    r->L.out = ae_shape_size(r->L.out_shape);
    if (st == AE_OK) assert_true(r->L.ops->scratch_floats(&r->L, 8) <= 8192);
    return st;
}

static void fwd(layer_run *r, const float *x, float *y, size_t batch, int train) {
    ae_layer_io io = {.batch = batch, .train = train, .x = x, .y = y, .scratch = r->scratch,
                      .state = r->L.s_count ? r->state : NULL, .backend = test_layer_backend()};
    r->L.ops->forward(&r->L, NULL, &io);
}

static void bwd(layer_run *r, float *dy, float *dx, size_t batch) {
    ae_layer_io io = {.batch = batch, .train = 1, .dy = dy, .dx = dx, .scratch = r->scratch,
                      .state = r->L.s_count ? r->state : NULL, .backend = test_layer_backend()};
    r->L.ops->backward(&r->L, NULL, NULL, &io, 0);
}

static void test_select_helper(void **state) {
    (void)state;
    int32_t idx[8];
    const float x[] = {1, 3, 3, 2, 3, -1};
    assert_int_equal(ae_select_topk(x, 6, 1, 2, idx), 0);
    assert_int_equal(idx[0], 1); /* ties: the lower index wins */
    assert_int_equal(idx[1], 2);
    assert_int_equal(ae_select_topk(x, 6, 1, 4, idx), 0);
    int32_t want4[] = {1, 2, 3, 4};
    assert_memory_equal(idx, want4, sizeof want4);
    assert_int_equal(ae_select_topk(x, 6, 1, 6, idx), 0); /* k = n keeps all */
    for (int i = 0; i < 6; i++) assert_int_equal(idx[i], i);
    /* Strided (a column), and equal values everywhere. */
    const float col[] = {5, 0, 5, 0, 5, 0, 5, 0};
    assert_int_equal(ae_select_topk(col, 4, 2, 3, idx), 0);
    assert_int_equal(idx[0], 0);
    assert_int_equal(idx[1], 1);
    assert_int_equal(idx[2], 2);
    const float neg[] = {-5, -1, -3, -1};
    assert_int_equal(ae_select_topk(neg, 4, 1, 2, idx), 0); /* signed: -1 and -1 */
    assert_int_equal(idx[0], 1);
    assert_int_equal(idx[1], 3);
    const float bad[] = {1, NAN, 2, 3};
    assert_int_equal(ae_select_topk(bad, 4, 1, 2, idx), -1);
    assert_int_equal(ae_select_topk(bad, 4, 1, 1, idx), -1); /* NaN after the heap */
    /* Many entries (the qsort branch), against a brute-force count. */
    float big[300];
    int32_t bi[100];
    test_fill(big, 300, 5, -1.0f, 1.0f);
    for (int i = 0; i < 300; i += 7) big[i] = 0.5f; /* ties */
    assert_int_equal(ae_select_topk(big, 300, 1, 100, bi), 0);
    for (int t = 1; t < 100; t++) assert_true(bi[t - 1] < bi[t]);
    for (int i = 0; i < 300; i++) {
        int better = 0, kept = 0;
        for (int j = 0; j < 300; j++)
            better += big[j] > big[i] || (big[j] == big[i] && j < i);
        for (int t = 0; t < 100; t++) kept |= bi[t] == i;
        assert_int_equal(kept, better < 100);
    }
}

static void test_topk_layer_masks(void **state) {
    (void)state;
    layer_run r;
    OK(make_layer(&r, AE_LAYER_TOPK, 5, 2, 0));
    assert_int_equal(r.L.out, 5);
    assert_int_equal(r.L.sparse_k, 2);
    const float x[] = {1, 3, 3, 2, 3, /* row 2 */ -4, -1, -2, -1, -9};
    float y[10], dy[10], dx[10];
    fwd(&r, x, y, 2, 1);
    const float want[] = {0, 3, 3, 0, 0, 0, -1, 0, -1, 0};
    assert_memory_equal(y, want, sizeof want);
    const int32_t *idx = r.L.ops->kept_index(&r.L, r.scratch);
    int32_t want_idx[] = {1, 2, 1, 3};
    assert_memory_equal(idx, want_idx, sizeof want_idx);
    /* Same in inference. */
    float y2[10];
    fwd(&r, x, y2, 2, 0);
    assert_memory_equal(y2, want, sizeof want);
    /* Gradient only through the kept entries. */
    for (int i = 0; i < 10; i++) dy[i] = (float)(i + 1);
    bwd(&r, dy, dx, 2);
    const float want_dx[] = {0, 2, 3, 0, 0, 0, 7, 0, 9, 0};
    assert_memory_equal(dx, want_dx, sizeof want_dx);
    /* A wide row (the heap path), a short one (ranks), a long dense one (quickselect),
     * with many ties, against a brute-force rank. */
    for (int pass = 0; pass < 3; pass++) {
        size_t n = pass == 2 ? 300 : pass ? 40 : 320, k = pass == 2 ? 100 : pass ? 13 : 10;
        layer_run w;
        OK(make_layer(&w, AE_LAYER_TOPK, n, (int64_t)k, 0));
        float xr[2 * 320], yr[2 * 320];
        test_fill(xr, 2 * n, 77 + (uint32_t)pass, -1.0f, 1.0f);
        for (size_t i = 0; i < 2 * n; i += 3) xr[i] = 0.25f; /* ties at the boundary */
        for (size_t i = 0; i < 2 * n; i += 5) xr[i] = 0.75f;
        fwd(&w, xr, yr, 2, 1);
        for (size_t r = 0; r < 2; r++) {
            const float *xx = xr + r * n;
            for (size_t i = 0; i < n; i++) {
                size_t better = 0;
                for (size_t j = 0; j < n; j++) better += xx[j] > xx[i] || (xx[j] == xx[i] && j < i);
                assert_true(yr[r * n + i] == (better < k ? xx[i] : 0.0f));
            }
            const int32_t *ix = w.L.ops->kept_index(&w.L, w.scratch) + r * k;
            for (size_t t = 1; t < k; t++) assert_true(ix[t - 1] < ix[t]);
        }
    }
    /* k equal to the width keeps everything. */
    OK(make_layer(&r, AE_LAYER_TOPK, 5, 5, 0));
    fwd(&r, x, y, 2, 1);
    assert_memory_equal(y, x, sizeof y);
    /* k larger than the width, or 0, is refused. */
    assert_int_equal(make_layer(&r, AE_LAYER_TOPK, 5, 6, 0), AE_ERR_RANGE);
    assert_int_equal(make_layer(&r, AE_LAYER_TOPK, 5, 0, 0), AE_ERR_RANGE);
    /* A NaN row becomes NaN (the model then refuses the step); others are unaffected. */
    OK(make_layer(&r, AE_LAYER_TOPK, 5, 2, 0));
    float xn[10];
    memcpy(xn, x, sizeof xn);
    xn[7] = NAN;
    fwd(&r, xn, y, 2, 1);
    assert_memory_equal(y, want, 5 * sizeof(float));
    for (int i = 5; i < 10; i++) assert_true(isnan(y[i]));
}

/* Every selection kernel (chunk maxima on wide rows, including rows shorter
 * than a chunk or not a multiple of one; ranks on short rows; quickselect;
 * k = width) on random rows with heavy ties and signed zeros, against a
 * brute-force rank; the backward pass with and without dx_kept_only. */
static void test_topk_kernels(void **state) {
    (void)state;
    const size_t ns[] = {1, 5, 15, 16, 17, 40, 64, 100, 128, 129, 200, 257, 300};
    enum { B = 3 };
    uint32_t seed = 500;
    for (size_t a = 0; a < sizeof ns / sizeof *ns; a++) {
        size_t n = ns[a];
        const size_t ks[] = {1, 2, n / 16 ? n / 16 : 1, n / 3 ? n / 3 : 1, n > 1 ? n - 1 : 1, n};
        for (size_t b = 0; b < sizeof ks / sizeof *ks; b++) {
            size_t k = ks[b];
            if (k > n) continue;
            layer_run w;
            OK(make_layer(&w, AE_LAYER_TOPK, n, (int64_t)k, 0));
            float x[B * 300], y[B * 300], dy[B * 300], dx[B * 300];
            test_fill(x, B * n, seed++, -1.0f, 1.0f);
            for (size_t i = 0; i < B * n; i++) {
                /* Few distinct values in the first row (ties everywhere),
                 * signed zeros in the second. */
                if (i < n) x[i] = (float)((int)(x[i] * 3.0f)) / 2.0f;
                if (i >= n && i < 2 * n && i % 4 == 0) x[i] = i % 8 ? 0.0f : -0.0f;
            }
            fwd(&w, x, y, B, 1);
            const int32_t *idx = w.L.ops->kept_index(&w.L, w.scratch);
            for (size_t r = 0; r < B; r++) {
                const float *xx = x + r * n;
                size_t t = 0;
                for (size_t i = 0; i < n; i++) {
                    size_t better = 0;
                    for (size_t j = 0; j < n; j++)
                        better += xx[j] > xx[i] || (xx[j] == xx[i] && j < i);
                    int kept = better < k;
                    assert_true(kept ? y[r * n + i] == xx[i] : y[r * n + i] == 0.0f);
                    if (kept) assert_int_equal(idx[r * k + t++], (int32_t)i);
                }
                assert_int_equal(t, k);
            }
            test_fill(dy, B * n, seed++, -1.0f, 1.0f);
            for (int only = 0; only < 2; only++) {
                for (size_t i = 0; i < B * n; i++) dx[i] = 42.0f;
                ae_sparse_io sp = {.dx_kept_only = only};
                ae_layer_io io = {.batch = B, .train = 1, .dy = dy, .dx = dx,
                                  .scratch = w.scratch, .sparse = &sp,
                                  .backend = test_layer_backend()};
                w.L.ops->backward(&w.L, NULL, NULL, &io, 0);
                for (size_t r = 0; r < B; r++)
                    for (size_t i = 0, t = 0; i < n; i++) {
                        int kept = t < k && idx[r * k + t] == (int32_t)i;
                        t += kept;
                        float want = kept ? dy[r * n + i] : only ? 42.0f : 0.0f;
                        assert_true(dx[r * n + i] == want);
                    }
            }
            /* A NaN row becomes NaN; the others are unaffected. */
            x[n + n / 2] = NAN;
            fwd(&w, x, y, B, 1);
            for (size_t i = 0; i < n; i++) assert_true(isnan(y[n + i]));
        }
    }
}

static void test_lifetime_layer_masks(void **state) {
    (void)state;
    layer_run r;
    OK(make_layer(&r, AE_LAYER_LIFETIME_TOPK, 3, 2, 0));
    /* 4 samples x 3 features; column 1 has ties (lower row wins). */
    const float x[] = {1, 5, -1, /**/ 4, 5, -2, /**/ 2, 5, -3, /**/ 3, 0, -4};
    float y[12], dy[12], dx[12];
    fwd(&r, x, y, 4, 1);
    const float want[] = {0, 5, -1, 4, 5, -2, 0, 0, 0, 3, 0, 0};
    assert_memory_equal(y, want, sizeof want);
    for (int i = 0; i < 12; i++) dy[i] = (float)(i + 1);
    bwd(&r, dy, dx, 4);
    const float want_dx[] = {0, 2, 3, 4, 5, 6, 0, 0, 0, 10, 0, 0};
    assert_memory_equal(dx, want_dx, sizeof want_dx);
    /* Inference passes through. */
    fwd(&r, x, y, 4, 0);
    assert_memory_equal(y, x, sizeof y);
    /* A batch no larger than k keeps everything (and backward passes all). */
    fwd(&r, x, y, 2, 1);
    assert_memory_equal(y, x, 6 * sizeof(float));
    bwd(&r, dy, dx, 2);
    assert_memory_equal(dx, dy, 6 * sizeof(float));
    assert_int_equal(ae_lifetime_k(&r.L, 2), 2);
    /* As a fraction: k = ceil(f * B). */
    OK(make_layer(&r, AE_LAYER_LIFETIME_TOPK, 3, 0, 0.3));
    assert_int_equal(ae_lifetime_k(&r.L, 4), 2);
    assert_int_equal(ae_lifetime_k(&r.L, 10), 3);
    assert_int_equal(ae_lifetime_k(&r.L, 1), 1);
    fwd(&r, x, y, 4, 1);
    assert_memory_equal(y, want, sizeof want);
    /* NaN in a column makes that column NaN. */
    float xn[12];
    memcpy(xn, x, sizeof xn);
    xn[3] = NAN;
    fwd(&r, xn, y, 4, 1);
    for (int b = 0; b < 4; b++) {
        assert_true(isnan(y[b * 3]));
        assert_false(isnan(y[b * 3 + 1]));
    }
}

static void test_batch_topk_layer(void **state) {
    (void)state;
    layer_run r;
    OK(make_layer(&r, AE_LAYER_BATCH_TOPK, 3, 1, 0));
    assert_int_equal(r.L.s_count, 2);
    /* B=3, k=1: the 3 largest of 9, ties to the lower position. */
    const float x[] = {1, 9, 2, /**/ 3, 3, 0, /**/ 3, 8, -1};
    float y[9], dy[9], dx[9];
    double theta = -1;
    assert_int_equal(ae_batch_topk_threshold(&r.L, r.state, &theta), 0);
    /* Untrained inference selects as training but leaves the state. */
    fwd(&r, x, y, 3, 0);
    const float want[] = {0, 9, 0, 3, 0, 0, 0, 8, 0};
    assert_memory_equal(y, want, sizeof want);
    assert_int_equal(ae_batch_topk_threshold(&r.L, r.state, &theta), 0);
    fwd(&r, x, y, 3, 1);
    assert_memory_equal(y, want, sizeof want);
    assert_int_equal(ae_batch_topk_threshold(&r.L, r.state, &theta), 1);
    assert_true(theta == 3.0); /* the first batch sets θ to its smallest kept value */
    for (int i = 0; i < 9; i++) dy[i] = (float)(i + 1);
    bwd(&r, dy, dx, 3);
    const float want_dx[] = {0, 2, 0, 4, 0, 0, 0, 8, 0};
    assert_memory_equal(dx, want_dx, sizeof want_dx);
    /* Second batch: smallest kept 5 -> θ = 0.9·3 + 0.1·5. */
    const float x2[] = {5, 6, 7, 0, 0, 0, 0, 0, 0};
    fwd(&r, x2, y, 3, 1);
    assert_int_equal(ae_batch_topk_threshold(&r.L, r.state, &theta), 1);
    assert_true(fabs(theta - 3.2) < 1e-6);
    /* Inference keeps the values greater than θ. */
    const float x3[] = {3.2f, 3.3f, 100, -5, 0, 4};
    fwd(&r, x3, y, 2, 0);
    const float want3[] = {0, 3.3f, 100, 0, 0, 4};
    assert_memory_equal(y, want3, sizeof want3);
    /* A batch whose k-th value overflowed leaves θ as it was. */
    const float x4[] = {INFINITY, INFINITY, INFINITY, 0, 0, 0, 0, 0, 0};
    fwd(&r, x4, y, 3, 1);
    assert_int_equal(ae_batch_topk_threshold(&r.L, r.state, &theta), 1);
    assert_true(fabs(theta - 3.2) < 1e-6);
    assert_int_equal(make_layer(&r, AE_LAYER_BATCH_TOPK, 3, 4, 0), AE_ERR_RANGE);
}

/* ---- penalties: values and gradients by finite differences ---- */

static void check_penalty_fd(ae_penalty_spec p, float lo, float hi) {
    enum { B = 5, N = 4 };
    float z[B * N], dz[B * N], tmp[N];
    test_fill(z, B * N, 17, lo, hi);
    memset(dz, 0, sizeof dz);
    if (p.kl_on) ae_kl_penalty_grad(&p, z, B, N, dz, tmp);
    if (p.l1_on) ae_l1_penalty_grad(&p, z, B, N, dz);
    for (size_t i = 0; i < B * N; i++) {
        float s = z[i];
        double h = 1e-3;
        z[i] = s + (float)h;
        double fp = (p.kl_on ? ae_kl_penalty(&p, z, B, N) : 0) + (p.l1_on ? ae_l1_penalty(&p, z, B, N) : 0);
        z[i] = s - (float)h;
        double fm = (p.kl_on ? ae_kl_penalty(&p, z, B, N) : 0) + (p.l1_on ? ae_l1_penalty(&p, z, B, N) : 0);
        z[i] = s;
        double fd = (fp - fm) / (2 * h);
        if (fabs(fd - dz[i]) > 1e-3 + 1e-2 * fabs(fd)) {
            print_error("penalty grad [%zu]: analytic %g fd %g\n", i, (double)dz[i], fd);
            fail();
        }
    }
}

static void test_penalties(void **state) {
    (void)state;
    /* Values against the formulas, by hand. */
    const float z[] = {0.1f, 0.5f, 0.3f, 0.7f}; /* 2 x 2: ρ̂ = (0.2, 0.6) */
    ae_penalty_spec kl = {.kl_on = 1, .kl_rho = 0.05, .kl_lambda = 0.1};
    double r0 = 0.05 * log(0.05 / 0.2) + 0.95 * log(0.95 / 0.8);
    double r1 = 0.05 * log(0.05 / 0.6) + 0.95 * log(0.95 / 0.4);
    assert_true(fabs(ae_kl_penalty(&kl, z, 2, 2) - 0.1 * (r0 + r1) / 2) < 1e-6);
    kl.kl_sum = 1;
    assert_true(fabs(ae_kl_penalty(&kl, z, 2, 2) - 0.1 * (r0 + r1)) < 1e-6);
    /* ρ̂ clamped: 0 and 1 give finite values and no gradient. */
    const float zero[] = {0, 1, 0, 1};
    double v = ae_kl_penalty(&kl, zero, 2, 2);
    double c0 = 0.05 * log(0.05 / 1e-6) + 0.95 * log(0.95 / (1 - 1e-6));
    double c1 = 0.05 * log(0.05 / (1 - 1e-6)) + 0.95 * log(0.95 / 1e-6);
    assert_true(isfinite(v));
    assert_true(fabs(v - 0.1 * (c0 + c1)) < 1e-4 * v);
    float dz[4] = {0}, tmp[2];
    ae_kl_penalty_grad(&kl, zero, 2, 2, dz, tmp);
    for (int i = 0; i < 4; i++) assert_true(dz[i] == 0.0f);
    ae_penalty_spec l1 = {.l1_on = 1, .l1_lambda = 0.5};
    const float zs[] = {-1, 2, 0, 3};
    assert_true(fabs(ae_l1_penalty(&l1, zs, 2, 2) - 0.5 * 6 / 2) < 1e-9);
    memset(dz, 0, sizeof dz);
    ae_l1_penalty_grad(&l1, zs, 2, 2, dz);
    const float want_l1[] = {-0.25f, 0.25f, 0.0f, 0.25f};
    assert_memory_equal(dz, want_l1, sizeof want_l1);
    /* Finite differences. */
    ae_penalty_spec p = {.kl_on = 1, .kl_rho = 0.05, .kl_lambda = 0.1};
    check_penalty_fd(p, 0.05f, 0.95f);
    p.kl_sum = 1;
    check_penalty_fd(p, 0.05f, 0.95f);
    p.kl_rho = 0.3;
    p.kl_lambda = 2.0;
    check_penalty_fd(p, 0.01f, 0.3f);
    ae_penalty_spec q = {.l1_on = 1, .l1_lambda = 0.3};
    check_penalty_fd(q, 0.1f, 1.0f);
    check_penalty_fd(q, -1.0f, -0.1f);
}

/* ---- models ---- */

/* in-h(act)-[sel]-code | h-in, built explicitly; sel: 0 none, 1 top-k,
 * 2 top-k + lifetime, 3 batch top-k. */
static ae_model *sparse_model(size_t in, size_t h, ae_activation act, ae_activation out_act,
                              int sel, size_t k, ae_optimizer opt, double lr) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, in));
    OK(ae_config_add_dense(c, h, act));
    if (sel == 1 || sel == 2) OK(ae_config_add_topk(c, k));
    if (sel == 2) OK(ae_config_add_lifetime_topk(c, 2));
    if (sel == 3) OK(ae_config_add_batch_topk(c, k));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, in, out_act));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, opt));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, lr));
    OK(ae_config_set_int(c, AE_P_SEED, 5));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* The sparse dense paths (forward, dx, dW at k entries) against the plain
 * GEMM path on the same model: the hints are switched off through the
 * internal layer fields. */
static void check_sparse_paths(int sel, size_t layers_with_hints, int tie) {
    enum { IN = 40, H = 48, B = 6, K = 5 };
    ae_model *a = sparse_model(IN, H, AE_ACT_LEAKY_RELU, AE_ACT_SIGMOID, sel, K, AE_OPT_ADAM, 1e-2);
    ae_model *b = sparse_model(IN, H, AE_ACT_LEAKY_RELU, AE_ACT_SIGMOID, sel, K, AE_OPT_ADAM, 1e-2);
    if (tie) {
        /* The tied decoder reads W transposed (GEMM path); the encoder's
         * sparse backward then accumulates into the shared weight. */
        OK(ae_model_tie(a));
        OK(ae_model_tie(b));
    }
    size_t n = ae_model_layer_count(a), hinted = 0;
    for (size_t i = 0; i < n; i++) {
        hinted += a->layers[i].in_sparse_k == K || a->layers[i].out_sparse_k == K;
        b->layers[i].in_sparse_k = b->layers[i].out_sparse_k = 0;
    }
    assert_int_equal(hinted, layers_with_hints);
    float x[B * IN], la, lb;
    for (int step = 0; step < 3; step++) {
        test_fill(x, B * IN, 40 + (uint32_t)step, 0.0f, 1.0f);
        OK(ae_train_step(a, x, NULL, B, &la));
        OK(ae_train_step(b, x, NULL, B, &lb));
        assert_true(fabsf(la - lb) <= 1e-5f * fabsf(lb));
        /* The gradients themselves (Adam's update hides a scale error). */
        assert_close_arrays(a->grads, b->grads, a->nparams, 1e-4, 1e-7, "gradient");
    }
    for (size_t i = 0; i < a->nparams; i++)
        assert_true(fabsf(a->params[i] - b->params[i]) <= 1e-5f + 1e-4f * fabsf(b->params[i]));
    /* Inference: ae_reconstruct uses the sparse forward too. */
    float ya[B * IN], yb[B * IN];
    OK(ae_reconstruct(a, x, B, ya));
    OK(ae_reconstruct(b, x, B, yb));
    assert_close_arrays(ya, yb, B * IN, 1e-5, 1e-6, "reconstruction");
    ae_model_destroy(a);
    ae_model_destroy(b);
}

static void test_sparse_paths_match_dense(void **state) {
    (void)state;
    check_sparse_paths(1, 2, 0); /* encoder (dy sparse) and decoder (input sparse) */
    check_sparse_paths(2, 2, 0); /* the decoder reads through the lifetime layer */
    check_sparse_paths(1, 2, 1); /* tied weights */
}

/* The sparse paths keep, across steps, which rows and columns of their
 * weight gradient are zero (only what changed is rewritten; Adam does not
 * read the zero rows; the finiteness check and clipping use the sums of
 * squares the layers computed). A wide code with few kept entries, so the
 * used rows and columns change from step to step, against the same model
 * on the GEMM paths: gradients and parameters after every step, for SGD
 * and Adam, with and without clipping; one step of model a on the GEMM
 * paths in the middle makes it forget what it knew. */
static void test_sparse_grads_across_steps(void **state) {
    (void)state;
    enum { IN = 24, H = 200, B = 3, K = 2 };
    for (int opt = 0; opt < 2; opt++)
        for (int clip = 0; clip < 2; clip++) {
            ae_optimizer o = opt ? AE_OPT_ADAM : AE_OPT_SGD;
            ae_model *a = sparse_model(IN, H, AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, 1, K, o, 0.05);
            ae_model *b = sparse_model(IN, H, AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, 1, K, o, 0.05);
            if (clip) {
                OK(ae_model_set_float(a, AE_P_GRAD_CLIP_NORM, 0.01));
                OK(ae_model_set_float(b, AE_P_GRAD_CLIP_NORM, 0.01));
            }
            size_t n = ae_model_layer_count(a);
            for (size_t i = 0; i < n; i++) b->layers[i].in_sparse_k = b->layers[i].out_sparse_k = 0;
            assert_int_equal(a->layers[0].out_sparse_k, K);
            assert_int_equal(a->layers[2].in_sparse_k, K);
            float x[B * IN], la, lb;
            for (int step = 0; step < 8; step++) {
                test_fill(x, B * IN, 900 + (uint32_t)step, -1.0f, 1.0f);
                int gemm = step == 4;
                if (gemm) a->layers[0].out_sparse_k = a->layers[2].in_sparse_k = 0;
                OK(ae_train_step(a, x, NULL, B, &la));
                if (gemm) a->layers[0].out_sparse_k = a->layers[2].in_sparse_k = K;
                OK(ae_train_step(b, x, NULL, B, &lb));
                assert_true(fabsf(la - lb) <= 1e-5f * fabsf(lb));
                assert_close_arrays(a->grads, b->grads, a->nparams, 1e-4, 1e-7, "gradient");
                assert_close_arrays(a->params, b->params, a->nparams, 1e-4, 1e-6, "parameter");
            }
            ae_model_destroy(a);
            ae_model_destroy(b);
        }
}

/* Whole-model gradient with selection layers and penalties, against finite
 * differences of ae_evaluate (in training mode, so the same masks apply):
 * one SGD step with lr 1 moves every parameter by minus its gradient. */
static void check_model_fd(int sel, int kl, int l1, ae_reduction kl_units) {
    enum { IN = 7, H = 6, B = 4 };
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, IN));
    OK(ae_config_add_dense(c, H, kl ? AE_ACT_SIGMOID : AE_ACT_TANH));
    if (kl) OK(ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.1, 0.5, kl_units));
    if (sel == 1) OK(ae_config_add_topk(c, 3));
    if (sel == 2) OK(ae_config_add_lifetime_topk(c, 2));
    if (sel == 3) OK(ae_config_add_batch_topk(c, 2));
    if (l1) OK(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 0.2));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, IN, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_SGD));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1.0));
    OK(ae_config_set_int(c, AE_P_SEED, 9));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    OK(ae_model_set_mode(m, AE_MODE_TRAIN));
    float x[B * IN], loss;
    test_fill(x, B * IN, 3, 0.0f, 1.0f);
    size_t np = m->nparams;
    float *p0 = malloc(np * sizeof *p0), *p1 = malloc(np * sizeof *p1);
    memcpy(p0, m->params, np * sizeof *p0);
    OK(ae_train_step(m, x, NULL, B, &loss));
    memcpy(p1, m->params, np * sizeof *p1);
    memcpy(m->params, p0, np * sizeof *p0);
    ae_model_params_written(m); /* a write past the setters: inference packs anew */
    /* The loss of the step is the loss at p0 in training mode. */
    float l0;
    memcpy(m->buffers, m->buffers_saved, m->nbuffers * sizeof(float));
    OK(ae_evaluate(m, x, NULL, B, &l0));
    assert_true(fabsf(l0 - loss) <= 1e-6f * fabsf(loss));
    int bad = 0;
    for (size_t i = 0; i < np; i++) {
        double h = 1e-3;
        float s = m->params[i];
        float lp, lm;
        m->params[i] = s + (float)h;
        ae_model_params_written(m);
        OK(ae_evaluate(m, x, NULL, B, &lp));
        m->params[i] = s - (float)h;
        ae_model_params_written(m);
        OK(ae_evaluate(m, x, NULL, B, &lm));
        m->params[i] = s;
        ae_model_params_written(m);
        double fd = ((double)lp - (double)lm) / (2 * h);
        double an = (double)p0[i] - (double)p1[i];
        if (fabs(fd - an) > 2e-3 * 0.05 + 2e-2 * fabs(fd)) {
            print_error("sel %d kl %d l1 %d param %zu: analytic %g fd %g\n", sel, kl, l1, i, an, fd);
            bad = 1;
        }
    }
    free(p0);
    free(p1);
    ae_model_destroy(m);
    if (bad) fail();
}

static void test_model_gradients_fd(void **state) {
    (void)state;
    check_model_fd(0, 1, 0, AE_REDUCE_MEAN);
    check_model_fd(0, 1, 0, AE_REDUCE_SUM);
    check_model_fd(0, 0, 1, AE_REDUCE_MEAN);
    check_model_fd(1, 0, 0, AE_REDUCE_MEAN);
    check_model_fd(1, 0, 1, AE_REDUCE_MEAN);
    check_model_fd(1, 1, 0, AE_REDUCE_SUM);
    check_model_fd(2, 0, 1, AE_REDUCE_MEAN);
    check_model_fd(3, 0, 0, AE_REDUCE_MEAN);
}

static void test_mode_and_stats(void **state) {
    (void)state;
    enum { IN = 10, H = 8, B = 4 };
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, IN));
    OK(ae_config_add_dense(c, H, AE_ACT_SIGMOID));
    OK(ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.05, 0.1, AE_REDUCE_SUM));
    OK(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 0.01));
    OK(ae_config_add_lifetime_topk(c, 2));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, IN, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_DEAD_WINDOW, 2));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    double v;
    assert_int_equal(ae_model_get_stat(m, AE_STAT_LOSS, &v), AE_ERR_STATE);
    assert_int_equal(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &v), AE_ERR_STATE);
    assert_int_equal(ae_model_get_stat(m, AE_STAT_BATCH_TOPK_THRESHOLD, &v), AE_ERR_STATE);
    assert_int_equal(ae_model_get_stat(m, (ae_stat)99, &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_get_stat(m, AE_STAT_LOSS, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_get_stat(NULL, AE_STAT_LOSS, &v), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_get_mode(m), AE_MODE_INFER);
    assert_int_equal(ae_model_get_mode(NULL), AE_MODE_INFER);
    assert_int_equal(ae_model_set_mode(m, (ae_mode)7), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_set_mode(NULL, AE_MODE_TRAIN), AE_ERR_INVALID_ARG);

    float x[B * IN], loss;
    test_fill(x, B * IN, 8, 0.0f, 1.0f);
    OK(ae_train_step(m, x, NULL, B, &loss));
    double total, recon, kl, l1, l0, dead, kept;
    OK(ae_model_get_stat(m, AE_STAT_LOSS, &total));
    OK(ae_model_get_stat(m, AE_STAT_LOSS_RECON, &recon));
    OK(ae_model_get_stat(m, AE_STAT_LOSS_KL, &kl));
    OK(ae_model_get_stat(m, AE_STAT_LOSS_L1, &l1));
    OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
    assert_true(fabs(total - loss) <= 1e-6 * total);
    assert_true(fabs(recon + kl + l1 - total) <= 1e-9 * total);
    assert_true(kl > 0 && l1 > 0 && recon > 0);
    /* Lifetime top-2 of 4 samples: exactly half the code entries survive
     * (sigmoid values are positive). */
    assert_true(l0 == H * 2.0 / B);
    OK(ae_model_get_stat(m, AE_STAT_LIFETIME_KEPT_ALL, &kept));
    assert_true(kept == 0.0);
    OK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &dead));
    assert_true(dead == 0.0); /* every feature wins somewhere */

    /* Inference mode: lifetime top-k passes through, so L0 is the width. */
    float le;
    OK(ae_evaluate(m, x, NULL, B, &le));
    OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
    assert_true(l0 == H);
    float code[B * H];
    OK(ae_encode(m, x, B, code));
    for (int i = 0; i < B * H; i++) assert_true(code[i] != 0.0f);
    /* Training mode: the mask applies to evaluate and encode. */
    OK(ae_model_set_mode(m, AE_MODE_TRAIN));
    assert_int_equal(ae_model_get_mode(m), AE_MODE_TRAIN);
    OK(ae_evaluate(m, x, NULL, B, &le));
    OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
    assert_true(l0 == H * 2.0 / B);
    OK(ae_encode(m, x, B, code));
    size_t nz = 0;
    for (int i = 0; i < B * H; i++) nz += code[i] != 0.0f;
    assert_int_equal(nz, H * 2);

    /* A batch of 2 ≤ k: everything kept, and reported. */
    OK(ae_train_step(m, x, NULL, 2, &loss));
    OK(ae_model_get_stat(m, AE_STAT_LIFETIME_KEPT_ALL, &kept));
    assert_true(kept == 1.0);
    ae_model_destroy(m);
}

static void test_dead_latents(void **state) {
    (void)state;
    enum { IN = 6, H = 5, B = 3 };
    ae_model *m = sparse_model(IN, H, AE_ACT_RELU, AE_ACT_SIGMOID, 1, 2, AE_OPT_SGD, 0.0);
    OK(ae_model_set_int(m, AE_P_DEAD_WINDOW, 2));
    /* Encoder weights: unit j reads input j only, bias 0; inputs choose who wins. */
    float w[H * IN] = {0}, b[H] = {0};
    for (int j = 0; j < H; j++) w[j * IN + j] = 1.0f;
    OK(ae_model_set_weights(m, 0, w, H * IN));
    OK(ae_model_set_bias(m, 0, b, H));
    float x1[B * IN] = {0}, x2[B * IN] = {0};
    /* Step 1: units 0, 1 win (unit 2 is active nowhere: 0 ties lose to lower). */
    for (int r = 0; r < B; r++) {
        x1[r * IN + 0] = 1;
        x1[r * IN + 1] = 2;
    }
    /* Step 2: units 3, 4 win. */
    for (int r = 0; r < B; r++) {
        x2[r * IN + 3] = 1;
        x2[r * IN + 4] = 2;
    }
    float loss;
    double dead, l0;
    OK(ae_train_step(m, x1, NULL, B, &loss));
    OK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &dead));
    assert_true(dead == 3.0); /* 2, 3, 4 never active yet */
    OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
    assert_true(l0 == 2.0);
    OK(ae_train_step(m, x2, NULL, B, &loss));
    OK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &dead));
    assert_true(dead == 1.0); /* only 2 */
    OK(ae_train_step(m, x2, NULL, B, &loss));
    OK(ae_train_step(m, x2, NULL, B, &loss));
    OK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &dead));
    assert_true(dead == 3.0); /* 0, 1 last active at step 1, window 2 */
    OK(ae_model_set_int(m, AE_P_DEAD_WINDOW, 4));
    OK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &dead));
    assert_true(dead == 1.0);
    assert_int_equal(ae_model_set_int(m, AE_P_DEAD_WINDOW, 0), AE_ERR_RANGE);
    ae_model_destroy(m);
}

static void test_batch_topk_model(void **state) {
    (void)state;
    enum { IN = 8, H = 6, B = 4 };
    ae_model *m = sparse_model(IN, H, AE_ACT_RELU, AE_ACT_IDENTITY, 3, 2, AE_OPT_ADAM, 1e-3);
    float x[B * IN], loss;
    test_fill(x, B * IN, 12, 0.0f, 1.0f);
    double theta, l0;
    assert_int_equal(ae_model_get_stat(m, AE_STAT_BATCH_TOPK_THRESHOLD, &theta), AE_ERR_STATE);
    OK(ae_train_step(m, x, NULL, B, &loss));
    OK(ae_model_get_stat(m, AE_STAT_BATCH_TOPK_THRESHOLD, &theta));
    OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
    assert_true(l0 <= 2.0);
    /* A step that fails after the forward (non-finite loss) leaves θ alone. */
    float huge[IN * H];
    for (int i = 0; i < IN * H; i++) huge[i] = 3e38f;
    OK(ae_model_set_weights(m, 2, huge, IN * H));
    float x2[B * IN];
    test_fill(x2, B * IN, 13, 0.5f, 1.0f);
    assert_int_equal(ae_train_step(m, x2, NULL, B, &loss), AE_ERR_NUMERIC);
    double theta2;
    OK(ae_model_get_stat(m, AE_STAT_BATCH_TOPK_THRESHOLD, &theta2));
    assert_true(theta2 == theta);
    assert_int_equal(ae_model_step_count(m), 1);
    ae_model_destroy(m);
}

static void test_builder_errors(void **state) {
    (void)state;
    ae_config *c = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_add_topk(NULL, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_lifetime_topk(NULL, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_lifetime_topk_fraction(NULL, 0.5), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_batch_topk(NULL, 1), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_kl_sparsity(NULL, 0, 0.1, 0.1, AE_REDUCE_MEAN), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_l1_sparsity(NULL, 0, 0.1), AE_ERR_INVALID_ARG);
    OK(ae_config_create(&c, NULL));
    assert_int_equal(ae_config_add_topk(c, 1), AE_ERR_STATE); /* no input size */
    assert_int_equal(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 0.1), AE_ERR_STATE);
    OK(ae_config_set_input_size(c, 10));
    OK(ae_config_add_dense(c, 8, AE_ACT_RELU));
    assert_int_equal(ae_config_add_topk(c, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_topk(c, 9), AE_ERR_RANGE); /* over the width */
    assert_non_null(strstr(ae_config_last_error(c), "[1, 8]"));
    assert_int_equal(ae_config_add_batch_topk(c, 9), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_lifetime_topk(c, 0), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_lifetime_topk_fraction(c, 0.0), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_lifetime_topk_fraction(c, 1.5), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_lifetime_topk_fraction(c, NAN), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_kl_sparsity(c, 0, 0.0, 0.1, AE_REDUCE_MEAN), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_kl_sparsity(c, 0, 1.0, 0.1, AE_REDUCE_MEAN), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_kl_sparsity(c, 0, 0.1, -1, AE_REDUCE_MEAN), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_kl_sparsity(c, 0, 0.1, 0.1, (ae_reduction)5), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_add_kl_sparsity(c, 3, 0.1, 0.1, AE_REDUCE_MEAN), AE_ERR_RANGE);
    assert_int_equal(ae_config_add_l1_sparsity(c, 0, NAN), AE_ERR_RANGE);
    assert_int_equal(c->nlayers, 1); /* nothing was added by the refused calls */
    assert_int_equal(c->layers[0].penalty.kl_on, 0);
    /* KL on a layer that is not sigmoid is refused at creation. */
    OK(ae_config_add_topk(c, 8));
    OK(ae_config_add_kl_sparsity(c, 0, 0.1, 0.1, AE_REDUCE_MEAN));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 10, AE_ACT_SIGMOID));
    assert_int_equal(ae_model_create(&m, c), AE_ERR_STATE);
    assert_null(m);
    assert_non_null(strstr(ae_config_last_error(c), "sigmoid"));
    c->layers[0].penalty.kl_on = 0;
    /* A penalty on the output layer is refused. */
    OK(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 0.1));
    assert_int_equal(ae_model_create(&m, c), AE_ERR_STATE);
    assert_null(m);
    c->layers[2].penalty.l1_on = 0;
    OK(ae_model_create(&m, c));
    ae_layer_info info = {.struct_size = sizeof info};
    OK(ae_model_layer_info(m, 1, &info));
    assert_int_equal(info.kind, AE_LAYER_TOPK);
    assert_int_equal(info.in_size, 8);
    assert_int_equal(info.out_size, 8);
    assert_int_equal(info.weight_count, 0);
    assert_int_equal(ae_model_code_size(m), 8);
    ae_model_destroy(m);
    ae_config_destroy(c);

    /* k over a width only the model knows (top-k as the first layer). */
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 4));
    assert_int_equal(ae_config_add_topk(c, 5), AE_ERR_RANGE);
    OK(ae_config_add_topk(c, 4));
    OK(ae_config_add_dense(c, 3, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, 4, AE_ACT_SIGMOID));
    OK(ae_model_create(&m, c));
    ae_model_destroy(m);
    ae_config_destroy(c);
}

static void test_nan_refused(void **state) {
    (void)state;
    enum { IN = 6, H = 4, B = 2 };
    ae_model *m = sparse_model(IN, H, AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, 2, 2, AE_OPT_ADAM, 1e-2);
    size_t np = m->nparams;
    float *before = malloc(np * sizeof *before);
    memcpy(before, m->params, np * sizeof *before);
    float x[B * IN], loss;
    test_fill(x, B * IN, 1, 0.0f, 1.0f);
    x[3] = NAN;
    assert_int_equal(ae_train_step(m, x, NULL, B, &loss), AE_ERR_NUMERIC);
    float code[B * H];
    assert_int_equal(ae_encode(m, x, B, code), AE_ERR_NUMERIC);
    /* A NaN reaching the code from inside (an overflowing weight). */
    x[3] = 0.5f;
    float w[H * IN];
    OK(ae_model_get_weights(m, 0, w, H * IN));
    w[0] = INFINITY;
    assert_int_equal(ae_model_set_weights(m, 0, w, H * IN), AE_ERR_NUMERIC);
    /* Bypass the setter: unit 0's x·W overflows to +inf, its bias is -inf. */
    m->params[0] = m->params[1] = 3e38f;
    m->params[m->layers[0].b_off] = -INFINITY;
    memcpy(before, m->params, np * sizeof *before);
    for (int i = 0; i < B * IN; i++) x[i] = 1.0f;
    assert_int_equal(ae_train_step(m, x, NULL, B, &loss), AE_ERR_NUMERIC);
    assert_memory_equal(m->params, before, np * sizeof *before);
    assert_int_equal(ae_model_step_count(m), 0);
    free(before);
    ae_model_destroy(m);
}

static void test_allocation_failures(void **state) {
    (void)state;
    /* Every allocation of creating and training a sparse model may fail;
     * each failure is reported and leaks nothing. */
    for (long fail_at = 0;; fail_at++) {
        test_alloc t = {0, 0, fail_at};
        ae_allocator a = test_allocator(&t);
        ae_config *c = NULL;
        ae_model *m = NULL;
        ae_status st = ae_config_create(&c, &a);
        if (!st) st = ae_config_set_input_size(c, 6);
        if (!st) st = ae_config_add_dense(c, 5, AE_ACT_SIGMOID);
        if (!st) st = ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.1, 0.1, AE_REDUCE_MEAN);
        if (!st) st = ae_config_add_topk(c, 2);
        if (!st) st = ae_config_add_batch_topk(c, 1);
        if (!st) st = ae_config_mark_code(c);
        if (!st) st = ae_config_add_dense(c, 6, AE_ACT_SIGMOID);
        if (!st) st = ae_model_create(&m, c);
        float x[12], loss;
        test_fill(x, 12, 2, 0, 1);
        if (!st) st = ae_train_step(m, x, NULL, 2, &loss);
        ae_model_destroy(m);
        ae_config_destroy(c);
        assert_int_equal(t.live, 0);
        if (st == AE_OK) break;
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_true(fail_at < 100);
    }
}

/* ---- mirrored decoders around selection layers ---- */

/* The encoder of variant v on 784 inputs:
 *   0: 64 (leaky ReLU) - top-16
 *   1: 64 (leaky ReLU) - top-16 - lifetime top-k 5%
 *   2: 64 (leaky ReLU) - batch top-16
 *   3: 64 (leaky ReLU, slope 0.2) - top-16 (L1 on it) - 32 (sigmoid, no
 *      bias, KL on it) - batch top-8: selection layers in the middle and on
 *      the code, per-layer settings and penalties to carry or not. */
static ae_config *mirror_encoder(int v) {
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 784));
    OK(ae_config_add_dense(c, 64, AE_ACT_LEAKY_RELU));
    if (v == 0 || v == 1 || v == 3) OK(ae_config_add_topk(c, 16));
    if (v == 1) OK(ae_config_add_lifetime_topk_fraction(c, 0.05));
    if (v == 2) OK(ae_config_add_batch_topk(c, 16));
    if (v == 3) {
        OK(ae_config_layer_set_float(c, 0, AE_LAYER_LEAKY_SLOPE, 0.2));
        OK(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 1e-3));
        OK(ae_config_add_dense(c, 32, AE_ACT_SIGMOID));
        OK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
        OK(ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.1, 0.1, AE_REDUCE_SUM));
        OK(ae_config_add_batch_topk(c, 8));
    }
    return c;
}

/* Variant v with its decoder mirrored or written by hand, tied or not;
 * Adam, seed 9. */
static ae_model *mirror_model(int v, int mirror, int tie) {
    ae_config *c = mirror_encoder(v);
    if (mirror) {
        OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    } else {
        OK(ae_config_mark_code(c));
        if (v == 3) {
            OK(ae_config_add_dense(c, 64, AE_ACT_LEAKY_RELU));
            OK(ae_config_layer_set_float(c, AE_LAST_LAYER, AE_LAYER_LEAKY_SLOPE, 0.2));
            OK(ae_config_layer_set_int(c, AE_LAST_LAYER, AE_LAYER_BIAS, 0));
        }
        OK(ae_config_add_dense(c, 784, AE_ACT_SIGMOID));
    }
    if (tie) OK(ae_config_tie(c));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-2));
    OK(ae_config_set_int(c, AE_P_SEED, 9));
    ae_model *m = NULL;
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* ---- no allocation in a step ---- */

enum { NA_IN = 40, NA_BIG = 16, NA_BIGGER = 24 };

/* A model of each sparse kind, through a counting allocator:
 * 0 top-k on its sparse paths (k 5, 5*4 <= 48), 1 top-k on the GEMM paths
 * (k 6, 6*4 > 16), 2 lifetime top-k (k 2), 3 lifetime top-k (fraction
 * 0.25), 4 batch top-k (k 3), 5 KL penalty, 6 L1 penalty. */
static ae_model *counted_model(const ae_allocator *a, int kind) {
    static const size_t width[7] = {48, 16, 32, 32, 32, 24, 24};
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, a));
    OK(ae_config_set_input_size(c, NA_IN));
    OK(ae_config_add_dense(c, width[kind], kind == 5 ? AE_ACT_SIGMOID : AE_ACT_RELU));
    switch (kind) {
    case 0: OK(ae_config_add_topk(c, 5)); break;
    case 1: OK(ae_config_add_topk(c, 6)); break;
    case 2: OK(ae_config_add_lifetime_topk(c, 2)); break;
    case 3: OK(ae_config_add_lifetime_topk_fraction(c, 0.25)); break;
    case 4: OK(ae_config_add_batch_topk(c, 3)); break;
    case 5: OK(ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.05, 0.5, AE_REDUCE_MEAN)); break;
    default: OK(ae_config_add_l1_sparsity(c, AE_LAST_LAYER, 1e-3)); break;
    }
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, NA_IN, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM));
    OK(ae_config_set_float(c, AE_P_GRAD_CLIP_NORM, 1.0));
    OK(ae_config_set_int(c, AE_P_SEED, 31));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

/* The decoder mirrors the dense layers only: 784-64-[top-16] gives
 * 64-784 with the output activation, the code stays the selection's
 * output, and the penalties stay where they were put. */
static void test_mirror_skips_selection(void **state) {
    (void)state;
    /* Per variant: the layer count, the code layer, and per layer its kind,
     * output width, activation and bias count. */
    static const struct {
        size_t n, code;
        ae_layer_kind kind[8];
        size_t out[8], bias[8];
        ae_activation act[8];
    } want[4] = {
        {3, 2, {AE_LAYER_DENSE, AE_LAYER_TOPK, AE_LAYER_DENSE}, {64, 64, 784}, {64, 0, 784},
         {AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, AE_ACT_SIGMOID}},
        {4, 3, {AE_LAYER_DENSE, AE_LAYER_TOPK, AE_LAYER_LIFETIME_TOPK, AE_LAYER_DENSE},
         {64, 64, 64, 784}, {64, 0, 0, 784},
         {AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, AE_ACT_IDENTITY, AE_ACT_SIGMOID}},
        {3, 2, {AE_LAYER_DENSE, AE_LAYER_BATCH_TOPK, AE_LAYER_DENSE}, {64, 64, 784}, {64, 0, 784},
         {AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, AE_ACT_SIGMOID}},
        {6, 4,
         {AE_LAYER_DENSE, AE_LAYER_TOPK, AE_LAYER_DENSE, AE_LAYER_BATCH_TOPK, AE_LAYER_DENSE,
          AE_LAYER_DENSE},
         {64, 64, 32, 32, 64, 784}, {64, 0, 0, 0, 0, 784},
         {AE_ACT_LEAKY_RELU, AE_ACT_IDENTITY, AE_ACT_SIGMOID, AE_ACT_IDENTITY, AE_ACT_LEAKY_RELU,
          AE_ACT_SIGMOID}},
    };
    for (int v = 0; v < 4; v++) {
        ae_config *c = mirror_encoder(v);
        size_t enc = c->nlayers;
        OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
        assert_int_equal(c->nlayers, want[v].n);
        assert_int_equal(c->code_at, enc);
        /* Penalties are not layers: the decoder copies none. */
        for (size_t i = enc; i < c->nlayers; i++) {
            assert_int_equal(c->layers[i].penalty.kl_on, 0);
            assert_int_equal(c->layers[i].penalty.l1_on, 0);
        }
        if (v == 3) {
            assert_true(c->layers[1].penalty.l1_on && c->layers[2].penalty.kl_on);
            assert_true(c->layers[4].slope == 0.2f); /* from layer 0, whose width it makes */
        }
        ae_model *m = NULL;
        OK(ae_model_create(&m, c));
        assert_int_equal(ae_model_layer_count(m), want[v].n);
        assert_int_equal(ae_model_code_layer(m), want[v].code);
        assert_int_equal(ae_model_code_size(m), v == 3 ? 32 : 64);
        for (size_t l = 0; l < want[v].n; l++) {
            ae_layer_info info = {.struct_size = sizeof info};
            OK(ae_model_layer_info(m, l, &info));
            assert_int_equal(info.kind, want[v].kind[l]);
            assert_int_equal(info.out_size, want[v].out[l]);
            assert_int_equal(info.bias_count, want[v].bias[l]);
            if (info.kind == AE_LAYER_DENSE) assert_int_equal(info.activation, want[v].act[l]);
        }
        /* Training: the penalties count (and only on the encoder, else
         * creation would refuse a penalty on the output layer). */
        float x[8 * 784], loss;
        test_fill(x, 8 * 784, 11, 0.0f, 1.0f);
        OK(ae_train_step(m, x, NULL, 8, &loss));
        double l0, kl, l1;
        OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
        OK(ae_model_get_stat(m, AE_STAT_LOSS_KL, &kl));
        OK(ae_model_get_stat(m, AE_STAT_LOSS_L1, &l1));
        if (v != 2) assert_true(l0 <= (v == 3 ? 8.0 : 16.0)); /* batch top-k: on average */
        assert_true((kl > 0.0) == (v == 3) && (l1 > 0.0) == (v == 3));
        ae_model_destroy(m);
        ae_config_destroy(c);
    }

    /* Refused, changing nothing: an encoder of selection layers only, and
     * a selection layer after the code (it is a decoder layer). */
    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 10));
    OK(ae_config_add_topk(c, 3));
    assert_int_equal(ae_config_mirror_decoder(c, AE_ACT_SIGMOID), AE_ERR_STATE);
    assert_non_null(strstr(ae_config_last_error(c), "no dense layer"));
    assert_int_equal(c->nlayers, 1);
    assert_int_equal(c->code_marked, 0);
    OK(ae_config_add_dense(c, 6, AE_ACT_RELU));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_topk(c, 2));
    assert_int_equal(ae_config_mirror_decoder(c, AE_ACT_SIGMOID), AE_ERR_STATE);
    assert_non_null(strstr(ae_config_last_error(c), "decoder layers"));
    assert_int_equal(c->nlayers, 3);
    ae_config_destroy(c);
    /* A top-k on the input is skipped like any other: 10-[top-3]-6 mirrors to 6-10. */
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 10));
    OK(ae_config_add_topk(c, 3));
    OK(ae_config_add_dense(c, 6, AE_ACT_RELU));
    OK(ae_config_mirror_decoder(c, AE_ACT_IDENTITY));
    assert_int_equal(c->nlayers, 3);
    assert_int_equal(c->layers[2].units, 10);
    assert_int_equal(c->layers[2].act, AE_ACT_IDENTITY);
    ae_config_destroy(c);
}

/* The mirrored model is the model written by hand: the same layers, the
 * same initial parameters from the same seed, and bit for bit the same
 * losses and parameters after a few Adam steps; tied too (ae_config_tie
 * pairs 784-64 with 64-784, and with a middle selection layer 64-32 with
 * 32-64). */
static void test_mirror_matches_hand_written(void **state) {
    (void)state;
    enum { B = 16, STEPS = 3 };
    float x[B * 784];
    for (int tie = 0; tie < 2; tie++)
        for (int v = 0; v < 4; v++) {
            ae_model *a = mirror_model(v, 1, tie), *b = mirror_model(v, 0, tie);
            assert_int_equal(a->nparams, b->nparams);
            assert_int_equal(ae_model_param_count(a), ae_model_param_count(b));
            size_t n = ae_model_layer_count(a);
            assert_int_equal(n, ae_model_layer_count(b));
            for (size_t l = 0; l < n; l++) {
                ae_layer_info ia = {.struct_size = sizeof ia}, ib = {.struct_size = sizeof ib};
                OK(ae_model_layer_info(a, l, &ia));
                OK(ae_model_layer_info(b, l, &ib));
                assert_memory_equal(&ia, &ib, sizeof ia);
                assert_true(a->layers[l].slope == b->layers[l].slope);
                assert_int_equal(ae_model_is_tied(a, l), ae_model_is_tied(b, l));
                if (l < ae_model_code_layer(a) && ia.weight_count)
                    assert_int_equal(ae_model_is_tied(a, l), tie);
            }
            if (tie) /* every dense pair shares its weight */
                assert_int_equal(ae_model_param_count(a),
                                 v == 3 ? 784 * 64 + 64 + 64 * 32 + 784 : 784 * 64 + 64 + 784);
            assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
            for (int step = 0; step < STEPS; step++) {
                float la, lb;
                test_fill(x, B * 784, 70 + (uint32_t)step, 0.0f, 1.0f);
                OK(ae_train_step(a, x, NULL, B, &la));
                OK(ae_train_step(b, x, NULL, B, &lb));
                assert_memory_equal(&la, &lb, sizeof la);
            }
            assert_memory_equal(a->params, b->params, a->nparams * sizeof(float));
            ae_model_destroy(a);
            ae_model_destroy(b);
        }
}

/* Inference calls at batch b, in the model's current mode. */
static void infer_calls(ae_model *m, const float *x, size_t b) {
    float out[NA_BIGGER * NA_IN], code[NA_BIGGER * 48], loss;
    double v;
    OK(ae_evaluate(m, x, NULL, b, &loss));
    OK(ae_encode(m, x, b, code));
    OK(ae_decode(m, code, b, out));
    OK(ae_reconstruct(m, x, b, out));
    OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &v));
    OK(ae_model_get_stat(m, AE_STAT_DEAD_LATENTS, &v));
}

/* The workspace is sized for the largest batch seen (ae_model_reserve
 * only grows it): after the first step of a batch size, steps of that size
 * or any smaller one allocate nothing, in either mode; a larger batch
 * allocates once, then the sizes up to it allocate nothing again. */
static void check_no_allocation(int kind) {
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_model *m = counted_model(&a, kind);
    assert_non_null(m);
    float x[NA_BIGGER * NA_IN], loss;
    test_fill(x, NA_BIGGER * NA_IN, 32 + (uint32_t)kind, 0.0f, 1.0f);
    OK(ae_train_step(m, x, NULL, NA_BIG, &loss));
    long planned = t.count;
    static const size_t sizes[] = {NA_BIG, 8, 3, 1, NA_BIG, 5, NA_BIG};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        test_fill(x, NA_BIGGER * NA_IN, 40 + (uint32_t)i, 0.0f, 1.0f);
        OK(ae_train_step(m, x, NULL, sizes[i], &loss));
    }
    infer_calls(m, x, NA_BIG);
    infer_calls(m, x, 2);
    OK(ae_model_set_mode(m, AE_MODE_TRAIN)); /* lifetime top-k selects, batch top-k updates θ */
    infer_calls(m, x, NA_BIG);
    infer_calls(m, x, 4);
    OK(ae_model_set_mode(m, AE_MODE_INFER));
    OK(ae_train_step(m, x, NULL, NA_BIG, &loss));
    assert_int_equal(t.count, planned);
    /* A larger batch: the workspace grows once (one allocation, the old one
     * released), then smaller and equal batches allocate nothing. */
    OK(ae_train_step(m, x, NULL, NA_BIGGER, &loss));
    assert_int_equal(t.count, planned + 1);
    OK(ae_train_step(m, x, NULL, 7, &loss));
    OK(ae_train_step(m, x, NULL, NA_BIG, &loss));
    OK(ae_train_step(m, x, NULL, NA_BIGGER, &loss));
    infer_calls(m, x, NA_BIGGER);
    assert_int_equal(t.count, planned + 1);
    /* The paths meant: kind 0 on the sparse paths, kind 1 not. */
    size_t hinted = 0;
    for (size_t i = 0; i < m->nlayers; i++)
        hinted += m->layers[i].in_sparse_k != 0 || m->layers[i].out_sparse_k != 0;
    assert_int_equal(hinted, kind == 0 ? 2 : 0);
    ae_model_destroy(m);
    assert_int_equal(t.live, 0);
}

static void test_no_allocation_after_first_step(void **state) {
    (void)state;
    for (int kind = 0; kind < 7; kind++) check_no_allocation(kind);
}

/* ---- two selection layers in a row ---- */

/* An allocator that fills every block with one byte, so that a read of
 * memory nobody wrote shows up as a difference between two fills. */
static void *fill_alloc_fn(void *ud, size_t n) {
    void *p = malloc(n);
    if (p) memset(p, *(const unsigned char *)ud, n);
    return p;
}

static void fill_release_fn(void *ud, void *p) {
    (void)ud;
    free(p);
}

enum { SS_IN = 48, SS_H = 64, SS_B = 8, SS_STEPS = 5 };

static ae_status add_sel(ae_config *c, int kind, size_t k) {
    return kind == 0   ? ae_config_add_topk(c, k)
           : kind == 1 ? ae_config_add_lifetime_topk(c, 3)
                       : ae_config_add_batch_topk(c, k);
}

/* input - dense (identity, so values of both signs) - selection a (k ka) -
 * selection b (k kb) - dense (sigmoid), Adam; the parameters after
 * SS_STEPS steps, and the losses. */
static void train_two_selections(unsigned char fill, int a, int b, size_t ka, size_t kb,
                                 float *params, size_t np, float *losses) {
    ae_allocator al = {sizeof(ae_allocator), fill_alloc_fn, fill_release_fn, &fill};
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, &al));
    OK(ae_config_set_input_size(c, SS_IN));
    OK(ae_config_add_dense(c, SS_H, AE_ACT_IDENTITY));
    OK(add_sel(c, a, ka));
    OK(add_sel(c, b, kb));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, SS_IN, AE_ACT_SIGMOID));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 0.01));
    OK(ae_config_set_int(c, AE_P_SEED, 21));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    assert_int_equal(ae_model_param_count(m), np);
    float x[SS_B * SS_IN];
    for (int step = 0; step < SS_STEPS; step++) {
        test_fill(x, SS_B * SS_IN, 500 + (uint32_t)step, 0.0f, 1.0f);
        ae_status st = ae_train_step(m, x, NULL, SS_B, &losses[step]);
        if (st != AE_OK)
            fail_msg("selections %d then %d (k %zu, %zu), fill 0x%02x, step %d: %s", a, b, ka, kb,
                     fill, step, ae_model_last_error(m));
    }
    test_get_params(m, params);
    ae_model_destroy(m);
}

/* Every ordered pair of selection layers (top-k, lifetime top-k, batch
 * top-k, the same kind twice included), the second keeping fewer and then
 * more entries than the first: training must not depend on what the
 * allocator left in memory (all bytes 0xFF, a NaN pattern, against 0x00). */
static void test_two_selections_deterministic(void **state) {
    (void)state;
    static const size_t ks[2][2] = {{12, 8}, {8, 12}};
    size_t np = (size_t)SS_IN * SS_H + SS_H + (size_t)SS_H * SS_IN + SS_IN;
    float *p0 = malloc(np * sizeof *p0), *p1 = malloc(np * sizeof *p1);
    assert_non_null(p0);
    assert_non_null(p1);
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int v = 0; v < 2; v++) {
                float l0[SS_STEPS], l1[SS_STEPS];
                train_two_selections(0xFF, a, b, ks[v][0], ks[v][1], p0, np, l0);
                train_two_selections(0x00, a, b, ks[v][0], ks[v][1], p1, np, l1);
                if (memcmp(l0, l1, sizeof l0) || memcmp(p0, p1, np * sizeof *p0))
                    fail_msg("selections %d then %d (k %zu, %zu): training depends on the "
                             "allocator's garbage", a, b, ks[v][0], ks[v][1]);
            }
    free(p0);
    free(p1);
}

/* ---- PyTorch parity ---- */

#define PAR_B 32
#define PAR_STEPS 3
#define PAR_IN 784
#define PAR_CODE 64

typedef struct parity_state {
    fixture fx;
    ae_model *m;
    float *buf, *x;
} parity_state;

static int par_setup(void **st) {
    parity_state *s = calloc(1, sizeof *s);
    *st = s;
    return s ? 0 : -1;
}

static int par_teardown(void **st) {
    parity_state *s = *st;
    fixture_free(&s->fx);
    ae_model_destroy(s->m);
    free(s->buf);
    free(s->x);
    free(s);
    return 0;
}

/* kind: 0 top-16, 1 top-16 + lifetime 5%, 2 sigmoid code with KL. */
static void run_parity(void **st, const char *file, int kind) {
    parity_state *s = *st;
    if (fixture_load(&s->fx, file) != 0) fail_msg("cannot load fixture %s", file);
    fixture *fx = &s->fx;
    /* meta, losses, recon, L0, W0, b0, W1, b1 */
    assert_int_equal(fx->n, 8);
    assert_int_equal(fx->count[0], 10);
    const float *meta = fx->array[0];
    assert_true(meta[0] == PAR_B && meta[1] == PAR_STEPS && meta[2] == PAR_IN &&
                meta[3] == PAR_CODE && meta[4] == PAR_IN);
    for (int i = 1; i <= 3; i++) assert_int_equal(fx->count[i], PAR_STEPS);
    assert_int_equal(fx->count[4], PAR_CODE * PAR_IN);
    assert_int_equal(fx->count[5], PAR_CODE);
    assert_int_equal(fx->count[6], PAR_IN * PAR_CODE);
    assert_int_equal(fx->count[7], PAR_IN);

    ae_config *c = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, PAR_IN));
    OK(ae_config_add_dense(c, PAR_CODE, kind == 2 ? AE_ACT_SIGMOID : AE_ACT_LEAKY_RELU));
    if (kind == 2) OK(ae_config_add_kl_sparsity(c, AE_LAST_LAYER, 0.05, 0.1, AE_REDUCE_SUM));
    if (kind <= 1) OK(ae_config_add_topk(c, 16));
    if (kind == 1) OK(ae_config_add_lifetime_topk_fraction(c, 0.05));
    OK(ae_config_mark_code(c));
    OK(ae_config_add_dense(c, PAR_IN, kind == 2 ? AE_ACT_SIGMOID : AE_ACT_IDENTITY));
    OK(ae_config_set_int(c, AE_P_OPTIMIZER, AE_OPT_ADAM));
    OK(ae_config_set_float(c, AE_P_LEARNING_RATE, 1e-3));
    ae_status cst = ae_model_create(&s->m, c);
    if (cst) fail_msg("create: %s", ae_config_last_error(c));
    ae_config_destroy(c);
    ae_model *m = s->m;
    size_t dec = ae_model_layer_count(m) - 1;

    /* The initial parameters and batches from the generator's stream. */
    s->buf = malloc(PAR_CODE * PAR_IN * sizeof(float));
    s->x = malloc(PAR_B * PAR_IN * sizeof(float));
    assert_non_null(s->buf);
    assert_non_null(s->x);
    const size_t fan_in[2] = {PAR_IN, PAR_CODE}, outs[2] = {PAR_CODE, PAR_IN};
    const size_t layer[2] = {0, dec};
    for (int l = 0; l < 2; l++) {
        float bound = 1.0f / sqrtf((float)fan_in[l]);
        test_fill(s->buf, outs[l] * fan_in[l], (uint32_t)meta[5 + 2 * l], -bound, bound);
        OK(ae_model_set_weights(m, layer[l], s->buf, outs[l] * fan_in[l]));
        test_fill(s->buf, outs[l], (uint32_t)meta[6 + 2 * l], -bound, bound);
        OK(ae_model_set_bias(m, layer[l], s->buf, outs[l]));
    }
    for (size_t step = 0; step < PAR_STEPS; step++) {
        test_fill(s->x, PAR_B * PAR_IN, (uint32_t)meta[9] + (uint32_t)step, 0.0f, 1.0f);
        float loss;
        if (ae_train_step(m, s->x, NULL, PAR_B, &loss) != AE_OK)
            fail_msg("step: %s", ae_model_last_error(m));
        double recon, l0, want = fx->array[1][step];
        OK(ae_model_get_stat(m, AE_STAT_LOSS_RECON, &recon));
        OK(ae_model_get_stat(m, AE_STAT_CODE_L0, &l0));
        if (fabs(loss - want) > 1e-4 * fabs(want) ||
            fabs(recon - fx->array[2][step]) > 1e-4 * fabs(fx->array[2][step]) ||
            fabs(l0 - fx->array[3][step]) > 1e-6)
            fail_msg("%s step %zu: loss %.9g (PyTorch %.9g), recon %.9g (%.9g), L0 %g (%g)", file,
                     step + 1, (double)loss, want, recon, (double)fx->array[2][step], l0,
                     (double)fx->array[3][step]);
    }
    /* Parameters after step 3: per tensor ||w - w_ref|| / ||w_ref|| ≤ 1e-4. */
    for (int t = 0; t < 4; t++) {
        size_t l = layer[t / 2], n = fx->count[4 + t];
        if (t % 2)
            OK(ae_model_get_bias(m, l, s->buf, n));
        else
            OK(ae_model_get_weights(m, l, s->buf, n));
        const float *ref = fx->array[4 + t];
        double e2 = 0, r2 = 0;
        for (size_t i = 0; i < n; i++) {
            double d = (double)s->buf[i] - ref[i];
            e2 += d * d;
            r2 += (double)ref[i] * ref[i];
        }
        if (!(sqrt(e2 / r2) <= 1e-4))
            fail_msg("%s tensor %d: rel L2 error %.3g", file, t, sqrt(e2 / r2));
    }
}

static void test_parity_topk(void **st) { run_parity(st, "sparse_topk", 0); }
static void test_parity_topk_lifetime(void **st) { run_parity(st, "sparse_topk_lifetime", 1); }
static void test_parity_kl(void **st) { run_parity(st, "sparse_kl", 2); }

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_helper),
        cmocka_unit_test(test_topk_layer_masks),
        cmocka_unit_test(test_topk_kernels),
        cmocka_unit_test(test_lifetime_layer_masks),
        cmocka_unit_test(test_batch_topk_layer),
        cmocka_unit_test(test_penalties),
        cmocka_unit_test(test_sparse_paths_match_dense),
        cmocka_unit_test(test_sparse_grads_across_steps),
        cmocka_unit_test(test_model_gradients_fd),
        cmocka_unit_test(test_mode_and_stats),
        cmocka_unit_test(test_dead_latents),
        cmocka_unit_test(test_batch_topk_model),
        cmocka_unit_test(test_builder_errors),
        cmocka_unit_test(test_nan_refused),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_mirror_skips_selection),
        cmocka_unit_test(test_mirror_matches_hand_written),
        cmocka_unit_test(test_no_allocation_after_first_step),
        cmocka_unit_test(test_two_selections_deterministic),
        cmocka_unit_test_setup_teardown(test_parity_topk, par_setup, par_teardown),
        cmocka_unit_test_setup_teardown(test_parity_topk_lifetime, par_setup, par_teardown),
        cmocka_unit_test_setup_teardown(test_parity_kl, par_setup, par_teardown),
    };
    return cmocka_run_group_tests_name("sparse", tests, NULL, NULL);
}
