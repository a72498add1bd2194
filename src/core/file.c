/* Replacing a file atomically, for every writer of the library (model files,
 * .npy): a new file next to the target (same file system, so the rename is
 * atomic), written, flushed to disk, renamed over the target, and the
 * directory flushed so that the rename survives a crash. */
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

int ae_file_replace(const ae_allocator *a, const char *path, const ae_span *parts, size_t nparts,
                    const char **step) {
    size_t plen = strlen(path);
    char *tmp = plen < SIZE_MAX - 64 ? ae_alloc(a, plen + TMP_NAME_LEN + 2) : NULL;
    if (!tmp) {
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
        struct stat old;
        if (stat(path, &old) == 0 && S_ISREG(old.st_mode) && fchmod(fd, old.st_mode & 07777) != 0)
            failed = "set the permissions of";
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
    errno = err;
    return rc;
}
