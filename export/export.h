/* export.h: model exports and the embedder that runs a trained model on raw inputs.
 *
 * An export is a directory (see ../shared/DESIGN.md, "Formats"):
 *   model.safetensors  every parameter by PyTorch-style name (encoders, projections,
 *                      logit_scale, logit_bias): no optimiser state; metadata "format":
 *                      "clasp-model" and "config" (the config JSON, checked against config.json)
 *   config.json        the model config (clasp_model_config_to_json and
 *                      clasp_preprocess_add_json); a BPE tokenizer's
 *                      "file" is "tokenizer.json", relative to the export; plus the export's
 *                      "format_version" (CLASP_EXPORT_FORMAT_VERSION; absent = 1): a newer
 *                      one is refused (CLASP_ERR_FORMAT naming config.json and both versions)
 *   tokenizer.json     clasp_tokenizer_save of the model's tokenizer (bytes or BPE)
 *   preprocess.json    what a consumer must do to raw inputs, for tools outside clasp:
 *     {"format": "clasp-preprocess", "version": 1,
 *      "image": {"channels": 1, "size": 28, "resize": "squash" | "shortest" | "longest",
 *                "filter": "catmull-rom", "alpha": "white", "mean": [..], "std": [..],
 *                "scale": "x / 255"},
 *      "text": {"context_length": 32, "tokenizer": "bytes" | "bpe", "bos_id": 256,
 *               "eos_id": 257, "pad_id": 258, "vocab_size": 259,
 *               "normalize": {"nfkc": true, "casefold": false, "strip_control": true,
 *                             "collapse_whitespace": true, "trim": true}},
 *      "audio": {"sample_rate": 8000, "clip_seconds": 3, "pad": "zero", "crop": "random",
 *                "eval_crop": "head", "resample_quality": 2, "min_seconds": 0,
 *                "nonfinite": "reject", "n_fft": 256, "win_length": 200, "hop_length": 80,
 *                "window": "hann", "center": true, "pad_mode": "reflect", "n_mels": 64,
 *                "fmin": 20, "fmax": 4000, "mel_scale": "htk", "mel_norm": "none",
 *                "power": 2, "log": "ln", "log_floor": 1e-10, "norm_mean": -5.5,
 *                "norm_std": 6, "n_frames": 301, "clip_samples": 24000}}
 * "audio" is the whole front-end of modalities/audio.h (clasp_audio_config_to_json: field
 * meanings at clasp_audio_config_from_json) plus "eval_crop" (embedding always crops the head
 * of a long clip; "crop" is the training crop) and the derived tower input size. Reading an
 * export checks every audio field is present and equal to config.json's front-end:
 * CLASP_ERR_CONFIG naming preprocess.json and the field ("audio.n_fft") otherwise.
 * The export is written into DIR.tmp-PID and renamed to DIR at the end, so DIR is either the
 * old export (or absent) or the complete new one.
 *
 * The embedder (clasp_embedder) loads an export or a checkpoint (a checkpoint folder or a run
 * folder: its latest checkpoint) and embeds images (encoded bytes or files), texts and audio
 * exactly as the loader does in evaluation mode: images decoded with stb_image (alpha composited
 * on white), resized per the config and normalised (modalities/image.h); texts normalised with
 * utf8proc (modalities/text.h defaults) and tokenized to the context length; audio decoded by
 * the front-end of modalities/audio.h in evaluation mode (libsndfile, mono mix, libsamplerate
 * to the model's rate, head crop or the configured pad, log-mel, normalisation; no
 * augmentation). Outputs are L2-normalised features (n, embed_dim). Image-text models run on
 * the engine (train/engine.h) over `threads` replicas; models the engine does not pair
 * (audio-text: no image tower) run on the embedder's own `threads` model replicas; either way
 * an audio tower runs on the replicas with one thread per replica. Either way the replicas
 * are inference-only (encoders/model.h clasp_model_init_inference): no gradient buffers, one
 * copy of the parameters read by every replica, and activation arenas only for the towers
 * embedded so far. An embedder is driven by one thread at a time.
 * A checkpoint is read through train/runstate.h, which refuses a checkpoint or a run folder of
 * a newer format version.
 */
#ifndef CLASP_EXPORT_EXPORT_H
#define CLASP_EXPORT_EXPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"
#include "encoders/model.h"
#include "modalities/audio.h"
#include "modalities/preprocess.h"
#include "modalities/tokenizer.h"
#include "train/engine.h"
#include "pipeline/loader.h"

#define CLASP_EXPORT_FORMAT_VERSION 1

/* Writes an export of model `m` (its params) with its preprocessing `pre` (the tokenizer
 * included: modalities/preprocess.h) into out_dir (replaced atomically if it exists). Errors:
 * CLASP_ERR_IO naming the path, CLASP_ERR_NOMEM. */
clasp_status clasp_export_model(const clasp_model *m, const clasp_preprocess *pre,
                                const char *out_dir);

/* `clasp export`: loads the checkpoint (a checkpoint folder, or a run folder's latest) and
 * writes its export into out_dir. On success copies the checkpoint folder into ckpt_out
 * (may be NULL). Errors name the checkpoint file and field or tensor that is wrong. */
clasp_status clasp_export_checkpoint(const char *ckpt_or_run, const char *out_dir, char *ckpt_out,
                                     size_t ckpt_cap);

typedef enum clasp_source_kind {
    CLASP_SOURCE_EXPORT = 0,    /* an export folder */
    CLASP_SOURCE_CHECKPOINT = 1 /* a checkpoint folder (given directly or through a run) */
} clasp_source_kind;

typedef struct clasp_embedder {
    clasp_source_kind kind;
    char path[4096];           /* the export or checkpoint folder */
    char run_dir[4096];        /* the run folder holding the checkpoint, "" if none */
    clasp_model_config config; /* the towers */
    clasp_preprocess pre;      /* the preprocessing (its tokenizer byte-level without text) */
    clasp_loader_config lc;    /* the loader's eval-mode preprocessing (image, text, audio) */
    clasp_engine engine;       /* image-text models: an inference engine (no gradients; its
                                  replicas share models[0].params, the loaded parameters); all
                                  zero (models NULL) when the engine does not take the model */
    clasp_model *own;          /* (n_rep) inference replicas sharing own[0].params when the
                                  engine is not used, else NULL */
    int n_rep;                 /* model replicas (= compute threads) */
    int D;                     /* embedding dimension */
    uint64_t model_hash;       /* xxh64 of the bytes of model.safetensors */
    int64_t step;              /* the checkpoint's training step, -1 for an export */
    int batch_size;            /* inputs preprocessed and embedded per call (multiple of n_rep) */
    float *pix;                /* (batch_size, C, S, S) scratch; NULL without an image tower */
    int32_t *tokens;           /* (batch_size, T) scratch; NULL without a text tower */
    float *mel;                /* (batch_size, n_mels, n_frames) scratch; NULL without audio */
    float *norms;              /* (batch_size) row norms of the own-replica path */
    clasp_audio_frontend *fe;  /* eval-mode audio front-end (NULL without an audio tower) */
    clasp_precision precision; /* of the towers' products (default fp32) */
    struct clasp_safetensors *pending; /* an export's model.safetensors, mapped, while some
                                          tower's parameters are not loaded yet; else NULL */
    bool loaded[CLASP_N_TOWERS];       /* tower t's parameters are in the model */
} clasp_embedder;

/* Replica 0 of the embedder's model, with every tower's parameters loaded. */
clasp_model *clasp_embedder_model(clasp_embedder *em);
/* Bytes the embedder's models hold: one copy of the parameters (shared read-only by every
 * replica), no gradients, and the activation arenas of the towers embedded so far (each sized
 * for batch_size / n_rep rows per replica); the scratch input buffers are not counted. */
size_t clasp_embedder_bytes(const clasp_embedder *em);

/* Opens `path` (an export folder, a checkpoint folder or a run folder) with `threads` compute
 * threads (>= 1) and batches of `batch_size` rows (rounded up to a multiple of threads).
 * Errors name the file and the field or tensor: a missing file (CLASP_ERR_NOT_FOUND), a tensor
 * of the wrong shape or dtype (CLASP_ERR_FORMAT), config.json disagreeing with
 * preprocess.json, tokenizer.json or model.safetensors' metadata (CLASP_ERR_CONFIG). On error
 * *em is left closed. */
clasp_status clasp_embedder_open(const char *path, int threads, int batch_size, clasp_embedder *em);
/* clasp_embedder_open, except that an export's towers are read when first embedded through
 * the clasp_embedder_* calls (every tensor is still checked here): embedding only images never
 * reads, nor holds in memory, the text tower's parameters. Until then `engine` and `own` hold
 * zeros for those towers: code that uses them directly opens with clasp_embedder_open or calls
 * clasp_embedder_model first (which loads every tower). */
clasp_status clasp_embedder_open_lazy(const char *path, int threads, int batch_size,
                                      clasp_embedder *em);
/* The precision every later embedding computes in (default fp32), whatever the model was
 * trained in. CLASP_ERR_UNSUPPORTED (naming the backend) when this build or CPU cannot. */
clasp_status clasp_embedder_set_precision(clasp_embedder *em, clasp_precision p);
/* Frees everything; accepts a zeroed or already-closed embedder. */
void clasp_embedder_close(clasp_embedder *em);

/* Embeds n encoded images data[i] (nbytes[i] bytes) into out (n, D). A bad image is an error
 * naming its index ("image 3: ..."), `names` (may be NULL) replacing the index by a name. */
clasp_status clasp_embedder_images(clasp_embedder *em, const void *const *data,
                                   const size_t *nbytes, const char *const *names, int n,
                                   float *out);
/* Reads and embeds n image files (errors name the file). */
clasp_status clasp_embedder_image_files(clasp_embedder *em, const char *const *paths, int n,
                                        float *out);
/* Embeds n NUL-terminated UTF-8 texts into out (n, D). Invalid UTF-8 or a text that
 * normalises to nothing is CLASP_ERR_FORMAT naming the index. */
clasp_status clasp_embedder_texts(clasp_embedder *em, const char *const *texts, int n, float *out);
/* Embeds n encoded audio files held in memory (WAV, FLAC, OGG/Vorbis, Opus, MP3: what
 * libsndfile reads) into out (n, D), through the model's front-end in evaluation mode. An
 * audio file the front-end skips (empty, undecodable, NaN samples, too many channels, ...) is
 * an error (CLASP_ERR_FORMAT, CLASP_ERR_NUMERIC or CLASP_ERR_UNSUPPORTED) naming its index or
 * names[i] and the reason. CLASP_ERR_CONFIG when the model has no audio tower. */
clasp_status clasp_embedder_audio(clasp_embedder *em, const void *const *data, const size_t *nbytes,
                                  const char *const *names, int n, float *out);
/* Reads and embeds n audio files (errors name the file). */
clasp_status clasp_embedder_audio_files(clasp_embedder *em, const char *const *paths, int n,
                                        float *out);
/* Embeds n already preprocessed inputs of tower t (the layouts of clasp_model_encode: pixels
 * (n, C, H, W), tokens (n, T) int32, log-mel (n, n_mels, n_frames)) into out (n, D), L2-
 * normalised. CLASP_ERR_CONFIG when the model has no tower t. */
clasp_status clasp_embedder_embed_inputs(clasp_embedder *em, clasp_tower t, const void *input,
                                         int n, float *out);
/* Whether the embedder's model has tower t. */
bool clasp_embedder_has(const clasp_embedder *em, clasp_tower t);
/* Tokenizes one text as the embedder does (normalise + encode) into tokens (T). */
clasp_status clasp_embedder_tokenize(const clasp_embedder *em, const char *text, int32_t *tokens);

#endif
