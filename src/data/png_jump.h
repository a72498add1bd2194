/* libpng's error handling as the PNG reader (image.c) and writer
 * (image_save.c) both take it: an error keeps its message and longjmps to
 * the setjmp of the call; a warning (e.g. an unknown chunk) is ignored.
 * Only with libpng (AE_HAVE_PNG). */
#ifndef AE_DATA_PNG_JUMP_H
#define AE_DATA_PNG_JUMP_H

#include <png.h>
#include <setjmp.h>

/* The error pointer given to png_create_*_struct. */
typedef struct ae_png_jump {
    char msg[160];
    jmp_buf jb;
} ae_png_jump;

void ae_png_fail_fn(png_structp png, png_const_charp msg);
void ae_png_warn_fn(png_structp png, png_const_charp msg);

#endif
