/* Architecture descriptions in the tool: every model `ae train` builds
 * goes through one text (docs/arch.md) and ae_config_from_arch, whether it
 * comes from --arch, --arch-string or the shortcut flags; `ae info` prints
 * a model's description with ae_model_describe. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

int sb_printf(strbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || b->failed) return b->failed = -1;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *p = realloc(b->s, cap);
        if (!p) return b->failed = -1;
        b->s = p;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *arch_read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(EXIT_RUN, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    strbuf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (memchr(chunk, '\0', n)) {
            fclose(f);
            free(b.s);
            fail(EXIT_RUN, "%s: a NUL byte: not an architecture description", path);
            return NULL;
        }
        sb_printf(&b, "%.*s", (int)n, chunk);
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || b.failed) {
        free(b.s);
        fail(EXIT_RUN, bad ? "cannot read %s" : "out of memory reading %s", path);
        return NULL;
    }
    if (!b.s) sb_printf(&b, "%s", "");
    return b.s;
}

ae_model *arch_build(const char *text, const char *settings, const size_t shape[3], int64_t seed,
                     const char *what) {
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    if (ae_config_create(&cfg, NULL) != AE_OK) {
        fail(EXIT_RUN, "out of memory");
        return NULL;
    }
    /* The data's shape, unless the description has an input line. */
    ae_status st = ae_config_set_input_shape(cfg, shape[0], shape[1], shape[2]);
    if (st == AE_OK) st = ae_config_set_int(cfg, AE_P_SEED, seed);
    if (st != AE_OK)
        fail(EXIT_RUN, "cannot build the model: %s", ae_config_last_error(cfg));
    else if ((st = ae_config_from_arch(cfg, text)) != AE_OK)
        fail(EXIT_RUN, "%s: %s", what, ae_config_last_error(cfg));
    else if ((st = ae_config_from_arch(cfg, settings)) != AE_OK)
        fail(EXIT_RUN, "the training options: %s", ae_config_last_error(cfg));
    else if ((st = ae_model_create(&m, cfg)) != AE_OK)
        fail(EXIT_RUN, "cannot build the model: %s", ae_config_last_error(cfg));
    ae_config_destroy(cfg);
    return m;
}

char *arch_describe(const ae_model *m) {
    size_t n = 0;
    ae_model_describe(m, NULL, 0, &n);
    char *s = malloc(n + 1);
    if (!s || ae_model_describe(m, s, n + 1, &n) != AE_OK) {
        free(s);
        fail(EXIT_RUN, "cannot describe the model: %s", ae_model_last_error(m));
        return NULL;
    }
    return s;
}
