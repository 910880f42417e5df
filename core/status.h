/* status.h: status codes and the thread-local error message.
 *
 * Every fallible library call returns a clasp_status (0 = CLASP_OK, negative = error) and,
 * on error, leaves a message in a thread-local buffer that names the file, field, key or
 * value involved. Read it with clasp_last_error(). Library code never exits on bad input;
 * only main() does.
 *
 *     if (clasp_st_open(path, &st) != CLASP_OK)
 *         fprintf(stderr, "error: %s\n", clasp_last_error());
 */
#ifndef CLASP_CORE_STATUS_H
#define CLASP_CORE_STATUS_H

#include <stdio.h>

typedef enum clasp_status {
    CLASP_OK = 0,
    CLASP_ERR_ARG = -1,         /* invalid argument or API misuse */
    CLASP_ERR_NOMEM = -2,       /* allocation failed */
    CLASP_ERR_IO = -3,          /* open/read/write/rename failed */
    CLASP_ERR_FORMAT = -4,      /* malformed file or data */
    CLASP_ERR_CONFIG = -5,      /* bad configuration value or missing field */
    CLASP_ERR_OVERFLOW = -6,    /* a size computation overflowed or exceeds a limit */
    CLASP_ERR_UNSUPPORTED = -7, /* valid but not supported (dtype, codec, ...) */
    CLASP_ERR_NOT_FOUND = -8,   /* a named item (tensor, field, file) does not exist */
    CLASP_ERR_STATE = -9,       /* object is in the wrong state for this call */
    CLASP_ERR_NUMERIC = -10,    /* non-finite value where a finite one is required */
    CLASP_ERR_INTERRUPTED = -11 /* stopped by a signal or a cancel request */
} clasp_status;

/* Short stable name of a status ("CLASP_ERR_FORMAT"). */
const char *clasp_status_name(clasp_status s);

/* Sets the thread-local message (printf-style) and returns `code`, so callers can write
 * `return clasp_set_error(CLASP_ERR_FORMAT, "%s: header length %zu beyond file", path, n);` */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
clasp_status
clasp_set_error(clasp_status code, const char *fmt, ...);

/* Prepends context to the current message: "ctx: old message". Returns `code`. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
clasp_status
clasp_wrap_error(clasp_status code, const char *fmt, ...);

/* The last message set on this thread ("" if none). Valid until the next set on this thread. */
const char *clasp_last_error(void);
void clasp_clear_error(void);

/* Internal invariant check: aborts with file:line. Never used for input validation. */
void clasp__assert_fail(const char *expr, const char *file, int line);
#define CLASP_ASSERT(x) ((x) ? (void)0 : clasp__assert_fail(#x, __FILE__, __LINE__))

/* Propagate a non-OK status. */
#define CLASP_TRY(expr)                                                                            \
    do {                                                                                           \
        clasp_status clasp_try_s_ = (expr);                                                        \
        if (clasp_try_s_ != CLASP_OK) return clasp_try_s_;                                         \
    } while (0)

#endif
