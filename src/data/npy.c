/* NumPy .npy reader and writer. The reader parses from memory: the magic,
 * the version (1.0: 2-byte header length; 2.0 and 3.0: 4-byte), and the
 * header, a Python dict literal with exactly the keys 'descr',
 * 'fortran_order' and 'shape'; then the C-order data, whose size must match
 * the shape exactly. Nothing sized by the header is allocated before that
 * size is checked against the input. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy reader and writer assume a little-endian host"
#endif

#define NPY_MAX_DIMS 4

typedef ae_src_name npy_ctx;

/* ---- the header dict ---- */

typedef struct hdr {
    const char *p, *end;
} hdr;

static void skip_ws(hdr *h) {
    while (h->p < h->end && (*h->p == ' ' || *h->p == '\t' || *h->p == '\n' || *h->p == '\r'))
        h->p++;
}

static int accept(hdr *h, char ch) {
    skip_ws(h);
    if (h->p < h->end && *h->p == ch) {
        h->p++;
        return 1;
    }
    return 0;
}

/* A quoted string without escapes; copies up to cap-1 bytes. */
static int parse_str(hdr *h, char *out, size_t cap) {
    skip_ws(h);
    if (h->p >= h->end || (*h->p != '\'' && *h->p != '"')) return 0;
    char q = *h->p++;
    size_t n = 0;
    while (h->p < h->end && *h->p != q) {
        if (*h->p == '\\' || n + 1 >= cap) return 0;
        out[n++] = *h->p++;
    }
    if (h->p >= h->end) return 0;
    h->p++;
    out[n] = '\0';
    return 1;
}

static int parse_word(hdr *h, const char *w) {
    skip_ws(h);
    size_t n = strlen(w);
    if ((size_t)(h->end - h->p) < n || memcmp(h->p, w, n) != 0) return 0;
    h->p += n;
    return 1;
}

typedef struct npy_header {
    char descr[32];
    int fortran;
    size_t ndim;
    size_t shape[NPY_MAX_DIMS];
} npy_header;

static ae_status parse_dict(npy_ctx *c, hdr *h, npy_header *out) {
    int seen_descr = 0, seen_fortran = 0, seen_shape = 0;
    if (!accept(h, '{')) return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: it does not start with '{'");
    for (;;) {
        if (accept(h, '}')) break;
        char key[32];
        if (!parse_str(h, key, sizeof key))
            return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: expected a quoted key");
        if (!accept(h, ':'))
            return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: expected ':' after '%s'", key);
        if (strcmp(key, "descr") == 0 && !seen_descr) {
            seen_descr = 1;
            skip_ws(h);
            if (h->p < h->end && *h->p == '[')
                return ae_src_fail(c, AE_ERR_UNSUPPORTED,
                                "structured dtype: only float32, float64 and uint8 arrays are read");
            if (!parse_str(h, out->descr, sizeof out->descr))
                return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: 'descr' is not a dtype string");
        } else if (strcmp(key, "fortran_order") == 0 && !seen_fortran) {
            seen_fortran = 1;
            if (parse_word(h, "True"))
                out->fortran = 1;
            else if (parse_word(h, "False"))
                out->fortran = 0;
            else
                return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: 'fortran_order' is not True or False");
        } else if (strcmp(key, "shape") == 0 && !seen_shape) {
            seen_shape = 1;
            if (!accept(h, '('))
                return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: 'shape' is not a tuple");
            out->ndim = 0;
            for (;;) {
                if (accept(h, ')')) break;
                skip_ws(h);
                if (h->p >= h->end || *h->p < '0' || *h->p > '9')
                    return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: bad number in 'shape'");
                size_t v = 0;
                while (h->p < h->end && *h->p >= '0' && *h->p <= '9') {
                    size_t d = (size_t)(*h->p++ - '0');
                    if (v > (SIZE_MAX - d) / 10)
                        return ae_src_fail(c, AE_ERR_FORMAT, "a size in 'shape' overflows");
                    v = v * 10 + d;
                }
                if (parse_word(h, "L")) { /* Python 2 longs */
                }
                if (out->ndim == NPY_MAX_DIMS)
                    return ae_src_fail(c, AE_ERR_UNSUPPORTED,
                                    "more than %d dimensions: samples are [N], [N, D], [N, H, W] "
                                    "or [N, C, H, W]",
                                    NPY_MAX_DIMS);
                out->shape[out->ndim++] = v;
                if (accept(h, ',')) continue;
                if (accept(h, ')')) break;
                return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: expected ',' or ')' in 'shape'");
            }
        } else {
            return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: %s key '%s'",
                            (strcmp(key, "descr") == 0 || strcmp(key, "fortran_order") == 0 ||
                             strcmp(key, "shape") == 0)
                                ? "repeated"
                                : "unexpected",
                            key);
        }
        if (accept(h, ',')) continue;
        if (accept(h, '}')) break;
        return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: expected ',' or '}'");
    }
    skip_ws(h);
    if (h->p != h->end) return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: bytes after the dict");
    if (!seen_descr || !seen_fortran || !seen_shape)
        return ae_src_fail(c, AE_ERR_FORMAT, "malformed header: the key '%s' is missing",
                        !seen_descr ? "descr" : !seen_fortran ? "fortran_order" : "shape");
    return AE_OK;
}

enum { T_F4, T_F8, T_U1, T_OTHER };

/* A dtype string: byte order ('<', '>', '|' or '=', which is little-endian
 * on every supported host), kind ('i', 'u', 'f') and size. Samples take
 * '<f4', '<f8' and 'u1' (any order mark); with `any`, labels also take the
 * other integers and big-endian floats (T_OTHER). */
static ae_status dtype_of(npy_ctx *c, const char *d, int any, int *t, size_t *size, char *kind,
                          int *big) {
    const char *p = d;
    char order = '=';
    if (*p == '<' || *p == '>' || *p == '|' || *p == '=') order = *p++;
    char k = *p;
    size_t n = 0;
    if ((k == 'i' || k == 'u' || k == 'f') && p[1] >= '1' && p[1] <= '8' && p[2] == '\0')
        n = (size_t)(p[1] - '0');
    int valid = (n == 1 && k != 'f') || n == 2 || n == 4 || n == 8;
    if (k == 'f' && n == 2) valid = 0; /* float16: not read */
    if (valid && order == '|' && n != 1) valid = 0;
    *kind = k;
    *size = n;
    *big = order == '>' && n > 1;
    if (valid && k == 'u' && n == 1) {
        *t = T_U1;
        return AE_OK;
    }
    if (valid && k == 'f' && !*big) {
        *t = n == 4 ? T_F4 : T_F8;
        return AE_OK;
    }
    if (valid && any) {
        *t = T_OTHER;
        return AE_OK;
    }
    if (valid && k == 'f')
        return ae_src_fail(c, AE_ERR_UNSUPPORTED,
                           "big-endian dtype '%s' is not supported: save with arr.astype('<%s')", d,
                           d + 1);
    if (valid)
        return ae_src_fail(c, AE_ERR_UNSUPPORTED,
                           "integer dtype '%s' is read for labels only: samples are float32 '<f4', "
                           "float64 '<f8' or uint8 '|u1'",
                           d);
    return ae_src_fail(c, AE_ERR_UNSUPPORTED,
                       "unsupported dtype '%s': float32 '<f4', float64 '<f8' or uint8 '|u1' "
                       "are read",
                       d);
}

static uint32_t rd_le(const uint8_t *p, int n) {
    uint32_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

ae_status ae_npy_parse_header(ae_errbuf *e, const char *name, const void *buf, size_t len,
                              ae_npy_info *out) {
    size_t max_elems = out->max_elems;
    int any = out->any_dtype;
    memset(out, 0, sizeof *out);
    out->max_elems = max_elems;
    out->any_dtype = any;
    npy_ctx c;
    ae_src_name_init(&c, e, name);
    const uint8_t *b = buf;
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (len == 0) return ae_src_fail(&c, AE_ERR_FORMAT, "empty file: no .npy header");
    if (len < 6 || memcmp(b, magic, 6) != 0) {
        if (len < 6 && memcmp(b, magic, len) == 0)
            return ae_src_fail(&c, AE_ERR_FORMAT, "truncated header: %zu of 6 magic bytes", len);
        return ae_src_fail(&c, AE_ERR_FORMAT, "bad magic: a .npy file starts with \\x93NUMPY");
    }
    if (len < 8) return ae_src_fail(&c, AE_ERR_FORMAT, "truncated header: no version");
    unsigned major = b[6], minor = b[7];
    if (major < 1 || major > 3 || minor != 0)
        return ae_src_fail(&c, AE_ERR_VERSION, "format version %u.%u: versions 1.0, 2.0 and 3.0 are read",
                        major, minor);
    size_t lenbytes = major == 1 ? 2 : 4, start = 8 + lenbytes;
    if (len < start) return ae_src_fail(&c, AE_ERR_FORMAT, "truncated header: no header length");
    size_t hlen = rd_le(b + 8, (int)lenbytes);
    if (hlen > len - start)
        return ae_src_fail(&c, AE_ERR_FORMAT, "truncated header: %zu header bytes promised, %zu present",
                        hlen, len - start);
    npy_header nh;
    memset(&nh, 0, sizeof nh);
    hdr h = {(const char *)b + start, (const char *)b + start + hlen};
    ae_status st = parse_dict(&c, &h, &nh);
    if (st) return st;
    int t = T_F4, bigend = 0;
    size_t isz = 4;
    char kind = 'f';
    if ((st = dtype_of(&c, nh.descr, any, &t, &isz, &kind, &bigend)) != AE_OK) return st;
    if (nh.ndim == 0)
        return ae_src_fail(&c, AE_ERR_UNSUPPORTED, "a scalar (shape ()) is not a set of samples");
    size_t elems = 1, big = 0;
    for (size_t i = 0; i < nh.ndim; i++) {
        if (nh.shape[i] == 0) return ae_src_fail(&c, AE_ERR_FORMAT, "empty array: dimension %zu is 0", i);
        if (nh.shape[i] > 1) big++;
        if (ae_mul_overflow(elems, nh.shape[i], &elems) || elems > out->max_elems)
            return ae_src_fail(&c, AE_ERR_FORMAT, "the shape exceeds the limit of %zu elements",
                            out->max_elems);
    }
    if (nh.fortran && big > 1)
        return ae_src_fail(&c, AE_ERR_UNSUPPORTED,
                        "Fortran order is not supported: save with np.ascontiguousarray(arr)");
    out->type = t == T_F4 ? AE_NPY_F4 : t == T_F8 ? AE_NPY_F8 : t == T_U1 ? AE_NPY_U1 : AE_NPY_OTHER;
    out->kind = kind;
    out->big = bigend;
    out->ndim = nh.ndim;
    out->item = isz;
    out->offset = start + hlen;
    out->elems = elems;
    out->count = nh.shape[0];
    out->shape[0] = nh.ndim == 4 ? nh.shape[1] : nh.ndim == 2 ? nh.shape[1] : 1;
    out->shape[1] = nh.ndim == 4 ? nh.shape[2] : nh.ndim == 3 ? nh.shape[1] : 1;
    out->shape[2] = nh.ndim == 4 ? nh.shape[3] : nh.ndim == 3 ? nh.shape[2] : 1;
    return AE_OK;
}

ae_status ae_npy_parse_mem(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                           size_t len, ae_idx *out) {
    if (!out) return ae_error(e, AE_ERR_INVALID_ARG, "ae_npy_parse_mem: out is NULL");
    memset(out, 0, sizeof *out);
    if (!a || !name || (!buf && len))
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_npy_parse_mem: NULL argument");
    npy_ctx c;
    ae_src_name_init(&c, e, name);
    const uint8_t *b = buf;
    ae_npy_info ni;
    ni.max_elems = AE_IDX_MAX_ELEMS;
    ni.any_dtype = 0;
    ae_status st = ae_npy_parse_header(e, name, buf, len, &ni);
    if (st) return st;
    int t = ni.type == AE_NPY_F4 ? T_F4 : ni.type == AE_NPY_F8 ? T_F8 : T_U1;
    size_t elems = ni.elems;
    size_t payload = elems * ni.item, have = len - ni.offset;
    if (have != payload)
        return ae_src_fail(&c, AE_ERR_FORMAT, "%s: the shape needs %zu bytes of data, the file has %zu",
                        have < payload ? "truncated" : "trailing bytes", payload, have);
    const uint8_t *src = b + ni.offset;
    float *v = ae_alloc(a, elems * sizeof(float));
    if (!v) return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu values", elems);
    for (size_t i = 0; i < elems; i++) {
        if (t == T_U1) {
            v[i] = (float)src[i];
            continue;
        }
        double d;
        if (t == T_F4) {
            float f;
            memcpy(&f, src + 4 * i, 4);
            d = f;
        } else {
            memcpy(&d, src + 8 * i, 8);
        }
        if (!isfinite(d) || fabs(d) > FLT_MAX) {
            ae_free(a, v);
            return ae_src_fail(&c, AE_ERR_FORMAT, "element %zu is %s where data must be finite", i,
                            isnan(d) ? "NaN" : isfinite(d) ? "outside float's range" : "infinite");
        }
        v[i] = (float)d;
    }
    out->values = v;
    out->elem = t == T_U1 ? AE_ELEM_UINT8 : AE_ELEM_FLOAT;
    out->count = ni.count;
    memcpy(out->shape, ni.shape, sizeof out->shape);
    out->dim = out->shape[0] * out->shape[1] * out->shape[2];
    return AE_OK;
}

ae_status ae_npy_parse_labels(const ae_allocator *a, ae_errbuf *e, const char *name,
                              const void *buf, size_t len, ae_idx *out) {
    if (!out) return ae_error(e, AE_ERR_INVALID_ARG, "ae_npy_parse_labels: out is NULL");
    memset(out, 0, sizeof *out);
    npy_ctx c;
    ae_src_name_init(&c, e, name);
    ae_npy_info ni;
    ni.max_elems = AE_IDX_MAX_ELEMS;
    ni.any_dtype = 1;
    ae_status st = ae_npy_parse_header(e, name, buf, len, &ni);
    if (st) return st;
    if (ni.ndim > 2 || ni.shape[0] != 1)
        return ae_src_fail(&c, AE_ERR_FORMAT,
                           "labels are one integer per sample: shape [N] or [N, 1], not %zu values "
                           "per sample",
                           ni.elems / ni.count);
    size_t payload = ni.elems * ni.item, have = len - ni.offset;
    if (have != payload)
        return ae_src_fail(&c, AE_ERR_FORMAT, "%s: the shape needs %zu bytes of data, the file has %zu",
                           have < payload ? "truncated" : "trailing bytes", payload, have);
    int32_t *lab = ae_alloc(a, ni.count * sizeof *lab);
    if (!lab) return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu labels", ni.count);
    const uint8_t *src = (const uint8_t *)buf + ni.offset;
    for (size_t i = 0; i < ni.count; i++) {
        /* The element's bytes, little-endian first. */
        uint8_t b[8];
        for (size_t k = 0; k < ni.item; k++)
            b[k] = src[i * ni.item + (ni.big ? ni.item - 1 - k : k)];
        uint64_t u = 0;
        for (size_t k = ni.item; k-- > 0;) u = u << 8 | b[k];
        int ok;
        double shown;
        int64_t v = 0;
        if (ni.kind == 'f') {
            double d;
            if (ni.item == 4) {
                float f;
                uint32_t u32 = (uint32_t)u;
                memcpy(&f, &u32, 4);
                d = f;
            } else {
                memcpy(&d, &u, 8);
            }
            shown = d;
            ok = isfinite(d) && d == floor(d) && d >= -2147483648.0 && d <= 2147483647.0;
            if (ok) v = (int64_t)d;
            if (!ok && (!isfinite(d) || d != floor(d))) {
                ae_free(a, lab);
                return ae_src_fail(&c, AE_ERR_FORMAT, "label %zu (%g) is not a whole number", i, d);
            }
        } else if (ni.kind == 'u') {
            shown = (double)u;
            ok = u <= INT32_MAX;
            v = (int64_t)u;
        } else {
            /* Sign-extend from item bytes. */
            unsigned bits = (unsigned)(8 * ni.item);
            if (bits < 64 && (u >> (bits - 1) & 1)) u |= ~(uint64_t)0 << bits;
            memcpy(&v, &u, 8);
            shown = (double)v;
            ok = v >= INT32_MIN && v <= INT32_MAX;
        }
        if (!ok) {
            ae_free(a, lab);
            return ae_src_fail(&c, AE_ERR_FORMAT, "label %zu (%.17g) is out of the int32 range", i,
                               shown);
        }
        lab[i] = (int32_t)v;
    }
    out->labels = lab;
    out->count = ni.count;
    out->shape[0] = out->shape[1] = out->shape[2] = 1;
    out->dim = 1;
    return AE_OK;
}

ae_status ae_read_whole_file(const ae_allocator *a, ae_errbuf *e, const char *path, uint8_t **buf,
                             size_t *len) {
    *buf = NULL;
    *len = 0;
    npy_ctx c;
    ae_src_name_init(&c, e, path);
    size_t size;
    int fd = ae_open_regular(e, path, &size);
    if (fd < 0) return AE_ERR_IO;
    /* The size known, one read fills the buffer; a file that grows while it
     * is read is read to its end. */
    size_t cap = size < SIZE_MAX ? size + 1 : size, n = 0;
    uint8_t *p = ae_alloc(a, cap);
    ae_status st = AE_OK;
    if (!p) st = ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu bytes", cap);
    while (st == AE_OK) {
        if (n == cap) {
            uint8_t *q = cap > SIZE_MAX / 2 ? NULL : ae_alloc(a, cap * 2);
            if (!q) {
                st = ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory reading the file");
                break;
            }
            memcpy(q, p, n);
            ae_free(a, p);
            p = q;
            cap *= 2;
        }
        size_t want = cap - n > ((size_t)1 << 30) ? (size_t)1 << 30 : cap - n;
        ssize_t k = read(fd, p + n, want);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) st = ae_src_fail(&c, AE_ERR_IO, "read error: %s", ae_sys_error(errno).s);
        if (k <= 0) break;
        n += (size_t)k;
    }
    close(fd);
    if (st != AE_OK) {
        ae_free(a, p);
        return st;
    }
    *buf = p;
    *len = n;
    return AE_OK;
}

ae_status ae_npy_write_file(const ae_allocator *a, ae_errbuf *e, const char *path,
                            const float *data, size_t count, const size_t shape[3]) {
    return ae_npy_write_typed(a, e, path, AE_NPY_F4, data, count, shape);
}

ae_status ae_npy_write_typed(const ae_allocator *a, ae_errbuf *e, const char *path,
                             ae_npy_type type, const void *data, size_t count,
                             const size_t shape[3]) {
    const char *descr = type == AE_NPY_U1 ? "|u1" : type == AE_NPY_F8 ? "<f8" : "<f4";
    size_t item = type == AE_NPY_U1 ? 1 : type == AE_NPY_F8 ? 8 : 4;
    npy_ctx c;
    ae_src_name_init(&c, e, path);
    char dict[256];
    int k;
    if (shape[0] == 1 && shape[1] == 1 && shape[2] == 1) /* one value a sample: numpy's 1-D form */
        k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu,), }",
                     descr, count);
    else if (shape[1] == 1 && shape[2] == 1)
        k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu), }",
                     descr, count, shape[0]);
    else
        k = snprintf(dict, sizeof dict,
                     "{'descr': '%s', 'fortran_order': False, 'shape': (%zu, %zu, %zu, %zu), }",
                     descr, count, shape[0], shape[1], shape[2]);
    /* Pad with spaces and a newline so that the data starts at a multiple of 64. */
    size_t hlen = (size_t)k + 1, total = 10 + hlen;
    size_t pad = (64 - total % 64) % 64;
    hlen += pad;
    uint8_t head[10 + 256 + 64];
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (uint8_t)(hlen & 0xff);
    head[9] = (uint8_t)(hlen >> 8);
    memcpy(head + 10, dict, (size_t)k);
    memset(head + 10 + k, ' ', pad);
    head[10 + hlen - 1] = '\n';

    /* Little-endian float32 on every supported host: the data as it is. */
    ae_span parts[2] = {{head, 10 + hlen},
                        {data, count * shape[0] * shape[1] * shape[2] * item}};
    ae_errbuf why;
    ae_status st = ae_file_save(a, path, parts, 2, &why);
    return st ? ae_src_fail(&c, st, "%s", why.msg) : AE_OK;
}
