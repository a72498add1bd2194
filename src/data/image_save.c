/* Writing a picture as a PNG (libpng): encoded in memory through
 * png_set_write_fn, then written by the library's one atomic writer
 * (ae_file_replace), so a picture obeys the rules of every file libae
 * writes (docs/files.md). */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "data.h"

#ifdef AE_HAVE_PNG
#include "png_jump.h"

/* The encoded bytes, grown by doubling from the library's allocator. */
typedef struct png_out {
    const ae_allocator *a;
    unsigned char *p;
    size_t n, cap;
    int nomem;
    ae_png_jump j;
} png_out;

static void out_write_fn(png_structp png, png_bytep data, size_t n) {
    png_out *o = png_get_io_ptr(png);
    if (n > o->cap - o->n) {
        if (o->n > SIZE_MAX - n) {
            o->nomem = 1;
            png_error(png, "out of memory");
        }
        size_t need = o->n + n, cap = o->cap ? o->cap : 4096;
        while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
        unsigned char *q = ae_alloc(o->a, cap);
        if (!q) {
            o->nomem = 1;
            png_error(png, "out of memory");
        }
        if (o->n) memcpy(q, o->p, o->n);
        ae_free(o->a, o->p);
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->n, data, n);
    o->n += n;
}

static void out_flush_fn(png_structp png) { (void)png; }
#endif

/* libpng's limit on a side when writing (PNG_USER_WIDTH_MAX and _HEIGHT_MAX). */
#define PNG_MAX_SIDE 1000000u

static ae_status save_png(const ae_allocator *a, ae_errbuf *e, const char *path,
                          const uint8_t *pixels, size_t height, size_t width, size_t channels) {
    static const char who[] = "ae_image_save_png";
    if (!path || !*path) return ae_error(e, AE_ERR_INVALID_ARG, "%s: the path is NULL or empty", who);
    if (!pixels) return ae_error(e, AE_ERR_INVALID_ARG, "%s: pixels is NULL", who);
    if (channels < 1 || channels > 4)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: channels must be 1, 2, 3 or 4, got %zu", who, channels);
    size_t row, total;
    if (height < 1 || width < 1 || height > PNG_MAX_SIDE || width > PNG_MAX_SIDE ||
        ae_mul_overflow(width, channels, &row) || ae_mul_overflow(row, height, &total))
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: %zu x %zu pixels: each side must be in [1, %u] and the bytes addressable",
                        who, height, width, PNG_MAX_SIDE);
    ae_src_name c;
    ae_src_name_init(&c, e, path);
#ifndef AE_HAVE_PNG
    (void)a;
    return ae_src_fail(&c, AE_ERR_UNSUPPORTED, "cannot write a PNG: this libae was built without libpng");
#else
    png_out out;
    memset(&out, 0, sizeof out);
    out.a = a;
    png_structp png =
        png_create_write_struct(PNG_LIBPNG_VER_STRING, &out.j, ae_png_fail_fn, ae_png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info) {
        png_destroy_write_struct(png ? &png : NULL, NULL);
        return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for the PNG encoder");
    }
    if (setjmp(out.j.jb)) {
        png_destroy_write_struct(&png, &info);
        ae_free(a, out.p);
        if (out.nomem) return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory encoding the PNG");
        return ae_src_fail(&c, AE_ERR_IO, "cannot encode the PNG: %s", out.j.msg);
    }
    static const int types[4] = {PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA, PNG_COLOR_TYPE_RGB,
                                 PNG_COLOR_TYPE_RGB_ALPHA};
    png_set_write_fn(png, &out, out_write_fn, out_flush_fn);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, types[channels - 1],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (size_t y = 0; y < height; y++) png_write_row(png, pixels + y * row);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);

    ae_span part = {out.p, out.n};
    ae_errbuf why;
    ae_status st = ae_file_save(a, path, &part, 1, &why);
    ae_free(a, out.p);
    return st ? ae_src_fail(&c, st, "%s", why.msg) : AE_OK;
#endif
}

ae_status ae_image_save_png(const char *path, const uint8_t *pixels, size_t height, size_t width,
                            size_t channels, const ae_allocator *alloc, char *err, size_t err_size) {
    if (err && err_size) err[0] = '\0';
    ae_errbuf e;
    ae_allocator a;
    ae_status st = ae_allocator_init(&a, alloc) != AE_OK
                       ? ae_error(&e, AE_ERR_INVALID_ARG, "ae_image_save_png: malformed allocator")
                       : save_png(&a, &e, path, pixels, height, width, channels);
    if (st && err && err_size) snprintf(err, err_size, "%s", e.msg);
    return st;
}
