/* Shared test helpers: a counting/failing allocator and small numeric utilities. */
#ifndef AE_TEST_UTIL_H
#define AE_TEST_UTIL_H

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* ---- the backend every test runs on ----
 * AE_TEST_BACKEND (auto, openblas or onednn; unset: auto) forces the
 * backend of every model the tests create or load (the wrappers below
 * replace ae_model_create and the loaders in every file that includes this
 * one) and of the layers the tests run alone (test_layer_backend). The
 * test setups of tests/meson.build set it; this header is the only reader
 * (the library never reads the environment). */
static inline ae_backend test_backend(void) {
    const char *v = getenv("AE_TEST_BACKEND");
    if (!v || !*v) return AE_BACKEND_AUTO;
    for (int b = AE_BACKEND_AUTO; b <= AE_BACKEND_ONEDNN; b++)
        if (strcmp(v, ae_backend_name((ae_backend)b)) == 0) {
            if (!ae_backend_available((ae_backend)b)) {
                fprintf(stderr, "AE_TEST_BACKEND=%s: not built into this libae\n", v);
                abort();
            }
            return (ae_backend)b;
        }
    fprintf(stderr, "AE_TEST_BACKEND=%s: not auto, openblas or onednn\n", v);
    abort();
}

/* Forces the backend on a config the test made (a test's configs are never
 * const objects: casting the const away is defined). */
static inline void test_force_backend(const ae_config *cfg) {
    ae_backend b = test_backend();
    if (cfg && b != AE_BACKEND_AUTO && ae_config_set_backend((ae_config *)cfg, b) != AE_OK) abort();
}

static inline ae_status test_model_create_(ae_model **out, const ae_config *cfg) {
    test_force_backend(cfg);
    return ae_model_create(out, cfg);
}

static inline ae_status test_model_load_buffer_(ae_model **out, const void *buf, size_t size,
                                                const ae_config *cfg) {
    if (cfg || test_backend() == AE_BACKEND_AUTO) {
        test_force_backend(cfg);
        return ae_model_load_buffer(out, buf, size, cfg);
    }
    /* NULL: malloc and no message; a fresh config gives the same, and the backend. */
    ae_config *c = NULL;
    if (ae_config_create(&c, NULL) != AE_OK) abort();
    test_force_backend(c);
    ae_status st = ae_model_load_buffer(out, buf, size, c);
    ae_config_destroy(c);
    return st;
}

static inline ae_status test_model_load_(ae_model **out, const char *path, const ae_config *cfg) {
    if (cfg || test_backend() == AE_BACKEND_AUTO) {
        test_force_backend(cfg);
        return ae_model_load(out, path, cfg);
    }
    ae_config *c = NULL;
    if (ae_config_create(&c, NULL) != AE_OK) abort();
    test_force_backend(c);
    ae_status st = ae_model_load(out, path, c);
    ae_config_destroy(c);
    return st;
}

/* ONNX imports take the backend of their options' settings config. Options
 * the library would refuse (a wrong struct_size) pass through unchanged. */
static inline ae_status test_import_onnx_(ae_model **out, int file, const char *path,
                                          const void *buf, size_t size,
                                          const ae_onnx_import_options *opts, char *err,
                                          size_t err_size) {
    ae_onnx_import_options o;
    ae_onnx_import_options_init(&o);
    ae_config *c = NULL;
    if (test_backend() != AE_BACKEND_AUTO && (!opts || opts->struct_size == sizeof o)) {
        if (opts) o = *opts;
        if (!o.settings) {
            if (ae_config_create(&c, NULL) != AE_OK) abort();
            o.settings = c;
        }
        test_force_backend(o.settings);
        opts = &o;
    }
    ae_status st = file ? ae_model_import_onnx(out, path, opts, err, err_size)
                        : ae_model_import_onnx_buffer(out, buf, size, opts, err, err_size);
    ae_config_destroy(c);
    return st;
}

/* Function-like: a test that needs the library's own call writes the name
 * in parentheses, (ae_model_create)(&m, cfg). */
#define ae_model_create(out, cfg) test_model_create_(out, cfg)
#define ae_model_load_buffer(out, buf, size, cfg) test_model_load_buffer_(out, buf, size, cfg)
#define ae_model_load(out, path, cfg) test_model_load_(out, path, cfg)
#define ae_model_import_onnx(out, path, opts, err, n) \
    test_import_onnx_(out, 1, path, NULL, 0, opts, err, n)
#define ae_model_import_onnx_buffer(out, buf, size, opts, err, n) \
    test_import_onnx_(out, 0, NULL, buf, size, opts, err, n)

/* The backend of a layer run alone (ae_layer_io.backend): the one a model
 * created now would compute with. */
static inline ae_backend test_layer_backend(void) {
    static ae_backend b = AE_BACKEND_AUTO;
    if (b != AE_BACKEND_AUTO) return b;
    ae_config *c = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&c, NULL) || ae_config_set_input_size(c, 1) ||
        ae_config_add_dense(c, 1, AE_ACT_IDENTITY) || ae_config_mark_code(c) ||
        ae_config_add_dense(c, 1, AE_ACT_IDENTITY) || ae_model_create(&m, c))
        abort();
    b = ae_model_backend(m);
    ae_model_destroy(m);
    ae_config_destroy(c);
    return b;
}

#endif
