/*
 * A program outside the source tree that uses libae as an installed package:
 * it is compiled only with the flags `pkg-config ae` gives (see
 * install_test.sh). Exits 0 when the library behaves; prints why otherwise.
 */
#include <libae/ae.h>
#include <libae/io.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHECK(call)                                                                    \
    do {                                                                               \
        ae_status st_ = (call);                                                        \
        if (st_ != AE_OK) {                                                            \
            fprintf(stderr, "consumer: %s failed: %s (%s)\n", #call, ae_status_name(st_), \
                    model ? ae_model_last_error(model) : ae_config_last_error(cfg));   \
            ae_model_destroy(model);                                                   \
            ae_config_destroy(cfg);                                                    \
            return 1;                                                                  \
        }                                                                              \
    } while (0)

int main(void)
{
    ae_config *cfg = NULL;
    ae_model *model = NULL;
    float x[8 * 4];
    float code[8 * 2];
    float first = 0.0f, loss = 0.0f;
    int i;

    /* The header the program was compiled with and the library it runs
       with must be the same release. */
    if (strcmp(ae_version_string(), AE_VERSION_STRING) != 0 ||
        ae_version_number() != (uint32_t)AE_VERSION_NUMBER) {
        fprintf(stderr, "consumer: header version %s, library version %s\n",
                AE_VERSION_STRING, ae_version_string());
        return 1;
    }

    for (i = 0; i < 8 * 4; i++)
        x[i] = (float)((i * 7) % 11) / 10.0f;

    CHECK(ae_config_create(&cfg, NULL));
    CHECK(ae_config_set_input_size(cfg, 4));
    CHECK(ae_config_add_dense(cfg, 2, AE_ACT_RELU));
    CHECK(ae_config_mark_code(cfg));
    CHECK(ae_config_mirror_decoder(cfg, AE_ACT_SIGMOID));
    CHECK(ae_config_set_int(cfg, AE_P_SEED, 42));
    CHECK(ae_model_create(&model, cfg));

    if (ae_model_input_size(model) != 4 || ae_model_code_size(model) != 2 ||
        ae_model_output_size(model) != 4 || ae_model_layer_count(model) != 2) {
        fprintf(stderr, "consumer: unexpected model shape\n");
        ae_model_destroy(model);
        ae_config_destroy(cfg);
        return 1;
    }

    for (i = 0; i < 5; i++) {
        CHECK(ae_train_step(model, x, NULL, 8, &loss));
        if (i == 0)
            first = loss;
        if (!isfinite(loss)) {
            fprintf(stderr, "consumer: non-finite loss at step %d\n", i);
            ae_model_destroy(model);
            ae_config_destroy(cfg);
            return 1;
        }
    }
    CHECK(ae_encode(model, x, 8, code));
    if (ae_model_step_count(model) != 5) {
        fprintf(stderr, "consumer: step count %llu, expected 5\n",
                (unsigned long long)ae_model_step_count(model));
        ae_model_destroy(model);
        ae_config_destroy(cfg);
        return 1;
    }

    /* A checkpoint through memory resumes with the same code. */
    {
        unsigned char buf[4096];
        size_t size = 0;
        float code2[8 * 2];
        ae_model *loaded = NULL;
        CHECK(ae_model_set_meta(model, "origin", "consumer"));
        CHECK(ae_model_save_buffer(model, buf, sizeof buf, &size, AE_SAVE_CHECKPOINT));
        if (ae_model_load_buffer(&loaded, buf, size, cfg) != AE_OK) {
            fprintf(stderr, "consumer: load failed: %s\n", ae_config_last_error(cfg));
            ae_model_destroy(model);
            ae_config_destroy(cfg);
            return 1;
        }
        ae_encode(loaded, x, 8, code2);
        if (memcmp(code, code2, sizeof code) != 0 || ae_model_step_count(loaded) != 5 ||
            ae_model_meta_count(loaded) != 1) {
            fprintf(stderr, "consumer: the loaded checkpoint differs\n");
            ae_model_destroy(loaded);
            ae_model_destroy(model);
            ae_config_destroy(cfg);
            return 1;
        }
        ae_model_destroy(loaded);
    }

    printf("libae %s: 5 steps, loss %.6f -> %.6f\n", ae_version_string(), (double)first,
           (double)loss);
    ae_model_destroy(model);
    ae_config_destroy(cfg);
    return 0;
}
