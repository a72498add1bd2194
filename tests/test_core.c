/* Tests of src/core: status names, version, allocation, RNG, BLAS wrapper,
 * the atomic file writer. */
#define _XOPEN_SOURCE 700 /* mknod */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_util.h"

#include "core/core.h"

static void test_status_names(void **state) {
    (void)state;
    assert_string_equal(ae_status_name(AE_OK), "AE_OK");
    assert_string_equal(ae_status_name(AE_ERR_SHAPE), "AE_ERR_SHAPE");
    assert_string_equal(ae_status_name(AE_ERR_CHECKSUM), "AE_ERR_CHECKSUM");
    assert_string_equal(ae_status_name((ae_status)999), "AE_UNKNOWN_STATUS");
    assert_string_equal(ae_status_string(AE_ERR_OUT_OF_MEMORY), "out of memory");
    /* The numbers are frozen. */
    assert_int_equal(AE_ERR_INVALID_ARG, 1);
    assert_int_equal(AE_ERR_NUMERIC, 6);
    assert_int_equal(AE_ERR_CHECKSUM, 11);
    for (int c = 0; c <= 11; c++) assert_string_not_equal(ae_status_name((ae_status)c), "AE_UNKNOWN_STATUS");
}

static void test_version(void **state) {
    (void)state;
    assert_string_equal(ae_version_string(), AE_VERSION_STRING);
    assert_int_equal(ae_version_number(), AE_VERSION_NUMBER);
    assert_int_equal(AE_VERSION_NUMBER, AE_VERSION_MAJOR * 10000 + AE_VERSION_MINOR * 100 + AE_VERSION_PATCH);
}

static void test_error_format(void **state) {
    (void)state;
    ae_errbuf e;
    assert_int_equal(ae_error(&e, AE_ERR_RANGE, "x must be %d", 3), AE_ERR_RANGE);
    assert_string_equal(e.msg, "x must be 3");
    assert_int_equal(ae_error(NULL, AE_ERR_IO, "ignored"), AE_ERR_IO);
}

static void test_alloc_aligned_and_hook(void **state) {
    (void)state;
    test_alloc t = {0, 0, -1};
    ae_allocator user = test_allocator(&t), a;
    assert_int_equal(ae_allocator_init(&a, &user), AE_OK);
    for (size_t n = 1; n < 5000; n += 997) {
        float *p = ae_alloc(&a, n);
        assert_non_null(p);
        assert_int_equal((uintptr_t)p % AE_ALIGN, 0);
        memset(p, 1, n);
        ae_free(&a, p);
    }
    assert_int_equal(t.live, 0);
    t.fail_at = t.count;
    assert_null(ae_alloc(&a, 16));
    assert_null(ae_calloc(&a, SIZE_MAX / 2, 4)); /* overflow refused before calling the hook */
    ae_allocator bad = user;
    bad.struct_size = 3;
    assert_int_equal(ae_allocator_init(&a, &bad), AE_ERR_INVALID_ARG);
    bad = user;
    bad.alloc = NULL;
    assert_int_equal(ae_allocator_init(&a, &bad), AE_ERR_INVALID_ARG);
}

static void test_rng(void **state) {
    (void)state;
    ae_rng a, b;
    ae_rng_seed(&a, 7);
    ae_rng_seed(&b, 7);
    for (int i = 0; i < 100; i++) assert_true(ae_rng_next(&a) == ae_rng_next(&b));
    ae_rng_seed(&b, 8);
    assert_true(ae_rng_next(&a) != ae_rng_next(&b));
    /* Moments of the uniform and normal draws. */
    double su = 0, su2 = 0, sn = 0, sn2 = 0;
    const int N = 200000;
    for (int i = 0; i < N; i++) {
        double u = ae_rng_uniform(&a), z = ae_rng_normal(&a);
        assert_true(u >= 0.0 && u < 1.0);
        su += u;
        su2 += u * u;
        sn += z;
        sn2 += z * z;
    }
    assert_true(fabs(su / N - 0.5) < 0.005);
    assert_true(fabs(su2 / N - 1.0 / 3.0) < 0.005);
    assert_true(fabs(sn / N) < 0.01);
    assert_true(fabs(sn2 / N - 1.0) < 0.015);
    int hist[5] = {0};
    for (int i = 0; i < 50000; i++) hist[ae_rng_below(&a, 5)]++;
    for (int i = 0; i < 5; i++) assert_true(abs(hist[i] - 10000) < 500);
}

/* Every transpose pair, beta 0 over NaN (C is only written) and beta 1,
 * padded leading dimensions, and both sgemv forms, on each backend built
 * in, against a product in double. */
static void test_sgemm_wrapper(void **state) {
    (void)state;
    enum { M = 5, N = 7, K = 3, PAD = 2 };
    float A[(M + PAD) * (K + PAD)], B[(K + PAD) * (N + PAD)], C[M * (N + PAD)];
    double R[M * N];
    test_fill(A, sizeof A / sizeof A[0], 1, -1, 1);
    test_fill(B, sizeof B / sizeof B[0], 2, -1, 1);
    for (int be = AE_BACKEND_OPENBLAS; be <= AE_BACKEND_ONEDNN; be++) {
        if (!ae_backend_available((ae_backend)be)) continue;
        for (int t = 0; t < 4; t++) {
            ae_trans ta = (t & 1) ? AE_TRANS : AE_NO_TRANS, tb = (t & 2) ? AE_TRANS : AE_NO_TRANS;
            size_t lda = (ta ? M : K) + PAD, ldb = (tb ? K : N) + PAD, ldc = N + PAD;
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0;
                    for (int k = 0; k < K; k++)
                        acc += (double)(ta ? A[k * lda + i] : A[i * lda + k]) *
                               (tb ? B[j * ldb + k] : B[k * ldb + j]);
                    R[i * N + j] = acc;
                }
            for (size_t i = 0; i < sizeof C / sizeof C[0]; i++) C[i] = NAN;
            ae_sgemm((ae_backend)be, ta, tb, M, N, K, 2.0f, A, lda, B, ldb, 0.0f, C, ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) assert_true(fabs(C[i * ldc + j] - 2 * R[i * N + j]) < 1e-5);
            ae_sgemm((ae_backend)be, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) assert_true(fabs(C[i * ldc + j] - 3 * R[i * N + j]) < 1e-5);
            /* The padding between rows is not written. */
            for (int i = 0; i < M; i++) assert_true(isnan(C[i * ldc + N]));
        }
        /* K = 0: C = beta C, as BLAS defines it. */
        float c2[2] = {1, 2};
        ae_sgemm((ae_backend)be, AE_NO_TRANS, AE_NO_TRANS, 1, 2, 0, 1.0f, A, 1, B, 2, 0.5f, c2, 2);
        assert_true(c2[0] == 0.5f && c2[1] == 1.0f);
        /* sgemv: y = A x and y = Aᵀ x with A [M, K] (lda K + PAD). */
        float x[M], y[M];
        test_fill(x, M, 3, -1, 1);
        for (int i = 0; i < M; i++) y[i] = NAN;
        ae_sgemv((ae_backend)be, AE_NO_TRANS, M, K, 1.0f, A, K + PAD, x, 0.0f, y);
        for (int i = 0; i < M; i++) {
            double acc = 0;
            for (int k = 0; k < K; k++) acc += (double)A[i * (K + PAD) + k] * x[k];
            assert_true(fabs(y[i] - acc) < 1e-6);
        }
        for (int k = 0; k < K; k++) y[k] = 1.0f;
        ae_sgemv((ae_backend)be, AE_TRANS, M, K, 1.0f, A, K + PAD, x, 1.0f, y);
        for (int k = 0; k < K; k++) {
            double acc = 1;
            for (int i = 0; i < M; i++) acc += (double)A[i * (K + PAD) + k] * x[i];
            assert_true(fabs(y[k] - acc) < 1e-6);
        }
    }
}

/* y = alpha A x + beta y on shapes that take every part of the GEMV
 * kernel (groups of four rows and the rest, sixteen-column blocks and the
 * tail, a padded lda), on each backend, against a product in double. */
static void test_sgemv_kernel_shapes(void **state) {
    (void)state;
    static const size_t shapes[][2] = {{1, 1}, {3, 15}, {4, 16}, {9, 47}, {37, 70}, {256, 784}};
    for (int be = AE_BACKEND_OPENBLAS; be <= AE_BACKEND_ONEDNN; be++) {
        if (!ae_backend_available((ae_backend)be)) continue;
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            size_t rows = shapes[s][0], cols = shapes[s][1], lda = cols + 3;
            float *A = malloc(rows * lda * sizeof *A), *x = malloc(cols * sizeof *x),
                  *y = malloc(rows * sizeof *y), *y0 = malloc(rows * sizeof *y0);
            assert_non_null(A && x && y && y0);
            test_fill(A, rows * lda, 5, -1, 1);
            test_fill(x, cols, 6, -1, 1);
            test_fill(y0, rows, 7, -1, 1);
            for (int pass = 0; pass < 2; pass++) {
                float beta = pass ? 0.5f : 0.0f;
                for (size_t r = 0; r < rows; r++) y[r] = pass ? y0[r] : NAN;
                ae_sgemv((ae_backend)be, AE_NO_TRANS, rows, cols, 2.0f, A, lda, x, beta, y);
                for (size_t r = 0; r < rows; r++) {
                    double acc = 0;
                    for (size_t c = 0; c < cols; c++) acc += (double)A[r * lda + c] * x[c];
                    double want = 2.0 * acc + (pass ? 0.5 * y0[r] : 0.0);
                    assert_true(fabs(y[r] - want) < 1e-5 * (1.0 + sqrt((double)cols)));
                }
            }
            free(A);
            free(x);
            free(y);
            free(y0);
        }
    }
}

/* The backend names, availability and the config call's errors. */
static void test_backend_choice(void **state) {
    (void)state;
    assert_string_equal(ae_backend_name(AE_BACKEND_AUTO), "auto");
    assert_string_equal(ae_backend_name(AE_BACKEND_OPENBLAS), "openblas");
    assert_string_equal(ae_backend_name(AE_BACKEND_ONEDNN), "onednn");
    assert_null(ae_backend_name((ae_backend)3));
    assert_true(ae_backend_available(AE_BACKEND_AUTO));
    assert_true(ae_backend_available(AE_BACKEND_OPENBLAS));
    assert_false(ae_backend_available((ae_backend)-1));
    ae_config *c = NULL;
    assert_int_equal(ae_config_create(&c, NULL), AE_OK);
    assert_int_equal(ae_config_get_backend(c), AE_BACKEND_AUTO);
    assert_int_equal(ae_config_set_backend(NULL, AE_BACKEND_OPENBLAS), AE_ERR_INVALID_ARG);
    assert_int_equal(ae_config_set_backend(c, AE_BACKEND_OPENBLAS), AE_OK);
    assert_int_equal(ae_config_set_backend(c, (ae_backend)7), AE_ERR_INVALID_ARG);
    assert_non_null(strstr(ae_config_last_error(c), "unknown backend 7"));
    assert_int_equal(ae_config_get_backend(c), AE_BACKEND_OPENBLAS);
    ae_status st = ae_config_set_backend(c, AE_BACKEND_ONEDNN);
    if (ae_backend_available(AE_BACKEND_ONEDNN)) {
        assert_int_equal(st, AE_OK);
        assert_int_equal(ae_config_get_backend(c), AE_BACKEND_ONEDNN);
    } else {
        assert_int_equal(st, AE_ERR_UNSUPPORTED);
        assert_non_null(strstr(ae_config_last_error(c), "not built into this libae"));
        assert_int_equal(ae_config_get_backend(c), AE_BACKEND_OPENBLAS);
    }
    assert_int_equal(ae_config_get_backend(NULL), AE_BACKEND_AUTO);
    ae_config_destroy(c);
}

static void test_finite_check(void **state) {
    (void)state;
    float v[37];
    test_fill(v, 37, 3, -1e30f, 1e30f);
    assert_true(ae_all_finite(v, 37));
    v[29] = INFINITY;
    assert_false(ae_all_finite(v, 37));
    assert_int_equal(ae_first_nonfinite(v, 37), 29);
    v[29] = NAN;
    assert_false(ae_all_finite(v, 37));
}

/* ---- the atomic writer (file.c) ---- */

static char tmpdir[256];

static int setup_dir(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_core_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Removes the test directory, one level of subfolders included. */
static void remove_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                remove_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

static int teardown_dir(void **state) {
    (void)state;
    remove_tree(tmpdir);
    return 0;
}

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", tmpdir, name); }

/* Entries of a directory (. and .. aside). */
static int entries_of(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

/* ae_file_replace with one part, the text. */
static int replace_with(const char *path, const char *text, const char **step) {
    ae_allocator a;
    assert_int_equal(ae_allocator_init(&a, NULL), AE_OK);
    ae_span part = {text, strlen(text)};
    *step = NULL;
    return ae_file_replace(&a, path, &part, 1, step);
}

static void assert_file_is(const char *path, const char *text) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    assert_int_equal(n, strlen(text));
    assert_memory_equal(buf, text, n);
}

/* A name of 255 bytes, the longest a directory entry takes, is saved: the
 * temporary name does not grow with it. */
static void test_replace_long_name(void **state) {
    (void)state;
    char name[256], path[512];
    memset(name, 'n', 255);
    name[255] = '\0';
    path_in(path, sizeof path, name);
    const char *step;
    assert_int_equal(replace_with(path, "first", &step), 0);
    assert_file_is(path, "first");
    assert_int_equal(replace_with(path, "second", &step), 0);
    assert_file_is(path, "second");
    assert_int_equal(entries_of(tmpdir), 1);
    unlink(path);
}

/* A save killed in the middle of its write: the child's file size limit
 * stops it with SIGXFSZ, leaving its temporary file, as kill -9 would. */
static void killed_save(const char *path) {
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit none = {0, 0}, small = {4096, 4096};
        setrlimit(RLIMIT_CORE, &none);
        setrlimit(RLIMIT_FSIZE, &small);
        signal(SIGXFSZ, SIG_DFL);
        static char big[1 << 16];
        memset(big, 'x', sizeof big);
        ae_allocator a;
        ae_allocator_init(&a, NULL);
        ae_span part = {big, sizeof big};
        const char *step;
        ae_file_replace(&a, path, &part, 1, &step);
        _exit(0); /* not reached: the write past 4 kB ends the process */
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGXFSZ);
}

/* Temporary files of killed saves do not accumulate: the next save of the
 * target removes them, unless a save in that directory is running (it may
 * be theirs). */
static void test_replace_removes_stale_temp(void **state) {
    (void)state;
    char path[512], other[512];
    path_in(path, sizeof path, "model.bin");
    path_in(other, sizeof other, "other.bin");
    const char *step;
    assert_int_equal(replace_with(path, "old", &step), 0);
    assert_int_equal(replace_with(other, "other", &step), 0);
    /* Kills while another save in the directory runs (the test holds the
     * directory's shared lock, as a save does): the leftovers stay, as they
     * may be that save's, and a save succeeds beside them. */
    int dfd = open(tmpdir, O_RDONLY | O_DIRECTORY);
    assert_true(dfd >= 0);
    assert_int_equal(flock(dfd, LOCK_SH), 0);
    for (int k = 0; k < 3; k++) killed_save(path);
    killed_save(other);
    assert_int_equal(entries_of(tmpdir), 6);
    assert_file_is(path, "old");
    assert_int_equal(replace_with(path, "new", &step), 0);
    assert_file_is(path, "new");
    assert_int_equal(entries_of(tmpdir), 6);
    close(dfd);

    /* None running: the three of this target go, the other target's stays. */
    assert_int_equal(replace_with(path, "newer", &step), 0);
    assert_file_is(path, "newer");
    assert_int_equal(entries_of(tmpdir), 3);
    assert_int_equal(replace_with(other, "other 2", &step), 0);
    assert_int_equal(entries_of(tmpdir), 2);

    /* Killed again and again: one leftover at most, the last one's. */
    for (int k = 0; k < 5; k++) {
        killed_save(path);
        assert_int_equal(entries_of(tmpdir), 3);
    }
    assert_file_is(path, "newer");
    assert_int_equal(replace_with(path, "newest", &step), 0);
    assert_int_equal(entries_of(tmpdir), 2);
}

/* Writing through a symbolic link replaces the file it names, atomically
 * in that file's directory, and keeps the link; a dangling link gets its
 * file created. */
static void test_replace_through_symlink(void **state) {
    (void)state;
    char target[512], link[512], sub[512], far[512], link2[512], dangling[512], link3[512];
    const char *step;
    path_in(target, sizeof target, "target.bin");
    path_in(link, sizeof link, "link");
    assert_int_equal(replace_with(target, "old", &step), 0);
    assert_int_equal(chmod(target, 0640), 0);
    assert_int_equal(symlink("target.bin", link), 0);
    assert_int_equal(replace_with(link, "new", &step), 0);
    struct stat sb;
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    char got[512];
    ssize_t n = readlink(link, got, sizeof got - 1);
    assert_int_equal(n, 10);
    got[n] = '\0';
    assert_string_equal(got, "target.bin");
    assert_file_is(target, "new");
    assert_int_equal(stat(target, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
    assert_int_equal(entries_of(tmpdir), 2);

    /* A chain of links (absolute, then relative) into another directory:
     * the temporary file is made there, and nothing is left in either. */
    path_in(sub, sizeof sub, "sub");
    assert_int_equal(mkdir(sub, 0700), 0);
    path_in(far, sizeof far, "sub/far.bin");
    assert_int_equal(replace_with(far, "far", &step), 0);
    path_in(link2, sizeof link2, "sub/hop");
    assert_int_equal(symlink("far.bin", link2), 0);
    path_in(link3, sizeof link3, "link-to-hop");
    assert_int_equal(symlink(link2, link3), 0);
    assert_int_equal(replace_with(link3, "far 2", &step), 0);
    assert_file_is(far, "far 2");
    assert_int_equal(lstat(link2, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal(entries_of(sub), 2);
    assert_int_equal(entries_of(tmpdir), 4);

    /* A dangling link: its file is created, the link stays. */
    path_in(dangling, sizeof dangling, "dangling");
    assert_int_equal(symlink("sub/created.bin", dangling), 0);
    assert_int_equal(replace_with(dangling, "created", &step), 0);
    assert_int_equal(lstat(dangling, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    path_in(got, sizeof got, "sub/created.bin");
    assert_file_is(got, "created");
    assert_int_equal(entries_of(sub), 3);

    /* Dangling into a missing folder, and a loop: refused, nothing made. */
    path_in(link, sizeof link, "nowhere");
    assert_int_equal(symlink("missing/x.bin", link), 0);
    assert_int_equal(replace_with(link, "x", &step), -1);
    assert_int_equal(errno, ENOENT);
    path_in(link, sizeof link, "loop-a");
    assert_int_equal(symlink("loop-b", link), 0);
    path_in(link2, sizeof link2, "loop-b");
    assert_int_equal(symlink("loop-a", link2), 0);
    assert_int_equal(replace_with(link, "x", &step), -1);
    assert_int_equal(errno, ELOOP);
    assert_int_equal(entries_of(tmpdir), 8);
    assert_int_equal(entries_of(sub), 3);
}

/* Something at the path that is not a regular file (a device, FIFO,
 * socket, directory), directly or through a link, is refused (-2, its kind
 * in *step) and left as it was; no temporary file is left. */
static void assert_refused(const char *path, const char *kind) {
    const char *step;
    errno = 12345;
    assert_int_equal(replace_with(path, "x", &step), -2);
    assert_int_equal(errno, 0);
    assert_non_null(step);
    assert_non_null(strstr(step, kind));
}

static void test_replace_refuses_special_files(void **state) {
    (void)state;
    /* A character device like /dev/null. The writer is never pointed at
     * /dev/null itself by a user who may replace it (root): a broken writer
     * would replace the system's /dev/null. Root gets a null device node of
     * its own in the test directory; others use /dev/null, which /dev's
     * permissions protect whatever the writer does. */
    char null[512], link[512];
    if (geteuid() == 0) {
        path_in(null, sizeof null, "null");
        if (mknod(null, S_IFCHR | 0666, makedev(1, 3)) != 0) {
            print_message("no device node (%s): the device case is skipped\n", strerror(errno));
            null[0] = '\0';
        }
    } else {
        snprintf(null, sizeof null, "/dev/null");
    }
    int extra = 0;
    if (null[0]) {
        struct stat before, after;
        assert_int_equal(stat(null, &before), 0);
        assert_true(S_ISCHR(before.st_mode));
        assert_refused(null, "a character device");
        path_in(link, sizeof link, "null-link");
        assert_int_equal(symlink(null, link), 0);
        assert_refused(link, "a symbolic link to a character device");
        assert_int_equal(stat(null, &after), 0);
        assert_true(S_ISCHR(after.st_mode));
        assert_int_equal(after.st_ino, before.st_ino);
        assert_int_equal(after.st_rdev, before.st_rdev);
        assert_int_equal(after.st_mode, before.st_mode);
        struct stat sb;
        assert_int_equal(lstat(link, &sb), 0);
        assert_true(S_ISLNK(sb.st_mode));
        extra = geteuid() == 0 ? 2 : 1;
    }

    char fifo[512], dir[512], sock[512];
    path_in(fifo, sizeof fifo, "fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_refused(fifo, "a FIFO");
    struct stat sb;
    assert_int_equal(lstat(fifo, &sb), 0);
    assert_true(S_ISFIFO(sb.st_mode));

    path_in(dir, sizeof dir, "dir");
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_refused(dir, "a directory");
    assert_int_equal(lstat(dir, &sb), 0);
    assert_true(S_ISDIR(sb.st_mode));
    assert_int_equal(entries_of(dir), 0);

    path_in(sock, sizeof sock, "sock");
    int sfd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(sfd >= 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    assert_true(strlen(sock) < sizeof addr.sun_path);
    strcpy(addr.sun_path, sock);
    assert_int_equal(bind(sfd, (struct sockaddr *)&addr, sizeof addr), 0);
    assert_refused(sock, "a socket");
    assert_int_equal(lstat(sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    close(sfd);
    assert_int_equal(entries_of(tmpdir), 3 + extra);
}

/* Every allocation of a save through a link failing in turn: -1 with
 * ENOMEM, the file as it was, nothing left behind, nothing leaked. */
static void test_replace_failing_allocator(void **state) {
    (void)state;
    char target[512], link[512];
    path_in(target, sizeof target, "target.bin");
    path_in(link, sizeof link, "link");
    const char *step;
    assert_int_equal(replace_with(target, "old", &step), 0);
    assert_int_equal(symlink("target.bin", link), 0);
    ae_span part = {"new", 3};
    for (long k = 0;; k++) {
        test_alloc t = {0, 0, k};
        ae_allocator a = test_allocator(&t);
        int rc = ae_file_replace(&a, link, &part, 1, &step);
        assert_int_equal(t.live, 0);
        if (rc == 0) {
            assert_true(k >= 3);
            break;
        }
        assert_int_equal(rc, -1);
        assert_int_equal(errno, ENOMEM);
        assert_file_is(target, "old");
        assert_int_equal(entries_of(tmpdir), 2);
    }
    assert_file_is(target, "new");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_names),  cmocka_unit_test(test_version),
        cmocka_unit_test(test_error_format),  cmocka_unit_test(test_alloc_aligned_and_hook),
        cmocka_unit_test(test_rng),           cmocka_unit_test(test_sgemm_wrapper),
        cmocka_unit_test(test_sgemv_kernel_shapes), cmocka_unit_test(test_backend_choice),
        cmocka_unit_test(test_finite_check),
        cmocka_unit_test_setup_teardown(test_replace_long_name, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_replace_removes_stale_temp, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_replace_through_symlink, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_replace_refuses_special_files, setup_dir, teardown_dir),
        cmocka_unit_test_setup_teardown(test_replace_failing_allocator, setup_dir, teardown_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
