/* stats.c: thread-safe pipeline counters with rate-limited warnings (see stats.h). */
#include "pipeline/stats.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"

static const char *const skip_names[CLASP_SKIP_N] = {
    "truncated", "too_large", "missing_field", "bad_image",
    "bad_text",  "bad_audio", "bad_label",     "bad_json",
};
static const char *const shard_names[CLASP_SHARD_N] = {"missing", "unreadable", "truncated",
                                                       "pipe_failed"};

void clasp_data_stats_init(clasp_data_stats *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
}

void clasp_data_stats_free(clasp_data_stats *s) {
    if (s) pthread_mutex_destroy(&s->mu);
}

void clasp_data_stats_snapshot(clasp_data_stats *src, clasp_data_stats *dst) {
    pthread_mutex_lock(&src->mu);
    memcpy(dst, src, sizeof *dst);
    pthread_mutex_unlock(&src->mu);
    memset(&dst->mu, 0, sizeof dst->mu);
    pthread_mutex_init(&dst->mu, NULL);
}

const char *clasp_skip_reason_name(clasp_skip_reason r) {
    return (unsigned)r < CLASP_SKIP_N ? skip_names[r] : "unknown";
}

const char *clasp_shard_error_name(clasp_shard_error e) {
    return (unsigned)e < CLASP_SHARD_N ? shard_names[e] : "unknown";
}

static void remember_(clasp_data_stats *s, const char *what, const char *shard, const char *key,
                      const char *detail) {
    if (s->n_first_skips >= CLASP_STATS_FIRST_SKIPS) return;
    snprintf(s->first_skips[s->n_first_skips++], sizeof s->first_skips[0], "%s %s%s%s%s%s", what,
             shard ? shard : "?", key ? " key " : "", key ? key : "", detail ? ": " : "",
             detail ? detail : "");
}

void clasp_data_stats_skip(clasp_data_stats *s, clasp_skip_reason r, const char *shard,
                           const char *key, const char *detail) {
    if ((unsigned)r >= CLASP_SKIP_N) return;
    pthread_mutex_lock(&s->mu);
    uint64_t n = ++s->skipped[r];
    remember_(s, skip_names[r], shard, key, detail);
    bool quiet = s->quiet;
    pthread_mutex_unlock(&s->mu);
    if (quiet) return;
    if (n <= CLASP_STATS_WARN_PER_REASON) {
        CLASP_WARN("skipped sample (%s): shard %s key %s%s%s", skip_names[r], shard ? shard : "?",
                   key ? key : "?", detail ? ": " : "", detail ? detail : "");
        if (n == CLASP_STATS_WARN_PER_REASON)
            CLASP_WARN("further '%s' skips are counted but not logged", skip_names[r]);
    }
}

void clasp_data_stats_shard_error(clasp_data_stats *s, clasp_shard_error e, const char *shard,
                                  const char *detail) {
    if ((unsigned)e >= CLASP_SHARD_N) return;
    pthread_mutex_lock(&s->mu);
    s->shard_errors[e]++;
    char what[64];
    snprintf(what, sizeof what, "shard_%s", shard_names[e]);
    remember_(s, what, shard, NULL, detail);
    bool quiet = s->quiet;
    pthread_mutex_unlock(&s->mu);
    if (!quiet)
        CLASP_WARN("shard %s: %s%s%s", shard ? shard : "?", shard_names[e], detail ? ": " : "",
                   detail ? detail : "");
}

void clasp_data_stats_add(clasp_data_stats *s, uint64_t *counter, uint64_t n) {
    pthread_mutex_lock(&s->mu);
    *counter += n;
    pthread_mutex_unlock(&s->mu);
}

uint64_t clasp_data_stats_total_skipped(const clasp_data_stats *s) {
    uint64_t t = 0;
    for (int i = 0; i < CLASP_SKIP_N; i++) t += s->skipped[i];
    return t;
}

uint64_t clasp_data_stats_total_shard_errors(const clasp_data_stats *s) {
    uint64_t t = 0;
    for (int i = 0; i < CLASP_SHARD_N; i++) t += s->shard_errors[i];
    return t;
}

cJSON *clasp_data_stats_to_json(clasp_data_stats *s) {
    clasp_data_stats c;
    clasp_data_stats_snapshot(s, &c);
    cJSON *o = cJSON_CreateObject();
    cJSON *by = cJSON_CreateObject();
    cJSON *sby = cJSON_CreateObject();
    cJSON *first = cJSON_CreateArray();
    if (!o || !by || !sby || !first) {
        cJSON_Delete(o);
        cJSON_Delete(by);
        cJSON_Delete(sby);
        cJSON_Delete(first);
        clasp_data_stats_free(&c);
        return NULL;
    }
    cJSON_AddNumberToObject(o, "samples_ok", (double)c.samples_ok);
    cJSON_AddNumberToObject(o, "samples_skipped", (double)clasp_data_stats_total_skipped(&c));
    for (int i = 0; i < CLASP_SKIP_N; i++)
        cJSON_AddNumberToObject(by, skip_names[i], (double)c.skipped[i]);
    cJSON_AddItemToObject(o, "skipped_by_reason", by);
    cJSON_AddNumberToObject(o, "shard_errors", (double)clasp_data_stats_total_shard_errors(&c));
    for (int i = 0; i < CLASP_SHARD_N; i++)
        cJSON_AddNumberToObject(sby, shard_names[i], (double)c.shard_errors[i]);
    cJSON_AddItemToObject(o, "shard_errors_by_reason", sby);
    cJSON_AddNumberToObject(o, "samples_read", (double)c.samples_read);
    cJSON_AddNumberToObject(o, "repeated_ext", (double)c.repeated_ext);
    cJSON_AddNumberToObject(o, "members_ignored", (double)c.members_ignored);
    cJSON_AddNumberToObject(o, "bytes", (double)c.bytes);
    cJSON_AddNumberToObject(o, "wait_seconds", c.wait_seconds);
    for (size_t i = 0; i < c.n_first_skips; i++)
        cJSON_AddItemToArray(first, cJSON_CreateString(c.first_skips[i]));
    cJSON_AddItemToObject(o, "first_skips", first);
    clasp_data_stats_free(&c);
    return o;
}
