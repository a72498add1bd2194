/* Model a's training step (784-256-32-256-784, ReLU, sigmoid output, MSE,
 * Adam, batch 256) and its encoder at batch 256 and 1, each against its
 * GEMM-only bound on the same backend: the same ae_sgemm / ae_sgemv calls
 * on buffers of the same sizes and nothing else. The two are timed in
 * turn, call by call, in one process, so that a noisy machine slows both
 * alike; prints the medians and libae / bound.
 *
 *   step_bound [BACKEND [REPEATS [WHAT]]]    BACKEND auto|openblas|onednn,
 *                                            WHAT any of t (step), e, 1
 *
 * Run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"
#include "core/core.h"

#define ROWS 8192
#define NL 4
static const size_t DIMS[NL + 1] = {784, 256, 32, 256, 784};

static float *buf(size_t n) {
    float *p = NULL;
    if (posix_memalign((void **)&p, 64, n * sizeof *p)) exit(1);
    for (size_t i = 0; i < n; i++) p[i] = (float)(i % 17) / 170.0f;
    return p;
}

typedef struct net {
    float *W[NL], *dW[NL], *act[NL + 1], *grad[NL + 1];
} net;

/* The GEMMs of dense.c for nl layers of batch B: forward x Wᵀ, then
 * dW = dᵀ x and dx = d W (none below the first layer); train 0: forward
 * only (batch 1: sgemv). */
static void gemms(ae_backend be, net *n, size_t nl, size_t B, int train) {
    for (size_t l = 0; l < nl; l++) {
        size_t i = DIMS[l], o = DIMS[l + 1];
        if (B == 1)
            ae_sgemv(be, AE_NO_TRANS, o, i, 1.0f, n->W[l], i, n->act[l], 0.0f, n->act[l + 1]);
        else
            ae_sgemm(be, AE_NO_TRANS, AE_TRANS, B, o, i, 1.0f, n->act[l], i, n->W[l], i, 0.0f,
                     n->act[l + 1], o);
    }
    if (!train) return;
    for (size_t l = nl; l-- > 0;) {
        size_t i = DIMS[l], o = DIMS[l + 1];
        ae_sgemm(be, AE_TRANS, AE_NO_TRANS, o, i, B, 1.0f, n->grad[l + 1], o, n->act[l], i, 0.0f,
                 n->dW[l], i);
        if (l > 0)
            ae_sgemm(be, AE_NO_TRANS, AE_NO_TRANS, B, i, o, 1.0f, n->grad[l + 1], o, n->W[l], i,
                     0.0f, n->grad[l], i);
    }
}

static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, bench_cmp);
    return t[n / 2];
}

/* Times `reps` rounds of (libae call, bound) in turn after a warm-up. */
static void pair(const char *what, ae_model *m, ae_backend be, net *n, const float *x, float *out,
                 size_t nl, size_t B, int train, int reps) {
    double *ta = malloc((size_t)reps * sizeof *ta), *tb = malloc((size_t)reps * sizeof *tb);
    if (!ta || !tb) exit(1);
    for (int r = -reps / 10 - 3; r < reps; r++) {
        size_t off = ((size_t)(r + reps) * B) % (ROWS - B + 1);
        const float *xb = x + off * DIMS[0];
        double t0 = bench_now();
        ae_status st = train ? ae_train_step(m, xb, NULL, B, NULL) : ae_encode(m, xb, B, out);
        double t1 = bench_now();
        gemms(be, n, nl, B, train);
        double t2 = bench_now();
        if (st != AE_OK) {
            fprintf(stderr, "%s: %s\n", what, ae_model_last_error(m));
            exit(1);
        }
        if (r >= 0) {
            ta[r] = t1 - t0;
            tb[r] = t2 - t1;
        }
    }
    double a = median(ta, reps), b = median(tb, reps);
    printf("%-26s batch %4zu  libae %9.1f us  GEMM bound %9.1f us  libae/bound %5.2f\n", what, B,
           a * 1e6, b * 1e6, a / b);
    fflush(stdout);
    free(ta);
    free(tb);
}

int main(int argc, char **argv) {
    ae_backend want = bench_backend(argc > 1 ? argv[1] : NULL);
    int reps = argc > 2 ? atoi(argv[2]) : 300;
    const char *what = argc > 3 ? argv[3] : "te1";
    if (reps < 10) reps = 10;
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    const ae_activation acts[NL] = {AE_ACT_RELU, AE_ACT_IDENTITY, AE_ACT_RELU, AE_ACT_SIGMOID};
    if (ae_config_create(&cfg, NULL) != AE_OK || ae_config_set_backend(cfg, want) != AE_OK) return 1;
    ae_config_set_input_size(cfg, DIMS[0]);
    for (size_t l = 0; l < NL; l++) {
        ae_config_add_dense(cfg, DIMS[l + 1], acts[l]);
        if (l == 1) ae_config_mark_code(cfg);
    }
    ae_config_set_int(cfg, AE_P_OPTIMIZER, AE_OPT_ADAM);
    if (ae_model_create(&m, cfg) != AE_OK) {
        fprintf(stderr, "create: %s\n", ae_config_last_error(cfg));
        return 1;
    }
    ae_config_destroy(cfg);
    ae_backend be = ae_model_backend(m);
    bench_header(be);
    net n;
    for (size_t l = 0; l <= NL; l++) {
        n.act[l] = buf(256 * DIMS[l]);
        n.grad[l] = buf(256 * DIMS[l]);
    }
    for (size_t l = 0; l < NL; l++) {
        n.W[l] = buf(DIMS[l] * DIMS[l + 1]);
        n.dW[l] = buf(DIMS[l] * DIMS[l + 1]);
    }
    float *x = bench_data(ROWS, DIMS[0]), *out = malloc(256 * 32 * sizeof *out);
    if (!out) return 1;
    if (strchr(what, 't')) pair("a train step", m, be, &n, x, out, NL, 256, 1, reps);
    if (strchr(what, 'e')) pair("e encode 784-256-32", m, be, &n, x, out, 2, 256, 0, reps);
    if (strchr(what, '1')) pair("e encode 784-256-32", m, be, &n, x, out, 2, 1, 0, reps * 20);
    ae_model_destroy(m);
    return 0;
}
