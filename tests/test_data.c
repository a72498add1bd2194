/* Tests of src/data: the IDX reader (plain and gzipped, every malformed
 * header and body, truncation at every byte, failing allocations), the
 * .npy and CSV readers and the .npy writer, the dataset handle (memory,
 * accessors, scale, gather, batches, standardisation, shuffle, split) and the
 * corruption operators (statistics, determinism, refusals). Files are written into a
 * fresh directory under /tmp. */
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "data/data.h"

/* ---- temporary files ---- */

#define MAX_FILES 160
static char g_dir[64];
static char g_paths[MAX_FILES][128];
static int g_npaths;

static int group_setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/libae-data-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int group_teardown(void **state) {
    (void)state;
    for (int i = 0; i < g_npaths; i++) {
        struct stat sb;
        if (stat(g_paths[i], &sb) == 0) {
            if (S_ISDIR(sb.st_mode))
                rmdir(g_paths[i]);
            else
                unlink(g_paths[i]);
        }
    }
    return rmdir(g_dir);
}

/* A path in the temporary directory; the same name gives the same pointer. */
static const char *tpath(const char *name) {
    char p[128];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    for (int i = 0; i < g_npaths; i++)
        if (strcmp(g_paths[i], p) == 0) return g_paths[i];
    assert_true(g_npaths < MAX_FILES);
    strcpy(g_paths[g_npaths], p);
    return g_paths[g_npaths++];
}

static const char *write_plain(const char *name, const void *buf, size_t len) {
    const char *p = tpath(name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return p;
}

static const char *write_gz(const char *name, const void *buf, size_t len) {
    const char *p = tpath(name);
    gzFile g = gzopen(p, "wb9");
    assert_non_null(g);
    if (len) assert_int_equal(gzwrite(g, buf, (unsigned)len), (int)len);
    assert_int_equal(gzclose(g), Z_OK);
    return p;
}

/* The whole file, malloc'ed. */
static uint8_t *read_all(const char *p, size_t *len) {
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *b = malloc((size_t)n + 1);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* The gzip form of buf, malloc'ed. */
static uint8_t *gz_bytes(const void *buf, size_t len, size_t *gzlen) {
    return read_all(write_gz("scratch.gz", buf, len), gzlen);
}

/* An IDX file: header then n data bytes. Returns its length. */
static size_t make_idx(uint8_t *out, uint8_t type, uint8_t ndim, const uint32_t *dims,
                       const uint8_t *data, size_t n) {
    size_t k = 0;
    out[k++] = 0;
    out[k++] = 0;
    out[k++] = type;
    out[k++] = ndim;
    for (unsigned i = 0; i < ndim; i++) {
        out[k++] = (uint8_t)(dims[i] >> 24);
        out[k++] = (uint8_t)(dims[i] >> 16);
        out[k++] = (uint8_t)(dims[i] >> 8);
        out[k++] = (uint8_t)dims[i];
    }
    if (n) memcpy(out + k, data, n);
    return k + n;
}

/* Pixel values of the small test files: cover 0 and 255. */
static uint8_t pix(size_t i) { return (uint8_t)(i * 37u + (i % 3 == 0 ? 255u : 0u)); }

/* 3 images of 2 x 3. */
static size_t small_images(uint8_t *out) {
    uint8_t d[18];
    for (size_t i = 0; i < 18; i++) d[i] = pix(i);
    uint32_t dims[3] = {3, 2, 3};
    return make_idx(out, 0x08, 3, dims, d, 18);
}

static const uint8_t small_label_values[3] = {7, 0, 255};

static size_t small_labels(uint8_t *out) {
    uint32_t dims[1] = {3};
    return make_idx(out, 0x08, 1, dims, small_label_values, 3);
}

/* ---- dataset snapshots: a failed call must leave everything as it was ---- */

typedef struct snap {
    size_t count, dim, c, h, w;
    const float *data;
    const int32_t *labels;
    float sum;
    long lsum;
} snap;

static snap take(const ae_dataset *ds) {
    snap s;
    memset(&s, 0, sizeof s);
    s.count = ae_dataset_count(ds);
    s.dim = ae_dataset_dim(ds);
    assert_int_equal(ae_dataset_shape(ds, &s.c, &s.h, &s.w), AE_OK);
    s.data = ae_dataset_data(ds);
    s.labels = ae_dataset_labels(ds);
    for (size_t i = 0; s.data && i < s.count * s.dim; i++) s.sum += s.data[i] * (float)(i % 7 + 1);
    for (size_t i = 0; s.labels && i < s.count; i++) s.lsum += s.labels[i] * (long)(i + 1);
    return s;
}

static void assert_same(const ae_dataset *ds, const snap *a) {
    snap b = take(ds);
    assert_int_equal(a->count, b.count);
    assert_int_equal(a->dim, b.dim);
    assert_int_equal(a->c, b.c);
    assert_int_equal(a->h, b.h);
    assert_int_equal(a->w, b.w);
    assert_ptr_equal(a->data, b.data);
    assert_ptr_equal(a->labels, b.labels);
    assert_true(a->sum == b.sum);
    assert_int_equal(a->lsum, b.lsum);
}

/* Expects the load to fail with `code`, a message naming `file` and
 * containing `what`, and the dataset unchanged. */
static void expect_fail(ae_dataset *ds, const char *images, const char *labels, ae_status code,
                        const char *file, const char *what) {
    snap before = take(ds);
    ae_status st = ae_dataset_load_idx(ds, images, labels);
    const char *msg = ae_dataset_last_error(ds);
    if (st != code || !strstr(msg, file) || !strstr(msg, what)) {
        print_error("load(%s, %s): got %s \"%s\", expected %s naming %s and \"%s\"\n", images,
                    labels ? labels : "NULL", ae_status_name(st), msg, ae_status_name(code), file,
                    what);
        fail();
    }
    assert_same(ds, &before);
}

/* A dataset holding the small images and labels, so failures can be seen
 * to keep them. */
static ae_dataset *preloaded(const ae_allocator *a) {
    uint8_t buf[64];
    const char *img = write_plain("pre-images.idx", buf, small_images(buf));
    const char *lab = write_plain("pre-labels.idx", buf, small_labels(buf));
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, a), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, img, lab), AE_OK);
    return ds;
}

/* ---- tests ---- */

static void test_create_and_null_args(void **state) {
    (void)state;
    assert_int_equal(ae_dataset_create(NULL, NULL), AE_ERR_INVALID_ARG);
    ae_dataset *ds = (ae_dataset *)&ds;
    ae_allocator bad = {sizeof(ae_allocator) - 1, NULL, NULL, NULL};
    assert_int_equal(ae_dataset_create(&ds, &bad), AE_ERR_INVALID_ARG);
    assert_null(ds);

    test_alloc t = {0, 0, 0};
    ae_allocator failing = test_allocator(&t);
    ds = (ae_dataset *)&ds;
    assert_int_equal(ae_dataset_create(&ds, &failing), AE_ERR_OUT_OF_MEMORY);
    assert_null(ds);
    assert_int_equal(t.live, 0);

    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_non_null(ds);
    assert_string_equal(ae_dataset_last_error(ds), "");
    assert_int_equal(ae_dataset_count(ds), 0);
    assert_int_equal(ae_dataset_dim(ds), 0);
    assert_null(ae_dataset_data(ds));
    assert_null(ae_dataset_labels(ds));
    size_t c = 9, h = 9, w = 9;
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_int_equal(c + h + w, 0);
    assert_int_equal(ae_dataset_shape(ds, NULL, NULL, NULL), AE_OK);

    assert_int_equal(ae_dataset_load_idx(NULL, "x", NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_load_idx(ds, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "images_path"));
    assert_int_equal(ae_dataset_scale(NULL, 1.0f, 0.0f), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_scale(ds, 1.0f, 0.0f), AE_ERR_STATE);
    size_t idx = 0;
    float dst = 0;
    assert_int_equal(ae_dataset_gather(NULL, &idx, 1, &dst, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_gather(ds, &idx, 1, &dst, NULL), AE_ERR_RANGE);
    assert_int_equal(ae_dataset_gather(ds, NULL, 0, NULL, NULL), AE_OK);

    assert_int_equal(ae_dataset_count(NULL), 0);
    assert_int_equal(ae_dataset_dim(NULL), 0);
    assert_null(ae_dataset_data(NULL));
    assert_null(ae_dataset_labels(NULL));
    assert_int_equal(ae_dataset_shape(NULL, &c, &h, &w), AE_ERR_INVALID_ARG);
    assert_string_equal(ae_dataset_last_error(NULL), "");
    ae_dataset_destroy(ds);
    ae_dataset_destroy(NULL);

    /* The internal reader's own argument checks. */
    ae_allocator a;
    ae_errbuf e;
    ae_idx x;
    assert_int_equal(ae_allocator_init(&a, NULL), AE_OK);
    assert_int_equal(ae_idx_parse_mem(&a, &e, "m", NULL, 0, AE_IDX_SAMPLES, NULL),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_idx_parse_mem(NULL, &e, "m", "", 0, AE_IDX_SAMPLES, &x),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_idx_parse_mem(&a, &e, "m", NULL, 4, AE_IDX_SAMPLES, &x),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_idx_read_file(&a, &e, NULL, AE_IDX_SAMPLES, &x), AE_ERR_INVALID_ARG);
    ae_idx_free(&a, NULL);
}

static void test_load_plain_images(void **state) {
    (void)state;
    uint8_t buf[64];
    const char *p = write_plain("images.idx", buf, small_images(buf));
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, p, NULL), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 3);
    assert_int_equal(ae_dataset_dim(ds), 6);
    size_t c, h, w;
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_int_equal(c, 1);
    assert_int_equal(h, 2);
    assert_int_equal(w, 3);
    const float *x = ae_dataset_data(ds);
    assert_non_null(x);
    for (size_t i = 0; i < 18; i++) assert_true(x[i] == (float)pix(i));
    assert_true(x[0] == 255.0f && x[1] == 37.0f);
    assert_null(ae_dataset_labels(ds));
    ae_dataset_destroy(ds);
}

static void test_load_gz_with_labels(void **state) {
    (void)state;
    uint8_t buf[64];
    const char *img = write_gz("images.gz", buf, small_images(buf));
    const char *lab = write_gz("labels.gz", buf, small_labels(buf));
    const char *lab_plain = write_plain("labels.idx", buf, small_labels(buf));
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    for (int round = 0; round < 2; round++) {
        assert_int_equal(ae_dataset_load_idx(ds, img, round ? lab_plain : lab), AE_OK);
        assert_int_equal(ae_dataset_count(ds), 3);
        assert_int_equal(ae_dataset_dim(ds), 6);
        const float *x = ae_dataset_data(ds);
        for (size_t i = 0; i < 18; i++) assert_true(x[i] == (float)pix(i));
        const int32_t *l = ae_dataset_labels(ds);
        assert_non_null(l);
        for (size_t i = 0; i < 3; i++) assert_int_equal(l[i], small_label_values[i]);
    }
    /* Loading without labels replaces the labels too. */
    assert_int_equal(ae_dataset_load_idx(ds, img, NULL), AE_OK);
    assert_null(ae_dataset_labels(ds));
    ae_dataset_destroy(ds);
}

static void test_load_vectors(void **state) {
    (void)state;
    uint8_t d[20], buf[64];
    for (size_t i = 0; i < 20; i++) d[i] = (uint8_t)(200 + i);
    uint32_t dims[2] = {5, 4};
    const char *p = write_gz("vectors.gz", buf, make_idx(buf, 0x08, 2, dims, d, 20));
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, p, NULL), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 5);
    assert_int_equal(ae_dataset_dim(ds), 4);
    size_t c, h, w;
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_int_equal(c, 4);
    assert_int_equal(h, 1);
    assert_int_equal(w, 1);
    for (size_t i = 0; i < 20; i++) assert_true(ae_dataset_data(ds)[i] == (float)(200 + i));
    ae_dataset_destroy(ds);
}

/* A gzip file of several members (as `cat a.gz b.gz` makes) holds their
 * concatenated content, as gzip -d reads it. */
static void test_gz_multi_member(void **state) {
    (void)state;
    uint8_t buf[64];
    size_t n = small_images(buf), la, lb;
    uint8_t *a = gz_bytes(buf, 10, &la);
    uint8_t *b = gz_bytes(buf + 10, n - 10, &lb);
    uint8_t cat[256];
    assert_true(la + lb <= sizeof cat);
    memcpy(cat, a, la);
    memcpy(cat + la, b, lb);
    const char *p = write_plain("multi.gz", cat, la + lb);
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, p, NULL), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 3);
    for (size_t i = 0; i < 18; i++) assert_true(ae_dataset_data(ds)[i] == (float)pix(i));
    ae_dataset_destroy(ds);
    free(a);
    free(b);
}

/* A large multi-member gzip file: the trailer states only the last member's
 * length, so the reader cannot trust the header's size and grows its output
 * as data arrives. */
static const char *big_multi_member(size_t *count) {
    enum { N = 700, W = 1000 };
    static uint8_t buf[16 + N * W];
    uint8_t *d = malloc(N * W);
    assert_non_null(d);
    for (size_t i = 0; i < N * W; i++) d[i] = pix(i);
    uint32_t dims[2] = {N, W};
    size_t n = make_idx(buf, 0x08, 2, dims, d, N * W), la, lb;
    free(d);
    uint8_t *a = gz_bytes(buf, n / 3, &la);
    uint8_t *b = gz_bytes(buf + n / 3, n - n / 3, &lb);
    uint8_t *cat = malloc(la + lb);
    assert_non_null(cat);
    memcpy(cat, a, la);
    memcpy(cat + la, b, lb);
    const char *p = write_plain("big-multi.gz", cat, la + lb);
    free(a);
    free(b);
    free(cat);
    *count = N;
    return p;
}

static void test_gz_growing_output(void **state) {
    (void)state;
    size_t count;
    const char *p = big_multi_member(&count);
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, p, NULL), AE_OK);
    assert_int_equal(ae_dataset_count(ds), count);
    assert_int_equal(ae_dataset_dim(ds), 1000);
    const float *x = ae_dataset_data(ds);
    for (size_t i = 0; i < count * 1000; i++)
        if (x[i] != (float)pix(i)) {
            print_error("value %zu: %g, expected %u\n", i, (double)x[i], pix(i));
            fail();
        }
    ae_dataset_destroy(ds);
}

static void test_malformed_headers(void **state) {
    (void)state;
    ae_dataset *ds = preloaded(NULL);
    uint8_t buf[128], d[32];
    memset(d, 1, sizeof d);
    const char *p;
    size_t n;

    n = small_images(buf);
    buf[0] = 1;
    p = write_plain("bad-magic.idx", buf, n);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "bad magic");
    buf[0] = 0;
    buf[1] = 0x80;
    p = write_gz("bad-magic.gz", buf, n);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "bad magic");

    uint32_t dims3[3] = {3, 2, 3};
    p = write_plain("unknown-type.idx", buf, make_idx(buf, 0x07, 3, dims3, d, 18));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "unknown element type 0x07");
    p = write_plain("float-type.idx", buf, make_idx(buf, 0x0D, 3, dims3, d, 18));
    expect_fail(ds, p, NULL, AE_ERR_UNSUPPORTED, p, "0x0D (float32)");
    p = write_plain("short-type.idx", buf, make_idx(buf, 0x0B, 3, dims3, d, 18));
    expect_fail(ds, p, NULL, AE_ERR_UNSUPPORTED, p, "0x0B (int16)");

    p = write_plain("zero-dims.idx", buf, make_idx(buf, 0x08, 0, dims3, d, 18));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "zero dimensions");
    uint32_t dims4[4] = {3, 2, 3, 1};
    p = write_plain("four-dims.idx", buf, make_idx(buf, 0x08, 4, dims4, d, 18));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "too many dimensions");
    n = make_idx(buf, 0x08, 3, dims3, d, 18);
    buf[3] = 255;
    p = write_plain("255-dims.idx", buf, n);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "too many dimensions: 255");
    uint32_t dims1[1] = {18};
    p = write_plain("one-dim.idx", buf, make_idx(buf, 0x08, 1, dims1, d, 18));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "1 dimension");

    /* Labels must have exactly one dimension. */
    const char *img = write_plain("ok-images.idx", buf, small_images(buf));
    p = write_plain("labels-3d.idx", buf, make_idx(buf, 0x08, 3, dims3, d, 18));
    expect_fail(ds, img, p, AE_ERR_FORMAT, p, "labels file has 1 dimension");

    uint32_t zc[3] = {0, 2, 3}, zr[3] = {3, 0, 3}, zw[3] = {3, 2, 0};
    p = write_plain("zero-count.idx", buf, make_idx(buf, 0x08, 3, zc, d, 0));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "zero count");
    p = write_plain("zero-rows.idx", buf, make_idx(buf, 0x08, 3, zr, d, 0));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "dimension 1 has size 0");
    p = write_plain("zero-cols.idx", buf, make_idx(buf, 0x08, 3, zw, d, 0));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "dimension 2 has size 0");
    uint32_t zl[1] = {0};
    p = write_plain("zero-labels.idx", buf, make_idx(buf, 0x08, 1, zl, d, 0));
    expect_fail(ds, img, p, AE_ERR_FORMAT, p, "zero count");

    uint32_t huge[3] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    p = write_plain("overflow.idx", buf, make_idx(buf, 0x08, 3, huge, d, 10));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "exceed the limit");
    uint32_t big[3] = {65536, 65536, 2}; /* 2^33 elements: no overflow, over the limit */
    p = write_gz("too-big.gz", buf, make_idx(buf, 0x08, 3, big, d, 10));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "exceed the limit");
    uint32_t big2[2] = {0x80000001u, 1};
    p = write_plain("too-big-vectors.idx", buf, make_idx(buf, 0x08, 2, big2, d, 10));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "exceed the limit");

    p = write_plain("empty.idx", buf, 0);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "empty file");
    p = write_gz("empty.gz", buf, 0);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "empty file");
    n = small_images(buf);
    p = write_plain("short-magic.idx", buf, 3);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "truncated header");
    p = write_plain("short-header.idx", buf, 10);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "truncated header: 10 of 16 bytes");
    p = write_gz("short-header.gz", buf, 10);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "truncated header: 10 of 16 bytes");
    ae_dataset_destroy(ds);
}

static void test_malformed_bodies(void **state) {
    (void)state;
    ae_dataset *ds = preloaded(NULL);
    uint8_t buf[128], d[64];
    for (size_t i = 0; i < sizeof d; i++) d[i] = (uint8_t)i;
    uint32_t dims3[3] = {3, 2, 3};
    const char *p;

    p = write_plain("truncated.idx", buf, make_idx(buf, 0x08, 3, dims3, d, 10));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p,
                "truncated: header promises 18 bytes of data, file has 10");
    p = write_gz("truncated.gz", buf, make_idx(buf, 0x08, 3, dims3, d, 10));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p,
                "truncated: header promises 18 bytes of data, file has 10");
    p = write_plain("trailing.idx", buf, make_idx(buf, 0x08, 3, dims3, d, 19));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "trailing bytes");
    p = write_gz("trailing.gz", buf, make_idx(buf, 0x08, 3, dims3, d, 40));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "trailing bytes");

    /* Corrupt gzip: a bad CRC, a bad length, an invalid deflate block, and
     * garbage after the stream. */
    size_t n = make_idx(buf, 0x08, 3, dims3, d, 18), glen;
    uint8_t *g = gz_bytes(buf, n, &glen);
    g[glen - 8] ^= 0x01;
    p = write_plain("bad-crc.gz", g, glen);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "corrupt gzip stream");
    g[glen - 8] ^= 0x01;
    g[glen - 4] ^= 0x01;
    p = write_plain("bad-length.gz", g, glen);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "corrupt gzip stream");
    g[glen - 4] ^= 0x01;
    uint8_t keep = g[10];
    g[10] = 0x07; /* BFINAL 1, BTYPE 11: reserved */
    p = write_plain("bad-block.gz", g, glen);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "corrupt gzip stream");
    g[10] = keep;
    uint8_t more[256];
    memcpy(more, g, glen);
    memcpy(more + glen, "garbage", 7);
    p = write_plain("garbage-after.gz", more, glen + 7);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "trailing bytes after the gzip stream");
    p = write_plain("gz-magic-only.gz", g, 2);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "truncated gzip stream");
    p = write_plain("gz-cut.gz", g, glen - 1);
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p, "truncated gzip stream");
    p = write_plain("good.gz", g, glen);
    free(g);

    /* Labels that do not match the images: the message names the labels file. */
    uint32_t dims1[1] = {4};
    const char *lab4 = write_plain("labels4.idx", buf, make_idx(buf, 0x08, 1, dims1, d, 4));
    expect_fail(ds, p, lab4, AE_ERR_FORMAT, lab4, "4 labels, but");
    expect_fail(ds, p, lab4, AE_ERR_FORMAT, p, "has 3 samples");
    const char *lab_cut = write_plain("labels-cut.idx", buf, make_idx(buf, 0x08, 1, dims1, d, 2));
    expect_fail(ds, p, lab_cut, AE_ERR_FORMAT, lab_cut, "truncated");

    /* Files that cannot be read. */
    const char *missing = tpath("does-not-exist.idx");
    expect_fail(ds, missing, NULL, AE_ERR_IO, missing, "cannot open");
    expect_fail(ds, p, missing, AE_ERR_IO, missing, "cannot open");
    const char *dir = tpath("a-directory");
    assert_int_equal(mkdir(dir, 0700), 0);
    expect_fail(ds, dir, NULL, AE_ERR_IO, dir, "directory");
    ae_dataset_destroy(ds);
}

/* Allocator that records the largest single request. */
typedef struct max_alloc {
    size_t largest;
    long live;
} max_alloc;

static void *max_alloc_fn(void *ud, size_t n) {
    max_alloc *m = ud;
    if (n > m->largest) m->largest = n;
    void *p = malloc(n);
    if (p) m->live++;
    return p;
}

static void max_release_fn(void *ud, void *p) {
    max_alloc *m = ud;
    if (p) {
        m->live--;
        free(p);
    }
}

/* A header promising 2 GiB over 10 bytes of data fails at once, without
 * allocating anything near the promised size, plain or gzipped. */
static void test_huge_claim_small_file(void **state) {
    (void)state;
    max_alloc m = {0, 0};
    ae_allocator a = {sizeof(ae_allocator), max_alloc_fn, max_release_fn, &m};
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, &a), AE_OK);
    uint8_t buf[64], d[10] = {0};
    uint32_t dims[3] = {32768, 256, 256}; /* 2^31 elements: the largest accepted */
    const char *p = write_gz("claims-2g.gz", buf, make_idx(buf, 0x08, 3, dims, d, 10));
    clock_t t0 = clock();
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p,
                "truncated: header promises 2147483648 bytes of data, file has 10");
    p = write_plain("claims-2g.idx", buf, make_idx(buf, 0x08, 3, dims, d, 10));
    expect_fail(ds, p, NULL, AE_ERR_FORMAT, p,
                "truncated: header promises 2147483648 bytes of data, file has 10");
    assert_true((double)(clock() - t0) / CLOCKS_PER_SEC < 2.0);
    assert_true(m.largest < ((size_t)4 << 20));
    ae_dataset_destroy(ds);
    assert_int_equal(m.live, 0);
}

/* Every prefix of a valid file (plain and gzipped, images and labels)
 * fails cleanly with AE_ERR_FORMAT; the whole file loads. */
static void test_truncated_at_every_offset(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    ae_dataset *ds = preloaded(&a);
    uint8_t img[64], lab[64];
    size_t ni = small_images(img), nl = small_labels(lab), gi, gl;
    uint8_t *gimg = gz_bytes(img, ni, &gi);
    uint8_t *glab = gz_bytes(lab, nl, &gl);
    const char *good_img = write_plain("good-images.idx", img, ni);
    const char *good_lab = write_plain("good-labels.idx", lab, nl);
    const char *cut = tpath("cut");
    struct {
        const uint8_t *b;
        size_t n;
        int is_labels;
    } files[4] = {{img, ni, 0}, {gimg, gi, 0}, {lab, nl, 1}, {glab, gl, 1}};
    for (int f = 0; f < 4; f++) {
        for (size_t k = 0; k <= files[f].n; k++) {
            write_plain("cut", files[f].b, k);
            const char *im = files[f].is_labels ? good_img : cut;
            const char *lb = files[f].is_labels ? cut : good_lab;
            if (k < files[f].n) {
                expect_fail(ds, im, lb, AE_ERR_FORMAT, cut, "");
            } else {
                assert_int_equal(ae_dataset_load_idx(ds, im, lb), AE_OK);
                assert_int_equal(ae_dataset_count(ds), 3);
            }
            /* The memory parser agrees with the file reader. */
            ae_errbuf e;
            ae_idx x;
            ae_status st = ae_idx_parse_mem(&a, &e, "mem", files[f].b, k,
                                            files[f].is_labels ? AE_IDX_LABELS : AE_IDX_SAMPLES, &x);
            assert_int_equal(st, k < files[f].n ? AE_ERR_FORMAT : AE_OK);
            if (st != AE_OK) {
                assert_non_null(strstr(e.msg, "mem: "));
                assert_null(x.values);
                assert_null(x.labels);
            } else {
                assert_int_equal(x.count, 3);
            }
            ae_idx_free(&a, &x);
        }
    }
    free(gimg);
    free(glab);
    ae_dataset_destroy(ds);
    assert_int_equal(t.live, 0);
}

/* Failing the k-th allocation of a load, for every k: AE_ERR_OUT_OF_MEMORY,
 * no leak, and the dataset keeps its previous content. */
static void test_failing_allocator(void **state) {
    (void)state;
    uint8_t buf[128];
    uint8_t d[40];
    for (size_t i = 0; i < sizeof d; i++) d[i] = (uint8_t)(i * 5);
    uint32_t dims[3] = {4, 2, 5}, ldims[1] = {4};
    size_t big_count;
    const char *cases[2][2] = {
        /* gzip images whose size is trusted, plain labels */
        {write_gz("oom-images.gz", buf, make_idx(buf, 0x08, 3, dims, d, 40)),
         write_plain("oom-labels.idx", buf, make_idx(buf, 0x08, 1, ldims, d, 4))},
        /* gzip output that grows as it arrives */
        {big_multi_member(&big_count), NULL},
    };

    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    for (int c = 0; c < 2; c++) {
        const char *img = cases[c][0], *lab = cases[c][1];
        ae_dataset *ds = preloaded(&a);
        long live0 = t.live;
        t.count = 0;
        assert_int_equal(ae_dataset_load_idx(ds, img, lab), AE_OK);
        long needed = t.count;
        assert_true(needed >= 5); /* buffers, inflate state and window, outputs */
        ae_dataset_destroy(ds);
        assert_int_equal(t.live, 0);

        for (long k = 0; k < needed; k++) {
            t.fail_at = -1;
            ds = preloaded(&a);
            assert_int_equal(t.live, live0);
            snap before = take(ds);
            t.count = 0;
            t.fail_at = k;
            ae_status st = ae_dataset_load_idx(ds, img, lab);
            if (st != AE_ERR_OUT_OF_MEMORY) {
                print_error("allocation %ld of %ld failed: got %s \"%s\"\n", k, needed,
                            ae_status_name(st), ae_dataset_last_error(ds));
                fail();
            }
            assert_true(strstr(ae_dataset_last_error(ds), img) ||
                        (lab && strstr(ae_dataset_last_error(ds), lab)));
            assert_int_equal(t.live, live0);
            assert_same(ds, &before);
            ae_dataset_destroy(ds);
            assert_int_equal(t.live, 0);
        }
        t.fail_at = -1;
    }
}

static void test_scale(void **state) {
    (void)state;
    ae_dataset *ds = preloaded(NULL);
    snap before = take(ds);
    assert_int_equal(ae_dataset_scale(ds, NAN, 0.0f), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "finite"));
    assert_int_equal(ae_dataset_scale(ds, 1.0f, INFINITY), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_scale(ds, -INFINITY, 0.0f), AE_ERR_INVALID_ARG);
    /* 255 * 1e37 overflows float: refused before any value changes. */
    assert_int_equal(ae_dataset_scale(ds, 1e37f, 0.0f), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "overflows"));
    assert_same(ds, &before);

    assert_int_equal(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f), AE_OK);
    const float *x = ae_dataset_data(ds);
    for (size_t i = 0; i < 18; i++) assert_true(x[i] == (float)pix(i) * (1.0f / 255.0f));
    assert_int_equal(ae_dataset_scale(ds, -2.0f, 1.0f), AE_OK);
    for (size_t i = 0; i < 18; i++)
        assert_true(x[i] == ((float)pix(i) * (1.0f / 255.0f)) * -2.0f + 1.0f);
    ae_dataset_destroy(ds);
}

static void test_gather(void **state) {
    (void)state;
    ae_dataset *ds = preloaded(NULL);
    const float *x = ae_dataset_data(ds);
    size_t idx[3] = {2, 0, 2};
    float dst[18];
    int32_t lab[3] = {-1, -1, -1};
    assert_int_equal(ae_dataset_gather(ds, idx, 3, dst, lab), AE_OK);
    for (size_t i = 0; i < 3; i++) {
        assert_memory_equal(dst + i * 6, x + idx[i] * 6, 6 * sizeof(float));
        assert_int_equal(lab[i], small_label_values[idx[i]]);
    }
    assert_int_equal(ae_dataset_gather(ds, idx, 2, dst, NULL), AE_OK);

    /* An out-of-range index anywhere: nothing is written. */
    for (size_t i = 0; i < 18; i++) dst[i] = -7.0f;
    lab[0] = lab[1] = lab[2] = -1;
    size_t bad[3] = {0, 1, 3};
    assert_int_equal(ae_dataset_gather(ds, bad, 3, dst, lab), AE_ERR_RANGE);
    assert_non_null(strstr(ae_dataset_last_error(ds), "idx[2] = 3"));
    size_t worse[2] = {1, SIZE_MAX};
    assert_int_equal(ae_dataset_gather(ds, worse, 2, dst, lab), AE_ERR_RANGE);
    for (size_t i = 0; i < 18; i++) assert_true(dst[i] == -7.0f);
    assert_int_equal(lab[0] + lab[1] + lab[2], -3);

    assert_int_equal(ae_dataset_gather(ds, NULL, 1, dst, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_gather(ds, idx, 1, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_gather(ds, idx, 0, NULL, NULL), AE_OK);

    /* Without labels in the dataset, the labels argument is left alone. */
    uint8_t buf[64];
    assert_int_equal(ae_dataset_load_idx(ds, write_plain("nolab.idx", buf, small_images(buf)), NULL),
                     AE_OK);
    assert_int_equal(ae_dataset_gather(ds, idx, 3, dst, lab), AE_OK);
    assert_int_equal(lab[0] + lab[1] + lab[2], -3);
    ae_dataset_destroy(ds);
}

/* Walks every batch of `ds` (batch_size bs) and checks it is exactly rows
 * [i * bs, i * bs + rows) of ae_dataset_data, with its labels, and that
 * together they cover `expect_rows` rows; returns the batch count. */
static size_t check_batches(const ae_dataset *ds, size_t bs, int drop_last, size_t expect_rows) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds), nb = 99;
    const float *x = ae_dataset_data(ds);
    const int32_t *l = ae_dataset_labels(ds);
    assert_int_equal(ae_dataset_batch_count(ds, bs, drop_last, &nb), AE_OK);
    float dst[64 * 4];
    int32_t lab[64];
    size_t covered = 0;
    assert_true(bs * d <= 64 * 4);
    for (size_t i = 0; i < nb; i++) {
        for (size_t k = 0; k < 64 * 4; k++) dst[k] = -1.0f;
        for (size_t k = 0; k < 64; k++) lab[k] = -1;
        size_t rows = 0;
        assert_int_equal(ae_dataset_get_batch(ds, i, bs, drop_last, dst, lab, &rows), AE_OK);
        size_t want = n - i * bs < bs ? n - i * bs : bs;
        assert_int_equal(rows, want);
        assert_memory_equal(dst, x + i * bs * d, rows * d * sizeof(float));
        for (size_t k = rows * d; k < bs * d; k++) assert_true(dst[k] == -1.0f); /* no more */
        for (size_t k = 0; k < bs; k++) /* no labels in the dataset: left alone */
            assert_int_equal(lab[k], l && k < rows ? l[i * bs + k] : -1);
        covered += rows;
    }
    assert_int_equal(covered, expect_rows);
    /* One past the last batch is out of range. */
    size_t rows = 77;
    assert_int_equal(ae_dataset_get_batch(ds, nb, bs, drop_last, dst, lab, &rows), AE_ERR_RANGE);
    assert_int_equal(rows, 77);
    return nb;
}

static void test_batches(void **state) {
    (void)state;
    enum { N = 10, D = 3 };
    float x[N * D];
    int32_t lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = 100 + i;
        for (int j = 0; j < D; j++) x[i * D + j] = (float)(i * 10 + j);
    }
    /* Every call below runs on an allocator that fails every request: the
     * batch calls allocate nothing. */
    test_alloc t = {0, 0, -1};
    ae_allocator al = test_allocator(&t);
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, &al), AE_OK);
    assert_int_equal(ae_dataset_from_memory(ds, x, lab, N, D, 1, 1, AE_DATA_COPY), AE_OK);
    long live0 = t.live;
    t.count = 0;
    t.fail_at = 0;

    /* Batch counts: ceil(n / bs), or floor with drop_last. */
    static const size_t sizes[] = {1, 3, 4, 5, 9, 10, 11, 64};
    static const size_t full[] = {10, 4, 3, 2, 2, 1, 1, 1};
    static const size_t dropped[] = {10, 3, 2, 2, 1, 1, 0, 0};
    for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
        size_t bs = sizes[s];
        assert_int_equal(check_batches(ds, bs, 0, N), full[s]);
        assert_int_equal(check_batches(ds, bs, 1, dropped[s] * bs), dropped[s]);
    }
    /* Spelled out for bs 4: rows 0-3, 4-7, then 8-9 (dropped with drop_last). */
    float b[4 * D];
    int32_t bl[4];
    size_t rows = 0;
    assert_int_equal(ae_dataset_get_batch(ds, 1, 4, 0, b, bl, &rows), AE_OK);
    assert_int_equal(rows, 4);
    assert_true(b[0] == 40.0f && b[2] == 42.0f && b[11] == 72.0f);
    assert_int_equal(bl[0], 104);
    assert_int_equal(bl[3], 107);
    assert_int_equal(ae_dataset_get_batch(ds, 2, 4, 0, b, bl, &rows), AE_OK);
    assert_int_equal(rows, 2);
    assert_true(b[0] == 80.0f && b[5] == 92.0f);
    assert_int_equal(bl[0], 108);
    assert_int_equal(bl[1], 109);
    assert_int_equal(ae_dataset_get_batch(ds, 2, 4, 1, b, bl, &rows), AE_ERR_RANGE);
    assert_non_null(strstr(ae_dataset_last_error(ds), "batch 2 is out of range"));
    assert_int_equal(rows, 2);
    /* labels NULL: only the samples. */
    assert_int_equal(ae_dataset_get_batch(ds, 0, 3, 1, b, NULL, &rows), AE_OK);
    assert_int_equal(rows, 3);
    assert_true(b[0] == 0.0f && b[8] == 22.0f);
    assert_int_equal(t.count, 0);

    /* Refusals: a status, a message, nothing written. */
    snap before = take(ds);
    for (size_t k = 0; k < 4 * D; k++) b[k] = -5.0f;
    bl[0] = -5;
    rows = 55;
    size_t nb = 66;
    assert_int_equal(ae_dataset_batch_count(NULL, 4, 0, &nb), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_batch_count(ds, 4, 0, NULL), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "count is NULL"));
    assert_int_equal(ae_dataset_batch_count(ds, 0, 0, &nb), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "batch_size is 0"));
    assert_int_equal(nb, 66);
    assert_int_equal(ae_dataset_get_batch(NULL, 0, 4, 0, b, bl, &rows), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_get_batch(ds, 0, 4, 0, NULL, bl, &rows), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "ae_dataset_get_batch: dst is NULL"));
    assert_int_equal(ae_dataset_get_batch(ds, 0, 4, 0, b, bl, NULL), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "rows is NULL"));
    assert_int_equal(ae_dataset_get_batch(ds, 0, 0, 0, b, bl, &rows), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "batch_size is 0"));
    assert_int_equal(ae_dataset_get_batch(ds, 3, 4, 0, b, bl, &rows), AE_ERR_RANGE);
    assert_non_null(strstr(ae_dataset_last_error(ds), "10 samples in 3 batches of 4"));
    assert_int_equal(ae_dataset_get_batch(ds, SIZE_MAX, 4, 0, b, bl, &rows), AE_ERR_RANGE);
    assert_int_equal(ae_dataset_get_batch(ds, 1, SIZE_MAX, 0, b, bl, &rows), AE_ERR_RANGE);
    /* drop_last with fewer samples than a batch: 0 batches, batch 0 refused. */
    assert_int_equal(ae_dataset_batch_count(ds, 11, 1, &nb), AE_OK);
    assert_int_equal(nb, 0);
    assert_int_equal(ae_dataset_get_batch(ds, 0, 11, 1, b, bl, &rows), AE_ERR_RANGE);
    assert_non_null(strstr(ae_dataset_last_error(ds), "0 batches of 11, drop_last"));
    for (size_t k = 0; k < 4 * D; k++) assert_true(b[k] == -5.0f);
    assert_int_equal(bl[0], -5);
    assert_int_equal(rows, 55);
    assert_same(ds, &before);
    /* A batch larger than the dataset holds it all. */
    assert_int_equal(ae_dataset_batch_count(ds, SIZE_MAX, 0, &nb), AE_OK);
    assert_int_equal(nb, 1);
    assert_int_equal(t.count, 0);
    t.fail_at = -1;

    /* After a shuffle the batches follow the new order. */
    assert_int_equal(ae_dataset_shuffle(ds, 7), AE_OK);
    const int32_t *sl = ae_dataset_labels(ds);
    int moved = 0;
    for (int i = 0; i < N; i++) moved += sl[i] != 100 + i;
    assert_true(moved > N / 2);
    t.count = 0;
    t.fail_at = 0;
    assert_int_equal(check_batches(ds, 4, 0, N), 3);
    assert_int_equal(check_batches(ds, 4, 1, 8), 2);
    int seen[N] = {0};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(ae_dataset_get_batch(ds, i, 4, 0, b, bl, &rows), AE_OK);
        for (size_t r = 0; r < rows; r++) {
            int orig = bl[r] - 100; /* the label says which original row it is */
            assert_true(orig >= 0 && orig < N);
            assert_memory_equal(b + r * D, x + orig * D, D * sizeof(float));
            assert_int_equal(bl[r], sl[i * 4 + r]);
            seen[orig]++;
        }
    }
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    assert_int_equal(t.count, 0);
    t.fail_at = -1;
    assert_int_equal(t.live, live0);

    /* A borrowed dataset without labels: read in place, labels left alone. */
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, N, D, 1, 1, AE_DATA_BORROW), AE_OK);
    t.count = 0;
    t.fail_at = 0;
    bl[0] = bl[1] = bl[2] = bl[3] = -9;
    assert_int_equal(ae_dataset_get_batch(ds, 2, 4, 0, b, bl, &rows), AE_OK);
    assert_int_equal(rows, 2);
    assert_memory_equal(b, x + 8 * D, 2 * D * sizeof(float));
    assert_int_equal(bl[0] + bl[1] + bl[2] + bl[3], -36);
    assert_int_equal(check_batches(ds, 3, 0, N), 4);
    assert_int_equal(t.count, 0);
    t.fail_at = -1;
    ae_dataset_destroy(ds);
    assert_int_equal(t.live, 0);

    /* An empty dataset has no batches. */
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    for (int drop = 0; drop < 2; drop++) {
        nb = 5;
        assert_int_equal(ae_dataset_batch_count(ds, 4, drop, &nb), AE_OK);
        assert_int_equal(nb, 0);
        rows = 5;
        assert_int_equal(ae_dataset_get_batch(ds, 0, 4, drop, b, bl, &rows), AE_ERR_RANGE);
        assert_int_equal(rows, 5);
    }
    ae_dataset_destroy(ds);
}

/* ---- memory, reshape ---- */

static void test_from_memory(void **state) {
    (void)state;
    float x[12];
    for (int i = 0; i < 12; i++) x[i] = (float)i * 0.5f;
    int32_t lab[3] = {4, 5, 6};
    ae_dataset *ds = preloaded(NULL);
    snap before = take(ds);
    /* Refusals change nothing. */
    assert_int_equal(ae_dataset_from_memory(NULL, x, NULL, 3, 1, 1, 4, AE_DATA_COPY),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_from_memory(ds, NULL, NULL, 3, 1, 1, 4, AE_DATA_COPY),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 3, 1, 1, 4, (ae_data_mode)7),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 0, 1, 1, 4, AE_DATA_COPY), AE_ERR_RANGE);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 3, 0, 1, 4, AE_DATA_COPY), AE_ERR_RANGE);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, SIZE_MAX / 2, 1, 4, 4, AE_DATA_COPY),
                     AE_ERR_RANGE);
    x[6] = NAN;
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 3, 1, 1, 4, AE_DATA_BORROW), AE_ERR_NUMERIC);
    assert_non_null(strstr(ae_dataset_last_error(ds), "sample 1, feature 2"));
    assert_same(ds, &before);
    x[6] = 3.0f;
    /* Borrowing the dataset's own storage would leave it pointing at what
     * the load frees: refused, unchanged (data, labels, or a part of them). */
    assert_int_equal(ae_dataset_from_memory(ds, ae_dataset_data(ds), NULL, before.count, 1, 1,
                                            before.dim, AE_DATA_BORROW),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_from_memory(ds, ae_dataset_data(ds) + 1, NULL, 1, 1, 1, 1,
                                            AE_DATA_BORROW),
                     AE_ERR_INVALID_ARG);
    if (ae_dataset_labels(ds))
        assert_int_equal(ae_dataset_from_memory(ds, x, ae_dataset_labels(ds), 1, 1, 1, 4,
                                                AE_DATA_BORROW),
                         AE_ERR_INVALID_ARG);
    assert_same(ds, &before);
    /* Copying it is fine: the copy is made before the old storage goes. */
    float first = ae_dataset_data(ds)[0];
    assert_int_equal(ae_dataset_from_memory(ds, ae_dataset_data(ds), NULL, 1, 1, 1, 2,
                                            AE_DATA_COPY),
                     AE_OK);
    assert_true(ae_dataset_data(ds)[0] == first);

    /* Copy: independent of the caller's array. */
    assert_int_equal(ae_dataset_from_memory(ds, x, lab, 3, 1, 2, 2, AE_DATA_COPY), AE_OK);
    assert_ptr_not_equal(ae_dataset_data(ds), x);
    x[0] = 100.0f;
    assert_true(ae_dataset_data(ds)[0] == 0.0f);
    assert_int_equal(ae_dataset_labels(ds)[2], 6);
    size_t c, h, w;
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_true(c == 1 && h == 2 && w == 2 && ae_dataset_dim(ds) == 4);
    x[0] = 0.0f;

    /* Borrow: the same pointers; changes copy first, the caller's data stays. */
    assert_int_equal(ae_dataset_from_memory(ds, x, lab, 3, 4, 1, 1, AE_DATA_BORROW), AE_OK);
    assert_ptr_equal(ae_dataset_data(ds), x);
    assert_ptr_equal(ae_dataset_labels(ds), lab);
    assert_int_equal(ae_dataset_scale(ds, 2.0f, 1.0f), AE_OK);
    assert_ptr_not_equal(ae_dataset_data(ds), x);
    assert_true(x[1] == 0.5f && ae_dataset_data(ds)[1] == 2.0f);
    assert_int_equal(ae_dataset_from_memory(ds, x, lab, 3, 4, 1, 1, AE_DATA_BORROW), AE_OK);
    assert_int_equal(ae_dataset_shuffle(ds, 3), AE_OK);
    assert_ptr_not_equal(ae_dataset_labels(ds), lab);
    assert_true(lab[0] == 4 && lab[1] == 5 && lab[2] == 6 && x[4] == 2.0f);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 3, 4, 1, 1, AE_DATA_BORROW), AE_OK);
    assert_int_equal(ae_dataset_standardize(ds, NULL, NULL, 1), AE_OK);
    assert_true(x[4] == 2.0f);
    ae_dataset_destroy(ds);

    /* Reshape. */
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_reshape(ds, 1, 1, 1), AE_ERR_STATE);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 1, 12, 1, 1, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_reshape(ds, 5, 1, 2), AE_ERR_SHAPE);
    assert_int_equal(ae_dataset_reshape(ds, 3, 2, 2), AE_OK);
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_true(c == 3 && h == 2 && w == 2);
    ae_dataset_destroy(ds);
}

/* ---- .npy ---- */

/* A .npy file: magic, version, header dict (padded to 64 with a newline
 * unless raw), then n data bytes. Returns its length. */
static size_t make_npy(uint8_t *out, int major, const char *dict, const void *data, size_t n) {
    size_t lb = major == 1 ? 2 : 4, start = 8 + lb, dl = strlen(dict);
    size_t hlen = dl + 1;
    hlen += (64 - (start + hlen) % 64) % 64;
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)major;
    out[7] = 0;
    for (size_t i = 0; i < lb; i++) out[8 + i] = (uint8_t)(hlen >> (8 * i));
    memcpy(out + start, dict, dl);
    memset(out + start + dl, ' ', hlen - dl);
    out[start + hlen - 1] = '\n';
    if (n) memcpy(out + start + hlen, data, n);
    return start + hlen + n;
}

static void expect_npy_fail(ae_dataset *ds, const char *name, const uint8_t *buf, size_t len,
                            ae_status code, const char *what) {
    const char *p = write_plain(name, buf, len);
    snap before = take(ds);
    ae_status st = ae_dataset_load_npy(ds, p);
    const char *msg = ae_dataset_last_error(ds);
    if (st != code || !strstr(msg, p) || !strstr(msg, what)) {
        print_error("load_npy(%s): got %s \"%s\", expected %s with \"%s\"\n", name,
                    ae_status_name(st), msg, ae_status_name(code), what);
        fail();
    }
    assert_same(ds, &before);
}

/* Labels from .npy files of every integer dtype in both byte orders and
 * of whole floats (before, only what the float reader took: numpy's
 * default int64 was refused), attached to datasets of any origin. */
#define OK(x) assert_int_equal((x), AE_OK)
static void test_labels(void **state) {
    (void)state;
    static const int32_t want[4] = {0, 7, 2, 100};
    const char *kinds[] = {"i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8"};
    ae_dataset *ds = NULL;
    OK(ae_dataset_create(&ds, NULL));
    assert_int_equal(ae_dataset_load_labels(ds, tpath("none.npy")), AE_ERR_STATE);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    OK(ae_dataset_from_memory(ds, x, NULL, 4, 2, 1, 1, AE_DATA_BORROW));
    uint8_t buf[512];
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++)
        for (int big = 0; big < 2; big++) {
            size_t item = (size_t)(kinds[k][1] - '0');
            if (item == 1 && big) continue;
            uint8_t data[32];
            for (size_t i = 0; i < 4; i++) {
                uint8_t le[8] = {0};
                if (kinds[k][0] == 'f' && item == 4) {
                    float f = (float)want[i];
                    memcpy(le, &f, 4);
                } else if (kinds[k][0] == 'f') {
                    double d = want[i];
                    memcpy(le, &d, 8);
                } else {
                    uint64_t u = (uint64_t)want[i];
                    for (size_t b = 0; b < 8; b++) le[b] = (uint8_t)(u >> (8 * b));
                }
                for (size_t b = 0; b < item; b++) data[i * item + b] = big ? le[item - 1 - b] : le[b];
            }
            char dict[128], name[32];
            snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }",
                     item == 1 ? '|' : big ? '>' : '<', kinds[k], k % 2 ? "4, 1" : "4,");
            snprintf(name, sizeof name, "lab_%s_%d.npy", kinds[k], big);
            size_t n = make_npy(buf, 1, dict, data, 4 * item);
            OK(ae_dataset_load_labels(ds, write_plain(name, buf, n)));
            assert_memory_equal(ae_dataset_labels(ds), want, sizeof want);
            assert_true(ae_dataset_data(ds) != x); /* a borrowed dataset copied itself */
            assert_true(ae_dataset_data(ds)[5] == 6.0f);
        }
    /* Refused with the index of the label: out of int32, not whole, NaN;
     * more than one value per sample, another count; the labels stay. */
    struct {
        const char *descr, *shape;
        uint8_t bytes[32];
        size_t n;
        const char *what;
    } bad[] = {
        {"<i8", "(4,)", {0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}, 32,
         "label 2 (4294967296) is out of the int32 range"},
        {"<u4", "(4,)", {0, 0, 0, 0, 0, 0, 0, 0x80, 1, 0, 0, 0, 2, 0, 0, 0}, 16,
         "label 1 (2147483648) is out of the int32 range"},
        {"<f4", "(4,)", {0, 0, 0, 0, 0, 0, 0, 0x3f, 0, 0, 0, 0, 0, 0, 0, 0}, 16,
         "label 1 (0.5) is not a whole number"},
        {"<f4", "(4,)", {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x7f, 0, 0, 0, 0}, 16,
         "label 2 (nan) is not a whole number"},
        {"<i4", "(2, 2)", {0}, 16, "one integer per sample"},
        {"<i4", "(3,)", {0}, 12, "3 labels, but the dataset has 4 samples"},
        {"<f2", "(4,)", {0}, 8, "unsupported dtype"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char dict[128], name[32];
        snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                 bad[i].descr, bad[i].shape);
        snprintf(name, sizeof name, "badlab%zu.npy", i);
        size_t n = make_npy(buf, 1, dict, bad[i].bytes, bad[i].n);
        ae_status st = ae_dataset_load_labels(ds, write_plain(name, buf, n));
        if (st == AE_OK || !strstr(ae_dataset_last_error(ds), bad[i].what))
            print_error("case %zu: %s '%s'\n", i, ae_status_name(st), ae_dataset_last_error(ds));
        assert_true(st != AE_OK);
        assert_non_null(strstr(ae_dataset_last_error(ds), bad[i].what));
        assert_memory_equal(ae_dataset_labels(ds), want, sizeof want);
    }
    /* IDX labels and a CSV of integers go to any dataset too. */
    uint8_t idx[12] = {0, 0, 8, 1, 0, 0, 0, 4, 3, 1, 4, 1};
    OK(ae_dataset_load_labels(ds, write_plain("lab4.idx", idx, sizeof idx)));
    assert_int_equal(ae_dataset_labels(ds)[2], 4);
    OK(ae_dataset_load_labels(ds, write_plain("lab4.csv", "5\n-3\n9\n0\n", 9)));
    assert_int_equal(ae_dataset_labels(ds)[1], -3);
    assert_int_equal(ae_dataset_load_labels(ds, write_plain("lab4b.csv", "5\n-3.5\n9\n0\n", 11)),
                     AE_ERR_FORMAT);
    assert_non_null(strstr(ae_dataset_last_error(ds), "label 1 (-3.5)"));
    assert_int_equal(ae_dataset_load_labels(ds, write_plain("lab4c.csv", "5,1\n3,1\n9,1\n0,1\n", 16)),
                     AE_ERR_FORMAT);
    /* From memory, and removed. */
    OK(ae_dataset_set_labels(ds, want, 4));
    assert_memory_equal(ae_dataset_labels(ds), want, sizeof want);
    assert_int_equal(ae_dataset_set_labels(ds, want, 3), AE_ERR_SHAPE);
    assert_int_equal(ae_dataset_set_labels(NULL, want, 4), AE_ERR_INVALID_ARG);
    OK(ae_dataset_set_labels(ds, NULL, 4));
    assert_null(ae_dataset_labels(ds));
    /* A file-backed dataset takes labels (kept in memory), batches carry them. */
    float rows[8] = {0};
    int32_t got[4];
    OK(ae_dataset_save_npy(ds, tpath("fb.npy")));
    OK(ae_dataset_open_npy(ds, tpath("fb.npy")));
    OK(ae_dataset_load_labels(ds, tpath("lab_i8_0.npy")));
    OK(ae_dataset_rows(ds, 0, 4, rows, got));
    assert_memory_equal(got, want, sizeof want);
    /* Failing allocations change nothing. */
    for (long k = 0;; k++) {
        test_alloc ta = {0, 0, -1};
        ae_allocator a = test_allocator(&ta);
        ae_dataset *d = NULL;
        OK(ae_dataset_create(&d, &a));
        OK(ae_dataset_from_memory(d, x, NULL, 4, 2, 1, 1, AE_DATA_BORROW));
        ta.fail_at = ta.count + k;
        ae_status st = ae_dataset_load_labels(d, tpath("lab_i8_0.npy"));
        if (st == AE_OK) {
            assert_memory_equal(ae_dataset_labels(d), want, sizeof want);
            ae_dataset_destroy(d);
            assert_int_equal(ta.live, 0);
            break;
        }
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_null(ae_dataset_labels(d));
        assert_true(ae_dataset_data(d) == x);
        ae_dataset_destroy(d);
        assert_int_equal(ta.live, 0);
    }
    ae_dataset_destroy(ds);
}

static void test_npy_read(void **state) {
    (void)state;
    uint8_t buf[1024];
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    size_t c, h, w;
    /* float32 [2, 3] in version 1.0, as numpy writes it. */
    float f[6] = {0.0f, -1.5f, 2.25f, 1e-3f, 3e30f, -7.0f};
    size_t n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f, 24);
    assert_int_equal(n % 64, 24 % 64);
    assert_int_equal(ae_dataset_load_npy(ds, write_plain("f4.npy", buf, n)), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 2);
    assert_int_equal(ae_dataset_dim(ds), 3);
    assert_memory_equal(ae_dataset_data(ds), f, sizeof f);
    assert_null(ae_dataset_labels(ds));
    /* float64 [3, 2, 1] (images 1 x 2 x 1), version 2.0, keys in another order. */
    double d[6] = {0.5, -0.25, 1e-40, 3.0, 1e38, -2.0};
    n = make_npy(buf, 2, "{'shape': (3, 2, 1), 'fortran_order': False, 'descr': '<f8'}", d, 48);
    assert_int_equal(ae_dataset_load_npy(ds, write_plain("f8.npy", buf, n)), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 3);
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_true(c == 1 && h == 2 && w == 1);
    for (int i = 0; i < 6; i++) assert_true(ae_dataset_data(ds)[i] == (float)d[i]);
    /* uint8 [2, 1, 2, 2] in version 3.0: 0..255 as floats, C x H x W. */
    uint8_t u[8] = {0, 1, 2, 255, 128, 7, 9, 200};
    n = make_npy(buf, 3, "{\"descr\": \"|u1\", \"fortran_order\": False, \"shape\": (2, 1, 2, 2)}", u, 8);
    assert_int_equal(ae_dataset_load_npy(ds, write_plain("u1.npy", buf, n)), AE_OK);
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_true(c == 1 && h == 2 && w == 2 && ae_dataset_count(ds) == 2);
    for (int i = 0; i < 8; i++) assert_true(ae_dataset_data(ds)[i] == (float)u[i]);
    /* 1 dimension: N samples of one value; Fortran order of a vector is C order. */
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (6,), }", f, 24);
    assert_int_equal(ae_dataset_load_npy(ds, write_plain("vec.npy", buf, n)), AE_OK);
    assert_true(ae_dataset_count(ds) == 6 && ae_dataset_dim(ds) == 1);
    ae_dataset_destroy(ds);
}

static void test_npy_write(void **state) {
    (void)state;
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i / 7.0f - 1.0f;
    ae_dataset *ds = NULL, *back = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&back, NULL), AE_OK);
    assert_int_equal(ae_dataset_save_npy(ds, tpath("empty.npy")), AE_ERR_STATE);
    assert_int_equal(ae_dataset_save_npy(ds, NULL), AE_ERR_INVALID_ARG);
    /* Vectors: [N, D]; images: [N, C, H, W]. */
    for (int k = 0; k < 2; k++) {
        const char *p = tpath(k ? "img.npy" : "vec.npy");
        if (k)
            assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 2, 3, 2, 2, AE_DATA_BORROW), AE_OK);
        else
            assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 4, 6, 1, 1, AE_DATA_BORROW), AE_OK);
        assert_int_equal(ae_dataset_save_npy(ds, p), AE_OK);
        size_t len;
        uint8_t *b = read_all(p, &len);
        assert_memory_equal(b, "\x93NUMPY\x01\x00", 8);
        size_t hlen = b[8] | (size_t)b[9] << 8;
        assert_int_equal((10 + hlen) % 64, 0);
        assert_int_equal(b[10 + hlen - 1], '\n');
        assert_int_equal(len, 10 + hlen + sizeof x);
        const char *shape = k ? "'shape': (2, 3, 2, 2), }" : "'shape': (4, 6), }";
        char head[256];
        memcpy(head, b + 10, hlen);
        head[hlen] = '\0';
        assert_non_null(strstr(head, "{'descr': '<f4', 'fortran_order': False, "));
        assert_non_null(strstr(head, shape));
        free(b);
        assert_int_equal(ae_dataset_load_npy(back, p), AE_OK);
        assert_memory_equal(ae_dataset_data(back), x, sizeof x);
        size_t c, h, w, c2, h2, w2;
        ae_dataset_shape(ds, &c, &h, &w);
        ae_dataset_shape(back, &c2, &h2, &w2);
        assert_true(c == c2 && h == h2 && w == w2);
        assert_int_equal(ae_dataset_count(back), ae_dataset_count(ds));
    }
    /* A directory that does not exist: AE_ERR_IO naming the file, nothing left behind. */
    char bad[200];
    snprintf(bad, sizeof bad, "%s/no-such-dir/x.npy", g_dir);
    assert_int_equal(ae_dataset_save_npy(ds, bad), AE_ERR_IO);
    assert_non_null(strstr(ae_dataset_last_error(ds), "no-such-dir/x.npy"));
    /* A FIFO is refused by name and kind and stays a FIFO; through a
     * symbolic link the linked file is written and the link stays. */
    const char *fifo = tpath("out.fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(ae_dataset_save_npy(ds, fifo), AE_ERR_IO);
    assert_non_null(strstr(ae_dataset_last_error(ds), "out.fifo: it is a FIFO, not a regular file"));
    struct stat sb;
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(fifo);
    const char *link = tpath("link.npy");
    assert_int_equal(symlink("img.npy", link), 0);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 24, 1, 1, 1, AE_DATA_BORROW), AE_OK);
    assert_int_equal(ae_dataset_save_npy(ds, link), AE_OK);
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(ae_dataset_load_npy(back, tpath("img.npy")), AE_OK);
    assert_int_equal(ae_dataset_count(back), 24);
    unlink(link);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(back);
}

static void test_npy_malformed(void **state) {
    (void)state;
    uint8_t buf[1024], good[1024];
    float f[4] = {1, 2, 3, 4};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    ae_dataset *ds = preloaded(NULL);
    size_t gn = make_npy(good, 1, dict, f, 16);
    expect_npy_fail(ds, "e0.npy", good, 0, AE_ERR_FORMAT, "empty file");
    memcpy(buf, good, gn);
    buf[1] = 'X';
    expect_npy_fail(ds, "e1.npy", buf, gn, AE_ERR_FORMAT, "bad magic");
    memcpy(buf, good, gn);
    buf[6] = 4;
    expect_npy_fail(ds, "e2.npy", buf, gn, AE_ERR_VERSION, "version 4.0");
    expect_npy_fail(ds, "e3.npy", good, gn - 1, AE_ERR_FORMAT, "truncated");
    memcpy(buf, good, gn);
    buf[gn] = 0;
    expect_npy_fail(ds, "e4.npy", buf, gn + 1, AE_ERR_FORMAT, "trailing bytes");
    size_t n = make_npy(buf, 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", f, 16);
    expect_npy_fail(ds, "e5.npy", buf, n, AE_ERR_UNSUPPORTED, "big-endian");
    n = make_npy(buf, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 1), }", f, 16);
    expect_npy_fail(ds, "e6.npy", buf, n, AE_ERR_UNSUPPORTED, "integer dtype '<i8' is read for labels only");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", f, 16);
    expect_npy_fail(ds, "e7.npy", buf, n, AE_ERR_UNSUPPORTED, "Fortran order");
    float nan4[4] = {1, 2, NAN, 4};
    n = make_npy(buf, 1, dict, nan4, 16);
    expect_npy_fail(ds, "e8.npy", buf, n, AE_ERR_FORMAT, "element 2 is NaN where data must be finite");
    double big[2] = {1.0, 1e300};
    n = make_npy(buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", big, 16);
    expect_npy_fail(ds, "e9.npy", buf, n, AE_ERR_FORMAT, "outside float's range");
    n = make_npy(buf, 1, "{'descr': '<f4', 'shape': (2, 2), }", f, 16);
    expect_npy_fail(ds, "e10.npy", buf, n, AE_ERR_FORMAT, "'fortran_order' is missing");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), 'x': 1}", f, 16);
    expect_npy_fail(ds, "e11.npy", buf, n, AE_ERR_FORMAT, "unexpected key 'x'");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", f, 4);
    expect_npy_fail(ds, "e12.npy", buf, n, AE_ERR_UNSUPPORTED, "scalar");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,1,1,1,1), }", f, 4);
    expect_npy_fail(ds, "e13.npy", buf, n, AE_ERR_UNSUPPORTED, "more than 4 dimensions");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 2), }", f, 0);
    expect_npy_fail(ds, "e14.npy", buf, n, AE_ERR_FORMAT, "empty array");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999, 99999, 99999), }",
                 f, 16);
    expect_npy_fail(ds, "e15.npy", buf, n, AE_ERR_FORMAT, "exceeds the limit");
    n = make_npy(buf, 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", f, 8);
    expect_npy_fail(ds, "e16.npy", buf, n, AE_ERR_UNSUPPORTED, "structured dtype");
    n = make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2, 2), }", f, 16);
    expect_npy_fail(ds, "e17.npy", buf, n, AE_ERR_FORMAT, "'fortran_order' is not True or False");
    memcpy(buf, good, gn);
    buf[8] = 0xff;
    buf[9] = 0xff;
    expect_npy_fail(ds, "e18.npy", buf, gn, AE_ERR_FORMAT, "truncated header");
    /* Every prefix of a valid file fails cleanly (from memory, as the fuzz target). */
    for (size_t k = 0; k < gn; k++) {
        ae_allocator a;
        ae_allocator_init(&a, NULL);
        ae_errbuf e;
        ae_idx x;
        assert_int_equal(ae_npy_parse_mem(&a, &e, "mem", good, k, &x), AE_ERR_FORMAT);
        assert_null(x.values);
        assert_true(strncmp(e.msg, "mem: ", 5) == 0);
    }
    char missing[200];
    snprintf(missing, sizeof missing, "%s/missing.npy", g_dir);
    snap before = take(ds);
    assert_int_equal(ae_dataset_load_npy(ds, missing), AE_ERR_IO);
    assert_non_null(strstr(ae_dataset_last_error(ds), "missing.npy: cannot open"));
    assert_int_equal(ae_dataset_load_npy(ds, g_dir), AE_ERR_IO);
    assert_same(ds, &before);
    ae_dataset_destroy(ds);
}

/* ---- CSV ---- */

static void expect_csv_fail(ae_dataset *ds, const char *name, const char *text, unsigned flags,
                            ae_status code, const char *what) {
    const char *p = write_plain(name, text, strlen(text));
    snap before = take(ds);
    ae_status st = ae_dataset_load_csv(ds, p, flags);
    const char *msg = ae_dataset_last_error(ds);
    if (st != code || !strstr(msg, p) || !strstr(msg, what)) {
        print_error("load_csv(%s): got %s \"%s\", expected %s with \"%s\"\n", name,
                    ae_status_name(st), msg, ae_status_name(code), what);
        fail();
    }
    assert_same(ds, &before);
}

static void test_csv(void **state) {
    (void)state;
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    const char *t0 = "1,2.5,-3\n4e-1, 5 ,\"6\"\r\n\n  \n7,8,9";
    const char *p = write_plain("a.csv", t0, strlen(t0));
    assert_int_equal(ae_dataset_load_csv(ds, p, 0), AE_OK);
    float want[9] = {1, 2.5f, -3, 0.4f, 5, 6, 7, 8, 9};
    assert_int_equal(ae_dataset_count(ds), 3);
    assert_int_equal(ae_dataset_dim(ds), 3);
    assert_memory_equal(ae_dataset_data(ds), want, sizeof want);
    assert_null(ae_dataset_labels(ds));
    /* A header, a byte order mark, a label column (Kaggle's Fashion-MNIST layout). */
    const char *t = "\xEF\xBB\xBFlabel,pixel1,pixel2\n3,0,255\n-1,.5,1E2\n";
    p = write_plain("b.csv", t, strlen(t));
    assert_int_equal(ae_dataset_load_csv(ds, p, AE_CSV_HEADER | AE_CSV_LABEL_FIRST), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 2);
    assert_int_equal(ae_dataset_dim(ds), 2);
    assert_int_equal(ae_dataset_labels(ds)[0], 3);
    assert_int_equal(ae_dataset_labels(ds)[1], -1);
    float want2[4] = {0, 255, 0.5f, 100};
    assert_memory_equal(ae_dataset_data(ds), want2, sizeof want2);
    assert_int_equal(ae_dataset_reshape(ds, 1, 1, 2), AE_OK);
    assert_int_equal(ae_dataset_load_csv(ds, p, 8), AE_ERR_INVALID_ARG);

    ae_dataset_destroy(ds);
    ds = preloaded(NULL);
    expect_csv_fail(ds, "c1.csv", "1,2,3\n4,5,6\n7,8\n", 0, AE_ERR_FORMAT,
                    "line 3 has 2 fields, expected 3 (as on line 1)");
    expect_csv_fail(ds, "c2.csv", "1,2\n3,abc\n", 0, AE_ERR_FORMAT,
                    "line 2, field 2 ('abc') is not a number");
    expect_csv_fail(ds, "c3.csv", "1,2\n3,nan\n", 0, AE_ERR_FORMAT,
                    "line 2, field 2 is 'nan': NaN or infinity where data must be finite");
    expect_csv_fail(ds, "c4.csv", "1,-inf\n", 0, AE_ERR_FORMAT, "NaN or infinity");
    expect_csv_fail(ds, "c5.csv", "1,1e39\n", 0, AE_ERR_FORMAT, "outside float's range");
    expect_csv_fail(ds, "c6.csv", "a,b\n1,2\n", 0, AE_ERR_FORMAT, "pass AE_CSV_HEADER");
    expect_csv_fail(ds, "c7.csv", "a,b\n\n", AE_CSV_HEADER, AE_ERR_FORMAT, "no data rows");
    expect_csv_fail(ds, "c8.csv", "", 0, AE_ERR_FORMAT, "no data rows");
    expect_csv_fail(ds, "c9.csv", "1.5,2\n", AE_CSV_LABEL_FIRST, AE_ERR_FORMAT,
                    "line 1: the label '1.5' is not an int32");
    expect_csv_fail(ds, "c10.csv", "1,2\n3,,\n", 0, AE_ERR_FORMAT, "line 2 has 3 fields");
    expect_csv_fail(ds, "c11.csv", "1,2\n3, \n", 0, AE_ERR_FORMAT, "line 2, field 2 is empty");
    expect_csv_fail(ds, "c12.csv", "1,2\n3,4x\n", 0, AE_ERR_FORMAT, "('4x') is not a number");
    expect_csv_fail(ds, "c13.csv", "7\n", AE_CSV_LABEL_FIRST, AE_ERR_FORMAT, "a label column");
    expect_csv_fail(ds, "c14.csv", "1,2\n3,0x\n", 0, AE_ERR_FORMAT, "is not a number");
    expect_csv_fail(ds, "c15.csv", "99999999999,2\n", AE_CSV_LABEL_FIRST, AE_ERR_FORMAT,
                    "is not an int32");
    char missing[200];
    snprintf(missing, sizeof missing, "%s/missing.csv", g_dir);
    assert_int_equal(ae_dataset_load_csv(ds, missing, 0), AE_ERR_IO);
    /* Every prefix of a valid file parses or fails cleanly. */
    const char *good = "label,a,b\n1,0.5,2\r\n2,3,-4e2\n";
    for (size_t k = 0; k <= strlen(good); k++) {
        ae_allocator a;
        ae_allocator_init(&a, NULL);
        ae_errbuf e;
        ae_idx x;
        ae_status st = ae_csv_parse_mem(&a, &e, "mem", good, k, AE_CSV_HEADER | AE_CSV_LABEL_FIRST, &x);
        if (st == AE_OK) {
            assert_true(x.count >= 1 && x.dim >= 1 && x.dim <= 2 && x.labels);
        } else {
            assert_int_equal(st, AE_ERR_FORMAT);
            assert_true(strncmp(e.msg, "mem: ", 5) == 0);
            assert_null(x.values);
        }
        ae_idx_free(&a, &x);
    }
    ae_dataset_destroy(ds);
}

/* Every allocation of the .npy, CSV and memory loads failing in turn:
 * AE_ERR_OUT_OF_MEMORY, no leak, the dataset as it was. */
static void test_readers_failing_allocator(void **state) {
    (void)state;
    uint8_t buf[256];
    float f[4] = {1, 2, 3, 4};
    const char *npy = write_plain(
        "oom.npy", buf,
        make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", f, 16));
    const char *csv = write_plain("oom.csv", "l,a\n1,2\n3,4\n", 12);
    test_alloc t = {0, 0, -1};
    ae_allocator a = test_allocator(&t);
    for (int c = 0; c < 4; c++) {
        long needed = -1;
        for (long k = -1; k < needed || k < 0; k++) {
            t.fail_at = -1;
            ae_dataset *ds = preloaded(&a);
            long live0 = t.live;
            snap before = take(ds);
            t.count = 0;
            t.fail_at = k;
            ae_status st = c == 0   ? ae_dataset_load_npy(ds, npy)
                           : c == 1 ? ae_dataset_load_csv(ds, csv, AE_CSV_HEADER | AE_CSV_LABEL_FIRST)
                           : c == 2 ? ae_dataset_from_memory(ds, f, NULL, 2, 2, 1, 1, AE_DATA_COPY)
                                    : ae_dataset_standardize(ds, NULL, NULL, 1);
            if (k < 0) {
                assert_int_equal(st, AE_OK);
                needed = t.count;
                assert_true(needed >= 1);
            } else {
                assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
                assert_int_equal(t.live, live0);
                assert_same(ds, &before);
            }
            ae_dataset_destroy(ds);
            assert_int_equal(t.live, 0);
        }
    }
    t.fail_at = -1;
}

/* ---- standardisation, shuffle, split ---- */

static void test_standardize(void **state) {
    (void)state;
    /* 4 samples of 2 channels x 1 x 2. */
    float x[16] = {1, 2, 10, 20, 3, 2, 30, 40, 5, 2, 50, 60, 7, 2, 70, 80};
    ae_dataset *ds = NULL, *other = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_standardize(ds, NULL, NULL, 1), AE_ERR_STATE);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, 4, 2, 1, 2, AE_DATA_BORROW), AE_OK);
    snap before = take(ds);
    float m1[4] = {0}, s1[4] = {1, 1, 1, 0};
    assert_int_equal(ae_dataset_standardize(ds, m1, NULL, 4), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_standardize(ds, NULL, NULL, 3), AE_ERR_SHAPE);
    assert_int_equal(ae_dataset_standardize(ds, m1, s1, 4), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_dataset_last_error(ds), "std > 0"));
    assert_int_equal(ae_dataset_standardization(ds, m1, s1, 4), AE_ERR_STATE);
    assert_same(ds, &before);

    /* Per feature: population mean and std; a constant feature gets std 1. */
    assert_int_equal(ae_dataset_standardize(ds, NULL, NULL, 4), AE_OK);
    assert_int_equal(ae_dataset_standardization_count(ds), 4);
    float mean[4], sd[4];
    assert_int_equal(ae_dataset_standardization(ds, mean, sd, 3), AE_ERR_SHAPE);
    assert_int_equal(ae_dataset_standardization(ds, mean, sd, 4), AE_OK);
    float wm[4] = {4, 2, 40, 50}, ws[4] = {sqrtf(5.0f), 1, sqrtf(500.0f), sqrtf(500.0f)};
    assert_close_arrays(mean, wm, 4, 1e-6, 0, "mean");
    assert_close_arrays(sd, ws, 4, 1e-6, 0, "std");
    const float *y = ae_dataset_data(ds);
    for (int j = 0; j < 4; j++) {
        double s = 0, q = 0;
        for (int i = 0; i < 4; i++) {
            s += y[i * 4 + j];
            q += (double)y[i * 4 + j] * y[i * 4 + j];
        }
        assert_true(fabs(s) < 1e-5);
        assert_true(fabs(q / 4 - (j == 1 ? 0.0 : 1.0)) < 1e-5);
    }
    assert_true(x[0] == 1.0f); /* borrowed data untouched */
    assert_int_equal(ae_dataset_standardize(ds, NULL, NULL, 4), AE_ERR_STATE);

    /* The same statistics applied to another set. */
    assert_int_equal(ae_dataset_create(&other, NULL), AE_OK);
    assert_int_equal(ae_dataset_from_memory(other, x, NULL, 4, 2, 1, 2, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_standardize(other, mean, sd, 4), AE_OK);
    assert_memory_equal(ae_dataset_data(other), ae_dataset_data(ds), sizeof x);

    /* Per channel (as torchvision's Normalize) and one value for all. */
    assert_int_equal(ae_dataset_from_memory(other, x, NULL, 4, 2, 1, 2, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_standardization_count(other), 0);
    float cm[2] = {3, 45}, cs[2] = {2, 10};
    assert_int_equal(ae_dataset_standardize(other, cm, cs, 2), AE_OK);
    assert_true(ae_dataset_data(other)[1] == -0.5f && ae_dataset_data(other)[3] == -2.5f);
    assert_int_equal(ae_dataset_from_memory(other, x, NULL, 4, 2, 1, 2, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_standardize(other, NULL, NULL, 1), AE_OK);
    float gm, gs;
    assert_int_equal(ae_dataset_standardization(other, &gm, &gs, 1), AE_OK);
    assert_true(fabsf(gm - 24.0f) < 1e-5f);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(other);
}

static void test_shuffle_split(void **state) {
    (void)state;
    enum { N = 50, D = 3 };
    float x[N * D];
    int32_t lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = i;
        for (int j = 0; j < D; j++) x[i * D + j] = (float)(i * 10 + j);
    }
    ae_dataset *ds = NULL, *a = NULL, *b = NULL, *tr = NULL, *va = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&a, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&b, NULL), AE_OK);
    assert_int_equal(ae_dataset_from_memory(a, x, lab, N, D, 1, 1, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_from_memory(b, x, lab, N, D, 1, 1, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_shuffle(a, 7), AE_OK);
    assert_int_equal(ae_dataset_shuffle(b, 7), AE_OK);
    assert_memory_equal(ae_dataset_data(a), ae_dataset_data(b), sizeof x);
    assert_int_equal(ae_dataset_shuffle(b, 8), AE_OK);
    assert_memory_not_equal(ae_dataset_data(a), ae_dataset_data(b), sizeof x);
    int seen[N] = {0}, moved = 0;
    for (int i = 0; i < N; i++) {
        int32_t l = ae_dataset_labels(a)[i];
        assert_true(ae_dataset_data(a)[i * D] == (float)(l * 10)); /* labels follow samples */
        seen[l]++;
        moved += l != i;
    }
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    assert_true(moved > N / 2);

    assert_int_equal(ae_dataset_from_memory(ds, x, lab, N, D, 1, 1, AE_DATA_BORROW), AE_OK);
    assert_int_equal(ae_dataset_standardize(ds, NULL, NULL, 1), AE_OK);
    assert_int_equal(ae_dataset_split(ds, 0.0, 1, &tr, &va), AE_ERR_INVALID_ARG);
    assert_null(tr);
    assert_int_equal(ae_dataset_split(ds, 1.0, 1, &tr, &va), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_split(ds, 0.5, 1, &tr, &tr), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_split(ds, 0.999, 1, &tr, &va), AE_ERR_STATE);
    assert_int_equal(ae_dataset_split(ds, 0.21, 1, &tr, &va), AE_OK);
    assert_int_equal(ae_dataset_count(va), 11); /* ceil(0.21 * 50) */
    assert_int_equal(ae_dataset_count(tr), 39);
    assert_int_equal(ae_dataset_standardization_count(va), 1);
    memset(seen, 0, sizeof seen);
    ae_dataset *parts[2] = {tr, va};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < ae_dataset_count(parts[p]); i++) {
            int32_t l = ae_dataset_labels(parts[p])[i];
            assert_true(ae_dataset_data(parts[p])[i * D] == ae_dataset_data(ds)[l * D]);
            seen[l]++;
        }
    for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
    /* Deterministic per seed. */
    ae_dataset *tr2 = NULL, *va2 = NULL;
    assert_int_equal(ae_dataset_split(ds, 0.21, 1, &tr2, &va2), AE_OK);
    assert_memory_equal(ae_dataset_labels(va), ae_dataset_labels(va2), 11 * sizeof(int32_t));
    ae_dataset_destroy(tr2);
    ae_dataset_destroy(va2);
    assert_int_equal(ae_dataset_split(ds, 0.21, 2, &tr2, &va2), AE_OK);
    assert_memory_not_equal(ae_dataset_labels(va), ae_dataset_labels(va2), 11 * sizeof(int32_t));
    ae_dataset_destroy(tr2);
    ae_dataset_destroy(va2);
    /* Failing allocations: nothing returned, nothing leaked. */
    test_alloc t = {0, 0, -1};
    ae_allocator al = test_allocator(&t);
    ae_dataset *src = NULL;
    assert_int_equal(ae_dataset_create(&src, &al), AE_OK);
    assert_int_equal(ae_dataset_from_memory(src, x, lab, N, D, 1, 1, AE_DATA_COPY), AE_OK);
    long live0 = t.live;
    t.count = 0;
    assert_int_equal(ae_dataset_split(src, 0.5, 3, &tr2, &va2), AE_OK);
    long needed = t.count;
    ae_dataset_destroy(tr2);
    ae_dataset_destroy(va2);
    for (long k = 0; k < needed; k++) {
        t.count = 0;
        t.fail_at = k;
        assert_int_equal(ae_dataset_split(src, 0.5, 3, &tr2, &va2), AE_ERR_OUT_OF_MEMORY);
        assert_null(tr2);
        assert_null(va2);
        assert_int_equal(t.live, live0);
        t.count = 0;
        assert_int_equal(ae_dataset_shuffle(src, 3), k < 3 ? AE_ERR_OUT_OF_MEMORY : AE_OK);
        t.fail_at = -1;
    }
    ae_dataset_destroy(src);
    assert_int_equal(t.live, 0);
    ae_dataset_destroy(tr);
    ae_dataset_destroy(va);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(a);
    ae_dataset_destroy(b);
}

/* ---- corruption ---- */

#define NOISE_N 4000
#define NOISE_D 50

static float *noise_input(void) {
    float *x = malloc(NOISE_N * NOISE_D * sizeof *x);
    assert_non_null(x);
    test_fill(x, NOISE_N * NOISE_D, 11, 0.1f, 0.9f);
    return x;
}

static void test_corrupt_statistics(void **state) {
    (void)state;
    size_t total = NOISE_N * NOISE_D;
    float *x = noise_input(), *copy = malloc(total * sizeof *copy), *y = malloc(total * sizeof *y);
    assert_non_null(copy);
    assert_non_null(y);
    memcpy(copy, x, total * sizeof *x);
    ae_noise nz;

    /* Gaussian: y - x has the given mean and standard deviation (level 0.3:
     * variance 0.09, as the seeds' x + 0.3 * randn). */
    ae_noise_init(&nz, AE_NOISE_GAUSSIAN, 0.3);
    nz.mean = 0.05;
    assert_int_equal(ae_corrupt(&nz, x, y, NOISE_N, NOISE_D, 1), AE_OK);
    double s = 0, q = 0;
    for (size_t i = 0; i < total; i++) {
        double d = (double)y[i] - x[i];
        s += d;
        q += d * d;
    }
    double mean = s / total, var = q / total - mean * mean;
    assert_true(fabs(mean - 0.05) < 0.005);
    assert_true(fabs(var - 0.09) < 0.003);
    /* With clipping to [0, 1]: every value in range, some at each bound. */
    nz.mean = 0.0;
    nz.clip = 1;
    assert_int_equal(ae_corrupt(&nz, x, y, NOISE_N, NOISE_D, 2), AE_OK);
    size_t at0 = 0, at1 = 0;
    for (size_t i = 0; i < total; i++) {
        assert_true(y[i] >= 0.0f && y[i] <= 1.0f);
        at0 += y[i] == 0.0f;
        at1 += y[i] == 1.0f;
    }
    assert_true(at0 > total / 20 && at1 > total / 20);

    /* Masking: exactly floor(D * rate) entries per sample set to the value;
     * every position about equally often. */
    ae_noise_init(&nz, AE_NOISE_MASK, 0.3);
    nz.value = -2.0;
    assert_int_equal(ae_corrupt(&nz, x, y, NOISE_N, NOISE_D, 3), AE_OK);
    size_t pos[NOISE_D] = {0};
    for (size_t r = 0; r < NOISE_N; r++) {
        size_t k = 0;
        for (size_t j = 0; j < NOISE_D; j++) {
            float v = y[r * NOISE_D + j];
            if (v == -2.0f) {
                k++;
                pos[j]++;
            } else {
                assert_true(v == x[r * NOISE_D + j]);
            }
        }
        assert_int_equal(k, 15);
    }
    for (size_t j = 0; j < NOISE_D; j++) assert_true(fabs(pos[j] / (double)NOISE_N - 0.3) < 0.04);
    ae_noise_init(&nz, AE_NOISE_MASK, 1.0);
    assert_int_equal(ae_corrupt(&nz, x, y, 2, NOISE_D, 3), AE_OK);
    for (size_t i = 0; i < 2 * NOISE_D; i++) assert_true(y[i] == 0.0f);

    /* Bernoulli: zero with probability p, others unchanged. */
    ae_noise_init(&nz, AE_NOISE_BERNOULLI, 0.25);
    assert_int_equal(ae_corrupt(&nz, x, y, NOISE_N, NOISE_D, 4), AE_OK);
    size_t zeros = 0;
    for (size_t i = 0; i < total; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            assert_true(y[i] == x[i]);
    }
    assert_true(fabs(zeros / (double)total - 0.25) < 0.005);

    /* Dropout: survivors scaled by 1 / (1 - p); the mean is kept. */
    ae_noise_init(&nz, AE_NOISE_DROPOUT, 0.4);
    assert_int_equal(ae_corrupt(&nz, x, y, NOISE_N, NOISE_D, 5), AE_OK);
    zeros = 0;
    double sx = 0, sy = 0;
    for (size_t i = 0; i < total; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else
            assert_true(fabsf(y[i] - x[i] / 0.6f) <= 1e-6f * y[i]);
        sx += x[i];
        sy += y[i];
    }
    assert_true(fabs(zeros / (double)total - 0.4) < 0.005);
    assert_true(fabs(sy / sx - 1.0) < 0.01);

    /* Salt and pepper: p/2 zeros, p/2 ones. */
    ae_noise_init(&nz, AE_NOISE_SALT_PEPPER, 0.2);
    assert_int_equal(ae_corrupt(&nz, x, y, NOISE_N, NOISE_D, 6), AE_OK);
    size_t ones = 0;
    zeros = 0;
    for (size_t i = 0; i < total; i++) {
        if (y[i] == 0.0f)
            zeros++;
        else if (y[i] == 1.0f)
            ones++;
        else
            assert_true(y[i] == x[i]);
    }
    assert_true(fabs(zeros / (double)total - 0.1) < 0.004);
    assert_true(fabs(ones / (double)total - 0.1) < 0.004);

    /* The input was never written. */
    assert_memory_equal(x, copy, total * sizeof *x);
    free(x);
    free(copy);
    free(y);
}

static void test_corrupt_determinism_and_errors(void **state) {
    (void)state;
    enum { N = 6, D = 20 };
    float x[N * D], y1[N * D], y2[N * D], y3[N * D];
    test_fill(x, N * D, 3, 0.0f, 1.0f);
    ae_noise_kind kinds[5] = {AE_NOISE_GAUSSIAN, AE_NOISE_MASK, AE_NOISE_BERNOULLI,
                              AE_NOISE_DROPOUT, AE_NOISE_SALT_PEPPER};
    for (int k = 0; k < 5; k++) {
        ae_noise nz;
        ae_noise_init(&nz, kinds[k], 0.5);
        assert_int_equal(ae_corrupt(&nz, x, y1, N, D, 42), AE_OK);
        assert_int_equal(ae_corrupt(&nz, x, y2, N, D, 42), AE_OK);
        assert_memory_equal(y1, y2, sizeof y1);
        assert_int_equal(ae_corrupt(&nz, x, y2, N, D, 43), AE_OK);
        assert_memory_not_equal(y1, y2, sizeof y1);
        /* A caller-held state: two calls continue one stream, as one call. */
        uint64_t st[4], st2[4];
        ae_rng_state_seed(st, 42);
        memcpy(st2, st, sizeof st);
        assert_int_equal(ae_corrupt_rng(&nz, st, x, y2, 2, D), AE_OK);
        assert_int_equal(ae_corrupt_rng(&nz, st, x + 2 * D, y2 + 2 * D, N - 2, D), AE_OK);
        assert_memory_equal(y1, y2, sizeof y1);
        assert_memory_not_equal(st, st2, sizeof st);
        /* In place gives the same values. */
        memcpy(y3, x, sizeof x);
        assert_int_equal(ae_corrupt(&nz, y3, y3, N, D, 42), AE_OK);
        assert_memory_equal(y1, y3, sizeof y1);
    }
    ae_noise nz;
    ae_noise_init(&nz, AE_NOISE_DROPOUT, 1.0);
    uint64_t st[4], keep[4];
    ae_rng_state_seed(st, 1);
    memcpy(keep, st, sizeof st);
    memset(y1, 0x55, sizeof y1);
    memcpy(y2, y1, sizeof y1);
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_RANGE);
    nz.kind = (ae_noise_kind)9;
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_INVALID_ARG);
    ae_noise_init(&nz, AE_NOISE_BERNOULLI, -0.1);
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_RANGE);
    ae_noise_init(&nz, AE_NOISE_GAUSSIAN, 0.1);
    nz.clip = 1;
    nz.clip_lo = 2;
    nz.clip_hi = 1;
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_RANGE);
    nz.clip_lo = 0;
    nz.mean = NAN;
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_RANGE);
    /* clip is a flag: 0 or 1 (2 was taken for 1) */
    ae_noise_init(&nz, AE_NOISE_GAUSSIAN, 0.1);
    nz.clip = 2;
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_RANGE);
    nz.clip = -1;
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_RANGE);
    /* Non-finite input is refused (it came out as NaN, AE_OK), for every
     * kind, in place too. */
    for (int k = 0; k <= 5; k++) {
        static const float bad[3] = {NAN, INFINITY, -INFINITY};
        for (int b = 0; b < 3; b++) {
            ae_noise_init(&nz, (ae_noise_kind)k, 0.1);
            memcpy(y3, x, sizeof x);
            y3[N * D - 1 - (size_t)b] = bad[b];
            assert_int_equal(ae_corrupt_rng(&nz, st, y3, y1, N, D), AE_ERR_NUMERIC);
            float y4[N * D];
            memcpy(y4, y3, sizeof y4);
            assert_int_equal(ae_corrupt_rng(&nz, st, y3, y3, N, D), AE_ERR_NUMERIC);
            assert_memory_equal(y3, y4, sizeof y4);
        }
    }
    ae_noise_init(&nz, AE_NOISE_GAUSSIAN, 0.1);
    nz.struct_size = 8;
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, N, D), AE_ERR_INVALID_ARG);
    ae_noise_init(&nz, AE_NOISE_GAUSSIAN, 0.1);
    assert_int_equal(ae_corrupt_rng(NULL, st, x, y1, N, D), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_corrupt_rng(&nz, NULL, x, y1, N, D), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_corrupt_rng(&nz, st, NULL, y1, N, D), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, SIZE_MAX / 2, 4), AE_ERR_RANGE);
    memcpy(y3, x, sizeof x);
    assert_int_equal(ae_corrupt_rng(&nz, st, y3, y3 + 1, N - 1, D), AE_ERR_INVALID_ARG);
    assert_memory_equal(y3, x, sizeof x);
    assert_memory_equal(y1, y2, sizeof y1);
    assert_memory_equal(st, keep, sizeof st);
    assert_int_equal(ae_corrupt_rng(&nz, st, x, y1, 0, D), AE_OK);
    ae_noise_init(NULL, AE_NOISE_NONE, 0);
    ae_rng_state_seed(NULL, 0);
    /* AE_NOISE_NONE copies. */
    ae_noise_init(&nz, AE_NOISE_NONE, 0);
    assert_int_equal(ae_corrupt(&nz, x, y1, N, D, 1), AE_OK);
    assert_memory_equal(y1, x, sizeof x);
}

/* ---- Fashion-MNIST, when installed (Debian package dataset-fashion-mnist) ---- */

#define FMNIST "/usr/share/datasets/fashion-mnist/"

static void check_fashion(const char *images, const char *labels, size_t count) {
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0) skip();
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ae_status st = ae_dataset_load_idx(ds, images, labels);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (st != AE_OK) print_error("%s\n", ae_dataset_last_error(ds));
    assert_int_equal(st, AE_OK);
    print_message("loaded %s in %.3f s\n", images,
                  (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    assert_int_equal(ae_dataset_count(ds), count);
    assert_int_equal(ae_dataset_dim(ds), 784);
    size_t c, h, w;
    assert_int_equal(ae_dataset_shape(ds, &c, &h, &w), AE_OK);
    assert_int_equal(c, 1);
    assert_int_equal(h, 28);
    assert_int_equal(w, 28);
    const int32_t *l = ae_dataset_labels(ds);
    assert_non_null(l);
    size_t per_class[10] = {0};
    for (size_t i = 0; i < count; i++) {
        assert_in_range(l[i], 0, 9);
        per_class[l[i]]++;
    }
    for (int k = 0; k < 10; k++) assert_int_equal(per_class[k], count / 10);
    const float *x = ae_dataset_data(ds);
    float lo = x[0], hi = x[0];
    for (size_t i = 0; i < count * 784; i++) {
        assert_true(x[i] == floorf(x[i]));
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
    }
    assert_true(lo == 0.0f);
    assert_true(hi == 255.0f);
    ae_dataset_destroy(ds);
}

static void test_fashion_mnist_t10k(void **state) {
    (void)state;
    check_fashion(FMNIST "t10k-images-idx3-ubyte.gz", FMNIST "t10k-labels-idx1-ubyte.gz", 10000);
}

static void test_fashion_mnist_train(void **state) {
    (void)state;
    check_fashion(FMNIST "train-images-idx3-ubyte.gz", FMNIST "train-labels-idx1-ubyte.gz", 60000);
}

/* Every loader refuses a FIFO and a directory at once, by path and kind,
 * and the dataset is unchanged. Opening a FIFO used to wait for a writer:
 * the alarm fails the test instead of letting it hang. */
static void test_loaders_refuse_special_files(void **state) {
    (void)state;
    uint8_t buf[64];
    const char *images = write_plain("ok-images.idx", buf, small_images(buf));
    const char *fifo = tpath("in.fifo"), *dir = tpath("in.dir");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(dir, 0700), 0);
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, images, NULL), AE_OK);
    alarm(20);
    for (int k = 0; k < 2; k++) {
        const char *p = k ? dir : fifo, *kind = k ? "is a directory" : "is a FIFO";
        ae_status st[5] = {
            ae_dataset_load_idx(ds, p, NULL),
            ae_dataset_load_idx(ds, images, p),
            ae_dataset_load_npy(ds, p),
            ae_dataset_load_csv(ds, p, 0),
            ae_dataset_open_npy(ds, p),
        };
        for (int i = 0; i < 5; i++) {
            assert_int_equal(st[i], AE_ERR_IO);
        }
        /* The message of the last call names the path and the kind. */
        assert_non_null(strstr(ae_dataset_last_error(ds), p));
        assert_non_null(strstr(ae_dataset_last_error(ds), kind));
        assert_int_equal(ae_dataset_load_csv(ds, p, 0), AE_ERR_IO);
        assert_non_null(strstr(ae_dataset_last_error(ds), kind));
        assert_int_equal(ae_dataset_load_idx(ds, p, NULL), AE_ERR_IO);
        assert_non_null(strstr(ae_dataset_last_error(ds), kind));
        assert_int_equal(ae_dataset_count(ds), 3);
    }
    alarm(0);
    ae_dataset_destroy(ds);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_null_args),
        cmocka_unit_test(test_load_plain_images),
        cmocka_unit_test(test_load_gz_with_labels),
        cmocka_unit_test(test_load_vectors),
        cmocka_unit_test(test_gz_multi_member),
        cmocka_unit_test(test_gz_growing_output),
        cmocka_unit_test(test_malformed_headers),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_huge_claim_small_file),
        cmocka_unit_test(test_truncated_at_every_offset),
        cmocka_unit_test(test_failing_allocator),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_gather),
        cmocka_unit_test(test_batches),
        cmocka_unit_test(test_from_memory),
        cmocka_unit_test(test_npy_read),
        cmocka_unit_test(test_npy_write),
        cmocka_unit_test(test_loaders_refuse_special_files),
        cmocka_unit_test(test_npy_malformed),
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_readers_failing_allocator),
        cmocka_unit_test(test_standardize),
        cmocka_unit_test(test_shuffle_split),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_corrupt_statistics),
        cmocka_unit_test(test_corrupt_determinism_and_errors),
        cmocka_unit_test(test_fashion_mnist_t10k),
        cmocka_unit_test(test_fashion_mnist_train),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
