/* libFuzzer target for the PNG decoder (src/data/image.c), decoding from
 * memory to each channel count. A success must give pixels of a sane size;
 * a failure must leave nothing allocated (ASan's leak check) and a message
 * naming the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ae_allocator a;
    if (ae_allocator_init(&a, NULL) != AE_OK) abort();
    static const int channels[3] = {1, 3, 4};
    for (int i = 0; i < 3; i++) {
        ae_errbuf e;
        e.msg[0] = '\0';
        uint8_t *pix = (uint8_t *)1;
        size_t h = 0, w = 0;
        ae_status st = ae_png_decode(&a, &e, "fuzz", data, size, channels[i], &pix, &h, &w);
        if (st == AE_OK) {
            if (!pix || h == 0 || w == 0 || h * w > ((size_t)1 << 26)) abort();
            /* Touch every byte: the buffer must be h * w * channels long. */
            unsigned sum = 0;
            for (size_t k = 0; k < h * w * (size_t)channels[i]; k++) sum += pix[k];
            if (sum == 0xffffffffu) abort();
            ae_free(&a, pix);
        } else {
            if (pix) abort();
            if (strncmp(e.msg, "fuzz: ", 6) != 0) abort();
        }
    }
    return 0;
}
