/* IDX reader (the MNIST file format): a big-endian header (00 00, element
 * type, dimension count, one uint32 per dimension) followed by the data.
 * Plain or gzipped input is read through one byte source, so a memory
 * buffer and a file are checked by the same code. Nothing sized by the
 * header is allocated before the header is validated and checked against
 * the input's size; when that size cannot be confirmed up front (gzip) the
 * output grows only as data actually arrives. Bytes become floats in one
 * pass, a stage at a time. */
#define ZLIB_CONST
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "data.h"

/* File reads go through a chunk of this size; payload reads at least this
 * large bypass it. */
#define IDX_CHUNK ((size_t)1 << 18)
/* Bytes inflated or read per conversion step. */
#define IDX_STAGE ((size_t)1 << 18)
/* First output size, in elements, when the input size is not trusted. */
#define IDX_FIRST_ELEMS ((size_t)1 << 18)
/* zlib counts in uInt: never hand it more than this at once. */
#define IDX_ZSTEP ((size_t)1 << 30)
#define IDX_MAX_DIMS 3

typedef struct idx_src {
    const ae_allocator *a;
    ae_src_name src; /* where messages go, and the name they start with */
    FILE *fp;           /* NULL when reading memory */
    uint8_t *chunk;     /* file read buffer */
    const uint8_t *win; /* raw bytes available: the memory buffer or the chunk */
    size_t len, pos;    /* window length and read position */
    uint64_t before;    /* raw bytes consumed before the window */
    int known_size;     /* raw size known (memory, regular file) */
    uint64_t size;
    int have_isize; /* the last 4 bytes, a gzip trailer's content length */
    uint32_t isize;
    int eof;
    int gz;
    int z_live;    /* inflateInit2 succeeded: inflateEnd is due */
    int z_done;    /* the last gzip member ended with the input */
    int z_members; /* gzip members finished */
    z_stream zs;
} idx_src;

#define fail(s, ...) ae_src_fail(&(s)->src, __VA_ARGS__)

static voidpf z_alloc(voidpf opaque, uInt items, uInt size) {
    size_t bytes;
    if (ae_mul_overflow(items, size, &bytes)) return Z_NULL;
    return ae_alloc((const ae_allocator *)opaque, bytes);
}

static void z_free(voidpf opaque, voidpf p) { ae_free((const ae_allocator *)opaque, p); }

/* Replaces the window with the next chunk of the file; sets eof at the end. */
static ae_status raw_refill(idx_src *s) {
    if (!s->fp) {
        s->eof = 1;
        return AE_OK;
    }
    s->before += s->len;
    s->pos = 0;
    s->win = s->chunk;
    s->len = fread(s->chunk, 1, IDX_CHUNK, s->fp);
    if (s->len < IDX_CHUNK) {
        if (ferror(s->fp)) return fail(s, AE_ERR_IO, "read error: %s", ae_sys_error(errno).s);
        if (s->len == 0) s->eof = 1;
    }
    return AE_OK;
}

static ae_status plain_read(idx_src *s, uint8_t *dst, size_t n, size_t *got) {
    size_t done = 0;
    while (done < n) {
        if (s->pos < s->len) {
            size_t k = s->len - s->pos;
            if (k > n - done) k = n - done;
            memcpy(dst + done, s->win + s->pos, k);
            s->pos += k;
            done += k;
            continue;
        }
        if (s->eof) break;
        if (s->fp && n - done >= IDX_CHUNK) {
            /* Large reads skip the chunk copy. */
            size_t want = n - done;
            size_t k = fread(dst + done, 1, want, s->fp);
            s->before += s->len + k;
            s->len = s->pos = 0;
            done += k;
            if (k < want) {
                if (ferror(s->fp)) return fail(s, AE_ERR_IO, "read error: %s", ae_sys_error(errno).s);
                s->eof = 1;
            }
            continue;
        }
        ae_status st = raw_refill(s);
        if (st != AE_OK) return st;
    }
    *got = done;
    return AE_OK;
}

static ae_status gz_read(idx_src *s, uint8_t *dst, size_t n, size_t *got) {
    size_t done = 0;
    while (done < n && !s->z_done) {
        if (s->pos == s->len) {
            if (!s->eof) {
                ae_status st = raw_refill(s);
                if (st != AE_OK) return st;
            }
            if (s->pos == s->len)
                return fail(s, AE_ERR_FORMAT,
                            "truncated gzip stream: the compressed data ends before the stream does");
        }
        size_t in = s->len - s->pos, out = n - done;
        s->zs.next_in = s->win + s->pos;
        s->zs.avail_in = (uInt)(in < IDX_ZSTEP ? in : IDX_ZSTEP);
        s->zs.next_out = dst + done;
        s->zs.avail_out = (uInt)(out < IDX_ZSTEP ? out : IDX_ZSTEP);
        int r = inflate(&s->zs, Z_NO_FLUSH);
        s->pos = (size_t)(s->zs.next_in - s->win);
        done = (size_t)(s->zs.next_out - dst);
        if (r == Z_OK) continue;
        if (r == Z_STREAM_END) {
            s->z_members++;
            /* A following gzip member continues the content, as with gzip -d. */
            if (s->pos == s->len && !s->eof) {
                ae_status st = raw_refill(s);
                if (st != AE_OK) return st;
            }
            if (s->pos == s->len) {
                s->z_done = 1;
                break;
            }
            if (inflateReset(&s->zs) != Z_OK)
                return fail(s, AE_ERR_FORMAT, "corrupt gzip stream: cannot restart inflate");
            continue;
        }
        if (r == Z_MEM_ERROR) return fail(s, AE_ERR_OUT_OF_MEMORY, "out of memory in inflate");
        if (r == Z_BUF_ERROR && s->zs.avail_in == 0) continue; /* needs more input */
        const char *why = s->zs.msg ? s->zs.msg : "inflate failed";
        if (s->z_members > 0)
            return fail(s, AE_ERR_FORMAT,
                        "trailing bytes after the gzip stream are not a gzip member (%s)", why);
        return fail(s, AE_ERR_FORMAT, "corrupt gzip stream: %s", why);
    }
    *got = done;
    return AE_OK;
}

/* Reads up to n bytes; *got < n only at the end of the content. */
static ae_status src_read(idx_src *s, uint8_t *dst, size_t n, size_t *got) {
    *got = 0;
    return s->gz ? gz_read(s, dst, n, got) : plain_read(s, dst, n, got);
}

static const char *type_name(unsigned t) {
    switch (t) {
    case 0x08: return "unsigned byte";
    case 0x09: return "signed byte";
    case 0x0B: return "int16";
    case 0x0C: return "int32";
    case 0x0D: return "float32";
    case 0x0E: return "float64";
    default: return NULL;
    }
}

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Converts n bytes to 4-byte elements (float samples or int32 labels). */
static void convert(ae_idx_role role, const uint8_t *src, void *dst, size_t n) {
    if (role == AE_IDX_LABELS) {
        int32_t *l = dst;
        for (size_t i = 0; i < n; i++) l[i] = src[i];
    } else {
        float *v = dst;
        for (size_t i = 0; i < n; i++) v[i] = (float)src[i];
    }
}

/* Whether the header's size can be trusted for a gzip input before the data
 * arrives: the gzip trailer must state the same content length, and the
 * compressed bytes left must be able to hold it at deflate's largest ratio
 * (1032:1). Otherwise a small file could claim gigabytes. */
static int gz_size_plausible(const idx_src *s, size_t head_len, size_t payload) {
    if (!s->known_size || !s->have_isize) return 0;
    uint64_t content = (uint64_t)head_len + payload;
    uint64_t at = s->before + s->pos;
    uint64_t left = s->size > at ? s->size - at : 0;
    return s->isize == (uint32_t)content && left <= UINT64_MAX / 2048 &&
           payload <= left * 1032 + 1024;
}

/* Reads exactly `payload` data bytes and converts them as they come, in
 * stage-sized steps. When the input size is known to match (plain input of
 * known size, or a plausible gzip trailer) the output is allocated once;
 * otherwise it grows as data actually arrives, so a header promising more
 * than the input holds costs at most about twice what the input contains. */
static ae_status read_payload(idx_src *s, ae_idx_role role, size_t head_len, size_t payload,
                              void **out) {
    const size_t elt = 4; /* sizeof(float) == sizeof(int32_t) */
    size_t cap = payload;
    if ((s->gz && !gz_size_plausible(s, head_len, payload)) || (!s->gz && !s->known_size))
        cap = payload < IDX_FIRST_ELEMS ? payload : IDX_FIRST_ELEMS;
    size_t bytes;
    if (ae_mul_overflow(cap, elt, &bytes))
        return fail(s, AE_ERR_OUT_OF_MEMORY, "%zu elements do not fit in memory", cap);
    uint8_t *stage = ae_alloc(s->a, IDX_STAGE);
    uint8_t *conv = stage ? ae_alloc(s->a, bytes) : NULL;
    if (!conv) {
        ae_free(s->a, stage);
        return fail(s, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu elements", cap);
    }
    ae_status st = AE_OK;
    size_t have = 0;
    while (have < payload) {
        if (have == cap) {
            size_t ncap = cap > payload / 2 ? payload : cap * 2;
            uint8_t *bigger = ae_mul_overflow(ncap, elt, &bytes) ? NULL : ae_alloc(s->a, bytes);
            if (!bigger) {
                st = fail(s, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu elements", ncap);
                break;
            }
            memcpy(bigger, conv, have * elt);
            ae_free(s->a, conv);
            conv = bigger;
            cap = ncap;
        }
        size_t want = cap - have < IDX_STAGE ? cap - have : IDX_STAGE, got;
        if ((st = src_read(s, stage, want, &got)) != AE_OK) break;
        convert(role, stage, conv + have * elt, got);
        have += got;
        if (got < want) {
            st = fail(s, AE_ERR_FORMAT, "truncated: header promises %zu bytes of data, file has %zu",
                      payload, have);
            break;
        }
    }
    if (st == AE_OK) {
        /* Reading past the end also makes inflate check the gzip trailer (CRC, length). */
        size_t got;
        st = src_read(s, stage, 1, &got);
        if (st == AE_OK && got != 0)
            st = fail(s, AE_ERR_FORMAT,
                      "trailing bytes after the %zu bytes of data the header promises", payload);
    }
    ae_free(s->a, stage);
    if (st != AE_OK) {
        ae_free(s->a, conv);
        return st;
    }
    *out = conv;
    return AE_OK;
}

static ae_status parse(idx_src *s, ae_idx_role role, ae_idx *out) {
    ae_status st;
    if (s->pos == s->len && !s->eof && (st = raw_refill(s)) != AE_OK) return st;
    if (s->len - s->pos >= 2 && s->win[s->pos] == 0x1f && s->win[s->pos + 1] == 0x8b) {
        s->gz = 1;
        s->zs.zalloc = z_alloc;
        s->zs.zfree = z_free;
        s->zs.opaque = (voidpf)s->a;
        int r = inflateInit2(&s->zs, 15 + 16); /* 16: gzip wrapper only */
        if (r == Z_MEM_ERROR) return fail(s, AE_ERR_OUT_OF_MEMORY, "out of memory in inflate");
        if (r != Z_OK) return fail(s, AE_ERR_FORMAT, "cannot start inflate (zlib error %d)", r);
        s->z_live = 1;
    }

    uint8_t head[4 * IDX_MAX_DIMS];
    size_t got;
    if ((st = src_read(s, head, 4, &got)) != AE_OK) return st;
    if (got == 0) return fail(s, AE_ERR_FORMAT, "empty file: no IDX header");
    if (got < 4) return fail(s, AE_ERR_FORMAT, "truncated header: %zu of 4 magic bytes", got);
    if (head[0] != 0 || head[1] != 0)
        return fail(s, AE_ERR_FORMAT,
                    "bad magic: the file starts with %02x %02x, an IDX file with 00 00%s", head[0],
                    head[1], s->gz ? " (after gunzip)" : "");
    unsigned type = head[2], ndim = head[3];
    if (type != 0x08) {
        const char *tn = type_name(type);
        if (tn)
            return fail(s, AE_ERR_UNSUPPORTED,
                        "element type 0x%02X (%s) is not supported: only unsigned bytes (0x08)",
                        type, tn);
        return fail(s, AE_ERR_FORMAT, "unknown element type 0x%02X", type);
    }
    if (ndim == 0) return fail(s, AE_ERR_FORMAT, "zero dimensions in the header");
    if (role == AE_IDX_LABELS && ndim != 1)
        return fail(s, AE_ERR_FORMAT, "a labels file has 1 dimension, this one has %u", ndim);
    if (role == AE_IDX_SAMPLES && ndim > IDX_MAX_DIMS)
        return fail(s, AE_ERR_FORMAT,
                    "too many dimensions: %u (images have 3: count, rows, cols; vectors 2)", ndim);
    if (role == AE_IDX_SAMPLES && ndim == 1)
        return fail(s, AE_ERR_FORMAT,
                    "1 dimension: samples need 3 (count, rows, cols) or 2 (count, size); "
                    "is this a labels file?");

    if ((st = src_read(s, head, 4 * (size_t)ndim, &got)) != AE_OK) return st;
    if (got < 4 * (size_t)ndim)
        return fail(s, AE_ERR_FORMAT, "truncated header: %zu of %u bytes", 4 + got, 4 + 4 * ndim);
    size_t dims[IDX_MAX_DIMS] = {1, 1, 1};
    for (unsigned i = 0; i < ndim; i++) {
        dims[i] = be32(head + 4 * i);
        if (dims[i] == 0)
            return i == 0 ? fail(s, AE_ERR_FORMAT, "zero count in the header")
                          : fail(s, AE_ERR_FORMAT, "dimension %u has size 0", i);
    }
    size_t elems = 1;
    for (unsigned i = 0; i < ndim; i++) {
        if (ae_mul_overflow(elems, dims[i], &elems) || elems > AE_IDX_MAX_ELEMS) {
            char sizes[64];
            int k = snprintf(sizes, sizeof sizes, "%zu", dims[0]);
            for (unsigned j = 1; j < ndim && k > 0 && (size_t)k < sizeof sizes; j++)
                k += snprintf(sizes + k, sizeof sizes - (size_t)k, " x %zu", dims[j]);
            return fail(s, AE_ERR_FORMAT, "sizes %s exceed the limit of %zu elements", sizes,
                        AE_IDX_MAX_ELEMS);
        }
    }
    size_t payload = elems; /* one byte per element */
    if (s->known_size && !s->gz) {
        uint64_t at = s->before + s->pos;
        uint64_t left = s->size > at ? s->size - at : 0;
        if (left != payload)
            return fail(s, AE_ERR_FORMAT, "%s: header promises %zu bytes of data, file has %llu",
                        left < payload ? "truncated" : "trailing bytes", payload,
                        (unsigned long long)left);
    }

    void *conv = NULL;
    if ((st = read_payload(s, role, 4 + 4 * (size_t)ndim, payload, &conv)) != AE_OK) return st;
    if (role == AE_IDX_LABELS) {
        out->labels = conv;
        out->shape[0] = out->shape[1] = out->shape[2] = 1;
    } else {
        out->values = conv;
        out->elem = AE_ELEM_UINT8;
        out->shape[0] = ndim == 3 ? 1 : dims[1];
        out->shape[1] = ndim == 3 ? dims[1] : 1;
        out->shape[2] = ndim == 3 ? dims[2] : 1;
    }
    out->count = dims[0];
    out->dim = out->shape[0] * out->shape[1] * out->shape[2];
    return AE_OK;
}

static void src_close(idx_src *s) {
    if (s->z_live) inflateEnd(&s->zs);
    s->z_live = 0;
    ae_free(s->a, s->chunk);
    s->chunk = NULL;
    if (s->fp) fclose(s->fp);
    s->fp = NULL;
}

ae_status ae_idx_parse_mem(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                           size_t len, ae_idx_role role, ae_idx *out) {
    if (!out) return ae_error(e, AE_ERR_INVALID_ARG, "ae_idx_parse_mem: out is NULL");
    memset(out, 0, sizeof *out);
    if (!a || !name || (!buf && len))
        return ae_error(e, AE_ERR_INVALID_ARG, "ae_idx_parse_mem: NULL argument");
    idx_src s;
    memset(&s, 0, sizeof s);
    s.a = a;
    ae_src_name_init(&s.src, e, name);
    s.win = buf;
    s.len = len;
    s.known_size = 1;
    s.size = len;
    if (len >= 4) {
        s.have_isize = 1;
        s.isize = le32((const uint8_t *)buf + len - 4);
    }
    ae_status st = parse(&s, role, out);
    src_close(&s);
    if (st != AE_OK) memset(out, 0, sizeof *out);
    return st;
}

ae_status ae_idx_read_file(const ae_allocator *a, ae_errbuf *e, const char *path, ae_idx_role role,
                           ae_idx *out) {
    if (!out) return ae_error(e, AE_ERR_INVALID_ARG, "ae_idx_read_file: out is NULL");
    memset(out, 0, sizeof *out);
    if (!a || !path) return ae_error(e, AE_ERR_INVALID_ARG, "ae_idx_read_file: NULL argument");
    idx_src s;
    memset(&s, 0, sizeof s);
    s.a = a;
    ae_src_name_init(&s.src, e, path);
    size_t size;
    int fd = ae_open_regular(e, path, &size);
    if (fd < 0) return AE_ERR_IO;
    s.fp = fdopen(fd, "rb");
    if (!s.fp) {
        int err = errno;
        close(fd);
        return fail(&s, AE_ERR_IO, "cannot open: %s", ae_sys_error(err).s);
    }
    ae_status st = AE_OK;
    s.known_size = 1;
    s.size = (uint64_t)size;
    uint8_t tail[4];
    /* pread leaves the stream's position alone. */
    if (size >= 4 && pread(fd, tail, 4, (off_t)size - 4) == 4) {
        s.have_isize = 1;
        s.isize = le32(tail);
    }
    s.chunk = ae_alloc(a, IDX_CHUNK);
    if (!s.chunk) st = fail(&s, AE_ERR_OUT_OF_MEMORY, "out of memory for the read buffer");
    if (st == AE_OK) st = parse(&s, role, out);
    src_close(&s);
    if (st != AE_OK) memset(out, 0, sizeof *out);
    return st;
}

void ae_idx_free(const ae_allocator *a, ae_idx *x) {
    if (!x) return;
    if (a) {
        ae_free(a, x->values);
        ae_free(a, x->labels);
    }
    memset(x, 0, sizeof *x);
}
