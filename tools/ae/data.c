/* Loading data files for the commands: the format is told by the content
 * (.npy magic, IDX magic or gzip, else CSV), labels come from the IDX
 * labels file, the CSV's first column, or a separate .npy/CSV file. */
/* realpath is an XSI function in glibc's headers. */
#define _XOPEN_SOURCE 700
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

/* Appends the components of `rest` to the absolute, canonical `base`,
 * resolving '.', '..' and repeated slashes by name (they name nothing that
 * exists yet). malloc'd. */
static char *join_by_name(const char *base, const char *rest) {
    size_t bl = strlen(base), rl = strlen(rest);
    char *r = malloc(bl + rl + 2);
    if (!r) return NULL;
    memcpy(r, base, bl + 1);
    size_t len = bl;
    for (const char *q = rest; *q;) {
        const char *e = strchr(q, '/');
        size_t n = e ? (size_t)(e - q) : strlen(q);
        if (n == 2 && q[0] == '.' && q[1] == '.') {
            while (len > 1 && r[len - 1] != '/') len--;
            if (len > 1) len--; /* the slash, unless it is the root */
        } else if (n && !(n == 1 && q[0] == '.')) {
            if (r[len - 1] != '/') r[len++] = '/';
            memcpy(r + len, q, n);
            len += n;
        }
        r[len] = '\0';
        q += n + (e ? 1 : 0);
    }
    return r;
}

/* The file a path names, as an absolute path: the longest prefix that
 * exists resolved by realpath (symbolic links, '.', '..'), the rest by
 * name, and a dangling symbolic link at the end followed. malloc'd; NULL
 * when out of memory or the working directory is unknown. */
static char *normalised(const char *path) {
    char *abs;
    if (path[0] == '/') {
        abs = strdup(path);
    } else {
        char cwd[4096];
        if (!getcwd(cwd, sizeof cwd)) return NULL;
        abs = malloc(strlen(cwd) + strlen(path) + 2);
        if (abs) sprintf(abs, "%s/%s", cwd, path);
    }
    for (int hops = 0; abs && hops < 40; hops++) {
        /* The longest prefix, cut at a slash, that realpath resolves ("" is the root). */
        char *cut = abs + strlen(abs), *res = NULL;
        for (;;) {
            char keep = *cut;
            *cut = '\0';
            char *real = realpath(abs[0] ? abs : "/", NULL);
            *cut = keep;
            if (real) {
                res = join_by_name(real, cut);
                free(real);
                break;
            }
            while (cut > abs && *--cut != '/') continue;
        }
        free(abs);
        if (!res) return NULL;
        char target[4096];
        struct stat sb;
        ssize_t tl;
        if (lstat(res, &sb) != 0 || !S_ISLNK(sb.st_mode) ||
            (tl = readlink(res, target, sizeof target - 1)) <= 0)
            return res;
        /* A dangling link: writing it creates its target. */
        target[tl] = '\0';
        char *slash = strrchr(res, '/');
        slash[slash == res ? 1 : 0] = '\0';
        abs = malloc(strlen(res) + (size_t)tl + 2);
        if (abs && target[0] == '/')
            strcpy(abs, target);
        else if (abs)
            sprintf(abs, "%s/%s", res, target);
        free(res);
    }
    free(abs);
    return NULL;
}

static int same_inode(const char *a, const struct stat *sb) {
    struct stat sa;
    return a && stat(a, &sa) == 0 && sa.st_dev == sb->st_dev && sa.st_ino == sb->st_ino;
}

int check_outputs(const named_file *outputs, size_t n_outputs, const named_file *inputs,
                  size_t n_inputs) {
    char **norm = calloc(n_outputs ? n_outputs : 1, sizeof *norm);
    int rc = norm ? 0 : fail(EXIT_RUN, "out of memory");
    for (size_t i = 0; i < n_outputs && !rc; i++) {
        const named_file *out = &outputs[i];
        if (!out->path) continue;
        struct stat so;
        int exists = stat(out->path, &so) == 0;
        if (exists && S_ISDIR(so.st_mode)) {
            rc = fail(EXIT_RUN, "%s is a directory", out->path);
        } else if (!creatable(out->path)) {
            rc = fail(EXIT_RUN, "cannot write %s: its directory is not writable or does not exist",
                      out->path);
        } else if (!(norm[i] = normalised(out->path))) {
            rc = fail(EXIT_RUN, "cannot resolve the path %s", out->path);
        }
        for (size_t j = 0; j < n_inputs && !rc && exists; j++)
            if (same_inode(inputs[j].path, &so))
                rc = usage_error("%s %s is also an input (%s); writing it would destroy it",
                                 out->opt, out->path, inputs[j].opt);
        /* Two names of one file, whether it exists yet or not (a hard link
           shows only as the same inode). */
        for (size_t j = 0; j < i && !rc; j++)
            if (norm[j] && (strcmp(norm[j], norm[i]) == 0 || (exists && same_inode(outputs[j].path, &so))))
                rc = usage_error("%s %s and %s %s are the same file: give each output its own",
                                 outputs[j].opt, outputs[j].path, out->opt, out->path);
    }
    for (size_t i = 0; norm && i < n_outputs; i++) free(norm[i]);
    free(norm);
    return rc;
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

ae_dataset *data_head(const ae_dataset *src, size_t n) {
    size_t count = ae_dataset_count(src), c, h, w;
    if (n == 0 || n > count) n = count;
    ae_dataset_shape(src, &c, &h, &w);
    ae_dataset *ds = NULL;
    /* File-backed rows are read into memory first. */
    float *rows = ae_dataset_file_backed(src) ? alloc_array(n, ae_dataset_dim(src), sizeof(float)) : NULL;
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
    /* The copy means what its source meant (8-bit rows stay 8-bit data). */
    ae_data_convention conv;
    conv.struct_size = sizeof conv;
    if (ds && ae_dataset_convention(src, &conv) == AE_OK && conv.elem != AE_ELEM_UNKNOWN &&
        !conv.std_count)
        ae_dataset_set_convention(ds, &conv);
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

static int is_folder(const char *path) {
    struct stat sb;
    return path && stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

void data_for_model(data_opts *o, const ae_model *m, const size_t shape[3]) {
    memcpy(o->model_image, shape, sizeof o->model_image);
    const char *v = NULL;
    o->model_crop = ae_model_get_meta(m, "ae.data.resize", &v) == AE_OK && v && strcmp(v, "crop") == 0;
}

int data_record_resize(ae_model *m, const data_opts *o) {
    if (!is_folder(o->path)) return 0;
    return ae_model_set_meta(m, "ae.data.resize", o->crop ? "crop" : "stretch") == AE_OK ? 0 : -1;
}

static ae_dataset *load_image_dir(const data_opts *o) {
    ae_image_options io;
    ae_image_options_init(&io);
    /* A model reads images as it was trained on them: its sample shape and
       resize, unless the options say otherwise. Only image shapes (a model
       of flat vectors has none) of 1, 3 or 4 channels are taken. */
    const size_t *ms = o->model_image;
    int model = !o->image_size[0] && !o->channels && (ms[0] == 1 || ms[0] == 3 || ms[0] == 4) &&
                (ms[1] > 1 || ms[2] > 1);
    if (o->image_size[0]) {
        io.height = o->image_size[0];
        io.width = o->image_size[1];
    } else if (model) {
        io.height = ms[1];
        io.width = ms[2];
    }
    if (o->channels) io.channels = o->channels;
    else if (model) io.channels = ms[0];
    io.resize = o->crop || (model && o->model_crop) ? AE_RESIZE_SHORTER_CROP : AE_RESIZE_STRETCH;
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

int data_load(const data_opts *o, ae_dataset **out) {
    int fmt;
    *out = NULL;
    if (!o->path) return fail(EXIT_USAGE, "no data file given");
    struct stat pst;
    int is_dir = stat(o->path, &pst) == 0 && S_ISDIR(pst.st_mode);
    if ((o->image_size[0] || o->channels || o->crop || o->skip_bad || o->cache) && !is_dir)
        return fail(EXIT_USAGE, "--image-size, --channels, --crop, --skip-bad and --image-cache are "
                                "for image folders; %s is not a folder", o->path);
    if (is_dir && (o->labels || o->csv_header || o->csv_label_first || o->mmap))
        return fail(EXIT_USAGE, "%s is an image folder: its labels are its class folders (--labels, "
                                "--csv-* and --mmap do not apply; --image-cache keeps it on disk)",
                    o->path);
    ae_dataset *ds = NULL;
    ae_status st;
    int idx_labels = 0, rc;
    if (is_dir) {
        fmt = FMT_DIR;
        if (!(ds = load_image_dir(o))) return EXIT_RUN;
        goto loaded;
    }
    if (sniff(o->path, &fmt) != 0) return fail(EXIT_RUN, "cannot open %s", o->path);
    if (o->mmap && fmt != FMT_NPY)
        return fail(EXIT_USAGE, "--mmap is for .npy files; %s is %s", o->path, fmt_name(fmt));
    if (o->labels && !file_readable(o->labels))
        return fail(EXIT_RUN, "cannot open the labels file %s", o->labels);
    if ((o->csv_header || o->csv_label_first) && fmt != FMT_CSV)
        return fail(EXIT_USAGE, "--csv-header and --csv-label-first are for CSV files; %s is %s",
                    o->path, fmt_name(fmt));
    if (o->csv_label_first && o->labels)
        return fail(EXIT_USAGE, "--labels and --csv-label-first do not go together");
    if (ae_dataset_create(&ds, NULL) != AE_OK) return fail(EXIT_RUN, "out of memory");
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
        rc = fail(EXIT_RUN, "%s", ae_dataset_last_error(ds));
        goto bad;
    }
loaded:
    /* Labels of any integer dtype, IDX or CSV, attached by the library
       (file-backed rows too). A file that is not labels of these samples
       is a usage error (the option names the wrong file). */
    if (o->labels && !idx_labels && (st = ae_dataset_load_labels(ds, o->labels)) != AE_OK) {
        rc = fail(st == AE_ERR_FORMAT || st == AE_ERR_SHAPE ? EXIT_USAGE : EXIT_RUN, "%s",
                  ae_dataset_last_error(ds));
        goto bad;
    }
    if (ae_dataset_file_backed(ds) && !o->allow_file) {
        /* This command reads the data in memory (an image-folder cache). */
        ae_dataset *mem = data_head(ds, o->limit);
        ae_dataset_destroy(ds);
        if (!mem) return EXIT_RUN;
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
        if (!head) return EXIT_RUN;
        ds = head;
    }
    if (o->shape[0] && ae_dataset_reshape(ds, o->shape[0], o->shape[1], o->shape[2]) != AE_OK) {
        rc = fail(EXIT_USAGE, "--shape %zux%zux%zu does not fit %s: %s", o->shape[0], o->shape[1],
                  o->shape[2], o->path, ae_dataset_last_error(ds));
        goto bad;
    }
    *out = ds;
    return 0;
bad:
    ae_dataset_destroy(ds);
    return rc;
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
