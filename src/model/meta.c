/* Model metadata: UTF-8 key/value strings kept with the model, through its
 * allocator, in the order the keys were first set (saved in its file). */
#include <string.h>

#include <libae/io.h>

#include "model.h"

/* 1 when s[0, n) is well-formed UTF-8 (no overlong forms, no surrogates,
 * nothing above U+10FFFF) without NUL. */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp, min;
        if ((c & 0xE0) == 0xC0) {
            len = 2, cp = c & 0x1F, min = 0x80;
        } else if ((c & 0xF0) == 0xE0) {
            len = 3, cp = c & 0x0F, min = 0x800;
        } else if ((c & 0xF8) == 0xF0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i < len) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
        i += len;
    }
    return 1;
}

/* The key for a message: at most 40 bytes, control characters as '?', so
 * that a message stays on one line. */
static void key_text(const char *key, size_t len, char out[48]) {
    size_t n = len > 40 ? 40 : len;
    for (size_t i = 0; i < n; i++) out[i] = (unsigned char)key[i] < 32 || key[i] == 127 ? '?' : key[i];
    memcpy(out + n, len > 40 ? "..." : "", len > 40 ? 4 : 1);
}

static size_t find_key(const ae_model *m, const char *key, size_t key_len) {
    for (size_t i = 0; i < m->nmeta; i++)
        if (m->meta[i].key_len == key_len && memcmp(m->meta[i].key, key, key_len) == 0) return i;
    return m->nmeta;
}

static char *copy_str(const ae_allocator *a, const char *s, size_t n) {
    char *p = ae_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

ae_status ae_meta_set(ae_model *m, ae_errbuf *err, const char *key, size_t key_len,
                      const char *value, size_t value_len) {
    if (key_len == 0 || key_len > AE_META_KEY_MAX)
        return ae_error(err, AE_ERR_INVALID_ARG, "a metadata key must have 1 to %d bytes, got %zu",
                        AE_META_KEY_MAX, key_len);
    if (!valid_utf8((const unsigned char *)key, key_len))
        return ae_error(err, AE_ERR_INVALID_ARG, "metadata key is not valid UTF-8 (or holds NUL)");
    size_t at = find_key(m, key, key_len);
    if (!value) {
        if (at == m->nmeta) return AE_OK;
        ae_free(&m->alloc, m->meta[at].key);
        ae_free(&m->alloc, m->meta[at].value);
        memmove(&m->meta[at], &m->meta[at + 1], (m->nmeta - at - 1) * sizeof *m->meta);
        m->nmeta--;
        return AE_OK;
    }
    char kt[48];
    key_text(key, key_len, kt);
    if (value_len > AE_META_VALUE_MAX)
        return ae_error(err, AE_ERR_INVALID_ARG,
                        "the value of metadata key '%s' has %zu bytes; at most %zu allowed", kt,
                        value_len, AE_META_VALUE_MAX);
    if (!valid_utf8((const unsigned char *)value, value_len))
        return ae_error(err, AE_ERR_INVALID_ARG,
                        "the value of metadata key '%s' is not valid UTF-8 (or holds NUL)", kt);
    /* Everything allocated before anything changes. */
    char *v = copy_str(&m->alloc, value, value_len);
    if (!v) return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory storing metadata");
    if (at < m->nmeta) {
        ae_free(&m->alloc, m->meta[at].value);
        m->meta[at].value = v;
        m->meta[at].value_len = value_len;
        return AE_OK;
    }
    char *k = copy_str(&m->alloc, key, key_len);
    if (!k) {
        ae_free(&m->alloc, v);
        return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory storing metadata");
    }
    if (m->nmeta == m->meta_cap) {
        size_t cap = m->meta_cap ? 2 * m->meta_cap : 8;
        ae_meta_entry *n = ae_calloc(&m->alloc, cap, sizeof *n);
        if (!n) {
            ae_free(&m->alloc, k);
            ae_free(&m->alloc, v);
            return ae_error(err, AE_ERR_OUT_OF_MEMORY, "out of memory storing metadata");
        }
        if (m->nmeta) memcpy(n, m->meta, m->nmeta * sizeof *n);
        ae_free(&m->alloc, m->meta);
        m->meta = n;
        m->meta_cap = cap;
    }
    m->meta[m->nmeta++] = (ae_meta_entry){k, v, key_len, value_len};
    return AE_OK;
}

void ae_meta_free(ae_model *m) {
    for (size_t i = 0; i < m->nmeta; i++) {
        ae_free(&m->alloc, m->meta[i].key);
        ae_free(&m->alloc, m->meta[i].value);
    }
    ae_free(&m->alloc, m->meta);
    m->meta = NULL;
    m->nmeta = m->meta_cap = 0;
}

/* Lengths found without reading past the limits (+1 to tell "too long"). */
static size_t bounded_len(const char *s, size_t max) {
    size_t n = 0;
    while (n <= max && s[n]) n++;
    return n;
}

ae_status ae_model_set_meta(ae_model *m, const char *key, const char *value) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (!key) return ae_error(&m->err, AE_ERR_INVALID_ARG, "the metadata key is NULL");
    size_t kl = bounded_len(key, AE_META_KEY_MAX);
    size_t vl = value ? bounded_len(value, AE_META_VALUE_MAX) : 0;
    return ae_meta_set(m, &m->err, key, kl, value, vl);
}

ae_status ae_model_get_meta(const ae_model *m, const char *key, const char **value) {
    if (!m || !key || !value) return AE_ERR_INVALID_ARG;
    size_t at = find_key(m, key, bounded_len(key, AE_META_KEY_MAX));
    *value = at < m->nmeta ? m->meta[at].value : NULL;
    return AE_OK;
}

size_t ae_model_meta_count(const ae_model *m) { return m ? m->nmeta : 0; }

ae_status ae_model_meta_at(const ae_model *m, size_t index, const char **key, const char **value) {
    if (!m) return AE_ERR_INVALID_ARG;
    if (index >= m->nmeta) return AE_ERR_RANGE;
    if (key) *key = m->meta[index].key;
    if (value) *value = m->meta[index].value;
    return AE_OK;
}
