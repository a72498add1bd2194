#include <math.h>
#include <string.h>

#include "core/pool.h"
#include "layers.h"

int ae_act_valid(int act) { return act >= AE_ACT_IDENTITY && act <= AE_ACT_ELU; }

/* PyTorch's functional names (torch.nn.functional.leaky_relu). */
static const char *const act_names[] = {"identity", "relu",     "leaky_relu", "sigmoid",
                                        "tanh",     "gelu",     "softplus",   "elu"};

const char *ae_activation_name(ae_activation act) {
    return ae_act_valid((int)act) ? act_names[act] : NULL;
}

ae_status ae_activation_from_name(const char *name, ae_activation *act) {
    if (!name || !act) return AE_ERR_INVALID_ARG;
    for (int i = AE_ACT_IDENTITY; i <= AE_ACT_ELU; i++)
        if (strcmp(name, act_names[i]) == 0) {
            *act = (ae_activation)i;
            return AE_OK;
        }
    return AE_ERR_INVALID_ARG;
}

const char *ae_act_name(ae_activation act) {
    const char *s = ae_activation_name(act);
    return s ? s : "unknown";
}

int ae_act_needs_pre(ae_activation act) { return act == AE_ACT_GELU; }

/* exp(x) for the sigmoid: Cody-Waite range reduction and a degree-6
 * polynomial (Cephes expf), within 2 ulp of expf, and written so the loop
 * around it vectorises (libm's expf is a call per element). */
static inline float vexpf(float x) {
    /* Comparisons rather than fminf/fmaxf: those stay libm calls without
       -ffinite-math-only and keep the loop from vectorising. NaN goes to
       the lower bound, as fmaxf did. */
    x = x > -87.3f ? x : -87.3f;
    x = x < 88.7f ? x : 88.7f;
    float n = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t e = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

static inline float sigmoidf(float x) { return 1.0f / (1.0f + vexpf(-x)); }

/* PyTorch's softplus (beta 1, threshold 20): linear above the threshold. */
static inline float softplusf(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

float ae_act_value(ae_activation act, float slope, float x) {
    switch (act) {
    case AE_ACT_IDENTITY: return x;
    case AE_ACT_RELU: return x > 0.0f ? x : 0.0f;
    case AE_ACT_LEAKY_RELU: return x > 0.0f ? x : x * slope;
    case AE_ACT_SIGMOID: return sigmoidf(x);
    case AE_ACT_TANH: return tanhf(x);
    case AE_ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
    case AE_ACT_SOFTPLUS: return softplusf(x);
    case AE_ACT_ELU: return x > 0.0f ? x : expm1f(x);
    }
    return x;
}

AE_HOT void ae_act_forward(ae_activation act, float slope, const float *pre, float *y, size_t n) {
    switch (act) {
    case AE_ACT_IDENTITY:
        if (y != pre)
            for (size_t i = 0; i < n; i++) y[i] = pre[i];
        return;
    case AE_ACT_RELU:
        for (size_t i = 0; i < n; i++) y[i] = pre[i] > 0.0f ? pre[i] : 0.0f;
        return;
    case AE_ACT_LEAKY_RELU:
        for (size_t i = 0; i < n; i++) y[i] = pre[i] > 0.0f ? pre[i] : pre[i] * slope;
        return;
    case AE_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) y[i] = sigmoidf(pre[i]);
        return;
    case AE_ACT_TANH:
        for (size_t i = 0; i < n; i++) y[i] = tanhf(pre[i]);
        return;
    default:
        for (size_t i = 0; i < n; i++) y[i] = ae_act_value(act, slope, pre[i]);
        return;
    }
}

AE_HOT void ae_act_backward(ae_activation act, float slope, const float *pre, const float *y, float *d,
                     size_t n) {
    switch (act) {
    case AE_ACT_IDENTITY: return;
    case AE_ACT_RELU:
        for (size_t i = 0; i < n; i++) d[i] = y[i] > 0.0f ? d[i] : 0.0f;
        return;
    case AE_ACT_LEAKY_RELU:
        /* The sign of y is the sign of pre for a non-negative slope. */
        for (size_t i = 0; i < n; i++) d[i] = y[i] > 0.0f ? d[i] : d[i] * slope;
        return;
    case AE_ACT_SIGMOID:
        for (size_t i = 0; i < n; i++) d[i] *= y[i] * (1.0f - y[i]);
        return;
    case AE_ACT_TANH:
        for (size_t i = 0; i < n; i++) d[i] *= 1.0f - y[i] * y[i];
        return;
    case AE_ACT_GELU:
        for (size_t i = 0; i < n; i++) {
            float x = pre[i];
            float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
            float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
            d[i] *= cdf + x * pdf;
        }
        return;
    case AE_ACT_SOFTPLUS:
        /* softplus' = sigmoid(x) = 1 - exp(-y) */
        for (size_t i = 0; i < n; i++) d[i] *= y[i] > 20.0f ? 1.0f : -expm1f(-y[i]);
        return;
    case AE_ACT_ELU:
        /* for x <= 0: y = exp(x) - 1, so y' = y + 1 */
        for (size_t i = 0; i < n; i++) d[i] *= y[i] > 0.0f ? 1.0f : y[i] + 1.0f;
        return;
    }
}

/* ---- on the model's threads (core/pool.h) ---- */

/* A cheap pass: half the usual share is worth a thread. */
#define ACT_MIN_EACH (AE_POOL_MIN_VALUES / 2)

typedef struct act_job {
    ae_activation act;
    float slope;
    const float *pre, *y;
    float *out;
} act_job;

static void act_forward_range(void *ctx, size_t lo, size_t hi) {
    const act_job *j = ctx;
    ae_act_forward(j->act, j->slope, j->pre + lo, j->out + lo, hi - lo);
}

static void act_backward_range(void *ctx, size_t lo, size_t hi) {
    const act_job *j = ctx;
    ae_act_backward(j->act, j->slope, j->pre ? j->pre + lo : NULL, j->y + lo, j->out + lo, hi - lo);
}

void ae_act_forward_mt(int threads, ae_activation act, float slope, const float *pre, float *y,
                       size_t n) {
    if (act == AE_ACT_IDENTITY && y == pre) return;
    act_job j = {act, slope, pre, NULL, y};
    ae_pool_for(threads, n, 16, ACT_MIN_EACH, act_forward_range, &j);
}

void ae_act_backward_mt(int threads, ae_activation act, float slope, const float *pre,
                        const float *y, float *d, size_t n) {
    if (act == AE_ACT_IDENTITY) return;
    act_job j = {act, slope, pre, y, d};
    ae_pool_for(threads, n, 16, ACT_MIN_EACH, act_backward_range, &j);
}
