/* The commands that use a trained model: encode, decode, reconstruct,
 * eval and info. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

/* What the model commands accept; each command allows a subset. */
typedef struct model_opts {
    const char *model, *output, *png, *recon_png, *features_png, *scatter_png;
    data_opts data;
    size_t count;
    eval_opts eval;
    uint64_t seed;
    const char *codes;
    int knn_given; /* --knn or --knn-max: they need --labels */
    data_opts ref; /* --ref, --ref-labels: the reference set of kNN and the probe */
    int mode;      /* --mode: ae_mode */
    int noise, noise_clip, have_noise_level; /* --noise (NOISE_MODEL: the model's) */
    double noise_level;
    int arch;      /* info --arch: the description only */
} model_opts;

/* --noise's names: the kinds (ae_noise_kind numbers) and the model's own. */
static const char *const NOISE_NAMES[] = {"none", "gaussian", "mask", "bernoulli", "dropout",
                                          "salt-pepper", "model", NULL};
enum { NOISE_MODEL = 6 };

enum {
    M_LABELS = DATA_OPT_LABELS, M_CSV_HEADER = DATA_OPT_CSV_HEADER,
    M_CSV_LABEL_FIRST = DATA_OPT_CSV_LABEL_FIRST, M_SHAPE = DATA_OPT_SHAPE, M_LIMIT = DATA_OPT_LIMIT,
    M_SCALE = DATA_OPT_SCALE, M_PNG = DATA_OPT_END, M_PERCENTILE,
    M_KNN, M_KNN_MAX, M_SCORES, M_ACTIVE, M_RECON_PNG, M_FEATURES_PNG, M_SCATTER_PNG, M_SEED,
    M_CODES, M_REF, M_REF_LABELS, M_PROBE, M_PROBE_L2, M_MODE, M_NOISE, M_NOISE_LEVEL,
    M_NOISE_CLIP, M_BATCH, M_ARCH
};

static const struct option MODEL_OPTS[] = {
    {"model", required_argument, NULL, 'm'},
    {"data", required_argument, NULL, 'd'},
    {"output", required_argument, NULL, 'o'},
    {"count", required_argument, NULL, 'n'},
    DATA_LONG_OPTIONS,
    {"png", required_argument, NULL, M_PNG},
    {"percentile", required_argument, NULL, M_PERCENTILE},
    {"knn", required_argument, NULL, M_KNN},
    {"knn-max", required_argument, NULL, M_KNN_MAX},
    {"scores", required_argument, NULL, M_SCORES},
    {"active-threshold", required_argument, NULL, M_ACTIVE},
    {"recon-png", required_argument, NULL, M_RECON_PNG},
    {"features-png", required_argument, NULL, M_FEATURES_PNG},
    {"scatter-png", required_argument, NULL, M_SCATTER_PNG},
    {"seed", required_argument, NULL, M_SEED},
    {"codes", required_argument, NULL, M_CODES},
    {"ref", required_argument, NULL, M_REF},
    {"ref-labels", required_argument, NULL, M_REF_LABELS},
    {"probe", no_argument, NULL, M_PROBE},
    {"probe-l2", required_argument, NULL, M_PROBE_L2},
    {"mode", required_argument, NULL, M_MODE},
    {"noise", required_argument, NULL, M_NOISE},
    {"noise-level", required_argument, NULL, M_NOISE_LEVEL},
    {"noise-clip", no_argument, NULL, M_NOISE_CLIP},
    {"batch", required_argument, NULL, M_BATCH},
    {"arch", no_argument, NULL, M_ARCH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char DATA_HELP[] =
    "  -d, --data FILE          input data: IDX (plain or gzipped), .npy or CSV\n"
    "      --csv-header         the CSV's first line is a header\n"
    "      --csv-label-first    the CSV's first column is the label\n"
    "      --shape CxHxW        sample shape, e.g. 1x28x28\n"
    "      --limit N            use the first N samples\n"
    "      --scale F            multiply the stored values by F (default: the value\n"
    "                           convention of the model's training data: 8-bit\n"
    "                           files are mapped to its range, float files are\n"
    "                           taken as already in it)\n"
    "      --batch N            samples per call (default: the most, up to 1024,\n"
    "                           whose workspace fits 256 MB)\n";

static const char ENCODE_HELP[] =
    "Usage: ae encode -m MODEL -d DATA -o CODES.npy [OPTIONS]\n"
    "Writes the code of every sample of DATA, [N, code size] float32.\n"
    "The data are prepared as for training (scale, standardisation).\n\n"
    "  -m, --model FILE         the model file\n"
    "  -o, --output FILE        the .npy file to write\n";

static const char DECODE_HELP[] =
    "Usage: ae decode -m MODEL -d CODES -o OUT.npy [--png FILE] [OPTIONS]\n"
    "Writes the decoder's output for every code in CODES (.npy or CSV of\n"
    "[N, code size]), in the units of the training data file.\n\n"
    "  -m, --model FILE         the model file\n"
    "  -d, --data FILE          the codes: .npy or CSV\n"
    "      --csv-header         the CSV's first line is a header\n"
    "  -o, --output FILE        the .npy file to write\n"
    "      --png FILE           a grid of the first --count outputs (image models)\n"
    "  -n, --count N            pictures show N samples (default 64)\n"
    "      --batch N            codes per call (default: the most, up to 1024, whose\n"
    "                           workspace fits 256 MB)\n"
    "  -h, --help               this help\n";

static const char RECONSTRUCT_HELP[] =
    "Usage: ae reconstruct -m MODEL -d DATA -o OUT.npy [--png FILE] [OPTIONS]\n"
    "Writes the reconstruction of every sample of DATA, in the units of the\n"
    "data file, as a .npy of the data's shape.\n\n"
    "  -m, --model FILE         the model file\n"
    "  -o, --output FILE        the .npy file to write\n"
    "      --png FILE           originals above their reconstructions (with --noise:\n"
    "                           clean, corrupted and denoised rows)\n"
    "  -n, --count N            the picture shows N samples (default 20)\n"
    "      --noise KIND         reconstruct a corrupted copy of the data: gaussian,\n"
    "                           mask, bernoulli, dropout, salt-pepper, or model (the\n"
    "                           model's training noise); --noise-level F, --noise-clip\n"
    "                           and --seed N (default 0) as for train\n"
    "      --mode MODE          infer (default) or train: selection layers as in\n"
    "                           training (lifetime top-k over each batch)\n";

static const char EVAL_HELP[] =
    "Usage: ae eval -m MODEL -d DATA [OPTIONS]\n"
    "Prints the metrics of MODEL on DATA: MSE, normalised MSE, fraction of\n"
    "variance unexplained, PSNR and SSIM (images), an anomaly threshold at a\n"
    "percentile of the per-sample MSE, statistics of the codes, and with labels\n"
    "the k-nearest-neighbour accuracy of the codes. See ae(1) for definitions.\n\n"
    "  -m, --model FILE         the model file\n"
    "      --labels FILE        labels: IDX, .npy (any integer dtype) or CSV\n"
    "      --percentile P       anomaly threshold percentile (default 99)\n"
    "      --scores FILE        write the per-sample scores to a .npy\n"
    "      --active-threshold V a code unit is active when its variance exceeds V\n"
    "                           (default 0.01)\n"
    "      --knn K              neighbours for the kNN accuracy (default 5; 0: off)\n"
    "      --knn-max N          at most N samples for it (default 2000 leave-one-out;\n"
    "                           with --ref every sample)\n"
    "      --ref FILE           reference data (e.g. the training set): kNN takes its\n"
    "                           codes and labels, the data are the queries\n"
    "      --ref-labels FILE    the labels of --ref (IDX, .npy or CSV)\n"
    "      --probe              a linear probe: multinomial logistic regression on\n"
    "                           the codes of --ref, its accuracy on the data\n"
    "      --probe-l2 L         its L2 weight on the mean loss (default 1/N of --ref,\n"
    "                           scikit-learn's C = 1)\n"
    "      --noise KIND         evaluate denoising: corrupt the data (gaussian, mask,\n"
    "                           bernoulli, dropout, salt-pepper, or model: the model's\n"
    "                           training noise) and compare the reconstructions with\n"
    "                           the clean data; --noise-level F, --noise-clip, --seed N\n"
    "      --mode MODE          infer (default) or train: selection layers as in\n"
    "                           training (lifetime top-k over each batch)\n"
    "      --recon-png FILE     originals above their reconstructions (with --noise:\n"
    "                           clean, corrupted and denoised rows)\n"
    "      --features-png FILE  the decoder's features, one tile per code unit\n"
    "      --scatter-png FILE   the codes in 2-D coloured by label\n"
    "  -n, --count N            the reconstruction picture shows N samples (default 20)\n";

static const char SAMPLE_HELP[] =
    "Usage: ae sample -m MODEL [-n N] [-o OUT.npy] [--png FILE] [OPTIONS]\n"
    "Draws N codes z ~ N(0, I) and decodes them with a variational autoencoder\n"
    "(a model trained with 'ae train --vae'), in the units of its training data.\n\n"
    "  -m, --model FILE         the model file\n"
    "  -n, --count N            how many samples (default 64)\n"
    "  -o, --output FILE        the .npy file of the samples\n"
    "      --png FILE           the samples as a grid\n"
    "      --codes FILE         also write the drawn codes as a .npy\n"
    "      --seed N             seeds the draws (default 0)\n"
    "  -h, --help               this help\n";

static const char INFO_HELP[] =
    "Usage: ae info [--arch] MODEL\n"
    "       ae info [--arch] -m MODEL\n"
    "Prints the architecture (layers, sizes, activations, parameter counts), its\n"
    "description (docs/arch.md: `ae train --arch` builds the same model from it),\n"
    "the backend it computes with here, the settings, the data the model was\n"
    "trained on and its training history.\n\n"
    "  -m, --model FILE         the model file\n"
    "      --arch               print the description only\n"
    "  -h, --help               this help\n";

/* allowed: the option values (short chars and M_* ids) this command takes. */
static int parse_model_opts(int argc, char **argv, const int *allowed, const char *help,
                            int with_data_help, model_opts *o) {
    memset(o, 0, sizeof *o);
    g_batch = 0;
    o->eval.percentile = 99.0;
    o->eval.knn_k = 5;
    o->eval.knn_max = 2000;
    o->eval.active_threshold = 0.01;
    opterr = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, ":m:d:o:n:h", MODEL_OPTS, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            if (with_data_help) fputs(DATA_HELP, stdout);
            if (with_data_help) fputs("  -h, --help               this help\n", stdout);
            return 1;
        }
        if (c == '?' || c == ':') return getopt_error(argv, c);
        int ok = 0;
        for (const int *a = allowed; *a; a++) ok |= *a == c;
        /* The option's own word: a separate argument follows it. */
        const char *word = optarg && optind >= 2 && argv[optind - 1] == optarg ? argv[optind - 2]
                                                                               : argv[optind - 1];
        if (!ok) return usage_error("option '%s' is not for this command", word);
        const char *a = optarg;
        int bad = data_parse_opt(c, a, &o->data);
        if (bad >= 0) {
            if (bad) return EXIT_USAGE;
            continue;
        }
        bad = 0;
        switch (c) {
        case 'm': o->model = a; break;
        case 'o': o->output = a; break;
        case 'n': bad = parse_size("--count", a, 1, 10000, &o->count); break;
        case M_PNG: o->png = a; break;
        case M_PERCENTILE: bad = parse_double("--percentile", a, 0, 100, &o->eval.percentile); break;
        case M_KNN:
            bad = parse_size("--knn", a, 0, 1024, &o->eval.knn_k);
            o->knn_given = 1;
            break;
        case M_KNN_MAX:
            bad = parse_size("--knn-max", a, 2, 100000, &o->eval.knn_max);
            o->knn_given = 1;
            o->eval.knn_max_given = 1;
            break;
        case M_SCORES: o->eval.scores_path = a; break;
        case M_ACTIVE:
            bad = parse_double("--active-threshold", a, 0, 1e30, &o->eval.active_threshold);
            break;
        case M_ARCH: o->arch = 1; break;
        case M_RECON_PNG: o->recon_png = a; break;
        case M_FEATURES_PNG: o->features_png = a; break;
        case M_SCATTER_PNG: o->scatter_png = a; break;
        case M_SEED: bad = parse_u64("--seed", a, &o->seed); break;
        case M_CODES: o->codes = a; break;
        case M_REF: o->ref.path = a; break;
        case M_REF_LABELS: o->ref.labels = a; break;
        case M_PROBE: o->eval.probe = 1; break;
        case M_PROBE_L2: bad = parse_double("--probe-l2", a, 0, 1e6, &o->eval.probe_l2); break;
        case M_MODE: {
            static const char *const modes[] = {"infer", "train", NULL};
            bad = parse_choice("--mode", a, modes, &o->mode);
            break;
        }
        case M_NOISE: bad = parse_choice("--noise", a, NOISE_NAMES, &o->noise); break;
        case M_NOISE_LEVEL:
            bad = parse_double("--noise-level", a, 0, 1e6, &o->noise_level);
            o->have_noise_level = 1;
            break;
        case M_NOISE_CLIP: o->noise_clip = 1; break;
        case M_BATCH: bad = parse_size("--batch", a, 1, 1u << 24, &g_batch); break;
        default: return usage_error("unknown option '%s'", word);
        }
        if (bad) return EXIT_USAGE;
    }
    return 0;
}

static int check_required(const model_opts *o, int need_data, int need_output, int argc,
                          char **argv) {
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->model) return usage_error("no model file: give -m MODEL");
    if (need_data && !o->data.path) return usage_error("no data file: give -d FILE");
    if (need_output && !o->output) return usage_error("no output file: give -o FILE");
    if (!file_readable(o->model)) return fail(EXIT_RUN, "cannot open %s", o->model);
    if (o->data.path && !file_readable(o->data.path))
        return fail(EXIT_RUN, "cannot open %s", o->data.path);
    if (o->ref.path && !file_readable(o->ref.path)) return fail(EXIT_RUN, "cannot open %s", o->ref.path);
    const named_file outputs[] = {{"-o", o->output},
                                  {"--png", o->png},
                                  {"--recon-png", o->recon_png},
                                  {"--features-png", o->features_png},
                                  {"--scatter-png", o->scatter_png},
                                  {"--scores", o->eval.scores_path},
                                  {"--codes", o->codes}};
    const named_file inputs[] = {{"-m", o->model},
                                 {"-d", o->data.path},
                                 {"--labels", o->data.labels},
                                 {"--ref", o->ref.path},
                                 {"--ref-labels", o->ref.labels}};
    return check_outputs(outputs, sizeof outputs / sizeof *outputs, inputs,
                         sizeof inputs / sizeof *inputs);
}

/* Loads the model and the data, prepared for it. */
static int load_both(model_opts *o, ae_model **m, prep *p, ae_dataset **ds) {
    *ds = NULL;
    if (!(*m = model_load(o->model, p))) return EXIT_RUN;
    data_for_model(&o->data, *m, p->shape);
    int rc = data_load(&o->data, ds);
    return rc ? rc : prep_data(*ds, &o->data, p, o->data.path);
}

/* The options of denoising evaluation that need one another. */
static int check_noise_opts(const model_opts *o) {
    if ((o->have_noise_level || o->noise_clip) && !o->noise)
        return usage_error("--noise-level and --noise-clip need --noise");
    if (o->noise && o->noise != NOISE_MODEL && !o->have_noise_level)
        return usage_error("--noise %s needs --noise-level", NOISE_NAMES[o->noise]);
    if (o->noise == NOISE_MODEL && (o->have_noise_level || o->noise_clip))
        return usage_error("--noise model takes the model's level and clipping");
    return 0;
}

/* The corruption --noise asks for (the model's training noise for
 * "model"); *desc receives its description. 0 when none is asked. */
static int noise_of(const model_opts *o, ae_model *m, ae_noise *nz, char *desc, size_t cap) {
    if (!o->noise) return 0;
    if (o->noise == NOISE_MODEL) {
        int64_t kind = 0, clip = 0;
        double level = 0, mean = 0, value = 0, lo = 0, hi = 1;
        ae_model_get_int(m, AE_P_NOISE_KIND, &kind);
        if (kind == AE_NOISE_NONE)
            return fail(EXIT_USAGE, "--noise model: %s was not trained with noise; give a kind",
                        o->model);
        ae_model_get_float(m, AE_P_NOISE_LEVEL, &level);
        ae_model_get_float(m, AE_P_NOISE_MEAN, &mean);
        ae_model_get_float(m, AE_P_NOISE_VALUE, &value);
        ae_model_get_int(m, AE_P_NOISE_CLIP, &clip);
        ae_model_get_float(m, AE_P_NOISE_CLIP_LO, &lo);
        ae_model_get_float(m, AE_P_NOISE_CLIP_HI, &hi);
        ae_noise_init(nz, (ae_noise_kind)kind, level);
        nz->mean = mean, nz->value = value, nz->clip = (int)clip, nz->clip_lo = lo, nz->clip_hi = hi;
    } else {
        ae_noise_init(nz, (ae_noise_kind)o->noise, o->noise_level);
        if (o->noise_clip) nz->clip = 1, nz->clip_lo = 0.0, nz->clip_hi = 1.0;
    }
    snprintf(desc, cap, "%s level %g%s, seed %llu", NOISE_NAMES[nz->kind], nz->level,
             nz->clip ? ", clipped" : "", (unsigned long long)o->seed);
    return 0;
}

int cmd_encode(int argc, char **argv) {
    static const int allowed[] = {'m', 'd', 'o', M_CSV_HEADER, M_CSV_LABEL_FIRST, M_SHAPE, M_LIMIT,
                                  M_SCALE, M_BATCH, 0};
    model_opts o;
    int rc = parse_model_opts(argc, argv, allowed, ENCODE_HELP, 1, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = check_required(&o, 1, 1, argc, argv))) return rc;
    ae_model *m = NULL;
    ae_dataset *ds = NULL;
    prep p;
    float *codes = NULL;
    if ((rc = load_both(&o, &m, &p, &ds))) goto done;
    size_t n = ae_dataset_count(ds), k = ae_model_code_size(m);
    codes = alloc_array(n, k, sizeof(float));
    rc = EXIT_RUN;
    if (!codes) {
        fail(EXIT_RUN, "out of memory");
        goto done;
    }
    if (run_batched(m, RUN_ENCODE, ae_dataset_data(ds), n, ae_dataset_dim(ds), codes, k) ||
        write_npy(o.output, codes, n, k, 1, 1))
        goto done;
    printf("%zu codes of %zu values written to %s\n", n, k, o.output);
    rc = 0;
done:
    free(codes);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
    prep_free(&p);
    return rc;
}

int cmd_decode(int argc, char **argv) {
    static const int allowed[] = {'m', 'd', 'o', 'n', M_CSV_HEADER, M_PNG, M_BATCH, 0};
    model_opts o;
    int rc = parse_model_opts(argc, argv, allowed, DECODE_HELP, 0, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = check_required(&o, 1, 1, argc, argv))) return rc;
    prep p;
    ae_model *m = model_load(o.model, &p);
    ae_dataset *ds = NULL;
    float *out = NULL;
    if (!m) return EXIT_RUN;
    /* Codes are used as they are. */
    if ((rc = data_load(&o.data, &ds)) != 0) goto done;
    rc = EXIT_RUN;
    size_t n = ae_dataset_count(ds), k = ae_model_code_size(m), d = ae_model_output_size(m);
    if (ae_dataset_dim(ds) != k) {
        fail(EXIT_RUN, "%s has %zu values per sample; the model's code has %zu", o.data.path,
             ae_dataset_dim(ds), k);
        goto done;
    }
    if (o.png && p.shape[1] == 1 && p.shape[2] == 1) {
        rc = fail(EXIT_USAGE, "--png: the model's samples are vectors, not images");
        goto done;
    }
    if (!(out = alloc_array(n, d, sizeof(float)))) {
        fail(EXIT_RUN, "out of memory");
        goto done;
    }
    if (run_batched(m, RUN_DECODE, ae_dataset_data(ds), n, k, out, d)) goto done;
    prep_undo(&p, out, n, d);
    if (write_npy(o.output, out, n, p.shape[0], p.shape[1], p.shape[2])) goto done;
    printf("%zu outputs of %zux%zux%zu written to %s\n", n, p.shape[0], p.shape[1], p.shape[2],
           o.output);
    if (o.png) {
        size_t shown = o.count ? o.count : 64;
        if (shown > n) shown = n;
        if (png_grid(o.png, out, shown, p.shape[0], p.shape[1], p.shape[2], 0)) goto done;
        printf("picture written to %s\n", o.png);
    }
    rc = 0;
done:
    free(out);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
    prep_free(&p);
    return rc;
}

int cmd_reconstruct(int argc, char **argv) {
    static const int allowed[] = {'m', 'd', 'o', 'n', M_CSV_HEADER, M_CSV_LABEL_FIRST, M_SHAPE,
                                  M_LIMIT, M_SCALE, M_PNG, M_BATCH, M_NOISE, M_NOISE_LEVEL,
                                  M_NOISE_CLIP, M_SEED, M_MODE, 0};
    model_opts o;
    int rc = parse_model_opts(argc, argv, allowed, RECONSTRUCT_HELP, 1, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = check_noise_opts(&o)) || (rc = check_required(&o, 1, 1, argc, argv))) return rc;
    ae_model *m = NULL;
    ae_dataset *ds = NULL;
    prep p;
    float *out = NULL, *noisy = NULL;
    if ((rc = load_both(&o, &m, &p, &ds))) goto done;
    rc = EXIT_RUN;
    size_t n = ae_dataset_count(ds), d = ae_dataset_dim(ds), c, h, w;
    ae_dataset_shape(ds, &c, &h, &w);
    if (o.png && h == 1 && w == 1) {
        rc = fail(EXIT_USAGE, "--png: the samples are vectors, not images; give --shape");
        goto done;
    }
    if (!(out = alloc_array(n, d, sizeof(float)))) {
        fail(EXIT_RUN, "out of memory");
        goto done;
    }
    ae_noise nz;
    char desc[128];
    if ((rc = noise_of(&o, m, &nz, desc, sizeof desc)) != 0) goto done;
    rc = EXIT_RUN;
    if (o.noise && (rc = corrupt_copy(&nz, o.seed, ds, &noisy)) != 0) goto done;
    rc = EXIT_RUN;
    if (o.mode) ae_model_set_mode(m, AE_MODE_TRAIN);
    if (run_batched(m, RUN_RECONSTRUCT, noisy ? noisy : ae_dataset_data(ds), n, d, out, d)) goto done;
    /* In the units of this data file (its own convention, the model's statistics). */
    prep in_units = prep_of(ds, &p);
    prep_undo(&in_units, out, n, d);
    if (write_npy(o.output, out, n, c, h, w)) goto done;
    printf("%zu reconstructions%s%s written to %s\n", n, noisy ? " of the data corrupted by " : "",
           noisy ? desc : "", o.output);
    if (o.png) {
        if ((rc = picture_recon(o.png, m, &p, ds, noisy, o.count ? o.count : 20)) != 0) goto done;
        printf("picture written to %s\n", o.png);
    }
    rc = 0;
done:
    free(out);
    free(noisy);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
    prep_free(&p);
    return rc;
}

int cmd_eval(int argc, char **argv) {
    static const int allowed[] = {'m', 'd', M_LABELS, M_CSV_HEADER, M_CSV_LABEL_FIRST, M_SHAPE,
                                  M_LIMIT, M_SCALE, M_PERCENTILE, M_KNN, M_KNN_MAX, M_SCORES,
                                  M_ACTIVE, M_RECON_PNG, M_FEATURES_PNG, M_SCATTER_PNG, 'n',
                                  M_REF, M_REF_LABELS, M_PROBE, M_PROBE_L2, M_MODE, M_NOISE,
                                  M_NOISE_LEVEL, M_NOISE_CLIP, M_SEED, M_BATCH, 0};
    model_opts o;
    int rc = parse_model_opts(argc, argv, allowed, EVAL_HELP, 1, &o);
    if (rc) return rc == 1 ? 0 : rc;
    int labelled = o.data.labels || o.data.csv_label_first;
    /* --knn 0 turns kNN off: then it needs nothing. */
    if (o.knn_given && o.eval.knn_k && !labelled)
        return usage_error("--knn and --knn-max need labels: --labels FILE or --csv-label-first");
    if (o.ref.labels && !o.ref.path) return usage_error("--ref-labels needs --ref");
    if (o.eval.probe_l2 && !o.eval.probe) return usage_error("--probe-l2 needs --probe");
    if (o.eval.probe && !o.ref.path)
        return usage_error("--probe needs --ref (the data it is trained on)");
    if (o.ref.path && !o.eval.probe && !o.eval.knn_k)
        return usage_error("--ref is for --knn and --probe");
    if (o.ref.path && !labelled)
        return usage_error("--ref needs labels for the evaluated data: --labels FILE or "
                           "--csv-label-first");
    if (o.ref.path && !o.ref.labels && !o.data.csv_label_first)
        return usage_error("--ref needs its labels: --ref-labels FILE (or CSVs with "
                           "--csv-label-first)");
    if ((rc = check_noise_opts(&o)) || (rc = check_required(&o, 1, 0, argc, argv))) return rc;
    ae_model *m = NULL;
    ae_dataset *ds = NULL, *ref = NULL;
    prep p;
    float *noisy = NULL;
    char desc[128];
    ae_noise nz;
    if ((rc = load_both(&o, &m, &p, &ds))) goto done;
    if (o.ref.path) {
        /* The reference set means what the model's data mean, all of it. */
        data_opts ro = o.data;
        ro.path = o.ref.path;
        ro.labels = o.ref.labels;
        ro.limit = 0;
        if ((rc = data_load(&ro, &ref)) != 0 || (rc = prep_data(ref, &ro, &p, ro.path)) != 0)
            goto done;
        o.eval.ref = ref;
    }
    if ((rc = noise_of(&o, m, &nz, desc, sizeof desc)) != 0) goto done;
    if (o.noise && (rc = corrupt_copy(&nz, o.seed, ds, &noisy)) != 0) goto done;
    o.eval.noisy = noisy;
    o.eval.noise_desc = desc;
    /* Selection layers as in training (lifetime top-k over each batch). */
    if (o.mode) ae_model_set_mode(m, AE_MODE_TRAIN);
    rc = EXIT_RUN;
    if (evaluate_print(m, &p, ds, &o.eval)) goto done;
    /* The picture calls return the exit code of their failure. */
    if (o.recon_png) {
        if ((rc = picture_recon(o.recon_png, m, &p, ds, noisy, o.count ? o.count : 20)) != 0)
            goto done;
        printf("reconstructions written to %s\n", o.recon_png);
    }
    if (o.features_png) {
        if ((rc = picture_features(o.features_png, m, &p, ds)) != 0) goto done;
        printf("features written to %s\n", o.features_png);
    }
    if (o.scatter_png) {
        if ((rc = picture_scatter(o.scatter_png, m, ds, 5000)) != 0) goto done;
        printf("code scatter written to %s\n", o.scatter_png);
    }
    rc = 0;
done:
    free(noisy);
    ae_dataset_destroy(ds);
    ae_dataset_destroy(ref);
    ae_model_destroy(m);
    prep_free(&p);
    return rc;
}

/* ---- sample ---- */

/* Standard normal draws by Box-Muller from 53-bit uniforms. */
static void normal_fill(float *z, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(tool_splitmix(&s) >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
        double u2 = (double)(tool_splitmix(&s) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        z[i] = (float)(r * cos(6.283185307179586 * u2));
        if (i + 1 < n) z[i + 1] = (float)(r * sin(6.283185307179586 * u2));
    }
}

int cmd_sample(int argc, char **argv) {
    static const int allowed[] = {'m', 'o', 'n', M_PNG, M_SEED, M_CODES, 0};
    model_opts o;
    int rc = parse_model_opts(argc, argv, allowed, SAMPLE_HELP, 0, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if ((rc = check_required(&o, 0, 0, argc, argv))) return rc;
    if (!o.output && !o.png) return usage_error("nothing to write: give -o FILE and/or --png FILE");
    prep p;
    ae_model *m = model_load(o.model, &p);
    if (!m) return EXIT_RUN;
    size_t n = o.count ? o.count : 64, k = ae_model_code_size(m), d = ae_model_output_size(m);
    float *z = NULL, *out = NULL;
    rc = EXIT_RUN;
    if (!model_is_vae(m)) {
        rc = fail(EXIT_USAGE, "%s is not a variational autoencoder (train it with --vae)", o.model);
        goto done;
    }
    if (o.png && p.shape[1] == 1 && p.shape[2] == 1) {
        rc = fail(EXIT_USAGE, "--png: the model's samples are vectors, not images");
        goto done;
    }
    z = alloc_array(n, k, sizeof(float));
    out = alloc_array(n, d, sizeof(float));
    if (!z || !out) {
        fail(EXIT_RUN, "out of memory");
        goto done;
    }
    /* The tool draws z itself (rather than ae_vae_sample from the model's
     * RNG) so that --seed chooses the draws of a saved model. */
    normal_fill(z, n * k, o.seed ^ 0x53414d504c45ULL);
    if (run_batched(m, RUN_DECODE, z, n, k, out, d)) goto done;
    prep_undo(&p, out, n, d);
    if (o.output) {
        if (write_npy(o.output, out, n, p.shape[0], p.shape[1], p.shape[2])) goto done;
        printf("%zu samples written to %s\n", n, o.output);
    }
    if (o.codes) {
        if (write_npy(o.codes, z, n, k, 1, 1)) goto done;
        printf("their codes written to %s\n", o.codes);
    }
    if (o.png) {
        if (png_grid(o.png, out, n, p.shape[0], p.shape[1], p.shape[2], 0)) goto done;
        printf("picture written to %s\n", o.png);
    }
    rc = 0;
done:
    free(z);
    free(out);
    ae_model_destroy(m);
    prep_free(&p);
    return rc;
}

/* ---- info ---- */

static void print_history(const char *h) {
    /* The CSV written by ae train: a header, then one line per epoch. */
    const char *line = strchr(h, '\n');
    if (!line) return;
    printf("\ntraining history:\n  epoch  train loss    val loss    test MSE          lr   seconds\n");
    for (line++; *line;) {
        size_t e;
        double tl, vl, tm, lr, sec;
        if (sscanf(line, "%zu,%lf,%lf,%lf,%lf,%lf", &e, &tl, &vl, &tm, &lr, &sec) == 6) {
            printf("  %5zu  %10.5f  ", e, tl);
            if (isnan(vl)) printf("%10s  ", "-");
            else printf("%10.5f  ", vl);
            if (isnan(tm)) printf("%10s  ", "-");
            else printf("%10.5f  ", tm);
            printf("%10.3g  %8.2f\n", lr, sec);
        }
        const char *next = strchr(line, '\n');
        if (!next) break;
        line = next + 1;
    }
}

/* The value convention of the training data, one line. */
static void print_convention(const ae_data_convention *c, const float *mean, const float *std) {
    static const char *const elems[] = {"unknown", "float", "uint8"};
    if (c->elem == AE_ELEM_UNKNOWN && c->std_count == 0) {
        printf("\ndata: no value convention recorded (uint8 files are taken x 1/255, float files "
               "as they are)\n");
        return;
    }
    printf("\ndata: %s values", elems[c->elem <= AE_ELEM_UINT8 ? c->elem : 0]);
    if (fabs(c->scale * 255.0 - 1.0) < 1e-6)
        printf(" x 1/255");
    else
        printf(" x %g", c->scale);
    if (c->offset != 0.0) printf(" + %g", c->offset);
    if (c->std_count)
        printf(", standardised with %zu mean/std value%s", c->std_count, c->std_count > 1 ? "s" : "");
    /* The values themselves when they are few (one a channel, as Normalize's). */
    for (int part = 0; c->std_count && c->std_count <= 4 && part < 2; part++)
        for (size_t i = 0; i < c->std_count; i++)
            printf("%s%g", i ? "," : part ? "/" : " ", (double)(part ? std : mean)[i]);
    if (!isnan(c->lo)) printf("; trained on inputs in [%g, %g]", c->lo, c->hi);
    printf("\n");
}

int cmd_info(int argc, char **argv) {
    static const int allowed[] = {'m', M_ARCH, 0};
    model_opts o;
    int rc = parse_model_opts(argc, argv, allowed, INFO_HELP, 0, &o);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o.model && optind < argc) o.model = argv[optind++];
    if (optind < argc) return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o.model) return usage_error("no model file: give MODEL");
    if (!file_readable(o.model)) return fail(EXIT_RUN, "cannot open %s", o.model);
    prep p;
    ae_model *m = model_load(o.model, &p);
    if (!m) return EXIT_RUN;
    char *desc = arch_describe(m);
    if (!desc) {
        ae_model_destroy(m);
        prep_free(&p);
        return EXIT_RUN;
    }
    if (o.arch) {
        fputs(desc, stdout);
        free(desc);
        ae_model_destroy(m);
        prep_free(&p);
        return 0;
    }
    size_t layers = ae_model_layer_count(m), code_at = ae_model_code_layer(m);
    printf("model %s\n", o.model);
    printf("input %zu (%zux%zux%zu), code %zu, %zu layers, %zu trainable parameters\n",
           ae_model_input_size(m), p.shape[0], p.shape[1], p.shape[2], ae_model_code_size(m),
           layers, ae_model_param_count(m));
    /* The backend this libae gives the model (AUTO's rule): files keep none. */
    printf("compute backend %s (built in: openblas%s)\n\n",
           ae_backend_name(ae_model_backend(m)),
           ae_backend_available(AE_BACKEND_ONEDNN) ? ", onednn" : "");
    printf("  layer  kind              activation         in -> out           weights   biases\n");
    for (size_t i = 0; i < layers; i++) {
        ae_layer_info li;
        li.struct_size = sizeof li;
        if (ae_model_layer_info(m, i, &li) != AE_OK) continue;
        if (i == code_at) printf("  ---- code ----\n");
        /* Image shapes as CxHxW, vectors as their size. */
        size_t in[3], out[3];
        char sin[48], sout[48];
        if (ae_model_layer_shape(m, i, in, out) == AE_OK && (in[1] > 1 || in[2] > 1))
            snprintf(sin, sizeof sin, "%zux%zux%zu", in[0], in[1], in[2]);
        else
            snprintf(sin, sizeof sin, "%zu", li.in_size);
        if (ae_model_layer_shape(m, i, in, out) == AE_OK && (out[1] > 1 || out[2] > 1))
            snprintf(sout, sizeof sout, "%zux%zux%zu", out[0], out[1], out[2]);
        else
            snprintf(sout, sizeof sout, "%zu", li.out_size);
        const char *kind = ae_layer_kind_name(li.kind), *act = ae_activation_name(li.activation);
        printf("  %5zu  %-16s  %-10s  %10s -> %-10s  %8zu  %7zu%s\n", i, kind ? kind : "?",
               act ? act : "?", sin, sout, li.weight_count, li.bias_count,
               ae_model_is_tied(m, i) ? "  (tied)" : "");
    }
    static const struct {
        ae_param p;
        const char *name;
        int is_int;
    } settings[] = {
        {AE_P_LOSS, "loss", 1},           {AE_P_OPTIMIZER, "optimizer", 1},
        {AE_P_LEARNING_RATE, "learning rate", 0}, {AE_P_WEIGHT_DECAY, "weight decay", 0},
        {AE_P_SEED, "seed", 1},           {AE_P_NOISE_KIND, "noise", 1},
        {AE_P_NOISE_LEVEL, "noise level", 0},     {AE_P_REDUCTION, "reduction", 1},
        {AE_P_VAE_BETA, "VAE beta", 0},           {AE_P_VAE_BETA_WARMUP_STEPS, "KL warm-up steps", 1},
    };
    static const char *const loss_names[] = {"mse", "bce"}, *const opt_names[] = {"sgd", "adam", "adamw"},
                             *const noise_names[] = {"none", "gaussian", "mask", "bernoulli",
                                                     "dropout", "salt-pepper"};
    /* Indented: the description's lines read the same with leading spaces. */
    printf("\ndescription (ae info --arch prints it alone; ae train --arch builds it):\n");
    for (const char *l = desc; *l;) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        printf("  %.*s\n", (int)n, l);
        l += n + (e != NULL);
    }
    free(desc);
    printf("\nsettings:");
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++) {
        int64_t iv;
        double fv;
        if (settings[i].is_int) {
            if (ae_model_get_int(m, settings[i].p, &iv) != AE_OK) continue;
            const char *nm = NULL;
            if (settings[i].p == AE_P_LOSS && iv >= 0 && iv < 2) nm = loss_names[iv];
            if (settings[i].p == AE_P_OPTIMIZER && iv >= 0 && iv < 3) nm = opt_names[iv];
            if (settings[i].p == AE_P_NOISE_KIND && iv >= 0 && iv < 6) nm = noise_names[iv];
            if (settings[i].p == AE_P_REDUCTION) nm = iv ? "sum" : "mean";
            if (settings[i].p == AE_P_VAE_BETA_WARMUP_STEPS && !model_is_vae(m)) continue;
            if (nm) printf(" %s %s;", settings[i].name, nm);
            else if (settings[i].p == AE_P_SEED) /* its 64 bits, unsigned */
                printf(" %s %llu;", settings[i].name, (unsigned long long)(uint64_t)iv);
            else printf(" %s %lld;", settings[i].name, (long long)iv);
        } else if ((settings[i].p != AE_P_VAE_BETA || model_is_vae(m)) &&
                   ae_model_get_float(m, settings[i].p, &fv) == AE_OK) {
            printf(" %s %g;", settings[i].name, fv);
        }
    }
    printf("\n");
    const char *hist = NULL;
    print_convention(&p.conv, p.mean, p.std);
    size_t nmeta = ae_model_meta_count(m);
    for (size_t i = 0; i < nmeta; i++) {
        const char *key, *val;
        if (ae_model_meta_at(m, i, &key, &val) != AE_OK) continue;
        if (strcmp(key, "ae.train.history") == 0) {
            hist = val;
            continue;
        }
        if (strcmp(key, "ae.data.mean") == 0 || strcmp(key, "ae.data.std") == 0) continue;
        printf("  %-22s %s\n", key, val);
    }
    if (hist) print_history(hist);
    ae_model_destroy(m);
    prep_free(&p);
    return 0;
}
