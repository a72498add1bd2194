/* libFuzzer target for the CSV reader, parsing from memory with every
 * combination of flags. A success must describe a consistent, finite
 * result; a failure must leave nothing allocated (ASan's leak check) and a
 * message naming the input. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ae_allocator a;
    if (ae_allocator_init(&a, NULL) != AE_OK) abort();
    for (unsigned flags = 0; flags < 4; flags++) {
        ae_errbuf e;
        ae_idx x;
        e.msg[0] = '\0';
        ae_status st = ae_csv_parse_mem(&a, &e, "fuzz", data, size, flags, &x);
        if (st == AE_OK) {
            if (x.count == 0 || x.dim == 0 || x.dim != x.shape[0] || x.shape[1] != 1 ||
                x.shape[2] != 1 || !x.values || !x.labels != !(flags & AE_CSV_LABEL_FIRST))
                abort();
            for (size_t i = 0; i < x.count * x.dim; i++)
                if (!isfinite(x.values[i])) abort();
        } else {
            if (x.values || x.labels || x.count) abort();
            if (strncmp(e.msg, "fuzz: ", 6) != 0) abort();
        }
        ae_idx_free(&a, &x);
    }
    return 0;
}
