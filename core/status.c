/* status.c: status names and the thread-local error buffer. */
#include "core/status.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define CLASP_ERROR_CAP 1024
static _Thread_local char g_error[CLASP_ERROR_CAP];

const char *clasp_status_name(clasp_status s) {
    switch (s) {
    case CLASP_OK:
        return "CLASP_OK";
    case CLASP_ERR_ARG:
        return "CLASP_ERR_ARG";
    case CLASP_ERR_NOMEM:
        return "CLASP_ERR_NOMEM";
    case CLASP_ERR_IO:
        return "CLASP_ERR_IO";
    case CLASP_ERR_FORMAT:
        return "CLASP_ERR_FORMAT";
    case CLASP_ERR_CONFIG:
        return "CLASP_ERR_CONFIG";
    case CLASP_ERR_OVERFLOW:
        return "CLASP_ERR_OVERFLOW";
    case CLASP_ERR_UNSUPPORTED:
        return "CLASP_ERR_UNSUPPORTED";
    case CLASP_ERR_NOT_FOUND:
        return "CLASP_ERR_NOT_FOUND";
    case CLASP_ERR_STATE:
        return "CLASP_ERR_STATE";
    case CLASP_ERR_NUMERIC:
        return "CLASP_ERR_NUMERIC";
    case CLASP_ERR_INTERRUPTED:
        return "CLASP_ERR_INTERRUPTED";
    }
    return "CLASP_ERR_UNKNOWN";
}

clasp_status clasp_set_error(clasp_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_error, sizeof g_error, fmt, ap);
    va_end(ap);
    return code;
}

clasp_status clasp_wrap_error(clasp_status code, const char *fmt, ...) {
    char prefix[CLASP_ERROR_CAP];
    char old[CLASP_ERROR_CAP];
    memcpy(old, g_error, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t np = strlen(prefix);
    if (np > CLASP_ERROR_CAP - 3) np = CLASP_ERROR_CAP - 3;
    memcpy(g_error, prefix, np);
    g_error[np] = ':';
    g_error[np + 1] = ' ';
    size_t no = strlen(old);
    if (no > CLASP_ERROR_CAP - np - 3) no = CLASP_ERROR_CAP - np - 3;
    memcpy(g_error + np + 2, old, no);
    g_error[np + 2 + no] = '\0';
    return code;
}

const char *clasp_last_error(void) {
    return g_error;
}

void clasp_clear_error(void) {
    g_error[0] = '\0';
}

void clasp__assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "clasp: internal assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}
