/* Pictures as PNG: reconstructions under their originals (or clean,
 * corrupted and denoised rows), tiles
 * of decoder features or samples, and a scatter of 2-D codes coloured by
 * label with a legend drawn in a small built-in digit font. The pictures
 * are drawn here and written by the library (ae_image_save_png), the one
 * writer of every file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

typedef struct canvas {
    size_t w, h;
    unsigned char *rgb;
} canvas;

/* w and h within PIC_MAX_SIDE (checked by the callers), so w * h * 3 fits. */
static int canvas_init(canvas *c, size_t w, size_t h, unsigned char grey) {
    c->w = w;
    c->h = h;
    c->rgb = malloc(w * h * 3);
    if (!c->rgb) return fail(EXIT_RUN, "out of memory for a %zux%zu picture", w, h);
    memset(c->rgb, grey, w * h * 3);
    return 0;
}

static void put(canvas *c, size_t x, size_t y, const unsigned char col[3]) {
    if (x >= c->w || y >= c->h) return;
    memcpy(c->rgb + (y * c->w + x) * 3, col, 3);
}

static void rect(canvas *c, size_t x, size_t y, size_t w, size_t h, const unsigned char col[3]) {
    for (size_t j = y; j < y + h; j++)
        for (size_t i = x; i < x + w; i++) put(c, i, j, col);
}

/* Written by the library (ae_image_save_png): atomically, through
 * symbolic links, never over a device or FIFO (docs/files.md). */
static int canvas_save(canvas *c, const char *path) {
    char err[512];
    if (ae_image_save_png(path, c->rgb, c->h, c->w, 3, NULL, err, sizeof err) != AE_OK)
        return fail(EXIT_RUN, "cannot write the picture: %s", err);
    return 0;
}

/* The range shown as black..white: [0, 1] when the values lie in it (with
 * a little slack for rounding), else their minimum and maximum. */
static void value_range(const float *x, size_t count, float *lo, float *hi) {
    float mn = x[0], mx = x[0];
    for (size_t i = 1; i < count; i++) {
        if (x[i] < mn) mn = x[i];
        if (x[i] > mx) mx = x[i];
    }
    if (mn >= -1e-3f && mx <= 1.001f) {
        *lo = 0.0f;
        *hi = 1.0f;
    } else {
        *lo = mn;
        *hi = mx > mn ? mx : mn + 1.0f;
    }
}

static unsigned char to_byte(float v, float lo, float hi) {
    float t = (v - lo) / (hi - lo);
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    return (unsigned char)lrintf(t * 255.0f);
}

/* Draws one c x h x w image at (x0, y0) magnified `zoom` times. Channel
 * counts other than 3 show the first channel in grey. */
static void draw_image(canvas *cv, size_t x0, size_t y0, const float *img, size_t c, size_t h,
                       size_t w, size_t zoom, float lo, float hi) {
    for (size_t y = 0; y < h; y++)
        for (size_t x = 0; x < w; x++) {
            unsigned char col[3];
            for (int k = 0; k < 3; k++) {
                size_t ch = c == 3 ? (size_t)k : 0;
                col[k] = to_byte(img[(ch * h + y) * w + x], lo, hi);
            }
            rect(cv, x0 + x * zoom, y0 + y * zoom, zoom, zoom, col);
        }
}

/* The extent of n tiles of `tile` pixels with `gap` pixels before each
 * and after the last: n (tile + gap) + gap, or 0 when over PIC_MAX_SIDE.
 * The arguments are bounded first, so nothing wraps even in 32 bits. */
static size_t extent(size_t n, size_t tile, size_t gap) {
    if (n > PIC_MAX_SIDE || tile > PIC_MAX_SIDE || gap > PIC_MAX_SIDE) return 0;
    size_t e = n * (tile + gap) + gap;
    return e <= PIC_MAX_SIDE ? e : 0;
}

/* Refuses a picture over the limits; returns EXIT_RUN. */
static int too_big(const char *path, size_t n, size_t h, size_t w) {
    return fail(EXIT_RUN,
                "%s: a picture of %zu samples of %zux%zu pixels would exceed %d x %d pixels or %zu "
                "in all; show fewer samples (-n)",
                path, n, h, w, PIC_MAX_SIDE, PIC_MAX_SIDE, PIC_MAX_PIXELS);
}

static size_t zoom_for(size_t h, size_t w) {
    size_t big = h > w ? h : w, z = 1;
    while (big * (z + 1) <= 84 && z < 8) z++;
    return z;
}

int png_rows(const char *path, const float *const *sets, size_t nsets, size_t n, size_t c,
             size_t h, size_t w) {
    /* Bounded first, so that no size below wraps. */
    if (h > PIC_MAX_SIDE || w > PIC_MAX_SIDE || n > PIC_MAX_PIXELS) return too_big(path, n, h, w);
    size_t dim = c * h * w, cols = n < 10 ? n : 10, groups = (n + cols - 1) / cols;
    size_t z = zoom_for(h, w), tw = w * z, th = h * z, gap = 2, group_gap = 10;
    /* Each group: a row of each set with a gap after each, then group_gap
       (none after the last). */
    size_t pw = extent(cols, tw, gap), ph = extent(groups, nsets * (th + gap) - gap + group_gap, gap);
    if (ph) ph -= group_gap;
    if (!pw || !ph || pw * ph > PIC_MAX_PIXELS) return too_big(path, n, h, w);
    size_t gh = nsets * (th + gap); /* one group: a row of each set */
    float lo, hi;
    value_range(sets[0], n * dim, &lo, &hi);
    canvas cv;
    if (canvas_init(&cv, pw, ph, 96)) return EXIT_RUN;
    for (size_t i = 0; i < n; i++) {
        size_t col = i % cols, group = i / cols;
        size_t px = gap + col * (tw + gap), py = gap + group * (gh + group_gap);
        for (size_t k = 0; k < nsets; k++)
            draw_image(&cv, px, py + k * (th + gap), sets[k] + i * dim, c, h, w, z, lo, hi);
    }
    int rc = canvas_save(&cv, path);
    free(cv.rgb);
    return rc;
}

int png_grid(const char *path, const float *x, size_t n, size_t c, size_t h, size_t w,
             int per_tile) {
    /* Bounded first, so that no size below wraps. */
    if (h > PIC_MAX_SIDE || w > PIC_MAX_SIDE || n > PIC_MAX_PIXELS) return too_big(path, n, h, w);
    size_t dim = c * h * w, cols = (size_t)ceil(sqrt((double)n)), rows = (n + cols - 1) / cols;
    size_t z = n <= 64 ? zoom_for(h, w) : (h < 20 ? 2 : 1), gap = 2;
    size_t tw = w * z, th = h * z, pw = extent(cols, tw, gap), ph = extent(rows, th, gap);
    if (!pw || !ph || pw * ph > PIC_MAX_PIXELS) return too_big(path, n, h, w);
    float lo = 0, hi = 1;
    if (!per_tile) value_range(x, n * dim, &lo, &hi);
    canvas cv;
    if (canvas_init(&cv, pw, ph, 96)) return EXIT_RUN;
    for (size_t i = 0; i < n; i++) {
        const float *img = x + i * dim;
        if (per_tile) {
            /* Features are signed: grey is 0, white and black ±max|v|. */
            float m = 0.0f;
            for (size_t j = 0; j < dim; j++) m = fabsf(img[j]) > m ? fabsf(img[j]) : m;
            if (m == 0.0f) m = 1.0f;
            lo = -m;
            hi = m;
        }
        draw_image(&cv, gap + (i % cols) * (tw + gap), gap + (i / cols) * (th + gap), img, c, h, w,
                   z, lo, hi);
    }
    int rc = canvas_save(&cv, path);
    free(cv.rgb);
    return rc;
}

/* ---- scatter ---- */

static size_t gcd(size_t a, size_t b) {
    while (b) {
        size_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Matplotlib's tab10 palette. */
static const unsigned char PALETTE[10][3] = {
    {31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},   {148, 103, 189},
    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

/* 3x5 digits and a minus sign, one row of 3 bits per entry, top first. */
static const unsigned char FONT[11][5] = {
    {7, 5, 5, 5, 7}, {2, 6, 2, 2, 7}, {7, 1, 7, 4, 7}, {7, 1, 7, 1, 7}, {5, 5, 7, 1, 1}, {7, 4, 7, 1, 7},
    {7, 4, 7, 5, 7}, {7, 1, 1, 1, 1}, {7, 5, 7, 5, 7}, {7, 5, 7, 1, 7}, {0, 0, 7, 0, 0}};

static void draw_number(canvas *cv, size_t x, size_t y, long v, size_t scale,
                        const unsigned char col[3]) {
    char buf[24];
    snprintf(buf, sizeof buf, "%ld", v);
    for (const char *p = buf; *p; p++, x += 4 * scale) {
        int g = *p == '-' ? 10 : *p - '0';
        for (size_t r = 0; r < 5; r++)
            for (size_t b = 0; b < 3; b++)
                if (FONT[g][r] & (4 >> b)) rect(cv, x + b * scale, y + r * scale, scale, scale, col);
    }
}

int png_scatter(const char *path, const float *xy, const int32_t *labels, size_t n) {
    const size_t plot = 600, margin = 20, legend = 110;
    const unsigned char frame[3] = {80, 80, 80},
                        axis[3] = {205, 205, 205}, black[3] = {0, 0, 0};
    float x0 = xy[0], x1 = xy[0], y0 = xy[1], y1 = xy[1];
    for (size_t i = 1; i < n; i++) {
        x0 = fminf(x0, xy[2 * i]), x1 = fmaxf(x1, xy[2 * i]);
        y0 = fminf(y0, xy[2 * i + 1]), y1 = fmaxf(y1, xy[2 * i + 1]);
    }
    /* 5% padding; a flat axis gets a unit span. */
    float px = x1 > x0 ? (x1 - x0) * 0.05f : 0.5f, py = y1 > y0 ? (y1 - y0) * 0.05f : 0.5f;
    x0 -= px, x1 += px, y0 -= py, y1 += py;
    canvas cv;
    if (canvas_init(&cv, plot + 2 * margin + (labels ? legend : 0), plot + 2 * margin, 255))
        return EXIT_RUN;
    /* Zero lines where they fall inside, then the frame. */
    if (x0 < 0 && x1 > 0)
        rect(&cv, margin + (size_t)((0 - x0) / (x1 - x0) * (float)(plot - 1)), margin, 1, plot, axis);
    if (y0 < 0 && y1 > 0)
        rect(&cv, margin, margin + plot - 1 - (size_t)((0 - y0) / (y1 - y0) * (float)(plot - 1)),
             plot, 1, axis);
    rect(&cv, margin - 1, margin - 1, plot + 2, 1, frame);
    rect(&cv, margin - 1, margin + plot, plot + 2, 1, frame);
    rect(&cv, margin - 1, margin - 1, 1, plot + 2, frame);
    rect(&cv, margin + plot, margin - 1, 1, plot + 2, frame);
    /* Distinct labels for the legend (at most 20 listed). */
    int32_t seen[20];
    size_t nseen = 0;
    for (size_t i = 0; labels && i < n && nseen < 20; i++) {
        size_t k = 0;
        while (k < nseen && seen[k] != labels[i]) k++;
        if (k == nseen) seen[nseen++] = labels[i];
    }
    for (size_t a = 1; a < nseen; a++)
        for (size_t b = a; b > 0 && seen[b - 1] > seen[b]; b--) {
            int32_t t = seen[b];
            seen[b] = seen[b - 1];
            seen[b - 1] = t;
        }
    /* Points in a scrambled order, so that no class is drawn wholly on top. */
    size_t stride = 7919;
    while (n > 1 && gcd(stride, n) != 1) stride++;
    for (size_t t = 0; t < n; t++) {
        size_t i = n > 1 ? (t * stride) % n : 0;
        /* (t·stride) mod n visits every index once when gcd(stride, n) = 1. */
        const unsigned char *col = PALETTE[0];
        if (labels) {
            long l = labels[i];
            col = PALETTE[((l % 10) + 10) % 10];
        }
        size_t sx = margin + (size_t)((xy[2 * i] - x0) / (x1 - x0) * (float)(plot - 1));
        size_t sy = margin + plot - 1 - (size_t)((xy[2 * i + 1] - y0) / (y1 - y0) * (float)(plot - 1));
        rect(&cv, sx - 1, sy - 1, 3, 3, col);
    }
    for (size_t k = 0; k < nseen; k++) {
        size_t lx = plot + 2 * margin + 10, ly = margin + 10 + k * 26;
        long l = seen[k];
        rect(&cv, lx, ly, 14, 14, PALETTE[((l % 10) + 10) % 10]);
        draw_number(&cv, lx + 22, ly + 2, l, 2, black);
    }
    int rc = canvas_save(&cv, path);
    free(cv.rgb);
    return rc;
}
