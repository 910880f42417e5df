/* fuzz.h: what every libFuzzer target of tests/fuzz/ shares (header-only; each target is one
 * program). Targets feed arbitrary bytes to one parser; a crash, hang, leak or sanitizer report
 * is a bug, a refused input is fine. scripts/fuzz.sh runs them all. */
#ifndef CLASP_TESTS_FUZZ_H
#define CLASP_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Silences clasp's log (warnings about refused inputs would flood the fuzzer's output). */
static inline void fuzz_quiet(void) {
    clasp_log_set_level(CLASP_LOG_NONE);
}

/* data[size] as a NUL-terminated copy (caller frees); NULL when out of memory. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (s) {
        memcpy(s, data, size);
        s[size] = '\0';
    }
    return s;
}

/* Writes data[size] to a per-process file under /dev/shm (or /tmp) named `name` and returns its
 * path (static storage), or NULL. For parsers that take a path. */
static inline const char *fuzz_file(const char *name, const uint8_t *data, size_t size) {
    static char path[256];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof path, "%s/clasp-fuzz-%ld-%s", dir, (long)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || w != size) return NULL;
    return path;
}

#endif
