/* Tests of the image and file-backed data sources (src/data/image.c,
 * folder.c, source.c): PNG and JPEG decoding of every colour type (the
 * images are written here with libpng and libjpeg), the channel
 * conversions against PIL, the resize against torchvision (fixture from
 * tests/fixtures/gen_image_resize.py), image folders (classes, flat, bad
 * files refused or skipped, the cache), file-backed .npy rows in each
 * dtype (values, batches, shuffle, split, subsets, standardisation, ae_fit
 * equal to the in-memory run) and a file larger than an address-space
 * limit. Files go into a fresh directory under /tmp. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "test_util.h"

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/data.h"
#include "fixture.h"

#ifdef AE_HAVE_PNG
#include <png.h>
#endif
#ifdef AE_HAVE_JPEG
#include <jpeglib.h>
#endif

static char g_dir[64];

static int group_setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/libae-image-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static int group_teardown(void **state) {
    (void)state;
    return nftw(g_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *tpath(const char *name) {
    static char p[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

static void write_bytes(const char *path, const void *buf, size_t len) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len) assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* PIL's convert("L"). */
static int luma_of(const uint8_t *p) {
    return (int)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u + 0x8000u) >> 16);
}

/* Pixel k of a test image, the formula of gen_image_resize.py. */
static uint8_t px(size_t k) { return (uint8_t)((k * 37 + 11) % 256); }

/* ---- encoders for the test images ---- */

#ifdef AE_HAVE_PNG
/* Writes a PNG of colour type `type` and bit depth `depth` from raw rows
 * (already in the PNG's sample layout, big-endian for 16 bits). */
static void write_png(const char *path, size_t h, size_t w, int type, int depth,
                      const uint8_t *rows, size_t rowbytes, const png_color *pal, int npal,
                      const uint8_t *trns, int ntrns) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, type, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    for (size_t y = 0; y < h; y++) png_write_row(png, rows + y * rowbytes);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    assert_int_equal(fclose(f), 0);
}

/* An 8-bit RGB PNG with pixels px(k), H x W x 3. */
static void write_rgb_png(const char *path, size_t h, size_t w) {
    uint8_t *rows = malloc(h * w * 3);
    for (size_t k = 0; k < h * w * 3; k++) rows[k] = px(k);
    write_png(path, h, w, PNG_COLOR_TYPE_RGB, 8, rows, w * 3, NULL, 0, NULL, 0);
    free(rows);
}
#endif

#ifdef AE_HAVE_JPEG
static void write_jpeg(const char *path, size_t h, size_t w, int comps, const uint8_t *pix,
                       int quality) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr je;
    ci.err = jpeg_std_error(&je);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = comps;
    ci.in_color_space = comps == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    /* No chroma subsampling: the decoded pixels stay within a few levels. */
    for (int i = 0; i < ci.num_components; i++)
        ci.comp_info[i].h_samp_factor = ci.comp_info[i].v_samp_factor = 1;
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(pix + (size_t)ci.next_scanline * w * (size_t)comps);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    assert_int_equal(fclose(f), 0);
}
#endif

#if defined(AE_HAVE_PNG) || defined(AE_HAVE_JPEG)
static uint8_t *slurp(const char *path, size_t *len) {
    ae_allocator a;
    ae_allocator_init(&a, NULL);
    ae_errbuf e;
    uint8_t *buf;
    assert_int_equal(ae_read_whole_file(&a, &e, path, &buf, len), AE_OK);
    return buf;
}
#endif

/* A build without a decoder says so, by file. */
static void test_without_decoder(void **state) {
    (void)state;
#if defined(AE_HAVE_PNG) && defined(AE_HAVE_JPEG)
    skip(); /* both decoders are built in */
#else
    mkdir(tpath("nodec"), 0755);
#ifndef AE_HAVE_PNG
    write_bytes(tpath("nodec/a.png"), "\x89PNG\r\n\x1a\n0000", 12);
    const char *want = "without libpng";
#else
    write_bytes(tpath("nodec/a.jpg"), "\xff\xd8\xff\xe0", 4);
    const char *want = "without libjpeg";
#endif
    ae_dataset *ds;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_images(ds, tpath("nodec"), NULL), AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(ae_dataset_last_error(ds), want));
    assert_non_null(strstr(ae_dataset_last_error(ds), "nodec/a."));
    ae_dataset_destroy(ds);
#endif
}

/* ---- decoding ---- */

static void test_png_colour_types(void **state) {
    (void)state;
#ifndef AE_HAVE_PNG
    skip();
#else
    ae_allocator a;
    ae_allocator_init(&a, NULL);
    ae_errbuf e;
    const size_t h = 3, w = 5;
    uint8_t rows[3 * 5 * 8];
    uint8_t *pix;
    size_t ph, pw, len;
    /* RGB, read as RGB, gray (PIL's luma), RGBA (opaque). */
    write_rgb_png(tpath("rgb.png"), h, w);
    uint8_t *buf = slurp(tpath("rgb.png"), &len);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 3, &pix, &ph, &pw), AE_OK);
    assert_int_equal(ph, h);
    assert_int_equal(pw, w);
    for (size_t k = 0; k < h * w * 3; k++) assert_int_equal(pix[k], px(k));
    ae_free(&a, pix);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 1, &pix, &ph, &pw), AE_OK);
    for (size_t i = 0; i < h * w; i++) {
        uint32_t r = px(3 * i), g = px(3 * i + 1), b = px(3 * i + 2);
        assert_int_equal(pix[i], (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
    }
    ae_free(&a, pix);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 4, &pix, &ph, &pw), AE_OK);
    for (size_t i = 0; i < h * w; i++) {
        assert_int_equal(pix[4 * i], px(3 * i));
        assert_int_equal(pix[4 * i + 3], 255);
    }
    ae_free(&a, pix);
    ae_free(&a, buf);

    /* Gray 8-bit to RGB: replicated. */
    for (size_t k = 0; k < h * w; k++) rows[k] = px(k);
    write_png(tpath("g.png"), h, w, PNG_COLOR_TYPE_GRAY, 8, rows, w, NULL, 0, NULL, 0);
    buf = slurp(tpath("g.png"), &len);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 3, &pix, &ph, &pw), AE_OK);
    for (size_t i = 0; i < h * w; i++)
        for (int c = 0; c < 3; c++) assert_int_equal(pix[3 * i + c], px(i));
    ae_free(&a, pix);
    ae_free(&a, buf);

    /* RGBA to RGB: alpha dropped, not composited (PIL's convert("RGB")). */
    for (size_t k = 0; k < h * w * 4; k++) rows[k] = px(k);
    write_png(tpath("rgba.png"), h, w, PNG_COLOR_TYPE_RGBA, 8, rows, w * 4, NULL, 0, NULL, 0);
    buf = slurp(tpath("rgba.png"), &len);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 3, &pix, &ph, &pw), AE_OK);
    for (size_t i = 0; i < h * w; i++)
        for (int c = 0; c < 3; c++) assert_int_equal(pix[3 * i + c], px(4 * i + c));
    ae_free(&a, pix);
    ae_free(&a, buf);

    /* Palette (4 bits) with transparency: expanded; alpha from tRNS. */
    png_color pal[16];
    uint8_t trns[16];
    for (int i = 0; i < 16; i++) {
        pal[i].red = px((size_t)i * 3), pal[i].green = px((size_t)i * 3 + 1), pal[i].blue = px((size_t)i * 3 + 2);
        trns[i] = (uint8_t)(i * 16);
    }
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < 3; x++) /* 5 pixels of 4 bits: 3 bytes a row */
            rows[y * 3 + x] = (uint8_t)(((y * 5 + 2 * x) % 16) << 4 | ((y * 5 + 2 * x + 1) % 16));
    write_png(tpath("pal.png"), h, w, PNG_COLOR_TYPE_PALETTE, 4, rows, 3, pal, 16, trns, 16);
    buf = slurp(tpath("pal.png"), &len);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 4, &pix, &ph, &pw), AE_OK);
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            size_t i = (y * 5 + x) % 16;
            const uint8_t *p = pix + (y * w + x) * 4;
            assert_int_equal(p[0], pal[i].red);
            assert_int_equal(p[2], pal[i].blue);
            assert_int_equal(p[3], trns[i]);
        }
    ae_free(&a, pix);
    ae_free(&a, buf);

    /* 16-bit RGB: the high byte of each sample (Pillow's reading). */
    for (size_t k = 0; k < h * w * 3; k++) {
        rows[2 * k] = px(k);
        rows[2 * k + 1] = (uint8_t)(255 - px(k));
    }
    write_png(tpath("rgb16.png"), h, w, PNG_COLOR_TYPE_RGB, 16, rows, w * 6, NULL, 0, NULL, 0);
    buf = slurp(tpath("rgb16.png"), &len);
    assert_int_equal(ae_png_decode(&a, &e, "x", buf, len, 3, &pix, &ph, &pw), AE_OK);
    for (size_t k = 0; k < h * w * 3; k++) assert_int_equal(pix[k], px(k));
    ae_free(&a, pix);

    /* Truncated at every length: refused with the name, never a crash. */
    for (size_t cut = 0; cut < len; cut++) {
        e.msg[0] = '\0';
        ae_status st = ae_png_decode(&a, &e, "cut.png", buf, cut, 3, &pix, &ph, &pw);
        assert_int_equal(st, AE_ERR_FORMAT);
        assert_null(pix);
        assert_memory_equal(e.msg, "cut.png: ", 9);
    }
    ae_free(&a, buf);
#endif
}

static void test_jpeg(void **state) {
    (void)state;
#ifndef AE_HAVE_JPEG
    skip();
#else
    ae_allocator a;
    ae_allocator_init(&a, NULL);
    ae_errbuf e;
    const size_t h = 16, w = 24;
    uint8_t src[16 * 24 * 3];
    /* A smooth RGB picture: quality 100 keeps it within a few levels. */
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            src[(y * w + x) * 3] = (uint8_t)(x * 10);
            src[(y * w + x) * 3 + 1] = (uint8_t)(y * 15);
            src[(y * w + x) * 3 + 2] = 128;
        }
    write_jpeg(tpath("rgb.jpg"), h, w, 3, src, 100);
    size_t len, ph, pw;
    uint8_t *buf = slurp(tpath("rgb.jpg"), &len), *pix;
    assert_int_equal(ae_image_decode(&a, &e, "x", buf, len, 3, &pix, &ph, &pw), AE_OK);
    assert_int_equal(ph, h);
    assert_int_equal(pw, w);
    for (size_t k = 0; k < h * w * 3; k++) assert_true(abs((int)pix[k] - (int)src[k]) <= 4);
    ae_free(&a, pix);
    assert_int_equal(ae_jpeg_decode(&a, &e, "x", buf, len, 1, &pix, &ph, &pw), AE_OK);
    for (size_t i = 0; i < h * w; i++) assert_true(abs((int)pix[i] - (int)luma_of(src + 3 * i)) <= 4);
    ae_free(&a, pix);
    /* Truncation is an error (a premature end is not filled in gray). */
    for (size_t cut = 0; cut + 2 < len; cut += 7) {
        e.msg[0] = '\0';
        assert_int_equal(ae_jpeg_decode(&a, &e, "cut.jpg", buf, cut, 3, &pix, &ph, &pw),
                         AE_ERR_FORMAT);
        assert_null(pix);
        assert_memory_equal(e.msg, "cut.jpg: ", 9);
    }
    ae_free(&a, buf);
    /* Gray JPEG to RGB: replicated. */
    uint8_t g[16 * 24];
    for (size_t i = 0; i < h * w; i++) g[i] = (uint8_t)(i % 24 * 10);
    write_jpeg(tpath("g.jpg"), h, w, 1, g, 100);
    buf = slurp(tpath("g.jpg"), &len);
    assert_int_equal(ae_jpeg_decode(&a, &e, "x", buf, len, 3, &pix, &ph, &pw), AE_OK);
    for (size_t i = 0; i < h * w; i++) {
        assert_int_equal(pix[3 * i], pix[3 * i + 2]);
        assert_true(abs((int)pix[3 * i] - (int)g[i]) <= 3);
    }
    ae_free(&a, pix);
    ae_free(&a, buf);
    /* Not an image at all. */
    assert_int_equal(ae_image_decode(&a, &e, "t.txt", "hello", 5, 3, &pix, &ph, &pw), AE_ERR_FORMAT);
    assert_non_null(strstr(e.msg, "neither a PNG nor a JPEG"));
#endif
}

/* ---- resize against torchvision ---- */

static void test_resize_matches_torchvision(void **state) {
    (void)state;
    fixture fx;
    assert_int_equal(fixture_load(&fx, "image_resize"), 0);
    size_t ncases = (fx.n - 1) / 2;
    assert_int_equal(ncases, 7);
    double worst = 0.0;
    for (size_t i = 0; i < ncases; i++) {
        const float *m = fx.array[2 * i], *want = fx.array[2 * i + 1];
        size_t sh = (size_t)m[0], sw = (size_t)m[1], c = (size_t)m[2], dh = (size_t)m[3],
               dw = (size_t)m[4];
        int mode = (int)m[5];
        uint8_t *src = malloc(sh * sw * c);
        float *got = malloc(c * dh * dw * sizeof *got);
        for (size_t k = 0; k < sh * sw * c; k++) src[k] = px(k);
        size_t rh = dh, rw = dw, oy = 0, ox = 0;
        if (mode == 1) {
            /* The library's plan for AE_RESIZE_SHORTER_CROP, through the loader below;
               here the sizes torchvision uses, written out. */
            size_t s = dh > dw ? dh : dw;
            if (sh <= sw)
                rh = s, rw = (size_t)((double)s * (double)sw / (double)sh);
            else
                rw = s, rh = (size_t)((double)s * (double)sh / (double)sw);
            size_t d = rh - dh;
            oy = d / 2 + ((d & 1) && ((d / 2) & 1));
            d = rw - dw;
            ox = d / 2 + ((d & 1) && ((d / 2) & 1));
        }
        ae_image_resize(src, sh, sw, c, rh, rw, oy, ox, got, dh, dw);
        assert_int_equal(fx.count[2 * i + 1], c * dh * dw);
        for (size_t k = 0; k < c * dh * dw; k++) {
            double d = fabs((double)got[k] - (double)want[k]);
            if (d > worst) worst = d;
        }
        free(src);
        free(got);
    }
    print_message("resize vs torchvision: max |diff| %.3g\n", worst);
    assert_true(worst <= 2e-6);
    /* PIL's convert("L") of 256 RGB pixels. */
    const float *gray = fx.array[fx.n - 1];
    for (size_t k = 0; k < 256; k++) {
        uint8_t rgb[3] = {(uint8_t)((k * 37 + 11) % 256), (uint8_t)((k * 91 + 5) % 256),
                          (uint8_t)((k * 13 + 200) % 256)};
        assert_int_equal(luma_of(rgb), (int)gray[k]);
    }
    fixture_free(&fx);
}

/* ---- image folders ---- */

#if defined(AE_HAVE_PNG) && defined(AE_HAVE_JPEG)
static void make_folder(void) {
    mkdir(tpath("set"), 0755);
    mkdir(tpath("set/b_dog"), 0755);
    mkdir(tpath("set/a_cat"), 0755);
    write_rgb_png(tpath("set/a_cat/2.png"), 10, 15);
    write_rgb_png(tpath("set/a_cat/1.PNG"), 6, 6);
    uint8_t j[12 * 9 * 3];
    for (size_t k = 0; k < sizeof j; k++) j[k] = (uint8_t)(k % 200);
    write_jpeg(tpath("set/b_dog/x.jpg"), 12, 9, 3, j, 95);
    write_bytes(tpath("set/b_dog/notes.txt"), "ignored", 7);
    write_bytes(tpath("set/stray.png"), "ignored too", 11);
}
#endif

static void test_image_folder(void **state) {
    (void)state;
#if !defined(AE_HAVE_PNG) || !defined(AE_HAVE_JPEG)
    skip();
#else
    make_folder();
    ae_dataset *ds;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    ae_image_options o;
    ae_image_options_init(&o);
    o.height = 4;
    o.width = 6;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 3);
    assert_int_equal(ae_dataset_dim(ds), 3 * 4 * 6);
    assert_int_equal(ae_dataset_class_count(ds), 2);
    assert_string_equal(ae_dataset_class_name(ds, 0), "a_cat");
    assert_string_equal(ae_dataset_class_name(ds, 1), "b_dog");
    assert_null(ae_dataset_class_name(ds, 2));
    const int32_t *lab = ae_dataset_labels(ds);
    assert_int_equal(lab[0], 0); /* 1.PNG, then 2.png: byte order */
    assert_int_equal(lab[1], 0);
    assert_int_equal(lab[2], 1);
    /* Sample 1 is 2.png (10 x 15) stretched to 4 x 6, values / 255. */
    uint8_t *src = malloc(10 * 15 * 3);
    for (size_t k = 0; k < 450; k++) src[k] = px(k);
    float want[72];
    ae_image_resize(src, 10, 15, 3, 4, 6, 0, 0, want, 4, 6);
    assert_memory_equal(ae_dataset_data(ds) + 72, want, sizeof want);
    const float *x = ae_dataset_data(ds);
    for (size_t i = 0; i < 3 * 72; i++) assert_true(x[i] >= 0.0f && x[i] <= 1.0f);

    /* Shorter side + centre crop, gray, normalised. */
    o.resize = AE_RESIZE_SHORTER_CROP;
    o.channels = 1;
    o.height = o.width = 4;
    float mean = 0.5f, sd = 0.25f;
    o.mean = &mean;
    o.std = &sd;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_OK);
    assert_int_equal(ae_dataset_dim(ds), 16);
    assert_int_equal(ae_dataset_standardization_count(ds), 1);
    float m2, s2;
    assert_int_equal(ae_dataset_standardization(ds, &m2, &s2, 1), AE_OK);
    assert_true(m2 == 0.5f && s2 == 0.25f);

    /* A corrupt file: refused, by path; or skipped and counted. */
    write_bytes(tpath("set/b_dog/bad.jpg"), "\xff\xd8\xff\xe0 not really", 15);
    ae_image_options_init(&o);
    o.height = o.width = 8;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_FORMAT);
    assert_non_null(strstr(ae_dataset_last_error(ds), "bad.jpg"));
    assert_int_equal(ae_dataset_count(ds), 3); /* unchanged */
    assert_int_equal(ae_dataset_dim(ds), 16);
    o.skip_bad = 1;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 3);
    assert_int_equal(ae_dataset_skipped(ds), 1);
    remove(tpath("set/b_dog/bad.jpg"));
    /* A .bmp is an image torchvision reads and this loader does not. */
    write_bytes(tpath("set/b_dog/y.bmp"), "BM", 2);
    o.skip_bad = 0;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(ae_dataset_last_error(ds), "y.bmp"));
    remove(tpath("set/b_dog/y.bmp"));

    /* No resize: sizes must agree. */
    o.resize = AE_RESIZE_NONE;
    o.height = o.width = 0;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_FORMAT);
    assert_non_null(strstr(ae_dataset_last_error(ds), "no resize"));

    /* A flat folder: no labels. */
    mkdir(tpath("flat"), 0755);
    write_rgb_png(tpath("flat/a.png"), 5, 5);
    write_rgb_png(tpath("flat/b.png"), 5, 5);
    assert_int_equal(ae_dataset_load_images(ds, tpath("flat"), &o), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 2);
    assert_int_equal(ae_dataset_dim(ds), 75);
    assert_null(ae_dataset_labels(ds));
    assert_int_equal(ae_dataset_class_count(ds), 0);
    for (size_t k = 0; k < 75; k++) /* planar: channel k / 25 of pixel k % 25 */
        assert_true(ae_dataset_data(ds)[k] == (float)px((k % 25) * 3 + k / 25) * (1.0f / 255.0f));

    /* An empty class folder, a missing folder, bad options. */
    mkdir(tpath("set/c_empty"), 0755);
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), NULL), AE_ERR_FORMAT);
    assert_non_null(strstr(ae_dataset_last_error(ds), "c_empty"));
    rmdir(tpath("set/c_empty"));
    assert_int_equal(ae_dataset_load_images(ds, tpath("nowhere"), NULL), AE_ERR_IO);
    assert_int_equal(ae_dataset_load_images(ds, NULL, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_load_images(NULL, tpath("set"), NULL), AE_ERR_INVALID_ARG);
    ae_image_options_init(&o);
    o.channels = 2;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_INVALID_ARG);
    ae_image_options_init(&o);
    o.struct_size = 8;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_INVALID_ARG);
    ae_image_options_init(&o);
    o.resize = AE_RESIZE_SHORTER_CROP;
    o.shorter = 3; /* below max(h, w) = 64 */
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_INVALID_ARG);
    ae_image_options_init(&o);
    float bad_sd = 0.0f;
    o.mean = &mean;
    o.std = &bad_sd;
    o.channels = 1;
    assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_count(ds), 2); /* the flat set still */
    free(src);
    ae_dataset_destroy(ds);
#endif
}

static void test_image_cache(void **state) {
    (void)state;
#if !defined(AE_HAVE_PNG) || !defined(AE_HAVE_JPEG)
    skip();
#else
    /* make_folder ran in test_image_folder (same group, in order). */
    ae_dataset *mem, *disk;
    assert_int_equal(ae_dataset_create(&mem, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&disk, NULL), AE_OK);
    ae_image_options o;
    ae_image_options_init(&o);
    o.height = o.width = 8;
    assert_int_equal(ae_dataset_load_images(mem, tpath("set"), &o), AE_OK);
    o.cache = tpath("cache.npy");
    assert_int_equal(ae_dataset_load_images(disk, tpath("set"), &o), AE_OK);
    assert_true(ae_dataset_file_backed(disk));
    assert_null(ae_dataset_data(disk));
    assert_int_equal(ae_dataset_count(disk), 3);
    float rows[3 * 192];
    int32_t lab[3];
    assert_int_equal(ae_dataset_rows(disk, 0, 3, rows, lab), AE_OK);
    /* The cache holds bytes: within half a level of the float values. */
    for (size_t i = 0; i < 3 * 192; i++)
        assert_true(fabsf(rows[i] - ae_dataset_data(mem)[i]) <= 0.5f / 255.0f + 1e-6f);
    assert_memory_equal(lab, ae_dataset_labels(mem), sizeof lab);
    /* Read back without decoding: a file that would now fail is not read. */
    struct stat before;
    assert_int_equal(stat(o.cache, &before), 0);
    assert_int_equal(ae_dataset_load_images(disk, tpath("set"), &o), AE_OK);
    struct stat after;
    assert_int_equal(stat(o.cache, &after), 0);
    assert_int_equal(before.st_ino, after.st_ino); /* not rewritten */
    assert_string_equal(ae_dataset_class_name(disk, 1), "b_dog");
    float again[3 * 192];
    assert_int_equal(ae_dataset_rows(disk, 0, 3, again, NULL), AE_OK);
    assert_memory_equal(again, rows, sizeof rows);
    /* Another size: rebuilt. */
    o.height = o.width = 4;
    assert_int_equal(ae_dataset_load_images(disk, tpath("set"), &o), AE_OK);
    assert_int_equal(ae_dataset_dim(disk), 48);
    ae_dataset_destroy(mem);
    ae_dataset_destroy(disk);
#endif
}

/* Reads all rows of a dataset (in memory or on disk). */
static float *all_rows(const ae_dataset *ds) {
    size_t n = ae_dataset_count(ds) * ae_dataset_dim(ds);
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    assert_int_equal(ae_dataset_rows(ds, 0, ae_dataset_count(ds), x, NULL), AE_OK);
    return x;
}

/* An image folder normalised as torchvision's Normalize (opts->mean/std)
 * and trained with ae_fit: the model records the statistics in its value
 * convention, keeps them in its file, and gives the same folder loaded
 * without them (in memory or through the cache) exactly the values it was
 * trained on; a folder normalised otherwise is refused. */
static void test_image_normalise_recorded(void **state) {
    (void)state;
#if !defined(AE_HAVE_PNG) || !defined(AE_HAVE_JPEG)
    skip();
#else
    /* make_folder ran in test_image_folder (same group, in order). */
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (int cached = 0; cached < 2; cached++) {
        ae_image_options o;
        ae_image_options_init(&o);
        o.height = o.width = 8;
        o.mean = mean;
        o.std = sd;
        if (cached) o.cache = tpath("norm_cache.npy");
        ae_dataset *ds, *plain;
        assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
        assert_int_equal(ae_dataset_load_images(ds, tpath("set"), &o), AE_OK);
        assert_int_equal(ae_dataset_file_backed(ds), cached);
        ae_data_convention dc;
        dc.struct_size = sizeof dc;
        assert_int_equal(ae_dataset_convention(ds, &dc), AE_OK);
        assert_int_equal(dc.elem, AE_ELEM_UINT8);
        assert_int_equal(dc.std_count, 3);
        float *trained_on = all_rows(ds);

        ae_config *cfg;
        ae_model *m, *back;
        assert_int_equal(ae_config_create(&cfg, NULL), AE_OK);
        assert_int_equal(ae_config_set_input_shape(cfg, 3, 8, 8), AE_OK);
        assert_int_equal(ae_config_add_dense(cfg, 4, AE_ACT_RELU), AE_OK);
        assert_int_equal(ae_config_mark_code(cfg), AE_OK);
        assert_int_equal(ae_config_add_dense(cfg, 192, AE_ACT_IDENTITY), AE_OK);
        assert_int_equal(ae_model_create(&m, cfg), AE_OK);
        ae_fit_options fo;
        ae_fit_options_init(&fo);
        fo.epochs = 1;
        fo.batch_size = 2;
        assert_int_equal(ae_fit(m, ds, &fo), AE_OK);
        assert_int_equal(ae_model_save(m, tpath("norm.aem"), AE_SAVE_MODEL), AE_OK);
        assert_int_equal(ae_model_load(&back, tpath("norm.aem"), cfg), AE_OK);
        for (int k = 0; k < 2; k++) {
            float mu[3], s[3];
            ae_data_convention mc;
            mc.struct_size = sizeof mc;
            assert_int_equal(ae_model_data_convention(k ? back : m, &mc, mu, s, 3), AE_OK);
            assert_int_equal(mc.elem, AE_ELEM_UINT8);
            assert_true(fabs(mc.scale * 255.0 - 1.0) < 1e-6 && mc.offset == 0.0);
            assert_int_equal(mc.std_count, 3);
            assert_memory_equal(mu, mean, sizeof mu);
            assert_memory_equal(s, sd, sizeof s);
        }

        /* The same folder without the options: the model's rule gives it
           the values of training, bit for bit. */
        o.mean = o.std = NULL;
        assert_int_equal(ae_dataset_create(&plain, NULL), AE_OK);
        assert_int_equal(ae_dataset_load_images(plain, tpath("set"), &o), AE_OK);
        assert_int_equal(ae_model_prepare_data(back, plain), AE_OK);
        float *prepared = all_rows(plain);
        assert_memory_equal(prepared, trained_on, ae_dataset_count(ds) * 192 * sizeof(float));
        /* Normalised with the model's statistics already: unchanged. */
        assert_int_equal(ae_model_prepare_data(back, ds), AE_OK);
        float *again = all_rows(ds);
        assert_memory_equal(again, trained_on, ae_dataset_count(ds) * 192 * sizeof(float));
        /* With other statistics: refused, nothing changed. */
        static const float other[3] = {0.5f, 0.5f, 0.5f};
        o.mean = other;
        o.std = sd;
        assert_int_equal(ae_dataset_load_images(plain, tpath("set"), &o), AE_OK);
        float *before = all_rows(plain);
        assert_int_equal(ae_model_prepare_data(back, plain), AE_ERR_STATE);
        assert_non_null(strstr(ae_dataset_last_error(plain), "standardised already"));
        float *after = all_rows(plain);
        assert_memory_equal(after, before, ae_dataset_count(plain) * 192 * sizeof(float));
        free(before);
        free(after);
        free(again);
        free(prepared);
        free(trained_on);
        ae_model_destroy(back);
        ae_model_destroy(m);
        ae_config_destroy(cfg);
        ae_dataset_destroy(plain);
        ae_dataset_destroy(ds);
    }
#endif
}

/* ---- file-backed .npy ---- */

/* Writes a .npy with the given descr and shape text and raw data. */
static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t bytes) {
    char dict[160];
    int k = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    size_t hlen = (size_t)k + 1, pad = (64 - (10 + hlen) % 64) % 64;
    hlen += pad;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hlen & 255), f);
    fputc((int)(hlen >> 8), f);
    fwrite(dict, 1, (size_t)k, f);
    for (size_t i = 0; i < pad; i++) fputc(' ', f);
    fputc('\n', f);
    if (bytes) fwrite(data, 1, bytes, f);
    assert_int_equal(fclose(f), 0);
}

static void test_file_backed_dtypes(void **state) {
    (void)state;
    enum { N = 37, C = 2, H = 3, W = 4, D = C * H * W };
    uint8_t u[N * D];
    float f[N * D];
    double g[N * D];
    for (size_t i = 0; i < N * D; i++) {
        u[i] = px(i);
        f[i] = (float)px(i) / 7.0f - 3.0f;
        g[i] = (double)f[i];
    }
    write_npy(tpath("u1.npy"), "|u1", "(37, 2, 3, 4)", u, sizeof u);
    write_npy(tpath("f4.npy"), "<f4", "(37, 2, 3, 4)", f, sizeof f);
    write_npy(tpath("f8.npy"), "<f8", "(37, 2, 3, 4)", g, sizeof g);
    const char *names[3] = {"u1.npy", "f4.npy", "f8.npy"};
    for (int t = 0; t < 3; t++) {
        ae_dataset *mem, *disk;
        assert_int_equal(ae_dataset_create(&mem, NULL), AE_OK);
        assert_int_equal(ae_dataset_create(&disk, NULL), AE_OK);
        assert_int_equal(ae_dataset_load_npy(mem, tpath(names[t])), AE_OK);
        assert_int_equal(ae_dataset_open_npy(disk, tpath(names[t])), AE_OK);
        assert_true(ae_dataset_file_backed(disk));
        assert_false(ae_dataset_file_backed(mem));
        assert_null(ae_dataset_data(disk));
        assert_int_equal(ae_dataset_count(disk), N);
        size_t c, h, w;
        ae_dataset_shape(disk, &c, &h, &w);
        assert_true(c == C && h == H && w == W);
        /* Scaled and standardised (computed) the same way on both sides. */
        assert_int_equal(ae_dataset_scale(mem, 0.5f, 1.0f), AE_OK);
        assert_int_equal(ae_dataset_scale(disk, 0.5f, 1.0f), AE_OK);
        assert_int_equal(ae_dataset_standardize(mem, NULL, NULL, C), AE_OK);
        assert_int_equal(ae_dataset_standardize(disk, NULL, NULL, C), AE_OK);
        float ms[C], ds_[C], md[C], dd[C];
        ae_dataset_standardization(mem, ms, ds_, C);
        ae_dataset_standardization(disk, md, dd, C);
        assert_memory_equal(ms, md, sizeof ms);
        assert_memory_equal(ds_, dd, sizeof ds_);
        assert_int_equal(ae_dataset_scale(disk, 2.0f, 0.0f), AE_ERR_STATE);
        float all[N * D];
        assert_int_equal(ae_dataset_rows(disk, 0, N, all, NULL), AE_OK);
        assert_memory_equal(all, ae_dataset_data(mem), sizeof all);
        /* Batches, gather, shuffle, split, subsets agree with memory. */
        float a[8 * D], b[8 * D];
        size_t ra, rb;
        assert_int_equal(ae_dataset_get_batch(disk, 4, 8, 0, a, NULL, &ra), AE_OK);
        assert_int_equal(ae_dataset_get_batch(mem, 4, 8, 0, b, NULL, &rb), AE_OK);
        assert_int_equal(ra, 5);
        assert_memory_equal(a, b, ra * D * sizeof(float));
        size_t idx[6] = {36, 0, 5, 5, 1, 1};
        assert_int_equal(ae_dataset_gather(disk, idx, 4, a, NULL), AE_OK);
        assert_int_equal(ae_dataset_gather(mem, idx, 4, b, NULL), AE_OK);
        assert_memory_equal(a, b, 4 * D * sizeof(float));
        assert_int_equal(ae_dataset_shuffle(disk, 99), AE_OK);
        assert_int_equal(ae_dataset_shuffle(mem, 99), AE_OK);
        assert_null(ae_dataset_data(disk));
        assert_int_equal(ae_dataset_rows(disk, 0, N, all, NULL), AE_OK);
        assert_memory_equal(all, ae_dataset_data(mem), sizeof all);
        ae_dataset *tr, *va, *tm, *vm;
        assert_int_equal(ae_dataset_split(disk, 0.25, 5, &tr, &va), AE_OK);
        assert_int_equal(ae_dataset_split(mem, 0.25, 5, &tm, &vm), AE_OK);
        assert_true(ae_dataset_file_backed(tr) && ae_dataset_file_backed(va));
        assert_int_equal(ae_dataset_count(va), ae_dataset_count(vm));
        assert_int_equal(ae_dataset_rows(va, 0, ae_dataset_count(va), all, NULL), AE_OK);
        assert_memory_equal(all, ae_dataset_data(vm), ae_dataset_count(vm) * D * sizeof(float));
        ae_dataset *sub, *sub2;
        assert_int_equal(ae_dataset_subset_range(tr, 3, 4, &sub), AE_OK);
        assert_true(ae_dataset_file_backed(sub));
        assert_int_equal(ae_dataset_subset(sub, idx + 4, 2, &sub2), AE_OK);
        ae_dataset_destroy(tr); /* subsets outlive their parent */
        ae_dataset_destroy(disk);
        assert_int_equal(ae_dataset_rows(sub2, 0, 2, a, NULL), AE_OK);
        assert_memory_equal(a, ae_dataset_data(tm) + (3 + 1) * D, D * sizeof(float));
        assert_memory_equal(a + D, a, D * sizeof(float));
        ae_dataset_destroy(sub2);
        assert_int_equal(ae_dataset_subset_range(sub, 2, 3, &sub2), AE_ERR_RANGE);
        assert_null(sub2);
        assert_int_equal(ae_dataset_rows(sub, 3, 2, a, NULL), AE_ERR_RANGE);
        /* Saving a file-backed set writes its values. */
        assert_int_equal(ae_dataset_save_npy(sub, tpath("sub.npy")), AE_OK);
        ae_dataset *back;
        assert_int_equal(ae_dataset_create(&back, NULL), AE_OK);
        assert_int_equal(ae_dataset_load_npy(back, tpath("sub.npy")), AE_OK);
        assert_int_equal(ae_dataset_rows(sub, 0, 4, a, NULL), AE_OK);
        assert_memory_equal(a, ae_dataset_data(back), 4 * D * sizeof(float));
        ae_dataset_destroy(back);
        ae_dataset_destroy(sub);
        ae_dataset_destroy(va);
        ae_dataset_destroy(tm);
        ae_dataset_destroy(vm);
        ae_dataset_destroy(mem);
    }
}

static void test_file_backed_errors(void **state) {
    (void)state;
    ae_dataset *ds;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    float f[6] = {1, 2, NAN, 4, 5, 6};
    write_npy(tpath("nan.npy"), "<f4", "(3, 2)", f, sizeof f);
    assert_int_equal(ae_dataset_open_npy(ds, tpath("nan.npy")), AE_OK);
    float out[6];
    assert_int_equal(ae_dataset_rows(ds, 0, 1, out, NULL), AE_OK);
    assert_int_equal(ae_dataset_rows(ds, 0, 3, out, NULL), AE_ERR_FORMAT);
    assert_non_null(strstr(ae_dataset_last_error(ds), "row 1"));
    /* Truncated, a directory, a FIFO, NULL. */
    write_npy(tpath("short.npy"), "<f4", "(3, 2)", f, 20);
    assert_int_equal(ae_dataset_open_npy(ds, tpath("short.npy")), AE_ERR_FORMAT);
    assert_non_null(strstr(ae_dataset_last_error(ds), "truncated"));
    assert_int_equal(ae_dataset_count(ds), 3); /* unchanged */
    assert_int_equal(ae_dataset_open_npy(ds, g_dir), AE_ERR_IO);
    assert_int_equal(mkfifo(tpath("fifo"), 0600), 0);
    assert_int_equal(ae_dataset_open_npy(ds, tpath("fifo")), AE_ERR_IO);
    assert_non_null(strstr(ae_dataset_last_error(ds), "not a regular file"));
    assert_int_equal(ae_dataset_open_npy(ds, NULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_open_npy(NULL, tpath("nan.npy")), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_dataset_subset(ds, NULL, 1, NULL), AE_ERR_INVALID_ARG);
    size_t big = 3;
    ae_dataset *s;
    assert_int_equal(ae_dataset_subset(ds, &big, 1, &s), AE_ERR_RANGE);
    assert_null(s);
    ae_dataset_destroy(ds);
}

/* ae_fit on file-backed rows gives the in-memory run, bitwise. */
static void test_fit_file_backed(void **state) {
    (void)state;
    enum { N = 300, D = 48 };
    uint8_t u[N * D];
    for (size_t i = 0; i < N * D; i++) u[i] = (uint8_t)((i * 7 + i / D * 13) % 256);
    write_npy(tpath("fit.npy"), "|u1", "(300, 3, 4, 4)", u, sizeof u);
    double loss[2][3];
    for (int disk = 0; disk < 2; disk++) {
        ae_dataset *ds, *tr, *va;
        assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
        assert_int_equal(disk ? ae_dataset_open_npy(ds, tpath("fit.npy"))
                              : ae_dataset_load_npy(ds, tpath("fit.npy")),
                         AE_OK);
        assert_int_equal(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f), AE_OK);
        assert_int_equal(ae_dataset_split(ds, 0.2, 3, &tr, &va), AE_OK);
        ae_config *cfg;
        ae_model *m;
        assert_int_equal(ae_config_create(&cfg, NULL), AE_OK);
        ae_config_set_input_size(cfg, D);
        ae_config_add_dense(cfg, 8, AE_ACT_RELU);
        ae_config_mark_code(cfg);
        ae_config_add_dense(cfg, D, AE_ACT_SIGMOID);
        ae_config_set_int(cfg, AE_P_SEED, 7);
        ae_config_set_int(cfg, AE_P_NOISE_KIND, AE_NOISE_GAUSSIAN);
        ae_config_set_float(cfg, AE_P_NOISE_LEVEL, 0.01);
        assert_int_equal(ae_model_create(&m, cfg), AE_OK);
        ae_history *h;
        ae_history_create(&h, NULL);
        ae_fit_options o;
        ae_fit_options_init(&o);
        o.epochs = 3;
        o.batch_size = 32;
        o.val = va;
        o.history = h;
        assert_int_equal(ae_fit(m, tr, &o), AE_OK);
        for (size_t e = 0; e < 3; e++) {
            ae_epoch_stats es;
            es.struct_size = sizeof es;
            ae_history_get(h, e, &es);
            loss[disk][e] = es.train_loss + 1000.0 * es.val_loss;
        }
        ae_history_destroy(h);
        ae_model_destroy(m);
        ae_config_destroy(cfg);
        ae_dataset_destroy(tr);
        ae_dataset_destroy(va);
        ae_dataset_destroy(ds);
    }
    assert_memory_equal(loss[0], loss[1], sizeof loss[0]);
}

/* A uint8 file of 1.5 GB (sparse: written in no time) read whole, batch by
 * batch, in a child whose address space is limited to 512 MB more than it
 * uses: ae_dataset_load_npy would need 6 GB. ASan reserves terabytes of
 * address space, so the limit cannot be set there: skipped, loudly. */
static void test_larger_than_memory_limit(void **state) {
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    print_message("skipped under AddressSanitizer (it needs an unlimited address space)\n");
    skip();
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif
    const size_t D = 3 * 64 * 64, N = 128000; /* 1.57 GB */
    const char *path = tpath("big.npy");
    write_npy(path, "|u1", "(128000, 3, 64, 64)", NULL, 0);
    int fd = open(path, O_WRONLY);
    assert_true(fd >= 0);
    struct stat sb;
    assert_int_equal(fstat(fd, &sb), 0);
    assert_int_equal(ftruncate(fd, sb.st_size + (off_t)(N * D)), 0);
    /* A nonzero byte near the end, to see that it is read. */
    assert_int_equal(pwrite(fd, "\x33", 1, sb.st_size + (off_t)(N * D) - 1), 1);
    close(fd);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit rl = {(rlim_t)512 << 20, (rlim_t)512 << 20};
        /* The limit counts what the process maps already (libraries, heap). */
        FILE *st = fopen("/proc/self/statm", "r");
        unsigned long vm_pages = 0;
        if (!st || fscanf(st, "%lu", &vm_pages) != 1) _exit(3);
        fclose(st);
        rl.rlim_cur = rl.rlim_max = (rlim_t)vm_pages * (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(4);
        ae_dataset *ds;
        if (ae_dataset_create(&ds, NULL) != AE_OK) _exit(5);
        if (ae_dataset_load_npy(ds, path) != AE_ERR_OUT_OF_MEMORY) _exit(6);
        if (ae_dataset_open_npy(ds, path) != AE_OK) _exit(7);
        size_t bs = 256, nb = 0, rows;
        float *buf = malloc(bs * D * sizeof *buf);
        if (!buf || ae_dataset_batch_count(ds, bs, 0, &nb) != AE_OK) _exit(8);
        double sum = 0.0;
        for (size_t b = 0; b < nb; b++) {
            if (ae_dataset_get_batch(ds, b, bs, 0, buf, NULL, &rows) != AE_OK) _exit(9);
            sum += buf[0] + buf[rows * D - 1];
        }
        free(buf);
        ae_dataset_destroy(ds);
        _exit(sum == 51.0 ? 0 : 10);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    unlink(path);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A FIFO named like an image in a folder is refused at once, by path (or
 * skipped with skip_bad), and a FIFO as the cache is not replaced. The
 * alarm fails the test rather than let a blocking open hang it. */
static void test_folder_special_files(void **state) {
    (void)state;
#ifndef AE_HAVE_PNG
    skip();
#else
    assert_int_equal(mkdir(tpath("fifos"), 0700), 0);
    write_rgb_png(tpath("fifos/a.png"), 3, 4);
    assert_int_equal(mkfifo(tpath("fifos/b.png"), 0600), 0);
    ae_dataset *ds;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    ae_image_options o;
    ae_image_options_init(&o);
    alarm(20);
    assert_int_equal(ae_dataset_load_images(ds, tpath("fifos"), &o), AE_ERR_IO);
    assert_non_null(strstr(ae_dataset_last_error(ds), "b.png"));
    assert_non_null(strstr(ae_dataset_last_error(ds), "is a FIFO"));
    o.skip_bad = 1;
    assert_int_equal(ae_dataset_load_images(ds, tpath("fifos"), &o), AE_OK);
    assert_int_equal(ae_dataset_count(ds), 1);
    assert_int_equal(ae_dataset_skipped(ds), 1);
    char cache[256];
    snprintf(cache, sizeof cache, "%s", tpath("cache.fifo"));
    assert_int_equal(mkfifo(cache, 0600), 0);
    o.cache = cache;
    assert_int_equal(ae_dataset_load_images(ds, tpath("fifos"), &o), AE_ERR_IO);
    assert_non_null(strstr(ae_dataset_last_error(ds), "it is a FIFO"));
    alarm(0);
    struct stat sb;
    assert_int_equal(lstat(cache, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    ae_dataset_destroy(ds);
#endif
}

/* ae_image_save_png: what it writes decodes to the same pixels, for each
 * channel count and odd sizes; it writes through a link, refuses a FIFO
 * and bad arguments, and fails cleanly at every allocation. */
static void test_save_png(void **state) {
    (void)state;
    char err[256];
    uint8_t one = 7;
#ifndef AE_HAVE_PNG
    assert_int_equal(ae_image_save_png(tpath("no.png"), &one, 1, 1, 1, NULL, err, sizeof err),
                     AE_ERR_UNSUPPORTED);
    assert_non_null(strstr(err, "without libpng"));
#else
    ae_allocator a;
    assert_int_equal(ae_allocator_init(&a, NULL), AE_OK);
    ae_errbuf e;
    const size_t sizes[3][2] = {{1, 1}, {5, 7}, {33, 130}};
    for (size_t ch = 1; ch <= 4; ch++)
        for (int k = 0; k < 3; k++) {
            size_t h = sizes[k][0], w = sizes[k][1], n = h * w * ch;
            uint8_t *pix = malloc(n);
            for (size_t i = 0; i < n; i++) pix[i] = px(i * 3 + ch);
            const char *p = tpath("saved.png");
            assert_int_equal(ae_image_save_png(p, pix, h, w, ch, NULL, err, sizeof err), AE_OK);
            uint8_t *buf, *back;
            size_t len, bh, bw;
            assert_int_equal(ae_read_whole_file(&a, &e, p, &buf, &len), AE_OK);
            /* Gray + alpha decodes to RGBA: gray repeated, alpha kept. */
            int dch = ch == 2 ? 4 : (int)ch;
            assert_int_equal(ae_png_decode(&a, &e, p, buf, len, dch, &back, &bh, &bw), AE_OK);
            assert_int_equal(bh, h);
            assert_int_equal(bw, w);
            for (size_t i = 0; i < h * w; i++)
                for (int c = 0; c < dch; c++) {
                    uint8_t want = ch == 2 ? pix[i * 2 + (c == 3)] : pix[i * ch + (size_t)c];
                    assert_int_equal(back[i * (size_t)dch + (size_t)c], want);
                }
            ae_free(&a, buf);
            ae_free(&a, back);
            free(pix);
        }

    /* Through a link: the linked file is written, the link stays. */
    assert_int_equal(symlink("linked.png", tpath("link.png")), 0);
    assert_int_equal(ae_image_save_png(tpath("link.png"), &one, 1, 1, 1, NULL, NULL, 0), AE_OK);
    struct stat sb;
    assert_int_equal(lstat(tpath("link.png"), &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(stat(tpath("linked.png"), &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    /* A FIFO: refused by name and kind, left a FIFO. */
    assert_int_equal(mkfifo(tpath("pic.fifo"), 0600), 0);
    assert_int_equal(ae_image_save_png(tpath("pic.fifo"), &one, 1, 1, 1, NULL, err, sizeof err),
                     AE_ERR_IO);
    assert_non_null(strstr(err, "pic.fifo: it is a FIFO, not a regular file"));
    assert_int_equal(lstat(tpath("pic.fifo"), &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));

    /* Bad arguments. */
    const char *p = tpath("bad.png");
    assert_int_equal(ae_image_save_png(NULL, &one, 1, 1, 1, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_image_save_png("", &one, 1, 1, 1, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_image_save_png(p, NULL, 1, 1, 1, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_image_save_png(p, &one, 1, 1, 0, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_image_save_png(p, &one, 1, 1, 5, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "channels"));
    assert_int_equal(ae_image_save_png(p, &one, 0, 1, 1, NULL, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_image_save_png(p, &one, 1, 1000001, 1, NULL, err, sizeof err),
                     AE_ERR_INVALID_ARG);
    assert_non_null(strstr(err, "1000000"));
    assert_int_equal(ae_image_save_png(p, &one, SIZE_MAX, 1, 1, NULL, err, sizeof err),
                     AE_ERR_INVALID_ARG);
    ae_allocator bad = {0, NULL, NULL, NULL};
    assert_int_equal(ae_image_save_png(p, &one, 1, 1, 1, &bad, err, sizeof err), AE_ERR_INVALID_ARG);
    assert_int_equal(stat(p, &sb), -1);

    /* Every allocation failing in turn: no file, nothing leaked. */
    uint8_t pix[64 * 48 * 3];
    for (size_t i = 0; i < sizeof pix; i++) pix[i] = px(i);
    for (long k = 0;; k++) {
        test_alloc t = {0, 0, k};
        ae_allocator ta = test_allocator(&t);
        ae_status st = ae_image_save_png(p, pix, 48, 64, 3, &ta, err, sizeof err);
        assert_int_equal(t.live, 0);
        if (st == AE_OK) break;
        assert_int_equal(st, AE_ERR_OUT_OF_MEMORY);
        assert_non_null(strstr(err, "bad.png"));
        assert_int_equal(stat(p, &sb), -1);
    }
    assert_int_equal(stat(p, &sb), 0);
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_without_decoder),
        cmocka_unit_test(test_png_colour_types),
        cmocka_unit_test(test_jpeg),
        cmocka_unit_test(test_resize_matches_torchvision),
        cmocka_unit_test(test_image_folder),
        cmocka_unit_test(test_image_cache),
        cmocka_unit_test(test_image_normalise_recorded),
        cmocka_unit_test(test_file_backed_dtypes),
        cmocka_unit_test(test_file_backed_errors),
        cmocka_unit_test(test_folder_special_files),
        cmocka_unit_test(test_save_png),
        cmocka_unit_test(test_fit_file_backed),
        cmocka_unit_test(test_larger_than_memory_limit),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
