/* tokenizer.h: text tokenizers behind one handle: the byte-level tokenizer of fmnist-small and a
 * byte-level BPE (GPT-2-style merges over bytes) that can be trained from captions and saved
 * as tokenizer.json.
 *
 * Id layout, shared by both kinds so a BPE with zero merges IS the byte tokenizer:
 *     0..255      the bytes
 *     256 BOS, 257 EOS, 258 PAD
 *     259 + i     the token made by merge i (BPE only)
 *
 * Encoding to a fixed context T (ref: ../shared/bench/ref_clip_fmnist.py tokenize()):
 *     [BOS] + ids[:T-2] + [EOS] + [PAD] * (T - 2 - min(len(ids), T-2))
 * so EOS is always present, at index min(len(ids), T-2) + 1. "a photo of a bag" with the byte
 * tokenizer and T = 32 gives 256 97 32 112 104 111 116 111 32 111 102 32 97 32 98 97 103 257
 * 258 ... 258.
 *
 * BPE pre-split: the text is cut into words before merging, and merges never cross a word
 * boundary. A word starts at every space byte (0x20) that follows a non-space byte, so the space
 * belongs to the word after it ("a photo of" -> "a", " photo", " of"), as in GPT-2 but without
 * its regular expression. Runs of spaces stay in one word.
 *
 * tokenizer.json:
 *     {"type": "bpe", "version": 1, "vocab_size": 1000, "bos_id": 256, "eos_id": 257,
 *      "pad_id": 258, "pre_split": "space", "merges": [[97, 32], [259, 116], ...]}
 * merges[i] = [left id, right id] of the token 259 + i; vocab_size = 259 + len(merges).
 * {"type": "bytes"} (ids optional, must equal the layout above) is the byte tokenizer; the same
 * objects are accepted as a model config's "text": {"tokenizer": {...}}, where a BPE may instead
 * give {"type": "bpe", "path": "tokenizer.json"} (relative to the config file's folder).
 *
 * {"type": "clip_bpe", "path": "bpe_simple_vocab_16e6.txt.gz", "context_length": 77} is OpenAI
 * CLIP's tokenizer as OpenCLIP runs it (docs/clip_bpe.md): its own ids (vocab 49408, start 49406,
 * end 49407, padding 0), its own cleaning (HTML unescape, whitespace, lower case) inside encode,
 * so do not NFKC-normalise first; invalid UTF-8 is CLASP_ERR_FORMAT. The path is relative to the
 * JSON file's folder; to_json writes its file name only (an export copies the file beside it).
 * Encoding to ctx is OpenCLIP's: [49406] + ids + [49407], cut to ctx keeping 49407 last, zeros
 * after. Decoding skips 49406, stops at 49407 and turns "</w>" into a space. Training and
 * save/load of merges in tokenizer.json do not apply to it.
 *
 * Encoding of the other kinds does not normalise: run clasp_text_normalize (text.h) first. A
 * tokenizer is read-only after creation: one handle may be used by many threads at once.
 */
#ifndef CLASP_MODALITIES_TOKENIZER_H
#define CLASP_MODALITIES_TOKENIZER_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "core/status.h"

#define CLASP_TOKEN_BOS         256
#define CLASP_TOKEN_EOS         257
#define CLASP_TOKEN_PAD         258
#define CLASP_TOKEN_FIRST_MERGE 259
/* Largest vocabulary a BPE may have. */
#define CLASP_TOKENIZER_MAX_VOCAB 1000000

typedef enum clasp_tokenizer_type {
    CLASP_TOKENIZER_BYTES = 1, /* vocab 259, no merges */
    CLASP_TOKENIZER_BPE = 2,
    CLASP_TOKENIZER_CLIP_BPE = 3 /* OpenCLIP's SimpleTokenizer, see below */
} clasp_tokenizer_type;

typedef struct clasp_tokenizer clasp_tokenizer; /* opaque, read-only after creation */

/* A new byte-level tokenizer. Release with clasp_tokenizer_free. Returns CLASP_ERR_NOMEM. */
clasp_status clasp_tokenizer_new_bytes(clasp_tokenizer **out);

/* Trains a BPE on texts[0..n_texts) (each NUL-terminated, used as given: normalise first) up
 * to vocab_size tokens (>= 259). Each step merges the most frequent adjacent pair over all words
 * (counted with word multiplicity); ties go to the pair with the lowest (left, right) ids, so
 * training is deterministic. Stops early when no pair occurs at least `min_count` (>= 1) times;
 * the result's vocab size may then be below vocab_size. Returns CLASP_ERR_ARG, CLASP_ERR_NOMEM. */
clasp_status clasp_tokenizer_train_bpe(const char *const *texts, size_t n_texts, int vocab_size,
                                       int min_count, clasp_tokenizer **out);

/* Creates a tokenizer from a JSON object (see the top of this file). `file` names the source in
 * messages and anchors a relative "path". Returns CLASP_ERR_CONFIG / CLASP_ERR_FORMAT naming the
 * field, CLASP_ERR_IO / CLASP_ERR_NOT_FOUND for a missing path, CLASP_ERR_NOMEM. */
clasp_status clasp_tokenizer_from_json(const cJSON *obj, const char *file, clasp_tokenizer **out);
/* Reads a tokenizer.json. */
clasp_status clasp_tokenizer_load(const char *path, clasp_tokenizer **out);
/* A new cJSON object describing the tokenizer (caller cJSON_Deletes); NULL on OOM. */
cJSON *clasp_tokenizer_to_json(const clasp_tokenizer *tok);
/* Writes tokenizer.json atomically; a clip_bpe tokenizer also copies its merges file into the
 * same folder (unless it is already that file). */
clasp_status clasp_tokenizer_save(const clasp_tokenizer *tok, const char *path);

void clasp_tokenizer_free(clasp_tokenizer *tok); /* accepts NULL */

clasp_tokenizer_type clasp_tokenizer_kind(const clasp_tokenizer *tok);
int clasp_tokenizer_vocab_size(const clasp_tokenizer *tok); /* 259 + merges */
int clasp_tokenizer_n_merges(const clasp_tokenizer *tok);
/* Start, end and padding ids: 256, 257, 258, or 49406, 49407, 0 for clip_bpe. */
int32_t clasp_tokenizer_bos_id(const clasp_tokenizer *tok);
int32_t clasp_tokenizer_eos_id(const clasp_tokenizer *tok);
int32_t clasp_tokenizer_pad_id(const clasp_tokenizer *tok);
/* clip_bpe: the JSON's "context_length" (default 77); 0 for the other kinds. */
int clasp_tokenizer_context_length(const clasp_tokenizer *tok);
/* "bytes", "bpe" or "clip_bpe". */
const char *clasp_tokenizer_type_name(const clasp_tokenizer *tok);
/* clip_bpe: the merges file as opened (to copy it into an export); NULL for the other kinds. */
const char *clasp_tokenizer_merges_path(const clasp_tokenizer *tok);

/* Encodes the NUL-terminated `text` into out[ctx] (ctx >= 2) as described at the top. Returns
 * CLASP_ERR_ARG for NULL pointers or ctx < 2, CLASP_ERR_NOMEM. */
clasp_status clasp_tokenizer_encode(const clasp_tokenizer *tok, const char *text, int32_t *out,
                                    int ctx);
/* Same for text[n] (may contain NUL bytes); *n_used (may be NULL) receives the number of
 * content tokens kept, min(len(ids), ctx - 2). */
clasp_status clasp_tokenizer_encode_n(const clasp_tokenizer *tok, const char *text, size_t n,
                                      int32_t *out, int ctx, int *n_used);
/* Encodes text[n] without BOS/EOS/PAD or truncation into a malloc'd array *ids of *n_ids
 * entries (caller frees). */
clasp_status clasp_tokenizer_encode_raw(const clasp_tokenizer *tok, const char *text, size_t n,
                                        int32_t **ids, size_t *n_ids);
/* Decodes ids[n] back to bytes: BOS and PAD are skipped, decoding stops at the first EOS.
 * *out is malloc'd and NUL-terminated, *out_n bytes (caller frees). Returns CLASP_ERR_ARG for
 * an id outside the vocabulary. */
clasp_status clasp_tokenizer_decode(const clasp_tokenizer *tok, const int32_t *ids, size_t n,
                                    char **out, size_t *out_n);

#endif
