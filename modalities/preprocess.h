/* preprocess.h: the preprocessing of a model config (configs/NAME.json), composed from the
 * modalities' own parsers. A model config holds, beside the towers that encoders/ parses, what
 * must be done to raw inputs before a tower sees them:
 *
 *   "image": "channels", "size", "mean", "std", "resize"     clasp_image_config_from_json
 *   "text":  "context_length", "tokenizer" {"type": "bytes" | "bpe", "bos", "eos", "pad",
 *            "path" (older spelling "file"; required for "bpe")}, "vocab_size" (read to
 *            bound the tokenizer's ids)                        clasp_tokenizer_from_json
 *   "audio": the front-end fields of modalities/audio.h      clasp_audio_config_from_json
 *
 * One call composes all three (a modality is present when its object is), so the loader, the
 * trainer, evaluation and the export read preprocessing from one place:
 *
 *     clasp_preprocess pre;
 *     CLASP_TRY(clasp_preprocess_load("configs/fmnist-small.json", &pre));
 *     ... pre.image, pre.tokenizer, pre.context_length, pre.audio ...
 *     clasp_preprocess_free(&pre);
 *
 * Errors are CLASP_ERR_CONFIG naming the config file and the field path ("text.tokenizer.type",
 * "image.std", "audio.n_fft"). Keys of the tower objects are not checked here: the model config
 * parser (encoders/config.c) refuses unknown keys and knows these fields by name.
 *
 * The tokenizer path rule: a relative "path" is relative to the folder of the config file that
 * names it, never to the working directory. clasp_preprocess_load stores it made absolute (so a
 * run's config.json reopens from anywhere); clasp_preprocess_parse keeps it as written and
 * loads it from the folder of `what` (an export's "tokenizer.json" is the export's own).
 *
 * A clasp_preprocess owns its tokenizer: copies of the struct share it; free exactly one.
 */
#ifndef CLASP_MODALITIES_PREPROCESS_H
#define CLASP_MODALITIES_PREPROCESS_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "core/status.h"
#include "modalities/audio.h"
#include "modalities/image.h"
#include "modalities/text.h"
#include "modalities/tokenizer.h"

/* The "text.tokenizer" object as written (serialised back by clasp_preprocess_add_json). */
typedef struct clasp_tokenizer_spec {
    char type[16];     /* "bytes" or "bpe"; "" when the text object names no tokenizer */
    int bos, eos, pad; /* token ids, -1 when absent */
    char path[1024];   /* BPE tokenizer.json ("" if none); absolute after clasp_preprocess_load */
} clasp_tokenizer_spec;

/* Room for the order in which the audio front-end fields were given. */
#define CLASP_PREPROCESS_AUDIO_FIELDS 32

typedef struct clasp_preprocess {
    bool has_image, has_text, has_audio; /* which objects the config has */
    clasp_image_config image;            /* resize + normalisation of the image tower's input */
    clasp_text_config text;              /* caption normalisation (clasp_text_default_config) */
    int context_length;                  /* tokens per caption */
    int vocab_size; /* "text.vocab_size": the tokenizer's ids must stay below it (the loader
                       checks: clasp_data_loader_config) */
    clasp_tokenizer_spec tokenizer_spec;
    clasp_tokenizer *tokenizer; /* owned: the spec's BPE, else byte-level (also without text) */
    clasp_audio_config audio;   /* the log-mel front-end of the audio tower */
    /* the front-end fields the config gave, in its order, as indices into the fields of
     * clasp_audio_config_to_json: serialisation writes back exactly those */
    int n_audio_fields;
    int audio_fields[CLASP_PREPROCESS_AUDIO_FIELDS];
} clasp_preprocess;

/* Reads a model config file and composes its preprocessing (the tokenizer path made absolute).
 * On error *out is zeroed (nothing to free). */
clasp_status clasp_preprocess_load(const char *path, clasp_preprocess *out);
/* The same from a parsed model config; `what` names it in messages and anchors a relative
 * tokenizer path (a file path such as "run/config.json"; NULL: the working directory). */
clasp_status clasp_preprocess_parse(const cJSON *root, const char *what, clasp_preprocess *out);
/* Adds the preprocessing fields to a model config document made by clasp_model_config_to_json
 * (the tower objects must be there): image "mean", "std", "resize"; text "tokenizer"; the audio
 * front-end fields the config gave. Parsing the result gives the same preprocessing. Returns
 * CLASP_ERR_NOMEM, CLASP_ERR_ARG when a tower object is missing. */
clasp_status clasp_preprocess_add_json(const clasp_preprocess *pre, cJSON *root);
/* Frees the tokenizer and zeroes the struct; accepts NULL and a zeroed struct. */
void clasp_preprocess_free(clasp_preprocess *pre);

#endif
