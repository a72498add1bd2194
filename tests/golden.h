/* Shared by tests/test_io.c and tests/fixtures/gen_golden.c, so that the
 * golden files' .expected are computed exactly as the test reads them. */
#ifndef AE_TESTS_GOLDEN_H
#define AE_TESTS_GOLDEN_H

#include <libae/ae.h>

/* A sample of a model's parameters: each layer's first and last weight and
 * its first bias, into p (room for cap values); *np receives the count.
 * y is scratch for y_cap floats. AE_ERR_RANGE when either is too small. */
static inline ae_status golden_sample_params(const ae_model *m, float *y, size_t y_cap, float *p,
                                             size_t cap, size_t *np) {
    size_t n = 0;
    for (size_t l = 0; l < ae_model_layer_count(m); l++) {
        ae_layer_info info = {.struct_size = sizeof info};
        ae_status st = ae_model_layer_info(m, l, &info);
        if (st != AE_OK) return st;
        if (info.weight_count > y_cap || info.bias_count > y_cap || n + 3 > cap)
            return AE_ERR_RANGE;
        if (info.weight_count) {
            if ((st = ae_model_get_weights(m, l, y, info.weight_count)) != AE_OK) return st;
            p[n++] = y[0];
            p[n++] = y[info.weight_count - 1];
        }
        if (info.bias_count) {
            if ((st = ae_model_get_bias(m, l, y, info.bias_count)) != AE_OK) return st;
            p[n++] = y[0];
        }
    }
    *np = n;
    return AE_OK;
}

#endif
