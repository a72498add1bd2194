/* Loading data files for the commands: the format is told by the content
 * (.npy magic, IDX magic or gzip, else CSV), labels come from the IDX
 * labels file, the CSV's first column, or a separate .npy/CSV file. */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

enum { FMT_NPY, FMT_IDX, FMT_CSV, FMT_DIR };

int file_readable(const char *path) { return access(path, R_OK) == 0; }

/* Whether a file can be created or replaced at path: its directory must be
 * writable (the model file is saved through a temporary file beside it). */
static int creatable(const char *path) {
    size_t n = strlen(path);
    char *dir = malloc(n + 2);
    if (!dir) return 0;
    memcpy(dir, path, n + 1);
    char *slash = strrchr(dir, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int ok = access(dir, W_OK | X_OK) == 0;
    free(dir);
    return ok;
}

int check_outputs(const char *const *outputs, size_t n_outputs, const char *const *inputs,
                  size_t n_inputs) {
    for (size_t i = 0; i < n_outputs; i++) {
        const char *out = outputs[i];
        if (!out) continue;
        struct stat so;
        int exists = stat(out, &so) == 0;
        if (exists && S_ISDIR(so.st_mode)) return fail(EXIT_RUN, "%s is a directory", out);
        if (!creatable(out)) return fail(EXIT_RUN, "cannot write %s: its directory is not writable or does not exist", out);
        if (!exists) continue;
        for (size_t j = 0; j < n_inputs; j++) {
            struct stat si;
            if (inputs[j] && stat(inputs[j], &si) == 0 && si.st_dev == so.st_dev &&
                si.st_ino == so.st_ino)
                return usage_error("%s is also an input; writing it would destroy it", out);
        }
        for (size_t j = 0; j < i; j++) {
            struct stat sp;
            if (outputs[j] && stat(outputs[j], &sp) == 0 && sp.st_dev == so.st_dev &&
                sp.st_ino == so.st_ino)
                return usage_error("%s is named for two outputs", out);
        }
    }
    return 0;
}

/* The format by the first bytes. A FIFO or device is not read (opening a
 * FIFO waits for a writer, hence O_NONBLOCK): it is left to the library's
 * loader, which refuses it by name. */
static int sniff(const char *path, int *fmt) {
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return -1;
    struct stat sb;
    unsigned char b[6] = {0};
    ssize_t n = 0;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode)) n = read(fd, b, sizeof b);
    close(fd);
    if (n >= 6 && b[0] == 0x93 && memcmp(b + 1, "NUMPY", 5) == 0)
        *fmt = FMT_NPY;
    else if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
        *fmt = FMT_IDX; /* gzip: the data readers take gzipped IDX */
    else if (n >= 4 && b[0] == 0 && b[1] == 0 && b[2] == 0x08)
        *fmt = FMT_IDX;
    else
        *fmt = FMT_CSV;
    return 0;
}

static const char *fmt_name(int fmt) {
    return fmt == FMT_NPY ? ".npy" : fmt == FMT_IDX ? "IDX" : fmt == FMT_DIR ? "an image folder" : "CSV";
}

/* Labels from a .npy of integers or a CSV with one integer a line. */
static int32_t *load_labels(const char *path, size_t count) {
    int fmt;
    if (sniff(path, &fmt) != 0) {
        fail(EXIT_RUN, "cannot open the labels file %s", path);
        return NULL;
    }
    if (fmt == FMT_IDX) {
        fail(EXIT_RUN, "%s: IDX labels go with IDX data; give the labels as .npy or CSV", path);
        return NULL;
    }
    ae_dataset *ds = NULL;
    if (ae_dataset_create(&ds, NULL) != AE_OK) {
        fail(EXIT_RUN, "out of memory");
        return NULL;
    }
    ae_status st = fmt == FMT_NPY ? ae_dataset_load_npy(ds, path) : ae_dataset_load_csv(ds, path, 0);
    if (st != AE_OK) {
        fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        ae_dataset_destroy(ds);
        return NULL;
    }
    if (ae_dataset_dim(ds) != 1 || ae_dataset_count(ds) != count) {
        fail(EXIT_RUN, "%s: %zu labels of %zu values each; expected %zu single labels", path,
             ae_dataset_count(ds), ae_dataset_dim(ds), count);
        ae_dataset_destroy(ds);
        return NULL;
    }
    int32_t *lab = malloc(count * sizeof *lab);
    const float *v = ae_dataset_data(ds);
    for (size_t i = 0; lab && i < count; i++) {
        if (v[i] != floorf(v[i]) || fabsf(v[i]) > 2147483520.0f) {
            fail(EXIT_RUN, "%s: label %zu (%g) is not an integer", path, i, (double)v[i]);
            free(lab);
            lab = NULL;
            break;
        }
        lab[i] = (int32_t)v[i];
    }
    if (!lab && count) fail(EXIT_RUN, "out of memory");
    ae_dataset_destroy(ds);
    return lab;
}

ae_dataset *data_head(const ae_dataset *src, size_t n) {
    size_t count = ae_dataset_count(src), c, h, w;
    if (n == 0 || n > count) n = count;
    ae_dataset_shape(src, &c, &h, &w);
    ae_dataset *ds = NULL;
    /* File-backed rows are read into memory first. */
    float *rows = ae_dataset_file_backed(src) ? malloc(n * ae_dataset_dim(src) * sizeof *rows) : NULL;
    if (ae_dataset_file_backed(src) && (!rows || ae_dataset_rows(src, 0, n, rows, NULL) != AE_OK)) {
        fail(EXIT_RUN, "%s", rows ? ae_dataset_last_error(src) : "out of memory");
        free(rows);
        return NULL;
    }
    if (ae_dataset_create(&ds, NULL) != AE_OK ||
        ae_dataset_from_memory(ds, rows ? rows : ae_dataset_data(src), ae_dataset_labels(src), n, c,
                               h, w, AE_DATA_COPY) != AE_OK) {
        fail(EXIT_RUN, "out of memory copying %zu samples", n);
        ae_dataset_destroy(ds);
        ds = NULL;
    }
    free(rows);
    return ds;
}

/* Whether a .npy file is better left on disk: larger than half the RAM. */
static int too_big_for_memory(const char *path) {
    struct stat sb;
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (stat(path, &sb) != 0 || pages <= 0 || psize <= 0) return 0;
    /* float32 in memory: up to 4 times the file (a uint8 file). */
    return (double)sb.st_size * 4.0 > 0.5 * (double)pages * (double)psize;
}

static ae_dataset *load_image_dir(const data_opts *o) {
    ae_image_options io;
    ae_image_options_init(&io);
    if (o->image_size[0]) {
        io.height = o->image_size[0];
        io.width = o->image_size[1];
    }
    if (o->channels) io.channels = o->channels;
    io.resize = o->crop ? AE_RESIZE_SHORTER_CROP : AE_RESIZE_STRETCH;
    io.skip_bad = o->skip_bad;
    io.cache = o->cache;
    ae_dataset *ds = NULL;
    if (ae_dataset_create(&ds, NULL) != AE_OK) {
        fail(EXIT_RUN, "out of memory");
        return NULL;
    }
    if (ae_dataset_load_images(ds, o->path, &io) != AE_OK) {
        fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        ae_dataset_destroy(ds);
        return NULL;
    }
    if (ae_dataset_skipped(ds))
        fprintf(stderr, "ae: %s: skipped %zu unreadable files\n", o->path, ae_dataset_skipped(ds));
    return ds;
}

ae_dataset *data_load(const data_opts *o, double *scale_out) {
    int fmt;
    if (!o->path) {
        fail(EXIT_USAGE, "no data file given");
        return NULL;
    }
    struct stat pst;
    int is_dir = stat(o->path, &pst) == 0 && S_ISDIR(pst.st_mode);
    if ((o->image_size[0] || o->channels || o->crop || o->skip_bad || o->cache) && !is_dir) {
        fail(EXIT_USAGE, "--image-size, --channels, --crop, --skip-bad and --image-cache are for "
                         "image folders; %s is not a folder", o->path);
        return NULL;
    }
    if (is_dir && (o->labels || o->csv_header || o->csv_label_first || o->mmap)) {
        fail(EXIT_USAGE, "%s is an image folder: its labels are its class folders (--labels, --csv-* "
                         "and --mmap do not apply; --image-cache keeps it on disk)", o->path);
        return NULL;
    }
    ae_dataset *ds = NULL;
    ae_status st;
    int idx_labels = 0;
    if (is_dir) {
        fmt = FMT_DIR;
        if (!(ds = load_image_dir(o))) return NULL;
        goto loaded;
    }
    if (sniff(o->path, &fmt) != 0) {
        fail(EXIT_RUN, "cannot open %s", o->path);
        return NULL;
    }
    if (o->mmap && fmt != FMT_NPY) {
        fail(EXIT_USAGE, "--mmap is for .npy files; %s is %s", o->path, fmt_name(fmt));
        return NULL;
    }
    if (o->labels && !file_readable(o->labels)) {
        fail(EXIT_RUN, "cannot open the labels file %s", o->labels);
        return NULL;
    }
    if ((o->csv_header || o->csv_label_first) && fmt != FMT_CSV) {
        fail(EXIT_USAGE, "--csv-header and --csv-label-first are for CSV files; %s is %s", o->path,
             fmt_name(fmt));
        return NULL;
    }
    if (o->csv_label_first && o->labels) {
        fail(EXIT_USAGE, "--labels and --csv-label-first do not go together");
        return NULL;
    }
    if (ae_dataset_create(&ds, NULL) != AE_OK) {
        fail(EXIT_RUN, "out of memory");
        return NULL;
    }
    if (fmt == FMT_IDX) {
        int lfmt = FMT_CSV;
        if (o->labels) sniff(o->labels, &lfmt);
        idx_labels = o->labels && lfmt == FMT_IDX;
        st = ae_dataset_load_idx(ds, o->path, idx_labels ? o->labels : NULL);
    } else if (fmt == FMT_NPY) {
        int on_disk = o->allow_file && (o->mmap || too_big_for_memory(o->path));
        st = on_disk ? ae_dataset_open_npy(ds, o->path) : ae_dataset_load_npy(ds, o->path);
    } else {
        unsigned flags = (o->csv_header ? AE_CSV_HEADER : 0u) |
                         (o->csv_label_first ? AE_CSV_LABEL_FIRST : 0u);
        st = ae_dataset_load_csv(ds, o->path, flags);
    }
    if (st != AE_OK) {
        fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        ae_dataset_destroy(ds);
        return NULL;
    }
loaded:
    if (o->labels && !idx_labels) {
        int32_t *lab = load_labels(o->labels, ae_dataset_count(ds));
        if (!lab) {
            ae_dataset_destroy(ds);
            return NULL;
        }
        size_t c, h, w;
        ae_dataset_shape(ds, &c, &h, &w);
        ae_dataset *with = NULL;
        if (ae_dataset_file_backed(ds)) {
            fail(EXIT_USAGE, "--labels do not go with --mmap yet: load %s into memory", o->path);
            free(lab);
            ae_dataset_destroy(ds);
            return NULL;
        }
        if (ae_dataset_create(&with, NULL) != AE_OK ||
            ae_dataset_from_memory(with, ae_dataset_data(ds), lab, ae_dataset_count(ds), c, h, w,
                                   AE_DATA_COPY) != AE_OK) {
            fail(EXIT_RUN, "out of memory");
            ae_dataset_destroy(with);
            with = NULL;
        }
        free(lab);
        ae_dataset_destroy(ds);
        if (!with) return NULL;
        ds = with;
    }
    if (ae_dataset_file_backed(ds) && !o->allow_file) {
        /* This command reads the data in memory (an image-folder cache). */
        ae_dataset *mem = data_head(ds, o->limit);
        ae_dataset_destroy(ds);
        if (!mem) return NULL;
        ds = mem;
    }
    if (o->limit && o->limit < ae_dataset_count(ds)) {
        ae_dataset *head = NULL;
        /* A range of file-backed rows stays on disk; rows in memory are copied. */
        if (ae_dataset_file_backed(ds) && ae_dataset_subset_range(ds, 0, o->limit, &head) != AE_OK)
            fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        else if (!ae_dataset_file_backed(ds))
            head = data_head(ds, o->limit);
        ae_dataset_destroy(ds);
        if (!head) return NULL;
        ds = head;
    }
    if (o->shape[0] && ae_dataset_reshape(ds, o->shape[0], o->shape[1], o->shape[2]) != AE_OK) {
        fail(EXIT_USAGE, "--shape %zux%zux%zu does not fit %s: %s", o->shape[0], o->shape[1],
             o->shape[2], o->path, ae_dataset_last_error(ds));
        ae_dataset_destroy(ds);
        return NULL;
    }
    double scale = o->have_scale ? o->scale : fmt == FMT_IDX ? 1.0 / 255.0 : 1.0;
    if (scale != 1.0 && ae_dataset_scale(ds, (float)scale, 0.0f) != AE_OK) {
        fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        ae_dataset_destroy(ds);
        return NULL;
    }
    if (scale_out) *scale_out = scale;
    return ds;
}

int write_npy(const char *path, const float *data, size_t n, size_t c, size_t h, size_t w) {
    ae_dataset *ds = NULL;
    int rc = 0;
    if (ae_dataset_create(&ds, NULL) != AE_OK ||
        ae_dataset_from_memory(ds, data, NULL, n, c, h, w, AE_DATA_BORROW) != AE_OK) {
        rc = fail(EXIT_RUN, "cannot write %s: %s", path,
                  ds ? ae_dataset_last_error(ds) : "out of memory");
    } else if (ae_dataset_save_npy(ds, path) != AE_OK) {
        rc = fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
    }
    ae_dataset_destroy(ds);
    return rc;
}

int data_parse_opt(int c, const char *arg, data_opts *o) {
    switch (c) {
    case 'd': o->path = arg; return 0;
    case DATA_OPT_LABELS: o->labels = arg; return 0;
    case DATA_OPT_CSV_HEADER: o->csv_header = 1; return 0;
    case DATA_OPT_CSV_LABEL_FIRST: o->csv_label_first = 1; return 0;
    case DATA_OPT_SHAPE: return parse_shape("--shape", arg, o->shape) ? EXIT_USAGE : 0;
    case DATA_OPT_LIMIT: return parse_size("--limit", arg, 1, SIZE_MAX, &o->limit) ? EXIT_USAGE : 0;
    case DATA_OPT_IMAGE_SIZE: {
        size_t sh[3];
        if (parse_shape("--image-size", arg, sh)) return EXIT_USAGE;
        if (sh[0] != 1 && sh[0] != 3 && sh[0] != 4)
            return usage_error("--image-size: %zu channels; give HxW or CxHxW with C 1, 3 or 4", sh[0]);
        if (sh[1] > 65536 || sh[2] > 65536) return usage_error("--image-size: at most 65536x65536");
        size_t xs = 0;
        for (const char *q = arg; *q; q++) xs += *q == 'x' || *q == 'X';
        if (xs == 2) o->channels = sh[0];
        o->image_size[0] = sh[1];
        o->image_size[1] = sh[2];
        return 0;
    }
    case DATA_OPT_CHANNELS:
        if (parse_size("--channels", arg, 1, 4, &o->channels)) return EXIT_USAGE;
        if (o->channels == 2) return usage_error("--channels: 1 (gray), 3 (RGB) or 4 (RGBA)");
        return 0;
    case DATA_OPT_CROP: o->crop = 1; return 0;
    case DATA_OPT_SKIP_BAD: o->skip_bad = 1; return 0;
    case DATA_OPT_IMAGE_CACHE: o->cache = arg; return 0;
    case DATA_OPT_MMAP: o->mmap = 1; return 0;
    case DATA_OPT_SCALE:
        o->have_scale = 1;
        if (parse_double("--scale", arg, -1e30, 1e30, &o->scale)) return EXIT_USAGE;
        if (o->scale == 0.0) return usage_error("--scale: 0 would erase the data");
        return 0;
    default: return -1;
    }
}
