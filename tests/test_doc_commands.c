/* Every `ae` command of the user documentation runs against the built tool
 * (its path is argv[1], passed by meson).
 *
 * The documents are DOCS below. A command is a line of a code block (a ```
 * fence or a block indented by four spaces in Markdown; .nf/.fi or .EX/.EE
 * in the manual page, its \- and \e read as - and \) whose first word is
 * `ae`, joined with its `\` continuation lines, a `#` comment dropped.
 *
 * - Each command must be listed in COMMANDS, with the exit status it must
 *   have and the substitutions that make it cheap; an unlisted command, or
 *   a listed one that no document has any more, fails the test.
 * - Each document's commands run in order in a directory of their own, so a
 *   later command reads what an earlier one wrote (`ae info --arch m.aem >
 *   m.arch`, then `--arch m.arch`). Every other input a command names must
 *   be mapped to a fixture in INPUTS: an unmapped one fails the test. The
 *   default data of `ae train` (no --data) is the small Fashion-MNIST of
 *   the fixtures, through AE_FASHION_MNIST_DIR.
 * - A command that succeeds prints nothing on standard error, and every
 *   output it names (-o, --png, --recon-png, --features-png, --scatter-png,
 *   --scores, --checkpoint, --codes, --image-cache, > FILE) exists and is
 *   what its name says: a PNG, a .npy, a model file that loads, a
 *   non-empty file. A command that fails prints one line on standard error
 *   and writes none of its outputs.
 *
 * The fixtures are small: 28x28 images of 10 classes (600 for training,
 * 100 for testing) as gzipped IDX files in Fashion-MNIST's names, as a .npy
 * and as a CSV of 0..255 with a header and the label first, and 64x64 RGB
 * PNG photographs in class folders. Each document's run prints one line a
 * command (ok or FAIL with the reason), and a failed one does not stop the
 * others. AE_DOC_COMMANDS_KEEP=1 keeps the directory (its path is printed). */
#define _XOPEN_SOURCE 700
#include "test_util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <libae/io.h>

static const char *const DOCS[] = {"docs/tool.md", "docs/guide.md", "docs/seeds.md",
                                   "tools/ae/ae.1"};
#define NDOCS (sizeof DOCS / sizeof DOCS[0])

/* ---- the commands of the documents, and how each one runs ---- */

#define LIST(...) ((const char *const[]){__VA_ARGS__, NULL})

typedef struct doc_command {
    const char *doc;
    /* As the document writes it (continuation lines joined, whitespace
       collapsed, a trailing comment dropped). */
    const char *text;
    int status; /* the exit status it must have */
    /* Pairs FROM, TO of whole words replaced before the run (shorter runs
       on the fixtures); each FROM must be in the command. */
    const char *const *subst;
    /* Text its standard output must hold, or NULL. */
    const char *expect;
    /* The command runs once more for each of these values in place of the
       word vary_word (a document's "and the others"). */
    const char *vary_word;
    const char *const *variants;
    /* Text `ae info` of the model it writes (-o) must hold, or NULL: what
       the document says of that model. */
    const char *model_info;
} doc_command;

/* seeds.md: "ae train --arch examples/arch/seed000_basic.arch ... # and the
   other Fashion-MNIST files": every description of examples/arch but the
   two RGB 64x64 ones, run by the commands after it. test_seed_files checks
   that this list and those commands name every file there. */
static const char *const SEED_FMNIST_FILES[] = {"examples/arch/seed000_conv.arch",
                                                "examples/arch/seed000_denoising.arch",
                                                "examples/arch/seed000_dropout.arch",
                                                "examples/arch/seed000_stacked.arch",
                                                "examples/arch/seed000_vae.arch",
                                                "examples/arch/seed001_dense.arch",
                                                "examples/arch/seed002_conv_bn.arch",
                                                "examples/arch/seed003_conv_maxpool.arch",
                                                "examples/arch/seed003_greedy.arch",
                                                "examples/arch/seed003_greedy_stage1.arch",
                                                "examples/arch/seed003_kl.arch",
                                                "examples/arch/seed003_lifetime.arch",
                                                "examples/arch/seed003_tied.arch",
                                                "examples/arch/seed003_topk.arch",
                                                "examples/arch/seed004_dense_sum.arch",
                                                "examples/arch/seed004_vae.arch",
                                                NULL};

#define TOOL "docs/tool.md"
#define SEEDS "docs/seeds.md"
#define MAN "tools/ae/ae.1"
#define FM "/usr/share/datasets/fashion-mnist/"

static const doc_command COMMANDS[] = {
    /* docs/tool.md. The fixtures' 600 samples at batch 256 are 3 steps an
       epoch: the first checkpoint run writes one every 2 steps and ends
       after 1 epoch, the second goes on from it to 2. */
    {.doc = TOOL,
     .text = "ae train -d x.npy --shape 1x28x28 --conv 16,32 --layers 64 -o conv.aem",
     .subst = LIST("-o conv.aem", "-e 2 -o conv.aem"),
     .expect = "epoch 2/2"},
    {.doc = TOOL, .text = "ae info --arch conv.aem > conv.arch"},
    {.doc = TOOL,
     .text = "ae train -d x.npy --arch conv.arch -o conv2.aem",
     .subst = LIST("-o conv2.aem", "-e 2 -o conv2.aem"),
     .expect = "epoch 2/2"},
    {.doc = TOOL,
     .text =
         "ae train -d x.npy --epochs 50 -o m.aem --checkpoint ck.aem --checkpoint-every 1000steps",
     .subst = LIST("--epochs 50", "--epochs 1", "1000steps", "2steps"),
     .expect = "epoch 1/1"},
    {.doc = TOOL,
     .text = "ae train -d x.npy --epochs 50 -o m.aem --checkpoint ck.aem --resume ck.aem",
     .subst = LIST("--epochs 50", "--epochs 2"),
     .expect = "epoch 2/2",
     .model_info = "completed after 2 of 2 epochs"},

    /* docs/seeds.md */
    {.doc = SEEDS,
     .text = "ae train --arch examples/arch/seed000_basic.arch -b 256 -e 1 -o basic.aem",
     .expect = "epoch 1/1",
     .vary_word = "examples/arch/seed000_basic.arch",
     .variants = SEED_FMNIST_FILES},
    {.doc = SEEDS,
     .text = "ae train -d crops/train --test crops/test --arch examples/arch/seed001_rgb_conv.arch "
             "-b 32 -e 1 -o rgb.aem",
     .expect = "test MSE"},
    /* the history's lr column: 0.001, then 0.0001 */
    {.doc = SEEDS,
     .text =
         "ae train -d crops/train --test crops/test --arch examples/arch/seed004_conv.arch -b 32 "
         "-e 2 --schedule step --step-size 1 --gamma 0.1 -o conv004.aem",
     .expect = "epoch 2/2",
     .model_info = "0.0001 "},
    /* the seed-004 photo section: 5 epochs become 1 */
    {.doc = SEEDS,
     .text = "ae train --arch examples/arch/seed004_conv.arch -d crops/train --test crops/test "
             "--image-cache train_cache.npy -b 32 -e 5 --seed 4 -o conv004.aem",
     .subst = LIST("-e 5", "-e 1"),
     .expect = "epoch 1/1"},
    {.doc = SEEDS,
     .text = "ae eval -m conv004.aem -d show --recon-png recon.png",
     .expect = "SSIM"},
    {.doc = SEEDS,
     .text = "ae train --greedy --layers 256,64 -b 256 -e 1 -o greedy.aem",
     .expect = "stage 3/3"},
    {.doc = SEEDS, .text = "ae eval -m conv004.aem -d crops/test", .expect = "SSIM"},

    /* tools/ae/ae.1, EXAMPLES */
    {.doc = MAN,
     .text = "ae train --epochs 5 -o fmnist.aem --recon-png recon.png",
     .expect = "epoch 5/5"},
    /* "the pixels are 8-bit data, read x 1/255" */
    {.doc = MAN,
     .text = "ae train -d data.csv --csv-header --csv-label-first --shape 28x28 --layers 512,64 "
             "--topk 8 --noise mask --noise-level 0.2 -o sparse.aem --features-png features.png "
             "--scatter-png codes.png",
     .subst = LIST("-o sparse.aem", "-e 2 -o sparse.aem"),
     .expect = "epoch 2/2",
     .model_info = "data: uint8 values x 1/255"},
    {.doc = MAN, .text = "ae info --arch fmnist.aem > model.arch"},
    {.doc = MAN,
     .text = "ae train --arch model.arch --epochs 5 -o fmnist2.aem",
     .subst = LIST("--epochs 5", "--epochs 2"),
     .expect = "epoch 2/2"},
    {.doc = MAN,
     .text = "ae eval -m fmnist.aem -d " FM "t10k-images-idx3-ubyte.gz --labels " FM
             "t10k-labels-idx1-ubyte.gz --scores scores.npy",
     .expect = "kNN accuracy"},
    {.doc = MAN,
     .text = "ae eval -m fmnist.aem -d " FM "t10k-images-idx3-ubyte.gz --labels " FM
             "t10k-labels-idx1-ubyte.gz --ref " FM "train-images-idx3-ubyte.gz --ref-labels " FM
             "train-labels-idx1-ubyte.gz --probe",
     .expect = "linear probe"},
    {.doc = MAN, .text = "ae encode -m fmnist.aem -d images.npy -o codes.npy"},
    {.doc = MAN, .text = "ae reconstruct -m fmnist.aem -d images.npy -o recon.npy --png recon.png"},
    {.doc = MAN,
     .text = "ae train --noise gaussian --noise-level 0.3 --noise-clip -o den.aem",
     .subst = LIST("-o den.aem", "-e 2 -o den.aem"),
     .expect = "epoch 2/2"},
    {.doc = MAN,
     .text = "ae eval -m den.aem -d " FM "t10k-images-idx3-ubyte.gz --noise model --recon-png "
             "denoised.png",
     .expect = "of the corrupted input against the clean data"},
    /* as in tool.md */
    {.doc = MAN,
     .text = "ae train --epochs 50 -o m.aem --checkpoint ck.aem --checkpoint-every 500steps",
     .subst = LIST("--epochs 50", "--epochs 1", "500steps", "2steps"),
     .expect = "epoch 1/1"},
    {.doc = MAN,
     .text = "ae train --epochs 50 -o m.aem --checkpoint ck.aem --resume ck.aem",
     .subst = LIST("--epochs 50", "--epochs 2"),
     .expect = "epoch 2/2",
     .model_info = "completed after 2 of 2 epochs"},
    {.doc = MAN,
     .text = "ae train --layers 256,64 --greedy --epochs 2 -o stacked.aem",
     .expect = "stage 3/3"},
};
#define NCOMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

/* The inputs the documents name, and the fixture each one stands for
   (under the fixtures directory, or "@SRC/" the source tree). A name that
   ends with '/' maps every path under it. */
static const struct input_map {
    const char *name, *fixture;
} INPUTS[] = {
    /* Fashion-MNIST's files: 600 training and 100 test images 28x28 with labels */
    {"/usr/share/datasets/fashion-mnist/", "fmnist/"},
    /* the same 600 training images as float32 [600, 784] in [0, 1] */
    {"x.npy", "x.npy"},
    /* the 100 test images as float32 [100, 1, 28, 28] in [0, 1] */
    {"images.npy", "images.npy"},
    /* the 600 training images as a CSV of 0..255, a header, the label first */
    {"data.csv", "data.csv"},
    /* examples/photo_crops.py's folders: 64x64 RGB PNGs in 2 class folders,
       16 for training and 8 for testing */
    {"crops/train", "crops/train"},
    {"crops/test", "crops/test"},
    /* seeds.md's folder `show`: 16 test crops; here the test crops */
    {"show", "crops/test"},
    /* the seeds' descriptions, as they are */
    {"examples/arch/", "@SRC/examples/arch/"},
};

/* Options whose value is a file the command reads, or writes. */
static const char *const INPUT_OPTS[] = {
    "-d", "--data",  "--test",   "--labels", "--test-labels", "--ref", "--ref-labels",
    "-m", "--model", "--resume", NULL};
static const char *const OUTPUT_OPTS[] = {"-o",
                                          "--output",
                                          "--png",
                                          "--recon-png",
                                          "--features-png",
                                          "--scatter-png",
                                          "--scores",
                                          "--checkpoint",
                                          "--codes",
                                          "--image-cache",
                                          NULL};

/* ---- state ---- */

static const char *g_ae, *g_src;
static char g_tmp[64], g_fix[128];

typedef struct found {
    const char *doc;
    int line;
    char text[2048];
    int bad; /* a troff escape or shell syntax the test does not read */
} found;
#define MAX_FOUND 256
static found g_found[MAX_FOUND];
static size_t g_nfound;

/* ---- small helpers ---- */

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
        }
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

static int is_word_char_boundary(const char *s, const char *at, size_t len) {
    return (at == s || at[-1] == ' ') && (at[len] == '\0' || at[len] == ' ');
}

/* Replaces the first whole-word occurrence of `from` in s (cap bytes); 0 when none. */
static int replace_words(char *s, size_t cap, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to);
    for (char *p = strstr(s, from); p; p = strstr(p + 1, from)) {
        if (!is_word_char_boundary(s, p, fl)) continue;
        if (strlen(s) - fl + tl + 1 > cap) return 0;
        memmove(p + tl, p + fl, strlen(p + fl) + 1);
        memcpy(p, to, tl);
        return 1;
    }
    return 0;
}

static void collapse_spaces(char *s) {
    char *w = s;
    int space = 1;
    for (const char *r = s; *r; r++) {
        int sp = *r == ' ' || *r == '\t';
        if (sp && space) continue;
        *w++ = sp ? ' ' : *r;
        space = sp;
    }
    if (w > s && w[-1] == ' ') w--;
    *w = '\0';
}

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (strcmp(*list, s) == 0) return 1;
    return 0;
}

/* ---- reading the documents ---- */

/* troff's escapes in an example: \- and \e (and \&, nothing); any other
   makes the command unreadable (bad). */
static int unescape_troff(char *s) {
    char *w = s;
    int bad = 0;
    for (const char *r = s; *r; r++) {
        if (*r != '\\') {
            *w++ = *r;
            continue;
        }
        r++;
        if (*r == '-')
            *w++ = '-';
        else if (*r == 'e' || *r == '\\')
            *w++ = '\\';
        else if (*r == '&')
            continue;
        else {
            bad = 1;
            *w++ = '\\';
            if (!*r) break;
            *w++ = *r;
        }
    }
    *w = '\0';
    return bad;
}

static void add_found(const char *doc, int line, const char *text, int bad) {
    assert_true(g_nfound < MAX_FOUND);
    found *f = &g_found[g_nfound++];
    f->doc = doc;
    f->line = line;
    f->bad = bad;
    snprintf(f->text, sizeof f->text, "%s", text);
    collapse_spaces(f->text);
    /* A comment: a word that starts with '#' and everything after it. */
    for (char *p = strchr(f->text, '#'); p; p = strchr(p + 1, '#'))
        if (p == f->text || p[-1] == ' ') {
            *p = '\0';
            break;
        }
    collapse_spaces(f->text);
    /* The words are handed to the tool as they are: no quoting, no
       variables, no pipes. Only "> FILE" is read. */
    if (strpbrk(f->text, "'\"`$|;&<*?(){}\\")) f->bad = 1;
}

static void scan_doc(const char *doc) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", g_src, doc);
    char *text = read_all(p, NULL);
    if (!text) fprintf(stderr, "cannot read %s\n", p);
    assert_non_null(text);
    int man = strstr(doc, ".1") != NULL;
    /* The lines, and whether each is in a code block. */
    size_t n = 1;
    for (char *c = text; *c; c++)
        n += *c == '\n';
    char **lines = calloc(n, sizeof *lines);
    int *code = calloc(n, sizeof *code), *bad = calloc(n, sizeof *bad);
    assert_true(lines && code && bad);
    n = 0;
    for (char *s = text, *e; s; s = e ? e + 1 : NULL) {
        e = strchr(s, '\n');
        if (e) *e = '\0';
        lines[n++] = s;
        if (!e) break;
    }
    int fence = 0, indented = 0, prev_blank = 1;
    for (size_t i = 0; i < n; i++) {
        const char *l = lines[i];
        const char *t = l + strspn(l, " \t");
        if (man) {
            if (strncmp(l, ".nf", 3) == 0 || strncmp(l, ".EX", 3) == 0)
                fence = 1;
            else if (strncmp(l, ".fi", 3) == 0 || strncmp(l, ".EE", 3) == 0)
                fence = 0;
            else if (fence) {
                code[i] = 1;
                bad[i] = unescape_troff(lines[i]);
            }
            continue;
        }
        if (strncmp(t, "```", 3) == 0) {
            fence = !fence;
            prev_blank = 0;
            continue;
        }
        int blank = *t == '\0';
        if (!fence && !blank) {
            int ind = strncmp(l, "    ", 4) == 0 || l[0] == '\t';
            indented = ind && (prev_blank || indented);
        }
        code[i] = fence || (indented && !blank);
        prev_blank = blank;
    }
    for (size_t i = 0; i < n; i++) {
        if (!code[i]) continue;
        char *t = lines[i] + strspn(lines[i], " \t");
        if (!(strncmp(t, "ae ", 3) == 0 || strcmp(t, "ae") == 0)) continue;
        char cmd[2048];
        int b = bad[i];
        size_t at = i;
        snprintf(cmd, sizeof cmd, "%s", t);
        /* `\` at the end of a line: the command goes on. */
        for (size_t len = strlen(cmd); len && cmd[len - 1] == '\\' && i + 1 < n && code[i + 1];
             len = strlen(cmd)) {
            cmd[len - 1] = ' ';
            i++;
            b |= bad[i];
            size_t room = sizeof cmd - strlen(cmd) - 1;
            strncat(cmd, lines[i], room);
        }
        add_found(doc, (int)at + 1, cmd, b);
    }
    free(lines);
    free(code);
    free(bad);
    free(text);
}

/* ---- fixtures ---- */

/* Image i of class c (0..9), 28x28 bytes: a bar or a block whose place and
   size follow the class, on a faint gradient. */
static void fmnist_image(int i, int c, uint8_t *px) {
    int pos = 3 + (i / 10) % 12, len = 6 + c;
    for (int r = 0; r < 28; r++)
        for (int k = 0; k < 28; k++) {
            int on;
            switch (c % 3) {
            case 0:
                on = r >= pos && r < pos + 3 && k >= 4 && k < 4 + len + 8;
                break;
            case 1:
                on = k >= pos && k < pos + 3 && r >= 2 && r < 2 + len + 8;
                break;
            default:
                on = r >= pos && r < pos + len / 2 && k >= pos && k < pos + len / 2;
                break;
            }
            px[r * 28 + k] = (uint8_t)(on ? 200 + (c * 5) : (r + k + i) % 24);
        }
}

static void fix_path(char *out, size_t cap, const char *name) {
    snprintf(out, cap, "%s/%s", g_fix, name);
}

static void write_gz(const char *name, const uint8_t *hdr, size_t hl, const uint8_t *data,
                     size_t n) {
    char p[512];
    fix_path(p, sizeof p, name);
    gzFile f = gzopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, hdr, (unsigned)hl), (int)hl);
    assert_int_equal(gzwrite(f, data, (unsigned)n), (int)n);
    assert_int_equal(gzclose(f), Z_OK);
}

static void be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void write_idx_pair(const char *images, const char *labels, int n, int first) {
    uint8_t *px = malloc((size_t)n * 784), *lab = malloc((size_t)n);
    assert_true(px && lab);
    for (int i = 0; i < n; i++) {
        lab[i] = (uint8_t)((first + i) % 10);
        fmnist_image(first + i, lab[i], px + (size_t)i * 784);
    }
    uint8_t h[16] = {0, 0, 8, 3};
    be32(h + 4, (uint32_t)n);
    be32(h + 8, 28);
    be32(h + 12, 28);
    write_gz(images, h, 16, px, (size_t)n * 784);
    uint8_t hl[8] = {0, 0, 8, 1};
    be32(hl + 4, (uint32_t)n);
    write_gz(labels, hl, 8, lab, (size_t)n);
    free(px);
    free(lab);
}

static void write_npy(const char *name, int n, int first, int image) {
    float *x = malloc((size_t)n * 784 * sizeof *x);
    uint8_t px[784];
    assert_non_null(x);
    for (int i = 0; i < n; i++) {
        fmnist_image(first + i, (first + i) % 10, px);
        for (int j = 0; j < 784; j++)
            x[(size_t)i * 784 + j] = (float)px[j] / 255.0f;
    }
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, (size_t)n, image ? 1 : 784, image ? 28 : 1,
                                            image ? 28 : 1, AE_DATA_BORROW),
                     AE_OK);
    char p[512];
    fix_path(p, sizeof p, name);
    assert_int_equal(ae_dataset_save_npy(ds, p), AE_OK);
    ae_dataset_destroy(ds);
    free(x);
}

static void write_csv(const char *name, int n) {
    char p[512];
    fix_path(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs("label", f);
    for (int j = 0; j < 784; j++)
        fprintf(f, ",pixel%d", j);
    fputc('\n', f);
    uint8_t px[784];
    for (int i = 0; i < n; i++) {
        fmnist_image(i, i % 10, px);
        fprintf(f, "%d", i % 10);
        for (int j = 0; j < 784; j++)
            fprintf(f, ",%d", px[j]);
        fputc('\n', f);
    }
    fclose(f);
}

/* 64x64 RGB photographs of two classes: a warm disc, a cool stripe pattern. */
static void write_crops(const char *set, int per_class, int first) {
    static const char *const classes[] = {"disc", "stripes"};
    uint8_t px[64 * 64 * 3];
    char p[512];
    fix_path(p, sizeof p, "crops");
    mkdir(p, 0755);
    fix_path(p, sizeof p, set);
    assert_int_equal(mkdir(p, 0755), 0);
    for (int c = 0; c < 2; c++) {
        char d[600];
        snprintf(d, sizeof d, "%s/%s", p, classes[c]);
        assert_int_equal(mkdir(d, 0755), 0);
        for (int i = first; i < first + per_class; i++) {
            for (int r = 0; r < 64; r++)
                for (int k = 0; k < 64; k++) {
                    uint8_t *q = px + (r * 64 + k) * 3;
                    int cx = 20 + 3 * i, dr = r - 32, dk = k - cx;
                    if (c == 0) {
                        int in = dr * dr + dk * dk < 300;
                        q[0] = (uint8_t)(in ? 230 : 40 + r);
                        q[1] = (uint8_t)(in ? 120 : 30 + k);
                        q[2] = (uint8_t)(in ? 40 : 60);
                    } else {
                        int on = ((k + 2 * i) / 6) % 2;
                        q[0] = (uint8_t)(30 + r / 2);
                        q[1] = (uint8_t)(on ? 160 : 60);
                        q[2] = (uint8_t)(on ? 220 : 90 + k);
                    }
                }
            char f[700], err[256];
            snprintf(f, sizeof f, "%s/%03d.png", d, i);
            ae_status st = ae_image_save_png(f, px, 64, 64, 3, NULL, err, sizeof err);
            if (st != AE_OK) fprintf(stderr, "%s\n", err);
            assert_int_equal(st, AE_OK);
        }
    }
}

static void make_fixtures(void) {
    assert_int_equal(mkdir(g_fix, 0755), 0);
    char p[512];
    fix_path(p, sizeof p, "fmnist");
    assert_int_equal(mkdir(p, 0755), 0);
    write_idx_pair("fmnist/train-images-idx3-ubyte.gz", "fmnist/train-labels-idx1-ubyte.gz", 600,
                   0);
    write_idx_pair("fmnist/t10k-images-idx3-ubyte.gz", "fmnist/t10k-labels-idx1-ubyte.gz", 100,
                   600);
    write_npy("x.npy", 600, 0, 0);
    write_npy("images.npy", 100, 600, 1);
    write_csv("data.csv", 600);
    write_crops("crops/train", 8, 0);
    write_crops("crops/test", 4, 8);
}

/* ---- running a command ---- */

typedef struct run_state {
    char dir[256];
    /* The files earlier commands of the document named as outputs. */
    char made[64][256];
    size_t nmade;
    int failures;
} run_state;

static int was_made(const run_state *rs, const char *name) {
    for (size_t i = 0; i < rs->nmade; i++)
        if (strcmp(rs->made[i], name) == 0) return 1;
    return 0;
}

/* The fixture for an input name, into out; 0 when INPUTS has none. */
static int map_input(const char *name, char *out, size_t cap) {
    for (size_t i = 0; i < sizeof INPUTS / sizeof INPUTS[0]; i++) {
        const char *n = INPUTS[i].name, *fx = INPUTS[i].fixture;
        size_t nl = strlen(n);
        int prefix = n[nl - 1] == '/';
        if (prefix ? strncmp(name, n, nl) != 0 : strcmp(name, n) != 0) continue;
        const char *rest = prefix ? name + nl : "";
        if (strncmp(fx, "@SRC/", 5) == 0)
            snprintf(out, cap, "%s/%s%s", g_src, fx + 5, rest);
        else
            snprintf(out, cap, "%s/%s%s", g_fix, fx, rest);
        return 1;
    }
    return 0;
}

static int file_size(const char *dir, const char *name, long *size, int *is_dir) {
    char p[1024];
    struct stat sb;
    if (name[0] == '/')
        snprintf(p, sizeof p, "%s", name);
    else
        snprintf(p, sizeof p, "%s/%s", dir, name);
    if (stat(p, &sb) != 0) return 0;
    *size = (long)sb.st_size;
    *is_dir = S_ISDIR(sb.st_mode);
    return 1;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

/* What an output's name says it is; NULL when it is, else the reason. */
static const char *check_output(const char *dir, const char *name, char *why, size_t cap) {
    char p[1024];
    long size = 0;
    int is_dir = 0;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    if (!file_size(dir, name, &size, &is_dir) || is_dir)
        return snprintf(why, cap, "%s was not written", name), why;
    if (size == 0) return snprintf(why, cap, "%s is empty", name), why;
    unsigned char head[8] = {0};
    FILE *f = fopen(p, "rb");
    size_t got = f ? fread(head, 1, 8, f) : 0;
    if (f) fclose(f);
    if (ends_with(name, ".png") && (got < 8 || memcmp(head, "\x89PNG\r\n\x1a\n", 8) != 0))
        return snprintf(why, cap, "%s is not a PNG", name), why;
    if (ends_with(name, ".npy") && (got < 6 || memcmp(head, "\x93NUMPY", 6) != 0))
        return snprintf(why, cap, "%s is not a .npy", name), why;
    if (ends_with(name, ".aem")) {
        ae_model *m = NULL;
        if (ae_model_load(&m, p, NULL) != AE_OK)
            return snprintf(why, cap, "%s does not load", name), why;
        ae_model_destroy(m);
    }
    return NULL;
}

/* `ae info MODEL` holds `want`; else the reason, into why. */
static void info_holds(const char *model, const char *want, char *why, size_t cap) {
    char outp[1100];
    if (strlen(model) > 512) {
        snprintf(why, cap, "path too long");
        return;
    }
    snprintf(outp, sizeof outp, "%s.info", model);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || dup2(fo, 1) < 0) _exit(127);
        execl(g_ae, g_ae, "info", model, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    char *out = read_all(outp, NULL);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 || !out || !strstr(out, want))
        snprintf(why, cap, "ae info %.512s does not hold '%.64s': %.400s", model, want,
                 out ? out : "");
    free(out);
    unlink(outp);
}

/* Runs one command (its words, after substitution) in rs->dir; prints ok
   or FAIL and counts failures. */
static void run_one(run_state *rs, const doc_command *dc, int line, const char *text) {
    char words[4096];
    snprintf(words, sizeof words, "%s", text);
    const char *argv[128];
    size_t argc = 0;
    const char *redirect = NULL, *model_out = NULL;
    char *outs[32];
    size_t nouts = 0;
    static char mapped[128][1024];
    size_t nmapped = 0;
    char why[1024] = "";
    char *save = NULL;
    for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        if (argc == 126) {
            snprintf(why, sizeof why, "too many words");
            break;
        }
        argv[argc++] = w;
    }
    argv[argc] = NULL;
    /* argv[0] is "ae", argv[1] the command. */
    const char *cmd = argc > 1 ? argv[1] : "";
    size_t out_argc = 0;
    const char *run_argv[128];
    run_argv[out_argc++] = g_ae;
    for (size_t i = 1; i < argc && !why[0]; i++) {
        const char *w = argv[i];
        if (strcmp(w, ">") == 0 || (w[0] == '>' && w[1])) {
            redirect = w[1] ? w + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!redirect)
                snprintf(why, sizeof why, "'>' names no file");
            else if (nouts < 32)
                outs[nouts++] = (char *)redirect;
            continue;
        }
        /* --opt=value is --opt value. */
        char opt[128] = "";
        const char *value = NULL; /* of an option that names a file */
        const char *eq = strncmp(w, "--", 2) == 0 ? strchr(w, '=') : NULL;
        if (eq && (size_t)(eq - w) < sizeof opt) {
            memcpy(opt, w, (size_t)(eq - w));
            opt[eq - w] = '\0';
            value = eq + 1;
        } else {
            snprintf(opt, sizeof opt, "%s", w);
        }
        int is_in =
            in_list(INPUT_OPTS, opt) || (strcmp(cmd, "train") == 0 && strcmp(opt, "--arch") == 0);
        int is_out = in_list(OUTPUT_OPTS, opt);
        /* info and import name their model or ONNX file alone. */
        int positional = (strcmp(cmd, "info") == 0 || strcmp(cmd, "import") == 0) && i >= 2 &&
                         w[0] != '-' && !in_list(OUTPUT_OPTS, argv[i - 1]) &&
                         strcmp(argv[i - 1], "--code") != 0 && !in_list(INPUT_OPTS, argv[i - 1]);
        int joined = value != NULL; /* --opt=value */
        if (is_in || is_out) {
            if (!joined) {
                run_argv[out_argc++] = w;
                if (i + 1 >= argc) continue; /* the tool says what is missing */
                value = argv[++i];
            }
        } else if (positional) {
            value = w;
            is_in = 1;
        } else {
            run_argv[out_argc++] = w;
            continue;
        }
        if (is_out) {
            if (nouts < 32) outs[nouts++] = (char *)value;
            if (strcmp(opt, "-o") == 0 || strcmp(opt, "--output") == 0) model_out = value;
            run_argv[out_argc++] = joined ? w : value;
            continue;
        }
        /* An input: written by an earlier command, or a fixture. */
        char resolved[900];
        if (was_made(rs, value))
            snprintf(resolved, sizeof resolved, "%s", value);
        else if (!map_input(value, resolved, sizeof resolved)) {
            snprintf(why, sizeof why,
                     "input '%s' is neither written by an earlier command of %s nor mapped to a "
                     "fixture in INPUTS (tests/test_doc_commands.c)",
                     value, dc->doc);
            break;
        }
        char *m = mapped[nmapped++];
        if (joined)
            snprintf(m, sizeof mapped[0], "%s=%s", opt, resolved);
        else
            snprintf(m, sizeof mapped[0], "%s", resolved);
        run_argv[out_argc++] = m;
    }
    run_argv[out_argc] = NULL;
    if (!why[0] && (argc < 2 || strcmp(argv[0], "ae") != 0))
        snprintf(why, sizeof why, "not an ae command");
    int existed[32];
    for (size_t k = 0; k < nouts; k++) {
        long size;
        int d;
        existed[k] = file_size(rs->dir, outs[k], &size, &d);
    }
    int status = -1;
    char outp[512], errp[512];
    snprintf(outp, sizeof outp, "%s/.stdout", rs->dir);
    snprintf(errp, sizeof errp, "%s/.stderr", rs->dir);
    if (!why[0]) {
        char fm[512];
        snprintf(fm, sizeof fm, "%s/fmnist", g_fix);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            if (chdir(rs->dir) != 0) _exit(127);
            int fo = open(redirect ? redirect : outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0) _exit(127);
            setenv("AE_FASHION_MNIST_DIR", fm, 1);
            alarm(600);
            execv(g_ae, (char *const *)run_argv);
            _exit(127);
        }
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    size_t errlen = 0, outlen = 0;
    char *err = read_all(errp, &errlen), *out = redirect ? NULL : read_all(outp, &outlen);
    int err_lines = 0;
    for (size_t k = 0; err && k < errlen; k++)
        err_lines += err[k] == '\n';
    if (why[0]) {
    } else if (status != dc->status) {
        snprintf(why, sizeof why, "exit status %d, expected %d: %.600s", status, dc->status,
                 err ? err : "");
    } else if (status == 0 && errlen) {
        snprintf(why, sizeof why, "succeeded but wrote to standard error: %.600s", err);
    } else if (status != 0 && err_lines != 1) {
        snprintf(why, sizeof why, "failed with %d lines on standard error, not one: %.600s",
                 err_lines, err ? err : "");
    } else if (dc->expect && !redirect && (!out || !strstr(out, dc->expect))) {
        snprintf(why, sizeof why, "standard output does not hold '%s': %.600s", dc->expect,
                 out ? out : "");
    } else {
        for (size_t k = 0; k < nouts && !why[0]; k++) {
            if (status == 0) {
                check_output(rs->dir, outs[k], why, sizeof why);
            } else {
                long size;
                int d;
                if (!existed[k] && outs[k] != redirect && file_size(rs->dir, outs[k], &size, &d))
                    snprintf(why, sizeof why, "failed but wrote %s", outs[k]);
            }
        }
    }
    if (!why[0] && status == 0 && dc->model_info) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", rs->dir, model_out ? model_out : "");
        info_holds(p, dc->model_info, why, sizeof why);
    }
    if (status == 0)
        for (size_t k = 0; k < nouts && rs->nmade < 64; k++)
            if (!was_made(rs, outs[k]))
                snprintf(rs->made[rs->nmade++], sizeof rs->made[0], "%s", outs[k]);
    if (why[0]) {
        rs->failures++;
        printf("FAIL %s:%d: %s\n     %s\n", dc->doc, line, text, why);
    } else {
        /* Its last line of output, for the log's reader. */
        const char *last = "";
        if (out && outlen) {
            while (outlen && out[outlen - 1] == '\n')
                out[--outlen] = '\0';
            const char *nl = strrchr(out, '\n');
            last = nl ? nl + 1 : out;
        }
        printf("ok   %s:%d: %s\n%s%.200s%s", dc->doc, line, text, last[0] ? "     -> " : "", last,
               last[0] ? "\n" : "");
    }
    fflush(stdout);
    free(err);
    free(out);
}

static const doc_command *listed(const found *f) {
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(COMMANDS[i].doc, f->doc) == 0 && strcmp(COMMANDS[i].text, f->text) == 0)
            return &COMMANDS[i];
    return NULL;
}

/* Every command of `doc`, in the document's order. */
static void run_doc(const char *doc) {
    run_state *rs = calloc(1, sizeof *rs);
    assert_non_null(rs);
    const char *base = strrchr(doc, '/') + 1;
    snprintf(rs->dir, sizeof rs->dir, "%s/%s", g_tmp, base);
    assert_int_equal(mkdir(rs->dir, 0755), 0);
    size_t ran = 0;
    for (size_t i = 0; i < g_nfound; i++) {
        const found *f = &g_found[i];
        if (strcmp(f->doc, doc) != 0) continue;
        const doc_command *dc = listed(f);
        if (f->bad) {
            printf("FAIL %s:%d: %s\n     uses shell syntax or a troff escape the test does not "
                   "read\n",
                   f->doc, f->line, f->text);
            rs->failures++;
            continue;
        }
        if (!dc) {
            printf("FAIL %s:%d: %s\n     is not listed in COMMANDS (tests/test_doc_commands.c): "
                   "say there how it runs\n",
                   f->doc, f->line, f->text);
            rs->failures++;
            continue;
        }
        char text[4096];
        snprintf(text, sizeof text, "%s", f->text);
        int ok = 1;
        for (const char *const *s = dc->subst; s && s[0]; s += 2)
            if (!replace_words(text, sizeof text, s[0], s[1])) {
                printf("FAIL %s:%d: %s\n     the substitution '%s' -> '%s' does not match\n",
                       f->doc, f->line, f->text, s[0], s[1]);
                rs->failures++;
                ok = 0;
            }
        if (!ok) continue;
        run_one(rs, dc, f->line, text);
        ran++;
        for (const char *const *v = dc->variants; v && *v; v++) {
            char alt[4096];
            snprintf(alt, sizeof alt, "%s", text);
            if (!replace_words(alt, sizeof alt, dc->vary_word, *v)) {
                printf("FAIL %s: %s\n     has no word '%s' to vary\n", f->doc, f->text,
                       dc->vary_word);
                rs->failures++;
                break;
            }
            run_one(rs, dc, f->line, alt);
            ran++;
        }
    }
    printf("%s: %zu runs, %d failed\n", doc, ran, rs->failures);
    int failures = rs->failures;
    free(rs);
    assert_int_equal(failures, 0);
}

static void test_tool_md(void **state) {
    (void)state;
    run_doc("docs/tool.md");
}

static void test_guide_md(void **state) {
    (void)state;
    run_doc("docs/guide.md");
}

static void test_seeds_md(void **state) {
    (void)state;
    run_doc("docs/seeds.md");
}

static void test_man_page(void **state) {
    (void)state;
    run_doc("tools/ae/ae.1");
}

/* The table follows the documents: no entry for a command they no longer
   have (the unlisted ones fail in the runs above). */
static void test_table_current(void **state) {
    (void)state;
    int stale = 0;
    for (size_t i = 0; i < NCOMMANDS; i++) {
        int seen = 0;
        for (size_t j = 0; j < g_nfound && !seen; j++)
            seen = strcmp(COMMANDS[i].doc, g_found[j].doc) == 0 &&
                   strcmp(COMMANDS[i].text, g_found[j].text) == 0;
        if (!seen) {
            printf("FAIL COMMANDS lists a command %s does not have: %s\n", COMMANDS[i].doc,
                   COMMANDS[i].text);
            stale++;
        }
    }
    printf("%zu commands in the documents, %zu listed\n", g_nfound, NCOMMANDS);
    assert_int_equal(stale, 0);
}

/* Every description of examples/arch is trained by a command of seeds.md
   (as written, or as one of SEED_FMNIST_FILES). */
static void test_seed_files(void **state) {
    (void)state;
    char p[4096];
    snprintf(p, sizeof p, "%s/examples/arch", g_src);
    DIR *d = opendir(p);
    assert_non_null(d);
    int missing = 0, count = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, ".arch")) continue;
        count++;
        char name[512];
        snprintf(name, sizeof name, "examples/arch/%s", e->d_name);
        int seen = in_list(SEED_FMNIST_FILES, name);
        for (size_t i = 0; i < NCOMMANDS && !seen; i++) {
            const char *t = strstr(COMMANDS[i].text, name);
            seen = strcmp(COMMANDS[i].doc, "docs/seeds.md") == 0 && t &&
                   is_word_char_boundary(COMMANDS[i].text, t, strlen(name));
        }
        if (!seen) {
            printf("FAIL %s is trained by no command of docs/seeds.md\n", name);
            missing++;
        }
    }
    closedir(d);
    printf("%d descriptions in examples/arch\n", count);
    assert_true(count > 0);
    assert_int_equal(missing, 0);
}

static int group_setup(void **state) {
    (void)state;
    strcpy(g_tmp, "/tmp/libae-doccmd-XXXXXX");
    if (!mkdtemp(g_tmp)) return -1;
    snprintf(g_fix, sizeof g_fix, "%s/fixtures", g_tmp);
    make_fixtures();
    for (size_t i = 0; i < NDOCS; i++)
        scan_doc(DOCS[i]);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    if (getenv("AE_DOC_COMMANDS_KEEP")) {
        printf("kept %s\n", g_tmp);
        return 0;
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    g_src = getenv("AE_SOURCE_ROOT");
    if (argc < 2 || !g_src) {
        fprintf(stderr, "usage: AE_SOURCE_ROOT=DIR test_doc_commands PATH-TO-ae\n");
        return 1;
    }
    static char abs_ae[4096], cwd[2048];
    if (argv[1][0] == '/')
        snprintf(abs_ae, sizeof abs_ae, "%s", argv[1]);
    else if (getcwd(cwd, sizeof cwd))
        snprintf(abs_ae, sizeof abs_ae, "%s/%s", cwd, argv[1]);
    if (access(abs_ae, X_OK) != 0) {
        fprintf(stderr, "test_doc_commands: no program at %s\n", argv[1]);
        return 1;
    }
    g_ae = abs_ae;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_current), cmocka_unit_test(test_seed_files),
        cmocka_unit_test(test_tool_md),       cmocka_unit_test(test_guide_md),
        cmocka_unit_test(test_seeds_md),      cmocka_unit_test(test_man_page),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
