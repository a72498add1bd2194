/* PNG (libpng) and JPEG (libjpeg-turbo) decoding from memory to 8-bit
 * interleaved pixels in the requested channel count, and the bilinear
 * resize to planar floats. Conversions follow PIL, which torchvision's
 * ImageFolder loader uses: gray from RGB as ITU-R 601 luma in PIL's
 * fixed point, alpha dropped, gray replicated to RGB, 16-bit samples
 * reduced to their high byte. Each decoder refuses what it cannot read
 * whole: a truncated JPEG is an error here (PIL's default too), not a
 * picture with a gray bottom. */
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include "data.h"

#ifdef AE_HAVE_PNG
#include "png_jump.h"
#endif
#ifdef AE_HAVE_JPEG
#include <jpeglib.h>
#endif

/* Largest image decoded: 2^26 pixels (8192 x 8192), so a hostile header
 * cannot ask for more than 256 MB of pixels. */
#define MAX_PIXELS ((size_t)1 << 26)

#if defined(AE_HAVE_PNG) || defined(AE_HAVE_JPEG)
/* PIL's convert("L"): (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16. */
static uint8_t luma(const uint8_t *p) {
    return (uint8_t)(((uint32_t)p[0] * 19595u + (uint32_t)p[1] * 38470u + (uint32_t)p[2] * 7471u +
                      0x8000u) >> 16);
}

/* Converts n pixels of `from` channels (1 gray, 2 gray+alpha, 3 RGB,
 * 4 RGBA) to `to` channels; in and out do not overlap. */
static void convert_pixels(const uint8_t *in, int from, uint8_t *out, int to, size_t n) {
    for (size_t i = 0; i < n; i++, in += from, out += to) {
        uint8_t rgb[3], a = from == 2 ? in[1] : from == 4 ? in[3] : 255;
        if (from <= 2)
            rgb[0] = rgb[1] = rgb[2] = in[0];
        else
            memcpy(rgb, in, 3);
        if (to == 1) {
            out[0] = from <= 2 ? in[0] : luma(rgb);
        } else {
            memcpy(out, rgb, 3);
            if (to == 4) out[3] = a;
        }
    }
}

#endif

/* ---- PNG ---- */

#ifdef AE_HAVE_PNG
typedef struct png_src {
    const uint8_t *p;
    size_t left;
    ae_png_jump j;
} png_src;

void ae_png_fail_fn(png_structp png, png_const_charp msg) {
    ae_png_jump *j = png_get_error_ptr(png);
    snprintf(j->msg, sizeof j->msg, "%s", msg);
    longjmp(j->jb, 1);
}

void ae_png_warn_fn(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* warnings (e.g. an unknown chunk) do not stop a read or a write */
}

static void png_read_fn(png_structp png, png_bytep out, size_t n) {
    png_src *s = png_get_io_ptr(png);
    if (n > s->left) png_error(png, "truncated file");
    memcpy(out, s->p, n);
    s->p += n;
    s->left -= n;
}
#endif

ae_status ae_png_decode(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                        size_t len, int channels, uint8_t **pix, size_t *h, size_t *w) {
    ae_src_name c;
    ae_src_name_init(&c, e, name);
    *pix = NULL;
#ifndef AE_HAVE_PNG
    (void)a, (void)buf, (void)len, (void)channels, (void)h, (void)w;
    return ae_src_fail(&c, AE_ERR_UNSUPPORTED, "a PNG file, and this libae was built without libpng");
#else
    if (len < 8 || png_sig_cmp(buf, 0, 8) != 0)
        return ae_src_fail(&c, AE_ERR_FORMAT, "not a PNG file (bad signature)");
    /* volatile: these change between setjmp and a longjmp back to it. */
    png_src src = {.p = buf, .left = len};
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, &src.j, ae_png_fail_fn, ae_png_warn_fn);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    uint8_t *volatile raw = NULL;
    png_bytep *volatile rowp = NULL;
    uint8_t *volatile out = NULL;
    if (!png || !info) {
        png_destroy_read_struct(png ? &png : NULL, NULL, NULL);
        return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for the PNG decoder");
    }
    if (setjmp(src.j.jb)) {
        png_destroy_read_struct(&png, &info, NULL);
        ae_free(a, raw);
        ae_free(a, rowp);
        ae_free(a, out);
        return ae_src_fail(&c, AE_ERR_FORMAT, "corrupt PNG: %s", src.j.msg);
    }
    png_set_read_fn(png, &src, png_read_fn);
    png_set_user_limits(png, 1u << 16, 1u << 16);
    png_set_chunk_malloc_max(png, (png_alloc_size_t)64 << 20);
    png_read_info(png, info);
    png_uint_32 pw = png_get_image_width(png, info), ph = png_get_image_height(png, info);
    size_t npix; /* checked: 65536 x 65536 wraps a 32-bit size_t */
    if (ae_mul_overflow(pw, ph, &npix) || npix > MAX_PIXELS) {
        snprintf(src.j.msg, sizeof src.j.msg, "%lu x %lu pixels exceed the limit of %zu",
                 (unsigned long)pw, (unsigned long)ph, MAX_PIXELS);
        longjmp(src.j.jb, 1);
    }
    /* To 8-bit gray, gray+alpha, RGB or RGBA. */
    png_set_expand(png); /* palette to RGB, 1/2/4-bit gray to 8, tRNS to alpha */
    png_set_strip_16(png);
    png_set_packing(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int from = png_get_channels(png, info);
    size_t rowbytes = png_get_rowbytes(png, info);
    if (from < 1 || from > 4 || rowbytes != (size_t)pw * (size_t)from) {
        snprintf(src.j.msg, sizeof src.j.msg, "unexpected layout after conversion");
        longjmp(src.j.jb, 1);
    }
    raw = ae_alloc(a, (size_t)ph * rowbytes);
    rowp = ae_alloc(a, (size_t)ph * sizeof *rowp);
    out = (size_t)from == (size_t)channels ? NULL : ae_alloc(a, (size_t)ph * pw * (size_t)channels);
    if (!raw || !rowp || (from != channels && !out)) {
        snprintf(src.j.msg, sizeof src.j.msg, "out of memory for %lu x %lu pixels", (unsigned long)pw,
                 (unsigned long)ph);
        longjmp(src.j.jb, 1);
    }
    for (png_uint_32 y = 0; y < ph; y++) rowp[y] = raw + (size_t)y * rowbytes;
    png_read_image(png, rowp);
    png_read_end(png, NULL);
    png_destroy_read_struct(&png, &info, NULL);
    ae_free(a, rowp);
    if (out) {
        convert_pixels(raw, from, out, channels, (size_t)ph * pw);
        ae_free(a, raw);
        raw = out;
    }
    *pix = raw;
    *h = ph;
    *w = pw;
    return AE_OK;
#endif
}

/* ---- JPEG ---- */

#ifdef AE_HAVE_JPEG
typedef struct jpeg_fail {
    struct jpeg_error_mgr pub;
    char msg[JMSG_LENGTH_MAX];
    jmp_buf jb;
} jpeg_fail;

static void jpeg_exit_fn(j_common_ptr cinfo) {
    jpeg_fail *f = (jpeg_fail *)cinfo->err;
    f->pub.format_message(cinfo, f->msg);
    longjmp(f->jb, 1);
}

/* A warning is corrupt data (a premature end, a bad Huffman code): it
 * ends the read like an error. Trace messages (level > 0) are dropped. */
static void jpeg_emit_fn(j_common_ptr cinfo, int level) {
    if (level < 0) jpeg_exit_fn(cinfo);
}
#endif

ae_status ae_jpeg_decode(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                         size_t len, int channels, uint8_t **pix, size_t *h, size_t *w) {
    ae_src_name c;
    ae_src_name_init(&c, e, name);
    *pix = NULL;
#ifndef AE_HAVE_JPEG
    (void)a, (void)buf, (void)len, (void)channels, (void)h, (void)w;
    return ae_src_fail(&c, AE_ERR_UNSUPPORTED, "a JPEG file, and this libae was built without libjpeg");
#else
    const uint8_t *b = buf;
    if (len < 3 || b[0] != 0xff || b[1] != 0xd8 || b[2] != 0xff)
        return ae_src_fail(&c, AE_ERR_FORMAT, "not a JPEG file (no start-of-image marker)");
    struct jpeg_decompress_struct ci;
    jpeg_fail jf;
    uint8_t *volatile raw = NULL;
    uint8_t *volatile out = NULL;
    ci.err = jpeg_std_error(&jf.pub);
    jf.pub.error_exit = jpeg_exit_fn;
    jf.pub.emit_message = jpeg_emit_fn;
    if (setjmp(jf.jb)) {
        jpeg_destroy_decompress(&ci);
        ae_free(a, raw);
        ae_free(a, out);
        return ae_src_fail(&c, AE_ERR_FORMAT, "corrupt JPEG: %s", jf.msg);
    }
    jpeg_create_decompress(&ci);
    jpeg_mem_src(&ci, b, (unsigned long)len);
    jpeg_read_header(&ci, TRUE);
    int from;
    if (ci.jpeg_color_space == JCS_GRAYSCALE) {
        ci.out_color_space = JCS_GRAYSCALE;
        from = 1;
    } else if (ci.jpeg_color_space == JCS_CMYK || ci.jpeg_color_space == JCS_YCCK) {
        ci.out_color_space = JCS_CMYK;
        from = 4;
    } else {
        ci.out_color_space = JCS_RGB;
        from = 3;
    }
    size_t npix;
    if (ae_mul_overflow(ci.image_width, ci.image_height, &npix) || npix > MAX_PIXELS) {
        snprintf(jf.msg, sizeof jf.msg, "%u x %u pixels exceed the limit of %zu",
                 (unsigned)ci.image_width, (unsigned)ci.image_height, MAX_PIXELS);
        longjmp(jf.jb, 1);
    }
    jpeg_start_decompress(&ci);
    size_t jw = ci.output_width, jh = ci.output_height;
    if (ci.output_components != from) {
        snprintf(jf.msg, sizeof jf.msg, "unexpected component count %d", ci.output_components);
        longjmp(jf.jb, 1);
    }
    raw = ae_alloc(a, jh * jw * (size_t)from);
    if (!raw) {
        snprintf(jf.msg, sizeof jf.msg, "out of memory for %zu x %zu pixels", jw, jh);
        longjmp(jf.jb, 1);
    }
    while (ci.output_scanline < ci.output_height) {
        JSAMPROW row = raw + (size_t)ci.output_scanline * jw * (size_t)from;
        jpeg_read_scanlines(&ci, &row, 1);
    }
    int cmyk = ci.out_color_space == JCS_CMYK;
    jpeg_finish_decompress(&ci);
    jpeg_destroy_decompress(&ci);
    if (cmyk) {
        /* Adobe CMYK JPEGs store inverted values: R = C * K / 255. */
        uint8_t *p = raw;
        for (size_t i = 0; i < jh * jw; i++, p += 4) {
            unsigned k = p[3];
            p[0] = (uint8_t)((p[0] * k + 127) / 255);
            p[1] = (uint8_t)((p[1] * k + 127) / 255);
            p[2] = (uint8_t)((p[2] * k + 127) / 255);
            p[3] = 255;
        }
    }
    if (from != channels) {
        out = ae_alloc(a, jh * jw * (size_t)channels);
        if (!out) {
            ae_free(a, raw);
            return ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory for %zu x %zu pixels", jw, jh);
        }
        convert_pixels(raw, from, out, channels, jh * jw);
        ae_free(a, raw);
        raw = out;
    }
    *pix = raw;
    *h = jh;
    *w = jw;
    return AE_OK;
#endif
}

ae_status ae_image_decode(const ae_allocator *a, ae_errbuf *e, const char *name, const void *buf,
                          size_t len, int channels, uint8_t **pix, size_t *h, size_t *w) {
    const uint8_t *b = buf;
    if (len >= 8 && b[0] == 0x89 && memcmp(b + 1, "PNG", 3) == 0)
        return ae_png_decode(a, e, name, buf, len, channels, pix, h, w);
    if (len >= 3 && b[0] == 0xff && b[1] == 0xd8)
        return ae_jpeg_decode(a, e, name, buf, len, channels, pix, h, w);
    *pix = NULL;
    ae_src_name c;
    ae_src_name_init(&c, e, name);
    return ae_src_fail(&c, AE_ERR_FORMAT, "neither a PNG nor a JPEG file");
}

/* ---- resize ---- */

/* torch's area_pixel_compute_source_index for linear modes with
 * align_corners=False: the source coordinate of output pixel i, clamped at
 * 0, split into the lower index, the upper one and the weight of the upper. */
static void taps(size_t i, size_t in, size_t out, size_t *lo, size_t *hi, float *t) {
    float scale = (float)in / (float)out;
    float s = ((float)i + 0.5f) * scale - 0.5f;
    if (s < 0.0f) s = 0.0f;
    size_t l = (size_t)s;
    if (l > in - 1) l = in - 1;
    *lo = l;
    *hi = l + 1 < in ? l + 1 : l;
    *t = s - (float)l;
}

void ae_image_resize(const uint8_t *src, size_t sh, size_t sw, size_t c, size_t rh, size_t rw,
                     size_t oy, size_t ox, float *dst, size_t dh, size_t dw) {
    const float inv = 1.0f / 255.0f;
    if (rh == sh && rw == sw && oy == 0 && ox == 0 && dh == sh && dw == sw) {
        /* The same size: every weight is 0 or 1, the values as they are. */
        for (size_t k = 0; k < c; k++)
            for (size_t i = 0; i < dh * dw; i++) dst[k * dh * dw + i] = src[i * c + k] * inv;
        return;
    }
    /* The columns' taps, computed once per block of columns. */
    enum { BLOCK = 256 };
    size_t xlo[BLOCK], xhi[BLOCK];
    float xt[BLOCK];
    for (size_t xb = 0; xb < dw; xb += BLOCK) {
        size_t nx = dw - xb < BLOCK ? dw - xb : BLOCK;
        for (size_t x = 0; x < nx; x++) taps(ox + xb + x, sw, rw, &xlo[x], &xhi[x], &xt[x]);
        for (size_t y = 0; y < dh; y++) {
            size_t y0, y1;
            float ty;
            taps(oy + y, sh, rh, &y0, &y1, &ty);
            const uint8_t *r0 = src + y0 * sw * c, *r1 = src + y1 * sw * c;
            for (size_t k = 0; k < c; k++) {
                float *out = dst + (k * dh + y) * dw + xb;
                for (size_t x = 0; x < nx; x++) {
                    float tx = xt[x];
                    float p00 = r0[xlo[x] * c + k] * inv, p01 = r0[xhi[x] * c + k] * inv;
                    float p10 = r1[xlo[x] * c + k] * inv, p11 = r1[xhi[x] * c + k] * inv;
                    /* torch's order: the two rows' horizontal blends, then vertical. */
                    float top = (1.0f - tx) * p00 + tx * p01, bot = (1.0f - tx) * p10 + tx * p11;
                    out[x] = (1.0f - ty) * top + ty * bot;
                }
            }
        }
    }
}
