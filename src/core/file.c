/* Replacing a file atomically, for every writer of the library (model files,
 * .npy): a new file next to the target (same file system, so the rename is
 * atomic), written, flushed to disk, renamed over the target, and the
 * directory flushed so that the rename survives a crash. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
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

/* Flushes the directory holding `path` (dir: room for strlen(path) + 2). */
static int sync_dir(const char *path, char *dir) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        strcpy(dir, ".");
    else if (slash == path)
        strcpy(dir, "/");
    else {
        memcpy(dir, path, (size_t)(slash - path));
        dir[slash - path] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    int err = errno;
    close(fd);
    /* Some file systems cannot flush a directory; that is not an error. */
    if (rc != 0 && err != EINVAL && err != ENOTSUP) {
        errno = err;
        return -1;
    }
    return 0;
}

int ae_file_replace(const ae_allocator *a, const char *path, const ae_span *parts, size_t nparts,
                    const char **step) {
    size_t plen = strlen(path);
    char *tmp = plen < SIZE_MAX - 64 ? ae_alloc(a, plen + 64) : NULL;
    if (!tmp) {
        *step = "allocate a name next to";
        errno = ENOMEM;
        return -1;
    }
    int fd = -1;
    for (unsigned attempt = 0; attempt < 1000 && fd < 0; attempt++) {
        snprintf(tmp, plen + 64, "%s.tmp-%ld-%u", path, (long)getpid(), attempt);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0 && errno != EEXIST) break;
    }
    if (fd < 0) {
        *step = "create a temporary file next to";
        int err = errno;
        ae_free(a, tmp);
        errno = err;
        return -1;
    }
    const char *failed = NULL;
    /* A file replaced keeps its permission bits. */
    struct stat old;
    if (stat(path, &old) == 0 && S_ISREG(old.st_mode) && fchmod(fd, old.st_mode & 07777) != 0)
        failed = "set the permissions of";
    for (size_t i = 0; !failed && i < nparts; i++)
        if (write_all(fd, parts[i].p, parts[i].n) != 0) failed = "write";
    if (!failed && fsync(fd) != 0) failed = "flush";
    int err = errno;
    if (close(fd) != 0 && !failed) {
        failed = "close";
        err = errno;
    }
    if (!failed && rename(tmp, path) != 0) {
        failed = "rename a temporary file to";
        err = errno;
    }
    if (failed) {
        unlink(tmp);
        ae_free(a, tmp);
        *step = failed;
        errno = err;
        return -1;
    }
    int rc = 0;
    if (sync_dir(path, tmp) != 0) {
        *step = "flush the directory of";
        rc = 1;
    }
    err = errno;
    ae_free(a, tmp);
    errno = err;
    return rc;
}
