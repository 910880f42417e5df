/* data.h: the training/evaluation data source for a model: a loader (loader.h) configured
 * from the model config's preprocessing (modalities/preprocess.h: image resize and
 * normalisation, tokenizer, context length, audio front-end), running over epochs without end,
 * with a serialisable position for exact resume.
 *
 * Data parallelism (rank of world, batch_size = this rank's rows b) splits the data in one of
 * two ways:
 * - CLASP_DATA_SPLIT_SHARDS (default): the loader deals the shards of each epoch to the ranks
 *   (loader.h); each rank reads and decodes only its shards. Scales; the global batch is a
 *   sample of the data statistically like one process's, but not the same rows (the loader
 *   refuses a rank without shards unless samples_per_epoch resamples).
 * - CLASP_DATA_SPLIT_SAMPLES: every rank reads the same stream (the one-process order) in
 *   global batches of b * world rows and keeps rows rank*b .. rank*b+b-1 of each. The union of
 *   the ranks' batches is exactly the one-process batch, so N ranks reproduce one process (up
 *   to floating-point summation order); each rank reads and decodes every sample, so it is for
 *   verification and small data, not for scaling. */
#ifndef CLASP_PIPELINE_DATA_H
#define CLASP_PIPELINE_DATA_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/status.h"
#include "modalities/preprocess.h"
#include "pipeline/loader.h"

typedef enum clasp_data_split {
    CLASP_DATA_SPLIT_SHARDS = 0, /* each rank reads its own shards */
    CLASP_DATA_SPLIT_SAMPLES = 1 /* each rank reads all, keeps its rows of each global batch */
} clasp_data_split;

typedef struct clasp_data_options {
    const char *spec;
    uint64_t seed;
    int batch_size;
    int workers;        /* decode threads */
    int shuffle_buffer; /* samples */
    int64_t samples_per_epoch;
    bool train;      /* true: shuffle, augment, drop last; false: evaluation order, keep all */
    int rank, world; /* data-parallel position; default 0 of 1 */
    clasp_data_split split; /* how ranks share the data (above); irrelevant for one rank */
    /* The fields (CLASP_NEED_IMAGE | _TEXT | _AUDIO) a usable sample needs and that are
     * decoded: the two inputs of the pairing this source feeds; 0 = image-text. */
    unsigned required;
    bool audio_augment; /* training: gain/shift/SpecAugment on audio (random crop follows
                           the front-end's "crop" field whenever training) */
    /* training: image augmentation (random-resized-crop, flip, jitter, grayscale:
     * modalities/augment.h); NULL = none */
    const clasp_image_augment_config *image_augment;
    clasp_on_error on_error; /* a missing or unreadable shard: skip and count (default) or fail */
    int views; /* 2: batches also carry a second, independently augmented view of each image /
                  clip (images2, audio2: loader.h's `views`; --pair image-image); else one */
} clasp_data_options;

clasp_data_options clasp_data_default_options(void);

/* Fills a loader config (clasp_loader_default_config otherwise) from composed preprocessing
 * for samples that carry the fields `required` (CLASP_NEED_*; lc->required is set to it): the
 * image resize and normalisation, the caption normalisation, the tokenizer (borrowed from pre:
 * keep pre until the loader is closed; byte-level when pre has no text) and context length,
 * the audio front-end. A required field whose modality the config lacks is CLASP_ERR_CONFIG.
 * A modality not required keeps the loader's defaults, which are never used. */
clasp_status clasp_data_loader_config(const clasp_preprocess *pre, unsigned required,
                                      clasp_loader_config *lc);

typedef struct clasp_data clasp_data;

/* Opens the source for options o and preprocessing pre (borrowed: keep it until
 * clasp_data_close). */
clasp_status clasp_data_open(const clasp_data_options *o, const clasp_preprocess *pre,
                             clasp_data **out);
void clasp_data_close(clasp_data *d);

/* Samples of one epoch that carry the required fields, counted from tar headers only (no
 * decoding; samples that later fail to decode are not subtracted), divided by world (this
 * rank's share). Cached after one pass. With samples_per_epoch it is that number. */
clasp_status clasp_data_epoch_samples(clasp_data *d, int64_t *n);

/* The next full batch of batch_size rows (this rank's), crossing epoch boundaries (training)
 * as needed. The batch stays valid until the next call. clasp_data_release is a no-op kept for
 * symmetry. */
clasp_status clasp_data_next(clasp_data *d, const clasp_batch **b);
void clasp_data_release(clasp_data *d, const clasp_batch *b);
/* The underlying loader (for evaluation passes that want the epoch end). */
clasp_loader *clasp_data_loader(clasp_data *d);
/* Current epoch (0-based) of the loader. */
uint64_t clasp_data_epoch(const clasp_data *d);

/* Position after the last batch, as JSON (caller deletes) / restore by reopening the loader. */
clasp_status clasp_data_position(clasp_data *d, cJSON **out);
clasp_status clasp_data_restore(clasp_data *d, const cJSON *pos);

/* Skip counters as a JSON object {reason: count} (caller deletes) and their total. */
cJSON *clasp_data_skips_json(clasp_data *d);
int64_t clasp_data_skipped_total(clasp_data *d);
/* Seconds the consumer waited on the loader so far. */
double clasp_data_wait_seconds(clasp_data *d);

#endif
