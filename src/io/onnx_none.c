/* The ONNX calls of a libae built without protobuf-c (-Donnx=disabled):
 * they exist, so the exported symbols do not depend on the build, and
 * report that ONNX is not built in. */
#include <stdio.h>
#include <string.h>

#include "model/model.h"

#define NOT_BUILT "libae was built without ONNX support (meson option -Donnx, needs protobuf-c)"

ae_status ae_model_export_onnx(const ae_model *m, const char *path, ae_onnx_part part) {
    (void)path;
    (void)part;
    if (!m) return AE_ERR_INVALID_ARG;
    return ae_error((ae_errbuf *)&m->err, AE_ERR_UNSUPPORTED, NOT_BUILT);
}

ae_status ae_model_export_onnx_buffer(const ae_model *m, void *buf, size_t capacity, size_t *size,
                                      ae_onnx_part part) {
    (void)buf;
    (void)capacity;
    (void)part;
    if (size) *size = 0;
    if (!m) return AE_ERR_INVALID_ARG;
    return ae_error((ae_errbuf *)&m->err, AE_ERR_UNSUPPORTED, NOT_BUILT);
}

void ae_onnx_import_options_init(ae_onnx_import_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
}

static ae_status refuse(ae_model **out, char *err, size_t err_size) {
    if (err && err_size) snprintf(err, err_size, "%s", NOT_BUILT);
    if (!out) return AE_ERR_INVALID_ARG;
    *out = NULL;
    return AE_ERR_UNSUPPORTED;
}

ae_status ae_model_import_onnx(ae_model **out, const char *path, const ae_onnx_import_options *opts,
                               char *err, size_t err_size) {
    (void)path;
    (void)opts;
    return refuse(out, err, err_size);
}

ae_status ae_model_import_onnx_buffer(ae_model **out, const void *buf, size_t size,
                                      const ae_onnx_import_options *opts, char *err,
                                      size_t err_size) {
    (void)buf;
    (void)size;
    (void)opts;
    return refuse(out, err, err_size);
}
