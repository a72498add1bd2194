/* Reader of the AEFX fixture files under tests/fixtures/ (format in
 * tests/fixtures/README.md), shared by the parity tests. Include after
 * <cmocka.h> (it reports with print_error). */
#ifndef AE_TEST_FIXTURE_H
#define AE_TEST_FIXTURE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fixture {
    size_t n;      /* number of arrays */
    size_t *count; /* elements of each */
    float **array; /* each array, pointing into data */
    float *data;
} fixture;

static void fixture_free(fixture *fx) {
    free(fx->count);
    free(fx->array);
    free(fx->data);
    memset(fx, 0, sizeof *fx);
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Reads a whole file; NULL (and a message) on failure. */
static unsigned char *read_file(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        print_error("cannot open %s\n", path);
        return NULL;
    }
    unsigned char *buf = NULL;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0) len = ftell(f);
    if (len >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = malloc(len > 0 ? (size_t)len : 1);
        if (buf && fread(buf, 1, (size_t)len, f) != (size_t)len) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    if (!buf) {
        print_error("cannot read %s\n", path);
        return NULL;
    }
    *size = (size_t)len;
    return buf;
}

/* Loads tests/fixtures/<name>.bin; returns 0 on success, else -1 with a
 * message printed. Checks the header against the file size. */
static int fixture_load(fixture *fx, const char *name) {
    memset(fx, 0, sizeof *fx);
    const char *root = getenv("AE_SOURCE_ROOT");
    if (!root) {
        print_error("AE_SOURCE_ROOT is not set (run the test through meson test)\n");
        return -1;
    }
    char path[4096];
    int plen = snprintf(path, sizeof path, "%s/tests/fixtures/%s.bin", root, name);
    if (plen < 0 || (size_t)plen >= sizeof path) {
        print_error("fixture path too long\n");
        return -1;
    }
    size_t size = 0;
    unsigned char *raw = read_file(path, &size);
    if (!raw) return -1;

    int rc = -1;
    if (size < 12 || memcmp(raw, "AEFX", 4) != 0 || le32(raw + 4) != 1) {
        print_error("%s: not a version 1 AEFX fixture\n", path);
        goto out;
    }
    size_t n = le32(raw + 8);
    if (n == 0 || n > (size - 12) / 4) {
        print_error("%s: bad array count %zu\n", path, n);
        goto out;
    }
    size_t header = 12 + 4 * n, total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t c = le32(raw + 12 + 4 * i);
        if (c > (size - header) / 4 - total) {
            print_error("%s: array %zu overruns the file\n", path, i);
            goto out;
        }
        total += c;
    }
    if (header + 4 * total != size) {
        print_error("%s: %zu bytes, header says %zu\n", path, size, header + 4 * total);
        goto out;
    }
    fx->n = n;
    fx->count = calloc(n, sizeof *fx->count);
    fx->array = calloc(n, sizeof *fx->array);
    fx->data = malloc((total ? total : 1) * sizeof(float));
    if (!fx->count || !fx->array || !fx->data) {
        print_error("out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < total; i++) {
        uint32_t bits = le32(raw + header + 4 * i);
        memcpy(&fx->data[i], &bits, sizeof bits);
    }
    for (size_t i = 0, off = 0; i < n; i++) {
        fx->count[i] = le32(raw + 12 + 4 * i);
        fx->array[i] = fx->data + off;
        off += fx->count[i];
    }
    rc = 0;
out:
    free(raw);
    if (rc != 0) fixture_free(fx);
    return rc;
}

#endif
