/* `ae train --distributed` under mpirun on 2 and 3 ranks (the tool's path
 * is argv[1]): the model equals the one-process `ae train` with the same
 * global batch, rank 0 alone prints and writes (one model, one checkpoint),
 * a 2-rank checkpoint resumes on 3 ranks and in one process, and a failure
 * on one rank (a NaN in its rows, an output rank 0 cannot write, a
 * truncated file, a batch smaller than the ranks) ends every rank with the
 * message and the same exit code, leaving no file. Exits 77 (skipped, with
 * a message) without mpirun. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <libae/ae.h>

#define N 50
#define D 64

static const char *g_ae;
static char g_dir[64];
static int g_run; /* each run in its own folder g_dir/runK */
static char g_out[32768], g_err[32768];

static size_t slurp(const char *path, char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
    buf[n] = '\0';
    if (f) fclose(f);
    return n;
}

/* Runs `ae train ARGS` in a new folder (its path in `dir`): on np ranks
 * with --distributed, or as one plain process when np is 0. codes[r] gets
 * rank r's exit code (each rank writes it, beside mpirun's own). */
static void run(int np, const char *args, char *dir, size_t cap, int codes[3]) {
    snprintf(dir, cap, "%s/run%d", g_dir, ++g_run);
    assert_int_equal(mkdir(dir, 0755), 0);
    char cmd[4096];
    if (np == 0)
        snprintf(cmd, sizeof cmd, "cd %s && %s train %s > out.txt 2> err.txt; echo $? > code.0", dir,
                 g_ae, args);
    else
        /* mpirun must not kill the other ranks when one exits non-zero
           (they all do, after agreeing): every rank's code is seen. */
        snprintf(cmd, sizeof cmd,
                 "cd %s && OMPI_MCA_orte_abort_on_non_zero_status=0 mpirun -np %d --oversubscribe "
                 "--allow-run-as-root sh -c '\"$0\" \"$@\"; echo $? > code.$OMPI_COMM_WORLD_RANK' "
                 "%s train --distributed %s > out.txt 2> err.txt",
                 dir, np, g_ae, args);
    assert_int_not_equal(system(cmd), -1);
    char p[256], b[32];
    snprintf(p, sizeof p, "%s/out.txt", dir);
    slurp(p, g_out, sizeof g_out);
    snprintf(p, sizeof p, "%s/err.txt", dir);
    slurp(p, g_err, sizeof g_err);
    for (int r = 0; r < (np ? np : 1); r++) {
        snprintf(p, sizeof p, "%s/code.%d", dir, r);
        codes[r] = slurp(p, b, sizeof b) ? atoi(b) : -1;
        unlink(p);
    }
}

static int count(const char *hay, const char *needle) {
    int k = 0;
    for (const char *q = hay; (q = strstr(q, needle)) != NULL; q += strlen(needle)) k++;
    return k;
}

/* The files a run left in its folder besides out.txt and err.txt, sorted,
 * space-separated ("" when none). */
static void left_files(const char *dir, char *buf, size_t cap) {
    char names[16][256];
    int n = 0;
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "out.txt") || !strcmp(e->d_name, "err.txt"))
            continue;
        if (n < 16 && strlen(e->d_name) < sizeof names[0]) strcpy(names[n++], e->d_name);
    }
    closedir(d);
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char t[sizeof names[0]];
            memcpy(t, names[j], sizeof t), memcpy(names[j], names[j - 1], sizeof t);
            memcpy(names[j - 1], t, sizeof t);
        }
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "", names[i]);
}

static ae_model *load(const char *dir, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    ae_config *c = NULL;
    ae_model *m = NULL;
    assert_int_equal(ae_config_create(&c, NULL), AE_OK);
    if (ae_model_load(&m, p, c) != AE_OK) fprintf(stderr, "%s: %s\n", p, ae_config_last_error(c));
    ae_config_destroy(c);
    assert_non_null(m);
    return m;
}

/* The largest difference of two models' weights and biases, relative to
 * each array's largest magnitude (0: bitwise equal). */
static double model_diff(const char *dir_a, const char *a, const char *dir_b, const char *b) {
    ae_model *x = load(dir_a, a), *y = load(dir_b, b);
    assert_int_equal(ae_model_layer_count(x), ae_model_layer_count(y));
    double worst = 0;
    for (size_t l = 0; l < ae_model_layer_count(x); l++) {
        ae_layer_info ix = {.struct_size = sizeof ix}, iy = {.struct_size = sizeof iy};
        assert_int_equal(ae_model_layer_info(x, l, &ix), AE_OK);
        assert_int_equal(ae_model_layer_info(y, l, &iy), AE_OK);
        assert_int_equal(ix.weight_count, iy.weight_count);
        assert_int_equal(ix.bias_count, iy.bias_count);
        for (int w = 0; w < 2; w++) {
            size_t n = w ? ix.bias_count : ix.weight_count;
            if (!n) continue;
            float *u = malloc(n * sizeof *u), *v = malloc(n * sizeof *v);
            assert_true(u && v);
            if (w) {
                assert_int_equal(ae_model_get_bias(x, l, u, n), AE_OK);
                assert_int_equal(ae_model_get_bias(y, l, v, n), AE_OK);
            } else {
                assert_int_equal(ae_model_get_weights(x, l, u, n), AE_OK);
                assert_int_equal(ae_model_get_weights(y, l, v, n), AE_OK);
            }
            double big = 0, diff = 0;
            for (size_t i = 0; i < n; i++) {
                big = fmax(big, fabs(u[i]));
                diff = fmax(diff, fabs((double)u[i] - v[i]));
            }
            if (memcmp(u, v, n * sizeof *u) && diff == 0) diff = 1e-300; /* -0 and 0 */
            worst = fmax(worst, big > 0 ? diff / big : diff);
            free(u);
            free(v);
        }
    }
    ae_model_destroy(x);
    ae_model_destroy(y);
    return worst;
}

/* ---- data ---- */

static void write_npy(const char *name, const float *x, size_t n) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    ae_dataset *ds = NULL;
    assert_int_equal(ae_dataset_create(&ds, NULL), AE_OK);
    assert_int_equal(ae_dataset_from_memory(ds, x, NULL, n, 1, 8, 8, AE_DATA_BORROW), AE_OK);
    assert_int_equal(ae_dataset_save_npy(ds, p), AE_OK);
    ae_dataset_destroy(ds);
}

static int group_setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/ae_tool_mpi_XXXXXX");
    if (!mkdtemp(g_dir)) return -1;
    static float x[N * D], t[20 * D];
    uint64_t s = 12345;
    for (size_t i = 0; i < N * D; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((s >> 40) & 0xffff) / 65536.0f;
    }
    for (size_t i = 0; i < 20 * D; i++) t[i] = x[(i * 7) % (N * D)];
    write_npy("x.npy", x, N);
    write_npy("t.npy", t, 20);
    /* bad.npy: x.npy with a NaN in row 37 (the rank whose slice reads it
       fails); short.npy: its header promises more rows than it holds. */
    char p[256], q[256];
    snprintf(p, sizeof p, "%s/x.npy", g_dir);
    static char buf[N * D * 4 + 256];
    size_t len = slurp(p, buf, sizeof buf);
    size_t data = 10 + (size_t)(unsigned char)buf[8] + 256u * (unsigned char)buf[9];
    FILE *f;
    snprintf(q, sizeof q, "%s/short.npy", g_dir);
    if (!(f = fopen(q, "wb"))) return -1;
    fwrite(buf, 1, len / 3, f);
    fclose(f);
    float nan = NAN;
    memcpy(buf + data + (37 * D + 3) * sizeof(float), &nan, sizeof nan);
    snprintf(q, sizeof q, "%s/bad.npy", g_dir);
    if (!(f = fopen(q, "wb"))) return -1;
    fwrite(buf, 1, len, f);
    fclose(f);
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* SGD with momentum: the library's reduction is within float rounding of
 * one process's sums, far inside 1e-6 (docs/mpi.md, "Exactness"). */
#define SGD "-d ../x.npy --layers 16,4 -b 10 -e 3 --optimizer sgd --momentum 0.9 --lr 0.05 -q"

static void test_same_as_one_process(void **state) {
    (void)state;
    char one[128], dir[128], files[512];
    int c[3];
    run(0, SGD " --val-split 0.2 --test ../t.npy -o m.aem", one, sizeof one, c);
    assert_int_equal(c[0], 0);
    for (int np = 2; np <= 3; np++) {
        run(np, SGD " --val-split 0.2 --test ../t.npy -o m.aem --checkpoint ck.aem --shape 1x8x8 "
                    "--recon-png r.png",
            dir, sizeof dir, c);
        if (c[0] || c[1] || (np == 3 && c[2])) fprintf(stderr, "%s%s", g_out, g_err);
        for (int r = 0; r < np; r++) assert_int_equal(c[r], 0);
        double diff = model_diff(one, "m.aem", dir, "m.aem");
        printf("np %d, SGD: the model differs from one process's by %.3g of an array's largest value\n",
               np, diff);
        assert_true(diff <= 1e-6);
        /* One model, one checkpoint, one picture: rank 0's. */
        left_files(dir, files, sizeof files);
        assert_string_equal(files, "ck.aem m.aem r.png");
        assert_string_equal(g_err, "");
    }
    /* --standardize: rank 0's statistics, applied on every rank. */
    run(0, SGD " --standardize feature -o m.aem", one, sizeof one, c);
    assert_int_equal(c[0], 0);
    run(3, SGD " --standardize feature -o m.aem", dir, sizeof dir, c);
    assert_int_equal(c[0] | c[1] | c[2], 0);
    double diff = model_diff(one, "m.aem", dir, "m.aem");
    printf("np 3, SGD, --standardize feature: %.3g\n", diff);
    assert_true(diff <= 1e-6);
    /* The lines, printed once, by rank 0. */
    run(2, SGD " --test ../t.npy -o m.aem", dir, sizeof dir, c);
    assert_int_equal(c[0] | c[1], 0);
    assert_int_equal(count(g_out, "epoch"), 0); /* -q */
    run(2, "-d ../x.npy --layers 16,4 -b 10 -e 3 --test ../t.npy -o m.aem", dir, sizeof dir, c);
    assert_int_equal(c[0] | c[1], 0);
    assert_int_equal(count(g_out, "epoch 3/3"), 1);
    assert_int_equal(count(g_out, "final test MSE"), 1);
    assert_int_equal(count(g_out, "model written to m.aem"), 1);
    /* One rank: ae_mpi_fit is ae_fit, bitwise (Adam, the default). */
    run(0, "-d ../x.npy --layers 16,4 -b 10 -e 3 -q -o m.aem", one, sizeof one, c);
    assert_int_equal(c[0], 0);
    run(1, "-d ../x.npy --layers 16,4 -b 10 -e 3 -q -o m.aem", dir, sizeof dir, c);
    assert_int_equal(c[0], 0);
    assert_true(model_diff(one, "m.aem", dir, "m.aem") == 0);
}

/* A 2-rank checkpoint taken inside epoch 2 goes on on 3 ranks and in one
 * process, and ends where the uninterrupted one-process run ends. */
static void test_resume(void **state) {
    (void)state;
    char full[128], half[128], dir[128], args[512], files[512];
    int c[3];
    run(0, SGD " -e 4 -o m.aem", full, sizeof full, c);
    assert_int_equal(c[0], 0);
    run(2, SGD " -e 2 -o m.aem --checkpoint ck.aem --checkpoint-every 7steps", half, sizeof half, c);
    assert_int_equal(c[0] | c[1], 0);
    left_files(half, files, sizeof files);
    assert_string_equal(files, "ck.aem m.aem");
    for (int np = 0; np <= 3; np += 3) {
        snprintf(args, sizeof args, SGD " -e 4 -o m.aem --resume %s/ck.aem", half);
        /* Not quiet: the resume line. */
        char *q = strstr(args, " -q");
        memmove(q, q + 3, strlen(q + 3) + 1);
        run(np, args, dir, sizeof dir, c);
        if (c[0]) fprintf(stderr, "%s%s", g_out, g_err);
        for (int r = 0; r < (np ? np : 1); r++) assert_int_equal(c[r], 0);
        assert_int_equal(count(g_out, "resuming"), 1);
        /* Step 7: the second batch of the second epoch. */
        assert_non_null(strstr(g_out, "after epoch 1, batch 2"));
        assert_int_equal(count(g_out, "epoch 1/4"), 0);
        assert_int_equal(count(g_out, "epoch 2/4"), 1);
        double diff = model_diff(full, "m.aem", dir, "m.aem");
        printf("resumed on %d rank(s): %.3g from the run that went on\n", np ? np : 1, diff);
        assert_true(diff <= 1e-6);
    }
}

/* Every rank exits with code 1 and says why; nothing is written. */
static void expect_all_fail(int np, const char *args, const char *needle) {
    char dir[128], files[512];
    int c[3];
    run(np, args, dir, sizeof dir, c);
    for (int r = 0; r < np; r++) {
        if (c[r] != 1) fprintf(stderr, "rank %d: %d\n%s%s", r, c[r], g_out, g_err);
        assert_int_equal(c[r], 1);
    }
    if (count(g_err, needle) != np) fprintf(stderr, "expected %d lines with '%s':\n%s", np, needle, g_err);
    assert_int_equal(count(g_err, needle), np);
    left_files(dir, files, sizeof files);
    assert_string_equal(files, "");
}

static void test_failures(void **state) {
    (void)state;
    for (int np = 2; np <= 3; np++) {
        /* A NaN in the rows one rank reads, in the first batch. */
        expect_all_fail(np, SGD " -d ../bad.npy -o m.aem --checkpoint ck.aem --checkpoint-every 1steps",
                        "row 37, value 3 is NaN");
        /* An output rank 0 cannot write, found before any work. */
        expect_all_fail(np, SGD " -o /nonexistent-dir-of-ae-tests/m.aem",
                        "cannot write /nonexistent-dir-of-ae-tests/m.aem");
        /* A test file only rank 0 reads. */
        expect_all_fail(np, SGD " --test ../short.npy -o m.aem", "short.npy");
        /* A truncated data file (every rank opens it). */
        expect_all_fail(np, SGD " -d ../short.npy -o m.aem", "short.npy");
    }
    expect_all_fail(3, SGD " -b 2 -o m.aem", "a batch of 2 samples is smaller than the 3 processes");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_tool_mpi PATH-TO-AE\n");
        return 1;
    }
    /* Absolute: the runs start in folders of their own. */
    static char ae[4096];
    if (!realpath(argv[1], ae)) {
        fprintf(stderr, "test_tool_mpi: %s not found\n", argv[1]);
        return 1;
    }
    g_ae = ae;
    if (system("command -v mpirun > /dev/null 2>&1") != 0) {
        printf("test_tool_mpi: mpirun not found: the tests of ae train --distributed are skipped "
               "(install openmpi-bin)\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_one_process),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_failures),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
