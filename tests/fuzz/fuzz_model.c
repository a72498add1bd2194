/* libFuzzer target for the model loader (<libae/io.h>), from memory. Each
 * input is loaded as it is, and again with its size field and CRC-32 made
 * right, so that the fuzzer gets past the checksum into the parser. A
 * success must give a model that runs and saves to a file that loads and
 * saves again to the same bytes; a failure must leave *out NULL, nothing
 * allocated (ASan's leak check) and a one-line message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include <libae/io.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void try_load(const uint8_t *data, size_t size) {
    ae_model *m = (ae_model *)1;
    ae_config *cfg = NULL; /* the handle of the load's message */
    if (ae_config_create(&cfg, NULL) != AE_OK) abort();
    ae_status st = ae_model_load_buffer(&m, data, size, cfg);
    const char *err = ae_config_last_error(cfg);
    if (st != AE_OK) {
        if (m || !err[0] || strchr(err, '\n')) abort();
        ae_config_destroy(cfg);
        return;
    }
    if (!m || err[0]) abort();
    ae_config_destroy(cfg);
    /* The checkpoint flag is bit 0 of byte 12. */
    unsigned flags = data[12] & 1;
    size_t n = 0, n2 = 0;
    /* Not always `size` bytes: settings a file lacks are written back. */
    if (ae_model_save_buffer(m, NULL, 0, &n, flags) != AE_ERR_RANGE || n == 0) abort();
    uint8_t *buf = malloc(n), *buf2 = malloc(n);
    if (!buf || !buf2) abort();
    if (ae_model_save_buffer(m, buf, n, &n, flags) != AE_OK) abort();
    ae_model *again = NULL;
    if (ae_model_load_buffer(&again, buf, n, NULL) != AE_OK) abort();
    if (ae_model_save_buffer(again, buf2, n, &n2, flags) != AE_OK || n2 != n ||
        memcmp(buf, buf2, n) != 0)
        abort();
    /* Run small models once (a wide one would only cost time). */
    size_t in = ae_model_input_size(m), code = ae_model_code_size(m);
    if (in <= 4096 && code <= 4096 && ae_model_layer_count(m) <= 16) {
        float *x = calloc(2 * in, sizeof(float)), *c = calloc(2 * code, sizeof(float));
        if (!x || !c) abort();
        ae_status e = ae_encode(m, x, 2, c);
        if (e != AE_OK && e != AE_ERR_OUT_OF_MEMORY && e != AE_ERR_RANGE) abort();
        free(x);
        free(c);
    }
    free(buf);
    free(buf2);
    ae_model_destroy(again);
    ae_model_destroy(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try_load(data, size);
    if (size < 36) return 0;
    uint8_t *q = malloc(size);
    if (!q) abort();
    memcpy(q, data, size);
    for (int i = 0; i < 8; i++) q[16 + i] = (uint8_t)((uint64_t)size >> (8 * i));
    uint32_t crc = (uint32_t)crc32(0L, q, (uInt)(size - 4));
    for (int i = 0; i < 4; i++) q[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    try_load(q, size);
    free(q);
    return 0;
}
