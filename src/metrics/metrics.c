/* Metrics on float arrays (include/libae/metrics.h, docs/metrics.md).
 * Every function validates all its inputs before writing any output. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* Sizes beyond this are refused so that every product below stays far
 * from overflow (2^48 values is more memory than any machine has). */
#define MAX_VALUES ((size_t)1 << 48)
#define PCA_MAX_DIM 4096
#define KNN_MAX_K 1024
#define SSIM_WIN 11
/* The data range L of PSNR and SSIM: any span float data can have (the
 * smallest subnormal to twice the largest float). Within it L², (K L)² and
 * the products SSIM forms stay normal doubles and PSNR is finite, while
 * e.g. L = 1e200 squares to infinity and 1e-200 to 0. */
#define RANGE_MIN 1e-45
#define RANGE_MAX 1e39

static int range_ok(double data_range) {
    return data_range >= RANGE_MIN && data_range <= RANGE_MAX;
}

/* n·dim with both non-zero and the product in range; 0 otherwise. */
static size_t checked_count(size_t n, size_t dim) {
    size_t c;
    if (n == 0 || dim == 0 || ae_mul_overflow(n, dim, &c) || c > MAX_VALUES) return 0;
    return c;
}

static double sse(const float *x, const float *y, size_t count) {
    double s = 0.0;
    for (size_t i = 0; i < count; i++) {
        double d = (double)x[i] - (double)y[i];
        s += d * d;
    }
    return s;
}

ae_status ae_metric_mse(const float *x, const float *y, size_t count, double *mse) {
    if (!x || !y || !mse) return AE_ERR_INVALID_ARG;
    if (count == 0 || count > MAX_VALUES) return AE_ERR_RANGE;
    if (!ae_all_finite(x, count) || !ae_all_finite(y, count)) return AE_ERR_NUMERIC;
    *mse = sse(x, y, count) / (double)count;
    return AE_OK;
}

ae_status ae_metric_mse_per_sample(const float *x, const float *y, size_t n, size_t dim,
                                   double *scores) {
    if (!x || !y || !scores) return AE_ERR_INVALID_ARG;
    size_t count = checked_count(n, dim);
    if (!count) return AE_ERR_RANGE;
    if (!ae_all_finite(x, count) || !ae_all_finite(y, count)) return AE_ERR_NUMERIC;
    for (size_t i = 0; i < n; i++) scores[i] = sse(x + i * dim, y + i * dim, dim) / (double)dim;
    return AE_OK;
}

ae_status ae_metric_psnr(const float *x, const float *y, size_t count, double data_range,
                         double *psnr) {
    if (!x || !y || !psnr) return AE_ERR_INVALID_ARG;
    if (count == 0 || count > MAX_VALUES || !range_ok(data_range)) return AE_ERR_RANGE;
    if (!ae_all_finite(x, count) || !ae_all_finite(y, count)) return AE_ERR_NUMERIC;
    double mse = sse(x, y, count) / (double)count;
    *psnr = mse == 0.0 ? INFINITY : 10.0 * log10(data_range * data_range / mse);
    return AE_OK;
}

/* ---- SSIM ---- */

/* Filters the five moment planes of one H x W image pair with the
 * separable window, valid positions only, and returns the sum of the SSIM
 * map. `tmp` holds 5·H·(W-10) doubles. */
static double ssim_plane(const float *x, const float *y, size_t h, size_t w, const double *win,
                         double c1, double c2, double *tmp) {
    size_t ow = w - (SSIM_WIN - 1), oh = h - (SSIM_WIN - 1);
    double *hx = tmp, *hy = hx + h * ow, *hxx = hy + h * ow, *hyy = hxx + h * ow,
           *hxy = hyy + h * ow;
    for (size_t r = 0; r < h; r++) {
        const float *xr = x + r * w, *yr = y + r * w;
        for (size_t c = 0; c < ow; c++) {
            double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
            for (size_t t = 0; t < SSIM_WIN; t++) {
                double a = xr[c + t], b = yr[c + t], g = win[t];
                sx += g * a;
                sy += g * b;
                sxx += g * a * a;
                syy += g * b * b;
                sxy += g * a * b;
            }
            size_t o = r * ow + c;
            hx[o] = sx;
            hy[o] = sy;
            hxx[o] = sxx;
            hyy[o] = syy;
            hxy[o] = sxy;
        }
    }
    double total = 0.0;
    for (size_t r = 0; r < oh; r++) {
        for (size_t c = 0; c < ow; c++) {
            double mx = 0, my = 0, mxx = 0, myy = 0, mxy = 0;
            for (size_t t = 0; t < SSIM_WIN; t++) {
                size_t o = (r + t) * ow + c;
                double g = win[t];
                mx += g * hx[o];
                my += g * hy[o];
                mxx += g * hxx[o];
                myy += g * hyy[o];
                mxy += g * hxy[o];
            }
            double vx = mxx - mx * mx, vy = myy - my * my, cxy = mxy - mx * my;
            total += (2 * mx * my + c1) * (2 * cxy + c2) /
                     ((mx * mx + my * my + c1) * (vx + vy + c2));
        }
    }
    return total;
}

ae_status ae_metric_ssim(const float *x, const float *y, size_t n, size_t channels,
                         size_t height, size_t width, double data_range, double *ssim) {
    if (!x || !y || !ssim) return AE_ERR_INVALID_ARG;
    size_t planes = checked_count(n, channels), plane = checked_count(height, width);
    size_t count = planes && plane ? checked_count(planes, plane) : 0;
    if (!count || !range_ok(data_range)) return AE_ERR_RANGE;
    if (height < SSIM_WIN || width < SSIM_WIN) return AE_ERR_SHAPE;
    if (!ae_all_finite(x, count) || !ae_all_finite(y, count)) return AE_ERR_NUMERIC;
    size_t tmp_count;
    if (ae_mul_overflow(height * (width - (SSIM_WIN - 1)), 5, &tmp_count) ||
        tmp_count > SIZE_MAX / sizeof(double))
        return AE_ERR_OUT_OF_MEMORY;
    double *tmp = malloc(tmp_count * sizeof(double));
    if (!tmp) return AE_ERR_OUT_OF_MEMORY;
    double win[SSIM_WIN], wsum = 0.0;
    for (int t = 0; t < SSIM_WIN; t++) {
        double d = t - (SSIM_WIN - 1) / 2;
        win[t] = exp(-d * d / (2.0 * 1.5 * 1.5));
        wsum += win[t];
    }
    for (int t = 0; t < SSIM_WIN; t++) win[t] /= wsum;
    double c1 = (0.01 * data_range) * (0.01 * data_range);
    double c2 = (0.03 * data_range) * (0.03 * data_range);
    double total = 0.0;
    for (size_t p = 0; p < planes; p++)
        total += ssim_plane(x + p * plane, y + p * plane, height, width, win, c1, c2, tmp);
    free(tmp);
    double positions = (double)(height - (SSIM_WIN - 1)) * (double)(width - (SSIM_WIN - 1));
    *ssim = total / (positions * (double)planes);
    return AE_OK;
}

/* ---- normalised errors ---- */

ae_status ae_metric_nmse(const float *x, const float *y, size_t count, double *nmse) {
    if (!x || !y || !nmse) return AE_ERR_INVALID_ARG;
    if (count == 0 || count > MAX_VALUES) return AE_ERR_RANGE;
    if (!ae_all_finite(x, count) || !ae_all_finite(y, count)) return AE_ERR_NUMERIC;
    double den = 0.0;
    for (size_t i = 0; i < count; i++) den += (double)x[i] * (double)x[i];
    if (den == 0.0) return AE_ERR_NUMERIC;
    *nmse = sse(x, y, count) / den;
    return AE_OK;
}

ae_status ae_metric_fvu(const float *x, const float *y, size_t n, size_t dim, double *fvu) {
    if (!x || !y || !fvu) return AE_ERR_INVALID_ARG;
    size_t count = checked_count(n, dim);
    if (!count) return AE_ERR_RANGE;
    if (!ae_all_finite(x, count) || !ae_all_finite(y, count)) return AE_ERR_NUMERIC;
    double *mean = calloc(dim, sizeof(double));
    if (!mean) return AE_ERR_OUT_OF_MEMORY;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) mean[j] += x[i * dim + j];
    for (size_t j = 0; j < dim; j++) mean[j] /= (double)n;
    double den = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) {
            double d = x[i * dim + j] - mean[j];
            den += d * d;
        }
    free(mean);
    if (den == 0.0) return AE_ERR_NUMERIC;
    *fvu = sse(x, y, count) / den;
    return AE_OK;
}

/* ---- percentiles and anomalies ---- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

ae_status ae_metric_percentile(const double *values, size_t n, double q, double *out) {
    if (!values || !out) return AE_ERR_INVALID_ARG;
    if (n == 0 || n > MAX_VALUES || !(q >= 0.0 && q <= 100.0)) return AE_ERR_RANGE;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(values[i])) return AE_ERR_NUMERIC;
    double *s = malloc(n * sizeof(double));
    if (!s) return AE_ERR_OUT_OF_MEMORY;
    memcpy(s, values, n * sizeof(double));
    qsort(s, n, sizeof(double), cmp_double);
    double pos = q / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    double frac = pos - (double)lo;
    *out = s[lo] + (s[hi] - s[lo]) * frac;
    free(s);
    return AE_OK;
}

ae_status ae_metric_anomaly_threshold(const double *scores, size_t n, double percentile,
                                      double *threshold, unsigned char *flags, size_t *flagged) {
    if (!threshold) return AE_ERR_INVALID_ARG;
    double t;
    ae_status st = ae_metric_percentile(scores, n, percentile, &t);
    if (st != AE_OK) return st;
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        int f = scores[i] > t;
        if (flags) flags[i] = (unsigned char)f;
        c += (size_t)f;
    }
    *threshold = t;
    if (flagged) *flagged = c;
    return AE_OK;
}

/* ---- latent statistics ---- */

ae_status ae_metric_latent_stats(const float *codes, size_t n, size_t dim,
                                 double active_threshold, ae_latent_stats *out) {
    if (!codes || !out || out->struct_size < sizeof(ae_latent_stats)) return AE_ERR_INVALID_ARG;
    size_t count = checked_count(n, dim);
    if (!count || !(active_threshold >= 0.0) || !isfinite(active_threshold)) return AE_ERR_RANGE;
    if (!ae_all_finite(codes, count)) return AE_ERR_NUMERIC;
    double *mean = calloc(2 * dim, sizeof(double));
    if (!mean) return AE_ERR_OUT_OF_MEMORY;
    double *nonzero = mean + dim;
    double sum = 0.0, sum_abs = 0.0, nz = 0.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) {
            double v = codes[i * dim + j];
            mean[j] += v;
            sum += v;
            sum_abs += fabs(v);
            if (v != 0.0) {
                nonzero[j] += 1.0;
                nz += 1.0;
            }
        }
    for (size_t j = 0; j < dim; j++) mean[j] /= (double)n;
    ae_latent_stats s;
    memset(&s, 0, sizeof s);
    s.struct_size = out->struct_size;
    s.dims = dim;
    for (size_t j = 0; j < dim; j++) {
        double var = 0.0;
        for (size_t i = 0; i < n; i++) {
            double d = codes[i * dim + j] - mean[j];
            var += d * d;
        }
        var /= (double)n;
        s.total_variance += var;
        if (var > active_threshold) s.active++;
        if (nonzero[j] == 0.0) s.dead++;
    }
    free(mean);
    s.mean_activation = sum / (double)count;
    s.mean_abs = sum_abs / (double)count;
    s.l0 = nz / (double)n;
    /* Only the 0.1.0 fields: a caller built against a later header keeps the rest. */
    memcpy(out, &s, sizeof s);
    return AE_OK;
}

/* ---- k nearest neighbours ---- */

ae_status ae_metric_knn_accuracy(const float *ref, const int32_t *ref_labels, size_t n_ref,
                                 const float *query, const int32_t *query_labels,
                                 size_t n_query, size_t dim, size_t k, double *accuracy) {
    if (!ref || !ref_labels || !accuracy || (!query) != (!query_labels))
        return AE_ERR_INVALID_ARG;
    int loo = query == NULL;
    if (loo) {
        query = ref;
        query_labels = ref_labels;
        n_query = n_ref;
    }
    size_t rc = checked_count(n_ref, dim), qc = checked_count(n_query, dim);
    size_t candidates = loo ? n_ref - (n_ref > 0) : n_ref;
    if (!rc || !qc || k == 0 || k > KNN_MAX_K || k > candidates) return AE_ERR_RANGE;
    if (!ae_all_finite(ref, rc) || (!loo && !ae_all_finite(query, qc))) return AE_ERR_NUMERIC;
    double *dist = malloc(k * sizeof(double));
    size_t *idx = malloc(k * sizeof(size_t));
    if (!dist || !idx) {
        free(dist);
        free(idx);
        return AE_ERR_OUT_OF_MEMORY;
    }
    size_t correct = 0;
    for (size_t q = 0; q < n_query; q++) {
        const float *qv = query + q * dim;
        size_t have = 0;
        /* Keep the k nearest sorted by (distance, index): a new candidate
         * enters only when strictly nearer than the last kept one, so equal
         * distances keep the lower index. */
        for (size_t r = 0; r < n_ref; r++) {
            if (loo && r == q) continue;
            const float *rv = ref + r * dim;
            double d = 0.0;
            for (size_t j = 0; j < dim; j++) {
                double t = (double)qv[j] - (double)rv[j];
                d += t * t;
            }
            if (have == k && !(d < dist[k - 1])) continue;
            size_t pos = have < k ? have++ : k - 1;
            while (pos > 0 && dist[pos - 1] > d) {
                dist[pos] = dist[pos - 1];
                idx[pos] = idx[pos - 1];
                pos--;
            }
            dist[pos] = d;
            idx[pos] = r;
        }
        /* Majority vote; the neighbours are in order of distance, so the
         * first label reaching the top count is the tied label whose
         * nearest member is nearest. */
        int32_t best = ref_labels[idx[0]];
        size_t best_votes = 0;
        for (size_t a = 0; a < k; a++) {
            int32_t lab = ref_labels[idx[a]];
            size_t votes = 0;
            for (size_t b = 0; b < k; b++) votes += ref_labels[idx[b]] == lab;
            if (votes > best_votes) {
                best_votes = votes;
                best = lab;
            }
        }
        correct += best == query_labels[q];
    }
    free(dist);
    free(idx);
    *accuracy = (double)correct / (double)n_query;
    return AE_OK;
}

/* ---- PCA ---- */

ae_status ae_metric_pca(const float *x, size_t n, size_t dim, size_t k, float *components,
                        float *projected, double *variance) {
    if (!x) return AE_ERR_INVALID_ARG;
    size_t count = checked_count(n, dim);
    if (!count || n < 2 || dim > PCA_MAX_DIM || k == 0 || k > dim) return AE_ERR_RANGE;
    if (!ae_all_finite(x, count)) return AE_ERR_NUMERIC;
    double *mean = calloc(dim, sizeof(double));
    double *cov = calloc(dim * dim, sizeof(double));
    double *v = malloc(dim * sizeof(double)), *w = malloc(dim * sizeof(double));
    double *vecs = malloc(k * dim * sizeof(double)), *vals = malloc(k * sizeof(double));
    double *row = malloc(dim * sizeof(double));
    if (!mean || !cov || !v || !w || !vecs || !vals || !row) {
        free(mean), free(cov), free(v), free(w), free(vecs), free(vals), free(row);
        return AE_ERR_OUT_OF_MEMORY;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) mean[j] += x[i * dim + j];
    for (size_t j = 0; j < dim; j++) mean[j] /= (double)n;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < dim; j++) row[j] = x[i * dim + j] - mean[j];
        for (size_t a = 0; a < dim; a++) {
            double ra = row[a];
            if (ra == 0.0) continue;
            for (size_t b = a; b < dim; b++) cov[a * dim + b] += ra * row[b];
        }
    }
    for (size_t a = 0; a < dim; a++)
        for (size_t b = a; b < dim; b++) {
            cov[a * dim + b] /= (double)(n - 1);
            cov[b * dim + a] = cov[a * dim + b];
        }
    for (size_t c = 0; c < k; c++) {
        /* Start from a fixed vector that is not orthogonal to the leading
         * eigenvector except by accident: the column of largest variance
         * plus a small spread. */
        size_t big = 0;
        for (size_t j = 1; j < dim; j++)
            if (cov[j * dim + j] > cov[big * dim + big]) big = j;
        double norm = 0.0;
        for (size_t j = 0; j < dim; j++) {
            v[j] = cov[j * dim + big] + 1e-3 * (double)(j + 1) / (double)dim;
            norm += v[j] * v[j];
        }
        norm = sqrt(norm);
        for (size_t j = 0; j < dim; j++) v[j] /= norm;
        double lambda = 0.0;
        for (int it = 0; it < 10000; it++) {
            for (size_t a = 0; a < dim; a++) {
                double s = 0.0;
                for (size_t b = 0; b < dim; b++) s += cov[a * dim + b] * v[b];
                w[a] = s;
            }
            double wn = 0.0, dot = 0.0;
            for (size_t j = 0; j < dim; j++) {
                wn += w[j] * w[j];
                dot += w[j] * v[j];
            }
            wn = sqrt(wn);
            lambda = dot;
            if (wn == 0.0) break; /* no variance left: any unit vector will do */
            double change = 0.0;
            for (size_t j = 0; j < dim; j++) {
                double nv = w[j] / wn, d = nv - v[j];
                change += d * d;
                v[j] = nv;
            }
            if (change < 1e-24) break;
        }
        if (lambda < 0.0) lambda = 0.0; /* rounding of an exhausted covariance */
        size_t arg = 0;
        for (size_t j = 1; j < dim; j++)
            if (fabs(v[j]) > fabs(v[arg])) arg = j;
        double sign = v[arg] < 0.0 ? -1.0 : 1.0;
        for (size_t j = 0; j < dim; j++) vecs[c * dim + j] = sign * v[j];
        vals[c] = lambda;
        /* Deflate: remove the found direction from the covariance. */
        for (size_t a = 0; a < dim; a++)
            for (size_t b = 0; b < dim; b++) cov[a * dim + b] -= lambda * v[a] * v[b];
    }
    if (components)
        for (size_t i = 0; i < k * dim; i++) components[i] = (float)vecs[i];
    if (variance)
        for (size_t c = 0; c < k; c++) variance[c] = vals[c];
    if (projected)
        for (size_t i = 0; i < n; i++)
            for (size_t c = 0; c < k; c++) {
                double s = 0.0;
                for (size_t j = 0; j < dim; j++) s += (x[i * dim + j] - mean[j]) * vecs[c * dim + j];
                projected[i * k + c] = (float)s;
            }
    free(mean), free(cov), free(v), free(w), free(vecs), free(vals), free(row);
    return AE_OK;
}
