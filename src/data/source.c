/* File-backed rows: a .npy file stays on disk and rows are read with pread
 * into the caller's batch buffer, converted to float as they arrive (a
 * uint8 file stays uint8 on disk). pread rather than mmap: a mapping of a
 * file larger than memory counts against the address-space limit
 * (ulimit -v) and every page it touches stays in the resident set until
 * the kernel reclaims it, while pread leaves the pages in the page cache
 * only, so the process holds no more than one batch. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data.h"

struct ae_rowfile {
    ae_allocator alloc;
    atomic_size_t refs;
    int fd;
    ae_npy_info info;
    size_t dim, row_bytes;
    char *path;
};

int ae_open_regular(ae_errbuf *e, const char *path, size_t *size) {
    ae_src_name c;
    ae_src_name_init(&c, e, path);
    const char *why;
    int fd = ae_file_open_read(path, size, &why);
    if (fd == -2)
        ae_src_fail(&c, AE_ERR_IO, "is %s, not a regular file", why);
    else if (fd < 0)
        ae_src_fail(&c, AE_ERR_IO, "%s: %s", why, ae_sys_error(errno).s);
    return fd < 0 ? -1 : fd;
}

static int read_at(int fd, void *buf, size_t n, off_t off) {
    unsigned char *p = buf;
    while (n) {
        ssize_t k = pread(fd, p, n, off);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = 0; /* end of file: the file shrank */
            return -1;
        }
        p += k;
        n -= (size_t)k;
        off += k;
    }
    return 0;
}

ae_status ae_rowfile_open(const ae_allocator *a, ae_errbuf *e, const char *path, ae_rowfile **out) {
    *out = NULL;
    ae_src_name c;
    ae_src_name_init(&c, e, path);
    size_t size;
    int fd = ae_open_regular(e, path, &size);
    if (fd < 0) return AE_ERR_IO;
    /* The header is at most a few kB (the format's own limit is 4 GB, but
     * numpy writes headers under 64 kB); 64 kB is read. */
    uint8_t head[65536];
    size_t hn = size < sizeof head ? size : sizeof head;
    if (read_at(fd, head, hn, 0) != 0) {
        int err = errno;
        close(fd);
        return ae_src_fail(&c, AE_ERR_IO, "read error: %s", err ? ae_sys_error(err).s : "short read");
    }
    ae_rowfile *f = ae_calloc(a, 1, sizeof *f);
    size_t plen = strlen(path);
    char *pcopy = ae_alloc(a, plen + 1);
    if (!f || !pcopy) {
        ae_free(a, f);
        ae_free(a, pcopy);
        close(fd);
        return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory");
    }
    memcpy(pcopy, path, plen + 1);
    /* No limit below what size_t can address: the data is not loaded. */
    f->info.max_elems = SIZE_MAX / 8;
    ae_status st = ae_npy_parse_header(e, path, head, hn, &f->info);
    /* The header lies within the file (offset <= size): the payload is
       compared with the bytes after it, never added to the offset. */
    size_t payload = 0;
    if (st == AE_OK && (ae_mul_overflow(f->info.elems, f->info.item, &payload) ||
                        payload != size - f->info.offset)) {
        size_t have = size - f->info.offset;
        st = ae_src_fail(&c, AE_ERR_FORMAT, "%s: the shape needs %zu bytes of data, the file has %zu",
                         have < payload ? "truncated" : "trailing bytes", payload, have);
    }
    if (st) {
        ae_free(a, f);
        ae_free(a, pcopy);
        close(fd);
        return st;
    }
    f->alloc = *a;
    atomic_init(&f->refs, 1);
    f->fd = fd;
    f->path = pcopy;
    f->dim = f->info.shape[0] * f->info.shape[1] * f->info.shape[2];
    f->row_bytes = f->dim * f->info.item;
    *out = f;
    return AE_OK;
}

ae_rowfile *ae_rowfile_ref(ae_rowfile *f) {
    atomic_fetch_add(&f->refs, 1);
    return f;
}

void ae_rowfile_unref(ae_rowfile *f) {
    if (!f || atomic_fetch_sub(&f->refs, 1) != 1) return;
    close(f->fd);
    ae_allocator a = f->alloc;
    ae_free(&a, f->path);
    ae_free(&a, f);
}

size_t ae_rowfile_count(const ae_rowfile *f) { return f->info.count; }
const size_t *ae_rowfile_shape(const ae_rowfile *f) { return f->info.shape; }
ae_npy_type ae_rowfile_type(const ae_rowfile *f) { return f->info.type; }

ae_status ae_rowfile_read(ae_rowfile *f, ae_errbuf *e, const size_t *rows, size_t start, size_t n,
                          float mul, float add, float *dst) {
    ae_src_name c;
    ae_src_name_init(&c, e, f->path);
    size_t d = f->dim;
    int identity = mul == 1.0f && add == 0.0f;
    for (size_t i = 0; i < n;) {
        size_t r = rows ? rows[i] : start + i;
        /* Consecutive rows are read with one call. */
        size_t run = 1;
        while (i + run < n && (rows ? rows[i + run] == r + run : 1) && run < 4096) run++;
        float *out = dst + i * d;
        off_t off = (off_t)(f->info.offset + r * f->row_bytes);
        size_t vals = run * d;
        int rc;
        if (f->info.type == AE_NPY_F4) {
            rc = read_at(f->fd, out, vals * 4, off);
        } else if (f->info.type == AE_NPY_U1) {
            /* Bytes into the end of the float block, widened front to back:
               float j is written after byte j has been read. */
            uint8_t *raw = (uint8_t *)(out + vals) - vals;
            rc = read_at(f->fd, raw, vals, off);
            if (rc == 0) {
                for (size_t j = 0; j < vals; j++) out[j] = (float)raw[j];
            }
        } else {
            /* float64: 8 bytes a value, read a row at a time through a
               small stack buffer. */
            rc = 0;
            double tmp[512];
            for (size_t j = 0; j < vals && rc == 0;) {
                size_t k = vals - j < 512 ? vals - j : 512;
                rc = read_at(f->fd, tmp, k * 8, off + (off_t)(j * 8));
                for (size_t q = 0; rc == 0 && q < k; q++) {
                    double v = tmp[q];
                    if (!isfinite(v) || fabs(v) > FLT_MAX) {
                        size_t at = i * d + j + q;
                        return ae_src_fail(&c, AE_ERR_FORMAT,
                                           "row %zu, value %zu is %s where data must be finite",
                                           (rows ? rows[at / d] : start + at / d), at % d,
                                           isnan(v) ? "NaN" : isfinite(v) ? "outside float's range" : "infinite");
                    }
                    out[j + q] = (float)v;
                }
                j += k;
            }
        }
        if (rc != 0) {
            int err = errno;
            return ae_src_fail(&c, AE_ERR_IO, "cannot read row %zu: %s", r,
                               err ? ae_sys_error(err).s : "the file is shorter than its header says");
        }
        if (f->info.type == AE_NPY_F4) {
            size_t bad = ae_first_nonfinite(out, vals);
            if (bad < vals)
                return ae_src_fail(&c, AE_ERR_FORMAT, "row %zu, value %zu is %s where data must be finite",
                                   rows ? rows[i + bad / d] : r + bad / d, bad % d,
                                   isnan(out[bad]) ? "NaN" : "infinite");
        }
        if (!identity) {
            for (size_t j = 0; j < vals; j++) out[j] = out[j] * mul + add;
            size_t bad = ae_first_nonfinite(out, vals);
            if (bad < vals)
                return ae_src_fail(&c, AE_ERR_NUMERIC, "row %zu, value %zu overflows float when scaled",
                                   rows ? rows[i + bad / d] : r + bad / d, bad % d);
        }
        i += run;
    }
    return AE_OK;
}
