/* Data for a trained model: the model's value convention applied to a
 * dataset (ae_model_prepare_data). In train/ because it reads both a
 * model and a dataset. */
#include "data/data.h"
#include "model/model.h"

ae_status ae_model_prepare_data(const ae_model *m, ae_dataset *ds) {
    static const char who[] = "ae_model_prepare_data";
    if (!ds) return AE_ERR_INVALID_ARG;
    ae_errbuf *e = ae_dataset_errbuf(ds);
    if (!m) return ae_error(e, AE_ERR_INVALID_ARG, "%s: the model is NULL", who);
    if (ae_dataset_dim(ds) != m->in_size)
        return ae_error(e, AE_ERR_SHAPE, "%s: %zu values per sample; the model takes %zu", who,
                        ae_dataset_dim(ds), m->in_size);
    ae_data_convention c;
    c.struct_size = sizeof c;
    ae_model_data_convention(m, &c, NULL, NULL, 0);
    size_t n = c.std_count;
    /* The model's statistics are read in place (mean, then std). */
    return ae_dataset_conform(ds, &c, n ? m->conv_stats : NULL, n ? m->conv_stats + m->conv_cap : NULL);
}
