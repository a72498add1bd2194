/* The `ae` command-line tool: shared declarations. The tool uses only the
 * public API (<libae/ae.h>); pictures are written with libpng. */
#ifndef AE_TOOL_H
#define AE_TOOL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <libae/ae.h>
#include <libae/io.h>

/* Exit codes: 0 success, 1 a failure while running, 2 a usage error. */
enum { EXIT_RUN = 1, EXIT_USAGE = 2 };

/* Where Debian's dataset-fashion-mnist puts the files. */
#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---- messages (util.c) ---- */

/* The running command's name ("ae train"), used to prefix every message. */
extern const char *g_cmd;

/* The last message of fail or usage_error (without the prefix), for the
 * other ranks of `ae train --distributed` (distributed.c). */
extern char g_last_message[512];
/* Prints "ae CMD: message" on one line to stderr; returns `code`. */
int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A usage error: the message and a pointer to --help, one line; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Parse numbers with range checks; 0 on success, else a usage message printed. */
int parse_size(const char *opt, const char *s, size_t lo, size_t hi, size_t *out);
int parse_double(const char *opt, const char *s, double lo, double hi, double *out);
int parse_u64(const char *opt, const char *s, uint64_t *out);
/* "CxHxW" or "HxW". */
int parse_shape(const char *opt, const char *s, size_t shape[3]);
/* "256,32" into up to `cap` widths. */
int parse_widths(const char *opt, const char *s, size_t *w, size_t cap, size_t *n);
int parse_activation(const char *opt, const char *s, ae_activation *out);

/* Sizes that come from files (shapes, counts) are multiplied through these:
 * mul_size sets *out = a * b and returns 0, or returns -1 when the product
 * does not fit size_t; alloc_array mallocs n * d elements of `elem` bytes,
 * NULL when that overflows or memory runs out. */
int mul_size(size_t a, size_t b, size_t *out);
void *alloc_array(size_t n, size_t d, size_t elem);

double now_seconds(void);
/* One of names (NULL-terminated), case-insensitive: its index in *out. */
int parse_choice(const char *opt, const char *s, const char *const *names, int *out);
/* Reports what getopt_long returned for a bad option (opterr = 0, optstring
 * starting with ':'); returns EXIT_USAGE. */
int getopt_error(char **argv, int c);

/* SplitMix64: the tool's own shuffles and normal draws, seeded by --seed. */
uint64_t tool_splitmix(uint64_t *s);

/* ---- data (data.c) ---- */

typedef struct data_opts {
    const char *path;   /* data file: IDX (plain or gzipped), .npy or CSV */
    const char *labels; /* optional labels: IDX, .npy or CSV (one integer a line) */
    int csv_header, csv_label_first;
    size_t shape[3]; /* --shape, all 0 when not given */
    size_t limit;    /* first N samples; 0 = all */
    int have_scale;
    double scale; /* --scale: overrides the value convention (prep_data) */
    /* Image folders (-d DIR) and file-backed rows. */
    size_t image_size[2]; /* --image-size HxW; default 64x64 */
    size_t channels;      /* --channels; default 3 */
    int crop, skip_bad;   /* --crop, --skip-bad */
    const char *cache;    /* --image-cache FILE */
    int mmap;             /* --mmap: read the .npy rows from disk */
    int allow_file;       /* set by the caller: a file-backed result is welcome
                             (else it is copied into memory) */
    size_t model_image[3]; /* set by data_for_model: a model's CxHxW and */
    int model_crop;        /* resize, for image folders without --image-size,
                              --channels, --crop */
} data_opts;

/* getopt_long ids of the data options every command that reads a data file
 * shares; a command numbers its own options from DATA_OPT_END. */
enum {
    DATA_OPT_LABELS = 256, DATA_OPT_CSV_HEADER, DATA_OPT_CSV_LABEL_FIRST, DATA_OPT_SHAPE,
    DATA_OPT_LIMIT, DATA_OPT_SCALE, DATA_OPT_IMAGE_SIZE, DATA_OPT_CHANNELS, DATA_OPT_CROP,
    DATA_OPT_SKIP_BAD, DATA_OPT_IMAGE_CACHE, DATA_OPT_MMAP, DATA_OPT_END
};

/* Their long options, for a command's option table. */
#define DATA_LONG_OPTIONS                                                  \
    {"labels", required_argument, NULL, DATA_OPT_LABELS},                  \
    {"csv-header", no_argument, NULL, DATA_OPT_CSV_HEADER},                \
    {"csv-label-first", no_argument, NULL, DATA_OPT_CSV_LABEL_FIRST},      \
    {"shape", required_argument, NULL, DATA_OPT_SHAPE},                    \
    {"limit", required_argument, NULL, DATA_OPT_LIMIT},                    \
    {"scale", required_argument, NULL, DATA_OPT_SCALE},                    \
    {"image-size", required_argument, NULL, DATA_OPT_IMAGE_SIZE},          \
    {"channels", required_argument, NULL, DATA_OPT_CHANNELS},              \
    {"crop", no_argument, NULL, DATA_OPT_CROP},                            \
    {"skip-bad", no_argument, NULL, DATA_OPT_SKIP_BAD},                    \
    {"image-cache", required_argument, NULL, DATA_OPT_IMAGE_CACHE},        \
    {"mmap", no_argument, NULL, DATA_OPT_MMAP}

/* Applies data option `c` (-d or one of DATA_OPT_*) with argument `arg`
 * to o: -1 when c is not a data option, EXIT_USAGE (the error printed) for
 * a bad argument, else 0. */
int data_parse_opt(int c, const char *arg, data_opts *o);

/* Loads a dataset as the options say (format told by content) into *out,
 * applies the limit and shape; the values stay as stored (prep_data gives
 * them their meaning). Returns 0, or the exit code with the failure
 * printed: EXIT_USAGE for options that do not fit the data (found only on
 * reading it), EXIT_RUN otherwise. */
int data_load(const data_opts *o, ae_dataset **out);

/* Image folders read for a model take its sample shape and the resize of
 * its training folder (metadata ae.data.resize) unless the options say
 * otherwise; `shape` is the model's CxHxW. */
void data_for_model(data_opts *o, const ae_model *m, const size_t shape[3]);
/* Records in a model the resize of its training data when they are an
 * image folder (ae.data.resize: stretch or crop); 0 on success. */
int data_record_resize(ae_model *m, const data_opts *o);

/* A copy of the first `n` samples of ds (or all when n is 0 or too large). */
ae_dataset *data_head(const ae_dataset *ds, size_t n);

/* Whether a file exists and can be read. */
int file_readable(const char *path);

/* A file named on the command line: the option that names it ("-o") and
 * its path (NULL when the option is not given). */
typedef struct named_file {
    const char *opt, *path;
} named_file;

/* Before any work: every output must be writable where it is named, must
 * not be one of the inputs (the same file under any name), and no two
 * outputs may name the same file, existing or not (their paths are compared
 * made absolute, the existing part resolved through symbolic links, '.',
 * '..' and repeated slashes resolved). Prints one line and returns
 * EXIT_USAGE or EXIT_RUN, else 0. */
int check_outputs(const named_file *outputs, size_t n_outputs, const named_file *inputs,
                  size_t n_inputs);

/* Writes n x (c, h, w) floats to a .npy through the public dataset call. */
int write_npy(const char *path, const float *data, size_t n, size_t c, size_t h, size_t w);

/* ---- the model file's metadata (model.c) ---- */

/* How data are prepared for the model: its value convention (the
 * library's, <libae/data.h>; conv.std_count mean and std values) and the
 * sample shape. */
typedef struct prep {
    ae_data_convention conv;
    float *mean, *std;
    size_t shape[3];
} prep;

/* Whether the model has a Gaussian latent (a VAE). */
int model_is_vae(const ae_model *m);
/* Loads a model file; prints the failure and returns NULL. */
ae_model *model_load(const char *path, prep *p);
void prep_free(prep *p);
/* Gives a dataset just loaded (data_load) the meaning of `target` (a
 * model's preparation; NULL: the default, 8-bit data x 1/255, floats as
 * they are) through ae_dataset_conform; --scale in `o` overrides the
 * scale. With a target, the sample size must be its and vectors take its
 * image shape. Prints the failure (naming `what`) and returns non-zero. */
int prep_data(ae_dataset *ds, const data_opts *o, const prep *target, const char *what);
/* The preparation of a dataset after prep_data (its convention, the
 * target's statistics and shape), for prep_undo of its reconstructions;
 * shares the statistics of `target`: not freed. */
prep prep_of(const ae_dataset *ds, const prep *target);
/* Maps prepared values back to the units of the data file, in place. */
void prep_undo(const prep *p, float *x, size_t n, size_t dim);
/* Records the preparation in the model: its value convention (with the
 * range lo..hi of the training inputs); the sample shape is the model's
 * own (ae_model_sample_shape). */
int prep_store(ae_model *m, const prep *p);

/* The batch of the inference calls: --batch (g_batch), or 0 for the largest
 * (at most 1024) whose workspace (ae_model_workspace_size) fits
 * WORKSPACE_BUDGET; never more than n (when n > 0). */
#define WORKSPACE_BUDGET ((size_t)256 << 20)
extern size_t g_batch;
size_t batch_for(const ae_model *m, size_t n);
/* Runs ae_encode / ae_reconstruct / ae_decode over a big array in batches. */
int run_batched(ae_model *m, int what, const float *in, size_t n, size_t in_dim, float *out,
                size_t out_dim);
/* A corrupted copy of a dataset's values (*out malloc'ed), seeded. */
int corrupt_copy(const ae_noise *nz, uint64_t seed, const ae_dataset *ds, float **out);
enum { RUN_ENCODE, RUN_DECODE, RUN_RECONSTRUCT };

/* Prints the evaluation of m on ds (metrics of <libae/metrics.h>). */
typedef struct eval_opts {
    double percentile;     /* anomaly threshold */
    size_t knn_k, knn_max; /* k, and the most samples used for kNN */
    int knn_max_given;
    const char *scores_path;
    double active_threshold;
    const ae_dataset *ref; /* --ref, prepared, with labels; NULL: leave-one-out */
    int probe;             /* --probe: a linear probe trained on ref */
    double probe_l2;       /* its L2 weight; 0: scikit-learn's default C = 1 */
    const float *noisy;    /* the corrupted input (--noise), or NULL */
    const char *noise_desc;
} eval_opts;
int evaluate_print(ae_model *m, const prep *p, ae_dataset *ds, const eval_opts *o);
/* Prints the linear probe's test accuracy (metrics of --probe). */
int probe_print(const float *train, const int32_t *train_labels, size_t n_train, const float *test,
                const int32_t *test_labels, size_t n_test, size_t dim, const eval_opts *o);

/* ---- architecture descriptions (arch.c) ---- */

/* A growing string; failed is set (and sticks) when memory runs out. */
typedef struct strbuf {
    char *s;
    size_t len, cap;
    int failed;
} strbuf;
int sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A description file's text (allocated); prints the failure and returns NULL. */
char *arch_read_file(const char *path);
/* The model of a description (`what` names it in messages), the input
 * shape being the data's unless the text has an input line and the seed
 * `seed` unless it sets one; then the `set` lines of `settings` (the
 * training options, which override the description's). Prints the failure
 * and returns NULL. */
ae_model *arch_build(const char *text, const char *settings, const size_t shape[3], int64_t seed,
                     const char *what);
/* ae_model_describe's text (allocated), or NULL (printed). */
char *arch_describe(const ae_model *m);

/* ---- pictures (picture.c) ---- */

/* The largest picture drawn: at most PIC_MAX_SIDE pixels wide and high and
 * PIC_MAX_PIXELS in all (192 MB of RGB). Larger ones are refused (docs/tool.md). */
#define PIC_MAX_SIDE 16384
#define PIC_MAX_PIXELS ((size_t)1 << 26)

/* Rows of images, one row per set, in groups of up to 10 samples: the
 * originals above their reconstructions (2 sets), or clean, corrupted and
 * denoised (3). Each set holds n samples of c x h x w; c is 1 or 3; the
 * grey levels span the first set's range. */
int png_rows(const char *path, const float *const *sets, size_t nsets, size_t n, size_t c,
             size_t h, size_t w);
/* A grid of n images (tiles each scaled on their own when per_tile). */
int png_grid(const char *path, const float *x, size_t n, size_t c, size_t h, size_t w,
             int per_tile);
/* A scatter of n 2-D points coloured by label (labels may be NULL). */
int png_scatter(const char *path, const float *xy, const int32_t *labels, size_t n);

/* Picture helpers that need the model. */
/* n originals above their reconstructions; with `noisy` (the corrupted
 * copy of the dataset's values) clean, corrupted and denoised rows. */
int picture_recon(const char *path, ae_model *m, const prep *p, const ae_dataset *ds,
                  const float *noisy, size_t n);
int picture_features(const char *path, ae_model *m, const prep *p, const ae_dataset *ds);
int picture_scatter(const char *path, ae_model *m, const ae_dataset *ds, size_t max_points);

/* ---- commands ---- */
int cmd_train(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_reconstruct(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_sample(int argc, char **argv);
/* interop.c */
int cmd_export(int argc, char **argv);
int cmd_import(int argc, char **argv);

#endif /* AE_TOOL_H */
