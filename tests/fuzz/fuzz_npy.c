/* libFuzzer target for the .npy reader, parsing from memory. A success must
 * describe a consistent, finite result; a failure must leave nothing
 * allocated (ASan's leak check) and a message naming the input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ae_allocator a;
    if (ae_allocator_init(&a, NULL) != AE_OK) abort();
    ae_errbuf e;
    ae_idx x;
    e.msg[0] = '\0';
    ae_status st = ae_npy_parse_mem(&a, &e, "fuzz", data, size, &x);
    if (st == AE_OK) {
        if (x.count == 0 || x.dim == 0 || x.dim != x.shape[0] * x.shape[1] * x.shape[2] ||
            !x.values || x.labels)
            abort();
        for (size_t i = 0; i < x.count * x.dim; i++)
            if (!isfinite(x.values[i])) abort();
    } else {
        if (x.values || x.labels || x.count) abort();
        if (strncmp(e.msg, "fuzz: ", 6) != 0) abort();
    }
    ae_idx_free(&a, &x);
    return 0;
}
