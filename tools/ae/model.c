/* Model files and what the commands share around a model: the data
 * preparation recorded in the metadata, batched inference, the evaluation
 * report and the pictures that need the model. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

/* ---- preparation ---- */

void prep_free(prep *p) {
    free(p->mean);
    free(p->std);
    p->mean = p->std = NULL;
    p->conv.std_count = 0;
}

int prep_store(ae_model *m, const prep *p) {
    /* The value convention is a field of the model file, the sample shape
       the model's own (ae_model_sample_shape). */
    return ae_model_set_data_convention(m, &p->conv, p->mean, p->std) == AE_OK ? 0 : -1;
}

/* "CxHxW", digits only (no sign, no space), whose product, computed without
 * wrapping, is `size`; 0 on success. A crafted file must not make a picture
 * of a shape the data do not have. */
static int meta_shape(const char *v, size_t size, size_t sh[3]) {
    const char *q = v;
    size_t n = 1;
    for (int i = 0; i < 3; i++) {
        if (*q < '0' || *q > '9') return -1;
        char *end;
        errno = 0;
        unsigned long long x = strtoull(q, &end, 10);
        if (errno || x == 0 || x != (size_t)x || *end != (i < 2 ? 'x' : '\0')) return -1;
        sh[i] = (size_t)x;
        if (mul_size(n, sh[i], &n)) return -1;
        q = end + 1;
    }
    return n == size ? 0 : -1;
}

ae_model *model_load(const char *path, prep *p) {
    ae_model *m = NULL;
    memset(p, 0, sizeof *p);
    p->conv.struct_size = sizeof p->conv;
    if (!path) {
        fail(EXIT_USAGE, "no model file given (-m FILE)");
        return NULL;
    }
    ae_config *cfg = NULL; /* only the handle of the load's message */
    ae_status st = ae_config_create(&cfg, NULL);
    if (st == AE_OK) st = ae_model_load(&m, path, cfg);
    if (st != AE_OK) {
        const char *msg = cfg ? ae_config_last_error(cfg) : "";
        fail(EXIT_RUN, "%s", msg[0] ? msg : ae_status_string(st));
        ae_config_destroy(cfg);
        return NULL;
    }
    ae_config_destroy(cfg);
    const char *v = NULL;
    ae_model_sample_shape(m, &p->shape[0], &p->shape[1], &p->shape[2]);
    /* Files of dense models written before the shape was the model's kept it here. */
    if (p->shape[1] == 1 && p->shape[2] == 1 && ae_model_get_meta(m, "ae.data.shape", &v) == AE_OK &&
        v) {
        size_t sh[3];
        if (meta_shape(v, ae_model_input_size(m), sh) != 0) {
            fail(EXIT_RUN, "%s: the sample shape in the model's metadata (ae.data.shape %.40s%s) is "
                           "not CxHxW of its %zu inputs",
                 path, v, strlen(v) > 40 ? "..." : "", ae_model_input_size(m));
            goto bad;
        }
        memcpy(p->shape, sh, sizeof sh);
    }
    /* The value convention of the training data, a field of the model file. */
    ae_model_data_convention(m, &p->conv, NULL, NULL, 0);
    size_t n = p->conv.std_count;
    if (n) {
        p->mean = malloc(n * sizeof *p->mean);
        p->std = malloc(n * sizeof *p->std);
        if (!p->mean || !p->std || ae_model_data_convention(m, &p->conv, p->mean, p->std, n) != AE_OK) {
            fail(EXIT_RUN, "out of memory");
            prep_free(p);
            ae_model_destroy(m);
            return NULL;
        }
        /* Shared per channel needs the image shape. */
        if (n != 1 && n != p->shape[0] && n != ae_model_input_size(m)) goto bad_meta;
    }
    return m;
bad_meta:
    fail(EXIT_RUN, "%s: the value convention's %zu standardisation values do not fit the sample "
                   "shape %zux%zux%zu",
         path, p->conv.std_count, p->shape[0], p->shape[1], p->shape[2]);
bad:
    prep_free(p);
    ae_model_destroy(m);
    return NULL;
}

int prep_data(ae_dataset *ds, const data_opts *o, const prep *target, const char *what) {
    if (target) {
        size_t dim = ae_dataset_dim(ds), want = target->shape[0] * target->shape[1] * target->shape[2];
        if (dim != want)
            return fail(EXIT_RUN, "%s has %zu values per sample; the model takes %zu", what, dim, want);
        size_t c, h, w;
        ae_dataset_shape(ds, &c, &h, &w);
        /* Vectors of the right size take the model's image shape (for
           pictures, SSIM and per-channel statistics). */
        if (h == 1 && w == 1 && (target->shape[1] > 1 || target->shape[2] > 1))
            ae_dataset_reshape(ds, target->shape[0], target->shape[1], target->shape[2]);
    }
    ae_data_convention c;
    if (target)
        c = target->conv;
    else
        ae_data_convention_init(&c); /* the default: 8-bit data x 1/255, floats as they are */
    if (o->have_scale) {
        /* --scale: the stored values times F, whatever the conventions say. */
        ae_data_convention have;
        have.struct_size = sizeof have;
        ae_dataset_convention(ds, &have);
        c.elem = have.elem == AE_ELEM_UINT8 ? AE_ELEM_UINT8 : AE_ELEM_FLOAT;
        c.scale = o->scale;
        c.offset = 0.0;
        c.lo = c.hi = NAN;
    }
    if (ae_dataset_conform(ds, &c, target ? target->mean : NULL, target ? target->std : NULL) != AE_OK)
        return fail(EXIT_RUN, "%s: %s", what, ae_dataset_last_error(ds));
    return 0;
}

prep prep_of(const ae_dataset *ds, const prep *target) {
    prep p = *target;
    p.conv.struct_size = sizeof p.conv;
    ae_dataset_convention(ds, &p.conv);
    return p;
}

/* Undoes the standardisation only: back to the units after the scale. */
static void unstandardize(const prep *p, float *x, size_t n, size_t dim) {
    size_t st_n = p->conv.std_count;
    if (!st_n) return;
    size_t plane = p->shape[1] * p->shape[2];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < dim; j++) {
            size_t k = st_n == 1 ? 0 : st_n == dim ? j : j / plane;
            x[i * dim + j] = x[i * dim + j] * p->std[k] + p->mean[k];
        }
}

void prep_undo(const prep *p, float *x, size_t n, size_t dim) {
    unstandardize(p, x, n, dim);
    if (p->conv.scale != 1.0 || p->conv.offset != 0.0) {
        float inv = (float)(1.0 / p->conv.scale), off = (float)p->conv.offset;
        for (size_t i = 0; i < n * dim; i++) x[i] = (x[i] - off) * inv;
    }
}

int model_is_vae(const ae_model *m) {
    for (size_t i = 0; i < ae_model_layer_count(m); i++) {
        ae_layer_info li;
        li.struct_size = sizeof li;
        if (ae_model_layer_info(m, i, &li) == AE_OK && li.kind == AE_LAYER_GAUSSIAN) return 1;
    }
    return 0;
}

/* ---- inference ---- */

size_t g_batch;

size_t batch_for(const ae_model *m, size_t n) {
    size_t b = g_batch;
    if (!b) {
        /* The largest batch whose workspace fits the budget (it grows about
           linearly with the batch), at most 1024 and at least 1. */
        size_t one = 0;
        ae_model_workspace_size(m, 1, &one);
        b = one ? WORKSPACE_BUDGET / one : 1024;
        if (b > 1024) b = 1024;
        size_t bytes;
        while (b > 1 && (ae_model_workspace_size(m, b, &bytes) != AE_OK || bytes > WORKSPACE_BUDGET))
            b = b * 3 / 4;
        if (b < 1) b = 1;
    }
    return b < n || n == 0 ? b : n;
}

int run_batched(ae_model *m, int what, const float *in, size_t n, size_t in_dim, float *out,
                size_t out_dim) {
    size_t bs = batch_for(m, n);
    for (size_t i = 0; i < n; i += bs) {
        size_t b = n - i < bs ? n - i : bs;
        const float *x = in + i * in_dim;
        float *y = out + i * out_dim;
        ae_status st = what == RUN_ENCODE   ? ae_encode(m, x, b, y)
                       : what == RUN_DECODE ? ae_decode(m, x, b, y)
                                            : ae_reconstruct(m, x, b, y);
        if (st != AE_OK) return fail(EXIT_RUN, "%s", ae_model_last_error(m));
    }
    return 0;
}

int corrupt_copy(const ae_noise *nz, uint64_t seed, const ae_dataset *ds, float **out) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds);
    *out = malloc(n * d * sizeof **out);
    if (!*out) return fail(EXIT_RUN, "out of memory for the corrupted copy");
    ae_status st = ae_corrupt(nz, ae_dataset_data(ds), *out, n, d, seed);
    if (st != AE_OK) {
        free(*out);
        *out = NULL;
        return fail(EXIT_USAGE, "--noise-level %g does not fit this noise: %s", nz->level,
                    ae_status_string(st));
    }
    return 0;
}

/* ---- evaluation ---- */

static int metric_fail(const char *what, ae_status st) {
    return fail(EXIT_RUN, "%s: %s", what, ae_status_string(st));
}

/* Codes of a whole dataset (malloc'ed [n, code size]). */
static float *encode_all(ae_model *m, const ae_dataset *ds) {
    size_t n = ae_dataset_count(ds), k = ae_model_code_size(m);
    float *codes = malloc(n * k * sizeof *codes);
    if (!codes) {
        fail(EXIT_RUN, "out of memory for %zu codes", n);
        return NULL;
    }
    if (run_batched(m, RUN_ENCODE, ae_dataset_data(ds), n, ae_dataset_dim(ds), codes, k)) {
        free(codes);
        return NULL;
    }
    return codes;
}

int probe_print(const float *train, const int32_t *train_labels, size_t n_train, const float *test,
                const int32_t *test_labels, size_t n_test, size_t dim, const eval_opts *o) {
    ae_probe_options po;
    ae_probe_options_init(&po);
    /* scikit-learn's default C = 1 unless --probe-l2. */
    po.l2 = o->probe_l2 > 0.0 ? o->probe_l2 : 1.0 / (double)n_train;
    double acc;
    ae_status st = ae_metric_linear_probe(train, train_labels, n_train, test, test_labels, n_test,
                                          dim, &po, &acc);
    if (st != AE_OK) return metric_fail("linear probe", st);
    printf("linear probe   %.4f accuracy (multinomial logistic regression, L2 %g, i.e. C = %g, "
           "trained on the codes of the %zu reference samples)\n",
           acc, po.l2, 1.0 / (po.l2 * (double)n_train), n_train);
    return 0;
}

int evaluate_print(ae_model *m, const prep *p, ae_dataset *ds, const eval_opts *o) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds), k = ae_model_code_size(m);
    size_t c, h, w;
    ae_dataset_shape(ds, &c, &h, &w);
    const float *x = ae_dataset_data(ds);
    /* The model's input: the data, or their corrupted copy (denoising);
       every metric compares the output with the clean data. */
    const float *in = o->noisy ? o->noisy : x;
    float *y = alloc_array(n, d, sizeof(float)), *codes = alloc_array(n, k, sizeof(float));
    float *xu = alloc_array(n, d, sizeof(float)), *ref_codes = NULL;
    double *scores = alloc_array(n, 1, sizeof *scores);
    int rc = EXIT_RUN;
    ae_status st;
    if (!y || !codes || !xu || !scores) {
        fail(EXIT_RUN, "out of memory for %zu samples", n);
        goto done;
    }
    if (run_batched(m, RUN_RECONSTRUCT, in, n, d, y, d) || run_batched(m, RUN_ENCODE, in, n, d, codes, k))
        goto done;
    double mse, nmse, fvu, psnr, ssim = NAN, thr;
    size_t flagged;
    printf("samples        %zu of %zux%zux%zu\n", n, c, h, w);
    if (o->noisy) {
        double nm;
        if ((st = ae_metric_mse(x, o->noisy, n * d, &nm)) != AE_OK) {
            metric_fail("MSE of the corrupted input", st);
            goto done;
        }
        printf("noise          %s: MSE %.6f of the corrupted input against the clean data; "
               "the metrics below compare the reconstructions of the corrupted input with the "
               "clean data\n",
               o->noise_desc, nm);
    }
    if ((st = ae_metric_mse(x, y, n * d, &mse)) != AE_OK) {
        metric_fail("MSE", st);
        goto done;
    }
    printf("MSE            %.6f\n", mse);
    if (ae_metric_nmse(x, y, n * d, &nmse) == AE_OK)
        printf("NMSE           %.6f (sum of squared errors / sum of squares)\n", nmse);
    else
        printf("NMSE           undefined (the data are all zero)\n");
    if (n > 1 && ae_metric_fvu(x, y, n, d, &fvu) == AE_OK)
        printf("FVU            %.6f (fraction of variance unexplained, 1 - R^2)\n", fvu);
    else
        printf("FVU            undefined (the data have no variance)\n");
    if ((st = ae_metric_mse_per_sample(x, y, n, d, scores)) != AE_OK ||
        (st = ae_metric_anomaly_threshold(scores, n, o->percentile, &thr, NULL, &flagged)) != AE_OK) {
        metric_fail("anomaly scores", st);
        goto done;
    }
    /* PSNR and SSIM in the units after the scale, before standardisation. */
    memcpy(xu, x, n * d * sizeof *xu);
    unstandardize(p, xu, n, d);
    unstandardize(p, y, n, d);
    float lo = xu[0], hi = xu[0];
    for (size_t i = 1; i < n * d; i++) lo = fminf(lo, xu[i]), hi = fmaxf(hi, xu[i]);
    double range = lo >= 0.0f && hi <= 1.0f ? 1.0 : (double)(hi - lo);
    if (range > 0 && ae_metric_psnr(xu, y, n * d, range, &psnr) == AE_OK)
        printf("PSNR           %.3f dB (data range %g)\n", psnr, range);
    if (range > 0 && h >= 11 && w >= 11 && ae_metric_ssim(xu, y, n, c, h, w, range, &ssim) == AE_OK)
        printf("SSIM           %.4f (Gaussian window 11x11, sigma 1.5, K1 0.01, K2 0.03)\n", ssim);
    else
        printf("SSIM           not computed (needs images of at least 11x11)\n");
    printf("anomaly        threshold %.6f (percentile %g of the per-sample MSE): %zu of %zu "
           "above\n",
           thr, o->percentile, flagged, n);
    if (o->scores_path) {
        float *fs = alloc_array(n, 1, sizeof *fs);
        if (!fs) {
            fail(EXIT_RUN, "out of memory");
            goto done;
        }
        for (size_t i = 0; i < n; i++) fs[i] = (float)scores[i];
        /* One score a sample: shape (N,), as numpy's 1-D arrays of labels. */
        int wrc = write_npy(o->scores_path, fs, n, 1, 1, 1);
        free(fs);
        if (wrc) goto done;
        printf("scores         written to %s\n", o->scores_path);
    }
    if (model_is_vae(m)) {
        /* The negative ELBO per sample, batches weighted by their size. */
        double total = 0.0, rsum = 0.0, ksum = 0.0;
        size_t bs = batch_for(m, n);
        for (size_t i = 0; i < n; i += bs) {
            size_t b = n - i < bs ? n - i : bs;
            double ne, re, kl;
            if ((st = ae_vae_neg_elbo(m, x + i * d, b, &ne, &re, &kl)) != AE_OK) {
                fail(EXIT_RUN, "negative ELBO: %s", ae_model_last_error(m));
                goto done;
            }
            total += ne * (double)b, rsum += re * (double)b, ksum += kl * (double)b;
        }
        printf("negative ELBO  %.4f nats per sample (reconstruction %.4f + KL %.4f, "
               "one draw of z, clean input)\n",
               total / (double)n, rsum / (double)n, ksum / (double)n);
    }
    ae_latent_stats ls;
    ls.struct_size = sizeof ls;
    if ((st = ae_metric_latent_stats(codes, n, k, o->active_threshold, &ls)) != AE_OK) {
        metric_fail("latent statistics", st);
        goto done;
    }
    printf("latent         %zu dims: %zu active (variance > %g), %zu dead (always 0), mean %.4f, "
           "mean |z| %.4f, total variance %.4f, L0 %.2f\n",
           ls.dims, ls.active, o->active_threshold, ls.dead, ls.mean_activation, ls.mean_abs,
           ls.total_variance, ls.l0);
    const int32_t *labels = ae_dataset_labels(ds);
    const int32_t *ref_labels = o->ref ? ae_dataset_labels(o->ref) : NULL;
    size_t nref = o->ref ? ae_dataset_count(o->ref) : 0;
    if (o->ref && labels && ref_labels && (o->knn_k || o->probe) && !(ref_codes = encode_all(m, o->ref)))
        goto done;
    if (labels && o->knn_k && ref_codes) {
        /* The standard protocol: the reference set's codes and labels, the
           evaluated samples as queries. */
        size_t q = o->knn_max_given && o->knn_max < n ? o->knn_max : n;
        double acc;
        if (nref < o->knn_k) {
            printf("kNN accuracy   not computed (%zu reference samples for k = %zu)\n", nref,
                   o->knn_k);
        } else if ((st = ae_metric_knn_accuracy(ref_codes, ref_labels, nref, codes, labels, q, k,
                                                o->knn_k, &acc)) != AE_OK) {
            metric_fail("kNN accuracy", st);
            goto done;
        } else {
            printf("kNN accuracy   %.4f (k = %zu, %zu queries against the codes of the %zu "
                   "reference samples)\n",
                   acc, o->knn_k, q, nref);
        }
    } else if (labels && o->knn_k) {
        size_t kn = n < o->knn_max ? n : o->knn_max;
        double acc;
        if (kn < o->knn_k + 1) {
            printf("kNN accuracy   not computed (%zu samples for k = %zu)\n", kn, o->knn_k);
        } else if ((st = ae_metric_knn_accuracy(codes, labels, kn, NULL, NULL, 0, k, o->knn_k,
                                                &acc)) != AE_OK) {
            metric_fail("kNN accuracy", st);
            goto done;
        } else {
            printf("kNN accuracy   %.4f (k = %zu, leave-one-out on the codes of the first %zu "
                   "samples)\n",
                   acc, o->knn_k, kn);
        }
    }
    if (o->probe && labels && ref_codes && probe_print(ref_codes, ref_labels, nref, codes, labels, n, k, o))
        goto done;
    rc = 0;
done:
    free(y);
    free(codes);
    free(ref_codes);
    free(xu);
    free(scores);
    return rc;
}

/* ---- pictures that need the model ---- */

static int need_images(const char *path, size_t h, size_t w) {
    if (h > 1 || w > 1) return 0;
    return fail(EXIT_USAGE, "%s: the samples are vectors, not images; give their shape with --shape "
                            "(e.g. 1x28x28)",
                path);
}

int picture_recon(const char *path, ae_model *m, const prep *p, const ae_dataset *ds,
                  const float *noisy, size_t n) {
    size_t c, h, w, d = ae_dataset_dim(ds);
    ae_dataset_shape(ds, &c, &h, &w);
    if (need_images(path, h, w)) return EXIT_USAGE;
    if (n > ae_dataset_count(ds)) n = ae_dataset_count(ds);
    float *x = alloc_array(n, d, sizeof(float)), *y = alloc_array(n, d, sizeof(float));
    float *z = noisy ? alloc_array(n, d, sizeof(float)) : NULL;
    int rc = EXIT_RUN;
    if (!x || !y || (noisy && !z)) {
        fail(EXIT_RUN, "out of memory");
    } else {
        memcpy(x, ae_dataset_data(ds), n * d * sizeof *x);
        if (z) memcpy(z, noisy, n * d * sizeof *z);
        /* Denoising: clean, corrupted and denoised rows. */
        if (run_batched(m, RUN_RECONSTRUCT, z ? z : x, n, d, y, d) == 0) {
            unstandardize(p, x, n, d);
            unstandardize(p, y, n, d);
            if (z) unstandardize(p, z, n, d);
            const float *rows[3] = {x, z ? z : y, y};
            rc = png_rows(path, rows, z ? 3 : 2, n, c, h, w);
        }
    }
    free(x);
    free(y);
    free(z);
    return rc;
}

int picture_features(const char *path, ae_model *m, const prep *p, const ae_dataset *ds) {
    size_t k = ae_model_code_size(m), d = ae_model_output_size(m);
    size_t c = p->shape[0], h = p->shape[1], w = p->shape[2];
    if (need_images(path, h, w)) return EXIT_USAGE;
    size_t shown = k < 1024 ? k : 1024;
    /* Feature j = decode(a_j e_j) - decode(0), a_j the largest |z_j| over
     * (up to 2000 samples of) the data: the picture unit j adds. For a
     * single dense decoder layer this is column j of its weight. */
    float *amp = malloc(k * sizeof *amp), *z = alloc_array(shown + 1, k, sizeof *z);
    float *out = alloc_array(shown + 1, d, sizeof(float)), *codes = NULL;
    int rc = EXIT_RUN;
    if (!amp || !z || !out) {
        fail(EXIT_RUN, "out of memory");
        goto done;
    }
    for (size_t j = 0; j < k; j++) amp[j] = 0.0f;
    memset(z, 0, (shown + 1) * k * sizeof *z);
    size_t n = ds ? ae_dataset_count(ds) : 0;
    if (n > 2000) n = 2000;
    if (n) {
        codes = alloc_array(n, k, sizeof(float));
        if (!codes) {
            fail(EXIT_RUN, "out of memory");
            goto done;
        }
        if (run_batched(m, RUN_ENCODE, ae_dataset_data(ds), n, d, codes, k)) goto done;
        for (size_t i = 0; i < n * k; i++)
            if (fabsf(codes[i]) > amp[i % k]) amp[i % k] = fabsf(codes[i]);
    }
    for (size_t j = 0; j < shown; j++) z[(j + 1) * k + j] = amp[j] > 0.0f ? amp[j] : 1.0f;
    if (run_batched(m, RUN_DECODE, z, shown + 1, k, out, d)) goto done;
    unstandardize(p, out, shown + 1, d);
    for (size_t j = 1; j <= shown; j++)
        for (size_t i = 0; i < d; i++) out[j * d + i] -= out[i];
    rc = png_grid(path, out + d, shown, c, h, w, 1);
done:
    free(amp);
    free(z);
    free(out);
    free(codes);
    return rc;
}

int picture_scatter(const char *path, ae_model *m, const ae_dataset *ds, size_t max_points) {
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds), k = ae_model_code_size(m);
    if (n > max_points) n = max_points;
    if (k > 1 && n < 2) return fail(EXIT_RUN, "%s: a scatter needs at least 2 samples", path);
    float *codes = alloc_array(n, k, sizeof(float)), *xy = alloc_array(n, 2, sizeof(float));
    int rc = EXIT_RUN;
    if (!codes || !xy) {
        fail(EXIT_RUN, "out of memory");
    } else if (run_batched(m, RUN_ENCODE, ae_dataset_data(ds), n, d, codes, k) == 0) {
        ae_status st = AE_OK;
        if (k == 1)
            for (size_t i = 0; i < n; i++) xy[2 * i] = codes[i], xy[2 * i + 1] = 0.0f;
        else if (k == 2)
            memcpy(xy, codes, n * 2 * sizeof *xy);
        else if (k > 4096)
            st = AE_ERR_RANGE;
        else
            st = ae_metric_pca(codes, n, k, 2, NULL, xy, NULL);
        if (st != AE_OK)
            fail(EXIT_RUN, "%s: principal components of the codes: %s", path, ae_status_string(st));
        else
            rc = png_scatter(path, xy, ae_dataset_labels(ds), n);
    }
    free(codes);
    free(xy);
    return rc;
}
