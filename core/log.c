/* log.c: levelled logging. */
#include "core/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;
static int g_level = -1;
static clasp_log_fn g_fn;
static void *g_user;

static int level_from_env_(void) {
    const char *e = getenv("CLASP_LOG");
    if (!e) return CLASP_LOG_INFO;
    if (!strcmp(e, "debug")) return CLASP_LOG_DEBUG;
    if (!strcmp(e, "warn")) return CLASP_LOG_WARN;
    if (!strcmp(e, "error")) return CLASP_LOG_ERROR;
    if (!strcmp(e, "none")) return CLASP_LOG_NONE;
    return CLASP_LOG_INFO;
}

void clasp_log_set_level(clasp_log_level level) {
    pthread_mutex_lock(&g_log_mu);
    g_level = (int)level;
    pthread_mutex_unlock(&g_log_mu);
}

clasp_log_level clasp_log_get_level(void) {
    pthread_mutex_lock(&g_log_mu);
    if (g_level < 0) g_level = level_from_env_();
    int l = g_level;
    pthread_mutex_unlock(&g_log_mu);
    return (clasp_log_level)l;
}

void clasp_log_set_callback(clasp_log_fn fn, void *user) {
    pthread_mutex_lock(&g_log_mu);
    g_fn = fn;
    g_user = user;
    pthread_mutex_unlock(&g_log_mu);
}

void clasp_log(clasp_log_level level, const char *fmt, ...) {
    if ((int)level < (int)clasp_log_get_level()) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    static const char *names[] = {"debug", "info", "warning", "error", ""};
    pthread_mutex_lock(&g_log_mu);
    if (g_fn) {
        g_fn(level, msg, g_user);
    } else {
        fprintf(stderr, "clasp %s: %s\n", names[level], msg);
    }
    pthread_mutex_unlock(&g_log_mu);
}
