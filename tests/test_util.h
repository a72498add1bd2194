/* Shared test helpers: a counting/failing allocator and small numeric utilities. */
#ifndef AE_TEST_UTIL_H
#define AE_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include <libae/ae.h>

/* Counts allocations; fails the one with index fail_at (0-based), or none when fail_at < 0. */
typedef struct test_alloc {
    long count, live, fail_at;
} test_alloc;

static void *test_alloc_fn(void *ud, size_t n) {
    test_alloc *t = ud;
    if (t->fail_at >= 0 && t->count == t->fail_at) {
        t->count++;
        return NULL;
    }
    t->count++;
    void *p = malloc(n);
    if (p) t->live++;
    return p;
}

static void test_release_fn(void *ud, void *p) {
    test_alloc *t = ud;
    if (p) {
        t->live--;
        free(p);
    }
}

static inline ae_allocator test_allocator(test_alloc *t) {
    ae_allocator a = {sizeof(ae_allocator), test_alloc_fn, test_release_fn, t};
    return a;
}

/* Deterministic pseudo-random floats in [lo, hi). */
static inline void test_fill(float *p, size_t n, uint32_t seed, float lo, float hi) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        p[i] = lo + (hi - lo) * (float)(s >> 8) * (1.0f / 16777216.0f);
    }
}

/* max |a-b| / max(1, |b|) style check with a message naming the element. */
static inline void assert_close_arrays(const float *a, const float *b, size_t n, double rtol,
                                       double atol, const char *what) {
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)b[i]);
        if (diff > atol + rtol * fabs((double)b[i])) {
            print_error("%s[%zu]: got %.8g, expected %.8g (diff %.3g)\n", what, i, (double)a[i],
                        (double)b[i], diff);
            fail();
        }
    }
}

#endif
