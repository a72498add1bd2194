/* Tests of src/optim against double-precision transcriptions of PyTorch's update rules. */
#include "test_util.h"

#include "optim/optim.h"

#define OK_STATUS(call) assert_int_equal((call), AE_OK)

enum { N = 9 };

static void ref_sgd(const ae_optim_settings *s, double *p, const double *g, double *buf, int steps) {
    for (int t = 0; t < steps; t++)
        for (int i = 0; i < N; i++) {
            double d = g[t * N + i] + s->weight_decay * p[i];
            if (s->momentum != 0) {
                buf[i] = t == 0 ? d : buf[i] * s->momentum + (1 - s->dampening) * d;
                d = s->nesterov ? d + s->momentum * buf[i] : buf[i];
            }
            p[i] -= s->lr * d;
        }
}

static void ref_adam(const ae_optim_settings *s, double *p, const double *g, int steps) {
    double m[N] = {0}, v[N] = {0};
    for (int t = 1; t <= steps; t++)
        for (int i = 0; i < N; i++) {
            double d = g[(t - 1) * N + i];
            if (s->kind == AE_OPT_ADAMW)
                p[i] *= 1 - s->lr * s->weight_decay;
            else
                d += s->weight_decay * p[i];
            m[i] = s->beta1 * m[i] + (1 - s->beta1) * d;
            v[i] = s->beta2 * v[i] + (1 - s->beta2) * d * d;
            double mh = m[i] / (1 - pow(s->beta1, t));
            double den = sqrt(v[i]) / sqrt(1 - pow(s->beta2, t)) + s->eps;
            p[i] -= s->lr * mh / den;
        }
}

static void run(const ae_optim_settings *s, int steps) {
    float p[N], g[5 * N], s1[N] = {0}, s2[N] = {0};
    double pd[N], gd[5 * N], buf[N] = {0};
    test_fill(p, N, 1, -1, 1);
    test_fill(g, 5 * N, 2, -0.5f, 0.5f);
    for (int i = 0; i < N; i++) pd[i] = p[i];
    for (int i = 0; i < 5 * N; i++) gd[i] = g[i];
    ae_param_block blk[2] = {{0, 4, 0, 0, 0}, {4, N - 4, 0, 0, 0}};
    for (int t = 0; t < steps; t++) {
        /* The arena update reads one step's gradient: copy it into place. */
        float gt[N];
        memcpy(gt, g + t * N, sizeof gt);
        ae_optim_step(s, p, gt, s1, s2, blk, 2, 1.0f);
    }
    if (s->kind == AE_OPT_SGD)
        ref_sgd(s, pd, gd, buf, steps);
    else
        ref_adam(s, pd, gd, steps);
    float pf[N];
    for (int i = 0; i < N; i++) pf[i] = (float)pd[i];
    assert_close_arrays(p, pf, N, 1e-5, 1e-6, "p");
    assert_int_equal(blk[0].step, steps);
}

static void test_sgd_variants(void **state) {
    (void)state;
    ae_optim_settings s = {.kind = AE_OPT_SGD, .lr = 0.1};
    run(&s, 5);
    s.momentum = 0.9;
    run(&s, 5);
    s.nesterov = 1;
    s.weight_decay = 1e-2;
    run(&s, 5);
    s.nesterov = 0;
    s.dampening = 0.3;
    run(&s, 5);
}

static void test_adam_variants(void **state) {
    (void)state;
    ae_optim_settings s = {.kind = AE_OPT_ADAM, .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    run(&s, 5);
    s.weight_decay = 0.1;
    run(&s, 5);
    s.kind = AE_OPT_ADAMW;
    run(&s, 5);
    s.beta1 = 0.5;
    s.beta2 = 0.9;
    s.eps = 1e-3;
    run(&s, 4);
}

static void test_frozen_block_untouched(void **state) {
    (void)state;
    float p[N], g[N], s1[N] = {0}, s2[N] = {0}, p0[N];
    test_fill(p, N, 3, -1, 1);
    test_fill(g, N, 4, -1, 1);
    memcpy(p0, p, sizeof p);
    ae_param_block blk[2] = {{0, 4, 0, 1, 0}, {4, N - 4, 0, 0, 0}};
    ae_optim_settings s = {.kind = AE_OPT_ADAM, .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
    ae_optim_step(&s, p, g, s1, s2, blk, 2, 1.0f);
    assert_memory_equal(p, p0, 4 * sizeof(float));
    for (int i = 0; i < 4; i++) assert_true(s1[i] == 0.0f && s2[i] == 0.0f);
    assert_int_equal(blk[0].step, 0);
    assert_int_equal(blk[1].step, 1);
    assert_true(p[5] != p0[5]);
    /* The gradient norm skips frozen blocks. */
    double sq = 0;
    for (int i = 4; i < N; i++) sq += (double)g[i] * g[i];
    assert_true(fabs(ae_optim_grad_sqnorm(g, blk, 2) - sq) < 1e-5);
}

static void test_grad_scale(void **state) {
    (void)state;
    /* SGD without momentum: scaling the gradient by c equals scaling the step by c. */
    float p[N], q[N], g[N], s1[N] = {0}, s2[N] = {0}, g2[N];
    test_fill(p, N, 5, -1, 1);
    memcpy(q, p, sizeof p);
    test_fill(g, N, 6, -1, 1);
    for (int i = 0; i < N; i++) g2[i] = 0.25f * g[i];
    ae_param_block b1 = {0, N, 0, 0, 0}, b2 = b1;
    ae_optim_settings s = {.kind = AE_OPT_SGD, .lr = 0.5};
    ae_optim_step(&s, p, g, s1, s2, &b1, 1, 0.25f);
    ae_optim_step(&s, q, g2, s1, s2, &b2, 1, 1.0f);
    assert_memory_equal(p, q, sizeof p);
}

/* A gradient with a known shape (zero rows, or zero columns) gives, bit for
 * bit, what the plain step over the full gradient gives (Adam, AdamW and
 * Adam with weight decay skip reading the zero rows; SGD reads them); the
 * finiteness sum takes the given sum of squares. */
static void test_shaped_gradient(void **state) {
    (void)state;
    enum { R = 7, C = 19, N = R * C };
    const ae_optimizer kinds[] = {AE_OPT_ADAM, AE_OPT_ADAMW, AE_OPT_ADAM, AE_OPT_SGD};
    for (int v = 0; v < 4; v++)
        for (int cols = 0; cols < 2; cols++) {
            ae_optim_settings s = {.kind = kinds[v], .lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999,
                                   .eps = 1e-8, .momentum = 0.9, .weight_decay = v >= 1 ? 0.1 : 0.0};
            float p[N], q[N], g[N], s1[N] = {0}, s2[N] = {0}, t1[N] = {0}, t2[N] = {0};
            unsigned char used[C];
            test_fill(p, N, 3, -1.0f, 1.0f);
            memcpy(q, p, sizeof p);
            ae_param_block a = {.off = 0, .len = N}, b = a;
            for (int step = 0; step < 4; step++) {
                test_fill(g, N, 10 + (uint32_t)step, -1.0f, 1.0f);
                size_t lines = cols ? C : R;
                double sq = 0.0;
                for (size_t l = 0; l < lines; l++) used[l] = (unsigned char)((l + (size_t)step) % 3 == 0);
                for (size_t i = 0; i < N; i++) {
                    if (!used[cols ? i % C : i / C]) g[i] = 0.0f;
                    sq += (double)g[i] * g[i];
                }
                ae_grad_shape sh = {used, C, cols, 123.0}, plain = {0};
                assert_true(ae_optim_grad_sqnorm_shaped(g, &a, &sh, 1) == 123.0);
                assert_true(fabs(ae_optim_grad_sqnorm_shaped(g, &a, &plain, 1) - sq) < 1e-4);
                ae_optim_step(&s, q, g, t1, t2, &b, 1, 0.5f);
                ae_optim_step_shaped(&s, p, g, s1, s2, &a, &sh, 1, 0.5f);
                assert_memory_equal(p, q, sizeof p);
                assert_memory_equal(s1, t1, sizeof s1);
                assert_memory_equal(s2, t2, sizeof s2);
            }
        }
}

/* ---- the checked update ---- */

static float max_abs(const float *p, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) m = fabsf(p[i]) > m ? fabsf(p[i]) : m;
    return m;
}

static int all_finite_f(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

/* Over settings from ordinary to absurd (learning rate and decay up to
 * 1e6, parameters up to 3e38, epsilon 1e-30) and several steps: when the
 * checked update succeeds it wrote exactly what the plain update writes,
 * all finite, and its bounds hold every value; when it fails it wrote
 * nothing (blocks included) and the plain update would indeed have left a
 * non-finite value. */
static void test_checked_update(void **state) {
    (void)state;
    enum { L = 24, NB = 2, M = NB * L };
    const ae_optimizer kinds[] = {AE_OPT_SGD, AE_OPT_ADAM, AE_OPT_ADAMW};
    const double lrs[] = {1e-3, 0.1, 10, 1e6}, wds[] = {0, 1e-2, 1e6}, moms[] = {0, 0.9, 1};
    const float pscale[] = {1.0f, 1e10f, 1e30f, 3e38f}, gscale[] = {1e-6f, 1.0f, 1e18f};
    int ok_steps = 0, refused = 0;
    uint32_t seed = 1;
    for (int k = 0; k < 3; k++)
        for (size_t li = 0; li < 4; li++)
            for (size_t wi = 0; wi < 3; wi++)
                for (size_t mi = 0; mi < 3; mi++)
                    for (size_t pi = 0; pi < 4; pi++)
                        for (size_t gi = 0; gi < 3; gi++) {
                            if (k && mi) continue; /* momentum is SGD's */
                            seed++;
                            ae_optim_settings s = {.kind = kinds[k], .lr = lrs[li],
                                                   .weight_decay = wds[wi], .momentum = moms[mi],
                                                   .nesterov = (int)(seed % 2 && mi == 1),
                                                   .dampening = seed % 3 == 0 ? 0.5 : 0.0,
                                                   .beta1 = 0.9, .beta2 = 0.999,
                                                   .eps = seed % 5 == 0 ? 1e-30 : 1e-8};
                            float p[M], g[M], s1[M] = {0}, s2[M] = {0};
                            float q[M], t1[M], t2[M], p0[M], u1[M], u2[M];
                            test_fill(p, M, seed, -pscale[pi], pscale[pi]);
                            ae_param_block blk[NB] = {{0, L, 0, 0, 0}, {L, L, 0, 0, 0}}, cb[NB],
                                           b0[NB];
                            ae_block_bound bb[NB];
                            memset(bb, 0, sizeof bb);
                            for (int step = 0; step < 5; step++) {
                                test_fill(g, M, seed * 31 + (uint32_t)step, -gscale[gi], gscale[gi]);
                                float gs = step == 3 ? 0.5f : 1.0f;
                                double sq = ae_optim_grad_sqnorm_blocks(g, blk, NULL, NB, bb);
                                if (!isfinite(sq)) break; /* the model refuses before */
                                memcpy(q, p, sizeof p);
                                memcpy(t1, s1, sizeof s1);
                                memcpy(t2, s2, sizeof s2);
                                memcpy(cb, blk, sizeof blk);
                                ae_optim_step_shaped(&s, q, g, t1, t2, cb, NULL, NB, gs);
                                memcpy(p0, p, sizeof p);
                                memcpy(u1, s1, sizeof s1);
                                memcpy(u2, s2, sizeof s2);
                                memcpy(b0, blk, sizeof blk);
                                size_t bad = 99;
                                ae_status st =
                                    ae_optim_step_checked(&s, p, g, s1, s2, blk, NULL, bb, NB, gs, &bad);
                                if (st) {
                                    assert_int_equal(st, AE_ERR_NUMERIC);
                                    assert_true(bad < NB);
                                    assert_memory_equal(p, p0, sizeof p);
                                    assert_memory_equal(s1, u1, sizeof s1);
                                    assert_memory_equal(s2, u2, sizeof s2);
                                    assert_memory_equal(blk, b0, sizeof blk);
                                    assert_false(all_finite_f(q, M) && all_finite_f(t1, M) &&
                                                 all_finite_f(t2, M));
                                    refused++;
                                    break;
                                }
                                ok_steps++;
                                assert_memory_equal(p, q, sizeof p);
                                assert_memory_equal(s1, t1, sizeof s1);
                                assert_memory_equal(s2, t2, sizeof s2);
                                assert_memory_equal(blk, cb, sizeof blk);
                                assert_true(all_finite_f(p, M) && all_finite_f(s1, M) &&
                                            all_finite_f(s2, M));
                                for (int b = 0; b < NB; b++) {
                                    assert_true(bb[b].bounded);
                                    assert_true(bb[b].max[0] >= max_abs(p + b * L, L));
                                    assert_true(bb[b].max[1] >= max_abs(s1 + b * L, L));
                                    assert_true(bb[b].max[2] >= max_abs(s2 + b * L, L));
                                }
                            }
                        }
    assert_true(ok_steps > 100 && refused > 10);
}

/* The first update checks exactly (its bounds are the true maxima); later
 * ones of an ordinary model only bound (larger than the maxima: no second
 * pass); bounds forgotten, or of a block that moved or was replaced, make
 * the next update exact again. */
static void test_checked_update_paths(void **state) {
    (void)state;
    enum { L = 32 };
    ae_optim_settings s = {.kind = AE_OPT_ADAM, .lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999,
                           .eps = 1e-8};
    float p[L], g[L], s1[L] = {0}, s2[L] = {0};
    test_fill(p, L, 5, -1.0f, 1.0f);
    ae_param_block blk = {0, L, 0, 0, 0};
    ae_block_bound bb;
    memset(&bb, 0, sizeof bb);
    for (int step = 0; step < 4; step++) {
        test_fill(g, L, 50 + (uint32_t)step, -1.0f, 1.0f);
        if (step == 2) ae_optim_forget_bounds(&bb, 1);
        ae_optim_grad_sqnorm_blocks(g, &blk, NULL, 1, &bb);
        OK_STATUS(ae_optim_step_checked(&s, p, g, s1, s2, &blk, NULL, &bb, 1, 1.0f, NULL));
        int exact = bb.max[0] == max_abs(p, L) && bb.max[1] == max_abs(s1, L) &&
                    bb.max[2] == max_abs(s2, L);
        assert_int_equal(exact, step == 0 || step == 2);
    }
    /* Another block at this index (same length, another offset or step count). */
    blk.step = 0;
    ae_optim_grad_sqnorm_blocks(g, &blk, NULL, 1, &bb);
    OK_STATUS(ae_optim_step_checked(&s, p, g, s1, s2, &blk, NULL, &bb, 1, 1.0f, NULL));
    assert_true(bb.max[0] == max_abs(p, L));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_variants),
        cmocka_unit_test(test_adam_variants),
        cmocka_unit_test(test_frozen_block_untouched),
        cmocka_unit_test(test_grad_scale),
        cmocka_unit_test(test_shaped_gradient),
        cmocka_unit_test(test_checked_update),
        cmocka_unit_test(test_checked_update_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
