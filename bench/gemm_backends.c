/* The GEMM and GEMV shapes of the dense models on each backend, through
 * libae's own wrappers (ae_sgemm, ae_sgemv), interleaved call by call so
 * that both see the same machine: the measurement behind the AUTO
 * backend's rule (docs/performance.md). Prints the median of each and the
 * ratio OpenBLAS / oneDNN (above 1: oneDNN is faster).
 *
 *   gemm_backends [REPEATS]
 *
 * Run with OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1, as set and with
 * OPENBLAS_CORETYPE unset. */
#include <stdio.h>
#include <stdlib.h>

#include "bench_common.h"
#include "core/core.h"

typedef struct shape {
    const char *what;
    ae_trans ta, tb;
    size_t M, N, K;
    int gemv; /* y = W x with W [N, K]: ae_sgemv, batch 1 */
} shape;

/* Model a (784-256-32-256-784, batch 256): forward x Wᵀ, weight gradient
 * dᵀ x, input gradient d W; and the encoder at batch 1. */
static const shape SHAPES[] = {
    {"a fwd 784->256", AE_NO_TRANS, AE_TRANS, 256, 256, 784, 0},
    {"a fwd 256->784", AE_NO_TRANS, AE_TRANS, 256, 784, 256, 0},
    {"a fwd 256->32", AE_NO_TRANS, AE_TRANS, 256, 32, 256, 0},
    {"a fwd 32->256", AE_NO_TRANS, AE_TRANS, 256, 256, 32, 0},
    {"a dW 256x784", AE_TRANS, AE_NO_TRANS, 256, 784, 256, 0},
    {"a dW 784x256", AE_TRANS, AE_NO_TRANS, 784, 256, 256, 0},
    {"a dx 256->784", AE_NO_TRANS, AE_NO_TRANS, 256, 784, 256, 0},
    {"a dx 784->256", AE_NO_TRANS, AE_NO_TRANS, 256, 256, 784, 0},
    {"e batch 1 784->256", AE_NO_TRANS, AE_NO_TRANS, 1, 256, 784, 1},
    {"e batch 1 256->32", AE_NO_TRANS, AE_NO_TRANS, 1, 32, 256, 1},
};

static void call(ae_backend be, const shape *s, const float *A, const float *B, float *C) {
    if (s->gemv) {
        ae_sgemv(be, AE_NO_TRANS, s->N, s->K, 1.0f, B, s->K, A, 0.0f, C);
        return;
    }
    size_t lda = s->ta ? s->M : s->K, ldb = s->tb ? s->K : s->N;
    ae_sgemm(be, s->ta, s->tb, s->M, s->N, s->K, 1.0f, A, lda, B, ldb, 0.0f, C, s->N);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 400;
    if (reps < 10) reps = 10;
    int dnnl = ae_backend_available(AE_BACKEND_ONEDNN);
    bench_header(AE_BACKEND_OPENBLAS);
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("# OPENBLAS_CORETYPE=%s; oneDNN %s\n", ct ? ct : "(unset)",
           dnnl ? "built in" : "not built in");
    printf("%-22s %-16s %12s %12s %8s\n", "shape", "M x N x K", "OpenBLAS us", "oneDNN us",
           "ratio");
    double *t[2] = {malloc((size_t)reps * sizeof(double)), malloc((size_t)reps * sizeof(double))};
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) {
        const shape *s = &SHAPES[i];
        float *A = malloc(s->M * s->K * sizeof *A), *B = malloc(s->K * s->N * sizeof *B),
              *C = malloc(s->M * s->N * sizeof *C);
        if (!A || !B || !C || !t[0] || !t[1]) return 1;
        for (size_t j = 0; j < s->M * s->K; j++) A[j] = (float)(j % 13) / 13.0f;
        for (size_t j = 0; j < s->K * s->N; j++) B[j] = (float)(j % 11) / 11.0f;
        for (int w = 0; w < 10; w++)
            for (int b = 0; b < 1 + dnnl; b++)
                call(b ? AE_BACKEND_ONEDNN : AE_BACKEND_OPENBLAS, s, A, B, C);
        for (int r = 0; r < reps; r++)
            for (int b = 0; b < 1 + dnnl; b++) {
                double t0 = bench_now();
                call(b ? AE_BACKEND_ONEDNN : AE_BACKEND_OPENBLAS, s, A, B, C);
                t[b][r] = bench_now() - t0;
            }
        double med[2] = {0, 0};
        for (int b = 0; b < 1 + dnnl; b++) {
            qsort(t[b], (size_t)reps, sizeof(double), bench_cmp);
            med[b] = t[b][reps / 2] * 1e6;
        }
        char dims[32];
        snprintf(dims, sizeof dims, "%zux%zux%zu%s", s->M, s->N, s->K, s->gemv ? " gemv" : "");
        if (dnnl)
            printf("%-22s %-16s %12.1f %12.1f %8.2f\n", s->what, dims, med[0], med[1],
                   med[0] / med[1]);
        else
            printf("%-22s %-16s %12.1f %12s %8s\n", s->what, dims, med[0], "-", "-");
        free(A);
        free(B);
        free(C);
    }
    free(t[0]);
    free(t[1]);
    return 0;
}
