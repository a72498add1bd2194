/* Image folders as datasets: the torchvision ImageFolder layout (one
 * subfolder per class) or a flat folder, each file decoded (image.c),
 * converted, resized and scaled to [0, 1]; optionally through a uint8 .npy
 * cache made once and read back file-backed (source.c). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data.h"

void ae_image_options_init(ae_image_options *o) {
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->struct_size = sizeof *o;
    o->channels = 3;
    o->height = o->width = 64;
    o->resize = AE_RESIZE_STRETCH;
}

typedef struct names {
    char **v;
    size_t n, cap;
} names;

static void names_free(const ae_allocator *a, names *s) {
    for (size_t i = 0; i < s->n; i++) ae_free(a, s->v[i]);
    ae_free(a, s->v);
    memset(s, 0, sizeof *s);
}

static int names_push(const ae_allocator *a, names *s, const char *x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = ae_alloc(a, cap * sizeof *v);
        if (!v) return -1;
        if (s->n) memcpy(v, s->v, s->n * sizeof *v);
        ae_free(a, s->v);
        s->v = v;
        s->cap = cap;
    }
    size_t len = strlen(x);
    char *c = ae_alloc(a, len + 1);
    if (!c) return -1;
    memcpy(c, x, len + 1);
    s->v[s->n++] = c;
    return 0;
}

static int cmp_name(const void *x, const void *y) {
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static char *join(const ae_allocator *a, const char *dir, const char *name) {
    size_t n = strlen(dir), m = strlen(name);
    char *p = ae_alloc(a, n + m + 2);
    if (!p) return NULL;
    memcpy(p, dir, n);
    p[n] = '/';
    memcpy(p + n + 1, name, m + 1);
    return p;
}

static int ext_is(const char *name, const char *const *exts) {
    const char *dot = strrchr(name, '.');
    if (!dot) return 0;
    for (size_t i = 0; exts[i]; i++) {
        const char *x = exts[i];
        size_t k = 0;
        for (; x[k] && dot[k + 1]; k++) {
            char ch = dot[k + 1];
            if (ch >= 'A' && ch <= 'Z') ch = (char)(ch - 'A' + 'a');
            if (ch != x[k]) break;
        }
        if (!x[k] && !dot[k + 1]) return 1;
    }
    return 0;
}

static const char *const decoded_exts[] = {"png", "jpg", "jpeg", NULL};
/* torchvision's other IMG_EXTENSIONS: listed, but not decoded here. */
static const char *const other_exts[] = {"ppm", "bmp", "pgm", "tif", "tiff", "webp", NULL};

/* The entries of `dir` (not . and ..), sorted by bytes; dirs selects
 * subfolders (1) or image files (0). The newest modification time of the
 * folder is kept in *mtime for the cache check. */
static ae_status list_dir(const ae_allocator *a, ae_errbuf *e, const char *dir, int dirs, names *out,
                          struct timespec *mtime) {
    ae_src_name c;
    ae_src_name_init(&c, e, dir);
    DIR *d = opendir(dir);
    if (!d) return ae_src_fail(&c, AE_ERR_IO, "cannot open the folder: %s", ae_sys_error(errno).s);
    struct stat sb;
    if (mtime && fstat(dirfd(d), &sb) == 0 &&
        (sb.st_mtim.tv_sec > mtime->tv_sec ||
         (sb.st_mtim.tv_sec == mtime->tv_sec && sb.st_mtim.tv_nsec > mtime->tv_nsec)))
        *mtime = sb.st_mtim;
    ae_status st = AE_OK;
    struct dirent *ent;
    errno = 0;
    while (st == AE_OK && (ent = readdir(d)) != NULL) {
        const char *nm = ent->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0) continue;
        int want;
        if (dirs) {
            char *p = join(a, dir, nm);
            if (!p) {
                st = ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory");
                break;
            }
            /* stat, not lstat: links to folders count, as os.walk(followlinks=True). */
            want = stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
            ae_free(a, p);
        } else {
            want = ext_is(nm, decoded_exts) || ext_is(nm, other_exts);
        }
        if (want && names_push(a, out, nm) != 0) st = ae_src_fail(&c, AE_ERR_OUT_OF_MEMORY, "out of memory");
        errno = 0;
    }
    if (st == AE_OK && errno) st = ae_src_fail(&c, AE_ERR_IO, "cannot read the folder: %s", ae_sys_error(errno).s);
    closedir(d);
    if (st) return st;
    if (out->n > 1) qsort(out->v, out->n, sizeof *out->v, cmp_name);
    return AE_OK;
}

static ae_status check_options(ae_errbuf *e, const ae_image_options *o) {
    static const char who[] = "ae_dataset_load_images";
    if (o->struct_size != sizeof *o)
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: opts->struct_size is %zu, expected %zu (use ae_image_options_init)", who,
                        o->struct_size, sizeof *o);
    if (o->channels != 1 && o->channels != 3 && o->channels != 4)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: channels must be 1, 3 or 4, got %zu", who, o->channels);
    if ((unsigned)o->resize > AE_RESIZE_SHORTER_CROP)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: unknown resize mode %d", who, (int)o->resize);
    int native = o->resize == AE_RESIZE_NONE && o->height == 0 && o->width == 0;
    if (!native && (o->height < 1 || o->height > 65536 || o->width < 1 || o->width > 65536))
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: height and width must be in [1, 65536], got %zu x %zu",
                        who, o->height, o->width);
    if (o->resize == AE_RESIZE_SHORTER_CROP && o->shorter &&
        (o->shorter < (o->height < o->width ? o->width : o->height) || o->shorter > 65536))
        return ae_error(e, AE_ERR_INVALID_ARG,
                        "%s: shorter (%zu) must be in [max(height, width), 65536] to crop %zu x %zu",
                        who, o->shorter, o->height, o->width);
    if (!o->mean != !o->std)
        return ae_error(e, AE_ERR_INVALID_ARG, "%s: give both mean and std, or neither", who);
    for (size_t i = 0; o->mean && i < o->channels; i++)
        if (!isfinite(o->mean[i]) || !isfinite(o->std[i]) || !(o->std[i] > 0.0f))
            return ae_error(e, AE_ERR_INVALID_ARG,
                            "%s: mean[%zu] = %g and std[%zu] = %g: both must be finite, std > 0", who, i,
                            (double)o->mean[i], i, (double)o->std[i]);
    return AE_OK;
}

/* torchvision's sizes: Resize(s) sets the shorter side to s and the longer
 * to int(s * long / short); CenterCrop's offset is round((in - out) / 2)
 * with Python's round (halves to even). */
static size_t crop_offset(size_t in, size_t out) {
    size_t d = in - out, k = d / 2;
    if ((d & 1) && (k & 1)) k++;
    return k;
}

typedef struct plan {
    size_t rh, rw, oy, ox; /* the resized size and the crop window offset */
} plan;

static ae_status plan_for(const ae_image_options *o, const ae_src_name *c, size_t ih, size_t iw,
                          size_t h, size_t w, plan *p) {
    memset(p, 0, sizeof *p);
    if (o->resize == AE_RESIZE_NONE) {
        if (ih != h || iw != w)
            return ae_src_fail(c, AE_ERR_FORMAT, "the image is %zu x %zu, the others %zu x %zu (no resize)",
                               ih, iw, h, w);
        p->rh = h;
        p->rw = w;
    } else if (o->resize == AE_RESIZE_STRETCH) {
        p->rh = h;
        p->rw = w;
    } else {
        size_t s = o->shorter ? o->shorter : (h > w ? h : w);
        if (ih <= iw) {
            p->rh = s;
            p->rw = (size_t)((double)s * (double)iw / (double)ih);
        } else {
            p->rw = s;
            p->rh = (size_t)((double)s * (double)ih / (double)iw);
        }
        if (p->rh < h || p->rw < w)
            return ae_src_fail(c, AE_ERR_FORMAT, "resized to %zu x %zu, too small to crop %zu x %zu",
                               p->rh, p->rw, h, w);
        p->oy = crop_offset(p->rh, h);
        p->ox = crop_offset(p->rw, w);
    }
    return AE_OK;
}

/* The cache's companion file of labels, "<cache>.labels.npy". */
static char *labels_path(const ae_allocator *a, const char *cache) {
    size_t n = strlen(cache);
    char *p = ae_alloc(a, n + 12);
    if (p) {
        memcpy(p, cache, n);
        memcpy(p + n, ".labels.npy", 12);
    }
    return p;
}

/* A usable cache: newer than every listed folder, the expected sample
 * shape, no more rows than files, and labels (when labelled) to match. */
static ae_rowfile *try_cache(ae_dataset *ds, const ae_image_options *o, size_t c, size_t h, size_t w,
                             size_t nfiles, int labelled, struct timespec newest, int32_t **labels) {
    const ae_allocator *a = ae_dataset_allocator(ds);
    struct stat sb;
    *labels = NULL;
    if (stat(o->cache, &sb) != 0 || !S_ISREG(sb.st_mode)) return NULL;
    if (sb.st_mtim.tv_sec < newest.tv_sec ||
        (sb.st_mtim.tv_sec == newest.tv_sec && sb.st_mtim.tv_nsec < newest.tv_nsec))
        return NULL;
    ae_errbuf scratch; /* a stale or foreign cache is rebuilt, not reported */
    ae_rowfile *f;
    if (ae_rowfile_open(a, &scratch, o->cache, &f) != AE_OK) return NULL;
    const size_t *sh = ae_rowfile_shape(f);
    if (ae_rowfile_type(f) != AE_NPY_U1 || sh[0] != c || sh[1] != h || sh[2] != w ||
        ae_rowfile_count(f) > nfiles) {
        ae_rowfile_unref(f);
        return NULL;
    }
    if (!labelled) return f;
    char *lp = labels_path(a, o->cache);
    uint8_t *buf = NULL;
    size_t len = 0;
    ae_idx x;
    memset(&x, 0, sizeof x);
    int ok = lp && ae_read_whole_file(a, &scratch, lp, &buf, &len) == AE_OK &&
             ae_npy_parse_mem(a, &scratch, lp, buf, len, &x) == AE_OK && x.dim == 1 &&
             x.count == ae_rowfile_count(f);
    int32_t *l = ok ? ae_alloc(a, x.count * sizeof *l) : NULL;
    for (size_t i = 0; l && i < x.count; i++) {
        float v = x.values[i];
        if (!(v >= 0.0f && v < 16777216.0f) || v != floorf(v)) {
            ae_free(a, l);
            l = NULL;
            break;
        }
        l[i] = (int32_t)v;
    }
    ae_free(a, lp);
    ae_free(a, buf);
    ae_idx_free(a, &x);
    if (!l) {
        ae_rowfile_unref(f);
        return NULL;
    }
    *labels = l;
    return f;
}

ae_status ae_dataset_load_images(ae_dataset *ds, const char *dir, const ae_image_options *opts) {
    static const char who[] = "ae_dataset_load_images";
    if (!ds) return AE_ERR_INVALID_ARG;
    ae_errbuf *e = ae_dataset_errbuf(ds);
    const ae_allocator *a = ae_dataset_allocator(ds);
    if (!dir) return ae_error(e, AE_ERR_INVALID_ARG, "%s: dir is NULL", who);
    ae_image_options defaults;
    ae_image_options_init(&defaults);
    const ae_image_options *o = opts ? opts : &defaults;
    ae_status st = check_options(e, o);
    if (st) return st;
    size_t ch = o->channels, h = o->height, w = o->width;

    /* The file list: (path, label) in torchvision's order. */
    names classes = {0}, files = {0};
    int32_t *flabels = NULL;
    struct timespec newest = {0, 0};
    st = list_dir(a, e, dir, 1, &classes, &newest);
    int labelled = st == AE_OK && classes.n > 0;
    size_t nlab = 0;
    if (st == AE_OK && !labelled) {
        names here = {0};
        st = list_dir(a, e, dir, 0, &here, NULL);
        for (size_t i = 0; st == AE_OK && i < here.n; i++) {
            char *p = join(a, dir, here.v[i]);
            if (!p || names_push(a, &files, p) != 0)
                st = ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
            ae_free(a, p);
        }
        names_free(a, &here);
    }
    for (size_t k = 0; st == AE_OK && labelled && k < classes.n; k++) {
        char *cdir = join(a, dir, classes.v[k]);
        names here = {0};
        st = cdir ? list_dir(a, e, cdir, 0, &here, &newest)
                  : ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
        if (st == AE_OK && here.n == 0)
            st = ae_error(e, AE_ERR_FORMAT, "%s: the class folder %s holds no .png or .jpg file", who, cdir);
        if (st == AE_OK) {
            int32_t *nl = ae_alloc(a, (nlab + here.n) * sizeof *nl);
            if (!nl) st = ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
            if (nl && nlab) memcpy(nl, flabels, nlab * sizeof *nl);
            ae_free(a, flabels);
            flabels = nl;
        }
        for (size_t i = 0; st == AE_OK && i < here.n; i++) {
            char *p = join(a, cdir, here.v[i]);
            if (!p || names_push(a, &files, p) != 0)
                st = ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
            else
                flabels[nlab++] = (int32_t)k;
            ae_free(a, p);
        }
        names_free(a, &here);
        ae_free(a, cdir);
    }
    if (st == AE_OK && files.n == 0)
        st = ae_error(e, AE_ERR_FORMAT, "%s: %s holds no .png or .jpg file", who, dir);
    if (st) goto done;

    if (o->cache && h && w) {
        int32_t *cl;
        ae_rowfile *f = try_cache(ds, o, ch, h, w, files.n, labelled, newest, &cl);
        if (f) {
            ae_idx x;
            memset(&x, 0, sizeof x);
            x.count = ae_rowfile_count(f);
            memcpy(x.shape, ae_rowfile_shape(f), sizeof x.shape);
            x.dim = ch * h * w;
            x.labels = cl;
            ae_dataset_adopt_images(ds, &x, f, labelled ? classes.v : NULL, labelled ? classes.n : 0,
                                    files.n - x.count);
            if (labelled) memset(&classes, 0, sizeof classes);
            goto normalise;
        }
    }

    /* Decode every file. */
    {
        float *vals = NULL, *tmp = NULL;
        uint8_t *bytes = NULL;
        int32_t *labs = NULL;
        size_t n = 0, skipped = 0, dim = 0;
        for (size_t i = 0; i < files.n; i++) {
            uint8_t *buf = NULL, *pix = NULL;
            size_t len = 0, ih = 0, iw = 0;
            ae_src_name c;
            ae_src_name_init(&c, e, files.v[i]);
            st = ext_is(files.v[i], decoded_exts)
                     ? ae_read_whole_file(a, e, files.v[i], &buf, &len)
                     : ae_src_fail(&c, AE_ERR_UNSUPPORTED, "this image format is not read (PNG and JPEG are)");
            if (st == AE_OK) st = ae_image_decode(a, e, files.v[i], buf, len, (int)ch, &pix, &ih, &iw);
            ae_free(a, buf);
            if (st == AE_OK && !dim) {
                if (!h) { /* AE_RESIZE_NONE at the first image's size */
                    h = ih;
                    w = iw;
                }
                /* Sizes from the folder and the first image: a product too
                   large for size_t is memory that cannot be had. */
                size_t rows = files.n, elems = 0, fbytes = 0;
                int big = ae_mul_overflow(ch, h, &dim) || ae_mul_overflow(dim, w, &dim) ||
                          ae_mul_overflow(rows, dim, &elems) ||
                          ae_mul_overflow(elems, sizeof *vals, &fbytes);
                vals = o->cache || big ? NULL : ae_alloc(a, fbytes);
                bytes = o->cache && !big ? ae_alloc(a, elems) : NULL;
                tmp = o->cache && !big ? ae_alloc(a, dim * sizeof *tmp) : NULL;
                labs = labelled && !big ? ae_alloc(a, rows * sizeof *labs) : NULL;
                if (big || (!o->cache && !vals) || (o->cache && (!bytes || !tmp)) ||
                    (labelled && !labs))
                    st = ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory for %zu images of %zu values",
                                  who, rows, dim);
            }
            plan p;
            if (st == AE_OK) st = plan_for(o, &c, ih, iw, h, w, &p);
            if (st == AE_OK) {
                float *dst = o->cache ? tmp : vals + n * dim;
                ae_image_resize(pix, ih, iw, ch, p.rh, p.rw, p.oy, p.ox, dst, h, w);
                /* The cache holds bytes, as a PIL image after its resize. */
                for (size_t j = 0; o->cache && j < dim; j++)
                    bytes[n * dim + j] = (uint8_t)lrintf(tmp[j] * 255.0f);
                if (labs) labs[n] = flabels[i];
                n++;
            }
            ae_free(a, pix);
            if (st == AE_OK) continue;
            if (!o->skip_bad || st == AE_ERR_OUT_OF_MEMORY) break;
            skipped++;
            st = AE_OK;
        }
        if (st == AE_OK && n == 0)
            st = ae_error(e, AE_ERR_FORMAT, "%s: none of the %zu files in %s could be read (%zu skipped)",
                          who, files.n, dir, skipped);
        ae_rowfile *f = NULL;
        if (st == AE_OK && o->cache) {
            size_t shape[3] = {ch, h, w};
            st = ae_npy_write_typed(a, e, o->cache, AE_NPY_U1, bytes, n, shape);
            if (st == AE_OK && labelled) {
                char *lp = labels_path(a, o->cache);
                float *lf = lp ? ae_alloc(a, n * sizeof *lf) : NULL;
                for (size_t j = 0; lf && j < n; j++) lf[j] = (float)labs[j];
                size_t lshape[3] = {1, 1, 1};
                st = lf ? ae_npy_write_typed(a, e, lp, AE_NPY_F4, lf, n, lshape)
                        : ae_error(e, AE_ERR_OUT_OF_MEMORY, "%s: out of memory", who);
                ae_free(a, lf);
                ae_free(a, lp);
            }
            if (st == AE_OK) st = ae_rowfile_open(a, e, o->cache, &f);
        }
        ae_free(a, bytes);
        ae_free(a, tmp);
        if (st) {
            ae_free(a, vals);
            ae_free(a, labs);
            goto done;
        }
        ae_idx x;
        memset(&x, 0, sizeof x);
        x.count = n;
        x.shape[0] = ch;
        x.shape[1] = h;
        x.shape[2] = w;
        x.dim = dim;
        x.values = vals;
        x.labels = labs;
        ae_dataset_adopt_images(ds, &x, f, labelled ? classes.v : NULL, labelled ? classes.n : 0, skipped);
        if (labelled) memset(&classes, 0, sizeof classes);
    }
normalise:
    /* The options were checked, so only memory can fail here. */
    if (o->mean) st = ae_dataset_standardize(ds, o->mean, o->std, ch);
done:
    names_free(a, &classes);
    names_free(a, &files);
    ae_free(a, flabels);
    return st;
}
