/*
 * A downstream program: built by the CMake project in cmake/ (find_package)
 * and the meson project in meson/ (libae as a subproject), see
 * tests/consumer/consumer_test.sh. It trains a small autoencoder for a few
 * steps and exits 0 when the library it runs with behaves and is the
 * release its header names; otherwise it prints why and exits 1.
 */
#include <libae/ae.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    enum { N = 16, D = 6, STEPS = 50 };
    float x[N * D], code[N * 2];
    float first = 0.0f, loss = 0.0f;
    ae_config *cfg = NULL;
    ae_model *model = NULL;
    int i, rc = 1;

    if (strcmp(ae_version_string(), AE_VERSION_STRING) != 0 ||
        ae_version_number() != (uint32_t)AE_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header %s, library %s\n", AE_VERSION_STRING,
                ae_version_string());
        return 1;
    }
    for (i = 0; i < N * D; i++)
        x[i] = (float)((i * 5) % 13) / 12.0f;

    if (ae_config_create(&cfg, NULL) != AE_OK) {
        fprintf(stderr, "consumer: ae_config_create failed\n");
        return 1;
    }
    if (ae_config_set_input_size(cfg, D) != AE_OK ||
        ae_config_add_dense(cfg, 2, AE_ACT_RELU) != AE_OK || ae_config_mark_code(cfg) != AE_OK ||
        ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID) != AE_OK ||
        ae_config_set_int(cfg, AE_P_SEED, 7) != AE_OK ||
        ae_config_set_float(cfg, AE_P_LEARNING_RATE, 1e-2) != AE_OK ||
        ae_model_create(&model, cfg) != AE_OK) {
        fprintf(stderr, "consumer: %s\n", ae_config_last_error(cfg));
        goto out;
    }
    for (i = 0; i < STEPS; i++) {
        if (ae_train_step(model, x, NULL, N, &loss) != AE_OK || !isfinite(loss)) {
            fprintf(stderr, "consumer: step %d: %s\n", i, ae_model_last_error(model));
            goto out;
        }
        if (i == 0)
            first = loss;
    }
    if (!(loss < first)) {
        fprintf(stderr, "consumer: the loss did not fall (%g -> %g)\n", (double)first,
                (double)loss);
        goto out;
    }
    if (ae_encode(model, x, N, code) != AE_OK) {
        fprintf(stderr, "consumer: ae_encode: %s\n", ae_model_last_error(model));
        goto out;
    }
    printf("libae %s: %d steps, loss %.5f -> %.5f\n", ae_version_string(), STEPS,
           (double)first, (double)loss);
    rc = 0;
out:
    ae_model_destroy(model);
    ae_config_destroy(cfg);
    return rc;
}
