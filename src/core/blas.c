#include <cblas.h>
#include <math.h>

#include "core.h"

void ae_sgemm(ae_trans ta, ae_trans tb, size_t M, size_t N, size_t K, float alpha, const float *A,
              size_t lda, const float *B, size_t ldb, float beta, float *C, size_t ldc) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta == AE_TRANS ? CblasTrans : CblasNoTrans,
                tb == AE_TRANS ? CblasTrans : CblasNoTrans, (int)M, (int)N, (int)K, alpha, A,
                (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

void ae_sgemv(ae_trans ta, size_t rows, size_t cols, float alpha, const float *A, size_t lda,
              const float *x, float beta, float *y) {
    if (rows == 0 || cols == 0) return;
    cblas_sgemv(CblasRowMajor, ta == AE_TRANS ? CblasTrans : CblasNoTrans, (int)rows, (int)cols,
                alpha, A, (int)lda, x, 1, beta, y, 1);
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
