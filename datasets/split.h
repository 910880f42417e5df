/* split.h: the train/validation split of the shard builders.
 *
 * One rule for every builder that splits (asterisk, emoji, espeak): a sample goes to
 * "validation" when XXH64(split_id, seed 0) % 100 < val_percent, else to "train". Each builder
 * chooses the split id (asterisk: the sample key "en/NAME"; emoji: the base emoji's code points
 * without FE0F; espeak: the split id of the transcript's source), so one transcript or emoji
 * lands in the same split in every set that contains it.
 *
 *     clasp_split_writers sw = {0};
 *     CLASP_TRY(clasp_split_writers_open(&sw, &m, dir, maxcount, maxsize, val_percent));
 *     clasp_split_writers_add(&sw, split_id, key, key, fields, n, &written);  // per sample
 *     clasp_split_writers_finish(&sw, dir);  // shards closed, manifest.json written
 *     clasp_split_writers_free(&sw);
 */
#ifndef CLASP_DATASETS_SPLIT_H
#define CLASP_DATASETS_SPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "datasets/build.h"
#include "datasets/manifest.h"
#include "datasets/shard_writer.h"

/* True when `split_id` belongs to the validation split: XXH64(split_id, 0) % 100 <
 * val_percent (0: never, 100: always). */
bool clasp_split_is_validation(const char *split_id, int val_percent);

/* CLASP_ERR_ARG ("BUILDER: val_percent N not in 0..100") unless 0 <= val_percent <= 100. */
clasp_status clasp_split_check_percent(const char *builder, int val_percent);

/* Records the split and shard options in the manifest's options object, in this order:
 * "val_percent", "split_rule" (`rule`: the builder's split id spelled out), "maxcount",
 * "maxsize", "limit". */
void clasp_split_options(cJSON *opt, int val_percent, const char *rule,
                         const clasp_shards_options *s);

/* The "train" and "validation" shard writers of one output folder. */
typedef struct clasp_split_writers {
    clasp_shard_writer *train, *val;
    clasp_manifest *m; /* gets the splits, and the samples whose key a writer refuses */
    int val_percent;
} clasp_split_writers;

/* Creates `dir` (and its parents) and opens the writers train-NNNNNN.tar and
 * validation-NNNNNN.tar with the shard limits (see clasp_shard_writer_config). */
clasp_status clasp_split_writers_open(clasp_split_writers *w, clasp_manifest *m,
                                      const clasp_shards_options *s, int val_percent);

/* Adds a sample to the writer of the split `split_id` falls in and counts it in *written. A
 * key the writer refuses (CLASP_ERR_ARG) is not an error: it is counted in the manifest as
 * skipped "bad_name", listed as `item` with the writer's message. Other errors are returned. */
clasp_status clasp_split_writers_add(clasp_split_writers *w, const char *split_id, const char *key,
                                     const char *item, const clasp_shard_field *fields,
                                     size_t n_fields, size_t *written);

/* Adds a speech sample: KEY.json (`meta` printed compactly; freed here, even on error), KEY.txt
 * (`text`) and KEY.wav (`wav`, wn bytes), as clasp_split_writers_add. */
clasp_status clasp_split_writers_add_speech(clasp_split_writers *w, const char *split_id,
                                            const char *key, const char *item, cJSON *meta,
                                            const char *text, const void *wav, size_t wn,
                                            size_t *written);

/* Closes both writers, records them in the manifest as splits "train" and "validation" and
 * saves DIR/manifest.json. */
clasp_status clasp_split_writers_finish(clasp_split_writers *w, const char *dir);

/* Releases both writers (an unfinished shard is removed). The manifest is not touched. */
void clasp_split_writers_free(clasp_split_writers *w);

#endif
