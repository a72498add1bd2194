// The public header compiled as C++11 with every warning an error (see
// tests/meson.build). Linking this program against libae checks that the
// declarations are extern "C": a mangled name would not resolve.
#include <libae/ae.h>
#include <libae/io.h>
#include <libae/hook.h>

static_assert(AE_OK == 0, "AE_OK is 0");

int main()
{
    ae_config *cfg = nullptr;
    ae_model *model = nullptr;
    ae_dataset *ds = nullptr;
    bool ok = true;

    ok = ok && ae_version_string()[0] != '\0';
    ok = ok && ae_version_number() == static_cast<uint32_t>(AE_VERSION_NUMBER);
    ok = ok && ae_config_create(&cfg, nullptr) == AE_OK;
    ok = ok && ae_config_set_input_size(cfg, 4) == AE_OK;
    ok = ok && ae_config_add_dense(cfg, 2, AE_ACT_TANH) == AE_OK;
    ok = ok && ae_config_mirror_decoder(cfg, AE_ACT_IDENTITY) == AE_OK;
    ok = ok && ae_model_create(&model, cfg) == AE_OK;
    ok = ok && ae_model_code_size(model) == 2;
    // <libae/vae.h> (through ae.h): not a VAE, so refused.
    ok = ok && ae_vae_loss_terms(model, nullptr, nullptr) == AE_ERR_STATE;
    ok = ok && ae_model_set_meta(model, "k", "v") == AE_OK;
    ok = ok && ae_model_meta_count(model) == 1;
    ok = ok && ae_model_set_grad_reduce(model, nullptr, nullptr) == AE_OK;
    {
        size_t size = 0;
        ok = ok && ae_model_save_buffer(model, nullptr, 0, &size, AE_SAVE_MODEL) == AE_ERR_RANGE;
        ok = ok && size > 0;
    }
    ok = ok && ae_dataset_create(&ds, nullptr) == AE_OK;
    const float a[2] = {1.0f, 2.0f}, b[2] = {1.0f, 4.0f};
    double mse = 0.0;
    ok = ok && ae_metric_mse(a, b, 2, &mse) == AE_OK && mse == 2.0;
    ae_dataset_destroy(ds);
    ae_model_destroy(model);
    ae_config_destroy(cfg);
    return ok ? 0 : 1;
}
