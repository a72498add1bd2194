/* ONNX import (placeholder until the importer lands). */
#include <stdio.h>
#include <string.h>

#include "model/model.h"
#include "onnx.h"

void ae_onnx_import_options_init(ae_onnx_import_options *opts) {
    if (!opts) return;
    memset(opts, 0, sizeof *opts);
    opts->struct_size = sizeof *opts;
}

ae_status ae_model_import_onnx(ae_model **out, const char *path, const ae_onnx_import_options *opts,
                               char *err, size_t err_size) {
    (void)path;
    (void)opts;
    if (err && err_size) snprintf(err, err_size, "not yet");
    if (out) *out = NULL;
    return AE_ERR_UNSUPPORTED;
}

ae_status ae_model_import_onnx_buffer(ae_model **out, const void *buf, size_t size,
                                      const ae_onnx_import_options *opts, char *err,
                                      size_t err_size) {
    (void)buf;
    (void)size;
    return ae_model_import_onnx(out, NULL, opts, err, err_size);
}
