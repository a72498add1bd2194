/* The position of an ae_fit run kept with the model (model.h): allocated
 * by ae_fit (src/train/fit.c) and the loader (src/io/io.c), freed with the
 * model. */
#include <string.h>

#include "model/model.h"

ae_fit_state *ae_fit_state_new(const ae_allocator *a, size_t np, size_t nb) {
    ae_fit_state *fs = ae_calloc(a, 1, sizeof *fs);
    if (!fs) return NULL;
    fs->nbest_p = np;
    fs->nbest_b = nb;
    /* +1: an arena may be empty (a model without layer state). */
    if (np || nb) {
        fs->best_p = ae_calloc(a, np + 1, sizeof(float));
        fs->best_b = ae_calloc(a, nb + 1, sizeof(float));
        if (!fs->best_p || !fs->best_b) {
            ae_fit_state_free(a, fs);
            return NULL;
        }
    }
    return fs;
}

void ae_fit_state_free(const ae_allocator *a, ae_fit_state *fs) {
    if (!fs) return;
    ae_free(a, fs->best_p);
    ae_free(a, fs->best_b);
    ae_free(a, fs);
}

int ae_fit_state_current(const ae_model *m) {
    const ae_fit_state *fs = m->fit;
    if (!fs || fs->model_steps != m->steps) return 0;
    if (!(fs->flags & AE_FITS_BEST)) return 1;
    return fs->nbest_p == m->nparams && fs->nbest_b == m->nbuffers;
}
