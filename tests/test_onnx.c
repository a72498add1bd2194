/* ONNX export and import (<libae/onnx.h>, src/io/onnx_*.c): arguments and
 * refusals, the buffer and file variants, export -> import round trips bit
 * for bit for every layer kind, the graphs torch.onnx.export writes for the
 * seeds' models against PyTorch's outputs and training steps (fixtures from
 * tests/fixtures/make_onnx.py), malformed and unsupported graphs refused
 * with a message. ONNX Runtime runs the exports in tests/onnx/. */
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#define OK(call) assert_int_equal((call), AE_OK)

static ae_model *dense_model(void) {
    ae_config *c = NULL;
    ae_model *m = NULL;
    OK(ae_config_create(&c, NULL));
    OK(ae_config_set_input_size(c, 12));
    OK(ae_config_add_dense(c, 8, AE_ACT_RELU));
    OK(ae_config_add_dense(c, 3, AE_ACT_IDENTITY));
    OK(ae_config_mirror_decoder(c, AE_ACT_SIGMOID));
    OK(ae_model_create(&m, c));
    ae_config_destroy(c);
    return m;
}

static void test_export_arguments(void **state) {
    (void)state;
    ae_model *m = dense_model();
    size_t size = 0;
    assert_int_equal(ae_model_export_onnx(NULL, "x.onnx", AE_ONNX_FULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx(m, NULL, AE_ONNX_FULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx(m, "", AE_ONNX_FULL), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx(m, "x.onnx", (ae_onnx_part)7), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_model_last_error(m), "part"));
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 0, NULL, AE_ONNX_FULL),
                     AE_ERR_INVALID_ARG);
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 10, &size, AE_ONNX_FULL),
                     AE_ERR_INVALID_ARG);
    /* snprintf-style: the size, then the bytes */
    assert_int_equal(ae_model_export_onnx_buffer(m, NULL, 0, &size, AE_ONNX_FULL), AE_ERR_RANGE);
    assert_true(size > 12 * 8 * 4);
    unsigned char *buf = malloc(size);
    size_t size2 = 0;
    assert_int_equal(ae_model_export_onnx_buffer(m, buf, size - 1, &size2, AE_ONNX_FULL),
                     AE_ERR_RANGE);
    assert_int_equal(size2, size);
    OK(ae_model_export_onnx_buffer(m, buf, size, &size2, AE_ONNX_FULL));
    /* the file variant writes the same bytes */
    char path[] = "/tmp/ae-onnx-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    OK(ae_model_export_onnx(m, path, AE_ONNX_FULL));
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    unsigned char *file = malloc(size + 1);
    assert_int_equal(fread(file, 1, size + 1, f), size);
    fclose(f);
    assert_memory_equal(file, buf, size);
    /* a directory that does not exist: AE_ERR_IO, nothing left behind */
    assert_int_equal(ae_model_export_onnx(m, "/nonexistent-dir/m.onnx", AE_ONNX_FULL), AE_ERR_IO);
    assert_non_null(strstr(ae_model_last_error(m), "/nonexistent-dir/m.onnx"));
    unlink(path);
    free(file);
    free(buf);
    ae_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_export_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
