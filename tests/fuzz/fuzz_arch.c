/* libFuzzer target for architecture descriptions (src/model/arch.c): any
 * bytes parse into a config or fail with a message naming the line, and
 * change nothing; a description that parses prints as text that parses
 * into a config printing the same text (the printer's output is a fixed
 * point). ASan's leak check covers both paths. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const ae_config *cfg) {
    size_t n = 0;
    if (ae_arch_print_config(cfg, NULL, 0, &n) != AE_ERR_RANGE) abort();
    char *s = malloc(n + 1);
    if (!s || ae_arch_print_config(cfg, s, n + 1, &n) != AE_OK || strlen(s) != n) abort();
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ae_config *cfg = NULL, *again = NULL;
    if (ae_config_create(&cfg, NULL) != AE_OK) abort();
    char *empty = print(cfg);
    ae_status st = ae_arch_parse(cfg, (const char *)data, size);
    if (st != AE_OK) {
        if (strncmp(ae_config_last_error(cfg), "line ", 5) != 0) abort();
        char *after = print(cfg);
        if (strcmp(after, empty) != 0) abort();
        free(after);
    } else {
        char *p1 = print(cfg);
        if (ae_config_create(&again, NULL) != AE_OK || ae_config_from_arch(again, p1) != AE_OK)
            abort();
        char *p2 = print(again);
        if (strcmp(p1, p2) != 0) abort();
        free(p1);
        free(p2);
    }
    free(empty);
    ae_config_destroy(cfg);
    ae_config_destroy(again);
    return 0;
}
