/* CSV reader: numbers separated by commas, one sample per line, parsed from
 * memory. The first data row fixes the width; every later row must match.
 * Numbers are read with strtod in the C locale (uselocale, per thread), so
 * the program's locale never changes what a file means. The output is
 * sized from a line count, at most one float per field byte of the input. */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data.h"

#define CSV_FIELD_MAX 96

typedef ae_src_name csv_ctx;

/* One line: [p, end) without its line break. */
typedef struct line {
    const char *p, *end;
} line;

/* Next line starting at *pos; returns 0 at the end of the input. */
static int next_line(const char *buf, size_t len, size_t *pos, line *l) {
    if (*pos >= len) return 0;
    const char *s = buf + *pos, *nl = memchr(s, '\n', len - *pos);
    const char *e = nl ? nl : buf + len;
    *pos = (size_t)(e - buf) + (nl ? 1 : 0);
    if (e > s && e[-1] == '\r') e--;
    l->p = s;
    l->end = e;
    return 1;
}

static int is_space(char ch) { return ch == ' ' || ch == '\t'; }

static int blank(const line *l) {
    for (const char *q = l->p; q < l->end; q++)
        if (!is_space(*q)) return 0;
    return 1;
}

static size_t field_count(const line *l) {
    size_t n = 1;
    for (const char *q = l->p; q < l->end; q++) n += *q == ',';
    return n;
}

/* Whether the values are pixels written as text: all whole numbers in
 * 0..255 and not all 0 or 1 (binary features keep their values). */
static int byte_valued(const float *v, size_t n) {
    int above_one = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] >= 0.0f && v[i] <= 255.0f) || v[i] != floorf(v[i])) return 0;
        above_one |= v[i] > 1.0f;
    }
    return above_one;
}

/* Shows a field in a message: printable bytes only, shortened. */
static void show(char *dst, size_t cap, const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        dst[k++] = ch >= 32 && ch < 127 ? (char)ch : '?';
    }
    if (n > 0 && k + 4 >= cap && k >= 3) memcpy(dst + k - 3, "...", 3);
    dst[k] = '\0';
}

/* Trims spaces and one pair of double quotes. */
static void trim(const char **s, const char **e) {
    while (*s < *e && is_space(**s)) (*s)++;
    while (*e > *s && is_space((*e)[-1])) (*e)--;
    if (*e - *s >= 2 && **s == '"' && (*e)[-1] == '"') {
        (*s)++;
        (*e)--;
        while (*s < *e && is_space(**s)) (*s)++;
        while (*e > *s && is_space((*e)[-1])) (*e)--;
    }
}

static ae_status parse_value(csv_ctx *c, const char *s, const char *e, size_t lineno,
                             size_t field, float *out) {
    char tmp[CSV_FIELD_MAX + 1], shown[48];
    size_t n = (size_t)(e - s);
    if (n == 0)
        return ae_src_fail(c, AE_ERR_FORMAT, "line %zu, field %zu is empty: expected a number", lineno,
                        field);
    show(shown, sizeof shown, s, n);
    if (n > CSV_FIELD_MAX)
        return ae_src_fail(c, AE_ERR_FORMAT, "line %zu, field %zu ('%s') is not a number (too long)",
                        lineno, field, shown);
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    /* strtod skips leading space and reads "nan(...)", hex and inf: the
     * first character must start a decimal or hex number. */
    char *end = NULL;
    double v = strtod(tmp, &end);
    int starts = (tmp[0] >= '0' && tmp[0] <= '9') || tmp[0] == '.' || tmp[0] == '-' || tmp[0] == '+';
    if (end != tmp + n || end == tmp || !starts) {
        if (end == tmp + n && !isfinite(v))
            return ae_src_fail(c, AE_ERR_FORMAT,
                            "line %zu, field %zu is '%s': NaN or infinity where data must be finite",
                            lineno, field, shown);
        return ae_src_fail(c, AE_ERR_FORMAT, "line %zu, field %zu ('%s') is not a number%s", lineno,
                        field, shown,
                        lineno == 1 ? " (a header line? pass AE_CSV_HEADER)" : "");
    }
    if (!isfinite(v))
        return ae_src_fail(c, AE_ERR_FORMAT,
                        "line %zu, field %zu is '%s': NaN or infinity where data must be finite",
                        lineno, field, shown);
    if (fabs(v) > FLT_MAX)
        return ae_src_fail(c, AE_ERR_FORMAT, "line %zu, field %zu ('%s') is outside float's range",
                        lineno, field, shown);
    *out = (float)v;
    return AE_OK;
}

static ae_status parse_label(csv_ctx *c, const char *s, const char *e, size_t lineno,
                             int32_t *out) {
    char shown[48];
    show(shown, sizeof shown, s, (size_t)(e - s));
    const char *q = s;
    int neg = 0;
    if (q < e && (*q == '-' || *q == '+')) neg = *q++ == '-';
    int64_t v = 0;
    int digits = 0;
    while (q < e && *q >= '0' && *q <= '9') {
        v = v * 10 + (*q++ - '0');
        digits++;
        if (v > (int64_t)INT32_MAX + 1) break;
    }
    if (neg) v = -v;
    if (q != e || !digits || v > INT32_MAX || v < INT32_MIN)
        return ae_src_fail(c, AE_ERR_FORMAT, "line %zu: the label '%s' is not an int32%s", lineno,
                        shown, lineno == 1 ? " (a header line? pass AE_CSV_HEADER)" : "");
    *out = (int32_t)v;
    return AE_OK;
}

static ae_status parse_rows(csv_ctx *c, const char *buf, size_t len, size_t pos, size_t lineno,
                            size_t nfields, size_t first_line, int labelled, float *v,
                            int32_t *lab, size_t maxrows, size_t *rows) {
    size_t dim = nfields - (labelled ? 1 : 0), r = 0;
    line l;
    while (next_line(buf, len, &pos, &l)) {
        lineno++;
        if (blank(&l)) continue;
        size_t nf = field_count(&l);
        if (r == maxrows) /* cannot happen for rows of non-empty fields; kept as a guard */
            return ae_src_fail(c, AE_ERR_FORMAT, "line %zu: more rows than the input can hold", lineno);
        if (nf != nfields)
            return ae_src_fail(c, AE_ERR_FORMAT,
                            "line %zu has %zu fields, expected %zu (as on line %zu)", lineno, nf,
                            nfields, first_line);
        const char *s = l.p;
        for (size_t f = 0; f < nfields; f++) {
            const char *e = memchr(s, ',', (size_t)(l.end - s));
            if (!e) e = l.end;
            const char *a = s, *b = e;
            trim(&a, &b);
            ae_status st;
            if (labelled && f == 0)
                st = parse_label(c, a, b, lineno, &lab[r]);
            else
                st = parse_value(c, a, b, lineno, f + 1, &v[r * dim + f - (labelled ? 1 : 0)]);
            if (st) return st;
            s = e + 1;
        }
        r++;
    }
    *rows = r;
    return AE_OK;
}

ae_status ae_csv_parse_mem(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                           size_t len, unsigned flags, ae_idx *out) {
    if (!out) return ae_error(e, AE_ERR_INVALID_ARG, "ae_csv_parse_mem: out is NULL");
    memset(out, 0, sizeof *out);
    if (!a || !name || (!buf && len))
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_csv_parse_mem: NULL argument");
    csv_ctx c;
    ae_src_name_init(&c, e, name);
    if (flags & ~(unsigned)(AE_CSV_HEADER | AE_CSV_LABEL_FIRST))
        return ae_src_fail(&c, AE_ERR_INVALID_ARG, "unknown CSV flags 0x%x", flags);
    const char *text = buf;
    size_t pos = 0, lineno = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) pos = 3; /* UTF-8 byte order mark */
    if (text && memchr(text, '\0', len))
        return ae_src_fail(&c, AE_ERR_FORMAT, "a NUL byte: this is not a text file");
    line l;
    int have = 0, skipped_header = !(flags & AE_CSV_HEADER);
    /* Find the first data row: it fixes the number of fields. */
    size_t first_pos = pos;
    while (next_line(text, len, &pos, &l)) {
        lineno++;
        if (blank(&l)) {
            first_pos = pos;
            continue;
        }
        if (!skipped_header) {
            skipped_header = 1;
            first_pos = pos;
            continue;
        }
        have = 1;
        break;
    }
    if (!have) return ae_src_fail(&c, AE_ERR_FORMAT, "no data rows");
    size_t first_line = lineno, nfields = field_count(&l);
    int labelled = (flags & AE_CSV_LABEL_FIRST) != 0;
    if (labelled && nfields < 2)
        return ae_src_fail(&c, AE_ERR_FORMAT,
                        "line %zu has 1 field: a label column needs at least one value after it",
                        first_line);
    size_t dim = nfields - (labelled ? 1 : 0);
    if (dim > AE_MAX_DIM)
        return ae_src_fail(&c, AE_ERR_FORMAT, "%zu values per row: at most %zu", dim, AE_MAX_DIM);
    /* Upper bound of the row count: the lines left. Each row of nfields
     * fields takes at least 2 * nfields bytes, so rows * dim <= len. */
    size_t maxrows = 1;
    for (size_t q = first_pos; q < len; q++) maxrows += text[q] == '\n';
    size_t cap_rows = len / (2 * nfields) + 1;
    if (maxrows > cap_rows) maxrows = cap_rows;
    size_t elems;
    if (ae_mul_overflow(maxrows, dim, &elems) || elems > AE_IDX_MAX_ELEMS)
        return ae_src_fail(&c, AE_ERR_FORMAT, "too many values: the limit is %zu", AE_IDX_MAX_ELEMS);
    float *v = ae_alloc(a, elems * sizeof(float));
    int32_t *lab = labelled ? ae_alloc(a, maxrows * sizeof(int32_t)) : NULL;
    if (!v || (labelled && !lab)) {
        ae_free(a, v);
        ae_free(a, lab);
        return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu values", elems);
    }
    locale_t cl = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    if (cl == (locale_t)0) {
        ae_free(a, v);
        ae_free(a, lab);
        return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "cannot create the C locale");
    }
    locale_t old = uselocale(cl);
    size_t rows = 0;
    ae_status st = parse_rows(&c, text, len, first_pos, first_line - 1, nfields, first_line,
                              labelled, v, lab, maxrows, &rows);
    uselocale(old);
    freelocale(cl);
    if (st) {
        ae_free(a, v);
        ae_free(a, lab);
        return st;
    }
    out->values = v;
    out->labels = lab;
    out->elem = byte_valued(v, rows * dim) ? AE_ELEM_UINT8 : AE_ELEM_FLOAT;
    out->count = rows;
    out->shape[0] = dim;
    out->shape[1] = out->shape[2] = 1;
    out->dim = dim;
    return AE_OK;
}
