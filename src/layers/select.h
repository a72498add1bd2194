/* The selection kernel shared by the top-k layers: indices of the k largest
 * of n strided values, ties to the lower index, by a size-k min-heap whose
 * top is the worst kept entry. Instantiated per index type. */
#ifndef AE_SELECT_H
#define AE_SELECT_H

#include <stdlib.h>

#define AE_DEFINE_SELECT(NAME, T)                                                              \
    static inline int NAME##_worse(const float *x, size_t stride, T a, T b) {                  \
        float va = x[(size_t)a * stride], vb = x[(size_t)b * stride];                          \
        return va < vb || (va == vb && a > b);                                                 \
    }                                                                                          \
    static void NAME##_sift(const float *x, size_t stride, T *h, size_t k, size_t i) {         \
        T v = h[i];                                                                            \
        for (;;) {                                                                             \
            size_t c = 2 * i + 1;                                                              \
            if (c >= k) break;                                                                 \
            if (c + 1 < k && NAME##_worse(x, stride, h[c + 1], h[c])) c++;                     \
            if (!NAME##_worse(x, stride, h[c], v)) break;                                      \
            h[i] = h[c];                                                                       \
            i = c;                                                                             \
        }                                                                                      \
        h[i] = v;                                                                              \
    }                                                                                          \
    static int NAME##_cmp(const void *a, const void *b) {                                      \
        T x = *(const T *)a, y = *(const T *)b;                                                \
        return (x > y) - (x < y);                                                              \
    }                                                                                          \
    /* 0, or -1 when a value is NaN (idx then holds 0..k-1). */                                \
    static int NAME(const float *x, size_t n, size_t stride, size_t k, T *idx) {              \
        for (size_t i = 0; i < k; i++) idx[i] = (T)i;                                          \
        for (size_t i = 0; i < k; i++)                                                         \
            if (x[i * stride] != x[i * stride]) return -1;                                     \
        if (k >= n) return 0;                                                                  \
        for (size_t i = k / 2; i-- > 0;) NAME##_sift(x, stride, idx, k, i);                    \
        for (size_t i = k; i < n; i++) {                                                       \
            float v = x[i * stride];                                                           \
            if (v != v) {                                                                      \
                for (size_t j = 0; j < k; j++) idx[j] = (T)j;                                  \
                return -1;                                                                     \
            }                                                                                  \
            /* An equal value comes later, so it loses the tie: strict >. */                   \
            if (v > x[(size_t)idx[0] * stride]) {                                              \
                idx[0] = (T)i;                                                                 \
                NAME##_sift(x, stride, idx, k, 0);                                             \
            }                                                                                  \
        }                                                                                      \
        if (k <= 32) {                                                                         \
            for (size_t i = 1; i < k; i++) {                                                   \
                T v = idx[i];                                                                  \
                size_t j = i;                                                                  \
                for (; j > 0 && idx[j - 1] > v; j--) idx[j] = idx[j - 1];                     \
                idx[j] = v;                                                                    \
            }                                                                                  \
        } else {                                                                               \
            qsort(idx, k, sizeof *idx, NAME##_cmp);                                            \
        }                                                                                      \
        return 0;                                                                              \
    }

#endif
