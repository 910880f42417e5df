/* loader.h: the threaded, deterministic batch loader over WebDataset shards.
 *
 * Stages (one reader thread, n_threads decode threads, the caller's thread collates):
 *
 *   shard order (seed, epoch, rank) -> tar reader -> shuffle buffer -> emission index j
 *     -> decode threads (any order) -> re-ordered by j -> batch (contiguous tensors)
 *
 * The shuffle buffer holds raw (undecoded) samples and is driven by the RNG stream
 * (seed, CLASP_RNG_SHUFFLE, epoch), so the emission order j is a pure function of the tar
 * headers, the seed and the epoch. Decoding is a pure function of (bytes, seed, epoch, key)
 * (caption choice and augmentation are keyed by the sample key), and the collator takes
 * samples in j order, skipping bad ones. So the batch stream is byte-identical for any number
 * of decode threads and any thread timing.
 *
 * Exact resume: the position (epoch, raw samples consumed, usable samples emitted, batches)
 * after any batch is all the state there is. A loader opened at a position replays the
 * epoch's tar headers with archive_read_data_skip (no payload reads, no decoding) through the
 * same shuffle-buffer bookkeeping, then reads the payloads of just the samples still in the
 * buffer, and continues: its batches equal those the uninterrupted loader would have produced.
 * ("-" cannot be re-read: resuming a stdin spec mid-epoch is refused.)
 *
 * Memory is bounded whatever the rates: shuffle_buffer raw samples + queue_depth raw samples
 * + a re-order window of 2 * queue_depth decoded samples + one batch.
 *
 *     clasp_loader_config cfg = clasp_loader_default_config();
 *     cfg.spec = "data/train-{000000..000009}.tar"; cfg.batch_size = 256; ...
 *     clasp_loader *L;
 *     CLASP_TRY(clasp_loader_open(&cfg, NULL, &L));
 *     for (;;) {
 *         const clasp_batch *b; bool end;
 *         CLASP_TRY(clasp_loader_next(L, &b, &end));
 *         if (end) { ... epoch done; the next call starts the next epoch ... continue; }
 *         train_step(b->images, b->tokens, b->n);
 *     }
 *     clasp_loader_close(L);
 *
 * A loader is driven by one thread (its internal threads are its own). */
#ifndef CLASP_PIPELINE_LOADER_H
#define CLASP_PIPELINE_LOADER_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "modalities/audio.h"
#include "modalities/augment.h"
#include "modalities/image.h"
#include "modalities/text.h"
#include "modalities/tokenizer.h"
#include "pipeline/stats.h"
#include "pipeline/tar_reader.h"

typedef enum clasp_on_error {
    CLASP_ON_ERROR_SKIP = 0, /* a missing or unreadable shard is counted and skipped */
    CLASP_ON_ERROR_FAIL = 1  /* ... or makes clasp_loader_next fail */
} clasp_on_error;

typedef struct clasp_loader_config {
    const char *spec; /* shard spec (shardlist.h); copied at open */
    uint64_t seed;
    int rank, world;            /* data-parallel split; default 0 of 1 */
    int n_threads;              /* decode threads, >= 1 */
    size_t batch_size;          /* rows per batch, >= 1 */
    size_t shuffle_buffer;      /* raw samples in the shuffle buffer; 0 = no sample shuffle */
    bool shuffle_shards;        /* shuffle the shard order per epoch */
    bool drop_last;             /* drop the last partial batch of an epoch (training) */
    bool eval;                  /* no shuffling, no augmentation, keep the last partial batch */
    uint64_t samples_per_epoch; /* 0 = exact epochs; > 0 = shards resampled with replacement
                                   and an epoch ends after this many usable samples (per rank) */
    clasp_on_error on_error;
    size_t queue_depth;      /* raw samples between reader and decoders; 0 = 4 * n_threads */
    size_t max_member_bytes; /* 0 = CLASP_TAR_MAX_MEMBER_BYTES */

    unsigned required; /* CLASP_NEED_* fields a usable sample must have (and that are
                          decoded into the batch); default image | text */
    clasp_field_map fields;
    clasp_image_config image;                 /* image.size must be > 0 */
    clasp_image_augment_config image_augment; /* training only (ignored in eval); default
                                                 disabled: set .enabled to turn it on */
    clasp_text_config text;
    const clasp_tokenizer *tokenizer; /* borrowed; NULL = byte-level */
    int context_length;               /* tokens per caption, >= 2 (default 32) */
    clasp_audio_config audio;
    clasp_audio_augment_config audio_augment; /* training only */
    bool quiet;                               /* count skips without logging warnings */
    int views; /* 0 or 1: one view; 2: a second, independently augmented view of each image and
                  audio clip (batch->images2 / audio2; SimCLR's image-image pairing): view v
                  is augmented with clasp_augment_view_seed(seed, v) (modalities/augment.h),
                  so view 0 equals the one-view batch. Without augmentation (eval mode, or
                  augmentation off) the two views are equal. */
} clasp_loader_config;

/* Defaults: rank 0 of 1, 1 thread, batch 32, shuffle buffer 1000, shuffled shards, drop_last,
 * training mode, exact epochs, on_error skip, required image|text, default field map, image /
 * text / audio defaults of modalities/ (image augmentation: augment.h's defaults but disabled;
 * audio augmentation: all off), byte tokenizer, context 32. */
clasp_loader_config clasp_loader_default_config(void);

/* Turns cfg into an evaluation pass over `spec`: eval mode, no shuffling, keep the last
 * partial batch, `batch` rows, `workers` decode threads (at least 1). */
void clasp_loader_config_eval(clasp_loader_config *cfg, const char *spec, size_t batch,
                              int workers);

/* Where a loader stands: everything exact resume needs. */
typedef struct clasp_loader_position {
    uint64_t epoch;
    uint64_t consumed; /* raw samples of this epoch taken from the shuffle buffer */
    uint64_t emitted;  /* usable samples of this epoch put into batches */
    uint64_t batches;  /* batches returned in this epoch */
    bool end_pending;  /* the epoch's last partial batch was returned; next call ends it */
} clasp_loader_position;

/* {"version":1,"epoch":..,"consumed":..,"emitted":..,"batches":..,"end_pending":..}; caller
 * cJSON_Deletes; NULL on allocation failure. */
cJSON *clasp_loader_position_to_json(const clasp_loader_position *p);
/* Parses the object above; CLASP_ERR_FORMAT naming the field on a bad value. */
clasp_status clasp_loader_position_from_json(const cJSON *obj, clasp_loader_position *p);

/* One batch: n rows, each tensor contiguous and row-major; NULL when not produced. Owned by
 * the loader and valid until the next clasp_loader_next / clasp_loader_close. */
typedef struct clasp_batch {
    size_t n; /* rows (== batch_size except an eval epoch's last batch) */
    uint64_t epoch;
    uint64_t index; /* batch index within the epoch */
    float *images;  /* (n, C, H, W) preprocessed by modalities/image.h */
    int img_c, img_h, img_w;
    int32_t *tokens; /* (n, T) BOS .. EOS PAD.. */
    int ctx;         /* T */
    float *audio;    /* (n, n_mels, n_frames) log-mel */
    int n_mels;
    size_t n_frames;
    int64_t *labels;     /* (n) from "cls", -1 when the sample has none */
    uint64_t *group_ids; /* (n) hash of the caption tokens (equal captions, equal ids);
                            the label when there is no text */
    char **keys;         /* (n) sample keys, NUL-terminated */
    float *images2;      /* (n, C, H, W) second views when cfg.views == 2, else NULL */
    float *audio2;       /* (n, n_mels, n_frames) second views when cfg.views == 2, else NULL */
} clasp_batch;

typedef struct clasp_loader clasp_loader;

/* Opens a loader at `pos` (NULL = epoch 0, start). Expands the spec and checks the config
 * (empty shard list, rank split, batch size, image size): CLASP_ERR_ARG / CLASP_ERR_CONFIG.
 * No thread runs until the first clasp_loader_next. */
clasp_status clasp_loader_open(const clasp_loader_config *cfg, const clasp_loader_position *pos,
                               clasp_loader **out);

/* The next batch of the current epoch (*end = false, *out set), or *end = true (*out NULL)
 * once the epoch is over; the call after that starts the next epoch. Errors: an epoch that
 * yields no usable sample at all (CLASP_ERR_FORMAT: never an endless loop of empty epochs),
 * a missing/unreadable shard under CLASP_ON_ERROR_FAIL (CLASP_ERR_IO / CLASP_ERR_NOT_FOUND),
 * CLASP_ERR_NOMEM. After an error the loader can only be closed. */
clasp_status clasp_loader_next(clasp_loader *L, const clasp_batch **out, bool *end);

/* The position after the last returned batch. */
clasp_loader_position clasp_loader_get_position(const clasp_loader *L);
/* Counters (samples ok, skips by reason, shard errors, consumer wait time). */
clasp_data_stats *clasp_loader_stats(clasp_loader *L);
/* Number of shards the spec expanded to. */
size_t clasp_loader_n_shards(const clasp_loader *L);

/* Stops the threads and frees everything; accepts NULL. */
void clasp_loader_close(clasp_loader *L);

/* ---- sample decoding, shared with `clasp shards inspect --decode` and the fuzz target ---- */

/* Per-thread decode state (audio front-end, scratch). */
typedef struct clasp_decoder clasp_decoder;

/* Creates a decoder for `cfg` (its image/text/audio/tokenizer/required/fields/seed/eval). */
clasp_status clasp_decoder_new(const clasp_loader_config *cfg, const clasp_tokenizer *tok,
                               clasp_decoder **out);
void clasp_decoder_free(clasp_decoder *d);

/* Decoded tensors of one sample, into caller buffers sized per the config: image
 * (C*S*S floats), tokens (context_length), mel (n_mels*n_frames); any may be NULL to skip that
 * output (the field is still checked). image2 / mel2: the second view (loader.h's `views`),
 * decoded only when not NULL. */
typedef struct clasp_decoded {
    float *image;
    int32_t *tokens;
    float *mel;
    int64_t label; /* -1 if absent */
    uint64_t group_id;
    float *image2; /* second view (cfg.views == 2) of the image / the log-mel, or NULL */
    float *mel2;
} clasp_decoded;

/* Decodes sample s for `epoch`. Returns CLASP_OK and *ok = true, or *ok = false with *why
 * the skip reason (already counted in stats when stats is not NULL, with shard and key).
 * Errors (CLASP_ERR_NOMEM, misuse) are returned as such. */
clasp_status clasp_decoder_run(clasp_decoder *d, const clasp_sample *s, uint64_t epoch,
                               clasp_data_stats *stats, clasp_decoded *out, bool *ok,
                               clasp_skip_reason *why);

#endif
