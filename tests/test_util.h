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

/* Every layer's weights then bias, concatenated, out of or into a model
   (the order ae_model_param_count counts them in). */
static inline void test_get_params(const ae_model *m, float *p) {
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        assert_int_equal(ae_model_layer_info(m, l, &info), AE_OK);
        assert_int_equal(ae_model_get_weights(m, l, p, info.weight_count), AE_OK);
        p += info.weight_count;
        assert_int_equal(ae_model_get_bias(m, l, p, info.bias_count), AE_OK);
        p += info.bias_count;
    }
}

static inline void test_set_params(ae_model *m, const float *p) {
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        assert_int_equal(ae_model_layer_info(m, l, &info), AE_OK);
        assert_int_equal(ae_model_set_weights(m, l, p, info.weight_count), AE_OK);
        p += info.weight_count;
        assert_int_equal(ae_model_set_bias(m, l, p, info.bias_count), AE_OK);
        p += info.bias_count;
    }
}

#endif
