/* The linear probe (include/libae/metrics.h, docs/metrics.md): multinomial
 * logistic regression with an intercept and an L2 penalty on the weights,
 * fitted to codes and labels by L-BFGS, and its accuracy on other codes.
 * The objective is scikit-learn's LogisticRegression (lbfgs, multinomial)
 * divided by C·n: mean cross-entropy + (l2 / 2)·||W||², strictly convex, so
 * any converged optimiser finds the same classifier. Everything is in
 * double. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define PROBE_MAX_PARAMS ((size_t)1 << 24)
#define PROBE_MAX_VALUES ((size_t)1 << 40)
#define LBFGS_M 10

void ae_probe_options_init(ae_probe_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->l2 = 1e-4;
    o->max_iter = 1000;
    o->tol = 1e-6;
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* The class of a label: its index among the sorted distinct train labels,
 * or -1. */
static long class_of(const int32_t *classes, size_t nc, int32_t label) {
    size_t lo = 0, hi = nc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (classes[mid] < label)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nc && classes[lo] == label ? (long)lo : -1;
}

typedef struct problem {
    const float *x;
    const long *y;
    size_t n, dim, nc;
    double l2;
    double *z;    /* nc scratch */
    double *diag; /* per parameter: the initial inverse Hessian's scale */
} problem;

/* theta = W [nc, dim] then b [nc]. Returns the objective; fills g. */
static double objective(const problem *p, const double *theta, double *g) {
    size_t nc = p->nc, dim = p->dim, np = nc * (dim + 1);
    const double *W = theta, *b = theta + nc * dim;
    double *gW = g, *gb = g + nc * dim, *z = p->z;
    memset(g, 0, np * sizeof *g);
    double loss = 0.0;
    for (size_t i = 0; i < p->n; i++) {
        const float *xi = p->x + i * dim;
        double zmax = -INFINITY;
        for (size_t c = 0; c < nc; c++) {
            double s = b[c];
            const double *w = W + c * dim;
            for (size_t j = 0; j < dim; j++) s += w[j] * (double)xi[j];
            z[c] = s;
            zmax = s > zmax ? s : zmax;
        }
        double sum = 0.0, zy = z[p->y[i]];
        for (size_t c = 0; c < nc; c++) sum += z[c] = exp(z[c] - zmax);
        loss += log(sum) + zmax - zy;
        double inv_sum = 1.0 / sum;
        for (size_t c = 0; c < nc; c++) {
            double r = z[c] * inv_sum - (c == (size_t)p->y[i] ? 1.0 : 0.0);
            double *gw = gW + c * dim;
            for (size_t j = 0; j < dim; j++) gw[j] += r * (double)xi[j];
            gb[c] += r;
        }
    }
    double inv = 1.0 / (double)p->n, reg = 0.0;
    for (size_t k = 0; k < np; k++) g[k] *= inv;
    for (size_t k = 0; k < nc * dim; k++) {
        reg += W[k] * W[k];
        gW[k] += p->l2 * W[k];
    }
    return loss * inv + 0.5 * p->l2 * reg;
}

static double dot(const double *a, const double *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

/* L-BFGS (Nocedal and Wright, algorithm 7.4) with a diagonal initial
 * inverse Hessian (p->diag, scaled by s·y / y·D·y) and a backtracking line
 * search on the Armijo condition; pairs with s·y <= 0 are not kept. */
static void lbfgs(const problem *p, double *theta, size_t max_iter, double tol, double *work) {
    size_t np = p->nc * (p->dim + 1);
    double *g = work, *d = g + np, *tn = d + np, *gn = tn + np, *S = gn + np,
           *Y = S + LBFGS_M * np, *rho = Y + LBFGS_M * np, *alpha = rho + LBFGS_M;
    double f = objective(p, theta, g);
    size_t have = 0, head = 0; /* pairs kept, the next slot */
    for (size_t it = 0; it < max_iter && max_abs(g, np) > tol; it++) {
        /* d = -H g, the two-loop recursion over the kept pairs, newest first. */
        for (size_t k = 0; k < np; k++) d[k] = -g[k];
        for (size_t q = 0; q < have; q++) {
            size_t s = (head + LBFGS_M - 1 - q) % LBFGS_M;
            alpha[s] = rho[s] * dot(S + s * np, d, np);
            for (size_t k = 0; k < np; k++) d[k] -= alpha[s] * Y[s * np + k];
        }
        if (have) {
            size_t s = (head + LBFGS_M - 1) % LBFGS_M;
            double yhy = 0.0;
            for (size_t k = 0; k < np; k++) yhy += Y[s * np + k] * Y[s * np + k] * p->diag[k];
            double gamma = dot(S + s * np, Y + s * np, np) / yhy;
            for (size_t k = 0; k < np; k++) d[k] *= gamma * p->diag[k];
        } else {
            for (size_t k = 0; k < np; k++) d[k] *= p->diag[k];
        }
        for (size_t q = have; q-- > 0;) {
            size_t s = (head + LBFGS_M - 1 - q) % LBFGS_M;
            double beta = rho[s] * dot(Y + s * np, d, np);
            for (size_t k = 0; k < np; k++) d[k] += (alpha[s] - beta) * S[s * np + k];
        }
        double slope = dot(g, d, np);
        if (!(slope < 0.0)) { /* not a descent direction: restart from the gradient */
            for (size_t k = 0; k < np; k++) d[k] = -g[k] * p->diag[k];
            slope = dot(g, d, np);
            have = 0;
        }
        /* The first step of a steepest descent is scaled to move by about 1. */
        double t = have ? 1.0 : 1.0 / fmax(1.0, sqrt(-slope)), fn = f;
        int ok = 0;
        for (int ls = 0; ls < 60; ls++) {
            for (size_t k = 0; k < np; k++) tn[k] = theta[k] + t * d[k];
            fn = objective(p, tn, gn);
            if (fn <= f + 1e-4 * t * slope) {
                ok = 1;
                break;
            }
            t *= 0.5;
        }
        if (!ok) break; /* no decrease within float precision: converged */
        double *s = S + head * np, *y = Y + head * np;
        for (size_t k = 0; k < np; k++) {
            s[k] = tn[k] - theta[k];
            y[k] = gn[k] - g[k];
        }
        double sy = dot(s, y, np);
        if (sy > 1e-12 * sqrt(dot(s, s, np) * dot(y, y, np))) {
            rho[head] = 1.0 / sy;
            head = (head + 1) % LBFGS_M;
            if (have < LBFGS_M) have++;
        }
        memcpy(theta, tn, np * sizeof *theta);
        memcpy(g, gn, np * sizeof *g);
        f = fn;
    }
}

ae_status ae_metric_linear_probe(const float *train, const int32_t *train_labels, size_t n_train,
                                 const float *test, const int32_t *test_labels, size_t n_test,
                                 size_t dim, const ae_probe_options *opts, double *accuracy) {
    ae_probe_options def;
    ae_probe_options_init(&def);
    const ae_probe_options *o = opts ? opts : &def;
    if (!train || !train_labels || !test || !test_labels || !accuracy ||
        o->struct_size != sizeof *o)
        return AE_ERR_INVALID_ARG;
    size_t ct, cq;
    if (!n_train || !n_test || !dim || ae_mul_overflow(n_train, dim, &ct) ||
        ae_mul_overflow(n_test, dim, &cq) || ct > PROBE_MAX_VALUES || cq > PROBE_MAX_VALUES)
        return AE_ERR_RANGE;
    if (!(o->l2 >= 0.0 && o->l2 <= 1e6) || !(o->tol > 0.0 && o->tol < 1.0) || o->max_iter < 1 ||
        o->max_iter > 100000)
        return AE_ERR_RANGE;
    if (!ae_all_finite(train, ct) || !ae_all_finite(test, cq)) return AE_ERR_NUMERIC;
    /* The classes: the distinct training labels in order. */
    int32_t *classes = malloc(n_train * sizeof *classes);
    long *y = malloc(n_train * sizeof *y);
    if (!classes || !y) {
        free(classes);
        free(y);
        return AE_ERR_OUT_OF_MEMORY;
    }
    memcpy(classes, train_labels, n_train * sizeof *classes);
    qsort(classes, n_train, sizeof *classes, cmp_i32);
    size_t nc = 0;
    for (size_t i = 0; i < n_train; i++)
        if (nc == 0 || classes[i] != classes[nc - 1]) classes[nc++] = classes[i];
    size_t np;
    ae_status st = AE_OK;
    if (nc < 2 || ae_mul_overflow(nc, dim + 1, &np) || np > PROBE_MAX_PARAMS) st = AE_ERR_RANGE;
    double *theta = NULL, *work = NULL, *z = NULL;
    if (!st) {
        theta = calloc(np, sizeof *theta);
        work = malloc((4 * np + 2 * LBFGS_M * np + 2 * LBFGS_M) * sizeof *work);
        z = malloc(nc * sizeof *z);
        if (!theta || !work || !z) st = AE_ERR_OUT_OF_MEMORY;
    }
    if (!st) {
        for (size_t i = 0; i < n_train; i++) y[i] = class_of(classes, nc, train_labels[i]);
        /* The diagonal of the Hessian at 0, up to a factor: the second
           moment of each feature (the optimum does not depend on it, only
           how fast L-BFGS gets there on codes of very different scales). */
        double *diag = malloc(np * sizeof *diag);
        if (!diag) {
            st = AE_ERR_OUT_OF_MEMORY;
            goto out;
        }
        for (size_t j = 0; j < dim; j++) {
            double m2 = 0.0;
            for (size_t i = 0; i < n_train; i++) m2 += (double)train[i * dim + j] * train[i * dim + j];
            m2 /= (double)n_train;
            for (size_t c = 0; c < nc; c++) diag[c * dim + j] = 1.0 / (m2 + o->l2 + 1e-12);
        }
        for (size_t c = 0; c < nc; c++) diag[nc * dim + c] = 1.0;
        problem p = {train, y, n_train, dim, nc, o->l2, z, diag};
        lbfgs(&p, theta, o->max_iter, o->tol, work);
        /* Test accuracy: the largest logit (the lower class on a tie); a
         * label the training set lacks is never predicted. */
        size_t correct = 0;
        for (size_t i = 0; i < n_test; i++) {
            const float *xi = test + i * dim;
            size_t best = 0;
            double bz = -INFINITY;
            for (size_t c = 0; c < nc; c++) {
                double s = theta[nc * dim + c];
                for (size_t j = 0; j < dim; j++) s += theta[c * dim + j] * (double)xi[j];
                if (s > bz) bz = s, best = c;
            }
            correct += classes[best] == test_labels[i];
        }
        *accuracy = (double)correct / (double)n_test;
        free(diag);
    }
out:
    free(classes);
    free(y);
    free(theta);
    free(work);
    free(z);
    return st;
}
