/* fault_shim.c: an LD_PRELOAD library that makes the Nth file write, fsync or rename of a
 * process fail, for the fault-injection matrix (scripts/faultinject.sh).
 *
 * Counted calls: write, pwrite and fwrite on regular files (not the terminal, pipes or
 * stdout/stderr), fsync, fdatasync, rename, renameat, and fclose of a file opened for writing
 * (the file is closed, then EOF is returned: a flush that failed at close). The call number
 * CLASP_FAULT_AT (1-based) fails with errno CLASP_FAULT_ERRNO (ENOSPC by default, or EIO), and
 * so does every later counted call when CLASP_FAULT_STICKY=1 (a disk that stays full).
 * CLASP_FAULT_COUNT=FILE receives the number of counted calls at exit (how many N there are).
 * A failure is reported on stderr as "fault_shim: failing OP #N (WHAT)".
 *
 * glibc's stdio writes through internal calls that no LD_PRELOAD library sees, so fprintf
 * output is covered by the other two mechanisms of the matrix (a full tmpfs, RLIMIT_FSIZE). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static long at_ = -1, count_;
static int errno_ = ENOSPC, sticky_;

__attribute__((constructor)) static void init_(void) {
    const char *a = getenv("CLASP_FAULT_AT");
    if (a && *a) at_ = atol(a);
    const char *e = getenv("CLASP_FAULT_ERRNO");
    if (e && !strcmp(e, "EIO")) errno_ = EIO;
    const char *s = getenv("CLASP_FAULT_STICKY");
    sticky_ = s && !strcmp(s, "1");
}

__attribute__((destructor)) static void fini_(void) {
    const char *path = getenv("CLASP_FAULT_COUNT");
    if (!path || !*path) return;
    FILE *f = fopen(path, "w");
    if (f) {
        fprintf(f, "%ld\n", count_);
        fclose(f);
    }
}

/* Counts one call; true when this one must fail. */
static int fail_(const char *op, const char *what) {
    long n = __atomic_add_fetch(&count_, 1, __ATOMIC_SEQ_CST);
    if (at_ < 1 || (sticky_ ? n < at_ : n != at_)) return 0;
    char msg[512];
    int k = snprintf(msg, sizeof msg, "fault_shim: failing %s #%ld (%s)\n", op, n, what);
    if (k > 0) /* fd 2 is never counted (see regular_fd_) */
        (void)!write(2, msg, (size_t)k < sizeof msg ? (size_t)k : sizeof msg - 1);
    errno = errno_;
    return 1;
}

static int regular_fd_(int fd) {
    struct stat st;
    return fd > 2 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

#define REAL(ret, name, ...)                                                                       \
    static ret (*real)(__VA_ARGS__);                                                               \
    if (!real) *(void **)(&real) = dlsym(RTLD_NEXT, name)

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(ssize_t, "write", int, const void *, size_t);
    if (regular_fd_(fd) && fail_("write", "fd")) return -1;
    return real(fd, buf, n);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(ssize_t, "pwrite", int, const void *, size_t, off_t);
    if (regular_fd_(fd) && fail_("pwrite", "fd")) return -1;
    return real(fd, buf, n, off);
}

size_t fwrite(const void *p, size_t size, size_t n, FILE *f) {
    REAL(size_t, "fwrite", const void *, size_t, size_t, FILE *);
    if (f != stdout && f != stderr && regular_fd_(fileno(f)) && fail_("fwrite", "stream")) {
        return 0;
    }
    return real(p, size, n, f);
}

int fclose(FILE *f) {
    REAL(int, "fclose", FILE *);
    int counted = f && f != stdout && f != stderr && regular_fd_(fileno(f)) &&
                  (fcntl(fileno(f), F_GETFL) & O_ACCMODE) != O_RDONLY;
    int r = real(f);
    if (counted && fail_("fclose", "stream")) return EOF;
    return r;
}

int fsync(int fd) {
    REAL(int, "fsync", int);
    if (fail_("fsync", "fd")) return -1;
    return real(fd);
}

int fdatasync(int fd) {
    REAL(int, "fdatasync", int);
    if (fail_("fdatasync", "fd")) return -1;
    return real(fd);
}

int rename(const char *a, const char *b) {
    REAL(int, "rename", const char *, const char *);
    if (fail_("rename", b)) return -1;
    return real(a, b);
}

int renameat(int da, const char *a, int db, const char *b) {
    REAL(int, "renameat", int, const char *, int, const char *);
    if (fail_("renameat", b)) return -1;
    return real(da, a, db, b);
}
