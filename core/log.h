/* log.h: levelled logging to stderr (or a user callback). Thread-safe. */
#ifndef CLASP_CORE_LOG_H
#define CLASP_CORE_LOG_H

typedef enum clasp_log_level {
    CLASP_LOG_DEBUG = 0,
    CLASP_LOG_INFO = 1,
    CLASP_LOG_WARN = 2,
    CLASP_LOG_ERROR = 3,
    CLASP_LOG_NONE = 4
} clasp_log_level;

typedef void (*clasp_log_fn)(clasp_log_level level, const char *msg, void *user);

/* Messages below `level` are dropped. Default CLASP_LOG_INFO, or CLASP_LOG env
 * (debug|info|warn|error|none). */
void clasp_log_set_level(clasp_log_level level);
clasp_log_level clasp_log_get_level(void);
/* Route messages to `fn` instead of stderr; NULL restores stderr. */
void clasp_log_set_callback(clasp_log_fn fn, void *user);

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
void
clasp_log(clasp_log_level level, const char *fmt, ...);

#define CLASP_DEBUG(...) clasp_log(CLASP_LOG_DEBUG, __VA_ARGS__)
#define CLASP_INFO(...)  clasp_log(CLASP_LOG_INFO, __VA_ARGS__)
#define CLASP_WARN(...)  clasp_log(CLASP_LOG_WARN, __VA_ARGS__)
#define CLASP_ERROR(...) clasp_log(CLASP_LOG_ERROR, __VA_ARGS__)

#endif
