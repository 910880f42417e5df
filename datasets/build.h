/* build.h: the options every shard builder (fmnist, folder/tsv, asterisk, emoji, espeak) has:
 * where the shards go, how large each may grow, a cap on the samples for quick trials, and
 * progress lines. Each builder's options embed one as `shards`, with the builder's defaults. */
#ifndef CLASP_DATASETS_BUILD_H
#define CLASP_DATASETS_BUILD_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "datasets/shard_writer.h"

typedef struct clasp_shards_options {
    const char *out_dir; /* output folder, created if missing */
    size_t maxcount;     /* samples per shard; 0 = no limit */
    uint64_t maxsize;    /* bytes per shard file; 0 = no limit */
    size_t limit;        /* at most this many samples per unit the builder names; 0 = all */
    bool progress;       /* progress lines on stderr */
} clasp_shards_options;

/* The writer config for shards PREFIX-%06d.tar in s->out_dir with s's size limits. */
clasp_shard_writer_config clasp_shards_writer_config(const clasp_shards_options *s,
                                                     const char *prefix);
/* Adds "maxcount", "maxsize" and "limit" to a manifest's options object. */
void clasp_shards_options_to_json(cJSON *opt, const clasp_shards_options *s);

#endif
