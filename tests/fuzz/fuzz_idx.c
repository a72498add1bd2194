/* libFuzzer target for the IDX reader. The input is parsed from memory as a
 * samples file and as a labels file (gzipped when it starts with 1f 8b, as
 * for files); a success must describe a consistent result, a failure must
 * leave nothing allocated (ASan's leak check) and a message naming the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ae_allocator a;
    if (ae_allocator_init(&a, NULL) != AE_OK) abort();
    for (int role = AE_IDX_SAMPLES; role <= AE_IDX_LABELS; role++) {
        ae_errbuf e;
        ae_idx x;
        e.msg[0] = '\0';
        ae_status st = ae_idx_parse_mem(&a, &e, "fuzz", data, size, (ae_idx_role)role, &x);
        if (st == AE_OK) {
            if (x.count == 0 || x.dim == 0 || x.dim != x.shape[0] * x.shape[1] * x.shape[2])
                abort();
            if (role == AE_IDX_SAMPLES) {
                if (!x.values || x.labels) abort();
                for (size_t i = 0; i < x.count * x.dim; i++)
                    if (!(x.values[i] >= 0.0f && x.values[i] <= 255.0f)) abort();
            } else {
                if (!x.labels || x.values || x.dim != 1) abort();
                for (size_t i = 0; i < x.count; i++)
                    if (x.labels[i] < 0 || x.labels[i] > 255) abort();
            }
        } else {
            if (x.values || x.labels || x.count) abort();
            if (strncmp(e.msg, "fuzz: ", 6) != 0) abort();
        }
        ae_idx_free(&a, &x);
    }
    return 0;
}
