/* End-to-end tests of the ae tool: the built binary (its path is argv[1],
 * passed by meson) runs on small data written into a fresh directory
 * under /tmp (.npy, CSV and IDX files of 12x12 images), and its outputs are
 * checked: exit codes, .npy shapes, PNG signatures, printed metrics,
 * determinism. Error paths (bad flags, missing files, options that do not
 * go together, corrupt model files) must exit non-zero with exactly one
 * line on stderr. */
/* posix_openpt and friends for the terminal test. */
#define _XOPEN_SOURCE 700
#include "test_util.h"

#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define N 64
#define H 12
#define W 12
#define D (H * W)

static const char *g_ae;
static char g_dir[64];
/* When set, a run of the tool is killed after this many seconds (a run
 * that would hang fails instead). */
static unsigned g_alarm;
/* When set, the child plants a symbolic link "<g_trap>.tmp<its PID>" to
 * victim.txt before it runs the tool: the temporary name the tool's own
 * PNG writer used to open with fopen("wb"). */
static const char *g_trap;

/* ---- running the tool ---- */

typedef struct result {
    int status; /* exit code, or 128 + signal */
    char out[16384], err[4096];
    int err_lines;
} result;

static size_t slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    return n;
}

/* Runs ae with the arguments (NULL-terminated) in g_dir, with `env`
 * ("NAME=value" or NULL) added to the environment. */
static void run_env(result *r, const char *env, const char *const *args) {
    char outp[128], errp[128];
    snprintf(outp, sizeof outp, "%s/stdout.txt", g_dir);
    snprintf(errp, sizeof errp, "%s/stderr.txt", g_dir);
    const char *argv[40];
    size_t n = 0;
    argv[n++] = g_ae;
    for (; args[n - 1] && n < 39; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || dup2(fo, 1) < 0 || dup2(fe, 2) < 0 || chdir(g_dir) != 0) _exit(127);
        if (env) {
            char name[64];
            const char *eq = strchr(env, '=');
            size_t len = eq && (size_t)(eq - env) < sizeof name ? (size_t)(eq - env) : 0;
            memcpy(name, env, len);
            name[len] = '\0';
            if (len) setenv(name, eq + 1, 1);
        }
        if (g_alarm) alarm(g_alarm);
        if (g_trap) {
            char trap[256];
            snprintf(trap, sizeof trap, "%s.tmp%ld", g_trap, (long)getpid());
            if (symlink("victim.txt", trap) != 0) _exit(127);
        }
        execv(g_ae, (char *const *)argv);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    slurp(outp, r->out, sizeof r->out);
    slurp(errp, r->err, sizeof r->err);
    r->err_lines = 0;
    for (const char *p = r->err; *p; p++) r->err_lines += *p == '\n';
}

#define RUN(r, ...)                                                                      \
    do {                                                                                 \
        const char *args_[] = {__VA_ARGS__, NULL};                                       \
        run_env((r), NULL, args_);                                                       \
    } while (0)

static void expect_ok(const result *r) {
    if (r->status != 0) fprintf(stderr, "ae failed (%d): %s\n%s", r->status, r->err, r->out);
    assert_int_equal(r->status, 0);
}

/* A failure: non-zero exit (not a crash), one line on stderr containing `needle`. */
static void expect_fail(const result *r, const char *needle) {
    if (r->status == 0 || r->status >= 126 || r->err_lines != 1 || !strstr(r->err, needle))
        fprintf(stderr, "expected one error line with '%s'; got status %d:\n%s", needle, r->status,
                r->err);
    assert_true(r->status != 0 && r->status < 126);
    assert_int_equal(r->err_lines, 1);
    assert_non_null(strstr(r->err, needle));
    assert_true(strncmp(r->err, "ae", 2) == 0);
}

static const char *path(const char *name) {
    static char buf[8][160];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", g_dir, name);
    return buf[k];
}

static int exists(const char *name) {
    struct stat sb;
    return stat(path(name), &sb) == 0;
}

/* The 'shape' of a .npy file as written in its header, e.g. "(64, 4)". */
static void npy_shape(const char *name, char *shape, size_t cap) {
    char buf[256] = {0};
    FILE *f = fopen(path(name), "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    assert_true(n > 10 && memcmp(buf, "\x93NUMPY", 6) == 0);
    char *s = strstr(buf + 10, "'shape': ");
    assert_non_null(s);
    s += 9;
    char *e = strchr(s, ')');
    assert_non_null(e);
    size_t len = (size_t)(e - s + 1) < cap - 1 ? (size_t)(e - s + 1) : cap - 1;
    memcpy(shape, s, len);
    shape[len] = '\0';
}

static void assert_npy_shape(const char *name, const char *want) {
    char shape[64];
    npy_shape(name, shape, sizeof shape);
    if (strcmp(shape, want) != 0) fprintf(stderr, "%s: shape %s, expected %s\n", name, shape, want);
    assert_string_equal(shape, want);
}

static void assert_png(const char *name) {
    unsigned char sig[8] = {0};
    FILE *f = fopen(path(name), "rb");
    assert_non_null(f);
    assert_int_equal(fread(sig, 1, 8, f), 8);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    assert_memory_equal(sig, "\x89PNG\r\n\x1a\n", 8);
    assert_true(size > 100);
}

/* ---- data ---- */

/* Two kinds of 12x12 images (label 0: a horizontal bar, label 1: a
 * vertical one) at varying positions, values in [0, 1]. */
static float g_x[N * D];
static int32_t g_y[N];

static void make_data(void) {
    for (int i = 0; i < N; i++) {
        int lab = i % 2, pos = 2 + (i / 2) % 8;
        g_y[i] = lab;
        for (int r = 0; r < H; r++)
            for (int c = 0; c < W; c++) {
                int on = lab ? (c == pos || c == pos + 1) : (r == pos || r == pos + 1);
                g_x[i * D + r * W + c] = on ? 0.9f : 0.05f + 0.01f * (float)((r + c + i) % 5);
            }
    }
}

static void write_npy_file(const char *name, const float *x, size_t n, size_t c, size_t h,
                           size_t w) {
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, n, c, h, w, AE_DATA_COPY), AE_OK);
    assert_int_equal(ae_dataset_save_npy(ds, path(name)), AE_OK);
    ae_dataset_destroy(ds);
}

static void write_text(const char *name, const char *text) {
    FILE *f = fopen(path(name), "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void write_files(void) {
    make_data();
    /* Images as [N, 144] vectors (the tests give --shape) and as [N, 1, 12, 12]. */
    write_npy_file("x.npy", g_x, N, D, 1, 1);
    write_npy_file("img.npy", g_x, N, 1, H, W);
    float lab[N];
    for (int i = 0; i < N; i++) lab[i] = (float)g_y[i];
    write_npy_file("y.npy", lab, N, 1, 1, 1);
    /* CSV with a header and the label first. */
    FILE *f = fopen(path("x.csv"), "wb");
    assert_non_null(f);
    fprintf(f, "label");
    for (int j = 0; j < D; j++) fprintf(f, ",p%d", j);
    fprintf(f, "\n");
    for (int i = 0; i < N; i++) {
        fprintf(f, "%d", g_y[i]);
        for (int j = 0; j < D; j++) fprintf(f, ",%.6g", (double)g_x[i * D + j]);
        fprintf(f, "\n");
    }
    fclose(f);
    /* IDX images (bytes 0..255) and labels, uncompressed. */
    f = fopen(path("img.idx"), "wb");
    assert_non_null(f);
    unsigned char hdr[16] = {0, 0, 8, 3, 0, 0, 0, N, 0, 0, 0, H, 0, 0, 0, W};
    fwrite(hdr, 1, 16, f);
    for (int i = 0; i < N * D; i++) fputc((int)lrintf(g_x[i] * 255.0f), f);
    fclose(f);
    f = fopen(path("lab.idx"), "wb");
    assert_non_null(f);
    unsigned char lh[8] = {0, 0, 8, 1, 0, 0, 0, N};
    fwrite(lh, 1, 8, f);
    for (int i = 0; i < N; i++) fputc(g_y[i], f);
    fclose(f);
    write_text("corrupt.aem", "this is not a model file at all, just some text\n");
    write_text("nan.csv", "1,2,3\n4,nan,6\n");
}

static int group_setup(void **state) {
    (void)state;
    strcpy(g_dir, "/tmp/libae-tool-XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    write_files();
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The progress bar: drawn on stderr only when it is a terminal. */
static void test_progress(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--epochs", "2", "-b", "8", "-o", "p.aem");
    expect_ok(&r);
    assert_int_equal(strlen(r.err), 0); /* not a terminal: no bar */
    assert_non_null(strstr(r.out, "epoch 1/2  train loss"));

    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    const char *slave = ptsname(master);
    assert_non_null(slave);
    char outp[128];
    snprintf(outp, sizeof outp, "%s/stdout.txt", g_dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fs = open(slave, O_RDWR | O_NOCTTY);
        int fo = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fs < 0 || fo < 0 || dup2(fo, 1) < 0 || dup2(fs, 2) < 0 || chdir(g_dir) != 0) _exit(127);
        execl(g_ae, g_ae, "train", "-d", "x.npy", "--layers", "8", "--epochs", "2", "-b", "8", "-o",
              "p.aem", (char *)NULL);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The child has exited: read what it left on the terminal. */
    char buf[8192];
    size_t n = 0;
    fcntl(master, F_SETFL, O_NONBLOCK);
    for (;;) {
        ssize_t k = read(master, buf + n, sizeof buf - 1 - n);
        if (k <= 0) break;
        n += (size_t)k;
    }
    buf[n] = '\0';
    close(master);
    assert_non_null(strstr(buf, "\repoch 1/2 ["));
    assert_non_null(strstr(buf, "left"));
    assert_non_null(strstr(buf, "loss"));
}

/* ---- help ---- */

static void test_help(void **state) {
    (void)state;
    result r;
    RUN(&r, "--help");
    expect_ok(&r);
    const char *cmds[] = {"train", "encode", "decode", "reconstruct", "eval", "info", "sample"};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        assert_non_null(strstr(r.out, cmds[i]));
        char usage[64];
        snprintf(usage, sizeof usage, "Usage: ae %s", cmds[i]);
        result h;
        RUN(&h, cmds[i], "--help");
        expect_ok(&h);
        assert_non_null(strstr(h.out, usage));
        assert_non_null(strstr(h.out, "--help"));
        RUN(&h, "help", cmds[i]);
        expect_ok(&h);
        assert_non_null(strstr(h.out, usage));
    }
    RUN(&r, "--version");
    expect_ok(&r);
    assert_non_null(strstr(r.out, ae_version_string()));
    /* Every flag of the train help is accepted (the help is complete). */
    RUN(&r, "train", "--help");
    assert_non_null(strstr(r.out, "--kl-sparsity"));
    assert_non_null(strstr(r.out, "--noise"));
    assert_non_null(strstr(r.out, "--schedule"));
}

/* ---- the main path: train, info, encode, decode, reconstruct, eval ---- */

static void test_train_and_use(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "x.npy", "--labels", "y.npy", "--shape", "1x12x12", "--layers", "32,4",
        "--epochs", "3", "-b", "16", "--seed", "7", "-o", "m.aem", "--recon-png", "recon.png",
        "--features-png", "feat.png", "--scatter-png", "scatter.png");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "epoch 3/3"));
    assert_non_null(strstr(r.out, "train loss"));
    assert_true(exists("m.aem"));
    assert_png("recon.png");
    assert_png("feat.png");
    assert_png("scatter.png");

    /* The AUTO rule's backend, in both reports. */
    const char *backend = ae_backend_available(AE_BACKEND_ONEDNN) ? "backend onednn"
                                                                   : "backend openblas";
    assert_non_null(strstr(r.out, backend));
    RUN(&r, "info", "m.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, backend));
    assert_non_null(strstr(r.out, "1x12x12 -> 32")); /* the data's shape is the model's */
    assert_non_null(strstr(r.out, "---- code ----"));
    assert_non_null(strstr(r.out, "training history"));
    assert_non_null(strstr(r.out, "ae.data.source"));
    assert_non_null(strstr(r.out, "x.npy"));
    assert_non_null(strstr(r.out, "1x12x12"));

    RUN(&r, "encode", "-m", "m.aem", "-d", "x.npy", "-o", "codes.npy");
    expect_ok(&r);
    assert_npy_shape("codes.npy", "(64, 4)");
    RUN(&r, "decode", "-m", "m.aem", "-d", "codes.npy", "-o", "dec.npy", "--png", "dec.png", "-n",
        "16");
    expect_ok(&r);
    assert_npy_shape("dec.npy", "(64, 1, 12, 12)");
    assert_png("dec.png");
    RUN(&r, "reconstruct", "-m", "m.aem", "-d", "img.npy", "--limit", "10", "-o", "rec.npy", "--png",
        "rec.png");
    expect_ok(&r);
    assert_npy_shape("rec.npy", "(10, 1, 12, 12)");
    assert_png("rec.png");

    /* decode(encode(x)) is reconstruct(x): compare through the library's reader. */
    ae_dataset *a = NULL, *b = NULL;
    assert_int_equal(ae_dataset_create(&a, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&b, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_npy(a, path("dec.npy")), AE_OK);
    assert_int_equal(ae_dataset_load_npy(b, path("rec.npy")), AE_OK);
    assert_close_arrays(ae_dataset_data(a), ae_dataset_data(b), 10 * D, 1e-4, 1e-5, "decode vs reconstruct");
    ae_dataset_destroy(a);
    ae_dataset_destroy(b);

    RUN(&r, "eval", "-m", "m.aem", "-d", "x.npy", "--labels", "y.npy", "--knn", "3", "--percentile",
        "90", "--scores", "scores.npy", "--scatter-png", "es.png");
    expect_ok(&r);
    const char *lines[] = {"MSE ", "NMSE", "FVU", "PSNR", "SSIM ", "anomaly", "latent",
                           "kNN accuracy"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        if (!strstr(r.out, lines[i])) fprintf(stderr, "no '%s' in:\n%s", lines[i], r.out);
        assert_non_null(strstr(r.out, lines[i]));
    }
    /* The 90th percentile of 64 distinct scores lies between the sorted
     * positions 56 and 57 (0.9 * 63 = 56.7): the 7 at positions 57 to 63 lie above. */
    if (!strstr(r.out, "7 of 64 above")) fprintf(stderr, "%s", r.out);
    assert_non_null(strstr(r.out, "7 of 64 above"));
    /* One score a sample, shape (N,): it broadcast silently as (N, 1). */
    assert_npy_shape("scores.npy", "(64,)");
    assert_png("es.png");
}

/* Same seed, same data: the same codes. */
static void test_deterministic(void **state) {
    (void)state;
    result r;
    for (int k = 0; k < 2; k++) {
        RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--epochs", "2", "-b", "8", "-q", "-o",
            k ? "d2.aem" : "d1.aem");
        expect_ok(&r);
        assert_int_equal(strlen(r.out), 0); /* --quiet */
        RUN(&r, "encode", "-m", k ? "d2.aem" : "d1.aem", "-d", "x.npy", "-o",
            k ? "c2.npy" : "c1.npy");
        expect_ok(&r);
    }
    static char a[8192], b[8192];
    size_t na = slurp(path("c1.npy"), a, sizeof a), nb = slurp(path("c2.npy"), b, sizeof b);
    assert_int_equal(na, 128 + N * 8 * 4);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
}

/* --checkpoint and --resume: a run of 2 epochs resumed to 4 ends with the
 * codes of 4 epochs in one go (validation, step checkpoints, restore-best
 * and early stopping along); the refusals. */
static void test_checkpoint_resume(void **state) {
    (void)state;
    result r;
#define CK_TRAIN "train", "-d", "x.npy", "--layers", "8", "-b", "8", "--val-split", "0.25", \
                 "--patience", "3", "--schedule", "plateau", "--warmup-steps", "5"
    RUN(&r, CK_TRAIN, "--epochs", "4", "-o", "full.aem");
    expect_ok(&r);
    RUN(&r, CK_TRAIN, "--epochs", "2", "-o", "half.aem", "--checkpoint", "ck.aem",
        "--checkpoint-every", "5steps");
    expect_ok(&r);
    assert_true(exists("ck.aem"));
    RUN(&r, CK_TRAIN, "--epochs", "4", "-o", "rest.aem", "--resume", "ck.aem", "--checkpoint",
        "ck.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "resuming ck.aem after epoch 1, batch 4"));
    assert_non_null(strstr(r.out, "epoch 2/4"));
    assert_null(strstr(r.out, "epoch 1/4"));
    RUN(&r, "info", "rest.aem");
    expect_ok(&r);
    static char a[8192], b[8192];
    for (int k = 0; k < 2; k++) {
        RUN(&r, "encode", "-m", k ? "rest.aem" : "full.aem", "-d", "x.npy", "-o",
            k ? "cr.npy" : "cf.npy");
        expect_ok(&r);
    }
    size_t na = slurp(path("cf.npy"), a, sizeof a), nb = slurp(path("cr.npy"), b, sizeof b);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    /* Every epoch (a bare N), then nothing left when resumed at the end. */
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "-b", "8", "--epochs", "2", "-o", "e2.aem",
        "--checkpoint", "ck2.aem", "--checkpoint-every", "1");
    expect_ok(&r);
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "-b", "8", "--epochs", "2", "-o", "e3.aem",
        "--resume", "ck2.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "nothing left to train"));
    /* Refusals. */
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--checkpoint-every", "2");
    expect_fail(&r, "--checkpoint-every needs --checkpoint");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--checkpoint", "c.aem", "--checkpoint-every",
        "2weeks");
    expect_fail(&r, "--checkpoint-every");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--resume", "full.aem");
    expect_fail(&r, "holds no training run");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--resume", "none.aem");
    expect_fail(&r, "cannot open none.aem");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "-b", "4", "--epochs", "3", "-o", "e.aem",
        "--resume", "ck2.aem");
    expect_fail(&r, "batch_size");
    RUN(&r, "train", "-d", "x.npy", "-o", "x.npy.aem", "--checkpoint", "x.npy");
    assert_true(r.status != 0);
#undef CK_TRAIN
}

/* --greedy: a stage per width and a fine-tuning stage, each through
 * ae_fit; the refusals. */
static void test_greedy(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "x.npy", "--layers", "16,8,4", "--topk", "2", "--epochs", "1", "-b", "16",
        "--greedy", "-o", "g.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "stage 1/4: 144-16-144"));
    assert_non_null(strstr(r.out, "stage 3/4"));
    assert_non_null(strstr(r.out, "stage 4/4: unfrozen and untied"));
    RUN(&r, "info", "g.aem");
    expect_ok(&r);
    assert_null(strstr(r.out, "tied"));
    assert_null(strstr(r.out, "frozen"));
    RUN(&r, "encode", "-m", "g.aem", "-d", "x.npy", "-o", "g.npy");
    expect_ok(&r);
    assert_npy_shape("g.npy", "(64, 4)");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--greedy", "-o", "e.aem");
    expect_fail(&r, "two or more widths");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8,4", "--greedy", "--tied", "-o", "e.aem");
    expect_fail(&r, "--greedy is for dense models");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8,4", "--greedy", "--checkpoint", "c.aem", "-o",
        "e.aem");
    expect_fail(&r, "--greedy does not go with --checkpoint");
    /* The stages are built from --layers: a description would have every
       stage train its full model, so it is refused. */
    RUN(&r, "train", "-d", "x.npy", "--greedy", "--arch-string",
        "dense 16 activation=relu\ndense 4\nmirror activation=sigmoid\n", "-e", "1", "-o", "ga.aem");
    expect_fail(&r, "--greedy takes --layers widths");
    assert_int_equal(r.status, 2);
    write_text("greedy.arch", "dense 16 activation=relu\ndense 4\nmirror activation=sigmoid\n");
    RUN(&r, "train", "-d", "x.npy", "--greedy", "--arch", "greedy.arch", "-e", "1", "-o", "ga.aem");
    expect_fail(&r, "--greedy takes --layers widths");
    assert_int_equal(r.status, 2);
    assert_false(exists("ga.aem"));
}

/* CSV with header and labels, IDX, and the training flags. */
static void test_formats_and_flags(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "x.csv", "--csv-header", "--csv-label-first", "--shape", "12x12",
        "--layers", "16,8", "--topk", "3", "--tied", "--noise", "gaussian", "--noise-level", "0.01",
        "--noise-clip", "--schedule", "cosine", "--min-lr", "1e-5", "--warmup-steps", "4",
        "--val-split", "0.25", "--patience", "2", "--epochs", "4", "-b", "8", "-o", "csv.aem",
        "--scatter-png", "csv_scatter.png");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "val loss"));
    assert_png("csv_scatter.png");
    RUN(&r, "info", "-m", "csv.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "topk"));
    assert_non_null(strstr(r.out, "(tied)"));
    assert_non_null(strstr(r.out, "noise gaussian"));

    RUN(&r, "train", "-d", "img.idx", "--labels", "lab.idx", "--test", "img.idx", "--layers", "8",
        "--code-act", "sigmoid", "--kl-sparsity", "0.1", "--kl-weight", "0.01", "--optimizer", "sgd",
        "--lr", "0.1", "--momentum", "0.9", "--nesterov", "--schedule", "step", "--step-size", "1",
        "--gamma", "0.5", "--epochs", "2", "-b", "16", "--standardize", "feature", "-o", "idx.aem",
        "--recon-png", "idx_recon.png");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "test MSE"));
    assert_png("idx_recon.png");
    /* Outputs come back in the units of the file (bytes for IDX). */
    RUN(&r, "reconstruct", "-m", "idx.aem", "-d", "img.idx", "-o", "idx_rec.npy");
    expect_ok(&r);
    assert_npy_shape("idx_rec.npy", "(64, 1, 12, 12)");
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_npy(ds, path("idx_rec.npy")), AE_OK);
    float mx = 0;
    for (size_t i = 0; i < N * D; i++) mx = fmaxf(mx, ae_dataset_data(ds)[i]);
    assert_true(mx > 20.0f && mx < 400.0f);
    ae_dataset_destroy(ds);

    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--batch-topk", "2", "--l1", "0.001",
        "--lifetime-topk", "0.5", "--loss", "bce", "--optimizer", "adamw", "--weight-decay", "0.01",
        "--grad-clip", "1", "--epochs", "1", "-b", "16", "-o", "s.aem");
    expect_ok(&r);
}

/* A variational autoencoder: train, sample, evaluate. */
static void test_vae(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "img.npy", "--labels", "y.npy", "--vae", "--layers", "16,2", "--beta",
        "0.5", "--kl-warmup", "4", "--epochs", "2", "-b", "16", "-o", "vae.aem", "--scatter-png",
        "vae_scatter.png");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "[gaussian 2]"));
    assert_png("vae_scatter.png");
    RUN(&r, "info", "vae.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "gaussian"));
    assert_non_null(strstr(r.out, "VAE beta 0.5"));
    assert_non_null(strstr(r.out, "reduction sum"));
    RUN(&r, "sample", "-m", "vae.aem", "-n", "9", "-o", "samples.npy", "--png", "samples.png",
        "--codes", "z.npy", "--seed", "3");
    expect_ok(&r);
    assert_npy_shape("samples.npy", "(9, 1, 12, 12)");
    assert_npy_shape("z.npy", "(9, 2)");
    assert_png("samples.png");
    RUN(&r, "eval", "-m", "vae.aem", "-d", "img.npy");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "negative ELBO"));
    RUN(&r, "sample", "-m", "m.aem", "-o", "never.npy");
    expect_fail(&r, "not a variational autoencoder");
    assert_false(exists("never.npy"));
    RUN(&r, "sample", "-m", "vae.aem");
    expect_fail(&r, "nothing to write");
}

/* A copy of the model file `from` with the metadata key set to value. */
static void copy_with_meta(const char *from, const char *to, const char *key, const char *value) {
    ae_model *m = NULL;
    assert_int_equal(ae_model_load(&m, path(from), NULL), AE_OK);
    assert_int_equal(ae_model_set_meta(m, key, value), AE_OK);
    assert_int_equal(ae_model_save(m, path(to), AE_SAVE_MODEL), AE_OK);
    ae_model_destroy(m);
}

/* Model files whose recorded sample shape lies: dimensions whose product
 * wraps around to the input size (144) are refused, and a picture larger
 * than the documented bound is refused, before anything is drawn. */
static void test_crafted_shape(void **state) {
    (void)state;
    static const char *const wraps[] = {"144x3x12297829382473034411", /* 3 w = 2^65 + 1 */
                                        "1x2x9223372036854775880",    /* 2^64 + 144 */
                                        "1x18446744073709551615x18446744073709551472"};
    result r;
    /* Flat models (input 144, no image shape of their own): only those take
     * the shape from old files' metadata. */
    RUN(&r, "train", "-d", "x.npy", "--vae", "--layers", "16,2", "--epochs", "1", "-b", "16", "-o",
        "flat_vae.aem");
    expect_ok(&r);
    RUN(&r, "train", "-d", "x.npy", "--layers", "32,4", "--epochs", "1", "-b", "16", "-o",
        "flat_m.aem");
    expect_ok(&r);
    for (size_t i = 0; i < sizeof wraps / sizeof *wraps; i++) {
        copy_with_meta("flat_vae.aem", "wrap_vae.aem", "ae.data.shape", wraps[i]);
        RUN(&r, "sample", "-m", "wrap_vae.aem", "-n", "4", "--png", "wrap.png");
        expect_fail(&r, "metadata");
        assert_int_equal(r.status, 1);
        assert_false(exists("wrap.png"));
        copy_with_meta("flat_m.aem", "wrap_m.aem", "ae.data.shape", wraps[i]);
        RUN(&r, "eval", "-m", "wrap_m.aem", "-d", "x.npy", "--features-png", "wrap.png");
        expect_fail(&r, "metadata");
        assert_int_equal(r.status, 1);
        assert_false(exists("wrap.png"));
    }
    /* A true shape, but 10000 tiles of 1x144 at zoom 2 make a picture wider
     * than 16384 pixels. */
    copy_with_meta("flat_vae.aem", "wide_vae.aem", "ae.data.shape", "1x1x144");
    RUN(&r, "sample", "-m", "wide_vae.aem", "-n", "10000", "--png", "wide.png");
    expect_fail(&r, "16384");
    assert_int_equal(r.status, 1);
    assert_false(exists("wide.png"));
    RUN(&r, "sample", "-m", "wide_vae.aem", "-n", "16", "--png", "wide.png");
    expect_ok(&r);
    assert_png("wide.png");
}

/* A convolutional encoder and its mirrored decoder. */
static void test_conv(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "img.npy", "--conv", "4,8", "--layers", "6", "--epochs", "1", "-b", "16",
        "-o", "conv.aem", "--features-png", "conv_feat.png");
    expect_ok(&r);
    assert_png("conv_feat.png");
    RUN(&r, "info", "conv.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "1x12x12 -> 4x6x6"));
    assert_non_null(strstr(r.out, "8x3x3 -> 72"));
    assert_non_null(strstr(r.out, "4x6x6 -> 1x12x12"));
    RUN(&r, "reconstruct", "-m", "conv.aem", "-d", "x.npy", "-o", "conv_rec.npy");
    expect_ok(&r);
    assert_npy_shape("conv_rec.npy", "(64, 1, 12, 12)");
    RUN(&r, "train", "-d", "x.npy", "--conv", "4", "-o", "e.aem");
    expect_fail(&r, "--conv needs image samples");
    RUN(&r, "train", "-d", "x.npy", "--shape", "16x9", "--conv", "4", "-o", "e.aem");
    expect_fail(&r, "cannot be halved");
    RUN(&r, "train", "-d", "img.npy", "--conv", "4", "--tied", "-o", "e.aem");
    expect_fail(&r, "--conv does not go with --tied");
    assert_false(exists("e.aem"));
}

/* Architecture descriptions: every model the flags built prints a
 * description (ae info --arch) that --arch builds into the same
 * architecture; --arch-string; the model's sample shape for pictures. */
static void test_arch(void **state) {
    (void)state;
    result r;
    static char want[sizeof ((result *)0)->out];
    const char *models[] = {"m.aem", "csv.aem", "idx.aem", "s.aem", "vae.aem", "conv.aem"};
    const char *data[] = {"x.npy", "img.npy", "img.idx", "x.npy", "img.npy", "img.npy"};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        RUN(&r, "info", "--arch", models[i]);
        expect_ok(&r);
        assert_true(strncmp(r.out, "input ", 6) == 0);
        snprintf(want, sizeof want, "%s", r.out);
        write_text("desc.arch", want);
        /* ae info shows the same text, indented. */
        RUN(&r, "info", models[i]);
        expect_ok(&r);
        assert_non_null(strstr(r.out, "description (ae info --arch"));
        char first[128];
        snprintf(first, sizeof first, "\n  %.*s\n", (int)(strchr(want, '\n') - want), want);
        assert_non_null(strstr(r.out, first));
        RUN(&r, "train", "-d", data[i], "--arch", "desc.arch", "--epochs", "1", "-b", "16", "-q",
            "-o", "again.aem");
        expect_ok(&r);
        RUN(&r, "info", "--arch", "again.aem");
        expect_ok(&r);
        if (strcmp(r.out, want) != 0) fprintf(stderr, "%s:\n%s--\n%s", models[i], want, r.out);
        assert_string_equal(r.out, want);
    }
    /* A description of layers the flags have no shortcut for, without an
     * input line (the data's shape is the input), from a vector file read
     * as images by its input line in the second. */
    RUN(&r, "train", "-d", "img.npy", "--arch-string",
        "conv2d 4 3 padding=1 activation=relu\nbatchnorm2d momentum=0.2\nmaxpool2d 2\n"
        "flatten\ndense 6\ncode\ndense 144 activation=relu\nunflatten 4 6 6\n"
        "upsample 2 mode=bilinear align_corners=true\nconv2d 1 3 padding=1 activation=sigmoid\n"
        "set lr=0.003\n",
        "--epochs", "1", "-b", "16", "--lr", "0.002", "-o", "pool.aem", "--recon-png", "pool.png");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "model: --arch-string, 9 layers"));
    assert_png("pool.png");
    RUN(&r, "info", "--arch", "pool.aem");
    expect_ok(&r);
    assert_true(strncmp(r.out, "input 1 12 12\nconv2d 4 3 stride=1 padding=1 activation=relu\n"
                               "batchnorm momentum=0.2 eps=1e-05\nmaxpool2d 2 stride=2 padding=0\n", 123) == 0);
    assert_non_null(strstr(r.out, "upsample 2 mode=bilinear align_corners=true\n"));
    assert_non_null(strstr(r.out, "set learning_rate=0.002\n")); /* the option overrides the text */
    RUN(&r, "train", "-d", "x.npy", "--arch-string",
        "input 1 12 12\ndense 16 activation=relu\ngaussian 2\ndense 16 activation=relu\n"
        "dense 144 activation=sigmoid\nset loss=bce reduction=sum vae_beta=0.5\n",
        "--epochs", "1", "-b", "16", "-q", "-o", "vae2.aem");
    expect_ok(&r);
    RUN(&r, "sample", "-m", "vae2.aem", "-n", "4", "-o", "s2.npy", "--png", "s2.png");
    expect_ok(&r);
    assert_npy_shape("s2.npy", "(4, 1, 12, 12)");
    assert_png("s2.png");
    RUN(&r, "reconstruct", "-m", "vae2.aem", "-d", "x.npy", "-o", "r2.npy", "--png", "r2.png");
    expect_ok(&r);
    assert_npy_shape("r2.npy", "(64, 1, 12, 12)");

    /* A model written before the shape was the model's: 144 inputs, the
     * image shape in the metadata. Pictures still work. */
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&cfg, NULL), AE_OK);
    assert_int_equal(ae_config_from_arch(cfg, "input 144\ndense 3\ncode\ndense 144\n"), AE_OK);
    assert_int_equal(ae_model_create(&m, cfg), AE_OK);
    assert_int_equal(ae_model_set_meta(m, "ae.data.shape", "1x12x12"), AE_OK);
    assert_int_equal(ae_model_save(m, path("old.aem"), AE_SAVE_MODEL), AE_OK);
    ae_model_destroy(m);
    ae_config_destroy(cfg);
    RUN(&r, "encode", "-m", "old.aem", "-d", "x.npy", "-o", "oc.npy");
    expect_ok(&r);
    RUN(&r, "decode", "-m", "old.aem", "-d", "oc.npy", "-o", "od.npy", "--png", "od.png");
    expect_ok(&r);
    assert_npy_shape("od.npy", "(64, 1, 12, 12)");

    /* Errors: one line each, nothing written. */
    RUN(&r, "train", "-d", "x.npy", "--arch", "desc.arch", "--layers", "8", "-o", "e.aem");
    expect_fail(&r, "--layers does not go with --arch");
    RUN(&r, "train", "-d", "x.npy", "--arch-string", "dense 4", "--vae", "-o", "e.aem");
    expect_fail(&r, "--vae does not go with --arch-string");
    RUN(&r, "train", "-d", "x.npy", "--arch", "desc.arch", "--arch-string", "dense 4", "-o", "e.aem");
    expect_fail(&r, "do not go together");
    RUN(&r, "train", "-d", "x.npy", "--arch", "missing.arch", "-o", "e.aem");
    expect_fail(&r, "missing.arch");
    write_text("bad.arch", "# a comment\ndense 8 activation=relu\nconv2d 4\n");
    RUN(&r, "train", "-d", "x.npy", "--arch", "bad.arch", "-o", "e.aem");
    expect_fail(&r, "bad.arch: line 3, column 1: conv2d needs kernel");
    RUN(&r, "train", "-d", "x.npy", "--arch-string", "input 100\ndense 4\ncode\ndense 100\n", "-o",
        "e.aem");
    expect_fail(&r, "the model's input has 100 values; the data have 144");
    RUN(&r, "train", "-d", "x.npy", "--arch-string", "dense 4\ndense 144\n", "-o", "e.aem");
    expect_fail(&r, "no code");
    assert_false(exists("e.aem"));
}

/* ae export and ae import: the round trip gives the same reconstructions. */
static void test_onnx(void **state) {
    (void)state;
    result r;
    RUN(&r, "train", "-d", "img.npy", "--conv", "4", "--layers", "6", "--epochs", "1", "-b", "16",
        "-o", "onnx_src.aem");
    expect_ok(&r);
    RUN(&r, "export", "-m", "onnx_src.aem", "-o", "onnx_full.onnx");
    if (r.status != 0 && strstr(r.err, "without ONNX")) {
        skip(); /* libae built with -Donnx=disabled */
    }
    expect_ok(&r);
    RUN(&r, "import", "onnx_full.onnx", "-o", "onnx_back.aem");
    expect_ok(&r);
    RUN(&r, "info", "onnx_back.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "1x12x12 -> 4x6x6"));
    /* The sample shape is the model's own: no ae.data.shape metadata. */
    ae_model *back = NULL;
    assert_int_equal(ae_model_load(&back, path("onnx_back.aem"), NULL), AE_OK);
    const char *shape_meta = NULL;
    ae_model_get_meta(back, "ae.data.shape", &shape_meta);
    assert_null(shape_meta);
    size_t sc = 0, sh = 0, sw = 0;
    assert_int_equal(ae_model_sample_shape(back, &sc, &sh, &sw), AE_OK);
    assert_true(sc == 1 && sh == H && sw == W);
    ae_model_destroy(back);
    RUN(&r, "reconstruct", "-m", "onnx_back.aem", "-d", "img.npy", "-o", "onnx_png.npy", "--png",
        "onnx_back.png");
    expect_ok(&r);
    assert_png("onnx_back.png");
    RUN(&r, "reconstruct", "-m", "onnx_src.aem", "-d", "img.npy", "-o", "onnx_a.npy");
    expect_ok(&r);
    RUN(&r, "reconstruct", "-m", "onnx_back.aem", "-d", "img.npy", "-o", "onnx_b.npy");
    expect_ok(&r);
    static char a[1 << 16], b[1 << 16];
    size_t na = slurp(path("onnx_a.npy"), a, sizeof a), nb = slurp(path("onnx_b.npy"), b, sizeof b);
    assert_true(na > 0 && na == nb);
    assert_memory_equal(a, b, na);
    /* The training data's value convention travels with the graph: an
       IDX-trained, standardised model reads IDX the same after the trip. */
    RUN(&r, "train", "-d", "img.idx", "--standardize", "scalar", "--layers", "6", "--epochs", "1",
        "-b", "16", "-o", "onnx_idx.aem");
    expect_ok(&r);
    RUN(&r, "export", "-m", "onnx_idx.aem", "-o", "onnx_idx.onnx");
    expect_ok(&r);
    RUN(&r, "import", "onnx_idx.onnx", "-o", "onnx_idx_back.aem");
    expect_ok(&r);
    RUN(&r, "info", "onnx_idx_back.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "data: uint8 values x 1/255, standardised with 1 mean/std value"));
    RUN(&r, "reconstruct", "-m", "onnx_idx.aem", "-d", "img.idx", "-o", "onnx_a.npy");
    expect_ok(&r);
    RUN(&r, "reconstruct", "-m", "onnx_idx_back.aem", "-d", "img.idx", "-o", "onnx_b.npy");
    expect_ok(&r);
    na = slurp(path("onnx_a.npy"), a, sizeof a), nb = slurp(path("onnx_b.npy"), b, sizeof b);
    assert_true(na > 0 && na == nb);
    assert_memory_equal(a, b, na);
    RUN(&r, "export", "-m", "onnx_src.aem", "-o", "onnx_enc.onnx", "--part", "encoder");
    expect_ok(&r);
    RUN(&r, "import", "onnx_enc.onnx", "-o", "never.aem");
    expect_fail(&r, "input has 144");
    RUN(&r, "export", "-m", "onnx_src.aem", "-o", "never.onnx", "--part", "middle");
    expect_fail(&r, "--part");
    assert_int_equal(r.status, 2);
    RUN(&r, "export", "-m", "onnx_src.aem", "-o", "onnx_src.aem");
    expect_fail(&r, "also an input");
    RUN(&r, "import", "onnx_src.aem", "-o", "never.aem");
    expect_fail(&r, "not an ONNX model");
    assert_false(exists("never.aem"));
    assert_false(exists("never.onnx"));
}

static void test_default_data_missing(void **state) {
    (void)state;
    result r;
    const char *args[] = {"train", "-o", "never.aem", NULL};
    run_env(&r, "AE_FASHION_MNIST_DIR=/nonexistent-libae-dir", args);
    expect_fail(&r, "apt-get install dataset-fashion-mnist");
    assert_false(exists("never.aem"));
}

/* ---- errors ---- */

static void test_errors(void **state) {
    (void)state;
    result r;
    RUN(&r, "frobnicate");
    expect_fail(&r, "unknown command 'frobnicate'");
    assert_int_equal(r.status, 2);
    RUN(&r, "--bogus");
    expect_fail(&r, "unknown option '--bogus'");
    RUN(&r, "train", "--bogus", "-o", "e.aem");
    expect_fail(&r, "unknown option '--bogus'");
    assert_int_equal(r.status, 2);
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--epochs");
    expect_fail(&r, "needs a value");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--tied=yes");
    expect_fail(&r, "takes no value");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--epochs", "x");
    expect_fail(&r, "--epochs: 'x' is not a whole number");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--epochs", "0");
    expect_fail(&r, "out of range");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--lr", "-1");
    expect_fail(&r, "--lr");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--act", "swish");
    expect_fail(&r, "unknown activation 'swish'");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--layers", "32,,4");
    expect_fail(&r, "--layers");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--shape", "3x3");
    expect_fail(&r, "does not fit");
    RUN(&r, "train", "-d", "x.npy");
    expect_fail(&r, "-o MODEL");
    RUN(&r, "train", "-d", "missing.npy", "-o", "e.aem");
    expect_fail(&r, "cannot open");
    RUN(&r, "train", "-d", "nan.csv", "-o", "e.aem");
    expect_fail(&r, "nan.csv");
    /* Options that do not go together. */
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--layers", "8", "--topk", "2", "--batch-topk",
        "2");
    expect_fail(&r, "do not go together");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--layers", "8", "--topk", "9");
    expect_fail(&r, "wider than the code");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--kl-weight", "0.1");
    expect_fail(&r, "--kl-weight needs --kl-sparsity");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--kl-sparsity", "0.05");
    expect_fail(&r, "--code-act sigmoid");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--beta", "2");
    expect_fail(&r, "--beta and --kl-warmup need --vae");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--vae", "--topk", "1");
    expect_fail(&r, "--vae does not go with the sparsity options");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--vae", "--code-act", "tanh");
    expect_fail(&r, "--vae does not go with --code-act");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--momentum", "0.9");
    expect_fail(&r, "--optimizer sgd");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--gamma", "0.5");
    expect_fail(&r, "--schedule step");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--noise", "mask");
    expect_fail(&r, "--noise-level");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--loss", "bce", "--output-act", "identity");
    expect_fail(&r, "--loss bce needs --output-act sigmoid");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--standardize", "feature", "--output-act",
        "sigmoid");
    expect_fail(&r, "--standardize");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--recon-png", "no.png");
    expect_fail(&r, "--shape");
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--csv-header");
    expect_fail(&r, "CSV");
    /* A noise level out of range: refused before the first step (ae_fit
       checks it); nothing is written. */
    RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--noise", "dropout", "--noise-level", "2",
        "--epochs", "1");
    expect_fail(&r, "must be in [0, 1)");
    assert_false(exists("e.aem"));

    /* Model files: missing, corrupt, truncated. */
    RUN(&r, "info", "nothing.aem");
    expect_fail(&r, "cannot open nothing.aem");
    RUN(&r, "info", "corrupt.aem");
    expect_fail(&r, "ae info:");
    RUN(&r, "encode", "-m", "corrupt.aem", "-d", "x.npy", "-o", "e.npy");
    expect_fail(&r, "ae encode:");
    char buf[4096];
    FILE *f = fopen(path("m.aem"), "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_true(n > 200);
    f = fopen(path("trunc.aem"), "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    RUN(&r, "eval", "-m", "trunc.aem", "-d", "x.npy");
    expect_fail(&r, "ae eval:");
    /* Data that do not fit the model. */
    RUN(&r, "encode", "-m", "m.aem", "-d", "y.npy", "-o", "e.npy");
    expect_fail(&r, "the model takes 144");
    RUN(&r, "decode", "-m", "m.aem", "-d", "x.npy", "-o", "e.npy");
    expect_fail(&r, "code has 4");
    RUN(&r, "encode", "-m", "m.aem", "-d", "x.npy");
    expect_fail(&r, "-o FILE");
    RUN(&r, "encode", "-m", "m.aem", "-o", "e.npy");
    expect_fail(&r, "-d FILE");
    RUN(&r, "encode", "-m", "m.aem", "-d", "x.npy", "-o", "e.npy", "--percentile", "5");
    expect_fail(&r, "option '--percentile' is not for this command");
    /* Outputs are checked before any work: never an input, never unwritable. */
    RUN(&r, "reconstruct", "-m", "m.aem", "-d", "x.npy", "-o", "x.npy");
    expect_fail(&r, "also an input");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--epochs", "1", "-o", "x.npy");
    expect_fail(&r, "also an input");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--epochs", "1", "-o", "/nonexistent-dir/m.aem");
    expect_fail(&r, "not writable");
    RUN(&r, "encode", "-m", "m.aem", "-d", "x.npy", "-o", ".");
    expect_fail(&r, "is a directory");
    RUN(&r, "eval", "-m", "m.aem", "-d", "x.npy", "--knn", "3");
    expect_fail(&r, "need labels");
    RUN(&r, "eval", "-m", "m.aem", "-d", "x.npy", "--percentile", "101");
    expect_fail(&r, "out of range");
    RUN(&r, "eval", "-m", "m.aem", "-d", "x.npy", "--labels", "x.npy");
    expect_fail(&r, "labels");
    RUN(&r, "reconstruct", "-m", "m.aem", "-d", "x.npy", "-o", "/nonexistent-dir/e.npy");
    expect_fail(&r, "/nonexistent-dir/e.npy");
    assert_false(exists("e.npy"));
}

/* Unsigned options take digits only (strtoull alone would read " -1" as
 * 2^64 - 1), and --seed uses all 64 bits. */
static void test_unsigned_options(void **state) {
    (void)state;
    result r;
    static const char *const bad[] = {" -1", "-1", "+1", " 1", "\t1", "1 ", "", "0x10",
                                      "18446744073709551616"};
    static const char *const opts[] = {"--seed", "--warmup-steps", "--limit", "--epochs"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        for (size_t j = 0; j < sizeof opts / sizeof *opts; j++) {
            RUN(&r, "train", "-d", "x.npy", "-o", "e.aem", "--layers", "8", "--epochs", "1", "-q",
                opts[j], bad[i]);
            expect_fail(&r, "is not a whole number");
            assert_int_equal(r.status, 2);
            assert_non_null(strstr(r.err, opts[j]));
        }
    RUN(&r, "sample", "-m", "vae.aem", "-o", "e.npy", "--seed", " -1");
    expect_fail(&r, "--seed: ' -1' is not a whole number");
    RUN(&r, "sample", "-m", "vae.aem", "-o", "e.npy", "-n", " 4");
    expect_fail(&r, "--count");
    assert_false(exists("e.aem") || exists("e.npy"));
    /* 2^63 and 2^64 - 1 are seeds of their own, not 0 and 2^63 - 1. */
    static const char *const seeds[] = {"9223372036854775808", "18446744073709551615"};
    for (size_t i = 0; i < 2; i++) {
        RUN(&r, "train", "-d", "x.npy", "-o", "seed.aem", "--layers", "8", "--epochs", "1", "-q",
            "--seed", seeds[i]);
        expect_ok(&r);
        RUN(&r, "info", "seed.aem");
        expect_ok(&r);
        char want[64];
        snprintf(want, sizeof want, " seed %s;", seeds[i]);
        if (!strstr(r.out, want)) fprintf(stderr, "no '%s' in:\n%s", want, r.out);
        assert_non_null(strstr(r.out, want));
    }
}

/* Options that do not fit the data are usage errors (exit 2) even when
 * found only while loading it; one line each. */
static void test_data_usage_errors(void **state) {
    (void)state;
    result r;
    char text[64 * 4 + 1] = "";
    for (int i = 0; i < N; i++) strcat(text, i == 5 ? "0.5\n" : "1\n");
    write_text("nonint.csv", text);
    write_text("three.csv", "0\n1\n0\n");
    struct {
        const char *args[12];
        const char *needle;
    } cases[] = {
        {{"train", "-d", "x.npy", "--shape", "3x3", "-o", "e.aem"}, "does not fit"},
        {{"train", "-d", "x.npy", "--csv-header", "-o", "e.aem"}, "are for CSV files"},
        {{"train", "-d", "img.idx", "--csv-label-first", "-o", "e.aem"}, "are for CSV files"},
        {{"train", "-d", "x.npy", "--labels", "x.npy", "-o", "e.aem"}, "labels are one integer per sample"},
        {{"train", "-d", "x.npy", "--labels", "nonint.csv", "-o", "e.aem"}, "label 5 (0.5) is not a whole number"},
        {{"train", "-d", "x.npy", "--labels", "three.csv", "-o", "e.aem"}, "but the dataset has 64 samples"},
        {{"train", "-d", "x.npy", "--test", "x.npy", "--test-labels", "three.csv", "-o", "e.aem"},
         "but the dataset has 64 samples"},
        {{"eval", "-m", "m.aem", "-d", "x.npy", "--labels", "nonint.csv"}, "not a whole number"},
        {{"eval", "-m", "m.aem", "-d", "x.npy", "--shape", "2x2"}, "does not fit"},
        {{"encode", "-m", "m.aem", "-d", "x.npy", "--csv-header", "-o", "e.npy"}, "are for CSV files"},
        {{"reconstruct", "-m", "m.aem", "-d", "img.npy", "--shape", "5x5", "-o", "e.npy"}, "does not fit"},
        {{"eval", "-m", "d1.aem", "-d", "x.npy", "--recon-png", "e.png"}, "not images"},
        {{"eval", "-m", "d1.aem", "-d", "x.npy", "--features-png", "e.png"}, "not images"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_env(&r, NULL, cases[i].args);
        expect_fail(&r, cases[i].needle);
        if (r.status != 2) fprintf(stderr, "case %zu: status %d\n", i, r.status);
        assert_int_equal(r.status, 2);
    }
    assert_false(exists("e.aem") || exists("e.npy") || exists("e.png"));
    /* IDX labels go with data of any format (ae_dataset_load_labels). */
    RUN(&r, "train", "-d", "x.npy", "--labels", "lab.idx", "--layers", "8", "--epochs", "1", "-q",
        "-o", "idxlab.aem");
    expect_ok(&r);
}

/* A usage error (exit 2) naming both options, and no file written. */
static void expect_same_file(const result *r, const char *opt1, const char *opt2) {
    expect_fail(r, "are the same file");
    assert_int_equal(r->status, 2);
    assert_non_null(strstr(r->err, opt1));
    assert_non_null(strstr(r->err, opt2));
}

/* Two outputs of one command never name the same file, whether it exists
 * yet or not, however it is spelled. */
static void test_distinct_outputs(void **state) {
    (void)state;
    result r;
#define TRAIN_FAST "train", "-d", "img.npy", "--layers", "8", "--epochs", "1", "-q"
    RUN(&r, TRAIN_FAST, "-o", "same1.aem", "--recon-png", "same1.aem");
    expect_same_file(&r, "-o", "--recon-png");
    assert_false(exists("same1.aem"));
    RUN(&r, TRAIN_FAST, "-o", "same2.aem", "--features-png", "same2.aem");
    expect_same_file(&r, "-o", "--features-png");
    assert_false(exists("same2.aem"));
    /* An existing file is left as it was. */
    write_text("same3.aem", "keep\n");
    RUN(&r, TRAIN_FAST, "-o", "same3.aem", "--scatter-png", "same3.aem");
    expect_same_file(&r, "-o", "--scatter-png");
    char buf[16];
    slurp(path("same3.aem"), buf, sizeof buf);
    assert_string_equal(buf, "keep\n");
    /* Other spellings of one name: ./X, dir/../X, dir//X, and a directory
     * reached through a symbolic link. */
    RUN(&r, TRAIN_FAST, "-o", "./same4.aem", "--recon-png", "same4.aem");
    expect_same_file(&r, "-o", "--recon-png");
    assert_int_equal(mkdir(path("sub"), 0755), 0);
    RUN(&r, TRAIN_FAST, "-o", "sub/../same5.aem", "--recon-png", "same5.aem");
    expect_same_file(&r, "-o", "--recon-png");
    RUN(&r, TRAIN_FAST, "-o", "sub//same6.aem", "--features-png", "sub/./same6.aem");
    expect_same_file(&r, "-o", "--features-png");
    assert_int_equal(symlink("sub", path("sublink")), 0);
    RUN(&r, TRAIN_FAST, "-o", "sublink/same7.aem", "--recon-png", path("sub/same7.aem"));
    expect_same_file(&r, "-o", "--recon-png");
    /* A dangling symbolic link names the file it would create. */
    assert_int_equal(symlink("sub/same8.png", path("dangling")), 0);
    RUN(&r, TRAIN_FAST, "-o", "sub/same8.png", "--recon-png", "dangling");
    expect_same_file(&r, "-o", "--recon-png");
    for (int i = 4; i <= 8; i++) {
        char name[32];
        snprintf(name, sizeof name, i < 8 ? "same%d.aem" : "sub/same%d.png", i);
        assert_false(exists(name));
    }
    /* The model commands too. */
    RUN(&r, "reconstruct", "-m", "m.aem", "-d", "x.npy", "-o", "same9.npy", "--png", "./same9.npy");
    expect_same_file(&r, "-o", "--png");
    RUN(&r, "sample", "-m", "vae.aem", "-o", "same10.npy", "--codes", "same10.npy");
    expect_same_file(&r, "-o", "--codes");
    RUN(&r, "eval", "-m", "m.aem", "-d", "x.npy", "--recon-png", "same11.png", "--features-png",
        "sub/../same11.png");
    expect_same_file(&r, "--recon-png", "--features-png");
    RUN(&r, "eval", "-m", "m.aem", "-d", "x.npy", "--scores", "same12.npy", "--scatter-png",
        "same12.npy");
    expect_same_file(&r, "--scores", "--scatter-png");
    assert_false(exists("same9.npy") || exists("same10.npy") || exists("same11.png") ||
                 exists("same12.npy"));
    /* Distinct names are fine. */
    RUN(&r, "sample", "-m", "vae.aem", "-n", "4", "-o", "sub/s.npy", "--codes", "s.npy");
    expect_ok(&r);
#undef TRAIN_FAST
}

/* Image folders (-d DIR) and rows read from disk (--mmap). */
static void test_images_and_mmap(void **state) {
    (void)state;
#ifndef AE_HAVE_PNG
    skip();
#else
    /* A 4 x 4 RGB PNG (pixel bytes (k * 37 + 11) % 256), written by PIL. */
    static const unsigned char png[] = {
        0x89,0x50,0x4e,0x47,0x0d,0x0a,0x1a,0x0a,0x00,0x00,0x00,0x0d,0x49,0x48,0x44,0x52,0x00,0x00,
        0x00,0x04,0x00,0x00,0x00,0x04,0x08,0x02,0x00,0x00,0x00,0x26,0x93,0x09,0x29,0x00,0x00,0x00,
        0x34,0x49,0x44,0x41,0x54,0x78,0x9c,0x63,0xe0,0x36,0x08,0xad,0x9a,0x7f,0xe4,0x25,0x9f,0x71,
        0x44,0xed,0x22,0x86,0xe3,0x6f,0x04,0xcd,0xa2,0x1b,0x96,0x9e,0x7a,0x2f,0x62,0x19,0xc7,0xd0,
        0xbc,0xe2,0xec,0x27,0x71,0x9b,0xc4,0xb6,0xd5,0x17,0xbe,0x4a,0x31,0xed,0x41,0x02,0x00,0x61,
        0x20,0x1a,0x6d,0x59,0xf3,0x72,0x7a,0x00,0x00,0x00,0x00,0x49,0x45,0x4e,0x44,0xae,0x42,0x60,
        0x82};
    assert_int_equal(mkdir(path("pics"), 0755), 0);
    assert_int_equal(mkdir(path("pics/a"), 0755), 0);
    assert_int_equal(mkdir(path("pics/b"), 0755), 0);
    const char *names[] = {"pics/a/1.png", "pics/a/2.png", "pics/b/1.png", "pics/b/2.png"};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(path(names[i]), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(png, 1, sizeof png, f), sizeof png);
        fclose(f);
    }
    result r;
    RUN(&r, "train", "-d", "pics", "--image-size", "4x4", "--layers", "8,2", "--epochs", "1", "-b",
        "2", "-o", "pics.aem", "--recon-png", "pics.png", "--scatter-png", "pics_sc.png");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "4 samples of 3x4x4"));
    assert_png("pics.png");
    write_text("pics/b/3.png", "not a PNG");
    RUN(&r, "train", "-d", "pics", "--image-size", "4x4", "--epochs", "1", "-o", "e.aem");
    expect_fail(&r, "pics/b/3.png");
    RUN(&r, "train", "-d", "pics", "--image-size", "1x8x8", "--crop", "--skip-bad", "--epochs",
        "1", "--image-cache", "pics.npy", "-o", "pics.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.err, "skipped 1"));
    assert_npy_shape("pics.npy", "(4, 1, 8, 8)");
    RUN(&r, "train", "-d", "x.npy", "--image-size", "4x4", "-o", "e.aem");
    expect_fail(&r, "image folders");
    RUN(&r, "train", "-d", "pics", "--mmap", "-o", "e.aem");
    expect_fail(&r, "image folder");
    /* Rows from disk train exactly as rows in memory. */
    char mem[16384];
    RUN(&r, "train", "-d", "img.npy", "--layers", "8,2", "--epochs", "2", "-b", "16",
        "--val-split", "0.25", "-o", "m1.aem");
    expect_ok(&r);
    memcpy(mem, r.out, sizeof mem);
    RUN(&r, "train", "-d", "img.npy", "--mmap", "--layers", "8,2", "--epochs", "2", "-b", "16",
        "--val-split", "0.25", "-o", "m2.aem", "--recon-png", "m2.png");
    expect_ok(&r);
    assert_png("m2.png");
    const char *a = strstr(mem, "final train loss"), *b = strstr(r.out, "final train loss");
    assert_non_null(a);
    assert_non_null(b);
    assert_memory_equal(a, b, 24);
    RUN(&r, "train", "-d", "x.csv", "--mmap", "--csv-header", "-o", "e.aem");
    expect_fail(&r, "--mmap is for .npy");
    assert_false(exists("e.aem"));
#endif
}

/* ---- value conventions (the cases) ---- */

/* The number after `label` at the start of a line of `out`, or NAN. */
static double number_after(const char *out, const char *label) {
    for (const char *p = out; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, label, strlen(label)) == 0) return strtod(p + strlen(label), NULL);
    return NAN;
}

static double eval_mse(const char *model, const char *data, const char *extra) {
    result r;
    if (extra)
        RUN(&r, "eval", "-m", model, "-d", data, "--scale", extra);
    else
        RUN(&r, "eval", "-m", model, "-d", data);
    expect_ok(&r);
    return number_after(r.out, "MSE ");
}

/* The same images as IDX bytes, a [0, 1] float .npy (bytes / 255), a .npy
 * of 0..255 floats and a CSV of 0..255 pixels with a header and labels
 * first. */
static void write_convention_files(void) {
    static float unit[N * D], raw[N * D];
    for (int i = 0; i < N * D; i++) {
        raw[i] = (float)lrintf(g_x[i] * 255.0f);
        unit[i] = raw[i] / 255.0f;
    }
    write_npy_file("unit.npy", unit, N, 1, H, W);
    write_npy_file("raw.npy", raw, N, 1, H, W);
    FILE *f = fopen(path("pix.csv"), "wb");
    assert_non_null(f);
    fprintf(f, "label");
    for (int j = 0; j < D; j++) fprintf(f, ",pixel%d", j);
    fprintf(f, "\n");
    for (int i = 0; i < N; i++) {
        fprintf(f, "%d", g_y[i]);
        for (int j = 0; j < D; j++) fprintf(f, ",%d", (int)raw[i * D + j]);
        fprintf(f, "\n");
    }
    fclose(f);
}

/* Data in another form than the training data mean the same: before, an
 * IDX-trained model (scale 1/255 in its metadata) applied that scale to a
 * [0, 1] .npy (black pictures, a plausible MSE of 0.0096), a .npy-trained
 * model read IDX as 0..255 (MSE 15195), --test x.npy during IDX training
 * was scaled by 1/255, a model saved from C (scale 1) read IDX as 0..255
 * (MSE 13283) and the man page's CSV example on 0..255 data trained with a
 * stuck loss of 13243. */
static void test_value_conventions(void **state) {
    (void)state;
    write_convention_files();
    result r;
    /* An IDX-trained model on the [0, 1] .npy of the same images. */
    RUN(&r, "train", "-d", "img.idx", "--layers", "16,4", "--epochs", "3", "-b", "16", "-q", "-o",
        "c_idx.aem");
    expect_ok(&r);
    double on_idx = eval_mse("c_idx.aem", "img.idx", NULL);
    double on_npy = eval_mse("c_idx.aem", "unit.npy", NULL);
    if (!(fabs(on_idx - on_npy) < 1e-6 && on_idx < 0.2))
        fprintf(stderr, "IDX-trained: MSE %g on IDX, %g on the .npy\n", on_idx, on_npy);
    assert_true(on_idx < 0.2);
    assert_true(fabs(on_idx - on_npy) < 1e-6);
    RUN(&r, "info", "c_idx.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "data: uint8 values x 1/255"));
    /* Reconstructions come back in the units of each file. */
    RUN(&r, "reconstruct", "-m", "c_idx.aem", "-d", "unit.npy", "-o", "c_rec_unit.npy");
    expect_ok(&r);
    RUN(&r, "reconstruct", "-m", "c_idx.aem", "-d", "img.idx", "-o", "c_rec_idx.npy");
    expect_ok(&r);
    ae_dataset *a = NULL, *b = NULL;
    assert_int_equal(ae_dataset_create(&a, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&b, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_npy(a, path("c_rec_unit.npy")), AE_OK);
    assert_int_equal(ae_dataset_load_npy(b, path("c_rec_idx.npy")), AE_OK);
    for (size_t i = 0; i < N * D; i++) {
        assert_true(ae_dataset_data(a)[i] >= 0.0f && ae_dataset_data(a)[i] <= 1.0f);
        assert_true(fabsf(ae_dataset_data(a)[i] * 255.0f - ae_dataset_data(b)[i]) < 1e-3f);
    }
    ae_dataset_destroy(a);
    ae_dataset_destroy(b);
    /* A .npy of 0..255 floats cannot mean what the model's bytes mean:
     * refused, naming both conventions; --scale says what it means. */
    RUN(&r, "eval", "-m", "c_idx.aem", "-d", "raw.npy");
    expect_fail(&r, "uint8 data x 1/255");
    assert_int_equal(r.status, 1);
    assert_non_null(strstr(r.err, "float data x 1"));
    assert_non_null(strstr(r.err, "raw.npy"));
    assert_true(fabs(eval_mse("c_idx.aem", "raw.npy", "0.00392156862745098") - on_idx) < 1e-6);

    /* A .npy-trained model on the IDX file of the same images. */
    RUN(&r, "train", "-d", "unit.npy", "--layers", "16,4", "--epochs", "3", "-b", "16", "-q", "-o",
        "c_npy.aem");
    expect_ok(&r);
    on_npy = eval_mse("c_npy.aem", "unit.npy", NULL);
    on_idx = eval_mse("c_npy.aem", "img.idx", NULL);
    if (!(fabs(on_idx - on_npy) < 1e-6)) fprintf(stderr, "npy-trained: %g vs %g\n", on_npy, on_idx);
    assert_true(fabs(on_idx - on_npy) < 1e-6);

    /* --test x.npy during IDX training: the test MSE is the model's MSE on
     * the same images as IDX. */
    RUN(&r, "train", "-d", "img.idx", "--test", "unit.npy", "--layers", "16,4", "--epochs", "2",
        "-b", "16", "-o", "c_test.aem");
    expect_ok(&r);
    double reported = number_after(strstr(r.out, "final test MSE"), "final test MSE ");
    on_idx = eval_mse("c_test.aem", "img.idx", NULL);
    if (!(fabs(reported - on_idx) < 1e-5)) fprintf(stderr, "--test: %g vs %g\n", reported, on_idx);
    assert_true(fabs(reported - on_idx) < 1e-5);

    /* A model trained from C with ae_fit on IDX scaled to [0, 1]. */
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_idx(ds, path("img.idx"), NULL), AE_OK);
    assert_int_equal(ae_dataset_scale(ds, 1.0f / 255.0f, 0.0f), AE_OK);
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&cfg, NULL), AE_OK);
    assert_int_equal(ae_config_set_input_shape(cfg, 1, H, W), AE_OK);
    assert_int_equal(ae_config_add_dense(cfg, 16, AE_ACT_RELU), AE_OK);
    assert_int_equal(ae_config_add_dense(cfg, 4, AE_ACT_IDENTITY), AE_OK);
    assert_int_equal(ae_config_mark_code(cfg), AE_OK);
    assert_int_equal(ae_config_add_dense(cfg, 16, AE_ACT_RELU), AE_OK);
    assert_int_equal(ae_config_add_dense(cfg, D, AE_ACT_SIGMOID), AE_OK);
    assert_int_equal(ae_model_create(&m, cfg), AE_OK);
    ae_fit_options fo;
    ae_fit_options_init(&fo);
    fo.epochs = 5;
    fo.batch_size = 16;
    assert_int_equal(ae_fit(m, ds, &fo), AE_OK);
    assert_int_equal(ae_model_save(m, path("c_from_c.aem"), AE_SAVE_MODEL), AE_OK);
    ae_model_destroy(m);
    ae_config_destroy(cfg);
    ae_dataset_destroy(ds);
    on_idx = eval_mse("c_from_c.aem", "img.idx", NULL);
    on_npy = eval_mse("c_from_c.aem", "unit.npy", NULL);
    if (!(on_idx < 0.2 && fabs(on_idx - on_npy) < 1e-6))
        fprintf(stderr, "C-saved: %g on IDX, %g on the .npy\n", on_idx, on_npy);
    assert_true(on_idx < 0.2);
    assert_true(fabs(on_idx - on_npy) < 1e-6);

    /* The man page's CSV example on 0..255 pixels: the values are 8-bit
     * data, x 1/255 as IDX, so the sigmoid output can fit them. */
    RUN(&r, "train", "-d", "pix.csv", "--csv-header", "--csv-label-first", "--shape", "12x12",
        "--layers", "32,8", "--topk", "4", "--noise", "mask", "--noise-level", "0.2", "-o",
        "sparse.aem", "--features-png", "features.png", "--scatter-png", "codes.png", "--epochs",
        "3", "-b", "16");
    expect_ok(&r);
    double loss = number_after(strstr(r.out, "final train loss"), "final train loss ");
    if (!(loss < 0.5)) fprintf(stderr, "CSV example: %s", r.out);
    assert_true(loss < 0.5);
    assert_true(fabs(eval_mse("sparse.aem", "img.idx", NULL) - eval_mse("sparse.aem", "unit.npy", NULL)) <
                1e-6);
}

/* --standardize MEAN/STD: torchvision's Normalize values given on the
 * command line (before, only statistics computed from the data: the flag
 * was refused). The model records them; encode, reconstruct and eval on the
 * folder apply them as ae_dataset_load_images' mean/std do, reconstructions
 * and pictures come back in [0, 1] units; bad values are usage errors. */
static void test_images_normalized(void **state) {
    (void)state;
#ifndef AE_HAVE_PNG
    skip();
#else
    static const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    enum { NI = 6, S = 8, DI = 3 * S * S };
    assert_int_equal(mkdir(path("npics"), 0755), 0);
    assert_int_equal(mkdir(path("npics/a"), 0755), 0);
    assert_int_equal(mkdir(path("npics/b"), 0755), 0);
    for (int i = 0; i < NI; i++) {
        uint8_t px[S * S * 3];
        for (int k = 0; k < S * S * 3; k++) px[k] = (uint8_t)((k * 29 + i * 71 + (k % 3) * 50) % 256);
        char name[32];
        snprintf(name, sizeof name, "npics/%c/%d.png", i % 2 ? 'b' : 'a', i);
        char err[128];
        assert_int_equal(ae_image_save_png(path(name), px, S, S, 3, NULL, err, sizeof err), AE_OK);
    }
    const char *norm = "0.485,0.456,0.406/0.229,0.224,0.225";
    result r;
    RUN(&r, "train", "-d", "npics", "--image-size", "8x8", "--standardize", norm, "--layers",
        "16,4", "--epochs", "3", "-b", "2", "-o", "n.aem", "--recon-png", "n_train.png");
    expect_ok(&r);
    assert_png("n_train.png");
    RUN(&r, "info", "n.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "standardised with 3 mean/std values 0.485,0.456,0.406/0.229,0.224,0.225"));

    /* The model holds the given values. */
    ae_config *cfg = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&cfg, NULL), AE_OK);
    assert_int_equal(ae_model_load(&m, path("n.aem"), cfg), AE_OK);
    ae_data_convention c;
    c.struct_size = sizeof c;
    float mu[3], s[3];
    assert_int_equal(ae_model_data_convention(m, &c, mu, s, 3), AE_OK);
    assert_int_equal(c.elem, AE_ELEM_UINT8);
    assert_int_equal(c.std_count, 3);
    assert_memory_equal(mu, mean, sizeof mu);
    assert_memory_equal(s, sd, sizeof s);

    /* The folder as the library normalises it, through the model. */
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    ae_image_options io;
    ae_image_options_init(&io);
    io.height = io.width = S;
    io.mean = mean;
    io.std = sd;
    assert_int_equal(ae_dataset_load_images(ds, path("npics"), &io), AE_OK);
    assert_int_equal(ae_dataset_count(ds), NI);
    size_t code = ae_model_code_size(m);
    static float codes[NI * 16], recon[NI * DI];
    assert_int_equal(ae_encode(m, ae_dataset_data(ds), NI, codes), AE_OK);
    assert_int_equal(ae_reconstruct(m, ae_dataset_data(ds), NI, recon), AE_OK);
    RUN(&r, "encode", "-m", "n.aem", "-d", "npics", "-o", "n_codes.npy");
    expect_ok(&r);
    RUN(&r, "reconstruct", "-m", "n.aem", "-d", "npics", "-o", "n_rec.npy");
    expect_ok(&r);
    ae_dataset *tc = NULL, *tr = NULL;
    assert_int_equal(ae_dataset_create(&tc, NULL), AE_OK);
    assert_int_equal(ae_dataset_create(&tr, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_npy(tc, path("n_codes.npy")), AE_OK);
    assert_int_equal(ae_dataset_load_npy(tr, path("n_rec.npy")), AE_OK);
    assert_int_equal(ae_dataset_count(tc) * ae_dataset_dim(tc), NI * code);
    assert_int_equal(ae_dataset_count(tr) * ae_dataset_dim(tr), NI * DI);
    for (size_t i = 0; i < NI * code; i++)
        assert_true(fabsf(ae_dataset_data(tc)[i] - codes[i]) <= 1e-5f * (1.0f + fabsf(codes[i])));
    /* Reconstructions un-normalised, in the files' units (bytes, as for
       IDX): (x * std + mean) * 255, per channel. */
    for (size_t i = 0; i < NI * DI; i++) {
        size_t ch = i % DI / (S * S);
        float want = (recon[i] * sd[ch] + mean[ch]) * 255.0f;
        if (!(fabsf(ae_dataset_data(tr)[i] - want) <= 1e-3f))
            fprintf(stderr, "reconstruction %zu: %g, expected %g\n", i, (double)ae_dataset_data(tr)[i],
                    (double)want);
        assert_true(fabsf(ae_dataset_data(tr)[i] - want) <= 1e-3f);
    }
    ae_dataset_destroy(tc);
    ae_dataset_destroy(tr);
    ae_dataset_destroy(ds);
    ae_model_destroy(m);
    ae_config_destroy(cfg);
    RUN(&r, "eval", "-m", "n.aem", "-d", "npics", "--recon-png", "n_eval.png");
    expect_ok(&r);
    assert_png("n_eval.png");
    assert_true(number_after(r.out, "MSE ") >= 0.0);

    /* A folder read for a model takes the model's shape and resize (before:
     * 64x64 stretched whatever the model, "npics has 12288 values per
     * sample; the model takes 192"). Images of 8 x 12, cropped to 1x6x6. */
    assert_int_equal(mkdir(path("cpics"), 0755), 0);
    for (int i = 0; i < 3; i++) {
        uint8_t px[8 * 12];
        for (int k = 0; k < 8 * 12; k++) px[k] = (uint8_t)((k * 53 + i * 31) % 256);
        char name[32], err[128];
        snprintf(name, sizeof name, "cpics/%d.png", i);
        assert_int_equal(ae_image_save_png(path(name), px, 8, 12, 1, NULL, err, sizeof err), AE_OK);
    }
    RUN(&r, "train", "-d", "cpics", "--image-size", "1x6x6", "--crop", "--layers", "8,2", "--epochs",
        "1", "-b", "3", "-q", "-o", "c.aem");
    expect_ok(&r);
    RUN(&r, "encode", "-m", "c.aem", "-d", "cpics", "-o", "c_model.npy");
    expect_ok(&r);
    assert_int_equal(ae_config_create(&cfg, NULL), AE_OK);
    assert_int_equal(ae_model_load(&m, path("c.aem"), cfg), AE_OK);
    assert_int_equal(ae_dataset_create(&tc, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_npy(tc, path("c_model.npy")), AE_OK);
    assert_int_equal(ae_dataset_count(tc) * ae_dataset_dim(tc), 3 * 2);
    for (int crop = 1; crop >= 0; crop--) {
        ae_image_options_init(&io);
        io.channels = 1;
        io.height = io.width = 6;
        io.resize = crop ? AE_RESIZE_SHORTER_CROP : AE_RESIZE_STRETCH;
        assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
        assert_int_equal(ae_dataset_load_images(ds, path("cpics"), &io), AE_OK);
        assert_int_equal(ae_model_prepare_data(m, ds), AE_OK);
        assert_int_equal(ae_encode(m, ae_dataset_data(ds), 3, codes), AE_OK);
        float diff = 0.0f;
        for (size_t i = 0; i < 6; i++) diff = fmaxf(diff, fabsf(ae_dataset_data(tc)[i] - codes[i]));
        if (crop)
            assert_true(diff <= 1e-5f);
        else
            assert_true(diff > 1e-4f); /* stretched, the codes differ */
        ae_dataset_destroy(ds);
    }
    ae_dataset_destroy(tc);
    ae_model_destroy(m);
    ae_config_destroy(cfg);

    /* One value for every channel, and other data: the [0, 1] .npy of the
     * IDX file's images evaluates as the IDX file. */
    RUN(&r, "train", "-d", "img.idx", "--standardize", "0.5/0.25", "--layers", "16,4", "--epochs",
        "2", "-b", "16", "-q", "-o", "n1.aem");
    expect_ok(&r);
    RUN(&r, "info", "n1.aem");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "standardised with 1 mean/std value 0.5/0.25"));
    write_convention_files();
    double on_idx = eval_mse("n1.aem", "img.idx", NULL), on_npy = eval_mse("n1.aem", "unit.npy", NULL);
    if (!(fabs(on_idx - on_npy) < 1e-6)) fprintf(stderr, "0.5/0.25: %g vs %g\n", on_idx, on_npy);
    assert_true(fabs(on_idx - on_npy) < 1e-6);

    /* Bad values: usage errors, nothing written. */
    static const struct {
        const char *arg, *needle;
    } bad[] = {{"0.5,0.5/0.2", "2 mean values but 1 std value"},
               {"0.5/0", "not > 0"},
               {"0.5/-1", "not > 0"},
               {"0.1,0.2/0.3,0.4", "2 mean/std values for 3 channels"},
               {"abc/1", "is none of"},
               {"0.5/0.2/0.1", "is none of"},
               {"0.5/", "is none of"},
               {"1,2,3,4,5/1,1,1,1,1", "is none of"},
               {"nan/1", "is none of"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        RUN(&r, "train", "-d", "npics", "--image-size", "8x8", "--standardize", bad[i].arg,
            "--epochs", "1", "-o", "n_bad.aem");
        expect_fail(&r, bad[i].needle);
        assert_int_equal(r.status, 2);
        assert_false(exists("n_bad.aem"));
    }
    RUN(&r, "train", "-d", "npics", "--image-size", "8x8", "--standardize", norm, "--output-act",
        "sigmoid", "-o", "n_bad.aem");
    expect_fail(&r, "sigmoid");
#endif
}

/* The KL sparsity penalty is a mean over the code units by default (the
 * seeds' form; before, the tool summed: the same weight was 8 times
 * stronger on an 8-unit code), a sum with --kl-reduction sum. With a
 * learning rate of 0 both models keep the same initial weights, so their
 * penalties on the same batch differ by the code width. */
static void test_kl_reduction(void **state) {
    (void)state;
    result r;
    const char *names[3] = {"kl_default.aem", "kl_mean.aem", "kl_sum.aem"};
    RUN(&r, "train", "-d", "x.npy", "--layers", "16,8", "--code-act", "sigmoid", "--kl-sparsity",
        "0.05", "--lr", "0", "--epochs", "1", "-b", "64", "-q", "-o", names[0]);
    expect_ok(&r);
    RUN(&r, "train", "-d", "x.npy", "--layers", "16,8", "--code-act", "sigmoid", "--kl-sparsity",
        "0.05", "--kl-reduction", "mean", "--lr", "0", "--epochs", "1", "-b", "64", "-q", "-o",
        names[1]);
    expect_ok(&r);
    RUN(&r, "train", "-d", "x.npy", "--layers", "16,8", "--code-act", "sigmoid", "--kl-sparsity",
        "0.05", "--kl-reduction", "sum", "--lr", "0", "--epochs", "1", "-b", "64", "-q", "-o",
        names[2]);
    expect_ok(&r);
    double kl[3];
    for (int i = 0; i < 3; i++) {
        ae_model *m = NULL;
        assert_int_equal(ae_model_load(&m, path(names[i]), NULL), AE_OK);
        float loss;
        assert_int_equal(ae_evaluate(m, g_x, NULL, N, &loss), AE_OK);
        assert_int_equal(ae_model_get_stat(m, AE_STAT_LOSS_KL, &kl[i]), AE_OK);
        ae_model_destroy(m);
    }
    assert_true(kl[0] > 0.0);
    assert_true(kl[0] == kl[1]);
    assert_true(fabs(kl[2] / kl[1] - 8.0) < 1e-6);
    RUN(&r, "train", "-d", "x.npy", "--kl-reduction", "sum", "-o", "e.aem");
    expect_fail(&r, "--kl-reduction needs --kl-sparsity");
    RUN(&r, "train", "-d", "x.npy", "--code-act", "sigmoid", "--kl-sparsity", "0.1",
        "--kl-reduction", "max", "-o", "e.aem");
    expect_fail(&r, "--kl-reduction");
    assert_false(exists("e.aem"));
}

/* ---- evaluation protocols ---- */

static unsigned png_height(const char *name) {
    unsigned char b[24] = {0};
    FILE *f = fopen(path(name), "rb");
    assert_non_null(f);
    assert_int_equal(fread(b, 1, 24, f), 24);
    fclose(f);
    return (unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23];
}

/* The codes of g_x under a model file, through the library. */
static float *codes_of(const char *model, ae_model **out) {
    ae_model *m = NULL;
    assert_int_equal(ae_model_load(&m, path(model), NULL), AE_OK);
    float *codes = malloc(N * ae_model_code_size(m) * sizeof *codes);
    assert_int_equal(ae_encode(m, g_x, N, codes), AE_OK);
    *out = m;
    return codes;
}

/* kNN against a reference set, --knn 0 without labels, int64 labels, the
 * linear probe, train-mode selection, denoising evaluation, --batch. */
static void test_eval_protocols(void **state) {
    (void)state;
    result r;
    /* Labels as numpy writes them by default: int64 (refused before). */
    unsigned char lab64[128 + N * 8];
    memset(lab64, 0, sizeof lab64);
    {
        const char *dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (64,), }";
        size_t dl = strlen(dict), hlen = 128 - 10;
        memcpy(lab64, "\x93NUMPY\x01\x00", 8);
        lab64[8] = (unsigned char)hlen;
        memcpy(lab64 + 10, dict, dl);
        memset(lab64 + 10 + dl, ' ', hlen - dl - 1);
        lab64[127] = '\n';
        for (int i = 0; i < N; i++) lab64[128 + 8 * i] = (unsigned char)g_y[i];
        FILE *f = fopen(path("y64.npy"), "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(lab64, 1, sizeof lab64, f), sizeof lab64);
        fclose(f);
    }
    RUN(&r, "train", "-d", "x.npy", "--labels", "y64.npy", "--shape", "1x12x12", "--layers",
        "32,4", "--epochs", "3", "-b", "16", "--seed", "7", "-q", "-o", "ev.aem");
    expect_ok(&r);
    /* Labels go with rows read from disk too (refused before). */
    RUN(&r, "train", "-d", "img.npy", "--mmap", "--labels", "y64.npy", "--layers", "8,2", "--epochs",
        "1", "-b", "16", "-q", "-o", "ev_mmap.aem", "--scatter-png", "ev_mmap.png");
    expect_ok(&r);
    assert_png("ev_mmap.png");
    /* kNN with the training set as reference: the library's number. */
    RUN(&r, "eval", "-m", "ev.aem", "-d", "img.npy", "--labels", "y64.npy", "--knn", "3", "--ref",
        "x.npy", "--ref-labels", "y.npy");
    expect_ok(&r);
    ae_model *m = NULL;
    float *codes = codes_of("ev.aem", &m);
    double want;
    assert_int_equal(ae_metric_knn_accuracy(codes, g_y, N, codes, g_y, N, 4, 3, &want), AE_OK);
    char line[128];
    snprintf(line, sizeof line, "kNN accuracy   %.4f (k = 3, 64 queries against the codes of the 64 "
                                "reference samples)", want);
    if (!strstr(r.out, line)) fprintf(stderr, "want '%s' in:\n%s", line, r.out);
    assert_non_null(strstr(r.out, line));
    /* The linear probe trained on the reference codes (C = 1). */
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--labels", "y.npy", "--ref", "x.npy",
        "--ref-labels", "y64.npy", "--probe", "--knn", "0");
    expect_ok(&r);
    ae_probe_options po;
    ae_probe_options_init(&po);
    po.l2 = 1.0 / N;
    assert_int_equal(ae_metric_linear_probe(codes, g_y, N, codes, g_y, N, 4, &po, &want), AE_OK);
    snprintf(line, sizeof line, "linear probe   %.4f accuracy", want);
    if (!strstr(r.out, line)) fprintf(stderr, "want '%s' in:\n%s", line, r.out);
    assert_non_null(strstr(r.out, line));
    assert_null(strstr(r.out, "kNN accuracy"));
    free(codes);
    ae_model_destroy(m);
    /* Leave-one-out stays the default; --knn 0 needs no labels. */
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--labels", "y64.npy", "--knn", "3");
    expect_ok(&r);
    assert_non_null(strstr(r.out, "leave-one-out"));
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--knn", "0");
    expect_ok(&r);
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--knn", "3");
    expect_fail(&r, "need labels");
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--labels", "y.npy", "--probe");
    expect_fail(&r, "--probe needs --ref");
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--ref-labels", "y.npy");
    expect_fail(&r, "--ref-labels needs --ref");
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--labels", "y.npy", "--ref", "x.npy");
    expect_fail(&r, "--ref needs its labels");
    /* --batch changes nothing but the memory. */
    double mse = eval_mse("ev.aem", "x.npy", NULL);
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--batch", "7");
    expect_ok(&r);
    assert_true(fabs(number_after(r.out, "MSE ") - mse) < 1e-6);
    RUN(&r, "encode", "-m", "ev.aem", "-d", "x.npy", "--batch", "5", "-o", "ev_codes.npy");
    expect_ok(&r);
    RUN(&r, "decode", "-m", "ev.aem", "-d", "ev_codes.npy", "--batch", "5", "-o", "ev_dec.npy");
    expect_ok(&r);
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--batch", "0");
    expect_fail(&r, "--batch");

    /* Denoising: the corrupted input's MSE is the noise's variance
     * (sigma 0.3: 0.09, a standard deviation as x + 0.3 * randn), the
     * metrics compare the reconstructions of the corrupted input with the
     * clean data, and the picture has clean, corrupted and denoised rows. */
    RUN(&r, "train", "-d", "img.npy", "--layers", "32,8", "--noise", "gaussian", "--noise-level",
        "0.3", "--epochs", "3", "-b", "16", "-q", "-o", "den.aem");
    expect_ok(&r);
    RUN(&r, "eval", "-m", "den.aem", "-d", "img.npy", "--noise", "gaussian", "--noise-level", "0.3",
        "--seed", "5", "--recon-png", "den3.png", "--knn", "0");
    expect_ok(&r);
    float *noisy = malloc(N * D * sizeof *noisy), *y = malloc(N * D * sizeof *y);
    ae_noise nz;
    ae_noise_init(&nz, AE_NOISE_GAUSSIAN, 0.3);
    assert_int_equal(ae_corrupt(&nz, g_x, noisy, N, D, 5), AE_OK);
    double nmse, rmse;
    assert_int_equal(ae_metric_mse(g_x, noisy, N * D, &nmse), AE_OK);
    assert_true(fabs(nmse - 0.09) < 0.01);
    snprintf(line, sizeof line, "gaussian level 0.3, seed 5: MSE %.6f of the corrupted input", nmse);
    if (!strstr(r.out, line)) fprintf(stderr, "want '%s' in:\n%s", line, r.out);
    assert_non_null(strstr(r.out, line));
    assert_int_equal(ae_model_load(&m, path("den.aem"), NULL), AE_OK);
    assert_int_equal(ae_reconstruct(m, noisy, N, y), AE_OK);
    assert_int_equal(ae_metric_mse(g_x, y, N * D, &rmse), AE_OK);
    ae_model_destroy(m);
    assert_true(fabs(number_after(r.out, "MSE ") - rmse) < 1e-6);
    RUN(&r, "eval", "-m", "den.aem", "-d", "img.npy", "--recon-png", "den2.png", "--knn", "0");
    expect_ok(&r);
    /* 20 samples: two groups of 10, of three rows each instead of two. */
    unsigned h2 = png_height("den2.png"), h3 = png_height("den3.png");
    assert_true(h3 > h2 && (h3 - 2) * 2 == (h2 - 2) * 3 - 10);
    /* The model's own noise; reconstruct corrupts the same way. */
    RUN(&r, "eval", "-m", "den.aem", "-d", "img.npy", "--noise", "model", "--seed", "5", "--knn",
        "0");
    expect_ok(&r);
    assert_non_null(strstr(r.out, line));
    RUN(&r, "reconstruct", "-m", "den.aem", "-d", "img.npy", "--noise", "model", "--seed", "5", "-o",
        "den_rec.npy", "--png", "den_rec.png");
    expect_ok(&r);
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_load_npy(ds, path("den_rec.npy")), AE_OK);
    assert_close_arrays(ae_dataset_data(ds), y, N * D, 1e-5, 1e-6, "denoised");
    ae_dataset_destroy(ds);
    assert_int_equal(png_height("den_rec.png"), h3);
    RUN(&r, "eval", "-m", "ev.aem", "-d", "x.npy", "--noise", "model");
    expect_fail(&r, "not trained with noise");
    RUN(&r, "eval", "-m", "den.aem", "-d", "img.npy", "--noise", "gaussian");
    expect_fail(&r, "--noise gaussian needs --noise-level");
    RUN(&r, "eval", "-m", "den.aem", "-d", "img.npy", "--noise-level", "0.1");
    expect_fail(&r, "need --noise");
    RUN(&r, "eval", "-m", "den.aem", "-d", "img.npy", "--noise", "mask", "--noise-level", "2");
    expect_fail(&r, "--noise-level");
    free(noisy);
    free(y);

    /* Lifetime top-k acts in training mode only: --mode train evaluates it
     * as training does, over each batch (here one batch of 64). */
    RUN(&r, "train", "-d", "img.npy", "--layers", "32,8", "--lifetime-topk", "4", "--epochs", "3",
        "-b", "16", "-q", "-o", "lt.aem");
    expect_ok(&r);
    RUN(&r, "eval", "-m", "lt.aem", "-d", "img.npy", "--mode", "train", "--batch", "64");
    expect_ok(&r);
    double train_mse = number_after(r.out, "MSE ");
    assert_int_equal(ae_model_load(&m, path("lt.aem"), NULL), AE_OK);
    assert_int_equal(ae_model_set_mode(m, AE_MODE_TRAIN), AE_OK);
    y = malloc(N * D * sizeof *y);
    assert_int_equal(ae_reconstruct(m, g_x, N, y), AE_OK);
    assert_int_equal(ae_metric_mse(g_x, y, N * D, &rmse), AE_OK);
    free(y);
    ae_model_destroy(m);
    assert_true(fabs(train_mse - rmse) < 1e-6);
    assert_true(fabs(train_mse - eval_mse("lt.aem", "img.npy", NULL)) > 1e-6);
    RUN(&r, "eval", "-m", "lt.aem", "-d", "img.npy", "--mode", "test");
    expect_fail(&r, "--mode");
}

/* A FIFO given as an input is refused at once (it used to wait for a
 * writer), as a model, data or labels; as an output it is left a FIFO. */
static void test_special_files(void **state) {
    (void)state;
    result r;
    assert_int_equal(mkfifo(path("in.fifo"), 0600), 0);
    g_alarm = 30;
    RUN(&r, "info", "-m", "in.fifo");
    expect_fail(&r, "is a FIFO");
    RUN(&r, "train", "-d", "in.fifo", "-o", "f.aem");
    expect_fail(&r, "is a FIFO");
    RUN(&r, "train", "-d", "x.npy", "--labels", "in.fifo", "--layers", "8", "--epochs", "1", "-o",
        "f.aem");
    expect_fail(&r, "is a FIFO");
    RUN(&r, "train", "-d", "x.npy", "--layers", "8", "--epochs", "1", "-o", "in.fifo");
    expect_fail(&r, "it is a FIFO");
    g_alarm = 0;
    struct stat sb;
    assert_int_equal(lstat(path("in.fifo"), &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    assert_false(exists("f.aem"));
    unlink(path("in.fifo"));
}

/* Pictures are written as every file of the library is: a link planted at
 * the tool's old temporary name is not followed (victim.txt stays), a link
 * at the picture's name is written through, a FIFO is refused. */
static void test_png_writes(void **state) {
    (void)state;
    result r;
    FILE *f = fopen(path("victim.txt"), "wb");
    assert_non_null(f);
    fputs("precious", f);
    fclose(f);
    g_trap = "trap.png";
    RUN(&r, "train", "-d", "img.npy", "--layers", "8", "--epochs", "1", "-b", "16", "-o", "t.aem",
        "--recon-png", "trap.png");
    g_trap = NULL;
    expect_ok(&r);
    assert_png("trap.png");
    char buf[64];
    f = fopen(path("victim.txt"), "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    assert_string_equal(buf, "precious");

    assert_int_equal(symlink("real.png", path("link.png")), 0);
    RUN(&r, "reconstruct", "-m", "t.aem", "-d", "img.npy", "--limit", "4", "-o", "t.npy", "--png",
        "link.png");
    expect_ok(&r);
    struct stat sb;
    assert_int_equal(lstat(path("link.png"), &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_png("real.png");

    assert_int_equal(mkfifo(path("pic.fifo"), 0600), 0);
    g_alarm = 30;
    RUN(&r, "reconstruct", "-m", "t.aem", "-d", "img.npy", "--limit", "4", "-o", "t.npy", "--png",
        "pic.fifo");
    g_alarm = 0;
    expect_fail(&r, "it is a FIFO");
    assert_int_equal(lstat(path("pic.fifo"), &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));
    unlink(path("pic.fifo"));
}

/* An ae built without libae_mpi refuses --distributed as a usage error
 * (with MPI, tests/mpi/test_tool_mpi.c runs it under mpirun). */
static void test_distributed_without_mpi(void **state) {
    (void)state;
#ifdef AE_TEST_TOOL_NO_MPI
    result r;
    RUN(&r, "train", "--distributed", "-d", "x.npy", "--layers", "8", "-e", "1", "-o", "dist.aem");
    expect_fail(&r, "--distributed needs an ae built with MPI");
    assert_int_equal(r.status, 2);
    assert_false(exists("dist.aem"));
#else
    skip();
#endif
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_tool PATH-TO-ae\n");
        return 1;
    }
    /* Absolute: the tool runs in the temporary directory. */
    static char abs_ae[4096], cwd[2048];
    if (argv[1][0] == '/')
        snprintf(abs_ae, sizeof abs_ae, "%s", argv[1]);
    else if (getcwd(cwd, sizeof cwd))
        snprintf(abs_ae, sizeof abs_ae, "%s/%s", cwd, argv[1]);
    if (access(abs_ae, X_OK) != 0) {
        fprintf(stderr, "test_tool: no program at %s\n", argv[1]);
        return 1;
    }
    g_ae = abs_ae;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_train_and_use),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_checkpoint_resume),
        cmocka_unit_test(test_greedy),
        cmocka_unit_test(test_formats_and_flags),
        cmocka_unit_test(test_vae),
        cmocka_unit_test(test_crafted_shape),
        cmocka_unit_test(test_conv),
        cmocka_unit_test(test_arch),
        cmocka_unit_test(test_onnx),
        cmocka_unit_test(test_default_data_missing),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_distinct_outputs),
        cmocka_unit_test(test_unsigned_options),
        cmocka_unit_test(test_data_usage_errors),
        cmocka_unit_test(test_special_files),
        cmocka_unit_test(test_png_writes),
        cmocka_unit_test(test_images_and_mmap),
        cmocka_unit_test(test_value_conventions),
        cmocka_unit_test(test_images_normalized),
        cmocka_unit_test(test_kl_reduction),
        cmocka_unit_test(test_eval_protocols),
        cmocka_unit_test(test_distributed_without_mpi),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
