/* Sparsity penalties on a layer's output z [batch, n].
 * KL: ρ̂_j = mean_b z_bj, clamped to [1e-6, 1-1e-6] (libae's rule; the
 * gradient is 0 where the clamp acts, as torch.clamp's);
 * penalty = λ R_j [ρ log(ρ/ρ̂_j) + (1-ρ) log((1-ρ)/(1-ρ̂_j))], R mean or sum.
 * L1: λ · (1/batch) Σ_bj |z_bj|. */
#include <math.h>

#include "losses.h"

/* Column means in double (one pass over z, row by row). */
static void column_means(const float *z, size_t batch, size_t n, float *mean) {
    for (size_t j = 0; j < n; j++) mean[j] = 0.0f;
    for (size_t b = 0; b < batch; b++)
        for (size_t j = 0; j < n; j++) mean[j] += z[b * n + j];
    float inv = 1.0f / (float)batch;
    for (size_t j = 0; j < n; j++) mean[j] *= inv;
}

double ae_kl_penalty(const ae_penalty_spec *p, const float *z, size_t batch, size_t n) {
    double rho = p->kl_rho, acc = 0.0;
    for (size_t j = 0; j < n; j++) {
        double m = 0.0;
        for (size_t b = 0; b < batch; b++) m += z[b * n + j];
        m /= (double)batch;
        if (m != m) return NAN;
        if (m < AE_KL_RHO_MIN) m = AE_KL_RHO_MIN;
        if (m > 1.0 - AE_KL_RHO_MIN) m = 1.0 - AE_KL_RHO_MIN;
        acc += rho * log(rho / m) + (1.0 - rho) * log((1.0 - rho) / (1.0 - m));
    }
    if (!p->kl_sum) acc /= (double)n;
    return p->kl_lambda * acc;
}

void ae_kl_penalty_grad(const ae_penalty_spec *p, const float *z, size_t batch, size_t n,
                        float *dz, float *tmp) {
    column_means(z, batch, n, tmp);
    double scale = p->kl_lambda / (double)batch / (p->kl_sum ? 1.0 : (double)n);
    double rho = p->kl_rho;
    for (size_t j = 0; j < n; j++) {
        double m = tmp[j];
        /* d/dρ̂ = -ρ/ρ̂ + (1-ρ)/(1-ρ̂); no gradient where the clamp acts. */
        if (m < AE_KL_RHO_MIN || m > 1.0 - AE_KL_RHO_MIN)
            tmp[j] = 0.0f;
        else
            tmp[j] = (float)(scale * (-rho / m + (1.0 - rho) / (1.0 - m)));
    }
    for (size_t b = 0; b < batch; b++)
        for (size_t j = 0; j < n; j++) dz[b * n + j] += tmp[j];
}

double ae_l1_penalty(const ae_penalty_spec *p, const float *z, size_t batch, size_t n) {
    double acc = 0.0;
    for (size_t i = 0; i < batch * n; i++) acc += fabsf(z[i]);
    return p->l1_lambda * acc / (double)batch;
}

void ae_l1_penalty_grad(const ae_penalty_spec *p, const float *z, size_t batch, size_t n, float *dz) {
    float g = (float)(p->l1_lambda / (double)batch);
    for (size_t i = 0; i < batch * n; i++)
        dz[i] += z[i] > 0.0f ? g : z[i] < 0.0f ? -g : 0.0f;
}
