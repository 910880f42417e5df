/* tar_reader.h: reading WebDataset tar shards with libarchive and assembling samples.
 *
 * A shard is a tar (ustar, GNU or pax; whole-file gzip, zstd, xz or bzip2 detected by
 * libarchive) read from a file, from stdin ("-") or from a command's stdout ("pipe:CMD").
 * Sample assembly follows WebDataset exactly:
 *   - only regular files count; directories, links and devices are skipped;
 *   - key = member path up to the first dot of its LAST path component, sub-folders kept
 *     ("dir/a.b.c.png" -> key "dir/a", ext "b.c.png"); ext is lower-cased (ASCII);
 *     members whose last component starts with "__" or has no dot are skipped;
 *   - a sample is a run of adjacent members with the same key; a repeated extension inside
 *     one run starts a new sample (counted in stats->repeated_ext).
 * Damage never stops the caller: a member whose data is cut marks its sample truncated and
 * ends the shard; a header error ends the shard (stats: shard error "truncated", or
 * "unreadable" when no member could be read at all); a missing file is "missing".
 *
 *     clasp_tar_reader *r;
 *     if (clasp_tar_open("data/train-000000.tar", &stats, 0, &r) == CLASP_OK) {
 *         clasp_sample s = {0};
 *         bool got;
 *         while (clasp_tar_next(r, true, &s, &got) == CLASP_OK && got) { use(&s); }
 *         clasp_sample_clear(&s);
 *         clasp_tar_close(r);
 *     }
 *
 * A reader is used by one thread at a time. */
#ifndef CLASP_PIPELINE_TAR_READER_H
#define CLASP_PIPELINE_TAR_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "pipeline/stats.h"

/* Default limit on one member's size; larger members are skipped (reason "too_large"). */
#define CLASP_TAR_MAX_MEMBER_BYTES ((size_t)256 << 20)
/* A sample holds at most this many fields, and its fields at most the member limit in total:
 * 10,000 members sharing one key are one sample (WebDataset groups by key) that would otherwise
 * hold them all in memory. Beyond either limit the sample is skipped as "too_large" and the
 * rest of its members are skipped unread. */
#define CLASP_TAR_MAX_FIELDS 64

typedef struct clasp_field {
    char *ext;     /* lower-cased extension, e.g. "png", "b.c.png"; owned */
    uint8_t *data; /* (n) payload bytes, NUL-terminated one past n; NULL without payload */
    size_t n;      /* payload size in bytes (from the header even without payload) */
} clasp_field;

typedef struct clasp_sample {
    char *shard;      /* shard name, owned */
    char *key;        /* WebDataset key, owned */
    uint64_t ordinal; /* index of this sample within its shard (0-based) */
    clasp_field *fields;
    size_t n_fields, cap_fields;
    bool truncated;   /* a member's data was cut: the sample is unusable */
    bool too_large;   /* a member exceeded the size limit: the sample is unusable */
    bool has_payload; /* false when read with payload = false (headers only) */
} clasp_sample;

/* Frees the contents of `s` and zeroes it (the struct itself is the caller's). */
void clasp_sample_clear(clasp_sample *s);
/* Moves `src` into `dst` (dst cleared first); src is zeroed. */
void clasp_sample_move(clasp_sample *dst, clasp_sample *src);
/* The field with exactly this extension, or NULL. */
const clasp_field *clasp_sample_field(const clasp_sample *s, const char *ext);

/* Splits a member path into key and extension following WebDataset; returns false for names
 * that are not sample members (no dot in the last component, leading "__", empty parts).
 * key_len receives the key length in path; *ext points into path. */
bool clasp_tar_split_name(const char *path, size_t *key_len, const char **ext);

typedef struct clasp_tar_reader clasp_tar_reader;

/* Opens a shard by name (path, "-", "pipe:CMD"). `stats` (may be NULL) receives shard errors
 * and counters; `max_member_bytes` 0 means CLASP_TAR_MAX_MEMBER_BYTES.
 * Returns CLASP_ERR_NOT_FOUND (missing file), CLASP_ERR_IO (cannot open or run), and counts
 * the shard error in stats. A file that is not a tar opens fine and fails at the first
 * clasp_tar_next (counted "unreadable"). */
clasp_status clasp_tar_open(const char *shard, clasp_data_stats *stats, size_t max_member_bytes,
                            clasp_tar_reader **out);

/* Opens a shard held in memory (data[n], borrowed until clasp_tar_close); `name` names it in
 * samples and messages. Used by the fuzz target and by tests. */
clasp_status clasp_tar_open_memory(const void *data, size_t n, const char *name,
                                   clasp_data_stats *stats, size_t max_member_bytes,
                                   clasp_tar_reader **out);

/* Reads the next sample into *s (cleared first). With payload = false the member data is
 * skipped (archive_read_data_skip) and fields carry only ext and size. *got = false at the
 * end of the shard, including an end caused by damage (counted in stats).
 * Returns CLASP_ERR_NOMEM only; damage is never an error here. */
clasp_status clasp_tar_next(clasp_tar_reader *r, bool payload, clasp_sample *s, bool *got);

/* True when the shard ended because of damage or could not be read at all. */
bool clasp_tar_failed(const clasp_tar_reader *r);

/* Closes the archive (and the pipe; a pipe command that exited non-zero after being read
 * to its end is counted as "pipe_failed"). Accepts NULL. */
void clasp_tar_close(clasp_tar_reader *r);

/* Which modality a field feeds, from its extension and a field map. */
typedef enum clasp_field_kind {
    CLASP_FIELD_IMAGE = 0,
    CLASP_FIELD_TEXT,
    CLASP_FIELD_AUDIO,
    CLASP_FIELD_LABEL,
    CLASP_FIELD_JSON,
    CLASP_FIELD_OTHER,
    CLASP_FIELD_N
} clasp_field_kind;

#define CLASP_NEED_IMAGE (1u << CLASP_FIELD_IMAGE)
#define CLASP_NEED_TEXT  (1u << CLASP_FIELD_TEXT)
#define CLASP_NEED_AUDIO (1u << CLASP_FIELD_AUDIO)
#define CLASP_NEED_LABEL (1u << CLASP_FIELD_LABEL)

const char *clasp_field_kind_name(clasp_field_kind k);

/* Extension lists, separated by ',' or ';' (OpenCLIP style "jpg;png"). */
typedef struct clasp_field_map {
    char image[160]; /* default "png,jpg,jpeg,bmp,gif,tga,ppm,pgm" */
    char text[64];   /* default "txt" */
    char audio[96];  /* default "wav,flac,ogg,opus,mp3" */
    char label[64];  /* default "cls" */
    char json[64];   /* default "json" */
} clasp_field_map;

clasp_field_map clasp_field_map_default(void);
/* Parses "image,text" / "audio,text,label" into a CLASP_NEED_* mask; CLASP_ERR_ARG on an
 * unknown name. */
clasp_status clasp_field_parse_required(const char *s, unsigned *mask);

/* The kind of an extension. An extension matching no list exactly is classified by its part
 * after the last dot ("b.c.png" -> image). */
clasp_field_kind clasp_field_map_kind(const clasp_field_map *m, const char *ext);
/* The first field of a kind in s (exact extension matches first, then by last dot), or NULL. */
const clasp_field *clasp_sample_find(const clasp_sample *s, const clasp_field_map *m,
                                     clasp_field_kind k);

#endif
