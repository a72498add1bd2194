/* Tests of src/data: the IDX reader (plain and gzipped, every malformed
 * header and body, truncation at every byte, failing allocations) and the
 * dataset handle (accessors, scale, gather). Files are written into a
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

#define MAX_FILES 64
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
        cmocka_unit_test(test_fashion_mnist_t10k),
        cmocka_unit_test(test_fashion_mnist_train),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
