/* stats.h: counters of the data pipeline: samples read and decoded, samples skipped by
 * reason, shards that failed by reason, and the first few skipped samples by name.
 *
 * Every bad sample or shard is counted, never fatal (except by --on-error fail): the
 * reader, the decode threads and `clasp shards inspect` all report through one
 * clasp_data_stats. Warnings are rate-limited: the first CLASP_STATS_WARN_PER_REASON skips
 * of each reason are logged with shard and key, later ones only counted.
 * Thread-safe: all calls take an internal mutex. */
#ifndef CLASP_PIPELINE_STATS_H
#define CLASP_PIPELINE_STATS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

/* Why a sample was skipped. Names (clasp_skip_reason_name) are the JSON keys. */
typedef enum clasp_skip_reason {
    CLASP_SKIP_TRUNCATED = 0, /* "truncated": a member's data was cut (end of shard) */
    CLASP_SKIP_TOO_LARGE,     /* "too_large": a member above the size limit */
    CLASP_SKIP_MISSING_FIELD, /* "missing_field": a required field (image, text, ...) absent */
    CLASP_SKIP_BAD_IMAGE,     /* "bad_image": image failed to decode or was too large */
    CLASP_SKIP_BAD_TEXT,      /* "bad_text": empty caption or invalid UTF-8 */
    CLASP_SKIP_BAD_AUDIO,     /* "bad_audio": audio failed to decode or had no frames */
    CLASP_SKIP_BAD_LABEL,     /* "bad_label": cls not a decimal integer */
    CLASP_SKIP_BAD_JSON,      /* "bad_json": metadata json unparsable */
    CLASP_SKIP_N
} clasp_skip_reason;

/* Why a whole shard (or its tail) was lost. */
typedef enum clasp_shard_error {
    CLASP_SHARD_MISSING = 0, /* "missing": file does not exist */
    CLASP_SHARD_UNREADABLE,  /* "unreadable": cannot open, or not a tar at all */
    CLASP_SHARD_TRUNCATED,   /* "truncated": a header or data error part-way */
    CLASP_SHARD_PIPE_FAILED, /* "pipe_failed": pipe: command exited non-zero */
    CLASP_SHARD_N
} clasp_shard_error;

#define CLASP_STATS_WARN_PER_REASON 5
#define CLASP_STATS_FIRST_SKIPS     8

typedef struct clasp_data_stats {
    pthread_mutex_t mu;
    uint64_t shards_opened; /* shards opened successfully */
    uint64_t bytes;         /* payload bytes read from members */
    uint64_t samples_read;  /* raw samples assembled from tar members */
    uint64_t samples_ok;    /* samples that passed all checks (and decode, if decoding) */
    uint64_t skipped[CLASP_SKIP_N];
    uint64_t shard_errors[CLASP_SHARD_N];
    uint64_t repeated_ext;    /* samples split because an extension repeated in a key run */
    uint64_t members_ignored; /* directories, links, devices, __key__-style members */
    uint64_t fields[16];      /* per-field counts, indexed by clasp_field_kind (tar_reader.h) */
    double wait_seconds;      /* time the consumer waited for data (loader only) */
    char first_skips[CLASP_STATS_FIRST_SKIPS][256]; /* "reason shard key: detail" */
    size_t n_first_skips;
    bool quiet; /* true: no warnings logged (counting only) */
} clasp_data_stats;

void clasp_data_stats_init(clasp_data_stats *s);
void clasp_data_stats_free(clasp_data_stats *s);
/* Copies the counters of `src` into `dst` (dst must not be initialised; no mutex copied). */
void clasp_data_stats_snapshot(clasp_data_stats *src, clasp_data_stats *dst);

const char *clasp_skip_reason_name(clasp_skip_reason r);
const char *clasp_shard_error_name(clasp_shard_error e);

/* Counts one skipped sample; logs a warning naming shard and key (rate-limited). */
void clasp_data_stats_skip(clasp_data_stats *s, clasp_skip_reason r, const char *shard,
                           const char *key, const char *detail);
/* Counts one failed shard; always logs (shards are few). */
void clasp_data_stats_shard_error(clasp_data_stats *s, clasp_shard_error e, const char *shard,
                                  const char *detail);
/* Adds to a plain counter under the mutex. */
void clasp_data_stats_add(clasp_data_stats *s, uint64_t *counter, uint64_t n);
uint64_t clasp_data_stats_total_skipped(const clasp_data_stats *s);
uint64_t clasp_data_stats_total_shard_errors(const clasp_data_stats *s);

/* A JSON object with samples_ok, samples_skipped, skipped_by_reason {reason: n} (all
 * reasons), shard_errors, shard_errors_by_reason, repeated_ext, members_ignored, bytes,
 * wait_seconds, first_skips [..]. Caller frees with cJSON_Delete; NULL on allocation failure. */
cJSON *clasp_data_stats_to_json(clasp_data_stats *s);

#endif
