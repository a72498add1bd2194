/* The KL term of a variational autoencoder's Gaussian latent against N(0, I). */
#include <math.h>

#include "losses.h"

double ae_vae_kl(const float *ml, size_t batch, size_t dim) {
    double acc = 0.0;
    for (size_t r = 0; r < batch; r++) {
        const float *mu = ml + r * 2 * dim, *lv = mu + dim;
        for (size_t j = 0; j < dim; j++)
            acc += -0.5 * (1.0 + (double)lv[j] - (double)mu[j] * (double)mu[j] - exp((double)lv[j]));
    }
    return acc;
}
