#include <cblas.h>
#include <math.h>

#ifdef AE_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

#include "core.h"

static void openblas_sgemm(ae_trans ta, ae_trans tb, size_t M, size_t N, size_t K, float alpha,
                           const float *A, size_t lda, const float *B, size_t ldb, float beta,
                           float *C, size_t ldc) {
    cblas_sgemm(CblasRowMajor, ta == AE_TRANS ? CblasTrans : CblasNoTrans,
                tb == AE_TRANS ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

#ifdef AE_HAVE_ONEDNN
/* dnnl_sgemm fails only when it cannot allocate its packing buffer (the
 * arguments are valid by construction); OpenBLAS then computes that one
 * product, so a step never goes on with an unwritten C. It also leaves C
 * unscaled when K is 0, which BLAS scales by beta: OpenBLAS does that case. */
static void onednn_sgemm(ae_trans ta, ae_trans tb, size_t M, size_t N, size_t K, float alpha,
                         const float *A, size_t lda, const float *B, size_t ldb, float beta,
                         float *C, size_t ldc) {
    if (K > 0 &&
        dnnl_sgemm(ta == AE_TRANS ? 'T' : 'N', tb == AE_TRANS ? 'T' : 'N', (dnnl_dim_t)M,
                   (dnnl_dim_t)N, (dnnl_dim_t)K, alpha, A, (dnnl_dim_t)lda, B, (dnnl_dim_t)ldb,
                   beta, C, (dnnl_dim_t)ldc) == dnnl_success)
        return;
    openblas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
#endif

void ae_sgemm(ae_backend be, ae_trans ta, ae_trans tb, size_t M, size_t N, size_t K, float alpha,
              const float *A, size_t lda, const float *B, size_t ldb, float beta, float *C,
              size_t ldc) {
    if (M == 0 || N == 0) return;
#ifdef AE_HAVE_ONEDNN
    if (be == AE_BACKEND_ONEDNN) {
        onednn_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
#endif
    (void)be;
    openblas_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/* y = alpha A x + beta y, A [rows, cols] row-major: four rows at a time, each
 * a dot product in sixteen lanes (the lanes' order fixed, so every clone sums
 * alike), x read from L1 and A streamed once. Batch-1 inference spends its
 * time here (784->256 of model a: 200,704 multiply-adds on 0.8 MB of weights,
 * which stay in L2); measured 10-20% faster than OpenBLAS's sgemv (Haswell
 * kernels) and oneDNN's one-row sgemm (docs/performance.md). beta 0: y is
 * only written, as BLAS does. */
AE_HOT static void gemv_rows(size_t rows, size_t cols, float alpha, const float *A, size_t lda,
                             const float *x, float beta, float *y) {
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        float a0[16] = {0}, a1[16] = {0}, a2[16] = {0}, a3[16] = {0};
        const float *w0 = A + r * lda, *w1 = w0 + lda, *w2 = w1 + lda, *w3 = w2 + lda;
        size_t c = 0;
        for (; c + 16 <= cols; c += 16)
            for (size_t l = 0; l < 16; l++) {
                float xv = x[c + l];
                a0[l] += w0[c + l] * xv;
                a1[l] += w1[c + l] * xv;
                a2[l] += w2[c + l] * xv;
                a3[l] += w3[c + l] * xv;
            }
        float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (size_t l = 0; l < 16; l++) {
            s[0] += a0[l];
            s[1] += a1[l];
            s[2] += a2[l];
            s[3] += a3[l];
        }
        for (; c < cols; c++) {
            s[0] += w0[c] * x[c];
            s[1] += w1[c] * x[c];
            s[2] += w2[c] * x[c];
            s[3] += w3[c] * x[c];
        }
        for (size_t k = 0; k < 4; k++)
            y[r + k] = beta == 0.0f ? alpha * s[k] : alpha * s[k] + beta * y[r + k];
    }
    for (; r < rows; r++) {
        float a0[16] = {0};
        const float *w0 = A + r * lda;
        size_t c = 0;
        for (; c + 16 <= cols; c += 16)
            for (size_t l = 0; l < 16; l++) a0[l] += w0[c + l] * x[c + l];
        float s = 0.0f;
        for (size_t l = 0; l < 16; l++) s += a0[l];
        for (; c < cols; c++) s += w0[c] * x[c];
        y[r] = beta == 0.0f ? alpha * s : alpha * s + beta * y[r];
    }
}

void ae_sgemv(ae_backend be, ae_trans ta, size_t rows, size_t cols, float alpha, const float *A,
              size_t lda, const float *x, float beta, float *y) {
    if (rows == 0 || cols == 0) return;
    /* y = A x is libae's own on every backend (above); y = Aᵀ x (a tied
     * decoder at batch 1) the backend's. */
    if (ta == AE_NO_TRANS) {
        gemv_rows(rows, cols, alpha, A, lda, x, beta, y);
        return;
    }
#ifdef AE_HAVE_ONEDNN
    /* oneDNN has no GEMV: the product as a one-row GEMM, y^T = x^T A. */
    if (be == AE_BACKEND_ONEDNN) {
        onednn_sgemm(AE_NO_TRANS, AE_NO_TRANS, 1, cols, rows, alpha, x, rows, A, lda, beta, y,
                     cols);
        return;
    }
#endif
    (void)be;
    cblas_sgemv(CblasRowMajor, CblasTrans, (int)rows, (int)cols, alpha, A, (int)lda, x, 1, beta, y,
                1);
}

#define AE_TILE 16
void ae_transpose(const float *src, size_t rows, size_t cols, float *dst) {
    for (size_t r0 = 0; r0 < rows; r0 += AE_TILE) {
        size_t r1 = rows - r0 < AE_TILE ? rows : r0 + AE_TILE;
        for (size_t c0 = 0; c0 < cols; c0 += AE_TILE) {
            size_t c1 = cols - c0 < AE_TILE ? cols : c0 + AE_TILE;
            for (size_t c = c0; c < c1; c++)
                for (size_t r = r0; r < r1; r++) dst[c * rows + r] = src[r * cols + c];
        }
    }
}

/* ---- backends ---- */

const char *ae_backend_name(ae_backend backend) {
    switch (backend) {
    case AE_BACKEND_AUTO: return "auto";
    case AE_BACKEND_OPENBLAS: return "openblas";
    case AE_BACKEND_ONEDNN: return "onednn";
    }
    return NULL;
}

int ae_backend_available(ae_backend backend) {
    switch (backend) {
    case AE_BACKEND_AUTO:
    case AE_BACKEND_OPENBLAS: return 1;
    case AE_BACKEND_ONEDNN:
#ifdef AE_HAVE_ONEDNN
        return 1;
#else
        return 0;
#endif
    }
    return 0;
}

/* The rule (docs/performance.md): oneDNN whenever it is built in. Measured
 * on the dense and im2col shapes, its sgemm was never slower than
 * OpenBLAS's with any core OpenBLAS picks, and about 2x faster than its
 * AVX2 kernels, which OPENBLAS_CORETYPE=Haswell or a CPU newer than
 * OpenBLAS's tables gets. */
ae_backend ae_backend_resolve(ae_backend chosen) {
    if (chosen != AE_BACKEND_AUTO) return chosen;
    return ae_backend_available(AE_BACKEND_ONEDNN) ? AE_BACKEND_ONEDNN : AE_BACKEND_OPENBLAS;
}

/* Integer tests of the exponent bits vectorise where a float reduction would not. */
AE_HOT int ae_all_finite(const float *p, size_t n) {
    const uint32_t *u = (const uint32_t *)(const void *)p;
    uint32_t bad = 0;
    for (size_t i = 0; i < n; i++) bad |= (uint32_t)((u[i] & 0x7f800000u) == 0x7f800000u);
    return bad == 0;
}

size_t ae_first_nonfinite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return i;
    return n;
}
