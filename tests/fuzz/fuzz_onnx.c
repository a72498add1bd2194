/* libFuzzer target for the ONNX importer (<libae/onnx.h>), from memory. A
 * failure must leave *out NULL, nothing allocated (ASan's leak check) and a
 * one-line message. A success must give a model that runs, exports, and
 * imports again to a model with the same outputs, bit for bit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libae/ae.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ae_model *m = (ae_model *)1;
    char err[512];
    ae_status st = ae_model_import_onnx_buffer(&m, data, size, NULL, err, sizeof err);
    if (st != AE_OK) {
        if (m || !err[0] || strchr(err, '\n')) abort();
        return 0;
    }
    if (!m) abort();
    size_t n = 0;
    if (ae_model_export_onnx_buffer(m, NULL, 0, &n, AE_ONNX_FULL) != AE_ERR_RANGE || !n) abort();
    uint8_t *buf = malloc(n);
    if (!buf || ae_model_export_onnx_buffer(m, buf, n, &n, AE_ONNX_FULL) != AE_OK) abort();
    ae_model *again = NULL;
    if (ae_model_import_onnx_buffer(&again, buf, n, NULL, err, sizeof err) != AE_OK) abort();
    /* Run small models once (a wide one would only cost time). */
    size_t in = ae_model_input_size(m), out = ae_model_output_size(m);
    if (in <= 4096 && ae_model_layer_count(m) <= 32 && ae_model_param_count(m) <= (1u << 20)) {
        float *x = calloc(2 * in, sizeof(float)), *y1 = calloc(2 * out, sizeof(float)),
              *y2 = calloc(2 * out, sizeof(float));
        if (!x || !y1 || !y2) abort();
        for (size_t i = 0; i < 2 * in; i++) x[i] = (float)(i % 7) * 0.25f - 0.5f;
        ae_status e1 = ae_reconstruct(m, x, 2, y1), e2 = ae_reconstruct(again, x, 2, y2);
        if (e1 != e2) abort();
        if (e1 == AE_OK && memcmp(y1, y2, 2 * out * sizeof(float)) != 0) abort();
        free(x);
        free(y1);
        free(y2);
    }
    free(buf);
    ae_model_destroy(again);
    ae_model_destroy(m);
    return 0;
}
