/* Replacing a file atomically, for every writer of the library (model files,
 * .npy, PNG): a new file next to the target (same file system, so the
 * rename is atomic), written, flushed to disk, renamed over the target, and
 * the directory flushed so that the rename survives a crash. The target is
 * the file a symbolic link names; anything but a regular file is refused.
 * docs/files.md is the rule as users see it. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

static int write_all(int fd, const unsigned char *p, size_t left) {
    while (left) {
        ssize_t k = write(fd, p, left > (1u << 30) ? (1u << 30) : left);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            if (k == 0) errno = EIO;
            return -1;
        }
        p += k;
        left -= (size_t)k;
    }
    return 0;
}

/* Opens the directory holding `path` (dir: room for strlen(path) + 2). */
static int open_dir(const char *path, char *dir) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

/* Flushes a directory; some file systems cannot, which is not an error. */
static int sync_dir(int dfd) {
    if (fsync(dfd) == 0 || errno == EINVAL || errno == ENOTSUP) return 0;
    return -1;
}

/* The temporary file's name: ".ae-" + 16 hex digits of a hash of the
 * target's name + "-" + two digits of a slot, 23 bytes whatever the
 * target's length (a name may be the 255 bytes a directory entry takes),
 * so it always fits where the target does. The hash (64-bit FNV-1a) ties a
 * temporary file to its target; the slot lets saves of one target run side
 * by side. */
#define TMP_SLOTS 64
#define TMP_NAME_LEN 23

static uint64_t name_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3u;
    return h;
}

/* Writes the temporary name of slot `slot` for `path` into tmp (room for
 * strlen(path) + TMP_NAME_LEN + 2): the same directory, a short name. */
static void temp_name(const char *path, unsigned slot, char *tmp) {
    const char *slash = strrchr(path, '/');
    size_t dlen = slash ? (size_t)(slash - path) + 1 : 0;
    memcpy(tmp, path, dlen);
    snprintf(tmp + dlen, TMP_NAME_LEN + 1, ".ae-%016llx-%02u",
             (unsigned long long)name_hash(path + dlen), slot);
}

/* Leftovers of killed saves. A save holds a shared flock on the target's
 * directory from before it creates its temporary file until it is done.
 * Whoever gets the exclusive lock (no save running in the directory, so no
 * temporary file there is being written) removes the temporary files of
 * its target, those of saves that were killed; then it takes the shared
 * lock like any save. flock rather than fcntl locks: it is held by the
 * open file, so threads of one process exclude each other as processes do.
 * Where locks do not work (some network file systems), nothing is removed. */
static void remove_stale(const char *path, char *tmp) {
    uid_t me = geteuid();
    for (unsigned slot = 0; slot < TMP_SLOTS; slot++) {
        temp_name(path, slot, tmp);
        struct stat sb;
        if (lstat(tmp, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_uid == me) unlink(tmp);
    }
}

/* The shared lock, waited for a second at most: the exclusive holder is a
 * save removing leftovers (microseconds), unless some other program holds
 * it; then the save goes on without the lock rather than hang. */
static void lock_shared(int dfd) {
    for (int tries = 0; tries < 1000; tries++) {
        if (flock(dfd, LOCK_SH | LOCK_NB) == 0 || (errno != EWOULDBLOCK && errno != EINTR)) return;
        struct timespec ms = {0, 1000000};
        nanosleep(&ms, NULL);
    }
}

/* What is at a path, for the refusal: "a FIFO" and so on. */
static const char *kind_of(mode_t m, int through_link) {
    if (S_ISDIR(m)) return through_link ? "a symbolic link to a directory" : "a directory";
    if (S_ISCHR(m)) return through_link ? "a symbolic link to a character device" : "a character device";
    if (S_ISBLK(m)) return through_link ? "a symbolic link to a block device" : "a block device";
    if (S_ISFIFO(m)) return through_link ? "a symbolic link to a FIFO" : "a FIFO";
    if (S_ISSOCK(m)) return through_link ? "a symbolic link to a socket" : "a socket";
    return through_link ? "a symbolic link to a special file" : "a special file";
}

/* Follows the symbolic links at `path` to the name that is written, as the
 * kernel would when opening it, a dangling link included: *out (from `a`)
 * is that name; *sb is its lstat, *exists 0 when nothing is there (or it
 * cannot be looked at: the create reports why), *hops the links followed.
 * A relative link is read from the directory holding it. -1 with errno on
 * a loop (40 links, the kernel's limit) or no memory. */
static int resolve(const ae_allocator *a, const char *path, char **out, struct stat *sb,
                   int *exists, int *hops) {
    size_t len = strlen(path);
    char *cur = ae_alloc(a, len + 1);
    if (!cur) goto nomem;
    memcpy(cur, path, len + 1);
    for (*hops = 0;; ++*hops) {
        if (lstat(cur, sb) != 0) {
            *exists = 0;
            break;
        }
        if (!S_ISLNK(sb->st_mode)) {
            *exists = 1;
            break;
        }
        if (*hops == 40) {
            ae_free(a, cur);
            errno = ELOOP;
            return -1;
        }
        /* st_size is the link's length on most file systems, 0 on some. */
        size_t cap = (size_t)sb->st_size + 1 > 256 ? (size_t)sb->st_size + 1 : 256;
        char *to = NULL;
        ssize_t n;
        for (;;) {
            to = ae_alloc(a, cap);
            if (!to) break;
            n = readlink(cur, to, cap);
            if (n < 0 || (size_t)n < cap) break;
            ae_free(a, to);
            to = NULL;
            if (cap > ((size_t)1 << 20)) { /* no link target is this long */
                n = -1;
                errno = ENAMETOOLONG;
                break;
            }
            cap *= 2;
        }
        if (!to) {
            ae_free(a, cur);
            goto nomem;
        }
        if (n < 0) { /* changed under us: take it as missing */
            ae_free(a, to);
            *exists = 0;
            break;
        }
        const char *slash = strrchr(cur, '/');
        size_t dlen = to[0] == '/' || !slash ? 0 : (size_t)(slash - cur) + 1;
        char *next = ae_alloc(a, dlen + (size_t)n + 1);
        if (!next) {
            ae_free(a, to);
            ae_free(a, cur);
            goto nomem;
        }
        memcpy(next, cur, dlen);
        memcpy(next + dlen, to, (size_t)n);
        next[dlen + (size_t)n] = '\0';
        ae_free(a, to);
        ae_free(a, cur);
        cur = next;
    }
    *out = cur;
    return 0;
nomem:
    errno = ENOMEM;
    return -1;
}

int ae_file_replace(const ae_allocator *a, const char *path, const ae_span *parts, size_t nparts,
                    const char **step) {
    /* Through symbolic links to the file they name: the link stays, its
     * file is replaced in its own directory. */
    char *target = NULL;
    struct stat old;
    int exists, hops;
    if (resolve(a, path, &target, &old, &exists, &hops) != 0) {
        *step = errno == ENOMEM ? "allocate a name next to" : "follow the symbolic links of";
        return -1;
    }
    /* Only a regular file is replaced: renaming over a device, FIFO or
     * socket would put a file where the system expects that node (an
     * output to /dev/null, as root, would replace /dev/null). */
    if (exists && !S_ISREG(old.st_mode)) {
        *step = kind_of(old.st_mode, hops > 0);
        ae_free(a, target);
        errno = 0;
        return -2;
    }
    path = target;
    size_t plen = strlen(path);
    char *tmp = plen < SIZE_MAX - 64 ? ae_alloc(a, plen + TMP_NAME_LEN + 2) : NULL;
    if (!tmp) {
        ae_free(a, target);
        *step = "allocate a name next to";
        errno = ENOMEM;
        return -1;
    }
    /* The directory stays open: its lock, then its flush. When it cannot be
     * opened (no read permission) the file is still written, unlocked, and
     * the flush is reported as failed. */
    int dfd = open_dir(path, tmp), dir_err = errno;
    if (dfd >= 0) {
        if (flock(dfd, LOCK_EX | LOCK_NB) == 0) remove_stale(path, tmp);
        lock_shared(dfd);
    }
    int fd = -1;
    for (unsigned slot = 0; slot < TMP_SLOTS && fd < 0; slot++) {
        temp_name(path, slot, tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    const char *failed = NULL;
    int err = 0;
    if (fd < 0) {
        failed = "create a temporary file next to";
        err = errno;
    } else {
        /* A file replaced keeps its permission bits. */
        if (exists && fchmod(fd, old.st_mode & 07777) != 0) failed = "set the permissions of";
        for (size_t i = 0; !failed && i < nparts; i++)
            if (write_all(fd, parts[i].p, parts[i].n) != 0) failed = "write";
        if (!failed && fsync(fd) != 0) failed = "flush";
        err = errno;
        if (close(fd) != 0 && !failed) {
            failed = "close";
            err = errno;
        }
        if (!failed && rename(tmp, path) != 0) {
            failed = "rename a temporary file to";
            err = errno;
        }
        if (failed) unlink(tmp);
    }
    int rc = 0;
    if (failed) {
        *step = failed;
        rc = -1;
    } else if (dfd < 0 || sync_dir(dfd) != 0) {
        *step = "flush the directory of";
        err = dfd < 0 ? dir_err : errno;
        rc = 1;
    }
    if (dfd >= 0) close(dfd); /* and with it the lock */
    ae_free(a, tmp);
    ae_free(a, target);
    errno = err;
    return rc;
}

int ae_file_open_read(const char *path, size_t *size, const char **why) {
    /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        *why = "cannot open";
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int err = errno;
        close(fd);
        *why = "cannot inspect";
        errno = err;
        return -1;
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        *why = kind_of(sb.st_mode, 0);
        errno = 0;
        return -2;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        *why = "cannot address";
        errno = EFBIG;
        return -1;
    }
    /* Reads of a regular file never block; the flag is cleared for clarity. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    *size = (size_t)sb.st_size;
    return fd;
}

ae_status ae_file_save(const ae_allocator *a, const char *path, const ae_span *parts,
                       size_t nparts, ae_errbuf *err) {
    const char *step = NULL;
    int rc = ae_file_replace(a, path, parts, nparts, &step);
    int e = errno;
    if (rc == -2)
        return ae_error(err, AE_ERR_IO, "it is %s, not a regular file; nothing was written", step);
    if (rc < 0)
        return ae_error(err, e == ENOMEM ? AE_ERR_OUT_OF_MEMORY : AE_ERR_IO, "cannot %s it: %s", step,
                        ae_sys_error(e).s);
    if (rc > 0) return ae_error(err, AE_ERR_IO, "written, but cannot %s it: %s", step, ae_sys_error(e).s);
    return AE_OK;
}
