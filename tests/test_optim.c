/* Tests of src/optim against double-precision transcriptions of PyTorch's update rules. */
#include "test_util.h"

#include "optim/optim.h"

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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sgd_variants),
        cmocka_unit_test(test_adam_variants),
        cmocka_unit_test(test_frozen_block_untouched),
        cmocka_unit_test(test_grad_scale),
        cmocka_unit_test(test_shaped_gradient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
