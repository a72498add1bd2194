/*
 * The public headers alone (ae.h, io.h, and hook.h, which ae.h does not include),
 * compiled as strict C11 with every warning an error (see tests/meson.build):
 * they must need no other include, no extension, and no definition from the
 * library's build.
 */
#include <libae/ae.h>
#include <libae/io.h>
#include <libae/hook.h>

_Static_assert(AE_OK == 0, "AE_OK is 0");
_Static_assert(AE_VERSION_NUMBER ==
                   AE_VERSION_MAJOR * 10000 + AE_VERSION_MINOR * 100 + AE_VERSION_PATCH,
               "version macros agree");

int main(void)
{
    ae_config *cfg = NULL;
    ae_dataset *ds = NULL;
    ae_layer_info info = {sizeof info, AE_LAYER_DENSE, AE_ACT_RELU, 0, 0, 0, 0, 0};
    int ok = 1;

    ok &= ae_version_number() == (uint32_t)AE_VERSION_NUMBER;
    ok &= ae_status_name(AE_ERR_SHAPE)[0] != '\0';
    ok &= ae_config_create(&cfg, NULL) == AE_OK;
    ok &= ae_config_set_input_size(cfg, 4) == AE_OK;
    ok &= ae_dataset_create(&ds, NULL) == AE_OK;
    ok &= ae_dataset_count(ds) == 0;
    ok &= info.struct_size == sizeof(ae_layer_info);
    ok &= ae_config_add_gaussian(cfg, 2) == AE_OK; /* <libae/vae.h> through ae.h */
    ok &= AE_LAYER_GAUSSIAN == 30 && AE_STAT_LOSS_VAE_KL == 9 && AE_P_VAE_BETA == 50;
    ok &= AE_FORMAT_VERSION_MAJOR == 1 && AE_SAVE_CHECKPOINT == 1;
    ok &= ae_model_meta_count(NULL) == 0;
    ok &= ae_model_set_grad_reduce(NULL, NULL, NULL) == AE_ERR_INVALID_ARG;
    ok &= AE_GRAD_SCALAR_COUNT == 7 && AE_STATE_PART_COUNT == 8;
    ok &= ae_model_set_batch_reduce(NULL, NULL, NULL) == AE_ERR_INVALID_ARG;
    ok &= ae_model_visit_state(NULL, NULL, NULL) == AE_ERR_INVALID_ARG;
    {
        const float a[2] = {1.0f, 2.0f}, b[2] = {1.0f, 4.0f};
        double mse = 0.0;
        ok &= ae_metric_mse(a, b, 2, &mse) == AE_OK && mse == 2.0;
    }
    ae_dataset_destroy(ds);
    ae_config_destroy(cfg);
    return ok ? 0 : 1;
}
