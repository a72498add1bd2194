/* Grey-scale images as binary PGM (P5), for the examples: the library has
 * no image writer (the `ae` tool's PNG writer is its own). Only the C
 * library is used. */
#ifndef AE_EXAMPLES_PGM_H
#define AE_EXAMPLES_PGM_H

#include <stdio.h>
#include <stdlib.h>

/* Writes a width x height image of values in [0, 1] (clamped; row-major)
 * as an 8-bit PGM. Returns 0, or -1 with a message on stderr. */
static inline int pgm_write(const char *path, const float *pixels, size_t width, size_t height) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        return -1;
    }
    int ok = fprintf(f, "P5\n%zu %zu\n255\n", width, height) > 0;
    for (size_t i = 0; ok && i < width * height; i++) {
        float v = pixels[i];
        int byte = v != v ? 0 : v <= 0.0f ? 0 : v >= 1.0f ? 255 : (int)(v * 255.0f + 0.5f);
        ok = fputc(byte, f) != EOF;
    }
    if (fclose(f) != 0) ok = 0;
    if (!ok) fprintf(stderr, "%s: write error\n", path);
    return ok ? 0 : -1;
}

/* Lays out n images of ih x iw pixels in a grid of `cols` columns with a
 * `gap`-pixel white border around each, and writes it as a PGM. */
static inline int pgm_write_grid(const char *path, const float *images, size_t n, size_t ih,
                                 size_t iw, size_t cols, size_t gap) {
    size_t rows = (n + cols - 1) / cols;
    size_t W = cols * (iw + gap) + gap, H = rows * (ih + gap) + gap;
    float *canvas = malloc(W * H * sizeof *canvas);
    if (!canvas) {
        fprintf(stderr, "%s: out of memory\n", path);
        return -1;
    }
    for (size_t i = 0; i < W * H; i++) canvas[i] = 1.0f;
    for (size_t k = 0; k < n; k++) {
        size_t y0 = gap + (k / cols) * (ih + gap), x0 = gap + (k % cols) * (iw + gap);
        for (size_t y = 0; y < ih; y++)
            for (size_t x = 0; x < iw; x++)
                canvas[(y0 + y) * W + x0 + x] = images[k * ih * iw + y * iw + x];
    }
    int rc = pgm_write(path, canvas, W, H);
    free(canvas);
    return rc;
}

#endif
